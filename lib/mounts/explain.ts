/**
 * Turns a kernel refusal of an idmapped mount (an errno from open_tree,
 * mount_setattr or open_tree_attr) plus what we know about the attempt into
 * a reason in words. The kernel says EINVAL for half a dozen causes; spec
 * §8.2 lists them in the order the kernel checks, and this follows it.
 */
import { statfsSync } from "node:fs";
import { UsernsError, type UsernsErrorCode } from "../errors.js";
import { native } from "../kernel/native.js";
import { CLONE_NEW, INIT_USER_NS_INO } from "../kernel/nsfs.js";
import { FS_MAGIC, STATMOUNT } from "./constants.js";

/** Why an idmapped mount could not be made, as a stable code. */
export type IdmapRefusal =
  | "fs-type-not-allowed"
  | "already-idmapped"
  | "source-attached"
  | "userns-no-maps"
  | "initial-userns"
  | "wrong-fd-type"
  | "fd-not-open"
  | "capability-missing"
  | "file-open-for-writing"
  | "fs-own-userns"
  | "not-mount-root"
  | "no-open-tree-attr"
  | "unknown";

/** What the caller knew when the kernel refused. */
export interface IdmapAttemptContext {
  /** The syscall that failed. */
  syscall: "open_tree" | "mount_setattr" | "open_tree_attr" | "move_mount";
  /** errno name. */
  code: UsernsErrorCode;
  /** The source path, when there is one. */
  sourcePath?: string;
  /** The source was opened without OPEN_TREE_CLONE (an attached mount). */
  sourceAttached?: boolean;
  /** The user-namespace fd handed to the kernel. */
  usernsFd?: number;
  /** Whether that namespace's uid_map and gid_map were written, when known. */
  mapsWritten?: boolean;
  /** The mount was idmapped already (we set it, or the kernel told us). */
  alreadyIdmapped?: boolean;
  /** AT_RECURSIVE was used (a submount may be the one refused). */
  recursive?: boolean;
}

/** Human-readable text for each refusal code. */
export const REFUSAL_TEXT: Readonly<Record<IdmapRefusal, string>> = {
  "fs-type-not-allowed": "the filesystem type does not allow idmapped mounts on this kernel (no FS_ALLOW_IDMAP)",
  "already-idmapped": "the mount is already idmapped (an idmap can only be replaced with open_tree_attr, Linux 6.15+)",
  "source-attached": "the source is an attached mount, not a detached clone (open_tree needs OPEN_TREE_CLONE)",
  "userns-no-maps": "the user namespace has no uid_map or gid_map written",
  "initial-userns": "the initial user namespace cannot be used as an idmap",
  "wrong-fd-type": "the fd given as the user namespace is not a user-namespace fd",
  "fd-not-open": "the fd given as the user namespace is not open",
  "capability-missing":
    "a capability is missing: CAP_SYS_ADMIN is needed over the mount namespace, the user namespace and the filesystem's owning namespace",
  "file-open-for-writing": "a file is open for writing on the mount (EBUSY)",
  "fs-own-userns": "the user namespace is the filesystem's own (sb->s_user_ns); an idmap needs a different one",
  "not-mount-root": "the path is not the root of a mount",
  "no-open-tree-attr": "open_tree_attr (syscall 467) is missing: replacing an idmap needs Linux 6.15+",
  unknown: "the kernel refused for a reason this library cannot tell apart",
};

/**
 * The filesystem type name of the mount holding `path`: from statmount's
 * fs_type (6.8+), which tells types apart that share a statfs magic (devtmpfs
 * reports TMPFS_MAGIC but, unlike tmpfs, cannot be idmapped), else from the
 * statfs magic.
 */
export function fsTypeOf(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  const b = native();
  try {
    const { mountId } = b.mountIdOf(-100, path, 0);
    const sm = b.statmount(mountId, STATMOUNT.FS_TYPE, -1);
    if (sm.fsType) return sm.fsType;
  } catch {
    // No statmount (before 6.8) or no unique mount id: fall back to the magic.
  }
  try {
    const t = Number(statfsSync(path).type);
    return FS_MAGIC[t] ?? `0x${t.toString(16)}`;
  } catch {
    return undefined;
  }
}

