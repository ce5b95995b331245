/**
 * Kind handling shared by the formats: a format that holds one untagged map
 * puts it into the selected kinds; a tagged format filters by kind; writing
 * one map from a uid/gid pair needs the two to agree.
 */
import type { Extent } from "../model/extent.js";
import { IdMap } from "../model/idmap.js";
import { FormatError } from "./errors.js";
import type { IdKind, KindSelection, MapSet } from "./types.js";

/** The kinds a selection names. */
export function kindsOf(sel: KindSelection | undefined): IdKind[] {
  return sel === "uid" ? ["uid"] : sel === "gid" ? ["gid"] : ["uid", "gid"];
}

/** One untagged map placed into the selected kinds. */
export function fromSingle(map: IdMap, sel: KindSelection | undefined): MapSet {
  const ks = kindsOf(sel);
  return { uid: ks.includes("uid") ? map : undefined, gid: ks.includes("gid") ? map : undefined };
}

/** Keeps only the selected kinds. */
export function filterKinds(maps: MapSet, sel: KindSelection | undefined): MapSet {
  const ks = kindsOf(sel);
  return { uid: ks.includes("uid") ? maps.uid : undefined, gid: ks.includes("gid") ? maps.gid : undefined };
}

/** Builds a MapSet from tagged extents, keeping each kind's written order; kinds with no entry stay absent. */
export function fromTagged(
  entries: readonly { kind: KindSelection; extent: Extent }[],
  sel: KindSelection | undefined,
): MapSet {
  const uid: Extent[] = [];
  const gid: Extent[] = [];
  for (const e of entries) {
    if (e.kind !== "gid") uid.push(e.extent);
    if (e.kind !== "uid") gid.push(e.extent);
  }
  return filterKinds(
    { uid: uid.length ? IdMap.from(uid) : undefined, gid: gid.length ? IdMap.from(gid) : undefined },
    sel,
  );
}

/**
 * The one map an untagged format writes. With `both`, the uid and gid maps
 * must be the same (or only one present): the format has no place for two.
 */
export function toSingle(format: string, maps: MapSet, sel: KindSelection | undefined): IdMap {
  const { uid, gid } = filterKinds(maps, sel);
  if (uid && gid && !uid.equals(gid)) {
    throw new FormatError(
      format,
      "format",
      "this format holds one map, and the uid and gid maps differ: choose one with --kind uid or --kind gid",
    );
  }
  const m = uid ?? gid;
  if (!m) throw new FormatError(format, "format", `no ${sel ?? "uid or gid"} map to write`);
  return m;
}

/**
 * Tagged entries for a MapSet: `both` entries when the uid and gid maps are
 * equal, else the uid entries then the gid entries.
 */
export function toTagged(
  format: string,
  maps: MapSet,
  sel: KindSelection | undefined,
): { kind: KindSelection; extent: Extent }[] {
  const { uid, gid } = filterKinds(maps, sel);
  if (!uid && !gid) throw new FormatError(format, "format", `no ${sel ?? "uid or gid"} map to write`);
  if (uid && gid && uid.equals(gid)) return uid.extents.map((e) => ({ kind: "both" as const, extent: e }));
  return [
    ...(uid?.extents ?? []).map((e) => ({ kind: "uid" as const, extent: e })),
    ...(gid?.extents ?? []).map((e) => ({ kind: "gid" as const, extent: e })),
  ];
}
