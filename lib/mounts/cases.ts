/**
 * Idmapped-mount cases (/work/shared/spec/case-formats.md §2): the input
 * type, parsing, and the kernel runner. {@link runMountCaseHere} does one
 * case for real and must only run in a process that is alone in a private
 * mount namespace (runner-main.ts, started under
 * `unshare --mount --propagation private`); {@link runMountCasesKernel}
 * starts that process.
 *
 * Files made through the mount are created by a forked child with umask 0,
 * so the mode asked for is the mode stored (no umask bits cleared). Files on
 * the source are created by root and then chmod-ed to the mode given.
 */
import { spawn } from "node:child_process";
import {
  chmodSync,
  chownSync,
  closeSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmdirSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FS_OP } from "../child/protocol.js";
import { errnoName, UsernsError } from "../errors.js";
import { native, nativePath } from "../kernel/native.js";
import {
  type MountCaseResult as ModelMountCaseResult,
  mountCaseInputError,
  type OpLine,
  parseCaseMode,
  type StatLine,
} from "../model/mountcases.js";
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_RECURSIVE,
  AT_SYMLINK_NOFOLLOW,
  MNT_DETACH,
  MOUNT_ATTR,
  MOVE_MOUNT_F_EMPTY_PATH,
  OPEN_TREE_CLONE,
} from "./constants.js";
import { createHelperUserns, type HelperUserns } from "./helper-userns.js";

/** An identity to act as: `{uid, gid}` (setres ids, capabilities dropped unless uid 0), `{fsuid, fsgid}` (root with only fs ids changed), or root when absent. */
export type MountCaseAs = { uid: number; gid: number } | { fsuid: number; fsgid: number };

/** One §2 case, as parsed. */
export interface MountCase {
  id: string;
  uid_map?: string | null;
  gid_map?: string | null;
  userns?: "new" | "init" | "netns" | "file" | "none";
  userns_owner?: "unprivileged";
  setgroups?: string;
  fs?: "tmpfs" | "ramfs";
  /** Absent ids are 0; an absent mode keeps the filesystem's own. */
  root?: { uid?: number; gid?: number; mode?: string | number };
  /** Absent ids are 0; an absent mode is 0644 (file) or 0755 (dir). */
  files?: { name: string; uid?: number; gid?: number; mode?: string | number; type?: "file" | "dir" }[];
  creates?: { name: string; type?: "file" | "dir"; mode?: string | number; as?: MountCaseAs }[];
  /** An absent id is -1: left unchanged. */
  chowns?: { name: string; uid?: number; gid?: number; as?: MountCaseAs }[];
  attach?: boolean;
  source?: "attached";
  twice?: boolean;
  submount?: { name: string; uid?: number; gid?: number };
  recursive?: boolean;
  setattr_recursive?: boolean;
  reidmap?: { uid_map: string | null; gid_map: string | null };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** A stat seen through the mount (`uid`, `gid`, `mode`) and through the source (`disk_*`): the model's {@link StatLine}. */
export type MountStat = Mutable<StatLine>;

/** An operation's outcome plus the stat after it: the model's {@link OpLine}. */
export type MountOpResult = Mutable<OpLine>;

/**
 * One §2 result: the model's result shape (one definition of the format),
 * with a string id and the runner's own diagnostics.
 */
export interface MountCaseResult extends Mutable<Omit<ModelMountCaseResult, "id" | "stage">> {
  id: string;
  stage?: "input" | "setup";
  setup_error?: string;
}

/** Parses a mode given as an octal string ("0644") or a number, by the case format's one rule (the model's). */
export function parseMode(m: string | number | undefined, dflt: number): number {
  return parseCaseMode(m, "case") ?? dflt;
}

/** Formats permission bits as a 4-digit octal string ("0644", "1777"). */
export function formatMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

/** Parses JSON lines: blank lines and `#` lines skipped; bad lines become input-stage errors. */
export function parseMountCases(text: string): (MountCase | { id: string; inputError: string })[] {
  const out: (MountCase | { id: string; inputError: string })[] = [];
  let n = 0;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    n++;
    try {
      const c = JSON.parse(line) as unknown;
      if (typeof c !== "object" || c === null || Array.isArray(c)) throw new Error("a case must be a JSON object");
      const id = (c as { id?: unknown }).id;
      out.push({ ...(c as MountCase), id: typeof id === "string" ? id : `line-${n}` });
    } catch (e) {
      out.push({ id: `line-${n}`, inputError: (e as Error).message });
    }
  }
  return out;
}