const NOT_ALLOWED = new Set([
  "devtmpfs",
  "proc",
  "sysfs",
  "devpts",
  "ramfs",
  "mqueue",
  "cgroup2",
  "cgroup",
  "bpf",
  "overlay",
  "debugfs",
  "securityfs",
  "nsfs",
]);

/** Whether the mount at `path` is idmapped: statmount's mnt_attr, else mountinfo's `idmapped` option. */
export function pathIsIdmapped(path: string): boolean | undefined {
  const b = native();
  try {
    const { mountId } = b.mountIdOf(-100, path, 0);
    const sm = b.statmount(mountId, 0x2n, -1);
    return (sm.mntAttr & 0x100000n) !== 0n;
  } catch {
    return undefined;
  }
}

/** Classifies the user-namespace fd: a user ns (initial or not), another ns type, or not nsfs at all. */
function usernsFdKind(fd: number | undefined): "user" | "init" | "other-ns" | "not-ns" | "closed" | undefined {
  if (fd === undefined) return undefined;
  const b = native();
  try {
    const type = b.nsGetNstype(fd);
    if (type !== CLONE_NEW.user) return "other-ns";
    return b.nsIdentity(fd).ino === INIT_USER_NS_INO ? "init" : "user";
  } catch (e) {
    const c = (e as { code?: string }).code;
    return c === "EBADF" ? "closed" : "not-ns";
  }
}

/** The reason for a refusal, following spec §8.2's order of checks. */
export function classifyIdmapRefusal(ctx: IdmapAttemptContext): IdmapRefusal {
  const { code } = ctx;
  if (code === "ENOSYS" && ctx.syscall === "open_tree_attr") return "no-open-tree-attr";
  if (code === "EBUSY") return "file-open-for-writing";
  if (code === "EBADF") return "fd-not-open";
  const kind = usernsFdKind(ctx.usernsFd);
  if (code === "EINVAL") {
    if (kind === "not-ns" || kind === "other-ns") return "wrong-fd-type"; // §8.2 #13, #14
    if (ctx.mapsWritten === false) return "userns-no-maps"; // #19
    const fs = fsTypeOf(ctx.sourcePath);
    if (fs !== undefined && NOT_ALLOWED.has(fs)) return "fs-type-not-allowed"; // #25
    if (ctx.sourceAttached) return "source-attached"; // #28
    if (ctx.recursive) return "fs-type-not-allowed"; // a submount's type (#25 on a child mount)
    // A user namespace, a clone we made (so a mount root, detached), an fs
    // type that allows idmaps and a filesystem owned by the initial namespace
    // (a different namespace from any new one): #19, unwritten maps, is what remains.
    if (kind === "user" && ctx.mapsWritten === undefined && fs !== undefined && !NOT_ALLOWED.has(fs))
      return "userns-no-maps";
    return "unknown";
  }
  if (code === "EPERM") {
    if (kind === "init") return "initial-userns"; // #15
    if (ctx.alreadyIdmapped) return "already-idmapped"; // #24
    return "capability-missing"; // #4, #16, #27
  }
  return "unknown";
}

/** Builds the UsernsError for a refusal: code = errno name, reason = words, syscall and step kept. */
export function idmapError(attempted: string, ctx: IdmapAttemptContext, cause: unknown): UsernsError {
  const refusal = classifyIdmapRefusal(ctx);
  let reason = REFUSAL_TEXT[refusal];
  if (refusal === "fs-type-not-allowed") {
    const fs = fsTypeOf(ctx.sourcePath);
    if (fs !== undefined)
      reason = `${fs}: ${reason}${ctx.recursive && !NOT_ALLOWED.has(fs) ? " (a submount's type, with AT_RECURSIVE)" : ""}`;
  }
  const err = new UsernsError(attempted, {
    code: ctx.code,
    syscall: ctx.syscall,
    step: ctx.syscall,
    reason,
    cause,
    ...(ctx.sourcePath !== undefined ? { path: ctx.sourcePath } : {}),
  });
  Object.defineProperty(err, "refusal", { value: refusal, enumerable: true });
  return err;
}

/** The refusal code attached to an error from this module, if any. */
export function refusalOf(e: unknown): IdmapRefusal | undefined {
  return (e as { refusal?: IdmapRefusal } | null)?.refusal;
}
