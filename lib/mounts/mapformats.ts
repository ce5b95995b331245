/**
 * Mount maps and the two notations people write them in.
 *
 * **Direction.** A mount map goes in the MOUNT direction: on-disk id → id
 * seen through the mount. As an {@link IdMap}, `extent.first` is the on-disk
 * (filesystem-side) id and `extent.lowerFirst` the id seen through the mount
 * (from the initial user namespace). That is exactly the `uid_map` line
 * `first lower count` of the user namespace handed to `mount_setattr`
 * (spec §8.3: "first values are filesystem-side ids, the kuid values are
 * VFS-side ids").
 *
 * - OCI `mounts[].uidMappings` `{containerID, hostID, size}`: runtimes write
 *   them to the helper namespace's uid_map as `containerID hostID size`, so
 *   containerID is the ON-DISK id and hostID the id SEEN through the mount.
 * - util-linux `X-mount.idmap=[u|g|b:]A:B:N`: libmount writes `A B N` to the
 *   uid_map, so A is the ON-DISK id and B the id SEEN through the mount. Its
 *   man page called A "id-mount" and B "id-host" ("A is the id in the new
 *   mount"), which is backwards; the code is what counts.
 *
 * @packageDocumentation
 */
import { usageError } from "../errors.js";
import { FormatError } from "../formats/errors.js";
import { parseOciMappingArray } from "../formats/json.js";
import { readIdTriple } from "../formats/text.js";
import { formatXMountIdmapMapSet, parseXMountIdmapEntries } from "../formats/unshare.js";
import { extent } from "../model/extent.js";
import { IdMap } from "../model/idmap.js";

// The parsing itself is lib/formats' (formats "oci-mount" and "x-mount-idmap",
// the one implementation); these wrappers keep this module's API: maps for
// both kinds (an absent one is empty), a user-namespace path for
// X-mount.idmap, and usage errors (ERR_USERNS_USAGE).

function asUsage<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof FormatError) throw usageError(`${what}: ${e.reason ?? e.message}`);
    throw e;
  }
}

/** A mount's uid and gid maps, both in the mount direction (on-disk → seen). */
export interface MountIdmap {
  /** uid map: `first` on-disk uid, `lowerFirst` uid seen through the mount. */
  readonly uid: IdMap;
  /** gid map: `first` on-disk gid, `lowerFirst` gid seen through the mount. */
  readonly gid: IdMap;
}

/** One OCI LinuxIDMapping. */
export interface OciIdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

/**
 * Converts an OCI mount's `uidMappings`/`gidMappings` to mount-direction maps:
 * containerID = on-disk id, hostID = id seen through the mount.
 */
export function fromOciMountMappings(mount: {
  uidMappings?: OciIdMapping[];
  gidMappings?: OciIdMapping[];
}): MountIdmap {
  const conv = (items: OciIdMapping[] | undefined, what: string): IdMap =>
    items === undefined ? IdMap.EMPTY : asUsage(what, () => parseOciMappingArray(items, `/${what}`));
  return { uid: conv(mount.uidMappings, "uidMappings"), gid: conv(mount.gidMappings, "gidMappings") };
}

/** The reverse of {@link fromOciMountMappings}. */
export function toOciMountMappings(map: MountIdmap): { uidMappings: OciIdMapping[]; gidMappings: OciIdMapping[] } {
  const conv = (m: IdMap) => m.extents.map((e) => ({ containerID: e.first, hostID: e.lowerFirst, size: e.count }));
  return { uidMappings: conv(map.uid), gidMappings: conv(map.gid) };
}

/** What an `X-mount.idmap=` value names: maps, or a user namespace file whose maps are used. */
export type XMountIdmap = { kind: "maps"; map: MountIdmap } | { kind: "userns"; path: string };

/**
 * Parses a util-linux `X-mount.idmap` value: an absolute path to a user
 * namespace file, or space-separated `[u|g|b:]A:B:N` items (`\040` also
 * separates, as in fstab). A is the ON-DISK id, B the id SEEN through the
 * mount (see the module comment for why the man page's names mislead).
 */
export function parseXMountIdmap(value: string): XMountIdmap {
  const text = value.replace(/\\040/g, " ").trim();
  if (text.startsWith("/")) return { kind: "userns", path: text };
  if (text === "") throw usageError("X-mount.idmap: empty value");
  const entries = asUsage("X-mount.idmap", () => parseXMountIdmapEntries(text));
  const pick = (k: "uid" | "gid") =>
    IdMap.from(entries.filter((e) => e.kind === k || e.kind === "both").map((e) => extent(e.onDisk, e.seen, e.count)));
  return { kind: "maps", map: { uid: pick("uid"), gid: pick("gid") } };
}

/** Formats mount-direction maps as an `X-mount.idmap` value (`u:` items, then `g:` items). */
export function formatXMountIdmap(map: MountIdmap): string {
  const items = (kind: "uid" | "gid") => {
    const m = map[kind];
    if (m.isEmpty) return [];
    // lib/formats' writer, one kind at a time, so each item carries its u:/g: tag; without its prefix.
    return formatXMountIdmapMapSet({ [kind]: m }, { kind })
      .replace(/^X-mount\.idmap=/, "")
      .trim()
      .split(" ");
  };
  return [...items("uid"), ...items("gid")].join(" ");
}

/**
 * Parses the CLI form `ondisk:seen:count` (as `--map-users 0:100000:65536`),
 * the same order as X-mount.idmap.
 */
export function parseMapTriple(s: string): ReturnType<typeof extent> {
  const t = readIdTriple(s.trim());
  if (!t.ok) throw usageError(`"${s}" is not ondisk:seen:count`);
  try {
    return extent(...t.values);
  } catch (e) {
    throw usageError(`"${s}": ${(e as Error).message}`);
  }
}

/** Parses an id map given as uid_map text (`first lower count` lines), or returns an IdMap as is. */
export function toIdMap(map: IdMap | string | null | undefined): IdMap {
  if (map === undefined || map === null) return IdMap.EMPTY;
  if (typeof map !== "string") return map;
  const lines = map.split("\n").filter((l) => l.trim() !== "");
  return IdMap.of(
    ...lines.map((l) => {
      const f = l.trim().split(/\s+/);
      if (f.length !== 3 || !f.every((x) => /^\d+$/.test(x))) throw usageError(`"${l}" is not "first lower count"`);
      return extent(Number(f[0]), Number(f[1]), Number(f[2]));
    }),
  );
}
