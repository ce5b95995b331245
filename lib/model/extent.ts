/**
 * An extent: `count` ids starting at `first` inside a namespace, mapped to
 * `count` ids starting at `lowerFirst` outside it. The kernel's
 * `struct uid_gid_extent` (include/linux/user_namespace.h).
 */
import { isU32 } from "./u32.js";

/** One line of an id map. All three fields are u32. */
export interface Extent {
  /** First id inside (upper). */
  readonly first: number;
  /** First id outside: in the parent namespace as written, or a kuid once installed. */
  readonly lowerFirst: number;
  /** Number of ids, at least 1. */
  readonly count: number;
}

/** Makes a frozen extent; throws RangeError when a field is not a u32 or count is 0. */
export function extent(first: number, lowerFirst: number, count: number): Extent {
  if (!isU32(first) || !isU32(lowerFirst) || !isU32(count) || count === 0) {
    throw new RangeError(`invalid extent ${first} ${lowerFirst} ${count}: fields must be u32 and count ≥ 1`);
  }
  return Object.freeze({ first, lowerFirst, count });
}

/** Last inside id (inclusive). The one place the interval convention is spelled out. */
export function lastUpper(e: Extent): number {
  return e.first + e.count - 1;
}

/** Last outside id (inclusive). */
export function lastLower(e: Extent): number {
  return e.lowerFirst + e.count - 1;
}

/** Two inclusive ranges [a, a+an-1] and [b, b+bn-1] intersect. */
export function rangesIntersect(a: number, an: number, b: number, bn: number): boolean {
  return a <= b + bn - 1 && b <= a + an - 1;
}

/** Field-for-field equality. */
export function extentEquals(a: Extent, b: Extent): boolean {
  return a.first === b.first && a.lowerFirst === b.lowerFirst && a.count === b.count;
}

/** Orders by `first` (the kernel's cmp_extents_forward). */
export function compareForward(a: Extent, b: Extent): number {
  return a.first - b.first;
}

/** Orders by `lowerFirst` (the kernel's cmp_extents_reverse). */
export function compareReverse(a: Extent, b: Extent): number {
  return a.lowerFirst - b.lowerFirst;
}

/** `first lower count`, the form written to uid_map. */
export function formatExtent(e: Extent): string {
  return `${e.first} ${e.lowerFirst} ${e.count}`;
}
