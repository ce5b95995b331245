/**
 * The kernel runner: builds each §1 map-write case for real (real namespaces,
 * real writes, in child processes that are always killed and reaped) and
 * records what the kernel answered, in the same result format the model uses.
 */
import { layout, RUNNER_CASE_HEADER } from "../child/protocol.js";
import { native } from "../kernel/native.js";
import { CaseInputError, caseId, inputErrorResult, type MapCase, type MapResult, parseMapCase } from "./cases.js";
import { type CompiledCase, compileCase, decodeResult, type EncodedProgram, UnbuildableCase } from "./program.js";

/** Where a case header holds the absolute offset of its result area (patched per batch). */
const RESULT_OFF_FIELD = layout(RUNNER_CASE_HEADER).offsets.resultOff!;

/** Options of {@link runMapCasesOnKernel}. */
export interface KernelRunOptions {
  /** Parallel jobs (threadpool threads, each forking its own processes). Default 2. */
  jobs?: number;
  /** Per-case deadline; a case past it is killed and reported as `setup_error: "timeout"`. Default 5000 ms. */
  timeoutMs?: number;
  /** Cases per native call; smaller gives finer progress. Default 128. */
  chunk?: number;
  /** Called after each chunk with the number of cases finished so far. */
  onProgress?: (done: number) => void;
  /**
   * Outside the §1 format, for experiments on /proc file ownership
   * (task_dump_owner): processes that joined a P namespace and became its
   * root stay non-dumpable, as a process that changed its uid without exec
   * does. Default false: the runner restores dumpable, as an exec would.
   */
  nondumpableParents?: boolean;
}

/** A case as accepted by the runner: a JSON line, a parsed JSON object, or a parsed {@link MapCase}. */
export type CaseInput = string | Record<string, unknown> | MapCase;

function isMapCase(x: unknown): x is MapCase {
  return typeof x === "object" && x !== null && (x as { lines?: unknown }).lines instanceof Uint8Array;
}

/** Parses and compiles one case, or gives its `stage: "input"` result. */
function prepare(input: CaseInput, timeoutMs: number, nondumpableParents: boolean): CompiledCase | MapResult {
  let obj: unknown = input;
  if (typeof input === "string") {
    try {
      obj = JSON.parse(input);
    } catch (e) {
      return inputErrorResult(null, `not JSON: ${(e as Error).message}`);
    }
  }
  let c: MapCase;
  try {
    c = isMapCase(obj) ? obj : parseMapCase(obj);
  } catch (e) {
    if (e instanceof CaseInputError) return inputErrorResult(caseId(obj), e.message);
    throw e;
  }
  try {
    return compileCase(c, { timeoutMs, nondumpableParents });
  } catch (e) {
    if (!(e instanceof UnbuildableCase || e instanceof RangeError)) throw e;
    return {
      id: c.id,
      ok: null,
      errno: null,
      written: null,
      stage: "setup",
      len: c.lines.length,
      setup_error: e.message,
    };
  }
}

/**
 * Runs encoded step programs one after another on one threadpool thread and
 * returns each program's result area (decode with stepResult/stepText).
 */
export async function runPrograms(items: readonly EncodedProgram[]): Promise<Uint8Array[]> {
  let progLen = 0;
  let resLen = 0;
  const resOffs: number[] = [];
  for (const cc of items) {
    progLen += cc.program.length;
    resOffs.push(resLen);
    resLen += cc.resultSize;
  }
  const programs = Buffer.alloc(progLen);
  const results = Buffer.alloc(resLen);
  let p = 0;
  items.forEach((cc, i) => {
    programs.set(cc.program, p);
    programs.writeUInt32LE(resOffs[i]!, p + RESULT_OFF_FIELD);
    p += cc.program.length;
  });
  await native().runMapPrograms(programs, results);
  return items.map((cc, i) => results.subarray(resOffs[i]!, resOffs[i]! + cc.resultSize));
}

async function runChunk(items: CompiledCase[]): Promise<MapResult[]> {
  const areas = await runPrograms(items);
  return items.map((cc, i) => decodeResult(cc, areas[i]!));
}

/**
 * Runs map-write cases on this kernel and returns one §1 result per case, in
 * input order. Needs root in the initial user namespace (the runner plays every
 * role from root down). Malformed cases give `stage: "input"` results.
 *
 * @example
 * ```ts
 * const [r] = await runMapCasesOnKernel(['{"id":"a","lines":"0 100000 10\\n"}']);
 * r.readback_from_init // "         0     100000         10\n"
 * ```
 */
export async function runMapCasesOnKernel(
  cases: readonly CaseInput[],
  opts: KernelRunOptions = {},
): Promise<MapResult[]> {
  const jobs = Math.max(1, Math.min(opts.jobs ?? 2, 16));
  const timeoutMs = opts.timeoutMs ?? 5000;
  const chunk = Math.max(1, opts.chunk ?? 128);
  const out: (MapResult | undefined)[] = new Array(cases.length);
  const pending: { index: number; cc: CompiledCase }[] = [];
  cases.forEach((input, index) => {
    const r = prepare(input, timeoutMs, opts.nondumpableParents === true);
    if ("program" in r) pending.push({ index, cc: r });
    else out[index] = r;
  });
  let done = cases.length - pending.length;
  let next = 0;
  const lane = async () => {
    while (next < pending.length) {
      const batch = pending.slice(next, next + chunk);
      next += batch.length;
      const res = await runChunk(batch.map((b) => b.cc));
      batch.forEach((b, i) => {
        out[b.index] = res[i];
      });
      done += batch.length;
      opts.onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: jobs }, lane));
  return out as MapResult[];
}
