import { readlinkSync } from "node:fs";
import { afterAll, expect, it } from "vitest";
import { UserNamespace } from "../../lib/namespaces/user-namespace.js";
import { spawn } from "../../lib/spawn/index.js";
import { describeKernel } from "../helpers/kernel.js";

describeKernel("UserNamespace handles", () => {
  afterAll(() => UserNamespace.clearCache());

  it("holds a namespace after its helper process is gone, with identity, owner, parent and maps", async () => {
    const ns = await UserNamespace.create({
      uidMap: "0 100000 65536",
      gidMap: "0 100000 65536",
      setgroups: "deny",
      cache: false,
    });
    expect(ns.fd).toBeGreaterThan(2);
    expect(readlinkSync(`/proc/self/fd/${ns.fd}`)).toBe(`user:[${ns.identity.ino}]`);
    expect(typeof ns.id).toBe("bigint");
    expect(ns.ownerUid).toBe(0);
    expect(ns.isInitial).toBe(false);
    const m = ns.maps();
    expect([m.uid.toString(), m.gid.toString(), m.setgroups, m.lowerIdsIn]).toEqual([
      "0 100000 65536\n",
      "0 100000 65536\n",
      "deny",
      "reader",
    ]);
    expect(m.readFrom.ino).toBe(4026531837n);
    expect(ns.mapping).toEqual({
      method: "direct",
      uidMap: "0 100000 65536\n",
      gidMap: "0 100000 65536\n",
      setgroups: "deny",
    });
    const parent = ns.parent();
    expect(parent?.isInitial).toBe(true);
    expect(parent?.parent()).toBeUndefined();
    parent?.close();
    ns.close();
    ns.close();
    expect(() => ns.maps()).toThrow(expect.objectContaining({ code: "EBADF" }));
  });

  it("caches by parent and maps: the same map reuses the namespace, cache:false makes a new one", async () => {
    const a = await UserNamespace.create({ uidMap: "0 120000 10", gidMap: "0 120000 10" });
    const b = await UserNamespace.create({ uidMap: "0 120000 10", gidMap: "0 120000 10" });
    const c = await UserNamespace.create({ uidMap: "0 120000 10", gidMap: "0 120000 10", cache: false });
    const d = await UserNamespace.create({ uidMap: "0 120000 11", gidMap: "0 120000 10" });
    expect(a.equals(b)).toBe(true);
    expect(a.fd).not.toBe(b.fd);
    expect(a.equals(c)).toBe(false);
    expect(a.equals(d)).toBe(false);
    a.close();
    // b stays valid on its own fd.
    expect(b.maps().uid.toString()).toBe("0 120000 10\n");
    for (const h of [b, c, d]) h.close();
  });

  it("reads the maps of a namespace known only by fd through a helper that joins it", () => {
    const made = UserNamespace.createSync({ uidMap: "0 130000 7", gidMap: "0 140000 7", cache: false });
    const byFd = UserNamespace.fromPath(`/proc/self/fd/${made.fd}`);
    expect(byFd.equals(made)).toBe(true);
    expect(byFd.maps().uid.toString()).toBe("0 130000 7\n");
    expect(byFd.maps().gid.toString()).toBe("0 140000 7\n");
    byFd.close();
    made.close();
  });

  it("fromPid and current", async () => {
    const child = spawn("sleep", ["5"], { namespaces: ["user"], uidMap: "0 150000 3", gidMap: "0 150000 3" });
    await new Promise<void>((r) => child.once("spawn", r));
    const ns = UserNamespace.fromPid(child.pid!);
    expect(ns.maps().uid.toString()).toBe("0 150000 3\n");
    child.kill("SIGKILL");
    await child;
    // Still held after the process is gone.
    expect(ns.ownerUid).toBe(0);
    const cur = UserNamespace.current();
    expect(cur.isInitial).toBe(true);
    expect(cur.maps().lowerIdsIn).toBe("parent");
    ns.close();
    cur.close();
  });

  it("refuses to enter a namespace from this multithreaded process, explaining why", () => {
    const cur = UserNamespace.current();
    expect(() => cur.enter()).toThrow(expect.objectContaining({ code: "ERR_USERNS_MULTITHREADED", syscall: "setns" }));
    cur.close();
  });

  it("refuses unknown create options", async () => {
    await expect(UserNamespace.create({ uidmap: "0 0 1" } as never)).rejects.toThrow(
      /unknown UserNamespace.create option "uidmap"/,
    );
  });
});
