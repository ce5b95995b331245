/**
 * Set algebra on id maps, in the spirit of LXD's shared/idmap (Intersects,
 * Usable, AddSafe, Split), but as value operations: every function returns a
 * new IdMap and leaves its inputs alone.
 *
 * A map is read as a set of PAIRS (inside id, outside id): extent
 * `first lower count` holds the pairs (first+i, lower+i) for i < count. The
 * kernel never does any of this; these are the tools a user needs to plan
 * maps (delegate sub-ranges, find free ids, combine a chain of namespaces)
 * before handing them to the rules that do mirror the kernel.
 *
 * Conventions:
 * - "upper" ids are the inside ids (`first`), "lower" ids the outside ids
 *   (`lowerFirst`), as in the spec.
 * - Results of union, intersection and the differences are CANONICAL:
 *   sorted by `first`, extents that continue each other on both sides merged
 *   (see {@link IdMap.canonical}). Write-order-preserving operations
 *   ({@link inverse}, {@link compose}, the restrictions) say so.
 * - Inputs need not be valid kernel maps; where a result can break the
 *   kernel's rules (union of disagreeing maps), {@link overlaps} tells.
 */
import { type Extent, extent } from "./extent.js";
import { IdMap } from "./idmap.js";
import { type IdRange, intersectRanges, normalizeRanges, subtractRanges, unionRanges } from "./ranges.js";

/** Which side of a map: inside ids (`first`) or outside ids (`lowerFirst`). */
export type Side = "upper" | "lower";

/** The inside ids a map translates, in normal form (sorted, merged). */
export function upperIds(m: IdMap): IdRange[] {
  return normalizeRanges(m.extents.map((e) => ({ first: e.first, count: e.count })));
}

/** The outside ids a map translates to, in normal form. */
export function lowerIds(m: IdMap): IdRange[] {
  return normalizeRanges(m.extents.map((e) => ({ first: e.lowerFirst, count: e.count })));
}

/** The ids of one side, in normal form. */
export function idsOf(m: IdMap, side: Side): IdRange[] {
  return side === "upper" ? upperIds(m) : lowerIds(m);
}

// Pairs grouped by diagonal (lower - upper): on one diagonal, a set of pairs
// is just a set of upper ids, so pair-set algebra reduces to range algebra.
type Pairs = Map<number, IdRange[]>;

function toPairs(m: IdMap): Pairs {
  const raw = new Map<number, IdRange[]>();
  for (const e of m.extents) {
    const d = e.lowerFirst - e.first;
    const list = raw.get(d) ?? [];
    list.push({ first: e.first, count: e.count });
    raw.set(d, list);
  }
  const out: Pairs = new Map();
  for (const [d, rs] of raw) out.set(d, normalizeRanges(rs));
  return out;
}

function fromPairs(p: Pairs): IdMap {
  const exts: Extent[] = [];
  for (const [d, rs] of p) for (const r of rs) exts.push(extent(r.first, r.first + d, r.count));
  exts.sort((a, b) => a.first - b.first || a.lowerFirst - b.lowerFirst);
  return IdMap.from(exts);
}

function combine(a: IdMap, b: IdMap, op: (x: IdRange[], y: IdRange[]) => IdRange[]): IdMap {
  const pa = toPairs(a);
  const pb = toPairs(b);
  const out: Pairs = new Map();
  for (const d of new Set([...pa.keys(), ...pb.keys()])) {
    const rs = op(pa.get(d) ?? [], pb.get(d) ?? []);
    if (rs.length > 0) out.set(d, rs);
  }
  return fromPairs(out);
}

/**
 * Pairs in `a` or `b`, canonical. When `a` and `b` disagree on some id (one
 * inside id to two outside ids, or the reverse) the result is not a valid
 * kernel map: check `overlaps(a, b).every(o => o.agree)` first.
 */
export function union(a: IdMap, b: IdMap): IdMap {
  return combine(a, b, unionRanges);
}

