/**
 * The error type every userns failure is raised as: kernel refusals, model
 * refusals and helper failures alike. It carries the facts a caller branches
 * on (`code`, `errno`, `syscall`, `step`) and says what was being attempted.
 *
 * @packageDocumentation
 */
import { constants } from "node:os";

const errnoNames: ReadonlyMap<number, ErrnoCode> = new Map(
  Object.entries(constants.errno).map(([name, num]) => [num, name as ErrnoCode]),
);

/** The errno name for a number, e.g. 1 → `"EPERM"`; unknown numbers give `"E<n>"`. */
export function errnoName(errno: number): ErrnoCode {
  return errnoNames.get(errno) ?? `E${errno}`;
}

/** The errno number for a name, e.g. `"EPERM"` → 1, or undefined. */
export function errnoNumber(name: string): number | undefined {
  const n = (constants.errno as Record<string, number | undefined>)[name];
  if (n !== undefined) return n;
  // The names errnoName makes for errnos Node has no name for.
  return /^E[0-9]+$/.test(name) ? Number(name.slice(1)) : undefined;
}

/** True if `value` is a code a {@link UsernsError} may carry (an errno name, `E<n>`, or a userns code). */
export function isUsernsErrorCode(value: string): value is UsernsErrorCode {
  return ownCodes.has(value) || errnoNumber(value) !== undefined;
}

/**
 * errno names, as the kernel and Node report them (`os.constants.errno` on
 * Linux). An errno Node has no name for is reported as `E<number>`.
 */
export type ErrnoCode =
  | "E2BIG"
  | "EACCES"
  | "EADDRINUSE"
  | "EADDRNOTAVAIL"
  | "EAFNOSUPPORT"
  | "EAGAIN"
  | "EALREADY"
  | "EBADF"
  | "EBADMSG"
  | "EBUSY"
  | "ECANCELED"
  | "ECHILD"
  | "ECONNABORTED"
  | "ECONNREFUSED"
  | "ECONNRESET"
  | "EDEADLK"
  | "EDESTADDRREQ"
  | "EDOM"
  | "EDQUOT"
  | "EEXIST"
  | "EFAULT"
  | "EFBIG"
  | "EHOSTUNREACH"
  | "EIDRM"
  | "EILSEQ"
  | "EINPROGRESS"
  | "EINTR"
  | "EINVAL"
  | "EIO"
  | "EISCONN"
  | "EISDIR"
  | "ELOOP"
  | "EMFILE"
  | "EMLINK"
  | "EMSGSIZE"
  | "EMULTIHOP"
  | "ENAMETOOLONG"
  | "ENETDOWN"
  | "ENETRESET"
  | "ENETUNREACH"
  | "ENFILE"
  | "ENOBUFS"
  | "ENODATA"
  | "ENODEV"
  | "ENOENT"
  | "ENOEXEC"
  | "ENOLCK"
  | "ENOLINK"
  | "ENOMEM"
  | "ENOMSG"
  | "ENOPROTOOPT"
  | "ENOSPC"
  | "ENOSR"
  | "ENOSTR"
  | "ENOSYS"
  | "ENOTCONN"
  | "ENOTDIR"
  | "ENOTEMPTY"
  | "ENOTSOCK"
  | "ENOTSUP"
  | "ENOTTY"
  | "ENXIO"
  | "EOPNOTSUPP"
  | "EOVERFLOW"
  | "EPERM"
  | "EPIPE"
  | "EPROTO"
  | "EPROTONOSUPPORT"
  | "EPROTOTYPE"
  | "ERANGE"
  | "EROFS"
  | "ESPIPE"
  | "ESRCH"
  | "ESTALE"
  | "ETIME"
  | "ETIMEDOUT"
  | "ETXTBSY"
  | "EWOULDBLOCK"
  | "EXDEV"
  | `E${number}`;

