/**
 * Idmapped mounts (spec §8): how ownership is translated through a mount's
 * idmap, what create/chown/chmod through such a mount store or refuse, what
 * statmount() reports, and the order of mount_setattr's checks.
 *
 * Vocabulary (spec §8.3–8.4, 6.8+ design where the mount keeps a COPY of the
 * attached namespace's maps):
 * - kuid/kgid: kernel-global ids, what inodes store (the on-disk id of a
 *   filesystem mounted in the initial namespace).
 * - fs userns: the filesystem's `sb->s_user_ns`; `"init"` for host mounts.
 * - mount idmap: the attached namespace's uid_map/gid_map as installed
 *   (`first` = filesystem-side id, `lowerFirst` = kuid); `"nop"` for a mount
 *   without idmap, `"invalid"` for invalid_mnt_idmap.
 * - vfsuid/vfsgid: the id an inode has as seen through the mount, a kuid;
 *   {@link INVALID_ID} when it has none.
 */
import type { IdMap } from "./idmap.js";
import { IDMAPPABLE_FILESYSTEMS } from "./idmappable.js";
import { mapIdDown, mapIdRangeUp, mapIdUp, munge } from "./lookup.js";
import { INVALID_ID, OVERFLOW_ID } from "./u32.js";

/** A uid map and a gid map (installed: lower values are kuids/kgids). */
export interface UidGidMaps {
  readonly uid: IdMap;
  readonly gid: IdMap;
}

/** `sb->s_user_ns`: the initial namespace, or a namespace given by its installed maps. */
export type FsUserns = "init" | UidGidMaps;

/** A mount's idmap: none (`nop_mnt_idmap`), `invalid_mnt_idmap`, or the copied maps. */
export type MountIdmap = "nop" | "invalid" | UidGidMaps;

/** uid or gid side. */
export type IdSide = "uid" | "gid";

function sideMap(m: UidGidMaps, side: IdSide): IdMap {
  return side === "uid" ? m.uid : m.gid;
}

/** from_kuid(fs, kuid) with init_user_ns short-cut. */
function fromFs(fs: FsUserns, side: IdSide, kid: number): number {
  return fs === "init" ? (kid === INVALID_ID ? INVALID_ID : kid) : mapIdUp(sideMap(fs, side), kid);
}

/** make_kuid(fs, id) with init_user_ns short-cut. */
function makeInFs(fs: FsUserns, side: IdSide, id: number): number {
  return fs === "init" ? id : mapIdDown(sideMap(fs, side), id);
}

/** Mirrors fs/mnt_idmapping.c: make_vfsuid/make_vfsgid (spec §8.4 read side): inode kuid → id seen through the mount. */
export function makeVfsid(idmap: MountIdmap, fs: FsUserns, side: IdSide, kid: number): number {
  if (idmap === "nop") return kid;
  if (idmap === "invalid") return INVALID_ID;
  const raw = fromFs(fs, side, kid);
  if (raw === INVALID_ID) return INVALID_ID;
  return mapIdDown(sideMap(idmap, side), raw);
}

/** Mirrors fs/mnt_idmapping.c: make_vfsuid. */
export function makeVfsuid(idmap: MountIdmap, fs: FsUserns, kuid: number): number {
  return makeVfsid(idmap, fs, "uid", kuid);
}

/** Mirrors fs/mnt_idmapping.c: make_vfsgid. */
export function makeVfsgid(idmap: MountIdmap, fs: FsUserns, kgid: number): number {
  return makeVfsid(idmap, fs, "gid", kgid);
}

/** Mirrors fs/mnt_idmapping.c: from_vfsuid/from_vfsgid (spec §8.4 write side): id through the mount → kuid to store. */
export function fromVfsid(idmap: MountIdmap, fs: FsUserns, side: IdSide, vfsid: number): number {
  if (idmap === "nop") return vfsid;
  if (idmap === "invalid") return INVALID_ID;
  const raw = mapIdUp(sideMap(idmap, side), vfsid);
  if (raw === INVALID_ID) return INVALID_ID;
  return makeInFs(fs, side, raw);
}

