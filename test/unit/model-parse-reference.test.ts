// parseMapText against a plain transcription of kernel/user_namespace.c:
// map_write's parsing loop (spec §2.2, §2.3). The reference follows the C code
// step by step (memdup_user_nul, strchr for '\n', skip_spaces,
// simple_strtoul into a u64 then a u32, the per-line checks, mappings_overlap
// against every earlier line) with no shortcuts, so the optimised one-pass
// parser is checked against the kernel's rules rather than against itself.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseMapText } from "../../lib/model/index.js";

type RefResult = { ok: true; extents: [number, number, number][] } | { ok: false; rule: string; line: number };

// lib/ctype.c: _S (space) entries, including Latin-1 NBSP.
const KERNEL_SPACE = new Set([9, 10, 11, 12, 13, 32, 0xa0]);
const U64 = (1n << 64n) - 1n;

function referenceParse(input: Uint8Array): RefResult {
  if (input.length >= 4096) return { ok: false, rule: "page_size", line: 0 };
  // memdup_user_nul: a C string.
  const nul = input.indexOf(0);
  const kbuf = nul < 0 ? input : input.subarray(0, nul);
  const extents: [number, number, number][] = [];
  let pos: number | null = 0;
  let lineNo = 0;
  while (pos !== null) {
    lineNo++;
    // next_line = strchr(pos, '\n'); *next_line = '\0'; an empty remainder ends the loop.
    const nl = kbuf.indexOf(10, pos);
    let next: number | null = null;
    let line: Uint8Array;
    if (nl >= 0) {
      line = kbuf.subarray(pos, nl);
      next = nl + 1 < kbuf.length ? nl + 1 : null;
    } else {
      line = kbuf.subarray(pos);
    }
    pos = next;
    const at = (k: number): number => (k < line.length ? line[k]! : 0);
    let k = 0;
    const skipSpaces = () => {
      while (KERNEL_SPACE.has(at(k))) k++;
    };
    const strtoul = (): number => {
      let v = 0n;
      while (at(k) >= 48 && at(k) <= 57) {
        v = (v * 10n + BigInt(at(k) - 48)) & U64;
        k++;
      }
      return Number(v & 0xffffffffn);
    };
    skipSpaces();
    // The model names a line with no field at all separately; the kernel's
    // `goto out` is the same EINVAL.
    if (at(k) === 0) return { ok: false, rule: "empty_line", line: lineNo };
    const first = strtoul();
    if (!KERNEL_SPACE.has(at(k))) return { ok: false, rule: "syntax", line: lineNo };
    skipSpaces();
    const lower = strtoul();
    if (!KERNEL_SPACE.has(at(k))) return { ok: false, rule: "syntax", line: lineNo };
    skipSpaces();
    const count = strtoul();
    if (at(k) !== 0 && !KERNEL_SPACE.has(at(k))) return { ok: false, rule: "syntax", line: lineNo };
    skipSpaces();
    if (at(k) !== 0) return { ok: false, rule: "syntax", line: lineNo };
    if (first === 0xffffffff || lower === 0xffffffff) return { ok: false, rule: "invalid_id", line: lineNo };
    if ((first + count) % 2 ** 32 <= first || (lower + count) % 2 ** 32 <= lower) {
      return { ok: false, rule: "extent_wrap", line: lineNo };
    }
    // mappings_overlap: every earlier extent, upper then lower.
    for (const [pf, pl, pc] of extents) {
      if (pf <= first + count - 1 && pf + pc - 1 >= first) return { ok: false, rule: "mappings_overlap", line: lineNo };
      if (pl <= lower + count - 1 && pl + pc - 1 >= lower) return { ok: false, rule: "mappings_overlap", line: lineNo };
    }
    if (extents.length + 1 === 340 && next !== null) return { ok: false, rule: "max_extents", line: lineNo };
    extents.push([first, lower, count]);
  }
  return { ok: true, extents };
}

function agree(input: string | Uint8Array): void {
  const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input;
  const want = referenceParse(bytes);
  const got = parseMapText(input);
  if (want.ok) {
    expect(got.ok, got.ok ? "" : got.reason).toBe(true);
    if (got.ok) {
      expect(got.map.extents.map((e) => [e.first, e.lowerFirst, e.count])).toEqual(want.extents);
      expect(Object.isFrozen(got.map.extents[0])).toBe(true);
      // The text form, which the parser may take over from canonical input.
      expect(got.map.toString()).toBe(want.extents.map((e) => `${e.join(" ")}\n`).join(""));
    }
  } else {
    expect(got).toMatchObject({ ok: false, errno: "EINVAL", rule: want.rule, line: want.line });
    if (!got.ok && want.line > 0) expect(got.reason.startsWith(`line ${want.line}: `)).toBe(true);
  }
}

// Bytes that matter to the parser, and a few that must not.
const byteArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(48, 49, 50, 51, 53, 57) },
  { weight: 4, arbitrary: fc.constantFrom(32, 9, 10, 11, 12, 13, 0xa0) },
  { weight: 1, arbitrary: fc.constantFrom(0, 0x85, 0xc2, 120, 43, 45) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
);

