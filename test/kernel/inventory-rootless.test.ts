/**
 * The inventory and the allocator as the unprivileged CI user (`usernstest`,
 * created by scripts/ci-user.sh): its own namespaces appear with it as the
 * owner, other users' processes are counted as not readable, and `alloc`'s
 * default lease directory is the user's own state directory.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { INIT_USER_NS_INO } from "../../lib/kernel/nsfs.js";
import { describeKernel } from "../helpers/kernel.js";
import { childEnv, compiledLib } from "../helpers/mountns.js";

const user = process.env.USERNS_TEST_USER ?? "usernstest";
let uid = -1;
let gid = -1;
let home = "";

describeKernel("inventory as the unprivileged CI user", () => {
  beforeAll(() => {
    try {
      uid = Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim());
      gid = Number(execFileSync("id", ["-g", user], { encoding: "utf8" }).trim());
    } catch {
      throw new Error(`the CI user ${user} does not exist: run bash scripts/ci-user.sh`);
    }
    home = mkdtempSync(join(tmpdir(), "userns-inv-home-"));
    chmodSync(home, 0o777);
    // Compiling the library for the child takes a while on a busy machine: not inside the test's time.
    compiledLib();
  }, 180_000);
  afterAll(() => {
    rmSync(home, { recursive: true, force: true });
  });

  it("lists its own namespaces with itself as owner, and leases in its own state directory", () => {
    const r = spawnSync(process.execPath, [join(import.meta.dirname, "..", "fixtures", "inventory-rootless.mjs")], {
      uid,
      gid,
      cwd: "/",
      env: { ...childEnv(), USERNS_LIB: compiledLib(), HOME: home, XDG_STATE_HOME: "" },
      encoding: "utf8",
      timeout: 60_000,
    });
    if (r.status !== 0) throw new Error(`scenario failed (${r.status}): ${r.stderr}`);
    const o = JSON.parse(r.stdout) as {
      uid: number;
      hidden: number;
      lib: { owner: number; pids: number[]; heldBy: string[]; uid: string; via: string; parent: string } | null;
      unshare: { owner: number; pids: number[]; uid: string; via: string; parent: string } | null;
      leaseDir: string;
      leases: { id: string; uid: { start: number; count: number }; creatorUid: number }[];
      a: { start: number; count: number };
      b: { start: number; count: number };
    };
    expect(o.uid).toBe(uid);
    // Root's processes (and others') are there but not ours to look into.
    expect(o.hidden).toBeGreaterThan(0);
    expect(o.lib).toEqual({
      owner: uid,
      pids: [],
      heldBy: ["fd"],
      uid: `0 ${uid} 1`,
      via: "helper",
      parent: String(INIT_USER_NS_INO),
    });
    expect(o.unshare?.owner).toBe(uid);
    expect(o.unshare?.pids.length).toBe(1);
    expect(o.unshare?.uid).toBe(`0 ${uid} 1`);
    expect(o.unshare?.via).toBe("process");
    expect(o.leaseDir).toBe(join(home, ".local", "state", "userns", "leases"));
    expect(o.leases.length).toBe(2);
    expect(o.leases.every((l) => l.creatorUid === uid)).toBe(true);
    expect(o.a.start + o.a.count <= o.b.start || o.b.start + o.b.count <= o.a.start).toBe(true);
    // The user's own subuid range (300000:65536 in CI) is a claim like any other.
    for (const x of [o.a, o.b]) expect(x.start + x.count <= 300000 || x.start >= 365536).toBe(true);
  });
});
