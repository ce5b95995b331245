/**
 * `userns run`: start a command in new namespaces, with util-linux 2.39+
 * `unshare` flag names (--map-users inner:outer:count ...). The command's
 * exit status passes through (128 + signal number when a signal ended it).
 */
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import type { Command } from "commander";
import { usageError } from "../errors.js";
import { readIdTriple } from "../formats/text.js";
import { IdMap } from "../model/idmap.js";
import type { SandboxOptions } from "../sandbox/types.js";
import type { NamespaceKind, SpawnOptions } from "../spawn/index.js";
import { parseSubid } from "../subid/parse.js";
import { extractSandboxArgs, SANDBOX_FLAGS, type SandboxArgs } from "./sandbox-args.js";

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

/** The `run` flags, one per option of spawn they set. */
export interface RunFlags {
  mapUsers?: string[];
  mapGroups?: string[];
  mapRootUser?: boolean;
  mapCurrentUser?: boolean;
  setgroups?: string;
  mount?: boolean;
  pid?: boolean;
  uts?: boolean;
  ipc?: boolean;
  net?: boolean;
  cgroup?: boolean;
  time?: boolean;
  user?: string;
  group?: string;
  mapWriter?: string;
  json?: boolean;
}

const NS_FLAGS: readonly Exclude<NamespaceKind, "user">[] = ["mount", "pid", "uts", "ipc", "net", "cgroup", "time"];

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function u32(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw usageError(`${what}: ${JSON.stringify(text)} is not a number`);
  const n = Number(text);
  if (n > 0xffffffff) throw usageError(`${what}: ${text} is larger than 4294967295`);
  return n;
}

/** The first subordinate range of this user in /etc/subuid or /etc/subgid (by name or uid), for `auto`. */
function subidRange(file: string, name: string, id: number): { start: number; count: number } {
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw usageError(`auto: cannot read ${file}`);
  }
  // The one subid parser: a malformed line is reported, not skipped silently.
  const { entries, issues } = parseSubid(text);
  const e = entries.find((x) => x.owner === name || x.owner === String(id));
  if (e !== undefined) return { start: e.start, count: e.count };
  const bad = issues.map((i) => `${file}:${i.line}:${i.column}: ${i.message}`);
  throw usageError(`auto: no entry for ${name} in ${file}${bad.length > 0 ? ` (malformed: ${bad.join("; ")})` : ""}`);
}

/** Parses util-linux 2.39+ `inner:outer:count` (or `auto`) into one map line. */
export function parseMapFlag(value: string, kind: "uid" | "gid"): [number, number, number] {
  if (value === "auto") {
    const me = userInfo();
    const r = subidRange(kind === "uid" ? "/etc/subuid" : "/etc/subgid", me.username, kind === "uid" ? me.uid : me.gid);
    return [0, r.start, r.count];
  }
  const flag = `--map-${kind === "uid" ? "users" : "groups"}`;
  const t = readIdTriple(value);
  if (t.ok) return t.values;
  if (t.problem === "shape") throw usageError(`${flag} ${value}: expected inner:outer:count (util-linux 2.39+ order)`);
  if (t.problem === "number") throw usageError(`${flag}: ${JSON.stringify(t.text)} is not a number`);
  throw usageError(`${flag}: ${t.text} is larger than 4294967295`);
}

/** Spawn options with the sandbox part (SandboxOptions joins SpawnOptions with the sandbox core). */
export type RunSpawnOptions = SpawnOptions & SandboxOptions;

