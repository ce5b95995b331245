/**
 * Writing a new user namespace's uid_map, gid_map and setgroups, three ways:
 * directly (privileged, or the unprivileged self-map), through shadow's
 * setuid helpers newuidmap/newgidmap, or from a helper child that lives in
 * the namespace's parent (nested namespaces). TS picks; the caller can
 * override.
 *
 * Addressing is race-free in every case: the target is our own child, held
 * blocked in its wait step and not yet reaped. A pid cannot be reused while
 * its process (even a dead one, as a zombie) has not been waited for, and
 * only we can wait for our child, so /proc/PID and the pid passed to
 * newuidmap name exactly that child until we release or reap it.
 */
import { spawn as spawnProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { errnoName, errnoNumber, UsernsError } from "../errors.js";
import { native } from "../kernel/native.js";
import { CLONE_NEW } from "../kernel/nsfs.js";
import { IdMap } from "../model/idmap.js";
import { type ParseResult, parseMapText as parseKernelMapText, parseReadbackText } from "../model/parse.js";
import { runHelper } from "./holder.js";
import type { ChildStep } from "./steps.js";

/** A map as model value or as the text written to /proc/PID/uid_map. */
export type MapInput = IdMap | string;

/** How maps are written. `auto` picks direct when privileged, the self-map when the request is one, else newuidmap. */
export type MapWriter = "auto" | "direct" | "newuidmap" | "self";

/** The way maps were actually written. `parent-helper`: by a child that joined the parent user namespace. */
export type MapMethod = "direct" | "newuidmap" | "self" | "parent-helper";

/** What was written, exactly. */
export interface MappingResult {
  /** Which way the maps were written. */
  readonly method: MapMethod;
  /** The exact uid_map text written (one write), or undefined if none was. */
  readonly uidMap: string | undefined;
  /** The exact gid_map text written, or undefined. */
  readonly gidMap: string | undefined;
  /** What was written to setgroups before gid_map, if anything. */
  readonly setgroups: "allow" | "deny" | undefined;
}

/** What a map writer writes: the prepared maps and setgroups, each optional. */
export interface MapWriteRequest {
  readonly uid?: PreparedMap | undefined;
  readonly gid?: PreparedMap | undefined;
  readonly setgroups?: "allow" | "deny" | undefined;
}

/** A validated map request: the map and the exact text to write. */
export interface PreparedMap {
  readonly map: IdMap;
  readonly text: string;
}

/**
 * Parses map text with the model's map_write parser (the /proc readback
 * format is valid input too); an empty text is the unwritten map. Throws
 * EINVAL with the model's reason for bad text.
 *
 * Map text has one parser, the model's byte-exact one (lib/model/parse.ts):
 * text to write and /proc text read back come through this function and
 * {@link readKernelMap}; crossCheck and the CLI's check call it directly; the
 * "kernel" interop format (lib/formats/kernel.ts) calls it too, after its one
 * extra rule: a value wider than 32 bits is refused instead of truncated.
 */
export function parseMapText(text: string, kind: "uid" | "gid"): IdMap {
  if (text === "") return IdMap.EMPTY;
  return mapOrThrow(parseKernelMapText(text), kind);
}

/** A map read back from /proc (no one-write size limit: 340 padded lines are 11,220 bytes). */
export function parseReadbackMap(text: string, kind: "uid" | "gid"): IdMap {
  if (text === "") return IdMap.EMPTY;
  return mapOrThrow(parseReadbackText(text), kind);
}

function mapOrThrow(r: ParseResult, kind: "uid" | "gid"): IdMap {
  if (!r.ok) {
    throw new UsernsError(`parsing ${kind} map${r.line ? ` line ${r.line}` : ""}`, {
      code: r.errno,
      step: `${kind}_map`,
      rule: r.rule,
      reason: r.reason,
    });
  }
  return r.map;
}

/** The one reader of /proc map files: `/proc/PID/KIND_map` as the kernel reports it to this process. */
export function readKernelMap(pid: number | "self", kind: "uid" | "gid"): IdMap {
  return parseReadbackMap(readFileSync(`/proc/${pid}/${kind}_map`, "utf8"), kind);
}

/**
 * What choosing and checking a map writer depends on, read in one call: [1 when this thread holds CAP_SETUID and
 * CAP_SETGID in its own namespace (it can write multi-line maps for its children), else 0; euid; egid]. Asked on
 * every spawn (the process may have changed them); one array for every call, valid until the next.
 */
export function writerCreds(): Uint32Array {
  native().writerCreds(creds);
  return creds;
}

const creds = new Uint32Array(3);

/** Holds CAP_SETUID and CAP_SETGID in its own namespace: can write multi-line maps for its children. */
export function isPrivilegedWriter(): boolean {
  return writerCreds()[0] === 1;
}

/** The map the unprivileged single-line rule allows: one id, whose lower id is the writer's own. */
export function isSelfMap(map: IdMap, ownId: number): boolean {
  return map.size === 1 && map.extents[0]!.count === 1 && map.extents[0]!.lowerFirst === ownId;
}

/** Chooses how to write, or says why no way fits. */
export function chooseMapWriter(
  requested: MapWriter,
  req: { uid?: IdMap; gid?: IdMap; setgroups?: "allow" | "deny" },
  privileged: boolean = isPrivilegedWriter(),
): Exclude<MapMethod, "parent-helper"> {
  if (requested !== "auto") return requested;
  if (privileged) return "direct";
  const euid = process.geteuid?.() ?? -1;
  const egid = process.getegid?.() ?? -1;
  const uidSelf = req.uid === undefined || isSelfMap(req.uid, euid);
  const gidSelf = req.gid === undefined || (isSelfMap(req.gid, egid) && req.setgroups === "deny");
  if (uidSelf && gidSelf) return "self";
  return "newuidmap";
}

/** Writes one of a child's /proc files (setgroups, uid_map, gid_map) in one write(2); a refusal names the step. */
export function writeStep(pid: number, step: "setgroups" | "uid_map" | "gid_map", data: string): void {
  try {
    native().writeOnce(`/proc/${pid}/${step}`, data);
  } catch (e) {
    const ue = e as UsernsError;
    throw mapWriteError(pid, step, ue.errno ?? errnoNumber("EIO") ?? 5, ue.syscall ?? "write", e);
  }
}

function mapWriteError(pid: number, step: string, errno: number, syscall: string, cause?: unknown): UsernsError {
  const path = `/proc/${pid}/${step}`;
  return new UsernsError(`writing ${step} of pid ${pid}`, {
    errno,
    syscall,
    step,
    path,
    reason: errnoName(errno) === "EPERM" ? permReason(step) : undefined,
    cause,
  });
}

function permReason(step: string): string {
  if (step === "setgroups")
    return "setgroups cannot be changed once gid_map is written, nor set to allow under a deny parent";
  return "the writer lacks CAP_SETUID/CAP_SETGID in the parent namespace, or a lower id is not mapped there, or (unprivileged) the map is not the single-line self-map";
}

/**
 * The files a direct write writes, in order, as [name, data, ...]: setgroups before gid_map (an unprivileged
 * gid_map needs "deny" there first), uid_map before gid_map. Undefined when there is nothing to write.
 */
export function directMapFiles(req: MapWriteRequest): string[] | undefined {
  const files: string[] = [];
  if (req.setgroups !== undefined) files.push("setgroups", req.setgroups);
  if (req.uid) files.push("uid_map", req.uid.text);
  if (req.gid) files.push("gid_map", req.gid.text);
  return files.length === 0 ? undefined : files;
}

/** The error of a failed direct write of file `index` of {@link directMapFiles}' list. */
export function directWriteError(
  pid: number,
  files: readonly string[],
  index: number,
  errno: number,
  syscall: "open" | "write",
): UsernsError {
  return mapWriteError(pid, files[2 * index]!, errno, syscall);
}

/**
 * Writes setgroups, uid_map, gid_map from this process (privileged, or the self-map as the namespace's owner), in
 * that order, in one native call; the first failure stops the rest and is reported with its step. A plain spawn
 * does the same inside its clone3 call (startChild's writes).
 */
export function writeMapsDirect(pid: number, req: MapWriteRequest): void {
  const files = directMapFiles(req);
  if (files === undefined) return;
  const r = native().writeProcFiles(pid, files);
  if (r !== null) throw directWriteError(pid, files, r.index, r.errno, r.syscall);
}

/**
 * Runs a helper program with only stderr piped, as execFile would report it (an error with `code` the exit status
 * or the spawn errno). Not execFile: it pipes stdin and stdout too, and when Node's own spawn fails (EMFILE) it
 * leaves those pipes open.
 */
function execHelper(prog: string, args: string[], done: (err: Error | null, stderr: string) => void): void {
  let stderr = "";
  let settled = false;
  const child = spawnProcess(prog, args, { stdio: ["ignore", "ignore", "pipe"], timeout: 30_000 });
  const finish = (err: Error | null): void => {
    if (settled) return;
    settled = true;
    child.stderr?.destroy();
    done(err, stderr);
  };
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (d: string) => {
    stderr += d;
  });
  child.on("error", (e) => finish(e));
  child.on("close", (code, signal) => {
    if (code === 0) return finish(null);
    const e = new Error(`${prog} exited with ${code ?? signal}`) as Error & { code?: number | string };
    e.code = code ?? String(signal);
    finish(e);
  });
}

