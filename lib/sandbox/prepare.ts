/**
 * The parent's half of a sandbox: validates {@link SandboxOptions}, resolves
 * what must be resolved on the host, prepares file contents (memfds) and
 * idmapped mounts, and turns it all into raw child steps that
 * native/child/sandbox.cc runs in order between clone3 and execve.
 *
 * It imports nothing from lib/spawn (spawn imports this): the steps are
 * {@link SandboxStep} values of the child layer (lib/child/steps.ts, ops
 * sb* and execSearch of its protocol table), which spawn places in the
 * child's list; each carries its error hook ({@link sandboxStepError}).
 *
 * @packageDocumentation
 */
import { existsSync, openSync, readFileSync, readlinkSync, readSync, realpathSync } from "node:fs";
import { dirname, join, posix } from "node:path";
import type { SandboxOpName, SandboxStep } from "../child/steps.js";
import { errnoNumber, isUsernsErrorCode, UsernsError, usageError } from "../errors.js";
import { native, nativePath } from "../kernel/native.js";
import { CAPABILITIES, type Capability } from "../model/caps.js";
import { MOUNT_ATTR } from "../mounts/constants.js";
import { type IdmappedMount, idmapMount } from "../mounts/idmap-mount.js";
import type { FsOperation, SandboxOptions } from "./types.js";

export type { SandboxStep } from "../child/steps.js";

/** The sandbox's steps, by what they do: their op names in the child's protocol table (lib/child/protocol.ts). */
export const SANDBOX_OP = {
  base: "sbBase",
  fs: "sbFs",
  pivot: "sbPivot",
  hostname: "sbHostname",
  keepCaps: "sbKeepCaps",
  capabilities: "sbCaps",
  noNewPrivileges: "sbNoNewPrivs",
  seccomp: "sbSeccomp",
  loopback: "sbLoopback",
  disableUserNamespaces: "sbDisableUserns",
  reaper: "sbReaper",
  execSearch: "execSearch",
} as const satisfies Record<string, SandboxOpName>;

/** Filesystem sub-operations and flags, as native/child/sandbox.h. */
const SUB = { bind: 1, newMount: 2, dev: 3, dir: 4, symlink: 5, file: 6, chmod: 7, remountRo: 8, attach: 9 } as const;
const FLAG = { ro: 1, devices: 2, optional: 4, srcInRoot: 8, inBase: 16, bindFile: 32 } as const;

/** The stages native/child/sandbox.h reports in bits 12.. of an error. */
const STAGE: Readonly<Record<number, { syscall: string; what: string }>> = {
  0: { syscall: "", what: "" },
  1: { syscall: "open_tree", what: "source" },
  2: { syscall: "openat2", what: "parents of the destination" },
  3: { syscall: "mkdirat", what: "mountpoint" },
  4: { syscall: "fsmount", what: "new filesystem" },
  5: { syscall: "move_mount", what: "attach" },
  6: { syscall: "mount_setattr", what: "mount attributes" },
  7: { syscall: "write", what: "content" },
  8: { syscall: "readlinkat", what: "existing destination" },
  9: { syscall: "openat2", what: "destination" },
  10: { syscall: "pivot_root", what: "base tmpfs on /tmp" },
  11: { syscall: "pivot_root", what: "new root" },
  12: { syscall: "write", what: "user.max_user_namespaces" },
  13: { syscall: "write", what: "nested user namespace's maps" },
};

/** Everything about the process a sandbox needs to know from spawn. */
export interface SandboxContext {
  /** The namespaces spawn creates. */
  readonly namespaces: ReadonlySet<string>;
  /** The program, as given (a bare name is searched in `PATH` inside the sandbox). */
  readonly file: string;
  /** The program's environment (for `PATH`). */
  readonly env: NodeJS.ProcessEnv;
  readonly uid?: number;
  readonly gid?: number;
  readonly groups?: readonly number[];
  /** True when the caller joins namespaces (the child-side path with a fork step). */
  readonly joins: boolean;
}

/** The prepared sandbox: steps for each point of spawn's list, and what to release afterwards. */
export interface PreparedSandbox {
  /** Right after the mount namespace exists and the maps are written: the root, pivot, hostname, loopback. */
  readonly setup: readonly SandboxStep[];
  /** The reaping pid 1: splits the child (spawn must then use a fork-like child: {@link needsOwnMemory}). */
  readonly reaper: readonly SandboxStep[];
  /** Before the ids change (setgroups/setgid/setuid). */
  readonly beforeIds: readonly SandboxStep[];
  /** After the ids changed: capabilities, no_new_privs. */
  readonly afterIds: readonly SandboxStep[];
  /** After stdio, right before exec: seccomp, and the PATH search inside the new root. */
  readonly last: readonly SandboxStep[];
  /** The child outlives exec (pid 1 reaps): it needs its own memory, not the parent's. */
  readonly needsOwnMemory: boolean;
  /** True when a filesystem plan replaces the root: the program's path and cwd are resolved inside it. */
  readonly newRoot: boolean;
  /** With `newRoot`: the path for execve when the file has a slash (otherwise the last step searches). */
  readonly execPath: string | undefined;
  /** Closes the fds prepared for the child (memfds, idmapped mounts). Call once the child exec'd or failed. */
  close(): void;
}

