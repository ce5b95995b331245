/**
 * Held user namespaces: a handle keeps a namespace alive through an nsfs fd,
 * after the process that created it is gone. Idmapped mounts and later spawns
 * use these.
 */
import { readFileSync } from "node:fs";
import { diedError, diedWhileHeld } from "../child/held.js";
import { startJoinedHolder, startUserNsHolder } from "../child/holder.js";
import { type MapInput, type MappingResult, type MapWriter, readKernelMap, writeMaps } from "../child/maps.js";
import { abortChild, type HeldChild, resumeChild } from "../child/steps.js";
import { creatorIds, prepareMapRequest } from "../child/validate.js";
import { UsernsError } from "../errors.js";
import { native } from "../kernel/native.js";
import { type NamespaceIdentity, nsInfoFromFd } from "../kernel/nsfs.js";
import type { IdMap } from "../model/idmap.js";

/** A user namespace's maps as the kernel reported them, and from where they were read. */
export interface ReportedMaps {
  readonly uid: IdMap;
  readonly gid: IdMap;
  readonly setgroups: "allow" | "deny";
  /** The user namespace of the reader (this process): the kernel shows lower ids in the reader's ids... */
  readonly readFrom: NamespaceIdentity;
  /** ...except when the reader is the namespace itself: then lower ids are in its parent's ids. */
  readonly lowerIdsIn: "reader" | "parent";
}

/** Options of {@link UserNamespace.create}. */
export interface CreateUserNamespaceOptions {
  /** The uid map (model value or text). */
  uidMap?: MapInput;
  /** The gid map (model value or text). */
  gidMap?: MapInput;
  /** setgroups, written before gid_map. */
  setgroups?: "allow" | "deny";
  /** Create the namespace inside this held one (its maps are then written from there). Default: this process's namespace. */
  parent?: UserNamespace;
  /** How maps are written (see spawn's mapWriter). Ignored with `parent`, whose maps a helper in the parent writes. */
  mapWriter?: MapWriter;
  /** Reuse a cached namespace with the same parent and maps (default true), as runc and containerd do. */
  cache?: boolean;
}

const registry = new FinalizationRegistry<number>((fd) => {
  try {
    native().close(fd);
  } catch {
    // the fd is gone either way
  }
});

function readMapsOfPid(pid: number | "self", self: boolean): Omit<ReportedMaps, "readFrom"> {
  const uid = readKernelMap(pid, "uid");
  const gid = readKernelMap(pid, "gid");
  const sg = readFileSync(`/proc/${pid}/setgroups`, "utf8").trim();
  return { uid, gid, setgroups: sg === "deny" ? "deny" : "allow", lowerIdsIn: self ? "parent" : "reader" };
}

function currentIdentity(): NamespaceIdentity {
  const fd = native().openNs("/proc/self/ns/user");
  try {
    const { dev, ino } = native().nsIdentity(fd);
    return { dev, ino };
  } finally {
    native().close(fd);
  }
}

