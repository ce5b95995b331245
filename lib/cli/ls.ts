/**
 * `userns ls [--tree] [--check] [--json]`: every user namespace on the host
 * this process can find, with identity, parent, owner, holders and maps.
 */
import type { Command } from "commander";
import type { NamespaceCheck } from "../inventory/check.js";
import type { UserNamespaceEntry, UserNamespaceInventory } from "../inventory/inventory.js";
import type { IdMap } from "../model/idmap.js";
import { exitCodeOfError } from "./io.js";
import { formatTable } from "./table.js";

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const mapText = (m: IdMap): string[] => m.extents.map((e) => `${e.first} ${e.lowerFirst} ${e.count}`);

/** The JSON shape of one namespace (bigints as strings, maps as `inside outside count` lines). */
export function entryJson(e: UserNamespaceEntry): Record<string, unknown> {
  return {
    ino: String(e.ino),
    id: e.id === undefined ? null : String(e.id),
    parent:
      e.parent === null
        ? null
        : { ino: String(e.parent.ino), id: e.parent.id === undefined ? null : String(e.parent.id) },
    depth: e.depth,
    ownerUid: e.ownerUid,
    initial: e.initial,
    current: e.current,
    pids: e.pids,
    heldBy: e.heldBy.map((h) =>
      h.kind === "owned"
        ? { kind: h.kind, type: h.type, ino: String(h.ino), via: h.via }
        : h.kind === "child"
          ? { kind: h.kind, ino: String(h.ino) }
          : h,
    ),
    setgroups: e.setgroups,
    uidMap: mapText(e.uidMap),
    gidMap: mapText(e.gidMap),
    lowerIdsIn: e.lowerIdsIn,
    mapsReadVia: e.mapsReadVia,
    parentView: e.parentView ? { uidMap: mapText(e.parentView.uidMap), gidMap: mapText(e.parentView.gidMap) } : null,
  };
}

/** The JSON document `userns ls --json` prints. */
export function inventoryJson(
  inv: UserNamespaceInventory,
  checks?: readonly NamespaceCheck[],
): Record<string, unknown> {
  const d = inv.discovery;
  return {
    discovery: {
      method: d.method,
      listns: d.listns.available ? { available: true, ids: d.listns.ids.map(String) } : d.listns,
      processes: d.processes,
      hiddenProcesses: d.hiddenProcesses,
      mountNamespaces: d.mountNamespaces,
    },
    namespaces: inv.namespaces.map(entryJson),
    unreached: inv.unreached.map(String),
    ...(checks ? { checks: checks.map((c) => ({ ...c, ino: String(c.ino) })) } : {}),
  };
}

function holders(e: UserNamespaceEntry): string {
  const parts: string[] = [];
  if (e.pids.length > 0) parts.push(`${e.pids.length} proc${e.pids.length > 1 ? "s" : ""} (pid ${e.pids[0]})`);
  for (const h of e.heldBy) {
    if (h.kind === "fd") parts.push(`fd ${h.fd} of pid ${h.pid}`);
    else if (h.kind === "mount") parts.push(`mount ${h.mountPoint} (mnt:[${h.mntNs.replace(/\D/g, "")}])`);
    else if (h.kind === "owned") parts.push(`owns ${h.type}:[${h.ino}]`);
  }
  const children = e.heldBy.filter((h) => h.kind === "child").length;
  if (children > 0) parts.push(`${children} child ns`);
  return parts.join(", ") || "-";
}

/** The lines under the `ls` table: how the namespaces were found, and the listns ids the /proc walk did not reach. */
export function discoveryLines(inv: UserNamespaceInventory): string {
  const d = inv.discovery;
  const how =
    d.method === "listns"
      ? "listns(2)"
      : `/proc walk (listns(2): ${d.listns.available ? "available" : d.listns.code}): ${d.processes} processes${d.hiddenProcesses ? ` (${d.hiddenProcesses} not ours to read)` : ""}, their fds, nsfs mounts of ${d.mountNamespaces} mount namespaces`;
  const unreached =
    inv.unreached.length > 0 ? `listns ids not reached through /proc: ${inv.unreached.join(", ")}\n` : "";
  return `found by ${how}; maps read from this process's namespace, PARENT VIEW from the model's readback rules\n${unreached}`;
}

/** The options of `userns ls`. */
export interface LsOptions {
  tree?: boolean;
  check?: boolean;
  json?: boolean;
}

