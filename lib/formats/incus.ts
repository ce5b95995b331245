/**
 * Incus / LXD `raw.idmap`: `both|uid|gid <host>[-<host_end>] <inside>[-<inside_end>]`,
 * one entry per line, inclusive ranges of equal length. Note the column
 * order: the HOST id (IdMap.lowerFirst) comes first, the inside id
 * (IdMap.first) second. Blank lines are skipped, as Incus does.
 */
import { extent } from "../model/extent.js";
import { U32_RANGE } from "../model/u32.js";
import { FormatError } from "./errors.js";
import { fromTagged, toTagged } from "./kinds.js";
import { at, makeExtent, parseU32, splitLines, type Token, tokenize } from "./text.js";
import type { FormatOptions, KindSelection, MapSet, ParseOptions } from "./types.js";

const NAME = "incus-raw";

/** One `raw.idmap` entry, columns named as Incus names them. */
export interface IncusRawEntry {
  readonly kind: KindSelection;
  /** First host id (outside; IdMap.lowerFirst). */
  readonly hostFirst: number;
  /** First id inside the instance (IdMap.first). */
  readonly insideFirst: number;
  readonly count: number;
  /** 1-based line. */
  readonly line: number;
}

function parseRange(tok: Token, what: string): { first: number; count: number } {
  const dash = tok.text.indexOf("-");
  if (dash < 0) return { first: parseU32(NAME, tok.text, what, at(tok)), count: 1 };
  const a = parseU32(NAME, tok.text.slice(0, dash), `${what} start`, at(tok));
  const b = parseU32(NAME, tok.text.slice(dash + 1), `${what} end`, at(tok, dash + 1));
  if (b < a) throw new FormatError(NAME, "parse", `${what} range ${tok.text} ends before it starts`, at(tok, dash + 1));
  return { first: a, count: b - a + 1 };
}

/** Parses `raw.idmap` text into entries with Incus's own column names. */
export function parseIncusRawEntries(text: string): IncusRawEntry[] {
  const entries: IncusRawEntry[] = [];
  for (const line of splitLines(text)) {
    const toks = tokenize(line);
    if (toks.length === 0) continue;
    if (toks.length !== 3) {
      throw new FormatError(
        NAME,
        "parse",
        `expected "both|uid|gid host[-end] inside[-end]", got ${toks.length} fields`,
        {
          line: line.line,
          column: (toks[3] ?? toks[0])!.column,
        },
      );
    }
    const [k, h, i] = toks as [Token, Token, Token];
    if (k.text !== "both" && k.text !== "uid" && k.text !== "gid") {
      throw new FormatError(NAME, "parse", `kind must be both, uid or gid, got ${JSON.stringify(k.text)}`, at(k));
    }
    const host = parseRange(h, "host");
    const inside = parseRange(i, "inside");
    if (host.count !== inside.count) {
      throw new FormatError(
        NAME,
        "parse",
        `host range has ${host.count} ids and inside range ${inside.count}: they must be the same length`,
        at(i),
      );
    }
    makeExtent(NAME, inside.first, host.first, host.count, at(i));
    entries.push({
      kind: k.text as KindSelection,
      hostFirst: host.first,
      insideFirst: inside.first,
      count: host.count,
      line: line.line,
    });
  }
  return entries;
}

/** Parses `raw.idmap` text into maps: inside → IdMap.first, host → IdMap.lowerFirst. */
export function parseIncusRaw(text: string, options: ParseOptions = {}): MapSet {
  return fromTagged(
    parseIncusRawEntries(text).map((e) => ({ kind: e.kind, extent: extent(e.insideFirst, e.hostFirst, e.count) })),
    options.kind,
  );
}

function range(first: number, count: number): string {
  return count === 1 ? `${first}` : `${first}-${first + count - 1}`;
}

/** Writes `raw.idmap` lines; `both` when the uid and gid maps are equal. */
export function formatIncusRaw(maps: MapSet, options: FormatOptions = {}): string {
  return toTagged(NAME, maps, options.kind)
    .map(({ kind, extent: e }) => {
      if (e.first + e.count > U32_RANGE) throw new FormatError(NAME, "format", "range past 4294967295");
      return `${kind} ${range(e.lowerFirst, e.count)} ${range(e.first, e.count)}\n`;
    })
    .join("");
}
