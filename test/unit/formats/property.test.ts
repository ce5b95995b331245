/** Property: any valid map survives conversion through every format that can hold it. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FORMATS, getFormat } from "../../../lib/formats/index.js";
import type { FormatName, MapSet } from "../../../lib/formats/types.js";
import { IdMap } from "../../../lib/model/idmap.js";
import { concatenatedMap, validMap } from "./arbitraries.js";

const tagged = FORMATS.filter((f) => f.roundTrip === "exact" && f.holds === "tagged" && f.name !== "docker").map(
  (f) => f.name,
);

const pairs = fc.record({ uid: validMap(), gid: validMap(), same: fc.boolean() }).map(({ uid, gid, same }) => ({
  uid,
  gid: same ? uid : gid,
}));

const eqExact = (a: MapSet, b: MapSet) => {
  expect(b.uid?.toJSON()).toEqual(a.uid?.toJSON());
  expect(b.gid?.toJSON()).toEqual(a.gid?.toJSON());
};

describe("formats: round trip property", () => {
  it.each(tagged)("%s: parse(format(m)) is m, extent for extent, for a uid/gid pair", (name) => {
    const f = getFormat(name);
    fc.assert(
      fc.property(pairs, (m) => {
        eqExact(m, f.parse(f.format(m)));
      }),
      { numRuns: 150 },
    );
  });

  it.each(["kernel", "subid"] as FormatName[])("%s holds one map per --kind", (name) => {
    const f = getFormat(name);
    const arb = name === "subid" ? concatenatedMap() : validMap();
    fc.assert(
      fc.property(arb, fc.constantFrom("uid" as const, "gid" as const), (m, kind) => {
        const maps = kind === "uid" ? { uid: m } : { gid: m };
        eqExact(maps, f.parse(f.format(maps, { kind }), { kind }));
      }),
      { numRuns: 150 },
    );
  });

  it("podman gives the canonical form back (podman sorts and merges)", () => {
    const f = getFormat("podman");
    fc.assert(
      fc.property(pairs, (m) => {
        const back = f.parse(f.format(m));
        expect(back.uid?.equals(m.uid!.canonical())).toBe(true);
        expect(back.gid?.equals(m.gid!.canonical())).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it("docker and subid round-trip maps whose inside ids run from 0", () => {
    fc.assert(
      fc.property(concatenatedMap(), concatenatedMap(), (u, g) => {
        const d = getFormat("docker");
        eqExact({ uid: u, gid: g }, d.parse(d.format({ uid: u, gid: g }, { owner: "alice" })));
      }),
      { numRuns: 150 },
    );
  });

  it("nspawn round-trips a single range from 0", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 }), fc.integer({ min: 1, max: 2 ** 31 }), (base, count) => {
        const m = IdMap.of([0, base, count]);
        const f = getFormat("nspawn");
        eqExact({ uid: m, gid: m }, f.parse(f.format({ uid: m, gid: m })));
      }),
      { numRuns: 150 },
    );
  });

  it("a map converted through every format in turn comes out meaning the same", () => {
    const chain = [...tagged, "podman", ...tagged.slice().reverse()] as FormatName[];
    fc.assert(
      fc.property(pairs, fc.array(fc.constantFrom(...chain), { minLength: 2, maxLength: 8 }), (m, route) => {
        let cur: MapSet = m;
        for (const name of [...chain, ...route]) {
          const f = getFormat(name);
          cur = f.parse(f.format(cur));
        }
        expect(cur.uid?.sameMapping(m.uid!)).toBe(true);
        expect(cur.gid?.sameMapping(m.gid!)).toBe(true);
      }),
      { numRuns: 40 },
    );
  });
});
