/**
 * Map-write cases (case-formats §1) as the kernel runner needs them: the
 * model's parsed case resolved into plain values (bytes, ids, capability
 * bits), and the result object in the format's field order.
 */
import { CAPABILITIES } from "../model/caps.js";
import { type CaseCred, CaseInputError, type MapWriteCase, parseMapWriteCase } from "../model/cases.js";
import type { MapKind } from "../model/idmap.js";

/** Who acts: root of the namespace, a dropped-privilege process there, or the child itself. */
export type Role = "privileged" | "unprivileged" | "inside";

/** Resolved credentials of one actor (writer, creator or opener). */
export interface Creds {
  readonly role: Role;
  /** uid and gid in the acting namespace, for `unprivileged` (default 1000). */
  readonly uid: number;
  readonly gid: number;
  /** Capability names removed from the effective and permitted sets, as written. */
  readonly dropCaps: readonly string[];
  /** The same capabilities as a bit mask (bit n = capability n). */
  readonly dropMask: bigint;
}

/** One intermediate namespace P. A `null` map is left unwritten. */
export interface ParentNs {
  readonly uidMap: Uint8Array | null;
  readonly gidMap: Uint8Array | null;
  readonly projidMap: Uint8Array | null;
  readonly setgroups: Uint8Array | null;
}

/** How the second write reaches the kernel. */
export type SecondFd = "same" | "reopen" | "pwrite0";

/** A parsed, fully resolved map-write case. */
export interface MapCase {
  /** Echoed as given (any JSON value). */
  readonly id: unknown;
  readonly kind: MapKind;
  /** Outermost first; empty when the child's parent is the initial namespace. */
  readonly parents: readonly ParentNs[];
  readonly lines: Uint8Array;
  readonly writer: Creds;
  readonly creator: Creds;
  /** undefined: the writer opens. */
  readonly opener: Creds | undefined;
  readonly setgroups: Uint8Array | null;
  readonly second: Uint8Array | null;
  readonly secondFd: SecondFd;
  readonly setgroupsAfter: Uint8Array | null;
}

/** `{ok, errno, written}` of a nested write, plus `stage: "open"` when its open failed. */
export interface NestedResult {
  ok: boolean;
  errno: string | null;
  written: number;
  stage?: "open";
}

/** A §1 result line. Field order here is the order printed. */
export interface MapResult {
  id: unknown;
  ok: boolean | null;
  errno?: string | null;
  written?: number | null;
  stage: "write" | "open" | "setup" | "input";
  len?: number;
  readback_from_parent?: string | null;
  readback_from_init?: string | null;
  readback_from_inside?: string | null;
  setgroups_readback?: string | null;
  setgroups?: NestedResult;
  second?: NestedResult;
  setgroups_after?: NestedResult;
  setup_error?: string;
  error?: string;
}

/** The default ids of an `unprivileged` actor. */
export const UNPRIVILEGED_ID = 1000;

export { CaseInputError };

function resolveCreds(c: CaseCred): Creds {
  let dropMask = 0n;
  for (const name of c.dropCaps) dropMask |= 1n << BigInt(CAPABILITIES.indexOf(name));
  return {
    role: c.role,
    uid: c.uid ?? UNPRIVILEGED_ID,
    gid: c.gid ?? UNPRIVILEGED_ID,
    dropCaps: [...c.dropCaps],
    dropMask,
  };
}

/**
 * Resolves a case as the model's parser read it (lib/model/cases.ts, the one
 * loader of the format) into what the runner needs: defaults applied, the
 * creator made explicit, capabilities as a bit mask.
 */
export function resolveMapCase(c: MapWriteCase): MapCase {
  const writer = resolveCreds(c.writer);
  const creator =
    c.creator !== undefined
      ? resolveCreds(c.creator)
      : writer.role === "inside"
        ? resolveCreds({ role: "privileged", dropCaps: [] })
        : writer;
  return {
    id: c.id,
    kind: c.kind,
    parents: c.parents.map((p) => ({ ...p })),
    lines: c.lines,
    writer,
    creator,
    opener: c.opener === undefined ? undefined : resolveCreds(c.opener),
    setgroups: c.setgroups,
    second: c.second ?? null,
    secondFd: c.secondFd,
    setgroupsAfter: c.setgroupsAfter ?? null,
  };
}

/** Parses one JSON case object. Throws {@link CaseInputError} when malformed. */
export function parseMapCase(input: unknown): MapCase {
  return resolveMapCase(parseMapWriteCase(input));
}

/** The case's id for echoing, even from a malformed line. */
export function caseId(o: unknown): unknown {
  if (typeof o === "object" && o !== null && !Array.isArray(o)) return (o as Record<string, unknown>).id ?? null;
  return null;
}

/** A case line that is empty or a `#` comment is skipped by every reader of the format. */
export function isSkippedLine(line: string): boolean {
  const t = line.trim();
  return t === "" || t.startsWith("#");
}

/** The `stage: "input"` result for a malformed case. */
export function inputErrorResult(id: unknown, message: string): MapResult {
  return { id, ok: null, stage: "input", error: message };
}
