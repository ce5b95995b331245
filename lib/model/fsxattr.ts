/**
 * The two ownership-carrying xattrs (spec §9): POSIX ACLs
 * (`system.posix_acl_access`, `system.posix_acl_default`) and file
 * capabilities (`security.capability`): their byte formats, and what a
 * reader in the initial namespace gets through an idmapped mount. One parser
 * per format: lib/shift and the tests use these.
 *
 * @packageDocumentation
 */
import { type MountIdmap, makeVfsid } from "./idmapped.js";
import { INVALID_ID } from "./u32.js";

// include/uapi/linux/posix_acl_xattr.h, include/uapi/linux/posix_acl.h
/** POSIX_ACL_XATTR_VERSION. */
export const ACL_XATTR_VERSION = 2;
/** ACL entry tags. */
export const ACL_TAG = Object.freeze({
  USER_OBJ: 0x01,
  USER: 0x02,
  GROUP_OBJ: 0x04,
  GROUP: 0x08,
  MASK: 0x10,
  OTHER: 0x20,
});
/** ACL_UNDEFINED_ID: the id field of entries that have none, and what an unmapped id reads as. */
export const ACL_UNDEFINED_ID = 0xffff_ffff;

/** One ACL entry. `id` is meaningful for USER and GROUP only. */
export interface AclEntry {
  readonly tag: number;
  readonly perm: number;
  readonly id: number;
}

/** Why an xattr value is not a valid ACL or capability. */
export class XattrFormatError extends Error {}

const VALID_TAGS: ReadonlySet<number> = new Set<number>(Object.values(ACL_TAG));

/** Mirrors fs/posix_acl.c: posix_acl_from_xattr's format checks (version 2, 8-byte entries, known tags, perm ≤ 7). */
export function decodeAcl(buf: Uint8Array): AclEntry[] {
  if (buf.length < 4) throw new XattrFormatError(`ACL xattr of ${buf.length} bytes: shorter than its 4-byte header`);
  if ((buf.length - 4) % 8 !== 0) {
    throw new XattrFormatError(`ACL xattr of ${buf.length} bytes: not a 4-byte header plus 8-byte entries`);
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const version = dv.getUint32(0, true);
  if (version !== ACL_XATTR_VERSION) throw new XattrFormatError(`ACL xattr version ${version}, not 2`);
  const out: AclEntry[] = [];
  for (let p = 4; p < buf.length; p += 8) {
    const tag = dv.getUint16(p, true);
    const perm = dv.getUint16(p + 2, true);
    const id = dv.getUint32(p + 4, true);
    if (!VALID_TAGS.has(tag)) throw new XattrFormatError(`ACL entry ${(p - 4) / 8}: unknown tag 0x${tag.toString(16)}`);
    if (perm & ~7) throw new XattrFormatError(`ACL entry ${(p - 4) / 8}: permission bits 0x${perm.toString(16)}`);
    if ((tag === ACL_TAG.USER || tag === ACL_TAG.GROUP) && id === ACL_UNDEFINED_ID) {
      throw new XattrFormatError(`ACL entry ${(p - 4) / 8}: a named entry without an id`);
    }
    out.push({ tag, perm, id });
  }
  return out;
}

/** The xattr bytes of an ACL. */
export function encodeAcl(entries: readonly AclEntry[]): Uint8Array {
  const b = new Uint8Array(4 + 8 * entries.length);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, ACL_XATTR_VERSION, true);
  entries.forEach((e, i) => {
    dv.setUint16(4 + 8 * i, e.tag, true);
    dv.setUint16(6 + 8 * i, e.perm, true);
    dv.setUint32(8 + 8 * i, e.id >>> 0, true);
  });
  return b;
}

/**
 * Mirrors fs/posix_acl.c: posix_acl_to_xattr through a mount (spec §9.2 get):
 * USER ids through the uid map, GROUP ids through the gid map; an id the map
 * does not cover reads as ACL_UNDEFINED_ID. Reader in the initial namespace,
 * filesystem in the initial namespace.
 */
export function aclThroughMount(idmap: MountIdmap, entries: readonly AclEntry[]): AclEntry[] {
  return entries.map((e) => {
    if (e.tag === ACL_TAG.USER) return { ...e, id: makeVfsid(idmap, "init", "uid", e.id) };
    if (e.tag === ACL_TAG.GROUP) return { ...e, id: makeVfsid(idmap, "init", "gid", e.id) };
    return e;
  });
}

