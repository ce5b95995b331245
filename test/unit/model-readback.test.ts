import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type Cred,
  chainDown,
  chainDownMunged,
  chainUp,
  createUserNs,
  cred,
  FULL_CAPS,
  fromKidMunged,
  IdMap,
  INIT_USER_NS,
  INVALID_ID,
  installChain,
  mapIdDown,
  mapIdRangeDown,
  mapWrite,
  readProcMap,
  translateId,
  translateIdMunged,
  type UserNs,
} from "../../lib/model/index.js";

const root = cred(INIT_USER_NS, 0, 0, FULL_CAPS);
let nextId = 10;
function child(creator: Cred, uid: string, gid = uid): UserNs {
  const made = createUserNs({ ns: creator.ns, euid: creator.euid, egid: creator.egid, hasSetfcap: true }, nextId++);
  if (!made.ok) throw new Error(made.reason);
  const u = mapWrite({ file: { kind: "uid", target: made.ns, opener: creator, pos: 0 }, writer: creator, data: uid });
  if (!u.ok) throw new Error(u.reason);
  const g = mapWrite({ file: { kind: "gid", target: u.ns, opener: creator, pos: 0 }, writer: creator, data: gid });
  if (!g.ok) throw new Error(g.reason);
  return g.ns;
}
const line = (a: number, b: number, c: number) =>
  `${String(a).padStart(10)} ${String(b).padStart(10)} ${String(c).padStart(10)}\n`;

describe("readProcMap: uid_m_show's opener-relative rule (spec §3.1, rule 21)", () => {
  // The verified example of §3.1: A = 0 100000 1000 / 1000 200000 1000; B and C children of A.
  const A = child(root, "0 100000 1000\n1000 200000 1000");
  const aRoot = cred(A, 100000, 100000, FULL_CAPS);
  const B = child(aRoot, "0 0 1000\n1000 1000 1000");
  const C = child(aRoot, "0 1000 10");
  it.each<[string, UserNs, string]>([
    ["the initial namespace", INIT_USER_NS, line(0, 100000, 1000) + line(1000, 200000, 1000)],
    ["A, B's parent", A, line(0, 0, 1000) + line(1000, 1000, 1000)],
    ["B itself sees its parent's view", B, line(0, 0, 1000) + line(1000, 1000, 1000)],
    ["sibling C: unmapped first ids show 4294967295", C, line(0, 4294967295, 1000) + line(1000, 0, 1000)],
  ])("B's uid_map read from %s", (_n, reader, want) => {
    expect(readProcMap(B, "uid", reader)).toBe(want);
  });

  it("A's map read from B is expressed in B's ids", () => {
    expect(readProcMap(A, "uid", B)).toBe(line(0, 0, 1000) + line(1000, 1000, 1000));
  });

  it("the initial namespace reads 0 0 4294967295 for all three maps", () => {
    for (const k of ["uid", "gid", "projid"] as const) {
      expect(readProcMap(INIT_USER_NS, k, INIT_USER_NS)).toBe("         0          0 4294967295\n");
    }
  });

  it("an unwritten map reads as empty", () => {
    expect(readProcMap(B, "projid", INIT_USER_NS)).toBe("");
  });
});

describe("print order (spec §3.2, rule 22)", () => {
  it("≤ 5 extents print in write order, > 5 sorted by first", () => {
    const desc = (n: number) =>
      Array.from({ length: n }, (_, i) => `${(n - 1 - i) * 10} ${(n - 1 - i) * 10} 10`).join("\n");
    const five = child(root, desc(5));
    const six = child(root, desc(6));
    expect(readProcMap(five, "uid", INIT_USER_NS).split("\n")[0]).toBe(line(40, 40, 10).trimEnd());
    expect(readProcMap(six, "uid", INIT_USER_NS).split("\n")[0]).toBe(line(0, 0, 10).trimEnd());
  });
});

describe("translation through chains (spec §1.2, §1.3)", () => {
  const A = child(root, "0 100000 65536");
  const B = child(cred(A, 100000, 100000, FULL_CAPS), "0 1000 1000");
  it.each<[string, UserNs, UserNs, number, number]>([
    ["B → init", B, INIT_USER_NS, 5, 101005],
    ["B → A", B, A, 5, 1005],
    ["A → B", A, B, 1005, 5],
    ["init → B unmapped", INIT_USER_NS, B, 5, INVALID_ID],
  ])("%s", (_n, from, to, id, want) => {
    expect(translateId(from, to, "uid", id)).toBe(want);
  });
  it("munged helpers report overflowuid", () => {
    expect(translateIdMunged(INIT_USER_NS, B, "uid", 5)).toBe(65534);
    expect(fromKidMunged(B, "uid", 0)).toBe(65534);
    expect(chainDownMunged([IdMap.of([0, 100000, 65536])], 70000)).toBe(65534);
  });

  // A chain: each level maps a sub-range of its parent's inside ids, so everything installs.
  const chainArb = fc
    .array(fc.array(fc.tuple(fc.integer({ min: 1, max: 200 }), fc.nat(50)), { minLength: 1, maxLength: 8 }), {
      minLength: 1,
      maxLength: 5,
    })
    .map((levels) => {
      const maps: IdMap[] = [];
      let parentUppers: [number, number][] = [[0, 0xfffffffe]];
      for (const specs of levels) {
        const triples: [number, number, number][] = [];
        let up = 0;
        let pi = 0;
        let low = parentUppers[0]![0];
        for (const [count, gap] of specs) {
          const [pf, pc] = parentUppers[pi]!;
          low += gap;
          if (low + count > pf + pc) break;
          triples.push([up, low, count]);
          up += count + gap;
          low += count;
          if (low >= pf + pc && pi + 1 < parentUppers.length) {
            pi++;
            low = parentUppers[pi]![0];
          }
        }
        if (triples.length === 0) triples.push([0, parentUppers[0]![0], 1]);
        const m = IdMap.of(...triples);
        maps.push(m);
        parentUppers = m.forward.map((e) => [e.first, e.count]);
      }
      return maps;
    });

  it("up of down is the identity on mapped ids, through the chain", () => {
    fc.assert(
      fc.property(chainArb, fc.nat(), (maps, k) => {
        const inner = maps[maps.length - 1]!;
        const e = inner.extents[k % inner.size]!;
        const id = e.first + (k % e.count);
        const g = chainDown(maps, id);
        expect(g).not.toBe(INVALID_ID);
        expect(chainUp(maps, g)).toBe(id);
      }),
      { numRuns: 300 },
    );
  });

  it("down through the written chain equals one lookup in the installed map", () => {
    fc.assert(
      fc.property(chainArb, fc.nat(3000), fc.nat(5), (maps, id, count) => {
        const installed = installChain(maps, IdMap.IDENTITY);
        expect(installed).toBeDefined();
        const last = installed![installed!.length - 1]!;
        expect(chainDown(maps, id, count + 1)).toBe(mapIdRangeDown(last, id, count + 1));
        expect(chainDown(maps, id)).toBe(mapIdDown(last, id));
      }),
      { numRuns: 300 },
    );
  });
});
