/**
 * The step protocols are defined once (lib/child/protocol.ts): the C++ side
 * reads native/child/protocol.h, generated from it. These checks fail on any
 * drift: a stale header, an op without a C++ case, a second definition of an
 * op enum, raw-syscall wrapper or reaper next to the shared ones, or N-API in
 * the child's files.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FS_OP, layout, RUNNER_CASE_HEADER, RUNNER_OPS, RUNNER_STEP, SPAWN_OPS } from "../../lib/child/protocol.js";
import { cppOpName, renderProtocolHeader } from "../../lib/child/protocol-header.js";

const root = join(import.meta.dirname, "../..");
const read = (p: string): string => readFileSync(join(root, p), "utf8");
const nativeFiles = (dir: string): string[] =>
  readdirSync(join(root, dir), { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? nativeFiles(join(dir, d.name)) : /\.(cc|h)$/.test(d.name) ? [join(dir, d.name)] : [],
  );
/** The `case kX:` labels of the switch that starts at `marker` in `text`. */
function caseLabels(text: string, marker: string): Set<string> {
  const start = text.indexOf(marker);
  expect(start, marker).toBeGreaterThanOrEqual(0);
  return new Set([...text.slice(start).matchAll(/case (k\w+):/g)].map((m) => m[1]!));
}

describe("child step protocol", () => {
  it("native/child/protocol.h is what lib/child/protocol.ts renders (run `npm run gen:protocol`)", () => {
    expect(read("native/child/protocol.h")).toBe(renderProtocolHeader());
  });

  it("op numbers are distinct in every table", () => {
    for (const t of [SPAWN_OPS, RUNNER_OPS, FS_OP.op, FS_OP.credMode, FS_OP.step]) {
      const nums = Object.values(t).map((v) => (typeof v === "number" ? v : v.op));
      expect(new Set(nums).size).toBe(nums.length);
    }
  });

  it("the spawn child has a case for every spawn op", () => {
    const labels = caseLabels(read("native/child/run.cc"), "CHILD_FN int RunSteps(");
    for (const name of Object.keys(SPAWN_OPS)) expect(labels.has(cppOpName(name)), name).toBe(true);
  });

  it("the verify runner has a case for every runner op", () => {
    const text = read("native/runner.cc");
    const labels = caseLabels(text, "long RunStep(Exec *x, int i)");
    // kSpawn is run by the zygote (RunCase), not by RunStep.
    expect(text).toMatch(/s\.op == kSpawn|case kSpawn/);
    for (const name of Object.keys(RUNNER_OPS))
      if (name !== "spawn") expect(labels.has(cppOpName(name)), name).toBe(true);
  });

  it("the mount helper has a case for every fsOpAs op", () => {
    const labels = caseLabels(read("native/mount.cc"), "Napi::Value FsOpAs(");
    for (const name of Object.keys(FS_OP.op)) expect(labels.has(`kFs${cppOpName(name).slice(1)}`), name).toBe(true);
  });

  it("record layouts are packed and the sizes the runner expects", () => {
    expect(layout(RUNNER_CASE_HEADER).size).toBe(32);
    expect(layout(RUNNER_STEP).size).toBe(48);
  });

  it("ops, the raw-syscall wrapper and the reaper are defined once, in native/child/", () => {
    for (const f of nativeFiles("native")) {
      // Code only: comments may name the calls.
      const text = read(f).replace(/\/\/.*$/gm, "");
      if (f !== "native/child/protocol.h") expect(text, f).not.toMatch(/enum\s+\w*Op\s*:/);
      if (f !== "native/child/sys.h") expect(text, f).not.toMatch(/long Sys\(long n/);
      if (f !== "native/child/reap.h")
        expect(text, f).not.toMatch(/\b(waitpid|wait4|SYS_wait4|__NR_wait4)\b|\bwaitid\(/);
    }
  });

  it("native/child/ never includes N-API, and each of its sources fails the build if it did", () => {
    for (const f of nativeFiles("native/child")) {
      const text = read(f);
      expect(text, f).not.toMatch(/#include\s*[<"](napi\.h|node_api\.h|addon\.h|uv\.h|\.\.\/)/);
      if (f.endsWith(".cc")) expect(text, f).toMatch(/#if defined\(SRC_NAPI_H_\) \|\| defined\(SRC_NODE_API_H_\)/);
    }
  });
});
