/**
 * Compiles a map-write case into the step program that native/runner.cc
 * executes, and decodes what the kernel answered back into a §1 result.
 *
 * Every decision about what a case means is made here: which process plays
 * which role, with which credentials, in which order. The native side only
 * runs the steps. Agent 0 is the worker thread itself (root of the initial
 * namespace, Node's own capabilities); agents 1..39 are forked children.
 */
import { errnoName } from "../errors.js";
import type { Creds, MapCase, MapResult, NestedResult } from "./cases.js";

/** Step operations (native/runner.cc `Op`). */
export const Op = {
  setgroupsEmpty: 1,
  setresgid: 2,
  setresuid: 3,
  capsDrop: 4,
  dumpable: 5,
  unshareUser: 6,
  setnsUser: 7,
  open: 8,
  write: 9,
  pwrite0: 10,
  close: 11,
  read: 12,
  writeFile: 13,
  giveFd: 14,
  takeFd: 15,
  spawn: 16,
  setnsPath: 17,
  readPath: 18,
  statPath: 19,
  openPath: 20,
  setnsFd: 21,
} as const;

/** Files under /proc/PID (native/runner.cc `kFiles`). */
export const ProcFile = { uid_map: 0, gid_map: 1, projid_map: 2, setgroups: 3, nsUser: 4 } as const;
type ProcFileName = keyof typeof ProcFile;

/** `target` value meaning /proc/self. */
export const SELF = 0xff;
/** Processes per case, agent 0 included (kMaxAgents in native/runner.cc): room for 33 nested P levels. */
export const MAX_AGENTS = 40;
/** Step flag: a failure aborts the case as a setup error. */
export const REQUIRED = 1;
const CAPS_ALL = 2;
const HEADER = 32;
const STEP = 48;
const RESULT = 16;
const STATUS = 16;
/** One readback line is `%10u %10u %10u\n`. */
const LINE_BYTES = 33;
const MAX_EXTENTS = 340;

/** A case that cannot be built at all; it becomes a `stage: "setup"` result without running. */
export class UnbuildableCase extends Error {}

/** Case status written by the runner. */
export const Status = { done: 1, setupAbort: 2, timeout: 3, agentLost: 4 } as const;

/** One step, before encoding. */
export interface StepSpec {
  agent: number;
  op: number;
  flags: number;
  fdslot: number;
  target: number;
  file: number;
  arg0: number;
  capmask: bigint;
  data: Uint8Array | undefined;
  outCap: number;
  label: string;
}

/** Where to find each result of interest after the run, as step indexes. */
interface Slots {
  open?: number;
  write?: number;
  setgroups?: number;
  secondOpen?: number;
  second?: number;
  setgroupsAfter?: number;
  readParent?: number;
  readInit?: number;
  readInside?: number;
  readSetgroups?: number;
}

/** An encoded step program: the bytes the runner takes and how to find each step's result. */
export interface EncodedProgram {
  readonly program: Uint8Array;
  readonly resultSize: number;
  readonly labels: readonly string[];
  /** Byte offsets of each step's result record and output within the result area. */
  readonly resOffsets: readonly number[];
  readonly outOffsets: readonly number[];
}

/** A compiled case: its program, and which steps hold the results of interest. */
export interface CompiledCase extends EncodedProgram {
  readonly slots: Slots;
  readonly case: MapCase;
}

/** Options for compiling. */
export interface CompileOptions {
  /** Per-case deadline in milliseconds. */
  timeoutMs: number;
  /** See {@link KernelRunOptions.nondumpableParents}. */
  nondumpableParents?: boolean;
}

/** Counts lines so a readback buffer is sized exactly (a map never has more extents than lines). */
function readbackCap(lines: Uint8Array): number {
  let n = 1;
  for (const b of lines) if (b === 0x0a) n++;
  return Math.min(n, MAX_EXTENTS + 1) * LINE_BYTES;
}

/** Builds a step program; agent 0 is the runner itself, agents 1..39 are forked by `spawn`. */
export class ProgramBuilder {
  readonly steps: StepSpec[] = [];
  nextAgent = 1;

