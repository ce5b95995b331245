/**
 * The differential campaign: every case runs on the real kernel and through
 * the model's predictor; results are compared field by field; a disagreement
 * is shrunk to a minimal case that still disagrees on the same field, ready
 * to paste into a case file or a regression table.
 */
import { predictMapWriteCaseLine } from "../model/cases.js";
import { compareResults, type FieldDiff } from "./compare.js";
import { type CaseObject, generateCases } from "./generate.js";
import { runMapCasesOnKernel } from "./kernel.js";

/** Predicts a §1 result from a case line (undefined for a skipped line). */
export type Predictor = (line: string) => object | undefined;

/** The model's predictor (lib/model/cases.ts). */
export const modelPredictor: Predictor = predictMapWriteCaseLine;

/** One case on which the kernel and the model disagree. */
export interface Disagreement {
  /** Position in the campaign (0-based). */
  index: number;
  case: CaseObject;
  kernel: object;
  model: object;
  diffs: FieldDiff[];
  /** The shrunk reproducer, when shrinking ran. */
  shrunk?: { case: CaseObject; kernel: object; model: object; diffs: FieldDiff[]; steps: number };
}

/** The campaign's figures; `--json` prints exactly this object last. */
export interface CampaignSummary {
  cases: number;
  agree: number;
  disagree: number;
  /** Disagreeing cases per compared field. */
  byField: Record<string, number>;
  casesPerSecond: number;
}

/** Options of {@link runCampaign}. */
export interface CampaignOptions {
  /** Generated cases: how many, and the seed. Ignored when `cases` is given. */
  count?: number;
  seed?: number;
  /** Case lines (a case file); comments and empty lines are skipped. */
  cases?: readonly string[];
  jobs?: number;
  timeoutMs?: number;
  predictor?: Predictor;
  /** How many disagreements to shrink (default 5); the rest are reported as found. */
  shrink?: number;
  /** Cases per block (generated, run, compared, then dropped). Default 2048. */
  block?: number;
  onProgress?: (done: number, total: number, disagree: number) => void;
  /** Called for each disagreement as soon as it is known (before shrinking). */
  onDisagreement?: (d: Disagreement) => void;
}

/** What a campaign returns: the summary and every disagreement found. */
export interface CampaignResult {
  summary: CampaignSummary;
  disagreements: Disagreement[];
}

function toObject(line: string): CaseObject {
  try {
    const v: unknown = JSON.parse(line);
    if (typeof v === "object" && v !== null && !Array.isArray(v)) return v as CaseObject;
  } catch {
    // A line that is not a JSON object is still a case: both sides answer stage "input".
  }
  return { __raw: line };
}

function toLine(c: CaseObject): string {
  return "__raw" in c ? String(c.__raw) : JSON.stringify(c);
}

/** Runs cases on the kernel and the predictor; returns per-case diffs. */
async function judge(
  cases: readonly CaseObject[],
  predictor: Predictor,
  opts: { jobs?: number; timeoutMs?: number; onProgress?: (done: number) => void },
): Promise<{ kernel: object; model: object; diffs: FieldDiff[] }[]> {
  const lines = cases.map(toLine);
  const kernelRun = runMapCasesOnKernel(lines, {
    jobs: opts.jobs,
    timeoutMs: opts.timeoutMs,
    onProgress: opts.onProgress,
  });
  // The model runs on this thread while the kernel cases run on the
  // threadpool; small slices keep the runner's lanes fed between chunks.
  const models: object[] = [];
  for (let i = 0; i < lines.length; i++) {
    models.push(predictor(lines[i]!) ?? {});
    if (i % 64 === 63) await new Promise((r) => setImmediate(r));
  }
  const kernel = await kernelRun;
  return lines.map((_line, i) => {
    const k = kernel[i]!;
    return { kernel: k, model: models[i]!, diffs: compareResults(k, models[i]!) };
  });
}

