/**
 * Idmapped mounts, filesystem operations (spec §8.4): permission checks,
 * create, chown and chmod through a mount, as fs/namei.c, fs/attr.c and
 * fs/inode.c decide them. Vocabulary: see ./idmapped.ts.
 */
import {
  type FsUserns,
  fromFs,
  fromVfsid,
  type IdSide,
  type Inode,
  type MountIdmap,
  makeVfsgid,
  makeVfsuid,
  sideMap,
  type UidGidMaps,
  vfsidHasFsmapping,
} from "./idmap-translate.js";
import { mapIdDown, mapIdUp } from "./lookup.js";
import { INVALID_ID } from "./u32.js";

/** The capabilities that matter to filesystem permission checks. */
export type FsCapability = "CAP_CHOWN" | "CAP_DAC_OVERRIDE" | "CAP_DAC_READ_SEARCH" | "CAP_FOWNER" | "CAP_FSETID";

/** Every {@link FsCapability}: what root in its own namespace holds. */
export const ALL_FS_CAPS: readonly FsCapability[] = Object.freeze([
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
]);

/**
 * The task doing a filesystem operation. Ids are kuids/kgids.
 */
export interface FsCaller {
  readonly fsuid: number;
  readonly fsgid: number;
  /** Supplementary groups (kgids); default none. */
  readonly groups?: readonly number[];
  /** Effective capabilities in the caller's own user namespace; default none. */
  readonly caps?: readonly FsCapability[];
  /** The caller's user namespace; default the initial one. */
  readonly userns?: "init" | UidGidMaps;
  /**
   * Whether the caller's capabilities reach the filesystem's s_user_ns
   * (`ns_capable(sb->s_user_ns, cap)`). Default: true when the caller is in
   * the initial namespace (an ancestor of every namespace), or when both are
   * "init"; otherwise false. Set it when the caller is in s_user_ns itself.
   */
  readonly capsOverFs?: boolean;
}

const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_IXGRP = 0o010;
const S_IXUGO = 0o111;

/** Permission mask bits (include/linux/fs.h MAY_*). */
export const MAY_EXEC = 1;
export const MAY_WRITE = 2;
export const MAY_READ = 4;

function callerUserns(c: FsCaller): "init" | UidGidMaps {
  return c.userns ?? "init";
}

function hasCap(c: FsCaller, cap: FsCapability): boolean {
  return (c.caps ?? []).includes(cap);
}

/** Mirrors kernel/user_namespace.c: kuid_has_mapping/kgid_has_mapping for the caller's namespace. */
function callerMaps(c: FsCaller, side: IdSide, kid: number): boolean {
  const ns = callerUserns(c);
  if (kid === INVALID_ID) return false;
  return ns === "init" ? true : mapIdUp(sideMap(ns, side), kid) !== INVALID_ID;
}

/** `ns_capable(sb->s_user_ns, cap)` for the caller (see {@link FsCaller.capsOverFs}). */
function capableOverFs(c: FsCaller, _fs: FsUserns, cap: FsCapability): boolean {
  // cap_capable (spec §1.6): capabilities of the initial namespace reach every namespace; a
  // namespaced caller's never reach init, and for two namespaced ones the caller must say.
  const reach = c.capsOverFs ?? callerUserns(c) === "init";
  return reach && hasCap(c, cap);
}

/** Mirrors kernel/capability.c: privileged_wrt_inode_uidgid — the inode's ids through the mount are mapped in the caller's namespace. */
export function privilegedWrtInodeUidgid(c: FsCaller, idmap: MountIdmap, fs: FsUserns, inode: Inode): boolean {
  return (
    callerMaps(c, "uid", makeVfsuid(idmap, fs, inode.uid)) && callerMaps(c, "gid", makeVfsgid(idmap, fs, inode.gid))
  );
}

/** Mirrors kernel/capability.c: capable_wrt_inode_uidgid. */
export function capableWrtInodeUidgid(
  c: FsCaller,
  idmap: MountIdmap,
  fs: FsUserns,
  inode: Inode,
  cap: FsCapability,
): boolean {
  return hasCap(c, cap) && privilegedWrtInodeUidgid(c, idmap, fs, inode);
}

