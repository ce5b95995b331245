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
  | {
      ok: false;
      errno: "EINVAL";
      rule: ParseRule;
      /** 1-based line of the refusal; 0 when it concerns the whole text (`page_size`). */
      line: number;
      /** 1-based byte column in that line where the refused field or byte starts; 0 with line 0. */
      column: number;
      reason: string;
    };

const encoder = new TextEncoder();

/** Bytes the kernel would receive for this input: strings are UTF-8 encoded. */
export function toBytes(input: string | Uint8Array): Uint8Array {
  return typeof input === "string" ? encoder.encode(input) : input;
}

// UTF-8 needs at most 3 bytes per UTF-16 code unit, so a string shorter than
// PAGE_SIZE always fits; longer ones are refused by length anyway.
const scratchBytes = new Uint8Array(PAGE_SIZE * 3);

/**
 * @internal The UTF-8 bytes of `input` without allocating: for a string short
 * enough to be accepted, a view of a buffer shared by every call, valid only
 * until the next call. For the model's own single-pass users (map_write).
 */
export function transientBytes(input: string | Uint8Array): Uint8Array {
  if (typeof input !== "string") return input;
  if (input.length >= PAGE_SIZE) return encoder.encode(input);
  return scratchBytes.subarray(0, encoder.encodeInto(input, scratchBytes).written);
}

// The kernel's isspace (lib/ctype.c _S entries) as a byte table.
const SPACE = new Uint8Array(256);
for (const c of [9, 10, 11, 12, 13, 32, 0xa0]) SPACE[c] = 1;

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

function fail(rule: ParseRule, line: number, column: number, reason: string): ParseResult {
  return { ok: false, errno: "EINVAL", rule, line, column, reason: line > 0 ? `line ${line}: ${reason}` : reason };
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
  // No float modulo: it is the slowest operation on this path.
  const sum = start + count;
  return (sum >= U32_RANGE ? sum - U32_RANGE : sum) <= start;
}

/**
 * Sorted, pairwise-disjoint inclusive intervals, for the overlap test of each
 * line. The kernel compares each line with every earlier one
 * (mappings_overlap, O(n²)); the answer is the same because earlier ranges
 * never overlap each other, so only the neighbours of a new range can meet it.
 * Maps are usually written in ascending order: a range past the last interval
 * is then checked and appended in O(1), any other takes a binary search and an
 * insertion. The storage holds one map's lines and is reused by every parse.
 */
class Intervals {
  private readonly starts = new Float64Array(MAX_EXTENTS);
  private readonly ends = new Float64Array(MAX_EXTENTS);
  /** Number of intervals held. */
  n = 0;

  /** True when [start, end] meets a held interval; otherwise adds it and returns false. */
  meetsOrAdd(start: number, end: number): boolean {
    const n = this.n;
    const starts = this.starts;
    const ends = this.ends;
    if (n === 0 || start > ends[n - 1]!) {
      starts[n] = start;
      ends[n] = end;
      this.n = n + 1;
      return false;
    }
    // i: the first interval whose start is > start.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid]! <= start) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0 && ends[lo - 1]! >= start) return true;
    if (lo < n && starts[lo]! <= end) return true;
    starts.copyWithin(lo + 1, lo, n);
    ends.copyWithin(lo + 1, lo, n);
    starts[lo] = start;
    ends[lo] = end;
    this.n = n + 1;
    return false;
  }
}

// Reused by every parse (a parse never re-enters): the lines' values as
// `first, lower, count` rows, and the overlap index of each side.
const rows = new Uint32Array(MAX_EXTENTS * 3);
// U32_RANGE as a constant of this module: the digit loop compares with it at
// every byte, and a local constant is cheaper there than the imported binding.
const TWO_32 = 0x1_0000_0000;
const uppers = new Intervals();
// The 1-based byte column where each field of the current line starts.
const fieldColumns = new Uint32Array(3);
const lowers = new Intervals();

const FIELD_NAMES = ["first", "lower", "count"] as const;

