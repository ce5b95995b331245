/**
 * The lease allocator on the real kernel: 64 concurrent allocating
 * processes never hand out overlapping ranges; ranges used by a live
 * namespace made outside the library, by a subuid entry or by a recorded
 * kubelet pod are never handed out; leases survive a restart and are
 * reclaimed once their namespace is gone; refusals name what is in the way.
 */
import { type ChildProcess, spawn as spawnChild } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { UsernsError } from "../../lib/errors.js";
import {
  allocateRange,
  type Lease,
  readLeases,
  releaseLease,
  tieLease,
  withLeaseLock,
} from "../../lib/inventory/leases.js";
import { native } from "../../lib/kernel/native.js";
import { INIT_USER_NS_INO } from "../../lib/kernel/nsfs.js";
import { UserNamespace } from "../../lib/namespaces/user-namespace.js";
import { describeKernel } from "../helpers/kernel.js";
import { childEnv, compiledLib } from "../helpers/mountns.js";

const fixture = join(import.meta.dirname, "..", "fixtures", "inventory-alloc.mjs");
let work = "";
let emptySubid = "";
const started: ChildProcess[] = [];

function overlaps(a: { start: number; count: number }, b: { start: number; count: number }): boolean {
  return a.start < b.start + b.count && b.start < a.start + a.count;
}

/** Options that keep a test to its own claim sources (no host subuid, an empty kubelet root). */
function isolated(dir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { dir, subuid: emptySubid, subgid: emptySubid, kubeletRootDir: join(work, "no-kubelet"), ...extra };
}