/** Mirrors kernel/groups.c: in_group_p (fsgid or a supplementary group). */
function inGroupP(c: FsCaller, kgid: number): boolean {
  return kgid !== INVALID_ID && (c.fsgid === kgid || (c.groups ?? []).includes(kgid));
}

/** Mirrors fs/namei.c: acl_permission_check (no ACL entries: tmpfs files carry none here). */
function aclPermissionCheck(c: FsCaller, idmap: MountIdmap, fs: FsUserns, inode: Inode, mask: number): boolean {
  let mode = inode.mode;
  const m = mask & 7;
  const vfsuid = makeVfsuid(idmap, fs, inode.uid);
  if (vfsuid !== INVALID_ID && vfsuid === c.fsuid) return (m & ~(mode >> 6) & 7) === 0;
  if (m & (mode ^ (mode >> 3))) {
    if (inGroupP(c, makeVfsgid(idmap, fs, inode.gid))) mode >>= 3;
  }
  return (m & ~mode & 7) === 0;
}

/** Mirrors fs/namei.c: generic_permission → true when allowed (else EACCES). */
export function genericPermission(c: FsCaller, idmap: MountIdmap, fs: FsUserns, inode: Inode, mask: number): boolean {
  if (aclPermissionCheck(c, idmap, fs, inode, mask)) return true;
  if (inode.type === "dir") {
    if (!(mask & MAY_WRITE) && capableWrtInodeUidgid(c, idmap, fs, inode, "CAP_DAC_READ_SEARCH")) return true;
    return capableWrtInodeUidgid(c, idmap, fs, inode, "CAP_DAC_OVERRIDE");
  }
  const m = mask & (MAY_READ | MAY_WRITE | MAY_EXEC);
  if (m === MAY_READ && capableWrtInodeUidgid(c, idmap, fs, inode, "CAP_DAC_READ_SEARCH")) return true;
  if (!(m & MAY_EXEC) || inode.mode & S_IXUGO) {
    return capableWrtInodeUidgid(c, idmap, fs, inode, "CAP_DAC_OVERRIDE");
  }
  return false;
}

/** Mirrors fs/namei.c: HAS_UNMAPPED_ID — the inode's owner or group is INVALID through the mount. */
export function hasUnmappedId(idmap: MountIdmap, fs: FsUserns, inode: Inode): boolean {
  return makeVfsuid(idmap, fs, inode.uid) === INVALID_ID || makeVfsgid(idmap, fs, inode.gid) === INVALID_ID;
}

/** Errno names the filesystem rules produce. */
export type FsErrno = "EACCES" | "EOVERFLOW" | "EPERM" | "EINVAL" | "EEXIST" | "ENOENT" | "ENOTDIR";

/** A refusal with the rule that decided it. */
export interface FsRefusal {
  readonly ok: false;
  readonly errno: FsErrno;
  /** The kernel function/rule that refused, e.g. `may_create: fsuidgid_has_mapping`. */
  readonly rule: string;
}

/** Mirrors fs/namei.c: inode_permission (the parts a tmpfs on an idmapped mount reaches). */
export function inodePermission(
  c: FsCaller,
  idmap: MountIdmap,
  fs: FsUserns,
  inode: Inode,
  mask: number,
): FsRefusal | undefined {
  if (mask & MAY_WRITE && hasUnmappedId(idmap, fs, inode)) {
    return {
      ok: false,
      errno: "EACCES",
      rule: "inode_permission: HAS_UNMAPPED_ID (owner or group not mapped through the mount)",
    };
  }
  if (!genericPermission(c, idmap, fs, inode, mask)) {
    return { ok: false, errno: "EACCES", rule: "generic_permission: mode bits and capabilities deny access" };
  }
  return undefined;
}

/** Mirrors fs/inode.c: mapped_fsuid/mapped_fsgid — the caller's fs ids as the filesystem would store them. */
export function mappedFsid(c: FsCaller, idmap: MountIdmap, fs: FsUserns, side: IdSide): number {
  return fromVfsid(idmap, fs, side, side === "uid" ? c.fsuid : c.fsgid);
}

/** Mirrors fs/namei.c (include/linux/fs.h): fsuidgid_has_mapping — both fs ids can be stored (spec §8.4, rule 52). */
export function fsuidgidHasMapping(c: FsCaller, idmap: MountIdmap, fs: FsUserns): boolean {
  const kuid = mappedFsid(c, idmap, fs, "uid");
  if (kuid === INVALID_ID) return false;
  const kgid = mappedFsid(c, idmap, fs, "gid");
  if (kgid === INVALID_ID) return false;
  return fromFs(fs, "uid", kuid) !== INVALID_ID && fromFs(fs, "gid", kgid) !== INVALID_ID;
}

