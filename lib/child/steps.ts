/**
 * The child's work between clone3 and execve, as a short declarative list of
 * steps run in order (join, unshare, attach a mount, chdir, set ids ...).
 * TS decides the list; native/child/run.cc only runs it, with raw syscalls.
 * The op numbers and argument slots are in ./protocol.ts (how to add a step is written there).
 */
import { constants } from "node:os";
import { UsernsError } from "../errors.js";
import { type ChildWatchCallback, native, type ProcFilesHandle } from "../kernel/native.js";
import { SPAWN_OPS, type SpawnOpName, type SpawnSlot } from "./protocol.js";

/** One step the child runs before execve. */
export type ChildStep =
  /** Block until the parent releases the child; `notify` first tells the parent this point was reached. */
  | { readonly op: "wait"; readonly notify: boolean }
  /** setns(fd, nstype): join an existing namespace. */
  /** `path`: the namespace file the fd came from, named in errors (not passed to the child). */
  | {
      readonly op: "join";
      readonly fd: number;
      readonly nstype: number;
      readonly label?: string;
      readonly path?: string;
    }
  /** unshare(flags): create namespaces from inside the child. */
  | { readonly op: "unshare"; readonly flags: number }
  | { readonly op: "chdir"; readonly path: string }
  | { readonly op: "setgroups"; readonly groups: readonly number[] }
  | { readonly op: "setgid"; readonly gid: number }
  | { readonly op: "setuid"; readonly uid: number }
  /**
   * prctl(PR_SET_PDEATHSIG), then a check that the parent did not die before it was armed: by getppid(), or with
   * `viaErrorPipe` by whether the error pipe still has its reader (the parent), for a process whose parent is
   * outside its pid namespace (getppid() is 0 there).
   */
  | { readonly op: "parentDeathSignal"; readonly signal: number; readonly viaErrorPipe?: boolean }
  | { readonly op: "setsid" }
  /** Put the stdio fds in place and mark every fd above them close-on-exec. */
  | { readonly op: "stdio" }
  /** move_mount(fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH): attach a detached mount. */
  | { readonly op: "attachMount"; readonly fd: number; readonly target: string }
  /** open(path, O_WRONLY) and one write(2) of data; `label` names the step in errors (e.g. "uid_map"). */
  | { readonly op: "writeFile"; readonly path: string; readonly data: string; readonly label?: string }
  /** mount(NULL, "/", NULL, flags, NULL): set the propagation of the whole tree. */
  | { readonly op: "propagation"; readonly flags: number }
  | { readonly op: "dumpable"; readonly value: 0 | 1 }
  /**
   * clone3(CLONE_VM | CLONE_PARENT): the later steps and execve run in a new process, a child of this Node process
   * (not of the first child, which exits here). After unshare(CLONE_NEWPID) that process is pid 1 of the new pid
   * namespace. At most one per plan; the handle's pid and pidfd are then the new process's.
   */
  | { readonly op: "fork" }
  /** close(fd) in the child (its own copy of the fd table): a monitoring fd a reader waits to see closed. */
  | { readonly op: "closeFd"; readonly fd: number }
  /** A sandbox step, built by lib/sandbox/prepare.ts. */
  | SandboxStep;

/** The sandbox's ops in {@link SPAWN_OPS} (native/child/sandbox.cc carries them out). */
export type SandboxOpName =
  | "sbBase"
  | "sbFs"
  | "sbPivot"
  | "sbHostname"
  | "sbKeepCaps"
  | "sbCaps"
  | "sbNoNewPrivs"
  | "sbSeccomp"
  | "sbLoopback"
  | "sbDisableUserns"
  | "sbReaper"
  | "execSearch";

/**
 * One sandbox step: raw slots (their meaning is the op's, see {@link SPAWN_OPS} and native/child/sandbox.h) and how
 * to name it in errors. lib/sandbox builds them; this layer only encodes and runs them.
 */
export interface SandboxStep {
  readonly op: SandboxOpName;
  readonly a: number;
  readonly b: number;
  /** A NUL-free string (a destination path relative to the new root). */
  readonly s?: string;
  /** Bytes (a source path, a NUL-separated spec, file data, a BPF program). */
  readonly data?: Uint8Array;
  /** What the step does, in the caller's terms: `filesystem step 4 (bind /srv/data → /data)`. */
  readonly label: string;
  /** The syscall to report when the child gives no stage. */
  readonly syscall: string;
  /** The host or sandbox paths involved, for the error's `path`. */
  readonly path?: string;
  /** The operation kind ("bind", "tmpfs", "hostname", ...), to explain errnos. */
  readonly kind: string;
  /**
   * The error for a failure of this step, from the child's raw code (the sandbox's codes pack a stage above the
   * errno, which only lib/sandbox can read). Without it the failure is reported as a plain errno.
   */
  readonly error?: (raw: number) => UsernsError;
}

