/**
 * Ownership shift: rewrite a tree's owners, groups, POSIX ACL entries and
 * file-capability root ids by a map, for where an idmapped mount cannot serve
 * (overlayfs itself, NFS, tmpfs before 6.3, or files that must belong to the
 * container's ids on disk). Maps go in the mount direction, exactly as for
 * `idmapMount`: shifting with a map gives on disk what an idmapped mount with
 * that map shows.
 *
 * Order of work: scan the whole tree (no change), refuse on anything that
 * would leave it half done (ids the map does not cover, malformed xattrs,
 * immutable inodes), write the journal durably, apply, sync, record the
 * shift on the root (xattr `user.userns.shift`), remove the journal.
 *
 * @packageDocumentation
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  lstatSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { availableParallelism } from "node:os";
import { join, resolve } from "node:path";
import { codeOfNodeError, UsernsError, type UsernsErrorCode, usageError } from "../errors.js";
import { native } from "../kernel/native.js";
import { APPLY_OP, SCAN_FLAG, type ScanResult, shiftNative } from "../kernel/shift.js";
import { inverse } from "../model/algebra.js";
import type { IdMap } from "../model/idmap.js";
import { chownCommon, type FsCaller, type Inode, inodeOwnerOrCapable, type UidGidMaps } from "../model/idmapped.js";
import { parseMapText } from "../model/parse.js";
import { toIdMap } from "../mounts/mapformats.js";
import {
  fsyncDir,
  JOURNAL_NAME,
  JOURNAL_TMP_NAME,
  type JournalHeader,
  readJournal,
  removeJournal,
  writeJournal,
} from "./journal.js";
import { applyPlan, type MalformedXattr, planShift, recordPath, type ShiftPlan, type UncoveredId } from "./plan.js";

/** The xattr on the root that records a completed shift (its maps, as JSON). */
export const SHIFT_MARKER = "user.userns.shift";
/**
 * The file at the root that records a completed shift where the filesystem
 * has no user xattrs (same JSON as {@link SHIFT_MARKER}); never shifted itself.
 */
export const MARKER_FILE = ".userns-shift.marker";
const MARKER_TMP_FILE = ".userns-shift.marker.tmp";

/** Options of {@link shiftOwnership}. */
export interface ShiftOptions {
  /** uid map in the mount direction (on-disk uid → new uid): an IdMap or uid_map text `first lower count`. */
  readonly uidMap: IdMap | string;
  /** gid map, same direction; default: the uid map. */
  readonly gidMap?: IdMap | string;
  /** `"forward"` applies the maps (host → container for a map like `0 100000 65536`); `"reverse"` undoes them. Default forward. */
  readonly direction?: "forward" | "reverse";
  /** Replace ids the map does not cover by this id instead of refusing (the report counts them). */
  readonly force?: number;
  /** Also shift inside other mounts below the root. Default false: mount points are skipped and listed. */
  readonly crossMounts?: boolean;
  /** Scan and plan only; change nothing. */
  readonly dryRun?: boolean;
}

/** What a shift did (or, with `dryRun`, would do). */
export interface ShiftReport {
  readonly path: string;
  readonly direction: "forward" | "reverse";
  /** Inodes in the tree (hard links counted once). */
  readonly inodes: number;
  /** Inodes whose owner or group changed. */
  readonly changedOwners: number;
  /** ACL xattrs rewritten or checked. */
  readonly acls: number;
  /** security.capability xattrs rewritten. */
  readonly caps: number;
  /** Id occurrences `force` replaced. */
  readonly forced: number;
  /** Mount points below the root that were not entered. */
  readonly skippedMounts: readonly string[];
  readonly dryRun: boolean;
  /** How the shift ended: `"applied"`, `"resumed"`, `"rolled-back"`, `"planned"` (dry run). */
  readonly outcome: "applied" | "resumed" | "rolled-back" | "planned";
}

/** A shift recorded on a root by {@link SHIFT_MARKER}. */
export interface ShiftMarker {
  readonly uidMap: string;
  readonly gidMap: string;
  readonly force: number | null;
}

/** The absolute path of a record path relative to the root ("." is the root). */
function under(root: string, rel: string | undefined): string {
  return rel === undefined || rel === "." ? root : `${root}/${rel}`;
}

function shiftError(
  attempted: string,
  code: UsernsErrorCode,
  path: string,
  reason: string,
  extra: Record<string, unknown> = {},
): UsernsError {
  const e = new UsernsError(attempted, { code, path, reason });
  Object.assign(e, extra);
  return e;
}

