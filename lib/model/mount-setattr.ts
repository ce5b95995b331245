/**
 * Idmapped mounts, mount_setattr (spec §8.2): the order of its checks and
 * the errno each refusal gives.
 */
import { IDMAPPABLE_FILESYSTEMS } from "./idmappable.js";

// ---------------------------------------------------------------------------
// mount_setattr (spec §8.2)

/** include/uapi/linux/mount.h and fcntl.h constants mount_setattr checks. */
export const MOUNT_ATTR = Object.freeze({
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  _ATIME: 0x70,
  RELATIME: 0x0,
  NOATIME: 0x10,
  STRICTATIME: 0x20,
  NODIRATIME: 0x80,
  IDMAP: 0x100000,
  NOSYMFOLLOW: 0x200000,
});
/** `AT_*` flags mount_setattr accepts. */
export const AT = Object.freeze({
  SYMLINK_NOFOLLOW: 0x100,
  NO_AUTOMOUNT: 0x800,
  EMPTY_PATH: 0x1000,
  RECURSIVE: 0x8000,
});
/** Propagation types (`MS_*`). */
export const MS = Object.freeze({ UNBINDABLE: 1 << 17, PRIVATE: 1 << 18, SLAVE: 1 << 19, SHARED: 1 << 20 });
/** MOUNT_ATTR_SIZE_VER0. */
export const MOUNT_ATTR_SIZE_VER0 = 32;
const PAGE_SIZE = 4096;
const INT_MAX = 0x7fff_ffff;
const VALID_ATTR =
  MOUNT_ATTR.RDONLY |
  MOUNT_ATTR.NOSUID |
  MOUNT_ATTR.NODEV |
  MOUNT_ATTR.NOEXEC |
  MOUNT_ATTR._ATIME |
  MOUNT_ATTR.NODIRATIME |
  MOUNT_ATTR.IDMAP |
  MOUNT_ATTR.NOSYMFOLLOW;
const VALID_AT = AT.EMPTY_PATH | AT.RECURSIVE | AT.SYMLINK_NOFOLLOW | AT.NO_AUTOMOUNT;
const VALID_PROPAGATION = MS.UNBINDABLE | MS.PRIVATE | MS.SLAVE | MS.SHARED;

// The one list of idmappable filesystems is ./idmappable.ts (with the versions doctor reports).
export { IDMAPPABLE_FILESYSTEMS };

/** What the `userns_fd` of `struct mount_attr` refers to. */
export type UsernsFdTarget =
  | { readonly kind: "closed" }
  | { readonly kind: "file" }
  | { readonly kind: "nsfs"; readonly nstype: "mnt" | "net" | "uts" | "ipc" | "pid" | "cgroup" | "time" }
  | {
      readonly kind: "userns";
      /** The initial user namespace. */
      readonly init?: boolean;
      /** Identity used to compare with a mount's s_user_ns (rule 45); default `"userns"`. */
      readonly id?: string;
      readonly uidMapWritten: boolean;
      readonly gidMapWritten: boolean;
      /** ns_capable(userns, CAP_SYS_ADMIN) for the caller; default true (root of init). */
      readonly callerCapSysAdmin?: boolean;
    };

/** One mount mount_setattr changes (the top one, then submounts with AT_RECURSIVE). */
export interface SetattrMount {
  /** Filesystem type, e.g. `"tmpfs"`, `"ramfs"`, `"proc"`. */
  readonly fsType: string;
  /** Identity of sb->s_user_ns; default `"init"`. */
  readonly fsUserns?: string;
  /** SB_I_NOIDMAP (fuse without FUSE_ALLOW_IDMAP). */
  readonly noIdmap?: boolean;
  /** ns_capable(sb->s_user_ns, CAP_SYS_ADMIN) for the caller; default true. */
  readonly callerCapOverFs?: boolean;
  /** Already idmapped. */
  readonly idmapped?: boolean;
  /** In an anonymous (detached) mount namespace: never visible yet. */
  readonly detached: boolean;
  /** Files open for writing on it. */
  readonly writersOpen?: boolean;
  /** The change would clear a locked flag. */
  readonly clearsLockedFlag?: boolean;
}

