/**
 * run(file, args, options): spawn a program into namespaces and wait for it
 * to finish, collecting its output — what `execa(file, args)` and
 * `promisify(child_process.execFile)` give, on top of {@link spawn}.
 *
 * Named `run` (as the CLI's `userns run`), not `execFile`: the result is
 * execa's shape (`exitCode`, `signal`, and the error carries the output),
 * not execFile's callback and `error.code` = exit status. Option names are
 * child_process's (`timeout`, `signal`, `killSignal`, `maxBuffer`, `input`,
 * `encoding`) plus execa's `reject`.
 */
import type { Readable, Writable } from "node:stream";
import type { MappingResult } from "../child/maps.js";
import { UsernsError, type UsernsErrorCode, usageError } from "../errors.js";
import type { ExitStatus, KilledBy, UsernsChildProcess } from "./child-process.js";
import { type NoExtraKeys, type SpawnOptions, type StdioEntry, spawn } from "./spawn.js";

/** Options of {@link run}: every {@link SpawnOptions} option, and these. */
export interface RunOptions extends SpawnOptions {
  /**
   * Written to the program's stdin, which is then closed. Without it stdin is
   * /dev/null (unless `stdio` says otherwise), so a program that reads stdin
   * does not wait forever.
   */
  input?: string | Uint8Array;
  /**
   * How stdout and stderr are decoded: a Buffer encoding (default `"utf8"`),
   * or `"buffer"` for raw Buffers.
   */
  encoding?: BufferEncoding | "buffer";
  /**
   * The most bytes kept from stdout, and from stderr (default 1 MiB, as
   * child_process.execFile; `Infinity` for no limit). When a stream goes over,
   * the program is sent `killSignal` and the call rejects with
   * ERR_CHILD_PROCESS_STDIO_MAXBUFFER, with the output up to the limit.
   */
  maxBuffer?: number;
  /**
   * Reject when the program does not exit 0 (a non-zero code, a signal, a
   * timeout, an abort or maxBuffer), with a {@link RunError} that carries the
   * result's fields. Default true, as execa and execFile. With false, those
   * cases resolve with the result (see `killedBy`); a program that could not
   * be started always rejects.
   */
  reject?: boolean;
}

/** What {@link run} resolves to (and what a {@link RunError} carries). */
export interface RunResult<Output extends string | Buffer = string> {
  /** The program's stdout (empty when stdout was not a pipe). */
  stdout: Output;
  /** The program's stderr (empty when stderr was not a pipe). */
  stderr: Output;
  /** Exit code, or null when a signal ended the program. */
  exitCode: number | null;
  /** The signal that ended the program, or null. */
  signal: NodeJS.Signals | null;
  /** The program's pid as seen from this process. */
  pid: number | undefined;
  /** How the user namespace's maps were written, as `child.mapping`. */
  mapping: MappingResult | undefined;
  /** Set when run itself killed the program: its `timeout`, its AbortSignal, or `maxBuffer`. */
  killedBy: KilledBy | undefined;
}

/** The output type for an `encoding` option: Buffer for `"buffer"`, else string. */
export type RunOutput<E> = E extends "buffer" ? Buffer : string;

/** The `encoding` option of an options type: undefined (utf8) when it has none. */
export type EncodingOf<O> = "encoding" extends keyof O ? O["encoding"] : undefined;

/** The default maxBuffer, as child_process.execFile's. */
export const DEFAULT_MAX_BUFFER = 1024 * 1024;

const RUN_ONLY = ["input", "encoding", "maxBuffer", "reject"] as const;

/**
 * {@link run}'s rejection: a {@link UsernsError} whose `code` says why, with
 * every field of {@link RunResult}. Codes: ERR_USERNS_EXIT (non-zero exit or
 * a signal), ERR_USERNS_TIMEOUT, ABORT_ERR, ERR_CHILD_PROCESS_STDIO_MAXBUFFER,
 * ERR_USERNS_USAGE, or the code of a failed start (ENOENT, EPERM, ...; then
 * `pid` and `exitCode` are undefined/null and `cause` is spawn's error).
 */
