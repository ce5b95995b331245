import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IdMap, INVALID_ID, mapIdDown, mapIdRangeDown, mapIdRangeUp, mapIdUp, munge } from "../../lib/model/index.js";
import { validMapArb } from "../helpers/arbitraries.js";

describe("lookups (kernel/user_namespace.c map_id_range_down/up)", () => {
  const two = IdMap.of([0, 100000, 1000], [1000, 200000, 1000]);
  it.each([
    ["inside the first extent", 5, 1, 100005],
    ["inside the second extent", 1000, 1, 200000],
    ["a range in one extent", 0, 1000, 100000],
    ["a range across two adjacent extents fails (spec 1.2)", 999, 2, INVALID_ID],
    ["an unmapped id", 2000, 1, INVALID_ID],
  ])("down: %s", (_n, id, count, want) => {
    expect(mapIdRangeDown(two, id, count)).toBe(want);
  });

  it("up is the reverse search", () => {
    expect(mapIdUp(two, 100005)).toBe(5);
    expect(mapIdUp(two, 200999)).toBe(1999);
    expect(mapIdUp(two, 300000)).toBe(INVALID_ID);
    expect(mapIdRangeUp(two, 100999, 2)).toBe(INVALID_ID);
  });

  it("munge turns INVALID into overflowuid", () => {
    expect(munge(INVALID_ID)).toBe(65534);
    expect(munge(7)).toBe(7);
  });

  // Build non-overlapping maps of 1..340 extents in random order.
  const mapArb = validMapArb({ maxLength: 340, maxCount: 50, maxGap: 30 });

  it("binary search agrees with a linear scan, and up inverts down on mapped ids", () => {
    fc.assert(
      fc.property(mapArb, fc.nat({ max: 30000 }), fc.integer({ min: 1, max: 60 }), (m, id, count) => {
        const linear = m.extents.find((e) => id >= e.first && id + count - 1 <= e.first + e.count - 1);
        const want = linear ? linear.lowerFirst + id - linear.first : INVALID_ID;
        expect(mapIdRangeDown(m, id, count)).toBe(want);
        const down = mapIdDown(m, id);
        if (down !== INVALID_ID) expect(mapIdUp(m, down)).toBe(id);
      }),
      { numRuns: 300 },
    );
  });
});