/**
 * The codes userns itself gives, each documented in docs/errors.md:
 *
 * - `ERR_USERNS_USAGE`: an invalid argument or option.
 * - `ERR_USERNS_FORMAT`: input text that does not parse (a map, a subid file, a format).
 * - `ERR_USERNS_NATIVE_LOAD`: the native addon could not be loaded.
 * - `ERR_USERNS_NEWIDMAP`: newuidmap/newgidmap refused or failed.
 * - `ERR_USERNS_HELPER`: a helper process userns started ended unexpectedly.
 * - `ERR_USERNS_PROTOCOL`: the spawned child broke the parent/child handshake (a bug).
 * - `ERR_USERNS_MULTITHREADED`: an operation Node's process cannot do because it has threads.
 * - `ERR_USERNS_EXIT`: {@link run}: the program exited non-zero or was killed by a signal.
 * - `ERR_USERNS_TIMEOUT`: {@link run}: the program ran longer than `timeout`.
 * - `ERR_CHILD_PROCESS_STDIO_MAXBUFFER`: {@link run}: output went over `maxBuffer` (Node's code).
 * - `ABORT_ERR`: an AbortSignal fired, or kill() cancelled a spawn before execve (Node's code).
 * - `ERR_UNKNOWN_SIGNAL`: a signal name or number that does not exist (Node's code).
 * - `ERR_USERNS`: an unexpected failure with no better code (a bug: please report it).
 */
export type UsernsOwnCode =
  | "ERR_USERNS_USAGE"
  | "ERR_USERNS_FORMAT"
  | "ERR_USERNS_NATIVE_LOAD"
  | "ERR_USERNS_NEWIDMAP"
  | "ERR_USERNS_HELPER"
  | "ERR_USERNS_PROTOCOL"
  | "ERR_USERNS_MULTITHREADED"
  | "ERR_USERNS_EXIT"
  | "ERR_USERNS_TIMEOUT"
  | "ERR_CHILD_PROCESS_STDIO_MAXBUFFER"
  | "ABORT_ERR"
  | "ERR_UNKNOWN_SIGNAL"
  | "ERR_USERNS_NO_FREE_RANGE"
  | "ERR_USERNS_RANGE_TAKEN"
  | "ERR_USERNS_SHIFT_UNMAPPED"
  | "ERR_USERNS_SHIFT_XATTR"
  | "ERR_USERNS_SHIFT_ALREADY"
  | "ERR_USERNS_SHIFT_INTERRUPTED"
  | "ERR_USERNS_SHIFT_NO_JOURNAL"
  | "ERR_USERNS_SHIFT_JOURNAL"
  | "ERR_USERNS_BWRAP_ARGS"
  | "ERR_USERNS";

/** Every `code` a {@link UsernsError} can have: an errno name or one of userns's own codes. */
export type UsernsErrorCode = ErrnoCode | UsernsOwnCode;

const ownCodes: ReadonlySet<string> = new Set<UsernsOwnCode>([
  "ERR_USERNS_USAGE",
  "ERR_USERNS_FORMAT",
  "ERR_USERNS_NATIVE_LOAD",
  "ERR_USERNS_NEWIDMAP",
  "ERR_USERNS_HELPER",
  "ERR_USERNS_PROTOCOL",
  "ERR_USERNS_MULTITHREADED",
  "ERR_USERNS_EXIT",
  "ERR_USERNS_TIMEOUT",
  "ERR_CHILD_PROCESS_STDIO_MAXBUFFER",
  "ABORT_ERR",
  "ERR_UNKNOWN_SIGNAL",
  "ERR_USERNS_NO_FREE_RANGE",
  "ERR_USERNS_RANGE_TAKEN",
  "ERR_USERNS_SHIFT_UNMAPPED",
  "ERR_USERNS_SHIFT_XATTR",
  "ERR_USERNS_SHIFT_ALREADY",
  "ERR_USERNS_SHIFT_INTERRUPTED",
  "ERR_USERNS_SHIFT_NO_JOURNAL",
  "ERR_USERNS_SHIFT_JOURNAL",
  "ERR_USERNS_BWRAP_ARGS",
  "ERR_USERNS",
]);