/** Mirrors fs/namei.c: may_lookup — search permission on each directory walked (EACCES). */
export function mayLookup(c: FsCaller, idmap: MountIdmap, fs: FsUserns, dir: Inode): FsRefusal | undefined {
  const r = inodePermission(c, idmap, fs, dir, MAY_EXEC);
  return r && { ...r, rule: `may_lookup: no search permission on the directory (${r.rule})` };
}

/** Mirrors fs/namei.c: may_create (may_o_create for open): EOVERFLOW before the directory's write permission. */
export function mayCreate(c: FsCaller, idmap: MountIdmap, fs: FsUserns, dir: Inode): FsRefusal | undefined {
  if (!fsuidgidHasMapping(c, idmap, fs)) {
    return {
      ok: false,
      errno: "EOVERFLOW",
      rule: "may_create: fsuidgid_has_mapping (the caller's fsuid or fsgid does not map back through the mount)",
    };
  }
  return inodePermission(c, idmap, fs, dir, MAY_WRITE | MAY_EXEC);
}

/** Mirrors fs/attr.c: in_group_or_capable. */
function inGroupOrCapable(c: FsCaller, idmap: MountIdmap, fs: FsUserns, inode: Inode, vfsgid: number): boolean {
  if (inGroupP(c, vfsgid)) return true;
  return capableWrtInodeUidgid(c, idmap, fs, inode, "CAP_FSETID");
}

/**
 * Mirrors fs/namei.c: vfs_prepare_mode (mode_strip_sgid, then the umask).
 * `mode` is what the caller passed to open/mkdir; returns the mode bits
 * before inode_init_owner.
 */
export function vfsPrepareMode(
  c: FsCaller,
  idmap: MountIdmap,
  fs: FsUserns,
  dir: Inode,
  mode: number,
  type: "file" | "dir",
  umask: number,
): number {
  // mode_strip_sgid: a non-directory's S_ISGID survives only in a setgid dir when the caller is in its group or capable.
  if (
    (mode & (S_ISGID | S_IXGRP)) === (S_ISGID | S_IXGRP) &&
    type !== "dir" &&
    dir.mode & S_ISGID &&
    !inGroupOrCapable(c, idmap, fs, dir, makeVfsgid(idmap, fs, dir.gid))
  ) {
    mode &= ~S_ISGID;
  }
  mode &= ~umask;
  return mode & (type === "dir" ? 0o1777 : 0o7777);
}

/** Mirrors fs/inode.c: inode_init_owner — owner from the mapped fsuid, group from the setgid parent or the mapped fsgid. */
export function inodeInitOwner(
  c: FsCaller,
  idmap: MountIdmap,
  fs: FsUserns,
  dir: Inode,
  mode: number,
  type: "file" | "dir",
): Inode {
  const uid = mappedFsid(c, idmap, fs, "uid");
  if (dir.mode & S_ISGID) {
    return { uid, gid: dir.gid, mode: type === "dir" ? mode | S_ISGID : mode, type };
  }
  return { uid, gid: mappedFsid(c, idmap, fs, "gid"), mode, type };
}

/** Outcome of a create or an attribute change through a mount. */
export type FsOpResult = { readonly ok: true; readonly inode: Inode } | FsRefusal;

/**
 * Creating `type` in directory `dir` through the mount (open O_CREAT|O_EXCL
 * or mkdir), for a name that does not exist yet: the order of checks of
 * fs/namei.c (may_lookup on `dir`, then may_create / may_o_create), and the
 * stored inode on success (spec §8.4, rule 52). `umask` is the caller's.
 */
export function createThroughMount(
  c: FsCaller,
  idmap: MountIdmap,
  fs: FsUserns,
  dir: Inode,
  type: "file" | "dir",
  mode: number,
  umask: number,
): FsOpResult {
  const lookup = mayLookup(c, idmap, fs, dir);
  if (lookup) return lookup;
  const prepared = vfsPrepareMode(c, idmap, fs, dir, mode, type, umask);
  const refused = mayCreate(c, idmap, fs, dir);
  if (refused) return refused;
  return { ok: true, inode: inodeInitOwner(c, idmap, fs, dir, prepared, type) };
}

