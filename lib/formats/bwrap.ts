/**
 * bubblewrap's command line as an interop format: `fromBwrapArgs(argv)` turns a `bwrap` argument list
 * (everything after the program name) into what `spawn()` takes, `{ file, args, options }`, plus the
 * front-end fields that only a bwrap-compatible executable acts on (info fd, json-status fd, lock files ...).
 *
 * Semantics follow bwrap's manual (bwrap.xml) and what Debian's bwrap 0.8.0 does, asked option by option:
 * the same argument lists are refused, with the same message (`bwrap: …`) and exit status 1. The parse is
 * pure: the only input it reads is the fds that options name for data (`--args`, `--seccomp`,
 * `--add-seccomp-fd`) and whether named fds are open, both through an injectable {@link BwrapIo}.
 *
 * @packageDocumentation
 */
import { fstatSync, readFileSync } from "node:fs";
import { resolve as resolvePath } from "node:path";
import { UsernsError } from "../errors.js";
import { CAPABILITIES } from "../model/caps.js";
import type { CapabilityName, FsOperation, SandboxOptions } from "../sandbox/types.js";
import type { NamespaceKind, SpawnOptions } from "../spawn/spawn.js";

/** Reads an fd that an option names; the parse's only contact with the outside, replaceable in tests. */
export interface BwrapIo {
  /** Reads `fd` to its end (`--args`, `--seccomp`, `--add-seccomp-fd`); throws an error with `code` (e.g. EBADF) if it cannot. */
  readFd(fd: number): Uint8Array;
  /** True when `fd` is open in this process. */
  isOpen(fd: number): boolean;
}

/** The caller's side of the parse: who runs bwrap and from where (bwrap reads these from its own process). */
export interface BwrapContext {
  /** Real uid of the caller; 0 is bwrap's "privileged" (a new user namespace is then optional, caps are kept). */
  readonly uid: number;
  /** Real gid of the caller. */
  readonly gid: number;
  /** The caller's working directory: the sandbox's cwd when `--chdir` is not given. */
  readonly cwd: string;
  /** The environment the sandbox starts from before `--setenv`/`--unsetenv`/`--clearenv`. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Whether a user namespace can be created (`--unshare-user-try`, `--unshare-all`). Default true. */
  readonly userNamespaces?: boolean;
  /** Whether cgroup namespaces exist (`--unshare-cgroup-try`). Default true. */
  readonly cgroupNamespaces?: boolean;
  /** Fd access; default reads the real fds of this process. */
  readonly io?: BwrapIo;
  /**
   * The capability bounding set the sandbox inherits (CapBnd of this process); the final set is cut to it, as
   * bwrap keeps only what can be held. Default: every capability.
   */
  readonly bounding?: ReadonlySet<CapabilityName>;
}

/** Options for `spawn()` as the sandbox core takes them: the process options plus the sandbox's world. */
export type BwrapSpawnOptions = SpawnOptions & SandboxOptions;

/** What only a bwrap-compatible executable acts on: monitoring fds, locks, messages. */
export interface BwrapFrontEnd {
  /** `--info-fd`: one JSON object (child-pid and namespace ids) once the sandbox runs. */
  readonly infoFd?: number;
  /** `--json-status-fd`: JSON lines, the child-pid object and then `{ "exit-code": N }`. */
  readonly jsonStatusFd?: number;
  /** `--sync-fd`: kept open while the sandbox runs. */
  readonly syncFd?: number;
  /** `--block-fd`: the program starts only once this fd has data (or EOF). */
  readonly blockFd?: number;
  /** `--userns-block-fd`: wait for an outside helper to write the user namespace's maps. */
  readonly usernsBlockFd?: number;
  /** `--userns2`: switch into this user namespace after setup. */
  readonly userns2Fd?: number;
  /** `--lock-file`: files to hold a POSIX lock on while the sandbox runs, in order. */
  readonly lockFiles: readonly string[];
  /** `--level-prefix`: prefix messages with `<N>` as logger --prio-prefix reads them. */
  readonly levelPrefix: boolean;
  /** `--assert-userns-disabled`: fail unless the sandbox cannot create user namespaces. */
  readonly assertUserNamespacesDisabled: boolean;
  /** `--die-with-parent`: also stop when the caller of the front end dies. */
  readonly dieWithParent: boolean;
  /**
   * Where to go when the cwd does not exist inside the sandbox, in order (bwrap: the caller's cwd, then `$HOME`,
   * then `/`); empty when `--chdir` was given (then a missing directory is an error). `options.cwd` is the first.
   */
  readonly cwdFallbacks: readonly string[];
  /** Warnings bwrap prints (without the `bwrap: ` prefix), in order. */
  readonly warnings: readonly string[];
}

