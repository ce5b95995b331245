/**
 * Interop formats: every container ecosystem's way of writing id maps, read
 * and written through the model's IdMap, with the direction of each column
 * stated.
 *
 * @packageDocumentation
 */
export * from "./crun.js";
export * from "./errors.js";
export * from "./incus.js";
export * from "./json.js";
export * from "./kernel.js";
export * from "./lxc.js";
export * from "./nspawn.js";
export * from "./podman.js";
export * from "./registry.js";
export * from "./subid.js";
export type * from "./types.js";
// Not the X-mount.idmap MapSet pair: the package's parseXMountIdmap/formatXMountIdmap are lib/mounts/mapformats'.
export {
  formatUnshare,
  formatUnshareLegacy,
  type MountIdmapEntry,
  parseUnshare,
  parseUnshareLegacy,
  parseXMountIdmapEntries,
} from "./unshare.js";