/**
 * Compile-time agreement of ChildStep and {@link SPAWN_OPS}: every table row has a ChildStep variant and every slot
 * names a field of it (a ChildStep op without a row fails in encode()).
 */
type SlotField<K extends SpawnOpName> = (typeof SPAWN_OPS)[K]["args"][keyof (typeof SPAWN_OPS)[K]["args"]];
// Distributes over ChildStep: a variant whose `op` is a union of names (SandboxStep) counts for each of them.
type StepOf<K extends SpawnOpName> = ChildStep extends infer T
  ? T extends { readonly op: infer O }
    ? K extends O
      ? T
      : never
    : never
  : never;
type TableAgrees = {
  [K in SpawnOpName]: [StepOf<K>] extends [never] ? K : SlotField<K> extends keyof StepOf<K> ? true : K;
};
const tableAgrees: { [K in SpawnOpName]: true } = {} as TableAgrees;
void tableAgrees;

/** What the child is and runs: everything prepared before clone3. */
export interface ChildPlan {
  /**
   * CLONE_NEW* flags for clone3 itself. With CLONE_NEWTIME (and CLONE_VM) the child itself stays in the old time
   * namespace and enters the new one at execve, as after unshare(CLONE_NEWTIME).
   */
  readonly cloneFlags: number;
  /** Absolute or cwd-relative path for execve; ignored in exit mode. */
  readonly path: string;
  readonly argv: readonly string[];
  /** The environment; null passes this process's own (libc's environ) without building a JS string per variable. */
  readonly envp: readonly string[] | null;
  /** Child fd i gets fdSrc[i]; -1 closes it, {@link DEV_NULL} opens /dev/null (in the child). Applied by the "stdio" step. */
  readonly fdSrc: readonly number[];
  readonly steps: readonly ChildStep[];
  /** Helper mode: exit 0 after the steps instead of execve. */
  readonly exitMode?: boolean;
  /** A fork-like child with its own memory (no CLONE_VM), for a child that outlives exec (a reaping pid 1). */
  readonly noVm?: boolean;
}

/** An fdSrc entry: the child opens /dev/null itself for this slot. */
export const DEV_NULL = -2;

/**
 * What {@link startChild} does right after clone3, in the same native call: the plain spawn's map writes and
 * release then cost no return to JavaScript, and no event-loop turn either.
 */
export interface StartFollowUp {
  /** Files of /proc/PID to write, as [name, data, ...] (setgroups, uid_map, gid_map); the first failure stops. */
  readonly writes?: readonly string[] | undefined;
  /** The same list as the addon's copy (procFiles), used instead when given: nothing to convert per call. */
  readonly writesHandle?: ProcFilesHandle | undefined;
  /** After the writes, release the child and block until its next event (as {@link resumeChild}). */
  readonly wait?: boolean;
  /**
   * With `wait`: the program's exit callback, armed on its pidfd while the child execs (this thread would only
   * wait then); the outcome `exec` then carries the watch.
   */
  readonly onExit?: (code: number | null, signal: number | null) => void;
  /**
   * Without `wait`: after the writes, release the child and learn of its exec, then of the program's exit, on the
   * event loop (as {@link watchChild}); the outcome is then `watching`.
   */
  readonly watch?: (e: WatchEvent) => void;
}

/** What came of a {@link StartFollowUp}. */
export type StartOutcome =
  /** Nothing was asked, or only writes, which succeeded: the child runs its steps, blocked at a first wait if any. */
  | { readonly kind: "held" }
  /** Write `index` failed; the child is still held. */
  | { readonly kind: "writeFailed"; readonly index: number; readonly syscall: "open" | "write"; readonly errno: number }
  /**
   * `wait`, and execve succeeded: the child is done. With `watch` (`onExit` was armed), the watch owns the pidfd
   * and reports the exit; without, the pidfd is the caller's to watch.
   */
  | { readonly kind: "exec"; readonly pidfd: number; readonly watch?: unknown }
  /**
   * `wait`, and something else came (a failed step, a death): {@link resumeChild} without release reports it. Or
   * `watch`, and nothing could be watched (no fd to spare): the child is released, and {@link resumeChild} without
   * release waits for what comes.
   */
  | { readonly kind: "pending" }
  /** `watch`: the child is released and watched; `watch` reports what comes. */
  | { readonly kind: "watching" };

