/**
 * spawn(file, args, options): start a program inside new (or joined)
 * namespaces, with the uid and gid maps the caller asked for.
 *
 * Sequence: validate everything in TS, prepare argv/envp/stdio/steps, clone3
 * a child that waits, write setgroups/uid_map/gid_map while it waits,
 * release it, and learn from the error pipe whether execve succeeded.
 */
import { accessSync, constants as fsConstants, read as fsRead, openSync, readlinkSync, statSync } from "node:fs";
import { Socket } from "node:net";
import { constants } from "node:os";
import { join as joinPath } from "node:path";
import { fileURLToPath } from "node:url";
import { isMainThread } from "node:worker_threads";
import { diedError, diedWhileHeld } from "../child/held.js";
import { becomeCreatorSteps } from "../child/holder.js";
import {
  directMapFiles,
  directWriteError,
  type MapInput,
  type MappingResult,
  type MapWriter,
  type PreparedMap,
  writeMaps,
} from "../child/maps.js";
import {
  abortChild,
  type ChildStep,
  DEV_NULL,
  type HeldChild,
  resumeChild,
  signalChild,
  startChild,
  type WatchEvent,
  watchChild,
} from "../child/steps.js";
import { creatorIds, type PreparedMaps, prepareMapRequest } from "../child/validate.js";
import { UsernsError, usageError } from "../errors.js";
import { native, type ProcFilesHandle } from "../kernel/native.js";
import { CLONE_NEW, type NamespaceType } from "../kernel/nsfs.js";
import { IdMap } from "../model/idmap.js";
import { readMapsOfFd, UserNamespace } from "../namespaces/user-namespace.js";
import { hasSandboxOptions, type PreparedSandbox, prepareSandbox, validateSandboxOptions } from "../sandbox/prepare.js";
import type { SandboxOptions } from "../sandbox/types.js";
import {
  type StdioEntry,
  type StdioOption,
  type StdioStreams,
  signalNumber,
  UsernsChildProcess,
} from "./child-process.js";

/** Namespace kinds, named as util-linux `unshare` flags. */
export type NamespaceKind = "user" | "mount" | "pid" | "uts" | "ipc" | "net" | "cgroup" | "time";

export type { StdioEntry, StdioOption } from "./child-process.js";

/** An existing namespace to join: an open nsfs fd, a path such as /proc/PID/ns/net, or a held handle (anything with `fd`). */
export type JoinTarget = number | string | { readonly fd: number };

/** The namespaces of a process, by type: the inode numbers of /proc/PID/ns/* (what `ls -i` and bwrap's --info-fd show). */
export type NamespaceIds = Readonly<Partial<Record<NamespaceType, number>>>;

/** What {@link SpawnOptions.beforeExec} is called with. */
export interface BeforeExecInfo {
  /**
   * The program's pid as this process sees it; with a reaping pid 1 (`init: "reaper"`), pid 1's, which the
   * program's namespaces are (bwrap's child-pid).
   */
  readonly pid: number;
  /** The namespaces the program will run in, read from /proc/PID/ns while it waits. */
  readonly namespaces: NamespaceIds;
}

/** The `stdio` option of an options type: undefined (all pipes) when it has none. */
export type StdioOf<O> = "stdio" extends keyof O ? O["stdio"] : undefined;

/**
 * Makes a key an options literal has and `Known` does not an error: a generic
 * parameter would otherwise skip TypeScript's excess-property check, and a
 * misspelt option (`timout`) would compile.
 */
export type NoExtraKeys<O, Known> = { [K in Exclude<keyof O, keyof Known>]: never };

/**
 * Options of {@link spawn}. Names follow child_process where one exists. The sandbox options
 * ({@link SandboxOptions}: `filesystem`, `hostname`, `capabilities`, ...) build the program's world in the child.
 */
export interface SpawnOptions extends SandboxOptions {
  /** Namespaces to create. `user` is created first and owns the others. */
  namespaces?: readonly NamespaceKind[];
  /** The new user namespace's uid map (model value, or text `inside outside count` per line). Needs `user` in namespaces. */
  uidMap?: MapInput;
  /** The gid map, as uidMap. */
  gidMap?: MapInput;
  /** Written to /proc/PID/setgroups before gid_map. `deny` is required for an unprivileged self-map of gids. */
  setgroups?: "allow" | "deny";
  /** How maps are written; `auto` (default) picks direct when privileged, the self-map when that is what was asked, else newuidmap/newgidmap. */
  mapWriter?: MapWriter;
  /** The uid the program runs as, inside its user namespace (setresuid in the child). */
  uid?: number;
  /** The gid the program runs as (setresgid). */
  gid?: number;
  /** Supplementary groups (setgroups(2)); needs setgroups `allow` inside a new user namespace. */
  groups?: readonly number[];
  /**
   * Namespaces to join before exec (setns in the child; the user namespace first). Joining a user namespace and
   * creating `user` nests the new namespace inside the joined one; its maps are then written from there.
   * Joining a pid namespace affects only the program's own children, as setns(2) does. With `namespaces` including
   * "pid", the program runs as pid 1 of a new pid namespace owned by its final user namespace (the joined one, or
   * the new nested one), as `nsenter … unshare --pid --fork` does; joining a pid namespace and creating one is refused.
   * For the program itself to run in a joined pid namespace, use `forkAfterJoin`.
   */
  join?: JoinTarget | readonly JoinTarget[];
  /**
   * Create the program's process after the joins and unshares (a clone3 in the child, which then exits), as nsenter
   * does by default when it enters a pid namespace: setns(CLONE_NEWPID) moves only the children made after it, so
   * this is how the program itself runs in a joined pid namespace (bwrap's `--pidns FD` without `--unshare-pid`).
   * The program is still this process's child; in the joined namespace it gets the next free pid (not pid 1: that
   * namespace has its init). Needs `join`; implied by `join` together with `namespaces` including "pid".
   */
  forkAfterJoin?: boolean;
  /** Working directory of the program, entered after the ids are set. */
  cwd?: string | URL;
  /**
   * Called while the program's process waits just before execve, with everything built (namespaces, maps, ids,
   * sandbox): its pid and its namespace ids. What it writes is therefore out before the program runs (bwrap's
   * --info-fd). Called synchronously: inside spawn(), or after newuidmap has written the maps; an exception it throws
   * cancels the spawn (the child is killed and reaped; the handle fails with an error whose `cause` is that
   * exception). Costs one more round
   * trip with the child; without it nothing waits.
   */
  beforeExec?: (info: BeforeExecInfo) => void;
  /**
   * Hold the program after its sandbox is built, just before execve, until one byte can be read from this fd (or
   * it reaches end of file), as bwrap's --block-fd; after `beforeExec`. This process reads the byte, asynchronously:
   * spawn() returns at once, 'spawn' comes after the release, and kill() before then cancels the spawn (ABORT_ERR).
   */
  blockFd?: number;
  /**
   * fds of this process that the program's process closes before it waits for `beforeExec`/`blockFd` (and so before
   * execve): a monitoring fd whose reader waits for it to be closed (bwrap's --info-fd) would otherwise stay open
   * in the waiting process. Without a hold, every fd above stdio is closed at execve anyway.
   */
  closeFds?: readonly number[];
  /** Environment; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** argv[0]; defaults to `file`. */
  argv0?: string;
  /** As child_process: 'pipe' (default), 'inherit', 'ignore', or an array of those and fds. */
  stdio?: StdioOption;
  /** Run the program in a new session (setsid), as child_process's `detached`. */
  detached?: boolean;
  /**
   * prctl(PR_SET_PDEATHSIG): the signal the program gets when the thread that spawned it exits. That is the
   * kernel's rule (the parent is a thread): from the main thread it means "when this process dies"; from a worker
   * thread it also fires when the worker ends (worker.terminate(), or its script finishing) while the process lives
   * on. Spawn from the main thread for a program that must outlive a worker.
   */
  parentDeathSignal?: NodeJS.Signals | number;
  /** Propagation of the new mount namespace's tree (`private` by default, as util-linux unshare). */
  mountPropagation?: "private" | "slave" | "shared" | "unchanged";
  /**
   * Detached mounts (e.g. `IdmappedMount.fd`) to attach in the child with move_mount before
   * exec, inside its new mount namespace: needs `namespaces` to include "mount".
   */
  mounts?: readonly { readonly fd: number; readonly target: string }[];
  /**
   * Milliseconds after which the program is sent `killSignal`, as child_process's `timeout` (0 or absent: none).
   * The handle records `killedBy: "timeout"`; `await child` still resolves with the exit status.
   */
  timeout?: number;
  /**
   * Aborting this signal sends the program `killSignal`; `await child` then rejects with code ABORT_ERR once the
   * program has closed, and an 'error' event is emitted if anyone listens, as child_process does.
   */
  signal?: AbortSignal;
  /**
   * The signal `timeout` and `signal` send (default SIGTERM). A program that is pid 1 of a new pid namespace
   * ignores signals it has no handler for: use SIGKILL there.
   */
  killSignal?: NodeJS.Signals | number;
}