const enc = new TextEncoder();

/** True when any sandbox option is set (spawn then calls {@link prepareSandbox}). */
export function hasSandboxOptions(o: SandboxOptions): boolean {
  return (
    o.filesystem !== undefined ||
    o.hostname !== undefined ||
    o.capabilities !== undefined ||
    o.noNewPrivileges !== undefined ||
    o.seccomp !== undefined ||
    o.init !== undefined ||
    o.loopback !== undefined ||
    o.disableUserNamespaces !== undefined
  );
}

function isMode(m: unknown): m is number {
  return typeof m === "number" && Number.isInteger(m) && m >= 0 && m <= 0o7777;
}

function checkPath(i: number, op: string, field: string, p: unknown): string {
  if (typeof p !== "string" || p.length === 0 || !p.startsWith("/"))
    throw usageError(`filesystem[${i}] (${op}): ${field} must be an absolute path, not ${JSON.stringify(p)}`);
  if (p.includes("\0")) throw usageError(`filesystem[${i}] (${op}): ${field} must not contain NUL bytes`);
  return p;
}

/** A destination inside the new root, relative to it ("" is the root itself), normalized. */
function relDest(i: number, op: string, dest: unknown): string {
  const p = posix.normalize(checkPath(i, op, "dest", dest));
  return p.replace(/^\/+/, "").replace(/\/+$/, "");
}

/** A host path as the child sees it between the base pivot and the final one: under /oldroot. */
function oldroot(p: string): string {
  return `/oldroot${posix.normalize(p).replace(/\/+$/, "")}`;
}

function ovlEscape(p: string): string {
  return p.replace(/[\\,:]/g, (c) => `\\${c}`);
}

function nulJoin(parts: readonly string[]): Uint8Array {
  return enc.encode(`${parts.join("\0")}\0`);
}

/** The capability names accepted: `CAP_X` or `x` (any case). */
export function capabilityNumber(name: string): number {
  const n = (name.toUpperCase().startsWith("CAP_") ? name : `CAP_${name}`).toUpperCase();
  const i = (CAPABILITIES as readonly string[]).indexOf(n);
  if (i < 0) throw usageError(`capabilities: unknown capability ${JSON.stringify(name)}`);
  return i;
}

let lastCapCache: number | undefined;
function lastCap(): number {
  if (lastCapCache === undefined) {
    try {
      lastCapCache = Number.parseInt(readFileSync("/proc/sys/kernel/cap_last_cap", "utf8").trim(), 10);
    } catch {
      lastCapCache = CAPABILITIES.length - 1;
    }
  }
  return lastCapCache;
}

function readFdToEnd(fd: number): Uint8Array {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(65536);
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks);
}

/**
 * Validates the sandbox options against the spawn context; throws ERR_USERNS_USAGE naming the
 * field (and, for the filesystem plan, the operation's index). Touches nothing.
 */
export function validateSandboxOptions(o: SandboxOptions, ctx: Pick<SandboxContext, "namespaces" | "joins">): void {
  const ns = ctx.namespaces;
  if (o.filesystem !== undefined) {
    if (!Array.isArray(o.filesystem)) throw usageError("filesystem must be an array of operations");
    if (!ns.has("mount")) throw usageError('filesystem needs namespaces to include "mount"');
    for (const [i, op] of o.filesystem.entries()) validateFsOp(op, i);
  }
  if (o.hostname !== undefined) {
    if (typeof o.hostname !== "string" || o.hostname.includes("\0") || enc.encode(o.hostname).length > 64)
      throw usageError("hostname must be a string of at most 64 bytes");
    if (!ns.has("uts")) throw usageError('hostname needs namespaces to include "uts"');
  }
  if (o.capabilities !== undefined) {
    if (o.capabilities !== "all") {
      if (!Array.isArray(o.capabilities)) throw usageError('capabilities must be "all" or an array of names');
      for (const c of o.capabilities) capabilityNumber(String(c));
    }
  }
  if (o.noNewPrivileges !== undefined && typeof o.noNewPrivileges !== "boolean")
    throw usageError("noNewPrivileges must be a boolean");
  if (o.seccomp !== undefined) {
    if (!Array.isArray(o.seccomp)) throw usageError("seccomp must be an array of BPF programs (Uint8Array)");
    o.seccomp.forEach((p, i) => {
      if (!(p instanceof Uint8Array) || p.byteLength === 0 || p.byteLength % 8 !== 0 || p.byteLength / 8 > 4096)
        throw usageError(`seccomp[${i}] must be a Uint8Array of 1 to 4096 struct sock_filter (8 bytes each)`);
    });
  }
  if (o.init !== undefined) {
    if (o.init !== "program" && o.init !== "reaper") throw usageError('init must be "program" or "reaper"');
    if (o.init === "reaper" && !ns.has("pid")) throw usageError('init "reaper" needs namespaces to include "pid"');
    if (o.init === "reaper" && ctx.joins)
      throw usageError('init "reaper" cannot be combined with join (the program then runs through a fork step)');
  }
  if (o.loopback !== undefined) {
    if (typeof o.loopback !== "boolean") throw usageError("loopback must be a boolean");
    if (o.loopback && !ns.has("net")) throw usageError('loopback needs namespaces to include "net"');
  }
  if (o.disableUserNamespaces !== undefined) {
    if (typeof o.disableUserNamespaces !== "boolean") throw usageError("disableUserNamespaces must be a boolean");
    if (o.disableUserNamespaces && !ns.has("user"))
      throw usageError('disableUserNamespaces needs namespaces to include "user"');
  }
}

