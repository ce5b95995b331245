/**
 * The host-wide allocator: picks host id ranges no claimant uses and records
 * each as a lease file, under an flock(2)-held lock file in the lease
 * directory, so concurrent allocators (threads, processes, users sharing the
 * directory) never hand out the same ids. A lease can be tied to a user
 * namespace by NS_GET_ID (never reused, unlike pids and inodes); it is
 * reclaimed once no namespace with that id exists any more.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { isUsernsErrorCode, UsernsError, type UsernsErrorCode } from "../errors.js";
import { native } from "../kernel/native.js";
import { INVALID_ID } from "../model/u32.js";
import { findFreeRange } from "../subid/ranges.js";
import { readSubidFile } from "../subid/read.js";
import { collectClaims, type IdClaim } from "./claims.js";
import { listUserNamespaces, type UserNamespaceInventory } from "./inventory.js";
import { KUBELET_DEFAULT_SCHEME, type KubeletScheme, kubeletNextSlot, readKubeletState } from "./kubelet.js";
import type { Lease } from "./lease.js";

export type { Lease } from "./lease.js";

/** Options of {@link allocateRange}. */
export interface AllocateRangeOptions {
  /** Ids in the range (default 65,536). */
  size?: number;
  /** The start is a multiple of this (default 65,536, so in-container ids are the low 16 bits). */
  align?: number;
  /** "together" (default): the same start for uids and gids; "apart": each picked on its own. */
  ids?: "together" | "apart";
  /** Free text stored with the lease. */
  purpose?: string;
  /** Lease directory (default {@link defaultLeaseDir}). */
  dir?: string;
  /** Tie the lease to this user namespace (an object with an nsfs `fd`, or an nsfs path such as /proc/PID/ns/user). */
  tie?: { readonly fd: number } | string;
  /** Lowest and highest host id the range may use (default 65536 and 2147483647: below 2^31, as systemd advises). */
  min?: number;
  max?: number;
  /** Stay out of systemd's documented ranges (default true). */
  systemd?: boolean;
  /**
   * Follow the kubelet's slot scheme: slots of `scheme.idsPerPod` ids, uid map = gid map, the slot the kubelet
   * would pick scanning from slot `start` (default 0) over its recorded pods (and this directory's kubelet-mode
   * leases). Refused when that slot is claimed by anyone else.
   */
  kubelet?: boolean | { rootDir?: string; scheme?: KubeletScheme; start?: number };
  /** Claim sources, for tests and other roots: subuid/subgid paths, kubelet root dir, a ready inventory. */
  subuid?: string;
  subgid?: string;
  kubeletRootDir?: string;
  inventory?: UserNamespaceInventory;
}

/** A lease and what the allocation reclaimed on the way. */
export interface Allocation {
  readonly lease: Lease;
  readonly dir: string;
  /** Leases whose namespace was gone, removed before picking. */
  readonly reclaimed: readonly Lease[];
}

/** The default lease directory: /var/lib/userns/leases for root, else $XDG_STATE_HOME/userns/leases (~/.local/state/...). */
export function defaultLeaseDir(): string {
  if (process.geteuid?.() === 0) return "/var/lib/userns/leases";
  const base = process.env.XDG_STATE_HOME || join(homedir(), ".local", "state");
  return join(base, "userns", "leases");
}

const LEASE_RE = /^[0-9a-f]{16}\.json$/;

function toJson(l: Lease): string {
  return `${JSON.stringify(l, (_k, v) => (typeof v === "bigint" ? String(v) : v), 2)}\n`;
}

function fromJson(text: string): Lease | undefined {
  try {
    const o = JSON.parse(text) as Lease & { namespace?: { ino: string; id: string | null } };
    if (typeof o.id !== "string" || typeof o.uid?.start !== "number" || typeof o.gid?.start !== "number")
      return undefined;
    const ns = o.namespace as unknown as { ino: string; id?: string | null } | undefined;
    return {
      ...o,
      namespace: ns ? { ino: BigInt(ns.ino), id: ns.id == null ? undefined : BigInt(ns.id) } : undefined,
    };
  } catch {
    return undefined;
  }
}