/** Runs a differential campaign and summarises it. */
export async function runCampaign(opts: CampaignOptions): Promise<CampaignResult> {
  const predictor = opts.predictor ?? modelPredictor;
  const seed = opts.seed ?? 1;
  const fileCases = opts.cases?.filter((l) => !(l.trim() === "" || l.trim().startsWith("#")));
  const total = fileCases ? fileCases.length : (opts.count ?? 1000);
  const block = Math.max(1, opts.block ?? 2048);
  const byField: Record<string, number> = {};
  const disagreements: Disagreement[] = [];
  let agree = 0;
  const t0 = performance.now();
  for (let start = 0; start < total; start += block) {
    const n = Math.min(block, total - start);
    const cases = fileCases ? fileCases.slice(start, start + n).map(toObject) : generateCases(seed, n, start);
    const judged = await judge(cases, predictor, {
      jobs: opts.jobs,
      timeoutMs: opts.timeoutMs,
      onProgress: (d) => opts.onProgress?.(start + d, total, disagreements.length),
    });
    judged.forEach((j, i) => {
      if (j.diffs.length === 0) {
        agree++;
        return;
      }
      for (const d of j.diffs) byField[d.field] = (byField[d.field] ?? 0) + 1;
      const dis: Disagreement = { index: start + i, case: cases[i]!, kernel: j.kernel, model: j.model, diffs: j.diffs };
      disagreements.push(dis);
      opts.onDisagreement?.(dis);
    });
    opts.onProgress?.(start + n, total, disagreements.length);
  }
  const seconds = (performance.now() - t0) / 1000;
  const limit = opts.shrink ?? 5;
  // Shrink one representative per distinct set of disagreeing fields first.
  const seen = new Set<string>();
  let shrunk = 0;
  for (const d of disagreements) {
    if (shrunk >= limit) break;
    const key = d.diffs.map((x) => x.field).join(",");
    if (seen.has(key)) continue;
    seen.add(key);
    d.shrunk = await shrinkCase(d.case, d.diffs, predictor, { jobs: opts.jobs, timeoutMs: opts.timeoutMs });
    shrunk++;
  }
  return {
    summary: {
      cases: total,
      agree,
      disagree: disagreements.length,
      byField,
      casesPerSecond: Math.round((total / Math.max(seconds, 1e-9)) * 10) / 10,
    },
    disagreements,
  };
}

// ------------------------------------------------------------------ shrinking

function bytesOf(c: CaseObject): Buffer | undefined {
  if (typeof c.lines_hex === "string") return Buffer.from(c.lines_hex, "hex");
  if (typeof c.lines === "string") return Buffer.from(c.lines, "utf8");
  return undefined;
}

function withBytes(c: CaseObject, b: Buffer): CaseObject {
  const out: CaseObject = { ...c };
  const text = b.toString("utf8");
  if (Buffer.from(text, "utf8").equals(b)) {
    out.lines = text;
    delete out.lines_hex;
  } else {
    out.lines_hex = b.toString("hex");
    delete out.lines;
  }
  return out;
}

