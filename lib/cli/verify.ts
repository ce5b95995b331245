/**
 * `userns verify`: the differential campaign (kernel against model) and, with
 * `--kernel-only`, a ground-truth recorder that prints this kernel's answers
 * to a case file in the §1 result format.
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { UsernsError, usageError } from "../errors.js";
import type { CampaignSummary, Disagreement } from "../verify/campaign.js";

/** Where output goes. `progress` (default: stderr is a TTY) enables the progress bar on `err`. */
export interface VerifyIo {
  out: (s: string) => void;
  err: (s: string) => void;
  progress?: boolean;
}

/**
 * Another campaign joining `userns verify` (the idmapped-mount cases): it adds
 * an option taking a case file and returns a summary that is merged into the
 * total, its fields prefixed with `prefix`.
 */
export interface VerifyExtension {
  /** Commander flag, e.g. `"--mount-cases <file>"`. */
  flag: string;
  /** The option's key as commander names it, e.g. `"mountCases"`. */
  key: string;
  description: string;
  prefix: string;
  /**
   * Runs the cases in `file`, printing its own per-case output (results with
   * `kernelOnly`, disagreements otherwise), and returns its summary.
   */
  run(file: string, opts: { jobs: number; json: boolean; kernelOnly: boolean; io: VerifyIo }): Promise<CampaignSummary>;
}

interface VerifyOptions {
  cases?: string;
  seed: string;
  jobs: string;
  json?: boolean;
  kernelOnly?: boolean;
  timeout: string;
  shrink: string;
  [extension: string]: unknown;
}

function intOption(v: string, name: string, min: number, max: number): number {
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max)
    throw usageError(`--${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(v)}`);
  return Number(v);
}

function readCaseFile(file: string): string[] {
  try {
    return readFileSync(file === "-" ? 0 : file, "utf8").split("\n");
  } catch (e) {
    throw usageError(`--cases: cannot read ${file}: ${(e as Error).message}`);
  }
}

function bar(done: number, total: number, started: number, disagree: number): string {
  const width = 30;
  const f = total === 0 ? 1 : done / total;
  const fill = Math.round(f * width);
  const rate = done / Math.max((performance.now() - started) / 1000, 1e-3);
  return `\r[${"#".repeat(fill)}${".".repeat(width - fill)}] ${done}/${total}  ${rate.toFixed(0)} cases/s  ${disagree} disagree `;
}