function codeOf(e: unknown): string {
  return (e as { code?: string }).code ?? "EIO";
}

function emptyResult(id: string): MountCaseResult {
  return { id, ok: null, step: null, errno: null };
}

function asCred(as: MountCaseAs | undefined): [number, number, number] {
  if (as === undefined) return [FS_OP.credMode.root, -1, -1];
  if ("fsuid" in as) return [FS_OP.credMode.fsIds, as.fsuid, as.fsgid];
  return [FS_OP.credMode.setresIds, as.uid, as.gid];
}

function mkFs(type: string, at: string): void {
  const b = native();
  const ctx = b.fsopen(type);
  try {
    b.fsconfigCreate(ctx);
    const m = b.fsmount(ctx, 0);
    try {
      b.moveMount(m, "", AT_FDCWD, at, MOVE_MOUNT_F_EMPTY_PATH);
    } finally {
      b.close(m);
    }
  } finally {
    b.close(ctx);
  }
}

function statVia(dfd: number, srcDir: string, name: string): MountStat {
  const b = native();
  const r: MountStat = { name, uid: null, gid: null, mode: null, disk_uid: null, disk_gid: null };
  try {
    const st = name === "." ? b.fstatAt(dfd, "", AT_EMPTY_PATH) : b.fstatAt(dfd, name, AT_SYMLINK_NOFOLLOW);
    r.uid = st.uid;
    r.gid = st.gid;
    r.mode = formatMode(st.mode);
  } catch (e) {
    r.stat_errno = codeOf(e);
  }
  try {
    const st = lstatSync(name === "." ? srcDir : join(srcDir, name));
    r.disk_uid = st.uid;
    r.disk_gid = st.gid;
  } catch (e) {
    r.stat_errno ??= codeOf(e);
  }
  return r;
}

/** The user-namespace-ish fd a case asks for, and how to release it. */
function caseUsernsFd(
  c: MountCase,
  maps: { uid_map?: string | null; gid_map?: string | null },
  ws: string,
): { fd: number; close(): void } {
  const b = native();
  switch (c.userns ?? "new") {
    case "init": {
      const fd = b.openNs("/proc/self/ns/user");
      return { fd, close: () => b.close(fd) };
    }
    case "netns": {
      const fd = b.openNs("/proc/self/ns/net");
      return { fd, close: () => b.close(fd) };
    }
    case "file": {
      const fd = openSync(join(ws, "regular-file"), "w");
      return { fd, close: () => closeSync(fd) };
    }
    default: {
      const ns: HelperUserns = createHelperUserns({
        uidMap: maps.uid_map ?? null,
        gidMap: maps.gid_map ?? null,
        setgroups: c.setgroups ?? null,
        ...(c.userns_owner === "unprivileged" ? { owner: { uid: 1000, gid: 1000 } } : {}),
      });
      return ns;
    }
  }
}

let seq = 0;

/**
 * Runs one case for real. Only in a process alone in a private mount
 * namespace: it mounts filesystems under `workspace`.
 */
