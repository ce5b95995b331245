/**
 * listUserNamespaces(): every user namespace this process can find, with
 * identity (nsfs inode, NS_GET_ID), parent, owner, processes, what holds it,
 * and its maps from two vantage points (this process's, read from /proc; its
 * parent's, translated by the model's readback rules).
 */
import { readFileSync, readlinkSync } from "node:fs";
import { parseReadbackMap, readKernelMap } from "../child/maps.js";
import { UsernsError } from "../errors.js";
import { native, type ProcScanRaw } from "../kernel/native.js";
import { CLONE_NEW, INIT_USER_NS_INO } from "../kernel/nsfs.js";
import { IdMap } from "../model/idmap.js";
import { fromKid, INIT_USER_NS, nsMap, type UserNs } from "../model/ns.js";
import { readbackLowerNs } from "../model/readback.js";
import { readMapsOfFd } from "../namespaces/user-namespace.js";
import { mountsOf, type NsPlace, placePath } from "./scan.js";

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
  /**
   * How the maps were read: from a process in it, by a short-lived helper child that joined it, or not at all
   * ("unread": no process of ours in it and not ours to join; uidMap and gidMap are then empty).
   */
  readonly mapsReadVia: "process" | "helper" | "unread";
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
  /** An open nsfs fd, once one was needed (the native walk opens and closes its own). */
  fd: number | undefined;
  ino: bigint;
  dev: bigint;
  id: bigint | undefined;
  ownerUid: number;
  pids: number[];
  heldBy: NamespaceHolder[];
  /** Places to open it through, for whatever the native walk did not do. */
  places: NsPlace[];
  parentIno: bigint | null;
  parentId: bigint | undefined;
  /** The parent is known (or known to be out of view); otherwise NS_GET_PARENT is asked here. */
  parentKnown: boolean;
  maps: { uid: IdMap; gid: IdMap; setgroups: "allow" | "deny" } | undefined;
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

const EPERM = 1;

/**
 * The map of `target` as a reader in `reader` gets it from /proc (the model's
 * readback rules: uid_m_show translates each line's first lower id into the
 * reader's ids, or the parent's when the reader is the target), as a value
 * rather than text: readProcMap's text, parsed back, for thousands of
 * namespaces costs more than the walk.
 */
function viewFrom(target: UserNs, kind: "uid" | "gid", reader: UserNs): IdMap {
  const lowerNs = readbackLowerNs(target, reader);
  const map = nsMap(target, kind);
  // The common case, a namespace right below this process's: translating into a root of the model tree (whose
  // map is the identity) changes no id, and up to 5 extents print in written order, so the view is the map.
  if (lowerNs.parent === null && nsMap(lowerNs, kind) === IdMap.IDENTITY && map.printOrder === map.extents) return map;
  return IdMap.of(
    ...nsMap(target, kind).printOrder.map((e) => [e.first, fromKid(lowerNs, kind, e.lowerFirst), e.count] as const),
  );
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
  const listns = probeListns();
  return inventoryOf(listns, native().scanProcUserns(options.fds !== false), options);
}

/**
 * {@link listUserNamespaces} with the /proc walk on other threads: the event loop stays free while the kernel
 * answers (tens of ms per thousand processes). The rest (fds and bind mounts of namespaces, their parents, maps
 * no process shows) runs on the JS thread as in the sync call.
 */
export async function listUserNamespacesAsync(
  options: ListUserNamespacesOptions = {},
): Promise<UserNamespaceInventory> {
  const listns = probeListns();
  return inventoryOf(listns, await native().scanProcUsernsAsync(options.fds !== false), options);
}

/**
 * @internal The inventory from a listns(2) answer and a /proc walk (native scanProcUserns or its async twin):
 * the CLI starts the walk before it loads this module, and tests hand in listns answers the kernel has not.
 */
