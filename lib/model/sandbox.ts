/**
 * The sandbox as the program sees it: the mount table a filesystem plan builds
 * (target, filesystem type, read-only, idmapped, in the order the kernel lists the
 * mounts) and the owner and mode of each mount's root as `stat` shows them inside,
 * through the sandbox's user namespace and any idmapped mount.
 *
 * Pure: the host facts the prediction needs (what each bind source is on the host,
 * its submounts, the device nodes /dev borrows, the maps) come in a
 * {@link SandboxContext} that an impure collector (lib/sandbox/facts.ts) fills.
 * The operation types are structural mirrors of lib/sandbox/types.ts (the model
 * imports nothing outside lib/model), so a `SandboxOptions.filesystem` is accepted
 * as it is.
 *
 * Kernel rules used (each checked by test/kernel/sandbox-model.test.ts):
 * - A bind is recursive (every submount of the source comes along) and keeps the
 *   source mount's flags and idmap (clone_mnt copies mnt_flags and mnt_idmap).
 * - A new tmpfs or devpts root belongs to the fsuid/fsgid of the task that mounted it
 *   (shmem_get_inode, devpts' root inode); a new procfs root to GLOBAL_ROOT_UID/GID, so it
 *   shows as nobody where the namespace does not map kuid 0. An mqueue mount is the ipc
 *   namespace's own superblock, made when the ipc namespace was (mq_init_ns at clone): its
 *   root belongs to the task that created the ipc namespace, not to the one mounting it
 *   (found by test/kernel/sandbox-crosscheck.test.ts: root's sandbox with "0 100000 65536"
 *   shows /dev/mqueue as nobody, its tmpfs roots as 0).
 * - stat() inside shows `from_kuid_munged(sandbox userns, make_vfsuid(mount idmap, fs, kuid))`:
 *   65534 (overflowuid) for what the namespace does not map (idmapped.ts statThroughMount).
 * - The child pivots into the topmost mount at its new root: a bind at "/" replaces the tmpfs root,
 *   and what was mounted before it goes away with the detached base.
 * - Since 6.8 a namespace lists its mounts by mount id, that is in creation order, not in the
 *   order they were attached: mounts made before the child runs the plan come first (detached
 *   mounts the caller attaches, by their ids; then the idmapped binds, which the parent clones
 *   while preparing the spawn, in plan order); then the child's own, in plan order. A recursive
 *   bind copies the source's submounts in tree order (the host's mountinfo order).
 *
 * @packageDocumentation
 */
import { type FsUserns, type MountIdmap, statThroughMount, type UidGidMaps } from "./idmapped.js";

// ---------------------------------------------------------------------------
// The plan, as the model reads it (structural mirror of lib/sandbox/types.ts FsOperation).

/** Fields the model reads from each filesystem operation; see lib/sandbox/types.ts for their meaning. */
export type ModelFsOperation =
  | { readonly op: "bind"; readonly dest: string; readonly readOnly?: boolean; readonly optional?: boolean }
  | { readonly op: "tmpfs"; readonly dest: string; readonly mode?: number }
  | { readonly op: "proc"; readonly dest: string }
  | { readonly op: "dev"; readonly dest: string }
  | { readonly op: "mqueue"; readonly dest: string }
  | { readonly op: "dir"; readonly dest: string; readonly mode?: number }
  | { readonly op: "symlink"; readonly target: string; readonly dest: string }
  | { readonly op: "file"; readonly dest: string; readonly mode?: number; readonly bind?: "rw" | "ro" }
  | { readonly op: "chmod"; readonly dest: string; readonly mode: number }
  | { readonly op: "remountReadOnly"; readonly dest: string }
  | { readonly op: "overlay"; readonly dest: string; readonly upper?: string }
  | { readonly op: "attach"; readonly dest: string }
  | { readonly op: "idmappedBind"; readonly dest: string; readonly readOnly?: boolean; readonly recursive?: boolean };

// ---------------------------------------------------------------------------
// Host facts.

/** An owner as ids: kernel ids (kuid/kgid) in facts, ids seen inside in predictions. */
export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

