/**
 * The sandbox model against the kernel: a sandbox built by Debian's bwrap (an independent
 * implementation of the same operations, the reference of bwrap.xml), predicted by the model
 * from host facts collected before it starts, then cross-checked from inside (crossCheckSandbox:
 * mountinfo plus statx from a helper that joined the sandbox's user and mount namespaces).
 * As root and as the unprivileged CI user, whose owners show through a one-id map (most as nobody).
 * The plan is written as `userns run` flags, so the CLI's flag mapping is checked against bwrap too.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { nativePath } from "../../lib/kernel/native.js";
import { describeKernel } from "../helpers/kernel.js";
import { compiledLib, hostMountinfo } from "../helpers/mountns.js";

const fixture = join(import.meta.dirname, "..", "fixtures", "sandbox-bwrap.mjs");
const user = process.env.USERNS_TEST_USER ?? "usernstest";
let dir = "";

function run(
  config: object,
  as?: { uid: number; gid: number },
): {
  ok: boolean;
  discrepancies: unknown[];
  predicted: { target: string; owner: { uid: number; gid: number } }[];
} {
  const r = spawnSync(process.execPath, [fixture, JSON.stringify(config)], {
    ...(as ?? {}),
    cwd: "/",
    env: { ...process.env, USERNS_LIB: compiledLib(), USERNS_BINDING: nativePath(), HOME: "/" },
    encoding: "utf8",
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`fixture failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** The plan, as `userns run` (= bwrap) flags. */
function fsArgs(): string[] {
  return [
    ...["--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib"],
    ...["--symlink", "usr/lib64", "/lib64", "--bind", join(dir, "work"), "/work"],
    ...["--ro-bind", join(dir, "other"), "/other", "--tmpfs", "/tmp", "--perms", "0700", "--tmpfs", "/t2"],
    ...["--chmod", "1777", "/tmp", "--dev", "/dev", "--proc", "/proc", "--mqueue", "/dev/mqueue"],
    // A bind through a symlink the plan made: the mount lands on the resolved path.
    ...["--dir", "/usr2", "--symlink", "usr2", "/u", "--tmpfs", "/u/sub", "--remount-ro", "/usr2/sub"],
  ];
}

describeKernel("sandbox model against a bwrap sandbox, cross-checked from inside", () => {
  beforeAll(() => {
    compiledLib(); // the compiled copy the fixtures import (cached; slow only the first time)
    dir = mkdtempSync(join(tmpdir(), "userns-sbmodel-"));
    chmodSync(dir, 0o755);
    mkdirSync(join(dir, "work"), { mode: 0o777 });
    chmodSync(join(dir, "work"), 0o777);
    // Owned by an id no sandbox here maps: seen as nobody inside.
    mkdirSync(join(dir, "other"), { mode: 0o750 });
    chmodSync(join(dir, "other"), 0o755);
    chownSync(join(dir, "other"), 1234, 1235);
  }, 180_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("as root: the prediction equals what the program sees (one-id map 0 0 1)", () => {
    const before = hostMountinfo();
    // bwrap covers the entries of the new /proc its process can write (as root: irq and bus).
    const r = run({
      bwrapArgs: ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-net", "--die-with-parent"],
      fsArgs: fsArgs(),
      procCovers: [
        { name: "irq", mode: 0o555 },
        { name: "bus", mode: 0o555 },
      ],
    });
    expect(r.discrepancies).toEqual([]);
    expect(r.ok).toBe(true);
    const other = r.predicted.find((m) => m.target === "/other");
    expect(other?.owner).toEqual({ uid: 65534, gid: 65534 });
    expect(r.predicted.find((m) => m.target === "/usr2/sub")).toBeDefined();
    expect(hostMountinfo()).toBe(before);
  });

  it("as the unprivileged user (rootless): owners through its one-id map, proc root as nobody", () => {
    const uid = Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", user], { encoding: "utf8" }).trim());
    const r = run(
      {
        bwrapArgs: ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--die-with-parent"],
        fsArgs: fsArgs(),
      },
      { uid, gid },
    );
    expect(r.discrepancies).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.predicted.find((m) => m.target === "/proc")?.owner).toEqual({ uid: 65534, gid: 65534 });
    expect(r.predicted.find((m) => m.target === "/tmp")?.owner).toEqual({ uid, gid });
  });
});
