/**
 * `userns show PID|self`: a process's user namespace chain up to the initial
 * namespace, with each level's maps as the kernel reports them to us,
 * setgroups and the owner.
 */
import type { Command } from "commander";
import { usageError } from "../errors.js";
import type { IdMap } from "../model/idmap.js";
import { UserNamespace } from "../namespaces/user-namespace.js";

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

/** One level of the chain. */
export interface ShowLevel {
  /** 0 for the process's own namespace, 1 for its parent, ... */
  readonly up: number;
  readonly ino: string;
  readonly id: string | null;
  readonly ownerUid: number;
  readonly initial: boolean;
  readonly setgroups: "allow" | "deny";
  readonly uidMap: string[];
  readonly gidMap: string[];
  /** Whose ids the lower column is in: this process's namespace ("reader") or the level's parent ("parent"). */
  readonly lowerIdsIn: "reader" | "parent";
}

function lines(m: IdMap): string[] {
  return m.extents.map((e) => `${e.first} ${e.lowerFirst} ${e.count}`);
}

/** Walks from the process's user namespace to the initial one (or as far up as the kernel lets us see). */
export function showChain(target: number | "self"): ShowLevel[] {
  const start = target === "self" ? UserNamespace.current() : UserNamespace.fromPid(target);
  const out: ShowLevel[] = [];
  let ns: UserNamespace | undefined = start;
  while (ns !== undefined) {
    const m = ns.maps();
    out.push({
      up: out.length,
      ino: String(ns.identity.ino),
      id: ns.id === undefined ? null : String(ns.id),
      ownerUid: ns.ownerUid,
      initial: ns.isInitial,
      setgroups: m.setgroups,
      uidMap: lines(m.uid),
      gidMap: lines(m.gid),
      lowerIdsIn: m.lowerIdsIn,
    });
    const parent: UserNamespace | undefined = ns.parent();
    ns.close();
    ns = parent;
  }
  return out;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map(
      (r) =>
        `${r
          .map((c, i) => c.padEnd(widths[i]!))
          .join("  ")
          .trimEnd()}\n`,
    )
    .join("");
}

/** Adds `show` to the program. */
export function registerShowCommand(program: Command, io: Io): void {
  program
    .command("show")
    .description(
      "show a process's user namespace chain up to the initial namespace, with maps as the kernel reports them",
    )
    .argument("<pid>", "a pid, or self")
    .option("--json", "print the chain as JSON")
    .action((pidArg: string, opts: { json?: boolean }) => {
      let target: number | "self";
      if (pidArg === "self") target = "self";
      else if (/^\d+$/.test(pidArg) && Number(pidArg) > 0) target = Number(pidArg);
      else throw usageError(`show: ${JSON.stringify(pidArg)} is not a pid or self`);
      const chain = showChain(target);
      if (opts.json) {
        io.out(`${JSON.stringify({ pid: target, chain })}\n`);
        return;
      }
      const rows = [["UP", "NAMESPACE", "OWNER", "SETGROUPS", "UID_MAP", "GID_MAP"]];
      for (const l of chain) {
        const n = Math.max(l.uidMap.length, l.gidMap.length, 1);
        for (let i = 0; i < n; i++) {
          rows.push(
            i === 0
              ? [
                  String(l.up),
                  `user:[${l.ino}]${l.initial ? " (initial)" : ""}`,
                  String(l.ownerUid),
                  l.setgroups,
                  l.uidMap[0] ?? "-",
                  l.gidMap[0] ?? "-",
                ]
              : ["", "", "", "", l.uidMap[i] ?? "", l.gidMap[i] ?? ""],
          );
        }
      }
      io.out(table(rows));
      io.out(
        "maps as the kernel reports them to this process: lower ids in this process's ids (for this process's own namespace, in its parent's)\n",
      );
    });
}