/** Every lease in a directory (unlocked read: a snapshot). */
export function readLeases(dir: string = defaultLeaseDir()): Lease[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
  const out: Lease[] = [];
  for (const n of names.sort()) {
    if (!LEASE_RE.test(n)) continue;
    let text: string;
    try {
      text = readFileSync(join(dir, n), "utf8");
    } catch {
      continue; // released meanwhile
    }
    const l = fromJson(text);
    if (l !== undefined) out.push(l);
  }
  return out;
}

/** Runs `fn` holding the directory's lock (flock on `DIR/.lock`); the kernel drops it if this process dies. */
export function withLeaseLock<T>(dir: string, fn: () => T): T {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const fd = native().lockExclusive(join(dir, ".lock"));
  try {
    return fn();
  } finally {
    native().close(fd);
  }
}

function writeLease(dir: string, l: Lease): void {
  // Write then rename: a reader sees the whole lease or none of it.
  const tmp = join(dir, `.${l.id}.tmp`);
  writeFileSync(tmp, toJson(l), { mode: 0o644 });
  renameSync(tmp, join(dir, `${l.id}.json`));
}

/** Whether the namespace a lease is tied to still exists among the inventory's (by NS_GET_ID, else by inode). */
export function leaseNamespaceAlive(l: Lease, inv: UserNamespaceInventory): boolean {
  const ns = l.namespace;
  if (ns === undefined) return true;
  return inv.namespaces.some((e) => (ns.id !== undefined ? e.id === ns.id : e.ino === ns.ino));
}

function tieIdentity(tie: NonNullable<AllocateRangeOptions["tie"]>): { ino: bigint; id: bigint | undefined } {
  const b = native();
  const fd = typeof tie === "string" ? b.openNs(tie) : tie.fd;
  try {
    if (b.nsGetNstype(fd) !== 0x10000000)
      throw new UsernsError("tying a lease to a namespace", { code: "EINVAL", reason: "not a user namespace" });
    let id: bigint | undefined;
    try {
      id = b.nsGetId(fd);
    } catch {
      id = undefined;
    }
    return { ino: b.nsIdentity(fd).ino, id };
  } finally {
    if (typeof tie === "string") b.close(fd);
  }
}

function describe(c: IdClaim): string {
  return `${c.source} ${c.claimant} (${c.kind} ${c.start}-${c.start + c.count - 1})`;
}