/** A mount_setattr(2) call and the state it runs against. */
export interface MountSetattrCall {
  /** `flags`; default AT_EMPTY_PATH. */
  readonly flags?: number;
  /** `usize`; default 32. */
  readonly size?: number;
  /** Nonzero bytes after the 32 known ones. */
  readonly tailNonzero?: boolean;
  /** may_mount(): CAP_SYS_ADMIN over the caller's mount namespace; default true. */
  readonly mayMount?: boolean;
  readonly attrSet?: number;
  readonly attrClr?: number;
  readonly propagation?: number;
  /** The fd number in `userns_fd` (only the INT_MAX check uses it); default 3. */
  readonly usernsFdNumber?: number;
  readonly usernsFd?: UsernsFdTarget;
  /** open_tree_attr(OPEN_TREE_CLONE) may replace or clear an idmap (MOUNT_KATTR_IDMAP_REPLACE). */
  readonly replacePermission?: boolean;
  /** errno name of the path lookup, if it fails. */
  readonly lookupErrno?: string;
  /** The path is the root of a mount; default true. */
  readonly isMountRoot?: boolean;
  /** The mount is in the caller's mount namespace or the root of an anonymous one; default true. */
  readonly reachable?: boolean;
  /** The mounts changed: the target first, then its submounts (used only with AT_RECURSIVE). */
  readonly mounts: readonly SetattrMount[];
}

/** Outcome of {@link mountSetattr}: the errno and the check (numbered as in spec §8.2) that decided. */
export type MountSetattrResult =
  | { readonly ok: true; readonly rule: string }
  | { readonly ok: false; readonly errno: string; readonly check: number; readonly rule: string };

function refuse(errno: string, check: number, rule: string): MountSetattrResult {
  return { ok: false, errno, check, rule };
}

/** Mirrors fs/namespace.c: build_mount_kattr's atime rules (spec §8.2 check 9). */
export function mountAttrAtimeValid(attrSet: number, attrClr: number): boolean {
  if (attrClr & MOUNT_ATTR._ATIME) {
    if ((attrClr & MOUNT_ATTR._ATIME) !== MOUNT_ATTR._ATIME) return false;
    const v = attrSet & MOUNT_ATTR._ATIME;
    return v === MOUNT_ATTR.RELATIME || v === MOUNT_ATTR.NOATIME || v === MOUNT_ATTR.STRICTATIME;
  }
  return (attrSet & MOUNT_ATTR._ATIME) === 0;
}

/** Mirrors fs/namespace.c: can_idmap_mount (spec §8.2 checks 23–28). */
export function canIdmapMount(
  userns: { id: string },
  m: SetattrMount,
  replace: boolean,
): MountSetattrResult | undefined {
  if (userns.id === (m.fsUserns ?? "init")) {
    return refuse("EINVAL", 23, "can_idmap_mount: the namespace is the filesystem's own s_user_ns");
  }
  if (!replace && m.idmapped) return refuse("EPERM", 24, "can_idmap_mount: the mount is already idmapped");
  if (!IDMAPPABLE_FILESYSTEMS.has(m.fsType)) {
    return refuse("EINVAL", 25, `can_idmap_mount: ${m.fsType} does not support idmapped mounts (no FS_ALLOW_IDMAP)`);
  }
  if (m.noIdmap) return refuse("EINVAL", 26, "can_idmap_mount: the superblock has SB_I_NOIDMAP");
  if (m.callerCapOverFs === false) {
    return refuse("EPERM", 27, "can_idmap_mount: no CAP_SYS_ADMIN over the filesystem's s_user_ns");
  }
  if (!m.detached) {
    return refuse("EINVAL", 28, "can_idmap_mount: the mount is attached (already visible); idmap a detached clone");
  }
  return undefined;
}

/**
 * Mirrors fs/namespace.c: SYSCALL mount_setattr → build_mount_kattr →
 * build_mount_idmapped → do_mount_setattr → mount_setattr_prepare: the
 * first failing check of spec §8.2 (numbered 1–29 there) decides the errno.
 * Rules 41–50 of spec §11. Checks the model cannot see (EFAULT, ENOMEM)
 * are not modelled.
 */
