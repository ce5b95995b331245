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
 *
 * The rules live in three files along their seams: ./idmap-translate.ts (ids
 * through a mount, stat and statmount), ./idmap-vfs.ts (permission, create,
 * chown, chmod) and ./mount-setattr.ts (mount_setattr's checks). This module
 * is their one entry.
 */
export {
  type FsUserns,
  fromVfsgid,
  fromVfsid,
  fromVfsuid,
  type IdSide,
  type Inode,
  type MountIdmap,
  makeVfsgid,
  makeVfsid,
  makeVfsuid,
  statmountMntIdmap,
  statThroughMount,
  type UidGidMaps,
  vfsidHasFsmapping,
} from "./idmap-translate.js";
export * from "./idmap-vfs.js";
export * from "./mount-setattr.js";