/** A child created by {@link startChild}, possibly blocked at a wait step. */
export interface HeldChild {
  readonly pid: number;
  readonly plan: ChildPlan;
  /**
   * Opaque native handle; the native side kills and reaps the child if this is garbage-collected while held.
   * Undefined once the child exec'd within startChild (nothing is left to hold).
   */
  readonly handle: unknown;
  done: boolean;
  /** What the follow-up came to. */
  readonly started: StartOutcome;
}

/** What {@link resumeChild} saw next. */
export type ResumeResult =
  /** `pid`: the waiting process's pid (after a fork step, the program's). */
  | { readonly kind: "ready"; readonly step: number; readonly pid: number }
  /** `pid`: the program's pid (after a fork step, not the first child's). */
  | { readonly kind: "exec"; readonly pidfd: number; readonly pid: number }
  | { readonly kind: "exit"; readonly code: number | null; readonly signal: number | null };

/**
 * Flattens the plan for the native side into {@link nums}: [count, nFd, fdSrc..., nSteps, five numbers per step
 * (op, a, b, s, s2), nGids, gids...], count being the numbers after it; and the strings the steps index and the blobs
 * (binary s2 data, named by an s2 index of -2 - k). Which field goes in which slot is read from {@link SPAWN_OPS},
 * the table native/child/protocol.h is generated from. One buffer for every call (a call never outlives the next):
 * the addon reads it at once, instead of an element and a conversion per number.
 */
function encode(plan: ChildPlan): { strings: readonly string[]; blobs: readonly Uint8Array[] } {
  // Plain loops and no closures: this runs on every spawn, and each closure and its context is garbage.
  let strings: string[] | undefined;
  let blobs: Uint8Array[] | undefined;
  let gids: number[] | undefined;
  const fdSrc = plan.fdSrc;
  const steps = plan.steps;
  let n = reserve(4 + fdSrc.length + 5 * steps.length);
  let at = 1;
  n[at++] = fdSrc.length;
  for (let i = 0; i < fdSrc.length; i++) n[at++] = fdSrc[i]!;
  n[at++] = steps.length;
  for (const s of steps) {
    const spec = SPAWN_OPS[s.op];
    const args: Partial<Record<SpawnSlot, string>> = spec.args;
    const fields = s as unknown as Record<string, unknown>;
    let a = slotNumber(fields, args.a);
    let b = slotNumber(fields, args.b);
    const list = args.gids === undefined ? undefined : fields[args.gids];
    if (Array.isArray(list)) {
      gids ??= [];
      a = gids.length;
      b = list.length;
      for (const g of list as number[]) gids.push(g);
    }
    const blob = args.blob === undefined ? undefined : fields[args.blob];
    let s2 = -1;
    if (blob instanceof Uint8Array) {
      blobs ??= [];
      s2 = -2 - (blobs.push(blob) - 1);
    } else if (args.s2 !== undefined && typeof fields[args.s2] === "string") {
      strings ??= [];
      s2 = strings.push(fields[args.s2] as string) - 1;
    }
    let s1 = -1;
    if (args.s !== undefined && typeof fields[args.s] === "string") {
      strings ??= [];
      s1 = strings.push(fields[args.s] as string) - 1;
    }
    n[at++] = spec.op;
    n[at++] = a;
    n[at++] = b;
    n[at++] = s1;
    n[at++] = s2;
  }
  const nGids = gids?.length ?? 0;
  if (gids !== undefined) n = reserve(at + 1 + nGids, at);
  n[at++] = nGids;
  for (let i = 0; i < nGids; i++) n[at++] = gids![i]!;
  n[0] = at - 1;
  return { strings: strings ?? NONE, blobs: blobs ?? NONE_BLOBS };
}

/** The numbers of the next spawnStart call (see {@link encode}). */
let nums = new Float64Array(64);
const NONE: readonly string[] = Object.freeze([]);
const NONE_BLOBS: readonly Uint8Array[] = Object.freeze([]);

/** {@link nums}, grown to hold `size` numbers, keeping the first `keep`. */
function reserve(size: number, keep = 0): Float64Array {
  if (nums.length < size) {
    const bigger = new Float64Array(Math.max(size, 2 * nums.length));
    bigger.set(nums.subarray(0, keep));
    nums = bigger;
  }
  return nums;
}

