/**
 * The sandbox model against the library's own sandboxes: facts collected, the sandbox
 * spawned, the prediction cross-checked from inside while the program runs (mountinfo, and
 * statx from a helper that joined the sandbox's namespaces, so owners are the kernel's own
 * translation). Root with and without idmapped binds (by maps, by a held namespace, a detached
 * idmapped mount attached); rootless through newuidmap. An idmapped bind of a host directory
 * is not possible rootless (the host mount belongs to the initial user namespace, and
 * mount_setattr needs CAP_SYS_ADMIN there), so the rootless sandbox has plain binds.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { crossCheckSandbox } from "../../lib/crosscheck/sandbox.js";
import { nativePath } from "../../lib/kernel/native.js";
import { describeKernel } from "../helpers/kernel.js";
import { compiledLib, hostMountinfo } from "../helpers/mountns.js";

const fixture = join(import.meta.dirname, "..", "fixtures", "sandbox-spawn.mjs");
const user = process.env.USERNS_TEST_USER ?? "usernstest";
let dir = "";

interface Result {
  ok: boolean;
  discrepancies: unknown[];
  predicted: { target: string; owner: { uid: number; gid: number }; idmapped: boolean; readOnly: boolean }[];
  installed: string;
}

function run(config: object, as?: { uid: number; gid: number }): Result {
  const r = spawnSync(process.execPath, [fixture, JSON.stringify(config)], {
    ...(as ?? {}),
    cwd: "/",
    env: { ...process.env, USERNS_LIB: compiledLib(), USERNS_BINDING: nativePath(), HOME: "/" },
    encoding: "utf8",
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`fixture failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Result;
}

function fsArgs(): string[] {
  return [
    ...["--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib"],
    ...["--symlink", "usr/lib64", "/lib64", "--bind", join(dir, "work"), "/work"],
    ...["--ro-bind", join(dir, "other"), "/other", "--tmpfs", "/tmp", "--chmod", "1777", "/tmp"],
    ...["--dev", "/dev", "--proc", "/proc", "--mqueue", "/dev/mqueue", "--dir", "/srv"],
  ];
}

/** Root's sandboxes: a subordinate range; kuid 0 (the host's root, proc's root owner) is not mapped. */
const ROOT_MAP = "0 100000 65536";

const owner = (r: Result, target: string) => r.predicted.find((m) => m.target === target)?.owner;

