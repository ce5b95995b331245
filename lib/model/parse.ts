/**
 * Parsing map text exactly as kernel/user_namespace.c: map_write does
 * (spec §2.2 and §2.3): bytes, a NUL ends the input, lines split on `\n`,
 * `skip_spaces` + `simple_strtoul(…, 10)` per field, u64 → u32 truncation,
 * then the per-line checks in the kernel's order.
 */
import type { Extent } from "./extent.js";
import { IdMap, MAX_EXTENTS } from "./idmap.js";
import { INVALID_ID, U32_RANGE } from "./u32.js";

/** PAGE_SIZE on x86_64: map_write refuses `count >= PAGE_SIZE`. */
export const PAGE_SIZE = 4096;

/** The rules a parse can fail, each named after the kernel check it mirrors. */
export type ParseRule =
  /** `count >= PAGE_SIZE` (map_write). */
  | "page_size"
  /** A line with no fields at all (empty or only whitespace): `simple_strtoul` stops on `\0`. */
  | "empty_line"
  /** A field is not decimal digits, a field is missing, or junk follows the third field. */
  | "syntax"
  /** `first == (u32)-1` or `lower_first == (u32)-1`. */
  | "invalid_id"
  /** `first + count <= first` or `lower_first + count <= lower_first` in u32: count 0 or a range reaching 2^32. */
  | "extent_wrap"
  /** mappings_overlap: the upper or lower range meets an earlier line's. */
  | "mappings_overlap"
  /** The 340th extent is followed by more text (UID_GID_MAP_MAX_EXTENTS). */
  | "max_extents";

/** Parse outcome: the map as written (lower values still in the parent's ids), or the first failing rule. */
export type ParseResult =
  | { ok: true; map: IdMap }
  | { ok: false; errno: "EINVAL"; rule: ParseRule; line: number; reason: string };

const encoder = new TextEncoder();

/** Bytes the kernel would receive for this input: strings are UTF-8 encoded. */
export function toBytes(input: string | Uint8Array): Uint8Array {
  return typeof input === "string" ? encoder.encode(input) : input;
}

/** Mirrors the kernel's isspace (lib/ctype.c): \t \n \v \f \r, space and 0xA0 (Latin-1 NBSP is _S in _ctype). */
export function kernelIsspace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13) || c === 0xa0;
}

function showByte(c: number | undefined): string {
  if (c === undefined || c === 0) return "end of line";
  if (c >= 0x21 && c < 0x7f) return `'${String.fromCharCode(c)}'`;
  return `byte 0x${c.toString(16).padStart(2, "0")}`;
}

function range(first: number, count: number): string {
  return count === 1 ? `${first}` : `${first}-${first + count - 1}`;
}

function fail(rule: ParseRule, line: number, reason: string): ParseResult {
  return { ok: false, errno: "EINVAL", rule, line, reason: line > 0 ? `line ${line}: ${reason}` : reason };
}

/** Mirrors mappings_overlap: the index of an earlier extent whose upper or lower range meets e's, and which side. */
export function mappingsOverlap(
  earlier: readonly Extent[],
  e: Extent,
): { index: number; side: "upper" | "lower" } | undefined {
  const upLast = e.first + e.count - 1;
  const lowLast = e.lowerFirst + e.count - 1;
  for (let i = 0; i < earlier.length; i++) {
    const p = earlier[i]!;
    if (p.first <= upLast && p.first + p.count - 1 >= e.first) return { index: i, side: "upper" };
    if (p.lowerFirst <= lowLast && p.lowerFirst + p.count - 1 >= e.lowerFirst) return { index: i, side: "lower" };
  }
  return undefined;
}

/** Mirrors the wrap check in map_write: `(a + count) mod 2^32 <= a` (count 0, or the range reaches 2^32). */
export function extentWraps(start: number, count: number): boolean {
  const sum = start + count;
  return (sum >= U32_RANGE ? sum - U32_RANGE : sum) <= start;
}

/** True when [first, first+count-1] meets a range of the sorted, disjoint list (starts[], lasts[]); inserts it otherwise. */
function meetsOrInsert(starts: number[], lasts: number[], first: number, last: number): boolean {
  let lo = 0;
  let hi = starts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (starts[mid]! <= first) lo = mid + 1;
    else hi = mid;
  }
  // lo = the first range starting after `first`; the one before may reach it.
  if (lo > 0 && lasts[lo - 1]! >= first) return true;
  if (lo < starts.length && starts[lo]! <= last) return true;
  if (lo === starts.length) {
    starts.push(first);
    lasts.push(last);
  } else {
    starts.splice(lo, 0, first);
    lasts.splice(lo, 0, last);
  }
  return false;
}

const FIELD_NAMES = ["first", "lower", "count"] as const;

/**
 * Parses map text as map_write does, for any bytes; never throws. Strings are
 * UTF-8 encoded first. On success the map holds the extents in written order
 * with the lower values as written (not yet translated to kuids).
 */
