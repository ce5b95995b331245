/**
 * Id translation through one map, as kernel/user_namespace.c does it:
 * a linear scan up to 5 extents, a binary search over the sorted arrays
 * above. A range translates only when ONE extent covers all of it.
 *
 * The searches run over the map's flat typed-array tables
 * (`[first, lowerFirst, count]` per extent); each returns the extent's index
 * in that table, or -1.
 */
import type { Extent } from "./extent.js";
import { type IdMap, MAX_BASE_EXTENTS } from "./idmap.js";
import { INVALID_ID, OVERFLOW_ID } from "./u32.js";

// Field offsets within a table row. `key` selects the searched side:
// 0 = upper (first), 1 = lower (lowerFirst).
const COUNT = 2;

/** Mirrors kernel/user_namespace.c: map_id_range_down_base / map_id_range_up_base (linear scan, written order). */
function scan(t: Uint32Array, key: 0 | 1, id: number, last: number): number {
  for (let i = 0; i < t.length; i += 3) {
    const start = t[i + key]!;
    if (id >= start && last <= start + t[i + COUNT]! - 1) return i;
  }
  return -1;
}

/** Mirrors map_id_range_down_max / map_id_range_up_max: bsearch with cmp_map_id over a sorted table. */
function bsearch(t: Uint32Array, key: 0 | 1, id: number, last: number): number {
  let lo = 0;
  let hi = t.length / 3 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const i = mid * 3;
    const start = t[i + key]!;
    const end = start + t[i + COUNT]! - 1;
    if (id < start) hi = mid - 1;
    else if (id > end) lo = mid + 1;
    else return last <= end ? i : -1;
  }
  return -1;
}

function rowDown(map: IdMap, id: number, count: number): number {
  const last = id + count - 1;
  return map.size <= MAX_BASE_EXTENTS
    ? scan(map.tables.written, 0, id, last)
    : bsearch(map.tables.forward, 0, id, last);
}

function rowUp(map: IdMap, id: number, count: number): number {
  const last = id + count - 1;
  return map.size <= MAX_BASE_EXTENTS
    ? scan(map.tables.written, 1, id, last)
    : bsearch(map.tables.reverse, 1, id, last);
}

/** The extent whose upper range holds all of [id, id+count-1], or undefined. */
export function findExtentDown(map: IdMap, id: number, count = 1): Extent | undefined {
  const i = rowDown(map, id, count);
  if (i < 0) return undefined;
  return (map.size <= MAX_BASE_EXTENTS ? map.extents : map.forward)[i / 3];
}

/** The extent whose lower range holds all of [id, id+count-1], or undefined. */
export function findExtentUp(map: IdMap, id: number, count = 1): Extent | undefined {
  const i = rowUp(map, id, count);
  if (i < 0) return undefined;
  return (map.size <= MAX_BASE_EXTENTS ? map.extents : map.reverse)[i / 3];
}

/**
 * Mirrors kernel/user_namespace.c: map_id_range_down. Inside id → outside id,
 * or INVALID_ID (4294967295) when no single extent holds the whole range.
 */
export function mapIdRangeDown(map: IdMap, id: number, count: number): number {
  // The hot path of every translation: the tables are fetched once and the
  // short scan is inlined, so a lookup is a few typed-array loads.
  const tables = map.tables;
  const last = id + count - 1;
  if (map.extents.length <= MAX_BASE_EXTENTS) {
    const t = tables.written;
    for (let i = 0; i < t.length; i += 3) {
      const start = t[i]!;
      if (id >= start && last <= start + t[i + COUNT]! - 1) return t[i + 1]! + (id - start);
    }
    return INVALID_ID;
  }
  const t = tables.forward;
  const i = bsearch(t, 0, id, last);
  return i < 0 ? INVALID_ID : t[i + 1]! + (id - t[i]!);
}

/** Mirrors map_id_down (make_kuid over one map): `mapIdRangeDown(map, id, 1)`. */
export function mapIdDown(map: IdMap, id: number): number {
  return mapIdRangeDown(map, id, 1);
}

/** Mirrors map_id_range_up: outside id → inside id, or INVALID_ID. */
export function mapIdRangeUp(map: IdMap, id: number, count: number): number {
  const i = rowUp(map, id, count);
  if (i < 0) return INVALID_ID;
  const t = map.size <= MAX_BASE_EXTENTS ? map.tables.written : map.tables.reverse;
  return t[i]! + (id - t[i + 1]!);
}

/** Mirrors map_id_up (from_kuid over one map). */
export function mapIdUp(map: IdMap, id: number): number {
  return mapIdRangeUp(map, id, 1);
}

/** Mirrors from_kuid_munged: INVALID becomes the overflow id (65534 by default). */
export function munge(id: number, overflow: number = OVERFLOW_ID): number {
  return id === INVALID_ID ? overflow : id;
}
