/**
 * Spawning programs into new or joined namespaces.
 *
 * @packageDocumentation
 */
export { type MapInput, type MapMethod, type MappingResult, type MapWriter, parseMapText } from "../child/maps.js";
export type { ChildStep } from "../child/steps.js";
export {
  type ChildStreams,
  type ExitStatus,
  type KilledBy,
  type StdioOption,
  type StdioStreams,
  UsernsChildProcess,
  type UsernsChildProcessEvents,
} from "./child-process.js";
export { DEFAULT_MAX_BUFFER, RunError, type RunOptions, type RunOutput, type RunResult, run } from "./run.js";
export {
  type BeforeExecInfo,
  type JoinTarget,
  type NamespaceIds,
  type NamespaceKind,
  resolveExecutable,
  type SpawnOptions,
  type StdioEntry,
  spawn,
  validateSpawnOptions,
} from "./spawn.js";
