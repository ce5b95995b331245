/**
 * SIMULATION: never merged into Linux. Christian Brauner's "user_namespace:
 * introduce fsid mappings" (v1–v3, Feb 2020; kernel-semantics §10.1),
 * superseded by idmapped mounts in 5.12. Nothing here describes a running
 * kernel; every returned object carries `simulation: true`.
 *
 * Design as posted: each namespace has, besides uid_map/gid_map, an
 * fsuid_map/fsgid_map (same syntax and checks as map_write). Filesystem
 * accesses use the fsid maps: the fs kuid of a task is `make_kfsuid(ns,
 * fsuid)`, stat shows `from_kfsuid`. An fsid map is writable only BEFORE the
 * matching id map; writing the id map first makes the fsid map mirror it
 * (extents copied, lower ids translated through the parent's fsid map). The
 * initial namespace's fsid maps are the identity.
 */
import { type Extent, extent } from "../extent.js";
import { IdMap } from "../idmap.js";
import { mapIdDown, mapIdRangeDown, mapIdUp, munge } from "../lookup.js";
import { INVALID_ID } from "../u32.js";

/** Which side: uid or gid. */
export type SimFsidSide = "uid" | "gid";

/** SIMULATION: a user namespace under the fsid-mappings patch. Maps hold installed (global) lower ids. */
export interface SimFsidNs {
  readonly simulation: true;
  readonly name: string;
  readonly parent: SimFsidNs | null;
  readonly uidMap: IdMap;
  readonly gidMap: IdMap;
  readonly fsuidMap: IdMap;
  readonly fsgidMap: IdMap;
}

/** SIMULATION: the initial namespace: identity id maps and identity fsid maps. */
export const SIM_FSID_INIT: SimFsidNs = Object.freeze({
  simulation: true as const,
  name: "init",
  parent: null,
  uidMap: IdMap.IDENTITY,
  gidMap: IdMap.IDENTITY,
  fsuidMap: IdMap.IDENTITY,
  fsgidMap: IdMap.IDENTITY,
});

/** SIMULATION: a new child namespace with no maps written. */
export function simFsidNewNs(parent: SimFsidNs, name: string): SimFsidNs {
  return Object.freeze({
    simulation: true as const,
    name,
    parent,
    uidMap: IdMap.EMPTY,
    gidMap: IdMap.EMPTY,
    fsuidMap: IdMap.EMPTY,
    fsgidMap: IdMap.EMPTY,
  });
}

/** SIMULATION: outcome of a map write. */
export type SimFsidWriteResult =
  | { readonly simulation: true; readonly ok: true; readonly ns: SimFsidNs }
  | { readonly simulation: true; readonly ok: false; readonly errno: "EPERM"; readonly reason: string };

const idKey = (s: SimFsidSide) => (s === "uid" ? "uidMap" : "gidMap") as "uidMap" | "gidMap";
const fsKey = (s: SimFsidSide) => (s === "uid" ? "fsuidMap" : "fsgidMap") as "fsuidMap" | "fsgidMap";

/** Translates written lower ids through a parent map (each extent must fit one parent extent, as map_write requires). */
function install(written: IdMap, parentMap: IdMap): IdMap | undefined {
  const out: Extent[] = [];
  for (const e of written.extents) {
    const k = mapIdRangeDown(parentMap, e.lowerFirst, e.count);
    if (k === INVALID_ID) return undefined;
    out.push(extent(e.first, k, e.count));
  }
  return IdMap.from(out);
}

function refuse(reason: string): SimFsidWriteResult {
  return { simulation: true, ok: false, errno: "EPERM", reason };
}

/**
 * SIMULATION: writes uid_map/gid_map (`written` holds parent-namespace lower
 * ids). When the matching fsid map is still empty it MIRRORS the id map: the
 * same lines, lower ids translated through the parent's fsid map.
 * Parsing/privilege checks are those of the real map_write and are not
 * repeated here.
 */
export function simWriteIdMap(ns: SimFsidNs, side: SimFsidSide, written: IdMap): SimFsidWriteResult {
  if (!ns.parent) return refuse("the initial namespace's maps cannot be written");
  if (!ns[idKey(side)].isEmpty) return refuse(`${side}_map is already written`);
  const installed = install(written, ns.parent[idKey(side)]);
  if (!installed) return refuse(`a lower range of ${side}_map is not inside one parent extent`);
  let next: SimFsidNs = { ...ns, [idKey(side)]: installed };
  if (ns[fsKey(side)].isEmpty) {
    const mirrored = install(written, ns.parent[fsKey(side)]);
    if (!mirrored)
      return refuse(
        `mirroring ${side}_map into fs${side}_map: a lower range is not inside one parent fs${side}_map extent`,
      );
    next = { ...next, [fsKey(side)]: mirrored };
  }
  return { simulation: true, ok: true, ns: Object.freeze(next) };
}

/**
 * SIMULATION: writes fsuid_map/fsgid_map. Refused (EPERM, from the patch's
 * new_idmap_permitted) once the matching id map is written (it then already
 * mirrors it), or when it was written before. Lower ids are parent-namespace
 * ids translated through the parent's FSID map.
 */
export function simWriteFsidMap(ns: SimFsidNs, side: SimFsidSide, written: IdMap): SimFsidWriteResult {
  if (!ns.parent) return refuse("the initial namespace's maps cannot be written");
  if (!ns[idKey(side)].isEmpty) return refuse(`fs${side}_map can only be written before ${side}_map`);
  if (!ns[fsKey(side)].isEmpty) return refuse(`fs${side}_map is already written`);
  const installed = install(written, ns.parent[fsKey(side)]);
  if (!installed) return refuse(`a lower range of fs${side}_map is not inside one parent fs${side}_map extent`);
  return { simulation: true, ok: true, ns: Object.freeze({ ...ns, [fsKey(side)]: installed }) };
}

/** SIMULATION: make_kfsuid/make_kfsgid — a task's fs id → the global id the filesystem stores. INVALID_ID if unmapped. */
export function simMakeKfsid(ns: SimFsidNs, side: SimFsidSide, id: number): number {
  return mapIdDown(ns[fsKey(side)], id);
}

/** SIMULATION: from_kfsuid_munged — what stat() shows in `ns` for a stored global id (65534 if unmapped). */
export function simFromKfsidMunged(ns: SimFsidNs, side: SimFsidSide, kid: number): number {
  return munge(mapIdUp(ns[fsKey(side)], kid));
}

/** SIMULATION: owner stored on disk when a task with fsuid/fsgid in `ns` creates a file. */
export function simCreateOwner(
  ns: SimFsidNs,
  fsuid: number,
  fsgid: number,
): { simulation: true; ok: true; uid: number; gid: number } | { simulation: true; ok: false; errno: "EOVERFLOW" } {
  const uid = simMakeKfsid(ns, "uid", fsuid);
  const gid = simMakeKfsid(ns, "gid", fsgid);
  if (uid === INVALID_ID || gid === INVALID_ID) return { simulation: true, ok: false, errno: "EOVERFLOW" };
  return { simulation: true, ok: true, uid, gid };
}
