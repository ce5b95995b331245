/**
 * What shadow's setuid helpers newuidmap and newgidmap refuse, judged before
 * any process exists (so a refused map never creates a child).
 *
 * Facts from shadow-maint/shadow (src/newuidmap.c, src/newgidmap.c,
 * lib/idmapping.c, lib/subordinateio.c), not its code:
 * - each range is checked alone (`verify_range`): a count of 0 is refused;
 *   the lower range must lie inside the caller's subordinate ranges, where
 *   adjacent lines of the same owner count as one (`have_range` walks from
 *   one line to the next); else a single id (count 1) equal to the caller's
 *   own uid (newuidmap: pw_uid; newgidmap: the real gid) is allowed;
 * - an owner field matches the login name or the numeric uid;
 * - each of first, lower and count, and first+count and lower+count, must
 *   fit in 32 bits (`get_map_ranges`: "subid overflow detected");
 * - the caller must have a passwd entry whose uid is the real uid and, unless
 *   GRANT_AUX_GROUP_SUBIDS is set in login.defs, whose gid is the real gid;
 * - newgidmap writes setgroups `deny` itself when no range came from
 *   /etc/subgid (only the caller's own gid was mapped).
 * Everything else (overlaps, line count) is the kernel's map_write, which the
 * model checks separately. With `subid:` sources other than files in
 * nsswitch.conf (libsubid), the ranges cannot be known here: the check is
 * then skipped and newuidmap's own answer is reported.
 */
import { readFileSync } from "node:fs";
import { UsernsError } from "../errors.js";
import type { IdMap } from "../model/idmap.js";
import { ownerMatches } from "./ranges.js";
import { parsePasswd, readSubidFile } from "./read.js";

/** A subordinate range as newuidmap sees it. */
export interface NewidmapRange {
  readonly start: number;
  readonly count: number;
}

/** The caller as newuidmap/newgidmap identify it. */
export interface NewidmapCaller {
  /** Real uid and gid. */
  readonly uid: number;
  readonly gid: number;
  /** The passwd entry of the real uid, or undefined when there is none. */
  readonly passwd: { readonly name: string; readonly uid: number; readonly gid: number } | undefined;
  /** login.defs GRANT_AUX_GROUP_SUBIDS. */
  readonly grantAuxGroupSubids?: boolean;
}

/** Why newuidmap/newgidmap would refuse. */
export type NewidmapRule = "no_passwd_entry" | "passwd_gid_mismatch" | "empty_range" | "id_overflow" | "subid_range";

export type NewidmapVerdict =
  | {
      readonly ok: true /** newgidmap writes setgroups deny (no range came from /etc/subgid). */;
      readonly setgroupsDeny: boolean;
    }
  | {
      readonly ok: false;
      readonly rule: NewidmapRule;
      /** 1-based line of the map, for per-range rules. */
      readonly line?: number;
      readonly reason: string;
      /** What would work instead, in words. */
      readonly suggestion: string;
    };

const U32_MAX = 0xffffffff;

/** True when [start, start+count) lies inside the union of `ranges`, walking adjacent ranges as shadow's have_range does. */
export function coveredBy(ranges: readonly NewidmapRange[], start: number, count: number): boolean {
  if (count === 0) return false;
  const end = start + count - 1;
  let at = start;
  for (;;) {
    const r = ranges.find((x) => x.count > 0 && at >= x.start && at <= x.start + x.count - 1);
    if (r === undefined) return false;
    const last = r.start + r.count - 1;
    if (last >= end) return true;
    at = last + 1;
  }
}

function fmtRanges(ranges: readonly NewidmapRange[]): string {
  if (ranges.length === 0) return "none";
  return ranges.map((r) => `${r.start}-${r.start + r.count - 1} (${r.count} ids)`).join(", ");
}

/**
 * The pure rule: would newuidmap (`kind` uid) or newgidmap (`kind` gid) write `map` for this caller with these
 * subordinate ranges (the caller's lines of /etc/subuid or /etc/subgid)?
 */
