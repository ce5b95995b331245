/**
 * Who claims which host ids: /etc/subuid and /etc/subgid, the maps of live
 * user namespaces, systemd's documented ranges, the kubelet's recorded pods
 * and this library's leases, merged into one list, with the overlaps between
 * different claimants.
 */
import { readSubidFile } from "../subid/read.js";
import type { UserNamespaceInventory } from "./inventory.js";
import { readKubeletState } from "./kubelet.js";
import type { Lease } from "./lease.js";
import { SYSTEMD_RANGES } from "./systemd.js";

/** Where a claim comes from. */
export type ClaimSource = "subuid" | "subgid" | "namespace" | "systemd" | "kubelet" | "lease";

/** One claim on a range of host uids or gids. */
export interface IdClaim {
  readonly kind: "uid" | "gid";
  readonly start: number;
  readonly count: number;
  readonly source: ClaimSource;
  /** Who: a subid owner, `user:[INO]`, a systemd purpose, `pod UID`, a lease id. */
  readonly claimant: string;
  /** More words: the file and line, the namespace's inside ids, the lease's purpose. */
  readonly detail: string;
}

/** Two claims from different claimants sharing ids. */
export interface ClaimOverlap {
  readonly kind: "uid" | "gid";
  readonly a: IdClaim;
  readonly b: IdClaim;
  readonly start: number;
  readonly count: number;
}

/** Where claims are read from; every field has a system default. */
export interface ClaimSources {
  subuid?: string;
  subgid?: string;
  /** The inventory to take live maps from (see listUserNamespaces). */
  inventory?: UserNamespaceInventory;
  /** Include systemd's documented ranges (default true). */
  systemd?: boolean;
  /** The kubelet's root dir (default /var/lib/kubelet; absent means no kubelet state). */
  kubeletRootDir?: string;
  /** This library's leases. */
  leases?: readonly Lease[];
}

/** The claims, sorted by kind, start and source. */
export function collectClaims(sources: ClaimSources): IdClaim[] {
  const out: IdClaim[] = [];
  for (const [file, kind] of [
    ["subuid", "uid"],
    ["subgid", "gid"],
  ] as const) {
    const path = sources[file] ?? `/etc/${file}`;
    for (const e of readSubidFile(path).entries) {
      out.push({ kind, start: e.start, count: e.count, source: file, claimant: e.owner, detail: `${path}:${e.line}` });
    }
  }
  for (const ns of sources.inventory?.namespaces ?? []) {
    // The initial namespace maps every id to itself, and the reader's own namespace shows its parent's ids: neither is a claim.
    if (ns.initial || ns.current || ns.lowerIdsIn !== "reader") continue;
    for (const [kind, map] of [
      ["uid", ns.uidMap],
      ["gid", ns.gidMap],
    ] as const) {
      for (const e of map.extents) {
        if (e.lowerFirst === 4294967295) continue; // not mapped in the reader's namespace
        out.push({
          kind,
          start: e.lowerFirst,
          count: e.count,
          source: "namespace",
          claimant: `user:[${ns.ino}]`,
          detail: `inside ${e.first}-${e.first + e.count - 1}${ns.pids.length > 0 ? `, pid ${ns.pids[0]}` : ""}`,
        });
      }
    }
  }
  if (sources.systemd !== false) {
    for (const r of SYSTEMD_RANGES) {
      for (const kind of ["uid", "gid"] as const) {
        out.push({ kind, start: r.start, count: r.count, source: "systemd", claimant: r.purpose, detail: r.definedBy });
      }
    }
  }
  for (const p of readKubeletState(sources.kubeletRootDir)) {
    for (const kind of ["uid", "gid"] as const) {
      out.push({ kind, start: p.hostId, count: p.length, source: "kubelet", claimant: `pod ${p.pod}`, detail: p.path });
    }
  }
  for (const l of sources.leases ?? []) {
    out.push({ kind: "uid", ...l.uid, source: "lease", claimant: l.id, detail: l.purpose });
    out.push({ kind: "gid", ...l.gid, source: "lease", claimant: l.id, detail: l.purpose });
  }
  return out.sort(
    (a, b) =>
      (a.kind === b.kind ? 0 : a.kind === "uid" ? -1 : 1) || a.start - b.start || a.source.localeCompare(b.source),
  );
}

/** Pairs of claims by different claimants that share ids (a sweep over the sorted claims). */
export function claimOverlaps(claims: readonly IdClaim[]): ClaimOverlap[] {
  const out: ClaimOverlap[] = [];
  for (const kind of ["uid", "gid"] as const) {
    const list = claims.filter((c) => c.kind === kind).sort((a, b) => a.start - b.start);
    const active: IdClaim[] = [];
    for (const c of list) {
      for (let i = active.length - 1; i >= 0; i--) {
        if (active[i]!.start + active[i]!.count <= c.start) active.splice(i, 1);
      }
      for (const a of active) {
        if (a.source === c.source && a.claimant === c.claimant) continue;
        const end = Math.min(a.start + a.count, c.start + c.count);
        out.push({ kind, a, b: c, start: c.start, count: end - c.start });
      }
      active.push(c);
    }
  }
  return out;
}