function validateFsOp(op: FsOperation, i: number): void {
  if (typeof op !== "object" || op === null) throw usageError(`filesystem[${i}] must be an operation object`);
  const kind = (op as { op?: unknown }).op;
  const mode = (field: string, v: unknown): void => {
    if (v !== undefined && !isMode(v))
      throw usageError(`filesystem[${i}] (${kind}): ${field} must be a mode 0..0o7777`);
  };
  switch (op.op) {
    case "bind":
      relDest(i, op.op, op.dest);
      if (typeof op.source === "object" && op.source !== null) {
        if (!Number.isInteger(op.source.fd) || op.source.fd < 0)
          throw usageError(`filesystem[${i}] (bind): source.fd must be an open fd`);
      } else checkPath(i, op.op, "source", op.source);
      return;
    case "tmpfs":
      relDest(i, op.op, op.dest);
      mode("mode", op.mode);
      if (op.size !== undefined && (!Number.isSafeInteger(op.size) || op.size <= 0))
        throw usageError(`filesystem[${i}] (tmpfs): size must be a positive integer (bytes)`);
      return;
    case "proc":
    case "dev":
    case "mqueue":
    case "remountReadOnly":
      relDest(i, op.op, op.dest);
      return;
    case "dir":
      relDest(i, op.op, op.dest);
      mode("mode", op.mode);
      return;
    case "symlink":
      relDest(i, op.op, op.dest);
      if (typeof op.target !== "string" || op.target.length === 0 || op.target.includes("\0"))
        throw usageError(`filesystem[${i}] (symlink): target must be a non-empty string`);
      return;
    case "file": {
      if (relDest(i, op.op, op.dest) === "") throw usageError(`filesystem[${i}] (file): dest must not be "/"`);
      mode("mode", op.mode);
      const c = op.content;
      const ok =
        typeof c === "string" ||
        c instanceof Uint8Array ||
        (typeof c === "object" && c !== null && Number.isInteger((c as { fd: number }).fd));
      if (!ok) throw usageError(`filesystem[${i}] (file): content must be a string, a Uint8Array or { fd }`);
      if (op.bind !== undefined && op.bind !== "rw" && op.bind !== "ro")
        throw usageError(`filesystem[${i}] (file): bind must be "rw" or "ro"`);
      return;
    }
    case "chmod":
      relDest(i, op.op, op.dest);
      if (!isMode(op.mode)) throw usageError(`filesystem[${i}] (chmod): mode must be a mode 0..0o7777`);
      return;
    case "overlay": {
      relDest(i, op.op, op.dest);
      if (!Array.isArray(op.lower) || op.lower.length === 0)
        throw usageError(`filesystem[${i}] (overlay): lower must list at least one directory`);
      op.lower.forEach((l, k) => {
        checkPath(i, op.op, `lower[${k}]`, l);
      });
      if (op.upper === undefined) {
        if (op.lower.length < 2)
          throw usageError(`filesystem[${i}] (overlay): a read-only overlay needs at least two lower directories`);
        if (op.work !== undefined) throw usageError(`filesystem[${i}] (overlay): work needs upper`);
      } else if (op.upper !== "tmpfs") {
        checkPath(i, op.op, "upper", op.upper);
        checkPath(i, op.op, "work", op.work);
      } else if (op.work !== undefined) {
        throw usageError(`filesystem[${i}] (overlay): work is not used with upper "tmpfs"`);
      }
      return;
    }
    case "attach":
      relDest(i, op.op, op.dest);
      if (typeof op.mount !== "object" || op.mount === null || !Number.isInteger(op.mount.fd) || op.mount.fd < 0)
        throw usageError(`filesystem[${i}] (attach): mount must have an open fd`);
      return;
    case "idmappedBind":
      relDest(i, op.op, op.dest);
      checkPath(i, op.op, "source", op.source);
      if (op.userns === undefined && op.uidMap === undefined && op.gidMap === undefined)
        throw usageError(`filesystem[${i}] (idmappedBind): give uidMap/gidMap or userns`);
      return;
    default:
      throw usageError(`filesystem[${i}]: unknown operation ${JSON.stringify(kind)}`);
  }
}

