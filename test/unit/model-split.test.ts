import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type Extent,
  extent,
  findExtentDown,
  IdMap,
  INVALID_ID,
  mapIdDown,
  splitAgainstParent,
} from "../../lib/model/index.js";
import { validMapArb } from "../helpers/arbitraries.js";

const lines = (m: IdMap) => m.extents.map((e) => `${e.first} ${e.lowerFirst} ${e.count}`);

describe("splitAgainstParent (spec §2.5, §10.3; rule 18)", () => {
  // Namespace A of spec §2.5: 0 100000 1000 + 1000 200000 1000.
  const a = IdMap.of([0, 100000, 1000], [1000, 200000, 1000]);
  it.each([
    ["fits one parent extent: unchanged", IdMap.of([0, 0, 1000]), ["0 0 1000"]],
    ["fits the second extent", IdMap.of([0, 1000, 1000]), ["0 1000 1000"]],
    ["already split", IdMap.of([0, 0, 1000], [1000, 1000, 1000]), ["0 0 1000", "1000 1000 1000"]],
    ["crosses the boundary (kernel: EPERM)", IdMap.of([0, 500, 1000]), ["0 500 500", "500 1000 500"]],
    ["all mapped but across two extents (kernel: EPERM)", IdMap.of([0, 0, 2000]), ["0 0 1000", "1000 1000 1000"]],
    ["two ids across the boundary (kernel: EPERM)", IdMap.of([0, 999, 2]), ["0 999 1", "1 1000 1"]],
    ["lines that continue each other merge", IdMap.of([0, 0, 10], [10, 10, 10]), ["0 0 20"]],
    ["written order is kept", IdMap.of([500, 1500, 10], [0, 990, 20]), ["500 1500 10", "0 990 10", "10 1000 10"]],
    ["a single extent as input", extent(7, 995, 10), ["7 995 5", "12 1000 5"]],
  ])("%s", (_n, req, want) => {
    const r = splitAgainstParent(req as IdMap | Extent, a);
    expect(r.ok && lines(r.map)).toEqual(want);
  });

  it("the patch's example: parent 0 1000 1 + 1 100000 65536, request 0 0 100", () => {
    const r = splitAgainstParent(IdMap.of([0, 0, 100]), IdMap.of([0, 1000, 1], [1, 100000, 65536]));
    expect(r.ok && lines(r.map)).toEqual(["0 0 1", "1 1 99"]);
  });

  it("contiguous parent extents still cut the request (one-extent lookup, spec §1.2)", () => {
    const r = splitAgainstParent(IdMap.of([0, 0, 20]), IdMap.of([0, 100, 10], [10, 110, 10]));
    expect(r.ok && lines(r.map)).toEqual(["0 0 10", "10 10 10"]);
  });

  it.each([
    ["0 0 4294967295", [0, 0, 4294967295]],
    ["1 0 4294967294: last ids 4294967294", [1, 0, 4294967294]],
    ["0 4294967294 1", [0, 4294967294, 1]],
  ] as const)("a parent in the initial namespace (identity) maps every legal lower id: %s", (text, e) => {
    const r = splitAgainstParent(IdMap.of(e), IdMap.IDENTITY);
    expect(r.ok && lines(r.map)).toEqual([text.split(":")[0]]);
  });

  it.each([
    ["not mapped in A", IdMap.of([0, 5000, 1]), [{ first: 5000, count: 1 }], "lower ids 5000 is not mapped"],
    [
      "a hole and a tail",
      IdMap.of([0, 1500, 1000]),
      [{ first: 2000, count: 500 }],
      "lower ids 2000-2499 are not mapped in the parent namespace",
    ],
  ])("refuses: %s", (_n, req, unmapped, reason) => {
    const r = splitAgainstParent(req, a);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.unmapped).toEqual(unmapped);
      expect(r.reason.replace(" in the parent namespace", "")).toContain(
        reason.replace(" in the parent namespace", ""),
      );
    }
  });

  it("names every unmapped range, merged, when the parent has holes", () => {
    const p = IdMap.of([0, 1, 10], [20, 100, 10], [40, 200, 10]);
    const r = splitAgainstParent(IdMap.of([0, 5, 50], [100, 60, 3]), p);
    expect(r).toEqual({
      ok: false,
      unmapped: [
        { first: 10, count: 10 },
        { first: 30, count: 10 },
        { first: 50, count: 5 },
        { first: 60, count: 3 },
      ],
      reason: "lower ids 10-19, 30-39, 50-54 and 60-62 are not mapped in the parent namespace",
    });
  });

  it("an unwritten parent map maps nothing", () => {
    const r = splitAgainstParent(IdMap.of([0, 0, 1]), IdMap.EMPTY);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toBe("lower ids 0 is not mapped in the parent namespace (its map is not written)");
  });

  it.each([
    ["overlapping inside ids", IdMap.of([0, 0, 10], [5, 100, 10]), "line 2: inside ids 5-14 overlap line 1's 0-9"],
    ["overlapping outside ids", IdMap.of([0, 0, 10], [50, 9, 1]), "line 2: outside ids 9-9 overlap line 1's 0-9"],
    ["inside range reaches 4294967295 (1 0 4294967295)", IdMap.of([1, 0, INVALID_ID]), "inside ids reach 4294967295"],
    ["outside range reaches 4294967295", IdMap.of([0, 4294967294, 2]), "outside ids reach 4294967295"],
    ["an empty request", IdMap.EMPTY, "no extents"],
  ])("refuses an invalid request: %s", (_n, req, reason) => {
    const r = splitAgainstParent(req, IdMap.IDENTITY);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.unmapped).toEqual([]);
      expect(r.reason).toContain(reason);
    }
  });

  it("refuses a split that needs more than 340 extents, and accepts exactly 340", () => {
    const parent = (n: number) => IdMap.from(Array.from({ length: n }, (_, i) => extent(i, 1000 + 2 * i, 1)));
    const ok = splitAgainstParent(IdMap.of([0, 0, 340]), parent(340));
    expect(ok.ok && ok.map.size).toBe(340);
    const r = splitAgainstParent(IdMap.of([0, 0, 341]), parent(341));
    expect(r).toEqual({ ok: false, unmapped: [], reason: "the split needs 341 extents; a map holds at most 340" });
  });
});

