/**
 * The inventory on the real kernel: namespaces made by the library, by
 * util-linux unshare, nested three deep, held only by a bind-mounted nsfs
 * file (in a private mount namespace), and held only by an fd of another
 * process all appear with the right parent, owner and maps; compared with
 * lsns and with /proc. Other processes on the host make and drop
 * namespaces meanwhile, so the whole-host comparisons allow for what came
 * or went between snapshots, and nothing else.
 */
import { type ChildProcess, execFileSync, spawn as spawnChild } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import { checkInventory } from "../../lib/inventory/check.js";
import {
  listUserNamespaces,
  listUserNamespacesAsync,
  probeListns,
  type UserNamespaceEntry,
} from "../../lib/inventory/inventory.js";
import { native } from "../../lib/kernel/native.js";
import { INIT_USER_NS_INO, nsInfo } from "../../lib/kernel/nsfs.js";
import { UserNamespace } from "../../lib/namespaces/user-namespace.js";
import { spawn } from "../../lib/spawn/index.js";
import { describeKernel } from "../helpers/kernel.js";
import { compiledLib, inPrivateMountNs } from "../helpers/mountns.js";

const started: ChildProcess[] = [];
const handles: UserNamespace[] = [];

function inoOf(path: string): bigint {
  const l = readlinkSync(path);
  return BigInt(l.slice(l.indexOf("[") + 1, -1));
}