/** Pairs in both `a` and `b`: the ids both maps translate, and translate the same way. Canonical. */
export function intersection(a: IdMap, b: IdMap): IdMap {
  return combine(a, b, intersectRanges);
}

/**
 * Pairs of `a` that are not pairs of `b`, canonical. With
 * {@link intersection} it partitions `a`. An id `b` translates differently
 * stays in the result; to drop every id `b` uses, whatever it maps to, use
 * {@link differenceByUpper} or {@link differenceByLower}.
 */
export function difference(a: IdMap, b: IdMap): IdMap {
  return combine(a, b, subtractRanges);
}

/** Cuts each extent of `m` to the ids of `side` in `ids` (normal form); keeps written order, pieces ascending. */
function restrict(m: IdMap, side: Side, ids: readonly IdRange[]): IdMap {
  const out: Extent[] = [];
  for (const e of m.extents) {
    const base = side === "upper" ? e.first : e.lowerFirst;
    for (const r of intersectRanges([{ first: base, count: e.count }], ids)) {
      const off = r.first - base;
      out.push(extent(e.first + off, e.lowerFirst + off, r.count));
    }
  }
  return IdMap.from(out);
}

/** `m` limited to the inside (`upper`) or outside (`lower`) ids in `ids`. Keeps written order; a cut extent's pieces ascend. */
export function restrictTo(m: IdMap, side: Side, ids: readonly IdRange[]): IdMap {
  return restrict(m, side, normalizeRanges(ids));
}

/** `m` without the inside (`upper`) or outside (`lower`) ids in `ids`. Keeps written order; a cut extent's pieces ascend. */
export function without(m: IdMap, side: Side, ids: readonly IdRange[]): IdMap {
  return restrict(m, side, subtractRanges([{ first: 0, count: 0x1_0000_0000 }], normalizeRanges(ids)));
}

/** `a` limited to the inside ids `b` also maps (whatever `b` maps them to). Canonical. */
export function intersectionByUpper(a: IdMap, b: IdMap): IdMap {
  return restrict(a, "upper", upperIds(b)).canonical();
}

/**
 * `a` without the inside ids `b` maps, canonical: "which of my ids are not
 * yet in use inside". With {@link intersectionByUpper} it partitions `a`.
 */
export function differenceByUpper(a: IdMap, b: IdMap): IdMap {
  return without(a, "upper", upperIds(b)).canonical();
}

/** `a` limited to the outside ids `b` also uses. Canonical. */
export function intersectionByLower(a: IdMap, b: IdMap): IdMap {
  return restrict(a, "lower", lowerIds(b)).canonical();
}

/**
 * `a` without the outside ids `b` uses, canonical: what a delegator means by
 * "minus what is already given away" (the outside ids are the parent's). With
 * {@link intersectionByLower} it partitions `a`.
 */
export function differenceByLower(a: IdMap, b: IdMap): IdMap {
  return without(a, "lower", lowerIds(b)).canonical();
}

/** One collision between two extents. */
export interface Overlap {
  /** 1-based line of the first extent in its map (written order). */
  readonly aLine: number;
  /** 1-based line of the second extent (in `b`, or in the same map when `overlaps` got one map). */
  readonly bLine: number;
  readonly a: Extent;
  readonly b: Extent;
  /** Inside ids both extents hold, if any. */
  readonly upper?: IdRange;
  /** Outside ids both extents hold, if any. */
  readonly lower?: IdRange;
  /**
   * True when the shared ids are translated identically (same offset between
   * inside and outside, and both sides overlap on the same pairs): a union of
   * the two is still a valid map. Within ONE map the kernel refuses every
   * overlap, agreeing or not (kernel/user_namespace.c: mappings_overlap).
   */
  readonly agree: boolean;
}