const KNOWN_OPTIONS: readonly (keyof SpawnOptions)[] = [
  "namespaces",
  "uidMap",
  "gidMap",
  "setgroups",
  "mapWriter",
  "uid",
  "gid",
  "groups",
  "join",
  "forkAfterJoin",
  "cwd",
  "beforeExec",
  "blockFd",
  "closeFds",
  "env",
  "argv0",
  "stdio",
  "detached",
  "parentDeathSignal",
  "mountPropagation",
  "mounts",
  "timeout",
  "signal",
  "killSignal",
  "filesystem",
  "hostname",
  "capabilities",
  "noNewPrivileges",
  "seccomp",
  "init",
  "loopback",
  "disableUserNamespaces",
];

const NS_KIND: Readonly<Record<NamespaceKind, NamespaceType>> = {
  user: "user",
  mount: "mnt",
  pid: "pid",
  uts: "uts",
  ipc: "ipc",
  net: "net",
  cgroup: "cgroup",
  time: "time",
};

const MS_REC = 0x4000;
const PROPAGATION: Readonly<Record<"private" | "slave" | "shared", number>> = {
  private: MS_REC | 0x40000,
  slave: MS_REC | 0x80000,
  shared: MS_REC | 0x100000,
};

/** The order namespaces are joined in: user first (its capabilities allow the rest), as nsenter does. */
const JOIN_ORDER: readonly NamespaceType[] = ["user", "cgroup", "ipc", "uts", "net", "pid", "mnt", "time"];

