/**
 * The host's user namespaces and who claims which ids: inventory, claims and
 * the lease allocator.
 *
 * @packageDocumentation
 */
export * from "./check.js";
export * from "./claims.js";
export * from "./inventory.js";
export * from "./kubelet.js";
export * from "./leases.js";
export { type NsPlace, nsfsMounts, parseNsLink } from "./scan.js";
export * from "./systemd.js";
