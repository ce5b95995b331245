/**
 * The host facts the sandbox model needs, gathered here (impure) and handed to the pure
 * predictor (lib/model/sandbox.ts): what each bind source is on the host (its mount, that
 * mount's flags and filesystem type, the submounts a recursive bind brings along, the owner
 * and mode stat shows), the device nodes a minimal /dev borrows, the maps of a held
 * namespace an idmapped bind uses.
 *
 * Owners are what stat() returns in this process's user namespace. The model reads them as
 * kernel ids, which they are when this process is in the initial user namespace (root, or an
 * unprivileged user on the host, as the library's tests run); {@link collectSandboxFacts}
 * refuses to guess otherwise.
 *
 * @packageDocumentation
 */
import { lstatSync, readFileSync, readlinkSync, realpathSync, statSync } from "node:fs";
import { UsernsError } from "../errors.js";
import { native } from "../kernel/native.js";
import { nsInfo } from "../kernel/nsfs.js";
import type { IdMap } from "../model/idmap.js";
import type { UidGidMaps } from "../model/idmapped.js";
import { mapIdDown } from "../model/lookup.js";
import { parseMountinfo } from "../model/mountinfo.js";
import { parseMapText } from "../model/parse.js";
import {
  DEV_NODES,
  type HostMountFacts,
  type ModelFsOperation,
  type Owner,
  type PathFacts,
  type SandboxContext,
} from "../model/sandbox.js";
import { INVALID_ID } from "../model/u32.js";
import { AT_EMPTY_PATH } from "../mounts/constants.js";
import { readMapsOfFd } from "../namespaces/user-namespace.js";
import type { FsOperation, SandboxMapInput } from "./types.js";

/** What the collector is told about the sandbox itself (the rest it reads from the host). */
export interface SandboxFactsOptions {
  /**
   * The sandbox's user namespace maps as installed (lower ids are kernel ids: what /proc/PID/uid_map
   * shows to a reader in the initial namespace), or "init" without a user namespace of its own.
   */
  readonly userns: UidGidMaps | "init";
  /** Kernel ids of the child while it runs the plan; default {@link planCreator}'s rule. */
  readonly creator?: Owner;
  /**
   * The new procfs entries the `proc` operation covers with read-only binds of themselves. Default: the
   * library's rule (bwrap's list, each where this kernel's procfs has it: sys, sysrq-trigger, irq, bus).
   */
  readonly procCovers?: readonly { readonly name: string; readonly mode: number }[];
  /** Whether the sandbox has a new ipc namespace (its mqueue's owner is then this process); default true. */
  readonly newIpcNamespace?: boolean;
  /** The mount table to read (default /proc/self/mountinfo: the table the child's mount namespace copies). */
  readonly mountinfo?: string;
}

function toMap(m: SandboxMapInput, what: string): IdMap {
  if (typeof m !== "string") return m;
  const r = parseMapText(m);
  if (!r.ok) throw new UsernsError(`${what}: ${r.reason}`, { code: "EINVAL" });
  return r.map;
}

function inside(p: string, dir: string): boolean {
  return dir === "/" || p === dir || p.startsWith(`${dir}/`);
}

/** The facts of a host path: the mount it is on and, with `recursive`, every mount below it, in host order. */
export function hostPathFacts(path: string, mountinfo: string, recursive: boolean): PathFacts {
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return { exists: false, mounts: [] };
  }
  const table = parseMountinfo(mountinfo);
  // The mount the path is on: the last (topmost) of those with the longest mount point above it.
  let on: (typeof table)[number] | undefined;
  for (const m of table)
    if (inside(real, m.target) && (on === undefined || m.target.length >= on.target.length)) on = m;
  const st = statSync(real);
  const mounts: HostMountFacts[] = [
    {
      rel: "",
      fsType: on?.fsType ?? "unknown",
      readOnly: on?.readOnly ?? false,
      idmapped: on?.idmapped ?? false,
      owner: { uid: st.uid, gid: st.gid },
      mode: st.mode & 0o7777,
    },
  ];
  if (recursive)
    for (const m of table) {
      if (m.target === real || !inside(m.target, real)) continue;
      let s: ReturnType<typeof statSync>;
      try {
        s = statSync(m.target);
      } catch {
        continue;
      }
      mounts.push({
        rel: real === "/" ? m.target.slice(1) : m.target.slice(real.length + 1),
        fsType: m.fsType,
        readOnly: m.readOnly,
        idmapped: m.idmapped,
        owner: { uid: s.uid, gid: s.gid },
        mode: s.mode & 0o7777,
      });
    }
  return { exists: true, mounts };
}

function sourcePath(source: string | { readonly fd: number }): string {
  return typeof source === "string" ? source : readlinkSync(`/proc/self/fd/${source.fd}`);
}

