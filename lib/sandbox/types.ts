/**
 * The sandbox's public vocabulary: what a caller asks `spawn()` to build in the
 * child before exec (a new root filesystem, a hostname, capabilities, seccomp, a
 * reaping pid 1 ...). These are plain data: the parent validates and prepares them,
 * the child only runs raw syscalls over the prepared form, and the model predicts
 * what the program will see from the same values.
 *
 * Names follow bubblewrap's manual (bwrap.xml) where bwrap has the operation, so that
 * a bwrap argument list maps onto these one to one; `dest` is always a path inside
 * the new root, resolved there (a symlink inside the new root can never send a mount
 * outside it).
 *
 * @packageDocumentation
 */
import type { IdMap } from "../model/idmap.js";

/** A map as the model's value or as text (`inside outside count` per line), as everywhere in the library. */
export type SandboxMapInput = IdMap | string;

/** A path inside the sandbox's new root (absolute; resolved inside the new root, never on the host). */
export type SandboxPath = string;

/** File content for {@link FsFile}: text (UTF-8), bytes, or an open fd read to its end in the parent. */
export type FileContent = string | Uint8Array | { readonly fd: number };

/**
 * Bind `source` (a host path, or an open fd with `{ fd }`) at `dest`
 * (`--bind`, `--ro-bind`, `--dev-bind`, their `-try` forms, `--bind-fd`, `--ro-bind-fd`).
 */
export interface FsBind {
  readonly op: "bind";
  /** Host path, resolved in the caller's mount namespace before the root is replaced; or an open fd (O_PATH is fine). */
  readonly source: string | { readonly fd: number };
  readonly dest: SandboxPath;
  /** Read-only, recursively: every submount too (mount_setattr with AT_RECURSIVE). */
  readonly readOnly?: boolean;
  /** Allow device nodes (no MS_NODEV); bwrap's `--dev-bind`. Default false. */
  readonly devices?: boolean;
  /** Skip the operation when `source` does not exist (bwrap's `-try` forms). */
  readonly optional?: boolean;
}

/** A new tmpfs at `dest` (`--tmpfs`, with `--perms` and `--size`). */
export interface FsTmpfs {
  readonly op: "tmpfs";
  readonly dest: SandboxPath;
  /** Mode of the tmpfs root; default 0o755 as bwrap. */
  readonly mode?: number;
  /** Size in bytes (tmpfs `size=`); default the kernel's. */
  readonly size?: number;
}

/** A new procfs at `dest` (`--proc`): the pid namespace the program runs in. */
export interface FsProc {
  readonly op: "proc";
  readonly dest: SandboxPath;
}

/**
 * A minimal /dev at `dest` (`--dev`): a tmpfs with null, zero, full, random, urandom and tty
 * bound from the host, a private devpts (newinstance) at pts with ptmx a link to pts/ptmx, shm (a directory on
 * that tmpfs, as bwrap makes it), and the fd, stdin, stdout, stderr and core links.
 */
export interface FsDev {
  readonly op: "dev";
  readonly dest: SandboxPath;
}

/** A new mqueue filesystem at `dest` (`--mqueue`). */
export interface FsMqueue {
  readonly op: "mqueue";
  readonly dest: SandboxPath;
}

/** A directory (`--dir`, with `--perms`); parents are created as needed (0755). */
export interface FsDir {
  readonly op: "dir";
  readonly dest: SandboxPath;
  /** Default 0o755. */
  readonly mode?: number;
}

/** A symbolic link at `dest` whose content is `target` (`--symlink TARGET DEST`). */
export interface FsSymlink {
  readonly op: "symlink";
  readonly target: string;
  readonly dest: SandboxPath;
}

/**
 * A file at `dest` with the given content (`--file`, with `--perms`), or, with `bind`, a file made
 * outside the new root and bind-mounted over `dest` (`--bind-data`, `--ro-bind-data`).
 */
export interface FsFile {
  readonly op: "file";
  readonly dest: SandboxPath;
  readonly content: FileContent;
  /** Default 0o666 for a plain file (bwrap), before the umask of the child (0). */
  readonly mode?: number;
  /** Bind the data read-write or read-only instead of writing a file into the new root. */
  readonly bind?: "rw" | "ro";
}

/** chmod(2) of an existing path (`--chmod OCTAL PATH`). */
export interface FsChmod {
  readonly op: "chmod";
  readonly dest: SandboxPath;
  readonly mode: number;
}

/** Remount an existing mount read-only (`--remount-ro DEST`). */
export interface FsRemountReadOnly {
  readonly op: "remountReadOnly";
  readonly dest: SandboxPath;
}

