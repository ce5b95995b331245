/**
 * crossCheckSandbox: what a sandboxed process sees against what the model predicted
 * (lib/model/sandbox.ts predictSandboxMounts).
 *
 * The mount table is /proc/PID/mountinfo read from here: the kernel renders mount points
 * relative to PID's root, so it is the program's own view. The owners must be the
 * kernel's translation through the sandbox's user namespace (and any idmapped mount), not
 * the host's numbers; so a helper process makes the kernel do it: one of the kernel
 * runner's forked agents (native/runner.cc) joins the sandbox's user namespace, then its
 * mount namespace (setns puts its root at the namespace's root, the program's `/` after
 * pivot_root), and statx()es each mount point there. stat() answers with
 * `from_kuid_munged(the agent's user namespace, ...)`: exactly what the program gets,
 * including 65534 for what the namespace does not map. The agent needs no privilege
 * beyond what made the sandbox: its owner (an unprivileged user for a rootless sandbox)
 * holds every capability in it. A statx mount id that is not the listed mount's says the
 * path reaches another mount (hidden, or a prediction of visibility that is wrong).
 */
import { readFileSync } from "node:fs";
import { errnoName, UsernsError } from "../errors.js";
import { native } from "../kernel/native.js";
import { nsInfo } from "../kernel/nsfs.js";
import { type MountinfoEntry, parseMountinfo } from "../model/mountinfo.js";
import type { Owner, PredictedMount } from "../model/sandbox.js";
import { runPrograms } from "../verify/kernel.js";
import { Op, ProgramBuilder, programStatus, REQUIRED, Status, stepResult } from "../verify/program.js";

const CLONE_NEWNS = 0x0002_0000;
const CLONE_NEWUSER = 0x1000_0000;
const STATX_SIZE = 256;

/** What stat() of a mount point shows from inside the sandbox. */
export interface InsideStat {
  readonly owner: Owner;
  /** Permission bits (07777). */
  readonly mode: number;
  /** statx's mount id: the mount the path reaches. */
  readonly mountId: number;
}

/** One mount as the kernel shows it to the program, with the stat of its mount point from inside. */
export interface ObservedMount {
  readonly target: string;
  readonly fsType: string;
  readonly readOnly: boolean;
  readonly idmapped: boolean;
  readonly id: number;
  /** undefined when statx failed from inside (the errno is in `statError`). */
  readonly stat: InsideStat | undefined;
  readonly statError?: string;
}

/** A field where the kernel and the model differ, for one mount (or the table's order). */
export interface SandboxDiscrepancy {
  readonly target: string;
  readonly field: "missing" | "extra" | "order" | "fsType" | "readOnly" | "idmapped" | "owner" | "mode" | "visible";
  readonly kernel: string | null;
  readonly model: string | null;
}

/** The result of {@link crossCheckSandbox}. */
export interface SandboxCrossCheckReport {
  readonly pid: number;
  readonly predicted: readonly PredictedMount[];
  readonly observed: readonly ObservedMount[];
  readonly discrepancies: readonly SandboxDiscrepancy[];
  readonly ok: boolean;
}

function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}

