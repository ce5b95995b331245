/**
 * Sandboxes on the real kernel: every scenario of test/fixtures/sandbox-scenarios.mjs runs twice, as root and as
 * the unprivileged CI user (its own Node process each, against a compiled copy of lib/), and must give the same
 * results. In-process root tests check what a scenario cannot see from inside: the host's mount table, fds,
 * zombies, and idmapped binds (which need root in the initial namespace).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nativePath } from "../../lib/kernel/native.js";
import type { FsOperation } from "../../lib/sandbox/types.js";
import { describeKernel } from "../helpers/kernel.js";
import { children, fdTable, run } from "../helpers/spawn.js";

const user = process.env.USERNS_TEST_USER ?? "usernstest";
const root = join(import.meta.dirname, "..", "..");
let outDir = "";
let scratch = "";
let uid = -1;
let gid = -1;

type Result = {
  ok: boolean;
  code: number | string | null;
  stdout?: string;
  stderr?: string;
  step?: string;
  syscall?: string;
  path?: string;
  message?: string;
  thrown?: boolean;
};

function scenario(name: string, asUser: boolean, env: Record<string, string> = {}): Record<string, unknown> & Result {
  const dir = join(scratch, asUser ? "user" : "root", name);
  mkdirSync(dir, { recursive: true });
  if (asUser) chownSync(dir, uid, gid);
  const r = spawnSync(process.execPath, [join(root, "test/fixtures/sandbox-scenarios.mjs"), name, dir], {
    ...(asUser ? { uid, gid } : {}),
    cwd: "/",
    env: { ...process.env, USERNS_LIB: outDir, USERNS_BINDING: nativePath(), HOME: "/", ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`scenario ${name} failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown> & Result;
}

const BUSYBOX_MOUNTS = [
  "/ /",
  "/usr/bin/busybox /bin/busybox",
  "/ /proc",
  "/sys /proc/sys",
  "/irq /proc/irq",
  "/bus /proc/bus",
  "/ /dev",
  "/null /dev/null",
  "/zero /dev/zero",
  "/full /dev/full",
  "/random /dev/random",
  "/urandom /dev/urandom",
  "/tty /dev/tty",
  "/ /dev/pts",
  "/ /tmp",
];

describeKernel("sandbox: filesystem plan, process and privileges", () => {
  beforeAll(() => {
    try {
      uid = Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim());
      gid = Number(execFileSync("id", ["-g", user], { encoding: "utf8" }).trim());
    } catch {
      throw new Error(`the CI user ${user} does not exist: run bash scripts/ci-user.sh`);
    }
    outDir = mkdtempSync(join(tmpdir(), "userns-sandbox-lib-"));
    scratch = mkdtempSync(join(tmpdir(), "userns-sandbox-scratch-"));
    execFileSync(process.execPath, [
      join(root, "node_modules/typescript/bin/tsc"),
      "-p",
      join(root, "tsconfig.build.json"),
      "--outDir",
      outDir,
    ]);
    execFileSync("chmod", ["-R", "a+rX", outDir]);
    execFileSync("chmod", ["a+rx", scratch]);
  }, 120_000);
  afterAll(() => {
    if (outDir) rmSync(outDir, { recursive: true, force: true });
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  for (const asUser of [false, true]) {
    describe(asUser ? "as the unprivileged CI user" : "as root", () => {
      it("builds the bwrap-like sandbox (ro /, dev, proc, tmpfs /tmp, new user/pid/net/uts) with host binaries", () => {
        const r = scenario("bwrapLike", asUser);
        expect(r.ok).toBe(true);
        const lines = (r.stdout ?? "").split("\n");
        expect(lines[0]).toBe("sbx");
        expect(lines[1]).toBe("1");
        expect(lines).toContain("/ ro,nosuid,nodev,relatime ext4");
        expect(lines).toContain("/dev rw,nosuid,nodev,relatime tmpfs");
        expect(lines).toContain("/dev/pts rw,nosuid,noexec,relatime devpts");
        expect(lines).toContain("/proc rw,nosuid,nodev,noexec,relatime proc");
        expect(lines).toContain("/tmp rw,nosuid,nodev,relatime tmpfs");
        expect(lines).toContain("data");
        expect(lines).toContain("touch: cannot touch '/usr/sbx-test': Read-only file system");
        expect(lines).toContain("core fd full null ptmx pts random shm stderr stdin stdout tty urandom zero ");
      });

      it("makes a read-only bind read-only recursively: a submount refuses writes with EROFS", () => {
        const r = scenario("roSubmount", asUser);
        expect(r.stdout).toBe(
          "touch: cannot touch '/dev/shm/sbx-ro-test': Read-only file system\nrc=1\nro,nosuid,nodev,relatime\nro,nosuid,nodev,relatime\n",
        );
      });

      it("runs busybox-static as the whole root: the old root is visible nowhere, only the plan's mounts exist", () => {
        const r = scenario("busybox", asUser);
        expect(r.ok).toBe(true);
        expect(r.stdout).toBe(`1\nbin dev proc tmp \n${BUSYBOX_MOUNTS.join("\n")}\nbb\n`);
      });

      it("resolves destinations inside the new root: a symlink cannot lead a mount outside it", () => {
        const r = scenario("symlinkEscape", asUser) as unknown as {
          inside: Result;
          host: Result;
          hostDirEntries: string[];
        };
        expect(r.inside.stdout).toBe("bound copy made-through-link \n0123456789");
        expect(r.host.ok).toBe(false);
        expect(r.host.code).toBe("ENOENT");
        expect(r.host.step).toBe("filesystem step 20 (bind /etc/hostname → /tmp/hostlink/bound)");
        expect(r.hostDirEntries).toEqual([]);
      });

      it("writes files from a string, bytes and an fd, with modes; binds data read-only or read-write; chmod", () => {
        const r = scenario("files", asUser);
        expect(r.stdout).toBe(
          "600 /etc/secret\n640 /etc/fromfd\n666 /etc/bytes\n711 /private\n700 /private/deep\ns3cretfrom-an-fdABro-data\nrc=1\nrw-datay\n",
        );
        expect(r.stderr).toBe("sh: can't create /etc/robind: Read-only file system\n");
      });

      it('init "reaper": pid 1 reaps orphans, the program is pid 2, its exit status is the handle\'s', () => {
        const r = scenario("reaper", asUser);
        expect(r.code).toBe(3);
        // Only pid 1 (the exec'd init, where the build has it next to the addon: not the sanitizer build's) and the
        // program remain: the orphaned sleep was reaped (no zombie).
        const init = existsSync(join(dirname(nativePath()), "userns-init")) ? "userns-init" : "node";
        expect(r.stdout).toBe(`pid=2\n1 (${init}) S\n2 (sh) R\n`);
        expect(scenario("reaperSignal", asUser).code).toBe(128 + 15);
        // Without the init binary, pid 1 is a fork-like copy of the parent that does the same.
        const f = scenario("reaper", asUser, { USERNS_INIT: "none" });
        expect(f.code).toBe(3);
        expect(f.stdout).toMatch(/^pid=2\n1 \(\S+\) S\n2 \(sh\) R\n$/);
        expect(f.stdout).not.toContain("userns-init");
        expect(scenario("pid1", asUser).stdout).toBe("1\n");
      });

      it("sets the capability sets (none, some, all), bounding and ambient included; no_new_privs", () => {
        expect(scenario("capsNone", asUser).stdout).toBe(
          "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n",
        );
        const some = (1n << 12n) | (1n << 18n);
        const hex = some.toString(16).padStart(16, "0");
        expect(scenario("capsSome", asUser).stdout).toBe(
          `CapInh:\t${hex}\nCapPrm:\t${hex}\nCapEff:\t${hex}\nCapBnd:\t${hex}\nCapAmb:\t${hex}\n`,
        );
        const last = Number(readFileSync("/proc/sys/kernel/cap_last_cap", "utf8"));
        const all = ((1n << BigInt(last + 1)) - 1n).toString(16).padStart(16, "0");
        expect(scenario("capsAll", asUser).stdout).toBe(`CapEff:\t${all}\nCapBnd:\t${all}\n`);
      });

      it("brings loopback up in the new network namespace (and leaves it down when asked)", () => {
        const r = scenario("loopback", asUser) as unknown as { up: Result; down: Result };
        expect(r.up.stdout).toMatch(/^1: lo: <LOOPBACK,UP,LOWER_UP>/);
        expect(r.down.stdout).toMatch(/^1: lo: <LOOPBACK> /);
      });

      it("installs a seccomp program last: the program runs under it", () => {
        expect(scenario("seccomp", asUser).stdout).toBe(
          "mkdir: can't create directory '/tmp/d': Operation not permitted\nrc=1\nstill-running\n",
        );
      });

      it("disableUserNamespaces: the program cannot create a user namespace (ENOSPC)", () => {
        expect(scenario("disableUserns", asUser).stdout).toBe(
          "unshare: unshare failed: No space left on device\nrc=1\n         0          0          1\n",
        );
      });

      it("overlay: a temporary upper on tmpfs, and read-only; layers bottom first; the host is untouched", () => {
        const r = scenario("overlay", asUser) as unknown as { tmp: Result; ro: Result; hostUntouched: boolean };
        expect(r.tmp.stdout).toBe("upper-a\nlower-b\nnew\n");
        expect(r.ro.stdout).toBe("upper-a\ntouch: /ov/z: Read-only file system\nrc=1\n");
        expect(r.hostUntouched).toBe(true);
      });

      it("mqueue, remount read-only, cwd inside the new root", () => {
        expect(scenario("mqueue", asUser).stdout).toBe("/dev/mqueue mqueue\n");
        expect(scenario("remountRo", asUser).stdout).toBe("touch: /data/x: Read-only file system\nrc=1\n");
        expect(scenario("cwdInside", asUser).stdout).toBe("/tmp\n");
      });

      it("names every failing operation: index, paths, errno, syscall", () => {
        const e = scenario("errors", asUser) as unknown as Record<string, Result>;
        const fail = (r: Result | undefined, message: string, syscall: string): void => {
          expect(r?.ok).toBe(false);
          expect(r?.message).toBe(message);
          expect(r?.syscall).toBe(syscall);
        };
        fail(
          e.missingSource,
          "filesystem step 19 (bind /srv/sbx-nonexistent → /data): ENOENT: source does not exist",
          "stat",
        );
        expect(e.missingSource?.path).toBe("/srv/sbx-nonexistent");
        expect(e.optionalSource?.stdout).toBe("ran\n");
        fail(
          e.notMountpoint,
          "filesystem step 20 (remountReadOnly /d): EINVAL: the destination is not a mountpoint",
          "mount_setattr",
        );
        fail(
          e.chmodMissing,
          "filesystem step 19 (chmod 0700 /nope): ENOENT: the destination does not exist in the new root",
          "openat2",
        );
        fail(
          e.symlinkConflict,
          // The plan made /bin/sh a link to busybox: the error names it, in bwrap's words.
          "filesystem step 19 (symlink elsewhere → /bin/sh): EEXIST: existing destination is busybox",
          "readlinkat",
        );
        fail(
          e.underFile,
          "filesystem step 20 (dir /f/sub): ENOTDIR: a parent of the destination is not a directory",
          "openat2",
        );
        fail(
          e.overlayMissing,
          "filesystem step 19 (overlay /srv/sbx-no-lower:/ → /ov): ENOENT: source does not exist",
          "stat",
        );
        fail(
          e.notFound,
          "executing sh (searched in PATH inside the sandbox): ENOENT: not found in PATH inside the sandbox",
          "execve",
        );
        expect(e.usage?.code).toBe("ERR_USERNS_USAGE");
        expect(e.usage?.message).toMatch(/^filesystem\[0\] \(bind\): source must be an absolute path/);
        expect(e.hostnameNoUts?.code).toBe("ERR_USERNS_USAGE");
        fail(
          e.procNoPidns,
          "filesystem step 16 (proc /proc): EPERM: procfs can only be mounted by a process in a pid namespace owned by its user namespace",
          "fsmount",
        );
      });
    });
  }

  describe("in this process (root)", () => {
    const bb: FsOperation[] = [
      { op: "dir", dest: "/bin" },
      { op: "bind", source: "/usr/bin/busybox", dest: "/bin/busybox", readOnly: true },
      { op: "symlink", target: "busybox", dest: "/bin/sh" },
      { op: "proc", dest: "/proc" },
      { op: "dev", dest: "/dev" },
      { op: "tmpfs", dest: "/tmp" },
    ];
    const opts = {
      namespaces: ["user", "mount", "pid", "uts", "net", "ipc"] as const,
      uidMap: "0 0 1",
      gidMap: "0 0 1",
      env: { PATH: "/bin" },
    };

    it("sandboxed spawns and failures leave no zombie, fd or mount behind, and the host's mountinfo unchanged", async () => {
      const mountsBefore = readFileSync("/proc/self/mountinfo", "utf8");
      const fdsBefore = fdTable();
      const n = 40;
      for (let i = 0; i < n; i++) {
        const good = await run("sh", ["-c", "echo ok"], {
          ...opts,
          filesystem: [...bb, { op: "file", dest: "/etc/x", content: "x" }],
          init: i % 2 === 0 ? "reaper" : "program",
          hostname: "h",
        });
        expect(good.stdout).toBe("ok\n");
        // A failure in the child (the destination's parent is a file) and one in the parent (missing source).
        await expect(
          run("sh", [], {
            ...opts,
            filesystem: [...bb, { op: "file", dest: "/f", content: "" }, { op: "dir", dest: "/f/x" }],
          }),
        ).rejects.toMatchObject({ code: "ENOTDIR", step: "filesystem step 7 (dir /f/x)" });
        await expect(
          run("sh", [], { ...opts, filesystem: [...bb, { op: "bind", source: "/nonexistent-sbx", dest: "/x" }] }),
        ).rejects.toMatchObject({ code: "ENOENT" });
      }
      expect(children().filter((c) => c.state === "Z")).toEqual([]);
      expect(fdTable()).toEqual(fdsBefore);
      expect(readFileSync("/proc/self/mountinfo", "utf8")).toBe(mountsBefore);
    }, 120_000);

    it("keeps named capabilities for a non-root uid across exec (keepcaps, then ambient)", async () => {
      const r = await run("sh", ["-c", "busybox id -u; busybox grep -E '^Cap(Eff|Amb)' /proc/self/status"], {
        namespaces: ["user", "mount", "pid"],
        uidMap: "0 100000 65536",
        gidMap: "0 100000 65536",
        uid: 1000,
        gid: 1000,
        env: { PATH: "/bin" },
        filesystem: bb,
        capabilities: ["CAP_NET_BIND_SERVICE"],
      });
      expect(r.stdout).toBe("1000\nCapEff:\t0000000000000400\nCapAmb:\t0000000000000400\n");
    });

    it("binds from an fd, a device bind keeps device nodes usable, attach places a detached mount, overlay with a host upper", async () => {
      const dir = mkdtempSync(join(tmpdir(), "userns-sandbox-ops-"));
      const { openSync, closeSync, existsSync } = await import("node:fs");
      const { idmapMount } = await import("../../lib/mounts/idmap-mount.js");
      const fd = openSync(dir, "r");
      try {
        writeFileSync(join(dir, "marker"), "via-fd");
        for (const d of ["lower", "upper", "work"]) mkdirSync(join(dir, d));
        writeFileSync(join(dir, "lower", "l"), "low");
        const m = idmapMount(dir, { uidMap: "0 0 65536", gidMap: "0 0 65536" });
        try {
          const r = await run(
            "sh",
            [
              "-c",
              "busybox cat /viafd/marker; echo; busybox head -c 1 /devs/zero | busybox wc -c; busybox cat /attached/marker; echo; echo w > /ov/new; busybox cat /ov/l",
            ],
            {
              ...opts,
              filesystem: [
                ...bb,
                { op: "bind", source: { fd }, dest: "/viafd", readOnly: true },
                { op: "bind", source: "/dev", dest: "/devs", devices: true },
                { op: "attach", mount: m, dest: "/attached" },
                {
                  op: "overlay",
                  dest: "/ov",
                  lower: [join(dir, "lower")],
                  upper: join(dir, "upper"),
                  work: join(dir, "work"),
                },
              ],
            },
          );
          expect(r.stdout).toBe("via-fd\n1\nvia-fd\nlow");
          // The overlay's writes went to the host's upper directory.
          expect(existsSync(join(dir, "upper", "new"))).toBe(true);
        } finally {
          m.close();
        }
      } finally {
        closeSync(fd);
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('capabilities "all" keeps what the child holds (here: this process\'s own set, no new user namespace)', async () => {
      const own = /CapEff:\t(\S+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
      const r = await run("/bin/sh", ["-c", "grep CapEff /proc/self/status"], { capabilities: "all" });
      expect(r.stdout).toBe(`CapEff:\t${own}\n`);
    });

    it("overlay paths may contain ':', ',' and a backslash (upperdir/workdir escaped, lowerdir+ taken as is)", async () => {
      const dir = mkdtempSync(join(tmpdir(), "userns-sandbox-ovl-"));
      try {
        const lower = join(dir, "lo:w,e\\x");
        const upper = join(dir, "up:p,e\\r");
        const work = join(dir, "wo:r,k\\");
        for (const d of [lower, upper, work]) mkdirSync(d);
        writeFileSync(join(lower, "f"), "low\n");
        const r = await run("sh", ["-c", "busybox cat /ov/f; echo new > /ov/g"], {
          ...opts,
          filesystem: [...bb, { op: "overlay", dest: "/ov", lower: [lower], upper, work }],
        });
        expect(r.stdout).toBe("low\n");
        expect(readFileSync(join(upper, "g"), "utf8")).toBe("new\n");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("idmappedBind: an idmapped bind of a host directory, owners seen through the mount's map", async () => {
      const dir = mkdtempSync(join(tmpdir(), "userns-sandbox-idmap-"));
      try {
        // Readable by the namespace's root, which is not the host's.
        chmodSync(dir, 0o755);
        writeFileSync(join(dir, "owned-by-0"), "x");
        chownSync(join(dir, "owned-by-0"), 0, 0);
        const base = {
          namespaces: ["user", "mount", "pid"] as const,
          uidMap: "0 100000 65536",
          gidMap: "0 100000 65536",
          env: { PATH: "/bin" },
        };
        const plain = await run("sh", ["-c", "busybox stat -c '%u %g' /data/owned-by-0"], {
          ...base,
          filesystem: [...bb, { op: "bind", source: dir, dest: "/data" }],
        });
        // On-disk 0 is not mapped in the namespace (0 → 100000): it shows as the overflow id.
        expect(plain.stdout).toBe("65534 65534\n");
        const idm = await run(
          "sh",
          [
            "-c",
            "busybox stat -c '%u %g' /data/owned-by-0; busybox grep ' /data ' /proc/self/mountinfo | busybox grep -c idmapped",
          ],
          {
            ...base,
            filesystem: [
              ...bb,
              { op: "idmappedBind", source: dir, dest: "/data", uidMap: "0 100000 65536", gidMap: "0 100000 65536" },
            ],
          },
        );
        expect(idm.stdout).toBe("0 0\n1\n");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