describeKernel("sandbox model against the library's sandboxes, cross-checked from inside", () => {
  beforeAll(() => {
    compiledLib(); // the compiled copy the fixtures import (cached; slow only the first time)
    dir = mkdtempSync(join(tmpdir(), "userns-sbcheck-"));
    chmodSync(dir, 0o755);
    for (const d of ["work", "other", "shared", "l1", "l2", "up", "wk"]) {
      mkdirSync(join(dir, d));
      chmodSync(join(dir, d), 0o755);
    }
    chownSync(join(dir, "work"), 100005, 100005);
    // A busybox-static tree to be the whole root.
    const rootfs = join(dir, "rootfs");
    mkdirSync(join(rootfs, "bin"), { recursive: true });
    for (const d of ["proc", "dev", "tmp"]) mkdirSync(join(rootfs, d));
    copyFileSync(
      execFileSync("sh", ["-c", "command -v busybox"], { encoding: "utf8" }).trim(),
      join(rootfs, "bin", "busybox"),
    );
    chmodSync(join(rootfs, "bin", "busybox"), 0o755);
    for (const a of ["sh", "sleep"]) symlinkSync("busybox", join(rootfs, "bin", a));
    execFileSync("chmod", ["-R", "a+rX", rootfs]);
    chownSync(join(dir, "other"), 300005, 300005);
  }, 180_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("as root, plain binds: the prediction equals what the program sees", () => {
    const before = hostMountinfo();
    const r = run({ fsArgs: fsArgs(), uidMap: ROOT_MAP, gidMap: ROOT_MAP });
    expect(r.discrepancies).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.installed).toMatch(/^\s+0\s+100000\s+65536\n$/);
    // 100005 on the host is 5 inside; 300005 is not mapped: nobody. The plan runs as root of the
    // namespace (kuid 100000), so the tmpfs roots are 0; proc's root is kuid 0: nobody.
    expect(owner(r, "/work")).toEqual({ uid: 5, gid: 5 });
    expect(owner(r, "/other")).toEqual({ uid: 65534, gid: 65534 });
    expect(owner(r, "/tmp")).toEqual({ uid: 0, gid: 0 });
    expect(owner(r, "/proc")).toEqual({ uid: 65534, gid: 65534 });
    expect(hostMountinfo()).toBe(before);
  });

  it("a process that is gone is ESRCH, not a raw read error", async () => {
    const gone = spawnSync("true").pid!;
    await expect(crossCheckSandbox(gone, [])).rejects.toMatchObject({ code: "ESRCH" });
  });

  it("names every difference from a wrong prediction", () => {
    const r = run({ fsArgs: fsArgs(), uidMap: ROOT_MAP, gidMap: ROOT_MAP, tamper: true });
    expect(r.ok).toBe(false);
    expect(r.discrepancies).toEqual([
      { target: "/tmp", field: "owner", kernel: "0:0", model: "42:42" },
      { target: "/tmp", field: "mode", kernel: "01777", model: "0755" },
      { target: "/nowhere", field: "missing", kernel: null, model: "tmpfs mount" },
      { target: "/dev/mqueue", field: "extra", kernel: "mqueue mount", model: null },
    ]);
  });

  it("as root, idmapped binds by maps, by a held namespace, and an attached idmapped mount", () => {
    const before = hostMountinfo();
    const shared = join(dir, "shared");
    const r = run({
      fsArgs: fsArgs(),
      uidMap: ROOT_MAP,
      gidMap: ROOT_MAP,
      idmapped: [
        // on-disk 0 → 100001 through the mount → 1 inside
        { kind: "maps", source: shared, dest: "/srv/a", map: "0 100001 65536" },
        // on-disk 0 → 200000 through the held namespace's maps → not mapped inside: nobody
        { kind: "userns", source: shared, dest: "/srv/b", map: "0 200000 1000" },
        { kind: "attach", source: shared, dest: "/srv/c", map: "0 100007 1" },
      ],
    });
    expect(r.discrepancies).toEqual([]);
    expect(r.ok).toBe(true);
    expect(owner(r, "/srv/a")).toEqual({ uid: 1, gid: 1 });
    expect(owner(r, "/srv/b")).toEqual({ uid: 65534, gid: 65534 });
    expect(owner(r, "/srv/c")).toEqual({ uid: 7, gid: 7 });
    // Listed by mount id: the attached mount was made first (by the caller), then the two idmapped binds (by spawn).
    expect(r.predicted.filter((m) => m.idmapped).map((m) => m.target)).toEqual(["/srv/c", "/srv/a", "/srv/b"]);
    expect(r.predicted.find((m) => m.target === "/srv/b")?.readOnly).toBe(true);
    expect(hostMountinfo()).toBe(before);
  });

  it("overlays (read-only, tmpfs upper, host upper), chmod, remount-ro, dir, mqueue", () => {
    const r = run({
      fsArgs: [
        ...fsArgs(),
        ...["--overlay-src", join(dir, "l1"), "--overlay-src", join(dir, "l2"), "--ro-overlay", "/ov1"],
        ...["--overlay-src", join(dir, "l1"), "--tmp-overlay", "/ov2"],
        ...["--overlay-src", join(dir, "l1"), "--overlay", join(dir, "up"), join(dir, "wk"), "/ov3"],
        ...["--perms", "0700", "--size", "1048576", "--tmpfs", "/t", "--chmod", "0711", "/t", "--remount-ro", "/t"],
        ...["--perms", "0700", "--dir", "/d"],
      ],
      uidMap: ROOT_MAP,
      gidMap: ROOT_MAP,
    });
    expect(r.discrepancies).toEqual([]);
    expect(r.predicted.find((m) => m.target === "/t")).toMatchObject({ readOnly: true, mode: 0o711 });
  });

  it("a whole tree bound at / replaces the tmpfs root (plain bind, and idmapped through a held namespace)", () => {
    const rootfs = join(dir, "rootfs");
    const rest = ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"];
    const plain = run({ fsArgs: ["--bind", rootfs, "/", ...rest], uidMap: ROOT_MAP, gidMap: ROOT_MAP });
    expect(plain.discrepancies).toEqual([]);
    expect(plain.predicted[0]).toMatchObject({ target: "/", fsType: "ext4", owner: { uid: 65534, gid: 65534 } });
    const idmapped = run({
      fsArgs: rest,
      uidMap: ROOT_MAP,
      gidMap: ROOT_MAP,
      idmapped: [{ kind: "userns", source: rootfs, dest: "/", map: ROOT_MAP, first: true, readOnly: false }],
    });
    expect(idmapped.discrepancies).toEqual([]);
    // Root-owned on disk, root-owned inside: 0 → 100000 through the mount → 0.
    expect(idmapped.predicted[0]).toMatchObject({ target: "/", idmapped: true, owner: { uid: 0, gid: 0 } });
  });

  it("rootless (the unprivileged user, maps through newuidmap): the prediction equals what the program sees", () => {
    const uid = Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", user], { encoding: "utf8" }).trim());
    const r = run(
      { fsArgs: fsArgs(), uidMap: `0 ${uid} 1\n1 300000 65535`, gidMap: `0 ${gid} 1\n1 300000 65535` },
      { uid, gid },
    );
    expect(r.discrepancies).toEqual([]);
    expect(r.ok).toBe(true);
    // The creator (the user itself) is 0 inside; 300005 is 6; kuid 0 (proc's root, /usr) is nobody.
    expect(owner(r, "/tmp")).toEqual({ uid: 0, gid: 0 });
    expect(owner(r, "/other")).toEqual({ uid: 6, gid: 6 });
    expect(owner(r, "/usr")).toEqual({ uid: 65534, gid: 65534 });
    expect(owner(r, "/proc")).toEqual({ uid: 65534, gid: 65534 });
  });
});
