/**
 * The handle `spawn` returns: shaped like Node's ChildProcess (pid, stdio
 * streams, 'spawn' / 'exit' / 'close' / 'error' events, kill(), ref/unref),
 * plus `pidfd`, `mapping` and promises of the exit status (`child.exited` at
 * exit, `child.closed` or `await child` once the streams have closed too).
 */
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { constants } from "node:os";
import type { Readable, Writable } from "node:stream";
import type { MappingResult } from "../child/maps.js";
import { codeOfNodeError, UsernsError } from "../errors.js";
import { native } from "../kernel/native.js";

/** A stdio entry, as child_process takes them (streams are not supported: pass their fd). */
export type StdioEntry = "pipe" | "inherit" | "ignore" | number | null | undefined;

/** The `stdio` option: one value for all three, or one entry per fd. */
export type StdioOption = "pipe" | "inherit" | "ignore" | readonly StdioEntry[];

/** The `stdio` entry of fd `I` for a `stdio` option `S` (undefined and null mean 'pipe' for fds 0-2). */
type EntryOf<S, I extends number> = S extends undefined
  ? "pipe"
  : S extends string
    ? S
    : S extends readonly unknown[]
      ? I extends keyof S
        ? S[I]
        : undefined
      : StdioEntry;

/** The stream type for one entry: the stream when it is surely a pipe, null when surely not, else either. */
type StreamOf<E, T> = [E] extends ["pipe" | null | undefined]
  ? T
  : [E] extends ["inherit" | "ignore" | number]
    ? null
    : T | null;

/**
 * The handle's stream types, derived from the `stdio` option it was spawned
 * with: `stdout` is a `Readable` (never null) when fd 1 is a pipe, `null` when
 * it is inherited, ignored or an fd, and `Readable | null` when the option's
 * type does not say.
 */
export interface StdioStreams<S = StdioOption | undefined> {
  stdin: StreamOf<EntryOf<S, 0>, Writable>;
  stdout: StreamOf<EntryOf<S, 1>, Readable>;
  stderr: StreamOf<EntryOf<S, 2>, Readable>;
}

/** The most a handle's streams can be; the type parameter of {@link UsernsChildProcess} narrows it. */
export interface ChildStreams {
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
}

/** The handle's events and their arguments, as ChildProcess's. */
export interface UsernsChildProcessEvents {
  /**
   * The program was exec'd: on the next tick after execve succeeded (or after this process learned of it). A listener
   * added later, while the program runs, is called too, once, on the next tick after it was added (ChildProcess would
   * not call it); none is called after the exit.
   */
  spawn: [];
  /** The program exited; its streams may still be open. */
  exit: [code: number | null, signal: NodeJS.Signals | null];
  /** The program exited and every readable stream has closed. */
  close: [code: number | null, signal: NodeJS.Signals | null];
  /** The program could not be started, or the spawn was aborted through its AbortSignal. */
  error: [err: UsernsError];
}

/** How the child ended: like ChildProcess's 'exit' arguments. */
export interface ExitStatus {
  /** The pid the child had. */
  readonly pid: number;
  /** Exit code, or null if a signal ended it. */
  readonly code: number | null;
  /** The signal that ended it, or null. */
  readonly signal: NodeJS.Signals | null;
}

const signalNames: ReadonlyMap<number, NodeJS.Signals> = new Map(
  Object.entries(constants.signals).map(([name, num]) => [num, name as NodeJS.Signals]),
);

/** A signal name or number as a number; throws ERR_UNKNOWN_SIGNAL like ChildProcess.kill. */
export function signalNumber(signal: NodeJS.Signals | number): number {
  if (typeof signal === "number") {
    if (!Number.isInteger(signal) || signal < 0 || signal > 64)
      throw new UsernsError(`unknown signal ${signal}`, { code: "ERR_UNKNOWN_SIGNAL" });
    return signal;
  }
  const n = (constants.signals as Record<string, number | undefined>)[signal];
  if (n === undefined) throw new UsernsError(`unknown signal ${signal}`, { code: "ERR_UNKNOWN_SIGNAL" });
  return n;
}

/** What {@link UsernsChildProcess._arm} takes: spawn's timeout, signal and killSignal. */
export interface KillOptions {
  timeout?: number | undefined;
  signal?: AbortSignal | undefined;
  killSignal?: NodeJS.Signals | number | undefined;
}

