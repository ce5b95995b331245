/**
 * `userns run` with the sandbox flags, end to end: the CLI's main() from a compiled copy of
 * lib/ in a child process (real stdio and exit status), as root and as the unprivileged CI user.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { nativePath } from "../../lib/kernel/native.js";
import { describeKernel } from "../helpers/kernel.js";
import { compiledLib, hostMountinfo } from "../helpers/mountns.js";

const user = process.env.USERNS_TEST_USER ?? "usernstest";
let dir = "";

/** Under `npm run test:sanitize` the child Node loads the sanitized addon: it needs the same preload. */
function sanitizerEnv(): NodeJS.ProcessEnv {
  const keep = ["LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "USERNS_EXPECT_SANITIZER"];
  return Object.fromEntries(keep.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]));
}

function userns(args: string[], as?: { uid: number; gid: number }) {
  const main = join(compiledLib(), "cli", "main.js");
  const r = spawnSync(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `const m = await import(${JSON.stringify(main)}); process.exitCode = await m.main(process.argv.slice(1));`,
      ...args,
    ],
    {
      ...(as ?? {}),
      cwd: "/",
      env: { ...sanitizerEnv(), PATH: "/usr/bin:/bin", USERNS_BINDING: nativePath(), HOME: "/" },
      encoding: "utf8",
      timeout: 30_000,
    },
  );
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const hostTree = ["--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib"];
const lib64 = ["--symlink", "usr/lib64", "/lib64"];

describeKernel("userns run: sandbox flags", () => {
  beforeAll(() => {
    compiledLib();
    dir = mkdtempSync(join(tmpdir(), "userns-clisb-"));
    chmodSync(dir, 0o755);
    // A busybox-static root for --root.
    const root = join(dir, "rootfs");
    mkdirSync(join(root, "bin"), { recursive: true });
    mkdirSync(join(root, "proc"));
    copyFileSync(
      execFileSync("sh", ["-c", "command -v busybox"], { encoding: "utf8" }).trim(),
      join(root, "bin", "busybox"),
    );
    chmodSync(join(root, "bin", "busybox"), 0o755);
    for (const a of ["sh", "cat", "ls", "hostname", "id"]) symlinkSync("busybox", join(root, "bin", a));
    execFileSync("chmod", ["-R", "a+rX", dir]);
  }, 180_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("as root: hostname, pid 1, no capabilities, the environment, the working directory, read-only binds", () => {
    const before = hostMountinfo();
    const r = userns([
      "run",
      "--map-users",
      "0:100000:65536",
      "--map-groups",
      "0:100000:65536",
      "--user",
      "0",
      "--group",
      "0",
      "--pid",
      ...hostTree,
      ...lib64,
      "--perms",
      "1777",
      "--tmpfs",
      "/tmp",
      "--dev",
      "/dev",
      "--proc",
      "/proc",
      "--tmpfs",
      "/ro",
      "--remount-ro",
      "/ro",
      "--hostname",
      "box",
      "--cap-drop",
      "ALL",
      "--clearenv",
      "--setenv",
      "PATH",
      "/usr/bin",
      "--chdir",
      "/tmp",
      "--new-session",
      "--die-with-parent",
      "--",
      "sh",
      "-c",
      'hostname; echo $$; pwd; grep CapEff /proc/self/status; env | sort | tr "\\n" " "; echo; touch /ro/x 2>&1 | grep -o "Read-only file system"; exit 3',
    ]);
    expect(r.err).toBe("");
    expect(r.out).toBe("box\n1\n/tmp\nCapEff:\t0000000000000000\nPATH=/usr/bin PWD=/tmp \nRead-only file system\n");
    expect(r.code).toBe(3);
    expect(hostMountinfo()).toBe(before);
  });

  it("rootless: --map-root-user with --mount-proc and --wd, as the unprivileged user", () => {
    const uid = Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", user], { encoding: "utf8" }).trim());
    const r = userns(
      [
        "run",
        "--map-root-user",
        ...hostTree,
        ...lib64,
        "--tmpfs",
        "/work",
        "--mount-proc",
        "--wd",
        "/work",
        "--",
        "sh",
        "-c",
        "id -u; echo $$; pwd; cat /proc/self/uid_map | tr -s ' '",
      ],
      { uid, gid },
    );
    expect(r.err).toBe("");
    expect(r.out).toBe(`0\n1\n/work\n 0 ${uid} 1\n`);
    expect(r.code).toBe(0);
  });

  it("--root: a busybox-static tree as the new root", () => {
    const r = userns([
      "run",
      "--map-root-user",
      "--root",
      join(dir, "rootfs"),
      "--mount-proc",
      "--hostname",
      "bb",
      "--",
      "/bin/sh",
      "-c",
      "hostname; ls /; echo $$",
    ]);
    expect(r.err).toBe("");
    expect(r.out).toBe("bb\nbin\nproc\n1\n");
  });

  it("a flag without its values is a usage error (exit 2) and nothing runs", () => {
    const r = userns(["run", "--map-root-user", "--bind", "/usr"]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--bind needs 2 value/);
  });
});