export function runMountCaseHere(c: MountCase, workspace: string): MountCaseResult {
  const b = native();
  const res = emptyResult(c.id);
  const dir = join(workspace, `c${++seq}`);
  const src = join(dir, "src");
  const mnt = join(dir, "mnt");
  const toClose: (() => void)[] = [];
  const toUnmount: string[] = [];
  let step = "setup";
  try {
    mkdirSync(src, { recursive: true });
    mkdirSync(mnt);
    mkFs(c.fs ?? "tmpfs", src);
    toUnmount.push(src);
    // Absent ids are 0; an absent root mode keeps the filesystem's own (tmpfs 1777, ramfs 0755).
    if (c.root) {
      chownSync(src, c.root.uid ?? 0, c.root.gid ?? 0);
      if (c.root.mode !== undefined) chmodSync(src, parseMode(c.root.mode, 0o755));
    }
    for (const f of c.files ?? []) {
      const p = join(src, f.name);
      if (f.type === "dir") mkdirSync(p);
      else closeSync(openSync(p, "wx"));
      chownSync(p, f.uid ?? 0, f.gid ?? 0);
      chmodSync(p, parseMode(f.mode, f.type === "dir" ? 0o755 : 0o644));
    }
    if (c.submount) {
      const p = join(src, c.submount.name);
      if (!(c.files ?? []).some((f) => f.name === c.submount!.name)) {
        mkdirSync(p);
        // mkdir(0755) as root: a setgid parent passes on S_ISGID, which chmod must keep.
        chmodSync(p, 0o755 | (lstatSync(p).mode & 0o2000));
      }
      mkFs("tmpfs", p);
      toUnmount.unshift(p);
      // The submount's root keeps tmpfs's default mode, 1777.
      chownSync(p, c.submount.uid ?? 0, c.submount.gid ?? 0);
    }

    // The namespace first, then the clone: a refused map write ends the case
    // before open_tree, as the model orders the steps (lib/model/mountcases.ts).
    let ns: { fd: number; close(): void } | undefined;
    if ((c.userns ?? "new") !== "none") {
      step = "userns";
      try {
        ns = caseUsernsFd(c, c, dir);
      } catch (e) {
        // A refused setgroups/uid_map/gid_map write ends the case at that step.
        if (UsernsError.isUsernsError(e) && e.step !== undefined && e.syscall === "write") {
          return { ...res, ok: false, step: e.step, errno: e.code };
        }
        throw e;
      }
      const held = ns;
      toClose.push(() => held.close());
    }

    step = "open_tree";
    const attachedSource = c.source === "attached";
    const treeFlags = (attachedSource ? 0 : OPEN_TREE_CLONE) | (c.recursive ? AT_RECURSIVE : 0);
    let tree: number;
    try {
      tree = b.openTree(AT_FDCWD, src, treeFlags);
    } catch (e) {
      return { ...res, ok: false, step, errno: codeOf(e) };
    }
    toClose.push(() => b.close(tree));

    if (ns === undefined) res.mount_setattr = null;
    else {
      step = "mount_setattr";
      const flags = AT_EMPTY_PATH | (c.setattr_recursive ? AT_RECURSIVE : 0);
      const attr = { attrSet: MOUNT_ATTR.IDMAP, usernsFd: ns.fd };
      try {
        b.mountSetattr(tree, "", flags, attr);
        res.mount_setattr = { ok: true, errno: null };
      } catch (e) {
        res.mount_setattr = { ok: false, errno: codeOf(e) };
        return { ...res, ok: false, step, errno: codeOf(e) };
      }
      if (c.twice) {
        try {
          b.mountSetattr(tree, "", flags, attr);
          res.mount_setattr_again = { ok: true, errno: null };
        } catch (e) {
          res.mount_setattr_again = { ok: false, errno: codeOf(e) };
        }
      }
    }

    let dfd = tree;
    if (c.attach !== false) {
      step = "move_mount";
      try {
        b.moveMount(tree, "", AT_FDCWD, mnt, MOVE_MOUNT_F_EMPTY_PATH);
      } catch (e) {
        return { ...res, ok: false, step, errno: codeOf(e) };
      }
      toUnmount.unshift(mnt);
      // An O_PATH fd on the attached mount: lookups start at its root without
      // crossing the workspace's directories.
      dfd = b.openTree(AT_FDCWD, mnt, 0);
      const d = dfd;
      toClose.push(() => b.close(d));
    }

    // Stat first: creates and chowns come after it, and reidmap's stat shows the final state.
    step = "stat";
    res.root_stat = statVia(dfd, src, ".");
    const fileNames = (c.files ?? []).map((f) => f.name);
    const names = c.submount && !fileNames.includes(c.submount.name) ? [...fileNames, c.submount.name] : fileNames;
    res.stat = names.map((n) => statVia(dfd, src, n));
    res.creates = [];
    res.chowns = [];

    step = "creates";
    for (const cr of c.creates ?? []) {
      const [credMode, uid, gid] = asCred(cr.as);
      const isDir = cr.type === "dir";
      const r = b.fsOpAs(
        credMode,
        uid,
        gid,
        isDir ? FS_OP.op.mkdir : FS_OP.op.create,
        dfd,
        cr.name,
        parseMode(cr.mode, isDir ? 0o755 : 0o644),
        -1,
        -1,
      );
      const ok = r.errno === 0;
      const st = ok
        ? statVia(dfd, src, cr.name)
        : { name: cr.name, uid: null, gid: null, mode: null, disk_uid: null, disk_gid: null };
      if (!ok && r.step !== "op")
        throw new Error(`acting as ${JSON.stringify(cr.as)} failed at ${r.step}: ${errnoName(r.errno)}`);
      res.creates!.push({ ...st, name: cr.name, ok, errno: ok ? null : errnoName(r.errno) });
    }
    step = "chowns";
    for (const ch of c.chowns ?? []) {
      const [credMode, uid, gid] = asCred(ch.as);
      const r = b.fsOpAs(credMode, uid, gid, FS_OP.op.chown, dfd, ch.name, 0, ch.uid ?? -1, ch.gid ?? -1);
      const ok = r.errno === 0;
      if (!ok && r.step !== "op")
        throw new Error(`acting as ${JSON.stringify(ch.as)} failed at ${r.step}: ${errnoName(r.errno)}`);
      // A failed chown reports no observation (nulls), like a failed create.
      const st = ok
        ? statVia(dfd, src, ch.name)
        : { name: ch.name, uid: null, gid: null, mode: null, disk_uid: null, disk_gid: null };
      res.chowns!.push({ ...st, name: ch.name, ok, errno: ok ? null : errnoName(r.errno) });
    }

    if (c.reidmap) {
      step = "reidmap";
      let ns: HelperUserns | undefined;
      try {
        ns = createHelperUserns({ uidMap: c.reidmap.uid_map, gidMap: c.reidmap.gid_map });
      } catch (e) {
        if (!UsernsError.isUsernsError(e) || e.step === undefined) throw e;
        res.reidmap = { ok: false, errno: e.code, stat: null };
      }
      if (ns !== undefined) {
        const held = ns;
        toClose.push(() => held.close());
        try {
          // A plain (non-recursive) clone of the mount's root, stat-ed on the
          // case's files: the submount is not part of it (as the model has it).
          const fd2 = b.openTreeAttr(dfd, "", AT_EMPTY_PATH | OPEN_TREE_CLONE, {
            attrSet: MOUNT_ATTR.IDMAP,
            attrClr: MOUNT_ATTR.IDMAP,
            usernsFd: held.fd,
          });
          toClose.push(() => b.close(fd2));
          res.reidmap = { ok: true, errno: null, stat: fileNames.map((n) => statVia(fd2, src, n)) };
        } catch (e) {
          res.reidmap = { ok: false, errno: codeOf(e), stat: null };
        }
      }
    }
    return { ...res, ok: true, step: null, errno: null };
  } catch (e) {
    return { ...res, ok: null, step, errno: null, stage: "setup", setup_error: (e as Error).message };
  } finally {
    for (const f of toClose.reverse()) {
      try {
        f();
      } catch {
        // Closing is best effort; the namespace dies with the process anyway.
      }
    }
    for (const p of toUnmount) {
      try {
        b.umount2(p, MNT_DETACH);
      } catch {
        // Best effort, as above.
      }
    }
    try {
      rmdirSync(mnt);
      rmdirSync(src);
      rmdirSync(dir);
    } catch {
      // Left inside the workspace tmpfs, which is unmounted at exit.
    }
  }
}