// Where a handle's 'spawn' stands (UsernsChildProcess.#spawn).
const SPAWN_NONE = 0;
const SPAWN_OWED = 1;
const SPAWN_SCHEDULED = 2;
const SPAWN_EMITTED = 3;
type SpawnState = typeof SPAWN_NONE | typeof SPAWN_OWED | typeof SPAWN_SCHEDULED | typeof SPAWN_EMITTED;

/** How a kill by the handle itself came about, for {@link run}'s error. */
export type KilledBy = "timeout" | "abort" | "maxBuffer";

/**
 * A ChildProcess-compatible handle for a program started by {@link spawn}.
 * `T` is the type of its streams, {@link StdioStreams} of the `stdio` option
 * it was spawned with: `stdin`, `stdout` and `stderr` are non-null where that
 * option says 'pipe'.
 */
export class UsernsChildProcess<T extends ChildStreams = ChildStreams>
  extends EventEmitter<UsernsChildProcessEvents>
  implements PromiseLike<ExitStatus>
{
  /** The child's pid as seen from this process; set once clone3 returned. */
  pid: number | undefined = undefined;
  /** A pidfd for the child while it runs (closed once it is reaped, then -1). */
  pidfd = -1;
  /** How the maps were written, and exactly which lines; undefined when no user namespace maps were written. */
  mapping: MappingResult | undefined = undefined;
  /** The program's stdin when stdio[0] is 'pipe' (null otherwise; destroyed once the program exits). */
  readonly stdin: T["stdin"] = null as T["stdin"];
  /** The program's stdout when stdio[1] is 'pipe'. */
  readonly stdout: T["stdout"] = null as T["stdout"];
  /** The program's stderr when stdio[2] is 'pipe'. */
  readonly stderr: T["stderr"] = null as T["stderr"];
  /** All stdio entries, as ChildProcess.stdio. */
  readonly stdio: (Readable | Writable | null)[] = [];
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  /** True once kill() delivered a signal. */
  killed = false;
  readonly spawnfile: string;
  readonly spawnargs: readonly string[];

  /** Set when the handle killed the program itself: its timeout, its AbortSignal, or run()'s maxBuffer. */
  killedBy: KilledBy | undefined = undefined;

  #exited: Deferred | undefined;
  #closed: Deferred | undefined;
  #status: ExitStatus | undefined;
  #closedStatus: ExitStatus | undefined;
  #error: UsernsError | undefined;
  /** An abort: the program is killed and the promise of its close rejects with this, once it has closed. */
  #abortError: UsernsError | undefined;
  #watch: unknown;
  /** Where 'spawn' stands: before the exec (or after the exit), owed, scheduled, or emitted. */
  #spawn: SpawnState = SPAWN_NONE;
  #referenced = true;
  #openStreams = 0;
  #killSignal: NodeJS.Signals | number = "SIGTERM";
  #disarm: (() => void) | undefined;

  /** @internal */
  constructor(file: string, args: readonly string[]) {
    super();
    this.spawnfile = file;
    this.spawnargs = args;
  }

  /**
   * Resolves with the exit status as soon as the program exits (its streams
   * may still be open: a background grandchild can still write to them);
   * rejects if it could not be started.
   */
  get exited(): Promise<ExitStatus> {
    if (this.#exited === undefined) {
      this.#exited = deferred();
      if (this.#status !== undefined) this.#exited.resolve(this.#status);
      else if (this.#error !== undefined) this.#exited.reject(this.#error);
    }
    return this.#exited.promise;
  }

  /**
   * Resolves with the exit status once the program has exited and every
   * readable stream has closed (the 'close' event), so all output, also a
   * background grandchild's, has been read. Rejects if the program could not be
   * started, or (after it closed) with ABORT_ERR if its AbortSignal fired.
   * `await child` is this promise.
   */
  get closed(): Promise<ExitStatus> {
    if (this.#closed === undefined) {
      this.#closed = deferred();
      const err = this.#error ?? (this.#closedStatus !== undefined ? this.#abortError : undefined);
      if (err !== undefined) this.#closed.reject(err);
      else if (this.#closedStatus !== undefined) this.#closed.resolve(this.#closedStatus);
    }
    return this.#closed.promise;
  }

  // biome-ignore lint/suspicious/noThenProperty: the handle is awaitable on purpose, as execa's is.
  then<T1 = ExitStatus, T2 = never>(
    onfulfilled?: ((value: ExitStatus) => T1 | PromiseLike<T1>) | null,
    onrejected?: ((reason: unknown) => T2 | PromiseLike<T2>) | null,
  ): Promise<T1 | T2> {
    return this.closed.then(onfulfilled, onrejected);
  }

  /**
   * Sends a signal through the pidfd (no pid-reuse race). Returns true if it
   * was delivered, false if the child has already exited. Before execve
   * (while newuidmap writes the maps) it cancels the spawn instead: the
   * waiting child is killed and reaped, and the handle fails with ABORT_ERR.
   * Between the release and the exec (spawn does not wait for the exec) the
   * signal goes to the released child, whose signals stay blocked until its
   * execve: it acts on the program as it starts, as if sent just after.
   * SIGKILL and SIGSTOP cannot be blocked: kill() then waits for the exec
   * first, and the program gets them.
   */
  kill(signal: NodeJS.Signals | number = "SIGTERM"): boolean {
    const sig = signalNumber(signal);
    if (this.pidfd < 0) {
      if (this._signalBeforeExec !== undefined) {
        const sent = this._signalBeforeExec(sig);
        if (sent && sig !== 0) this.killed = true;
        return sent;
      }
      return sig !== 0 && this._cancel !== undefined ? this._cancel(signal) : false;
    }
    const sent = native().pidfdSendSignal(this.pidfd, sig);
    if (sent && sig !== 0) this.killed = true;
    return sent;
  }

  /** Lets the event loop exit while the child runs (as ChildProcess.unref). */
  unref(): void {
    this.#referenced = false;
    if (this.#watch !== undefined) native().pidfdWatchRef(this.#watch, false);
    for (const s of this.stdio) (s as Partial<Socket> | null)?.unref?.();
  }

  ref(): void {
    this.#referenced = true;
    if (this.#watch !== undefined) native().pidfdWatchRef(this.#watch, true);
    for (const s of this.stdio) (s as Partial<Socket> | null)?.ref?.();
  }

  /**
   * @internal spawn's `timeout`, `signal` and `killSignal`: arms the timer and
   * the abort listener; both are dropped once the program has exited or failed.
   */
  _arm(opts: KillOptions): void {
    if (opts.killSignal !== undefined) this.#killSignal = opts.killSignal;
    const { timeout, signal } = opts;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    if (timeout !== undefined && timeout > 0) {
      timer = setTimeout(() => this._killBy("timeout"), timeout);
      // A timer must not keep the loop alive on its own: the pidfd watch does while the program runs.
      timer.unref();
    }
    if (signal !== undefined) {
      onAbort = () => {
        this.#abortError = abortError(this.spawnfile, signal.reason);
        this._killBy("abort");
        // As child_process: an abort is reported as an 'error' event too (when someone listens).
        if (this.listenerCount("error") > 0) this.emit("error", this.#abortError);
      };
      if (signal.aborted) process.nextTick(onAbort);
      else signal.addEventListener("abort", onAbort, { once: true });
    }
    this.#disarm = () => {
      if (timer !== undefined) clearTimeout(timer);
      if (onAbort !== undefined) signal?.removeEventListener("abort", onAbort);
      this.#disarm = undefined;
    };
  }

  /** @internal kills the program with the kill signal and records why; the first reason wins. */
  _killBy(reason: KilledBy): void {
    if (this.#status !== undefined || this.#error !== undefined) return;
    this.killedBy ??= reason;
    this.kill(this.#killSignal);
  }

  /** @internal while the program waits for its maps (newuidmap): cancels the spawn. */
  _cancel: ((signal: NodeJS.Signals | number) => boolean) | undefined = undefined;

  /**
   * @internal between the release and the exec: signals the released child (it acts at execve, as on the program
   * itself), so that kill() right after spawn() behaves as when spawn waited for the exec.
   */
  _signalBeforeExec: ((signal: number) => boolean) | undefined = undefined;

  /** @internal called once when the program has exited or the spawn failed (spawn counts its live children). */
  _onEnd: (() => void) | undefined = undefined;

  /** @internal the parent ends of the stdio pipes, set by spawn before clone3. */
  _setStdio(streams: readonly (Readable | Writable | null)[]): void {
    this.stdio.push(...streams);
    const self = this as { -readonly [K in "stdin" | "stdout" | "stderr"]: unknown };
    self.stdin = streams[0] ?? null;
    self.stdout = streams[1] ?? null;
    self.stderr = streams[2] ?? null;
    // As ChildProcess: 'close' waits for the readable ends (fd 1 and up), not stdin. Counted from here, not from the
    // exec: the program may run, write and exit, and its streams close, before this process learns of its exec.
    for (const [i, s] of this.stdio.entries()) {
      if (s === null || i === 0) continue;
      this.#openStreams++;
      s.once("close", () => {
        this.#openStreams--;
        this.#maybeClose();
      });
    }
  }

  /**
   * @internal called once execve succeeded: watch the pidfd on the loop, or with `watch`, a watch of the exit that
   * already exists (spawn's, which then calls {@link _exited}).
   */
  _started(pidfd: number, watch?: unknown): void {
    this.pidfd = pidfd;
    this.#watch = watch ?? native().pidfdWatch(pidfd, (code, signal) => this.#onExit(code, signal));
    if (!this.#referenced) native().pidfdWatchRef(this.#watch, false);
    // A tick of its own is a visible part of a short program's cost (~14 µs of a lone spawn's ~650, measured
    // alternating with and without it), so 'spawn' is scheduled only for listeners: those there now, or the first
    // added while the program runs (see the listener methods after the class).
    this.#spawn = SPAWN_OWED;
    if (this.listenerCount("spawn") > 0) this.#scheduleSpawn();
  }

  #scheduleSpawn(): void {
    this.#spawn = SPAWN_SCHEDULED;
    process.nextTick(UsernsChildProcess.#emitSpawn, this);
  }

  /** Emits 'spawn' if it is still due (the exit emits a due one first). */
  static #emitSpawn(c: UsernsChildProcess): void {
    if (c.#spawn !== SPAWN_OWED && c.#spawn !== SPAWN_SCHEDULED) return;
    c.#spawn = SPAWN_EMITTED;
    c.emit("spawn");
  }

  /**
   * @internal a 'spawn' listener was added. Once the program has exec'd and until it exits, every listener is called
   * once, on a tick after it was added: with the others if 'spawn' is still due, else on its own (ChildProcess would
   * not call one added after its 'spawn'; here a listener's call does not depend on whether another came first).
   */
  _spawnListenerAdded(listener: (...args: unknown[]) => void): void {
    if (this.#spawn === SPAWN_OWED) this.#scheduleSpawn();
    else if (this.#spawn === SPAWN_EMITTED) process.nextTick(callSpawnListener, this, listener);
  }

  /**
   * @internal execve succeeded and the program had exited by the time this process learned of it (it is reaped):
   * 'spawn', then the exit, in that order. Called from the watch's callback, as {@link _exited} is.
   */
  _startedAndExited(code: number | null, signal: number | null): void {
    this.#spawn = SPAWN_OWED;
    this.#onExit(code, signal);
  }

  /** @internal the program exited and was reaped (the watch passed to {@link _started} says so). */
  _exited(code: number | null, signal: number | null): void {
    this.#onExit(code, signal);
  }

  /** @internal the program could not be started; nothing of it is left. */
  _failed(err: unknown): void {
    this.#end();
    this.#disarm?.();
    for (const s of this.stdio) s?.destroy();
    const e = asUsernsError(err, this.spawnfile);
    this.#error = e;
    process.nextTick(() => {
      this.#exited?.reject(e);
      this.#closed?.reject(e);
      // Emit 'error' when someone listens, or when nobody asked for the promise
      // either: an unobserved failure must not pass silently.
      if (this.listenerCount("error") > 0 || (this.#exited === undefined && this.#closed === undefined))
        this.emit("error", e);
    });
  }

  #end(): void {
    const f = this._onEnd;
    this._onEnd = undefined;
    f?.();
  }

  #onExit(code: number | null, signal: number | null): void {
    // 'spawn' before 'exit', if it is still due; none after. A 'spawn' listener that throws does not keep the exit
    // from being settled (the exception is still uncaught, as from any listener).
    try {
      UsernsChildProcess.#emitSpawn(this);
    } finally {
      this.#spawn = SPAWN_NONE;
      this.#settleExit(code, signal);
    }
  }

  #settleExit(code: number | null, signal: number | null): void {
    this.#end();
    this.pidfd = -1;
    this.#watch = undefined;
    this.exitCode = code;
    this.signalCode = signal === null ? null : (signalNames.get(signal) ?? null);
    this.#status = { pid: this.pid!, code, signal: this.signalCode };
    this.#disarm?.();
    // Nobody reads stdin any more (ChildProcess does the same).
    (this.stdin as Writable | null)?.destroy();
    // As ChildProcess: a readable end nobody consumes is drained, so 'close' (and `await child`) cannot wait on it
    // forever. Ends someone reads keep their data; they close when the last writer (maybe a grandchild) closes.
    for (const [i, s] of this.stdio.entries()) {
      if (i === 0 || s === null || !(s as Readable).readable) continue;
      if ((s as Readable).readableFlowing === null && s.listenerCount("data") + s.listenerCount("readable") === 0)
        (s as Readable).resume();
    }
    this.emit("exit", code, this.signalCode);
    this.#exited?.resolve(this.#status);
    this.#maybeClose();
  }

  #maybeClose(): void {
    if (this.#status === undefined || this.#openStreams > 0) return;
    this.#openStreams = -1;
    this.#closedStatus = this.#status;
    this.emit("close", this.#status.code, this.#status.signal);
    if (this.#abortError !== undefined) this.#closed?.reject(this.#abortError);
    else this.#closed?.resolve(this.#status);
  }
}

// A 'spawn' listener added after the exec is called too (see UsernsChildProcess._spawnListenerAdded). Every way of
// adding a listener comes through these three: once() calls on(), prependOnceListener() calls prependListener(), and
// events.once() and events.on() call once() and on(). Patched here rather than overridden in the class, where an
// override would have to restate (and so widen) EventEmitter's typed signatures.
for (const name of ["on", "addListener", "prependListener"] as const) {
  const add = EventEmitter.prototype[name];
  Object.defineProperty(UsernsChildProcess.prototype, name, {
    configurable: true,
    writable: true,
    value: function (this: UsernsChildProcess, event: string | symbol, listener: (...args: unknown[]) => void) {
      add.call(this, event, listener);
      if (event === "spawn") this._spawnListenerAdded(listener);
      return this;
    },
  });
}

/** A 'spawn' listener added after 'spawn', called on its own (unless it was removed meanwhile). */
function callSpawnListener(c: UsernsChildProcess, listener: (...args: unknown[]) => void): void {
  if (c.rawListeners("spawn").includes(listener)) listener.call(c);
}

interface Deferred {
  promise: Promise<ExitStatus>;
  resolve(s: ExitStatus): void;
  reject(e: unknown): void;
}

function deferred(): Deferred {
  let resolve!: (s: ExitStatus) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<ExitStatus>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** The error an AbortSignal gives: Node's AbortError shape (code ABORT_ERR), as a UsernsError. */
export function abortError(file: string, reason: unknown): UsernsError {
  const e = new UsernsError(`spawning ${file}`, {
    code: "ABORT_ERR",
    reason: "the operation was aborted",
    cause: reason,
  });
  return e;
}

/**
 * Everything the handle reports is a UsernsError. A Node system error (an fs call of the preparation failing, e.g.
 * EMFILE reading /etc/subuid with every fd taken) keeps its errno, syscall and path; any other error (a bug) is
 * wrapped as ERR_USERNS. Either way the original is the `cause`.
 */
function asUsernsError(err: unknown, file: string): UsernsError {
  if (UsernsError.isUsernsError(err)) return err;
  const ne = err as Partial<NodeJS.ErrnoException> | undefined;
  return new UsernsError(`spawning ${file}`, {
    code: codeOfNodeError(err, "ERR_USERNS"),
    syscall: typeof ne?.syscall === "string" ? ne.syscall : undefined,
    path: typeof ne?.path === "string" ? ne.path : undefined,
    reason: err instanceof Error ? err.message : String(err),
    cause: err,
  });
}
