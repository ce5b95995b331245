/**
 * Queries over parsed subordinate-id delegations: a user's ranges (matched
 * by name or by uid, as shadow does), overlaps between users and within one
 * user, and a free range for a new delegation.
 */
import { rangesIntersect } from "../model/extent.js";
import { INVALID_ID } from "../model/u32.js";
import type { SubidEntry } from "./parse.js";

/** A user as subid lookups need it: shadow matches an owner field against the login name or the numeric uid. */
export interface SubidUser {
  readonly name?: string | undefined;
  readonly uid?: number | undefined;
}

/** True when a line's owner field names this user, by name or by uid. */
export function ownerMatches(owner: string, user: SubidUser): boolean {
  return (user.name !== undefined && owner === user.name) || (user.uid !== undefined && owner === String(user.uid));
}

/** The user's lines, in file order. */
export function rangesFor<T extends { readonly owner: string }>(entries: readonly T[], user: SubidUser): T[] {
  return entries.filter((e) => ownerMatches(e.owner, user));
}

/** One problem found among delegations. */
export interface SubidOverlap {
  /** `between-users`: two owners share ids. `same-user`: one owner's lines overlap. `duplicate`: identical lines. */
  readonly type: "between-users" | "same-user" | "duplicate";
  readonly a: SubidEntry;
  readonly b: SubidEntry;
  /** First shared id and how many are shared. */
  readonly start: number;
  readonly count: number;
  /** A sentence for humans. */
  readonly message: string;
}

/**
 * Every pair of lines whose ranges intersect. `sameUser` decides whether two
 * owner fields are the same person (by default: equal strings; pass one that
 * also resolves names to uids to catch `alice` vs `1000`).
 */
export function findOverlaps(
  entries: readonly SubidEntry[],
  sameUser: (a: string, b: string) => boolean = (a, b) => a === b,
): SubidOverlap[] {
  const sorted = [...entries].sort((x, y) => x.start - y.start || x.line - y.line);
  const out: SubidOverlap[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const a = sorted[i]!;
    for (let j = i + 1; j < sorted.length; j++) {
      const b = sorted[j]!;
      if (b.start > a.start + a.count - 1) break;
      if (!rangesIntersect(a.start, a.count, b.start, b.count)) continue;
      const start = Math.max(a.start, b.start);
      const count = Math.min(a.start + a.count, b.start + b.count) - start;
      const same = sameUser(a.owner, b.owner);
      const dup = same && a.start === b.start && a.count === b.count;
      const type = dup ? "duplicate" : same ? "same-user" : "between-users";
      const range = `${start}-${start + count - 1}`;
      const message =
        type === "between-users"
          ? `${a.owner} (line ${a.line}) and ${b.owner} (line ${b.line}) share ids ${range}: each can map the other's files`
          : type === "duplicate"
            ? `${a.owner} has the same range on lines ${a.line} and ${b.line}: tools that concatenate lines build a map with overlapping extents, which the kernel refuses (EINVAL)`
            : `${a.owner}'s lines ${a.line} and ${b.line} overlap on ${range}: a map built from both has overlapping extents (EINVAL)`;
      out.push({ type, a, b, start, count, message });
    }
  }
  return out;
}

/** Options of {@link findFreeRange}. */
export interface FindFreeRangeOptions {
  /** Existing delegations (subuid and subgid lines together, to keep uid and gid ranges aligned). */
  readonly taken: readonly { start: number; count: number }[];
  /** Lowest start, default 100000 (login.defs SUB_UID_MIN). */
  readonly min?: number;
  /** Highest id the range may reach, default 4294967294 (4294967295 is never a valid id). */
  readonly max?: number;
  /** Start must be a multiple of this, default 1 (65536 gives systemd-style aligned ranges). */
  readonly align?: number;
}

/**
 * The lowest range of `size` ids at or above `min` that overlaps none of
 * `taken`, ends at or below `max`, and starts on `align`. Undefined when none fits.
 */
export function findFreeRange(
  size: number,
  options: FindFreeRangeOptions,
): { start: number; count: number } | undefined {
  const min = options.min ?? 100000;
  const max = options.max ?? INVALID_ID - 1;
  const align = options.align ?? 1;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`size must be a positive integer, got ${size}`);
  if (!Number.isInteger(align) || align < 1) throw new RangeError(`align must be a positive integer, got ${align}`);
  const up = (n: number) => Math.ceil(n / align) * align;
  const taken = [...options.taken].filter((t) => t.count > 0).sort((a, b) => a.start - b.start);
  let cand = up(min);
  for (const t of taken) {
    if (cand + size - 1 > max) return undefined;
    if (t.start + t.count - 1 < cand) continue;
    if (t.start > cand + size - 1) break;
    cand = up(t.start + t.count);
  }
  return cand + size - 1 <= max ? { start: cand, count: size } : undefined;
}
