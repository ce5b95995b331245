/**
 * listUserNamespaces(): every user namespace this process can find, with
 * identity (nsfs inode, NS_GET_ID), parent, owner, processes, what holds it,
 * and its maps from two vantage points (this process's, read from /proc; its
 * parent's, translated by the model's readback rules).
 */
import { readFileSync, readlinkSync } from "node:fs";
import { UsernsError } from "../errors.js";
import { native } from "../kernel/native.js";
import { CLONE_NEW, INIT_USER_NS_INO } from "../kernel/nsfs.js";
import { IdMap } from "../model/idmap.js";
import { INIT_USER_NS, type UserNs } from "../model/ns.js";
import { readProcMap } from "../model/readback.js";
import { readMapsOfFd } from "../namespaces/user-namespace.js";
import { parseMapText, readKernelMap } from "../spawn/maps.js";
import { type NsPlace, placePath, scanProc } from "./scan.js";

/** How a namespace is kept alive, besides its processes. */
export type NamespaceHolder =
  | { readonly kind: "fd"; readonly pid: number; readonly fd: number }
  | { readonly kind: "mount"; readonly pid: number; readonly mntNs: string; readonly mountPoint: string }
  /** It owns a namespace of another type that an fd or bind mount holds (e.g. a net namespace under /run/netns). */
  | { readonly kind: "owned"; readonly type: string; readonly ino: bigint; readonly via: NsPlace }
  /** Found only as the parent of another namespace (a child namespace keeps its parent alive). */
  | { readonly kind: "child"; readonly ino: bigint };

/** One user namespace of the inventory. */
export interface UserNamespaceEntry {
  /** nsfs inode, as `user:[INO]` in /proc/PID/ns/user. */
  readonly ino: bigint;
  /** nsfs device. */
  readonly dev: bigint;
  /** NS_GET_ID: never reused while the system runs (6.18+); undefined where the kernel lacks it. */
  readonly id: bigint | undefined;
  /** The parent's inode and id; null for the initial namespace, or where the parent is above this process's namespace (EPERM). */
  readonly parent: { readonly ino: bigint; readonly id: bigint | undefined } | null;
  /** Levels below the topmost namespace this process can see (0 for it). */
  readonly depth: number;
  /** NS_GET_OWNER_UID, in this process's ids (65534 when unmapped here). */
  readonly ownerUid: number;
  readonly initial: boolean;
  /** This process's own user namespace. */
  readonly current: boolean;
  /** Processes in it (pids in this process's pid namespace). */
  readonly pids: readonly number[];
  /** Other things keeping it alive: fds, bind mounts, owned namespaces, child namespaces. */
  readonly heldBy: readonly NamespaceHolder[];
  readonly setgroups: "allow" | "deny";
  /** uid_map as this process reads it: lower ids in this process's ids (for {@link current}, its parent's). */
  readonly uidMap: IdMap;
  readonly gidMap: IdMap;
  /** Whose ids the lower column of uidMap/gidMap is in. */
  readonly lowerIdsIn: "reader" | "parent";
  /** How the maps were read: from a process in it, or by a short-lived helper child that joined it. */
  readonly mapsReadVia: "process" | "helper";
  /** The maps as a reader in the parent namespace sees them (model readback); undefined without a visible parent. */
  readonly parentView: { readonly uidMap: IdMap; readonly gidMap: IdMap } | undefined;
}

/** How the namespaces were found. */
export interface DiscoveryMethod {
  /** "listns" where the kernel has listns(2) (6.19+), else "proc". */
  readonly method: "listns" | "proc";
  /** What asking listns(2) gave: its ids, or the errno (ENOSYS before 6.19). */
  readonly listns:
    | { readonly available: true; readonly ids: readonly bigint[] }
    | { readonly available: false; readonly code: string };
  /** Processes walked, and how many of them this process may not look into (another user's, when unprivileged). */
  readonly processes: number;
  readonly hiddenProcesses: number;
  readonly mountNamespaces: number;
}

/** The result of {@link listUserNamespaces}. */
export interface UserNamespaceInventory {
  readonly discovery: DiscoveryMethod;
  /** Parents before children, then by inode. */
  readonly namespaces: readonly UserNamespaceEntry[];
  /** listns ids the /proc walk did not reach (empty where listns is missing). */
  readonly unreached: readonly bigint[];
}

/** Options of {@link listUserNamespaces}. */
export interface ListUserNamespacesOptions {
  /** Look at every process's open fds (default true). */
  fds?: boolean;
  /** Look at nsfs bind mounts in every mount namespace (default true). */
  mounts?: boolean;
  /** Read maps of namespaces no process is in, through a helper child (default true). */
  helperMaps?: boolean;
}