/** How an operation is named in errors: `filesystem step 4 (bind /srv/data → /data)`. */
export function describeFsOp(op: FsOperation, i: number): string {
  const src = (s: unknown): string =>
    typeof s === "object" && s !== null ? `fd ${(s as { fd: number }).fd}` : String(s);
  let what: string;
  switch (op.op) {
    case "bind":
      what = `${op.readOnly ? "ro-bind" : op.devices ? "dev-bind" : "bind"}${op.optional ? "-try" : ""} ${src(op.source)} → ${op.dest}`;
      break;
    case "idmappedBind":
      what = `idmappedBind ${op.source} → ${op.dest}`;
      break;
    case "symlink":
      what = `symlink ${op.target} → ${op.dest}`;
      break;
    case "overlay":
      what = `overlay ${op.lower.join(":")} → ${op.dest}`;
      break;
    case "chmod":
      what = `chmod ${op.mode.toString(8).padStart(4, "0")} ${op.dest}`;
      break;
    default:
      what = `${op.op} ${op.dest}`;
  }
  return `filesystem step ${i} (${what})`;
}

interface Builder {
  steps: SandboxStep[];
  fds: number[];
  mounts: IdmappedMount[];
}

function fsStep(
  b: Builder,
  label: string,
  kind: string,
  sub: number,
  flags: number,
  mode: number,
  arg: number,
  dest: string,
  data: Uint8Array,
  path?: string,
): void {
  b.steps.push({
    op: SANDBOX_OP.fs,
    a: sub | (flags << 8) | (mode << 16),
    b: arg,
    s: dest,
    data,
    label,
    syscall: "mount",
    path,
    kind,
  });
}

/** The host-side check of a bind source, so the common mistake fails before clone3, with the same words. */
function checkSource(label: string, source: string, optional: boolean): string | undefined {
  try {
    // Resolved here: an absolute symlink on the way would otherwise resolve against the child's temporary root.
    return realpathSync(source);
  } catch (e) {
    const raw = (e as NodeJS.ErrnoException).code;
    const code = raw !== undefined && isUsernsErrorCode(raw) ? raw : "EIO";
    if (code === "ENOENT" && optional) return undefined;
    throw new UsernsError(label, {
      code,
      errno: errnoNumber(code),
      syscall: "stat",
      step: label,
      path: source,
      reason: code === "ENOENT" ? "source does not exist" : "cannot stat the source",
    });
  }
}

/** SandboxBase's mode bits (native/child/sandbox.h). */
const BASE_STACKED = 1;

/**
 * True when the plan can be built without the base tmpfs and its pivot_root (native/child/sandbox.cc,
 * kBaseStacked): it starts with a bind that must exist at "/" (which becomes the root, as the tmpfs root and the
 * base would be detached below it anyway), mounts nothing else at "/", and needs no scratch space outside the new
 * root (`file` with `bind`, an overlay's tmpfs upper) nor the /oldroot spelling of host paths (overlay options,
 * which the program sees in mountinfo). The program sees the same mounts either way. Bind sources equal to "/"
 * after the first are checked once they are resolved (a clone of "/" would take the stacked root with it).
 */
function stackable(ops: readonly FsOperation[]): boolean {
  const first = ops[0];
  if (first?.op !== "bind" || first.optional === true || posix.normalize(first.dest) !== "/") return false;
  return ops.every((op, i) => {
    if (op.op === "overlay" || (op.op === "file" && op.bind)) return false;
    return i === 0 || posix.normalize(op.dest).replace(/\/+$/, "") !== "";
  });
}

