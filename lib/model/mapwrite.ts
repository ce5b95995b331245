/**
 * Writing /proc/PID/{uid_map,gid_map,projid_map} and /proc/PID/setgroups, as
 * kernel/user_namespace.c does it (spec §2, §4). `mapWrite` is the one
 * orchestrator that owns the order of checks and the errno each gives; every
 * check is its own predicate named after the kernel function.
 */
import { type Capability, type Cred, FULL_CAPS, fileNsCapable, NO_CAPS, nsCapable } from "./caps.js";
import type { Extent } from "./extent.js";
import { IdMap, type MapKind } from "./idmap.js";
import { mapIdRangeDown } from "./lookup.js";
import { INIT_USER_NS, kidHasMapping, makeKid, nsMap, sameNs, type UserNs, withMap, withSetgroups } from "./ns.js";
import { kernelIsspace, PAGE_SIZE, type ParseRule, parseMapBytes, toBytes, transientBytes } from "./parse.js";
import { INVALID_ID } from "./u32.js";

/** Every rule a map write can fail, named after the kernel check. */
export type MapWriteRule =
  /** pwrite(2) on a seq file: FMODE_PWRITE is cleared (ESPIPE). */
  | "pwrite"
  /** proc_*_map_write: the target is the initial namespace (EPERM). */
  | "initial_ns"
  /** proc_*_map_write: the opener's namespace is neither the target nor its parent (EPERM). */
  | "opener_ns"
  /** map_write: `*ppos != 0` (EINVAL). */
  | "ppos"
  /** map_write: this map has been written already (EPERM). */
  | "map_written"
  /** map_write: the opener lacks CAP_SYS_ADMIN in the target (EPERM). */
  | "cap_sys_admin"
  /** Parsing and per-line checks (EINVAL), see {@link ParseRule}. */
  | ParseRule
  /** new_idmap_permitted → verify_root_map: mapping parent uid 0 without CAP_SETFCAP (EPERM). */
  | "verify_root_map"
  /** new_idmap_permitted: neither the single-id form nor the privileged path applies (EPERM). */
  | "new_idmap_permitted"
  /** map_id_range_down over the parent's map: a lower range is not inside one parent extent (EPERM). */
  | "map_id_range_down";

/** An open map file: the namespace is fixed at open (proc_id_map_open), and `file->f_cred` is the opener. */
export interface MapFile {
  /** Which map. */
  readonly kind: MapKind;
  /** The target task's user namespace at open time. */
  readonly target: UserNs;
  /** The opener's credentials. */
  readonly opener: Cred;
  /** The file position (`*ppos`): the count of the last successful write, else 0. */
  readonly pos: number;
}

/** What a map write did. */
export type MapWriteResult =
  | {
      ok: true;
      /** The byte count write(2) returned. */
      written: number;
      /** The map as written (lower values in the parent's ids). */
      map: IdMap;
      /** The map as installed (lower values are kernel ids). */
      installed: IdMap;
      /** The target namespace with the map installed. */
      ns: UserNs;
      /** The file with its new position. */
      file: MapFile;
    }
  | {
      ok: false;
      written: -1;
      errno: "EINVAL" | "EPERM" | "ESPIPE";
      rule: MapWriteRule;
      /** Why, in words. */
      reason: string;
      /** The offending line (1-based) for per-line rules. */
      line?: number;
      /** The target namespace, unchanged. */
      ns: UserNs;
      file: MapFile;
    };

/** The capability map_write / new_idmap_permitted check for a kind: CAP_SETUID, CAP_SETGID, or none for projid (`cap_setid == -1`). */
export function capSetid(kind: MapKind): Capability | undefined {
  return kind === "uid" ? "CAP_SETUID" : kind === "gid" ? "CAP_SETGID" : undefined;
}

function rangeText(first: number, count: number): string {
  return count === 1 ? `${first}` : `${first}-${first + count - 1}`;
}

/** Mirrors proc_*_map_write: the target namespace has no parent (it is the initial one). */
export function isInitialNs(ns: UserNs): boolean {
  return ns.parent === null;
}