// Valid maps: non-overlapping on both sides, in random written order, ids in [0, ~3000).
const validMap = (maxLen: number) => validMapArb({ maxLength: maxLen, maxCount: 60, maxGap: 40 });

/** Independent lower bound: each maximal run needs one extent per parent extent its lower range touches. */
function minimalCount(req: IdMap, parent: IdMap): number {
  return req.canonical().extents.reduce((n, e) => {
    const touched = parent.extents.filter(
      (p) => p.first <= e.lowerFirst + e.count - 1 && e.lowerFirst <= p.first + p.count - 1,
    );
    return n + touched.length;
  }, 0);
}

describe("splitAgainstParent properties", () => {
  it("output is valid, equivalent to the request, and minimal; refusals name exactly the unmapped ids", () => {
    fc.assert(
      fc.property(validMap(30), validMap(30), (req, parent) => {
        const r = splitAgainstParent(req, parent);
        const lowerIds = new Set<number>();
        for (const e of req.extents) for (let i = 0; i < e.count; i++) lowerIds.add(e.lowerFirst + i);
        const unmapped = [...lowerIds].filter((id) => mapIdDown(parent, id) === INVALID_ID).sort((x, y) => x - y);
        if (!r.ok) {
          const listed = r.unmapped.flatMap((u) => Array.from({ length: u.count }, (_, i) => u.first + i));
          expect(listed).toEqual(unmapped);
          return;
        }
        expect(unmapped).toEqual([]);
        const m = r.map;
        // every lower range inside ONE parent extent: the kernel's own check
        for (const e of m.extents) expect(findExtentDown(parent, e.lowerFirst, e.count)).toBeDefined();
        // no overlaps on either side
        for (const [i, x] of m.extents.entries())
          for (const y of m.extents.slice(i + 1)) {
            expect(x.first + x.count <= y.first || y.first + y.count <= x.first).toBe(true);
            expect(x.lowerFirst + x.count <= y.lowerFirst || y.lowerFirst + y.count <= x.lowerFirst).toBe(true);
          }
        expect(m.sameMapping(req)).toBe(true);
        expect(m.size).toBe(minimalCount(req, parent));
      }),
      { numRuns: 300 },
    );
  });

  it("a parent that tiles the lower ids always gives a split, cut only at its boundaries", () => {
    // Parent extents tile exactly [0, 4000) in random chunks with arbitrary (non-overlapping) lower ids: the chunks
    // are drawn as cut points, so they always cover the whole request range (drawing chunk sizes did not: 14 chunks
    // could sum to 14).
    const tiling = fc.uniqueArray(fc.integer({ min: 1, max: 3999 }), { minLength: 13, maxLength: 39 }).map((cuts) => {
      const bounds = [0, ...cuts.sort((a, b) => a - b), 4000];
      return IdMap.from(bounds.slice(1).map((end, i) => extent(bounds[i]!, 1_000_000 + i * 1000, end - bounds[i]!)));
    });
    fc.assert(
      fc.property(validMap(20), tiling, (req, parent) => {
        expect(parent.extents.reduce((n, e) => n + e.count, 0)).toBe(4000);
        fc.pre(req.extents.every((e) => e.lowerFirst + e.count <= 4000));
        const r = splitAgainstParent(req, parent);
        expect(r.ok).toBe(true);
        if (r.ok) {
          expect(r.map.sameMapping(req)).toBe(true);
          expect(r.map.size).toBe(minimalCount(req, parent));
          for (const e of r.map.extents) expect(findExtentDown(parent, e.lowerFirst, e.count)).toBeDefined();
        }
      }),
      { numRuns: 200 },
    );
  });

  it("a request that already fits is returned as written (merged runs aside)", () => {
    fc.assert(
      fc.property(validMap(20), (req) => {
        const r = splitAgainstParent(req, IdMap.IDENTITY);
        expect(r.ok && r.map.sameMapping(req)).toBe(true);
        expect(r.ok && r.map.size).toBe(req.canonical().size);
      }),
      { numRuns: 100 },
    );
  });
});