/** Mirrors fs/attr.c: chown_ok. */
export function chownOk(c: FsCaller, idmap: MountIdmap, fs: FsUserns, inode: Inode, newVfsuid: number): boolean {
  const vfsuid = makeVfsuid(idmap, fs, inode.uid);
  if (vfsuid !== INVALID_ID && vfsuid === c.fsuid && newVfsuid === vfsuid) return true;
  if (capableWrtInodeUidgid(c, idmap, fs, inode, "CAP_CHOWN")) return true;
  return vfsuid === INVALID_ID && capableOverFs(c, fs, "CAP_CHOWN");
}

/** Mirrors fs/attr.c: chgrp_ok. */
export function chgrpOk(c: FsCaller, idmap: MountIdmap, fs: FsUserns, inode: Inode, newVfsgid: number): boolean {
  const vfsgid = makeVfsgid(idmap, fs, inode.gid);
  const vfsuid = makeVfsuid(idmap, fs, inode.uid);
  if (vfsuid !== INVALID_ID && vfsuid === c.fsuid) {
    if (newVfsgid === vfsgid) return true;
    if (inGroupP(c, newVfsgid)) return true;
  }
  if (capableWrtInodeUidgid(c, idmap, fs, inode, "CAP_CHOWN")) return true;
  return vfsgid === INVALID_ID && capableOverFs(c, fs, "CAP_CHOWN");
}

/** Mirrors fs/inode.c: inode_owner_or_capable. */
export function inodeOwnerOrCapable(c: FsCaller, idmap: MountIdmap, fs: FsUserns, inode: Inode): boolean {
  const vfsuid = makeVfsuid(idmap, fs, inode.uid);
  if (vfsuid !== INVALID_ID && vfsuid === c.fsuid) return true;
  return capableWrtInodeUidgid(c, idmap, fs, inode, "CAP_FOWNER");
}

/** make_kuid(caller's namespace, id) for chown arguments. */
function callerMakeKid(c: FsCaller, side: IdSide, id: number): number {
  const ns = callerUserns(c);
  return ns === "init" ? id : mapIdDown(sideMap(ns, side), id);
}

/**
 * chown through the mount (fs/open.c: chown_common → fs/attr.c:
 * notify_change → setattr_prepare), for an existing `inode`. `uid`/`gid`
 * are the caller's numbers; -1 (or 4294967295) leaves one unchanged. Order:
 * EINVAL (argument not mapped in the caller's namespace), EOVERFLOW (new id
 * does not map back through the mount; rule 53), EOVERFLOW (an unchanged id
 * is INVALID through the mount; rule 54), EPERM (chown_ok/chgrp_ok, then the
 * mode change implied by clearing set-id bits needs owner or CAP_FOWNER).
 * Non-directories lose S_ISUID, and S_ISGID when group-executable or the
 * caller is neither in the group nor CAP_FSETID.
 */
