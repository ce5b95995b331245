/**
 * Splitting a requested mapping at its parent's extent boundaries: the
 * userspace answer to the unmerged "automatically split user namespace
 * extent" patch (kernel-semantics §10.3), which Christian Brauner asked to be
 * done in a library so that what is written stays 1:1 with what is installed.
 *
 * The kernel accepts an extent only when its whole lower range lies inside ONE
 * extent of the parent's map (kernel/user_namespace.c: map_write →
 * map_id_range_down; spec §2.5, rule 18). This module computes the fewest
 * extents that satisfy that rule and translate every id exactly as requested.
 */
import { type Extent, extent, formatExtent } from "./extent.js";
import { IdMap, MAX_EXTENTS } from "./idmap.js";
import { formatIdRanges, type IdRange, normalizeRanges } from "./ranges.js";
import { INVALID_ID, U32_RANGE } from "./u32.js";

/** Outcome of {@link splitAgainstParent}. */
export type SplitResult =
  | {
      readonly ok: true;
      /** Exactly the lines to write, in this order; each lower range sits inside one parent extent. */
      readonly map: IdMap;
    }
  | {
      readonly ok: false;
      /** Lower-side ids of the request (ids of the parent namespace) that the parent does not map; empty when the refusal has another cause. */
      readonly unmapped: IdRange[];
      /** Why, in words: names the unmapped ids, the colliding lines, or the extent limit. */
      readonly reason: string;
    };

/** The written lines of a request, with a line number (1-based) for messages. */
interface Line {
  readonly e: Extent;
  readonly line: number;
}

/** A request extent must not reach id 4294967295 on either side (spec §2.3 rules 1–2); returns the problem or undefined. */
function extentOutOfRange({ e, line }: Line): string | undefined {
  if (e.first + e.count > INVALID_ID) {
    return `line ${line} (${formatExtent(e)}): inside ids reach 4294967295, which is never a valid id`;
  }
  if (e.lowerFirst + e.count > INVALID_ID) {
    return `line ${line} (${formatExtent(e)}): outside ids reach 4294967295, which is never a valid id`;
  }
  return undefined;
}

/** First pair of lines whose upper or lower ranges intersect (the request itself breaks spec §2.3 rule 3). */
function firstCollision(lines: readonly Line[]): string | undefined {
  for (const side of ["inside", "outside"] as const) {
    const key = (l: Line) => (side === "inside" ? l.e.first : l.e.lowerFirst);
    const sorted = [...lines].sort((a, b) => key(a) - key(b));
    for (let i = 1; i < sorted.length; i++) {
      const a = sorted[i - 1]!;
      const b = sorted[i]!;
      if (key(a) + a.e.count > key(b)) {
        const [x, y] = a.line < b.line ? [a, b] : [b, a];
        return `line ${y.line}: ${side} ids ${key(y)}-${key(y) + y.e.count - 1} overlap line ${x.line}'s ${key(x)}-${key(x) + x.e.count - 1}`;
      }
    }
  }
  return undefined;
}

/**
 * Merges lines that continue each other on both sides (so the result is
 * minimal); a merged group takes the place of its earliest line, so the
 * written order of the request survives.
 */
function mergeContinuing(lines: readonly Line[]): Extent[] {
  const byFirst = [...lines].sort((a, b) => a.e.first - b.e.first);
  const groups: { start: number; lower: number; count: number; order: number }[] = [];
  for (const l of byFirst) {
    const g = groups[groups.length - 1];
    if (g && g.start + g.count === l.e.first && g.lower + g.count === l.e.lowerFirst) {
      g.count += l.e.count;
      g.order = Math.min(g.order, l.line);
    } else {
      groups.push({ start: l.e.first, lower: l.e.lowerFirst, count: l.e.count, order: l.line });
    }
  }
  return groups.sort((a, b) => a.order - b.order).map((g) => extent(g.start, g.lower, g.count));
}

/** Parent extents sorted by `first`: the ids of the parent namespace each one covers. */
function parentExtentAt(sorted: readonly Extent[], id: number): { hit?: Extent; next?: Extent } {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const e = sorted[mid]!;
    if (id < e.first) hi = mid - 1;
    else if (id > e.first + e.count - 1) lo = mid + 1;
    else return { hit: e };
  }
  return { next: sorted[lo] };
}

/**
 * Splits a requested mapping so that the kernel will accept it against
 * `parentMap` (spec §2.5, §10.3): the userspace replacement for the unmerged
 * auto-split patch.
 *
 * - `request`: the mapping wanted, as lines `first lower count` whose lower ids
 *   are ids of the parent namespace (as written to the child's uid_map).
 * - `parentMap`: the parent namespace's map of the same kind, as installed
 *   (its `first` values are the parent's ids). {@link IdMap.IDENTITY} for a
 *   parent that is the initial namespace.
 *
 * On success `map` is exactly what should be written, 1:1: every extent's
 * lower range lies inside one parent extent, extents never overlap, the map
 * translates every requested id exactly as requested and no other id, and
 * it has the fewest extents any such map can have (lines that continue each
 * other on both sides are merged, and a line is cut only where its lower
 * range crosses from one parent extent into another — even when the two
 * parent extents happen to be contiguous, because the kernel looks a range up
 * in ONE extent). Order: the request's written order; the pieces of a cut
 * line follow each other in ascending order.
 *
 * Refuses (never throws) when some lower ids are not mapped by the parent
 * (`unmapped` lists them, merged and sorted), when the request itself is not
 * a valid map (overlapping lines, ids reaching 4294967295), or when the
 * result would need more than 340 extents.
 */
export function splitAgainstParent(request: IdMap | Extent, parentMap: IdMap): SplitResult {
  const extents = request instanceof IdMap ? request.extents : [request];
  const lines = extents.map((e, i) => ({ e, line: i + 1 }));
  if (lines.length === 0) return { ok: false, unmapped: [], reason: "the request has no extents" };
  for (const l of lines) {
    const bad = extentOutOfRange(l);
    if (bad) return { ok: false, unmapped: [], reason: bad };
  }
  const collision = firstCollision(lines);
  if (collision) return { ok: false, unmapped: [], reason: `the request is not a valid map: ${collision}` };

  const parent = parentMap.forward;
  const out: Extent[] = [];
  const unmapped: IdRange[] = [];
  for (const e of mergeContinuing(lines)) {
    const end = e.lowerFirst + e.count; // exclusive
    let cur = e.lowerFirst;
    while (cur < end) {
      const { hit, next } = parentExtentAt(parent, cur);
      if (hit) {
        const stop = Math.min(end, hit.first + hit.count);
        out.push(extent(e.first + (cur - e.lowerFirst), cur, stop - cur));
        cur = stop;
      } else {
        const stop = Math.min(end, next ? next.first : U32_RANGE);
        unmapped.push({ first: cur, count: stop - cur });
        cur = stop;
      }
    }
  }
  if (unmapped.length > 0) {
    const ids = normalizeRanges(unmapped);
    const where = parentMap.isEmpty ? " (its map is not written)" : "";
    return {
      ok: false,
      unmapped: ids,
      reason: `lower ids ${formatIdRanges(ids)} ${ids.length === 1 && ids[0]!.count === 1 ? "is" : "are"} not mapped in the parent namespace${where}`,
    };
  }
  if (out.length > MAX_EXTENTS) {
    return {
      ok: false,
      unmapped: [],
      reason: `the split needs ${out.length} extents; a map holds at most ${MAX_EXTENTS}`,
    };
  }
  return { ok: true, map: IdMap.from(out) };
}
