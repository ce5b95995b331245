/**
 * fast-check arbitraries shared by the model's property tests.
 */
import fc from "fast-check";
import { IdMap } from "../../lib/model/index.js";

/**
 * Valid id maps: extents that overlap on neither side (with random gaps, so
 * some ids stay unmapped), in a random written order.
 */
export function validMapArb(opts: { maxLength: number; maxCount: number; maxGap: number }): fc.Arbitrary<IdMap> {
  return fc
    .array(
      fc.tuple(
        fc.integer({ min: 1, max: opts.maxCount }),
        fc.integer({ min: 0, max: opts.maxGap }),
        fc.integer({ min: 0, max: opts.maxGap }),
      ),
      { minLength: 1, maxLength: opts.maxLength },
    )
    .chain((specs) => {
      let up = 0;
      let low = 0;
      const exts = specs.map(([count, gapU, gapL]) => {
        const e = [up + gapU, low + gapL, count] as const;
        up += gapU + count;
        low += gapL + count;
        return e;
      });
      return fc.shuffledSubarray(exts, { minLength: exts.length, maxLength: exts.length });
    })
    .map((exts) => IdMap.of(...exts));
}
