import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compose,
  difference,
  differenceByLower,
  differenceByUpper,
  freeRanges,
  IdMap,
  INVALID_ID,
  intersection,
  intersectionByLower,
  intersectionByUpper,
  inverse,
  lowerIds,
  mapIdDown,
  overlaps,
  restrictTo,
  union,
  upperIds,
  without,
} from "../../lib/model/index.js";

type Triple = readonly [number, number, number];
const text = (m: IdMap) => m.extents.map((e) => `${e.first} ${e.lowerFirst} ${e.count}`);

/** Brute-force oracle: a map as its set of "inside:outside" pairs. */
function pairSet(m: IdMap): Set<string> {
  const s = new Set<string>();
  for (const e of m.extents) for (let i = 0; i < e.count; i++) s.add(`${e.first + i}:${e.lowerFirst + i}`);
  return s;
}
const sorted = (s: Iterable<string>) => [...s].sort();

// Arbitrary small maps (may overlap, may be invalid as kernel maps): ids below ~80.
const anyMap = fc
  .array(fc.tuple(fc.nat(50), fc.nat(50), fc.integer({ min: 1, max: 25 })), { maxLength: 6 })
  .map((ts) => IdMap.of(...ts));

// Valid maps (no overlap on either side), in random written order.
const validMap = fc
  .array(fc.tuple(fc.integer({ min: 1, max: 20 }), fc.nat(15), fc.nat(15)), { minLength: 0, maxLength: 8 })
  .chain((specs) => {
    let up = 0;
    let low = 0;
    const exts = specs.map(([count, gu, gl]): Triple => {
      const e = [up + gu, low + gl, count] as const;
      up += gu + count;
      low += gl + count;
      return e;
    });
    return fc.shuffledSubarray(exts, { minLength: exts.length, maxLength: exts.length });
  })
  .chain((exts) => fc.shuffledSubarray([0, 1, 2, 3], { minLength: 1, maxLength: 1 }).map(([flip]) => [exts, flip]))
  // sometimes swap sides, so lower ids are not always >= upper ids
  .map(([exts, flip]) =>
    IdMap.of(...(exts as Triple[]).map(([f, l, c]): Triple => (flip === 0 ? [l, f, c] : [f, l, c]))),
  );

