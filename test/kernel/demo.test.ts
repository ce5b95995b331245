import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { runDemo } from "../../lib/cli/demo.js";
import { describeKernel } from "../helpers/kernel.js";

interface Section {
  title: string;
  data: Record<string, unknown> | null;
  skipped?: string;
}

describeKernel("userns demo", () => {
  it("runs every section for real, kernel and model agree, and the host's mounts are untouched", async () => {
    const before = readFileSync("/proc/self/mountinfo", "utf8");
    let out = "";
    await runDemo({ out: (s) => (out += s) }, { json: true });
    const sections = JSON.parse(out) as Section[];
    expect(sections.map((s) => s.skipped)).toEqual(sections.map(() => undefined));

    const nested = sections[1]!.data as {
      id: string;
      mapping: { method: string; uidMap: string };
      report: { ok: boolean; discrepancies: unknown[]; observations: { vantage: string; kernel: string }[] };
    };
    expect(nested.id).toMatch(/^uid=0\(root\) gid=0\(root\)/);
    expect(nested.mapping).toMatchObject({ method: "parent-helper", uidMap: "0 1000 1000\n" });
    expect(nested.report.ok).toBe(true);
    expect(nested.report.discrepancies).toEqual([]);
    expect(new Set(nested.report.observations.map((o) => o.vantage))).toEqual(new Set(["self", "parent", "inside"]));

    const mount = sections[2]!.data as { rows: [number, number, number, string][] };
    expect(mount.rows.map((r) => [r[0], r[2]])).toEqual([
      [0, 100000],
      [1000, 101000],
      [65535, 165535],
      [65536, 65534],
      [100000, 65534],
    ]);
    expect(mount.rows.every((r) => r[3] === "yes")).toBe(true);

    const refused = sections[3]!.data as { verdict: { ok: boolean; errno: string }; split: string };
    expect(refused.verdict).toMatchObject({ ok: false, errno: "EPERM" });
    expect(refused.split).toBe("0 500 500\n500 1000 500\n");

    const campaign = sections[4]!.data as { cases: number; agree: number; disagree: number };
    expect(campaign).toMatchObject({ cases: 500, agree: 500, disagree: 0 });

    expect(readFileSync("/proc/self/mountinfo", "utf8")).toBe(before);
  }, 60_000);
});
