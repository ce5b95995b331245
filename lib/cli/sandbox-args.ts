/**
 * The sandbox flags of `userns run`: the ONE mapping from command-line flags to the
 * library's sandbox options (FsOperation and the rest of SandboxOptions). Names are
 * util-linux `unshare`'s where it has the flag (--mount-proc, --root, --wd, --kill-child),
 * else bubblewrap's (bwrap.xml). A filesystem plan is ordered, and some flags take two
 * values (`--bind SRC DEST`), which commander's option model does not express; so the
 * flags are taken out of the argument list here, in order, before commander parses the rest.
 */
import { readFileSync } from "node:fs";
import { usageError } from "../errors.js";
import { CAPABILITIES, type Capability, isCapability } from "../model/caps.js";
import type { CapabilityName, FsOperation, SandboxOptions } from "../sandbox/types.js";

/** What the sandbox flags asked for: the ordered plan and the process options. */
export interface SandboxArgs {
  /** The filesystem plan, in command-line order; undefined when no flag made one. */
  filesystem: FsOperation[] | undefined;
  sandbox: Omit<SandboxOptions, "filesystem">;
  /** Namespaces the flags imply (--hostname: uts; a filesystem plan: mount). */
  namespaces: Set<"mount" | "uts" | "pid">;
  cwd?: string;
  env?: Record<string, string | undefined>;
  detached?: boolean;
  parentDeathSignal?: string;
}

interface State extends SandboxArgs {
  perms: number | undefined;
  size: number | undefined;
  overlaySrc: string[];
  caps: Set<Capability> | undefined;
  uid?: number;
}

type Handler = (s: State, v: readonly string[]) => void;

function octal(text: string, flag: string): number {
  if (!/^[0-7]{1,4}$/.test(text)) throw usageError(`${flag} ${text}: expected an octal mode such as 0755`);
  return Number.parseInt(text, 8);
}

function fdArg(text: string, flag: string): number {
  if (!/^\d+$/.test(text)) throw usageError(`${flag} ${text}: expected a file descriptor number`);
  return Number(text);
}

function plan(s: State): FsOperation[] {
  s.filesystem ??= [];
  s.namespaces.add("mount");
  return s.filesystem;
}

/** Takes the pending --perms (and --size) for the next operation that uses them, as bwrap does. */
function takePerms(s: State): number | undefined {
  const p = s.perms;
  s.perms = undefined;
  return p;
}

function bind(readOnly: boolean, devices: boolean, optional: boolean): Handler {
  return (s, [source, dest]) => {
    plan(s).push({
      op: "bind",
      source: source!,
      dest: dest!,
      ...(readOnly ? { readOnly } : {}),
      ...(devices ? { devices } : {}),
      ...(optional ? { optional } : {}),
    });
  };
}

function capName(text: string, flag: string): Capability | "ALL" {
  const up = text.toUpperCase();
  if (up === "ALL") return "ALL";
  const name = up.startsWith("CAP_") ? up : `CAP_${up}`;
  if (!isCapability(name)) throw usageError(`${flag} ${text}: unknown capability`);
  return name;
}

/** The caps a sandboxed program starts from before --cap-add/--cap-drop: bwrap's (all for uid 0, else none). */
function capBase(s: State, uid: number | undefined): Set<Capability> {
  s.caps ??= new Set(uid === undefined || uid === 0 ? CAPABILITIES : []);
  return s.caps;
}

