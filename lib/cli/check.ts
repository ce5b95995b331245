/**
 * `userns check`: validate one map against a parent map and a writer, with
 * the model's verdict naming the kernel rule; `--batch` predicts map-write
 * cases (case-formats.md §1) as JSON lines, in input order.
 */
import { createReadStream, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import type { Command } from "commander";
import { isPrivilegedWriter } from "../child/maps.js";
import { ownMap } from "../child/validate.js";
import { usageError } from "../errors.js";
import { predictMapWriteCaseLine } from "../model/cases.js";
import { IdMap, type MapKind } from "../model/idmap.js";
import { validateMapRequest } from "../model/mapwrite.js";
import { type MountCaseResult, predictMountCaseLine } from "../model/mountcases.js";
import { parseMapText } from "../model/parse.js";
import { splitAgainstParent } from "../model/split.js";
import { newidmapContext, newidmapVerdict } from "../subid/newidmap.js";

/** Where the command's output goes; `in` is standard input for `--batch -`. */
export interface CheckIo {
  out: (s: string) => void;
  err: (s: string) => void;
  in?: NodeJS.ReadableStream;
}

interface CheckOptions {
  file?: string;
  kind: string;
  parent?: string;
  writer?: string;
  uid?: string;
  gid?: string;
  setgroups: string;
  json?: boolean;
  batch?: string;
  mountBatch?: string;
}

/** The verdict `userns check` prints (also its --json shape). */
export interface CheckVerdict {
  ok: boolean;
  errno: string | null;
  rule: string | null;
  line: number | null;
  reason: string | null;
  /** The exact text that would be written (ok), one line per extent. */
  map: string | null;
  /** When the only problem is straddling parent extents: the split map that the kernel accepts, 1:1 with the request. */
  split: string | null;
  /** When judged as the caller (no --writer): the way its spawn would write the map (direct, self or newuidmap). */
  writer?: "direct" | "self" | "newuidmap";
}

function u32Option(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) > 0xfffffffe)
    throw usageError(`--${name} must be an id 0..4294967294, not ${JSON.stringify(v)}`);
  return Number(v);
}

/** Parent maps on the command line may use "," or ";" between lines. */
function parseParent(text: string | undefined): IdMap {
  if (text === undefined || text === "" || text === "init") return IdMap.IDENTITY;
  const r = parseMapText(text.replace(/[,;]/g, "\n"));
  if (!r.ok) throw usageError(`--parent: ${r.reason}`);
  return r.map;
}

/**
 * Runs the single-map check; pure apart from reading --file, and, when no writer, parent or ids are given, from
 * asking who the caller is (`caller`, default {@link callerIdentity}): then the map is judged as this caller's spawn
 * would write it: directly when privileged, as the self-map, else through newuidmap/newgidmap with the caller's
 * subordinate ranges.
 */
export function checkMap(
  mapText: string | Uint8Array,
  opts: CheckOptions,
  caller: () => CallerIdentity = callerIdentity,
): CheckVerdict {
  const kind = opts.kind as MapKind;
  if (kind !== "uid" && kind !== "gid" && kind !== "projid") throw usageError("--kind must be uid, gid or projid");
  if (opts.writer === undefined) {
    if (opts.parent !== undefined || opts.uid !== undefined || opts.gid !== undefined)
      // A hypothetical writer (a parent map or ids given): as before, privileged unless --writer says otherwise.
      return checkMap(mapText, { ...opts, writer: "privileged" }, caller);
    return checkAsCaller(mapText, opts, kind, caller());
  }
  if (!["privileged", "unprivileged", "inside", "newuidmap"].includes(opts.writer)) {
    throw usageError("--writer must be privileged, unprivileged, inside or newuidmap");
  }
  if (opts.writer === "newuidmap") return checkAsCaller(mapText, opts, kind, { ...caller(), privileged: false }, true);
  if (opts.setgroups !== "allow" && opts.setgroups !== "deny") throw usageError("--setgroups must be allow or deny");
  const privileged = opts.writer !== "unprivileged";
  const euid = u32Option(opts.uid, "uid") ?? (privileged ? 0 : 1000);
  const egid = u32Option(opts.gid, "gid") ?? (privileged ? 0 : 1000);
  const parentMap = parseParent(opts.parent);
  const req = {
    kind,
    parentMap,
    writer: privileged ? ("privileged" as const) : ("unprivileged" as const),
    euid,
    egid,
    inside: opts.writer === "inside",
    setgroups: opts.setgroups as "allow" | "deny",
  };
  const v = validateMapRequest({ ...req, map: mapText });
  if (v.ok) return { ok: true, errno: null, rule: null, line: null, reason: null, map: v.lines, split: null };
  let split: string | null = null;
  if (v.rule === "map_id_range_down") {
    const parsed = parseMapText(mapText);
    if (parsed.ok) {
      const s = splitAgainstParent(parsed.map, parentMap);
      // Propose the split only when straddling was the whole problem: the split map must pass every rule.
      if (s.ok && validateMapRequest({ ...req, map: s.map }).ok) split = s.map.toString();
    }
  }
  return { ok: false, errno: v.errno, rule: v.rule, line: v.line ?? null, reason: v.reason, map: null, split };
}

