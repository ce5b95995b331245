import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { claimOverlaps, collectClaims, type IdClaim } from "../../lib/inventory/claims.js";
import type { UserNamespaceEntry, UserNamespaceInventory } from "../../lib/inventory/inventory.js";
import { KUBELET_DEFAULT_SCHEME, kubeletNextSlot, parseKubeletUserns } from "../../lib/inventory/kubelet.js";
import { nsfsMounts, parseNsLink } from "../../lib/inventory/scan.js";
import { SYSTEMD_RANGES } from "../../lib/inventory/systemd.js";
import { IdMap } from "../../lib/model/idmap.js";
import { unescapeMountinfo } from "../../lib/model/mountinfo.js";

describe("inventory: /proc text", () => {
  it("parses namespace links and nothing else", () => {
    expect(parseNsLink("user:[4026531837]")).toEqual({ type: "user", ino: 4026531837n });
    expect(parseNsLink("net:[4026531840]")).toEqual({ type: "net", ino: 4026531840n });
    expect(parseNsLink("pipe:[12345]")).toBeUndefined();
    expect(parseNsLink("socket:[1]")).toBeUndefined();
    expect(parseNsLink("/dev/null")).toBeUndefined();
    expect(parseNsLink("user:[12a]")).toBeUndefined();
  });

  it("finds nsfs bind mounts in mountinfo, with escaped mount points", () => {
    const text = [
      "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
      "87 67 0:4 user:[4026532176] /tmp/ns\\040file rw - nsfs nsfs rw",
      "88 67 0:4 net:[4026532300] /run/netns/a rw shared:5 - nsfs nsfs rw",
      "89 67 0:50 / /proc rw - proc proc rw",
    ].join("\n");
    expect(nsfsMounts(text)).toEqual([
      { type: "user", ino: 4026532176n, mountPoint: "/tmp/ns file" },
      { type: "net", ino: 4026532300n, mountPoint: "/run/netns/a" },
    ]);
    expect(unescapeMountinfo("a\\011b\\134c")).toBe("a\tb\\c");
  });
});

describe("inventory: kubelet facts", () => {
  const m = (hostId: number, containerId = 0, length = 65536) => ({ hostId, containerId, length });
  it("accepts only what the kubelet accepts", () => {
    const ok = JSON.stringify({ uidMappings: [m(131072)], gidMappings: [m(131072)] });
    expect(parseKubeletUserns(ok)).toEqual({ hostId: 131072, length: 65536 });
    expect(parseKubeletUserns(JSON.stringify({ uidMappings: [m(131072)], gidMappings: [m(196608)] }))).toBeUndefined();
    expect(
      parseKubeletUserns(JSON.stringify({ uidMappings: [m(131072, 1)], gidMappings: [m(131072, 1)] })),
    ).toBeUndefined();
    expect(
      parseKubeletUserns(JSON.stringify({ uidMappings: [m(1), m(2)], gidMappings: [m(1), m(2)] })),
    ).toBeUndefined();
    expect(parseKubeletUserns("{")).toBeUndefined();
  });

  it("scans slots forward from the start and wraps, as the kubelet's random scan does", () => {
    const s = { first: 65536, length: 4 * 65536, idsPerPod: 65536 }; // slots 0..3 = 65536..262144
    expect(kubeletNextSlot(s, [], 0)).toEqual({ hostId: 65536, length: 65536, slot: 0 });
    expect(kubeletNextSlot(s, [{ hostId: 65536 }], 0)?.hostId).toBe(131072);
    expect(kubeletNextSlot(s, [{ hostId: 262144 }], 3)?.hostId).toBe(65536); // wraps
    const full = [65536, 131072, 196608, 262144].map((hostId) => ({ hostId }));
    expect(kubeletNextSlot(s, full, 1)).toBeUndefined();
    // Out-of-range records do not take a slot.
    expect(kubeletNextSlot(s, [{ hostId: 0 }, { hostId: 2 ** 31 }], 0)?.hostId).toBe(65536);
    // The default scheme: first 65536, 65535 slots, the last one at 4294901760.
    expect(kubeletNextSlot(KUBELET_DEFAULT_SCHEME, [], 65534)?.hostId).toBe(4294901760);
  });
});

describe("inventory: claims", () => {
  it("systemd's documented ranges are sorted, disjoint and end at 2^32-1", () => {
    for (let i = 1; i < SYSTEMD_RANGES.length; i++) {
      const a = SYSTEMD_RANGES[i - 1]!;
      expect(a.start + a.count).toBeLessThanOrEqual(SYSTEMD_RANGES[i]!.start);
    }
    const last = SYSTEMD_RANGES[SYSTEMD_RANGES.length - 1]!;
    expect(last.start + last.count - 1).toBe(4294967295);
    expect(SYSTEMD_RANGES.find((r) => r.start === 524288)?.count).toBe(1879048191 - 524288 + 1);
  });

  it("merges subid files, live maps and leases, and finds overlaps between different claimants only", () => {
    const dir = mkdtempSync(join(tmpdir(), "userns-claims-"));
    try {
      writeFileSync(join(dir, "subuid"), "alice:100000:65536\nalice:165536:10\n");
      writeFileSync(join(dir, "subgid"), "alice:100000:65536\n");
      const ns = {
        ino: 4026532500n,
        initial: false,
        current: false,
        lowerIdsIn: "reader",
        pids: [42],
        uidMap: IdMap.of([0, 120000, 1000]),
        gidMap: IdMap.of([0, 500000, 10]),
      } as unknown as UserNamespaceEntry;
      const inv = { namespaces: [ns] } as unknown as UserNamespaceInventory;
      const claims = collectClaims({
        subuid: join(dir, "subuid"),
        subgid: join(dir, "subgid"),
        inventory: inv,
        systemd: false,
        kubeletRootDir: join(dir, "none"),
        leases: [
          {
            id: "0123456789abcdef",
            purpose: "t",
            uid: { start: 165000, count: 1000 },
            gid: { start: 700000, count: 1 },
            mode: "range",
            createdAt: "",
            creatorUid: 0,
          },
        ],
      });
      const uid = claims.filter((c) => c.kind === "uid").map((c) => `${c.source}:${c.start}+${c.count}`);
      expect(uid).toEqual(["subuid:100000+65536", "namespace:120000+1000", "lease:165000+1000", "subuid:165536+10"]);
      const o = claimOverlaps(claims);
      const desc = (c: IdClaim) => `${c.source} ${c.claimant}`;
      expect(o.map((x) => `${x.kind} ${desc(x.a)} / ${desc(x.b)} ${x.start}+${x.count}`)).toEqual([
        "uid subuid alice / namespace user:[4026532500] 120000+1000",
        "uid subuid alice / lease 0123456789abcdef 165000+536",
        "uid lease 0123456789abcdef / subuid alice 165536+10",
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
