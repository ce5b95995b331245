/**
 * The sandbox benchmark's C programs build and do what the bench says they do: the floor
 * builds the sandbox and runs /bin/true in it (it exits non-zero otherwise), and bwrap started
 * from C runs. Two iterations each; no timing is judged here (speed claims are the bench's).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeKernel } from "../helpers/kernel.js";
import { hostMountinfo } from "../helpers/mountns.js";

const bench = join(import.meta.dirname, "..", "..", "scripts", "bench");
let dir = "";

describeKernel("sandbox benchmark programs", () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "userns-benchsb-"));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("sandbox-floor.c builds the sandbox and runs /bin/true in it; the host's mounts are unchanged", () => {
    const bin = join(dir, "sandbox-floor");
    execFileSync("gcc", ["-O2", "-o", bin, join(bench, "sandbox-floor.c")]);
    const before = hostMountinfo();
    const r = JSON.parse(execFileSync(bin, ["2", dir, "samples"], { encoding: "utf8" }));
    expect(r.samplesUs).toHaveLength(2);
    expect(hostMountinfo()).toBe(before);
  });

  it("bwrap-from-c.c runs bwrap with the benchmark's arguments", () => {
    const bin = join(dir, "bwrap-from-c");
    execFileSync("gcc", ["-O2", "-o", bin, join(bench, "bwrap-from-c.c")]);
    const bwrap = execFileSync("sh", ["-c", "command -v bwrap"], { encoding: "utf8" }).trim();
    const args = ["--ro-bind", "/", "/", "--bind", dir, dir, "--tmpfs", "/tmp", "--dev", "/dev", "--proc", "/proc"];
    const more = ["--unshare-user", "--unshare-pid", "--unshare-net", "--new-session", "--die-with-parent"];
    const r = JSON.parse(
      execFileSync(bin, ["2", "samples", bwrap, ...args, ...more, "--cap-drop", "ALL", "/bin/true"], {
        encoding: "utf8",
      }),
    );
    expect(r.samplesUs).toHaveLength(2);
  });
});
