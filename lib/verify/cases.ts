/**
 * Map-write cases (case-formats §1): the input line parsed into a fully resolved
 * value (bytes, ids, capability bits), and the result object in the format's
 * field order. The kernel runner and the campaign use these; the model's
 * predictor reads the same JSON lines.
 */
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

/** Capability names and numbers (include/uapi/linux/capability.h). */
export const CAPABILITIES: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
];

/** The default ids of an `unprivileged` actor. */
export const UNPRIVILEGED_ID = 1000;

/** Raised for a malformed case; becomes a `stage: "input"` result. */
export class CaseInputError extends Error {}

type Json = Record<string, unknown>;

function fail(msg: string): never {
  throw new CaseInputError(msg);
}

function hexBytes(field: string, v: unknown): Uint8Array {
  if (typeof v !== "string" || v.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(v))
    fail(`${field} must be a string of hex digit pairs`);
  return Uint8Array.from(Buffer.from(v, "hex"));
}

function textBytes(field: string, v: unknown): Uint8Array {
  if (typeof v !== "string") fail(`${field} must be a string`);
  return Uint8Array.from(Buffer.from(v, "utf8"));
}

/** A text field that may be `null`/absent, with an optional `<field>_hex` twin. */
function optionalBytes(o: Json, field: string): Uint8Array | null {
  const hex = o[`${field}_hex`];
  if (hex !== undefined && hex !== null) return hexBytes(`${field}_hex`, hex);
  const v = o[field];
  if (v === undefined || v === null) return null;
  return textBytes(field, v);
}

function id32(field: string, v: unknown, dflt: number): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffff_fffe)
    fail(`${field} must be an integer id from 0 to 4294967294`);
  return v;
}

function parseCreds(field: string, v: unknown, allowInside: boolean): Creds {
  let role: unknown = v;
  let o: Json = {};
  if (typeof v === "object" && v !== null && !Array.isArray(v)) {
    o = v as Json;
    role = o.role;
  }
  if (role !== "privileged" && role !== "unprivileged" && role !== "inside")
    fail(`${field} must be "privileged", "unprivileged", "inside" or an object with such a role`);
  if (role === "inside" && !allowInside) fail(`${field} cannot be "inside"`);
  const dropCaps: string[] = [];
  let dropMask = 0n;
  if (o.drop_caps !== undefined) {
    if (!Array.isArray(o.drop_caps)) fail(`${field}.drop_caps must be a list of capability names`);
    for (const c of o.drop_caps) {
      const name = typeof c === "string" ? c.toUpperCase() : "";
      const bit = CAPABILITIES.indexOf(name.startsWith("CAP_") ? name : `CAP_${name}`);
      if (bit < 0) fail(`${field}.drop_caps: unknown capability ${JSON.stringify(c)}`);
      dropCaps.push(CAPABILITIES[bit]!);
      dropMask |= 1n << BigInt(bit);
    }
  }
  return {
    role,
    uid: id32(`${field}.uid`, o.uid, UNPRIVILEGED_ID),
    gid: id32(`${field}.gid`, o.gid, UNPRIVILEGED_ID),
    dropCaps,
    dropMask,
  };
}

function parseParent(v: unknown, kind: MapKind, where: string): ParentNs {
  if (typeof v === "string") {
    const b = textBytes(where, v);
    return { uidMap: b, gidMap: b, projidMap: b, setgroups: null };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(`${where} must be map text or an object`);
  const o = v as Json;
  const uidMap = optionalBytes(o, "uid_map");
  const gidMap = optionalBytes(o, "gid_map");
  // A P object names uid_map and gid_map; for projid cases its projid_map is
  // its own field when given, else the uid_map text (as with the string form).
  const projidMap =
    o.projid_map !== undefined || o.projid_map_hex !== undefined ? optionalBytes(o, "projid_map") : uidMap;
  void kind;
  return { uidMap, gidMap, projidMap, setgroups: optionalBytes(o, "setgroups") };
}

/** The case's id for echoing, even from a malformed line. */
export function caseId(o: unknown): unknown {
  if (typeof o === "object" && o !== null && !Array.isArray(o)) return (o as Json).id ?? null;
  return null;
}

/** Parses one JSON case object. Throws {@link CaseInputError} when malformed. */
export function parseMapCase(input: unknown): MapCase {
  if (typeof input !== "object" || input === null || Array.isArray(input)) fail("a case must be a JSON object");
  const o = input as Json;
  const kind = o.kind ?? "uid";
  if (kind !== "uid" && kind !== "gid" && kind !== "projid") fail(`kind must be "uid", "gid" or "projid"`);
  let parents: ParentNs[] = [];
  if (Array.isArray(o.parent)) parents = o.parent.map((p, i) => parseParent(p, kind, `parent[${i}]`));
  else if (o.parent !== undefined && o.parent !== null) parents = [parseParent(o.parent, kind, "parent")];
  if (parents.length > 30) fail("parent: at most 30 intermediate namespaces");
  const lines = optionalBytes(o, "lines");
  if (lines === null) fail("lines (or lines_hex) is required");
  const writer = parseCreds("writer", o.writer ?? "privileged", true);
  const creator =
    o.creator === undefined || o.creator === null
      ? writer.role === "inside"
        ? parseCreds("creator", "privileged", false)
        : writer
      : parseCreds("creator", o.creator, false);
  const opener = o.opener === undefined || o.opener === null ? undefined : parseCreds("opener", o.opener, true);
  const secondFd = o.second_fd ?? "same";
  if (secondFd !== "same" && secondFd !== "reopen" && secondFd !== "pwrite0")
    fail(`second_fd must be "same", "reopen" or "pwrite0"`);
  return {
    id: caseId(o),
    kind,
    parents,
    lines,
    writer,
    creator,
    opener,
    setgroups: optionalBytes(o, "setgroups"),
    second: optionalBytes(o, "second"),
    secondFd,
    setgroupsAfter: optionalBytes(o, "setgroups_after"),
  };
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