describe("set algebra: unit rows", () => {
  const a = IdMap.of([0, 1000, 10], [100, 2000, 10]);
  it.each([
    ["union merges continuing extents", union(IdMap.of([0, 100, 5]), IdMap.of([5, 105, 5])), ["0 100 10"]],
    [
      "union keeps both sides of a disagreement",
      union(IdMap.of([0, 100, 5]), IdMap.of([0, 200, 5])),
      ["0 100 5", "0 200 5"],
    ],
    ["intersection: shared pairs only", intersection(a, IdMap.of([5, 1005, 100])), ["5 1005 5"]],
    ["intersection ignores ids mapped differently", intersection(a, IdMap.of([0, 0, 200])), []],
    ["difference removes shared pairs", difference(a, IdMap.of([5, 1005, 100])), ["0 1000 5", "100 2000 10"]],
    [
      "difference keeps an id mapped elsewhere by b",
      difference(a, IdMap.of([0, 0, 200])),
      ["0 1000 10", "100 2000 10"],
    ],
    ["differenceByUpper drops every inside id b uses", differenceByUpper(a, IdMap.of([0, 0, 105])), ["105 2005 5"]],
    [
      "differenceByLower drops every outside id b uses",
      differenceByLower(a, IdMap.of([0, 1003, 1000])),
      ["0 1000 3", "103 2003 7"],
    ],
    ["intersectionByUpper", intersectionByUpper(a, IdMap.of([8, 0, 95])), ["8 1008 2", "100 2000 3"]],
    ["intersectionByLower", intersectionByLower(a, IdMap.of([0, 2008, 1])), ["108 2008 1"]],
    ["inverse swaps, keeps order", inverse(IdMap.of([9, 0, 1], [0, 5, 2])), ["0 9 1", "5 0 2"]],
    [
      "restrictTo upper keeps written order",
      restrictTo(IdMap.of([100, 0, 10], [0, 50, 10]), "upper", [{ first: 5, count: 100 }]),
      ["100 0 5", "5 55 5"],
    ],
    [
      "without lower cuts the middle",
      without(IdMap.of([0, 100, 10]), "lower", [{ first: 103, count: 2 }]),
      ["0 100 3", "5 105 5"],
    ],
  ])("%s", (_n, got, want) => {
    expect(text(got)).toEqual(want);
  });

  it("compose: child then parent gives the global map (spec §3.1 example: B under A)", () => {
    const parentA = IdMap.of([0, 100000, 1000], [1000, 200000, 1000]);
    const childB = IdMap.of([0, 0, 1000], [1000, 1000, 1000]);
    expect(text(compose(childB, parentA))).toEqual(["0 100000 1000", "1000 200000 1000"]);
  });

  it("compose splits at the second map's boundaries and drops what it does not map", () => {
    const parentA = IdMap.of([0, 100000, 1000], [1000, 200000, 1000]);
    expect(text(compose(IdMap.of([0, 500, 1000]), parentA))).toEqual(["0 100500 500", "500 200000 500"]);
    expect(text(compose(IdMap.of([0, 1500, 1000]), parentA))).toEqual(["0 200500 500"]);
    expect(text(compose(IdMap.of([0, 5000, 1]), parentA))).toEqual([]);
  });

  it.each([
    [
      "one map: mappings_overlap collisions",
      overlaps(IdMap.of([0, 1000, 10], [5, 2000, 10], [50, 1009, 1])),
      [
        { aLine: 1, bLine: 2, upper: { first: 5, count: 5 }, agree: false },
        { aLine: 1, bLine: 3, lower: { first: 1009, count: 1 }, agree: false },
      ],
    ],
    [
      "agreeing overlap between two maps",
      overlaps(IdMap.of([0, 100, 10]), IdMap.of([5, 105, 10])),
      [{ aLine: 1, bLine: 1, upper: { first: 5, count: 5 }, lower: { first: 105, count: 5 }, agree: true }],
    ],
    ["a swap does not collide (upper is not compared with lower)", overlaps(IdMap.of([0, 10, 10], [10, 0, 10])), []],
    ["adjacent extents do not collide", overlaps(IdMap.of([0, 1000, 10], [10, 1010, 10])), []],
  ])("overlaps, %s", (_n, got, want) => {
    expect(got.map(({ a: _a, b: _b, ...rest }) => rest)).toEqual(want);
  });

  it("freeRanges: a parent's ids not yet delegated, cut per parent extent", () => {
    const parent = IdMap.of([0, 100000, 1000], [1000, 200000, 1000], [5000, 300000, 10]);
    const kids = [IdMap.of([0, 0, 100]), IdMap.of([0, 900, 200], [500, 5003, 2])];
    expect(freeRanges(parent, kids)).toEqual([
      { first: 100, count: 800 },
      { first: 1100, count: 900 },
      { first: 5000, count: 3 },
      { first: 5005, count: 5 },
    ]);
    expect(freeRanges(IdMap.of([0, 100, 10], [10, 110, 10]), [])).toEqual([
      { first: 0, count: 10 },
      { first: 10, count: 10 },
    ]);
  });
});

