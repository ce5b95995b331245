import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { predictMountCase } from "../../lib/model/index.js";
import { describeKernel } from "../helpers/kernel.js";

// Asks the running kernel the questions the mount-case predictor answers
// (case-formats §2, spec §8), through a small Python runner (python3 is a
// node-gyp prerequisite) inside `unshare --mount --propagation private`: the
// tmpfs mounts live only in that private mount namespace, never on the host.
const cases = readFileSync(join(import.meta.dirname, "fixtures/model-mount-cases.jsonl"), "utf8")
  .split("\n")
  .filter((l) => l.trim() !== "" && !l.startsWith("#"))
  .map((l) => JSON.parse(l) as Record<string, unknown>);

function runKernel(input: Record<string, unknown>[]): unknown[] {
  const dir = mkdtempSync(join(tmpdir(), "userns-mountcases-"));
  try {
    const r = spawnSync(
      "unshare",
      ["--mount", "--propagation", "private", "python3", join(import.meta.dirname, "mount-runner.py"), dir],
      { input: input.map((c) => JSON.stringify(c)).join("\n"), encoding: "utf8", timeout: 60_000 },
    );
    if (r.status !== 0) throw new Error(`runner failed (${r.status}): ${r.stderr}`);
    return r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as unknown);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describeKernel("mount-case predictor against the kernel (spec §8, rules 41–55)", () => {
  const results = new Map<unknown, unknown>();
  it("the runner answers every case", () => {
    for (const r of runKernel(cases)) results.set((r as { id: unknown }).id, r);
    expect(results.size).toBe(cases.length);
  });
  it.each(cases.map((c) => [c.id as string, c]))("%s: prediction equals the kernel's result", (id, c) => {
    expect(results.get(id)).toBeDefined();
    expect(predictMountCase(c)).toEqual(results.get(id));
  });
});
