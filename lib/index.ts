/**
 * userns: Linux user namespaces, id mappings and idmapped mounts for Node.js.
 *
 * @packageDocumentation
 */

export * from "./crosscheck/index.js";
export { errnoName, errnoNumber, UsernsError, type UsernsErrorOptions } from "./errors.js";
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
export {
  type CreateUserNamespaceOptions,
  type ReportedMaps,
  readMapsOfFd,
  UserNamespace,
} from "./namespaces/user-namespace.js";
export {
  type ChildStep,
  type ExitStatus,
  type JoinTarget,
  type MapInput,
  type MapMethod,
  type MappingResult,
  type MapWriter,
  type NamespaceKind,
  type SpawnOptions,
  type StdioEntry,
  spawn,
  UsernsChildProcess,
  validateSpawnOptions,
} from "./spawn/index.js";
export * from "./verify/index.js";
