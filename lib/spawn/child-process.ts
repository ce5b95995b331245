/**
 * The handle `spawn` returns: shaped like Node's ChildProcess (pid, stdio
 * streams, 'spawn' / 'exit' / 'close' / 'error' events, kill(), ref/unref),
 * plus `pidfd`, `mapping` and a promise of the exit status (`child.exited`,
 * or `await child`).
 */
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { constants } from "node:os";
import type { Readable, Writable } from "node:stream";
import type { MappingResult } from "../child/maps.js";
import { UsernsError } from "../errors.js";
import { native } from "../kernel/native.js";

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

/** A ChildProcess-compatible handle for a program started by {@link spawn}. */
export class UsernsChildProcess extends EventEmitter implements PromiseLike<ExitStatus> {
  /** The child's pid as seen from this process; set once clone3 returned. */
  pid: number | undefined = undefined;
  /** A pidfd for the child while it runs (closed once it is reaped, then -1). */
  pidfd = -1;
  /** How the maps were written, and exactly which lines; undefined when no user namespace maps were written. */
  mapping: MappingResult | undefined = undefined;
  stdin: Writable | null = null;
  stdout: Readable | null = null;
  stderr: Readable | null = null;
  /** All stdio entries, as ChildProcess.stdio. */
  readonly stdio: (Readable | Writable | null)[] = [];
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  /** True once kill() delivered a signal. */
  killed = false;
  readonly spawnfile: string;
  readonly spawnargs: readonly string[];

  #exited: Promise<ExitStatus> | undefined;
  #resolve: ((s: ExitStatus) => void) | undefined;
  #reject: ((e: unknown) => void) | undefined;
  #status: ExitStatus | undefined;
  #error: unknown;
  #watch: unknown;
  #referenced = true;
  #openStreams = 0;

  /** @internal */
  constructor(file: string, args: readonly string[]) {
    super();
    this.spawnfile = file;
    this.spawnargs = args;
  }

  /** Resolves with the exit status once the program exits; rejects if it could not be started. */
  get exited(): Promise<ExitStatus> {
    if (this.#exited === undefined) {
      this.#exited = new Promise<ExitStatus>((resolve, reject) => {
        this.#resolve = resolve;
        this.#reject = reject;
      });
      if (this.#status !== undefined) this.#resolve!(this.#status);
      else if (this.#error !== undefined) this.#reject!(this.#error);
    }
    return this.#exited;
  }

  // biome-ignore lint/suspicious/noThenProperty: the handle is awaitable on purpose, as execa's is.
  then<T1 = ExitStatus, T2 = never>(
    onfulfilled?: ((value: ExitStatus) => T1 | PromiseLike<T1>) | null,
    onrejected?: ((reason: unknown) => T2 | PromiseLike<T2>) | null,
  ): Promise<T1 | T2> {
    return this.exited.then(onfulfilled, onrejected);
  }

  /**
   * Sends a signal through the pidfd (no pid-reuse race). Returns true if it
   * was delivered, false if the child has already exited. Before execve
   * (while newuidmap writes the maps) it cancels the spawn instead: the
   * waiting child is killed and reaped, and the handle fails with ABORT_ERR.
   */
  kill(signal: NodeJS.Signals | number = "SIGTERM"): boolean {
    const sig = signalNumber(signal);
    if (this.pidfd < 0) return sig !== 0 && this._cancel !== undefined ? this._cancel(signal) : false;
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

  /** @internal while the program waits for its maps (newuidmap): cancels the spawn. */
  _cancel: ((signal: NodeJS.Signals | number) => boolean) | undefined = undefined;

  /** @internal called once execve succeeded: watch the pidfd on the loop. */
  _started(pidfd: number): void {
    this.pidfd = pidfd;
    this.#watch = native().pidfdWatch(pidfd, (code, signal) => this.#onExit(code, signal));
    if (!this.#referenced) native().pidfdWatchRef(this.#watch, false);
    // As ChildProcess: 'close' waits for the readable ends (fd 1 and up), not stdin.
    for (const [i, s] of this.stdio.entries()) {
      if (s === null || i === 0) continue;
      this.#openStreams++;
      s.once("close", () => {
        this.#openStreams--;
        this.#maybeClose();
      });
    }
    process.nextTick(() => this.emit("spawn"));
  }

  /** @internal the program could not be started; nothing of it is left. */
  _failed(err: unknown): void {
    for (const s of this.stdio) s?.destroy();
    this.#error = err;
    process.nextTick(() => {
      if (this.#reject !== undefined) this.#reject(err);
      // Emit 'error' when someone listens, or when nobody asked for the promise
      // either: an unobserved failure must not pass silently.
      if (this.listenerCount("error") > 0 || this.#exited === undefined) this.emit("error", err);
    });
  }

  #onExit(code: number | null, signal: number | null): void {
    this.pidfd = -1;
    this.#watch = undefined;
    this.exitCode = code;
    this.signalCode = signal === null ? null : (signalNames.get(signal) ?? null);
    this.#status = { pid: this.pid!, code, signal: this.signalCode };
    // Nobody reads stdin any more (ChildProcess does the same).
    this.stdin?.destroy();
    this.emit("exit", code, this.signalCode);
    this.#resolve?.(this.#status);
    this.#maybeClose();
  }

  #maybeClose(): void {
    if (this.#status === undefined || this.#openStreams > 0) return;
    this.#openStreams = -1;
    this.emit("close", this.#status.code, this.#status.signal);
  }
}