/**
 * overlayfs at `dest` (`--overlay-src` … then `--overlay`, `--tmp-overlay` or `--ro-overlay`).
 * `lower` is in bwrap's order: the first is the bottom of the stack and the last the top (the reverse of
 * the kernel's `lowerdir=` order). `upper` + `work` make a writable overlay, `upper: "tmpfs"` a writable
 * one whose changes live on a temporary tmpfs; without `upper` it is read-only.
 */
export interface FsOverlay {
  readonly op: "overlay";
  readonly dest: SandboxPath;
  /** Host paths of the lower layers, bottom first (bwrap's command-line order of `--overlay-src`). */
  readonly lower: readonly string[];
  /** Host path of the upper directory, or "tmpfs" for a temporary upper on tmpfs; absent: read-only overlay. */
  readonly upper?: string | "tmpfs";
  /** Host path of the work directory (same filesystem as `upper`); required with a host `upper`. */
  readonly work?: string;
}

/** Attach a detached mount, such as `IdmappedMount` from `idmapMount()`, at `dest` (move_mount). */
export interface FsAttach {
  readonly op: "attach";
  /** Anything with a detached mount's fd (an `IdmappedMount`). */
  readonly mount: { readonly fd: number };
  readonly dest: SandboxPath;
}

/**
 * An idmapped bind in one operation: `source` cloned (open_tree), idmapped with the maps
 * (mount direction: on-disk id → id seen through the mount) or a held user namespace, and attached at `dest`.
 */
export interface FsIdmappedBind {
  readonly op: "idmappedBind";
  readonly source: string;
  readonly dest: SandboxPath;
  /** Mount-direction maps, as `idmapMount()` takes them; or `userns`. */
  readonly uidMap?: SandboxMapInput;
  readonly gidMap?: SandboxMapInput;
  /** A held user namespace (anything with its nsfs fd) whose maps idmap the mount. */
  readonly userns?: { readonly fd: number };
  readonly readOnly?: boolean;
  /** Clone and idmap submounts too. Default false. */
  readonly recursive?: boolean;
}

/** One operation of a filesystem plan, run in order in the child after its mount namespace exists. */
export type FsOperation =
  | FsBind
  | FsTmpfs
  | FsProc
  | FsDev
  | FsMqueue
  | FsDir
  | FsSymlink
  | FsFile
  | FsChmod
  | FsRemountReadOnly
  | FsOverlay
  | FsAttach
  | FsIdmappedBind;

/** Capability names as the kernel's uapi spells them, lower case without `CAP_` also accepted on input. */
export type CapabilityName = `CAP_${Uppercase<string>}`;

/**
 * Sandbox options: the part of `SpawnOptions` that builds the program's world. All of it is
 * prepared in the parent and run in the child before exec; see docs and bwrap.xml for each.
 */
export interface SandboxOptions {
  /**
   * A filesystem plan. When given (even empty), the child builds a fresh root on a tmpfs, runs the
   * operations in order (mountpoints created as needed: directories 0755, files 0444), makes it `/`
   * with pivot_root and detaches the old root, which is then visible nowhere inside.
   * Needs `namespaces` to include "mount".
   */
  readonly filesystem?: readonly FsOperation[];
  /** sethostname in the new uts namespace; needs `namespaces` to include "uts". */
  readonly hostname?: string;
  /**
   * The capabilities the program keeps, in its permitted, effective, inheritable and bounding sets (and
   * ambient, so that a program with a non-zero uid keeps them across exec): `"all"` every capability,
   * `[]` none. Default: the kernel's execve rules (a program running as uid 0 keeps all, others none).
   */
  readonly capabilities?: "all" | readonly CapabilityName[];
  /** prctl(PR_SET_NO_NEW_PRIVS). */
  readonly noNewPrivileges?: boolean;
  /** Classic BPF seccomp programs (arrays of struct sock_filter, 8 bytes each), installed last, in order. */
  readonly seccomp?: readonly Uint8Array[];
  /**
   * With a new pid namespace: `"program"` (default) runs the program itself as pid 1; `"reaper"` runs a small
   * pid 1 in the child that reaps orphans and forwards signals, with the program as its child (pid 2), and
   * exits with the program's status (bwrap's default; `--as-pid-1` is `"program"`): its exit code, or 128 + the
   * signal that killed it (a pid 1 cannot die of its own signal). The handle's pid is pid 1's. pid 1 is a tiny static
   * init the child execs (build/Release/userns-init), or, where that binary is missing, a copy of this process.
   */
  readonly init?: "program" | "reaper";
  /** Bring the loopback interface up in a new network namespace. Default true when "net" is created (as bwrap). */
  readonly loopback?: boolean;
  /**
   * Stop the program from creating further user namespaces (bwrap's `--disable-userns`): the child limits
   * user.max_user_namespaces to what exists inside its own user namespace (a per-namespace limit, not the host's).
   */
  readonly disableUserNamespaces?: boolean;
}