/** listns(2), or why not (ENOSYS on kernels before 6.19). */
export function probeListns(): DiscoveryMethod["listns"] {
  try {
    return { available: true, ids: native().listns(CLONE_NEW.user, 0n) };
  } catch (e) {
    if (UsernsError.isUsernsError(e)) return { available: false, code: e.code };
    throw e;
  }
}

interface Work {
  fd: number;
  ino: bigint;
  dev: bigint;
  id: bigint | undefined;
  ownerUid: number;
  pids: number[];
  heldBy: NamespaceHolder[];
  parentIno: bigint | null;
  parentId: bigint | undefined;
}

function inoOfLink(path: string): bigint | undefined {
  try {
    const l = readlinkSync(path);
    return BigInt(l.slice(l.indexOf("[") + 1, -1));
  } catch {
    return undefined;
  }
}

function nsId(fd: number): bigint | undefined {
  try {
    return native().nsGetId(fd);
  } catch (e) {
    if ((e as { code?: string }).code === "ENOTTY") return undefined;
    throw e;
  }
}

/** Opens the namespace file at the first place that still names `ino`; undefined when every place is gone. */
function openAt(type: string, ino: bigint, places: readonly NsPlace[]): number | undefined {
  const b = native();
  for (const p of places) {
    let fd: number;
    try {
      fd = b.openNs(placePath(type, p));
    } catch {
      continue;
    }
    if (b.nsIdentity(fd).ino === ino) return fd;
    b.close(fd);
  }
  return undefined;
}

function readMapsFromPid(
  pid: number,
  ino: bigint,
): { uid: IdMap; gid: IdMap; setgroups: "allow" | "deny" } | undefined {
  try {
    const uid = readKernelMap(pid, "uid");
    const gid = readKernelMap(pid, "gid");
    const sg = readFileSync(`/proc/${pid}/setgroups`, "utf8");
    // The pid could have exited and been reused between readlink and these reads: it must still be in `ino`.
    if (inoOfLink(`/proc/${pid}/ns/user`) !== ino) return undefined;
    return { uid, gid, setgroups: sg.startsWith("deny") ? "deny" : "allow" };
  } catch {
    return undefined;
  }
}

/**
 * Every user namespace this process can find. On kernels with listns(2) its
 * ids are the list to reach; the namespaces themselves are opened through
 * /proc either way (listns gives ids, and opening by id needs nsfs file
 * handles), and ids listns gave that the walk did not reach are reported in
 * `unreached`.
 *
 * @example
 * ```ts
 * const inv = listUserNamespaces();
 * for (const ns of inv.namespaces) console.log(ns.ino, ns.pids.length, ns.uidMap.toString());
 * ```
 */