function isU32(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

/** The same names, for the per-key check every spawn makes. */
const KNOWN_OPTION_SET: ReadonlySet<string> = new Set(KNOWN_OPTIONS);

const MAP_OPTIONS = ["uidMap", "gidMap", "setgroups"] as const;
const MAP_WRITERS: readonly string[] = ["auto", "direct", "newuidmap", "self"];
const PROPAGATIONS: readonly string[] = ["private", "slave", "shared", "unchanged"];

function checkMapShape(name: "uidMap" | "gidMap", m: unknown): void {
  if (m !== undefined && typeof m !== "string" && !(m instanceof IdMap))
    throw usageError(`${name} must be an IdMap or map text ("inside outside count" lines)`);
}

function closest(name: string): string | undefined {
  const lower = name.toLowerCase();
  return KNOWN_OPTIONS.find((k) => k.toLowerCase() === lower || k.toLowerCase().startsWith(lower.slice(0, 4)));
}

/** Checks an options object before anything touches the kernel; throws ERR_USERNS_USAGE naming the option. */
export function validateSpawnOptions(options: SpawnOptions): void {
  for (const key in options) {
    if (!Object.hasOwn(options, key)) continue;
    if (!KNOWN_OPTION_SET.has(key)) {
      const hint = closest(key);
      throw usageError(`unknown spawn option "${key}"${hint ? ` (did you mean "${hint}"?)` : ""}`);
    }
  }
  const ns = options.namespaces ?? [];
  if (!Array.isArray(ns)) throw usageError("namespaces must be an array");
  for (let i = 0; i < ns.length; i++) {
    const n = ns[i]!;
    if (!(n in NS_KIND))
      throw usageError(`unknown namespace "${String(n)}" (one of ${Object.keys(NS_KIND).join(", ")})`);
    if (ns.indexOf(n) !== i) throw usageError("namespaces lists a namespace twice");
  }
  const hasUser = ns.includes("user");
  // Loops over module-level lists, not array literals: this runs on every spawn (a literal and its iterator are
  // garbage each time until V8 optimizes the function).
  for (let i = 0; i < MAP_OPTIONS.length; i++) {
    const k = MAP_OPTIONS[i]!;
    if (options[k] !== undefined && !hasUser) throw usageError(`${k} needs namespaces to include "user"`);
  }
  if (options.setgroups !== undefined && options.setgroups !== "allow" && options.setgroups !== "deny")
    throw usageError(`setgroups must be "allow" or "deny", not ${JSON.stringify(options.setgroups)}`);
  if (options.mapWriter !== undefined && !MAP_WRITERS.includes(options.mapWriter))
    throw usageError(`mapWriter must be auto, direct, newuidmap or self`);
  if (options.uid !== undefined && !isU32(options.uid)) throw usageError("uid must be an integer 0..4294967295");
  if (options.gid !== undefined && !isU32(options.gid)) throw usageError("gid must be an integer 0..4294967295");
  if (options.groups !== undefined && (!Array.isArray(options.groups) || !options.groups.every(isU32)))
    throw usageError("groups must be an array of gids");
  if (options.mountPropagation !== undefined && !PROPAGATIONS.includes(options.mountPropagation))
    throw usageError("mountPropagation must be private, slave, shared or unchanged");
  if (options.mounts !== undefined) {
    for (const m of options.mounts) {
      if (!Number.isInteger(m.fd) || m.fd < 0 || typeof m.target !== "string")
        throw usageError("mounts entries must be { fd, target }");
    }
    // Without a new mount namespace, move_mount in the child would attach to this process's (the host's) tree.
    if (options.mounts.length > 0 && !ns.includes("mount"))
      throw usageError('mounts needs namespaces to include "mount": they are attached only in a new mount namespace');
  }
  if (options.parentDeathSignal !== undefined) signalNumber(options.parentDeathSignal);
  // Shapes only: what an fd or a path refers to is the kernel's to say, reported through the handle.
  checkMapShape("uidMap", options.uidMap);
  checkMapShape("gidMap", options.gidMap);
  if (options.stdio !== undefined) {
    const list: readonly unknown[] = typeof options.stdio === "string" ? [options.stdio] : options.stdio;
    if (!Array.isArray(list)) throw usageError("stdio must be 'pipe', 'inherit', 'ignore' or an array");
    for (let i = 0; i < list.length; i++) {
      const e = list[i];
      const ok =
        e === "pipe" ||
        e === "inherit" ||
        e === "ignore" ||
        e === null ||
        e === undefined ||
        (typeof e === "number" && Number.isInteger(e) && e >= 0);
      if (!ok) throw usageError(`stdio[${i}] must be 'pipe', 'inherit', 'ignore', an fd or null`);
    }
  }
  if (options.join !== undefined) {
    const list: readonly unknown[] = Array.isArray(options.join) ? options.join : [options.join];
    for (const t of list) {
      const fd = typeof t === "object" && t !== null ? (t as { fd?: unknown }).fd : t;
      if (typeof t !== "string" && !(typeof fd === "number" && Number.isInteger(fd) && fd >= 0))
        throw usageError("join entries must be an nsfs fd, a path, or an object with an fd");
    }
  }
  if (options.forkAfterJoin !== undefined) {
    if (typeof options.forkAfterJoin !== "boolean") throw usageError("forkAfterJoin must be a boolean");
    if (options.forkAfterJoin && options.join === undefined)
      throw usageError("forkAfterJoin needs join (without joins the program is the first process made)");
  }
  if (options.beforeExec !== undefined && typeof options.beforeExec !== "function")
    throw usageError("beforeExec must be a function");
  if (options.blockFd !== undefined && !(Number.isInteger(options.blockFd) && options.blockFd >= 0))
    throw usageError("blockFd must be an open fd (an integer >= 0)");
  if (
    options.closeFds !== undefined &&
    !(Array.isArray(options.closeFds) && options.closeFds.every((fd) => Number.isInteger(fd) && fd >= 0))
  )
    throw usageError("closeFds must be an array of fds (integers >= 0)");
  if (options.closeFds !== undefined && Array.isArray(options.stdio))
    for (const fd of options.closeFds)
      if ((options.stdio as readonly unknown[]).includes(fd))
        throw usageError(`closeFds: fd ${fd} is also a stdio entry (the program's fd ${fd} would be closed)`);
  if (options.cwd !== undefined && typeof options.cwd !== "string" && !(options.cwd instanceof URL))
    throw usageError("cwd must be a string or a file: URL");
  if (options.env !== undefined && (typeof options.env !== "object" || options.env === null))
    throw usageError("env must be an object");
  if (options.argv0 !== undefined && typeof options.argv0 !== "string") throw usageError("argv0 must be a string");
  if (options.killSignal !== undefined) signalNumber(options.killSignal);
  if (
    options.timeout !== undefined &&
    !(typeof options.timeout === "number" && Number.isInteger(options.timeout) && options.timeout >= 0)
  )
    throw usageError("timeout must be an integer number of milliseconds >= 0");
  if (
    options.signal !== undefined &&
    (typeof options.signal !== "object" ||
      options.signal === null ||
      typeof (options.signal as Partial<AbortSignal>).addEventListener !== "function" ||
      typeof (options.signal as Partial<AbortSignal>).aborted !== "boolean")
  )
    throw usageError("signal must be an AbortSignal");
  if (hasSandboxOptions(options))
    validateSandboxOptions(options, { namespaces: new Set(ns), joins: options.join !== undefined });
  // The plan mounts over /tmp and more before pivot_root: with shared propagation those mounts would reach the host.
  if (
    options.filesystem !== undefined &&
    (options.mountPropagation === "shared" || options.mountPropagation === "unchanged")
  )
    throw usageError(
      'filesystem needs mountPropagation "private" (the default) or "slave": its mounts must not propagate to the host',
    );
  if (options.disableUserNamespaces && options.groups !== undefined)
    throw usageError("groups cannot be set with disableUserNamespaces (its nested namespace denies setgroups)");
}

/** Finds the program the way execvp would, but here in the parent: the child never searches PATH. */
export function resolveExecutable(file: string, env: NodeJS.ProcessEnv): string {
  if (file.length === 0) throw usageError("file must not be empty");
  if (file.includes("/")) return file;
  const path = env.PATH ?? "/usr/local/bin:/usr/bin:/bin";
  for (const dir of path.split(":")) {
    const candidate = joinPath(dir === "" ? "." : dir, file);
    try {
      accessSync(candidate, fsConstants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here; keep looking
    }
  }
  throw new UsernsError(`spawning ${file}`, {
    code: "ENOENT",
    syscall: "execve",
    step: "execve",
    path: file,
    reason: `not found in PATH (${path})`,
  });
}

interface OpenedJoin {
  target: JoinTarget;
  fd: number;
  type: NamespaceType;
  owned: boolean;
}

function typeOfFd(fd: number): NamespaceType {
  let v: number;
  try {
    v = native().nsGetNstype(fd);
  } catch (e) {
    if (!UsernsError.isUsernsError(e) || e.errno === undefined) throw e;
    // Named as a failed join, as the child's setns failures are.
    throw new UsernsError(`join: fd ${fd}`, {
      errno: e.errno,
      syscall: e.syscall ?? "ioctl",
      step: "join",
      path: `/proc/${process.pid}/fd/${fd}`,
      reason: e.code === "EBADF" ? "not an open fd" : e.code === "ENOTTY" ? "not a namespace file" : e.reason,
      cause: e,
    });
  }
  for (const [name, flag] of Object.entries(CLONE_NEW) as [NamespaceType, number][]) if (flag === v) return name;
  throw usageError(`join: fd ${fd} is not a namespace of a known type`);
}

function openJoins(join: SpawnOptions["join"]): OpenedJoin[] {
  if (join === undefined) return [];
  const list: readonly JoinTarget[] = Array.isArray(join) ? join : [join as JoinTarget];
  const out: OpenedJoin[] = [];
  try {
    for (const t of list) {
      if (typeof t === "string") {
        const fd = openNsFile(t);
        out.push({ target: t, fd, type: "user", owned: true });
        out[out.length - 1]!.type = typeOfFd(fd);
      } else {
        const fd = typeof t === "number" ? t : t.fd;
        if (!Number.isInteger(fd) || fd < 0) throw usageError("join: not an open namespace fd");
        out.push({ target: t, fd, type: typeOfFd(fd), owned: false });
      }
    }
  } catch (e) {
    for (const j of out) if (j.owned) native().close(j.fd);
    throw e;
  }
  const seen = new Set<NamespaceType>();
  for (const j of out) {
    if (seen.has(j.type)) throw usageError(`join lists two ${j.type} namespaces`);
    seen.add(j.type);
  }
  return out.sort((a, b) => JOIN_ORDER.indexOf(a.type) - JOIN_ORDER.indexOf(b.type));
}

interface StdioPlan {
  fdSrc: number[];
  /** Child-side fds opened here: closed in the parent once the child has its copies. */
  childEnds: number[];
  streams: (Socket | null)[];
}

function planStdio(stdio: SpawnOptions["stdio"]): StdioPlan {
  const list: StdioEntry[] =
    stdio === undefined || typeof stdio === "string" ? [stdio, stdio, stdio] : [...(stdio as readonly StdioEntry[])];
  while (list.length < 3) list.push(undefined);
  const plan: StdioPlan = { fdSrc: [], childEnds: [], streams: [] };
  try {
    for (let i = 0; i < list.length; i++) {
      const e = list[i] ?? (i < 3 ? "pipe" : null);
      if (e === "pipe") {
        const [r, w] = native().pipe();
        if (i === 0) {
          plan.fdSrc.push(r);
          plan.childEnds.push(r);
          plan.streams.push(new Socket({ fd: w, readable: false, writable: true }));
        } else {
          plan.fdSrc.push(w);
          plan.childEnds.push(w);
          plan.streams.push(new Socket({ fd: r, readable: true, writable: false }));
        }
      } else if (e === "inherit") {
        plan.fdSrc.push(i);
        plan.streams.push(null);
      } else if (e === "ignore") {
        // The child's stdio step opens /dev/null (once for all ignored entries) and dup3s it into place.
        plan.fdSrc.push(DEV_NULL);
        plan.streams.push(null);
      } else if (e === null) {
        plan.fdSrc.push(-1);
        plan.streams.push(null);
      } else if (typeof e === "number" && Number.isInteger(e) && e >= 0) {
        plan.fdSrc.push(e);
        plan.streams.push(null);
      } else {
        throw usageError(`stdio[${i}] must be 'pipe', 'inherit', 'ignore', an fd or null`);
      }
    }
  } catch (err) {
    releaseStdio(plan, true);
    throw err;
  }
  return plan;
}

function releaseStdio(plan: StdioPlan, destroyStreams: boolean): void {
  // Closed through the addon that opened them: fs.closeSync on an fd fs did not open warns in a worker thread
  // ("closed but not opened in unmanaged mode").
  for (const fd of plan.childEnds) native().close(fd);
  plan.childEnds = [];
  if (destroyStreams) for (const s of plan.streams) s?.destroy();
}

/**
 * Starts `file` with `args` inside the namespaces described by `options`.
 * Returns at once with a ChildProcess-shaped handle: the child exists (its
 * `pid` is set, its namespaces are made and, when maps can be written without
 * a helper program, written) and has been released; it execs the program on
 * its own, and 'spawn' is emitted once it has. `kill()` before then signals
 * the program as it starts.
 *
 * Errors follow child_process: an invalid argument or option (wrong type,
 * unknown option, a value out of range) throws ERR_USERNS_USAGE synchronously;
 * everything the machine decides (a missing program, a map the model or the
 * kernel refuses, a failed setns or execve) is reported through the handle:
 * `await child` rejects, and 'error' is emitted.
 *
 * The handle's stream types follow `stdio`: with the default ('pipe') or a
 * literal `stdio` that says 'pipe' for an fd, that stream is non-null.
 *
 * @example
 * ```ts
 * const child = spawn("id", [], { namespaces: ["user"], uidMap: "0 100000 65536", gidMap: "0 100000 65536", uid: 0, gid: 0 });
 * child.stdout.pipe(process.stdout);
 * const { code } = await child; // 0, once the program exited and its output was read
 * ```
 */
export function spawn(file: string, args?: readonly string[]): UsernsChildProcess<StdioStreams<undefined>>;
export function spawn<const O extends SpawnOptions = SpawnOptions>(
  file: string,
  args?: readonly string[],
  options?: O & NoExtraKeys<O, SpawnOptions>,
): UsernsChildProcess<StdioStreams<StdioOf<O>>>;
export function spawn(file: string, args: readonly string[] = [], options: SpawnOptions = {}): UsernsChildProcess {
  if (typeof file !== "string") throw usageError("file must be a string");
  if (!Array.isArray(args) || !args.every((a) => typeof a === "string"))
    throw usageError("args must be an array of strings");
  validateSpawnOptions(options);
  const env = options.env ?? process.env;
  // On the main thread process.env is libc's environ itself, so the native side can copy that directly (building
  // one JS string per variable costs tens of µs per spawn). A worker's process.env is its own copy: pass it.
  const envp =
    options.env === undefined && isMainThread
      ? null
      : Object.entries(env)
          .filter((kv): kv is [string, string] => kv[1] !== undefined)
          .map(([k, v]) => `${k}=${v}`);
  const argv = [options.argv0 ?? file, ...args];
  const newNs = new Set(options.namespaces ?? []);
  const child = new UsernsChildProcess(file, [file, ...args]);
  if (options.timeout !== undefined || options.signal !== undefined || options.killSignal !== undefined)
    child._arm({ timeout: options.timeout, signal: options.signal, killSignal: options.killSignal });
  let joins: OpenedJoin[] = [];
  let stdio: StdioPlan | undefined;
  let held: HeldChild | undefined;
  let sandbox: PreparedSandbox | undefined;
  try {
    // Like child_process, a missing program is reported through the handle, not thrown.
    // With a filesystem plan the program is looked up inside the new root, by the child.
    const path = options.filesystem !== undefined ? file : resolveExecutable(file, env);
    joins = openJoins(options.join);
    const userJoin = joins.find((j) => j.type === "user");
    const childSide = joins.length > 0;
    // unshare(CLONE_NEWPID) and setns(CLONE_NEWPID) in the child only set the pid namespace of its future children:
    // the program must be such a child, cloned after them (and after the maps, which belong to the first child's
    // namespace).
    const forkProgram = childSide && (newNs.has("pid") || options.forkAfterJoin === true);
    if (newNs.has("pid") && joins.some((j) => j.type === "pid"))
      throw usageError(
        'join of a pid namespace together with namespaces "pid" is not supported: after setns(CLONE_NEWPID) the kernel refuses unshare(CLONE_NEWPID) (EINVAL)',
      );
    if (forkProgram && !native().spawnUsesCloneVm())
      throw usageError(
        `join together with namespaces "pid" or forkAfterJoin is not supported on ${process.arch}: it needs the CLONE_VM spawn path (x86_64)`,
      );
    // Maps: validated before any syscall.
    const parentMaps = userJoin && newNs.has("user") ? readParentMaps(userJoin) : undefined;
    const creator = parentMaps ? creatorIds(parentMaps.uid, parentMaps.gid) : undefined;
    const prepared =
      options.uidMap !== undefined || options.gidMap !== undefined || options.setgroups !== undefined
        ? prepareMapRequest({
            uidMap: options.uidMap,
            gidMap: options.gidMap,
            setgroups: options.setgroups,
            mapWriter: options.mapWriter,
            parent: parentMaps && creator ? { ...parentMaps, creator } : undefined,
          })
        : undefined;
    const setgroups = options.setgroups;
    const uid = prepared?.uid;
    const gid = prepared?.gid;
    const mapsNeeded = newNs.has("user") && prepared !== undefined;
    const mapReq = { uid, gid, setgroups };
    const method = prepared?.method;

    const hold = options.beforeExec !== undefined || options.blockFd !== undefined;
    let flags = 0;
    const nsList = options.namespaces ?? [];
    for (let i = 0; i < nsList.length; i++) flags |= CLONE_NEW[NS_KIND[nsList[i]!]];
    const steps: ChildStep[] = [];
    let cloneFlags = 0;
    if (!childSide) {
      cloneFlags = flags;
      if (mapsNeeded) steps.push(WAIT_SILENT);
    } else {
      for (const j of joins)
        steps.push({ op: "join", fd: j.fd, nstype: CLONE_NEW[j.type], label: `join ${j.type}`, path: nsFilePath(j) });
      if (creator) steps.push(...becomeCreatorSteps(creator));
      if (flags !== 0) steps.push({ op: "unshare", flags });
      // beforeExec's namespace ids are read here, where they are final (the program's pid namespace is then this
      // process's pid_for_children) and before any step changes the ids the process runs as, which would make it
      // unreadable for an unprivileged parent (a credential change resets the shared mm's dumpable flag).
      if (hold && !mapsNeeded) steps.push({ op: "wait", notify: true });
      if (mapsNeeded) steps.push({ op: "wait", notify: true });
      // Everything below runs in the program's process: pid 1 of the new pid namespace, or a process of the joined one.
      if (forkProgram) steps.push({ op: "fork" });
    }
    if (newNs.has("mount") && (options.mountPropagation ?? "private") !== "unchanged")
      steps.push({ op: "propagation", flags: PROPAGATION[(options.mountPropagation ?? "private") as "private"] });
    for (const m of options.mounts ?? []) steps.push({ op: "attachMount", fd: m.fd, target: m.target });
    if (hasSandboxOptions(options))
      sandbox = prepareSandbox(options, {
        namespaces: newNs,
        file,
        env,
        uid: options.uid,
        gid: options.gid,
        groups: options.groups,
        joins: childSide,
      });
    if (sandbox && sandbox.setup.length > 0 && newNs.has("user") && mapsInclude0(uid) && mapsInclude0(gid)) {
      // Become root of the new namespace before building the sandbox: the creator's own ids may be unmapped there
      // (root spawning with "0 100000 65536"), and the kernel refuses to create files for an unmapped fsuid (EOVERFLOW).
      steps.push({ op: "setgid", gid: 0 }, { op: "setuid", uid: 0 });
    }
    if (sandbox) steps.push(...sandbox.setup);
    const pdeath =
      options.parentDeathSignal === undefined
        ? undefined
        : ({
            op: "parentDeathSignal",
            signal: signalNumber(options.parentDeathSignal),
            // In a pid namespace of its own the process's parent (this process) has no pid: getppid() is 0 there.
            viaErrorPipe: forkProgram || (newNs.has("pid") && !childSide),
          } as const);
    // With a reaping pid 1 the parent-death signal is pid 1's (this process is its parent); its death ends the rest.
    if (sandbox?.reaper.length) {
      if (pdeath) steps.push(pdeath);
      steps.push(...sandbox.reaper);
    }
    if (options.detached) steps.push({ op: "setsid" });
    if (sandbox) steps.push(...sandbox.beforeIds);
    const userChanged = newNs.has("user") || userJoin !== undefined;
    if (options.groups !== undefined) steps.push({ op: "setgroups", groups: options.groups });
    else if (
      (options.uid !== undefined || options.gid !== undefined) &&
      !options.disableUserNamespaces &&
      dropGroupsAllowed(userChanged, setgroups, gid)
    )
      steps.push({ op: "setgroups", groups: [] });
    if (options.gid !== undefined) steps.push({ op: "setgid", gid: options.gid });
    if (options.uid !== undefined) steps.push({ op: "setuid", uid: options.uid });
    if (sandbox) steps.push(...sandbox.afterIds);
    if (options.cwd !== undefined) {
      const cwd = typeof options.cwd === "string" ? options.cwd : fileURLToPath(options.cwd);
      steps.push({ op: "chdir", path: cwd });
    }
    if (pdeath && !(sandbox?.reaper.length ?? 0)) steps.push(pdeath);
    // The hold: everything is built, the program's process waits (before stdio, which may reuse the sync pipe's fd
    // number, and before seccomp, which may forbid the read).
    for (const fd of options.closeFds ?? []) steps.push({ op: "closeFd", fd });
    if (hold) steps.push({ op: "wait", notify: true });
    steps.push(STDIO_STEP);
    if (sandbox) steps.push(...sandbox.last);

    stdio = planStdio(options.stdio);
    if (sandbox?.newRoot && stdio.fdSrc.includes(DEV_NULL)) {
      // The child would open /dev/null after pivot_root, inside a root that may have none: open it here.
      const devNull = openSync("/dev/null", "r+");
      stdio.childEnds.push(devNull);
      stdio.fdSrc = stdio.fdSrc.map((f) => (f === DEV_NULL ? devNull : f));
    }
    child._setStdio(stdio.streams);

    // The plain spawn (no joins, hold nor sandbox; maps, if any, written from here) is one native call: clone3, the
    // map writes, the release and, with nothing else of ours in flight, the wait for execve (see settleAfterRelease).
    const oneCall =
      !childSide && !hold && sandbox === undefined && (!mapsNeeded || method === "direct" || method === "self");
    const writes = oneCall && mapsNeeded && prepared !== undefined ? directWritesOf(prepared) : undefined;
    // Alone, the one call waits for the execve; with others of ours in flight it releases the child and arms a
    // watch instead (see settleAfterRelease). What outlives this call (the callbacks the addon holds, the handle's
    // hooks) is made outside it, from what it needs: a closure made here would keep this call's whole scope alive
    // (the plan, the handle, the streams), and with many spawns that garbage outlived young collections.
    const oneCallWatch = oneCall && live > 0 ? new OneCallWatch(child, file, newNs.has("user"), options) : undefined;
    held = startChild(
      {
        cloneFlags,
        path: sandbox?.execPath ?? path,
        argv,
        envp,
        fdSrc: stdio.fdSrc,
        steps,
        noVm: sandbox?.needsOwnMemory === true,
      },
      oneCall
        ? oneCallWatch === undefined
          ? { writes: writes?.files, writesHandle: writes?.handle, wait: true, onExit: exitOf(child) }
          : { writes: writes?.files, writesHandle: writes?.handle, watch: oneCallWatch.onEvent }
        : undefined,
    );
    live++;
    child._onEnd = endOne;
    // After a fork step, held.pid is only the intermediate process: the program's pid is known at exec.
    if (!forkProgram) child.pid = held.pid;
    // beforeExec's ids. Without joins every namespace exists from clone3 on, and the child cannot have changed its
    // ids yet in a way that hides it from us (root may read anyway; an unprivileged parent needs a maps wait, at
    // which the child is blocked from the start, to change them). With joins: at the first wait (below).
    let ids: NamespaceIds | undefined = hold && !childSide ? namespaceIds(held.pid, false) : undefined;
    // The child is at a wait not yet released (the maps', or the ids' with joins).
    let unreleased = mapsNeeded;
    // The child has its own copies now.
    releaseStdio(stdio, false);
    const result: MappingResult | undefined = mapsNeeded
      ? { method: method!, uidMap: uid?.text, gidMap: gid?.text, setgroups }
      : undefined;
    if (held.started.kind === "exec") {
      // The plain spawn's usual end: the program runs. None of what follows (the slower paths' closures) is needed:
      // without joins or a sandbox there is nothing to close either.
      if (result) child.mapping = result;
      child._started(held.started.pidfd, held.started.watch);
      return child;
    }
    if (oneCall) {
      settleOneCall(
        held,
        child,
        writes?.files,
        result,
        oneCallWatch ?? new OneCallWatch(child, file, newNs.has("user"), options),
      );
      return child;
    }
    const what = `spawning ${file} (pid ${held.pid})`;
    const h = held;
    // Runs the child on to execve. `release`: it is at an earlier wait (the maps') that must be released first.
    const toExec = (release: boolean): void => runToExec(h, child, what, release);
    // After the maps (if any): with a hold, first to the hold wait (beforeExec, then blockFd, which is asynchronous:
    // a promise then), then to execve. The maps' wait, if there is one, is still to be released.
    const finish = (): Promise<void> | undefined => {
      if (!hold) {
        toExec(unreleased);
        return undefined;
      }
      const r = resumeChild(h, what, unreleased);
      if (r.kind !== "ready")
        throw new UsernsError(what, { code: "ERR_USERNS_PROTOCOL", reason: `expected the hold wait, got ${r.kind}` });
      child.pid = r.pid;
      if (options.beforeExec !== undefined) {
        // A new pid namespace made before a fork step has no id to read until its pid 1 exists: read what is
        // missing from the program's process, now that it waits.
        const namespaces = ids?.pid !== undefined ? ids : { ...namespaceIds(r.pid, false), ...ids };
        options.beforeExec({ pid: r.pid, namespaces });
      }
      const blockFd = options.blockFd;
      if (blockFd === undefined) {
        toExec(true);
        return undefined;
      }
      child._cancel = (signal) => {
        if (h.done) return false;
        fail(new UsernsError(what, { code: "ABORT_ERR", reason: `killed with ${signal} before execve (blockFd)` }));
        return true;
      };
      return readOneByte(blockFd, `${what}: reading blockFd ${blockFd}`).then(() => {
        if (h.done) return;
        child._cancel = undefined;
        toExec(true);
      });
    };
    // Settles the handle once: a cancel (kill before execve) and the map writer's own failure can both arrive.
    let failed = false;
    const fail = (e: unknown): void => {
      abortChild(h);
      child._cancel = undefined;
      child._signalBeforeExec = undefined;
      if (failed) return;
      failed = true;
      child._failed(unmappedIdHint(e, newNs.has("user"), options));
    };
    const sb = sandbox;
    let joinsClosed = false;
    const closeJoins = (): void => {
      // Once: the newuidmap path's own cleanup and a later exec can both get here.
      if (joinsClosed) return;
      joinsClosed = true;
      for (const j of joins) if (j.owned) native().close(j.fd);
      // The child has exec'd or is gone: the fds prepared for it (memfds, idmapped mounts) are no longer needed.
      sb?.close();
    };
    // Settles the rest of a spawn: finish() now, and when it returns a promise (blockFd), once that settles.
    const finishNow = (): void => {
      let pending: Promise<void> | undefined;
      try {
        pending = finish();
      } catch (e) {
        fail(e);
      }
      if (pending === undefined) closeJoins();
      else pending.catch(fail).finally(closeJoins);
    };
    // With other programs of ours starting or running, release the child and learn of its exec from the event
    // loop instead of blocking this thread until then: the child's last steps and its execve take longer than the
    // rest of a spawn, and the thread can start the next program meanwhile. Alone, waiting here is quicker: this
    // thread sleeps at once and the child gets its CPU without an event-loop turn in between. Not with a fork step
    // or a sandbox (a reaping pid 1 may stand between the handle and the program), nor with a hold (beforeExec,
    // blockFd: the hold wait is resumed here): those always wait here.
    const settleAfterRelease = (): void => {
      if (live < 2 || forkProgram || sb !== undefined || hold || !watchExec()) finishNow();
    };
    // What the watch of a released child reports: its exec, then the program's exit, or anything else, which
    // finishNow() (resumeChild) reports unless the handle failed meanwhile (closeJoins runs once however often).
    // The joins are closed before the handle is told, whose listeners may run then and throw.
    const onWatchEvent = (e: WatchEvent): void => {
      if (e.kind === "other" && !h.done) {
        finishNow();
        return;
      }
      closeJoins();
      startedOrExited(child, e);
    };
    // Releases the child and learns of its exec, then of the program's exit, from one watch on the event loop.
    // False when nothing could be watched: the child is released, and finishNow() waits for it here.
    const watchExec = (): boolean => {
      if (!watchChild(h, onWatchEvent)) return false;
      child._signalBeforeExec = signalVia(h, child, { resume: finishNow });
      return true;
    };
    if (!mapsNeeded) {
      if (hold && childSide) {
        try {
          const r = resumeChild(h, what, false);
          if (r.kind !== "ready")
            throw new UsernsError(what, {
              code: "ERR_USERNS_PROTOCOL",
              reason: `expected the ids wait, got ${r.kind}`,
            });
          ids = namespaceIds(h.pid, forkProgram);
          unreleased = true;
        } catch (e) {
          fail(e);
          closeJoins();
          return child;
        }
      }
      settleAfterRelease();
      return child;
    }
    if (childSide) {
      const r = resumeChild(h, what, false);
      if (r.kind !== "ready")
        throw new UsernsError(what, {
          code: "ERR_USERNS_PROTOCOL",
          reason: `expected the child to wait, got ${r.kind}`,
        });
      if (hold) ids = namespaceIds(h.pid, forkProgram);
    }
    if (method === "newuidmap") {
      // The one asynchronous path: the helpers are separate programs. Until the program is exec'd, kill()
      // cancels the spawn: the held child is killed and reaped, and the handle fails.
      child._cancel = (signal) => {
        if (h.done) return false;
        fail(
          new UsernsError(`spawning ${file} (pid ${h.pid})`, {
            code: "ABORT_ERR",
            reason: `killed with ${signal} before execve`,
          }),
        );
        return true;
      };
      writeMaps(h.pid, method, mapReq)
        .then(() => {
          if (h.done) return;
          const died = diedWhileHeld(h.pid);
          if (died) throw diedError(what, died.signal);
          child._cancel = undefined;
          child.mapping = result;
          if (hold) return finish();
          settleAfterRelease();
        })
        // finish() itself throws for a step that failed after release (setgid, chdir, execve ...): the child is
        // reaped by then (h.done), but the handle must still fail and its streams be closed.
        .catch((e) => {
          // newuidmap may fail because the child was killed: say that, not newuidmap's symptom of it.
          const died = h.done ? undefined : diedWhileHeld(h.pid);
          fail(died ? diedError(what, died.signal) : e);
        })
        .finally(closeJoins);
      return child;
    }
    try {
      writeMaps(h.pid, method!, mapReq, userJoin?.fd);
      child.mapping = result;
    } catch (e) {
      // A map write may fail because the child was killed meanwhile (a dead task's /proc files belong to root, so
      // an unprivileged writer gets EACCES): say that, not the symptom.
      const died = h.done ? undefined : diedWhileHeld(h.pid);
      fail(died ? diedError(what, died.signal) : e);
      closeJoins();
      return child;
    }
    settleAfterRelease();
    return child;
  } catch (e) {
    // Failed before or at clone3: nothing to reap unless the child exists.
    if (held) abortChild(held);
    sandbox?.close();
    if (stdio) releaseStdio(stdio, true);
    for (const j of joins) if (j.owned) native().close(j.fd);
    child._failed(e);
    return child;
  }
}

// Steps every plain spawn has: shared, never mutated (a plan's steps are read-only).
const WAIT_SILENT: ChildStep = Object.freeze({ op: "wait", notify: false });
const STDIO_STEP: ChildStep = Object.freeze({ op: "stdio" });

/**
 * The direct map writes of a validated request: the [name, data, ...] list (which errors name) and the addon's copy
 * of it. Made once per request: prepareMapRequest returns the same object for the same request.
 */
function directWritesOf(prepared: PreparedMaps): { files: string[]; handle: ProcFilesHandle } | undefined {
  let w = directWrites.get(prepared);
  if (w === undefined) {
    const files = directMapFiles(prepared);
    if (files === undefined) return undefined;
    w = { files, handle: native().procFiles(files) };
    directWrites.set(prepared, w);
  }
  return w;
}

const directWrites = new WeakMap<PreparedMaps, { files: string[]; handle: ProcFilesHandle }>();

/** Programs started by spawn() in this thread that have not exited (nor failed) yet. */
let live = 0;

/** The handle's end hook: one program fewer in flight. */
function endOne(): void {
  live--;
}

/** The exit callback of the one call that waits for the execve. */
function exitOf(child: UsernsChildProcess): (code: number | null, signal: number | null) => void {
  return (code, signal) => child._exited(code, signal);
}

/**
 * Runs the held child on to its execve, blocking (`release`: it is at a wait to release first), and tells the handle
 * the program started; throws what the child reported instead (a failed step, a death).
 */
function runToExec(h: HeldChild, child: UsernsChildProcess, what: string, release: boolean): void {
  const r = resumeChild(h, what, release);
  if (r.kind !== "exec") throw new UsernsError(what, { code: "ERR_USERNS_PROTOCOL", reason: `unexpected ${r.kind}` });
  child.pid = r.pid;
  child._started(r.pidfd);
}

/**
 * kill() between the release and the exec. A signal goes to the released child, which blocks it until its execve:
 * it acts on the program as it starts. SIGKILL and SIGSTOP cannot be blocked and would end the child before the
 * program existed: for those, `toExec.resume()` first waits here for the exec (or the failure it reports), and the
 * program gets the signal, as when spawn() waited for the exec itself.
 */
function signalVia(h: HeldChild, child: UsernsChildProcess, toExec: { resume(): void }): (signal: number) => boolean {
  return (sig) => {
    if (sig !== SIGKILL && sig !== SIGSTOP) return signalChild(h, sig);
    child._signalBeforeExec = undefined;
    toExec.resume();
    return child.pidfd >= 0 && native().pidfdSendSignal(child.pidfd, sig);
  };
}

/**
 * A watched child's exec and its program's exit, told to its handle; false for anything else (a failed step, a
 * death, an abort), which the caller settles.
 */
function startedOrExited(child: UsernsChildProcess, e: WatchEvent): boolean {
  if (e.kind === "exit") {
    child._exited(e.code, e.signal);
    return true;
  }
  child._signalBeforeExec = undefined;
  if (e.kind === "exec") child._started(e.pidfd, e.watch);
  else if (e.kind === "execExit") child._startedAndExited(e.code, e.signal);
  else return false;
  return true;
}

const { SIGKILL, SIGSTOP } = constants.signals;

/**
 * The plain spawn's one call, when it does not wait for the execve: its watch's events, and how it settles when
 * something other than the exec comes. Holds only what that needs (see spawn).
 */
class OneCallWatch {
  /** Set once the one call returned; no event comes before. */
  held: HeldChild | undefined = undefined;
  constructor(
    readonly child: UsernsChildProcess,
    readonly file: string,
    readonly newUser: boolean,
    readonly options: SpawnOptions,
  ) {}

  readonly onEvent = (e: WatchEvent): void => {
    // A failed step or a death after the release (unless the handle failed meanwhile): resume reports it.
    if (!startedOrExited(this.child, e) && !this.held!.done) this.resume();
  };

  /** Runs the released child on to its next event, blocking: the exec, or the failure it reports. */
  resume(): void {
    const h = this.held!;
    try {
      runToExec(h, this.child, `spawning ${this.file} (pid ${h.pid})`, false);
    } catch (e) {
      this.fail(e);
    }
  }

  /** The handle fails, once; the child is killed and reaped if it is still there. */
  fail(e: unknown): void {
    abortChild(this.held!);
    this.child._signalBeforeExec = undefined;
    this.child._failed(unmappedIdHint(e, this.newUser, this.options));
  }
}

/** How the plain spawn's one call ended, other than with the exec (see startChild's outcomes). */
function settleOneCall(
  h: HeldChild,
  child: UsernsChildProcess,
  writes: readonly string[] | undefined,
  result: MappingResult | undefined,
  w: OneCallWatch,
): void {
  w.held = h;
  const s = h.started;
  if (s.kind === "writeFailed") {
    // A map write may fail because the child was killed meanwhile (see spawn): say that, not the symptom.
    const died = diedWhileHeld(h.pid);
    w.fail(
      died
        ? diedError(`spawning ${w.file} (pid ${h.pid})`, died.signal)
        : directWriteError(h.pid, writes!, s.index, s.errno, s.syscall),
    );
    return;
  }
  if (s.kind === "held") {
    // The one call always asks for the wait or the watch, which release the child: a held one is a bug of ours.
    w.fail(
      new UsernsError(`spawning ${w.file}`, { code: "ERR_USERNS_PROTOCOL", reason: "the child was not released" }),
    );
    return;
  }
  if (result) child.mapping = result;
  // Released and watched: others of ours are in flight (see settleAfterRelease).
  if (s.kind === "watching") child._signalBeforeExec = signalVia(h, child, w);
  // Released, and a step failed or the child died after that, or nothing could be watched: resume reports what
  // comes.
  else w.resume();
}

const NS_TYPES: readonly NamespaceType[] = ["user", "mnt", "pid", "uts", "ipc", "net", "cgroup", "time"];

/**
 * The namespace ids of a process that waits (it cannot exit meanwhile); a type the kernel lacks is left out. With
 * `forked`, the pid namespace is its pid_for_children: the program is a child it makes later.
 */
function namespaceIds(pid: number, forked: boolean): NamespaceIds {
  const out: Partial<Record<NamespaceType, number>> = {};
  for (const t of NS_TYPES) {
    try {
      const link = t === "pid" && forked ? "pid_for_children" : t;
      const m = /\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/ns/${link}`));
      if (m) out[t] = Number(m[1]);
    } catch {
      // no such namespace type on this kernel
    }
  }
  return out;
}

/**
 * Reads one byte from `fd` (end of file counts too), off the event loop; a non-blocking fd is polled. Rejects with
 * the read's error, naming `what`.
 */
function readOneByte(fd: number, what: string): Promise<void> {
  const buf = Buffer.alloc(1);
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
      fsRead(fd, buf, 0, 1, null, (err) => {
        if (err === null) resolve();
        else if (err.code === "EAGAIN" || err.code === "EINTR") setTimeout(attempt, 10);
        else reject(new UsernsError(what, { errno: -(err.errno ?? 0), syscall: "read", step: "blockFd", cause: err }));
      });
    };
    attempt();
  });
}

function mapsInclude0(m: PreparedMap | undefined): boolean {
  return m?.map.extents.some((e) => e.first === 0) === true;
}

/** setresgid/setresuid EINVAL in a new user namespace whose map of that kind was not given: say so, it is the usual cause. */
function unmappedIdHint(e: unknown, newUser: boolean, options: SpawnOptions): unknown {
  if (!newUser || !UsernsError.isUsernsError(e) || e.code !== "EINVAL") return e;
  const kind = e.step === "setgid" ? "gid" : e.step === "setuid" ? "uid" : undefined;
  if (kind === undefined || options[kind === "gid" ? "gidMap" : "uidMap"] !== undefined) return e;
  return new UsernsError(e.attempted, {
    errno: e.errno,
    syscall: e.syscall,
    step: e.step,
    path: e.path,
    reason: `no ${kind} map was given (${kind}Map; --map-${kind === "gid" ? "groups" : "users"} for userns run), so no ${kind} is mapped in the new user namespace`,
  });
}

/** Opens a join target by path; a failure names the join step and the path. */
function openNsFile(path: string): number {
  try {
    return native().openNs(path);
  } catch (e) {
    const ue = e as UsernsError;
    throw new UsernsError(`join: opening ${path}`, {
      errno: ue.errno,
      syscall: ue.syscall ?? "open",
      step: "join",
      path,
    });
  }
}

/** The namespace file a join names in errors: the path given, or this process's fd of it. */
function nsFilePath(j: OpenedJoin): string {
  if (typeof j.target === "string") return j.target;
  return `/proc/${process.pid}/fd/${j.fd}`;
}

function dropGroupsAllowed(
  userChanged: boolean,
  setgroups: "allow" | "deny" | undefined,
  gid: PreparedMap | undefined,
): boolean {
  // setgroups(2) needs CAP_SETGID and, in a new user namespace, a written gid_map and setgroups "allow".
  if (userChanged) return gid !== undefined && setgroups !== "deny";
  return (process.geteuid?.() ?? 1) === 0;
}

function readParentMaps(j: OpenedJoin): { uid: IdMap; gid: IdMap } {
  return j.target instanceof UserNamespace ? j.target.maps() : readMapsOfFd(j.fd);
}