/** Validates a parsed case enough to run it; returns an error message or undefined. */
export function checkMountCase(c: MountCase): string | undefined {
  // The case format's schema is the model's: a case it refuses is refused here too, field by field.
  const bad = mountCaseInputError(c);
  if (bad !== undefined) return bad;
  const userns = c.userns ?? "new";
  if (!["new", "init", "netns", "file", "none"].includes(userns)) return `unknown userns ${JSON.stringify(userns)}`;
  if (c.fs !== undefined && !["tmpfs", "ramfs"].includes(c.fs)) return `unknown fs ${JSON.stringify(c.fs)}`;
  for (const f of c.files ?? []) {
    if (typeof f.name !== "string" || f.name.includes("..")) return `bad file name ${JSON.stringify(f.name)}`;
    try {
      parseMode(f.mode, 0o644);
    } catch (e) {
      return (e as Error).message;
    }
  }
  return undefined;
}

/** The compiled runner entry: USERNS_MOUNT_RUNNER, else runner-main.js next to this module. */
export function mountRunnerPath(): string {
  if (process.env.USERNS_MOUNT_RUNNER) return process.env.USERNS_MOUNT_RUNNER;
  return fileURLToPath(new URL("./runner-main.js", import.meta.url));
}

/**
 * Runs cases for real in a fresh process inside a private mount namespace
 * (`unshare --mount --propagation private`), in input order.
 *
 * The runner's workspace directory is made here, in the caller's mount
 * namespace, and removed here once the runner has exited: the tmpfs the
 * runner mounts on it exists only in the runner's namespace, so on this side
 * it is an empty plain directory, removed even if the runner crashed or was
 * killed at the timeout (nothing is unmounted here).
 */
