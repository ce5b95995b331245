/**
 * Subordinate ids: /etc/subuid and /etc/subgid.
 *
 * @packageDocumentation
 */
export {
  coveredBy,
  type NewidmapCaller,
  type NewidmapRange,
  type NewidmapRule,
  type NewidmapVerdict,
  newidmapContext,
  newidmapVerdict,
} from "./newidmap.js";
export * from "./parse.js";
export * from "./ranges.js";
export * from "./read.js";
