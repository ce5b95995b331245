/**
 * The kubelet's user-namespace allocations (pkg/kubelet/userns in
 * kubernetes): facts of its on-disk state and slot scheme, as data and pure
 * functions.
 *
 * - Each pod with its own user namespace has `<root-dir>/pods/<pod-uid>/userns`
 *   (root-dir default /var/lib/kubelet): JSON `{"uidMappings":[{"hostId",
 *   "containerId","length"}],"gidMappings":[...]}`, exactly one mapping, the
 *   uid mapping equal to the gid mapping, containerId 0.
 * - Ranges are slots of `idsPerPod` ids (default 65,536, a multiple of
 *   65,536) inside the kubelet's range: `first`/`length` from the `kubelet`
 *   user's subordinate ids, else first 65,536 and length 2^32 − 65,536.
 *   Slot index i (0-based) is host ids `(first/idsPerPod + i) * idsPerPod`.
 * - A new pod gets the first free slot scanning forward from a random slot
 *   and wrapping around (the allocator package's random scan strategy).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** One pod's recorded range. */
export interface KubeletPodRange {
  readonly pod: string;
  readonly hostId: number;
  readonly length: number;
  /** The file it was read from. */
  readonly path: string;
}

/** The kubelet's slot parameters. */
export interface KubeletScheme {
  /** First host id of the kubelet's range (a multiple of idsPerPod, ≥ idsPerPod). */
  readonly first: number;
  /** Number of ids in the range (a multiple of idsPerPod). */
  readonly length: number;
  readonly idsPerPod: number;
}

/** The kubelet's defaults when the `kubelet` user has no subordinate ids. */
export const KUBELET_DEFAULT_SCHEME: KubeletScheme = Object.freeze({
  first: 65536,
  length: 2 ** 32 - 65536,
  idsPerPod: 65536,
});

/** Parses one pod's `userns` file the way the kubelet validates it; undefined for what the kubelet would refuse. */
export function parseKubeletUserns(text: string): { hostId: number; length: number } | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const o = v as { uidMappings?: unknown; gidMappings?: unknown };
  if (!Array.isArray(o.uidMappings) || !Array.isArray(o.gidMappings)) return undefined;
  if (o.uidMappings.length !== 1 || o.gidMappings.length !== 1) return undefined;
  const u = o.uidMappings[0] as Record<string, unknown>;
  const g = o.gidMappings[0] as Record<string, unknown>;
  for (const k of ["hostId", "containerId", "length"]) {
    if (typeof u[k] !== "number" || u[k] !== g[k]) return undefined;
  }
  if (u.containerId !== 0) return undefined;
  return { hostId: u.hostId as number, length: u.length as number };
}

/** Every pod range recorded under a kubelet root dir; an absent dir is no state. */
export function readKubeletState(rootDir = "/var/lib/kubelet"): KubeletPodRange[] {
  const podsDir = join(rootDir, "pods");
  let pods: string[];
  try {
    pods = readdirSync(podsDir);
  } catch {
    return [];
  }
  const out: KubeletPodRange[] = [];
  for (const pod of pods.sort()) {
    const path = join(podsDir, pod, "userns");
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch {
      continue;
    }
    const m = parseKubeletUserns(text);
    if (m !== undefined) out.push({ pod, hostId: m.hostId, length: m.length, path });
  }
  return out;
}

/**
 * The slot the kubelet hands the next pod: scanning forward from slot
 * `start` (the kubelet draws it at random; 0 makes the answer the lowest
 * free slot), wrapping around, the first slot no recorded range uses.
 * Undefined when every slot is used.
 */
export function kubeletNextSlot(
  scheme: KubeletScheme,
  used: readonly { hostId: number }[],
  start = 0,
): { hostId: number; length: number; slot: number } | undefined {
  const off = Math.floor(scheme.first / scheme.idsPerPod);
  const slots = Math.floor(scheme.length / scheme.idsPerPod);
  const taken = new Set<number>();
  for (const u of used) {
    const i = Math.floor(u.hostId / scheme.idsPerPod) - off;
    if (i >= 0 && i < slots) taken.add(i);
  }
  if (taken.size >= slots) return undefined;
  for (let k = 0; k < slots; k++) {
    const at = (((start + k) % slots) + slots) % slots;
    if (!taken.has(at)) return { hostId: (at + off) * scheme.idsPerPod, length: scheme.idsPerPod, slot: at };
  }
  return undefined;
}
