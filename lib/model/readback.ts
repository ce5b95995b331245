/**
 * What /proc/PID/{uid,gid,projid}_map shows (kernel/user_namespace.c:
 * uid_m_show, gid_m_show, projid_m_show; spec §3), and id translation
 * through chains of nested namespaces (spec §1.2, §1.3).
 */
import type { IdMap, MapKind } from "./idmap.js";
import { mapIdRangeDown, mapIdRangeUp, munge } from "./lookup.js";
import { translateToParent } from "./mapwrite.js";
import { fromKid, makeKid, nsMap, sameNs, type UserNs } from "./ns.js";
import { INVALID_ID, OVERFLOW_ID } from "./u32.js";

/** One line as the kernel prints it: `%10u %10u %10u\n`. */
export function formatProcMapLine(first: number, lower: number, count: number): string {
  return `${String(first).padStart(10)} ${String(lower).padStart(10)} ${String(count).padStart(10)}\n`;
}

/**
 * The namespace the lower column is expressed in (uid_m_show): the target's
 * parent when the reader (the opener's namespace) IS the target, otherwise the
 * reader's own namespace, whatever its relation to the target.
 */
export function readbackLowerNs(target: UserNs, reader: UserNs): UserNs {
  return sameNs(reader, target) && target.parent !== null ? target.parent : reader;
}

/**
 * Mirrors uid_m_show/gid_m_show/projid_m_show over m_start's order: the exact
 * bytes a reader in namespace `reader` gets from the target's map file. Only
 * each line's first lower id is translated; an unmapped one shows 4294967295
 * (not munged). Write order up to 5 extents, sorted by first above. An
 * unwritten map reads as "".
 */
export function readProcMap(target: UserNs, kind: MapKind, reader: UserNs): string {
  const lowerNs = readbackLowerNs(target, reader);
  let out = "";
  for (const e of nsMap(target, kind).printOrder) {
    out += formatProcMapLine(e.first, fromKid(lowerNs, kind, e.lowerFirst), e.count);
  }
  return out;
}

/** Formats a map whose lower values are already in the reader's ids, in the kernel's print order. */
export function formatProcMap(map: IdMap): string {
  let out = "";
  for (const e of map.printOrder) out += formatProcMapLine(e.first, e.lowerFirst, e.count);
  return out;
}

// ------------------------------------------------------------ translation

/** An id of namespace `from` as namespace `to` sees it: from_kuid(to, make_kuid(from, id)); INVALID_ID when unmapped. */
export function translateId(from: UserNs, to: UserNs, kind: MapKind, id: number): number {
  return fromKid(to, kind, makeKid(from, kind, id));
}

/** {@link translateId} with the munged helpers' rule: unmapped becomes the overflow id (65534). */
export function translateIdMunged(
  from: UserNs,
  to: UserNs,
  kind: MapKind,
  id: number,
  overflow: number = OVERFLOW_ID,
): number {
  return munge(translateId(from, to, kind, id), overflow);
}

/**
 * Down through a chain of maps as written, outermost first (maps[0]'s lower
 * ids are initial-namespace ids): an id of the innermost namespace becomes a
 * global id, or INVALID_ID. A range must fit in one extent at every level.
 */
export function chainDown(maps: readonly IdMap[], id: number, count = 1): number {
  for (let i = maps.length - 1; i >= 0; i--) {
    id = mapIdRangeDown(maps[i]!, id, count);
    if (id === INVALID_ID) return INVALID_ID;
  }
  return id;
}

/** Up through a chain of maps as written, outermost first: a global id becomes an id of the innermost namespace, or INVALID_ID. */
export function chainUp(maps: readonly IdMap[], id: number, count = 1): number {
  for (const m of maps) {
    id = mapIdRangeUp(m, id, count);
    if (id === INVALID_ID) return INVALID_ID;
  }
  return id;
}

/** {@link chainDown} munged: unmapped becomes overflowuid/overflowgid. */
export function chainDownMunged(maps: readonly IdMap[], id: number, overflow: number = OVERFLOW_ID): number {
  return munge(chainDown(maps, id), overflow);
}

/** {@link chainUp} munged, as from_kuid_munged reports an unmapped kuid. */
export function chainUpMunged(maps: readonly IdMap[], id: number, overflow: number = OVERFLOW_ID): number {
  return munge(chainUp(maps, id), overflow);
}

/**
 * The installed maps (lower values as global ids) of a chain of written maps,
 * outermost first, as map_write installs them level by level; undefined when
 * some level's line does not fit inside one extent of its parent.
 */
export function installChain(maps: readonly IdMap[], root: IdMap): IdMap[] | undefined {
  const out: IdMap[] = [];
  let parent = root;
  for (const m of maps) {
    const t = translateToParent(m, parent);
    if (!t.ok) return undefined;
    out.push(t.installed);
    parent = t.installed;
  }
  return out;
}
