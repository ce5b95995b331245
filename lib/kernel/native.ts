/**
 * The one place the addon is loaded, and the one declaration of exactly what
 * it exports. Feature modules import `native` from here, never the `.node`
 * file.
 */
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
   * clone3 a child that runs the encoded steps; returns [pid, handle]. envp null: this process's environ.
   * fdSrc entries: an fd, -1 (closed) or -2 (/dev/null, opened by the child).
   */
  spawnStart(
    cloneFlags: number,
    path: string,
    argv: string[],
    envp: string[] | null,
    fdSrc: number[],
    steps: number[],
    strings: string[],
    gids: number[],
    exitMode: boolean,
    blobs?: Uint8Array[],
    noVm?: boolean,
  ): [number, unknown];
  /** Releases the child from its current wait and blocks until the next event. */
  spawnResume(
    handle: unknown,
    release: boolean,
  ):
    | { kind: "ready"; step: number }
    | { kind: "failed"; step: number; errno: number }
    | { kind: "exec"; pidfd: number; pid: number }
    | { kind: "exit"; code: number | null; signal: number | null };
  /** SIGKILL, reap and free a held child (and the program's process, after a fork step). */
  spawnAbort(handle: unknown): void;
  /** Watches a pidfd on the event loop; takes ownership of it (closed after reaping). */
  pidfdWatch(pidfd: number, cb: (code: number | null, signal: number | null) => void): unknown;
  pidfdWatchRef(watch: unknown, ref: boolean): void;
  /** true if sent, false if the process is gone (ESRCH). */
  pidfdSendSignal(pidfd: number, signal: number): boolean;
  /** open(O_WRONLY) + exactly one write(2). */
  writeOnce(path: string, data: string): void;
  /**
   * Writes files of /proc/PID in order, each with one open(O_WRONLY) + write(2), relative to one directory fd.
   * Returns null, or the first failure (later files are not attempted).
   */
  writeProcFiles(
    pid: number,
    names: string[],
    data: string[],
  ): null | { index: number; syscall: "open" | "write"; errno: number };
  /** pipe2(O_CLOEXEC): [read, write]. */
  pipe(): [number, number];
  dupCloexec(fd: number): number;
  /** capget(2): the effective capability set of the calling thread. */
  capEffective(): bigint;
  /** Whether spawns use CLONE_VM with a separate stack (x86_64) rather than the fork-like path. */
  spawnUsesCloneVm(): boolean;
  /** An O_CLOEXEC memfd holding `bytes` (a sandbox file's content, copied by the child). */
  memfdFromBytes(bytes: Uint8Array): number;
}

const here = dirname(fileURLToPath(import.meta.url));
/** The package root: lib/kernel or dist/kernel, two levels up. */
export const packageRoot: string = join(here, "..", "..");

function load(): NativeBinding {
  const require = createRequire(import.meta.url);
  const explicit = process.env.USERNS_BINDING;
  if (explicit) {
    // An explicit binary (the sanitizer build, or a user's own) wins.
    return require(explicit) as NativeBinding;
  }
  const nodeGypBuild = require("node-gyp-build") as (dir: string) => unknown;
  try {
    return nodeGypBuild(packageRoot) as NativeBinding;
  } catch (cause) {
    throw new UsernsError(
      `loading the userns native addon from ${packageRoot} (tried prebuilds/${process.platform}-${process.arch} and build/Release; set USERNS_BINDING to a .node file to override)`,
      { code: "ERR_USERNS_NATIVE_LOAD", cause },
    );
  }
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

/** Where the addon was loaded from, for diagnostics and tests. */
export function nativePath(): string {
  const require = createRequire(import.meta.url);
  if (process.env.USERNS_BINDING) return process.env.USERNS_BINDING;
  const nodeGypBuild = require("node-gyp-build") as { resolve(dir: string): string };
  return nodeGypBuild.resolve(packageRoot);
}

/** Adapter so native code constructs UsernsError with its (attempted, {errno, syscall}) shape. */
class NativeError extends UsernsError {
  constructor(attempted: string, opts: { errno: number; syscall: string }) {
    super(attempted, { errno: opts.errno, syscall: opts.syscall });
  }
}
Object.defineProperty(NativeError.prototype, "name", { value: "UsernsError", enumerable: false });