/** A parsed bwrap command: run `file` with `args` by `spawn(file, args, options)`. */
export interface BwrapCommand {
  readonly kind: "run";
  /** The program, as bwrap execvp's it (a bare name is searched in the sandbox's PATH). */
  readonly file: string;
  /** Its arguments after argv[0]. */
  readonly args: readonly string[];
  readonly options: BwrapSpawnOptions;
  readonly frontEnd: BwrapFrontEnd;
}

/** The result of {@link fromBwrapArgs}: a command to run, or `--help` / `--version` (bwrap handles them first come). */
export type BwrapParse = BwrapCommand | { readonly kind: "help" } | { readonly kind: "version" };

/**
 * A refused bwrap argument list: `message` is the line bwrap prints (`bwrap: …`), `exitStatus` its status (1).
 * `usage` is true where bwrap prints its usage text to stderr instead of a message (no command given).
 */
export class BwrapArgsError extends UsernsError {
  /** bwrap's exit status for this refusal. */
  readonly exitStatus = 1;
  /** True when bwrap answers with its usage text (no program given) rather than a message. */
  readonly usage: boolean;
  /** True when `--level-prefix` came before the refusal (bwrap then prints `<3>`). */
  readonly levelPrefix: boolean;
  /** The exact line bwrap prints, `bwrap: …` (the message also carries the code, as every UsernsError). */
  readonly bwrapText: string;

  constructor(text: string, usage = false, levelPrefix = false, cause?: unknown) {
    super(`bwrap: ${text}`, { code: "ERR_USERNS_BWRAP_ARGS", step: "bwrap arguments", cause });
    this.usage = usage;
    this.bwrapText = `bwrap: ${text}`;
    this.levelPrefix = levelPrefix;
  }
}

/** Reads fds of this process: the default {@link BwrapIo}. */
export const processFdIo: BwrapIo = {
  readFd(fd) {
    return new Uint8Array(readFileSync(fd));
  },
  isOpen(fd) {
    try {
      fstatSync(fd);
      return true;
    } catch {
      return false;
    }
  },
};

/** The caller's context from this process (uid, gid, cwd, env). */
export function processBwrapContext(): BwrapContext {
  let bounding: Set<CapabilityName> | undefined;
  try {
    const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (m) {
      const bits = BigInt(`0x${m[1]}`);
      bounding = new Set(CAPABILITIES.filter((_, i) => (bits >> BigInt(i)) & 1n) as CapabilityName[]);
    }
  } catch {
    bounding = undefined;
  }
  return {
    ...(bounding ? { bounding } : {}),
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    cwd: process.cwd(),
    env: process.env,
    io: processFdIo,
  };
}

