/**
 * Whether a child held at its wait step (not yet released, not yet reaped) has died meanwhile: killed from outside
 * while newuidmap wrote its maps. Such a child never ran the program, so the spawn must fail, not report the
 * program as killed. The pid cannot name another process: the child is ours and not yet waited for.
 */
import { readFileSync } from "node:fs";
import { constants } from "node:os";
import { UsernsError } from "../errors.js";

/** The signal a dead, not yet reaped child ended with, or undefined while it lives. */
export function diedWhileHeld(pid: number): { signal: string | undefined } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return { signal: undefined };
  }
  // Fields after the comm, which may itself contain spaces and parentheses.
  const rest = stat
    .slice(stat.lastIndexOf(")") + 2)
    .trim()
    .split(" ");
  if (rest[0] !== "Z" && rest[0] !== "X") return undefined;
  // Field 52 (exit_code), the 50th after the comm: the wait status, its low 7 bits the signal.
  const status = Number(rest[49]);
  const sig = Number.isInteger(status) ? status & 0x7f : 0;
  const name = Object.entries(constants.signals).find(([, n]) => n === sig)?.[0];
  return { signal: name };
}

/** The error for a held child that died before it was released. */
export function diedError(what: string, signal: string | undefined): UsernsError {
  return new UsernsError(what, {
    code: "ECHILD",
    syscall: "read",
    step: "wait",
    reason: `the child was killed${signal ? ` by ${signal}` : ""} before execve, while its maps were being written`,
  });
}
