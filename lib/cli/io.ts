/**
 * What the CLI commands share: where output goes, reading optional files,
 * decimal id options, the exit code for a refusal.
 */
import { readFileSync } from "node:fs";
import { UsernsError, usageError } from "../errors.js";

/** Where output goes; tests capture it. `readStdin` defaults to reading fd 0. */
export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
  readStdin?: () => string;
}

/** Exit code when the input or the system was refused (a check failed, a format did not parse). */
export const EXIT_REFUSED = 1;

/** A file's text, or "" when it cannot be read (absent files are normal for /etc/subuid and such). */
export function readOptional(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** A decimal id option (`--uid 1000`); undefined when absent. */
export function parseDecimalId(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[0-9]+$/.test(v) || Number(v) > 0xffff_ffff)
    throw usageError(`${what} must be a decimal id, got ${JSON.stringify(v)}`);
  return Number(v);
}

/**
 * The exit code for an error a command threw: a {@link UsernsError} is printed as `userns: MESSAGE` and gives
 * 2 for a usage error, else {@link EXIT_REFUSED}; anything else is a bug and is thrown on.
 */
export function exitCodeOfError(e: unknown, io: Pick<CliIo, "err">): number {
  if (!UsernsError.isUsernsError(e)) throw e;
  io.err(`userns: ${e.message}\n`);
  return e.code === "ERR_USERNS_USAGE" ? 2 : EXIT_REFUSED;
}
