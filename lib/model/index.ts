/**
 * The mirror model: the kernel's id-mapping rules in pure TypeScript, no I/O.
 * Nothing here imports from outside lib/model.
 *
 * @packageDocumentation
 */

export * from "./algebra.js";
export * from "./caps.js";
export * from "./cases.js";
export * from "./extent.js";
export * from "./fsxattr.js";
export * from "./idmap.js";
export * from "./idmapped.js";
export * from "./lookup.js";
export * from "./mapwrite.js";
export * from "./mountcases.js";
export * from "./mountinfo.js";
export * from "./ns.js";
export * from "./parse.js";
export * from "./ranges.js";
export * from "./ranges.js";
export * from "./readback.js";
export * from "./sandbox.js";
export * as sim from "./sim/index.js";
export * from "./split.js";
export * from "./u32.js";