/** Turns `run` flags (and the sandbox flags, taken out of argv in order) into spawn options. */
export function runOptions(flags: RunFlags, sandbox?: SandboxArgs): RunSpawnOptions {
  const euid = process.geteuid?.() ?? 0;
  const egid = process.getegid?.() ?? 0;
  const uidLines = (flags.mapUsers ?? []).map((v) => parseMapFlag(v, "uid"));
  const gidLines = (flags.mapGroups ?? []).map((v) => parseMapFlag(v, "gid"));
  let setgroups: "allow" | "deny" | undefined;
  if (flags.mapRootUser && flags.mapCurrentUser)
    throw usageError("--map-root-user and --map-current-user exclude each other");
  // As util-linux: -r / -c map the caller's own ids and deny setgroups (which the self-map needs when unprivileged).
  if (flags.mapRootUser) {
    uidLines.unshift([0, euid, 1]);
    gidLines.unshift([0, egid, 1]);
    setgroups = "deny";
  }
  if (flags.mapCurrentUser) {
    uidLines.unshift([euid, euid, 1]);
    gidLines.unshift([egid, egid, 1]);
    setgroups = "deny";
  }
  if (flags.setgroups !== undefined) {
    if (flags.setgroups !== "allow" && flags.setgroups !== "deny") throw usageError("--setgroups takes allow or deny");
    setgroups = flags.setgroups;
  }
  const implied = sandbox?.namespaces ?? new Set<string>();
  const options: SpawnOptions = {
    namespaces: ["user", ...NS_FLAGS.filter((n) => flags[n] === true || implied.has(n))],
    stdio: "inherit",
  };
  if (uidLines.length > 0) options.uidMap = IdMap.of(...uidLines);
  if (gidLines.length > 0) options.gidMap = IdMap.of(...gidLines);
  if (setgroups !== undefined) options.setgroups = setgroups;
  if (flags.user !== undefined) options.uid = u32(flags.user, "--user");
  if (flags.group !== undefined) options.gid = u32(flags.group, "--group");
  if (flags.mapWriter !== undefined) {
    if (!["auto", "direct", "newuidmap", "self"].includes(flags.mapWriter))
      throw usageError("--map-writer takes auto, direct, newuidmap or self");
    options.mapWriter = flags.mapWriter as SpawnOptions["mapWriter"];
  }
  if (sandbox === undefined) return options;
  if (sandbox.cwd !== undefined) options.cwd = sandbox.cwd;
  if (sandbox.env !== undefined) options.env = sandbox.env;
  if (sandbox.detached !== undefined) options.detached = sandbox.detached;
  if (sandbox.parentDeathSignal !== undefined)
    options.parentDeathSignal = /^\d+$/.test(sandbox.parentDeathSignal)
      ? Number(sandbox.parentDeathSignal)
      : (sandbox.parentDeathSignal as NodeJS.Signals);
  return {
    ...options,
    ...sandbox.sandbox,
    ...(sandbox.filesystem !== undefined ? { filesystem: sandbox.filesystem } : {}),
  };
}

/** The sandbox flags for --help, one line each. */
function sandboxHelp(): string {
  const lines = Object.entries(SANDBOX_FLAGS).map(([f, d]) => `  ${f} ${d.help}`);
  return `\nSandbox (in order; a filesystem plan builds a new root, as bwrap):\n${lines.join("\n")}\n`;
}

/**
 * What `run` says when the program will run unmapped: without --user (or --group) the program keeps the caller's
 * uid (gid), and when the map does not map it (e.g. `--map-users auto`, whose ranges never include the caller's own
 * id), the program sees the overflow id 65534 (nobody). That is util-linux unshare's behaviour too, so `run` keeps it
 * and says so on stderr, with the flags that choose an identity inside.
 */
