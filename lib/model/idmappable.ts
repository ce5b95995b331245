/**
 * Which filesystems accept idmapped mounts (FS_ALLOW_IDMAP, spec §8.5): the
 * one list, by kernel version. The model's can_idmap_mount and `userns
 * doctor` both read it.
 */

/**
 * FS_ALLOW_IDMAP by kernel version (spec §8.5). `until` is the last version
 * that had it (bcachefs left the tree after 6.17).
 */
export const IDMAP_FS_SINCE: Readonly<
  Record<string, { readonly since: [number, number]; readonly until?: [number, number]; readonly note?: string }>
> = {
  ext4: { since: [5, 12] },
  xfs: { since: [5, 12] },
  vfat: { since: [5, 12] },
  msdos: { since: [5, 12] },
  fat: { since: [5, 12] },
  btrfs: { since: [5, 15] },
  f2fs: { since: [5, 18] },
  erofs: { since: [5, 19] },
  squashfs: { since: [6, 2] },
  tmpfs: { since: [6, 3] },
  ceph: { since: [6, 7], note: "approximate version" },
  hugetlbfs: { since: [6, 9] },
  fuse: { since: [6, 12], note: "only if the FUSE server negotiates FUSE_ALLOW_IDMAP (default_permissions)" },
  virtiofs: { since: [6, 12], note: "only if the server negotiates FUSE_ALLOW_IDMAP" },
  bcachefs: { since: [6, 7], until: [6, 17] },
};

/** Filesystems the kernel never idmaps (spec §8.5). */
export const IDMAP_FS_NEVER: Readonly<Record<string, string>> = {
  overlay: "not as an idmapped mount (EINVAL); its layers can be idmapped mounts since 5.19",
  proc: "not supported",
  sysfs: "not supported",
  devpts: "not supported",
  ramfs: "not supported",
  mqueue: "not supported",
  cgroup2: "not supported",
  cgroup: "not supported",
  bpf: "not supported",
};

/**
 * Filesystem types with FS_ALLOW_IDMAP on 6.18 (spec §8.5), the kernel the model mirrors: every row of
 * {@link IDMAP_FS_SINCE} still in the tree; fuse/virtiofs depend on the daemon (SB_I_NOIDMAP).
 */
export const IDMAPPABLE_FILESYSTEMS: ReadonlySet<string> = new Set(
  Object.entries(IDMAP_FS_SINCE)
    .filter(([, row]) => row.until === undefined)
    .map(([fs]) => fs),
);
