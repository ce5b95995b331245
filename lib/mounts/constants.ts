/**
 * Constants of the new mount API (include/uapi/linux/mount.h, fcntl.h),
 * defined here because distribution headers lag the kernel. Spec §8.1 and
 * Appendix A. The values mount_setattr checks are the model's
 * (lib/model/idmapped.ts), named here as the syscalls' callers spell them.
 */
import { AT, MOUNT_ATTR as MODEL_MOUNT_ATTR, MS } from "../model/idmapped.js";

/** AT_FDCWD as the addon takes it. */
export const AT_FDCWD = -100;
/** AT_EMPTY_PATH: operate on the dfd itself. */
export const AT_EMPTY_PATH = AT.EMPTY_PATH;
/** AT_RECURSIVE: whole subtree (open_tree, mount_setattr). */
export const AT_RECURSIVE = AT.RECURSIVE;
/** AT_SYMLINK_NOFOLLOW. */
export const AT_SYMLINK_NOFOLLOW = AT.SYMLINK_NOFOLLOW;
/** OPEN_TREE_CLONE: a detached copy instead of an O_PATH fd to the attached mount. */
export const OPEN_TREE_CLONE = 1;
/** MOVE_MOUNT_F_EMPTY_PATH: the source is the fd itself. */
export const MOVE_MOUNT_F_EMPTY_PATH = 0x4;
/** umount2 flag: lazy detach. */
export const MNT_DETACH = 2;

/** MOUNT_ATTR_* (spec §8.1). */
export const MOUNT_ATTR = MODEL_MOUNT_ATTR;

/** Propagation types for `struct mount_attr.propagation` (MS_* values). */
export const PROPAGATION = Object.freeze({
  unbindable: MS.UNBINDABLE,
  private: MS.PRIVATE,
  slave: MS.SLAVE,
  shared: MS.SHARED,
});

/** A propagation type name. */
export type Propagation = keyof typeof PROPAGATION;

/** STATMOUNT_* request bits (6.8+; the idmap bits 6.15+). */
export const STATMOUNT = {
  SB_BASIC: 0x1n,
  MNT_BASIC: 0x2n,
  MNT_ROOT: 0x8n,
  MNT_POINT: 0x10n,
  FS_TYPE: 0x20n,
  MNT_UIDMAP: 0x2000n,
  MNT_GIDMAP: 0x4000n,
} as const;

/** statfs f_type magic numbers of filesystems the probe names (include/uapi/linux/magic.h). */
export const FS_MAGIC: Readonly<Record<number, string>> = {
  16914836: "tmpfs",
  2240043254: "ramfs",
  40864: "proc",
  1650812274: "sysfs",
  7377: "devpts",
  2035054128: "overlay",
  1667723888: "cgroup2",
  2613483: "cgroup",
  427819522: "mqueue",
  3405662737: "bpf",
  61267: "ext4",
  1481003842: "xfs",
  2435016766: "btrfs",
  3774210530: "erofs",
  1936814952: "squashfs",
  2508478710: "hugetlbfs",
  1702057286: "fuse",
  19780: "vfat",
  1853056627: "nsfs",
  1684170528: "debugfs",
  1935894131: "securityfs",
  4076150800: "f2fs",
};
