/**
 * The batch predictor for map-write cases (/work/shared/spec/case-formats.md
 * §1): builds the namespaces a case describes in the model, runs the writes
 * the case asks for in the kernel's order, and reports every output field.
 *
 * Interpretations where the format leaves room (the kernel runner must agree):
 * - Each intermediate namespace P is created by the process acting for its
 *   parent (root of init first); that process writes P's setgroups, uid_map,
 *   gid_map (and projid_map for kind projid; an object's `projid_map`
 *   defaults to its `uid_map`); the process in P then becomes uid 0 / gid 0
 *   there when P maps them, and otherwise keeps its kernel ids.
 * - `uid`/`gid` in a credential object apply to the unprivileged role only
 *   (default 1000); an id the writer's namespace does not map is a setup error.
 * - `drop_caps` on an `inside` role removes capabilities after unshare; an
 *   inside writer and an inside opener are the same process, so both drop lists apply to it.
 * - The child's setgroups file (`setgroups`, `setgroups_after`) is opened and
 *   written by the writer; map files are opened by the opener.
 * - Every process is dumpable, so /proc/PID files are owned by the task's
 *   euid/egid; opening a map or setgroups file for writing is judged by DAC
 *   (owner, or CAP_DAC_OVERRIDE over mapped owner ids) → EACCES at stage open.
 * - A setup failure gives ok/errno/written/readbacks null and `setup_error`.
 */
import { type Capability, type Cred, dropCaps, FULL_CAPS, isCapability, NO_CAPS } from "./caps.js";
import type { MapKind } from "./idmap.js";
import {
  formatSetgroups,
  type MapFile,
  mapWrite,
  procFileMayWrite,
  setgroupsOpenPermitted,
  setgroupsWrite,
} from "./mapwrite.js";
import { createUserNs, INIT_USER_NS, makeKid, type UserNs } from "./ns.js";
import { toBytes } from "./parse.js";
import { readProcMap } from "./readback.js";
import { INVALID_ID, isU32 } from "./u32.js";

/** A credential form of the case format. */
export interface CaseCred {
  role: "privileged" | "unprivileged" | "inside";
  uid?: number;
  gid?: number;
  dropCaps: readonly Capability[];
}

/** One intermediate namespace P: map texts (null = not written) and its setgroups text. */
export interface CaseParent {
  uidMap: Uint8Array | null;
  gidMap: Uint8Array | null;
  projidMap: Uint8Array | null;
  setgroups: Uint8Array | null;
}

/** A validated map-write case. */
export interface MapWriteCase {
  id: unknown;
  kind: MapKind;
  parents: readonly CaseParent[];
  lines: Uint8Array;
  writer: CaseCred;
  creator?: CaseCred;
  opener?: CaseCred;
  setgroups: Uint8Array | null;
  second?: Uint8Array;
  secondFd: "same" | "reopen" | "pwrite0";
  setgroupsAfter?: Uint8Array;
}

/** The result of one write: `{ok, errno, written}` plus `stage: "open"` when the open failed. */
export interface CaseWriteResult {
  ok: boolean;
  errno: string | null;
  written: number;
  stage?: "open";
}

/** A result line, field for field as case-formats.md §1 defines it. */
export interface MapWriteCaseResult {
  id: unknown;
  ok: boolean | null;
  errno: string | null;
  written: number | null;
  stage: "write" | "open" | "setup" | "input";
  len: number | null;
  readback_from_parent: string | null;
  readback_from_init: string | null;
  readback_from_inside: string | null;
  setgroups_readback: string | null;
  setgroups?: CaseWriteResult;
  second?: CaseWriteResult;
  setgroups_after?: CaseWriteResult;
  setup_error?: string;
  error?: string;
  /** Model extra: the rule that decided the map write, and why (ignored by comparisons). */
  rule?: string;
  reason?: string;
}

// ------------------------------------------------------------------ input

/** A malformed case (becomes a `stage: "input"` result). */
export class CaseInputError extends Error {}