/** Options taking N values, with bwrap's words for a missing value. */
const ARITY: Readonly<Record<string, number>> = {
  "--args": 1,
  "--argv0": 1,
  "--userns": 1,
  "--userns2": 1,
  "--pidns": 1,
  "--uid": 1,
  "--gid": 1,
  "--hostname": 1,
  "--chdir": 1,
  "--setenv": 2,
  "--unsetenv": 1,
  "--lock-file": 1,
  "--sync-fd": 1,
  "--perms": 1,
  "--size": 1,
  "--bind": 2,
  "--bind-try": 2,
  "--dev-bind": 2,
  "--dev-bind-try": 2,
  "--ro-bind": 2,
  "--ro-bind-try": 2,
  "--bind-fd": 2,
  "--ro-bind-fd": 2,
  "--remount-ro": 1,
  "--overlay-src": 1,
  "--overlay": 3,
  "--tmp-overlay": 1,
  "--ro-overlay": 1,
  "--exec-label": 1,
  "--file-label": 1,
  "--proc": 1,
  "--dev": 1,
  "--tmpfs": 1,
  "--mqueue": 1,
  "--dir": 1,
  "--file": 2,
  "--bind-data": 2,
  "--ro-bind-data": 2,
  "--symlink": 2,
  "--chmod": 2,
  "--seccomp": 1,
  "--add-seccomp-fd": 1,
  "--block-fd": 1,
  "--userns-block-fd": 1,
  "--info-fd": 1,
  "--json-status-fd": 1,
  "--cap-add": 1,
  "--cap-drop": 1,
};

const FLAGS: ReadonlySet<string> = new Set([
  "--help",
  "--version",
  "--level-prefix",
  "--unshare-user",
  "--unshare-user-try",
  "--unshare-ipc",
  "--unshare-pid",
  "--unshare-net",
  "--unshare-uts",
  "--unshare-cgroup",
  "--unshare-cgroup-try",
  "--unshare-all",
  "--share-net",
  "--disable-userns",
  "--assert-userns-disabled",
  "--clearenv",
  "--new-session",
  "--die-with-parent",
  "--as-pid-1",
]);

/** bwrap's phrase for a missing value; `--chdir` and `--remount-ro` say "one argument", the rest "an argument". */
function arityMessage(option: string, n: number): string {
  if (n === 1) return option === "--chdir" || option === "--remount-ro" ? "takes one argument" : "takes an argument";
  return n === 2 ? "takes two arguments" : "takes three arguments";
}

/** The options that `--perms` may precede (they create a file or directory). */
const TAKES_PERMS: ReadonlySet<string> = new Set(["--tmpfs", "--dir", "--file", "--bind-data", "--ro-bind-data"]);
/** Options that do not count as "the next operation" for a pending `--perms`/`--size`. */
const TRANSPARENT: ReadonlySet<string> = new Set(["--perms", "--size", "--args"]);
const OVERLAY_ENDS: ReadonlySet<string> = new Set(["--overlay", "--tmp-overlay", "--ro-overlay"]);

/** bwrap caps the argument count (its --args recursion) so a self-feeding fd cannot loop forever. */
const MAX_ARGS = 9000;
const UID_INVALID = 0xffffffff;

/** strtol-like decimal: optional leading blanks and sign, digits to the end. */
function parseDecimal(text: string): number | undefined {
  const m = /^[ \t\n\v\f\r]*([+-]?)(\d+)$/.exec(text);
  if (!m) return undefined;
  const v = Number(m[2]);
  return m[1] === "-" ? -v : v;
}

function parseFd(text: string): number {
  const v = parseDecimal(text);
  if (v === undefined || v < 0 || v > 0x7fffffff) throw new BwrapArgsError(`Invalid fd: ${text}`);
  return v;
}

function parseId(text: string, what: "uid" | "gid"): number {
  const v = parseDecimal(text);
  // bwrap 0.8.0 wraps values above 2^32 into uid_t; here they are refused like (uid_t)-1, which bwrap refuses too.
  if (v === undefined || v < 0 || v >= UID_INVALID) throw new BwrapArgsError(`Invalid ${what}: ${text}`);
  return v;
}

/** strtoul(…, 8) as bwrap checks it: the whole string, no sign, at most 07777. */
function parseOctal(text: string, option: "--perms" | "--chmod"): number {
  const m = /^[ \t\n\v\f\r]*\+?([0-7]+)$/.exec(text);
  const v = m ? Number.parseInt(m[1] as string, 8) : Number.NaN;
  if (!(v >= 0 && v <= 0o7777)) throw new BwrapArgsError(`${option} takes an octal argument <= 07777`);
  return v;
}

