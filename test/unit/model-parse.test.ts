import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type Extent,
  IdMap,
  kernelIsspace,
  MAX_EXTENTS,
  mappingsOverlap,
  parseMapText,
  parseReadbackText,
} from "../../lib/model/index.js";
import { formatProcMapLine } from "../../lib/model/readback.js";

const ok = (text: string | Uint8Array) => {
  const r = parseMapText(text);
  if (!r.ok) throw new Error(`expected ok, got ${r.rule}: ${r.reason}`);
  return r.map.extents.map((e) => [e.first, e.lowerFirst, e.count]);
};

describe("parseMapText accepts what map_write accepts (spec §2.2)", () => {
  it.each<[string, string | Uint8Array, number[][]]>([
    ["one line with newline", "0 100000 65536\n", [[0, 100000, 65536]]],
    ["no final newline", "0 100000 65536", [[0, 100000, 65536]]],
    ["tabs, \\v, \\f, \\r separate fields", "\t0\v1\f2\r\n", [[0, 1, 2]]],
    [
      "leading and trailing whitespace; \\r\\n line ends",
      "  0 1 2  \r\n3 4 5\r\n",
      [
        [0, 1, 2],
        [3, 4, 5],
      ],
    ],
    ["leading zeros are decimal", "010 0 1", [[10, 0, 1]]],
    ["rule 9: values wrap modulo 2^32", "4294967296 0 1", [[0, 0, 1]]],
    ["2^32+5 becomes 5", "4294967301 0 1", [[5, 0, 1]]],
    ["beyond 2^64 the u64 wraps too (kernel: 2^64+5 → 5)", "18446744073709551621 7 1", [[5, 7, 1]]],
    ["everything after a NUL is ignored", "0 0 1\n\u00001 1 1\n", [[0, 0, 1]]],
    ["a NUL right after the digits ends the line", "0 0 1\u0000junk", [[0, 0, 1]]],
    ["byte 0xA0 is kernel whitespace (lib/ctype.c)", new Uint8Array([0x30, 0xa0, 0x35, 0x20, 0x31]), [[0, 5, 1]]],
    ["rule 11: 0 0 4294967295 is the largest map", "0 0 4294967295", [[0, 0, 4294967295]]],
    [
      "rule 12: adjacent ranges are fine",
      "0 1000 10\n10 1010 10",
      [
        [0, 1000, 10],
        [10, 1010, 10],
      ],
    ],
    [
      "upper is not compared with lower (swap)",
      "0 10 10\n10 0 10",
      [
        [0, 10, 10],
        [10, 0, 10],
      ],
    ],
    [
      "descending order is fine",
      "20 20 1\n10 10 1\n0 0 1",
      [
        [20, 20, 1],
        [10, 10, 1],
        [0, 0, 1],
      ],
    ],
  ])("%s", (_n, text, want) => {
    expect(ok(text)).toEqual(want);
  });

  it("rule 4: 4095 bytes are accepted", () => {
    const text = `0 0 1${" ".repeat(4095 - 6)}\n`;
    expect(text.length).toBe(4095);
    expect(parseMapText(text).ok).toBe(true);
  });

  it("rule 13: 340 lines are accepted, with or without a final newline", () => {
    const lines = Array.from({ length: MAX_EXTENTS }, (_, i) => `${i} ${i} 1`);
    expect(parseMapText(`${lines.join("\n")}\n`).ok).toBe(true);
    expect(parseMapText(lines.join("\n")).ok).toBe(true);
  });
});

