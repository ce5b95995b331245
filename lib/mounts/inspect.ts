/**
 * What a mount's idmap is, read back from the kernel where it can tell
 * (statmount STATMOUNT_MNT_UIDMAP/GIDMAP, Linux 6.15+), cross-checked with
 * what this library set, and the ownership a path shows through it.
 */
import { lstatSync, readFileSync, realpathSync } from "node:fs";
import { parseMapText } from "../child/maps.js";
import { native, type StatmountRaw } from "../kernel/native.js";
import { IdMap } from "../model/idmap.js";
import { statmountMntIdmap, statThroughMount } from "../model/idmapped.js";
import { parseMountinfo } from "../model/mountinfo.js";
import { AT_EMPTY_PATH, AT_FDCWD, MOUNT_ATTR, STATMOUNT } from "./constants.js";
import { setMaps } from "./idmap-mount.js";
import type { MountIdmap } from "./mapformats.js";

/** What {@link inspectMount} found. */
export interface MountInspection {
  /** Unique mount id (statx STATX_MNT_ID_UNIQUE). */
  readonly mountId: bigint;
  /** Filesystem type, when statmount could tell. */
  readonly fsType: string | undefined;
  /** MOUNT_ATTR_IDMAP is set on the mount. undefined when neither statmount nor mountinfo could tell (a detached mount on an older kernel). */
  readonly idmapped: boolean | undefined;
  /** The idmap (mount direction), from the kernel when it could tell, else what this library set. */
  readonly maps: MountIdmap | undefined;
  /** Where `maps` came from. */
  readonly mapsFrom: "statmount" | "library" | "none";
  /** The maps this library set on this mount, when it made it. */
  readonly librarySet: MountIdmap | undefined;
  /**
   * The kernel's read-back compared with what the library set, as the kernel
   * would show it to this caller (lower ids relative to the caller; extents it
   * cannot fully map are skipped). undefined when there is nothing to compare.
   */
  readonly crossCheck: { agrees: boolean; expected: MountIdmap; kernel: MountIdmap } | undefined;
  /** The owner an on-disk owner shows through this mount, predicted by the model (make_vfsuid, seen from the initial namespace). */
  predictOwner(onDisk: { uid: number; gid: number }): { uid: number; gid: number };
}

function parseStatmountMap(lines: string[] | undefined): IdMap {
  if (lines === undefined || lines.length === 0) return IdMap.EMPTY;
  // statmount lists a map's extents as uid_map lines: the one map-text parser (the model's) reads them.
  return parseMapText(lines.map((l) => `${l.trim()}\n`).join(""), "uid");
}

/**
 * How statmount shows `set` to this caller (the model's statmount_mnt_idmap:
 * lower ids relative to the caller, extents it cannot map whole skipped).
 * The library runs in the initial user namespace here (it made the mount).
 */
function expectedView(set: MountIdmap): { uid: string[]; gid: string[] } {
  return {
    uid: statmountMntIdmap(set, "uid").mappings,
    gid: statmountMntIdmap(set, "gid").mappings,
  };
}

function statmountOf(mountId: bigint): StatmountRaw | undefined {
  try {
    return native().statmount(
      mountId,
      STATMOUNT.MNT_BASIC | STATMOUNT.FS_TYPE | STATMOUNT.MNT_UIDMAP | STATMOUNT.MNT_GIDMAP,
      -1,
    );
  } catch {
    return undefined;
  }
}

/**
 * Inspects the mount at `target`: a path, an open fd (a number, such as
 * {@link IdmappedMount.fd}), or anything with an `fd` (an `IdmappedMount`). Lookups go through the kernel; predictions go
 * through the model's translation (make_vfsuid for a filesystem owned by the
 * initial namespace: on-disk id mapped down through the mount's uid map,
 * unmapped shown as 65534).
 */
export function inspectMount(target: string | number | { readonly fd: number }): MountInspection {
  const b = native();
  const fd = typeof target === "number" ? target : typeof target === "string" ? undefined : target.fd;
  const { mountId } =
    fd === undefined ? b.mountIdOf(AT_FDCWD, target as string, 0) : b.mountIdOf(fd, "", AT_EMPTY_PATH);
  const sm = statmountOf(mountId);
  const librarySet = setMaps.get(mountId);
  let idmapped: boolean | undefined;
  let maps: MountIdmap | undefined;
  let mapsFrom: MountInspection["mapsFrom"] = "none";
  let kernel: MountIdmap | undefined;
  if (sm !== undefined) {
    idmapped = (sm.mntAttr & BigInt(MOUNT_ATTR.IDMAP)) !== 0n;
    if (idmapped && sm.uidmap !== undefined) {
      kernel = { uid: parseStatmountMap(sm.uidmap), gid: parseStatmountMap(sm.gidmap) };
      maps = kernel;
      mapsFrom = "statmount";
    }
  } else {
    // Before statmount (6.8), mountinfo's `idmapped` option is the only signal, for attached mount points.
    idmapped = typeof target === "string" ? mountinfoSaysIdmapped(realpathSync(target)) : undefined;
  }
  if (maps === undefined && librarySet !== undefined) {
    maps = librarySet;
    mapsFrom = "library";
    idmapped ??= true;
  }
  let crossCheck: MountInspection["crossCheck"];
  if (kernel !== undefined && librarySet !== undefined && sm !== undefined) {
    const view = expectedView(librarySet);
    const expected = { uid: parseStatmountMap(view.uid), gid: parseStatmountMap(view.gid) };
    // Exact strings in kernel order: the model predicts the order too.
    const agrees =
      JSON.stringify(view.uid) === JSON.stringify(sm.uidmap ?? []) &&
      JSON.stringify(view.gid) === JSON.stringify(sm.gidmap ?? []);
    crossCheck = { agrees, expected, kernel };
  }
  const m = maps;
  return {
    mountId,
    fsType: sm?.fsType,
    idmapped,
    maps,
    mapsFrom,
    librarySet,
    crossCheck,
    predictOwner(onDisk) {
      if (m === undefined || idmapped === false) return { ...onDisk };
      // The filesystem is taken as owned by the initial namespace (sb->s_user_ns = init).
      return statThroughMount(m, "init", onDisk);
    },
  };
}

/** The on-disk owner of a path (lstat through a non-idmapped path to it). */
export function onDiskOwner(path: string): { uid: number; gid: number } {
  const st = lstatSync(path);
  return { uid: st.uid, gid: st.gid };
}

/** Whether /proc/self/mountinfo lists `idmapped` for the mount at `mountPoint` (older kernels' only signal). */
export function mountinfoSaysIdmapped(mountPoint: string): boolean | undefined {
  const m = parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8")).find((e) => e.target === mountPoint);
  return m === undefined ? undefined : m.idmapped;
}