/** Who runs `userns check`, as its spawn would write maps. */
export interface CallerIdentity {
  /** CAP_SETUID and CAP_SETGID in its own namespace: writes maps directly. */
  readonly privileged: boolean;
  readonly euid: number;
  readonly egid: number;
  /** Its own namespace's uid and gid maps (the parent maps of namespaces it creates). */
  readonly uidMap: IdMap;
  readonly gidMap: IdMap;
  /** newuidmap's view of the caller; undefined when libsubid (nsswitch) decides the ranges. */
  readonly newidmap: ReturnType<typeof newidmapContext>;
}

/** This process's identity. */
export function callerIdentity(): CallerIdentity {
  return {
    privileged: isPrivilegedWriter(),
    euid: process.geteuid?.() ?? 0,
    egid: process.getegid?.() ?? 0,
    uidMap: ownMap("uid"),
    gidMap: ownMap("gid"),
    newidmap: newidmapContext(),
  };
}

function checkAsCaller(
  mapText: string | Uint8Array,
  opts: CheckOptions,
  kind: MapKind,
  who: CallerIdentity,
  forceNewidmap = false,
): CheckVerdict {
  if (kind === "projid") return checkMap(mapText, { ...opts, writer: "privileged" });
  const parent = (kind === "uid" ? who.uidMap : who.gidMap).toString().replace(/\n/g, ",");
  const ids = { uid: String(who.euid), gid: String(who.egid), parent: parent === "" ? "init" : parent };
  if (who.privileged && !forceNewidmap)
    return { ...checkMap(mapText, { ...opts, ...ids, writer: "privileged" }), writer: "direct" as const };
  const parsed = parseMapText(mapText);
  const own = kind === "uid" ? who.euid : who.egid;
  const self =
    parsed.ok &&
    parsed.map.size === 1 &&
    parsed.map.extents[0]!.count === 1 &&
    parsed.map.extents[0]!.lowerFirst === own;
  if (self && !forceNewidmap)
    return { ...checkMap(mapText, { ...opts, ...ids, writer: "unprivileged" }), writer: "self" as const };
  // newuidmap is setuid root: the kernel judges it privileged; its own rules come on top.
  const v = { ...checkMap(mapText, { ...opts, ...ids, writer: "privileged" }), writer: "newuidmap" as const };
  if (!v.ok || !parsed.ok || who.newidmap === undefined) return v;
  const ctx = who.newidmap;
  const n = newidmapVerdict(kind, parsed.map, ctx.caller, kind === "uid" ? ctx.subuid : ctx.subgid);
  if (n.ok) return v;
  return {
    ok: false,
    errno: "EPERM",
    rule: n.rule,
    line: n.line ?? null,
    reason: `${n.reason}; ${n.suggestion}`,
    map: null,
    split: null,
    writer: "newuidmap",
  };
}

function indentLines(label: string, text: string): string {
  const lines = text.replace(/\n$/, "").split("\n");
  return lines.map((l, i) => `${i === 0 ? label.padEnd(9) : " ".repeat(9)}${l}\n`).join("");
}