function fieldError(f: number, lineNo: number, column: number, c: number, empty: boolean): ParseResult {
  const name = FIELD_NAMES[f];
  if (empty && c !== 0) {
    return fail(
      "syntax",
      lineNo,
      column,
      `the ${name} field starts with ${showByte(c)}; only decimal digits are accepted`,
    );
  }
  if (empty || c === 0) {
    // Not empty: this field was read and the line ended right after it, so the next one is missing.
    const missing = empty ? name : FIELD_NAMES[f + 1];
    return fail("syntax", lineNo, column, `the ${missing} field is missing; expected three numbers: first lower count`);
  }
  return fail(
    "syntax",
    lineNo,
    column,
    `unexpected ${showByte(c)} in the ${name} field; only decimal digits are accepted`,
  );
}

function overlapError(
  n: number,
  lineNo: number,
  columns: Uint32Array,
  first: number,
  lower: number,
  count: number,
): ParseResult {
  const earlier: Extent[] = [];
  for (let i = 0; i < n * 3; i += 3) earlier.push({ first: rows[i]!, lowerFirst: rows[i + 1]!, count: rows[i + 2]! });
  // Name the line the kernel's own scan would meet first.
  const ov = mappingsOverlap(earlier, { first, lowerFirst: lower, count })!;
  const o = earlier[ov.index]!;
  const [mine, theirs] =
    ov.side === "upper"
      ? [range(first, count), range(o.first, o.count)]
      : [range(lower, count), range(o.lowerFirst, o.count)];
  const side = ov.side === "upper" ? "inside" : "outside";
  const what = count === 1 ? `${side} id ${mine} overlaps` : `${side} ids ${mine} overlap`;
  return fail(
    "mappings_overlap",
    lineNo,
    columns[ov.side === "upper" ? 0 : 1]!,
    `${what} line ${ov.index + 1}'s ${theirs}`,
  );
}

/**
 * Parses map text as map_write does, for any bytes; never throws. Strings are
 * UTF-8 encoded first. On success the map holds the extents in written order
 * with the lower values as written (not yet translated to kuids).
 */
export function parseMapText(input: string | Uint8Array): ParseResult {
  return typeof input === "string" ? parseMapBytes(transientBytes(input), input) : parseMapBytes(input, undefined);
}

/**
 * Parses a map as the kernel prints it in /proc/PID/uid_map (`%10u %10u %10u` lines): the same lines map_write
 * takes, but with no one-write size limit, since 340 padded lines (11,220 bytes) are more than one page.
 */
export function parseReadbackText(input: string): ParseResult {
  return parseMapBytes(transientBytes(input), input, true);
}

/**
 * @internal {@link parseMapText} over bytes (`readBack`: the text was read from /proc, not written, so the
 * page-size limit of one write does not apply). `source` is the string the bytes
 * were encoded from, if any: when it is already in the canonical
 * `first lower count\n` form it becomes the map's text without formatting it
 * again.
 */
