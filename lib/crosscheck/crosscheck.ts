/**
 * crossCheck: asks the kernel what it reports about a user namespace, from
 * every vantage point this process can reach, and compares each answer with
 * what the model predicts from the lines the library wrote.
 *
 * Vantage points: `self` (this process's namespace, the initial one when run
 * as root on the host), `parent` (a helper process that joined the target's
 * parent namespace) and `inside` (a helper that joined the target itself and
 * reads /proc/self). The helpers are the kernel runner's forked agents; they
 * join by setns on /proc/<this pid>/fd/<nsfs fd>, so a namespace held only by
 * an fd (no process in it) is reachable too. The namespace chain comes from
 * NS_GET_PARENT.
 */
import { errnoName, UsernsError } from "../errors.js";
import { native } from "../kernel/native.js";
import { type NamespaceIdentity, nsInfo, nsInfoFromFd } from "../kernel/nsfs.js";
import type { IdMap } from "../model/idmap.js";
import { mapIdDown } from "../model/lookup.js";
import { parseMapText } from "../model/parse.js";
import { formatProcMapLine } from "../model/readback.js";
import { runPrograms } from "../verify/kernel.js";
import { Op, ProcFile, ProgramBuilder, programStatus, REQUIRED, Status, stepText } from "../verify/program.js";

/** What the library wrote for a namespace (spawn's `mapping`, a UserNamespace's `mapping`). */
export interface WrittenMaps {
  /** The exact uid_map text written in one write, if any. */
  readonly uidMap?: string | undefined;
  readonly gidMap?: string | undefined;
  /** What was written to setgroups before gid_map, if anything. */
  readonly setgroups?: "allow" | "deny" | undefined;
}

/**
 * A process (a pid, or anything with `pid`, such as a spawned child) or a
 * held namespace (anything with an nsfs `fd`, such as a UserNamespace). With
 * `mapping`, the prediction starts from what was written; without it, from
 * what the parent's vantage point reports (a consistency check).
 */
export type CrossCheckTarget =
  | number
  | { readonly pid: number | undefined; readonly mapping?: WrittenMaps | undefined }
  | { readonly fd: number; readonly mapping?: WrittenMaps | undefined };

/** Where a file was read from. */
export type Vantage = "self" | "parent" | "inside";
/** The files compared. */
export type CheckedFile = "uid_map" | "gid_map" | "setgroups";

/** One read: the kernel's bytes and the model's prediction (null where unavailable). */
export interface Observation {
  readonly vantage: Vantage;
  readonly file: CheckedFile;
  readonly kernel: string | null;
  readonly model: string | null;
}

/** A disagreement between kernel and model, or a namespace chain that is not what the library made. */
export interface Discrepancy {
  readonly vantage: Vantage;
  readonly file: CheckedFile | "chain";
  readonly kernel: string | null;
  readonly model: string | null;
}

/** One namespace of the chain from the target up to the last one NS_GET_PARENT reveals. */
export interface ChainLink extends NamespaceIdentity {
  /** NS_GET_ID where the kernel has it. */
  readonly id: bigint | undefined;
  /** NS_GET_OWNER_UID, as this process sees it (65534 if unmapped). */
  readonly ownerUid: number | undefined;
}

/** The result of {@link crossCheck}. */
export interface CrossCheckReport {
  readonly pid: number | undefined;
  /** The target first, then its ancestors. */
  readonly chain: readonly ChainLink[];
  /** Whether the chain reaches this process's own namespace. */
  readonly reachesSelf: boolean;
  readonly observations: readonly Observation[];
  readonly discrepancies: readonly Discrepancy[];
  /** No discrepancy. */
  readonly ok: boolean;
}

const FILES: readonly CheckedFile[] = ["uid_map", "gid_map", "setgroups"];
const READ_CAP = 12288;