/** A step's a or b slot as the native side takes it: the number, 1 for true, else 0. */
function slotNumber(fields: Record<string, unknown>, name: string | undefined): number {
  const v = name === undefined ? undefined : fields[name];
  return typeof v === "number" ? v : v === true ? 1 : 0;
}

/** The name of step `index` of a plan, as errors report it (`execve` past the list). */
export function stepName(plan: ChildPlan, index: number): { step: string; syscall: string } {
  const s = plan.steps[index];
  if (s === undefined) return { step: "execve", syscall: "execve" };
  if ("label" in s && "kind" in s) return { step: s.label, syscall: s.syscall };
  if (s.op === "writeFile") return { step: s.label ?? "writeFile", syscall: SPAWN_OPS[s.op].syscall };
  if (s.op === "join") return { step: s.label ?? "join", syscall: SPAWN_OPS[s.op].syscall };
  return { step: s.op, syscall: SPAWN_OPS[s.op].syscall };
}

/** The path a failed step was about, for the error's `path`: the program, the directory, the mount target, the namespace file. */
function stepPath(plan: ChildPlan, index: number): string | undefined {
  const s = plan.steps[index];
  if (s === undefined) return plan.exitMode === true ? undefined : plan.path;
  if (s.op === "chdir" || s.op === "writeFile") return s.path;
  if (s.op === "attachMount") return s.target;
  if (s.op === "join") return s.path;
  return undefined;
}

/** Why a step commonly fails, in words, where the errno alone does not say. */
function explain(s: ChildStep | undefined, errno: string): string | undefined {
  if (s === undefined) {
    if (errno === "ENOENT") return "no such file (the path is resolved in the child's mount namespace and cwd)";
    if (errno === "EACCES") return "permission denied, or the file is not executable";
    return undefined;
  }
  if (s.op === "join" && errno === "EPERM")
    return "the child lacks CAP_SYS_ADMIN in the namespace's owning user namespace";
  if (s.op === "join" && errno === "EINVAL")
    return "the fd is not a namespace of that type, or it is the user namespace the child is already in";
  if (s.op === "unshare" && errno === "EPERM")
    return "the creator's uid or gid is not mapped in the parent user namespace, or it lacks CAP_SYS_ADMIN there";
  if (s.op === "unshare" && errno === "ENOSPC")
    return "the nesting limit (32 levels below the initial namespace) or max_user_namespaces was reached";
  if (s.op === "fork" && errno === "ENOMEM")
    return "the pid namespace has no init any more (its pid 1 exited): no process can be made in it";
  if (s.op === "fork" && errno === "ECHILD")
    return "the intermediate process ended (a signal) before it created the program";
  if ((s.op === "setuid" || s.op === "setgid") && errno === "EINVAL")
    return "that id is not mapped in the child's user namespace";
  if (s.op === "setgroups" && errno === "EPERM")
    return "setgroups is denied in this user namespace, or its gid_map is not written";
  return undefined;
}

const HELD: StartOutcome = Object.freeze({ kind: "held" });
const PENDING: StartOutcome = Object.freeze({ kind: "pending" });
const WATCHING: StartOutcome = Object.freeze({ kind: "watching" });
// The native side's numbers: [pid, status, ...]; one array for every call (a call never outlives the next).
const startOut = new Int32Array(5);

/**
 * Creates the child with clone3 (CLONE_PIDFD, plus the plan's namespaces); it starts running its steps. Then, in
 * the same call, does what `followUp` asks (see {@link HeldChild.started}).
 */
export function startChild(plan: ChildPlan, followUp?: StartFollowUp): HeldChild {
  const { strings, blobs } = encode(plan);
  const onEvent = followUp?.watch;
  // Fires from the event loop only, by when `held` is set.
  const watchCb = onEvent === undefined ? undefined : childWatchCallback(() => held, onEvent);
  const handle = native().spawnStart(
    plan.cloneFlags,
    plan.path,
    plan.argv,
    plan.envp,
    nums,
    strings,
    plan.exitMode === true,
    blobs,
    plan.noVm === true,
    followUp?.writesHandle ?? followUp?.writes,
    followUp?.wait === true,
    startOut,
    followUp?.onExit,
    watchCb,
  );
  const o = startOut;
  let started: StartOutcome;
  let done = false;
  switch (o[1]) {
    case 1:
      started = { kind: "writeFailed", index: o[2]!, syscall: o[3] === 0 ? "open" : "write", errno: o[4]! };
      break;
    case 2:
      started = o[3] === 1 ? { kind: "exec", pidfd: o[2]!, watch: handle } : { kind: "exec", pidfd: o[2]! };
      done = true;
      break;
    case 3:
      started = PENDING;
      break;
    case 4:
      started = WATCHING;
      break;
    default:
      started = HELD;
  }
  const held: HeldChild = { pid: o[0]!, plan, handle: done ? undefined : handle, done, started };
  return held;
}

