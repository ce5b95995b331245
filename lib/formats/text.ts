/**
 * Small scanning helpers shared by the text formats: lines with numbers,
 * whitespace tokens with columns, strict decimal u32 fields.
 */
import { type Extent, extent } from "../model/extent.js";
import { U32_RANGE } from "../model/u32.js";
import { FormatError } from "./errors.js";

/** One line of input with its 1-based number. */
export interface Line {
  readonly text: string;
  readonly line: number;
}

/** A whitespace-separated token with its 1-based line and column. */
export interface Token {
  readonly text: string;
  readonly line: number;
  readonly column: number;
}

/** Splits on `\n`; a `\r` before it is dropped. A final empty line after a trailing newline is dropped. */
export function splitLines(text: string): Line[] {
  const raw = text.split("\n");
  if (raw.length > 1 && raw[raw.length - 1] === "") raw.pop();
  return raw.map((t, i) => ({ text: t.endsWith("\r") ? t.slice(0, -1) : t, line: i + 1 }));
}

/** Whitespace tokens of one line (space, tab, \v, \f, \r), with columns. */
export function tokenize(line: Line): Token[] {
  const out: Token[] = [];
  const re = /[^ \t\v\f\r]+/g;
  for (let m = re.exec(line.text); m !== null; m = re.exec(line.text)) {
    out.push({ text: m[0], line: line.line, column: m.index + 1 });
  }
  return out;
}

/** Whitespace tokens of a whole text, across lines. */
export function tokenizeAll(text: string): Token[] {
  return splitLines(text).flatMap((l) => tokenize(l));
}

/** Comment line (`#` first non-blank) or blank line. */
export function isBlankOrComment(line: Line): boolean {
  const t = line.text.trim();
  return t === "" || t.startsWith("#");
}

/** A place to report: line and column of `tok` plus an offset inside it. */
export function at(tok: { line: number; column: number }, offset = 0): { line: number; column: number } {
  return { line: tok.line, column: tok.column + offset };
}

/**
 * A strict decimal u32: digits only (no sign, no `0x`, no spaces), at most
 * 4294967295. The kernel would silently truncate wider values (spec §2.2);
 * an interop tool refuses them instead.
 */
export function parseU32(
  format: string,
  text: string,
  what: string,
  where: { line?: number; column?: number; pointer?: string; token?: number },
): number {
  if (!/^[0-9]+$/.test(text)) throw u32Error(format, "number", text, what, where);
  const n = Number(text);
  if (text.length > 10 || n >= U32_RANGE) throw u32Error(format, "range", text, what, where);
  return n;
}

/** The error for a field that is not a strict decimal u32 (`number`: not digits; `range`: wider than 32 bits). */
export function u32Error(
  format: string,
  problem: "number" | "range",
  text: string,
  what: string,
  where: { line?: number; column?: number; pointer?: string; token?: number },
): FormatError {
  return problem === "number"
    ? new FormatError(format, "parse", `${what}: expected a decimal number, got ${JSON.stringify(text)}`, where)
    : new FormatError(format, "parse", `${what}: ${text} does not fit in 32 bits (largest id is 4294967295)`, where);
}

/**
 * An extent from parsed fields: count ≥ 1 and the range's last id within u32.
 * Everything else (4294967295 as an id, overlaps, the 340-line limit) is the
 * model's map-write validation, not the format's.
 */
export function makeExtent(
  format: string,
  first: number,
  lowerFirst: number,
  count: number,
  where: { line?: number; column?: number; pointer?: string; token?: number },
): Extent {
  if (count === 0) throw new FormatError(format, "parse", "count must be at least 1", where);
  if (first + count > U32_RANGE || lowerFirst + count > U32_RANGE) {
    throw new FormatError(format, "parse", `range ${first}/${lowerFirst} + ${count} runs past id 4294967295`, where);
  }
  return extent(first, lowerFirst, count);
}

/** What {@link readIdTriple} found: three u32 fields with their offsets, or the first problem. */
export type IdTriple =
  | { readonly ok: true; readonly values: [number, number, number]; readonly offsets: [number, number, number] }
  | { readonly ok: false; readonly problem: "shape"; readonly fields: number }
  | {
      readonly ok: false;
      readonly problem: "number" | "range";
      /** Which field (0, 1, 2), its text and its offset in the input. */
      readonly field: 0 | 1 | 2;
      readonly text: string;
      readonly offset: number;
    };

/**
 * The one reader of `a:b:c` id triples (util-linux `--map-users`, `X-mount.idmap` items, `userns mount
 * --map-users`, the pre-2.39 `a,b,c` with `sep` ","): exactly three fields, each a strict decimal u32 (digits
 * only, at most 4294967295, as {@link parseU32}). It returns what it found instead of throwing, so each front end
 * words the error its own way (a positioned FormatError, a CLI usage error).
 */
export function readIdTriple(text: string, sep = ":"): IdTriple {
  const parts = text.split(sep);
  if (parts.length !== 3) return { ok: false, problem: "shape", fields: parts.length };
  const offsets: [number, number, number] = [0, parts[0]!.length + 1, parts[0]!.length + parts[1]!.length + 2];
  const values: number[] = [];
  for (const i of [0, 1, 2] as const) {
    const p = parts[i]!;
    if (!/^[0-9]+$/.test(p)) return { ok: false, problem: "number", field: i, text: p, offset: offsets[i] };
    if (p.length > 10 || Number(p) >= U32_RANGE)
      return { ok: false, problem: "range", field: i, text: p, offset: offsets[i] };
    values.push(Number(p));
  }
  return { ok: true, values: values as [number, number, number], offsets };
}
