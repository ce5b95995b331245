/**
 * Cross-checking a user namespace: the kernel's reports from every reachable
 * vantage point against the model's prediction.
 *
 * @packageDocumentation
 */
export {
  type ChainLink,
  type CheckedFile,
  type CrossCheckReport,
  type CrossCheckTarget,
  crossCheck,
  type Discrepancy,
  type Observation,
  type Vantage,
  type WrittenMaps,
} from "./crosscheck.js";
export {
  crossCheckSandbox,
  type InsideStat,
  type ObservedMount,
  type SandboxCrossCheckReport,
  type SandboxDiscrepancy,
} from "./sandbox.js";