export function unmappedNote(options: SpawnOptions, euid: number, egid: number): string | undefined {
  const unmapped = (map: SpawnOptions["uidMap"], id: number): boolean =>
    map instanceof IdMap && !map.extents.some((e) => id >= e.lowerFirst && id - e.lowerFirst < e.count);
  const parts: string[] = [];
  if (options.uid === undefined && unmapped(options.uidMap, euid)) parts.push(`your uid ${euid} is not in the uid map`);
  if (options.gid === undefined && unmapped(options.gidMap, egid)) parts.push(`your gid ${egid} is not in the gid map`);
  if (parts.length === 0) return undefined;
  const map = options.uidMap instanceof IdMap ? options.uidMap : undefined;
  const root = map?.extents.some((e) => e.first === 0) ? " (e.g. --user 0 --group 0 for root inside)" : "";
  return `userns: note: ${parts.join(" and ")}: the program runs as nobody (65534) inside; choose an identity with --user/--group${root}\n`;
}

/** Adds `run` to the program. */
export function registerRunCommand(program: Command, io: Io): void {
  // So that `userns run id -u` passes -u to id: options after COMMAND belong to it.
  program.enablePositionalOptions();
  let sandboxArgs: SandboxArgs | undefined;
  const run = program.command("run");
  // The sandbox flags are ordered and some take two values: take them out before commander parses.
  const parseOptions = run.parseOptions.bind(run);
  run.parseOptions = (argv: string[]) => {
    const { args, rest } = extractSandboxArgs(argv);
    sandboxArgs = args;
    return parseOptions(rest);
  };
  run
    .passThroughOptions()
    .description(
      "run COMMAND in a new user namespace (and others), with the given maps; its exit status passes through",
    )
    .option(
      "--map-users <inner:outer:count>",
      "add a uid map line (util-linux 2.39+ order), or auto from /etc/subuid",
      collect,
    )
    .option("--map-groups <inner:outer:count>", "add a gid map line, or auto from /etc/subgid", collect)
    .option("-r, --map-root-user", "map your uid and gid to 0 inside (setgroups deny)")
    .option("-c, --map-current-user", "map your uid and gid to themselves inside (setgroups deny)")
    .option("--setgroups <allow|deny>", "write setgroups before gid_map")
    .option("-m, --mount", "new mount namespace (private propagation)")
    .option("-p, --pid", "new pid namespace (COMMAND is its pid 1)")
    .option("-u, --uts", "new uts namespace")
    .option("-i, --ipc", "new ipc namespace")
    .option("-n, --net", "new network namespace")
    .option("-C, --cgroup", "new cgroup namespace")
    .option("-T, --time", "new time namespace")
    .option("--user <uid>", "run as this uid inside")
    .option("--group <gid>", "run as this gid inside")
    .option("--map-writer <auto|direct|newuidmap|self>", "how to write the maps (default auto)")
    .option("--json", "after COMMAND exits, print pid, maps written and exit status as JSON")
    .addHelpText("after", sandboxHelp())
    .argument("<command>", "the program (searched in PATH)")
    .argument("[args...]", "its arguments (put -- before COMMAND)")
    .action(async (command: string, args: string[], flags: RunFlags) => {
      const options = runOptions(flags, sandboxArgs);
      const note = unmappedNote(options, process.geteuid?.() ?? 0, process.getegid?.() ?? 0);
      if (note !== undefined) io.err(note);
      // Loaded on use: the CLI loads every command's module to build --help, so each keeps its imports to itself.
      const [{ spawn }, { signalNumber }] = await Promise.all([
        import("../spawn/index.js"),
        import("../spawn/child-process.js"),
      ]);
      const child = spawn(command, args, options);
      // Signals meant for the command reach it through the terminal; here they must not kill us first.
      const forward = (sig: NodeJS.Signals): void => {
        child.kill(sig);
      };
      const sigs: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];
      for (const s of sigs) process.on(s, forward);
      try {
        const st = await child;
        const status = st.code ?? 128 + signalNumber(st.signal ?? "SIGKILL");
        if (flags.json) {
          io.out(
            `${JSON.stringify({ pid: st.pid, mapping: child.mapping ?? null, code: st.code, signal: st.signal, status })}\n`,
          );
        }
        process.exitCode = status;
      } finally {
        for (const s of sigs) process.off(s, forward);
      }
    });
}
