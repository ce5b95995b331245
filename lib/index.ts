/**
 * userns: Linux user namespaces, id mappings and idmapped mounts for Node.js.
 *
 * @packageDocumentation
 */

export * from "./crosscheck/index.js";
export {
  type ErrnoCode,
  errnoName,
  errnoNumber,
  isUsernsErrorCode,
  UsernsError,
  type UsernsErrorCode,
  type UsernsErrorOptions,
  type UsernsOwnCode,
} from "./errors.js";
export * from "./formats/bwrap.js";
export * from "./formats/index.js";
export * from "./inventory/index.js";
export {
  CLONE_NEW,
  INIT_USER_NS_INO,
  type NamespaceIdentity,
  type NamespaceInfo,
  type NamespaceType,
  nsInfo,
  nsInfoFromFd,
  nsPath,
} from "./kernel/nsfs.js";
export { type Extent, extent } from "./model/extent.js";
export { IdMap, type MapKind } from "./model/idmap.js";
/** The whole mirror model, also available as `userns/model`. */
export * as model from "./model/index.js";
export { type MapRequest, type MapRequestVerdict, validateMapRequest } from "./model/mapwrite.js";
export {
  type PredictedMount,
  predictSandboxMounts,
  type SandboxContext,
} from "./model/sandbox.js";
export { type SplitResult, splitAgainstParent } from "./model/split.js";
export {
  type MountCase,
  type MountCaseResult,
  parseMountCases,
  runMountCasesKernel,
} from "./mounts/cases.js";
export {
  AT_RECURSIVE,
  MOUNT_ATTR,
  OPEN_TREE_CLONE,
  type Propagation,
} from "./mounts/constants.js";
export { classifyIdmapRefusal, type IdmapRefusal, REFUSAL_TEXT, refusalOf } from "./mounts/explain.js";
export { createHelperUserns, type HelperUserns, type UsernsFdHolder } from "./mounts/helper-userns.js";
export { type IdmapMountOptions, IdmappedMount, type IdmapSource, idmapMount } from "./mounts/idmap-mount.js";
export { inspectMount, type MountInspection } from "./mounts/inspect.js";
export {
  formatXMountIdmap,
  fromOciMountMappings,
  type MountIdmap,
  type OciIdMapping,
  parseXMountIdmap,
  toOciMountMappings,
  type XMountIdmap,
} from "./mounts/mapformats.js";
export { clearIdmapProbeCache, type IdmapSupport, probeIdmapSupport } from "./mounts/probe.js";
export {
  type CreateUserNamespaceOptions,
  type ReportedMaps,
  readMapsOfFd,
  UserNamespace,
} from "./namespaces/user-namespace.js";
export { collectSandboxFacts, type SandboxFactsOptions } from "./sandbox/facts.js";
export {
  capabilityNumber,
  describeFsOp,
  validateSandboxOptions,
} from "./sandbox/prepare.js";
export type * from "./sandbox/types.js";
export * from "./shift/index.js";
export {
  type BeforeExecInfo,
  type ChildStreams,
  DEFAULT_MAX_BUFFER,
  type ExitStatus,
  type JoinTarget,
  type KilledBy,
  type MapInput,
  type MapMethod,
  type MappingResult,
  type MapWriter,
  type NamespaceIds,
  type NamespaceKind,
  RunError,
  type RunOptions,
  type RunOutput,
  type RunResult,
  run,
  type SpawnOptions,
  type StdioEntry,
  type StdioOption,
  type StdioStreams,
  spawn,
  UsernsChildProcess,
  type UsernsChildProcessEvents,
  validateSpawnOptions,
} from "./spawn/index.js";
export * from "./subid/index.js";
export * from "./verify/index.js";
