/**
 * Namespace files under /proc/PID/ns and the nsfs ioctls (ioctl_ns(2)).
 */
import { native } from "./native.js";

/** Namespace types, named as in /proc/PID/ns. */
export type NamespaceType = "user" | "mnt" | "pid" | "uts" | "ipc" | "net" | "cgroup" | "time";

/** CLONE_NEW* value for each namespace type (what NS_GET_NSTYPE returns). */
export const CLONE_NEW: Readonly<Record<NamespaceType, number>> = {
  user: 0x10000000,
  mnt: 0x00020000,
  pid: 0x20000000,
  uts: 0x04000000,
  ipc: 0x08000000,
  net: 0x40000000,
  cgroup: 0x02000000,
  time: 0x00000080,
};

/** A namespace's identity, safe to compare only while an fd to it is held (inodes are reused). */
export interface NamespaceIdentity {
  /** nsfs device number. */
  readonly dev: bigint;
  /** nsfs inode number; also shown by readlink as `user:[INO]`. */
  readonly ino: bigint;
}

/** What nsfs reports about a namespace. */
export interface NamespaceInfo extends NamespaceIdentity {
  /** The namespace type, from NS_GET_NSTYPE. */
  readonly type: NamespaceType;
  /** NS_GET_ID: a 64-bit id never reused (Linux 6.18+), or undefined where the kernel lacks it. */
  readonly id: bigint | undefined;
  /** For user namespaces: NS_GET_OWNER_UID, as seen from the caller's namespace (65534 if unmapped). */
  readonly ownerUid: number | undefined;
}

/** The /proc path of a process's namespace file. */
export function nsPath(pid: number | "self", type: NamespaceType = "user"): string {
  return `/proc/${pid}/ns/${type}`;
}

function typeFromClone(value: number): NamespaceType {
  for (const [name, flag] of Object.entries(CLONE_NEW) as [NamespaceType, number][]) {
    if (flag === value) return name;
  }
  throw new RangeError(`unknown namespace type 0x${value.toString(16)}`);
}

/** Reads identity, type, id and owner from an open nsfs fd. */
export function nsInfoFromFd(fd: number): NamespaceInfo {
  const b = native();
  const { dev, ino } = b.nsIdentity(fd);
  const type = typeFromClone(b.nsGetNstype(fd));
  let id: bigint | undefined;
  try {
    id = b.nsGetId(fd);
  } catch (e) {
    // Kernels before 6.18 lack NS_GET_ID and answer ENOTTY; anything else is real.
    if ((e as { code?: string }).code !== "ENOTTY") throw e;
  }
  const ownerUid = type === "user" ? b.nsGetOwnerUid(fd) : undefined;
  return { dev, ino, type, id, ownerUid };
}

/**
 * Identity and facts of a namespace given by pid (and type) or by path.
 *
 * @example
 * ```ts
 * nsInfo("self").ino // 4026531837 in the initial user namespace
 * ```
 */
export function nsInfo(target: number | "self" | { path: string }, type: NamespaceType = "user"): NamespaceInfo {
  const path = typeof target === "object" ? target.path : nsPath(target, type);
  const b = native();
  const fd = b.openNs(path);
  try {
    return nsInfoFromFd(fd);
  } finally {
    b.close(fd);
  }
}

/** The inode number of the initial user namespace (fixed by the kernel: PROC_USER_INIT_INO). */
export const INIT_USER_NS_INO = 4026531837n;