export function chownCommon(
  c: FsCaller,
  idmap: MountIdmap,
  fs: FsUserns,
  inode: Inode,
  uid: number,
  gid: number,
): FsOpResult {
  const setUid = uid !== -1 && uid !== INVALID_ID;
  const setGid = gid !== -1 && gid !== INVALID_ID;
  const kuid = setUid ? callerMakeKid(c, "uid", uid) : INVALID_ID;
  const kgid = setGid ? callerMakeKid(c, "gid", gid) : INVALID_ID;
  if (setUid && kuid === INVALID_ID) {
    return { ok: false, errno: "EINVAL", rule: "chown_common: the uid is not mapped in the caller's namespace" };
  }
  if (setGid && kgid === INVALID_ID) {
    return { ok: false, errno: "EINVAL", rule: "chown_common: the gid is not mapped in the caller's namespace" };
  }
  let killMode: number | undefined;
  if (inode.type !== "dir") {
    let mode = inode.mode;
    if (mode & S_ISUID) mode &= ~S_ISUID;
    // setattr_should_drop_sgid
    if (
      inode.mode & S_ISGID &&
      (inode.mode & S_IXGRP || !inGroupOrCapable(c, idmap, fs, inode, makeVfsgid(idmap, fs, inode.gid)))
    ) {
      mode &= ~S_ISGID;
    }
    if (mode !== inode.mode) killMode = mode;
  }
  if (setUid && !vfsidHasFsmapping(idmap, fs, "uid", kuid)) {
    return { ok: false, errno: "EOVERFLOW", rule: "notify_change: the new uid does not map back through the mount" };
  }
  if (setGid && !vfsidHasFsmapping(idmap, fs, "gid", kgid)) {
    return { ok: false, errno: "EOVERFLOW", rule: "notify_change: the new gid does not map back through the mount" };
  }
  if (!setUid && makeVfsuid(idmap, fs, inode.uid) === INVALID_ID) {
    return { ok: false, errno: "EOVERFLOW", rule: "notify_change: the file's owner is not mapped through the mount" };
  }
  if (!setGid && makeVfsgid(idmap, fs, inode.gid) === INVALID_ID) {
    return { ok: false, errno: "EOVERFLOW", rule: "notify_change: the file's group is not mapped through the mount" };
  }
  if (setUid && !chownOk(c, idmap, fs, inode, kuid)) {
    return {
      ok: false,
      errno: "EPERM",
      rule: "setattr_prepare: chown_ok (not the owner keeping the uid, no CAP_CHOWN over the file)",
    };
  }
  if (setGid && !chgrpOk(c, idmap, fs, inode, kgid)) {
    return {
      ok: false,
      errno: "EPERM",
      rule: "setattr_prepare: chgrp_ok (not the owner moving to one of its groups, no CAP_CHOWN)",
    };
  }
  if (killMode !== undefined) {
    if (!inodeOwnerOrCapable(c, idmap, fs, inode)) {
      return { ok: false, errno: "EPERM", rule: "setattr_prepare: clearing set-id bits needs the owner or CAP_FOWNER" };
    }
    // setattr_prepare/setattr_copy: S_ISGID also needs the (new) group or CAP_FSETID.
    const vfsgid = setGid ? kgid : makeVfsgid(idmap, fs, inode.gid);
    if (!inGroupOrCapable(c, idmap, fs, inode, vfsgid)) killMode &= ~S_ISGID;
  }
  return {
    ok: true,
    inode: {
      uid: setUid ? fromVfsid(idmap, fs, "uid", kuid) : inode.uid,
      gid: setGid ? fromVfsid(idmap, fs, "gid", kgid) : inode.gid,
      mode: killMode ?? inode.mode,
      type: inode.type,
    },
  };
}

/**
 * chmod through the mount (fs/open.c: chmod_common → notify_change →
 * setattr_prepare): EOVERFLOW when the owner or group is INVALID through the
 * mount (rule 54), EPERM unless owner or CAP_FOWNER; S_ISGID is dropped when
 * the caller is neither in the group nor CAP_FSETID.
 */
export function chmodCommon(c: FsCaller, idmap: MountIdmap, fs: FsUserns, inode: Inode, mode: number): FsOpResult {
  if (makeVfsuid(idmap, fs, inode.uid) === INVALID_ID || makeVfsgid(idmap, fs, inode.gid) === INVALID_ID) {
    return {
      ok: false,
      errno: "EOVERFLOW",
      rule: "notify_change: the file's owner or group is not mapped through the mount",
    };
  }
  if (!inodeOwnerOrCapable(c, idmap, fs, inode)) {
    return { ok: false, errno: "EPERM", rule: "setattr_prepare: chmod needs the owner or CAP_FOWNER" };
  }
  let m = mode & 0o7777;
  if (!inGroupOrCapable(c, idmap, fs, inode, makeVfsgid(idmap, fs, inode.gid))) m &= ~S_ISGID;
  return { ok: true, inode: { ...inode, mode: m } };
}

/**
 * utimes(path, NULL) through the mount (fs/attr.c: may_setattr, ATTR_TOUCH):
 * the owner or CAP_FOWNER may; anyone else needs write permission, which an
 * inode with an owner or group INVALID through the mount never grants
 * (EACCES, spec §8.4 worked example).
 */
export function utimesNow(c: FsCaller, idmap: MountIdmap, fs: FsUserns, inode: Inode): FsRefusal | undefined {
  if (inodeOwnerOrCapable(c, idmap, fs, inode)) return undefined;
  return inodePermission(c, idmap, fs, inode, MAY_WRITE);
}
