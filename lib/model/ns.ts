/**
 * The user namespace tree (include/linux/user_namespace.h, spec §1.4/§1.5).
 * Namespaces are immutable values; a namespace keeps its `id` across
 * versions (a written map gives a new value with the same id), and identity
 * comparisons use the id, as the kernel compares pointers.
 */
import { IdMap, type MapKind } from "./idmap.js";
import { mapIdDown, mapIdUp, munge } from "./lookup.js";
import { INVALID_ID, OVERFLOW_ID } from "./u32.js";

/** The deepest level create_user_ns allows: a parent with `level > 32` cannot have children. */
export const MAX_USERNS_LEVEL = 32;

/** A user namespace: the fields of `struct user_namespace` the id-mapping rules read. */
export interface UserNs {
  /** Identity: stays the same when the namespace gets a new map. */
  readonly id: number;
  /** The parent namespace; null for the initial one. */
  readonly parent: UserNs | null;
  /** 0 for the initial namespace, parent's level + 1 otherwise. */
  readonly level: number;
  /** The creator's euid, as a kuid. */
  readonly ownerKuid: number;
  /** The creator's egid, as a kgid. */
  readonly groupKgid: number;
  /** CAP_SETFCAP was in the creator's effective set (verify_root_map). */
  readonly parentCouldSetfcap: boolean;
  /** USERNS_SETGROUPS_ALLOWED: `/proc/PID/setgroups` reads `allow`. */
  readonly setgroupsAllowed: boolean;
  /** Installed maps: lower values are kuids/kgids/kprojids. Empty = not written. */
  readonly uidMap: IdMap;
  readonly gidMap: IdMap;
  readonly projidMap: IdMap;
}

/** The initial user namespace: identity maps, setgroups allowed, id 0. */
export const INIT_USER_NS: UserNs = Object.freeze({
  id: 0,
  parent: null,
  level: 0,
  ownerKuid: 0,
  groupKgid: 0,
  parentCouldSetfcap: true,
  setgroupsAllowed: true,
  uidMap: IdMap.IDENTITY,
  gidMap: IdMap.IDENTITY,
  projidMap: IdMap.IDENTITY,
});

/** Same namespace (the kernel compares pointers). */
export function sameNs(a: UserNs, b: UserNs): boolean {
  return a.id === b.id;
}

/** The installed map of one kind. */
export function nsMap(ns: UserNs, kind: MapKind): IdMap {
  return kind === "uid" ? ns.uidMap : kind === "gid" ? ns.gidMap : ns.projidMap;
}

/** A new version of `ns` (same id) with the map of `kind` installed. */
export function withMap(ns: UserNs, kind: MapKind, map: IdMap): UserNs {
  const key = kind === "uid" ? "uidMap" : kind === "gid" ? "gidMap" : "projidMap";
  return Object.freeze({ ...ns, [key]: map });
}

/** A new version of `ns` (same id) with the setgroups flag set. */
export function withSetgroups(ns: UserNs, allowed: boolean): UserNs {
  return Object.freeze({ ...ns, setgroupsAllowed: allowed });
}

/** Mirrors kernel/user_namespace.c: in_userns: `child` is `ancestor` or one of its descendants. */
export function inUserns(ancestor: UserNs, child: UserNs): boolean {
  let ns: UserNs | null = child;
  while (ns !== null && ns.level > ancestor.level) ns = ns.parent;
  return ns !== null && sameNs(ns, ancestor);
}

/** Mirrors make_kuid / make_kgid / make_kprojid: namespace id → kernel id, or INVALID_ID. */
export function makeKid(ns: UserNs, kind: MapKind, id: number): number {
  return mapIdDown(nsMap(ns, kind), id);
}

/** Mirrors from_kuid / from_kgid / from_kprojid: kernel id → namespace id, or INVALID_ID ((uid_t)-1). */
export function fromKid(ns: UserNs, kind: MapKind, kid: number): number {
  if (kid === INVALID_ID) return INVALID_ID;
  return mapIdUp(nsMap(ns, kind), kid);
}

/** Mirrors from_kuid_munged / from_kgid_munged / from_kprojid_munged: unmapped becomes the overflow id. */
export function fromKidMunged(ns: UserNs, kind: MapKind, kid: number, overflow: number = OVERFLOW_ID): number {
  return munge(fromKid(ns, kind, kid), overflow);
}

/** Mirrors kuid_has_mapping / kgid_has_mapping. */
export function kidHasMapping(ns: UserNs, kind: MapKind, kid: number): boolean {
  return fromKid(ns, kind, kid) !== INVALID_ID;
}

/** What create_user_ns decided: the new namespace, or the errno and the reason. */
export type CreateUserNsResult =
  | { ok: true; ns: UserNs }
  | { ok: false; errno: "ENOSPC" | "EPERM"; rule: "max_level" | "creator_unmapped"; reason: string };

/**
 * Mirrors kernel/user_namespace.c: create_user_ns (spec §5.1): the nesting
 * limit, then the creator's euid and egid must be mapped in the parent. The
 * new namespace copies the parent's setgroups flag. Ucount limits and chroot
 * are outside the model.
 */
export function createUserNs(
  creator: { ns: UserNs; euid: number; egid: number; hasSetfcap: boolean },
  newId: number,
): CreateUserNsResult {
  const parent = creator.ns;
  if (parent.level > MAX_USERNS_LEVEL) {
    return {
      ok: false,
      errno: "ENOSPC",
      rule: "max_level",
      reason: `the parent is at level ${parent.level}; at most 33 nested levels`,
    };
  }
  if (!kidHasMapping(parent, "uid", creator.euid) || !kidHasMapping(parent, "gid", creator.egid)) {
    const which = !kidHasMapping(parent, "uid", creator.euid)
      ? `euid (kuid ${creator.euid})`
      : `egid (kgid ${creator.egid})`;
    return {
      ok: false,
      errno: "EPERM",
      rule: "creator_unmapped",
      reason: `the creator's ${which} is not mapped in its namespace`,
    };
  }
  return {
    ok: true,
    ns: Object.freeze({
      id: newId,
      parent,
      level: parent.level + 1,
      ownerKuid: creator.euid,
      groupKgid: creator.egid,
      parentCouldSetfcap: creator.hasSetfcap,
      setgroupsAllowed: parent.setgroupsAllowed,
      uidMap: IdMap.EMPTY,
      gidMap: IdMap.EMPTY,
      projidMap: IdMap.EMPTY,
    }),
  };
}