export async function runMountCasesKernel(
  cases: readonly (MountCase | { id: string; inputError: string })[],
  opts: { timeoutMs?: number } = {},
): Promise<MountCaseResult[]> {
  const ws = mkdtempSync(join(tmpdir(), "userns-mount-cases-"));
  try {
    return await runMountCasesIn(ws, cases, opts);
  } finally {
    rmSync(ws, { recursive: true, force: true });
  }
}

async function runMountCasesIn(
  ws: string,
  cases: readonly (MountCase | { id: string; inputError: string })[],
  opts: { timeoutMs?: number },
): Promise<MountCaseResult[]> {
  const runnable = cases.filter((c): c is MountCase => !("inputError" in c));
  const child = spawn(
    "unshare",
    ["--mount", "--propagation", "private", "--", process.execPath, mountRunnerPath(), ws],
    {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, USERNS_BINDING: nativePath() },
    },
  );
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    err += d;
  });
  child.stdin.end(`${runnable.map((c) => JSON.stringify(c)).join("\n")}\n`);
  const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
  const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
  clearTimeout(timer);
  const got = new Map<string, MountCaseResult[]>();
  for (const line of out.split("\n")) {
    if (line.trim() === "") continue;
    const r = JSON.parse(line) as MountCaseResult;
    const list = got.get(r.id) ?? [];
    list.push(r);
    got.set(r.id, list);
  }
  return cases.map((c) => {
    if ("inputError" in c) return { ...emptyResult(c.id), stage: "input", error: c.inputError };
    const r = got.get(c.id)?.shift();
    if (r) return r;
    return {
      ...emptyResult(c.id),
      stage: "setup",
      setup_error: code === null ? "timeout" : `runner exited with ${code}: ${err.trim().slice(-500)}`,
    };
  });
}

/**
 * Makes the runner's workspace: a tmpfs on `at` (an empty directory), or on
 * a fresh directory when `at` is not given (only inside a private mount
 * namespace). A directory made here is removed again if the mount fails.
 */
export function makeWorkspace(at?: string): string {
  const base = at ?? mkdtempSync(join(tmpdir(), "userns-mount-cases-"));
  try {
    mkFs("tmpfs", base);
    try {
      chmodSync(base, 0o755);
    } catch (e) {
      native().umount2(base, MNT_DETACH);
      throw e;
    }
  } catch (e) {
    if (at === undefined) rmdirSync(base);
    throw e;
  }
  return base;
}

/** Removes the workspace made by {@link makeWorkspace}. */
export function removeWorkspace(base: string): void {
  try {
    native().umount2(base, MNT_DETACH);
  } finally {
    rmdirSync(base);
  }
}