/** A mount on the host, as the collector found it, at or under a bind source. */
export interface HostMountFacts {
  /** Path relative to the bind source ("" for the mount the source itself is on, then "sub/dir"). */
  readonly rel: string;
  readonly fsType: string;
  readonly readOnly: boolean;
  readonly idmapped: boolean;
  /**
   * Owner of what the path shows on the host (for "" the source itself, else the submount's root),
   * as kernel ids: what stat() returns in the initial namespace, i.e. after the host mount's own idmap.
   */
  readonly owner: Owner;
  /** Permission bits (07777). */
  readonly mode: number;
}

/** What a host path is, for one operation (bind and idmapped-bind sources, overlay layers, attached mounts). */
export interface PathFacts {
  /** False when the source does not exist (an optional bind is then skipped). */
  readonly exists: boolean;
  /** The mount the path is on (rel "") and, for recursive sources, every mount below it in host order. */
  readonly mounts: readonly HostMountFacts[];
  /** For an idmapped bind (or an attached idmapped mount): the mount's idmap, mount direction (on-disk → seen). */
  readonly idmap?: UidGidMaps;
  /** `sb->s_user_ns` of the source's filesystem; default the initial namespace. */
  readonly fsUserns?: FsUserns;
  /** For an attached mount: its unique mount id (it was made before the spawn, and the kernel lists mounts by id). */
  readonly mountId?: number;
}

/** Everything the predictor needs besides the plan. */
export interface SandboxContext {
  /**
   * The sandbox's user namespace maps as installed (lower ids are kernel ids, as the initial namespace
   * reads /proc/PID/uid_map), or "init" when the sandbox has no user namespace of its own.
   */
  readonly userns: UidGidMaps | "init";
  /** Kernel ids of the child while it runs the plan: owners of the tmpfs, mqueue and devpts roots it mounts. */
  readonly creator: Owner;
  /**
   * Kernel ids of the task that created the ipc namespace whose mqueue the plan mounts: the spawning
   * process's ids for a new ipc namespace (clone runs with its credentials), the host's root otherwise.
   */
  readonly ipcCreator: Owner;
  /** Facts per operation index (bind, idmappedBind, attach, overlay); undefined for the others. */
  readonly ops: readonly (PathFacts | undefined)[];
  /** Facts of the host device nodes a `dev` operation binds, by name (null, zero, ...). */
  readonly devNodes: Readonly<Record<string, PathFacts>>;
  /** Entries of a new procfs that the `proc` operation covers with read-only binds of themselves (bwrap's cover list, where it applies). */
  readonly procCovers: readonly { readonly name: string; readonly mode: number }[];
}

// ---------------------------------------------------------------------------
// The prediction.

/** One mount of the sandbox, as /proc/PID/mountinfo lists it and stat shows its root inside. */
export interface PredictedMount {
  /** Mount point inside the sandbox (mountinfo's 5th field, symlinks made by the plan resolved). */
  readonly target: string;
  readonly fsType: string;
  readonly readOnly: boolean;
  readonly idmapped: boolean;
  /** Owner of the mount's root as stat() shows it inside (65534 where unmapped). */
  readonly owner: Owner;
  /** Permission bits of the root (07777), where the model knows them. */
  readonly mode: number | undefined;
  /** Index of the operation that made it; -1 for the new root. */
  readonly op: number;
  /** False when a later mount on the same path or on a parent hides it: stat of `target` then reaches that one. */
  readonly visible: boolean;
}

/** The device nodes a minimal /dev binds from the host, in the order they are bound (bwrap's order). */
export const DEV_NODES: readonly string[] = Object.freeze(["null", "zero", "full", "random", "urandom", "tty"]);

/** The kernel id of GLOBAL_ROOT_UID/GID: owner of a procfs root. */
const GLOBAL_ROOT: Owner = Object.freeze({ uid: 0, gid: 0 });

/** Collapses `//`, `.` and `..` of an absolute path inside the new root (`..` stops at `/`). */
export function normalizeSandboxPath(p: string): string {
  const out: string[] = [];
  for (const c of p.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") out.pop();
    else out.push(c);
  }
  return `/${out.join("/")}`;
}

