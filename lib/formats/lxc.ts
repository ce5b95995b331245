/**
 * LXC formats.
 * - `lxc`: config lines `lxc.idmap = u|g <nsid> <hostid> <range>` (no `b`).
 *   The pre-3.0 key `lxc.id_map` is read too. Other keys, comments and blank
 *   lines in a config are skipped, so a whole config file can be given.
 * - `lxc-entry`: `u|g|b:<nsid>:<hostid>:<range>` entry strings (lxc-usernsexec -m,
 *   LXD/Incus `Set.Append`), whitespace separated; a leading `-m` is allowed.
 * In both, nsid is the id inside (IdMap.first) and hostid the id outside (lowerFirst).
 */
import { extent } from "../model/extent.js";
import { FormatError } from "./errors.js";
import { fromTagged, toTagged } from "./kinds.js";
import { at, isBlankOrComment, makeExtent, parseU32, splitLines, type Token, tokenize, tokenizeAll } from "./text.js";
import type { FormatOptions, KindSelection, MapSet, ParseOptions } from "./types.js";

/** One `lxc.idmap` line. */
export interface LxcIdmapLine {
  readonly kind: "uid" | "gid";
  /** Id inside the container (IdMap.first). */
  readonly nsid: number;
  /** Id on the host (IdMap.lowerFirst). */
  readonly hostid: number;
  readonly range: number;
  /** 1-based line in the config. */
  readonly line: number;
}

const KEY = /^[ \t]*(lxc\.idmap|lxc\.id_map)[ \t]*=(.*)$/;

/** Parses the `lxc.idmap` lines of an LXC config, with LXC's own column names. */
export function parseLxcIdmapLines(text: string): LxcIdmapLine[] {
  const entries: LxcIdmapLine[] = [];
  for (const line of splitLines(text)) {
    if (isBlankOrComment(line)) continue;
    const m = KEY.exec(line.text);
    if (!m) {
      if (/^[ \t]*lxc\.[A-Za-z0-9_.]+[ \t]*=/.test(line.text)) continue; // another LXC key
      throw new FormatError("lxc", "parse", 'expected "lxc.idmap = u|g nsid hostid range"', {
        line: line.line,
        column: 1,
      });
    }
    const valueStart = line.text.length - m[2]!.length;
    const toks = tokenize({ text: m[2]!, line: line.line }).map((t) => ({ ...t, column: t.column + valueStart }));
    if (toks.length !== 4) {
      throw new FormatError("lxc", "parse", `expected 4 values "u|g nsid hostid range", got ${toks.length}`, {
        line: line.line,
        column: (toks[4] ?? toks[0])?.column ?? valueStart + 1,
      });
    }
    const [k, n, h, r] = toks as [Token, Token, Token, Token];
    if (k.text !== "u" && k.text !== "g") {
      throw new FormatError(
        "lxc",
        "parse",
        `kind must be "u" or "g" (lxc.idmap has no "b"), got ${JSON.stringify(k.text)}`,
        at(k),
      );
    }
    const nsid = parseU32("lxc", n.text, "nsid", at(n));
    const hostid = parseU32("lxc", h.text, "hostid", at(h));
    const range = parseU32("lxc", r.text, "range", at(r));
    makeExtent("lxc", nsid, hostid, range, at(r));
    entries.push({ kind: k.text === "u" ? "uid" : "gid", nsid, hostid, range, line: line.line });
  }
  return entries;
}

/** Parses `lxc.idmap` lines into maps: nsid → IdMap.first, hostid → IdMap.lowerFirst. */
export function parseLxcIdmap(text: string, options: ParseOptions = {}): MapSet {
  return fromTagged(
    parseLxcIdmapLines(text).map((l) => ({ kind: l.kind, extent: extent(l.nsid, l.hostid, l.range) })),
    options.kind,
  );
}

/** Writes `lxc.idmap = u …` lines, uid lines first. */
export function formatLxcIdmap(maps: MapSet, options: FormatOptions = {}): string {
  const tagged = toTagged("lxc", maps, options.kind);
  // LXC has no "b": a both-entry becomes a u line and a g line, each kind in its own order
  const lines = (kind: "uid" | "gid", letter: "u" | "g") =>
    tagged
      .filter((t) => t.kind === kind || t.kind === "both")
      .map(({ extent: e }) => `lxc.idmap = ${letter} ${e.first} ${e.lowerFirst} ${e.count}\n`);
  return [...lines("uid", "u"), ...lines("gid", "g")].join("");
}

/** Parses `u|g|b:nsid:hostid:range` entries. */
export function parseLxcEntries(text: string, options: ParseOptions = {}): MapSet {
  const entries: { kind: KindSelection; extent: ReturnType<typeof makeExtent> }[] = [];
  for (const tok of tokenizeAll(text)) {
    if (tok.text === "-m") continue;
    const parts = tok.text.split(":");
    if (parts.length !== 4) {
      throw new FormatError(
        "lxc-entry",
        "parse",
        `expected "u|g|b:nsid:hostid:range", got ${JSON.stringify(tok.text)}`,
        at(tok),
      );
    }
    const [k, n, h, r] = parts as [string, string, string, string];
    if (k !== "u" && k !== "g" && k !== "b") {
      throw new FormatError("lxc-entry", "parse", `kind must be u, g or b, got ${JSON.stringify(k)}`, at(tok));
    }
    let off = k.length + 1;
    const nsid = parseU32("lxc-entry", n, "nsid", at(tok, off));
    off += n.length + 1;
    const hostid = parseU32("lxc-entry", h, "hostid", at(tok, off));
    off += h.length + 1;
    const range = parseU32("lxc-entry", r, "range", at(tok, off));
    entries.push({
      kind: k === "u" ? "uid" : k === "g" ? "gid" : "both",
      extent: makeExtent("lxc-entry", nsid, hostid, range, at(tok, off)),
    });
  }
  return fromTagged(entries, options.kind);
}

/** Writes one entry per line; `b:` when the uid and gid maps are equal. */
export function formatLxcEntries(maps: MapSet, options: FormatOptions = {}): string {
  return toTagged("lxc-entry", maps, options.kind)
    .map(
      ({ kind, extent: e }) =>
        `${kind === "both" ? "b" : kind === "uid" ? "u" : "g"}:${e.first}:${e.lowerFirst}:${e.count}\n`,
    )
    .join("");
}
