/**
 * The child's work between clone3 and execve, as a short declarative list of
 * steps run in order (join, unshare, attach a mount, chdir, set ids ...).
 * TS decides the list; native/spawn.cc only runs it, with raw syscalls.
 */
import { UsernsError } from "../errors.js";
import { native } from "../kernel/native.js";
import { type SandboxStep, sandboxStepError } from "../sandbox/prepare.js";

/** One step the child runs before execve. */
export type ChildStep =
  /** Block until the parent releases the child; `notify` first tells the parent this point was reached. */
  | { readonly op: "wait"; readonly notify: boolean }
  /** setns(fd, nstype): join an existing namespace. */
  | { readonly op: "join"; readonly fd: number; readonly nstype: number; readonly label?: string }
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
  /** A sandbox step prepared by lib/sandbox (its own native op number in `code`). */
  | SandboxStep;

/** Native op numbers: must match `enum Op` in native/spawn.cc. */
const OP: Readonly<Record<Exclude<ChildStep["op"], "sandbox">, number>> = {
  wait: 1,
  join: 2,
  unshare: 3,
  chdir: 4,
  setgroups: 5,
  setgid: 6,
  setuid: 7,
  parentDeathSignal: 8,
  setsid: 9,
  stdio: 10,
  attachMount: 11,
  writeFile: 12,
  propagation: 13,
  dumpable: 14,
  fork: 15,
};

/** The syscall each step makes, for error reports. */
const SYSCALL: Readonly<Record<Exclude<ChildStep["op"], "sandbox">, string>> = {
  wait: "read",
  join: "setns",
  unshare: "unshare",
  chdir: "chdir",
  setgroups: "setgroups",
  setgid: "setresgid",
  setuid: "setresuid",
  parentDeathSignal: "prctl",
  setsid: "setsid",
  stdio: "dup3",
  attachMount: "move_mount",
  writeFile: "write",
  propagation: "mount",
  dumpable: "prctl",
  fork: "clone3",
};

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

/** A child created by {@link startChild}, possibly blocked at a wait step. */
export interface HeldChild {
  readonly pid: number;
  readonly plan: ChildPlan;
  /** Opaque native handle; the native side kills and reaps the child if this is garbage-collected while held. */
  readonly handle: unknown;
  done: boolean;
}

/** What {@link resumeChild} saw next. */
export type ResumeResult =
  | { readonly kind: "ready"; readonly step: number }
  /** `pid`: the program's pid (after a fork step, not the first child's). */
  | { readonly kind: "exec"; readonly pidfd: number; readonly pid: number }
  | { readonly kind: "exit"; readonly code: number | null; readonly signal: number | null };

function encode(plan: ChildPlan): { steps: number[]; strings: string[]; gids: number[]; blobs: Uint8Array[] } {
  const steps: number[] = [];
  const strings: string[] = [];
  const gids: number[] = [];
  const blobs: Uint8Array[] = [];
  const str = (s: string): number => strings.push(s) - 1;
  for (const s of plan.steps) {
    if (s.op === "sandbox") {
      // Binary data goes as a blob, named by a negative index (-2 - k).
      const si = s.s !== undefined ? str(s.s) : -1;
      const s2 = s.data !== undefined ? -2 - (blobs.push(s.data) - 1) : -1;
      steps.push(s.code, s.a, s.b, si, s2);
      continue;
    }
    let a = 0;
    let b = 0;
    let si = -1;
    let s2 = -1;
    switch (s.op) {
      case "wait":
        a = s.notify ? 1 : 0;
        break;
      case "join":
        a = s.fd;
        b = s.nstype;
        break;
      case "unshare":
        a = s.flags;
        break;
      case "chdir":
        si = str(s.path);
        break;
      case "setgroups":
        a = gids.length;
        b = s.groups.length;
        gids.push(...s.groups);
        break;
      case "setgid":
        a = s.gid;
        break;
      case "setuid":
        a = s.uid;
        break;
      case "parentDeathSignal":
        a = s.signal;
        b = s.viaErrorPipe === true ? 1 : 0;
        break;
      case "attachMount":
        a = s.fd;
        si = str(s.target);
        break;
      case "writeFile":
        si = str(s.path);
        s2 = str(s.data);
        break;
      case "propagation":
        a = s.flags;
        break;
      case "dumpable":
        a = s.value;
        break;
      case "setsid":
      case "stdio":
      case "fork":
        break;
    }
    steps.push(OP[s.op], a, b, si, s2);
  }
  return { steps, strings, gids, blobs };
}