function join(a: string, rel: string): string {
  return rel === "" ? a : normalizeSandboxPath(`${a}/${rel}`);
}

/** Whether `p` is `dir` or below it. */
function under(p: string, dir: string): boolean {
  return dir === "/" || p === dir || p.startsWith(`${dir}/`);
}

/**
 * Resolves `dest` inside the new root through the symlinks the plan made so far, the way
 * path lookup inside it would: an absolute link restarts at the new root, a relative one at
 * its directory, `..` never leaves the root. Symlinks that come from bound host trees are not
 * known to the model.
 */
export function resolveInRoot(dest: string, links: ReadonlyMap<string, string>): string {
  let pending = normalizeSandboxPath(dest).split("/").filter(Boolean);
  let done: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const c = pending.shift()!;
    const here = `/${[...done, c].join("/")}`;
    const link = links.get(here);
    if (link !== undefined && ++hops <= 40) {
      const base = link.startsWith("/") ? [] : done;
      pending = [...link.split("/").filter((x) => x !== "" && x !== "."), ...pending];
      done = [...base];
      // `..` in the link's text: resolve against what is done so far.
      while (pending[0] === "..") {
        pending.shift();
        done.pop();
      }
      continue;
    }
    if (c === "..") done.pop();
    else done.push(c);
  }
  return `/${done.join("/")}`;
}

function seen(ctx: SandboxContext, idmap: MountIdmap, fs: FsUserns, kernel: Owner): Owner {
  return statThroughMount(idmap, fs, kernel, ctx.userns);
}

interface Building {
  /** Listing order: [when made (0 attached mounts, 1 idmapped binds, 2 in the child), key within]. */
  rank: [number, number];
  target: string;
  fsType: string;
  readOnly: boolean;
  idmapped: boolean;
  owner: Owner;
  mode: number | undefined;
  op: number;
}

/**
 * Predicts the mount table and the mount roots' owners that a filesystem plan gives the program.
 * Operations that make no mount (dir, symlink, a plain file) only shape paths; chmod changes a
 * mount root's mode when it names one; remountReadOnly makes the mount at `dest` and every mount
 * below it read-only. An optional bind whose source is missing is skipped.
 */
