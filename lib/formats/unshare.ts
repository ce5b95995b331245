/**
 * util-linux formats.
 * - `unshare`: 2.39+ `--map-users=<inner>:<outer>:<count>` / `--map-groups=…`.
 *   inner = id inside the new namespace (IdMap.first), outer = id outside (lowerFirst).
 * - `unshare-legacy`: the pre-2.39 `<outer>,<inner>,<count>`: OUTER first.
 * - `x-mount-idmap`: mount(8) `X-mount.idmap=[u:|g:|b:]<first>:<second>:<count> …`,
 *   first = on-disk id (IdMap.first), second = id seen through the mount
 *   (lowerFirst); no prefix means both (util-linux PR #4613; the man page had
 *   it backwards until 2026, issue #4608).
 *
 * The unshare inputs are whitespace-separated values, each optionally
 * prefixed `--map-users=` or `--map-groups=` (which tag the kind); bare
 * values go to the selected kinds.
 */
import { extent } from "../model/extent.js";
import { FormatError } from "./errors.js";
import { fromTagged, toTagged } from "./kinds.js";
import { at, makeExtent, readIdTriple, type Token, tokenizeAll, u32Error } from "./text.js";
import type { FormatOptions, KindSelection, MapSet, ParseOptions } from "./types.js";

type Entry = { kind: KindSelection; extent: ReturnType<typeof makeExtent> };

function parseUnshareLike(name: "unshare" | "unshare-legacy", text: string, options: ParseOptions): MapSet {
  const sep = name === "unshare" ? ":" : ",";
  const entries: Entry[] = [];
  const toks = tokenizeAll(text);
  for (let i = 0; i < toks.length; i++) {
    let tok: Token = toks[i]!;
    let kind: KindSelection = "both";
    let value = tok.text;
    let off = 0;
    const m = /^(--map-users|--map-groups)(=?)(.*)$/.exec(value);
    if (m) {
      kind = m[1] === "--map-users" ? "uid" : "gid";
      if (m[2] === "=") {
        off = m[1]!.length + 1;
        value = m[3]!;
      } else if (m[3] === "") {
        const next = toks[i + 1];
        if (!next) throw new FormatError(name, "parse", `${m[1]} needs a value`, at(tok, tok.text.length));
        tok = next;
        value = next.text;
        i++;
      } else {
        throw new FormatError(name, "parse", `unknown option ${JSON.stringify(tok.text)}`, at(tok));
      }
    }
    if (["auto", "subids", "all"].includes(value)) {
      throw new FormatError(
        name,
        "parse",
        `"${value}" is resolved by unshare at run time from /etc/subuid or the current map; give explicit ranges`,
        at(tok, off),
      );
    }
    const t = readIdTriple(value, sep);
    const shape = name === "unshare" ? "inner:outer:count" : "outer,inner,count";
    if (!t.ok && t.problem === "shape") {
      const hint =
        name === "unshare" && value.split(",").length === 3
          ? " (this looks like the pre-2.39 outer,inner,count form: use --from unshare-legacy)"
          : name === "unshare-legacy" && value.split(":").length === 3
            ? " (this looks like the 2.39+ inner:outer:count form: use --from unshare)"
            : "";
      throw new FormatError(name, "parse", `expected ${shape}, got ${JSON.stringify(value)}${hint}`, at(tok, off));
    }
    const names = name === "unshare" ? ["inner", "outer", "count"] : ["outer", "inner", "count"];
    if (!t.ok) throw u32Error(name, t.problem, t.text, names[t.field]!, at(tok, off + t.offset));
    const cols = t.offsets.map((o) => off + o);
    const v = t.values;
    const [inner, outer] = name === "unshare" ? [v[0], v[1]] : [v[1], v[0]];
    entries.push({ kind, extent: makeExtent(name, inner, outer, v[2], at(tok, cols[2])) });
  }
  return fromTagged(entries, options.kind);
}

function formatUnshareLike(name: "unshare" | "unshare-legacy", maps: MapSet, options: FormatOptions): string {
  const out: string[] = [];
  const tagged = toTagged(name, maps, options.kind);
  for (const { kind, extent: e } of tagged) {
    const v = name === "unshare" ? `${e.first}:${e.lowerFirst}:${e.count}` : `${e.lowerFirst},${e.first},${e.count}`;
    if (kind !== "gid") out.push(`--map-users=${v}`);
    if (kind !== "uid") out.push(`--map-groups=${v}`);
  }
  return out.map((l) => `${l}\n`).join("");
}