function prepareFs(b: Builder, ops: readonly FsOperation[]): void {
  let stacked = stackable(ops);
  const baseAt = b.steps.length;
  b.steps.push({
    op: SANDBOX_OP.base,
    a: 0,
    b: 0,
    label: "filesystem: the new root (a tmpfs over /tmp, pivot_root into it)",
    syscall: "mount",
    path: "/tmp",
    kind: "base",
  });
  // Bind sources, spelled once it is known where the host's root is in the child (/oldroot, or "/" when stacked).
  const sources: { at: number; real: string }[] = [];
  ops.forEach((op, i) => {
    const label = describeFsOp(op, i);
    switch (op.op) {
      case "bind": {
        let source: string;
        if (typeof op.source === "object") {
          // The fd's path as this process sees it: the child binds it from the old root.
          source = readlinkSync(`/proc/self/fd/${op.source.fd}`);
          if (!source.startsWith("/"))
            throw usageError(`filesystem[${i}] (bind): source fd ${op.source.fd} is not a path (${source})`);
        } else source = op.source;
        const real = checkSource(label, source, op.optional === true);
        if (real === undefined) return;
        const flags = (op.readOnly ? FLAG.ro : 0) | (op.devices ? FLAG.devices : 0) | (op.optional ? FLAG.optional : 0);
        if (i > 0 && real === "/") stacked = false;
        sources.push({ at: b.steps.length, real });
        fsStep(b, label, "bind", SUB.bind, flags, 0, 0, relDest(i, op.op, op.dest), new Uint8Array(0), source);
        return;
      }
      case "tmpfs": {
        const spec = ["tmpfs", "source", "tmpfs", "mode", (op.mode ?? 0o755).toString(8).padStart(4, "0")];
        if (op.size !== undefined) spec.push("size", String(op.size));
        fsStep(
          b,
          label,
          "tmpfs",
          SUB.newMount,
          0,
          0,
          MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV,
          relDest(i, op.op, op.dest),
          nulJoin(spec),
          op.dest,
        );
        return;
      }
      case "proc": {
        const dest = relDest(i, op.op, op.dest);
        fsStep(
          b,
          label,
          "proc",
          SUB.newMount,
          0,
          0,
          MOUNT_ATTR.NOSUID | MOUNT_ATTR.NOEXEC | MOUNT_ATTR.NODEV,
          dest,
          nulJoin(["proc", "source", "proc"]),
          op.dest,
        );
        // As bwrap: the writable oddities of /proc (sysrq-trigger lets root reboot the host) are covered read-only.
        for (const sub of ["sys", "sysrq-trigger", "irq", "bus"]) {
          const p = dest === "" ? sub : `${dest}/${sub}`;
          fsStep(b, label, "proc", SUB.bind, FLAG.ro | FLAG.optional | FLAG.srcInRoot, 0, 0, p, enc.encode(p), op.dest);
        }
        return;
      }
      case "dev":
        fsStep(b, label, "dev", SUB.dev, 0, 0, 0, relDest(i, op.op, op.dest), new Uint8Array(0), op.dest);
        return;
      case "mqueue":
        fsStep(
          b,
          label,
          "mqueue",
          SUB.newMount,
          0,
          0,
          0,
          relDest(i, op.op, op.dest),
          nulJoin(["mqueue", "source", "mqueue"]),
          op.dest,
        );
        return;
      case "dir":
        fsStep(
          b,
          label,
          "dir",
          SUB.dir,
          0,
          op.mode ?? 0o755,
          0,
          relDest(i, op.op, op.dest),
          new Uint8Array(0),
          op.dest,
        );
        return;
      case "symlink":
        fsStep(b, label, "symlink", SUB.symlink, 0, 0, 0, relDest(i, op.op, op.dest), enc.encode(op.target), op.dest);
        existingLinks.set(b.steps[b.steps.length - 1]!, () => existingLinkTarget(ops, i, op.dest));
        return;
      case "file": {
        const c = op.content;
        const bytes =
          typeof c === "string" ? enc.encode(c) : c instanceof Uint8Array ? c : readFdToEnd((c as { fd: number }).fd);
        const fd = native().memfdFromBytes(bytes);
        b.fds.push(fd);
        const flags = op.bind ? FLAG.bindFile | (op.bind === "ro" ? FLAG.ro : 0) : 0;
        fsStep(
          b,
          label,
          "file",
          SUB.file,
          flags,
          op.mode ?? 0o666,
          fd,
          relDest(i, op.op, op.dest),
          enc.encode(`/bindfile-${i}`),
          op.dest,
        );
        return;
      }
      case "chmod":
        fsStep(b, label, "chmod", SUB.chmod, 0, op.mode, 0, relDest(i, op.op, op.dest), new Uint8Array(0), op.dest);
        return;
      case "remountReadOnly":
        fsStep(
          b,
          label,
          "remountReadOnly",
          SUB.remountRo,
          0,
          0,
          0,
          relDest(i, op.op, op.dest),
          new Uint8Array(0),
          op.dest,
        );
        return;
      case "overlay": {
        const lower = op.lower.map((l) => checkSource(label, l, false) as string);
        // overlayfs stacks "lowerdir+" layers top first: the reverse of this list (bottom first, as bwrap's).
        const spec = ["overlay", "source", "overlay"];
        for (const l of [...lower].reverse()) spec.push("lowerdir+", oldroot(l));
        if (op.upper === "tmpfs") {
          // A writable layer on the base tmpfs: outside the new root, and gone with it (bwrap's --tmp-overlay).
          const up = `tmp-overlay-upper-${i}`;
          const work = `tmp-overlay-work-${i}`;
          for (const d of [up, work])
            fsStep(b, label, "overlay", SUB.dir, FLAG.inBase, 0o755, 0, d, new Uint8Array(0), op.dest);
          spec.push("upperdir", `/${up}`, "workdir", `/${work}`);
        } else if (op.upper !== undefined) {
          const up = checkSource(label, op.upper, false) as string;
          const work = checkSource(label, op.work as string, false) as string;
          // upperdir and workdir are unescaped by overlayfs (a backslash quotes the next character); lowerdir+ is not.
          spec.push("upperdir", ovlEscape(oldroot(up)), "workdir", ovlEscape(oldroot(work)));
        }
        // Overlay in a user namespace keeps its own metadata in user.* xattrs (as bwrap always asks).
        spec.push("userxattr", "");
        fsStep(b, label, "overlay", SUB.newMount, 0, 0, 0, relDest(i, op.op, op.dest), nulJoin(spec), op.dest);
        return;
      }
      case "attach":
        fsStep(
          b,
          label,
          "attach",
          SUB.attach,
          0,
          0,
          op.mount.fd,
          relDest(i, op.op, op.dest),
          new Uint8Array(0),
          op.dest,
        );
        return;
      case "idmappedBind": {
        let m: IdmappedMount;
        try {
          m = idmapMount(op.source, {
            uidMap: op.uidMap,
            gidMap: op.gidMap,
            userns: op.userns,
            readOnly: op.readOnly,
            recursive: op.recursive,
            nosuid: true,
            nodev: true,
          });
        } catch (e) {
          const u = e as UsernsError;
          throw new UsernsError(label, {
            code: u.code,
            errno: u.errno,
            syscall: u.syscall,
            step: label,
            path: op.source,
            reason: u.reason ?? u.message,
            cause: e,
          });
        }
        b.mounts.push(m);
        fsStep(
          b,
          label,
          "idmappedBind",
          SUB.attach,
          0,
          0,
          m.fd,
          relDest(i, op.op, op.dest),
          new Uint8Array(0),
          op.source,
        );
        return;
      }
    }
  });
  for (const { at, real } of sources) {
    const step = b.steps[at] as SandboxStep;
    b.steps[at] = { ...step, data: enc.encode(stacked ? posix.normalize(real) : oldroot(real)) };
  }
  if (stacked) {
    b.steps[baseAt] = {
      ...(b.steps[baseAt] as SandboxStep),
      a: BASE_STACKED,
      label: "filesystem: the new root (the first bind, over the old root)",
      path: "/",
    };
  }
  b.steps.push({
    op: SANDBOX_OP.pivot,
    a: 0,
    b: 0,
    label: "filesystem: pivot_root into the new root",
    syscall: "pivot_root",
    kind: "pivot",
  });
}

