/**
 * SIMULATION: never merged into Linux. "Isolated user namespaces" (Stéphane
 * Graber and Aleksandr Mikhalitsyn; LPC 2023, FOSDEM 2024; kernel-semantics
 * §10.4): prototype only. Every returned object carries `simulation: true`.
 *
 * Model: kuids widen to 64 bits (bigint here). An isolated namespace owns a
 * private 2^32 id space keyed by a nonzero `key` in the upper 32 bits, not
 * mapped onto any host id. Ordinary namespaces keep 32-bit maps whose lower
 * ids are ids of their parent (which may be isolated). from_kuid of an
 * isolated kuid into an ANCESTOR of its namespace yields the isolated
 * namespace's owner (as seen there) instead of overflowuid, per the authors'
 * slides; into an unrelated namespace it is unmapped (65534 when munged).
 */
import type { IdMap } from "../idmap.js";
import { mapIdDown, mapIdUp } from "../lookup.js";
import { INVALID_ID, OVERFLOW_ID } from "../u32.js";

/** SIMULATION: a user namespace that may be isolated. */
export interface SimIsoNs {
  readonly simulation: true;
  readonly name: string;
  readonly parent: SimIsoNs | null;
  /** Set for isolated namespaces: the upper 32 bits of their global ids (nonzero). */
  readonly key?: bigint;
  /** For ordinary namespaces: uid map whose lower ids are parent ids. Unused when isolated. */
  readonly uidMap?: IdMap;
  /** The creator's global uid (owner). */
  readonly owner: bigint;
}

/** SIMULATION: the initial namespace (ids are 0..2^32-2, key 0). */
export const SIM_ISO_INIT: SimIsoNs = Object.freeze({
  simulation: true as const,
  name: "init",
  parent: null,
  owner: 0n,
});

/** SIMULATION: an invalid 64-bit kuid. */
export const SIM_INVALID_KUID = -1n;

const LOW = 0xffff_ffffn;

/** SIMULATION: an ordinary child namespace with a uid map (lower ids in the parent). */
export function simIsoChild(parent: SimIsoNs, name: string, uidMap: IdMap, owner: bigint): SimIsoNs {
  return Object.freeze({ simulation: true as const, name, parent, uidMap, owner });
}

/** SIMULATION: an isolated child namespace with its own 2^32 range, keyed by `key`. */
export function simIsoIsolated(parent: SimIsoNs, name: string, key: bigint, owner: bigint): SimIsoNs {
  if (key <= 0n || key > LOW) throw new RangeError("an isolated namespace needs a nonzero 32-bit key");
  return Object.freeze({ simulation: true as const, name, parent, key, owner });
}

/** SIMULATION: make_kuid — a namespace uid → 64-bit global uid, or SIM_INVALID_KUID. */
export function simMakeKuid(ns: SimIsoNs, uid: number): bigint {
  if (uid === INVALID_ID) return SIM_INVALID_KUID;
  if (!ns.parent) return BigInt(uid);
  if (ns.key !== undefined) return (ns.key << 32n) | BigInt(uid);
  const lower = mapIdDown(ns.uidMap!, uid);
  return lower === INVALID_ID ? SIM_INVALID_KUID : simMakeKuid(ns.parent, lower);
}

/** SIMULATION: plain from_kuid — a global uid → the namespace's uid, or INVALID_ID when it has no mapping there. */
export function simFromKuid(ns: SimIsoNs, kuid: bigint): number {
  if (kuid < 0n) return INVALID_ID;
  if (!ns.parent) return kuid <= LOW - 1n ? Number(kuid) : INVALID_ID;
  if (ns.key !== undefined) return kuid >> 32n === ns.key && (kuid & LOW) !== LOW ? Number(kuid & LOW) : INVALID_ID;
  const inParent = simFromKuid(ns.parent, kuid);
  return inParent === INVALID_ID ? INVALID_ID : mapIdUp(ns.uidMap!, inParent);
}

function isAncestor(a: SimIsoNs, b: SimIsoNs): boolean {
  for (let p = b.parent; p; p = p.parent) if (p === a) return true;
  return false;
}

/** The isolated namespace that owns a global uid's key, searched from `leaf` upwards. */
function isolatedOwnerOf(kuid: bigint, namespaces: readonly SimIsoNs[]): SimIsoNs | undefined {
  const key = kuid >> 32n;
  return key === 0n ? undefined : namespaces.find((n) => n.key === key);
}

/**
 * SIMULATION: from_kuid_munged with the isolated-namespace rule. `known`
 * lists the isolated namespaces that exist (to find whose key a kuid has).
 * Returns the id and how it was obtained: `"map"` (mapped), `"owner"` (an
 * isolated kuid seen from an ancestor: the isolated namespace's owner as seen
 * in `ns`), or `"overflow"` (65534).
 */
export function simFromKuidMunged(
  ns: SimIsoNs,
  kuid: bigint,
  known: readonly SimIsoNs[],
): { simulation: true; id: number; via: "map" | "owner" | "overflow" } {
  const id = simFromKuid(ns, kuid);
  if (id !== INVALID_ID) return { simulation: true, id, via: "map" };
  const iso = isolatedOwnerOf(kuid, known);
  if (iso && isAncestor(ns, iso)) {
    const owner = simFromKuid(ns, iso.owner);
    if (owner !== INVALID_ID) return { simulation: true, id: owner, via: "owner" };
  }
  return { simulation: true, id: OVERFLOW_ID, via: "overflow" };
}
