/**
 * The error type every userns failure is raised as: kernel refusals, model
 * refusals and helper failures alike. It carries the facts a caller branches
 * on (`code`, `errno`, `syscall`, `step`) and says what was being attempted.
 *
 * @packageDocumentation
 */
import { constants } from "node:os";

const errnoNames: ReadonlyMap<number, string> = new Map(
  Object.entries(constants.errno).map(([name, num]) => [num, name]),
);

/** The errno name for a number, e.g. 1 → `"EPERM"`; unknown numbers give `"E<n>"`. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}

/** The errno number for a name, e.g. `"EPERM"` → 1, or undefined. */
export function errnoNumber(name: string): number | undefined {
  return (constants.errno as Record<string, number | undefined>)[name];
}

const brand: unique symbol = Symbol.for("userns.UsernsError");

/** Facts attached to a {@link UsernsError}. */
export interface UsernsErrorOptions {
  /** errno number; `code` is derived from it when not given. */
  errno?: number;
  /** errno name such as `"EPERM"`, or a userns code such as `"ERR_USERNS_USAGE"`. */
  code?: string;
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
  /** errno name (`"EPERM"`) or userns code (`"ERR_USERNS_..."`). */
  readonly code: string;
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
export function usageError(message: string): UsernsError {
  return new UsernsError(message, { code: "ERR_USERNS_USAGE" });
}
