/**
 * Typed view of the addon's ownership-shift and xattr functions
 * (native/shift.cc). Kept apart from native.ts so the shift feature adds
 * its bindings without touching the shared interface.
 *
 * @packageDocumentation
 */
import { native } from "./native.js";

/** Per-record scan flags (native/shift.cc kHas*). */
export const SCAN_FLAG = Object.freeze({ ACL_ACCESS: 1, ACL_DEFAULT: 2, CAP: 4, IMMUTABLE: 8 });
/** Per-record apply operations (native/shift.cc kOp*). */
export const APPLY_OP = Object.freeze({ CHOWN: 1, CHMOD: 2, ACL_ACCESS: 4, ACL_DEFAULT: 8, CAP: 16, VERIFY: 32 });

/** The three ownership-carrying xattrs of one inode, as read or to write. */
export interface InodeXattrs {
  index: number;
  acl?: Buffer;
  dacl?: Buffer;
  cap?: Buffer;
}

/** A tree as columns, one record per inode (hard links once), breadth-first, children of a directory together. */
export interface ScanResult {
  count: number;
  /** Record index of the parent directory; 0xffffffff for the root. */
  parent: Uint32Array;
  /** Offsets of each name in `names` (count + 1 entries). */
  nameOff: Uint32Array;
  names: Buffer;
  uid: Uint32Array;
  gid: Uint32Array;
  /** st_mode, type bits included. */
  mode: Uint32Array;
  nlink: Uint32Array;
  flags: Uint8Array;
  ino: BigUint64Array;
  dev: BigUint64Array;
  xattrs: InodeXattrs[];
  /** Xattrs the kernel refused to read (EINVAL: malformed on disk). */
  badXattrs: { index: number; name: string; errno: number }[];
  /** Mount points below the root that were not entered (relative paths). */
  skippedMounts: string[];
}

/** What {@link ShiftBinding.shiftApply} writes: targets per record. */
export interface ApplyPlan {
  parent: Uint32Array;
  nameOff: Uint32Array;
  names: Buffer;
  uid: Uint32Array;
  gid: Uint32Array;
  mode: Uint32Array;
  ino: BigUint64Array;
  ops: Uint8Array;
  xattrs: InodeXattrs[];
  crossMounts: boolean;
}

/** The addon's shift functions. Every one throws a UsernsError with `path` (and `index` for a record). */
export interface ShiftBinding {
  /** Walks the tree; `xattrs: false` skips the ownership xattrs (one listxattr per inode less). */
  shiftScan(
    root: string,
    opts: { crossMounts: boolean; exclude: string[]; threads?: number; xattrs?: boolean },
  ): ScanResult;
  /** Applies records [start, end) with `threads` workers (split at directory boundaries). */
  shiftApply(root: string, plan: ApplyPlan, start?: number, end?: number, threads?: number): number;
  xattrGet(path: string, name: string): Buffer | null;
  xattrSet(path: string, name: string, value: Buffer): void;
  xattrRemove(path: string, name: string): boolean;
  syncFs(path: string): void;
}

/** The loaded addon's shift functions. */
export function shiftNative(): ShiftBinding {
  return native() as unknown as ShiftBinding;
}