  /** @param restoreDumpable false leaves processes non-dumpable after becoming root of a P. */
  constructor(readonly restoreDumpable = true) {}

  add(agent: number, op: number, label: string, extra: Partial<StepSpec> = {}): number {
    this.steps.push({
      agent,
      op,
      flags: 0,
      fdslot: 0,
      target: 0,
      file: 0,
      arg0: 0,
      capmask: 0n,
      data: undefined,
      outCap: 0,
      label,
      ...extra,
    });
    return this.steps.length - 1;
  }

  /** Encodes the steps added so far. */
  encode(timeoutMs: number): EncodedProgram {
    return encodeSteps(this.steps, timeoutMs);
  }

  /** Forks a fresh agent: root of the initial namespace, no supplementary groups. */
  spawn(role: string): number {
    const a = this.nextAgent++;
    if (a >= MAX_AGENTS) throw new RangeError(`a case needs more than ${MAX_AGENTS - 1} processes`);
    this.add(0, Op.spawn, `forking the ${role} process`, { target: a, flags: REQUIRED });
    this.add(a, Op.setgroupsEmpty, `setgroups([]) in the ${role} process`, { flags: REQUIRED });
    return a;
  }

  /** Becomes "root of P" (uid 0 and gid 0 where P maps them, all capabilities) after joining P. */
  becomeRoot(a: number, role: string): void {
    // setres[ug]id(0) fails with EINVAL where P does not map 0; the process then
    // keeps its unmapped ids, which is what the format means by "where P maps 0".
    this.add(a, Op.setresgid, `setresgid(0) in the ${role} process`, { arg0: 0 });
    this.add(a, Op.setresuid, `setresuid(0) in the ${role} process`, { arg0: 0 });
    // A credential change makes a process non-dumpable, which turns its /proc
    // files root-owned; a real exec would restore that, so restore it here.
    if (this.restoreDumpable) this.add(a, Op.dumpable, `PR_SET_DUMPABLE in the ${role} process`, { flags: REQUIRED });
  }

  /**
   * Makes agent `a` a copy of the process acting for the deepest P: it joins
   * each level in turn (`levels` holds the agent acting in each P, outermost
   * first) and becomes root there where that level maps 0, so where a level
   * does not map 0 it keeps the ids it had one level up, as that process did.
   */
  join(a: number, levels: readonly number[], role: string): void {
    levels.forEach((pk, i) => {
      this.add(a, Op.setnsUser, `setns into P${i + 1} for the ${role} process`, {
        target: pk,
        file: ProcFile.nsUser,
        flags: REQUIRED,
      });
      this.becomeRoot(a, role);
    });
  }

  /** Applies a credential form (privileged with dropped caps, or unprivileged) to agent `a`. */
  applyCreds(a: number, c: Creds, role: string): void {
    if (c.role === "unprivileged") {
      // setres[ug]id(-1) means "leave unchanged": id 4294967295 cannot be taken,
      // as no namespace maps it; the kernel would refuse any real attempt.
      if (c.gid === 0xffff_ffff || c.uid === 0xffff_ffff)
        throw new UnbuildableCase(
          `setres${c.gid === 0xffff_ffff ? "g" : "u"}id(4294967295) as the ${role}: 4294967295 is never a valid id`,
        );
      // In a namespace whose setgroups is "deny" this fails with EPERM; the list
      // is already empty (every agent starts with setgroups([])), so it is moot.
      this.add(a, Op.setgroupsEmpty, `setgroups([]) as the ${role}`);
      this.add(a, Op.setresgid, `setresgid(${c.gid}) as the ${role}`, { arg0: c.gid, flags: REQUIRED });
      this.add(a, Op.setresuid, `setresuid(${c.uid}) as the ${role}`, { arg0: c.uid, flags: REQUIRED });
      this.add(a, Op.capsDrop, `clearing capabilities of the ${role}`, { flags: REQUIRED | CAPS_ALL });
      this.add(a, Op.dumpable, `PR_SET_DUMPABLE as the ${role}`, { flags: REQUIRED });
    } else if (c.dropMask !== 0n) {
      this.add(a, Op.capsDrop, `dropping ${c.dropCaps.join(",")} from the ${role}`, {
        capmask: c.dropMask,
        flags: REQUIRED,
      });
    }
  }
}