function checkMap(map: IdMap, what: string): IdMap {
  if (map.isEmpty) throw usageError(`shift: the ${what} map is empty`);
  // The same rules the kernel applies to a uid_map (and so to an idmapped mount's map).
  const r = parseMapText(map.toString());
  if (!r.ok) throw usageError(`shift: the ${what} map is refused: ${r.reason} (${r.rule}, line ${r.line})`);
  return map;
}

function noUserXattrs(e: unknown): boolean {
  const c = (e as { code?: string }).code;
  return c === "EOPNOTSUPP" || c === "ENOTSUP";
}

function readMarkerFile(root: string): string | null {
  try {
    return readFileSync(join(root, MARKER_FILE), "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

/**
 * The recorded shift of `root`: the xattr, or where the filesystem has no
 * user xattrs (ramfs, vfat, some FUSE and network filesystems) the marker
 * file beside the journal. Both are read so that a tree copied from one kind
 * of filesystem to the other keeps its guard.
 */
function readMarker(root: string): string | null {
  try {
    const b = shiftNative().xattrGet(root, SHIFT_MARKER);
    if (b !== null) return b.toString("utf8");
  } catch (e) {
    if (!noUserXattrs(e)) throw e;
  }
  return readMarkerFile(root);
}

/** Writes (or, with null, removes) the marker durably: the xattr where it can be set, else {@link MARKER_FILE}. */
function writeMarker(root: string, value: string | null): void {
  const n = shiftNative();
  const file = join(root, MARKER_FILE);
  if (value === null) {
    try {
      n.xattrRemove(root, SHIFT_MARKER);
    } catch (e) {
      if (!noUserXattrs(e)) throw e;
    }
    let removed = false;
    for (const f of [file, join(root, MARKER_TMP_FILE)]) {
      try {
        unlinkSync(f);
        removed = true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      }
    }
    if (removed) fsyncDir(root);
    return;
  }
  try {
    n.xattrSet(root, SHIFT_MARKER, Buffer.from(value));
    return;
  } catch (e) {
    if (!noUserXattrs(e)) throw e;
  }
  // No user xattrs here: a file, complete before it has its name (as the journal).
  const tmp = join(root, MARKER_TMP_FILE);
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, value);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  fsyncDir(root);
}

/** The shift recorded on `path`'s root, if any. */
export function shiftMarker(path: string): ShiftMarker | undefined {
  const v = readMarker(resolve(path));
  return v === null ? undefined : (JSON.parse(v) as ShiftMarker);
}

function rootOf(path: string, attempted: string): { root: string; dev: bigint; ino: bigint } {
  const root = resolve(path);
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(root, { bigint: true });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new UsernsError(`${attempted} ${root}`, {
      code: codeOfNodeError(err, "ENOENT"),
      syscall: "lstat",
      path: root,
      cause: e,
    });
  }
  if (!st.isDirectory()) {
    throw new UsernsError(`${attempted} ${root}`, {
      code: "ENOTDIR",
      syscall: "lstat",
      path: root,
      reason: st.isSymbolicLink() ? "the path is a symlink (it is not followed)" : "the path is not a directory",
    });
  }
  return { root, dev: st.dev, ino: st.ino };
}

function describeUncovered(u: readonly UncoveredId[]): string {
  const lines = u
    .slice(0, 10)
    .map((x) => `${x.use} ${x.id} (${x.count} inode${x.count === 1 ? "" : "s"}: ${x.paths.join(", ")})`);
  return `${u.length} id${u.length === 1 ? "" : "s"} not covered by the map: ${lines.join("; ")}${u.length > 10 ? "; ..." : ""}`;
}

const CAP_CHOWN = 0n;
const CAP_FOWNER = 3n;
const CAP_FSETID = 4n;
const CAP_SETFCAP = 31n;

/**
 * Inodes this process may not change (or change back), predicted with the
 * model's chown rules (lib/model/idmapped.ts `chownCommon`) for a caller
 * without CAP_CHOWN/CAP_FOWNER/CAP_FSETID, so that an unprivileged shift is
 * refused before its first change rather than stopped half way.
 */
function notPermitted(scan: ScanResult, plan: ShiftPlan): string[] {
  const caps = native().capEffective();
  const has = (bit: bigint) => ((caps >> bit) & 1n) === 1n;
  const out: string[] = [];
  const needSetfcap = !has(CAP_SETFCAP);
  if (has(CAP_CHOWN) && has(CAP_FOWNER) && has(CAP_FSETID) && !needSetfcap) return out;
  const caller: FsCaller = {
    fsuid: process.geteuid?.() ?? 0,
    fsgid: process.getegid?.() ?? 0,
    groups: process.getgroups?.() ?? [],
    caps: [
      ...(has(CAP_CHOWN) ? (["CAP_CHOWN"] as const) : []),
      ...(has(CAP_FOWNER) ? (["CAP_FOWNER"] as const) : []),
      ...(has(CAP_FSETID) ? (["CAP_FSETID"] as const) : []),
    ],
  };
  for (let i = 0; i < scan.count && out.length < 50; i++) {
    const op = plan.ops[i]!;
    if (!op) continue;
    const type = (scan.mode[i]! & 0o170000) === 0o040000 ? "dir" : "file";
    const before: Inode = { uid: scan.uid[i]!, gid: scan.gid[i]!, mode: scan.mode[i]! & 0o7777, type };
    const after: Inode = { ...before, uid: plan.uid[i]!, gid: plan.gid[i]! };
    let ok = true;
    if (op & APPLY_OP.CHOWN) {
      const to = (a: Inode, b: Inode) =>
        chownCommon(caller, "nop", "init", a, a.uid === b.uid ? -1 : b.uid, a.gid === b.gid ? -1 : b.gid).ok;
      // Both ways: a shift that could not be undone must not start.
      ok = to(before, after) && to(after, before);
    }
    if (ok && op & (APPLY_OP.ACL_ACCESS | APPLY_OP.ACL_DEFAULT | APPLY_OP.CHMOD)) {
      ok = inodeOwnerOrCapable(caller, "nop", "init", after) && inodeOwnerOrCapable(caller, "nop", "init", before);
    }
    if (ok && op & APPLY_OP.CAP && needSetfcap) ok = false;
    if (!ok) out.push(recordPath(scan, i));
  }
  return out;
}

function refuseProblems(root: string, scan: ScanResult, plan: ShiftPlan): void {
  const attempted = `shifting ownership of ${root}`;
  const denied = notPermitted(scan, plan);
  if (denied.length > 0) {
    throw shiftError(
      attempted,
      "EPERM",
      under(root, denied[0]),
      `this process may not change ${denied.length === 50 ? "at least 50 inodes" : `${denied.length} inode${denied.length === 1 ? "" : "s"}`} (or change ${denied.length === 1 ? "it" : "them"} back) without CAP_CHOWN, CAP_FOWNER, CAP_FSETID and CAP_SETFCAP: ${denied.slice(0, 10).join(", ")}; nothing was changed`,
      { paths: denied },
    );
  }
  const immutable: string[] = [];
  for (let i = 0; i < scan.count; i++) {
    if (scan.flags[i]! & SCAN_FLAG.IMMUTABLE && plan.ops[i]) immutable.push(recordPath(scan, i));
  }
  if (immutable.length > 0) {
    throw shiftError(
      attempted,
      "EPERM",
      under(root, immutable[0]),
      `${immutable.length} inode${immutable.length === 1 ? " is" : "s are"} immutable or append-only and cannot be changed: ${immutable.slice(0, 10).join(", ")}; nothing was changed`,
      { paths: immutable },
    );
  }
  if (plan.malformed.length > 0) {
    const m: MalformedXattr = plan.malformed[0]!;
    throw shiftError(
      attempted,
      "ERR_USERNS_SHIFT_XATTR",
      under(root, m.path),
      `${plan.malformed.length} malformed xattr${plan.malformed.length === 1 ? "" : "s"}: ${plan.malformed
        .slice(0, 10)
        .map((x) => `${x.path}: ${x.name}: ${x.reason}`)
        .join("; ")}; nothing was changed`,
      { malformed: plan.malformed },
    );
  }
  if (plan.uncovered.length > 0) {
    throw shiftError(
      attempted,
      "ERR_USERNS_SHIFT_UNMAPPED",
      under(root, plan.uncovered[0]!.paths[0]),
      `${describeUncovered(plan.uncovered)}; nothing was changed (--force ID maps them to ID)`,
      { uncovered: plan.uncovered },
    );
  }
}

function mapsOf(header: Pick<JournalHeader, "appliedUidMap" | "appliedGidMap">): UidGidMaps {
  return { uid: toIdMap(header.appliedUidMap), gid: toIdMap(header.appliedGidMap) };
}

/** Worker threads for the apply: the syscalls are independent per inode, and a tree is walked by directory. */
const APPLY_THREADS = Math.min(2, availableParallelism());

/** Applies targets; on failure puts back what was applied, then rethrows. */
function applyOrUndo(root: string, scan: ScanResult, plan: ShiftPlan, crossMounts: boolean): void {
  const n = shiftNative();
  try {
    n.shiftApply(root, applyPlan(scan, plan, "after", { crossMounts, verify: false }), 0, scan.count, APPLY_THREADS);
  } catch (e) {
    const err = e as UsernsError;
    try {
      // Workers may have got past the failing record: put every inode back (idempotent).
      n.shiftApply(root, applyPlan(scan, plan, "before", { crossMounts, verify: false }), 0, scan.count, APPLY_THREADS);
    } catch (undo) {
      throw new UsernsError(`shifting ownership of ${root}`, {
        code: err.code ?? "ERR_USERNS",
        path: err.path ?? root,
        reason: `${err.message}; undoing the inodes already changed failed too (${(undo as Error).message}); the journal ${JOURNAL_NAME} stays: run \`userns shift --rollback ${root}\``,
        cause: e,
      });
    }
    n.syncFs(root);
    removeJournal(root);
    throw new UsernsError(`shifting ownership of ${root}`, {
      code: err.code ?? "ERR_USERNS",
      ...(err.errno !== undefined ? { errno: err.errno } : {}),
      ...(err.syscall !== undefined ? { syscall: err.syscall } : {}),
      path: err.path ?? root,
      reason: `${err.message}; the inodes changed before it were put back: nothing is changed`,
      cause: e,
    });
  }
}

function finish(root: string, markerValue: string | null): void {
  const n = shiftNative();
  // The tree's changes are durable before the marker says so, and the marker before the journal goes.
  n.syncFs(root);
  writeMarker(root, markerValue);
  n.syncFs(root);
  removeJournal(root);
}

/**
 * Shifts the ownership of the tree at `path` by a mount-direction map: owner
 * and group of every inode (lchown; a hard-linked inode once), set-id bits
 * restored, POSIX ACL user/group entries, and file capabilities (v2 becomes
 * v3 with the mapped root id, a v3 root id is shifted), exactly as an
 * idmapped mount with the same map shows them. Never follows symlinks and
 * does not enter other mounts unless `crossMounts`. Refuses before changing
 * anything when the map does not cover an id (unless `force`), when an xattr
 * is malformed, when an inode is immutable, or when the tree was already
 * shifted (see {@link shiftMarker}) or a shift of it was interrupted (see
 * {@link resumeShift}, {@link rollbackShift}).
 */
export function shiftOwnership(path: string, options: ShiftOptions): ShiftReport {
  const direction = options.direction ?? "forward";
  const attempted = `shifting ownership of`;
  const { root, dev, ino } = rootOf(path, attempted);
  const uidMap = checkMap(toIdMap(options.uidMap), "uid");
  const gidMap = checkMap(options.gidMap === undefined ? uidMap : toIdMap(options.gidMap), "gid");
  if (
    options.force !== undefined &&
    (!Number.isInteger(options.force) || options.force < 0 || options.force >= 0xffffffff)
  ) {
    throw usageError(`shift: --force ${options.force} is not an id (0 to 4294967294)`);
  }
  if (readJournal(root) !== undefined) {
    throw shiftError(
      `${attempted} ${root}`,
      "ERR_USERNS_SHIFT_INTERRUPTED",
      root,
      `an earlier shift of this tree was interrupted (${JOURNAL_NAME} is there): finish it with --resume or undo it with --rollback`,
    );
  }
  // A journal still under its temporary name was never committed: nothing was changed after it.
  if (existsSync(join(root, JOURNAL_TMP_NAME))) removeJournal(root);
  const markerBefore = readMarker(root);
  const given: ShiftMarker = { uidMap: uidMap.toString(), gidMap: gidMap.toString(), force: options.force ?? null };
  if (direction === "forward" && markerBefore !== null) {
    throw shiftError(
      `${attempted} ${root}`,
      "ERR_USERNS_SHIFT_ALREADY",
      root,
      `the tree was already shifted (${SHIFT_MARKER} = ${markerBefore}); shifting it again would apply the map twice (shift it back with --reverse first)`,
    );
  }
  if (direction === "reverse" && markerBefore !== null) {
    const m = JSON.parse(markerBefore) as ShiftMarker;
    if (m.uidMap !== given.uidMap || m.gidMap !== given.gidMap) {
      throw shiftError(
        `${attempted} ${root}`,
        "ERR_USERNS_SHIFT_ALREADY",
        root,
        `the tree was shifted with other maps (${markerBefore}); --reverse takes the same maps`,
      );
    }
  }
  const applied: UidGidMaps =
    direction === "forward" ? { uid: uidMap, gid: gidMap } : { uid: inverse(uidMap), gid: inverse(gidMap) };
  const crossMounts = options.crossMounts === true;
  const n = shiftNative();
  const scan = n.shiftScan(root, {
    crossMounts,
    exclude: [JOURNAL_NAME, JOURNAL_TMP_NAME, MARKER_FILE, MARKER_TMP_FILE],
    threads: APPLY_THREADS,
  });
  const plan = planShift(scan, applied, options.force);
  refuseProblems(root, scan, plan);
  const report = (outcome: ShiftReport["outcome"]): ShiftReport => ({
    path: root,
    direction,
    inodes: scan.count,
    changedOwners: plan.changedOwners,
    acls: plan.acls,
    caps: plan.caps,
    forced: plan.forced,
    skippedMounts: scan.skippedMounts,
    dryRun: options.dryRun === true,
    outcome,
  });
  if (options.dryRun) return report("planned");
  const markerAfter = direction === "forward" ? JSON.stringify(given) : null;
  writeJournal(
    root,
    {
      direction,
      uidMap: given.uidMap,
      gidMap: given.gidMap,
      appliedUidMap: applied.uid.toString(),
      appliedGidMap: applied.gid.toString(),
      force: options.force ?? null,
      crossMounts,
      rootDev: String(dev),
      rootIno: String(ino),
      markerBefore,
      markerAfter,
    },
    scan,
  );
  applyOrUndo(root, scan, plan, crossMounts);
  finish(root, markerAfter);
  return report("applied");
}

function fromJournal(path: string, what: "resume" | "rollback"): ShiftReport {
  const attempted = what === "resume" ? "resuming the shift of" : "rolling back the shift of";
  const { root, dev, ino } = rootOf(path, attempted);
  const j = readJournal(root);
  if (j === undefined) {
    if (existsSync(join(root, JOURNAL_TMP_NAME))) {
      // Killed while writing the journal: it was never committed, so nothing was changed.
      removeJournal(root);
      return {
        path: root,
        direction: "forward",
        inodes: 0,
        changedOwners: 0,
        acls: 0,
        caps: 0,
        forced: 0,
        skippedMounts: [],
        dryRun: false,
        outcome: "rolled-back",
      };
    }
    throw shiftError(
      `${attempted} ${root}`,
      "ERR_USERNS_SHIFT_NO_JOURNAL",
      root,
      `there is no ${JOURNAL_NAME}: no shift of this tree was interrupted`,
    );
  }
  const { header, scan } = j;
  if (header.rootDev !== String(dev) || header.rootIno !== String(ino)) {
    throw shiftError(
      `${attempted} ${root}`,
      "ERR_USERNS_SHIFT_JOURNAL",
      root,
      `the journal belongs to another directory (dev ${header.rootDev} ino ${header.rootIno})`,
    );
  }
  const plan = planShift(scan, mapsOf(header), header.force ?? undefined);
  const n = shiftNative();
  // Each inode is checked to be the one the journal names before it is changed.
  n.shiftApply(
    root,
    applyPlan(scan, plan, what === "resume" ? "after" : "before", { crossMounts: header.crossMounts, verify: true }),
    0,
    scan.count,
    APPLY_THREADS,
  );
  finish(root, what === "resume" ? header.markerAfter : header.markerBefore);
  return {
    path: root,
    direction: header.direction,
    inodes: scan.count,
    changedOwners: plan.changedOwners,
    acls: plan.acls,
    caps: plan.caps,
    forced: plan.forced,
    skippedMounts: [],
    dryRun: false,
    outcome: what === "resume" ? "resumed" : "rolled-back",
  };
}

/** Finishes a shift of `path` that was interrupted (by a crash or a kill): the tree ends entirely shifted. */
export function resumeShift(path: string): ShiftReport {
  return fromJournal(path, "resume");
}

/** Undoes a shift of `path` that was interrupted: the tree ends exactly as before it. */
export function rollbackShift(path: string): ShiftReport {
  return fromJournal(path, "rollback");
}

/** Whether `path` holds an interrupted shift (a journal) and which shift it records as done. */
export function shiftStatus(path: string): { interrupted: boolean; marker: ShiftMarker | undefined } {
  const { root } = rootOf(path, "reading the shift state of");
  return { interrupted: readJournal(root) !== undefined, marker: shiftMarker(root) };
}
