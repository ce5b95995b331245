/**
 * The lease record, alone in its file: the claims view reads leases and the allocator writes them, and
 * neither should import the other for the type.
 */

/** A recorded allocation. */
export interface Lease {
  /** The lease id `alloc` prints and `release` takes. */
  readonly id: string;
  readonly purpose: string;
  readonly uid: { readonly start: number; readonly count: number };
  readonly gid: { readonly start: number; readonly count: number };
  /** "range": lowest free range; "kubelet": the kubelet's slot scheme. */
  readonly mode: "range" | "kubelet";
  readonly createdAt: string;
  /** The euid that allocated it. */
  readonly creatorUid: number;
  /** The user namespace it is tied to, by nsfs inode and NS_GET_ID; released once that namespace is gone. */
  readonly namespace?: { readonly ino: bigint; readonly id: bigint | undefined };
  /** When it was tied (ms since the epoch): only an inventory begun later may reclaim it. */
  readonly tiedAt?: number;
}
