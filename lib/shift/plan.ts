/**
 * From a scanned tree and a mount-direction map to the exact targets of a
 * shift. Every id goes through the model's idmapped-mount translation
 * (lib/model/idmapped.ts `makeVfsid`, lib/model/fsxattr.ts for ACL entries
 * and capability root ids), so a shifted tree holds on disk what an
 * idmapped mount with the same map shows: that is the construction the
 * differential test then checks against the kernel.
 *
 * @packageDocumentation
 */
import { APPLY_OP, type ApplyPlan, type InodeXattrs, SCAN_FLAG, type ScanResult } from "../kernel/shift.js";
import {
  ACL_TAG,
  type AclEntry,
  aclThroughMount,
  capsRootid,
  decodeAcl,
  decodeCaps,
  encodeAcl,
  encodeCaps,
  type FileCaps,
  XattrFormatError,
} from "../model/fsxattr.js";
import { makeVfsid, type UidGidMaps } from "../model/idmapped.js";
import { INVALID_ID } from "../model/u32.js";

/** Where an id occurs. */
export type IdUse = "owner" | "group" | "acl-user" | "acl-group" | "cap-rootid";

/** An id the map does not cover, with how often and where it occurs. */
export interface UncoveredId {
  readonly use: IdUse;
  readonly id: number;
  /** Inodes it occurs on. */
  readonly count: number;
  /** Up to five paths (relative to the root; "." is the root). */
  readonly paths: readonly string[];
}