/**
 * Gathers what the model needs to predict `plan` on this host. Call it just before spawning:
 * the child copies the mount table as it is then.
 */
export function collectSandboxFacts(plan: readonly FsOperation[], options: SandboxFactsOptions): SandboxContext {
  const self = nsInfo("self", "user");
  const init = readFileSync("/proc/self/uid_map", "utf8").trim().split(/\s+/).join(" ") === "0 0 4294967295";
  if (!init)
    throw new UsernsError(
      `collecting sandbox facts: this process is not in the initial user namespace (user:[${self.ino}]); stat() would not show kernel ids`,
      { code: "EINVAL" },
    );
  const mountinfo = options.mountinfo ?? readFileSync("/proc/self/mountinfo", "utf8");
  const ops = plan.map((o): PathFacts | undefined => {
    switch (o.op) {
      case "bind":
        return hostPathFacts(sourcePath(o.source), mountinfo, true);
      case "idmappedBind": {
        const f = hostPathFacts(o.source, mountinfo, o.recursive === true);
        let idmap: UidGidMaps;
        if (o.userns !== undefined) {
          const r = readMapsOfFd(o.userns.fd);
          idmap = { uid: r.uid, gid: r.gid };
        } else {
          if (o.uidMap === undefined || o.gidMap === undefined)
            throw new UsernsError(`idmapped bind of ${o.source}: needs uidMap and gidMap, or userns`, {
              code: "EINVAL",
            });
          idmap = { uid: toMap(o.uidMap, "uidMap"), gid: toMap(o.gidMap, "gidMap") };
        }
        return { ...f, idmap };
      }
      case "attach": {
        // The detached mount's root as this process sees it (through its idmap, if any).
        const st = statSync(`/proc/self/fd/${o.mount.fd}`);
        const m = o.mount as { readonly fd: number; readonly source?: string; readonly maps?: unknown };
        const host = m.source !== undefined ? hostPathFacts(m.source, mountinfo, false).mounts[0] : undefined;
        let mountId: number | undefined;
        try {
          mountId = Number(native().mountIdOf(o.mount.fd, "", AT_EMPTY_PATH).mountId);
        } catch {
          // Without statx's mount id, the plan's order stands in for the order of creation.
        }
        return {
          ...(mountId !== undefined ? { mountId } : {}),
          exists: true,
          mounts: [
            {
              rel: "",
              fsType: host?.fsType ?? "unknown",
              readOnly: false,
              idmapped: m.maps !== undefined || host?.idmapped === true,
              owner: { uid: st.uid, gid: st.gid },
              mode: st.mode & 0o7777,
            },
          ],
        };
      }
      case "overlay": {
        const top = o.upper !== undefined && o.upper !== "tmpfs" ? o.upper : o.lower[o.lower.length - 1];
        return top === undefined ? undefined : hostPathFacts(top, mountinfo, false);
      }
      default:
        return undefined;
    }
  });
  const devNodes: Record<string, PathFacts> = {};
  if (plan.some((o) => o.op === "dev"))
    for (const n of DEV_NODES) devNodes[n] = hostPathFacts(`/dev/${n}`, mountinfo, false);
  return {
    userns: options.userns,
    creator: options.creator ?? planCreator(options.userns),
    ipcCreator:
      options.newIpcNamespace === false
        ? { uid: 0, gid: 0 }
        : { uid: process.geteuid?.() ?? 0, gid: process.getegid?.() ?? 0 },
    ops,
    devNodes,
    procCovers: options.procCovers ?? procCovers(),
  };
}

/**
 * The kernel ids the child runs the plan with: spawn makes it root of its new user namespace first
 * when that namespace maps uid 0 and gid 0 (else the creator's ids, unmapped there, could not own
 * a file: EOVERFLOW); otherwise it keeps this process's ids.
 */
export function planCreator(userns: UidGidMaps | "init"): Owner {
  const own = { uid: process.geteuid?.() ?? 0, gid: process.getegid?.() ?? 0 };
  if (userns === "init") return own;
  const uid = mapIdDown(userns.uid, 0);
  const gid = mapIdDown(userns.gid, 0);
  return uid === INVALID_ID || gid === INVALID_ID ? own : { uid, gid };
}

/** The entries of /proc that a new procfs covers read-only: those of the library's list this kernel has. */
export function procCovers(): { name: string; mode: number }[] {
  const out: { name: string; mode: number }[] = [];
  for (const name of ["sys", "sysrq-trigger", "irq", "bus"]) {
    try {
      out.push({ name, mode: lstatSync(`/proc/${name}`).mode & 0o7777 });
    } catch {
      // Not on this kernel (or not configured): not covered.
    }
  }
  return out;
}

/** The plan as the model reads it (the public operations are a structural superset). */
export function modelPlan(plan: readonly FsOperation[]): readonly ModelFsOperation[] {
  return plan;
}
