/**
 * The mount-case format's schema (case-formats §2): every field read,
 * checked and normalised, with an error that names the field
 * (`files[2].mode ...`). The predictor (./mountcases.ts) simulates what this
 * returns; the kernel runner (lib/mounts/cases.ts) refuses what it refuses.
 */
import { ALL_FS_CAPS, type FsCaller, type Inode } from "./idmapped.js";
import { INVALID_ID } from "./u32.js";

export class InputError extends Error {}

export function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function optInt(o: Record<string, unknown>, k: string, where: string, min = -1): number | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > INVALID_ID) {
    throw new InputError(`${where}.${k} must be an integer id`);
  }
  return v;
}

/**
 * A mode in a mount case: an octal string of 1 to 4 digits ("0644", "1777") or a number up to 07777; undefined when
 * absent. The one rule for both sides: the kernel runner (lib/mounts/cases.ts) reads modes with it too.
 * @throws Error naming `where` for anything else.
 */
export function parseCaseMode(v: unknown, where: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0o7777) return v;
  if (typeof v === "string" && /^[0-7]{1,4}$/.test(v)) return Number.parseInt(v, 8);
  throw new InputError(`${where}.mode must be an octal string like "0644" or a number up to 07777`);
}

function optMode(o: Record<string, unknown>, where: string): number | undefined {
  return parseCaseMode(o.mode, where);
}

export function optMapText(o: Record<string, unknown>, k: string, where: string): string | null {
  const v = o[k];
  if (v === undefined || v === null) return null;
  if (typeof v !== "string") throw new InputError(`${where}${k} must be a string or null`);
  return v;
}

export function normName(v: unknown, where: string): string {
  if (typeof v !== "string") throw new InputError(`${where}.name must be a string`);
  if (v === "") throw new InputError(`${where}.name is empty (use "." for the mount's root)`);
  const parts = v.split("/").filter((s) => s !== "" && s !== ".");
  if (parts.includes("..")) throw new InputError(`${where}.name must not contain ".."`);
  return parts.join("/");
}

export function listOf(o: Record<string, unknown>, k: string): Record<string, unknown>[] {
  const v = o[k];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every(isObj)) throw new InputError(`${k} must be a list of objects`);
  return v;
}

export function oneOf<T extends string>(o: Record<string, unknown>, k: string, allowed: readonly T[], dflt: T): T {
  const v = o[k];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) {
    throw new InputError(`${k} must be one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}`);
  }
  return v as T;
}

export function callerOf(as: unknown, where: string, rootGroups: readonly number[]): FsCaller {
  const root: FsCaller = { fsuid: 0, fsgid: 0, groups: rootGroups, caps: ALL_FS_CAPS };
  if (as === undefined || as === null) return root;
  if (!isObj(as)) throw new InputError(`${where}.as must be an object`);
  const hasFs = "fsuid" in as || "fsgid" in as;
  const hasIds = "uid" in as || "gid" in as;
  if (hasFs && hasIds) throw new InputError(`${where}.as mixes {uid,gid} and {fsuid,fsgid}`);
  if (hasFs) {
    const fsuid = optInt(as, "fsuid", `${where}.as`, 0) ?? 0;
    const fsgid = optInt(as, "fsgid", `${where}.as`, 0) ?? 0;
    // cap_task_fix_setuid(LSM_SETID_FS): leaving fsuid 0 drops the fs capabilities.
    return { fsuid, fsgid, groups: rootGroups, caps: fsuid === 0 ? ALL_FS_CAPS : [] };
  }
  const uid = optInt(as, "uid", `${where}.as`, 0);
  const gid = optInt(as, "gid", `${where}.as`, 0);
  return { fsuid: uid ?? 0, fsgid: gid ?? 0, groups: [], caps: uid === 0 ? ALL_FS_CAPS : [] };
}

// --- the filesystem state the predictor walks ---

export interface Fs {
  root: Inode;
  nodes: Map<string, Inode>;
}

export function parentOf(rel: string): string {
  const i = rel.lastIndexOf("/");
  return i < 0 ? "" : rel.slice(0, i);
}

export function nodeAt(fs: Fs, rel: string): Inode | undefined {
  return rel === "" ? fs.root : fs.nodes.get(rel);
}

/** A mount case as read: its fields checked and normalised, the source filesystem built. */
export interface MountCaseInput {
  readonly userns: "new" | "init" | "netns" | "file" | "none";
  readonly fsType: "tmpfs" | "ramfs";
  readonly uidText: string | null;
  readonly gidText: string | null;
  readonly setgroups: unknown;
  readonly source: "clone" | "attached";
  readonly recursive: boolean;
  readonly setattrRecursive: boolean;
  /** The source filesystem ([A3]) and its files in input order, with their names as written. */
  readonly main: Fs;
  readonly fileNames: string[];
  readonly labels: Map<string, string>;
  readonly sub: { name: string; label: string; fs: Fs } | undefined;
  readonly creates: { name: string; label: string; type: "file" | "dir"; mode: number; caller: FsCaller }[];
  readonly chowns: { name: string; label: string; uid: number; gid: number; caller: FsCaller }[];
  readonly reidmapMaps: { uid: string | null; gid: string | null } | undefined;
}