/** Mirrors proc_*_map_write: the opener (seq_user_ns) is in the target or its parent. */
export function openerNsMayWrite(opener: Cred, target: UserNs): boolean {
  return sameNs(opener.ns, target) || (target.parent !== null && sameNs(opener.ns, target.parent));
}

/** Mirrors kernel/user_namespace.c: verify_root_map (spec §2.4.1): mapping parent uid 0 needs CAP_SETFCAP. */
export function verifyRootMap(opener: Cred, ns: UserNs, newMap: IdMap): boolean {
  const extents = newMap.extents;
  let mapsRoot = false;
  for (let i = 0; i < extents.length && !mapsRoot; i++) mapsRoot = extents[i]!.lowerFirst === 0;
  if (!mapsRoot) return true;
  if (sameNs(ns, opener.ns)) return ns.parentCouldSetfcap;
  return fileNsCapable(opener, ns.parent!, "CAP_SETFCAP");
}

/** The unprivileged single-id form of new_idmap_permitted (spec §2.4.2): one line, count 1, owner == opener, lower == the opener's own id. */
export function singleIdMappingPermitted(opener: Cred, ns: UserNs, kind: MapKind, newMap: IdMap): boolean {
  if (newMap.size !== 1 || newMap.extents[0]!.count !== 1 || ns.ownerKuid !== opener.euid) return false;
  const id = newMap.extents[0]!.lowerFirst;
  if (kind === "uid") return makeKid(ns.parent!, "uid", id) === opener.euid;
  if (kind === "gid") return !ns.setgroupsAllowed && makeKid(ns.parent!, "gid", id) === opener.egid;
  return false;
}

/** The privileged path of new_idmap_permitted (spec §2.4.4): writer AND opener hold CAP_SETUID/CAP_SETGID in the parent. */
export function privilegedMappingPermitted(writer: Cred, opener: Cred, ns: UserNs, cap: Capability): boolean {
  return nsCapable(writer, ns.parent!, cap) && fileNsCapable(opener, ns.parent!, cap);
}

/** Mirrors kernel/user_namespace.c: new_idmap_permitted (spec §2.4), in the kernel's order. */
export function newIdmapPermitted(writer: Cred, opener: Cred, ns: UserNs, kind: MapKind, newMap: IdMap): boolean {
  if (kind === "uid" && !verifyRootMap(opener, ns, newMap)) return false;
  if (singleIdMappingPermitted(opener, ns, kind, newMap)) return true;
  const cap = capSetid(kind);
  if (cap === undefined) return true;
  return privilegedMappingPermitted(writer, opener, ns, cap);
}

function explainNewIdmapRefusal(writer: Cred, opener: Cred, ns: UserNs, kind: MapKind, newMap: IdMap): string {
  const cap = capSetid(kind)!;
  const w = nsCapable(writer, ns.parent!, cap);
  const o = fileNsCapable(opener, ns.parent!, cap);
  const who =
    !w && !o
      ? `neither the writer nor the opener has ${cap} in the parent namespace`
      : !w
        ? `the writer lacks ${cap} in the parent namespace (the opener has it)`
        : `the opener lacks ${cap} in the parent namespace (the writer has it)`;
  // Say why the unprivileged single-id form did not apply either.
  const idName = kind === "uid" ? "uid" : "gid";
  const own = kind === "uid" ? opener.euid : opener.egid;
  let why: string;
  if (newMap.size !== 1) why = `this map has ${newMap.size} lines`;
  else if (newMap.extents[0]!.count !== 1) why = `this line's count is ${newMap.extents[0]!.count}`;
  else if (ns.ownerKuid !== opener.euid) why = "the opener does not own the namespace";
  else if (kind === "gid" && ns.setgroupsAllowed) why = 'setgroups is still "allow" (write "deny" first)';
  else {
    const k = makeKid(ns.parent!, kind, newMap.extents[0]!.lowerFirst);
    why = `lower id ${newMap.extents[0]!.lowerFirst} is ${k === INVALID_ID ? "not mapped in the parent namespace" : `kernel ${idName} ${k}`}, not the opener's own ${idName} (kernel ${idName} ${own})`;
  }
  return `${who}, so only one line of count 1 mapping the opener's own ${idName} is allowed, and ${why}`;
}