export function inventoryOf(
  listns: DiscoveryMethod["listns"],
  raw: ProcScanRaw,
  options: ListUserNamespacesOptions = {},
): UserNamespaceInventory {
  const b = native();
  const byIno = new Map<bigint, Work>();
  const opened: number[] = [];
  const selfIno = inoOfLink("/proc/self/ns/user");
  const fdOf = (w: Work): number | undefined => {
    if (w.fd === undefined) {
      w.fd = openAt("user", w.ino, w.places);
      if (w.fd !== undefined) opened.push(w.fd);
    }
    return w.fd;
  };
  try {
    // Namespaces with processes: the native walk already asked nsfs and read the maps.
    for (const r of raw.namespaces) {
      if (r.dev === undefined) continue; // every process went away: so did the namespace, or it is held elsewhere
      const maps =
        r.uidMap !== undefined && r.gidMap !== undefined
          ? {
              uid: parseReadbackMap(r.uidMap, "uid"),
              gid: parseReadbackMap(r.gidMap, "gid"),
              setgroups: r.setgroups?.startsWith("deny") ? ("deny" as const) : ("allow" as const),
            }
          : undefined;
      byIno.set(r.ino, {
        fd: undefined,
        ino: r.ino,
        dev: r.dev,
        id: r.id,
        ownerUid: r.ownerUid ?? 65534,
        pids: r.pids,
        heldBy: [],
        places: r.pids.map((pid) => ({ kind: "process", pid })),
        parentIno: r.parentIno ?? null,
        parentId: r.parentId,
        parentKnown: r.parentIno !== undefined || r.parentErrno === EPERM,
        maps,
      });
    }
    const add = (fd: number, places: NsPlace[]): Work => {
      const { dev, ino } = b.nsIdentity(fd);
      const w: Work = {
        fd,
        ino,
        dev,
        id: nsId(fd),
        ownerUid: b.nsGetOwnerUid(fd),
        pids: [],
        heldBy: [],
        places,
        parentIno: null,
        parentId: undefined,
        parentKnown: false,
        maps: undefined,
      };
      opened.push(fd);
      byIno.set(ino, w);
      return w;
    };
    // Fds and bind mounts: of user namespaces directly, of other types through their owner.
    const held = new Map<string, { type: string; ino: bigint; places: NsPlace[] }>();
    const hold = (type: string, ino: bigint, place: NsPlace): void => {
      const k = `${type}:${ino}`;
      const h = held.get(k) ?? { type, ino, places: [] };
      h.places.push(place);
      held.set(k, h);
    };
    for (const [pid, fd, type, ino] of raw.fds) hold(type, ino, { kind: "fd", pid, fd });
    if (options.mounts !== false) {
      for (const [mnt, pid] of raw.mntNamespaces) {
        for (const m of mountsOf(pid))
          hold(m.type, m.ino, { kind: "mount", pid, mntNs: `mnt:[${mnt}]`, mountPoint: m.mountPoint });
      }
    }
    for (const h of held.values()) {
      if (h.type !== "user") continue;
      let w = byIno.get(h.ino);
      if (w === undefined) {
        const fd = openAt("user", h.ino, h.places);
        if (fd === undefined) continue;
        w = add(fd, [...h.places]);
      } else w.places.push(...h.places);
      for (const p of h.places) if (p.kind !== "process") w.heldBy.push(p);
    }
    for (const h of held.values()) {
      if (h.type === "user") continue;
      const fd = openAt(h.type, h.ino, h.places);
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
      if (w === undefined) w = add(ufd, []);
      else b.close(ufd);
      w.heldBy.push({ kind: "owned", type: h.type, ino: h.ino, via: h.places[0]! });
    }
    // Parents: NS_GET_PARENT up to the top this process may see.
    const queue = [...byIno.values()];
    while (queue.length > 0) {
      const w = queue.pop()!;
      if (w.parentKnown && (w.parentIno === null || byIno.has(w.parentIno))) {
        if (w.parentIno !== null) byIno.get(w.parentIno)!.heldBy.push({ kind: "child", ino: w.ino });
        continue;
      }
      const fd = fdOf(w);
      if (fd === undefined) continue;
      let pfd: number;
      try {
        pfd = b.nsGetParent(fd);
      } catch (e) {
        if ((e as { code?: string }).code === "EPERM") continue;
        throw e;
      }
      const pino = b.nsIdentity(pfd).ino;
      let p = byIno.get(pino);
      if (p === undefined) {
        p = add(pfd, []);
        queue.push(p);
      } else b.close(pfd);
      w.parentIno = pino;
      w.parentId = p.id;
      w.parentKnown = true;
      p.heldBy.push({ kind: "child", ino: w.ino });
    }
    // Maps, then the model tree for the parent's view.
    const entries: UserNamespaceEntry[] = [];
    const models = new Map<bigint, UserNs>();
    const depths = new Map<bigint, number>();
    const depth = (w: Work): number => {
      let d = depths.get(w.ino);
      if (d === undefined) {
        const p = w.parentIno === null ? undefined : byIno.get(w.parentIno);
        d = p === undefined ? 0 : depth(p) + 1;
        depths.set(w.ino, d);
      }
      return d;
    };
    const order = [...byIno.values()].sort(
      (a, c) => depth(a) - depth(c) || (a.ino < c.ino ? -1 : a.ino > c.ino ? 1 : 0),
    );
    let modelId = 1;
    for (const w of order) {
      let maps = w.maps;
      let via: "process" | "helper" | "unread" = "process";
      if (maps === undefined) {
        for (const pid of w.pids) {
          maps = readMapsFromPid(pid, w.ino);
          if (maps !== undefined) break;
        }
      }
      const fd = maps === undefined && options.helperMaps !== false ? fdOf(w) : undefined;
      if (fd !== undefined) {
        try {
          const r = readMapsOfFd(fd);
          maps = { uid: r.uid, gid: r.gid, setgroups: r.setgroups };
          via = "helper";
        } catch {
          // not ours to join (unprivileged, another user's namespace): listed without maps
        }
      }
      if (maps === undefined) via = "unread";
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
              uidMap: viewFrom(model, "uid", parentModel),
              gidMap: viewFrom(model, "gid", parentModel),
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
        processes: raw.processes,
        hiddenProcesses: raw.hidden,
        mountNamespaces: raw.mntNamespaces.length,
      },
      namespaces: entries,
      unreached,
    };
  } finally {
    for (const fd of opened) b.close(fd);
  }
}
