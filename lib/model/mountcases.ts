import { IdMap } from "./idmap.js";
import {
  ALL_FS_CAPS,
  AT,
  chownCommon,
  createThroughMount,
  type FsCaller,
  type Inode,
  MOUNT_ATTR,
  type MountIdmap,
  type MountSetattrCall,
  mayLookup,
  mountSetattr,
  openTree,
  type SetattrMount,
  statThroughMount,
  type UidGidMaps,
  type UsernsFdTarget,
} from "./idmapped.js";
import { validateMapRequest } from "./mapwrite.js";
import { type Fs, InputError, isObj, nodeAt, readMountCase } from "./mountcase-input.js";
import { kernelIsspace } from "./parse.js";

// The schema: parseCaseMode is the one rule for modes, on both sides.
export { parseCaseMode } from "./mountcase-input.js";

/** `{ok, errno}` of one syscall. */
export interface CallResult {
  readonly ok: boolean;
  readonly errno: string | null;
}

/** One stat line: ids seen through the mount, and through the source (`disk_*`). */
export interface StatLine {
  readonly name: string;
  /** null when stat() through the mount failed (`stat_errno`). */
  readonly uid: number | null;
  readonly gid: number | null;
  readonly mode: string | null;
  /** null when the source cannot see it: hidden under a submount ([A3]). */
  readonly disk_uid: number | null;
  readonly disk_gid: number | null;
  /**
   * Present only when stat() through the mount failed: root itself cannot
   * search a directory whose owner or group is not mapped through the mount
   * and whose mode bits deny it (no CAP_DAC_READ_SEARCH over such inodes).
   */
  readonly stat_errno?: string;
}

/** One create or chown: observation fields are null when it failed ([A5]). */
export interface OpLine {
  readonly name: string;
  readonly ok: boolean;
  readonly errno: string | null;
  readonly uid: number | null;
  readonly gid: number | null;
  readonly mode: string | null;
  readonly disk_uid: number | null;
  readonly disk_gid: number | null;
  /** As in {@link StatLine}: the operation succeeded but stat() through the mount failed. */
  readonly stat_errno?: string;
}

/** The predicted result line of a mount case (case-formats §2 output). */
export interface MountCaseResult {
  readonly id: unknown;
  readonly ok: boolean | null;
  readonly step: string | null;
  readonly errno: string | null;
  readonly stage?: "input";
  readonly error?: string;
  readonly mount_setattr?: CallResult | null;
  readonly mount_setattr_again?: CallResult;
  readonly root_stat?: StatLine;
  readonly stat?: StatLine[];
  readonly creates?: OpLine[];
  readonly chowns?: OpLine[];
  readonly reidmap?: { readonly ok: boolean; readonly errno: string | null; readonly stat: StatLine[] | null };
}

/** How a map text written by root of init fares: the installed map, or the errno. */
export type MapWriteOutcome =
  | { readonly ok: true; readonly map: IdMap }
  | { readonly ok: false; readonly errno: string };

/** Options of {@link predictMountCase}. */
export interface MountCaseOptions {
  /** The runner's umask for creates ([A4]); default 0. */
  readonly umask?: number;
  /** Root's supplementary groups ([A1]); default [0]. */
  readonly rootGroups?: readonly number[];
  /**
   * Judges a map text written by root of the initial namespace into a fresh
   * child. Default: a built-in reading of map_write (kernel-semantics §2.2–2.3)
   * for this one writer, through the model's validateMapRequest.
   */
  readonly mapWriter?: (text: string) => MapWriteOutcome;
}

// --- a privileged root-of-init map write (the only writer mount cases use) ---

/** map_write for root of init writing a child's map (spec §2): the parent (init) maps every legal id. */
function rootMapWrite(text: string): MapWriteOutcome {
  // Root of the initial namespace has every capability, so uid and gid maps
  // fare alike: only parsing (§2.2–2.3) can refuse, against an identity parent.
  const v = validateMapRequest({
    kind: "uid",
    map: text,
    parentMap: IdMap.IDENTITY,
    writer: "privileged",
    euid: 0,
    egid: 0,
  });
  return v.ok ? { ok: true, map: v.map } : { ok: false, errno: v.errno };
}