/** strtoull(…, 0) as bwrap checks --size: decimal, 0x hex or 0 octal, non-zero, at most SIZE_MAX/2, no sign. */
function parseSize(text: string): number {
  const m = /^[ \t\n\v\f\r]*\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)$/.exec(text);
  let v = 0n;
  if (m) {
    const digits = m[1] as string;
    v = /^0[xX]/.test(digits)
      ? BigInt(digits)
      : digits.startsWith("0")
        ? BigInt(`0o${digits.slice(1) || "0"}`)
        : BigInt(digits);
  }
  if (v === 0n || v > 0x7fffffffffffffffn) throw new BwrapArgsError("--size takes a non-zero number of bytes");
  return Number(v);
}

function parseCap(text: string): CapabilityName | "ALL" {
  if (text.toUpperCase() === "ALL") return "ALL";
  const upper = text.toUpperCase();
  if ((CAPABILITIES as readonly string[]).includes(upper)) return upper as CapabilityName;
  throw new BwrapArgsError(`unknown cap: ${text}`);
}

function ioError(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  const text: Record<string, string> = {
    EBADF: "Bad file descriptor",
    EISDIR: "Is a directory",
    EINVAL: "Invalid argument",
    EIO: "Input/output error",
  };
  return typeof code === "string" ? (text[code] ?? code) : String(err);
}

/** Splits --args data: NUL-terminated strings; a trailing unterminated piece counts too. */
function splitNul(data: Uint8Array): string[] {
  const text = new TextDecoder().decode(data);
  const parts = text.split("\0");
  if (parts.at(-1) === "") parts.pop();
  return parts;
}

/**
 * Parses a bwrap argument list (without the program name) as bwrap does and returns what to spawn.
 * Throws {@link BwrapArgsError} with bwrap's message for every list bwrap refuses before it starts a sandbox.
 *
 * @example
 * ```ts
 * const cmd = fromBwrapArgs(["--ro-bind", "/usr", "/usr", "--unshare-net", "--", "ls", "/"]);
 * if (cmd.kind === "run") spawn(cmd.file, cmd.args, { ...cmd.options, stdio: "inherit" });
 * ```
 */