describe("set algebra: laws (fast-check)", () => {
  const runs = { numRuns: 200 };
  it("union, intersection and difference are the pair-set operations", () => {
    fc.assert(
      fc.property(anyMap, anyMap, (a, b) => {
        const pa = pairSet(a);
        const pb = pairSet(b);
        expect(sorted(pairSet(union(a, b)))).toEqual(sorted(new Set([...pa, ...pb])));
        expect(sorted(pairSet(intersection(a, b)))).toEqual(sorted([...pa].filter((p) => pb.has(p))));
        expect(sorted(pairSet(difference(a, b)))).toEqual(sorted([...pa].filter((p) => !pb.has(p))));
      }),
      runs,
    );
  });

  it("union and intersection are commutative and associative (exactly, results are canonical)", () => {
    fc.assert(
      fc.property(anyMap, anyMap, anyMap, (a, b, c) => {
        expect(union(a, b).equals(union(b, a))).toBe(true);
        expect(intersection(a, b).equals(intersection(b, a))).toBe(true);
        expect(union(union(a, b), c).equals(union(a, union(b, c)))).toBe(true);
        expect(intersection(intersection(a, b), c).equals(intersection(a, intersection(b, c)))).toBe(true);
      }),
      runs,
    );
  });

  it("difference and intersection partition a (pairs, by upper ids, by lower ids)", () => {
    fc.assert(
      fc.property(anyMap, anyMap, (a, b) => {
        for (const [d, i] of [
          [difference(a, b), intersection(a, b)],
          [differenceByUpper(a, b), intersectionByUpper(a, b)],
          [differenceByLower(a, b), intersectionByLower(a, b)],
        ] as const) {
          expect(union(d, i).equals(union(a, IdMap.EMPTY))).toBe(true);
          expect(intersection(d, i).isEmpty).toBe(true);
        }
        // by-side differences really drop every id of that side
        const up = new Set(upperIds(b).flatMap((r) => Array.from({ length: r.count }, (_, k) => r.first + k)));
        for (const e of differenceByUpper(a, b).extents)
          for (let k = 0; k < e.count; k++) expect(up.has(e.first + k)).toBe(false);
      }),
      runs,
    );
  });

  it("inverse of inverse is the map itself, and inverse swaps the id sets", () => {
    fc.assert(
      fc.property(anyMap, (a) => {
        expect(inverse(inverse(a)).equals(a)).toBe(true);
        expect(upperIds(inverse(a))).toEqual(lowerIds(a));
      }),
      runs,
    );
  });

  it("compose is pointwise b∘a, associative, and has the identity on both sides", () => {
    fc.assert(
      fc.property(validMap, validMap, validMap, fc.nat(200), (a, b, c, x) => {
        const ab = compose(a, b);
        const viaA = mapIdDown(a, x);
        expect(mapIdDown(ab, x)).toBe(viaA === INVALID_ID ? INVALID_ID : mapIdDown(b, viaA));
        expect(compose(compose(a, b), c).sameMapping(compose(a, compose(b, c)))).toBe(true);
        expect(compose(a, IdMap.IDENTITY).equals(a)).toBe(true);
        expect(compose(IdMap.IDENTITY, a).sameMapping(a)).toBe(true);
        // a then its inverse is the identity on a's inside ids
        for (const e of compose(a, inverse(a)).extents) expect(e.first).toBe(e.lowerFirst);
        expect(upperIds(compose(a, inverse(a)))).toEqual(upperIds(a));
      }),
      runs,
    );
  });

  it("freeRanges are inside the parent, disjoint from delegations, and complete", () => {
    fc.assert(
      fc.property(validMap, fc.array(anyMap, { maxLength: 3 }), (parent, kids) => {
        const free = freeRanges(parent, kids);
        const used = new Set(kids.flatMap((k) => [...pairSet(k)].map((p) => Number(p.split(":")[1]))));
        const freeIds = free.flatMap((r) => Array.from({ length: r.count }, (_, k) => r.first + k));
        for (const r of free) expect(mapIdDown(parent, r.first) !== INVALID_ID).toBe(true);
        for (const r of free)
          expect(parent.extents.some((e) => r.first >= e.first && r.first + r.count <= e.first + e.count)).toBe(true);
        for (const id of freeIds) expect(used.has(id)).toBe(false);
        const want = [...pairSet(parent)].map((p) => Number(p.split(":")[0])).filter((id) => !used.has(id));
        expect(freeIds.sort((x, y) => x - y)).toEqual(want.sort((x, y) => x - y));
      }),
      runs,
    );
  });

  it("overlaps agrees with a brute-force check, and agree means the union stays injective", () => {
    fc.assert(
      fc.property(validMap, validMap, (a, b) => {
        const os = overlaps(a, b);
        const u = union(a, b);
        const injective = overlaps(u).length === 0;
        expect(injective).toBe(os.every((o) => o.agree));
        for (const [i, x] of a.extents.entries())
          for (const [j, y] of b.extents.entries()) {
            const hit =
              (x.first < y.first + y.count && y.first < x.first + x.count) ||
              (x.lowerFirst < y.lowerFirst + y.count && y.lowerFirst < x.lowerFirst + x.count);
            expect(os.some((o) => o.aLine === i + 1 && o.bLine === j + 1)).toBe(hit);
          }
      }),
      runs,
    );
  });
});