function formatVerdict(v: CheckVerdict): string {
  let s = "";
  if (v.writer !== undefined) s += `${"writer".padEnd(9)}${v.writer} (as you: uid ${process.geteuid?.()})\n`;
  if (v.ok) {
    s += `${"verdict".padEnd(9)}ok: ${v.writer === "newuidmap" ? "newuidmap and the kernel" : "the kernel"} would accept this map\n`;
    s += indentLines("write", v.map!);
    return s;
  }
  s += `${"verdict".padEnd(9)}refused with ${v.errno}\n`;
  s += `${"rule".padEnd(9)}${v.rule}\n`;
  if (v.line !== null) s += `${"line".padEnd(9)}${v.line}\n`;
  s += `${"reason".padEnd(9)}${v.reason}\n`;
  if (v.split !== null) s += indentLines("split", v.split);
  return s;
}

/** Skips blank and `#` lines as the case format says; predicts the rest. */
function predictMountCaseOrSkip(line: string): MountCaseResult | undefined {
  const t = line.trim();
  return t === "" || t.startsWith("#") ? undefined : predictMountCaseLine(t);
}

async function runBatch(source: string, io: CheckIo, predict: (line: string) => object | undefined): Promise<void> {
  const input = source === "-" ? (io.in ?? process.stdin) : createReadStream(source);
  const rl = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let buf = "";
  for await (const line of rl) {
    const r = predict(line);
    if (r === undefined) continue;
    buf += `${JSON.stringify(r)}\n`;
    if (buf.length > 1 << 16) {
      io.out(buf);
      buf = "";
    }
  }
  if (buf) io.out(buf);
}

/** Adds `userns check` to the program. */
export function registerCheckCommands(program: Command, io: CheckIo): void {
  program
    .command("check")
    .description("check a uid/gid/projid map the way the kernel's map_write would, naming the rule that decides")
    .argument("[map...]", "map lines (first lower count); several arguments are joined with newlines")
    .option("--file <path>", "read the map text (exact bytes) from a file")
    .option("--kind <kind>", "uid, gid or projid", "uid")
    .option(
      "--parent <maptext>",
      "the writer's namespace map (lines separated by newline, ',' or ';'); default: initial namespace",
    )
    .option(
      "--writer <who>",
      "privileged, unprivileged, inside (the child writes its own map) or newuidmap (with your /etc/subuid ranges); default: you, as spawn would write it (direct when privileged, the self-map, else newuidmap)",
    )
    .option(
      "--uid <n>",
      "a hypothetical writer's euid (default 0, or 1000 when unprivileged; without any of --writer, --parent, --uid, --gid: yours)",
    )
    .option("--gid <n>", "a hypothetical writer's egid (as --uid)")
    .option("--setgroups <state>", "the child's setgroups state: allow or deny", "allow")
    .option("--batch <file>", "predict map-write cases (JSON lines, case-formats §1) from a file or - for stdin")
    .option(
      "--mount-batch <file>",
      "predict idmapped-mount cases (JSON lines, case-formats §2) from a file or - for stdin",
    )
    .option("--json", "print the verdict as JSON")
    .action(async (map: string[], opts: CheckOptions) => {
      if (opts.batch !== undefined || opts.mountBatch !== undefined) {
        if (map.length > 0 || opts.file !== undefined || (opts.batch !== undefined && opts.mountBatch !== undefined))
          throw usageError("--batch and --mount-batch take no map argument, no --file, and not each other");
        if (opts.batch !== undefined) await runBatch(opts.batch, io, predictMapWriteCaseLine);
        else await runBatch(opts.mountBatch!, io, predictMountCaseOrSkip);
        return;
      }
      let text: string | Uint8Array;
      if (opts.file !== undefined) {
        if (map.length > 0) throw usageError("give the map as arguments or with --file, not both");
        try {
          text = readFileSync(opts.file);
        } catch (e) {
          throw usageError(`--file: cannot read ${opts.file}: ${(e as Error).message}`);
        }
      } else if (map.length > 0) {
        text = map.join("\n");
      } else {
        throw usageError("give a map (e.g. userns check '0 100000 65536') or --file");
      }
      const v = checkMap(text, opts);
      io.out(opts.json ? `${JSON.stringify(v)}\n` : formatVerdict(v));
      if (!v.ok) process.exitCode = 1;
    });
}