export function mountSetattr(call: MountSetattrCall): MountSetattrResult {
  const flags = call.flags ?? AT.EMPTY_PATH;
  const size = call.size ?? MOUNT_ATTR_SIZE_VER0;
  const set = call.attrSet ?? 0;
  const clr = call.attrClr ?? 0;
  const prop = call.propagation ?? 0;
  if (flags & ~VALID_AT) return refuse("EINVAL", 1, "mount_setattr: unknown flags");
  if (size > PAGE_SIZE) return refuse("E2BIG", 2, "mount_setattr: usize is larger than a page");
  if (size < MOUNT_ATTR_SIZE_VER0)
    return refuse("EINVAL", 3, "mount_setattr: usize is smaller than MOUNT_ATTR_SIZE_VER0");
  if (call.mayMount === false) return refuse("EPERM", 4, "may_mount: no CAP_SYS_ADMIN over the mount namespace");
  if (size > MOUNT_ATTR_SIZE_VER0 && call.tailNonzero) {
    return refuse("E2BIG", 5, "copy_struct_from_user: nonzero bytes after the known struct");
  }
  if (set === 0 && clr === 0 && prop === 0) return { ok: true, rule: "mount_setattr: nothing to change (no lookup)" };
  if (prop & ~VALID_PROPAGATION || (prop & VALID_PROPAGATION & ((prop & VALID_PROPAGATION) - 1)) !== 0) {
    return refuse("EINVAL", 7, "build_mount_kattr: unknown or more than one propagation type");
  }
  if ((set | clr) & ~VALID_ATTR) return refuse("EINVAL", 8, "build_mount_kattr: unknown attribute bits");
  if (!mountAttrAtimeValid(set, clr)) return refuse("EINVAL", 9, "build_mount_kattr: invalid atime change");
  const replace = call.replacePermission ?? false;
  if (clr & MOUNT_ATTR.IDMAP && !replace) {
    return refuse("EINVAL", 10, "build_mount_kattr: MOUNT_ATTR_IDMAP in attr_clr (only open_tree_attr may clear it)");
  }
  let userns: { id: string; uidMapWritten: boolean; gidMapWritten: boolean } | undefined;
  if (set & MOUNT_ATTR.IDMAP) {
    const fdn = call.usernsFdNumber ?? 3;
    if (fdn > INT_MAX) return refuse("EINVAL", 11, "build_mount_idmapped: userns_fd > INT_MAX");
    const t = call.usernsFd ?? { kind: "closed" };
    if (t.kind === "closed") return refuse("EBADF", 12, "build_mount_idmapped: userns_fd is not open");
    if (t.kind === "file") return refuse("EINVAL", 13, "build_mount_idmapped: userns_fd is not a namespace file");
    if (t.kind === "nsfs") {
      return refuse("EINVAL", 14, `build_mount_idmapped: userns_fd is a ${t.nstype} namespace, not a user namespace`);
    }
    if (t.init) return refuse("EPERM", 15, "build_mount_idmapped: the initial user namespace cannot idmap a mount");
    if (t.callerCapSysAdmin === false) {
      return refuse("EPERM", 16, "build_mount_idmapped: no CAP_SYS_ADMIN in the user namespace");
    }
    userns = { id: t.id ?? "userns", uidMapWritten: t.uidMapWritten, gidMapWritten: t.gidMapWritten };
  }
  if (call.lookupErrno) return refuse(call.lookupErrno, 17, "user_path_at: path lookup failed");
  if (call.isMountRoot === false) return refuse("EINVAL", 18, "do_mount_setattr: the path is not the root of a mount");
  if (userns && !(userns.uidMapWritten && userns.gidMapWritten)) {
    return refuse(
      "EINVAL",
      19,
      `alloc_mnt_idmap: the namespace's ${userns.uidMapWritten ? "gid_map" : "uid_map"} is not written`,
    );
  }
  if (call.reachable === false) {
    return refuse("EINVAL", 21, "do_mount_setattr: not in the caller's mount namespace nor a detached tree's root");
  }
  const mounts = flags & AT.RECURSIVE ? call.mounts : call.mounts.slice(0, 1);
  for (const m of mounts) {
    if (m.clearsLockedFlag) return refuse("EPERM", 22, "mount_setattr_prepare: would clear a locked mount flag");
    if (userns) {
      const r = canIdmapMount(userns, m, replace);
      if (r) return r;
    }
    const holdsWriters = set & MOUNT_ATTR.IDMAP || set & MOUNT_ATTR.RDONLY;
    if (holdsWriters && m.writersOpen) return refuse("EBUSY", 29, "mnt_hold_writers: files are open for writing");
  }
  return { ok: true, rule: "mount_setattr: applied" };
}

/**
 * Mirrors fs/namespace.c: SYSCALL open_tree's flag checks (spec §8.1): unknown
 * flags → EINVAL; AT_RECURSIVE without OPEN_TREE_CLONE → EINVAL (verified on
 * 6.18 by test/kernel/model-mountcases.test.ts); a clone needs may_mount
 * (EPERM). Returns the errno name, or undefined when the call proceeds.
 */
export function openTree(call: { clone: boolean; recursive: boolean; mayMount?: boolean }): string | undefined {
  if (call.recursive && !call.clone) return "EINVAL";
  if (call.clone && call.mayMount === false) return "EPERM";
  return undefined;
}