export class RunError<Output extends string | Buffer = string | Buffer>
  extends UsernsError
  implements RunResult<Output>
{
  readonly stdout: Output;
  readonly stderr: Output;
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly pid: number | undefined;
  readonly mapping: MappingResult | undefined;
  readonly killedBy: KilledBy | undefined;
  /** True when the program was killed because `timeout` ran out (execa's name). */
  readonly timedOut: boolean;

  /** @internal */
  constructor(
    attempted: string,
    facts: {
      code: UsernsErrorCode;
      reason?: string;
      cause?: unknown;
      errno?: number;
      syscall?: string;
      step?: string;
      path?: string;
    },
    result: RunResult<Output>,
  ) {
    super(attempted, facts);
    this.stdout = result.stdout;
    this.stderr = result.stderr;
    this.exitCode = result.exitCode;
    this.signal = result.signal;
    this.pid = result.pid;
    this.mapping = result.mapping;
    this.killedBy = result.killedBy;
    this.timedOut = result.killedBy === "timeout";
  }
}
Object.defineProperty(RunError.prototype, "name", { value: "RunError", enumerable: false });

function checkRunOptions(options: RunOptions): void {
  const { input, encoding, maxBuffer, reject } = options;
  if (input !== undefined && typeof input !== "string" && !(input instanceof Uint8Array))
    throw usageError("input must be a string, Buffer or Uint8Array");
  if (encoding !== undefined && encoding !== "buffer" && !Buffer.isEncoding(encoding))
    throw usageError(`encoding must be a Buffer encoding or "buffer", not ${JSON.stringify(encoding)}`);
  if (maxBuffer !== undefined && !(typeof maxBuffer === "number" && maxBuffer > 0))
    throw usageError("maxBuffer must be a number of bytes > 0 (Infinity for no limit)");
  if (reject !== undefined && typeof reject !== "boolean") throw usageError("reject must be a boolean");
}

/** The stdio run uses: stdin /dev/null unless there is input, stdout and stderr piped, unless the caller said. */
function runStdio(options: RunOptions): SpawnOptions["stdio"] {
  const given = options.stdio;
  if (given === undefined) return [options.input !== undefined ? "pipe" : "ignore", "pipe", "pipe"];
  const first: StdioEntry = typeof given === "string" ? given : given[0];
  if (options.input !== undefined && first !== "pipe" && first !== undefined && first !== null)
    throw usageError(`input needs stdin to be a pipe, but stdio[0] is ${JSON.stringify(first)}`);
  return given;
}

/** Collects one readable stream up to `max` bytes; calls `over` once when more arrives. */
function collect(stream: Readable | null, max: number, over: () => void): () => Buffer {
  const chunks: Buffer[] = [];
  let size = 0;
  let full = false;
  if (stream !== null) {
    stream.on("data", (chunk: Buffer) => {
      if (full) return;
      if (size + chunk.length > max) {
        chunks.push(chunk.subarray(0, max - size));
        size = max;
        full = true;
        over();
        return;
      }
      chunks.push(chunk);
      size += chunk.length;
    });
    // A read error ends the stream; the exit status still settles the call.
    stream.on("error", () => {});
  }
  return () => Buffer.concat(chunks, size);
}