const brand: unique symbol = Symbol.for("userns.UsernsError");

/** Facts attached to a {@link UsernsError}. */
export interface UsernsErrorOptions {
  /** errno number; `code` is derived from it when not given. */
  errno?: number;
  /** errno name such as `"EPERM"`, or a userns code such as `"ERR_USERNS_USAGE"`. */
  code?: UsernsErrorCode;
  /** The syscall (or helper program) that failed: `write`, `clone3`, `mount_setattr`, `newuidmap`, ... */
  syscall?: string;
  /** The step of a multi-step operation: `uid_map`, `setgroups`, `gid_map`, `setns`, `exec`, ... */
  step?: string;
  /** A path involved, where there is one. */
  path?: string;
  /** The rule that refused, for a refused map: the model's kernel rule (`mappings_overlap`) or newuidmap's (`subid_range`). */
  rule?: string;
  /** Why, in words, when the kernel's errno alone does not say (e.g. the model's explanation). */
  reason?: string;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * A Node-style error: `code` is the errno name, `syscall` the call that failed,
 * and the message says what was being attempted, e.g.
 * `writing uid_map of pid 4242: EPERM: lower ids 100000-165535 are not mapped in the parent namespace`.
 */
export class UsernsError extends Error {
  /** errno name (`"EPERM"`) or userns code (`"ERR_USERNS_..."`); see {@link UsernsErrorCode} and docs/errors.md. */
  readonly code: UsernsErrorCode;
  /** errno number, when the failure came from the kernel or the model's errno prediction. */
  readonly errno: number | undefined;
  /** The syscall or helper that failed. */
  readonly syscall: string | undefined;
  /** The step of a multi-step operation. */
  readonly step: string | undefined;
  /** A path involved. */
  readonly path: string | undefined;
  /** The rule that refused, for a refused map (see {@link UsernsErrorOptions.rule}). */
  readonly rule: string | undefined;
  /** What was being attempted, without the errno and reason. */
  readonly attempted: string;
  /** The reason in words, when known. */
  readonly reason: string | undefined;

  /**
   * @param attempted - what was being attempted, e.g. `writing uid_map of pid 4242`
   * @param options - the facts; `code` defaults to the errno's name
   */
  constructor(attempted: string, options: UsernsErrorOptions = {}) {
    const code = options.code ?? (options.errno !== undefined ? errnoName(options.errno) : "ERR_USERNS");
    const parts = [attempted, code];
    if (options.reason) parts.push(options.reason);
    super(parts.join(": "), options.cause !== undefined ? { cause: options.cause } : undefined);
    this.code = code;
    this.errno = options.errno ?? errnoNumber(code);
    this.syscall = options.syscall;
    this.step = options.step;
    this.path = options.path;
    this.rule = options.rule;
    this.attempted = attempted;
    this.reason = options.reason;
  }

  /** True for any UsernsError, also across copies of the package. */
  static isUsernsError(value: unknown): value is UsernsError {
    return typeof value === "object" && value !== null && (value as { [brand]?: true })[brand] === true;
  }
}
Object.defineProperty(UsernsError.prototype, "name", { value: "UsernsError", enumerable: false });
Object.defineProperty(UsernsError.prototype, brand, { value: true, enumerable: false });

/** Throws a usage error (bad option or argument), code `ERR_USERNS_USAGE`. */
/**
 * The code of an error a Node fs or child_process call threw (its errno name), as a {@link UsernsErrorCode};
 * `fallback` when it has none this library knows.
 */
export function codeOfNodeError(e: unknown, fallback: UsernsErrorCode): UsernsErrorCode {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && isUsernsErrorCode(code) ? code : fallback;
}

export function usageError(message: string): UsernsError {
  return new UsernsError(message, { code: "ERR_USERNS_USAGE" });
}