/** Simpler variants of a case, most aggressive first. */
export function shrinkCandidates(c: CaseObject): CaseObject[] {
  const out: CaseObject[] = [];
  const without = (...keys: string[]) => {
    if (!keys.some((k) => k in c)) return;
    const o: CaseObject = { ...c };
    for (const k of keys) delete o[k];
    out.push(o);
  };
  without("note");
  without("second", "second_fd");
  without("setgroups_after");
  without("setgroups");
  without("opener");
  without("creator");
  without("parent");
  if (c.kind !== undefined && c.kind !== "uid") out.push({ ...c, kind: "uid" });
  for (const key of ["writer", "creator", "opener"]) {
    const v = c[key];
    if (typeof v === "object" && v !== null) {
      const o = v as Record<string, unknown>;
      out.push({ ...c, [key]: o.role });
      const drops = o.drop_caps;
      if (Array.isArray(drops) && drops.length > 1)
        for (let i = 0; i < drops.length; i++)
          out.push({ ...c, [key]: { ...o, drop_caps: drops.filter((_x, j) => j !== i) } });
    }
  }
  if (Array.isArray(c.parent)) {
    if (c.parent.length === 1) out.push({ ...c, parent: c.parent[0] });
    const chain = c.parent as unknown[];
    for (let i = 0; i < chain.length; i++) out.push({ ...c, parent: chain.filter((_x, j) => j !== i) });
  } else if (typeof c.parent === "object" && c.parent !== null) {
    const p = c.parent as Record<string, unknown>;
    if (typeof p.uid_map === "string") out.push({ ...c, parent: p.uid_map });
    if ("setgroups" in p) {
      const q = { ...p };
      delete q.setgroups;
      out.push({ ...c, parent: q });
    }
  }
  const b = bytesOf(c);
  if (b !== undefined && b.length > 0) {
    // Drop whole lines, then halves, then single bytes of short texts.
    const text = b.toString("latin1");
    const lines = text.split("\n");
    if (lines.length > 2) {
      const half = Math.ceil(lines.length / 2);
      out.push(withBytes(c, Buffer.from(lines.slice(half).join("\n"), "latin1")));
      out.push(withBytes(c, Buffer.from(lines.slice(0, half).join("\n"), "latin1")));
      if (!text.endsWith("\n")) out.push(withBytes(c, Buffer.from(`${text}\n`, "latin1")));
    }
    if (lines.length <= 24)
      lines.forEach((_, i) => {
        if (lines.length > 1)
          out.push(withBytes(c, Buffer.from(lines.filter((_x, j) => j !== i).join("\n"), "latin1")));
      });
    // Make numbers smaller: 0, 1, or one digit shorter.
    const numbers = [...text.matchAll(/\d+/g)];
    if (numbers.length <= 40)
      for (const m of numbers) {
        const at = m.index ?? 0;
        for (const rep of ["0", "1", m[0].slice(0, -1)]) {
          if (rep === "" || rep === m[0]) continue;
          out.push(withBytes(c, Buffer.from(text.slice(0, at) + rep + text.slice(at + m[0].length), "latin1")));
        }
      }
    if (b.length <= 48)
      for (let i = 0; i < b.length; i++) out.push(withBytes(c, Buffer.concat([b.subarray(0, i), b.subarray(i + 1)])));
    else if (/^ +/.test(text)) out.push(withBytes(c, Buffer.from(text.trimStart(), "latin1")));
  }
  return out;
}

/**
 * Greedy shrinking: repeatedly replaces the case by the first simpler variant
 * that still disagrees on at least one of the original fields. Each round
 * runs all candidates on the kernel in one batch.
 */
export async function shrinkCase(
  start: CaseObject,
  diffs: readonly FieldDiff[],
  predictor: Predictor,
  opts: { jobs?: number; timeoutMs?: number; maxRounds?: number } = {},
): Promise<{ case: CaseObject; kernel: object; model: object; diffs: FieldDiff[]; steps: number }> {
  const fields = new Set(diffs.map((d) => d.field));
  let current = start;
  let best: { kernel: object; model: object; diffs: FieldDiff[] } | undefined;
  let steps = 0;
  for (let round = 0; round < (opts.maxRounds ?? 60); round++) {
    const cands = shrinkCandidates(current);
    if (cands.length === 0) break;
    const judged = await judge(cands, predictor, opts);
    const k = judged.findIndex((j) => j.diffs.some((d) => fields.has(d.field)));
    if (k < 0) break;
    current = cands[k]!;
    best = judged[k]!;
    steps++;
  }
  if (best === undefined) {
    const [j] = await judge([current], predictor, opts);
    best = j!;
  }
  return { case: current, ...best, steps };
}