function sameNs(a: NamespaceIdentity, b: NamespaceIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/** Reads the maps of the user namespace behind fd, through a helper child that joins it and waits while we read. */
export function readMapsOfFd(fd: number): ReportedMaps {
  const readFrom = currentIdentity();
  const { dev, ino } = native().nsIdentity(fd);
  if (sameNs(readFrom, { dev, ino })) return { ...readMapsOfPid("self", true), readFrom };
  const held = startJoinedHolder(fd);
  try {
    resumeChild(held, "reading the maps of a held user namespace", false);
    const maps = readMapsOfPid(held.pid, false);
    resumeChild(held, "reading the maps of a held user namespace");
    return { ...maps, readFrom };
  } finally {
    abortChild(held);
  }
}

interface CacheEntry {
  fd: number;
  maps: ReportedMaps;
  mapping: MappingResult;
}
const CACHE_LIMIT = 32;
const cache = new Map<string, CacheEntry>();

/**
 * A user namespace held open by an nsfs fd (O_CLOEXEC). Closing the handle
 * (or losing it to the garbage collector) releases the namespace, which the
 * kernel frees once nothing else refers to it.
 */
export class UserNamespace {
  /** The nsfs fd holding the namespace (for setns, mount_setattr's userns_fd, ...). */
  readonly fd: number;
  /** (dev, ino) of the nsfs file; a safe identity while this handle is open. */
  readonly identity: NamespaceIdentity;
  /** NS_GET_ID: a 64-bit id the kernel never reuses (6.18+), else undefined. */
  readonly id: bigint | undefined;
  /** How the maps were written, when this handle created the namespace. */
  readonly mapping: MappingResult | undefined;
  #maps: ReportedMaps | undefined;
  #closed = false;

  private constructor(fd: number, maps?: ReportedMaps, mapping?: MappingResult) {
    this.fd = fd;
    const info = nsInfoFromFd(fd);
    if (info.type !== "user") {
      native().close(fd);
      throw new UsernsError(`fd ${fd} is a ${info.type} namespace, not a user namespace`, { code: "EINVAL" });
    }
    this.identity = { dev: info.dev, ino: info.ino };
    this.id = info.id;
    this.#maps = maps;
    this.mapping = mapping;
    registry.register(this, fd, this);
  }

  /** Takes ownership of an open nsfs fd. */
  static fromFd(fd: number): UserNamespace {
    return new UserNamespace(fd);
  }

  /** The user namespace of process `pid`; its maps are read at once, from this process's vantage point. */
  static fromPid(pid: number): UserNamespace {
    const fd = native().openNs(`/proc/${pid}/ns/user`);
    try {
      const readFrom = currentIdentity();
      const maps = readMapsOfPid(pid, false);
      // The pid could have been reused between open and read: check it still names the namespace we hold.
      const again = native().openNs(`/proc/${pid}/ns/user`);
      const same = (() => {
        try {
          const a = native().nsIdentity(fd);
          const b = native().nsIdentity(again);
          return a.dev === b.dev && a.ino === b.ino;
        } finally {
          native().close(again);
        }
      })();
      const self = sameNs(readFrom, native().nsIdentity(fd));
      return new UserNamespace(fd, same ? { ...maps, lowerIdsIn: self ? "parent" : "reader", readFrom } : undefined);
    } catch (e) {
      native().close(fd);
      throw e;
    }
  }

  /** A user namespace by nsfs path, e.g. /proc/PID/ns/user or a bind mount of one. */
  static fromPath(path: string): UserNamespace {
    return new UserNamespace(native().openNs(path));
  }

  /** This process's own user namespace. */
  static current(): UserNamespace {
    return UserNamespace.fromPath("/proc/self/ns/user");
  }

  /**
   * Creates a user namespace with the given maps and holds it. A short-lived
   * child creates it (Node cannot unshare CLONE_NEWUSER: it has threads),
   * waits while the maps are written, and exits once the fd is open.
   */
  static async create(options: CreateUserNamespaceOptions = {}): Promise<UserNamespace> {
    return UserNamespace.#create(options, true) as Promise<UserNamespace>;
  }

  /** As {@link create}, without the newuidmap path (which runs helper programs asynchronously). */
  static createSync(options: CreateUserNamespaceOptions = {}): UserNamespace {
    return UserNamespace.#create(options, false) as UserNamespace;
  }

  static #create(options: CreateUserNamespaceOptions, allowAsync: boolean): UserNamespace | Promise<UserNamespace> {
    for (const k of Object.keys(options)) {
      if (!["uidMap", "gidMap", "setgroups", "parent", "mapWriter", "cache"].includes(k))
        throw new UsernsError(`unknown UserNamespace.create option "${k}"`, { code: "ERR_USERNS_USAGE" });
    }
    const parent = options.parent;
    const parentMaps = parent?.maps();
    const creator = parentMaps ? creatorIds(parentMaps.uid, parentMaps.gid) : undefined;
    const prepared = prepareMapRequest({
      uidMap: options.uidMap,
      gidMap: options.gidMap,
      setgroups: options.setgroups,
      mapWriter: options.mapWriter,
      parent: parentMaps && creator ? { uid: parentMaps.uid, gid: parentMaps.gid, creator } : undefined,
    });
    const { uid, gid, method } = prepared;
    const req = { uid, gid, setgroups: options.setgroups };
    const parentKey = parent ? `${parent.identity.dev}:${parent.identity.ino}` : "self";
    const key = `${parentKey}|${options.setgroups ?? ""}|${uid?.text ?? ""}|${gid?.text ?? ""}`;
    const useCache = options.cache !== false;
    const hit = useCache ? cache.get(key) : undefined;
    if (hit) {
      // Refresh its place in the LRU order.
      cache.delete(key);
      cache.set(key, hit);
      const ns = new UserNamespace(native().dupCloexec(hit.fd), hit.maps, hit.mapping);
      return allowAsync ? Promise.resolve(ns) : ns;
    }
    if (method === "newuidmap" && !allowAsync)
      throw new UsernsError("creating a user namespace synchronously", {
        code: "ERR_USERNS_USAGE",
        reason: "these maps need newuidmap/newgidmap; use UserNamespace.create()",
      });
    const { held } = startUserNsHolder(parent && creator ? { parent: { fd: parent.fd, creator } } : {});
    const what = `creating a user namespace (holder pid ${held.pid})`;
    const mapping: MappingResult = { method, uidMap: uid?.text, gidMap: gid?.text, setgroups: options.setgroups };
    const finish = (): UserNamespace => {
      const fd = native().openNs(`/proc/${held.pid}/ns/user`);
      try {
        const maps = { ...readMapsOfPid(held.pid, false), readFrom: currentIdentity() };
        resumeChild(held, what);
        const ns = new UserNamespace(fd, maps, mapping);
        if (useCache) {
          cache.set(key, { fd: native().dupCloexec(fd), maps, mapping });
          if (cache.size > CACHE_LIMIT) {
            const [oldKey, old] = cache.entries().next().value as [string, CacheEntry];
            cache.delete(oldKey);
            native().close(old.fd);
          }
        }
        return ns;
      } catch (e) {
        native().close(fd);
        throw e;
      }
    };
    const cleanup = (e: unknown): never => {
      abortChild(held);
      throw e;
    };
    try {
      if (method === "newuidmap") {
        // A holder killed meanwhile never created a usable namespace: say that, not the symptom.
        const died = (): void => {
          const d = held.done ? undefined : diedWhileHeld(held.pid);
          if (d) throw diedError(what, d.signal);
        };
        return writeMaps(held.pid, method, req)
          .then(() => {
            died();
            return finish();
          })
          .catch((e) => {
            died();
            return cleanup(e);
          })
          .finally(() => abortChild(held));
      }
      // With a parent the holder announced the new namespace: it exists once this returns.
      if (parent) resumeChild(held, what, false);
      writeMaps(held.pid, method, req, parent?.fd);
      const ns = finish();
      return allowAsync ? Promise.resolve(ns) : ns;
    } catch (err) {
      // A map write may fail because the holder was killed meanwhile (a dead task's /proc files belong to root, so
      // an unprivileged writer gets EACCES): say that, not the symptom.
      const d = held.done ? undefined : diedWhileHeld(held.pid);
      const e = d ? diedError(what, d.signal) : err;
      abortChild(held);
      if (allowAsync) return Promise.reject(e);
      throw e;
    }
  }

  /** Closes every cached namespace fd (handles already returned stay valid). */
  static clearCache(): void {
    for (const e of cache.values()) native().close(e.fd);
    cache.clear();
  }

  #check(): void {
    if (this.#closed) throw new UsernsError("using a closed UserNamespace", { code: "EBADF" });
  }

  /** NS_GET_OWNER_UID: the creator's euid, as seen from this process's namespace (65534 if unmapped there). */
  get ownerUid(): number {
    this.#check();
    return native().nsGetOwnerUid(this.fd);
  }

  /** The maps as the kernel reports them, read from this process's namespace (cached after the first read). */
  maps(): ReportedMaps {
    this.#check();
    if (this.#maps === undefined) this.#maps = readMapsOfFd(this.fd);
    return this.#maps;
  }

  /** The parent namespace (NS_GET_PARENT), or undefined for the initial namespace and namespaces above ours (EPERM). */
  parent(): UserNamespace | undefined {
    this.#check();
    try {
      return new UserNamespace(native().nsGetParent(this.fd));
    } catch (e) {
      if ((e as UsernsError).code === "EPERM") return undefined;
      throw e;
    }
  }

  /** True for the initial user namespace (fixed inode 0xEFFFFFFD). */
  get isInitial(): boolean {
    return this.identity.ino === 4026531837n;
  }

  /** Same namespace as another handle. */
  equals(other: UserNamespace): boolean {
    return sameNs(this.identity, other.identity);
  }

  /**
   * Always throws ERR_USERNS_MULTITHREADED: setns(2) into a user namespace
   * (and unshare(CLONE_NEWUSER)) fail with EINVAL in a process with more than
   * one thread, and Node always has libuv and V8 threads. This library never
   * changes the Node process's namespaces; run a program inside instead with
   * `spawn(file, args, { join: ns })`.
   */
  enter(): never {
    throw new UsernsError("entering a user namespace from this Node.js process", {
      code: "ERR_USERNS_MULTITHREADED",
      syscall: "setns",
      reason:
        "the kernel refuses setns into a user namespace with EINVAL when the caller has other threads (userns_install), and Node always has them; use spawn(file, args, { join: ns })",
    });
  }

  /** Releases the fd. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    registry.unregister(this);
    native().close(this.fd);
  }

  /** For `using ns = ...` (explicit resource management). */
  [Symbol.dispose](): void {
    this.close();
  }
}

export type { HeldChild };