/** The agent's statx of each path from inside the sandbox's namespaces. */
async function statInside(pid: number, paths: readonly string[], timeoutMs: number): Promise<(InsideStat | string)[]> {
  const pb = new ProgramBuilder();
  const a = pb.nextAgent++;
  // No setgroups step (unlike ProgramBuilder.spawn): an unprivileged caller may not, and the
  // agent's groups do not matter to stat.
  pb.add(0, Op.spawn, "forking the helper that joins the sandbox", { target: a, flags: REQUIRED });
  // The mount namespace is owned by the user namespace that made it, which need not be the
  // program's (bwrap nests a second one when run unprivileged): join that owner, then the mount
  // namespace (which needs CAP_SYS_ADMIN over its owner), then the program's user namespace (a
  // descendant of the owner, so the helper still may). The namespaces are opened first, while
  // /proc paths still resolve on the host.
  const b = native();
  const me = nsInfo("self", "user");
  const mntFd = b.openNs(`/proc/${pid}/ns/mnt`);
  const ownerFd = b.nsGetUserns(mntFd);
  try {
    const owner = b.nsIdentity(ownerFd);
    const prog = nsInfo(pid, "user");
    const same = (
      x: { dev: number | bigint; ino: number | bigint },
      y: { dev: number | bigint; ino: number | bigint },
    ) => BigInt(x.dev) === BigInt(y.dev) && BigInt(x.ino) === BigInt(y.ino);
    const SLOT_OWNER = 1;
    const SLOT_MNT = 2;
    const SLOT_PROG = 3;
    pb.add(a, Op.openPath, "opening the sandbox's mount namespace", {
      data: cstr(`/proc/${pid}/ns/mnt`),
      fdslot: SLOT_MNT,
      flags: REQUIRED,
    });
    if (!same(prog, owner))
      pb.add(a, Op.openPath, "opening the program's user namespace", {
        data: cstr(`/proc/${pid}/ns/user`),
        fdslot: SLOT_PROG,
        flags: REQUIRED,
      });
    if (!same(owner, me)) {
      pb.add(a, Op.openPath, "opening the user namespace that owns the mount namespace", {
        data: cstr(`/proc/${process.pid}/fd/${ownerFd}`),
        fdslot: SLOT_OWNER,
        flags: REQUIRED,
      });
      pb.add(a, Op.setnsFd, "joining the user namespace that owns the mount namespace", {
        fdslot: SLOT_OWNER,
        arg0: CLONE_NEWUSER,
        flags: REQUIRED,
      });
    }
    pb.add(a, Op.setnsFd, "joining the sandbox's mount namespace", {
      fdslot: SLOT_MNT,
      arg0: CLONE_NEWNS,
      flags: REQUIRED,
    });
    if (!same(prog, owner))
      pb.add(a, Op.setnsFd, "joining the program's user namespace", {
        fdslot: SLOT_PROG,
        arg0: CLONE_NEWUSER,
        flags: REQUIRED,
      });
    return await runStats(pb, a, pid, paths, timeoutMs);
  } finally {
    b.close(ownerFd);
    b.close(mntFd);
  }
}

async function runStats(
  pb: ProgramBuilder,
  a: number,
  pid: number,
  paths: readonly string[],
  timeoutMs: number,
): Promise<(InsideStat | string)[]> {
  const steps = paths.map((p) => pb.add(a, Op.statPath, `stat ${p} inside`, { data: cstr(p), outCap: STATX_SIZE }));
  const enc = pb.encode(timeoutMs);
  const [area] = await runPrograms([enc]);
  const st = programStatus(area!);
  if (st.status !== Status.done)
    throw new UsernsError(`cross-checking the sandbox of ${pid}: ${enc.labels[st.abortStep] ?? "runner"}`, {
      code: st.status === Status.timeout ? "ETIMEDOUT" : errnoName(st.abortErr),
      errno: st.status === Status.timeout ? undefined : st.abortErr,
    });
  return steps.map((i) => {
    const r = stepResult(enc, area!, i);
    if (r.ret < 0) return errnoName(r.err);
    const o = enc.outOffsets[i]!;
    const dv = new DataView(area!.buffer, area!.byteOffset + o, STATX_SIZE);
    // struct statx: stx_uid @20, stx_gid @24, stx_mode @28 (u16), stx_mnt_id @144.
    return {
      owner: { uid: dv.getUint32(20, true), gid: dv.getUint32(24, true) },
      mode: dv.getUint16(28, true) & 0o7777,
      mountId: Number(dv.getBigUint64(144, true)),
    };
  });
}

const octal = (m: number | undefined) => (m === undefined ? null : `0${m.toString(8)}`);
const ids = (o: Owner | undefined) => (o === undefined ? null : `${o.uid}:${o.gid}`);

