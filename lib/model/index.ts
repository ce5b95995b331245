/**
 * The mirror model: the kernel's id-mapping rules in pure TypeScript, no I/O.
 * Nothing here imports from outside lib/model.
 *
 * @packageDocumentation
 */

export * from "./algebra.js";
export * from "./extent.js";
export * from "./idmap.js";
export * from "./idmapped.js";
export * from "./lookup.js";
export * from "./mountcases.js";
export * from "./ranges.js";
export * from "./split.js";
export * from "./u32.js";
