/**
 * Sets of ids as sorted, disjoint, non-adjacent ranges. The building block of
 * the set algebra and the splitter; nothing here is a kernel rule.
 */

/** `count` consecutive ids starting at `first`. */
export interface IdRange {
  /** First id of the range. */
  readonly first: number;
  /** Number of ids, at least 1. */
  readonly count: number;
}

/** Last id of a range (inclusive). */
export function rangeLast(r: IdRange): number {
  return r.first + r.count - 1;
}

/** `5000` for one id, `5000-5999` for more: the form used in refusal messages. */
export function formatIdRange(r: IdRange): string {
  return r.count === 1 ? `${r.first}` : `${r.first}-${rangeLast(r)}`;
}

/** `a, b and c` for lists in messages. */
export function formatIdRanges(rs: readonly IdRange[]): string {
  const parts = rs.map(formatIdRange);
  return parts.length <= 1 ? parts.join("") : `${parts.slice(0, -1).join(", ")} and ${parts[parts.length - 1]}`;
}

/**
 * Normal form of a set of ids: sorted by `first`, overlapping and adjacent
 * ranges merged, empty ranges dropped. Every other function here returns
 * normal forms, so two sets are equal exactly when their normal forms are.
 */
export function normalizeRanges(rs: Iterable<IdRange>): IdRange[] {
  const sorted = [...rs].filter((r) => r.count > 0).sort((a, b) => a.first - b.first);
  const out: IdRange[] = [];
  for (const r of sorted) {
    const prev = out[out.length - 1];
    if (prev && r.first <= prev.first + prev.count) {
      const end = Math.max(prev.first + prev.count, r.first + r.count);
      out[out.length - 1] = { first: prev.first, count: end - prev.first };
    } else {
      out.push({ first: r.first, count: r.count });
    }
  }
  return out;
}

/** Ids in either set. */
export function unionRanges(a: readonly IdRange[], b: readonly IdRange[]): IdRange[] {
  return normalizeRanges([...a, ...b]);
}

/** Ids in both sets (inputs in normal form). */
export function intersectRanges(a: readonly IdRange[], b: readonly IdRange[]): IdRange[] {
  const out: IdRange[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    const lo = Math.max(x.first, y.first);
    const hi = Math.min(x.first + x.count, y.first + y.count);
    if (lo < hi) out.push({ first: lo, count: hi - lo });
    if (x.first + x.count < y.first + y.count) i++;
    else j++;
  }
  return normalizeRanges(out);
}

/** Ids in `a` but not in `b` (inputs in normal form). */
export function subtractRanges(a: readonly IdRange[], b: readonly IdRange[]): IdRange[] {
  const out: IdRange[] = [];
  let j = 0;
  for (const x of a) {
    let cur = x.first;
    const end = x.first + x.count;
    while (j < b.length && b[j]!.first + b[j]!.count <= cur) j++;
    let k = j;
    while (cur < end && k < b.length && b[k]!.first < end) {
      const y = b[k]!;
      if (y.first > cur) out.push({ first: cur, count: y.first - cur });
      cur = Math.max(cur, y.first + y.count);
      k++;
    }
    if (cur < end) out.push({ first: cur, count: end - cur });
  }
  return normalizeRanges(out);
}

/** Number of ids in a set in normal form. */
export function rangesSize(rs: readonly IdRange[]): number {
  return rs.reduce((n, r) => n + r.count, 0);
}

/** True when `id` is in the set (normal form; binary search). */
export function rangesHas(rs: readonly IdRange[], id: number): boolean {
  let lo = 0;
  let hi = rs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const r = rs[mid]!;
    if (id < r.first) hi = mid - 1;
    else if (id >= r.first + r.count) lo = mid + 1;
    else return true;
  }
  return false;
}