export function parseMapBytes(buf: Uint8Array, source: string | undefined, readBack = false): ParseResult {
  const len = buf.length;
  if (len >= PAGE_SIZE && !readBack) {
    return fail("page_size", 0, 0, `the text is ${len} bytes; the kernel takes at most ${PAGE_SIZE - 1} in one write`);
  }
  // Whether the bytes so far are exactly what IdMap.toString would print.
  let canon = source !== undefined;
  uppers.n = 0;
  lowers.n = 0;
  // One pass over the bytes. The kernel first cuts the text at each `\n` and
  // then parses the line; stopping every scan at `\n` (which isspace would
  // otherwise skip) gives the same result without a separate search. `c` is
  // the byte at `p`, or 0 past the end: like memdup_user_nul's C string, the
  // text ends at the first NUL, and reading one ends every scan.
  let p = 0;
  let n = 0;
  let c = len > 0 ? buf[0]! : 0;
  // Where the current line starts, for the columns of a refusal.
  let lineStart = 0;
  for (;;) {
    const lineNo = n + 1;
    if (c !== 10 && SPACE[c] === 1) {
      canon = false;
      do c = ++p < len ? buf[p]! : 0;
      while (c !== 10 && SPACE[c] === 1);
    }
    if (c === 0 || c === 10) {
      return fail(
        "empty_line",
        lineNo,
        p - lineStart + 1,
        "the line is empty; every line needs three numbers: first lower count",
      );
    }
    const row = n * 3;
    for (let f = 0; f < 3; f++) {
      const startP = p;
      fieldColumns[f] = p - lineStart + 1;
      // simple_strtoul(p, &p, 10) reduced mod 2^32: exact, since the u64
      // result's low 32 bits depend only on the low 32 bits at each step.
      let v = 0;
      while (c >= 48 && c <= 57) {
        v = v * 10 + (c - 48);
        if (v >= TWO_32) {
          v %= TWO_32;
          canon = false;
        }
        c = ++p < len ? buf[p]! : 0;
      }
      if (f < 2 ? c === 10 || SPACE[c] === 0 : c !== 0 && SPACE[c] === 0) {
        return fieldError(f, lineNo, p - lineStart + 1, c === 10 ? 0 : c, p === startP);
      }
      if (p - startP > 1 && buf[startP] === 48) canon = false;
      rows[row + f] = v;
      // skip_spaces, stopping at the line's end.
      if (c !== 10 && SPACE[c] === 1) {
        if (f === 2 || c !== 32) canon = false;
        c = ++p < len ? buf[p]! : 0;
        if (c !== 10 && SPACE[c] === 1) {
          canon = false;
          do c = ++p < len ? buf[p]! : 0;
          while (c !== 10 && SPACE[c] === 1);
        }
      }
    }
    if (c !== 0 && c !== 10) {
      return fail(
        "syntax",
        lineNo,
        p - lineStart + 1,
        `unexpected ${showByte(c)} after the count; a line has exactly three fields`,
      );
    }
    // A `\n` that is the very last character ends the input instead of starting an empty line.
    const more = c === 10 && p + 1 < len && buf[p + 1] !== 0;
    const first = rows[row]!;
    const lower = rows[row + 1]!;
    const count = rows[row + 2]!;
    if (first === INVALID_ID || lower === INVALID_ID) {
      const which = first === INVALID_ID ? "first" : "lower";
      return fail(
        "invalid_id",
        lineNo,
        fieldColumns[first === INVALID_ID ? 0 : 1]!,
        `${which} id 4294967295 is (u32)-1, which is never a valid id`,
      );
    }
    if (extentWraps(first, count) || extentWraps(lower, count)) {
      if (count === 0) {
        return fail(
          "extent_wrap",
          lineNo,
          fieldColumns[2]!,
          "count is 0 (missing or zero); a line must map at least one id",
        );
      }
      const which = extentWraps(first, count) ? `inside ids from ${first}` : `outside ids from ${lower}`;
      return fail(
        "extent_wrap",
        lineNo,
        fieldColumns[2]!,
        `${which} with count ${count} reach past 4294967294, the last usable id`,
      );
    }
    // Both indexes are discarded on any refusal, so adding while testing is safe.
    if (uppers.meetsOrAdd(first, first + count - 1) || lowers.meetsOrAdd(lower, lower + count - 1)) {
      return overlapError(n, lineNo, fieldColumns, first, lower, count);
    }
    if (lineNo === MAX_EXTENTS && more) {
      return fail(
        "max_extents",
        lineNo,
        p - lineStart + 1,
        `text follows the ${MAX_EXTENTS}th line; a map has at most ${MAX_EXTENTS} lines`,
      );
    }
    n++;
    if (!more) {
      // A NUL ended the text early: the input is not the map's text.
      if (p + (c === 10 ? 1 : 0) !== len) canon = false;
      break;
    }
    c = buf[++p]!;
    lineStart = p;
  }
  const extents: Extent[] = [];
  for (let i = 0; i < n * 3; i += 3) {
    extents.push(Object.freeze({ first: rows[i]!, lowerFirst: rows[i + 1]!, count: rows[i + 2]! }));
  }
  const text = canon ? (source!.charCodeAt(len - 1) === 10 ? source! : `${source!}\n`) : undefined;
  return { ok: true, map: IdMap.fromValidated(extents, text) };
}