function simple(
  op: SandboxOpName,
  label: string,
  syscall: string,
  kind: string,
  extra: Partial<SandboxStep> = {},
): SandboxStep {
  return { op, a: 0, b: 0, label, syscall, kind, ...extra };
}

/** The step with its error hook: the child's raw code is decoded here, where the stages are known. */
function withError(step: SandboxStep): SandboxStep {
  return { ...step, error: (raw: number) => sandboxStepError(step, raw) };
}

/**
 * Prepares a sandbox for one spawn: validates (see {@link validateSandboxOptions}), checks sources on the host,
 * fills memfds with file contents, makes idmapped mounts, and returns the child steps. On a throw nothing stays
 * open; on success the caller must call `close()` once the child has exec'd or failed.
 */
export function prepareSandbox(o: SandboxOptions, ctx: SandboxContext): PreparedSandbox {
  validateSandboxOptions(o, ctx);
  const b: Builder = { steps: [], fds: [], mounts: [] };
  const close = (): void => {
    for (const fd of b.fds.splice(0)) native().close(fd);
    for (const m of b.mounts.splice(0)) m.close();
  };
  try {
    if (o.filesystem !== undefined) prepareFs(b, o.filesystem);
    const setup = b.steps;
    if (o.hostname !== undefined)
      setup.push(
        simple(SANDBOX_OP.hostname, `hostname ${JSON.stringify(o.hostname)}`, "sethostname", "hostname", {
          data: enc.encode(o.hostname),
        }),
      );
    if (o.loopback ?? ctx.namespaces.has("net"))
      setup.push(simple(SANDBOX_OP.loopback, "bringing up the loopback interface", "ioctl", "loopback"));
    let initFd = -1;
    if (o.init === "reaper") {
      initFd = openInit();
      if (initFd >= 0) b.fds.push(initFd);
    }
    const reaper =
      o.init === "reaper"
        ? [
            simple(SANDBOX_OP.reaper, "starting the reaping pid 1", initFd >= 0 ? "execveat" : "clone", "reaper", {
              b: initFd,
            }),
          ]
        : [];
    const beforeIds: SandboxStep[] = [];
    const afterIds: SandboxStep[] = [];
    if (o.disableUserNamespaces)
      beforeIds.push(
        simple(SANDBOX_OP.disableUserNamespaces, "disabling further user namespaces", "unshare", "disableUserns", {
          a: ctx.uid ?? -1,
          b: ctx.gid ?? -1,
        }),
      );
    if (o.capabilities !== undefined) {
      let keep = 0n;
      const names = o.capabilities === "all" ? CAPABILITIES.slice(0, lastCap() + 1) : o.capabilities;
      for (const n of names) keep |= 1n << BigInt(capabilityNumber(String(n)));
      if (ctx.uid !== undefined && ctx.uid !== 0)
        beforeIds.push(simple(SANDBOX_OP.keepCaps, "keeping capabilities across the uid change", "prctl", "keepCaps"));
      afterIds.push(
        simple(SANDBOX_OP.capabilities, `setting capabilities (${capsText(keep)})`, "capset", "capabilities", {
          a: Number(keep),
          // "all" keeps what the child can hold (its permitted set), as bwrap: not an error where one is missing.
          b: lastCap() | (o.capabilities === "all" ? 1 << 16 : 0),
        }),
      );
    }
    if (o.noNewPrivileges)
      afterIds.push(simple(SANDBOX_OP.noNewPrivileges, "setting no_new_privs", "prctl", "noNewPrivileges"));
    const last: SandboxStep[] = [];
    for (const [i, p] of (o.seccomp ?? []).entries())
      last.push(
        simple(SANDBOX_OP.seccomp, `installing seccomp program ${i}`, "seccomp", "seccomp", {
          data: new Uint8Array(p),
        }),
      );
    const newRoot = o.filesystem !== undefined;
    let execPath: string | undefined;
    if (newRoot) {
      if (ctx.file.includes("/")) execPath = ctx.file;
      else {
        // execvp's search, done in the child inside the new root: the host's files say nothing about it.
        const dirs = (ctx.env.PATH ?? "/usr/local/bin:/usr/bin:/bin").split(":");
        const candidates = dirs.map((d) => posix.join(d === "" ? "." : d, ctx.file));
        last.push(
          simple(
            SANDBOX_OP.execSearch,
            `executing ${ctx.file} (searched in PATH inside the sandbox)`,
            "execve",
            "exec",
            {
              data: nulJoin(candidates),
              path: ctx.file,
            },
          ),
        );
      }
    }
    return {
      setup: setup.map(withError),
      reaper: reaper.map(withError),
      beforeIds: beforeIds.map(withError),
      afterIds: afterIds.map(withError),
      last: last.map(withError),
      needsOwnMemory: o.init === "reaper" && initFd < 0,
      newRoot,
      execPath,
      close,
    };
  } catch (e) {
    close();
    throw e;
  }
}

