/**
 * The one place the addon is loaded, and the one declaration of exactly what
 * it exports. Feature modules import `native` from here, never the `.node`
 * file.
 */
import { existsSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { UsernsError } from "../errors.js";

/** A namespace's identity: the nsfs device and inode. */
export interface NsIdentityRaw {
  dev: bigint;
  ino: bigint;
}

/** `struct mount_attr` for mount_setattr / open_tree_attr. */
export interface MountAttrRaw {
  attrSet?: number;
  attrClr?: number;
  propagation?: number;
  usernsFd?: number;
}

/** Selected fields of `struct statmount` (strings present only when the kernel set their mask bit). */
export interface StatmountRaw {
  mask: bigint;
  mntId: bigint;
  mntAttr: bigint;
  mntNsId: bigint;
  sbMagic: bigint;
  fsType?: string;
  mntRoot?: string;
  mntPoint?: string;
  /** `"first lower count"` strings, lower relative to the caller's user namespace (6.15+). */
  uidmap?: string[];
  gidmap?: string[];
}

/** One user namespace as native/procscan.cc found it; fields are missing where the step failed (the processes went away). */
export interface ProcScanNsRaw {
  ino: bigint;
  pids: number[];
  dev?: bigint;
  id?: bigint;
  ownerUid?: number;
  parentIno?: bigint;
  parentId?: bigint;
  /** errno of NS_GET_PARENT (EPERM at the top of the caller's view). */
  parentErrno?: number;
  /** The pid the maps were read from, and their text. */
  mapsPid?: number;
  uidMap?: string;
  gidMap?: string;
  setgroups?: string;
}

/** What scanProcUserns returns. */
export interface ProcScanRaw {
  processes: number;
  hidden: number;
  namespaces: ProcScanNsRaw[];
  /** [pid, fd, type, ino] of every open fd that is a namespace file. */
  fds: [number, number, string, bigint][];
  /** [mount namespace inode, first pid in it]. */
  mntNamespaces: [bigint, number][];
}

/**
 * What a child watch (spawnWatch, spawnStart's onEvent) reports, from the event loop:
 * - (1, pidfd, watch): the child exec'd; the same watch now waits for the program's exit and owns the pidfd (the
 *   caller may signal it until then); `watch` is for pidfdWatchRef. With watch null, the pidfd is the caller's.
 * - (3, code, signal): it exec'd and had already exited: reaped, no pidfd left.
 * - (2, null, null): anything else (a failed step, a death, an abort): spawnResume(handle, false) reports it.
 * - (0, code, signal): the program exited and was reaped (after a 1 with a watch).
 */
export type ChildWatchCallback = (kind: 0 | 1 | 2 | 3, a: number | null, b: unknown) => void;

/** An addon-side copy of a [name, data, ...] list of /proc files (procFiles); opaque. */
export type ProcFilesHandle = { readonly __procFiles: unique symbol };

/** What the addon exports. Every function throws a {@link UsernsError} on failure. */
export interface NativeBinding {
  setErrorClass(cls: new (attempted: string, opts: { errno: number; syscall: string }) => Error): void;
  openNs(path: string): number;
  close(fd: number): void;
  nsIdentity(fd: number): NsIdentityRaw;
  nsGetOwnerUid(fd: number): number;
  nsGetParent(fd: number): number;
  nsGetUserns(fd: number): number;
  nsGetNstype(fd: number): number;
  nsGetId(fd: number): bigint;
  // native/mount.cc: the new mount API. dfd -100 is AT_FDCWD. Every fd is CLOEXEC.
  openTree(dfd: number, path: string, flags: number): number;
  openTreeAttr(dfd: number, path: string, flags: number, attr: MountAttrRaw | null): number;
  mountSetattr(dfd: number, path: string, flags: number, attr: MountAttrRaw): void;
  /**
   * open_tree(openFlags | OPEN_TREE_CLOEXEC) then mount_setattr(clone, "", setattrFlags, attr)
   * in one call; the error names whichever syscall failed, and a failed setattr closes the clone.
   */
  cloneIdmapped(
    dfd: number,
    path: string,
    openFlags: number,
    setattrFlags: number,
    attrSet: number,
    attrClr: number,
    propagation: number,
    usernsFd: number,
  ): number;
  moveMount(fromDfd: number, fromPath: string, toDfd: number, toPath: string, flags: number): void;
  fsopen(fsname: string): number;
  fsconfigString(fd: number, key: string, value: string): void;
  fsconfigCreate(fd: number): void;
  fsmount(fd: number, attrFlags: number): number;
  umount2(path: string, flags: number): void;
  mountIdOf(dfd: number, path: string, flags: number): { mountId: bigint; unique: boolean };
  fstatAt(
    dfd: number,
    path: string,
    flags: number,
  ): { uid: number; gid: number; mode: number; dev: bigint; ino: bigint };
  statmount(mntId: bigint, mask: bigint, byFd: number): StatmountRaw;
  /** credMode 0 root, 1 setres ids + caps dropped, 2 fs ids only; op 0 create file, 1 mkdir, 2 chown, 3 chmod. umask 0 in the child. */
  fsOpAs(
    credMode: number,
    uid: number,
    gid: number,
    op: number,
    dfd: number,
    name: string,
    mode: number,
    chownUid: number,
    chownGid: number,
  ): { errno: number; step: string };
  /**
   * Runs compiled map-write case programs (lib/verify/program.ts) on a threadpool thread, writing each
   * case's result area into `results`. Throws a TypeError for a malformed program.
   */
  runMapPrograms(programs: Buffer, results: Buffer): Promise<void>;
  // spawn (native/spawn.cc)
  /**
   * clone3 a child that runs the encoded steps, then writes `writes` ([name, data, ...], files of /proc/PID) and,
   * with `wait`, releases it and waits for its next event. envp null: this process's environ. `nums`: [count, nFd,
   * fdSrc..., nSteps, five numbers per step, nGids, gids...] (native/spawn.cc); fdSrc entries: an fd, -1 (closed)
   * or -2 (/dev/null, opened by the child). Fills `out`: [pid, status, ...] (native/spawn.cc says what);
   * returns the handle, or once the child has exec'd its exit watch (with `onExit`, armed during the wait; out[3]
   * 1) or undefined. With `onEvent` (and no `wait`), the child is released and watched as by spawnWatch.
   */
  spawnStart(
    cloneFlags: number,
    path: string,
    argv: readonly string[],
    envp: readonly string[] | null,
    nums: Float64Array,
    strings: readonly string[],
    exitMode: boolean,
    blobs: readonly Uint8Array[] | undefined,
    noVm: boolean,
    writes: readonly string[] | ProcFilesHandle | undefined,
    wait: boolean,
    out: Int32Array,
    onExit?: (code: number | null, signal: number | null) => void,
    onEvent?: ChildWatchCallback,
  ): unknown;
  /**
   * Releases the child from its current wait and blocks until the next event. A ready's `pid` is the waiting
   * process's (after a fork step, the program's: the first child is reaped then).
   */
  spawnResume(
    handle: unknown,
    release: boolean,
  ):
    | { kind: "ready"; step: number; pid: number }
    /** `signal`: the child died of it before it read its release (errno ECHILD at the wait step). */
    | { kind: "failed"; step: number; errno: number; signal?: number }
    | { kind: "exec"; pidfd: number; pid: number }
    | { kind: "exit"; code: number | null; signal: number | null };
  /** SIGKILL, reap and free a held child (and the program's process, after a fork step). */
  spawnAbort(handle: unknown): void;
  /**
   * Releases the child from its current wait (if any) and watches on the loop for what it does next (see
   * {@link ChildWatchCallback}). False: nothing could be watched (no fd to spare); spawnResume then waits.
   */
  spawnWatch(handle: unknown, cb: ChildWatchCallback): boolean;
  /** Sends a signal to a held child through its pidfd; false if it is no longer held or gone. */
  spawnSignal(handle: unknown, signal: number): boolean;
  /** Watches a pidfd on the event loop; takes ownership of it (closed after reaping). */
  pidfdWatch(pidfd: number, cb: (code: number | null, signal: number | null) => void): unknown;
  pidfdWatchRef(watch: unknown, ref: boolean): void;
  /** true if sent, false if the process is gone (ESRCH). */
  pidfdSendSignal(pidfd: number, signal: number): boolean;
  /** open(O_WRONLY) + exactly one write(2). */
  writeOnce(path: string, data: string): void;
  /**
   * Writes files of /proc/PID in order (`files`: [name, data, ...]), each with one open(O_WRONLY) of
   * /proc/PID/NAME + write(2). Returns null, or the first failure (`index`: of the file; later ones are not attempted).
   */
  writeProcFiles(
    pid: number,
    files: readonly string[],
  ): null | { index: number; syscall: "open" | "write"; errno: number };
  /** pipe2(O_CLOEXEC): [read, write]. */
  pipe(): [number, number];
  dupCloexec(fd: number): number;
  /** capget(2): the effective capability set of the calling thread. */
  capEffective(): bigint;
  /** [name, data, ...] (files of /proc/PID) checked and copied once, for spawnStart's writes. */
  procFiles(files: readonly string[]): ProcFilesHandle;
  /** Fills `out` with [CAP_SETUID and CAP_SETGID both effective (1) or not (0), euid, egid], in one call. */
  writerCreds(out: Uint32Array): void;
  /** Whether spawns use CLONE_VM with a separate stack (x86_64) rather than the fork-like path. */
  spawnUsesCloneVm(): boolean;
  // native/lock.cc
  /** open(O_RDWR|O_CREAT|O_CLOEXEC|O_NOFOLLOW, 0600) + blocking flock(LOCK_EX); the lock lives as long as the fd. */
  lockExclusive(path: string): number;
  /** flock(LOCK_EX|LOCK_NB): false when another open file holds the lock. */
  tryLockExclusive(fd: number): boolean;
  // native/procscan.cc
  /** One pass over /proc: user namespaces with their processes, identity, parent and maps; namespace fds; mount namespaces. */
  scanProcUserns(wantFds: boolean): ProcScanRaw;
  /** The same walk on other threads, leaving the JS thread free; rejects with the opendir error. */
  scanProcUsernsAsync(wantFds: boolean): Promise<ProcScanRaw>;
  // native/listns.cc
  /** listns(2) (6.19+): namespace ids of a CLONE_NEW* type (0: all) owned by a user namespace id (0n: any). ENOSYS before 6.19. */
  listns(nsType: number, userNsId: bigint): bigint[];
  /** An O_CLOEXEC memfd holding `bytes` (a sandbox file's content, copied by the child). */
  memfdFromBytes(bytes: Uint8Array): number;
  /** fcntl(F_OFD_SETLK) whole-file read lock, not waiting (userns-bwrap's --lock-file). */
  ofdReadLock(fd: number): void;
}

const here = dirname(fileURLToPath(import.meta.url));
/** The package root: lib/kernel or dist/kernel, two levels up. */
export const packageRoot: string = join(here, "..", "..");

/** The command that builds the addon for this machine from the sources the package ships. */
export const REBUILD_COMMAND = "npm rebuild userns";

/** One place the loader looked, and what it found there. */
export interface AddonCandidate {
  readonly path: string;
  /** `loaded`, `absent`, or `failed` (the file exists but could not be loaded: `error` says why). */
  readonly outcome: "loaded" | "absent" | "failed" | "skipped";
  readonly error?: string;
}

/** This machine's C library as prebuild file names tag it. */
function libc(): "glibc" | "musl" {
  // glibcVersionRuntime is present exactly when Node runs on glibc (Node's own report).
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return header?.glibcVersionRuntime !== undefined ? "glibc" : "musl";
}

/**
 * Where the addon may be, in the order tried: `USERNS_BINDING` (an explicit
 * file, e.g. the sanitizer build; nothing else is tried when it is set), a
 * local build (`build/Release`, `build/Debug`: what `npm rebuild` makes), then
 * the prebuilt binaries for this platform, arch and libc in `prebuilds/`
 * (prebuildify's layout, the one node-gyp-build's install step checks).
 */
export function addonCandidates(): string[] {
  return [...candidates()];
}

// A generator, so that a loader that finds the local build never asks for the libc (process.report costs ms).
function* candidates(): Generator<string> {
  const explicit = process.env.USERNS_BINDING;
  if (explicit) {
    yield explicit;
    return;
  }
  yield join(packageRoot, "build", "Release", "userns.node");
  yield join(packageRoot, "build", "Debug", "userns.node");
  const dir = join(packageRoot, "prebuilds", `${process.platform}-${process.arch}`);
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith(".node"));
  } catch {
    // no prebuilds for this platform: listed below as absent
  }
  const c = libc();
  const tagged = files.filter((f) => f.split(".").includes(c));
  const untagged = files.filter((f) => !f.split(".").some((t) => t === "glibc" || t === "musl"));
  const chosen = [...tagged, ...untagged].sort();
  if (chosen.length === 0) yield join(dir, `userns.${c}.node`);
  else for (const f of chosen) yield join(dir, f);
}