/** Reads a case object. @throws InputError naming the first malformed field. */
export function readMountCase(c: Record<string, unknown>, rootGroups: readonly number[]): MountCaseInput {
  const userns = oneOf(c, "userns", ["new", "init", "netns", "file", "none"] as const, "new");
  const fsType = oneOf(c, "fs", ["tmpfs", "ramfs"] as const, "tmpfs");
  const uidText = optMapText(c, "uid_map", "");
  const gidText = optMapText(c, "gid_map", "");
  const setgroups = c.setgroups;
  if (setgroups !== undefined && setgroups !== null && typeof setgroups !== "string") {
    throw new InputError("setgroups must be a string");
  }
  if (
    c.userns_owner !== undefined &&
    c.userns_owner !== null &&
    c.userns_owner !== "unprivileged" &&
    c.userns_owner !== "root"
  ) {
    throw new InputError('userns_owner must be "unprivileged"');
  }
  const source = oneOf(c, "source", ["clone", "attached"] as const, "clone");
  const recursive = c.recursive === true;
  const setattrRecursive = c.setattr_recursive === true;

  // [A3] the source filesystem
  let root: Inode = { uid: 0, gid: 0, mode: fsType === "tmpfs" ? 0o1777 : 0o755, type: "dir" };
  if (c.root !== undefined && c.root !== null) {
    if (!isObj(c.root)) throw new InputError("root must be an object");
    root = {
      uid: optInt(c.root, "uid", "root", 0) ?? 0,
      gid: optInt(c.root, "gid", "root", 0) ?? 0,
      mode: optMode(c.root, "root") ?? root.mode,
      type: "dir",
    };
  }
  const main: Fs = { root, nodes: new Map() };
  const fileNames: string[] = [];
  // Output echoes names as written; the walk uses normalized ones.
  const labels = new Map<string, string>();
  for (const [i, f] of listOf(c, "files").entries()) {
    const where = `files[${i}]`;
    const name = normName(f.name, where);
    if (name === "") throw new InputError(`${where}.name is empty`);
    const type = oneOf(f, "type", ["file", "dir"] as const, "file");
    const parent = nodeAt(main, parentOf(name));
    if (parent?.type !== "dir") throw new InputError(`${where}: parent directory of "${name}" is not in files`);
    if (main.nodes.has(name)) throw new InputError(`${where}: "${name}" is listed twice`);
    main.nodes.set(name, {
      uid: optInt(f, "uid", where, 0) ?? 0,
      gid: optInt(f, "gid", where, 0) ?? 0,
      mode: optMode(f, where) ?? (type === "dir" ? 0o755 : 0o644),
      type,
    });
    fileNames.push(name);
    labels.set(name, f.name as string);
  }
  let sub: { name: string; label: string; fs: Fs } | undefined;
  if (c.submount !== undefined && c.submount !== null) {
    if (!isObj(c.submount)) throw new InputError("submount must be an object");
    const name = normName(c.submount.name, "submount");
    if (name === "") throw new InputError("submount.name is empty");
    const at = main.nodes.get(name);
    if (at && at.type !== "dir") throw new InputError("submount.name names a file");
    if (!at) {
      if (!nodeAt(main, parentOf(name))) throw new InputError("submount: parent directory is not in files");
      // Made by root with mkdir(0755), umask 0: a setgid parent passes on its group and S_ISGID.
      const parent = nodeAt(main, parentOf(name))!;
      const sgid = (parent.mode & 0o2000) !== 0;
      main.nodes.set(name, { uid: 0, gid: sgid ? parent.gid : 0, mode: sgid ? 0o2755 : 0o755, type: "dir" });
    }
    const subRoot: Inode = {
      uid: optInt(c.submount, "uid", "submount", 0) ?? 0,
      gid: optInt(c.submount, "gid", "submount", 0) ?? 0,
      mode: 0o1777,
      type: "dir",
    };
    sub = { name, label: c.submount.name as string, fs: { root: subRoot, nodes: new Map() } };
  }
  const creates = listOf(c, "creates").map((o, i) => {
    const where = `creates[${i}]`;
    const type = oneOf(o, "type", ["file", "dir"] as const, "file");
    return {
      name: normName(o.name, where),
      label: o.name as string,
      type,
      mode: optMode(o, where) ?? (type === "dir" ? 0o755 : 0o644),
      caller: callerOf(o.as, where, rootGroups),
    };
  });
  const chowns = listOf(c, "chowns").map((o, i) => {
    const where = `chowns[${i}]`;
    const uid = optInt(o, "uid", where);
    const gid = optInt(o, "gid", where);
    return {
      name: normName(o.name, where),
      label: o.name as string,
      uid: uid ?? -1,
      gid: gid ?? -1,
      caller: callerOf(o.as, where, rootGroups),
    };
  });
  let reidmapMaps: { uid: string | null; gid: string | null } | undefined;
  if (c.reidmap !== undefined && c.reidmap !== null) {
    if (!isObj(c.reidmap)) throw new InputError("reidmap must be an object");
    reidmapMaps = {
      uid: optMapText(c.reidmap, "uid_map", "reidmap."),
      gid: optMapText(c.reidmap, "gid_map", "reidmap."),
    };
  }
  return {
    userns,
    fsType,
    uidText,
    gidText,
    setgroups,
    source,
    recursive,
    setattrRecursive,
    main,
    fileNames,
    labels,
    sub,
    creates,
    chowns,
    reidmapMaps,
  };
}
