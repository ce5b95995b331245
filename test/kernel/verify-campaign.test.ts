/**
 * The differential campaign on the real kernel: a fixed-seed campaign must
 * find the model and the kernel in full agreement, and a bug planted in the
 * predictor must be found and shrunk to a small reproducer.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { afterAll, beforeAll, expect, it } from "vitest";
import { buildProgram } from "../../lib/cli/main.js";
import { registerVerifyCommands, type VerifyExtension } from "../../lib/cli/verify.js";
import { modelPredictor, type Predictor, runCampaign } from "../../lib/verify/campaign.js";
import { describeKernel } from "../helpers/kernel.js";

// Under ASan every fork copies the shadow memory's page tables, so the
// sanitizer job runs the same checks on fewer cases.
const SAN = process.env.USERNS_EXPECT_SANITIZER === "1";
const N = SAN ? 60 : 4000;
let dir = "";

describeKernel("differential campaign: kernel against model", () => {
  // Made here, not at module level: when the block is skipped (no root) its hooks do not run, and a directory made
  // at module level would be left behind.
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "userns-verify-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  it(`agrees on every field of ${N} generated cases (seed 20261124)`, async () => {
    const { summary, disagreements } = await runCampaign({ count: N, seed: 20261124, shrink: 3 });
    const report = disagreements
      .map((d) => JSON.stringify({ case: d.shrunk?.case ?? d.case, diffs: d.shrunk?.diffs ?? d.diffs }))
      .join("\n");
    expect(report).toBe("");
    expect(summary).toMatchObject({ cases: N, agree: N, disagree: 0, byField: {} });
  });

  it("finds a planted model bug and shrinks it to a minimal case", async () => {
    // The planted bug: the model misreports the init read-back of every gid map.
    const buggy: Predictor = (line) => {
      const r = modelPredictor(line) as Record<string, unknown> | undefined;
      const c = JSON.parse(line) as { kind?: string };
      return r && c.kind === "gid" && r.stage === "write" ? { ...r, readback_from_init: "wrong" } : r;
    };
    const { summary, disagreements } = await runCampaign({
      count: SAN ? 40 : 150,
      seed: 3,
      predictor: buggy,
      shrink: 1,
    });
    expect(summary.disagree).toBeGreaterThan(0);
    expect(Object.keys(summary.byField)).toEqual(["readback_from_init"]);
    const shrunk = disagreements.find((d) => d.shrunk)?.shrunk;
    expect(shrunk?.case.kind).toBe("gid");
    // Everything the bug does not need is gone.
    for (const k of ["parent", "opener", "creator", "second", "setgroups_after", "setgroups"])
      expect(shrunk?.case).not.toHaveProperty(k);
    expect(shrunk?.diffs.map((d) => d.field)).toEqual(["readback_from_init"]);
  });

  it("userns verify --json ends with the summary line", async () => {
    const out: string[] = [];
    const program = buildProgram({ out: (s) => out.push(s), err: () => {} });
    await program.parseAsync(["verify", "--cases", SAN ? "10" : "60", "--seed", "9", "--json"], { from: "user" });
    const last = out.join("").trimEnd().split("\n").at(-1)!;
    const summary = JSON.parse(last) as Record<string, unknown>;
    expect(Object.keys(summary)).toEqual(["cases", "agree", "disagree", "byField", "casesPerSecond"]);
    expect(summary).toMatchObject({ cases: SAN ? 10 : 60, agree: SAN ? 10 : 60, disagree: 0 });
    expect(summary.casesPerSecond).toBeGreaterThan(0);
  });

  it("userns verify --kernel-only --cases FILE records one §1 result per case, in order", async () => {
    const file = join(dir, "cases.jsonl");
    writeFileSync(
      file,
      [
        "# a comment",
        '{"id":"a","lines":"0 100000 10\\n"}',
        "",
        '{"id":"b","lines":"0 0 1\\n","second":"1 1 1\\n","second_fd":"pwrite0"}',
        "not json",
      ].join("\n"),
    );
    const out: string[] = [];
    const program = buildProgram({ out: (s) => out.push(s), err: () => {} });
    await program.parseAsync(["verify", "--kernel-only", "--cases", file], { from: "user" });
    const lines = out
      .join("")
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.id)).toEqual(["a", "b", null]);
    expect(lines[0]).toMatchObject({ ok: true, readback_from_init: "         0     100000         10\n" });
    expect(lines[1]).toMatchObject({ ok: true, second: { ok: false, errno: "ESPIPE", written: -1 } });
    expect(lines[2]).toMatchObject({ stage: "input" });
  });

  it("another campaign joins through the extension seam; its option alone runs only it", async () => {
    const calls: string[] = [];
    const ext: VerifyExtension = {
      flag: "--extra-cases <file>",
      key: "extraCases",
      description: "test campaign",
      prefix: "extra.",
      run: async (file, o) => {
        calls.push(`${file}:${o.kernelOnly}`);
        return { cases: 3, agree: 2, disagree: 1, byField: { stat: 1 }, casesPerSecond: 30 };
      },
    };
    const run = async (args: string[]) => {
      const out: string[] = [];
      const program = new Command("userns").exitOverride();
      registerVerifyCommands(program, { out: (s) => out.push(s), err: () => {}, progress: false }, [ext]);
      process.exitCode = undefined;
      await program.parseAsync(["verify", ...args], { from: "user" });
      const code = process.exitCode;
      process.exitCode = undefined;
      return { last: JSON.parse(out.join("").trimEnd().split("\n").at(-1)!) as Record<string, unknown>, code };
    };
    const alone = await run(["--extra-cases", "f.jsonl", "--json"]);
    expect(alone.last).toMatchObject({ cases: 3, agree: 2, disagree: 1, byField: { "extra.stat": 1 } });
    expect(alone.code).toBe(1);
    const both = await run(["--extra-cases", "g.jsonl", "--cases", "20", "--json"]);
    expect(both.last).toMatchObject({ cases: 23, agree: 22, disagree: 1, byField: { "extra.stat": 1 } });
    expect(calls).toEqual(["f.jsonl:false", "g.jsonl:false"]);
  });
});
