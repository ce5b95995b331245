import { describe, expect, it } from "vitest";
import { IdMap, INVALID_ID, sim } from "../../lib/model/index.js";

const write = (r: sim.SimFsidWriteResult): sim.SimFsidNs => {
  if (!r.ok) throw new Error(r.reason);
  return r.ns;
};

describe("SIMULATION fsid mappings (spec §10.1, never merged)", () => {
  // The patch's example: NS1 id map 0 100000 100000, fsid map 0 300000 100000;
  // NS2 inside NS1 with id map and fsid map both 0 10000 65536.
  const ns1a = write(
    sim.simWriteFsidMap(sim.simFsidNewNs(sim.SIM_FSID_INIT, "NS1"), "uid", IdMap.of([0, 300000, 100000])),
  );
  const ns1 = write(sim.simWriteIdMap(ns1a, "uid", IdMap.of([0, 100000, 100000])));
  const ns2a = write(sim.simWriteFsidMap(sim.simFsidNewNs(ns1, "NS2"), "uid", IdMap.of([0, 10000, 65536])));
  const ns2 = write(sim.simWriteIdMap(ns2a, "uid", IdMap.of([0, 10000, 65536])));

  it("root in NS1 creates files owned by 300000; root in NS2 creates 310000", () => {
    expect(sim.simMakeKfsid(ns1, "uid", 0)).toBe(300000);
    expect(sim.simMakeKfsid(ns2, "uid", 0)).toBe(310000);
    expect(ns2.uidMap.extents[0]).toEqual({ first: 0, lowerFirst: 110000, count: 65536 });
  });

  it("stat uses the fsid maps: NS2 sees 310000 as 0, the host sees it as 310000, NS1 as 10000", () => {
    expect(sim.simFromKfsidMunged(ns2, "uid", 310000)).toBe(0);
    expect(sim.simFromKfsidMunged(ns1, "uid", 310000)).toBe(10000);
    expect(sim.simFromKfsidMunged(sim.SIM_FSID_INIT, "uid", 310000)).toBe(310000);
    expect(sim.simFromKfsidMunged(ns2, "uid", 110000)).toBe(65534);
  });

  it("an fsid map is writable only before the matching id map (EPERM after)", () => {
    const r = sim.simWriteFsidMap(ns1, "uid", IdMap.of([0, 300000, 10]));
    expect(r).toMatchObject({ simulation: true, ok: false, errno: "EPERM" });
    // the other side is still open
    expect(sim.simWriteFsidMap(ns1, "gid", IdMap.of([0, 300000, 10])).ok).toBe(true);
    // and a second fsid write is refused too
    expect(sim.simWriteFsidMap(ns1a, "uid", IdMap.of([0, 1, 1])).ok).toBe(false);
  });

  it("writing uid_map first mirrors it into fsuid_map through the parent's fsuid map", () => {
    const child = write(sim.simWriteIdMap(sim.simFsidNewNs(ns1, "C"), "uid", IdMap.of([0, 5, 10])));
    expect(child.uidMap.extents[0]).toEqual({ first: 0, lowerFirst: 100005, count: 10 });
    expect(child.fsuidMap.extents[0]).toEqual({ first: 0, lowerFirst: 300005, count: 10 });
    expect(sim.simCreateOwner({ ...child, fsgidMap: IdMap.IDENTITY }, 3, 3)).toEqual({
      simulation: true,
      ok: true,
      uid: 300008,
      gid: 3,
    });
  });

  it("creating with an unmapped fs id is EOVERFLOW; lower ids outside the parent's fsid map are refused", () => {
    expect(sim.simCreateOwner(ns2, 70000, 0)).toEqual({ simulation: true, ok: false, errno: "EOVERFLOW" });
    expect(sim.simWriteFsidMap(sim.simFsidNewNs(ns1, "D"), "uid", IdMap.of([0, 99999, 2])).ok).toBe(false);
  });
});

describe("SIMULATION isolated user namespaces (spec §10.4, never merged)", () => {
  const host = sim.SIM_ISO_INIT;
  const iso = sim.simIsoIsolated(host, "ct1", 7n, 1000n);
  const inner = sim.simIsoChild(iso, "ct1-child", IdMap.of([0, 5000, 100]), 0x7_0000_0000n);
  const other = sim.simIsoIsolated(host, "ct2", 8n, 1001n);
  const plain = sim.simIsoChild(host, "plain", IdMap.of([0, 100000, 65536]), 0n);

  it("ids of an isolated namespace are 64-bit and host-isolated", () => {
    expect(sim.simMakeKuid(iso, 0)).toBe(0x7_0000_0000n);
    expect(sim.simMakeKuid(iso, 4294967294)).toBe(0x7_ffff_fffen);
    expect(sim.simMakeKuid(inner, 3)).toBe(0x7_0000_138bn);
    expect(sim.simFromKuid(host, 0x7_0000_0000n)).toBe(INVALID_ID);
    expect(sim.simFromKuid(iso, 100000n)).toBe(INVALID_ID);
    expect(sim.simFromKuid(inner, 0x7_0000_138bn)).toBe(3);
    expect(sim.simFromKuid(plain, 100005n)).toBe(5);
  });

  it("from_kuid into an ancestor yields the owner instead of overflowuid; elsewhere 65534", () => {
    const known = [iso, other];
    expect(sim.simFromKuidMunged(host, sim.simMakeKuid(iso, 0), known)).toEqual({
      simulation: true,
      id: 1000,
      via: "owner",
    });
    expect(sim.simFromKuidMunged(other, sim.simMakeKuid(iso, 0), known)).toEqual({
      simulation: true,
      id: 65534,
      via: "overflow",
    });
    expect(sim.simFromKuidMunged(plain, sim.simMakeKuid(iso, 0), known)).toEqual({
      simulation: true,
      id: 65534,
      via: "overflow",
    });
    expect(sim.simFromKuidMunged(iso, sim.simMakeKuid(inner, 1), known)).toEqual({
      simulation: true,
      id: 5001,
      via: "map",
    });
    expect(sim.simFromKuidMunged(host, 5n, known)).toEqual({ simulation: true, id: 5, via: "map" });
  });

  it("refuses a zero key", () => {
    expect(() => sim.simIsoIsolated(host, "bad", 0n, 0n)).toThrow(RangeError);
  });
});