let initPathCache: string | null | undefined;

/**
 * The init binary pid 1 execs for `init: "reaper"` (build/Release/userns-init, next to the addon), or null: then pid 1
 * is a fork-like child with its own copy of this process's memory instead (slower: the copy costs page-table work
 * now and copy-on-write faults later). USERNS_INIT overrides: a path, or "none".
 */
function initPath(): string | null {
  if (initPathCache !== undefined) return initPathCache;
  const env = process.env.USERNS_INIT;
  if (env === "none") initPathCache = null;
  else if (env !== undefined && env !== "") initPathCache = env;
  else if (!native().spawnUsesCloneVm()) initPathCache = null;
  else {
    const p = join(dirname(nativePath()), "userns-init");
    initPathCache = existsSync(p) ? p : null;
  }
  return initPathCache;
}

/** An fd of the init binary for this spawn (closed with the sandbox), or -1. */
function openInit(): number {
  const p = initPath();
  if (p === null) return -1;
  try {
    return openSync(p, "r");
  } catch {
    return -1;
  }
}

function capsText(keep: bigint): string {
  if (keep === 0n) return "none";
  const names: string[] = [];
  CAPABILITIES.forEach((c: Capability, i) => {
    if (keep & (1n << BigInt(i))) names.push(c);
  });
  return names.length > 6 ? `${names.length} capabilities` : names.join(", ");
}

