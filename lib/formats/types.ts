/**
 * Types shared by every interop format. All formats go through the model's
 * {@link IdMap}: an extent's `first` is the id on the namespace side and
 * `lowerFirst` the id on the parent side. What those two columns are called
 * in each format, and in which order the format writes them, is in its
 * {@link FormatSpec.columns}.
 */
import type { IdMap } from "../model/idmap.js";

/** The two id kinds interop formats carry. */
export type IdKind = "uid" | "gid";

/** Which maps a command works on: `both` means uid and gid. */
export type KindSelection = IdKind | "both";

/**
 * What the two columns of a map mean.
 * - `userns`: a process's user namespace: `first` = id inside the namespace,
 *   `lowerFirst` = id in the parent namespace (outside).
 * - `mount`: an idmapped mount: `first` = id stored on disk, `lowerFirst` =
 *   id seen through the mount. The kernel reads an on-disk id as an id inside
 *   the mount's user namespace and maps it down (spec §8.4), so a mount map
 *   is the map of the user namespace attached to the mount, column for column.
 */
export type Direction = "userns" | "mount";

/** A uid map and a gid map; either may be absent (not given, or filtered out by kind). */
export interface MapSet {
  readonly uid?: IdMap | undefined;
  readonly gid?: IdMap | undefined;
}

/** Facts some formats need to resolve their input into maps (subordinate ids, the caller, parent maps). */
export interface ResolveContext {
  /** /etc/subuid entries (`owner:start:count`), for docker, subid and podman keep-id/auto. */
  subuid?: readonly { owner: string; start: number; count: number }[];
  /** /etc/subgid entries. */
  subgid?: readonly { owner: string; start: number; count: number }[];
  /** Known users (name and uid), to match a subid owner given by name or by uid, as shadow does. */
  users?: readonly { name: string; uid: number; gid?: number }[];
  /** Known groups (name and gid), for Docker's `user:group`. */
  groups?: readonly { name: string; gid: number }[];
  /** The caller's uid (podman keep-id; the id mapped to 0 in podman's rootless namespace). */
  uid?: number;
  /** The caller's gid. */
  gid?: number;
  /** The maps of the parent (podman's rootless) namespace, for podman's `@host` form and crun's `@`. */
  parentMaps?: MapSet;
  /** The container's maps, for an OCI mount or crun `idmap` without explicit mappings. */
  containerMaps?: MapSet;
  /** Owner uid/gid of an nspawn root directory, for `--private-users=yes`. */
  rootOwner?: number;
}

/** Options of a parser. */
export interface ParseOptions extends ResolveContext {
  /** Which maps to produce. Formats that hold one untagged map put it in these kinds. Default `both`. */
  kind?: KindSelection;
  /** subid: whose lines to read when the text has several owners. */
  owner?: string;
}

/** Options of a formatter. */
export interface FormatOptions {
  /** Which maps to write. Default `both`. */
  kind?: KindSelection;
  /** Owner name for subid and docker output. Default `dockremap` for docker, required for subid when absent. */
  owner?: string;
}

/** The formats' CLI names. */
export type FormatName =
  | "kernel"
  | "oci"
  | "oci-mount"
  | "lxc"
  | "lxc-entry"
  | "incus-raw"
  | "incus-json"
  | "podman"
  | "crun-mount"
  | "unshare"
  | "unshare-legacy"
  | "x-mount-idmap"
  | "docker"
  | "subid"
  | "nspawn"
  | "go"
  | "storage"
  | "cri";

/** One interop format: its parser, its formatter and what its columns mean. */
export interface FormatSpec {
  /** CLI name. */
  readonly name: FormatName;
  /** Short title for listings. */
  readonly title: string;
  /** The exact syntax, one line. */
  readonly syntax: string;
  /** Process namespace map or mount map. */
  readonly direction: Direction;
  /** The format's columns in the order it writes them, each saying which IdMap field it is. */
  readonly columns: readonly { readonly name: string; readonly is: "first" | "lowerFirst" | "count" | "kind" }[];
  /** `one`: the text holds one untagged map (the kind comes from `--kind`); `tagged`: entries say uid/gid/both. */
  readonly holds: "one" | "tagged";
  /**
   * How a map comes back from format → parse: `exact` (same extents, same order),
   * `canonical` (sorted and merged, as the tool itself does), or `none` (the format
   * names a source, e.g. a user, and needs context to resolve).
   */
  readonly roundTrip: "exact" | "canonical" | "none";
  /** Notes on direction and resolution, shown by `convert --list`. */
  readonly notes: string;
  /** Text → maps. Throws {@link FormatError}. */
  parse(text: string, options?: ParseOptions): MapSet;
  /** Maps → text. Throws {@link FormatError} when the format cannot hold the maps. */
  format(maps: MapSet, options?: FormatOptions): string;
}