let lastAttempt: AddonCandidate[] = [];
let loadedFrom: string | undefined;

function load(): NativeBinding {
  const require = createRequire(import.meta.url);
  const tried: AddonCandidate[] = [];
  for (const path of candidates()) {
    if (!existsSync(path)) {
      tried.push({ path, outcome: "absent" });
      continue;
    }
    try {
      const b = require(path) as NativeBinding;
      if (typeof b.spawnStart !== "function" || typeof b.setErrorClass !== "function")
        throw new Error("not the userns addon (its exports are missing)");
      tried.push({ path, outcome: "loaded" });
      lastAttempt = tried;
      loadedFrom = path;
      return b;
    } catch (e) {
      // dlopen's message starts with the path again.
      const msg = (e instanceof Error ? e.message.split("\n")[0]! : String(e)).replace(`${path}: `, "");
      tried.push({ path, outcome: "failed", error: msg });
    }
  }
  lastAttempt = tried;
  throw nativeLoadError(tried);
}

/** The one error for an addon that cannot be loaded: what was tried, why each failed, and the command that fixes it. */
export function nativeLoadError(tried: readonly AddonCandidate[]): UsernsError {
  const where = `${process.platform}-${process.arch}, ${process.platform === "linux" ? `${libc()}, ` : ""}Node ${process.version}`;
  const lines = tried.map(
    (t) =>
      `${t.path}: ${t.outcome === "absent" ? "not present" : t.outcome === "failed" ? `could not be loaded (${t.error})` : t.outcome}`,
  );
  const explicit = process.env.USERNS_BINDING
    ? " (USERNS_BINDING is set: only that file was tried; unset it to use the package's own)"
    : "";
  return new UsernsError(`loading the userns native addon`, {
    code: "ERR_USERNS_NATIVE_LOAD",
    reason:
      `no usable binary for ${where}${explicit}. Tried: ${lines.join("; ")}. ` +
      `Prebuilt binaries ship for linux-x64 (glibc). To build one for this machine run \`${REBUILD_COMMAND}\` ` +
      "in your project (it needs a C++17 compiler, make and Python 3; Debian/Ubuntu: apt-get install g++ make python3); " +
      "`userns doctor` checks the result",
  });
}