/** proc_setgroups_write: `allow` or `deny`, then whitespace only, under 8 bytes; a new namespace accepts both before gid_map. */
function setgroupsTextOk(text: string): boolean {
  let bytes = new TextEncoder().encode(text);
  if (bytes.length >= 8) return false;
  const nul = bytes.indexOf(0);
  if (nul >= 0) bytes = bytes.subarray(0, nul);
  const s = String.fromCharCode(...bytes);
  const rest = s.startsWith("allow") ? s.slice(5) : s.startsWith("deny") ? s.slice(4) : undefined;
  return rest !== undefined && [...rest].every((ch) => kernelIsspace(ch.charCodeAt(0)));
}

const octal = (m: number) => (m & 0o7777).toString(8).padStart(4, "0");

interface Place {
  fs: Fs;
  idmap: MountIdmap;
  rel: string;
}

/**
 * Predicts the result of one idmapped-mount case (case-formats §2). Never
 * throws: a malformed case gives `stage:"input"` with an `error`.
 */
export function predictMountCase(input: unknown, options: MountCaseOptions = {}): MountCaseResult {
  const id = isObj(input) ? (input.id ?? null) : null;
  try {
    if (!isObj(input)) throw new InputError("a case must be a JSON object");
    return predict(input, options);
  } catch (e) {
    if (e instanceof InputError) return { id, ok: null, step: null, errno: null, stage: "input", error: e.message };
    throw e;
  }
}

/**
 * Why a mount case is malformed, positioned by field (`files[2].mode ...`), or undefined when it is well-formed:
 * the one schema of the case format, shared by the predictor and the kernel runner (lib/mounts/cases.ts), so
 * both refuse the same inputs with the same words.
 */
export function mountCaseInputError(input: unknown): string | undefined {
  if (!isObj(input)) return "a case must be a JSON object";
  try {
    readMountCase(input, [0]);
    return undefined;
  } catch (e) {
    if (e instanceof InputError) return e.message;
    throw e;
  }
}

/** Parses one JSON line and predicts it ({@link predictMountCase}); bad JSON gives `stage:"input"`. */
export function predictMountCaseLine(line: string, options: MountCaseOptions = {}): MountCaseResult {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    return { id: null, ok: null, step: null, errno: null, stage: "input", error: `not JSON: ${(e as Error).message}` };
  }
  return predictMountCase(v, options);
}

