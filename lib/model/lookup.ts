/**
 * Id translation through one map, as kernel/user_namespace.c does it:
 * a linear scan up to 5 extents, a binary search over the sorted arrays
 * above. A range translates only when ONE extent covers all of it.
 */
import type { Extent } from "./extent.js";
import { type IdMap, MAX_BASE_EXTENTS } from "./idmap.js";
import { INVALID_ID, OVERFLOW_ID } from "./u32.js";

/** Mirrors kernel/user_namespace.c: map_id_range_down_base (linear scan of the written extents). */
function findUpperBase(extents: readonly Extent[], id: number, count: number): Extent | undefined {
  const last = id + count - 1;
  for (const e of extents) {
    if (id >= e.first && last <= e.first + e.count - 1) return e;
  }
  return undefined;
}

/** Mirrors map_id_range_down_max: binary search over `forward` with cmp_map_id. */
function findUpperMax(sorted: readonly Extent[], id: number, count: number): Extent | undefined {
  const last = id + count - 1;
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const e = sorted[mid]!;
    if (id < e.first) hi = mid - 1;
    else if (id > e.first + e.count - 1) lo = mid + 1;
    else return last <= e.first + e.count - 1 ? e : undefined;
  }
  return undefined;
}

function findLowerBase(extents: readonly Extent[], id: number, count: number): Extent | undefined {
  const last = id + count - 1;
  for (const e of extents) {
    if (id >= e.lowerFirst && last <= e.lowerFirst + e.count - 1) return e;
  }
  return undefined;
}

function findLowerMax(sorted: readonly Extent[], id: number, count: number): Extent | undefined {
  const last = id + count - 1;
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const e = sorted[mid]!;
    if (id < e.lowerFirst) hi = mid - 1;
    else if (id > e.lowerFirst + e.count - 1) lo = mid + 1;
    else return last <= e.lowerFirst + e.count - 1 ? e : undefined;
  }
  return undefined;
}

/** The extent whose upper range holds all of [id, id+count-1], or undefined. */
export function findExtentDown(map: IdMap, id: number, count = 1): Extent | undefined {
  return map.size <= MAX_BASE_EXTENTS ? findUpperBase(map.extents, id, count) : findUpperMax(map.forward, id, count);
}

/** The extent whose lower range holds all of [id, id+count-1], or undefined. */
export function findExtentUp(map: IdMap, id: number, count = 1): Extent | undefined {
  return map.size <= MAX_BASE_EXTENTS ? findLowerBase(map.extents, id, count) : findLowerMax(map.reverse, id, count);
}

/**
 * Mirrors kernel/user_namespace.c: map_id_range_down. Inside id → outside id,
 * or INVALID_ID (4294967295) when no single extent holds the whole range.
 */
export function mapIdRangeDown(map: IdMap, id: number, count: number): number {
  const e = findExtentDown(map, id, count);
  return e === undefined ? INVALID_ID : e.lowerFirst + (id - e.first);
}

/** Mirrors map_id_down (make_kuid over one map): `mapIdRangeDown(map, id, 1)`. */
export function mapIdDown(map: IdMap, id: number): number {
  return mapIdRangeDown(map, id, 1);
}

/** Mirrors map_id_range_up: outside id → inside id, or INVALID_ID. */
export function mapIdRangeUp(map: IdMap, id: number, count: number): number {
  const e = findExtentUp(map, id, count);
  return e === undefined ? INVALID_ID : e.first + (id - e.lowerFirst);
}

/** Mirrors map_id_up (from_kuid over one map). */
export function mapIdUp(map: IdMap, id: number): number {
  return mapIdRangeUp(map, id, 1);
}

/** Mirrors from_kuid_munged: INVALID becomes the overflow id (65534 by default). */
export function munge(id: number, overflow: number = OVERFLOW_ID): number {
  return id === INVALID_ID ? overflow : id;
}
