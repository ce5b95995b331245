/**
 * Spawning from a worker thread: no warnings, and what parentDeathSignal
 * means there. The kernel sends the parent-death signal when the *thread*
 * that created the child exits, so a program spawned from a worker with
 * parentDeathSignal dies when that worker is terminated, though the process
 * lives on; without it the program survives the worker (control).
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { beforeAll, expect, it } from "vitest";
import { nativePath } from "../../lib/kernel/native.js";
import { compiledLib } from "../helpers/mountns.js";
import { describeRootless, runAsTestUser } from "../helpers/rootless.js";

const script = join(import.meta.dirname, "..", "fixtures", "worker-scenarios.mjs");
const env = (): NodeJS.ProcessEnv => ({ USERNS_LIB: compiledLib(), USERNS_BINDING: nativePath() });

describeRootless("spawning from a worker thread", () => {
  // The compiled copy of lib/ is built once per change of lib/: that can take a while on a loaded machine.
  beforeAll(() => {
    compiledLib();
  }, 180_000);

  it("with pipes prints no warnings (the child's pipe ends are closed by the addon that opened them)", () => {
    const r = spawnSync(process.execPath, [script, "warnings"], {
      env: { ...process.env, ...env() },
      encoding: "utf8",
      timeout: 60_000,
    });
    expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({
      status: 0,
      stdout: `${JSON.stringify({ out: "hi\n".repeat(5) })}\n`,
      stderr: "",
    });
  });

  it.each([
    { arg: "pdeathsig", dies: true, name: "with parentDeathSignal the program dies when the worker is terminated" },
    { arg: "control", dies: false, name: "without it the program outlives the worker (control)" },
  ])("$name", ({ arg, dies }) => {
    const r = runAsTestUser<{ before: boolean; afterTerminate: boolean }>(script, [arg], env(), 60_000);
    expect(r.before).toBe(true);
    expect(r.afterTerminate).toBe(!dies);
  });
});