/** The name of step `index` of a plan, as errors report it (`execve` past the list). */
export function stepName(plan: ChildPlan, index: number): { step: string; syscall: string } {
  const s = plan.steps[index];
  if (s === undefined) return { step: "execve", syscall: "execve" };
  if (s.op === "sandbox") return { step: s.label, syscall: s.syscall };
  if (s.op === "writeFile") return { step: s.label ?? "writeFile", syscall: SYSCALL[s.op] };
  if (s.op === "join") return { step: s.label ?? "join", syscall: SYSCALL[s.op] };
  return { step: s.op, syscall: SYSCALL[s.op] };
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
  if (s.op === "fork" && errno === "ECHILD")
    return "the intermediate process ended (a signal) before it created the program";
  if ((s.op === "setuid" || s.op === "setgid") && errno === "EINVAL")
    return "that id is not mapped in the child's user namespace";
  if (s.op === "setgroups" && errno === "EPERM")
    return "setgroups is denied in this user namespace, or its gid_map is not written";
  return undefined;
}

/** Creates the child with clone3 (CLONE_PIDFD, plus the plan's namespaces); it starts running its steps. */
export function startChild(plan: ChildPlan): HeldChild {
  const { steps, strings, gids, blobs } = encode(plan);
  const [pid, handle] = native().spawnStart(
    plan.cloneFlags,
    plan.path,
    [...plan.argv],
    plan.envp === null ? null : [...plan.envp],
    [...plan.fdSrc],
    steps,
    strings,
    gids,
    plan.exitMode === true,
    blobs,
    plan.noVm === true,
  );
  return { pid, plan, handle, done: false };
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
    if (s?.op === "sandbox") throw sandboxStepError(s, r.errno);
    const err = new UsernsError(`${what}: step ${step} (${syscall})`, { errno: r.errno, syscall, step });
    const reason = explain(s, err.code);
    throw reason === undefined
      ? err
      : new UsernsError(`${what}: step ${step} (${syscall})`, { errno: r.errno, syscall, step, reason });
  }
  if (r.kind !== "ready") child.done = true;
  return r;
}

/** Kills (SIGKILL via the pidfd) and reaps a held child; safe to call twice. */
export function abortChild(child: HeldChild): void {
  if (child.done) return;
  child.done = true;
  native().spawnAbort(child.handle);
}

/**
 * Runs a helper child to completion: its steps, then exit 0. Used for work
 * that must happen inside another namespace (writing a nested namespace's
 * maps from its parent, reading maps from inside).
 */
export function runHelper(steps: readonly ChildStep[], what: string): void {
  const child = startChild({ cloneFlags: 0, path: "/", argv: [], envp: [], fdSrc: [], steps, exitMode: true });
  try {
    for (;;) {
      const r = resumeChild(child, what);
      if (r.kind === "exit") {
        if (r.code !== 0)
          throw new UsernsError(what, {
            code: "ERR_USERNS_HELPER",
            reason: `helper exited with ${r.code ?? `signal ${r.signal}`}`,
          });
        return;
      }
      if (r.kind === "exec")
        throw new UsernsError(what, { code: "ERR_USERNS_HELPER", reason: "helper did not run in exit mode" });
    }
  } finally {
    abortChild(child);
  }
}
