/**
 * Kernel map text, `/proc/PID/uid_map`: `first lower count` per line.
 *
 * This is a simple strict reader for interop, separate from the model's
 * byte-exact `map_write` parser: it accepts the written form and the `%10u`
 * read-back form, refuses what the kernel refuses (empty lines, signs, junk,
 * a fourth field), and refuses values wider than 32 bits instead of
 * truncating them as the kernel would (spec §2.2). An empty input is an
 * unwritten map (it reads back as an empty file, spec §3.2).
 */
import type { Extent } from "../model/extent.js";
import { IdMap } from "../model/idmap.js";
import { FormatError } from "./errors.js";
import { fromSingle, toSingle } from "./kinds.js";
import { at, makeExtent, parseU32, splitLines, tokenize } from "./text.js";
import type { FormatOptions, MapSet, ParseOptions } from "./types.js";

const NAME = "kernel";

/** Parses kernel map text into one IdMap (first = inside, lowerFirst = outside). */
export function parseKernelMap(text: string): IdMap {
  if (text === "") return IdMap.EMPTY;
  const extents: Extent[] = [];
  for (const line of splitLines(text)) {
    const toks = tokenize(line);
    if (toks.length === 0) {
      throw new FormatError(NAME, "parse", "empty line (the kernel refuses empty lines with EINVAL)", {
        line: line.line,
        column: 1,
      });
    }
    if (toks.length !== 3) {
      const bad = toks[3] ?? toks[toks.length - 1]!;
      throw new FormatError(
        NAME,
        "parse",
        `expected 3 fields "first lower count", got ${toks.length}`,
        at(bad, toks.length > 3 ? 0 : bad.text.length),
      );
    }
    const [f, l, c] = toks as [(typeof toks)[0], (typeof toks)[0], (typeof toks)[0]];
    extents.push(
      makeExtent(
        NAME,
        parseU32(NAME, f.text, "first", at(f)),
        parseU32(NAME, l.text, "lower", at(l)),
        parseU32(NAME, c.text, "count", at(c)),
        at(c),
      ),
    );
  }
  return IdMap.from(extents);
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