export function listUserNamespaces(options: ListUserNamespacesOptions = {}): UserNamespaceInventory {
  const b = native();
  const listns = probeListns();
  const scan = scanProc({ fds: options.fds, mounts: options.mounts });
  const byIno = new Map<bigint, Work>();
  const opened: number[] = [];
  const selfIno = inoOfLink("/proc/self/ns/user");
  try {
    const add = (fd: number): Work => {
      const { dev, ino } = b.nsIdentity(fd);
      const w: Work = {
        fd,
        ino,
        dev,
        id: nsId(fd),
        ownerUid: b.nsGetOwnerUid(fd),
        pids: [],
        heldBy: [],
        parentIno: null,
        parentId: undefined,
      };
      byIno.set(ino, w);
      return w;
    };
    for (const s of scan.user.values()) {
      const fd = openAt("user", s.ino, s.places);
      if (fd === undefined) continue;
      opened.push(fd);
      const w = add(fd);
      for (const p of s.places) {
        if (p.kind === "process") w.pids.push(p.pid);
        else w.heldBy.push(p);
      }
    }
    // Namespaces of other types held by fds or mounts keep their owning user namespace alive.
    for (const s of scan.other.values()) {
      const held = s.places.filter((p) => p.kind !== "process");
      if (held.length === 0) continue;
      const fd = openAt(s.type, s.ino, held);
      if (fd === undefined) continue;
      let ufd: number;
      try {
        ufd = b.nsGetUserns(fd);
      } catch {
        continue;
      } finally {
        b.close(fd);
      }
      const uino = b.nsIdentity(ufd).ino;
      let w = byIno.get(uino);
      if (w === undefined) {
        opened.push(ufd);
        w = add(ufd);
      } else b.close(ufd);
      w.heldBy.push({ kind: "owned", type: s.type, ino: s.ino, via: held[0]! });
    }
    // Parents: NS_GET_PARENT up to the top this process may see.
    const queue = [...byIno.values()];
    while (queue.length > 0) {
      const w = queue.pop()!;
      let pfd: number;
      try {
        pfd = b.nsGetParent(w.fd);
      } catch (e) {
        if ((e as { code?: string }).code === "EPERM") continue;
        throw e;
      }
      const pino = b.nsIdentity(pfd).ino;
      let p = byIno.get(pino);
      if (p === undefined) {
        opened.push(pfd);
        p = add(pfd);
        queue.push(p);
      } else b.close(pfd);
      w.parentIno = pino;
      w.parentId = p.id;
      p.heldBy.push({ kind: "child", ino: w.ino });
    }
    // Maps, then the model tree for the parent's view.
    const entries: UserNamespaceEntry[] = [];
    const models = new Map<bigint, UserNs>();
    const depth = (w: Work): number => (w.parentIno === null ? 0 : depth(byIno.get(w.parentIno)!) + 1);
    const order = [...byIno.values()].sort(
      (a, c) => depth(a) - depth(c) || (a.ino < c.ino ? -1 : a.ino > c.ino ? 1 : 0),
    );
    let modelId = 1;
    for (const w of order) {
      let maps: { uid: IdMap; gid: IdMap; setgroups: "allow" | "deny" } | undefined;
      let via: "process" | "helper" = "process";
      for (const pid of w.pids) {
        maps = readMapsFromPid(pid, w.ino);
        if (maps !== undefined) break;
      }
      if (maps === undefined && options.helperMaps !== false) {
        try {
          const r = readMapsOfFd(w.fd);
          maps = { uid: r.uid, gid: r.gid, setgroups: r.setgroups };
          via = "helper";
        } catch {
          // not ours to join (unprivileged, another user's namespace): listed without maps
        }
      }
      const current = w.ino === selfIno;
      const lowerIdsIn: "reader" | "parent" = current && w.ino !== INIT_USER_NS_INO ? "parent" : "reader";
      const uidMap = maps?.uid ?? IdMap.EMPTY;
      const gidMap = maps?.gid ?? IdMap.EMPTY;
      const setgroups = maps?.setgroups ?? "allow";
      // The model tree is rooted at this process's namespace, whose ids are the "kernel" ids of the model:
      // every map read here has its lower ids in them.
      let model: UserNs;
      const parentModel = w.parentIno === null ? undefined : models.get(w.parentIno);
      if (current || parentModel === undefined) {
        model = { ...INIT_USER_NS, id: modelId++ };
      } else {
        model = {
          id: modelId++,
          parent: parentModel,
          level: parentModel.level + 1,
          ownerKuid: w.ownerUid,
          groupKgid: 0,
          parentCouldSetfcap: true,
          setgroupsAllowed: setgroups === "allow",
          uidMap,
          gidMap,
          projidMap: IdMap.EMPTY,
        };
      }
      models.set(w.ino, model);
      const parentView =
        parentModel !== undefined && !current && maps !== undefined
          ? {
              uidMap: parseMapText(readProcMap(model, "uid", parentModel), "uid"),
              gidMap: parseMapText(readProcMap(model, "gid", parentModel), "gid"),
            }
          : current && maps !== undefined && lowerIdsIn === "parent"
            ? { uidMap, gidMap }
            : undefined;
      entries.push({
        ino: w.ino,
        dev: w.dev,
        id: w.id,
        parent: w.parentIno === null ? null : { ino: w.parentIno, id: w.parentId },
        depth: depth(w),
        ownerUid: w.ownerUid,
        initial: w.ino === INIT_USER_NS_INO,
        current,
        pids: w.pids.sort((a, c) => a - c),
        heldBy: w.heldBy,
        setgroups,
        uidMap,
        gidMap,
        lowerIdsIn,
        mapsReadVia: via,
        parentView,
      });
    }
    const reachedIds = new Set(entries.map((e) => e.id).filter((x) => x !== undefined));
    const unreached = listns.available ? listns.ids.filter((id) => !reachedIds.has(id)) : [];
    return {
      discovery: {
        method: listns.available ? "listns" : "proc",
        listns,
        processes: scan.processes,
        hiddenProcesses: scan.hidden,
        mountNamespaces: scan.mountNamespaces,
      },
      namespaces: entries,
      unreached,
    };
  } finally {
    for (const fd of opened) b.close(fd);
  }
}