function overlapOf(x: Extent, y: Extent, aLine: number, bLine: number): Overlap | undefined {
  const up = intersectRanges([{ first: x.first, count: x.count }], [{ first: y.first, count: y.count }])[0];
  const low = intersectRanges([{ first: x.lowerFirst, count: x.count }], [{ first: y.lowerFirst, count: y.count }])[0];
  if (!up && !low) return undefined;
  // Same diagonal: the shared inside ids map to the same outside ids, and
  // vice versa, so the overlap is the same set of pairs on both sides.
  const agree = x.lowerFirst - x.first === y.lowerFirst - y.first;
  return { aLine, bLine, a: x, b: y, ...(up ? { upper: up } : {}), ...(low ? { lower: low } : {}), agree };
}

/**
 * Which extents collide and how. With one map: every pair of its lines whose
 * inside or outside ranges intersect (what mappings_overlap rejects, spec
 * §2.3 rule 3, all reported rather than the first). With two maps: every
 * extent of `a` against every extent of `b`. Ordered by `aLine`, then `bLine`.
 */
export function overlaps(a: IdMap, b?: IdMap): Overlap[] {
  const out: Overlap[] = [];
  const xs = a.extents;
  const ys = b ? b.extents : a.extents;
  for (let i = 0; i < xs.length; i++) {
    for (let j = b ? 0 : i + 1; j < ys.length; j++) {
      const o = overlapOf(xs[i]!, ys[j]!, i + 1, j + 1);
      if (o) out.push(o);
    }
  }
  return out;
}

/**
 * Ids of the parent namespace that a parent can still delegate: its inside
 * ids (the ids a child may name as lower ids) minus the outside ids already
 * used by `delegations` (the children's maps, as written from the parent).
 * Each returned range lies inside ONE parent extent (ranges are cut at
 * extent boundaries even when the extents are contiguous), so any of them can
 * be used as a child's lower range as is (spec §2.5). Sorted by `first`.
 */
export function freeRanges(parent: IdMap, delegations: IdMap | readonly IdMap[]): IdRange[] {
  const used = normalizeRanges((Array.isArray(delegations) ? delegations : [delegations]).flatMap(lowerIds));
  const out: IdRange[] = [];
  for (const e of parent.forward) {
    out.push(...subtractRanges([{ first: e.first, count: e.count }], used));
  }
  return out.sort((x, y) => x.first - y.first);
}

/** Swaps inside and outside of every extent, keeping written order. `inverse(inverse(m))` equals `m`. */
export function inverse(m: IdMap): IdMap {
  return IdMap.from(m.extents.map((e) => extent(e.lowerFirst, e.first, e.count)));
}

/**
 * `a` then `b`: the map x → b(a(x)). Composing a child's map (child ids →
 * parent ids) with its parent's map (parent ids → global ids) gives the
 * child's global map, which is what the kernel installs when every lower range
 * fits one parent extent (kernel/user_namespace.c: map_write, spec §2.5).
 *
 * Partial coverage: each extent of `a` is cut where its outside range crosses
 * `b`'s extents; pieces `b` does not map are dropped (find them with
 * `without(a, "lower", upperIds(b))`). Written order of `a` is kept, pieces
 * of a cut extent ascend; nothing is merged, so `compose(a, IdMap.IDENTITY)`
 * equals `a`. `b` is taken to be a valid map (no overlapping inside ranges).
 */
export function compose(a: IdMap, b: IdMap): IdMap {
  const bs = b.forward;
  const out: Extent[] = [];
  for (const e of a.extents) {
    const end = e.lowerFirst + e.count;
    // first b extent that may hold e.lowerFirst
    let lo = 0;
    let hi = bs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (bs[mid]!.first + bs[mid]!.count <= e.lowerFirst) lo = mid + 1;
      else hi = mid;
    }
    for (let k = lo; k < bs.length && bs[k]!.first < end; k++) {
      const p = bs[k]!;
      const from = Math.max(e.lowerFirst, p.first);
      const to = Math.min(end, p.first + p.count);
      if (from < to) out.push(extent(e.first + (from - e.lowerFirst), p.lowerFirst + (from - p.first), to - from));
    }
  }
  return IdMap.from(out);
}
