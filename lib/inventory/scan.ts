/**
 * Finding user namespaces by walking /proc (kernels without listns(2)):
 * every process's /proc/PID/ns/user, every open fd of a process that is a
 * namespace file, and every nsfs bind mount of every mount namespace
 * (/proc/PID/mountinfo, read once per mount namespace). Only names and
 * places are collected here; the caller opens each namespace once.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

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

/** A namespace file seen during the scan, by its `type:[inode]` name. */
export interface NsSighting {
  readonly type: string;
  readonly ino: bigint;
  readonly places: NsPlace[];
}

/** What one walk of /proc found. */
export interface ProcScan {
  /** Every user namespace (by inode) that processes are in. */
  readonly user: Map<bigint, NsSighting>;
  /** Namespaces of other types held by fds or bind mounts: their owning user namespace keeps them alive. */
  readonly other: Map<string, NsSighting>;
  /** Processes seen, and processes whose namespace this caller may not read (EACCES: another user's). */
  readonly processes: number;
  readonly hidden: number;
  /** Mount namespaces whose mountinfo was read. */
  readonly mountNamespaces: number;
}

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

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
export function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** nsfs mounts in mountinfo text: the root field is the namespace name, e.g. `user:[4026532176]`. */
export function nsfsMounts(mountinfo: string): { type: string; ino: bigint; mountPoint: string }[] {
  const out: { type: string; ino: bigint; mountPoint: string }[] = [];
  let at = 0;
  // Only lines naming nsfs are split; most mount tables have hundreds of other lines.
  for (;;) {
    const hit = mountinfo.indexOf(" - nsfs ", at);
    if (hit < 0) break;
    const start = mountinfo.lastIndexOf("\n", hit) + 1;
    const end = mountinfo.indexOf("\n", hit);
    at = end < 0 ? mountinfo.length : end;
    const f = mountinfo.slice(start, hit).split(" ");
    const name = f[3] === undefined ? undefined : parseNsLink(f[3]);
    if (name !== undefined && f[4] !== undefined) out.push({ ...name, mountPoint: unescapeMountinfo(f[4]) });
  }
  return out;
}

function readlinkOrNull(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

/**
 * Walks /proc once. Threads are not visited one by one: the kernel keeps all
 * threads of a process in one user namespace (clone refuses CLONE_NEWUSER
 * with CLONE_THREAD, and setns/unshare of a user namespace fail with EINVAL
 * in a multithreaded process), so /proc/PID/ns/user stands for every task;
 * only when it cannot be read (a thread-group leader that exited first) are
 * the tasks tried.
 */
export function scanProc(options: { fds?: boolean; mounts?: boolean } = {}): ProcScan {
  const wantFds = options.fds !== false;
  const wantMounts = options.mounts !== false;
  const user = new Map<bigint, NsSighting>();
  const other = new Map<string, NsSighting>();
  const mntSeen = new Map<string, number>();
  let processes = 0;
  let hidden = 0;
  const see = (type: string, ino: bigint, place: NsPlace): void => {
    if (type === "user") {
      let s = user.get(ino);
      if (s === undefined) {
        s = { type, ino, places: [] };
        user.set(ino, s);
      }
      s.places.push(place);
    } else {
      const key = `${type}:${ino}`;
      let s = other.get(key);
      if (s === undefined) {
        s = { type, ino, places: [] };
        other.set(key, s);
      }
      s.places.push(place);
    }
  };
  for (const name of readdirSync("/proc")) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const pid = Number(name);
    processes++;
    let link: string | null;
    try {
      link = readlinkSync(`/proc/${pid}/ns/user`);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EACCES" || code === "EPERM") {
        hidden++;
        continue;
      }
      link = null;
      if (code !== "ENOENT") continue;
      // Exited leader, live threads: ask a task.
      try {
        for (const tid of readdirSync(`/proc/${pid}/task`)) {
          link = readlinkOrNull(`/proc/${pid}/task/${tid}/ns/user`);
          if (link !== null) break;
        }
      } catch {
        // the process is gone
      }
    }
    if (link === null) continue;
    const ns = parseNsLink(link);
    if (ns === undefined) continue;
    see("user", ns.ino, { kind: "process", pid });
    if (wantFds) {
      let fds: string[];
      try {
        fds = readdirSync(`/proc/${pid}/fd`);
      } catch {
        fds = [];
      }
      for (const fd of fds) {
        const l = readlinkOrNull(`/proc/${pid}/fd/${fd}`);
        // Fast reject before parsing: namespace links end in "]" and are short.
        if (l === null || l.length > 24 || l.charCodeAt(l.length - 1) !== 93) continue;
        const n = parseNsLink(l);
        if (n !== undefined) see(n.type, n.ino, { kind: "fd", pid, fd: Number(fd) });
      }
    }
    if (wantMounts) {
      const mnt = readlinkOrNull(`/proc/${pid}/ns/mnt`);
      if (mnt !== null && !mntSeen.has(mnt)) {
        mntSeen.set(mnt, pid);
        let text = "";
        try {
          text = readFileSync(`/proc/${pid}/mountinfo`, "utf8");
        } catch {
          // gone, or not ours to read
        }
        for (const m of nsfsMounts(text))
          see(m.type, m.ino, { kind: "mount", pid, mntNs: mnt, mountPoint: m.mountPoint });
      }
    }
  }
  return { user, other, processes, hidden, mountNamespaces: mntSeen.size };
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