function predict(c: Record<string, unknown>, options: MountCaseOptions): MountCaseResult {
  const id = c.id ?? null;
  const umask = options.umask ?? 0;
  const rootGroups = options.rootGroups ?? [0];
  const writeMap = options.mapWriter ?? rootMapWrite;
  const {
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
  } = readMountCase(c, rootGroups);

  const fail = (step: string, errno: string, extra: Partial<MountCaseResult> = {}): MountCaseResult => ({
    id,
    ok: false,
    step,
    errno,
    ...extra,
  });

  // [A2] the attached namespace
  let maps: UidGidMaps | undefined;
  let usernsFd: UsernsFdTarget | undefined;
  if (userns === "new") {
    if (typeof setgroups === "string" && !setgroupsTextOk(setgroups)) return fail("setgroups", "EINVAL");
    const u = uidText === null ? undefined : writeMap(uidText);
    if (u && !u.ok) return fail("uid_map", u.errno);
    const g = gidText === null ? undefined : writeMap(gidText);
    if (g && !g.ok) return fail("gid_map", g.errno);
    usernsFd = { kind: "userns", uidMapWritten: u !== undefined, gidMapWritten: g !== undefined };
    if (u?.ok && g?.ok) maps = { uid: u.map, gid: g.map };
  } else if (userns === "init") {
    usernsFd = { kind: "userns", init: true, id: "init", uidMapWritten: true, gidMapWritten: true };
  } else if (userns === "netns") {
    usernsFd = { kind: "nsfs", nstype: "net" };
  } else if (userns === "file") {
    usernsFd = { kind: "file" };
  }

  // open_tree: a clone, or the attached mount itself for source "attached"
  const detached = source !== "attached";
  const opened = openTree({ clone: detached, recursive });
  if (opened) return fail("open_tree", opened);

  // mount_setattr on the clone (or the attached mount)
  const top: SetattrMount = { fsType, detached };
  const setattrMounts: SetattrMount[] = [top];
  if (sub && recursive) setattrMounts.push({ fsType: "tmpfs", detached });
  const call = (extra: Partial<MountSetattrCall> = {}) =>
    mountSetattr({
      flags: AT.EMPTY_PATH | (setattrRecursive ? AT.RECURSIVE : 0),
      attrSet: MOUNT_ATTR.IDMAP,
      usernsFd,
      mounts: setattrMounts,
      ...extra,
    });
  let setattr: CallResult | null = null;
  let idmap: MountIdmap = "nop";
  let subIdmap: MountIdmap = "nop";
  let again: CallResult | undefined;
  if (userns !== "none") {
    const r = call();
    setattr = { ok: r.ok, errno: r.ok ? null : r.errno };
    if (!r.ok) return fail("mount_setattr", r.errno, { mount_setattr: setattr });
    idmap = maps ?? "nop";
    if (sub && recursive && setattrRecursive) subIdmap = idmap;
    if (c.twice === true) {
      const r2 = call({ mounts: setattrMounts.map((m) => ({ ...m, idmapped: true })) });
      again = { ok: r2.ok, errno: r2.ok ? null : r2.errno };
    }
  }

  // Where a path lands through the clone: the submount only exists in a recursive clone.
  const through = (rel: string, top: MountIdmap = idmap, withSub = recursive): Place => {
    if (sub && withSub && (rel === sub.name || rel.startsWith(`${sub.name}/`))) {
      return { fs: sub.fs, idmap: subIdmap, rel: rel === sub.name ? "" : rel.slice(sub.name.length + 1) };
    }
    return { fs: main, idmap: top, rel };
  };
  // Through the source, submounts are always there.
  const onSource = (rel: string): Place => {
    if (sub && (rel === sub.name || rel.startsWith(`${sub.name}/`))) {
      return { fs: sub.fs, idmap: "nop", rel: rel === sub.name ? "" : rel.slice(sub.name.length + 1) };
    }
    return { fs: main, idmap: "nop", rel };
  };
  const statLine = (name: string, m: MountIdmap, seen: Inode, disk: Inode | undefined): StatLine => {
    const shown = statThroughMount(m, "init", seen);
    const d = { disk_uid: disk?.uid ?? null, disk_gid: disk?.gid ?? null };
    return { name, uid: shown.uid, gid: shown.gid, mode: octal(seen.mode), ...d };
  };
  const rootCaller: FsCaller = { fsuid: 0, fsgid: 0, groups: rootGroups, caps: ALL_FS_CAPS };
  // stat through the mount as the runner (root) does it: the walk needs search permission too.
  const statOf = (name: string, m: MountIdmap = idmap, withSub = recursive): StatLine | undefined => {
    const s = onSource(name);
    // Undefined when a submount on the source hides it (made in the mountpoint through a non-recursive clone).
    const disk = nodeAt(s.fs, s.rel);
    if (name !== "") {
      const w = walk(rootCaller, name, m, withSub);
      if ("errno" in w) {
        const d = { disk_uid: disk?.uid ?? null, disk_gid: disk?.gid ?? null };
        return { name, uid: null, gid: null, mode: null, ...d, stat_errno: w.errno };
      }
    }
    const p = through(name, m, withSub);
    const seen = nodeAt(p.fs, p.rel);
    if (!seen) return undefined;
    return statLine(name === "" ? "." : name, p.idmap, seen, disk);
  };

  /** Walks to the parent directory of `rel`, checking search permission on each directory (may_lookup). */
  const walk = (
    caller: FsCaller,
    rel: string,
    top: MountIdmap = idmap,
    withSub = recursive,
  ): { place: Place; dir: Inode; leaf: string } | { errno: string } => {
    const parts = rel.split("/");
    let cur = "";
    for (let i = 0; i < parts.length; i++) {
      const p = through(cur, top, withSub);
      const node = nodeAt(p.fs, p.rel);
      if (!node) return { errno: "ENOENT" };
      if (node.type !== "dir") return { errno: "ENOTDIR" };
      const denied = mayLookup(caller, p.idmap, "init", node);
      if (denied) return { errno: denied.errno };
      if (i === parts.length - 1) return { place: p, dir: node, leaf: parts[i]! };
      cur = cur === "" ? parts[i]! : `${cur}/${parts[i]}`;
    }
    return { errno: "ENOENT" };
  };
  const rootStat = statOf("")!;
  const statNames = [...fileNames];
  if (sub && !statNames.includes(sub.name)) {
    statNames.push(sub.name);
    labels.set(sub.name, sub.label);
  }
  const relabel = (l: StatLine, n: string): StatLine => ({ ...l, name: labels.get(n) ?? l.name });
  const stat = statNames.map((n) => relabel(statOf(n)!, n));

  const failedOp = (name: string, errno: string): OpLine => ({
    name,
    ok: false,
    errno,
    uid: null,
    gid: null,
    mode: null,
    disk_uid: null,
    disk_gid: null,
  });
  const okOp = (name: string, label: string): OpLine => {
    const s = statOf(name)!;
    return {
      name: label,
      ok: true,
      errno: null,
      uid: s.uid,
      gid: s.gid,
      mode: s.mode,
      disk_uid: s.disk_uid,
      disk_gid: s.disk_gid,
      ...(s.stat_errno ? { stat_errno: s.stat_errno } : {}),
    };
  };

  const createLines: OpLine[] = creates.map((cr) => {
    if (cr.name === "") {
      // "." : may_lookup on the root first, then the name exists.
      const denied = mayLookup(cr.caller, idmap, "init", main.root);
      return failedOp(cr.label, denied ? denied.errno : "EEXIST");
    }
    const w = walk(cr.caller, cr.name);
    if ("errno" in w) return failedOp(cr.label, w.errno);
    const target = w.place.rel === "" ? w.leaf : `${w.place.rel}/${w.leaf}`;
    if (w.place.fs.nodes.has(target)) return failedOp(cr.label, "EEXIST");
    const r = createThroughMount(cr.caller, w.place.idmap, "init", w.dir, cr.type, cr.mode, umask);
    if (!r.ok) return failedOp(cr.label, r.errno);
    w.place.fs.nodes.set(target, r.inode);
    return okOp(cr.name, cr.label);
  });

  const chownLines: OpLine[] = chowns.map((ch) => {
    let place: Place;
    let node: Inode | undefined;
    if (ch.name === "") {
      place = through("");
      node = place.fs.root;
      // "." is still a path walk: may_lookup on the root before it resolves to itself.
      const denied = mayLookup(ch.caller, place.idmap, "init", node);
      if (denied) return failedOp(ch.label, denied.errno);
    } else {
      const w = walk(ch.caller, ch.name);
      if ("errno" in w) return failedOp(ch.label, w.errno);
      place = { ...w.place, rel: w.place.rel === "" ? w.leaf : `${w.place.rel}/${w.leaf}` };
      node = nodeAt(place.fs, place.rel);
      // The leaf may itself be the submount's root.
      const p2 = through(ch.name);
      if (p2.fs !== place.fs) {
        place = p2;
        node = nodeAt(p2.fs, p2.rel);
      }
    }
    if (!node) return failedOp(ch.label, "ENOENT");
    const r = chownCommon(ch.caller, place.idmap, "init", node, ch.uid, ch.gid);
    if (!r.ok) return failedOp(ch.label, r.errno);
    if (place.rel === "") place.fs.root = r.inode;
    else place.fs.nodes.set(place.rel, r.inode);
    return okOp(ch.name, ch.label);
  });

  let reidmap: MountCaseResult["reidmap"];
  if (reidmapMaps) {
    const u = reidmapMaps.uid === null ? undefined : writeMap(reidmapMaps.uid);
    const g = reidmapMaps.gid === null ? undefined : writeMap(reidmapMaps.gid);
    const bad = (u && !u.ok ? u : undefined) ?? (g && !g.ok ? g : undefined);
    if (bad && !bad.ok) {
      reidmap = { ok: false, errno: bad.errno, stat: null };
    } else {
      const r = mountSetattr({
        attrSet: MOUNT_ATTR.IDMAP,
        attrClr: MOUNT_ATTR.IDMAP,
        replacePermission: true,
        usernsFd: { kind: "userns", uidMapWritten: u !== undefined, gidMapWritten: g !== undefined },
        mounts: [{ fsType, detached: true, idmapped: idmap !== "nop" }],
      });
      if (!r.ok) reidmap = { ok: false, errno: r.errno, stat: null };
      else {
        const m2: MountIdmap = u?.ok && g?.ok ? { uid: u.map, gid: g.map } : "nop";
        reidmap = { ok: true, errno: null, stat: fileNames.map((n) => relabel(statOf(n, m2, false)!, n)) };
      }
    }
  }

  return {
    id,
    ok: true,
    step: null,
    errno: null,
    mount_setattr: setattr,
    ...(again ? { mount_setattr_again: again } : {}),
    root_stat: rootStat,
    stat,
    creates: createLines,
    chowns: chownLines,
    ...(reidmap ? { reidmap } : {}),
  };
}

/**
 * The batch form for `userns check --mount-batch`: one result line (JSON) per
 * case line, in input order; empty lines and lines starting with `#` are
 * skipped (case-formats, both formats).
 */
export function predictMountBatch(text: string, options: MountCaseOptions = {}): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (t === "" || t.startsWith("#")) continue;
    out.push(JSON.stringify(predictMountCaseLine(t, options)));
  }
  return out;
}