function runIdHelper(prog: "newuidmap" | "newgidmap", pid: number, map: IdMap): Promise<void> {
  const args = [String(pid), ...map.extents.flatMap((e) => [String(e.first), String(e.lowerFirst), String(e.count)])];
  return new Promise((resolve, reject) => {
    // No shell: the arguments go to execve as they are.
    execHelper(prog, args, (err, stderr) => {
      if (!err) return resolve();
      const ne = err as NodeJS.ErrnoException & { code?: string | number };
      const step = prog === "newuidmap" ? "uid_map" : "gid_map";
      if (ne.code === "ENOENT") {
        return reject(
          new UsernsError(`running ${prog} for pid ${pid}`, {
            code: "ENOENT",
            syscall: prog,
            step,
            reason: `${prog} is not installed (Debian/Ubuntu package uidmap)`,
          }),
        );
      }
      reject(
        new UsernsError(`running ${prog} ${args.join(" ")}`, {
          code: "ERR_USERNS_NEWIDMAP",
          syscall: prog,
          step,
          reason: `exit status ${typeof ne.code === "number" ? ne.code : "?"}: ${stderr.trim() || err.message}`,
          cause: err,
        }),
      );
    });
  });
}

/**
 * Writes maps through newuidmap/newgidmap (ranges from /etc/subuid and
 * /etc/subgid, checked by the helpers). setgroups is written by us first:
 * as the namespace's owner we may, and it must precede gid_map.
 */
