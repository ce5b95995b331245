/**
 * `userns shift`: rewrite a tree's owners, ACLs and file capabilities on
 * disk by a mount-direction map, where an idmapped mount cannot serve;
 * `--resume`/`--rollback` finish or undo an interrupted one.
 */
import type { Command } from "commander";
import { usageError } from "../errors.js";
import { IdMap } from "../model/idmap.js";
import { parseMapTriple } from "../mounts/mapformats.js";
import type { ShiftReport } from "../shift/index.js";

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

interface ShiftOpts {
  mapUsers: string[];
  mapGroups: string[];
  reverse?: boolean;
  force?: string;
  crossMounts?: boolean;
  dryRun?: boolean;
  resume?: boolean;
  rollback?: boolean;
  json?: boolean;
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

function describe(r: ShiftReport): string {
  const verb =
    r.outcome === "planned"
      ? "would shift"
      : r.outcome === "resumed"
        ? "resumed the shift of"
        : r.outcome === "rolled-back"
          ? "rolled back the shift of"
          : "shifted";
  const lines = [
    `${verb} ${r.path}${r.outcome === "applied" || r.outcome === "planned" ? ` (${r.direction})` : ""}: ${r.inodes} inodes, ${r.changedOwners} owners changed, ${r.acls} ACLs, ${r.caps} capabilities`,
  ];
  if (r.forced > 0) lines.push(`${r.forced} ids outside the map were set to the --force id`);
  for (const m of r.skippedMounts) lines.push(`not entered (another mount): ${m}`);
  return `${lines.join("\n")}\n`;
}

async function shiftAction(path: string, o: ShiftOpts, io: Io): Promise<void> {
  // Loaded on use: the CLI loads every command's module to build --help, so each keeps its imports to itself.
  const { resumeShift, rollbackShift, shiftOwnership } = await import("../shift/index.js");
  let report: ShiftReport;
  if (o.resume || o.rollback) {
    if (o.resume && o.rollback) throw usageError("give --resume or --rollback, not both");
    if (o.mapUsers.length > 0 || o.mapGroups.length > 0 || o.reverse || o.force !== undefined) {
      throw usageError("--resume and --rollback take the maps from the journal: give no maps");
    }
    report = o.resume ? resumeShift(path) : rollbackShift(path);
  } else {
    if (o.mapUsers.length === 0) throw usageError("give --map-users (and --map-groups)");
    let force: number | undefined;
    if (o.force !== undefined) {
      if (!/^\d+$/.test(o.force)) throw usageError(`--force ${o.force}: not an id`);
      force = Number(o.force);
    }
    const uidMap = IdMap.from(o.mapUsers.map(parseMapTriple));
    const gidMap = o.mapGroups.length > 0 ? IdMap.from(o.mapGroups.map(parseMapTriple)) : uidMap;
    report = shiftOwnership(path, {
      uidMap,
      gidMap,
      direction: o.reverse ? "reverse" : "forward",
      ...(force !== undefined ? { force } : {}),
      crossMounts: o.crossMounts === true,
      dryRun: o.dryRun === true,
    });
  }
  io.out(o.json ? `${JSON.stringify(report)}\n` : describe(report));
}

/** Registers `userns shift`. */
export function registerShiftCommands(program: Command, io: Io): void {
  program
    .command("shift")
    .description(
      "rewrite the owners, ACL entries and file capabilities of the tree at PATH by a map, on disk (where an idmapped mount cannot serve); maps go on-disk:new:count, as for `userns mount`",
    )
    .argument("<path>")
    .option("--map-users <ondisk:new:count>", "uid extent in the mount direction (repeatable)", collect, [])
    .option(
      "--map-groups <ondisk:new:count>",
      "gid extent in the mount direction (repeatable; default: as --map-users)",
      collect,
      [],
    )
    .option("--reverse", "shift back: apply the maps' inverse (new id → on-disk id)")
    .option("--force <id>", "set ids the map does not cover to ID instead of refusing")
    .option("--cross-mounts", "also shift inside other mounts below PATH")
    .option("--dry-run", "scan and check only; change nothing")
    .option("--resume", "finish a shift of PATH that was interrupted")
    .option("--rollback", "undo a shift of PATH that was interrupted")
    .option("--json", "print the report as JSON")
    .action((path: string, opts: ShiftOpts) => shiftAction(path, opts, io));
}