function sameNs(a: NamespaceIdentity, b: NamespaceIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

function link(fd: number): ChainLink {
  const i = nsInfoFromFd(fd);
  return { dev: i.dev, ino: i.ino, id: i.id, ownerUid: i.ownerUid };
}

/** The map the parent reports, in the kernel's print order, lower ids re-expressed through `via` (when given). */
function predictView(written: IdMap, via: IdMap | undefined): string {
  let out = "";
  for (const e of written.printOrder) {
    // Only each line's first lower id is translated for display (uid_m_show).
    const lower = via === undefined ? e.lowerFirst : mapIdDown(via, e.lowerFirst);
    out += formatProcMapLine(e.first, lower, e.count);
  }
  return out;
}

function parseOrUndefined(text: string | null | undefined): IdMap | undefined {
  if (text === null || text === undefined) return undefined;
  const r = parseMapText(text);
  return r.ok ? r.map : undefined;
}

/**
 * Reads uid_map, gid_map and setgroups of the target's user namespace from
 * every reachable vantage point, walks its namespace chain, and compares the
 * kernel's bytes with the model's prediction. Needs CAP_SYS_ADMIN over the
 * target and its parent (root of the initial namespace has it).
 *
 * @example
 * ```ts
 * const child = spawn("sleep", ["10"], { uidMap: "0 100000 65536\n", gidMap: "0 100000 65536\n" });
 * const report = await crossCheck(child);
 * report.ok // true when every vantage point shows what the model predicts
 * ```
 */
export async function crossCheck(
  target: CrossCheckTarget,
  opts: { timeoutMs?: number } = {},
): Promise<CrossCheckReport> {
  const b = native();
  const pid = typeof target === "number" ? target : "pid" in target ? target.pid : undefined;
  const mapping = typeof target === "number" ? undefined : target.mapping;
  let ownFd = -1;
  let nsFd: number;
  if (typeof target === "object" && "pid" in target) {
    if (pid === undefined)
      throw new UsernsError("cross-checking a process that has no pid (it was never started)", { code: "ESRCH" });
    nsFd = ownFd = b.openNs(`/proc/${pid}/ns/user`);
  } else if (pid !== undefined) nsFd = ownFd = b.openNs(`/proc/${pid}/ns/user`);
  else nsFd = (target as { fd: number }).fd;
  const opened: number[] = [];
  try {
    const self = nsInfo("self", "user");
    // The chain, by NS_GET_PARENT until the kernel refuses (EPERM above our own namespace).
    const chain: ChainLink[] = [link(nsFd)];
    let cur = nsFd;
    for (;;) {
      let parent: number;
      try {
        parent = b.nsGetParent(cur);
      } catch (e) {
        if ((e as { code?: string }).code === "EPERM") break;
        throw e;
      }
      opened.push(parent);
      chain.push(link(parent));
      cur = parent;
      if (chain.length > 40) break;
    }
    const reachesSelf = chain.some((l) => sameNs(l, self));
    if (sameNs(chain[0]!, self))
      throw new UsernsError("cross-checking this process's own user namespace: its map has no reachable parent", {
        code: "EINVAL",
      });
    const parentFd = opened[0];
    const parentIsSelf = chain[1] !== undefined && sameNs(chain[1], self);

    // The program: agent 1 joins the target, agent 2 its parent (unless that is ours).
    const pb = new ProgramBuilder();
    const nsPath = (fd: number) => Buffer.from(`/proc/${process.pid}/fd/${fd}\0`, "latin1");
    // An unprivileged caller may not setgroups; it has no need either (its readers only join and read).
    const privileged = process.geteuid?.() === 0;
    const inside = pb.spawn("inside", privileged);
    pb.add(inside, Op.setnsPath, "joining the target namespace", { data: nsPath(nsFd), flags: REQUIRED });
    const reads: { vantage: Vantage; file: CheckedFile; step: number }[] = [];
    for (const f of FILES)
      reads.push({
        vantage: "inside",
        file: f,
        step: pb.add(inside, Op.readPath, `reading ${f} inside`, {
          data: Buffer.from(`/proc/self/${f}\0`, "latin1"),
          outCap: READ_CAP,
        }),
      });
    for (const f of FILES)
      reads.push({
        vantage: "self",
        file: f,
        step: pb.add(0, Op.read, `reading ${f} from this namespace`, {
          target: inside,
          file: ProcFile[f],
          outCap: READ_CAP,
        }),
      });
    let parentSelfView: number | undefined;
    let parentSetgroups: number;
    if (parentFd !== undefined && !parentIsSelf) {
      const up = pb.spawn("parent", privileged);
      pb.add(up, Op.setnsPath, "joining the parent namespace", { data: nsPath(parentFd), flags: REQUIRED });
      for (const f of FILES)
        reads.push({
          vantage: "parent",
          file: f,
          step: pb.add(up, Op.read, `reading ${f} from the parent`, {
            target: inside,
            file: ProcFile[f],
            outCap: READ_CAP,
          }),
        });
      parentSetgroups = pb.add(up, Op.readPath, "reading the parent's setgroups", {
        data: Buffer.from("/proc/self/setgroups\0", "latin1"),
        outCap: 16,
      });
      parentSelfView = pb.add(0, Op.read, "reading the parent's uid_map from this namespace", {
        target: up,
        file: ProcFile.uid_map,
        outCap: READ_CAP,
      });
      pb.add(0, Op.read, "reading the parent's gid_map from this namespace", {
        target: up,
        file: ProcFile.gid_map,
        outCap: READ_CAP,
      });
    } else {
      parentSetgroups = pb.add(0, Op.readPath, "reading this namespace's setgroups", {
        data: Buffer.from("/proc/self/setgroups\0", "latin1"),
        outCap: 16,
      });
    }
    const enc = pb.encode(opts.timeoutMs ?? 5000);
    const [area] = await runPrograms([enc]);
    const st = programStatus(area!);
    if (st.status !== Status.done)
      throw new UsernsError(`cross-checking user namespace ${chain[0]!.ino}: ${enc.labels[st.abortStep] ?? "runner"}`, {
        code: st.status === Status.timeout ? "ETIMEDOUT" : errnoName(st.abortErr),
        errno: st.status === Status.timeout ? undefined : st.abortErr,
      });
    const kernel = (v: Vantage, f: CheckedFile): string | null => {
      const r = reads.find((x) => x.vantage === v && x.file === f);
      if (r !== undefined) return stepText(enc, area!, r.step);
      // The parent is this process's namespace: its view is the self view.
      return v === "parent" && parentIsSelf ? kernel("self", f) : null;
    };

    // The model: the written lines (or the parent's report) are the map in
    // the parent's ids; the parent and the child itself print them as such;
    // this namespace sees the lower ids through the parent's own map.
    const predicted = new Map<string, string | null>();
    for (const f of ["uid_map", "gid_map"] as const) {
      const written = parseOrUndefined(
        (f === "uid_map" ? mapping?.uidMap : mapping?.gidMap) ?? kernel("parent", f) ?? undefined,
      );
      const parentFromSelf = parentIsSelf
        ? undefined
        : parseOrUndefined(
            parentSelfView === undefined
              ? null
              : stepText(enc, area!, f === "uid_map" ? parentSelfView : parentSelfView + 1),
          );
      const inParent = written === undefined ? null : predictView(written, undefined);
      predicted.set(`parent:${f}`, inParent);
      predicted.set(`inside:${f}`, inParent);
      predicted.set(
        `self:${f}`,
        written === undefined
          ? null
          : parentIsSelf
            ? inParent
            : parentFromSelf
              ? predictView(written, parentFromSelf)
              : null,
      );
    }
    // setgroups is inherited from the parent at creation; only "deny" changes it.
    const inherited = stepText(enc, area!, parentSetgroups);
    // Without what was written, only consistency across vantage points is checked.
    const sg =
      mapping === undefined
        ? (kernel("parent", "setgroups") ?? inherited)
        : mapping.setgroups === "deny"
          ? "deny\n"
          : inherited;
    for (const v of ["self", "parent", "inside"] as const) predicted.set(`${v}:setgroups`, sg);

    const observations: Observation[] = [];
    const discrepancies: Discrepancy[] = [];
    for (const v of ["self", "parent", "inside"] as const)
      for (const f of FILES) {
        const k = kernel(v, f);
        const m = predicted.get(`${v}:${f}`) ?? null;
        observations.push({ vantage: v, file: f, kernel: k, model: m });
        if (k !== m) discrepancies.push({ vantage: v, file: f, kernel: k, model: m });
      }
    if (mapping !== undefined && !reachesSelf)
      discrepancies.push({
        vantage: "self",
        file: "chain",
        kernel: chain.map((l) => `user:[${l.ino}]`).join(" <- "),
        model: `a chain up to this process's namespace user:[${self.ino}]`,
      });
    return { pid, chain, reachesSelf, observations, discrepancies, ok: discrepancies.length === 0 };
  } finally {
    for (const fd of opened) b.close(fd);
    if (ownFd >= 0) b.close(ownFd);
  }
}