let cached: NativeBinding | undefined;

/** The loaded addon. Loaded lazily, so the pure model works without it. */
export function native(): NativeBinding {
  if (cached === undefined) {
    const b = load();
    b.setErrorClass(NativeError);
    cached = b;
  }
  return cached;
}

/** Where the addon was loaded from (loading it if needed), for diagnostics and tests. */
export function nativePath(): string {
  native();
  return loadedFrom!;
}

/**
 * Loads the addon if it is not loaded yet and says how that went, without
 * throwing: for `userns doctor`.
 */
export function nativeStatus(): {
  ok: boolean;
  path: string | undefined;
  tried: AddonCandidate[];
  error?: UsernsError;
} {
  try {
    native();
    return { ok: true, path: loadedFrom, tried: lastAttempt };
  } catch (e) {
    return { ok: false, path: undefined, tried: lastAttempt, error: e as UsernsError };
  }
}

/** Adapter so native code constructs UsernsError with its (attempted, {errno, syscall}) shape. */
class NativeError extends UsernsError {
  constructor(attempted: string, opts: { errno: number; syscall: string }) {
    super(attempted, { errno: opts.errno, syscall: opts.syscall });
  }
}
Object.defineProperty(NativeError.prototype, "name", { value: "UsernsError", enumerable: false });