function explainRootMapRefusal(opener: Cred, ns: UserNs, newMap: IdMap): string {
  const line = newMap.extents.findIndex((e) => e.lowerFirst === 0) + 1;
  const who = sameNs(ns, opener.ns)
    ? "the namespace's creator did not have CAP_SETFCAP in its effective set"
    : "the opener lacks CAP_SETFCAP in the parent namespace";
  return `line ${line} maps uid 0 of the parent namespace, and ${who}`;
}

/**
 * Why [lower, lower+count-1] does not fit in one extent of the parent map
 * (whose upper side is in the parent's own ids): straddling, or unmapped ids.
 */
export function explainParentMiss(parent: IdMap, lower: number, count: number): string {
  const last = lower + count - 1;
  const pieces: string[] = [];
  const holes: string[] = [];
  let at = lower;
  for (const e of parent.forward) {
    const eLast = e.first + e.count - 1;
    if (eLast < at || e.first > last) continue;
    if (e.first > at) holes.push(rangeText(at, e.first - at));
    const s = Math.max(at, e.first);
    const t = Math.min(last, eLast);
    pieces.push(rangeText(s, t - s + 1));
    at = t + 1;
    if (at > last) break;
  }
  if (at <= last) holes.push(rangeText(at, last - at + 1));
  const whole = rangeText(lower, count);
  if (holes.length === 0) {
    return `lower ids ${whole} are mapped in the parent namespace but across ${pieces.length} of its extents (${pieces.join(", ")}); each line must fit inside one parent extent, so split it`;
  }
  if (pieces.length === 0) {
    return count === 1
      ? `lower id ${whole} is not mapped in the parent namespace`
      : `lower ids ${whole} are not mapped in the parent namespace`;
  }
  return `lower ids ${whole}: ${holes.join(", ")} ${holes.length === 1 && !holes[0]!.includes("-") ? "is" : "are"} not mapped in the parent namespace`;
}

/** Mirrors the translation loop of map_write (spec §2.5): each lower range → kernel ids through the parent's installed map. */
export function translateToParent(
  newMap: IdMap,
  parentMap: IdMap,
): { ok: true; installed: IdMap } | { ok: false; index: number; extent: Extent } {
  // Under the initial namespace's identity map every legal lower range
  // (parse already refused ones reaching 4294967295) translates to itself.
  if (parentMap.size === 1) {
    const p = parentMap.extents[0]!;
    if (p.first === 0 && p.lowerFirst === 0 && p.count === INVALID_ID) return { ok: true, installed: newMap };
  }
  // The kernel translates before sort_idmaps (the CVE-2018-18955 ordering),
  // while forward[] still holds the lines as insert_extent wrote them, so it
  // walks written order at every size and the first miss is the line named.
  const extents = newMap.extents;
  const lowers: number[] = [];
  let identity = true;
  for (let i = 0; i < extents.length; i++) {
    const e = extents[i]!;
    const k = mapIdRangeDown(parentMap, e.lowerFirst, e.count);
    if (k === INVALID_ID) return { ok: false, index: i, extent: e };
    lowers.push(k);
    if (k !== e.lowerFirst) identity = false;
  }
  // Under an identity parent (the initial namespace) the installed map is the written one.
  if (identity) return { ok: true, installed: newMap };
  const installed: Extent[] = [];
  for (let i = 0; i < extents.length; i++) {
    const e = extents[i]!;
    // Each installed range lies inside one parent extent, so the fields stay valid u32s.
    installed.push(Object.freeze({ first: e.first, lowerFirst: lowers[i]!, count: e.count }));
  }
  return { ok: true, installed: IdMap.fromValidated(installed) };
}

/** Arguments of {@link mapWrite}. */
export interface MapWriteArgs {
  /** The open file. */
  file: MapFile;
  /** The target namespace's current state (defaults to `file.target`): another fd may have written the map since. */
  current?: UserNs;
  /** The credentials calling write(2). */
  writer: Cred;
  /** The bytes handed to write(2); strings are UTF-8 encoded. */
  data: string | Uint8Array;
  /** pwrite(2) instead of write(2). */
  pwrite?: boolean;
}