/** An ACL or capability xattr that is not in the kernel's format. */
export interface MalformedXattr {
  readonly path: string;
  readonly name: string;
  readonly reason: string;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/** The path of record `i`, relative to the root ("." for the root). */
export function recordPath(scan: Pick<ScanResult, "parent" | "nameOff" | "names">, i: number): string {
  const parts: string[] = [];
  for (let j = i; scan.parent[j] !== 0xffffffff; j = scan.parent[j]!) {
    parts.push(scan.names.toString("utf8", scan.nameOff[j], scan.nameOff[j + 1]));
  }
  return parts.length === 0 ? "." : parts.reverse().join("/");
}

/** The before (as scanned) and after (shifted) state of every inode, and what to write to get from one to the other. */
export interface ShiftPlan {
  /** Target owner and group per record. */
  readonly uid: Uint32Array;
  readonly gid: Uint32Array;
  /** Operations per record (APPLY_OP bits); the same for both directions. */
  readonly ops: Uint8Array;
  /** Shifted xattr values, for records that have any. */
  readonly after: InodeXattrs[];
  /** Xattr values as scanned, for the same records. */
  readonly before: InodeXattrs[];
  /** Ids the map does not cover (empty when `force` replaced them, see `forced`). */
  readonly uncovered: UncoveredId[];
  /** How many id occurrences `force` replaced. */
  readonly forced: number;
  readonly malformed: MalformedXattr[];
  /** Counts for the report. */
  readonly changedOwners: number;
  readonly acls: number;
  readonly caps: number;
}

/**
 * Computes the shift of `scan` by `maps` (mount direction: on-disk id → new
 * id, as for an idmapped mount). `force`: the id that replaces ids the map
 * does not cover; without it they are listed in `uncovered`.
 */
export function planShift(scan: ScanResult, maps: UidGidMaps, force?: number): ShiftPlan {
  const n = scan.count;
  const uid = new Uint32Array(n);
  const gid = new Uint32Array(n);
  const ops = new Uint8Array(n);
  const uncovered = new Map<string, { use: IdUse; id: number; count: number; paths: string[] }>();
  let forced = 0;
  const note = (use: IdUse, id: number, i: number) => {
    if (force !== undefined) {
      forced++;
      return;
    }
    const k = `${use}:${id}`;
    let u = uncovered.get(k);
    if (!u) {
      u = { use, id, count: 0, paths: [] };
      uncovered.set(k, u);
    }
    u.count++;
    if (u.paths.length < 5) u.paths.push(recordPath(scan, i));
  };
  const cache = { uid: new Map<number, number>(), gid: new Map<number, number>() };
  const tr = (side: "uid" | "gid", id: number): number => {
    const c = cache[side];
    let v = c.get(id);
    if (v === undefined) {
      v = makeVfsid(maps, "init", side, id);
      c.set(id, v);
    }
    return v;
  };
  let changedOwners = 0;
  for (let i = 0; i < n; i++) {
    let u = tr("uid", scan.uid[i]!);
    let g = tr("gid", scan.gid[i]!);
    if (u === INVALID_ID) {
      note("owner", scan.uid[i]!, i);
      u = force ?? scan.uid[i]!;
    }
    if (g === INVALID_ID) {
      note("group", scan.gid[i]!, i);
      g = force ?? scan.gid[i]!;
    }
    uid[i] = u;
    gid[i] = g;
    if (u !== scan.uid[i] || g !== scan.gid[i]) {
      changedOwners++;
      const type = scan.mode[i]! & S_IFMT;
      ops[i] = APPLY_OP.CHOWN;
      // chown clears S_ISUID (and S_ISGID) of non-directories: set the mode back.
      if (type !== S_IFDIR && type !== S_IFLNK && scan.mode[i]! & 0o6000) ops[i]! |= APPLY_OP.CHMOD;
    }
  }

  const malformed: MalformedXattr[] = [];
  for (const b of scan.badXattrs) {
    malformed.push({
      path: recordPath(scan, b.index),
      name: b.name,
      reason: `the kernel refuses to read it (errno ${b.errno}): not a valid value on disk`,
    });
  }
  const after: InodeXattrs[] = [];
  const before: InodeXattrs[] = [];
  let acls = 0;
  let caps = 0;
  const shiftAcl = (buf: Buffer, i: number, name: string): Buffer | undefined => {
    let entries: AclEntry[];
    try {
      entries = decodeAcl(buf);
    } catch (e) {
      if (!(e instanceof XattrFormatError)) throw e;
      malformed.push({ path: recordPath(scan, i), name, reason: e.message });
      return undefined;
    }
    const shifted = aclThroughMount(maps, entries).map((e, k) => {
      if (e.id !== INVALID_ID || (e.tag !== ACL_TAG.USER && e.tag !== ACL_TAG.GROUP)) return e;
      note(e.tag === ACL_TAG.USER ? "acl-user" : "acl-group", entries[k]!.id, i);
      return { ...e, id: force ?? entries[k]!.id };
    });
    return Buffer.from(encodeAcl(shifted));
  };
  for (const x of scan.xattrs) {
    const i = x.index;
    const a: InodeXattrs = { index: i };
    let op = 0;
    if (x.acl && scan.flags[i]! & SCAN_FLAG.ACL_ACCESS) {
      const s = shiftAcl(x.acl, i, "system.posix_acl_access");
      if (s) {
        a.acl = s;
        if (!s.equals(x.acl)) op |= APPLY_OP.ACL_ACCESS;
        acls++;
      }
    }
    if (x.dacl && scan.flags[i]! & SCAN_FLAG.ACL_DEFAULT) {
      const s = shiftAcl(x.dacl, i, "system.posix_acl_default");
      if (s) {
        a.dacl = s;
        if (!s.equals(x.dacl)) op |= APPLY_OP.ACL_DEFAULT;
        acls++;
      }
    }
    if (x.cap && scan.flags[i]! & SCAN_FLAG.CAP) {
      let c: FileCaps | undefined;
      try {
        c = decodeCaps(x.cap);
      } catch (e) {
        if (!(e instanceof XattrFormatError)) throw e;
        malformed.push({ path: recordPath(scan, i), name: "security.capability", reason: e.message });
      }
      if (c) {
        // What cap_inode_getsecurity shows through the mount: v3 with the mapped root id, v2 when it maps to 0.
        const root = tr("uid", capsRootid(c));
        let shifted: FileCaps;
        if (root === INVALID_ID) {
          note("cap-rootid", capsRootid(c), i);
          const r = force ?? capsRootid(c);
          shifted = r === 0 ? { version: 2, effective: c.effective, data: c.data } : { ...c, version: 3, rootid: r };
        } else {
          shifted =
            root === 0
              ? { version: 2, effective: c.effective, data: c.data }
              : { version: 3, effective: c.effective, data: c.data, rootid: root };
        }
        a.cap = Buffer.from(encodeCaps(shifted));
        // chown drops security.capability (cap_inode_killpriv): write it back after every chown.
        if (ops[i]! & APPLY_OP.CHOWN || !a.cap.equals(x.cap)) op |= APPLY_OP.CAP;
        caps++;
      }
    }
    if (op) {
      ops[i]! |= op;
      after.push(a);
      const bx: InodeXattrs = { index: i };
      if (op & APPLY_OP.ACL_ACCESS && x.acl) bx.acl = x.acl;
      if (op & APPLY_OP.ACL_DEFAULT && x.dacl) bx.dacl = x.dacl;
      if (op & APPLY_OP.CAP && x.cap) bx.cap = x.cap;
      before.push(bx);
    }
  }
  return {
    uid,
    gid,
    ops,
    after,
    before,
    uncovered: [...uncovered.values()],
    forced,
    malformed,
    changedOwners,
    acls,
    caps,
  };
}

/** The apply plan that gets the tree to the shifted state (`"after"`) or back to the scanned one (`"before"`). */
export function applyPlan(
  scan: ScanResult,
  plan: ShiftPlan,
  to: "after" | "before",
  opts: { crossMounts: boolean; verify: boolean },
): ApplyPlan {
  let ops = plan.ops;
  if (opts.verify) {
    ops = new Uint8Array(plan.ops);
    for (let i = 0; i < ops.length; i++) if (ops[i]) ops[i]! |= APPLY_OP.VERIFY;
  }
  return {
    parent: scan.parent,
    nameOff: scan.nameOff,
    names: scan.names,
    uid: to === "after" ? plan.uid : scan.uid,
    gid: to === "after" ? plan.gid : scan.gid,
    mode: scan.mode,
    ino: scan.ino,
    ops,
    xattrs: to === "after" ? plan.after : plan.before,
    crossMounts: opts.crossMounts,
  };
}
