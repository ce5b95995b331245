/**
 * Reading /etc/subuid, /etc/subgid and /etc/passwd from disk, and the
 * one-call report `subids(user)`.
 */
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import { parseSubid, type SubidEntry, type SubidFile, type SubidIssue } from "./parse.js";
import { findOverlaps, ownerMatches, type SubidOverlap, type SubidUser } from "./ranges.js";

/** Paths read by {@link subids}; tests point these at fixtures. */
export interface SubidPaths {
  subuid?: string;
  subgid?: string;
  passwd?: string;
}

/** Reads and parses one subid file; a missing file is an empty one. */
export function readSubidFile(path: string): SubidFile & { path: string; exists: boolean } {
  try {
    return { ...parseSubid(readFileSync(path, "utf8")), path, exists: true };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { entries: [], issues: [], path, exists: false };
    throw e;
  }
}

/** `name:uid` pairs from passwd text (other fields ignored). */
export function parsePasswd(text: string): { name: string; uid: number; gid: number }[] {
  const out: { name: string; uid: number; gid: number }[] = [];
  for (const l of text.split("\n")) {
    const f = l.split(":");
    if (f.length >= 4 && /^[0-9]+$/.test(f[2]!) && /^[0-9]+$/.test(f[3]!)) {
      out.push({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]) });
    }
  }
  return out;
}

function readPasswd(path: string): { name: string; uid: number; gid: number }[] {
  try {
    return parsePasswd(readFileSync(path, "utf8"));
  } catch {
    return [];
  }
}

/** One user's delegations and the problems that concern them. */
export interface SubidReport {
  readonly user: { name: string | undefined; uid: number | undefined };
  readonly subuid: readonly SubidEntry[];
  readonly subgid: readonly SubidEntry[];
  /** Overlaps in either file involving this user (or every overlap when no user was named). */
  readonly overlaps: readonly { file: "subuid" | "subgid"; overlap: SubidOverlap }[];
  /** Other warnings: several lines, the user's own uid inside its range, bad lines. */
  readonly warnings: readonly string[];
  readonly issues: readonly { file: "subuid" | "subgid"; issue: SubidIssue }[];
}

/** Resolves a user given by name or uid against passwd entries. */
export function resolveUser(
  user: string | number | undefined,
  passwd: readonly { name: string; uid: number }[],
): { name: string | undefined; uid: number | undefined } {
  if (user === undefined) {
    const me = userInfo();
    return { name: me.username, uid: me.uid };
  }
  const s = String(user);
  if (/^[0-9]+$/.test(s)) {
    const uid = Number(s);
    return { name: passwd.find((p) => p.uid === uid)?.name, uid };
  }
  return { name: s, uid: passwd.find((p) => p.name === s)?.uid };
}

/**
 * The pure core of {@link subids}: a user's ranges from parsed files, with
 * overlaps and warnings. `user` undefined means: every owner (whole-file check).
 */
export function subidReport(
  user: SubidUser | undefined,
  files: { subuid: SubidFile; subgid: SubidFile; passwd?: readonly { name: string; uid: number }[] },
): SubidReport {
  const passwd = files.passwd ?? [];
  const uidOf = (owner: string): string => {
    if (/^[0-9]+$/.test(owner)) return owner;
    const p = passwd.find((x) => x.name === owner);
    return p ? String(p.uid) : owner;
  };
  const sameUser = (a: string, b: string) => a === b || uidOf(a) === uidOf(b);
  const mine = (e: SubidEntry) => user === undefined || ownerMatches(e.owner, user);
  const overlaps: { file: "subuid" | "subgid"; overlap: SubidOverlap }[] = [];
  const warnings: string[] = [];
  const result: Record<"subuid" | "subgid", SubidEntry[]> = { subuid: [], subgid: [] };
  for (const file of ["subuid", "subgid"] as const) {
    const f = files[file];
    result[file] = f.entries.filter(mine);
    for (const o of findOverlaps(f.entries, sameUser)) {
      if (mine(o.a) || mine(o.b)) overlaps.push({ file, overlap: o });
    }
    if (user !== undefined) {
      const mineLines = result[file];
      if (mineLines.length > 1) {
        warnings.push(
          `${file}: ${mineLines.length} lines for this user (lines ${mineLines.map((e) => e.line).join(", ")}): Docker and podman concatenate them, crun reads only the first, newuidmap accepts any`,
        );
      }
      if (user.uid !== undefined) {
        const own = mineLines.find((e) => user.uid! >= e.start && user.uid! <= e.start + e.count - 1);
        if (own) {
          warnings.push(
            `${file}: line ${own.line} delegates the user's own id ${user.uid}: a rootless map of [own id, subordinate ids] then has two extents with the same outside id (EINVAL)`,
          );
        }
      }
    }
  }
  const issues = [
    ...files.subuid.issues.map((issue) => ({ file: "subuid" as const, issue })),
    ...files.subgid.issues.map((issue) => ({ file: "subgid" as const, issue })),
  ];
  for (const { file, issue } of issues)
    warnings.push(`${file}: line ${issue.line}: ${issue.message} (shadow ignores this line)`);
  return {
    user: { name: user?.name, uid: user?.uid },
    subuid: result.subuid,
    subgid: result.subgid,
    overlaps,
    warnings,
    issues,
  };
}

/**
 * A user's subordinate ranges from /etc/subuid and /etc/subgid, matched by
 * login name or by uid (both forms, as shadow does), with overlaps flagged.
 * `user` defaults to the current user; pass `null` for every owner.
 */
export function subids(user?: string | number | null, paths: SubidPaths = {}): SubidReport {
  const passwd = readPasswd(paths.passwd ?? "/etc/passwd");
  const subuid = readSubidFile(paths.subuid ?? "/etc/subuid");
  const subgid = readSubidFile(paths.subgid ?? "/etc/subgid");
  const u = user === null ? undefined : resolveUser(user, passwd);
  return subidReport(u, { subuid, subgid, passwd });
}
