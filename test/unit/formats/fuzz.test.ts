/**
 * Fuzzing: every parser gets over 100,000 generated inputs in total (random
 * strings, random bytes decoded as text, format-alphabet token soup and
 * mutated valid inputs). Each must return maps or throw the documented
 * FormatError; anything else (TypeError, RangeError, a hang) fails.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FORMATS, FormatError } from "../../../lib/formats/index.js";
import type { FormatSpec, MapSet, ParseOptions } from "../../../lib/formats/types.js";
import { IdMap } from "../../../lib/model/idmap.js";
import { parseSubid } from "../../../lib/subid/parse.js";
import { validMap } from "./arbitraries.js";

/** Context so the resolving paths (@, keep-id, auto, docker, bare idmap) run too. */
const ctx: ParseOptions = {
  parentMaps: { uid: IdMap.of([0, 1000, 1], [1, 100000, 65536]), gid: IdMap.of([0, 1000, 1], [1, 100000, 65536]) },
  containerMaps: { uid: IdMap.of([0, 100000, 65536]), gid: IdMap.of([0, 100000, 65536]) },
  subuid: [
    { owner: "containers", start: 200000, count: 100000 },
    { owner: "dockremap", start: 100000, count: 65536 },
  ],
  subgid: [
    { owner: "containers", start: 200000, count: 100000 },
    { owner: "dockremap", start: 100000, count: 65536 },
  ],
  uid: 1000,
  gid: 1000,
  rootOwner: 65536,
};

const alphabet = fc.constantFrom(
  ..."0123456789:;,-#@+ug b=\n\t\r\"'{}[]".split(""),
  "4294967295",
  "4294967296",
  "65536",
  "lxc.idmap",
  "--uidmap",
  "--gidmap=",
  "--userns=",
  "keep-id:",
  "auto:",
  "size=",
  "uidmapping=",
  "idmap=",
  "uids=",
  "gids=",
  "X-mount.idmap=",
  "--map-users=",
  "both",
  "uid",
  '"containerID"',
  '"hostID"',
  '"size"',
  '"uidMappings"',
  '"Isuid"',
  "true",
  "null",
  "-1",
  "1e3",
  "\\040",
  "\u0000",
);
const soup = fc.array(alphabet, { maxLength: 40 }).map((a) => a.join(""));
const bytes = fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString("latin1"));

function samples(f: FormatSpec): fc.Arbitrary<string> {
  // a pool of valid texts, generated once: mutating from a pool keeps the run short
  const pool = fc
    .sample(fc.record({ uid: validMap(4), gid: validMap(4) }), { numRuns: 200, seed: 7 })
    .map((m: MapSet) => {
      try {
        return f.format(m);
      } catch {
        return f.format({ uid: IdMap.of([0, 100000, 65536]), gid: IdMap.of([0, 100000, 65536]) });
      }
    });
  const valid = fc.constantFrom(...pool);
  const mutated = fc
    .tuple(valid, fc.array(fc.tuple(fc.nat(), fc.nat({ max: 2 }), alphabet), { minLength: 1, maxLength: 4 }))
    .map(([s, edits]) => {
      let out = s;
      for (const [pos, op, ins] of edits) {
        const p = out.length === 0 ? 0 : pos % (out.length + 1);
        out =
          op === 0
            ? out.slice(0, p) + out.slice(p + 1)
            : op === 1
              ? out.slice(0, p) + ins + out.slice(p)
              : out.slice(0, p) + ins + out.slice(p + 1);
      }
      return out;
    });
  return fc.oneof(fc.string({ maxLength: 40 }), bytes, soup, valid, mutated, mutated);
}

const PER_FORMAT = 6000;

describe("formats: fuzzing", () => {
  it(`runs ${PER_FORMAT} inputs through each of the ${FORMATS.length} parsers (${PER_FORMAT * FORMATS.length} in all) plus the subid parser`, () => {
    let total = 0;
    let accepted = 0;
    const times: string[] = [];
    for (const f of FORMATS) {
      const t0 = performance.now();
      fc.assert(
        fc.property(
          samples(f),
          fc.constantFrom(undefined, "uid" as const, "gid" as const, "both" as const),
          (text, kind) => {
            total++;
            try {
              const m = f.parse(text, { ...ctx, kind });
              if (
                !(m.uid === undefined || m.uid instanceof IdMap) ||
                !(m.gid === undefined || m.gid instanceof IdMap)
              ) {
                throw new Error(`${f.name} returned something other than IdMaps for ${JSON.stringify(text)}`);
              }
              accepted++;
            } catch (e) {
              if (!(e instanceof FormatError) || e.code !== "ERR_USERNS_FORMAT") {
                throw new Error(`${f.name} threw ${String(e)} on ${JSON.stringify(text)}`);
              }
            }
          },
        ),
        { numRuns: PER_FORMAT },
      );
      times.push(`${f.name} ${Math.round(performance.now() - t0)}ms`);
    }
    if (process.env.FUZZ_TIMES) console.log(times.join(", "));
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 60 }), soup, bytes), (text) => {
        total++;
        const r = parseSubid(text);
        expect(Array.isArray(r.entries) && Array.isArray(r.issues)).toBe(true);
      }),
      { numRuns: 4000 },
    );
    expect(total).toBeGreaterThanOrEqual(100_000);
    // the generators reach the accepting paths too, not only the error paths
    expect(accepted).toBeGreaterThan(total / 10);
    // 108,000 inputs take ~15 s alone on the CI machine kind and twice that when the machine is shared: a time
    // limit, not a speed claim.
  }, 120_000);
});
