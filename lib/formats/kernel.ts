/**
 * Kernel map text, `/proc/PID/uid_map`: `first lower count` per line.
 *
 * Read by the model's own parser (lib/model/parse.ts, byte-exact `map_write`),
 * in its read-back mode so that the `%10u` form of a 340-extent map (more than
 * one page) is taken too. The one thing an interop reader does differently
 * from the kernel is checked first: a value wider than 32 bits is refused with
 * its place instead of truncated as the kernel would (spec §2.2). An empty
 * input is an unwritten map (it reads back as an empty file, spec §3.2).
 */
import { IdMap } from "../model/idmap.js";
import { parseReadbackText } from "../model/parse.js";
import { FormatError } from "./errors.js";
import { fromSingle, toSingle } from "./kinds.js";
import { at, parseU32, splitLines, tokenize } from "./text.js";
import type { FormatOptions, MapSet, ParseOptions } from "./types.js";

const NAME = "kernel";
const FIELDS = ["first", "lower", "count"] as const;

/** Parses kernel map text into one IdMap (first = inside, lowerFirst = outside). */
export function parseKernelMap(text: string): IdMap {
  if (text === "") return IdMap.EMPTY;
  refuseWideFields(text);
  const r = parseReadbackText(text);
  if (r.ok) return r.map;
  // The model's reason starts with "line N: "; the position goes into the error's own fields. Its columns
  // count bytes, which here equal UTF-16 units: everything before a refused place is ASCII digits and spaces.
  const reason = r.reason.replace(/^line \d+: /, "");
  throw new FormatError(NAME, "parse", reason, r.line > 0 ? { line: r.line, column: r.column } : {});
}

/** Throws for the first all-digit field among a line's first three whose value needs more than 32 bits. */
function refuseWideFields(text: string): void {
  for (const line of splitLines(text)) {
    const toks = tokenize(line);
    for (let f = 0; f < 3 && f < toks.length; f++) {
      const t = toks[f]!;
      if (/^[0-9]{10,}$/.test(t.text)) parseU32(NAME, t.text, FIELDS[f]!, at(t));
    }
  }
}

/** Formats one map as written to uid_map (`first lower count\n`), or as read back (`%10u %10u %10u\n`). */
export function formatKernelMap(map: IdMap, options: { readback?: boolean } = {}): string {
  if (options.readback) {
    const pad = (n: number) => String(n).padStart(10, " ");
    return map.printOrder.map((e) => `${pad(e.first)} ${pad(e.lowerFirst)} ${pad(e.count)}\n`).join("");
  }
  return map.toString();
}

/** Registry adapter: the text holds one map, placed into the selected kinds. */
export function parseKernel(text: string, options: ParseOptions = {}): MapSet {
  return fromSingle(parseKernelMap(text), options.kind);
}

/** Registry adapter: writes the selected map. */
export function formatKernel(maps: MapSet, options: FormatOptions = {}): string {
  return formatKernelMap(toSingle(NAME, maps, options.kind));
}