export function parseMapText(input: string | Uint8Array): ParseResult {
  const buf = toBytes(input);
  if (buf.length >= PAGE_SIZE) {
    return fail(
      "page_size",
      0,
      `the text is ${buf.length} bytes; the kernel takes at most ${PAGE_SIZE - 1} in one write`,
    );
  }
  // memdup_user_nul: the kernel sees a C string that ends at the first NUL.
  let end = buf.indexOf(0);
  if (end < 0) end = buf.length;

  const extents: Extent[] = [];
  // Sorted disjoint upper and lower ranges seen so far: overlap detection in O(log n) per line;
  // the kernel's linear mappings_overlap scan only runs to name the earlier line.
  const upStarts: number[] = [];
  const upLasts: number[] = [];
  const lowStarts: number[] = [];
  const lowLasts: number[] = [];
  const vals = [0, 0, 0];
  let pos = 0;
  let lineNo = 0;
  for (;;) {
    lineNo++;
    let lineEnd = pos;
    while (lineEnd < end && buf[lineEnd] !== 10) lineEnd++;
    let more: boolean;
    if (lineEnd >= end) {
      lineEnd = end;
      more = false;
    } else {
      // A `\n` that is the very last character ends the input instead of starting an empty line.
      more = lineEnd + 1 < end;
    }
    let p = pos;
    while (p < lineEnd && kernelIsspace(buf[p]!)) p++;
    if (p === lineEnd) {
      return fail("empty_line", lineNo, "the line is empty; every line needs three numbers: first lower count");
    }
    for (let f = 0; f < 3; f++) {
      if (f > 0) while (p < lineEnd && kernelIsspace(buf[p]!)) p++;
      // simple_strtoul(p, &p, 10) reduced mod 2^32: the u64 result's low 32 bits depend only on them.
      const startP = p;
      let v = 0;
      while (p < lineEnd) {
        const c = buf[p]!;
        if (c < 48 || c > 57) break;
        v = v * 10 + (c - 48);
        if (v >= U32_RANGE) v %= U32_RANGE;
        p++;
      }
      const c = p < lineEnd ? buf[p]! : 0;
      if (f < 2 ? !kernelIsspace(c) : c !== 0 && !kernelIsspace(c)) {
        const name = FIELD_NAMES[f]!;
        if (p === startP && c !== 0) {
          return fail(
            "syntax",
            lineNo,
            `the ${name} field starts with ${showByte(c)}; only decimal digits are accepted`,
          );
        }
        if (p === startP || c === 0) {
          return fail("syntax", lineNo, `the ${name} field is missing; expected three numbers: first lower count`);
        }
        return fail(
          "syntax",
          lineNo,
          `unexpected ${showByte(c)} in the ${name} field; only decimal digits are accepted`,
        );
      }
      vals[f] = v;
    }
    while (p < lineEnd && kernelIsspace(buf[p]!)) p++;
    if (p < lineEnd) {
      return fail("syntax", lineNo, `unexpected ${showByte(buf[p])} after the count; a line has exactly three fields`);
    }
    const first = vals[0]!;
    const lower = vals[1]!;
    const count = vals[2]!;
    if (first === INVALID_ID || lower === INVALID_ID) {
      const which = first === INVALID_ID ? "first" : "lower";
      return fail("invalid_id", lineNo, `${which} id 4294967295 is (u32)-1, which is never a valid id`);
    }
    if (extentWraps(first, count) || extentWraps(lower, count)) {
      if (count === 0) {
        return fail("extent_wrap", lineNo, "count is 0 (missing or zero); a line must map at least one id");
      }
      const which = extentWraps(first, count) ? `inside ids from ${first}` : `outside ids from ${lower}`;
      return fail("extent_wrap", lineNo, `${which} with count ${count} reach past 4294967294, the last usable id`);
    }
    // IdMap.from freezes its own copies.
    const e: Extent = { first, lowerFirst: lower, count };
    if (
      meetsOrInsert(upStarts, upLasts, first, first + count - 1) ||
      meetsOrInsert(lowStarts, lowLasts, lower, lower + count - 1)
    ) {
      const ov = mappingsOverlap(extents, e)!;
      const o = extents[ov.index]!;
      const [mine, theirs] =
        ov.side === "upper"
          ? [range(first, count), range(o.first, o.count)]
          : [range(lower, count), range(o.lowerFirst, o.count)];
      const side = ov.side === "upper" ? "inside" : "outside";
      const what = count === 1 ? `${side} id ${mine} overlaps` : `${side} ids ${mine} overlap`;
      return fail("mappings_overlap", lineNo, `${what} line ${ov.index + 1}'s ${theirs}`);
    }
    if (extents.length + 1 === MAX_EXTENTS && more) {
      return fail(
        "max_extents",
        lineNo,
        `text follows the ${MAX_EXTENTS}th line; a map has at most ${MAX_EXTENTS} lines`,
      );
    }
    extents.push(e);
    if (!more) break;
    pos = lineEnd + 1;
  }
  return { ok: true, map: IdMap.from(extents) };
}