export function predictSandboxMounts(
  plan: readonly ModelFsOperation[],
  ctx: SandboxContext,
): readonly PredictedMount[] {
  const mounts: Building[] = [];
  const links = new Map<string, string>();
  const creatorSeen = seen(ctx, "nop", "init", ctx.creator);
  const inChild = (): [number, number] => [2, mounts.length];
  const fresh = (target: string, fsType: string, mode: number | undefined, op: number, owner = creatorSeen) =>
    mounts.push({ rank: inChild(), target, fsType, readOnly: false, idmapped: false, owner, mode, op });
  // The new root: a tmpfs (mode 0755) that pivot_root makes `/`.
  fresh("/", "tmpfs", 0o755, -1);

  const bindTree = (
    facts: PathFacts,
    target: string,
    i: number,
    readOnly: boolean,
    idmap: MountIdmap,
    all: boolean,
    group = 2,
  ) => {
    const fs = facts.fsUserns ?? "init";
    const list = all ? facts.mounts : facts.mounts.filter((m) => m.rel === "");
    for (const m of list) {
      // An idmapped bind applies the new idmap to on-disk owners; a plain bind keeps what the host shows.
      const owner = seen(ctx, idmap, fs, m.owner);
      mounts.push({
        rank:
          group === 0 ? [0, (facts.mountId ?? i) + mounts.length / 1e6] : group === 1 ? [1, mounts.length] : inChild(),
        target: join(target, m.rel),
        fsType: m.fsType,
        readOnly: readOnly || m.readOnly,
        idmapped: idmap !== "nop" || m.idmapped,
        owner,
        mode: m.mode,
        op: i,
      });
    }
  };

  plan.forEach((o, i) => {
    const dest = resolveInRoot(o.dest, links);
    switch (o.op) {
      case "bind": {
        const f = ctx.ops[i];
        if (f === undefined || !f.exists) return;
        bindTree(f, dest, i, o.readOnly === true, "nop", true);
        return;
      }
      case "idmappedBind": {
        const f = ctx.ops[i];
        if (f === undefined || !f.exists) return;
        bindTree(f, dest, i, o.readOnly === true, f.idmap ?? "nop", o.recursive === true, 1);
        return;
      }
      case "attach": {
        const f = ctx.ops[i];
        if (f === undefined || !f.exists) return;
        // The detached mount's owner is already as seen through its idmap (fstat in the facts' namespace).
        bindTree(f, dest, i, false, "nop", true, 0);
        return;
      }
      case "tmpfs":
        fresh(dest, "tmpfs", o.mode ?? 0o755, i);
        return;
      case "mqueue":
        fresh(dest, "mqueue", 0o1777, i, seen(ctx, "nop", "init", ctx.ipcCreator));
        return;
      case "proc": {
        fresh(dest, "proc", 0o555, i, seen(ctx, "nop", "init", GLOBAL_ROOT));
        for (const c of ctx.procCovers)
          mounts.push({
            rank: inChild(),
            target: join(dest, c.name),
            fsType: "proc",
            readOnly: true,
            idmapped: false,
            owner: seen(ctx, "nop", "init", GLOBAL_ROOT),
            mode: c.mode,
            op: i,
          });
        return;
      }
      case "dev": {
        fresh(dest, "tmpfs", 0o755, i);
        for (const name of DEV_NODES) {
          const f = ctx.devNodes[name];
          if (f === undefined || !f.exists) continue;
          bindTree(f, join(dest, name), i, false, "nop", false);
        }
        fresh(join(dest, "pts"), "devpts", 0o755, i);
        return;
      }
      case "overlay": {
        const f = ctx.ops[i];
        const top = f?.mounts[0];
        const owner =
          o.upper === "tmpfs" || top === undefined ? creatorSeen : seen(ctx, "nop", f?.fsUserns ?? "init", top.owner);
        mounts.push({
          rank: inChild(),
          target: dest,
          fsType: "overlay",
          // Without an upper layer the filesystem refuses writes itself; the mount flag stays rw.
          readOnly: false,
          idmapped: false,
          owner,
          mode: o.upper === "tmpfs" ? 0o755 : top?.mode,
          op: i,
        });
        return;
      }
      case "file":
        if (o.bind !== undefined) {
          mounts.push({
            rank: inChild(),
            target: dest,
            fsType: "tmpfs",
            readOnly: o.bind === "ro",
            idmapped: false,
            owner: creatorSeen,
            mode: o.mode ?? 0o666,
            op: i,
          });
        }
        return;
      case "symlink":
        links.set(dest, o.target);
        return;
      case "chmod": {
        const top = topAt(mounts, dest);
        if (top !== undefined) top.mode = o.mode & 0o7777;
        return;
      }
      case "remountReadOnly":
        for (const m of mounts) if (under(m.target, dest)) m.readOnly = true;
        return;
      case "dir":
        return;
    }
  });

  // A mount at "/" (a bind of a whole tree there, as `--root`) becomes the root when the child pivots
  // into the topmost mount at /newroot; the tmpfs root and everything mounted before it (now below it)
  // stay with the old base, which is detached: they are gone, not hidden.
  let top = -1;
  mounts.forEach((m, i) => {
    if (m.target === "/") top = i;
  });
  const kept = mounts.slice(top);
  // Visibility follows the order of attachment (the plan's); the listing, the order of creation.
  return kept
    .map(({ rank, ...m }, i) => ({
      rank,
      m: { ...m, visible: !kept.slice(i + 1).some((later) => under(m.target, later.target)) },
    }))
    .sort((a, b) => a.rank[0] - b.rank[0] || a.rank[1] - b.rank[1])
    .map((x) => x.m);
}

function topAt(mounts: Building[], target: string): Building | undefined {
  for (let i = mounts.length - 1; i >= 0; i--) if (mounts[i]!.target === target) return mounts[i];
  return undefined;
}
