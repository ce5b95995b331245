/**
 * Spawning programs into new or joined namespaces.
 *
 * @packageDocumentation
 */

export { type MapInput, type MapMethod, type MappingResult, type MapWriter, parseMapText } from "../child/maps.js";
export type { ChildStep } from "../child/steps.js";
export { type ExitStatus, UsernsChildProcess } from "./child-process.js";
export {
  type JoinTarget,
  type NamespaceKind,
  resolveExecutable,
  type SpawnOptions,
  type StdioEntry,
  spawn,
  validateSpawnOptions,
} from "./spawn.js";
