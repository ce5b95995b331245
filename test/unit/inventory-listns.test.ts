/**
 * The listns(2) path of the inventory, with injected answers: this kernel (6.18) has no listns (ENOSYS), so the
 * code that turns a listns answer into the inventory (method, unreached ids, JSON, the `ls` footer) and the probe
 * that reports which method was used are run here on answers handed in, next to a /proc walk's raw result.
 * What stays untested on 6.18: the syscall itself (native/listns.cc: number 470, struct ns_id_req, paging).
 */
import { release } from "node:os";
import { afterEach, describe, expect, it, vi } from "vitest";
import { discoveryLines, inventoryJson } from "../../lib/cli/ls.js";
import { UsernsError } from "../../lib/errors.js";
import { inventoryOf, probeListns } from "../../lib/inventory/inventory.js";
import { native, type ProcScanRaw } from "../../lib/kernel/native.js";
import { CLONE_NEW } from "../../lib/kernel/nsfs.js";

const EPERM = 1;

/** What the native /proc walk returns for a two-level tree: a top namespace (its parent out of view) and a child. */
function walk(): ProcScanRaw {
  return {
    processes: 3,
    hidden: 0,
    namespaces: [
      {
        ino: 4026532001n,
        pids: [1],
        dev: 4n,
        id: 9001n,
        ownerUid: 0,
        parentErrno: EPERM,
        mapsPid: 1,
        uidMap: "         0          0 4294967295\n",
        gidMap: "         0          0 4294967295\n",
        setgroups: "allow\n",
      },
      {
        ino: 4026532002n,
        pids: [3, 2],
        dev: 4n,
        id: 9002n,
        ownerUid: 1000,
        parentIno: 4026532001n,
        parentId: 9001n,
        mapsPid: 2,
        uidMap: "         0     100000      65536\n",
        gidMap: "         0     200000      65536\n",
        setgroups: "deny\n",
      },
    ],
    fds: [],
    mntNamespaces: [],
  };
}

describe("inventory from a listns(2) answer", () => {
  it("says listns was used, and reports ids listns gave that the walk did not reach", () => {
    const inv = inventoryOf({ available: true, ids: [9001n, 9002n, 9003n] }, walk(), { mounts: false });
    expect(inv.discovery.method).toBe("listns");
    expect(inv.discovery.listns).toEqual({ available: true, ids: [9001n, 9002n, 9003n] });
    expect(inv.unreached).toEqual([9003n]);
    expect(inv.namespaces.map((e) => [e.ino, e.id, e.depth])).toEqual([
      [4026532001n, 9001n, 0],
      [4026532002n, 9002n, 1],
    ]);
    const child = inv.namespaces[1]!;
    expect(child.parent).toEqual({ ino: 4026532001n, id: 9001n });
    expect(child.pids).toEqual([2, 3]);
    expect(child.setgroups).toBe("deny");
    expect(child.parentView?.gidMap.toString()).toBe("0 200000 65536\n");
    const j = inventoryJson(inv) as { discovery: { method: string; listns: unknown }; unreached: string[] };
    expect(j.discovery.method).toBe("listns");
    expect(j.discovery.listns).toEqual({ available: true, ids: ["9001", "9002", "9003"] });
    expect(j.unreached).toEqual(["9003"]);
    expect(discoveryLines(inv)).toMatch(/^found by listns\(2\); .*\nlistns ids not reached through \/proc: 9003\n$/);
  });

  it("every listed id reached: nothing unreached, no second footer line", () => {
    const inv = inventoryOf({ available: true, ids: [9002n, 9001n] }, walk(), { mounts: false });
    expect(inv.unreached).toEqual([]);
    expect(discoveryLines(inv).split("\n")).toHaveLength(2);
  });

  it("without listns (ENOSYS): the /proc walk is the method, and the footer names the errno", () => {
    const inv = inventoryOf({ available: false, code: "ENOSYS" }, walk(), { mounts: false });
    expect(inv.discovery.method).toBe("proc");
    expect(inv.unreached).toEqual([]);
    expect((inventoryJson(inv) as { discovery: { listns: unknown } }).discovery.listns).toEqual({
      available: false,
      code: "ENOSYS",
    });
    expect(discoveryLines(inv)).toMatch(/^found by \/proc walk \(listns\(2\): ENOSYS\): 3 processes, /);
  });
});

describe("probeListns: what the addon's listns answered, or its errno", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("ids when the kernel answers", () => {
    const spy = vi.spyOn(native(), "listns").mockReturnValue([7n, 8n]);
    expect(probeListns()).toEqual({ available: true, ids: [7n, 8n] });
    // user namespaces only (CLONE_NEWUSER), any owner
    expect(spy).toHaveBeenCalledWith(CLONE_NEW.user, 0n);
  });

  it("the errno's name when it refuses (ENOSYS before 6.19, EPERM under a seccomp filter)", () => {
    for (const errno of [38, 1]) {
      vi.spyOn(native(), "listns").mockImplementation(() => {
        throw new UsernsError("listing namespaces", { errno, syscall: "listns" });
      });
      expect(probeListns()).toEqual({ available: false, code: errno === 38 ? "ENOSYS" : "EPERM" });
    }
  });

  it("anything but a UsernsError is a bug and is thrown on", () => {
    vi.spyOn(native(), "listns").mockImplementation(() => {
      throw new TypeError("listns(nsType: number, userNsId: bigint)");
    });
    expect(() => probeListns()).toThrow(TypeError);
  });

  it("on this kernel, for real: ENOSYS before 6.19, ids from 6.19 on", () => {
    const [major, minor] = release().split(".").map(Number);
    const r = probeListns();
    if (major! > 6 || (major === 6 && minor! >= 19)) expect(r.available).toBe(true);
    else expect(r).toEqual({ available: false, code: "ENOSYS" });
  });
});