/**
 * Reads the sandboxed process's mount table and stats every mount point from inside its
 * namespaces, and lists every difference from `predicted` (from predictSandboxMounts with the
 * facts collected before the spawn). The process must be alive and past its pivot_root (for
 * example blocked reading its stdin, or sleeping).
 *
 * @example
 * ```ts
 * const ctx = collectSandboxFacts(plan, { userns: { uid: IdMap.of([0, 100000, 65536]), gid: ... } });
 * const child = spawn("sleep", ["30"], { namespaces: ["user", "mount", "pid"], filesystem: plan, ... });
 * const report = await crossCheckSandbox(child, predictSandboxMounts(plan, ctx));
 * report.ok // true when the program sees exactly the predicted mounts and owners
 * ```
 */
export async function crossCheckSandbox(
  target: number | { readonly pid: number | undefined },
  predicted: readonly PredictedMount[],
  opts: { timeoutMs?: number } = {},
): Promise<SandboxCrossCheckReport> {
  const pid = typeof target === "number" ? target : target.pid;
  if (pid === undefined)
    throw new UsernsError("cross-checking a sandbox that has no pid (it was never started)", { code: "ESRCH" });
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/mountinfo`, "utf8");
  } catch (e) {
    throw new UsernsError(`cross-checking the sandbox of ${pid}: the process is gone`, {
      code: "ESRCH",
      path: `/proc/${pid}/mountinfo`,
      cause: e,
    });
  }
  const table: MountinfoEntry[] = parseMountinfo(text);
  const stats = await statInside(
    pid,
    table.map((m) => m.target),
    opts.timeoutMs ?? 5000,
  );
  const observed: ObservedMount[] = table.map((m, i) => {
    const s = stats[i]!;
    return {
      target: m.target,
      fsType: m.fsType,
      readOnly: m.readOnly,
      idmapped: m.idmapped,
      id: m.id,
      stat: typeof s === "string" ? undefined : s,
      ...(typeof s === "string" ? { statError: s } : {}),
    };
  });

  const discrepancies: SandboxDiscrepancy[] = [];
  const used = new Set<number>();
  let last = -1;
  let ordered = true;
  for (const p of predicted) {
    const k = observed.findIndex((o, i) => !used.has(i) && o.target === p.target);
    if (k < 0) {
      discrepancies.push({ target: p.target, field: "missing", kernel: null, model: `${p.fsType} mount` });
      continue;
    }
    used.add(k);
    if (k < last) ordered = false;
    last = k;
    const o = observed[k]!;
    const diff = (field: SandboxDiscrepancy["field"], kernel: string | null, model: string | null) => {
      if (kernel !== model) discrepancies.push({ target: p.target, field, kernel, model });
    };
    diff("fsType", o.fsType, p.fsType);
    diff("readOnly", String(o.readOnly), String(p.readOnly));
    diff("idmapped", String(o.idmapped), String(p.idmapped));
    // The stat of the path reaches this mount exactly when it is the visible one there.
    const reaches = o.stat !== undefined && o.stat.mountId === o.id;
    diff("visible", o.stat === undefined ? (o.statError ?? null) : String(reaches), String(p.visible));
    if (p.visible && reaches) {
      diff("owner", ids(o.stat?.owner), ids(p.owner));
      if (p.mode !== undefined) diff("mode", octal(o.stat?.mode), octal(p.mode));
    }
  }
  observed.forEach((o, i) => {
    if (!used.has(i))
      discrepancies.push({ target: o.target, field: "extra", kernel: `${o.fsType} mount`, model: null });
  });
  if (!ordered)
    discrepancies.push({
      target: "/",
      field: "order",
      kernel: observed.map((o) => o.target).join(" "),
      model: predicted.map((p) => p.target).join(" "),
    });
  return { pid, predicted, observed, discrepancies, ok: discrepancies.length === 0 };
}