/** Parses util-linux 2.39+ `inner:outer:count` values. */
export function parseUnshare(text: string, options: ParseOptions = {}): MapSet {
  return parseUnshareLike("unshare", text, options);
}
/** Writes `--map-users=inner:outer:count` / `--map-groups=…` lines. */
export function formatUnshare(maps: MapSet, options: FormatOptions = {}): string {
  return formatUnshareLike("unshare", maps, options);
}
/** Parses the pre-2.39 `outer,inner,count` values. */
export function parseUnshareLegacy(text: string, options: ParseOptions = {}): MapSet {
  return parseUnshareLike("unshare-legacy", text, options);
}
/** Writes `--map-users=outer,inner,count` lines (pre-2.39 form). */
export function formatUnshareLegacy(maps: MapSet, options: FormatOptions = {}): string {
  return formatUnshareLike("unshare-legacy", maps, options);
}

const XNAME = "x-mount-idmap";

/** One `X-mount.idmap` entry, in the mount direction. */
export interface MountIdmapEntry {
  readonly kind: KindSelection;
  /** Id stored on disk (IdMap.first). */
  readonly onDisk: number;
  /** Id seen through the mount (IdMap.lowerFirst). */
  readonly seen: number;
  readonly count: number;
}

/**
 * Parses an `X-mount.idmap=` value into a format MapSet: on-disk → IdMap.first, seen → IdMap.lowerFirst. (The
 * mount-facing `parseXMountIdmap` of lib/mounts/mapformats.ts builds on the same entries.)
 */
export function parseXMountIdmapMapSet(text: string, options: ParseOptions = {}): MapSet {
  return fromTagged(
    parseXMountIdmapEntries(text).map((e) => ({ kind: e.kind, extent: extent(e.onDisk, e.seen, e.count) })),
    options.kind,
  );
}

/** Parses an `X-mount.idmap=` value (the prefix, surrounding quotes and fstab's `\040` are optional). */
export function parseXMountIdmapEntries(text: string): MountIdmapEntry[] {
  let body = text.replace(/\\040/g, " ");
  let shift = 0;
  const pre = /^[ \t\n]*(-o[ \t]*)?X-mount\.idmap=/.exec(body);
  if (pre) {
    shift = pre[0].length;
    body = body.slice(shift);
  }
  const q = /^(['"])(.*)\1[ \t\r\n]*$/s.exec(body);
  if (q) {
    shift += 1;
    body = q[2]!;
  }
  const entries: MountIdmapEntry[] = [];
  // keep columns relative to the original single-line input
  const toks = tokenizeAll(body).map((t) => (t.line === 1 ? { ...t, column: t.column + shift } : t));
  if (toks.length === 0) throw new FormatError(XNAME, "parse", "no mapping given", { line: 1, column: shift + 1 });
  for (const tok of toks) {
    if (tok.text.startsWith("/")) {
      throw new FormatError(
        XNAME,
        "parse",
        `${tok.text} names a user namespace; read its uid_map and gid_map and convert those instead`,
        at(tok),
      );
    }
    let kind: KindSelection = "both";
    let rest = tok.text;
    let off = 0;
    const m = /^([ugb]):/.exec(rest);
    if (m) {
      kind = m[1] === "u" ? "uid" : m[1] === "g" ? "gid" : "both";
      rest = rest.slice(2);
      off = 2;
    }
    const t = readIdTriple(rest);
    if (!t.ok && t.problem === "shape") {
      throw new FormatError(
        XNAME,
        "parse",
        `expected [u:|g:|b:]first:second:count, got ${JSON.stringify(tok.text)}`,
        at(tok),
      );
    }
    const fields = ["first (on-disk id)", "second (id seen through the mount)", "count"];
    if (!t.ok) throw u32Error(XNAME, t.problem, t.text, fields[t.field]!, at(tok, off + t.offset));
    const [onDisk, seen, count] = t.values;
    const c2 = off + t.offsets[2];
    makeExtent(XNAME, onDisk, seen, count, at(tok, c2));
    entries.push({ kind, onDisk, seen, count });
  }
  return entries;
}

/** Writes `X-mount.idmap=…` with `b:` entries when the maps are equal, else `u:` and `g:` entries. */
export function formatXMountIdmapMapSet(maps: MapSet, options: FormatOptions = {}): string {
  const entries = toTagged(XNAME, maps, options.kind).map(
    ({ kind, extent: e }) =>
      `${kind === "both" ? "b" : kind === "uid" ? "u" : "g"}:${e.first}:${e.lowerFirst}:${e.count}`,
  );
  return `X-mount.idmap=${entries.join(" ")}\n`;
}