// include/uapi/linux/capability.h
/** VFS_CAP_REVISION_2 / _3 and the effective flag. */
export const VFS_CAP = Object.freeze({
  REVISION_MASK: 0xff00_0000,
  REVISION_1: 0x0100_0000,
  REVISION_2: 0x0200_0000,
  REVISION_3: 0x0300_0000,
  FLAGS_EFFECTIVE: 0x0000_0001,
  SIZE_2: 20,
  SIZE_3: 24,
});

/** A decoded `security.capability`: v2 (no root id, meaning root of the filesystem's namespace) or v3. */
export interface FileCaps {
  readonly version: 2 | 3;
  readonly effective: boolean;
  /** permitted and inheritable, low then high 32 bits each: [pLo, iLo, pHi, iHi] as stored. */
  readonly data: readonly [number, number, number, number];
  /** v3 only. */
  readonly rootid?: number;
}

/** Mirrors security/commoncap.c: validheader, is_v2header, is_v3header (v1 is refused: the kernel reads it as EINVAL). */
export function decodeCaps(buf: Uint8Array): FileCaps {
  if (buf.length < 4) throw new XattrFormatError(`capability xattr of ${buf.length} bytes`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = dv.getUint32(0, true);
  const rev = (magic & VFS_CAP.REVISION_MASK) >>> 0;
  if (magic & ~(VFS_CAP.REVISION_MASK | VFS_CAP.FLAGS_EFFECTIVE)) {
    throw new XattrFormatError(`capability xattr magic 0x${magic.toString(16)}: unknown flag bits`);
  }
  const data = (): [number, number, number, number] => [
    dv.getUint32(4, true),
    dv.getUint32(8, true),
    dv.getUint32(12, true),
    dv.getUint32(16, true),
  ];
  const effective = (magic & VFS_CAP.FLAGS_EFFECTIVE) !== 0;
  if (rev === VFS_CAP.REVISION_2 && buf.length === VFS_CAP.SIZE_2) return { version: 2, effective, data: data() };
  if (rev === VFS_CAP.REVISION_3 && buf.length === VFS_CAP.SIZE_3) {
    return { version: 3, effective, data: data(), rootid: dv.getUint32(20, true) };
  }
  throw new XattrFormatError(
    `capability xattr of ${buf.length} bytes with revision 0x${rev.toString(16)}: neither v2 (20 bytes) nor v3 (24 bytes)`,
  );
}

/** The xattr bytes of file capabilities. */
export function encodeCaps(c: FileCaps): Uint8Array {
  const v3 = c.version === 3;
  const b = new Uint8Array(v3 ? VFS_CAP.SIZE_3 : VFS_CAP.SIZE_2);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, ((v3 ? VFS_CAP.REVISION_3 : VFS_CAP.REVISION_2) | (c.effective ? 1 : 0)) >>> 0, true);
  c.data.forEach((w, i) => {
    dv.setUint32(4 + 4 * i, w >>> 0, true);
  });
  if (v3) dv.setUint32(20, (c.rootid ?? 0) >>> 0, true);
  return b;
}

/** The root id capabilities belong to: the v3 rootid, or 0 for v2 (root of the filesystem's namespace). */
export function capsRootid(c: FileCaps): number {
  return c.version === 3 ? (c.rootid ?? 0) : 0;
}

/**
 * Mirrors security/commoncap.c: cap_inode_getsecurity for a reader in the
 * initial namespace through a mount (spec §9.1 getxattr): the root id goes
 * through the mount's uid map; a nonzero result reads as v3 with that
 * rootid, 0 reads as v2, and an unmapped one is EOVERFLOW (returned as
 * `"EOVERFLOW"`).
 */
export function capsThroughMount(idmap: MountIdmap, c: FileCaps): FileCaps | "EOVERFLOW" {
  const root = makeVfsid(idmap, "init", "uid", capsRootid(c));
  if (root === INVALID_ID) return "EOVERFLOW";
  if (root !== 0) return { version: 3, effective: c.effective, data: c.data, rootid: root };
  return { version: 2, effective: c.effective, data: c.data };
}
