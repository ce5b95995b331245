/**
 * Subordinate ids: /etc/subuid and /etc/subgid.
 *
 * @packageDocumentation
 */
export * from "./newidmap.js";
export * from "./parse.js";
export * from "./ranges.js";
export * from "./read.js";