/** Runs `userns ls`: sets `process.exitCode` to 1 when `--check` finds a disagreement. */
export async function runLs(io: Io, opts: LsOptions): Promise<void> {
  // The /proc walk starts on other threads first, and the inventory's modules load meanwhile (they are loaded on
  // use: the CLI loads every command's module to build --help, so each keeps its imports to itself).
  const { native } = await import("../kernel/native.js");
  const walk = native().scanProcUsernsAsync(true);
  walk.catch(() => undefined); // a failure is thrown where it is awaited, below, not reported as unhandled meanwhile
  const { inventoryOf, probeListns } = await import("../inventory/inventory.js");
  const inv = inventoryOf(probeListns(), await walk);
  const checks = opts.check ? await (await import("../inventory/check.js")).checkInventory(inv) : undefined;
  if (checks?.some((c) => c.result === "disagree")) process.exitCode = 1;
  if (opts.json) {
    io.out(`${JSON.stringify(inventoryJson(inv, checks))}\n`);
    return;
  }
  const byIno = new Map(inv.namespaces.map((e) => [e.ino, e]));
  const children = new Map<bigint | null, UserNamespaceEntry[]>();
  for (const e of inv.namespaces) {
    const k = e.parent !== null && byIno.has(e.parent.ino) ? e.parent.ino : null;
    children.set(k, [...(children.get(k) ?? []), e]);
  }
  const rows: string[][] = [];
  const checkOf = new Map(checks?.map((c) => [c.ino, c.result]));
  const row = (e: UserNamespaceEntry, prefix: string): void => {
    const uid = mapText(e.uidMap);
    const gid = mapText(e.gidMap);
    const pv = e.parentView ? mapText(e.parentView.uidMap) : [];
    const n = Math.max(uid.length, gid.length, 1);
    for (let i = 0; i < n; i++) {
      rows.push(
        i === 0
          ? [
              `${prefix}user:[${e.ino}]${e.initial ? " initial" : ""}${e.current ? " *" : ""}`,
              e.id === undefined ? "-" : String(e.id),
              String(e.ownerUid),
              holders(e),
              e.setgroups,
              uid[0] ?? "-",
              gid[0] ?? "-",
              pv[0] ?? "-",
              ...(checks ? [checkOf.get(e.ino) ?? "-"] : []),
            ]
          : ["", "", "", "", "", uid[i] ?? "", gid[i] ?? "", pv[i] ?? "", ...(checks ? [""] : [])],
      );
    }
  };
  if (opts.tree) {
    const walk = (k: bigint | null, prefix: string): void => {
      const list = children.get(k) ?? [];
      list.forEach((e, i) => {
        const last = i === list.length - 1;
        row(e, k === null ? "" : `${prefix}${last ? "└─" : "├─"}`);
        walk(e.ino, k === null ? "" : `${prefix}${last ? "  " : "│ "}`);
      });
    };
    walk(null, "");
  } else {
    for (const e of inv.namespaces) row(e, "");
  }
  io.out(
    formatTable(rows, {
      header: [
        "NAMESPACE",
        "NS_ID",
        "OWNER",
        "HELD BY",
        "SETGROUPS",
        "UID_MAP",
        "GID_MAP",
        "PARENT VIEW (uid)",
        ...(checks ? ["CHECK"] : []),
      ],
    }),
  );
  io.out(discoveryLines(inv));
}

/** Adds `ls` to the program. */
export function registerLsCommand(program: Command, io: Io): void {
  program
    .command("ls")
    .description("list every user namespace on the host: identity, parent, owner, holders and maps")
    .option("--tree", "draw the parent/child tree")
    .option("--check", "cross-check each namespace's parent view against a real reader in the parent")
    .option("--json", "print JSON")
    .addHelpText("after", "\nExamples:\n  $ userns ls\n  $ userns ls --tree\n  $ userns ls --json --check\n")
    .action((opts: LsOptions) => runLs(io, opts));
}

/**
 * The options of a plain `ls` command line (`ls` and any of `--json`, `--tree`, `--check`, each at most once);
 * undefined for anything else, which commander handles (help, errors, other commands).
 */
export function plainLsOptions(argv: readonly string[]): LsOptions | undefined {
  if (argv[0] !== "ls") return undefined;
  const opts: LsOptions = {};
  for (const a of argv.slice(1)) {
    const k = a === "--json" ? "json" : a === "--tree" ? "tree" : a === "--check" ? "check" : undefined;
    if (k === undefined || opts[k] === true) return undefined;
    opts[k] = true;
  }
  return opts;
}

/**
 * `userns ls` without building the whole command line: bin/userns.js tries this first, because `ls` is timed
 * against lsns and commander with every command's modules is a large part of a run. Returns the exit code, or
 * undefined when `argv` is not a plain `ls` command line (see {@link plainLsOptions}).
 */
export async function plainLsMain(argv: readonly string[]): Promise<number | undefined> {
  const opts = plainLsOptions(argv);
  if (opts === undefined) return undefined;
  const io: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };
  try {
    await runLs(io, opts);
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (e) {
    return exitCodeOfError(e, io);
  }
}