export function fromBwrapArgs(argv: readonly string[], context: BwrapContext = processBwrapContext()): BwrapParse {
  const io = context.io ?? processFdIo;
  const queue = [...argv];
  let levelPrefix = false;
  const fail = (text: string, cause?: unknown): never => {
    throw new BwrapArgsError(text, false, levelPrefix, cause);
  };

  const fs: FsOperation[] = [];
  const unshare = {
    user: false,
    userTry: false,
    ipc: false,
    pid: false,
    net: false,
    uts: false,
    cgroup: false,
    cgroupTry: false,
  };
  let usernsFd: number | undefined;
  let userns2Fd: number | undefined;
  let pidnsFd: number | undefined;
  let disableUserns = false;
  let assertUsernsDisabled = false;
  let uid: number | undefined;
  let gid: number | undefined;
  let hostname: string | undefined;
  let chdir: string | undefined;
  let argv0: string | undefined;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(context.env)) if (v !== undefined) env[k] = v;
  const lockFiles: string[] = [];
  const warnings: string[] = [];
  let syncFd: number | undefined;
  let blockFd: number | undefined;
  let usernsBlockFd: number | undefined;
  let infoFd: number | undefined;
  let jsonStatusFd: number | undefined;
  let newSession = false;
  let dieWithParent = false;
  let asPid1 = false;
  let seccomp: Uint8Array | undefined;
  const addSeccomp: Uint8Array[] = [];
  // Capabilities: bwrap starts from everything for a root caller and from nothing otherwise, then applies
  // --cap-add/--cap-drop in order (measured with bwrap 0.8.0: root + --uid 5 --cap-add CAP_KILL keeps all).
  let capsUsed = false;
  const caps = new Set<CapabilityName>(context.uid === 0 ? (CAPABILITIES as readonly CapabilityName[]) : []);
  let nextPerms: number | undefined;
  let nextSize: number | undefined;
  let overlaySrc: string[] = [];
  let consumed = 0;

  const readData = (fd: number, what: string): Uint8Array => {
    try {
      return io.readFd(fd);
    } catch (err) {
      return fail(`Can't read ${what}: ${ioError(err)}`, err);
    }
  };

  while (queue.length > 0) {
    const arg = queue[0] as string;
    if (arg === "--") {
      queue.shift();
      break;
    }
    if (!arg.startsWith("-")) break;
    const n = ARITY[arg];
    if (n === undefined && !FLAGS.has(arg)) fail(`Unknown option ${arg}`);
    if (arg === "--help") return { kind: "help" };
    if (arg === "--version") return { kind: "version" };
    const count = n ?? 0;
    if (queue.length < count + 1) fail(`${arg} ${arityMessage(arg, count)}`);
    const v = queue.slice(1, count + 1);
    queue.splice(0, count + 1);
    consumed += count + 1;
    if (consumed > MAX_ARGS) fail("Exceeded maximum number of arguments");
    const a0 = v[0] as string;
    const a1 = v[1] as string;

    // A pending --overlay-src must be followed by more sources or an overlay; --perms/--size by what they shape.
    if (overlaySrc.length > 0 && arg !== "--overlay-src" && !OVERLAY_ENDS.has(arg))
      fail(
        "--overlay-src must be followed by another --overlay-src or one of --overlay, --tmp-overlay, or --ro-overlay",
      );
    if (!TRANSPARENT.has(arg)) {
      if (nextSize !== undefined && arg !== "--tmpfs") fail("--size must be followed by --tmpfs");
      if (nextPerms !== undefined && !TAKES_PERMS.has(arg))
        fail("--perms must be followed by an option that creates a file");
    }
    const takePerms = (): number | undefined => {
      const p = nextPerms;
      nextPerms = undefined;
      return p;
    };

    switch (arg) {
      case "--level-prefix":
        levelPrefix = true;
        break;
      case "--args": {
        const fd = parseFd(a0);
        const data = readData(fd, "--args data");
        queue.unshift(...splitNul(data));
        break;
      }
      case "--argv0":
        argv0 = a0;
        break;
      case "--unshare-user":
        unshare.user = true;
        break;
      case "--unshare-user-try":
        unshare.userTry = true;
        break;
      case "--unshare-ipc":
        unshare.ipc = true;
        break;
      case "--unshare-pid":
        unshare.pid = true;
        break;
      case "--unshare-net":
        unshare.net = true;
        break;
      case "--unshare-uts":
        unshare.uts = true;
        break;
      case "--unshare-cgroup":
        unshare.cgroup = true;
        break;
      case "--unshare-cgroup-try":
        unshare.cgroupTry = true;
        break;
      case "--unshare-all":
        // As the manual: --unshare-user-try --unshare-ipc --unshare-pid --unshare-net --unshare-uts --unshare-cgroup-try.
        unshare.userTry = unshare.ipc = unshare.pid = unshare.net = unshare.uts = unshare.cgroupTry = true;
        break;
      case "--share-net":
        unshare.net = false;
        break;
      case "--userns":
        usernsFd = parseFd(a0);
        break;
      case "--userns2":
        userns2Fd = parseFd(a0);
        break;
      case "--pidns":
        pidnsFd = parseFd(a0);
        break;
      case "--disable-userns":
        disableUserns = true;
        break;
      case "--assert-userns-disabled":
        assertUsernsDisabled = true;
        break;
      case "--uid":
        uid = parseId(a0, "uid");
        break;
      case "--gid":
        gid = parseId(a0, "gid");
        break;
      case "--hostname":
        hostname = a0;
        break;
      case "--chdir":
        if (chdir !== undefined) warnings.push("Only the last --chdir option will take effect");
        chdir = a0;
        break;
      case "--setenv":
        env[a0] = a1;
        break;
      case "--unsetenv":
        delete env[a0];
        break;
      case "--clearenv":
        // bwrap keeps PWD (it sets it after chdir anyway) and everything a later --setenv adds.
        for (const k of Object.keys(env)) delete env[k];
        break;
      case "--lock-file":
        lockFiles.push(a0);
        break;
      case "--sync-fd":
        syncFd = parseFd(a0);
        break;
      case "--block-fd":
        blockFd = parseFd(a0);
        break;
      case "--userns-block-fd":
        usernsBlockFd = parseFd(a0);
        break;
      case "--info-fd":
        infoFd = parseFd(a0);
        if (!io.isOpen(infoFd)) fail(`Invalid fd: ${a0}`);
        break;
      case "--json-status-fd":
        jsonStatusFd = parseFd(a0);
        if (!io.isOpen(jsonStatusFd)) fail(`Invalid fd: ${a0}`);
        break;
      case "--new-session":
        newSession = true;
        break;
      case "--die-with-parent":
        dieWithParent = true;
        break;
      case "--as-pid-1":
        asPid1 = true;
        break;
      case "--cap-add":
      case "--cap-drop": {
        const cap = parseCap(a0);
        capsUsed = true;
        const names = cap === "ALL" ? (CAPABILITIES as readonly CapabilityName[]) : [cap];
        for (const c of names) {
          if (arg === "--cap-add") caps.add(c);
          else caps.delete(c);
        }
        break;
      }
      case "--seccomp": {
        const fd = parseFd(a0);
        if (addSeccomp.length > 0) fail("--seccomp cannot be combined with --add-seccomp-fd");
        seccomp = readData(fd, "seccomp data");
        if (seccomp.length % 8 !== 0) fail("Invalid seccomp data, must be multiple of 8");
        break;
      }
      case "--add-seccomp-fd": {
        const fd = parseFd(a0);
        if (seccomp !== undefined) fail("--add-seccomp-fd cannot be combined with --seccomp");
        const data = readData(fd, "seccomp data");
        if (data.length % 8 !== 0) fail("Invalid seccomp data, must be multiple of 8");
        addSeccomp.push(data);
        break;
      }
      case "--exec-label":
      case "--file-label":
        // No SELinux labelling here, as bwrap built without it answers.
        fail("labeling not supported on this system");
        break;
      case "--perms":
        if (nextPerms !== undefined) fail("--perms given twice for the same action");
        nextPerms = parseOctal(a0, "--perms");
        break;
      case "--size":
        if (nextSize !== undefined) fail("--size given twice for the same action");
        nextSize = parseSize(a0);
        break;
      case "--bind":
      case "--bind-try":
      case "--dev-bind":
      case "--dev-bind-try":
      case "--ro-bind":
      case "--ro-bind-try":
        fs.push({
          op: "bind",
          source: a0,
          dest: a1,
          ...(arg.startsWith("--ro-") ? { readOnly: true } : {}),
          ...(arg.startsWith("--dev-") ? { devices: true } : {}),
          ...(arg.endsWith("-try") ? { optional: true } : {}),
        });
        break;
      case "--bind-fd":
      case "--ro-bind-fd": {
        const fd = parseFd(a0);
        if (!io.isOpen(fd)) fail(`Can't find source path /proc/self/fd/${fd}: No such file or directory`);
        fs.push({ op: "bind", source: { fd }, dest: a1, ...(arg === "--ro-bind-fd" ? { readOnly: true } : {}) });
        break;
      }
      case "--remount-ro":
        fs.push({ op: "remountReadOnly", dest: a0 });
        break;
      case "--overlay-src":
        overlaySrc.push(a0);
        break;
      case "--overlay":
      case "--tmp-overlay":
      case "--ro-overlay": {
        const need = arg === "--ro-overlay" ? 2 : 1;
        if (overlaySrc.length < need) fail(`${arg} requires at least ${need === 2 ? "two" : "one"} --overlay-src`);
        const dest = arg === "--overlay" ? (v[2] as string) : a0;
        // Overlay layers are host paths; bwrap takes relative ones from the caller's cwd.
        const host = (p: string): string => resolvePath(context.cwd, p);
        fs.push({
          op: "overlay",
          dest,
          lower: overlaySrc.map(host),
          ...(arg === "--overlay"
            ? { upper: host(a0), work: host(a1) }
            : arg === "--tmp-overlay"
              ? { upper: "tmpfs" as const }
              : {}),
        });
        overlaySrc = [];
        break;
      }
      case "--proc":
        fs.push({ op: "proc", dest: a0 });
        break;
      case "--dev":
        fs.push({ op: "dev", dest: a0 });
        break;
      case "--tmpfs": {
        const mode = takePerms();
        const size = nextSize;
        nextSize = undefined;
        fs.push({
          op: "tmpfs",
          dest: a0,
          ...(mode !== undefined ? { mode } : {}),
          ...(size !== undefined ? { size } : {}),
        });
        break;
      }
      case "--mqueue":
        fs.push({ op: "mqueue", dest: a0 });
        break;
      case "--dir": {
        const mode = takePerms();
        fs.push({ op: "dir", dest: a0, ...(mode !== undefined ? { mode } : {}) });
        break;
      }
      case "--file":
      case "--bind-data":
      case "--ro-bind-data": {
        const fd = parseFd(a0);
        const mode = takePerms();
        if (!io.isOpen(fd)) fail(`Can't write data to file ${a1}: Bad file descriptor`);
        // --file makes 0666 files, the bound data files are 0600 (bwrap.xml: "this is not the same").
        const bind = arg === "--file" ? undefined : arg === "--ro-bind-data" ? ("ro" as const) : ("rw" as const);
        fs.push({
          op: "file",
          dest: a1,
          content: { fd },
          mode: mode ?? (bind ? 0o600 : 0o666),
          ...(bind ? { bind } : {}),
        });
        break;
      }
      case "--symlink":
        fs.push({ op: "symlink", target: a0, dest: a1 });
        break;
      case "--chmod":
        fs.push({ op: "chmod", mode: parseOctal(a0, "--chmod"), dest: a1 });
        break;
    }
  }

  if (overlaySrc.length > 0)
    fail("--overlay-src must be followed by another --overlay-src or one of --overlay, --tmp-overlay, or --ro-overlay");
  if (queue.length === 0) throw new BwrapArgsError("usage", true, levelPrefix);

  // Checks bwrap makes once the whole list is read, in its order.
  if (usernsFd !== undefined && unshare.user) fail("--userns not compatible --unshare-user");
  if (disableUserns && !unshare.user) fail("--disable-userns requires --unshare-user");
  if (usernsBlockFd !== undefined && !unshare.user) fail("--userns-block-fd requires --unshare-user");
  if (usernsBlockFd !== undefined && infoFd === undefined) fail("--userns-block-fd requires --info-fd");
  if (usernsFd !== undefined && !io.isOpen(usernsFd))
    fail("Joining specified user namespace failed: Bad file descriptor");
  if (pidnsFd !== undefined && !io.isOpen(pidnsFd)) fail("Joining specified pid namespace failed: Bad file descriptor");

  // An unprivileged caller (not root, bwrap not setuid) always gets a user namespace: bwrap's "DWIM".
  const makeUser =
    usernsFd === undefined &&
    (unshare.user || (unshare.userTry && context.userNamespaces !== false) || context.uid !== 0);
  if (uid !== undefined && !makeUser && usernsFd === undefined)
    fail("Specifying --uid requires --unshare-user or --userns");
  if (gid !== undefined && !makeUser && usernsFd === undefined)
    fail("Specifying --gid requires --unshare-user or --userns");
  if (hostname !== undefined && !unshare.uts) fail("Specifying --hostname requires --unshare-uts");
  if (asPid1 && !unshare.pid) fail("Specifying --as-pid-1 requires --unshare-pid");

  const sandboxUid = uid ?? context.uid;
  const sandboxGid = gid ?? context.gid;
  const namespaces: NamespaceKind[] = [];
  if (makeUser) namespaces.push("user");
  namespaces.push("mount");
  if (unshare.pid) namespaces.push("pid");
  if (unshare.net) namespaces.push("net");
  if (unshare.ipc) namespaces.push("ipc");
  if (unshare.uts) namespaces.push("uts");
  if (unshare.cgroup || (unshare.cgroupTry && context.cgroupNamespaces !== false)) namespaces.push("cgroup");

  // Without a pid namespace of its own bwrap binds the caller's /proc ("we share the pid namespace anyway"):
  // a new procfs would belong to a pid namespace owned by another user namespace, which the kernel refuses.
  const ownPidns = unshare.pid || pidnsFd !== undefined;
  const plan: FsOperation[] = ownPidns
    ? fs
    : fs.map((op) => (op.op === "proc" ? { op: "bind", source: "/proc", dest: op.dest } : op));
  const join: number[] = [];
  if (usernsFd !== undefined) join.push(usernsFd);
  if (pidnsFd !== undefined) join.push(pidnsFd);

  // Without --cap-add/--cap-drop bwrap keeps capabilities only for a root caller running as uid 0 in the sandbox.
  // Without --cap-add/--cap-drop a root caller running as uid 0 keeps its sets untouched (no ambient, as bwrap):
  // the kernel's execve rules give that. Every other default is "none", even uid 0 in a user namespace.
  // In a new user namespace the kernel hands out the full set again, so there the root caller's set is given
  // explicitly (cut to its bounding set below), as bwrap applies the caller's permitted set.
  const kept = capsUsed ? [...caps] : context.uid === 0 && sandboxUid === 0 ? (makeUser ? [...caps] : undefined) : [];
  const capabilities = kept && context.bounding ? kept.filter((c) => context.bounding?.has(c)) : kept;

  const cwd = chdir ?? context.cwd;
  // bwrap reads HOME after --setenv/--unsetenv ("--setenv can override the value used here").
  const home = env.HOME;
  env.PWD = cwd;
  const file = queue[0] as string;
  const seccompPrograms = seccomp !== undefined ? [seccomp] : addSeccomp;

  const options: BwrapSpawnOptions = {
    namespaces,
    ...(makeUser
      ? {
          uidMap: `${sandboxUid} ${context.uid} 1`,
          gidMap: `${sandboxGid} ${context.gid} 1`,
          ...(context.uid !== 0 ? { setgroups: "deny" as const } : {}),
        }
      : {}),
    ...(makeUser || usernsFd !== undefined ? { uid: sandboxUid, gid: sandboxGid } : {}),
    ...(join.length > 0 ? { join } : {}),
    // bwrap forks after setns(CLONE_NEWPID), which moves only later children: the program is such a child.
    ...(pidnsFd !== undefined ? { forkAfterJoin: true } : {}),
    // bwrap makes its mount namespace a slave of the caller's: host mounts still propagate in, none out.
    mountPropagation: "slave",
    filesystem: plan,
    ...(hostname !== undefined ? { hostname } : {}),
    ...(capabilities !== undefined ? { capabilities } : {}),
    noNewPrivileges: true,
    ...(seccompPrograms.length > 0 ? { seccomp: seccompPrograms } : {}),
    ...(unshare.pid ? { init: asPid1 ? ("program" as const) : ("reaper" as const) } : {}),
    ...(disableUserns ? { disableUserNamespaces: true } : {}),
    cwd,
    env,
    ...(argv0 !== undefined ? { argv0 } : {}),
    ...(newSession ? { detached: true } : {}),
    ...(dieWithParent ? { parentDeathSignal: "SIGKILL" as const } : {}),
  };
  const frontEnd: BwrapFrontEnd = {
    ...(infoFd !== undefined ? { infoFd } : {}),
    ...(jsonStatusFd !== undefined ? { jsonStatusFd } : {}),
    ...(syncFd !== undefined ? { syncFd } : {}),
    ...(blockFd !== undefined ? { blockFd } : {}),
    ...(usernsBlockFd !== undefined ? { usernsBlockFd } : {}),
    ...(userns2Fd !== undefined ? { userns2Fd } : {}),
    lockFiles,
    levelPrefix,
    assertUserNamespacesDisabled: assertUsernsDisabled,
    dieWithParent,
    cwdFallbacks: chdir !== undefined ? [] : [home, "/"].filter((d): d is string => d !== undefined && d !== cwd),
    warnings,
  };
  return { kind: "run", file, args: queue.slice(1), options, frontEnd };
}