function sameCreds(a: Creds, b: Creds): boolean {
  return a.role === b.role && a.uid === b.uid && a.gid === b.gid && a.dropMask === b.dropMask;
}

/**
 * Compiles one case. Roles: one agent acts for each P namespace; `pk` is the
 * agent acting as root of the deepest P (agent 0 when there is no P). The child C is the creator process after
 * its unshare. Writer and opener are `pk`, C, or their own agents.
 */
export function compileCase(c: MapCase, opts: CompileOptions): CompiledCase {
  const b = new ProgramBuilder(opts.nondumpableParents !== true);
  const mapFile: ProcFileName = c.kind === "uid" ? "uid_map" : c.kind === "gid" ? "gid_map" : "projid_map";
  const slots: Slots = {};

  // 1. The chain of intermediate namespaces, outermost first. One agent stays
  // in each level, acting for it; the agent one level up writes its maps.
  const levels: number[] = [];
  c.parents.forEach((p, i) => {
    const role = `P${i + 1}`;
    const u = b.spawn(role);
    b.join(u, levels, role);
    b.add(u, Op.unshareUser, `unshare(CLONE_NEWUSER) creating ${role}`, { flags: REQUIRED });
    const up = levels[levels.length - 1] ?? 0;
    const writeP = (file: ProcFileName, data: Uint8Array | null) => {
      if (data === null) return;
      b.add(up, Op.writeFile, `writing ${role}'s ${file}`, { target: u, file: ProcFile[file], data, flags: REQUIRED });
    };
    writeP("setgroups", p.setgroups);
    writeP("uid_map", p.uidMap);
    writeP("gid_map", p.gidMap);
    if (c.kind === "projid") writeP("projid_map", p.projidMap);
    b.becomeRoot(u, role);
    levels.push(u);
  });
  const pk = levels[levels.length - 1] ?? 0;

  // 2. The child namespace C: the creator's process, after its unshare.
  const child = b.spawn("creator");
  b.join(child, levels, "creator");
  b.applyCreds(child, c.creator, "creator");
  b.add(child, Op.unshareUser, "unshare(CLONE_NEWUSER) creating the child", { flags: REQUIRED });

  // 3. Writer and opener processes.
  const actorFor = (cr: Creds, role: string): number => {
    if (cr.role === "inside") return child;
    if (cr.role === "privileged" && cr.dropMask === 0n) return pk;
    const a = b.spawn(role);
    b.join(a, levels, role);
    b.applyCreds(a, cr, role);
    return a;
  };
  const wr = actorFor(c.writer, "writer");
  const opener = c.opener ?? c.writer;
  const op = c.opener === undefined || sameCreds(c.opener, c.writer) ? wr : actorFor(c.opener, "opener");
  const target = (actor: number) => (actor === child ? SELF : child);

  // The child's own drops: the opener's before it opens, the writer's before writing.
  if (op === child && opener.role === "inside") b.applyCreds(child, opener, "opener");

  const openMap = (slot: number, what: string): number => {
    const s = b.add(op, Op.open, `opening the child's ${mapFile} (${what})`, {
      target: target(op),
      file: ProcFile[mapFile],
      fdslot: slot,
    });
    if (op !== wr) {
      b.add(op, Op.giveFd, "passing the map fd to the writer", { fdslot: slot });
      b.add(wr, Op.takeFd, "receiving the map fd", { fdslot: slot });
    }
    return s;
  };
  slots.open = openMap(0, "first write");
  if (wr === child && c.writer.role === "inside" && (op !== child || !sameCreds(opener, c.writer)))
    b.applyCreds(child, c.writer, "writer");

  // 4. setgroups, then the one write(2) of the exact bytes, then the extras.
  if (c.setgroups !== null)
    slots.setgroups = b.add(wr, Op.writeFile, "writing the child's setgroups", {
      target: target(wr),
      file: ProcFile.setgroups,
      data: c.setgroups,
    });
  slots.write = b.add(wr, Op.write, `writing the child's ${mapFile}`, { fdslot: 0, data: c.lines });
  if (c.second !== null) {
    if (c.secondFd === "same")
      slots.second = b.add(wr, Op.write, "second write, same fd", { fdslot: 0, data: c.second });
    else if (c.secondFd === "pwrite0")
      slots.second = b.add(wr, Op.pwrite0, "second write, pwrite at 0", { fdslot: 0, data: c.second });
    else {
      slots.secondOpen = openMap(1, "reopened for the second write");
      slots.second = b.add(wr, Op.write, "second write, reopened fd", { fdslot: 1, data: c.second });
    }
  }
  if (c.setgroupsAfter !== null)
    slots.setgroupsAfter = b.add(wr, Op.writeFile, "writing setgroups after the map", {
      target: target(wr),
      file: ProcFile.setgroups,
      data: c.setgroupsAfter,
    });

  // 5. Read-backs: from the deepest P, from the initial namespace, from inside.
  const cap = Math.max(
    readbackCap(c.lines),
    c.second === null ? 0 : readbackCap(c.second),
    ...c.parents.map((p) => readbackCap(p.uidMap ?? new Uint8Array())),
  );
  const read = (agent: number, file: ProcFileName, outCap: number, who: string) =>
    b.add(agent, Op.read, `reading the child's ${file} from ${who}`, {
      target: target(agent),
      file: ProcFile[file],
      outCap,
    });
  slots.readParent = read(pk, mapFile, cap, "the parent");
  slots.readSetgroups = read(pk, "setgroups", 16, "the parent");
  slots.readInit = read(0, mapFile, cap, "the initial namespace");
  slots.readInside = read(child, mapFile, cap, "inside");

  return { ...encodeSteps(b.steps, opts.timeoutMs), slots, case: c };
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** Encodes steps into the runner's binary program format (native/runner.cc). */
export function encodeSteps(steps: readonly StepSpec[], timeoutMs: number): EncodedProgram {
  // Data blob: the bytes each write step hands to the kernel.
  const chunks: Uint8Array[] = [];
  const dataOffs: number[] = [];
  let dataLen = 0;
  for (const s of steps) {
    dataOffs.push(dataLen);
    if (s.data !== undefined) {
      chunks.push(s.data);
      dataLen += s.data.length;
    }
  }
  // Result area: status, one record per step, then read outputs.
  const resOffsets: number[] = [];
  const outOffsets: number[] = [];
  let res = STATUS;
  for (let i = 0; i < steps.length; i++) {
    resOffsets.push(res);
    res += RESULT;
  }
  for (const s of steps) {
    outOffsets.push(res);
    res = align8(res + s.outCap);
  }
  const nagents = Math.max(...steps.map((s) => Math.max(s.agent, s.op === Op.spawn ? s.target : 0))) + 1;
  const dataOff = HEADER + steps.length * STEP;
  const size = align8(dataOff + dataLen);
  const program = new Uint8Array(size);
  const dv = new DataView(program.buffer);
  dv.setUint32(0, size, true);
  dv.setUint16(4, steps.length, true);
  dv.setUint8(6, nagents);
  dv.setUint32(8, timeoutMs, true);
  dv.setUint32(12, 0, true); // resultOff: patched per batch
  dv.setUint32(16, res, true);
  dv.setUint32(20, dataOff, true);
  dv.setUint32(24, dataLen, true);
  steps.forEach((s, i) => {
    const o = HEADER + i * STEP;
    dv.setUint8(o, s.agent);
    dv.setUint8(o + 1, s.op);
    dv.setUint8(o + 2, s.flags);
    dv.setUint8(o + 3, s.fdslot);
    dv.setUint8(o + 4, s.target);
    dv.setUint8(o + 5, s.file);
    dv.setInt32(o + 8, s.arg0 | 0, true);
    dv.setBigUint64(o + 16, s.capmask, true);
    dv.setUint32(o + 24, dataOffs[i]!, true);
    dv.setUint32(o + 28, s.data?.length ?? 0, true);
    dv.setUint32(o + 32, resOffsets[i]!, true);
    dv.setUint32(o + 36, outOffsets[i]!, true);
    dv.setUint32(o + 40, s.outCap, true);
  });
  let p = dataOff;
  for (const ch of chunks) {
    program.set(ch, p);
    p += ch.length;
  }
  return { program, resultSize: res, labels: steps.map((s) => s.label), resOffsets, outOffsets };
}

/** One step's result record: `ret` (-1 on failure), `err` (errno), `aux` (1: open failed; 2: truncated). */
export interface StepResult {
  ret: number;
  err: number;
  aux: number;
}

/** Step `i`'s result record within a decoded result area. */
export function stepResult(p: EncodedProgram, area: Uint8Array, i: number): StepResult {
  const dv = new DataView(area.buffer, area.byteOffset, area.byteLength);
  const o = p.resOffsets[i]!;
  return { ret: Number(dv.getBigInt64(o, true)), err: dv.getInt32(o + 8, true), aux: dv.getInt32(o + 12, true) };
}

/** What step `i` read, as a latin1 string, or null when the read failed. */
export function stepText(p: EncodedProgram, area: Uint8Array, i: number): string | null {
  const r = stepResult(p, area, i);
  if (r.ret < 0) return null;
  const o = p.outOffsets[i]!;
  return Buffer.from(area.subarray(o, o + r.ret)).toString("latin1");
}

/** The case status written by the runner: `{status, abortStep, abortErr}`. */
export function programStatus(area: Uint8Array): { status: number; abortStep: number; abortErr: number } {
  const dv = new DataView(area.buffer, area.byteOffset, area.byteLength);
  return { status: dv.getInt32(0, true), abortStep: dv.getInt32(4, true), abortErr: dv.getInt32(8, true) };
}

/** Decodes one case's result area into a §1 result. */
export function decodeResult(cc: CompiledCase, area: Uint8Array): MapResult {
  const { status, abortStep, abortErr } = programStatus(area);
  const c = cc.case;
  const step = (i: number): StepResult => stepResult(cc, area, i);
  if (status !== Status.done) {
    const why =
      status === Status.timeout
        ? "timeout"
        : status === Status.setupAbort
          ? `${cc.labels[abortStep] ?? `step ${abortStep}`}: ${errnoName(abortErr)}`
          : `runner process lost at ${cc.labels[abortStep] ?? `step ${abortStep}`}: ${errnoName(abortErr)}`;
    return { id: c.id, ok: null, errno: null, written: null, stage: "setup", len: c.lines.length, setup_error: why };
  }
  const text = (i: number | undefined): string | null => (i === undefined ? null : stepText(cc, area, i));
  const nested = (openIdx: number | undefined, writeIdx: number): NestedResult => {
    const w = step(writeIdx);
    const opened = openIdx === undefined ? w.aux !== 1 : step(openIdx).ret >= 0;
    if (!opened) {
      const o = openIdx === undefined ? w : step(openIdx);
      return { ok: false, errno: errnoName(o.err), written: -1, stage: "open" };
    }
    return { ok: w.ret >= 0, errno: w.ret >= 0 ? null : errnoName(w.err), written: w.ret };
  };
  const s = cc.slots;
  const first = nested(s.open, s.write!);
  const out: MapResult = {
    id: c.id,
    ok: first.ok,
    errno: first.errno,
    written: first.written,
    stage: first.stage ?? "write",
    len: c.lines.length,
    readback_from_parent: text(s.readParent),
    readback_from_init: text(s.readInit),
    readback_from_inside: text(s.readInside),
    setgroups_readback: text(s.readSetgroups),
  };
  if (s.setgroups !== undefined) out.setgroups = nested(undefined, s.setgroups);
  // A second write on the same fd has no fd when the first open failed: it
  // reports that open's failure, as the first write does.
  if (s.second !== undefined) out.second = nested(s.secondOpen ?? s.open, s.second);
  if (s.setgroupsAfter !== undefined) out.setgroups_after = nested(undefined, s.setgroupsAfter);
  return out;
}