export async function writeMapsNewidmap(
  pid: number,
  req: { uid?: PreparedMap; gid?: PreparedMap; setgroups?: "allow" | "deny" },
): Promise<void> {
  if (req.setgroups === "deny") writeStep(pid, "setgroups", "deny");
  if (req.uid) await runIdHelper("newuidmap", pid, req.uid.map);
  if (req.gid) await runIdHelper("newgidmap", pid, req.gid.map);
}

/**
 * Writes the maps of a namespace whose parent is not ours: a helper child
 * joins the parent user namespace (the kernel accepts map writes only from
 * the parent or the namespace itself) and writes them there.
 */
export function writeMapsFromParent(
  pid: number,
  parentUserFd: number,
  req: { uid?: PreparedMap; gid?: PreparedMap; setgroups?: "allow" | "deny" },
): void {
  const steps: ChildStep[] = [{ op: "join", fd: parentUserFd, nstype: CLONE_NEW.user, label: "join parent" }];
  if (req.setgroups !== undefined)
    steps.push({ op: "writeFile", path: `/proc/${pid}/setgroups`, data: req.setgroups, label: "setgroups" });
  if (req.uid) steps.push({ op: "writeFile", path: `/proc/${pid}/uid_map`, data: req.uid.text, label: "uid_map" });
  if (req.gid) steps.push({ op: "writeFile", path: `/proc/${pid}/gid_map`, data: req.gid.text, label: "gid_map" });
  runHelper(steps, `writing the maps of pid ${pid} from its parent user namespace`);
}

/**
 * Writes prepared maps the way `method` says: the one dispatch spawn and UserNamespace share. Only newuidmap is
 * asynchronous (separate programs); `parent-helper` needs the nsfs fd of the user namespace the target was created
 * in.
 */
export function writeMaps(pid: number, method: "newuidmap", req: MapWriteRequest): Promise<void>;
export function writeMaps(
  pid: number,
  method: Exclude<MapMethod, "newuidmap">,
  req: MapWriteRequest,
  parentUserFd?: number,
): void;
export function writeMaps(
  pid: number,
  method: MapMethod,
  req: MapWriteRequest,
  parentUserFd?: number,
): Promise<void> | undefined {
  switch (method) {
    case "newuidmap":
      return writeMapsNewidmap(pid, req);
    case "parent-helper":
      if (parentUserFd === undefined)
        throw new UsernsError("writing maps from the parent namespace", {
          code: "ERR_USERNS_USAGE",
          reason: "no parent user namespace fd",
        });
      writeMapsFromParent(pid, parentUserFd, req);
      return undefined;
    case "direct":
    case "self":
      writeMapsDirect(pid, req);
      return undefined;
  }
}
