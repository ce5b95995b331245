/**
 * A plan that starts with a bind at "/" skips the base tmpfs and its pivot_root: the bind goes over the host's
 * root and becomes the new root (lib/sandbox/prepare.ts `stackable`, native/child/sandbox.cc kBaseStacked). The
 * program must see the same world either way. The same plan with the first bind `optional` (its source, "/",
 * always exists) takes the base path; both run here, and what the program sees (its mount table without mount
 * ids, the listing and owners of its root, /dev and /tmp) must be equal. Also: a failing operation after the
 * stacked bind, and 20 stacked spawns, leave no mount, fd or zombie behind.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { FsOperation } from "../../lib/sandbox/types.js";
import type { SpawnOptions } from "../../lib/spawn/index.js";
import { describeKernel } from "../helpers/kernel.js";
import { children, fdTable, run } from "../helpers/spawn.js";

let work = "";

// What the program sees: mountinfo from the mount point on (ids and parents differ per run), then its root.
const LOOK = [
  "cut -d' ' -f5- /proc/self/mountinfo",
  // Without the link counts: /proc's counts the host's processes (nr_processes), which come and go.
  "ls -la --time-style=+ / /dev /tmp 2>&1 | awk '{ $2 = \"\"; print }'",
  `stat -c '%n %a %u %g %F' / /dev /tmp /proc "${"$"}W" "${"$"}W/f"`,
  "cat /proc/self/status | grep -E '^(Cap|NoNewPrivs|Seccomp:)'",
].join("; ");

function plan(optionalRoot: boolean): FsOperation[] {
  return [
    { op: "bind", source: "/", dest: "/", readOnly: true, optional: optionalRoot },
    { op: "bind", source: work, dest: work },
    { op: "tmpfs", dest: "/tmp" },
    { op: "dev", dest: "/dev" },
    { op: "proc", dest: "/proc" },
    { op: "dir", dest: "/tmp/d", mode: 0o700 },
    { op: "symlink", dest: "/tmp/l", target: "/etc" },
    { op: "file", dest: "/tmp/f", content: "data", mode: 0o640 },
  ];
}

const base: SpawnOptions = {
  namespaces: ["user", "mount", "pid", "net"],
  uidMap: "0 0 1",
  gidMap: "0 0 1",
  capabilities: [],
  detached: true,
  parentDeathSignal: "SIGKILL",
};

describeKernel("sandbox: a plan that starts with a bind at / (no base tmpfs, one pivot_root)", () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "userns-stacked-"));
    writeFileSync(join(work, "f"), "x");
  });
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("the program sees the same mounts, files and owners as through the base", async () => {
    const env = { ...process.env, W: work };
    const stacked = await run("sh", ["-c", LOOK], { ...base, env, filesystem: plan(false) });
    const throughBase = await run("sh", ["-c", LOOK], { ...base, env, filesystem: plan(true) });
    expect(stacked.code).toBe(0);
    expect(throughBase.code).toBe(0);
    expect(stacked.stdout).toContain(`\n${work} rw,nosuid,nodev`);
    expect(stacked.stdout).not.toContain("oldroot");
    expect(stacked.stdout).toBe(throughBase.stdout);
    expect(stacked.stderr).toBe(throughBase.stderr);
  });

  it("a plan with a second mount at / takes the base path: the later bind becomes the root", async () => {
    // The child refuses a second mount at "/" when stacked (the pivot takes the first): prepare must not stack.
    const r = await run("sh", ["-c", "grep -c ' / / ' /proc/self/mountinfo; grep -c ' / / rw,' /proc/self/mountinfo"], {
      ...base,
      filesystem: [
        { op: "bind", source: "/", dest: "/", readOnly: true },
        { op: "bind", source: "/", dest: "/" },
        { op: "proc", dest: "/proc" },
      ],
    });
    // One mount at "/" (the second bind; the first went with the base), and it is the writable one.
    expect(r.stdout).toBe("1\n1\n");
  });

  it("stacked spawns and failures leave no mount, fd or zombie behind", async () => {
    const mountsBefore = readFileSync("/proc/self/mountinfo", "utf8");
    const fdsBefore = fdTable();
    for (let i = 0; i < 20; i++) {
      const ok = await run("sh", ["-c", "echo ok"], { ...base, filesystem: plan(false) });
      expect(ok.stdout).toBe("ok\n");
      // A failure in the child after the stacked bind: the destination's parent is a file.
      await expect(
        run("sh", [], {
          ...base,
          filesystem: [...plan(false), { op: "dir", dest: "/tmp/f/x" }],
        }),
      ).rejects.toMatchObject({ code: "ENOTDIR", step: "filesystem step 8 (dir /tmp/f/x)" });
    }
    expect(children().filter((c) => c.state === "Z")).toEqual([]);
    expect(fdTable()).toEqual(fdsBefore);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).toBe(mountsBefore);
  }, 120_000);
});
