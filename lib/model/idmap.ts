/**
 * An id map as the kernel holds it (`struct uid_gid_map`): extents in written
 * order, plus forward (by first) and reverse (by lowerFirst) sorted views for
 * binary search. Immutable; equality is on the written extents, and
 * `canonical()` gives a form in which maps that mean the same compare equal.
 */
import { compareForward, compareReverse, type Extent, extent, extentEquals, formatExtent } from "./extent.js";
import { INVALID_ID } from "./u32.js";

/** Which of a namespace's maps: the kernel keeps uid_map, gid_map and projid_map. */
export type MapKind = "uid" | "gid" | "projid";

/** UID_GID_MAP_MAX_BASE_EXTENTS: up to this many extents the kernel scans linearly and prints in write order. */
export const MAX_BASE_EXTENTS = 5;
/** UID_GID_MAP_MAX_EXTENTS: the most lines a map may have (since 4.15). */
export const MAX_EXTENTS = 340;

function flatten(extents: readonly Extent[]): Uint32Array {
  const t = new Uint32Array(extents.length * 3);
  for (let i = 0, j = 0; i < extents.length; i++, j += 3) {
    const e = extents[i]!;
    t[j] = e.first;
    t[j + 1] = e.lowerFirst;
    t[j + 2] = e.count;
  }
  return t;
}

/** An immutable id map. Construct with {@link IdMap.of} or {@link IdMap.from}. */
export class IdMap {
  /** Extents in the order they were written. */
  readonly extents: readonly Extent[];

  // The sorted views, the flat tables and the text are derived on first use:
  // most maps the model builds (parse results, installed copies) are looked up
  // rarely or never. Private fields stay writable on a frozen object, so the
  // value stays immutable to its users while the caches fill in.
  #forward: readonly Extent[] | undefined;
  #reverse: readonly Extent[] | undefined;
  #tables: { readonly written: Uint32Array; readonly forward: Uint32Array; readonly reverse: Uint32Array } | undefined;
  #text: string | undefined;

  private constructor(extents: readonly Extent[], text?: string) {
    this.extents = Object.freeze(extents);
    this.#text = text;
    Object.freeze(this);
  }

  /** Extents sorted by `first` (the kernel's `forward` array). */
  get forward(): readonly Extent[] {
    if (this.#forward === undefined) this.#forward = Object.freeze([...this.extents].sort(compareForward));
    return this.#forward;
  }

  /** Extents sorted by `lowerFirst` (the kernel's `reverse` array). */
  get reverse(): readonly Extent[] {
    if (this.#reverse === undefined) this.#reverse = Object.freeze([...this.extents].sort(compareReverse));
    return this.#reverse;
  }

  /**
   * @internal Flat `[first, lowerFirst, count]*n` copies of the written,
   * forward and reverse views: lookups walk these instead of objects, which
   * keeps the hot path to typed-array loads (see lookup.ts).
   */
  get tables(): { readonly written: Uint32Array; readonly forward: Uint32Array; readonly reverse: Uint32Array } {
    if (this.#tables === undefined) {
      const written = flatten(this.extents);
      // Up to 5 extents the kernel (and lookup.ts) only scans the written order.
      const small = this.extents.length <= MAX_BASE_EXTENTS;
      this.#tables = Object.freeze({
        written,
        forward: small ? written : flatten(this.forward),
        reverse: small ? written : flatten(this.reverse),
      });
    }
    return this.#tables;
  }

  /** The empty map: a map not written yet (`nr_extents == 0`). */
  static readonly EMPTY: IdMap = new IdMap([]);

  /** The initial namespace's map, `0 0 4294967295`. */
  static readonly IDENTITY: IdMap = new IdMap([extent(0, 0, INVALID_ID)]);

  /** A map from extents or `[first, lowerFirst, count]` triples, kept in the given order. No validation beyond u32 fields: see the model's map-write rules for that. */
  static of(...items: (Extent | readonly [number, number, number])[]): IdMap {
    return new IdMap(
      items.map((i) =>
        Array.isArray(i)
          ? extent(i[0], i[1], i[2])
          : extent((i as Extent).first, (i as Extent).lowerFirst, (i as Extent).count),
      ),
    );
  }

  /**
   * @internal For the model's own parsers: extents already known to be frozen
   * u32 triples with count ≥ 1, so they are not checked and copied again. The
   * map takes over (and freezes) the array: pass a fresh one. `text`, when
   * given, must be exactly what {@link IdMap.toString} would print.
   */
  static fromValidated(extents: Extent[], text?: string): IdMap {
    return new IdMap(extents, text);
  }

  /** A map from a list of extents, kept in the given order. */
  static from(extents: Iterable<Extent>): IdMap {
    return IdMap.of(...extents);
  }

  /** Number of extents (`nr_extents`). */
  get size(): number {
    return this.extents.length;
  }

  /** True when no map has been written. */
  get isEmpty(): boolean {
    return this.extents.length === 0;
  }

  /** The extents in the order the kernel prints them: write order up to 5 extents, sorted by `first` above. */
  get printOrder(): readonly Extent[] {
    return this.extents.length > MAX_BASE_EXTENTS ? this.forward : this.extents;
  }

  /** Same extents in the same written order. */
  equals(other: IdMap): boolean {
    return (
      this.extents.length === other.extents.length && this.extents.every((e, i) => extentEquals(e, other.extents[i]!))
    );
  }

  /**
   * The canonical form: sorted by `first`, with extents that continue each
   * other on both sides merged. Two maps that translate every id the same way
   * have equal canonical forms.
   */
  canonical(): IdMap {
    const out: Extent[] = [];
    for (const e of this.forward) {
      const prev = out[out.length - 1];
      if (prev && prev.first + prev.count === e.first && prev.lowerFirst + prev.count === e.lowerFirst) {
        out[out.length - 1] = extent(prev.first, prev.lowerFirst, prev.count + e.count);
      } else {
        out.push(e);
      }
    }
    return new IdMap(out);
  }

  /** Translates the same ids: canonical forms are equal. */
  sameMapping(other: IdMap): boolean {
    return this.canonical().equals(other.canonical());
  }

  /** The text to write to /proc/PID/uid_map in one write(2): `first lower count\n` per line, in written order. */
  toString(): string {
    if (this.#text === undefined) {
      let t = "";
      for (const e of this.extents) t += `${formatExtent(e)}\n`;
      this.#text = t;
    }
    return this.#text;
  }

  /** Plain data for JSON. */
  toJSON(): { first: number; lowerFirst: number; count: number }[] {
    return this.extents.map((e) => ({ first: e.first, lowerFirst: e.lowerFirst, count: e.count }));
  }
}