/** Starts a program and waits until its user namespace differs from ours (unshare has run). */
async function startIn(args: string[]): Promise<ChildProcess> {
  const c = spawnChild(args[0]!, args.slice(1), { stdio: "ignore" });
  started.push(c);
  for (let i = 0; i < 3000; i++) {
    try {
      if (inoOf(`/proc/${c.pid}/ns/user`) !== INIT_USER_NS_INO) return c;
    } catch {
      // not there yet
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${args.join(" ")} did not enter a new user namespace`);
}

/** The pid of the deepest descendant of `pid` (following the first child), once it is `depth` levels down. */
async function descendant(pid: number, depth: number): Promise<number> {
  for (let i = 0; i < 3000; i++) {
    let p = pid;
    let d = 0;
    for (; d < depth; d++) {
      let kids = "";
      try {
        kids = readFileSync(`/proc/${p}/task/${p}/children`, "utf8").trim();
      } catch {
        break;
      }
      if (kids === "") break;
      p = Number(kids.split(" ")[0]);
    }
    if (d === depth && readFileSync(`/proc/${p}/comm`, "utf8").trim() === "sleep") return p;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("nested chain did not come up");
}

function find(ino: bigint): UserNamespaceEntry {
  const inv = listUserNamespaces();
  const e = inv.namespaces.find((n) => n.ino === ino);
  if (e === undefined) throw new Error(`user:[${ino}] missing from the inventory`);
  return e;
}

const lines = (e: { uidMap: { toString(): string } }) => e.uidMap.toString().trim();

describeKernel("inventory of user namespaces", () => {
  beforeAll(() => {
    UserNamespace.clearCache();
    // The bind-mount scenario runs against the compiled library: compile it outside any test's time.
    compiledLib();
  }, 180_000);
  afterAll(() => {
    for (const c of started) c.kill("SIGKILL");
    for (const h of handles) h.close();
  });

  it("asks the kernel: NS_GET_ID answers on this kernel, and listns is either there or ENOSYS", () => {
    const id = nsInfo("self").id;
    expect(typeof id).toBe("bigint");
    const l = probeListns();
    if (l.available) expect(l.ids).toContain(id);
    else expect(l.code).toBe("ENOSYS");
    const inv = listUserNamespaces();
    expect(inv.discovery.method).toBe(l.available ? "listns" : "proc");
  });

  it("a namespace made by the library, held only by this process's fd, with maps read by a helper", () => {
    const ns = UserNamespace.createSync({ uidMap: "0 200000 1000", gidMap: "0 210000 1000", cache: false });
    handles.push(ns);
    const e = find(ns.identity.ino);
    expect(e.id).toBe(ns.id);
    expect(e.pids).toEqual([]);
    expect(e.heldBy).toContainEqual({ kind: "fd", pid: process.pid, fd: ns.fd });
    expect(e.parent?.ino).toBe(INIT_USER_NS_INO);
    expect(e.ownerUid).toBe(0);
    expect(e.mapsReadVia).toBe("helper");
    expect(e.uidMap.toString().trim()).toBe("0 200000 1000");
    expect(e.gidMap.toString().trim()).toBe("0 210000 1000");
    expect(e.parentView?.uidMap.toString().trim()).toBe("0 200000 1000");
  });

  it("a 340-extent map, read back as 11,220 bytes (more than a map write takes), is read from its process", async () => {
    // Written compactly it fits in one write; /proc shows it as `%10u %10u %10u` lines, 33 bytes each.
    const text = Array.from({ length: 340 }, (_, i) => `${2 * i} ${2 * i} 1`).join("\n");
    expect(text.length).toBeLessThan(4096);
    const ns = UserNamespace.createSync({ uidMap: text, gidMap: text, cache: false });
    handles.push(ns);
    const child = spawn("sleep", ["60"], { join: ns, stdio: "ignore" });
    try {
      const pid = child.pid!;
      for (let i = 0; i < 3000 && inoOf(`/proc/${pid}/ns/user`) !== ns.identity.ino; i++)
        await new Promise((r) => setTimeout(r, 10));
      expect(readFileSync(`/proc/${pid}/uid_map`, "utf8").length).toBe(340 * 33);
      const e = find(ns.identity.ino);
      expect(e.pids).toContain(pid);
      expect(e.mapsReadVia).toBe("process");
      expect(e.uidMap.toString().trim()).toBe(text);
      expect(e.gidMap.toString().trim()).toBe(text);
      expect(e.parentView?.uidMap.size).toBe(340);
    } finally {
      child.kill("SIGKILL");
      await child;
    }
  });

  it("a namespace made by util-linux unshare, with its process and maps", async () => {
    // --map-root-user writes setgroups "deny" itself (a second --setgroups deny after gid_map is EPERM).
    const c = await startIn(["unshare", "--user", "--map-root-user", "sleep", "60"]);
    const ino = inoOf(`/proc/${c.pid}/ns/user`);
    const e = find(ino);
    expect(e.pids).toContain(c.pid);
    expect(e.mapsReadVia).toBe("process");
    expect(e.setgroups).toBe("deny");
    expect(lines(e)).toBe("0 0 1");
    expect(e.parent?.ino).toBe(INIT_USER_NS_INO);
    expect(e.id).toBe(nsInfo(c.pid!).id);
  });

  it("nested three deep (util-linux): each level's parent is the level above", async () => {
    const u = ["unshare", "--user", "--map-root-user"];
    const c = await startIn([...u, ...u, ...u, "sleep", "60"]);
    // unshare execs the next unshare in the same process: one pid, three levels of namespaces.
    const leaf = await descendant(c.pid!, 0);
    const inv = listUserNamespaces();
    const byIno = new Map(inv.namespaces.map((n) => [n.ino, n]));
    const l3 = byIno.get(inoOf(`/proc/${leaf}/ns/user`))!;
    expect(l3.pids).toContain(leaf);
    const l2 = byIno.get(l3.parent!.ino)!;
    const l1 = byIno.get(l2.parent!.ino)!;
    expect(l1.parent?.ino).toBe(INIT_USER_NS_INO);
    expect([l1.depth, l2.depth, l3.depth]).toEqual([1, 2, 3]);
    // Only the leaf has a process; the levels above are kept alive by their child.
    expect(l2.pids).toEqual([]);
    expect(l2.heldBy).toContainEqual({ kind: "child", ino: l3.ino });
    expect(l1.heldBy).toContainEqual({ kind: "child", ino: l2.ino });
    for (const l of [l1, l2, l3]) expect(l.ownerUid).toBe(0);
  });

  it("nested three deep (library) with distinct maps: host view and parent view differ as the kernel says", async () => {
    const l1 = UserNamespace.createSync({ uidMap: "0 230000 10000", gidMap: "0 230000 10000", cache: false });
    const l2 = UserNamespace.createSync({ parent: l1, uidMap: "0 100 1000", gidMap: "0 100 1000", cache: false });
    const l3 = UserNamespace.createSync({ parent: l2, uidMap: "0 10 100", gidMap: "0 10 100", cache: false });
    handles.push(l1, l2, l3);
    const inv = listUserNamespaces();
    const e3 = inv.namespaces.find((n) => n.ino === l3.identity.ino)!;
    const e2 = inv.namespaces.find((n) => n.ino === l2.identity.ino)!;
    expect(e3.parent?.ino).toBe(l2.identity.ino);
    expect(e2.parent?.ino).toBe(l1.identity.ino);
    expect(e3.uidMap.toString().trim()).toBe("0 230110 100");
    expect(e3.parentView?.uidMap.toString().trim()).toBe("0 10 100");
    expect(e2.uidMap.toString().trim()).toBe("0 230100 1000");
    expect(e2.parentView?.uidMap.toString().trim()).toBe("0 100 1000");
    // The parent's view against a real reader in the parent (the model's readback vs /proc).
    const checks = await checkInventory({
      ...inv,
      namespaces: inv.namespaces.filter((n) => [l1, l2, l3].some((h) => h.identity.ino === n.ino)),
    });
    // l1's parent (the initial namespace) is outside the filtered list; l2 and l3 are read from inside l1 and l2.
    expect(checks.map((c) => c.result)).toEqual(["skipped", "agree", "agree"]);
  });

  it("held only by an fd of another process", async () => {
    // --map-root-user writes setgroups "deny" itself (a second --setgroups deny after gid_map is EPERM).
    const c = await startIn(["unshare", "--user", "--map-root-user", "sleep", "60"]);
    const ino = inoOf(`/proc/${c.pid}/ns/user`);
    // A second process opens the namespace file on fd 3; then the namespace's own process goes.
    const holder = spawnChild("sh", ["-c", `exec sleep 60 3</proc/${c.pid}/ns/user`], { stdio: "ignore" });
    started.push(holder);
    for (let i = 0; i < 3000 && inoOfSafe(`/proc/${holder.pid}/fd/3`) !== ino; i++) await pause();
    c.kill("SIGKILL");
    for (let i = 0; i < 3000 && inoOfSafe(`/proc/${c.pid}/ns/user`) !== undefined; i++) await pause();
    const e = find(ino);
    expect(e.pids).toEqual([]);
    expect(e.heldBy).toContainEqual({ kind: "fd", pid: holder.pid, fd: 3 });
    expect(e.mapsReadVia).toBe("helper");
    expect(lines(e)).toBe("0 0 1");
    expect(e.parent?.ino).toBe(INIT_USER_NS_INO);
  });

  it("held only by a bind-mounted nsfs file (in a private mount namespace)", () => {
    const r = inPrivateMountNs<{ found: Record<string, unknown> | null; ino: string; file: string }>(`
      const { execFileSync } = await import("node:child_process");
      const { writeFileSync } = await import("node:fs");
      const { UserNamespace } = await import(LIB + "/namespaces/user-namespace.js");
      const { listUserNamespaces } = await import(LIB + "/inventory/inventory.js");
      const ns = UserNamespace.createSync({ uidMap: "0 240000 100", gidMap: "0 240000 100", cache: false });
      const file = TMP + "/nsfile";
      writeFileSync(file, "");
      execFileSync("mount", ["--bind", "/proc/" + process.pid + "/fd/" + ns.fd, file]);
      const ino = ns.identity.ino;
      ns.close();
      const e = listUserNamespaces().namespaces.find((n) => n.ino === ino);
      out({ ino: String(ino), file, found: e ? { pids: e.pids, heldBy: e.heldBy, uid: e.uidMap.toString().trim(), via: e.mapsReadVia, parent: String(e.parent?.ino) } : null });
    `);
    expect(r.found).not.toBeNull();
    const f = r.found as {
      pids: number[];
      heldBy: { kind: string; mountPoint?: string }[];
      uid: string;
      via: string;
      parent: string;
    };
    expect(f.pids).toEqual([]);
    expect(f.heldBy.filter((h) => h.kind !== "mount")).toEqual([]);
    expect(f.heldBy.some((h) => h.kind === "mount" && h.mountPoint === r.file)).toBe(true);
    expect(f.uid).toBe("0 240000 100");
    expect(f.via).toBe("helper");
    expect(f.parent).toBe(String(INIT_USER_NS_INO));
  });

  it("none missing compared with lsns, none invented compared with /proc", () => {
    const lsns = (): Map<bigint, number> => {
      const j = JSON.parse(execFileSync("lsns", ["-t", "user", "--json"], { encoding: "utf8" })) as {
        namespaces: { ns: number; nprocs: number }[];
      };
      return new Map(j.namespaces.map((n) => [BigInt(n.ns), n.nprocs]));
    };
    const before = lsns();
    const inv = listUserNamespaces();
    const after = lsns();
    const ours = new Map(inv.namespaces.map((n) => [n.ino, n]));
    // Missing: in lsns before and after, so alive throughout our walk.
    for (const ino of before.keys()) if (after.has(ino)) expect(ours.has(ino), `user:[${ino}] missing`).toBe(true);
    // Invented: every entry is backed by what /proc shows now, unless its holder went away meanwhile.
    for (const e of inv.namespaces) {
      const backed: boolean[] = [];
      for (const pid of e.pids) {
        const now = inoOfSafe(`/proc/${pid}/ns/user`);
        if (now !== undefined) backed.push(now === e.ino);
      }
      for (const h of e.heldBy) {
        if (h.kind === "fd") {
          const now = inoOfSafe(`/proc/${h.pid}/fd/${h.fd}`);
          if (now !== undefined) backed.push(now === e.ino);
        } else if (h.kind === "mount") {
          let text: string | undefined;
          try {
            text = readFileSync(`/proc/${h.pid}/mountinfo`, "utf8");
          } catch {
            text = undefined;
          }
          if (text !== undefined) backed.push(text.includes(`user:[${e.ino}]`));
        } else if (h.kind === "child") {
          const child = ours.get(h.ino);
          backed.push(child?.parent?.ino === e.ino);
        } else backed.push(true);
      }
      // Nothing left to look at means all its holders went away: gone, not invented.
      expect(
        backed.every((b) => b),
        `user:[${e.ino}] is not what /proc shows`,
      ).toBe(true);
    }
    // Where lsns saw processes and the namespace is still there, so do we.
    for (const [ino, n] of after) {
      if (before.get(ino) === n && n > 0 && ours.has(ino)) expect(ours.get(ino)!.pids.length).toBeGreaterThan(0);
    }
  });

  it("the async walk (other threads, runs of processes merged in /proc's order) finds what the sync walk finds", async () => {
    const cs = await Promise.all([0, 1, 2].map(() => startIn(["unshare", "--user", "--map-root-user", "sleep", "60"])));
    const fds = readdirCount();
    const [a, b] = [listUserNamespaces(), await listUserNamespacesAsync()];
    expect(readdirCount()).toBe(fds);
    expect(b.discovery.method).toBe(a.discovery.method);
    for (const c of cs) {
      const ino = inoOf(`/proc/${c.pid}/ns/user`);
      const [x, y] = [a, b].map((inv) => inv.namespaces.find((n) => n.ino === ino));
      expect(y?.pids).toEqual([c.pid]);
      expect(y?.mapsReadVia).toBe("process");
      expect(lines(y!)).toBe("0 0 1");
      expect({ ...y, uidMap: lines(y!), gidMap: y!.gidMap.toString(), parentView: undefined }).toEqual({
        ...x,
        uidMap: lines(x!),
        gidMap: x!.gidMap.toString(),
        parentView: undefined,
      });
    }
    // This process's namespace has processes all over /proc, so in many runs of the walk: each pid once.
    const own = b.namespaces.find((n) => n.current)!;
    expect(own.pids).toContain(process.pid);
    expect(new Set(own.pids).size).toBe(own.pids.length);
  });

  it("closes every fd it opened and leaves no child behind", () => {
    const fds = readdirCount();
    listUserNamespaces();
    expect(readdirCount()).toBe(fds);
    expect(native()).toBeDefined();
  });

  it("writes of maps by another tool are seen at once (no caching between calls)", async () => {
    const c = spawnChild("unshare", ["--user", "sleep", "60"], { stdio: "ignore" });
    started.push(c);
    for (let i = 0; i < 3000 && inoOfSafe(`/proc/${c.pid}/ns/user`) === INIT_USER_NS_INO; i++) await pause();
    const ino = inoOf(`/proc/${c.pid}/ns/user`);
    expect(find(ino).uidMap.extents).toEqual([]);
    writeFileSync(`/proc/${c.pid}/uid_map`, "0 250000 10");
    expect(find(ino).uidMap.toString().trim()).toBe("0 250000 10");
  });
});

function inoOfSafe(path: string): bigint | undefined {
  try {
    return inoOf(path);
  } catch {
    return undefined;
  }
}

function pause(): Promise<void> {
  return new Promise((r) => setTimeout(r, 10));
}

function readdirCount(): number {
  return readdirSync("/proc/self/fd").length;
}
