/** fast-check generators for valid id maps (disjoint inside ranges, disjoint outside ranges, within u32). */
import fc from "fast-check";
import { type Extent, extent } from "../../../lib/model/extent.js";
import { IdMap } from "../../../lib/model/idmap.js";

/** A map the kernel would accept (spec §2.3): no overlaps on either side, last id ≤ 4294967294. */
export const validMap = (maxExtents = 6): fc.Arbitrary<IdMap> =>
  fc
    .record({
      counts: fc.array(fc.integer({ min: 1, max: 1 << 20 }), { minLength: 1, maxLength: maxExtents }),
      upperGaps: fc.array(fc.integer({ min: 0, max: 1 << 26 }), { minLength: maxExtents, maxLength: maxExtents }),
      lowerGaps: fc.array(fc.integer({ min: 0, max: 1 << 26 }), { minLength: maxExtents, maxLength: maxExtents }),
      upperBase: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 32 - 2 ** 30 - 2 })),
      lowerBase: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 32 - 2 ** 30 - 2 })),
      seed: fc.array(fc.nat(), { minLength: maxExtents, maxLength: maxExtents }),
    })
    .map(({ counts, upperGaps, lowerGaps, upperBase, lowerBase, seed }) => {
      const n = counts.length;
      const place = (gaps: number[], base: number, order: number[]) => {
        const starts: number[] = new Array(n);
        let at = base;
        for (const i of order) {
          at += gaps[i]!;
          starts[i] = at;
          at += counts[i]!;
        }
        return starts;
      };
      const ident = [...Array(n).keys()];
      const perm = [...ident].sort((a, b) => seed[a]! - seed[b]! || a - b);
      const ups = place(upperGaps, upperBase, ident);
      const lows = place(lowerGaps, lowerBase, perm);
      const ex: Extent[] = ident.map((i) => extent(ups[i]!, lows[i]!, counts[i]!));
      // written order is shuffled too: the kernel accepts any order (spec §2.3.5)
      const order = [...ident].sort((a, b) => seed[(a + 1) % n]! - seed[(b + 1) % n]! || a - b);
      return IdMap.from(order.map((i) => ex[i]!));
    });

/** A map whose inside ids run from 0 without gaps in written order (what subid lines and Docker can express). */
export const concatenatedMap = (): fc.Arbitrary<IdMap> =>
  validMap(5).map((m) => {
    let next = 0;
    return IdMap.from(
      m.extents.map((e) => {
        const x = extent(next, e.lowerFirst, e.count);
        next += e.count;
        return x;
      }),
    );
  });