/** Why a sandbox step failed, in words, by kind, stage and errno. */
function reasonFor(step: SandboxStep, stage: number, code: string): string | undefined {
  const k = step.kind;
  if (k === "remountReadOnly" && code === "EINVAL") return "the destination is not a mountpoint";
  if (stage === 1 && code === "ENOENT") return "source does not exist";
  if (stage === 1) return "cannot clone the source mount";
  if (stage === 2 && code === "ENOTDIR") return "a parent of the destination is not a directory";
  if (stage === 2) return "cannot create the parents of the destination inside the new root";
  if (stage === 3 && code === "ENOTDIR") return "the destination's parent is not a directory";
  if (stage === 3) return "cannot create the mountpoint or file inside the new root";
  if (stage === 4 && k === "overlay")
    return "overlayfs refused the layers (they must exist, be directories and not overlap)";
  if (stage === 4 && k === "proc" && code === "EPERM")
    return "procfs can only be mounted by a process in a pid namespace owned by its user namespace";
  if (stage === 4) return "the kernel refused the new filesystem";
  if (stage === 5) return "cannot attach the mount at the destination";
  if (stage === 6) return "cannot set the mount's attributes";
  if (stage === 7) return "cannot write the file's content";
  if (stage === 8) return "the destination exists and is something else";
  if (stage === 9 && code === "ENOENT") return "the destination does not exist in the new root";
  if (stage === 9) return "cannot resolve the destination inside the new root";
  if (stage === 10) return "cannot mount the base tmpfs over /tmp and pivot into it (is there a /tmp?)";
  if (stage === 11) return "cannot make the new root the root";
  if (stage === 12) return "cannot lower user.max_user_namespaces in the sandbox's user namespace";
  if (stage === 13) return "cannot write the nested user namespace's maps";
  if (k === "hostname" && code === "EPERM") return "no CAP_SYS_ADMIN over the uts namespace";
  if (k === "capabilities" && code === "EPERM")
    return "a capability asked for is not in the permitted set (not held, or lost with the uid change)";
  if (k === "seccomp" && code === "EACCES") return "installing a filter needs no_new_privs or CAP_SYS_ADMIN";
  if (k === "seccomp" && code === "EINVAL") return "the kernel rejected the BPF program";
  if (k === "loopback" && code === "EPERM") return "no CAP_NET_ADMIN in the network namespace";
  if (k === "exec" && code === "ENOENT") return "not found in PATH inside the sandbox";
  return undefined;
}

/**
 * For a symlink step: what the link already at its destination points to, when that can be known (see
 * {@link existingLinkTarget}). Keyed by the step as built, before its error hook is attached.
 */
const existingLinks = new WeakMap<SandboxStep, () => string | undefined>();

/** A path made comparable: absolute, no `.`, `..`, double or trailing slashes. */
function normal(p: string): string {
  const n = posix.normalize(`/${p}`);
  return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
}

/**
 * What a symlink at `dest` points to before operation `index` of the plan runs, for the EEXIST of a symlink
 * operation (bwrap: "existing destination is TARGET"). The child has exited by the time the error is made, so it is
 * read from what made it: an earlier symlink operation to the same place, or the host file below the last bind that
 * covers `dest`. Undefined when it is not a symlink, or came from a filesystem made in the sandbox.
 */
export function existingLinkTarget(ops: readonly FsOperation[], index: number, dest: string): string | undefined {
  const d = normal(dest);
  for (let i = index - 1; i >= 0; i--) {
    const op = ops[i]!;
    if (!("dest" in op) || typeof op.dest !== "string") continue;
    const at = normal(op.dest);
    if (op.op === "symlink" && at === d) return op.target;
    const under = at === "/" || d === at || d.startsWith(`${at}/`);
    if (!under) continue;
    if (op.op === "bind" || op.op === "idmappedBind") {
      const source = typeof op.source === "string" ? op.source : readlinkOrUndefined(`/proc/self/fd/${op.source.fd}`);
      return source === undefined ? undefined : readlinkOrUndefined(join(source, d.slice(at === "/" ? 0 : at.length)));
    }
    // Changes nothing at `dest`: look further back.
    if (op.op === "chmod" || op.op === "remountReadOnly" || (op.op === "dir" && d !== at) || op.op === "symlink")
      continue;
    // A directory, file or filesystem made in the sandbox: no host link below it.
    return undefined;
  }
  return undefined;
}

function readlinkOrUndefined(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/** The error for a failed sandbox step: the child's code packs the errno with the stage (bits 12..). */
export function sandboxStepError(step: SandboxStep, raw: number): UsernsError {
  const errno = raw & 0xfff;
  const stage = raw >> 12;
  const probe = new UsernsError("x", { errno });
  const st = STAGE[stage];
  const syscall = st !== undefined && st.syscall !== "" ? st.syscall : step.syscall;
  // bwrap's words for a symlink over a different one: "existing destination is TARGET".
  const existing = stage === 8 && probe.code === "EEXIST" ? existingLinks.get(step)?.() : undefined;
  return new UsernsError(step.label, {
    errno,
    syscall,
    step: step.label,
    path: step.path,
    reason: existing !== undefined ? `existing destination is ${existing}` : reasonFor(step, stage, probe.code),
  });
}