/** Mirrors fs/mnt_idmapping.c: from_vfsuid. */
export function fromVfsuid(idmap: MountIdmap, fs: FsUserns, vfsuid: number): number {
  return fromVfsid(idmap, fs, "uid", vfsuid);
}

/** Mirrors fs/mnt_idmapping.c: from_vfsgid. */
export function fromVfsgid(idmap: MountIdmap, fs: FsUserns, vfsgid: number): number {
  return fromVfsid(idmap, fs, "gid", vfsgid);
}

/** Mirrors include/linux/mnt_idmapping.h: vfsuid_has_fsmapping — the id can be stored in the filesystem. */
export function vfsidHasFsmapping(idmap: MountIdmap, fs: FsUserns, side: IdSide, vfsid: number): boolean {
  return fromVfsid(idmap, fs, side, vfsid) !== INVALID_ID;
}

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

/** A filesystem object as stored: kuid, kgid, mode bits (07777) and type. */
export interface Inode {
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
  readonly type: "file" | "dir";
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
 * What stat() shows through the mount for a stored inode, to a caller in
 * `callerNs` (spec §8.4, rule 55): `from_kuid_munged(caller, vfsuid)`, so
 * 65534 (overflowuid) when unmapped anywhere on the way.
 */
export function statThroughMount(
  idmap: MountIdmap,
  fs: FsUserns,
  inode: Pick<Inode, "uid" | "gid">,
  callerNs: "init" | UidGidMaps = "init",
  overflow: { uid: number; gid: number } = { uid: OVERFLOW_ID, gid: OVERFLOW_ID },
): { uid: number; gid: number } {
  const show = (side: IdSide, vfsid: number, ov: number) =>
    munge(
      callerNs === "init" ? (vfsid === INVALID_ID ? INVALID_ID : vfsid) : mapIdUp(sideMap(callerNs, side), vfsid),
      ov,
    );
  return {
    uid: show("uid", makeVfsuid(idmap, fs, inode.uid), overflow.uid),
    gid: show("gid", makeVfsgid(idmap, fs, inode.gid), overflow.gid),
  };
}

/**
 * Mirrors fs/mnt_idmapping.c: statmount_mnt_idmap (spec §8.7): the mount's
 * map as `"first lower count"` strings, lower ids relative to the caller's
 * namespace; an extent whose whole lower range the caller cannot map is
 * skipped. Order: written order up to 5 extents, sorted by `first` above.
 * `[]` for a mount without idmap; the STATMOUNT mask bit is set anyway for an
 * idmapped mount, which the caller tells apart by `idmapped`.
 */
export function statmountMntIdmap(
  idmap: MountIdmap,
  side: IdSide,
  callerNs: "init" | UidGidMaps = "init",
): { idmapped: boolean; mappings: string[] } {
  if (idmap === "nop" || idmap === "invalid") return { idmapped: false, mappings: [] };
  const map = sideMap(idmap, side);
  const out: string[] = [];
  for (const e of map.printOrder) {
    const lower =
      callerNs === "init"
        ? e.lowerFirst + e.count - 1 < INVALID_ID
          ? e.lowerFirst
          : INVALID_ID
        : mapIdRangeUp(sideMap(callerNs, side), e.lowerFirst, e.count);
    if (lower === INVALID_ID) continue;
    out.push(`${e.first} ${lower} ${e.count}`);
  }
  return { idmapped: true, mappings: out };
}

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
 * utimes(path, NULL) through the mount (fs/attr.c: may_setattr, ATTR_TOUCH):
 * the owner or CAP_FOWNER may; anyone else needs write permission, which an
 * inode with an owner or group INVALID through the mount never grants
 * (EACCES, spec §8.4 worked example).
 */
export function utimesNow(c: FsCaller, idmap: MountIdmap, fs: FsUserns, inode: Inode): FsRefusal | undefined {
  if (inodeOwnerOrCapable(c, idmap, fs, inode)) return undefined;
  return inodePermission(c, idmap, fs, inode, MAY_WRITE);
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