function hexBytes(s: unknown, field: string): Uint8Array {
  if (typeof s !== "string" || !/^(?:[0-9a-fA-F]{2})*$/.test(s)) {
    throw new CaseInputError(`${field} must be a string of hex byte pairs`);
  }
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function textOrHex(o: Record<string, unknown>, field: string, required: boolean): Uint8Array | null {
  const hex = o[`${field}_hex`];
  if (hex !== undefined && hex !== null) return hexBytes(hex, `${field}_hex`);
  const v = o[field];
  if (v === undefined || v === null) {
    if (required) throw new CaseInputError(`${field} (or ${field}_hex) is required`);
    return null;
  }
  if (typeof v !== "string") throw new CaseInputError(`${field} must be a string`);
  return toBytes(v);
}

function optText(o: Record<string, unknown>, field: string): Uint8Array | null {
  const v = o[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== "string") throw new CaseInputError(`${field} must be a string or null`);
  return toBytes(v);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function parseCred(v: unknown, field: string, allowInside: boolean): CaseCred {
  let o: Record<string, unknown>;
  if (typeof v === "string") o = { role: v };
  else if (isObject(v)) o = v;
  else
    throw new CaseInputError(
      `${field} must be "privileged", "unprivileged"${allowInside ? ', "inside"' : ""} or an object`,
    );
  const role = o.role;
  if (role !== "privileged" && role !== "unprivileged" && !(allowInside && role === "inside")) {
    throw new CaseInputError(
      `${field}.role ${JSON.stringify(role)} is not one of privileged, unprivileged${allowInside ? ", inside" : ""}`,
    );
  }
  const cred: CaseCred = { role, dropCaps: [] };
  for (const k of ["uid", "gid"] as const) {
    const n = o[k];
    if (n === undefined || n === null) continue;
    if (typeof n !== "number" || !isU32(n)) throw new CaseInputError(`${field}.${k} must be an integer 0..4294967295`);
    cred[k] = n;
  }
  const dc = o.drop_caps;
  if (dc !== undefined && dc !== null) {
    if (!Array.isArray(dc)) throw new CaseInputError(`${field}.drop_caps must be a list of capability names`);
    const caps: Capability[] = [];
    for (const c of dc) {
      const name = typeof c === "string" && !c.startsWith("CAP_") ? `CAP_${c}` : c;
      if (typeof name !== "string" || !isCapability(name.toUpperCase())) {
        throw new CaseInputError(`${field}.drop_caps: unknown capability ${JSON.stringify(c)}`);
      }
      caps.push(name.toUpperCase() as Capability);
    }
    cred.dropCaps = caps;
  }
  return cred;
}

function parseParent(v: unknown, i: number): CaseParent {
  if (typeof v === "string") {
    const b = toBytes(v);
    return { uidMap: b, gidMap: b, projidMap: b, setgroups: null };
  }
  if (!isObject(v)) throw new CaseInputError(`parent[${i}] must be a map text or an object`);
  const uidMap = optText(v, "uid_map");
  const gidMap = optText(v, "gid_map");
  const projid = v.projid_map === undefined ? uidMap : optText(v, "projid_map");
  return { uidMap, gidMap, projidMap: projid, setgroups: textOrHex(v, "setgroups", false) };
}

/** Validates one case object; throws a message for a malformed case. */
export function parseMapWriteCase(v: unknown): MapWriteCase {
  if (!isObject(v)) throw new CaseInputError("a case must be a JSON object");
  const kind = v.kind ?? "uid";
  if (kind !== "uid" && kind !== "gid" && kind !== "projid") {
    throw new CaseInputError(`kind ${JSON.stringify(kind)} is not uid, gid or projid`);
  }
  const p = v.parent;
  const parents =
    p === undefined || p === null ? [] : Array.isArray(p) ? p.map((x, i) => parseParent(x, i)) : [parseParent(p, 0)];
  const secondFd = v.second_fd ?? "same";
  if (secondFd !== "same" && secondFd !== "reopen" && secondFd !== "pwrite0") {
    throw new CaseInputError(`second_fd ${JSON.stringify(secondFd)} is not same, reopen or pwrite0`);
  }
  const c: MapWriteCase = {
    id: v.id ?? null,
    kind,
    parents,
    lines: textOrHex(v, "lines", true)!,
    writer: parseCred(v.writer ?? "privileged", "writer", true),
    setgroups: textOrHex(v, "setgroups", false),
    secondFd,
  };
  if (v.creator !== undefined && v.creator !== null) c.creator = parseCred(v.creator, "creator", false);
  if (v.opener !== undefined && v.opener !== null) c.opener = parseCred(v.opener, "opener", true);
  const second = textOrHex(v, "second", false);
  if (second !== null) c.second = second;
  const after = textOrHex(v, "setgroups_after", false);
  if (after !== null) c.setgroupsAfter = after;
  return c;
}

// -------------------------------------------------------------- simulation

class SetupError extends Error {}

function credIn(ns: UserNs, spec: CaseCred, root: { euid: number; egid: number }): Cred {
  if (spec.role === "privileged") {
    const caps = spec.dropCaps.length ? dropCaps(FULL_CAPS, spec.dropCaps) : FULL_CAPS;
    return { ns, euid: root.euid, egid: root.egid, fsuid: root.euid, fsgid: root.egid, caps };
  }
  const uid = spec.uid ?? 1000;
  const gid = spec.gid ?? 1000;
  const euid = makeKid(ns, "uid", uid);
  const egid = makeKid(ns, "gid", gid);
  if (euid === INVALID_ID)
    throw new SetupError(`setresuid(${uid}): uid ${uid} is not mapped in the writer's namespace`);
  if (egid === INVALID_ID)
    throw new SetupError(`setresgid(${gid}): gid ${gid} is not mapped in the writer's namespace`);
  return { ns, euid, egid, fsuid: euid, fsgid: egid, caps: NO_CAPS };
}

function describe(b: Uint8Array | null): string {
  return b === null ? "" : JSON.stringify(new TextDecoder().decode(b));
}

/** Builds the chain of intermediate namespaces; returns the deepest and the kernel ids of its acting root. */
function buildParents(parents: readonly CaseParent[], kind: MapKind): { ns: UserNs; euid: number; egid: number } {
  let ns = INIT_USER_NS;
  let euid = 0;
  let egid = 0;
  let nextId = 1;
  for (const [i, p] of parents.entries()) {
    const made = createUserNs({ ns, euid, egid, hasSetfcap: true }, nextId++);
    if (!made.ok) throw new SetupError(`creating parent ${i + 1}: ${made.errno}: ${made.reason}`);
    let q = made.ns;
    const actor: Cred = { ns, euid, egid, fsuid: euid, fsgid: egid, caps: FULL_CAPS };
    if (p.setgroups !== null) {
      const r = setgroupsWrite(q, p.setgroups);
      if (!r.ok)
        throw new SetupError(`writing parent ${i + 1}'s setgroups ${describe(p.setgroups)}: ${r.errno}: ${r.reason}`);
      q = r.ns;
    }
    const kinds: [MapKind, Uint8Array | null][] = [
      ["uid", p.uidMap],
      ["gid", p.gidMap],
    ];
    if (kind === "projid") kinds.push(["projid", p.projidMap]);
    for (const [k, text] of kinds) {
      if (text === null) continue;
      const file: MapFile = { kind: k, target: q, opener: actor, pos: 0 };
      const r = mapWrite({ file, writer: actor, data: text });
      if (!r.ok) throw new SetupError(`writing parent ${i + 1}'s ${k}_map ${describe(text)}: ${r.errno}: ${r.reason}`);
      q = r.ns;
    }
    // The process in q becomes uid 0 / gid 0 there where q maps them.
    const u0 = makeKid(q, "uid", 0);
    const g0 = makeKid(q, "gid", 0);
    if (u0 !== INVALID_ID) euid = u0;
    if (g0 !== INVALID_ID) egid = g0;
    ns = q;
  }
  return { ns, euid, egid };
}

function openFailed(errno: string): CaseWriteResult {
  return { ok: false, errno, written: -1, stage: "open" };
}

function writeResult(r: { ok: boolean; written: number; errno?: string }): CaseWriteResult {
  return { ok: r.ok, errno: r.ok ? null : (r.errno ?? null), written: r.written };
}

/** Predicts the kernel's result for one validated case. */
export function predictMapWriteCase(c: MapWriteCase): MapWriteCaseResult {
  const base = {
    id: c.id,
    len: c.lines.length,
  };
  try {
    return simulate(c);
  } catch (e) {
    if (!(e instanceof SetupError)) throw e;
    const r: MapWriteCaseResult = {
      id: base.id,
      ok: null,
      errno: null,
      written: null,
      stage: "setup",
      len: base.len,
      readback_from_parent: null,
      readback_from_init: null,
      readback_from_inside: null,
      setgroups_readback: null,
      setup_error: e.message,
    };
    return r;
  }
}

function simulate(c: MapWriteCase): MapWriteCaseResult {
  const P = buildParents(c.parents, c.kind);
  const root = { euid: P.euid, egid: P.egid };
  const creatorSpec: CaseCred =
    c.creator ?? (c.writer.role === "inside" ? { role: "privileged", dropCaps: [] } : c.writer);
  const creator = credIn(P.ns, creatorSpec, root);
  const made = createUserNs(
    { ns: P.ns, euid: creator.euid, egid: creator.egid, hasSetfcap: creator.caps.has("CAP_SETFCAP") },
    c.parents.length + 1,
  );
  if (!made.ok) throw new SetupError(`unshare(CLONE_NEWUSER) by the creator: ${made.errno}: ${made.reason}`);
  let T = made.ns;
  // The child process: same kernel ids, every capability in T (set_cred_user_ns), minus what the
  // inside roles drop; writer and opener "inside" are the same process, so their drops add up.
  const insideDrops = [c.writer, c.opener].flatMap((s) => (s?.role === "inside" ? s.dropCaps : []));
  const childCaps = insideDrops.length ? dropCaps(FULL_CAPS, insideDrops) : FULL_CAPS;
  const credFor = (spec: CaseCred): Cred =>
    spec.role === "inside"
      ? { ns: T, euid: creator.euid, egid: creator.egid, fsuid: creator.euid, fsgid: creator.egid, caps: childCaps }
      : credIn(P.ns, spec, root);
  const writer = credFor(c.writer);
  const opener = c.opener ? credFor(c.opener) : writer;
  // /proc/CHILD/* is owned by the child's euid/egid (dumpable task).
  const mayOpen = (who: Cred): boolean => procFileMayWrite(who, creator.euid, creator.egid);

  const out: Partial<MapWriteCaseResult> = {};
  const setgroupsStep = (text: Uint8Array): CaseWriteResult => {
    if (!mayOpen(writer) || !setgroupsOpenPermitted(writer, T)) return openFailed("EACCES");
    const r = setgroupsWrite(T, text);
    T = r.ns;
    return writeResult(r);
  };
  if (c.setgroups !== null) out.setgroups = setgroupsStep(c.setgroups);

  let main: Pick<MapWriteCaseResult, "ok" | "errno" | "written" | "stage" | "rule" | "reason">;
  let file: MapFile | undefined;
  if (!mayOpen(opener)) {
    main = {
      ok: false,
      errno: "EACCES",
      written: -1,
      stage: "open",
      rule: "generic_permission",
      reason: "the opener may not write the child's /proc map file (owner or CAP_DAC_OVERRIDE needed)",
    };
  } else {
    file = { kind: c.kind, target: T, opener, pos: 0 };
    const r = mapWrite({ file, current: T, writer, data: c.lines });
    file = r.file;
    T = r.ns;
    main = r.ok
      ? { ok: true, errno: null, written: r.written, stage: "write" }
      : { ok: false, errno: r.errno, written: -1, stage: "write", rule: r.rule, reason: r.reason };
  }

  if (c.second !== undefined) {
    if (c.secondFd === "reopen") {
      if (!mayOpen(opener)) out.second = openFailed("EACCES");
      else {
        const r = mapWrite({ file: { kind: c.kind, target: T, opener, pos: 0 }, current: T, writer, data: c.second });
        T = r.ns;
        out.second = writeResult(r);
      }
    } else if (file === undefined) {
      out.second = openFailed("EACCES");
    } else {
      const r = mapWrite({ file, current: T, writer, data: c.second, pwrite: c.secondFd === "pwrite0" });
      T = r.ns;
      out.second = writeResult(r);
    }
  }
  if (c.setgroupsAfter !== undefined) out.setgroups_after = setgroupsStep(c.setgroupsAfter);

  const result: MapWriteCaseResult = {
    id: c.id,
    ok: main.ok,
    errno: main.errno,
    written: main.written,
    stage: main.stage,
    len: c.lines.length,
    readback_from_parent: readProcMap(T, c.kind, P.ns),
    readback_from_init: readProcMap(T, c.kind, INIT_USER_NS),
    readback_from_inside: readProcMap(T, c.kind, T),
    setgroups_readback: formatSetgroups(T),
  };
  if (out.setgroups) result.setgroups = out.setgroups;
  if (out.second) result.second = out.second;
  if (out.setgroups_after) result.setgroups_after = out.setgroups_after;
  if (main.rule !== undefined) {
    result.rule = main.rule;
    result.reason = main.reason!;
  }
  return result;
}

/** A malformed case's result: stage "input" with the message. */
export function inputErrorResult(id: unknown, error: string): MapWriteCaseResult {
  return {
    id,
    ok: null,
    errno: null,
    written: null,
    stage: "input",
    len: null,
    readback_from_parent: null,
    readback_from_init: null,
    readback_from_inside: null,
    setgroups_readback: null,
    error,
  };
}

/**
 * Predicts one JSON line of the case format. Returns undefined for lines the
 * format skips (empty, or starting with `#`); a malformed case gives a result
 * with stage "input". Never throws.
 */
export function predictMapWriteCaseLine(line: string): MapWriteCaseResult | undefined {
  const t = line.trim();
  if (t === "" || t.startsWith("#")) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch (e) {
    return inputErrorResult(null, `not JSON: ${(e as Error).message}`);
  }
  const id = isObject(v) ? (v.id ?? null) : null;
  let c: MapWriteCase;
  try {
    c = parseMapWriteCase(v);
  } catch (e) {
    if (e instanceof CaseInputError) return inputErrorResult(id, e.message);
    throw e;
  }
  return predictMapWriteCase(c);
}