/** Every sandbox flag: its value count and what it does. The order of the plan is the order of the flags. */
export const SANDBOX_FLAGS: Readonly<Record<string, { arity: number; help: string; run: Handler }>> = {
  "--bind": { arity: 2, help: "SRC DEST: bind SRC read-write at DEST", run: bind(false, false, false) },
  "--bind-try": { arity: 2, help: "SRC DEST: as --bind, skipped when SRC is missing", run: bind(false, false, true) },
  "--ro-bind": { arity: 2, help: "SRC DEST: bind read-only, submounts too", run: bind(true, false, false) },
  "--ro-bind-try": {
    arity: 2,
    help: "SRC DEST: as --ro-bind, skipped when SRC is missing",
    run: bind(true, false, true),
  },
  "--dev-bind": { arity: 2, help: "SRC DEST: bind allowing device nodes", run: bind(false, true, false) },
  "--dev-bind-try": {
    arity: 2,
    help: "SRC DEST: as --dev-bind, skipped when SRC is missing",
    run: bind(false, true, true),
  },
  "--root": {
    arity: 1,
    help: "DIR: the new root is DIR (a bind of DIR at /, as unshare --root)",
    run: (s, [dir]) => plan(s).push({ op: "bind", source: dir!, dest: "/" }),
  },
  "--tmpfs": {
    arity: 1,
    help: "DEST: a new tmpfs (mode from --perms, size from --size)",
    run: (s, [dest]) => {
      const mode = takePerms(s);
      const size = s.size;
      s.size = undefined;
      plan(s).push({
        op: "tmpfs",
        dest: dest!,
        ...(mode !== undefined ? { mode } : {}),
        ...(size !== undefined ? { size } : {}),
      });
    },
  },
  "--proc": { arity: 1, help: "DEST: a new procfs", run: (s, [dest]) => plan(s).push({ op: "proc", dest: dest! }) },
  "--dev": { arity: 1, help: "DEST: a minimal /dev", run: (s, [dest]) => plan(s).push({ op: "dev", dest: dest! }) },
  "--mqueue": { arity: 1, help: "DEST: a new mqueue", run: (s, [dest]) => plan(s).push({ op: "mqueue", dest: dest! }) },
  "--dir": {
    arity: 1,
    help: "DEST: a directory (mode from --perms)",
    run: (s, [dest]) => {
      const mode = takePerms(s);
      plan(s).push({ op: "dir", dest: dest!, ...(mode !== undefined ? { mode } : {}) });
    },
  },
  "--symlink": {
    arity: 2,
    help: "TARGET DEST: a symbolic link",
    run: (s, [target, dest]) => plan(s).push({ op: "symlink", target: target!, dest: dest! }),
  },
  "--file": {
    arity: 2,
    help: "FD DEST: a file with the content of FD (mode from --perms)",
    run: (s, [fd, dest]) => {
      const mode = takePerms(s);
      plan(s).push({
        op: "file",
        content: { fd: fdArg(fd!, "--file") },
        dest: dest!,
        ...(mode !== undefined ? { mode } : {}),
      });
    },
  },
  "--bind-data": {
    arity: 2,
    help: "FD DEST: the content of FD bound read-write at DEST",
    run: (s, [fd, dest]) => {
      const mode = takePerms(s);
      plan(s).push({
        op: "file",
        content: { fd: fdArg(fd!, "--bind-data") },
        dest: dest!,
        bind: "rw",
        ...(mode !== undefined ? { mode } : {}),
      });
    },
  },
  "--ro-bind-data": {
    arity: 2,
    help: "FD DEST: the content of FD bound read-only at DEST",
    run: (s, [fd, dest]) => {
      const mode = takePerms(s);
      plan(s).push({
        op: "file",
        content: { fd: fdArg(fd!, "--ro-bind-data") },
        dest: dest!,
        bind: "ro",
        ...(mode !== undefined ? { mode } : {}),
      });
    },
  },
  "--chmod": {
    arity: 2,
    help: "OCTAL PATH: chmod PATH",
    run: (s, [mode, dest]) => plan(s).push({ op: "chmod", mode: octal(mode!, "--chmod"), dest: dest! }),
  },
  "--remount-ro": {
    arity: 1,
    help: "DEST: remount DEST read-only",
    run: (s, [dest]) => plan(s).push({ op: "remountReadOnly", dest: dest! }),
  },
  "--overlay-src": {
    arity: 1,
    help: "SRC: a lower layer for the next overlay (bottom first)",
    run: (s, [src]) => {
      s.overlaySrc.push(src!);
    },
  },
  "--overlay": {
    arity: 3,
    help: "RWSRC WORKDIR DEST: a writable overlay of the --overlay-src layers",
    run: (s, [upper, work, dest]) => {
      plan(s).push({ op: "overlay", lower: s.overlaySrc, upper: upper!, work: work!, dest: dest! });
      s.overlaySrc = [];
    },
  },
  "--tmp-overlay": {
    arity: 1,
    help: "DEST: an overlay whose changes go to a temporary tmpfs",
    run: (s, [dest]) => {
      plan(s).push({ op: "overlay", lower: s.overlaySrc, upper: "tmpfs", dest: dest! });
      s.overlaySrc = [];
    },
  },
  "--ro-overlay": {
    arity: 1,
    help: "DEST: a read-only overlay",
    run: (s, [dest]) => {
      plan(s).push({ op: "overlay", lower: s.overlaySrc, dest: dest! });
      s.overlaySrc = [];
    },
  },
  "--perms": {
    arity: 1,
    help: "OCTAL: mode of the next --tmpfs, --dir, --file or --bind-data",
    run: (s, [m]) => {
      s.perms = octal(m!, "--perms");
    },
  },
  "--size": {
    arity: 1,
    help: "BYTES: size of the next --tmpfs",
    run: (s, [n]) => {
      if (!/^\d+$/.test(n!)) throw usageError(`--size ${n}: expected a number of bytes`);
      s.size = Number(n);
    },
  },
  "--mount-proc": {
    arity: -1,
    help: "[=DIR]: a new procfs at DIR (default /proc); implies --pid (as unshare)",
    run: (s, [dir]) => {
      plan(s).push({ op: "proc", dest: dir ?? "/proc" });
      s.namespaces.add("pid");
    },
  },
  "--hostname": {
    arity: 1,
    help: "NAME: hostname in a new uts namespace",
    run: (s, [name]) => {
      s.sandbox = { ...s.sandbox, hostname: name! };
      s.namespaces.add("uts");
    },
  },
  "--chdir": {
    arity: 1,
    help: "DIR: working directory inside",
    run: (s, [d]) => {
      s.cwd = d!;
    },
  },
  "--wd": {
    arity: 1,
    help: "DIR: working directory inside (as unshare)",
    run: (s, [d]) => {
      s.cwd = d!;
    },
  },
  "--setenv": {
    arity: 2,
    help: "VAR VALUE: set VAR",
    run: (s, [k, v]) => {
      s.env = { ...(s.env ?? { ...process.env }), [k!]: v! };
    },
  },
  "--unsetenv": {
    arity: 1,
    help: "VAR: unset VAR",
    run: (s, [k]) => {
      const env = { ...(s.env ?? { ...process.env }) };
      delete env[k!];
      s.env = env;
    },
  },
  "--clearenv": {
    arity: 0,
    help: "start from an empty environment",
    run: (s) => {
      s.env = {};
    },
  },
  "--new-session": {
    arity: 0,
    help: "run in a new session (setsid)",
    run: (s) => {
      s.detached = true;
    },
  },
  "--die-with-parent": {
    arity: 0,
    help: "SIGKILL the program when userns exits",
    run: (s) => {
      s.parentDeathSignal = "SIGKILL";
    },
  },
  "--kill-child": {
    arity: -1,
    help: "[=SIGNAL]: signal the program when userns exits (default SIGKILL, as unshare)",
    run: (s, [sig]) => {
      const up = sig?.toUpperCase();
      s.parentDeathSignal =
        up === undefined ? "SIGKILL" : /^\d+$/.test(up) ? up : up.startsWith("SIG") ? up : `SIG${up}`;
    },
  },
  "--as-pid-1": {
    arity: 0,
    help: "the program itself is pid 1 of the new pid namespace",
    run: (s) => {
      s.sandbox = { ...s.sandbox, init: "program" };
    },
  },
  "--reaper": {
    arity: 0,
    help: "a small pid 1 reaps orphans and forwards signals; the program is its child",
    run: (s) => {
      s.sandbox = { ...s.sandbox, init: "reaper" };
      s.namespaces.add("pid");
    },
  },
  "--cap-add": {
    arity: 1,
    help: "CAP|ALL: keep CAP (in order with --cap-drop)",
    run: (s, [c]) => {
      const name = capName(c!, "--cap-add");
      const caps = capBase(s, s.uid);
      if (name === "ALL") for (const x of CAPABILITIES) caps.add(x);
      else caps.add(name);
    },
  },
  "--cap-drop": {
    arity: 1,
    help: "CAP|ALL: drop CAP (in order with --cap-add)",
    run: (s, [c]) => {
      const name = capName(c!, "--cap-drop");
      const caps = capBase(s, s.uid);
      if (name === "ALL") caps.clear();
      else caps.delete(name);
    },
  },
  "--no-new-privs": {
    arity: 0,
    help: "set no_new_privs",
    run: (s) => {
      s.sandbox = { ...s.sandbox, noNewPrivileges: true };
    },
  },
  "--disable-userns": {
    arity: 0,
    help: "the program may not create further user namespaces",
    run: (s) => {
      s.sandbox = { ...s.sandbox, disableUserNamespaces: true };
    },
  },
  "--seccomp": {
    arity: 1,
    help: "FD: install the classic BPF program read from FD (installed last)",
    run: (s, [fd]) => {
      const bytes = new Uint8Array(readFileSync(fdArg(fd!, "--seccomp")));
      s.sandbox = { ...s.sandbox, seccomp: [...(s.sandbox.seccomp ?? []), bytes] };
    },
  },
};

