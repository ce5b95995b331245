/**
 * Finding namespaces on kernels without listns(2): the text formats of the
 * /proc walk. The walk itself runs in the addon (native/procscan.cc: every
 * process's /proc/PID/ns/user and namespace fds, its maps); mount
 * namespaces' mountinfo is read here, once per mount namespace, for nsfs
 * bind mounts.
 */
import { readFileSync } from "node:fs";
import { parseMountinfo } from "../model/mountinfo.js";

/** Namespace types nsfs files carry, as readlink shows them (`net:[4026531840]`). */
const NS_TYPES = new Set(["user", "mnt", "pid", "uts", "ipc", "net", "cgroup", "time"]);

/** One place where a namespace file was seen. */
export type NsPlace =
  /** The namespace of a process. */
  | { readonly kind: "process"; readonly pid: number }
  /** An open fd of a process (`/proc/PID/fd/FD`). */
  | { readonly kind: "fd"; readonly pid: number; readonly fd: number }
  /** An nsfs bind mount, at `mountPoint` in the mount namespace `mntNs` (seen through process `pid`). */
  | { readonly kind: "mount"; readonly pid: number; readonly mntNs: string; readonly mountPoint: string };

/** `user:[4026531837]` → { type, ino }; undefined for any other link (pipes, sockets, files). */
export function parseNsLink(link: string): { type: string; ino: bigint } | undefined {
  const open = link.indexOf(":[");
  if (open < 1 || link.charCodeAt(link.length - 1) !== 93 /* ] */) return undefined;
  const type = link.slice(0, open);
  if (!NS_TYPES.has(type)) return undefined;
  const digits = link.slice(open + 2, -1);
  if (!/^[0-9]+$/.test(digits)) return undefined;
  return { type, ino: BigInt(digits) };
}

/** nsfs mounts in mountinfo text: the root field is the namespace name, e.g. `user:[4026532176]`. */
export function nsfsMounts(mountinfo: string): { type: string; ino: bigint; mountPoint: string }[] {
  const out: { type: string; ino: bigint; mountPoint: string }[] = [];
  for (const m of parseMountinfo(mountinfo)) {
    if (m.fsType !== "nsfs") continue;
    const name = parseNsLink(m.root);
    if (name !== undefined) out.push({ ...name, mountPoint: m.target });
  }
  return out;
}

/** nsfs bind mounts of one mount namespace, read through a process in it; none when it is gone or not ours. */
export function mountsOf(pid: number): { type: string; ino: bigint; mountPoint: string }[] {
  try {
    return nsfsMounts(readFileSync(`/proc/${pid}/mountinfo`, "utf8"));
  } catch {
    return [];
  }
}

/** The path that opens a namespace file at a place. */
export function placePath(type: string, place: NsPlace): string {
  switch (place.kind) {
    case "process":
      return `/proc/${place.pid}/ns/${type}`;
    case "fd":
      return `/proc/${place.pid}/fd/${place.fd}`;
    case "mount":
      // The mount point is relative to that process's root, in its mount namespace.
      return `/proc/${place.pid}/root${place.mountPoint}`;
  }
}
