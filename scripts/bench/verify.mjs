// Differential campaign throughput: kernel cases per second, the kernel
// runner alone and the whole campaign (kernel + model + comparison).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

export async function run({ median, root }) {
  const cli = join(root, "bin", "userns.js");
  if (!existsSync(join(root, "dist", "verify", "index.js"))) return null;
  if (process.getuid?.() !== 0) return [{ name: "verify throughput", ours: "(needs root)", base: "", ratio: "" }];
  const rates = [];
  for (let i = 0; i < 3; i++) {
    const out = execFileSync(
      process.execPath,
      [cli, "verify", "--cases", "10000", "--seed", String(100 + i), "--json"],
      {
        encoding: "utf8",
      },
    );
    const summary = JSON.parse(out.trim().split("\n").at(-1));
    if (summary.disagree !== 0) throw new Error(`bench campaign disagreed: ${JSON.stringify(summary)}`);
    rates.push(summary.casesPerSecond);
  }
  return [
    {
      name: "differential campaign, kernel + model (10,000 cases, 2 jobs)",
      ours: `${Math.round(median(rates))} cases/s`,
      base: "1,000 cases/s (goal)",
      ratio: `${(median(rates) / 1000).toFixed(2)}× of goal`,
      goal: "≥ 1,000/s",
    },
  ];
}