function inTheWay(claims: readonly IdClaim[], min: number, max: number): string {
  const seen = new Set<string>();
  const list = claims
    .filter((c) => c.start <= max && c.start + c.count - 1 >= min)
    .sort((a, b) => b.count - a.count)
    .filter((c) => {
      const k = `${c.source}\0${c.claimant}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  const shown = list.slice(0, 6).map(describe);
  return list.length > 6 ? `${shown.join("; ")}; and ${list.length - 6} more` : shown.join("; ");
}

/**
 * Removes leases whose namespace is gone; call with the lock held. The
 * inventory may have been taken before the lock (it is the slow part), so a
 * lease tied after the walk began is kept: its namespace may be newer than
 * the walk.
 */
function reclaim(
  dir: string,
  leases: Lease[],
  inv: UserNamespaceInventory,
  walkBegan: number,
): { live: Lease[]; reclaimed: Lease[] } {
  const live: Lease[] = [];
  const reclaimed: Lease[] = [];
  const euid = process.geteuid?.() ?? 0;
  for (const l of leases) {
    // An unprivileged caller cannot see other users' namespaces: it never reclaims their leases.
    if (
      leaseNamespaceAlive(l, inv) ||
      (euid !== 0 && l.creatorUid !== euid) ||
      (l.tiedAt ?? Number.POSITIVE_INFINITY) >= walkBegan
    )
      live.push(l);
    else {
      rmSync(join(dir, `${l.id}.json`), { force: true });
      reclaimed.push(l);
    }
  }
  return { live, reclaimed };
}

function checkInt(name: string, v: number, lo: number, hi: number): void {
  if (!Number.isInteger(v) || v < lo || v > hi)
    throw new UsernsError(`allocateRange: ${name} must be an integer in ${lo}..${hi}, got ${v}`, {
      code: "ERR_USERNS_USAGE",
    });
}

const ALLOCATE_OPTIONS = new Set([
  "size",
  "align",
  "ids",
  "purpose",
  "dir",
  "tie",
  "min",
  "max",
  "systemd",
  "kubelet",
  "subuid",
  "subgid",
  "kubeletRootDir",
  "inventory",
]);

/**
 * Picks a host range no claimant uses (subuid/subgid lines, live namespaces'
 * maps, systemd's documented ranges, the kubelet's pods, other leases) and
 * records a lease for it. Synchronous: it holds the directory's lock for the
 * whole pick, so concurrent callers serialize.
 *
 * @example
 * ```ts
 * const { lease } = allocateRange({ size: 65536, purpose: "build sandbox" });
 * const ns = await UserNamespace.create({ uidMap: `0 ${lease.uid.start} 65536`, gidMap: `0 ${lease.gid.start} 65536` });
 * tieLease(lease.id, ns); // released once the namespace is gone
 * ```
 */
export function allocateRange(options: AllocateRangeOptions = {}): Allocation {
  for (const k of Object.keys(options)) {
    if (!ALLOCATE_OPTIONS.has(k))
      throw new UsernsError(`unknown allocateRange option "${k}"`, { code: "ERR_USERNS_USAGE" });
  }
  if (options.ids !== undefined && options.ids !== "together" && options.ids !== "apart")
    throw new UsernsError(`allocateRange: ids must be "together" or "apart"`, { code: "ERR_USERNS_USAGE" });
  const size = options.size ?? 65536;
  const align = options.align ?? 65536;
  const min = options.min ?? 65536;
  const max = options.max ?? 2147483647;
  checkInt("size", size, 1, INVALID_ID);
  checkInt("align", align, 1, 2 ** 31);
  checkInt("min", min, 0, INVALID_ID - 1);
  checkInt("max", max, min, INVALID_ID - 1);
  const dir = options.dir ?? defaultLeaseDir();
  const tie = options.tie === undefined ? undefined : tieIdentity(options.tie);
  // The walk of /proc happens before the lock: it is the slow part, and the lock only orders this directory's
  // leases (namespaces appear and go without asking it either way).
  const walkBegan = Date.now();
  const inv = options.inventory ?? listUserNamespaces({ helperMaps: true });
  return withLeaseLock(dir, () => {
    const { live, reclaimed } = reclaim(dir, readLeases(dir), inv, walkBegan);
    const claims = collectClaims({
      subuid: options.subuid,
      subgid: options.subgid,
      inventory: inv,
      systemd: options.systemd,
      kubeletRootDir: options.kubeletRootDir,
      leases: live,
    });
    const id = randomBytes(8).toString("hex");
    const base = {
      id,
      purpose: options.purpose ?? "",
      createdAt: new Date().toISOString(),
      creatorUid: process.geteuid?.() ?? -1,
      ...(tie ? { namespace: tie, tiedAt: Date.now() } : {}),
    };
    let lease: Lease;
    if (options.kubelet) {
      lease = { ...base, mode: "kubelet", ...kubeletPick(options, claims, live) };
    } else {
      const pick = (kinds: readonly ("uid" | "gid")[]) => {
        const taken = claims.filter((c) => kinds.includes(c.kind));
        const r = findFreeRange(size, { taken, min, max, align });
        if (r === undefined) {
          throw new UsernsError(`allocating ${size} host ${kinds.join("+")}s aligned to ${align} in ${min}-${max}`, {
            code: "ERR_USERNS_NO_FREE_RANGE",
            reason: `no free range; in the way: ${inTheWay(taken, min, max)}`,
          });
        }
        return r;
      };
      if ((options.ids ?? "together") === "together") {
        const r = pick(["uid", "gid"]);
        lease = { ...base, mode: "range", uid: r, gid: r };
      } else {
        lease = { ...base, mode: "range", uid: pick(["uid"]), gid: pick(["gid"]) };
      }
    }
    writeLease(dir, lease);
    return { lease, dir, reclaimed };
  });
}

function kubeletScheme(options: AllocateRangeOptions): KubeletScheme {
  const k = typeof options.kubelet === "object" ? options.kubelet : {};
  if (k.scheme) return k.scheme;
  // The kubelet takes its range from the `kubelet` user's subordinate ids (getsubids), one line.
  const sub = readSubidFile(options.subuid ?? "/etc/subuid").entries.find((e) => e.owner === "kubelet");
  return sub ? { first: sub.start, length: sub.count, idsPerPod: 65536 } : KUBELET_DEFAULT_SCHEME;
}

function kubeletPick(
  options: AllocateRangeOptions,
  claims: readonly IdClaim[],
  leases: readonly Lease[],
): Pick<Lease, "uid" | "gid"> {
  const k = typeof options.kubelet === "object" ? options.kubelet : {};
  const scheme = kubeletScheme(options);
  const pods = readKubeletState(k.rootDir ?? options.kubeletRootDir);
  const used = [...pods, ...leases.filter((l) => l.mode === "kubelet").map((l) => ({ hostId: l.uid.start }))];
  const slot = kubeletNextSlot(scheme, used, k.start ?? 0);
  if (slot === undefined)
    throw new UsernsError("allocating a kubelet slot", {
      code: "ERR_USERNS_NO_FREE_RANGE",
      reason: `all ${Math.floor(scheme.length / scheme.idsPerPod)} slots of ${scheme.idsPerPod} ids from ${scheme.first} are used`,
    });
  const end = slot.hostId + slot.length - 1;
  const conflicts = claims.filter(
    (c) => c.source !== "kubelet" && c.start <= end && c.start + c.count - 1 >= slot.hostId,
  );
  if (conflicts.length > 0)
    throw new UsernsError(`allocating kubelet slot ${slot.slot} (host ids ${slot.hostId}-${end})`, {
      code: "ERR_USERNS_RANGE_TAKEN",
      reason: `the kubelet would hand out this slot, but it is claimed by: ${inTheWay(conflicts, slot.hostId, end)}`,
    });
  const r = { start: slot.hostId, count: slot.length };
  return { uid: r, gid: r };
}

/** Removes a lease. Unknown ids are an error (ENOENT), so a typo never looks like a release. */
export function releaseLease(id: string, options: { dir?: string } = {}): Lease {
  const dir = options.dir ?? defaultLeaseDir();
  if (!/^[0-9a-f]{16}$/.test(id))
    throw new UsernsError(`releasing lease ${JSON.stringify(id)}`, {
      code: "ERR_USERNS_USAGE",
      reason: "a lease id is 16 hex digits, as alloc printed it",
    });
  return withLeaseLock(dir, () => {
    const path = join(dir, `${id}.json`);
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      throw new UsernsError(`releasing lease ${id}`, {
        code: errnoCodeOf(e, "ENOENT"),
        path,
        reason: `no such lease in ${dir}`,
      });
    }
    rmSync(path);
    return fromJson(text)!;
  });
}

/** Ties an existing lease to a user namespace (released once that namespace is gone). */
export function tieLease(id: string, ns: { readonly fd: number } | string, options: { dir?: string } = {}): Lease {
  const dir = options.dir ?? defaultLeaseDir();
  const identity = tieIdentity(ns);
  return withLeaseLock(dir, () => {
    const l = readLeases(dir).find((x) => x.id === id);
    if (l === undefined) throw new UsernsError(`tying lease ${id}`, { code: "ENOENT", path: join(dir, `${id}.json`) });
    const tied = { ...l, namespace: identity, tiedAt: Date.now() };
    writeLease(dir, tied);
    return tied;
  });
}

/** Leases in a directory, after removing those whose namespace is gone (under the lock). */
export function reclaimLeases(options: { dir?: string; inventory?: UserNamespaceInventory } = {}): {
  live: Lease[];
  reclaimed: Lease[];
} {
  const dir = options.dir ?? defaultLeaseDir();
  const walkBegan = Date.now();
  const inv = options.inventory ?? listUserNamespaces({ helperMaps: false });
  return withLeaseLock(dir, () => reclaim(dir, readLeases(dir), inv, walkBegan));
}

/** The errno name of a failed fs call, as a UsernsError code (`fallback` when Node gave none we know). */
function errnoCodeOf(e: unknown, fallback: UsernsErrorCode): UsernsErrorCode {
  const code = (e as NodeJS.ErrnoException).code;
  return code !== undefined && isUsernsErrorCode(code) ? code : fallback;
}