describe("parseMapText refuses what map_write refuses, naming the rule (spec §2.2, §2.3)", () => {
  it.each<[string, string | Uint8Array, string, number]>([
    ["rule 4: 4096 bytes", `0 0 1${" ".repeat(4090)}\n`, "page_size", 0],
    ["rule 7: an empty buffer", "", "empty_line", 1],
    ["rule 7: an empty line at the end", "0 0 1\n\n", "empty_line", 2],
    ["rule 7: an empty line first", "\n0 0 1\n", "empty_line", 1],
    ["rule 7: a whitespace-only line", "0 0 1\n  \t\n1 1 1", "empty_line", 2],
    ["rule 7: a NUL first", "\u00000 0 1", "empty_line", 1],
    ["rule 8: hex", "0x10 0 1", "syntax", 1],
    ["rule 8: plus sign", "+1 0 1", "syntax", 1],
    ["rule 8: minus sign", "-1 0 1", "syntax", 1],
    ["rule 8: a fourth field", "0 0 1 2", "syntax", 1],
    ["rule 8: trailing junk", "0 0 1x", "syntax", 1],
    ["rule 8: two fields", "0 0", "syntax", 1],
    ["a UTF-8 NBSP (C2 A0) is not whitespace", "0\u00a05 1", "syntax", 1],
    ["byte 0x85 is not whitespace", new Uint8Array([0x30, 0x85, 0x35, 0x20, 0x31]), "syntax", 1],
    ["rule 11: a trailing separator leaves count 0", "0 0 ", "extent_wrap", 1],
    ["rule 10: first is 4294967295", "4294967295 0 1", "invalid_id", 1],
    ["rule 10: lower is 4294967295", "0 4294967295 1", "invalid_id", 1],
    ["rule 10: 10^100-1 wraps to 4294967295", `${"9".repeat(100)} 7 1`, "invalid_id", 1],
    ["rule 11: count 0", "0 0 0", "extent_wrap", 1],
    ["rule 11: upper range reaches 2^32", "4294967294 0 2", "extent_wrap", 1],
    ["rule 11: 1 0 4294967295", "1 0 4294967295", "extent_wrap", 1],
    ["rule 11: lower range reaches 2^32", "0 4294967294 2", "extent_wrap", 1],
    ["rule 12: overlapping upper ranges", "0 1000 10\n5 2000 10", "mappings_overlap", 2],
    ["rule 12: overlapping lower ranges", "0 1000 10\n100 1005 10", "mappings_overlap", 2],
    ["rule 12: a duplicate line", "0 0 1\n0 0 1", "mappings_overlap", 2],
    ["invalid id is checked before syntax of later lines", "4294967295 0 1\nbad", "invalid_id", 1],
  ])("%s → EINVAL %s", (_n, text, rule, line) => {
    const r = parseMapText(text);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.errno).toBe("EINVAL");
      expect(r.rule).toBe(rule);
      expect(r.line).toBe(line);
    }
  });

  it("rule 13: 341 lines fail at line 340 (more text follows the 340th)", () => {
    const lines = Array.from({ length: 341 }, (_, i) => `${i} ${i} 1`);
    const r = parseMapText(lines.join("\n"));
    expect(r).toMatchObject({ ok: false, rule: "max_extents", line: 340 });
  });

  it("rule 13: even an empty line after the 340th is caught by the extent limit first", () => {
    const lines = Array.from({ length: 340 }, (_, i) => `${i} ${i} 1`);
    expect(parseMapText(`${lines.join("\n")}\n\n`)).toMatchObject({ ok: false, rule: "max_extents", line: 340 });
  });

  it("reasons name the line and the ranges", () => {
    const r = parseMapText("0 100 100\n150 200 100\n");
    expect(r.ok).toBe(true);
    expect(parseMapText("100 0 100\n150 200 100\n")).toMatchObject({
      reason: "line 2: inside ids 150-249 overlap line 1's 100-199",
    });
    expect(parseMapText("0 0 10\n100 5 1")).toMatchObject({ reason: "line 2: outside id 5 overlaps line 1's 0-9" });
  });
});

