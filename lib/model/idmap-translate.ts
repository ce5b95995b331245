/**
 * Idmapped mounts, id translation (spec §8.3–8.4): how an inode's stored ids
 * are seen through a mount's idmap and back, and what stat() and statmount()
 * report. Vocabulary: see ./idmapped.ts.
 */
import type { IdMap } from "./idmap.js";
import { mapIdDown, mapIdRangeUp, mapIdUp, munge } from "./lookup.js";
import { INVALID_ID, OVERFLOW_ID } from "./u32.js";

/** A filesystem object as stored: kuid, kgid, mode bits (07777) and type. */
export interface Inode {
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
  readonly type: "file" | "dir";
}

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

/** @internal The uid or gid half of a pair of maps. */
export function sideMap(m: UidGidMaps, side: IdSide): IdMap {
  return side === "uid" ? m.uid : m.gid;
}

/** from_kuid(fs, kuid) with init_user_ns short-cut. */
/** @internal An inode id as the filesystem's own namespace sees it. */
export function fromFs(fs: FsUserns, side: IdSide, kid: number): number {
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
