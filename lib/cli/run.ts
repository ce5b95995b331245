/**
 * `userns run`: start a command in new namespaces, with util-linux 2.39+
 * `unshare` flag names (--map-users inner:outer:count ...). The command's
 * exit status passes through (128 + signal number when a signal ended it).
 */
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import type { Command } from "commander";
import { usageError } from "../errors.js";
import { IdMap } from "../model/idmap.js";
import type { NamespaceKind, SpawnOptions } from "../spawn/index.js";
import { registerShowCommand } from "./show.js";

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
  for (const line of text.split("\n")) {
    const [owner, start, count] = line.split(":");
    if ((owner === name || owner === String(id)) && start !== undefined && count !== undefined)
      return { start: u32(start, file), count: u32(count, file) };
  }
  throw usageError(`auto: no entry for ${name} in ${file}`);
}

/** Parses util-linux 2.39+ `inner:outer:count` (or `auto`) into one map line. */
export function parseMapFlag(value: string, kind: "uid" | "gid"): [number, number, number] {
  if (value === "auto") {
    const me = userInfo();
    const r = subidRange(kind === "uid" ? "/etc/subuid" : "/etc/subgid", me.username, kind === "uid" ? me.uid : me.gid);
    return [0, r.start, r.count];
  }
  const parts = value.split(":");
  if (parts.length !== 3)
    throw usageError(
      `--map-${kind === "uid" ? "users" : "groups"} ${value}: expected inner:outer:count (util-linux 2.39+ order)`,
    );
  const flag = `--map-${kind === "uid" ? "users" : "groups"}`;
  return [u32(parts[0]!, flag), u32(parts[1]!, flag), u32(parts[2]!, flag)];
}

/** Turns `run` flags into spawn options. */
export function runOptions(flags: RunFlags): SpawnOptions {
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
  const options: SpawnOptions = {
    namespaces: ["user", ...NS_FLAGS.filter((n) => flags[n] === true)],
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
  return options;
}

/** Adds `run` and `show` to the program. */
export function registerRunCommands(program: Command, io: Io): void {
  // So that `userns run id -u` passes -u to id: options after COMMAND belong to it.
  program.enablePositionalOptions();
  program
    .command("run")
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
    .argument("<command>", "the program (searched in PATH)")
    .argument("[args...]", "its arguments (put -- before COMMAND)")
    .action(async (command: string, args: string[], flags: RunFlags) => {
      const options = runOptions(flags);
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
  registerShowCommand(program, io);
}