/**
 * Mirrors proc_{uid,gid,projid}_map_write + map_write (spec §2.1): the checks
 * in the kernel's order; the first failing one decides the errno.
 */
export function mapWrite(args: MapWriteArgs): MapWriteResult {
  const { file, writer } = args;
  const ns = args.current ?? file.target;
  // Only read before the parse below: no other encoding happens in between.
  const bytes = transientBytes(args.data);
  const refuse = (
    errno: "EINVAL" | "EPERM" | "ESPIPE",
    rule: MapWriteRule,
    reason: string,
    line?: number,
  ): MapWriteResult => ({ ok: false, written: -1, errno, rule, reason, ns, file, ...(line ? { line } : {}) });
  const kind = file.kind;

  if (args.pwrite)
    return refuse("ESPIPE", "pwrite", "proc map files cannot be written with pwrite; use one write(2) at offset 0");
  if (isInitialNs(ns)) return refuse("EPERM", "initial_ns", "the initial user namespace's maps are fixed");
  if (!openerNsMayWrite(file.opener, ns)) {
    return refuse(
      "EPERM",
      "opener_ns",
      "the file was opened from a namespace that is neither the target nor its parent",
    );
  }
  if (file.pos !== 0) {
    return refuse(
      "EINVAL",
      "ppos",
      "this file was already written (or moved from offset 0); the whole map must go in one write(2)",
    );
  }
  if (bytes.length >= PAGE_SIZE) {
    return refuse(
      "EINVAL",
      "page_size",
      `the text is ${bytes.length} bytes; the kernel takes at most ${PAGE_SIZE - 1} in one write`,
    );
  }
  if (!nsMap(ns, kind).isEmpty)
    return refuse("EPERM", "map_written", `the ${kind}_map was written already; a map is written once`);
  const cap = capSetid(kind);
  if (cap !== undefined && !fileNsCapable(file.opener, ns, "CAP_SYS_ADMIN")) {
    return refuse("EPERM", "cap_sys_admin", "the opener lacks CAP_SYS_ADMIN in the target namespace");
  }
  const parsed = parseMapBytes(bytes, typeof args.data === "string" ? args.data : undefined);
  if (!parsed.ok) return refuse("EINVAL", parsed.rule, parsed.reason, parsed.line || undefined);
  const newMap = parsed.map;
  if (!newIdmapPermitted(writer, file.opener, ns, kind, newMap)) {
    if (kind === "uid" && !verifyRootMap(file.opener, ns, newMap)) {
      return refuse("EPERM", "verify_root_map", explainRootMapRefusal(file.opener, ns, newMap));
    }
    return refuse("EPERM", "new_idmap_permitted", explainNewIdmapRefusal(writer, file.opener, ns, kind, newMap));
  }
  const parentMap = nsMap(ns.parent!, kind);
  const tr = translateToParent(newMap, parentMap);
  if (!tr.ok) {
    return refuse(
      "EPERM",
      "map_id_range_down",
      `line ${tr.index + 1}: ${explainParentMiss(parentMap, tr.extent.lowerFirst, tr.extent.count)}`,
      tr.index + 1,
    );
  }
  return {
    ok: true,
    written: bytes.length,
    map: newMap,
    installed: tr.installed,
    ns: withMap(ns, kind, tr.installed),
    file: { ...file, pos: bytes.length },
  };
}

// ---------------------------------------------------------------- setgroups

/** Rules a setgroups write can fail. */
export type SetgroupsRule = "ppos" | "setgroups_size" | "setgroups_syntax" | "setgroups_denied" | "gid_map_written";

/** What a setgroups write did. */
export type SetgroupsWriteResult =
  | { ok: true; written: number; ns: UserNs }
  | { ok: false; written: -1; errno: "EINVAL" | "EPERM"; rule: SetgroupsRule; reason: string; ns: UserNs };

/** Mirrors kernel/user_namespace.c: proc_setgroups_show: the bytes /proc/PID/setgroups reads. */
export function formatSetgroups(ns: UserNs): string {
  return ns.setgroupsAllowed ? "allow\n" : "deny\n";
}