/**
 * Takes the sandbox flags out of `argv` (the `run` command's own arguments, up to the command),
 * in order, and returns what they ask for plus the remaining arguments for commander.
 * `uid` is the --user value when known (the base of --cap-add/--cap-drop, as bwrap).
 */
export function extractSandboxArgs(argv: readonly string[]): { args: SandboxArgs; rest: string[] } {
  const s: State = {
    filesystem: undefined,
    sandbox: {},
    namespaces: new Set(),
    perms: undefined,
    size: undefined,
    overlaySrc: [],
    caps: undefined,
  };
  // --user first, wherever it is: it decides the capability base.
  const u = argv.indexOf("--user");
  if (u >= 0 && /^\d+$/.test(argv[u + 1] ?? "")) s.uid = Number(argv[u + 1]);
  const rest: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") break;
    // The command starts at the first operand (options after it belong to the command).
    if (!a.startsWith("-")) break;
    const eq = a.indexOf("=");
    const name = eq > 0 ? a.slice(0, eq) : a;
    const flag = SANDBOX_FLAGS[name];
    if (flag === undefined) {
      rest.push(a);
      // A value of a commander option (--user 0): keep it with its flag.
      if (eq < 0 && VALUE_FLAGS.has(a) && i + 1 < argv.length) rest.push(argv[++i]!);
      continue;
    }
    let values: string[];
    if (flag.arity < 0) values = eq > 0 ? [a.slice(eq + 1)] : [];
    // One value may also be attached (`--wd=DIR`, `--root=DIR`, as util-linux's getopt takes them).
    else if (flag.arity === 1 && eq > 0) values = [a.slice(eq + 1)];
    else {
      if (eq > 0) throw usageError(`${name} takes ${flag.arity} separate value(s), not ${name}=...`);
      values = argv.slice(i + 1, i + 1 + flag.arity);
      if (values.length < flag.arity) throw usageError(`${name} needs ${flag.arity} value(s): ${flag.help}`);
      i += flag.arity;
    }
    flag.run(s, values);
  }
  rest.push(...argv.slice(i));
  if (s.overlaySrc.length > 0)
    throw usageError("--overlay-src without a following --overlay, --tmp-overlay or --ro-overlay");
  if (s.perms !== undefined) throw usageError("--perms without a following --tmpfs, --dir, --file or --bind-data");
  if (s.caps !== undefined) {
    const caps = [...s.caps] as CapabilityName[];
    s.sandbox = { ...s.sandbox, capabilities: caps.length === CAPABILITIES.length ? "all" : caps };
  }
  const { perms: _p, size: _s, overlaySrc: _o, caps: _c, uid: _u, ...args } = s;
  return { args, rest };
}

/** The run command's own options that take a value (so that their value is not read as the command). */
const VALUE_FLAGS = new Set(["--map-users", "--map-groups", "--setgroups", "--user", "--group", "--map-writer"]);