function describe(file: string, args: readonly string[]): string {
  return [file, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(" ");
}

/**
 * Runs `file` with `args` in the namespaces `options` describe (every
 * {@link spawn} option) and resolves once it has exited and its stdout and
 * stderr have closed (so output of background grandchildren that kept them
 * open is included), with `{ stdout, stderr, exitCode, signal, pid, mapping }`.
 *
 * Everything is reported through the promise, also invalid options (as
 * execa): there is one place to catch. By default a non-zero exit rejects
 * with a {@link RunError} carrying the same fields.
 *
 * @example
 * ```ts
 * const { stdout } = await run("id", ["-u"], {
 *   namespaces: ["user"], uidMap: "0 100000 65536", gidMap: "0 100000 65536", uid: 0, gid: 0, timeout: 5000,
 * });
 * stdout; // "0\n"
 * ```
 */
export function run(file: string, args?: readonly string[]): Promise<RunResult<string>>;
export function run<const O extends RunOptions = RunOptions>(
  file: string,
  args?: readonly string[],
  options?: O & NoExtraKeys<O, RunOptions>,
): Promise<RunResult<RunOutput<EncodingOf<O>>>>;
export async function run<const O extends RunOptions = RunOptions>(
  file: string,
  args: readonly string[] = [],
  options?: O & NoExtraKeys<O, RunOptions>,
): Promise<RunResult<RunOutput<EncodingOf<O>>>> {
  const opts: RunOptions = options ?? {};
  type Out = RunOutput<EncodingOf<O>>;
  const what = `running ${typeof file === "string" ? describe(file, Array.isArray(args) ? args : []) : String(file)}`;
  const encoding = opts.encoding ?? "utf8";
  const decode = (b: Buffer): Out => (encoding === "buffer" ? b : b.toString(encoding)) as Out;
  const empty: RunResult<Out> = {
    stdout: decode(Buffer.alloc(0)),
    stderr: decode(Buffer.alloc(0)),
    exitCode: null,
    signal: null,
    pid: undefined,
    mapping: undefined,
    killedBy: undefined,
  };
  let child: UsernsChildProcess;
  try {
    if (typeof opts !== "object" || opts === null) throw usageError("options must be an object");
    checkRunOptions(opts);
    const spawnOptions: Record<string, unknown> = { ...opts, stdio: runStdio(opts) };
    for (const k of RUN_ONLY) delete spawnOptions[k];
    child = spawn(file, args, spawnOptions as SpawnOptions);
  } catch (e) {
    throw startError(what, e, empty);
  }
  const max = opts.maxBuffer ?? DEFAULT_MAX_BUFFER;
  const onOver = () => child._killBy("maxBuffer");
  const stdout = collect(child.stdout, max, onOver);
  const stderr = collect(child.stderr, max, onOver);
  if (opts.input !== undefined && child.stdin !== null) {
    const stdin: Writable = child.stdin;
    // A program that exits without reading its input makes the write fail with EPIPE: that is its business.
    stdin.on("error", () => {});
    stdin.end(opts.input);
  }
  let status: ExitStatus;
  try {
    status = await child.closed;
  } catch (e) {
    if (child.exitCode === null && child.signalCode === null) {
      // It never ran: the start failed, or a timeout/abort cancelled it while newuidmap wrote its maps.
      const result: RunResult<Out> = { ...empty, pid: child.pid, killedBy: child.killedBy };
      if (child.killedBy !== undefined) throw killedError(what, child.killedBy, result, opts, e);
      throw startError(what, e, result);
    }
    // Aborted after it started: `closed` rejects with ABORT_ERR once the program closed.
    status = { pid: child.pid!, code: child.exitCode, signal: child.signalCode };
  }
  const result: RunResult<Out> = {
    stdout: decode(stdout()),
    stderr: decode(stderr()),
    exitCode: status.code,
    signal: status.signal,
    pid: status.pid,
    mapping: child.mapping,
    killedBy: child.killedBy,
  };
  if (opts.reject === false) return result;
  if (result.killedBy !== undefined) throw killedError(what, result.killedBy, result, opts, undefined);
  if (result.exitCode !== 0)
    throw new RunError(
      `${what} (pid ${result.pid})`,
      {
        code: "ERR_USERNS_EXIT",
        reason: result.signal !== null ? `killed by ${result.signal}` : `exited with code ${result.exitCode}`,
      },
      result,
    );
  return result;
}

function killedError<Out extends string | Buffer>(
  what: string,
  by: KilledBy,
  result: RunResult<Out>,
  opts: RunOptions,
  cause: unknown,
): RunError<Out> {
  const sig = opts.killSignal ?? "SIGTERM";
  const pid = result.pid !== undefined ? ` (pid ${result.pid})` : "";
  const ended =
    result.signal !== null
      ? `; it ended by ${result.signal}`
      : result.exitCode !== null
        ? `; it exited with code ${result.exitCode}`
        : "";
  const facts =
    by === "timeout"
      ? { code: "ERR_USERNS_TIMEOUT" as const, reason: `timed out after ${opts.timeout} ms, sent ${sig}${ended}` }
      : by === "abort"
        ? { code: "ABORT_ERR" as const, reason: `the operation was aborted, sent ${sig}${ended}` }
        : {
            code: "ERR_CHILD_PROCESS_STDIO_MAXBUFFER" as const,
            reason: `stdout or stderr went over maxBuffer (${opts.maxBuffer ?? DEFAULT_MAX_BUFFER} bytes), sent ${sig}${ended}`,
          };
  const abortReason = by === "abort" ? opts.signal?.reason : undefined;
  return new RunError(`${what}${pid}`, { ...facts, cause: cause ?? abortReason }, result);
}

function startError<Out extends string | Buffer>(what: string, e: unknown, result: RunResult<Out>): RunError<Out> {
  if (!UsernsError.isUsernsError(e))
    return new RunError(
      what,
      { code: "ERR_USERNS", reason: e instanceof Error ? e.message : String(e), cause: e },
      result,
    );
  // The message stays spawn's ("spawning X (pid N): ENOENT: ..."): it already says what failed.
  return new RunError(
    e.attempted,
    {
      code: e.code,
      reason: e.reason,
      cause: e,
      errno: e.errno,
      syscall: e.syscall,
      step: e.step,
      path: e.path,
    },
    result,
  );
}