function table(rows: [string, string][]): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}\n`).join("");
}

function printDisagreement(io: VerifyIo, d: Disagreement, json: boolean): void {
  const shown = d.shrunk ?? d;
  if (json) {
    io.out(
      `${JSON.stringify({
        disagreement: {
          index: d.index,
          fields: d.diffs.map((x) => x.field),
          case: shown.case,
          kernel: shown.kernel,
          model: shown.model,
          original: d.shrunk ? d.case : undefined,
        },
      })}\n`,
    );
    return;
  }
  io.out(`\ndisagreement at case ${d.index} (${d.diffs.map((x) => x.field).join(", ")})\n`);
  io.out(`  ${d.shrunk ? `shrunk in ${d.shrunk.steps} steps; ` : ""}reproducer (paste into a case file):\n`);
  io.out(`  ${JSON.stringify(shown.case)}\n`);
  for (const x of shown.diffs)
    io.out(`    ${x.field}: kernel ${JSON.stringify(x.kernel)}, model ${JSON.stringify(x.model)}\n`);
}

/** Adds `userns verify` to the program. */
export function registerVerifyCommands(
  program: Command,
  io: VerifyIo,
  extensions: readonly VerifyExtension[] = [],
): void {
  const cmd = program
    .command("verify")
    .description("run map-write cases on this kernel and through the model, and compare them field by field")
    .option(
      "--cases <n|file>",
      "how many map-write cases to generate (default 1000), or a case file (JSON lines; - for stdin)",
    )
    .option("--seed <s>", "seed of the case generators", "1")
    .option("--jobs <j>", "parallel jobs", "2")
    .option("--json", "print disagreements and the summary as JSON lines (the summary last)")
    .option("--kernel-only", "print this kernel's answers in the case result format (a ground-truth recorder)")
    .option("--timeout <ms>", "deadline per case", "5000")
    .option("--shrink <n>", "shrink at most this many disagreements", "5");
  for (const x of extensions) cmd.option(x.flag, x.description);
  cmd.action(async (opts: VerifyOptions) => {
    // Loaded on use: the CLI loads every command's module to build --help, so each keeps its imports to itself.
    const [{ runCampaign }, { generateCases }, { runMapCasesOnKernel }] = await Promise.all([
      import("../verify/campaign.js"),
      import("../verify/generate.js"),
      import("../verify/kernel.js"),
    ]);
    const seed = intOption(opts.seed, "seed", 0, 0xffff_ffff);
    const jobs = intOption(opts.jobs, "jobs", 1, 16);
    const timeoutMs = intOption(opts.timeout, "timeout", 1, 600_000);
    const shrink = intOption(opts.shrink, "shrink", 0, 1000);
    const json = opts.json === true;
    const kernelOnly = opts.kernelOnly === true;
    // Another campaign's option alone (e.g. --mount-cases) runs only that one.
    const extFiles = extensions.flatMap((x) =>
      typeof opts[x.key] === "string" ? [{ x, file: opts[x.key] as string }] : [],
    );
    const runMapCases = opts.cases !== undefined || extFiles.length === 0;
    const spec = opts.cases ?? "1000";
    const fileLines = /^\d+$/.test(spec) ? undefined : readCaseFile(spec);
    const count = fileLines === undefined ? intOption(spec, "cases", 0, 100_000_000) : undefined;
    if (process.getuid?.() !== 0)
      throw new UsernsError(
        "running map-write cases on the kernel: the runner plays every role from root down and needs root in the initial user namespace",
        { code: "EPERM" },
      );
    const progress = io.progress ?? process.stderr.isTTY === true;
    const started = performance.now();
    const onProgress = progress
      ? (done: number, total: number, disagree = 0) => io.err(bar(done, total, started, disagree))
      : undefined;

    if (kernelOnly) {
      for (const { x, file } of extFiles) await x.run(file, { jobs, json, kernelOnly, io });
      if (!runMapCases) return;
      // The recorder: results only, one line per case, in input order.
      const inputs =
        fileLines !== undefined
          ? fileLines.filter((l) => !(l.trim() === "" || l.trim().startsWith("#")))
          : generateCases(seed, count!).map((c) => JSON.stringify(c));
      const chunk = 4096;
      for (let i = 0; i < inputs.length; i += chunk) {
        const part = inputs.slice(i, i + chunk);
        const res = await runMapCasesOnKernel(part, {
          jobs,
          timeoutMs,
          onProgress: onProgress && ((d) => onProgress(i + d, inputs.length)),
        });
        for (const r of res) io.out(`${JSON.stringify(r)}\n`);
      }
      if (progress) io.err("\n");
      return;
    }

    const result = await runCampaign({
      count,
      seed,
      // With only another campaign's option, no map-write case runs.
      cases: runMapCases ? fileLines : [],
      jobs,
      timeoutMs,
      shrink,
      onProgress,
    });
    if (progress) io.err("\n");
    const summary: CampaignSummary = { ...result.summary, byField: { ...result.summary.byField } };
    for (const d of result.disagreements) printDisagreement(io, d, json);
    for (const { x, file } of extFiles) {
      const s = await x.run(file, { jobs, json, kernelOnly, io });
      const total = summary.cases + s.cases;
      const secs = (n: number, rate: number) => (rate > 0 ? n / rate : 0);
      const t = secs(summary.cases, summary.casesPerSecond) + secs(s.cases, s.casesPerSecond);
      summary.casesPerSecond = t > 0 ? Math.round((total / t) * 10) / 10 : 0;
      summary.cases = total;
      summary.agree += s.agree;
      summary.disagree += s.disagree;
      for (const [f, n] of Object.entries(s.byField)) summary.byField[`${x.prefix}${f}`] = n;
    }
    if (json) io.out(`${JSON.stringify(summary)}\n`);
    else {
      const pct = summary.cases === 0 ? 100 : (100 * summary.agree) / summary.cases;
      const fields = Object.entries(summary.byField);
      io.out(
        `\n${table([
          ["cases", String(summary.cases)],
          ["agree", `${summary.agree} (${pct.toFixed(2)}%)`],
          ["disagree", String(summary.disagree)],
          ["by field", fields.length === 0 ? "-" : fields.map(([f, n]) => `${f}=${n}`).join(" ")],
          ["cases/second", summary.casesPerSecond.toFixed(1)],
        ])}`,
      );
    }
    if (summary.disagree > 0) process.exitCode = 1;
  });
}