const numberArb = fc.oneof(
  fc.nat(20).map(String),
  fc.constantFrom("0", "00", "007", "4294967294", "4294967295", "4294967296", "4294967301", "18446744073709551621"),
  fc.bigInt({ min: 0n, max: 10n ** 25n }).map(String),
);
const sepArb = fc.constantFrom(" ", " ", " ", "  ", "\t", "\v", "\f", "\r", " \u00a0", "\u00a0");
const lineArb = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(numberArb, sepArb, numberArb, sepArb, numberArb).map((p) => p.join("")) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom("", " ", "\t"), numberArb, sepArb, numberArb, fc.constantFrom("", " ", "\r", " x", " 1"))
      .map((p) => p.join("")),
  },
  { weight: 1, arbitrary: fc.constantFrom("", " ", "x", "0 0 1 2", "0x1 0 1", "-1 0 1", "1 2 3\u0000junk") },
);
const textArb = fc
  .tuple(fc.array(lineArb, { minLength: 0, maxLength: 8 }), fc.constantFrom("", "\n", "\n\n", "\u0000", " \n"))
  .map(([lines, tail]) => lines.join("\n") + tail);

// Maps near the 340-line limit in ascending, descending or shuffled order,
// some with a clash, a stray trailing line, or padding near 4095 bytes.
const longArb = fc
  .tuple(
    fc.integer({ min: 330, max: 345 }),
    fc.constantFrom("asc", "desc", "shuffled"),
    fc.nat(),
    fc.option(fc.tuple(fc.nat(344), fc.nat(344)), { nil: undefined }),
    fc.constantFrom("", "\n", "\n\n", " \n", "\n1 1"),
    fc.constantFrom(0, 200, 1000),
  )
  .map(([n, order, seed, clash, tail, pad]) => {
    const ids = Array.from({ length: n }, (_, i) => i);
    if (order === "desc") ids.reverse();
    if (order === "shuffled") {
      let x = seed;
      for (let i = n - 1; i > 0; i--) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        const j = x % (i + 1);
        [ids[i], ids[j]] = [ids[j]!, ids[i]!];
      }
    }
    if (clash) ids[clash[0] % n] = clash[1] % n;
    const lines = ids.map((i) => `${i * 3} ${i * 3 + 1000} ${1 + (i % 3)}`);
    return lines.join("\n") + tail + " ".repeat(pad);
  });

// Text that is nearly the canonical `first lower count\n` form, whose map text
// the parser may take over unformatted: it must notice leading zeros and
// values past 2^32.
const nearCanonicalArb = fc
  .array(
    fc
      .tuple(fc.nat(3), fc.nat(3), fc.nat(3))
      .chain(([a, b, c]) =>
        fc.tuple(
          fc.constantFrom(`${a * 10}`, `0${a * 10}`, `${a * 10 + 4294967296}`),
          fc.constantFrom(`${b * 10}`, `0${b * 10}`),
          fc.constantFrom(`${c + 1}`, `0${c + 1}`),
        ),
      ),
    { minLength: 1, maxLength: 4 },
  )
  .chain((lines) => fc.constantFrom("", "\n").map((tail) => lines.map((l) => l.join(" ")).join("\n") + tail));

describe("parseMapText agrees with a plain transcription of map_write's parser", () => {
  it("on random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 48 }), (b) => agree(b)),
      { numRuns: 1500 },
    );
    fc.assert(
      fc.property(fc.array(byteArb, { maxLength: 64 }), (b) => agree(Uint8Array.from(b))),
      { numRuns: 3000 },
    );
  });

  it("on line-structured text with adversarial numbers and separators", () => {
    fc.assert(
      fc.property(textArb, (t) => agree(t)),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(textArb, (t) => agree(new TextEncoder().encode(t))),
      { numRuns: 500 },
    );
  });

  it("on strings with any UTF-16 code units (lone surrogates included)", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(lineArb, fc.string({ unit: "binary", maxLength: 4 })), { maxLength: 5 }), (parts) =>
        agree(parts.join("\n")),
      ),
      { numRuns: 1500 },
    );
  });

  it("on nearly canonical text", () => {
    fc.assert(
      fc.property(nearCanonicalArb, (t) => agree(t)),
      { numRuns: 1000 },
    );
  });

  it("on maps near 340 lines and 4095 bytes, in any order", () => {
    fc.assert(
      fc.property(longArb, (t) => agree(t)),
      { numRuns: 200 },
    );
  });

  it.each([
    ["canonical 340 lines", Array.from({ length: 340 }, (_, i) => `${i * 3} ${i * 3 + 1000} 2`).join("\n")],
    ["leading zeros", "010 0 01\n"],
    ["a value past 2^32", "4294967306 0 1"],
    ["a NUL right after the last newline", "0 0 1\n\u0000"],
    ["a NUL after a canonical line", "0 0 1\u0000"],
    ["4095 bytes of padding", `0 0 1${" ".repeat(4090)}`],
    ["4096 bytes", `0 0 1${" ".repeat(4091)}`],
    ["out of order, fitting a gap", "0 0 1\n10 10 1\n5 5 1\n4 6 1"],
    ["out of order, meeting a later neighbour", "0 0 1\n10 10 5\n5 5 6"],
  ])("%s", (_n, t) => agree(t));
});