function runAllocator(
  opts: Record<string, unknown>,
): Promise<{ ok: boolean; lease?: Lease; code?: string; reclaimed?: string[] }> {
  return new Promise((resolve, reject) => {
    const c = spawnChild(process.execPath, [fixture, JSON.stringify(opts)], {
      env: { ...childEnv(), USERNS_LIB: compiledLib() },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    c.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    c.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    c.on("error", reject);
    c.on("close", (code) => {
      if (code !== 0) reject(new Error(`allocator exited ${code}: ${err}`));
      else resolve(JSON.parse(out.trim()));
    });
  });
}

describeKernel("lease allocator", () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "userns-alloc-"));
    emptySubid = join(work, "subid-empty");
    writeFileSync(emptySubid, "");
    compiledLib();
  }, 180_000);
  afterAll(() => {
    for (const c of started) c.kill("SIGKILL");
    rmSync(work, { recursive: true, force: true });
  });

  it("64 concurrent allocating processes never hand out overlapping ranges", async () => {
    const dir = join(work, "concurrent");
    const results = await Promise.all(
      Array.from({ length: 64 }, (_, i) =>
        runAllocator(isolated(dir, { size: 4096 + (i % 3) * 1000, align: 1, purpose: `p${i}` })),
      ),
    );
    expect(results.every((r) => r.ok)).toBe(true);
    const leases = readLeases(dir);
    expect(leases.length).toBe(64);
    expect(new Set(leases.map((l) => l.id)).size).toBe(64);
    for (let i = 0; i < leases.length; i++) {
      for (let j = i + 1; j < leases.length; j++) {
        expect(overlaps(leases[i]!.uid, leases[j]!.uid), `${leases[i]!.id} vs ${leases[j]!.id}`).toBe(false);
        expect(overlaps(leases[i]!.gid, leases[j]!.gid)).toBe(false);
      }
    }
  }, 400_000);

  it("never hands out ids a live namespace made outside the library maps", async () => {
    // util-linux unshare, maps written by this (root) process: host ids 65536..131071.
    const c = spawnChild("unshare", ["--user", "sleep", "60"], { stdio: "ignore" });
    started.push(c);
    for (let i = 0; i < 3000; i++) {
      try {
        if (readlinkSync(`/proc/${c.pid}/ns/user`) !== `user:[${INIT_USER_NS_INO}]`) break;
      } catch {
        // not yet
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    writeFileSync(`/proc/${c.pid}/uid_map`, "0 65536 65536");
    writeFileSync(`/proc/${c.pid}/gid_map`, "0 65536 65536");
    const { lease } = allocateRange(isolated(join(work, "live")) as Parameters<typeof allocateRange>[0]);
    expect(overlaps(lease.uid, { start: 65536, count: 65536 })).toBe(false);
    expect(lease.uid.start).toBeGreaterThanOrEqual(131072);
    c.kill("SIGKILL");
  });

  it("never hands out a subuid entry's ids", () => {
    const sub = join(work, "subuid-taken");
    writeFileSync(sub, "someone:65536:200000\n");
    const { lease } = allocateRange({ ...isolated(join(work, "sub")), subuid: sub, size: 65536 } as never);
    expect(overlaps(lease.uid, { start: 65536, count: 200000 })).toBe(false);
    expect(lease.uid.start % 65536).toBe(0);
  });

  it("never hands out a recorded kubelet pod's ids, and kubelet mode gives the kubelet's slot", () => {
    const root = join(work, "kubelet");
    for (const [pod, host] of [
      ["pod-a", 65536],
      ["pod-b", 196608],
    ] as const) {
      mkdirSync(join(root, "pods", pod), { recursive: true });
      const m = { hostId: host, containerId: 0, length: 65536 };
      writeFileSync(join(root, "pods", pod, "userns"), JSON.stringify({ uidMappings: [m], gidMappings: [m] }));
    }
    const base = { ...isolated(join(work, "k1")), kubeletRootDir: root, systemd: false };
    const a = allocateRange({ ...base, size: 65536 } as never).lease;
    expect(overlaps(a.uid, { start: 65536, count: 65536 })).toBe(false);
    expect(overlaps(a.uid, { start: 196608, count: 65536 })).toBe(false);
    // Kubelet mode on an otherwise empty host: slots are (first/65536 + i)·65536 from 65536; slots 0 and 2 are
    // pods; scanning from slot 0 the kubelet takes slot 1 (131072), from slot 2 it takes slot 3 (262144).
    const empty = { discovery: {} as never, namespaces: [], unreached: [] };
    const k = { ...isolated(join(work, "k2")), kubeletRootDir: root, systemd: false, inventory: empty };
    const s1 = allocateRange({ ...k, kubelet: { rootDir: root, start: 0 } } as never).lease;
    expect(s1.uid).toEqual({ start: 131072, count: 65536 });
    expect(s1.gid).toEqual(s1.uid);
    expect(s1.mode).toBe("kubelet");
    const s2 = allocateRange({ ...k, kubelet: { rootDir: root, start: 2 } } as never).lease;
    expect(s2.uid.start).toBe(262144);
    // The slot the kubelet would pick is refused when someone else claims it, naming them.
    const sub = join(work, "subuid-k");
    writeFileSync(sub, "other:393216:10\n");
    let err: unknown;
    try {
      allocateRange({ ...k, dir: join(work, "k3"), subuid: sub, kubelet: { rootDir: root, start: 5 } } as never);
    } catch (e) {
      err = e;
    }
    expect((err as UsernsError).code).toBe("ERR_USERNS_RANGE_TAKEN");
    expect((err as UsernsError).message).toContain("subuid other");
  });

  it("leases survive a restart: a new process sees them and allocates around them", async () => {
    const dir = join(work, "restart");
    const first = await runAllocator(isolated(dir, { purpose: "first" }));
    expect(first.ok).toBe(true);
    const second = await runAllocator(isolated(dir, { purpose: "second" }));
    expect(
      readLeases(dir)
        .map((l) => l.id)
        .sort(),
    ).toEqual([first.lease!.id, second.lease!.id].sort());
    expect(overlaps(first.lease!.uid, second.lease!.uid)).toBe(false);
  });

  it("a lease tied to a namespace is kept while it lives and reclaimed once it is gone (by NS_GET_ID)", () => {
    const dir = join(work, "tied");
    const ns = UserNamespace.createSync({ uidMap: "0 70000 10", gidMap: "0 70000 10", cache: false });
    const { lease } = allocateRange(isolated(dir, { tie: ns }) as never);
    expect(lease.namespace?.id).toBe(ns.id);
    const again = allocateRange(isolated(dir) as never);
    expect(again.reclaimed).toEqual([]);
    expect(readLeases(dir).some((l) => l.id === lease.id)).toBe(true);
    ns.close();
    const third = allocateRange(isolated(dir) as never);
    expect(third.reclaimed.map((l) => l.id)).toEqual([lease.id]);
    expect(readLeases(dir).some((l) => l.id === lease.id)).toBe(false);
    // tieLease on an existing lease, to a path.
    const t = tieLease(again.lease.id, "/proc/self/ns/user", { dir });
    expect(t.namespace?.ino).toBe(INIT_USER_NS_INO);
  });

  it("release removes a lease; an unknown id is ENOENT; a malformed one a usage error", () => {
    const dir = join(work, "release");
    const { lease } = allocateRange(isolated(dir) as never);
    expect(releaseLease(lease.id, { dir }).id).toBe(lease.id);
    expect(readLeases(dir)).toEqual([]);
    expect(() => releaseLease(lease.id, { dir })).toThrow(/ENOENT/);
    expect(() => releaseLease("../etc", { dir })).toThrow(/ERR_USERNS_USAGE/);
    expect(() => allocateRange({ ...isolated(dir), sise: 10 } as never)).toThrow(/unknown allocateRange option "sise"/);
  });

  it("the lease lock is an flock: held for the whole pick, dropped after", () => {
    const dir = join(work, "lockcheck");
    const b = native();
    const probe = (): boolean => {
      const fd = openSync(join(dir, ".lock"), "r");
      try {
        return b.tryLockExclusive(fd);
      } finally {
        closeSync(fd);
      }
    };
    const inside = withLeaseLock(dir, probe);
    expect(inside).toBe(false);
    expect(probe()).toBe(true);
  });

  it("a refusal names what is in the way", () => {
    const sub = join(work, "subuid-full");
    writeFileSync(sub, "alice:100000:65536\nbob:165536:65536\n");
    let err: unknown;
    // No live namespaces: other tests on the host map 100000-165535 too, and would be named first.
    const none = {
      discovery: {
        method: "proc",
        listns: { available: false, code: "ENOSYS" },
        processes: 0,
        hiddenProcesses: 0,
        mountNamespaces: 0,
      },
      namespaces: [],
      unreached: [],
    };
    try {
      allocateRange({
        ...isolated(join(work, "full")),
        inventory: none,
        subuid: sub,
        min: 100000,
        max: 231071,
        size: 65536,
        align: 1,
      } as never);
    } catch (e) {
      err = e;
    }
    expect(UsernsError.isUsernsError(err)).toBe(true);
    expect((err as UsernsError).code).toBe("ERR_USERNS_NO_FREE_RANGE");
    expect((err as UsernsError).message).toMatch(/subuid alice .*subuid bob|subuid bob .*subuid alice/);
  });
});