/** Mirrors fs/proc/base.c: proc_setgroups_open for writing: the opener needs CAP_SYS_ADMIN in the target (else EACCES). */
export function setgroupsOpenPermitted(opener: Cred, target: UserNs): boolean {
  return nsCapable(opener, target, "CAP_SYS_ADMIN");
}

/** Mirrors kernel/user_namespace.c: proc_setgroups_write (spec §4), checks in the kernel's order. */
export function setgroupsWrite(ns: UserNs, data: string | Uint8Array, pos = 0): SetgroupsWriteResult {
  const bytes = toBytes(data);
  const refuse = (errno: "EINVAL" | "EPERM", rule: SetgroupsRule, reason: string): SetgroupsWriteResult => ({
    ok: false,
    written: -1,
    errno,
    rule,
    reason,
    ns,
  });
  if (pos !== 0) return refuse("EINVAL", "ppos", "setgroups takes one write at offset 0");
  if (bytes.length >= 8)
    return refuse("EINVAL", "setgroups_size", `the text is ${bytes.length} bytes; at most 7 are taken`);
  let end = bytes.indexOf(0);
  if (end < 0) end = bytes.length;
  const startsWith = (w: string): boolean => end >= w.length && [...w].every((ch, i) => bytes[i] === ch.charCodeAt(0));
  let p: number;
  let allow: boolean;
  if (startsWith("allow")) {
    p = 5;
    allow = true;
  } else if (startsWith("deny")) {
    p = 4;
    allow = false;
  } else {
    return refuse("EINVAL", "setgroups_syntax", 'setgroups takes "allow" or "deny"');
  }
  while (p < end && kernelIsspace(bytes[p]!)) p++;
  if (p < end) return refuse("EINVAL", "setgroups_syntax", `unexpected text after "${allow ? "allow" : "deny"}"`);
  if (allow) {
    if (!ns.setgroupsAllowed) return refuse("EPERM", "setgroups_denied", 'setgroups is "deny", which cannot be undone');
    return { ok: true, written: bytes.length, ns };
  }
  if (!ns.gidMap.isEmpty) {
    return refuse("EPERM", "gid_map_written", 'the gid_map is written; "deny" must come before it');
  }
  return { ok: true, written: bytes.length, ns: withSetgroups(ns, false) };
}

/** Mirrors kernel/user_namespace.c: userns_may_setgroups: gid_map written and setgroups "allow". */
export function usernsMaySetgroups(ns: UserNs): boolean {
  return !ns.gidMap.isEmpty && ns.setgroupsAllowed;
}

// ------------------------------------------------------ procfs DAC for opening

/**
 * Mirrors fs/proc/base.c: task_dump_owner (spec §2.6): the owner of a task's
 * /proc/PID files. A dumpable task's files belong to its euid/egid; a
 * non-dumpable one's (after a uid change, until PR_SET_DUMPABLE) to root of
 * the namespace its mm was created in (`mm->user_ns`, the namespace at exec),
 * or to global root when that namespace does not map 0.
 */
export function taskDumpOwner(task: { euid: number; egid: number; dumpable: boolean; mmUserNs: UserNs }): {
  uid: number;
  gid: number;
} {
  if (task.dumpable) return { uid: task.euid, gid: task.egid };
  const uid = makeKid(task.mmUserNs, "uid", 0);
  const gid = makeKid(task.mmUserNs, "gid", 0);
  return { uid: uid === INVALID_ID ? 0 : uid, gid: gid === INVALID_ID ? 0 : gid };
}

/**
 * Mirrors fs/namei.c: generic_permission for MAY_WRITE on a /proc/PID file of
 * mode 0644 owned by the task's euid/egid (task_dump_owner, dumpable task):
 * the owner may write, or CAP_DAC_OVERRIDE in the opener's namespace when the
 * inode's uid and gid are mapped there (capable_wrt_inode_uidgid). Else EACCES.
 */
export function procFileMayWrite(opener: Cred, inodeUid: number, inodeGid: number): boolean {
  if (opener.fsuid === inodeUid) return true;
  return (
    nsCapable(opener, opener.ns, "CAP_DAC_OVERRIDE") &&
    kidHasMapping(opener.ns, "uid", inodeUid) &&
    kidHasMapping(opener.ns, "gid", inodeGid)
  );
}