/**
 * Releases the child from the wait it is blocked at (if any) and returns what
 * happened next. A failed step throws a {@link UsernsError} naming it; the
 * child has then been reaped.
 */
export function resumeChild(child: HeldChild, what: string, release = true): ResumeResult {
  const r = native().spawnResume(child.handle, release);
  if (r.kind === "failed") {
    child.done = true;
    const { step, syscall } = stepName(child.plan, r.step);
    const s = child.plan.steps[r.step];
    if (s !== undefined && "error" in s && s.error !== undefined) throw s.error(r.errno);
    const path = stepPath(child.plan, r.step);
    const err = new UsernsError(`${what}: step ${step} (${syscall})`, { errno: r.errno, syscall, step, path });
    const reason = s?.op === "wait" && err.code === "ECHILD" ? diedBeforeRelease(r.signal) : explain(s, err.code);
    throw reason === undefined
      ? err
      : new UsernsError(`${what}: step ${step} (${syscall})`, { errno: r.errno, syscall, step, path, reason });
  }
  if (r.kind !== "ready") child.done = true;
  return r;
}

/** Why a child that never read its release ended: it can only have been a signal. */
function diedBeforeRelease(signal: number | undefined): string {
  const name = signal === undefined ? undefined : Object.entries(constants.signals).find(([, n]) => n === signal)?.[0];
  return `the child was killed${name === undefined ? "" : ` by ${name}`} before execve, before it was released`;
}

/** What {@link watchChild} reports. */
export type WatchEvent =
  /**
   * The program exec'd: `pidfd` is for signals until it exits. With `watch`, the same watch reports its exit and
   * owns the pidfd (`watch` is for pidfdWatchRef); without, the pidfd is the caller's to watch.
   */
  | { readonly kind: "exec"; readonly pidfd: number; readonly watch?: unknown }
  /** The program exec'd and had exited by then: it is reaped, and this is the last event. */
  | { readonly kind: "execExit"; readonly code: number | null; readonly signal: number | null }
  /** Anything else (a failed step, a death, an abort): {@link resumeChild} without release reports it. */
  | { readonly kind: "other" }
  /** The program exited and was reaped (after an exec with `watch`). */
  | { readonly kind: "exit"; readonly code: number | null; readonly signal: number | null };

/**
 * Releases the child from the wait it is blocked at (if any) and learns on the event loop, not by blocking this
 * thread, whether it exec'd; then, with the same watch, when the program exits. False when nothing could be
 * watched: the child is released, and {@link resumeChild} without release waits for what comes.
 */
export function watchChild(child: HeldChild, onEvent: (e: WatchEvent) => void): boolean {
  return native().spawnWatch(
    child.handle,
    childWatchCallback(() => child, onEvent),
  );
}

/** The native watch's (kind, a, b) as {@link WatchEvent}s; the child is done once it exec'd. */
function childWatchCallback(child: () => HeldChild, onEvent: (e: WatchEvent) => void): ChildWatchCallback {
  return (kind, a, b) => {
    if (kind === 0) onEvent({ kind: "exit", code: a, signal: b as number | null });
    else if (kind === 1) {
      child().done = true;
      onEvent(b === null ? { kind: "exec", pidfd: a! } : { kind: "exec", pidfd: a!, watch: b });
    } else if (kind === 3) {
      child().done = true;
      onEvent({ kind: "execExit", code: a, signal: b as number | null });
    } else onEvent(OTHER);
  };
}

const OTHER: WatchEvent = Object.freeze({ kind: "other" });

/** Sends a signal to a released child that may not have exec'd yet (it acts at execve); false if it is gone. */
export function signalChild(child: HeldChild, signal: number): boolean {
  return !child.done && native().spawnSignal(child.handle, signal);
}

/** Kills (SIGKILL via the pidfd) and reaps a held child; safe to call twice. */
export function abortChild(child: HeldChild): void {
  if (child.done) return;
  child.done = true;
  native().spawnAbort(child.handle);
}
