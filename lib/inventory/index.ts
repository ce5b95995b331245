/**
 * The host's user namespaces and who claims which ids: inventory, claims and
 * the lease allocator. Only the public API is re-exported here; the /proc scan
 * helpers, the lease lock and the listns probe are internal.
 *
 * @packageDocumentation
 */
export { checkInventory, type NamespaceCheck } from "./check.js";
export {
  type ClaimOverlap,
  type ClaimSource,
  type ClaimSources,
  claimOverlaps,
  collectClaims,
  type IdClaim,
} from "./claims.js";
export {
  type DiscoveryMethod,
  type ListUserNamespacesOptions,
  listUserNamespaces,
  listUserNamespacesAsync,
  type NamespaceHolder,
  type UserNamespaceEntry,
  type UserNamespaceInventory,
} from "./inventory.js";
export {
  KUBELET_DEFAULT_SCHEME,
  type KubeletPodRange,
  type KubeletScheme,
  kubeletNextSlot,
  readKubeletState,
} from "./kubelet.js";
export type { Lease } from "./lease.js";
export {
  type AllocateRangeOptions,
  type Allocation,
  allocateRange,
  defaultLeaseDir,
  readLeases,
  reclaimLeases,
  releaseLease,
  tieLease,
} from "./leases.js";
export { type DocumentedRange, SYSTEMD_RANGES } from "./systemd.js";