describe("parseMapText properties", () => {
  it("kernelIsspace is exactly 9-13, 32 and 160", () => {
    const set = [...Array(256).keys()].filter(kernelIsspace);
    expect(set).toEqual([9, 10, 11, 12, 13, 32, 160]);
  });

  it("is total: any bytes give a result, never an exception", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        const r = parseMapText(b);
        expect(typeof r.ok).toBe("boolean");
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(..."0123456789 \t\n\r\v\f\u0000x-+".split("")), { maxLength: 40 }),
        (chars) => {
          const r = parseMapText(chars.join(""));
          expect(typeof r.ok).toBe("boolean");
        },
      ),
      { numRuns: 2000 },
    );
  });

  // Non-overlapping maps of 1..340 extents near the u32 edges, in random order.
  const mapArb = fc
    .array(fc.tuple(fc.integer({ min: 1, max: 1 << 20 }), fc.nat(1 << 20), fc.nat(1 << 20)), {
      minLength: 1,
      maxLength: MAX_EXTENTS,
    })
    .chain((specs) => {
      let up = 0;
      let low = 0;
      const triples: [number, number, number][] = [];
      for (const [count, gapU, gapL] of specs) {
        up += gapU;
        low += gapL;
        if (up + count > 0xfffffffe || low + count > 0xfffffffe) break;
        triples.push([up, low, count]);
        up += count;
        low += count;
      }
      if (triples.length === 0) triples.push([0, 0, 1]);
      return fc.shuffledSubarray(triples, { minLength: triples.length, maxLength: triples.length });
    })
    .map((t) => IdMap.of(...t));

  it("parse of format is the identity", () => {
    fc.assert(
      fc.property(mapArb, (m) => {
        const r = parseMapText(m.toString());
        if (m.toString().length >= 4096) {
          expect(r).toMatchObject({ ok: false, rule: "page_size" });
          return;
        }
        expect(r.ok).toBe(true);
        if (r.ok) expect(r.map.equals(m)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("the sorted overlap index agrees with the kernel's linear mappings_overlap scan", () => {
    const small = fc.tuple(fc.nat(40), fc.nat(40), fc.integer({ min: 1, max: 8 }));
    fc.assert(
      fc.property(fc.array(small, { minLength: 1, maxLength: 12 }), (triples) => {
        // Reference: the kernel's loop, one line at a time against every earlier line.
        const seen: Extent[] = [];
        let want: number | undefined;
        for (const [i, [first, lowerFirst, count]] of triples.entries()) {
          const e = { first, lowerFirst, count };
          if (mappingsOverlap(seen, e)) {
            want = i + 1;
            break;
          }
          seen.push(e);
        }
        const r = parseMapText(triples.map((t) => t.join(" ")).join("\n"));
        if (want === undefined) expect(r.ok).toBe(true);
        else expect(r).toMatchObject({ ok: false, rule: "mappings_overlap", line: want });
      }),
      { numRuns: 3000 },
    );
  });

  it("mappingsOverlap is symmetric", () => {
    const ext = fc.tuple(fc.nat(50), fc.nat(50), fc.integer({ min: 1, max: 10 }));
    fc.assert(
      fc.property(ext, ext, ([a, b, c], [d, e, f]) => {
        const x = { first: a, lowerFirst: b, count: c };
        const y = { first: d, lowerFirst: e, count: f };
        expect(mappingsOverlap([x], y) !== undefined).toBe(mappingsOverlap([y], x) !== undefined);
      }),
    );
  });

  it("the first overlapping line is reported, whatever the order", () => {
    fc.assert(
      fc.property(mapArb, fc.nat(), (m, k) => {
        const dup = m.extents[k % m.size]!;
        const text = `${m.toString()}${dup.first} ${dup.lowerFirst} ${dup.count}\n`;
        if (text.length >= 4096 || m.size >= MAX_EXTENTS) return;
        expect(parseMapText(text)).toMatchObject({ ok: false, rule: "mappings_overlap", line: m.size + 1 });
      }),
      { numRuns: 200 },
    );
  });
});

describe("parseReadbackText reads /proc's print of a map, of any length", () => {
  // 340 extents as the kernel prints them ("%10u %10u %10u\n", 33 bytes a line) are 11,220 bytes: more than one
  // write may hold, but a map the kernel reports (the inventory reads such maps from live namespaces).
  const lines = Array.from({ length: 340 }, (_, i) => formatProcMapLine(i * 10, 100000 + i * 10, 10)).join("");
  it("accepts 340 padded lines that parseMapText refuses by size", () => {
    expect(lines.length).toBe(11220);
    const written = parseMapText(lines);
    expect(written.ok).toBe(false);
    const read = parseReadbackText(lines);
    expect(read.ok).toBe(true);
    if (read.ok) expect(read.map.extents.length).toBe(340);
  });
  it("still refuses what is not a map", () => {
    expect(parseReadbackText("0 0\n").ok).toBe(false);
  });
});