export function newidmapVerdict(
  kind: "uid" | "gid",
  map: IdMap,
  caller: NewidmapCaller,
  ranges: readonly NewidmapRange[],
  file: string = kind === "uid" ? "/etc/subuid" : "/etc/subgid",
): NewidmapVerdict {
  const prog = kind === "uid" ? "newuidmap" : "newgidmap";
  const flag = kind === "uid" ? "--map-users" : "--map-groups";
  const pw = caller.passwd;
  if (pw === undefined || pw.uid !== caller.uid)
    return {
      ok: false,
      rule: "no_passwd_entry",
      reason: `${prog} finds no passwd entry for uid ${caller.uid}`,
      suggestion: "run as a user listed in /etc/passwd",
    };
  if (caller.grantAuxGroupSubids !== true && pw.gid !== caller.gid)
    return {
      ok: false,
      rule: "passwd_gid_mismatch",
      reason: `${prog} requires the real gid (${caller.gid}) to be ${pw.name}'s gid in /etc/passwd (${pw.gid})`,
      suggestion: `run with gid ${pw.gid}, or set GRANT_AUX_GROUP_SUBIDS in /etc/login.defs`,
    };
  const own = kind === "uid" ? pw.uid : caller.gid;
  let fromFile = false;
  for (const [i, e] of map.extents.entries()) {
    const line = i + 1;
    if (e.count === 0)
      return {
        ok: false,
        rule: "empty_range",
        line,
        reason: `${prog} refuses a range of 0 ids`,
        suggestion: "map at least one id",
      };
    if (e.first + e.count > U32_MAX || e.lowerFirst + e.count > U32_MAX)
      return {
        ok: false,
        rule: "id_overflow",
        line,
        reason: `${prog} refuses a range that ends past 4294967295 ("subid overflow detected")`,
        suggestion: "keep first+count and lower+count within 32 bits",
      };
    if (coveredBy(ranges, e.lowerFirst, e.count)) {
      fromFile = true;
      continue;
    }
    if (e.count === 1 && e.lowerFirst === own) continue;
    const lo = e.lowerFirst;
    const hi = e.lowerFirst + e.count - 1;
    // What to ask for: from the first id the ranges do not cover to the end of the line's range.
    let from = lo;
    while (from <= hi && coveredBy(ranges, from, 1)) {
      const r = ranges.find((x) => from >= x.start && from <= x.start + x.count - 1)!;
      from = r.start + r.count;
    }
    const mine = ranges[0];
    const auto = mine ? `${flag} auto (0:${mine.start}:${mine.count})` : undefined;
    return {
      ok: false,
      rule: "subid_range",
      line,
      reason: `lower ${kind}s ${lo}-${hi} are not all in ${pw.name}'s ranges in ${file}: ${fmtRanges(ranges)}; only those, or the single own ${kind} ${own} (count 1), may be mapped`,
      suggestion: `${auto ? `use ${auto}, or ` : ""}ask an administrator for the range (usermod --add-sub${kind}s ${from}-${hi} ${pw.name})`,
    };
  }
  return { ok: true, setgroupsDeny: kind === "gid" && !fromFile };
}

/** nsswitch.conf names a subid source other than files: the ranges are then not (only) in /etc/subuid. */
function subidFromNss(): boolean {
  try {
    const line = readFileSync("/etc/nsswitch.conf", "utf8")
      .split("\n")
      .find((l) => /^\s*subid\s*:/.test(l));
    return line !== undefined && !/^\s*subid\s*:\s*files\s*(#.*)?$/.test(line);
  } catch {
    return false;
  }
}

function grantAux(): boolean {
  try {
    return /^\s*GRANT_AUX_GROUP_SUBIDS\s+yes\b/im.test(readFileSync("/etc/login.defs", "utf8"));
  } catch {
    return false;
  }
}

/** This process as newuidmap would see it, and its ranges in /etc/subuid and /etc/subgid; undefined when libsubid decides. */
export function newidmapContext():
  | { caller: NewidmapCaller; subuid: NewidmapRange[]; subgid: NewidmapRange[] }
  | undefined {
  if (subidFromNss()) return undefined;
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  let passwdText = "";
  try {
    passwdText = readFileSync("/etc/passwd", "utf8");
  } catch {
    // no passwd: newuidmap cannot name us either
  }
  const passwd = parsePasswd(passwdText).find((p) => p.uid === uid);
  const mine = (path: string): NewidmapRange[] =>
    readSubidFile(path)
      .entries.filter((e) => ownerMatches(e.owner, { name: passwd?.name, uid }))
      .map((e) => ({ start: e.start, count: e.count }));
  return {
    caller: { uid, gid, passwd, grantAuxGroupSubids: grantAux() },
    subuid: mine("/etc/subuid"),
    subgid: mine("/etc/subgid"),
  };
}

/**
 * Throws the refusal newuidmap/newgidmap would give, as a UsernsError with `rule`, before any process is created.
 * `setgroups` "allow" asked explicitly with a gid map newgidmap would pair with deny is refused too.
 */
export function assertNewidmapAllows(req: {
  uid?: IdMap | undefined;
  gid?: IdMap | undefined;
  setgroups?: "allow" | "deny" | undefined;
}): void {
  const ctx = newidmapContext();
  if (ctx === undefined) return;
  for (const kind of ["uid", "gid"] as const) {
    const map = req[kind];
    if (map === undefined) continue;
    const file = kind === "uid" ? "/etc/subuid" : "/etc/subgid";
    const v = newidmapVerdict(kind, map, ctx.caller, kind === "uid" ? ctx.subuid : ctx.subgid, file);
    const prog = kind === "uid" ? "newuidmap" : "newgidmap";
    if (!v.ok)
      throw new UsernsError(`checking ${kind}_map for ${prog}${v.line !== undefined ? ` line ${v.line}` : ""}`, {
        code: "EPERM",
        syscall: prog,
        step: `${kind}_map`,
        path: file,
        rule: v.rule,
        reason: `${v.reason}; ${v.suggestion}`,
      });
    if (kind === "gid" && v.setgroupsDeny && req.setgroups === "allow")
      throw new UsernsError(`checking gid_map for ${prog}`, {
        code: "EPERM",
        syscall: prog,
        step: "setgroups",
        path: file,
        rule: "setgroups_forced_deny",
        reason: `newgidmap writes setgroups deny when no mapped gid comes from ${file}, but setgroups allow was asked; map a range from ${file}, or ask for setgroups deny`,
      });
  }
}