// ------------------------------------------------- convenience for spawners

/** Arguments of {@link validateMapRequest}. */
export interface MapRequest {
  kind: MapKind;
  /** The map to write: a map, text, or raw bytes. */
  map: IdMap | string | Uint8Array;
  /** The writer's namespace map of this kind, as seen by the writer: for the initial namespace IdMap.IDENTITY. */
  parentMap: IdMap;
  writer: "privileged" | "unprivileged";
  /** The writer's euid / egid as it sees them (geteuid()). */
  euid: number;
  egid: number;
  /** CAP_SETFCAP in the writer's (or, inside, the creator's) effective set; default true when privileged. */
  capSetfcap?: boolean;
  /** The child writes its own /proc/self map after unsharing. */
  inside?: boolean;
  /** The child's setgroups state at write time (default "allow"). */
  setgroups?: "allow" | "deny";
  /** The child namespace's owner (its creator's euid), in the writer's ids; default euid. */
  ownerUid?: number;
}

/** The verdict of {@link validateMapRequest}. */
export type MapRequestVerdict =
  | { ok: true; map: IdMap; lines: string }
  | { ok: false; errno: "EINVAL" | "EPERM"; rule: string; reason: string; line?: number };

/**
 * Predicts, before any syscall, whether writing `map` to a fresh child's map
 * succeeds, for a writer in the parent (or, with `inside`, the child itself).
 * On success `lines` is the exact text to write in one write(2): the map as
 * parsed, one `first lower count\n` per line.
 */
export function validateMapRequest(args: MapRequest): MapRequestVerdict {
  const privileged = args.writer === "privileged";
  const isInit = args.parentMap.equals(IdMap.IDENTITY);
  const w: UserNs = isInit
    ? INIT_USER_NS
    : Object.freeze({
        ...INIT_USER_NS,
        id: 1,
        parent: INIT_USER_NS,
        level: 1,
        uidMap: args.kind === "uid" ? args.parentMap : IdMap.IDENTITY,
        gidMap: args.kind === "gid" ? args.parentMap : IdMap.IDENTITY,
        projidMap: args.kind === "projid" ? args.parentMap : IdMap.IDENTITY,
      });
  const euid = makeKid(w, "uid", args.euid);
  const egid = makeKid(w, "gid", args.egid);
  const setfcap = args.capSetfcap ?? privileged;
  const child: UserNs = Object.freeze({
    id: w.id + 1,
    parent: w,
    level: w.level + 1,
    ownerKuid: makeKid(w, "uid", args.ownerUid ?? args.euid),
    groupKgid: egid,
    parentCouldSetfcap: setfcap,
    setgroupsAllowed: args.setgroups !== "deny",
    uidMap: IdMap.EMPTY,
    gidMap: IdMap.EMPTY,
    projidMap: IdMap.EMPTY,
  });
  let caps: ReadonlySet<Capability> = privileged ? FULL_CAPS : NO_CAPS;
  if (privileged && !setfcap) caps = new Set([...caps].filter((c) => c !== "CAP_SETFCAP"));
  const writer: Cred = args.inside
    ? Object.freeze({ ns: child, euid, egid, fsuid: euid, fsgid: egid, caps: FULL_CAPS })
    : Object.freeze({ ns: w, euid, egid, fsuid: euid, fsgid: egid, caps });
  const data = args.map instanceof IdMap ? args.map.toString() : args.map;
  const r = mapWrite({ file: { kind: args.kind, target: child, opener: writer, pos: 0 }, writer, data });
  if (!r.ok) {
    const errno = r.errno === "ESPIPE" ? "EINVAL" : r.errno;
    return { ok: false, errno, rule: r.rule, reason: r.reason, ...(r.line !== undefined ? { line: r.line } : {}) };
  }
  let lines = r.map.toString();
  // The normalised text is never longer than the input except for an added final newline; drop it at the limit.
  if (lines.length >= PAGE_SIZE) lines = lines.slice(0, -1);
  return { ok: true, map: r.map, lines };
}
