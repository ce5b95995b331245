/**
 * `userns convert`, `userns subid` and `userns doctor`: the interop formats,
 * subordinate ids and a machine check as daily tools.
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { Option } from "commander";
import { usageError } from "../errors.js";
import { FormatError } from "../formats/errors.js";
import { parseKernelMap } from "../formats/kernel.js";
import { FORMATS, getFormat } from "../formats/registry.js";
import type { KindSelection, MapSet, ParseOptions } from "../formats/types.js";
import type { IdMap } from "../model/idmap.js";
import { parseSubid } from "../subid/parse.js";
import { findFreeRange } from "../subid/ranges.js";
import { parsePasswd, resolveUser, subidReport } from "../subid/read.js";
import type { Verdict } from "./doctor.js";
import { formatTable } from "./table.js";

/** Where output goes; tests capture it. `readStdin` defaults to reading fd 0. */
export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
  readStdin?: () => string;
}

const EXIT_REFUSED = 1;

function readInput(io: CliIo, file: string | undefined): { text: string; path: string | undefined } {
  if (file === undefined || file === "-") {
    if (file === undefined && !io.readStdin && process.stdin.isTTY) {
      throw usageError("no input: give a FILE, or pipe the text in (use - for stdin)");
    }
    return { text: io.readStdin ? io.readStdin() : readFileSync(0, "utf8"), path: undefined };
  }
  try {
    return { text: readFileSync(file, "utf8"), path: file };
  } catch (e) {
    throw usageError(`cannot read ${file}: ${(e as Error).message}`);
  }
}

function readOptional(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

function readMapFile(path: string | undefined, what: string): IdMap | undefined {
  if (path === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw usageError(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
  return parseKernelMap(text);
}

const triples = (m: IdMap | undefined) =>
  m?.extents.map((e) => ({ first: e.first, lowerFirst: e.lowerFirst, count: e.count }));

function mapRows(maps: MapSet, first: string, lower: string): string {
  const rows: (string | number)[][] = [];
  for (const kind of ["uid", "gid"] as const) {
    for (const e of maps[kind]?.extents ?? []) rows.push([kind, e.first, e.lowerFirst, e.count, e.first + e.count - 1]);
  }
  return formatTable(rows, {
    header: ["KIND", first, lower, "COUNT", "LAST"],
    align: ["left", "right", "right", "right", "right"],
  });
}

interface ConvertOpts {
  from?: string;
  to?: string;
  kind: KindSelection;
  list?: boolean;
  json?: boolean;
  owner?: string;
  subuid: string;
  subgid: string;
  passwd: string;
  group: string;
  uid?: string;
  gid?: string;
  rootOwner?: string;
  parentUidMap?: string;
  parentGidMap?: string;
  containerUidMap?: string;
  containerGidMap?: string;
  table?: boolean;
}

function num(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[0-9]+$/.test(v) || Number(v) > 0xffff_ffff)
    throw usageError(`${what} must be a decimal id, got ${JSON.stringify(v)}`);
  return Number(v);
}

function runConvert(io: CliIo, file: string | undefined, o: ConvertOpts): void {
  if (o.list) {
    if (o.json) {
      io.out(
        `${JSON.stringify(
          FORMATS.map((f) => ({
            name: f.name,
            title: f.title,
            syntax: f.syntax,
            direction: f.direction,
            columns: f.columns,
            holds: f.holds,
            roundTrip: f.roundTrip,
            notes: f.notes,
          })),
          null,
          2,
        )}\n`,
      );
      return;
    }
    const colText = (f: (typeof FORMATS)[number]) =>
      f.columns
        .filter((c) => c.is === "first" || c.is === "lowerFirst")
        .map(
          (c) =>
            `${c.name}=${c.is === "first" ? (f.direction === "mount" ? "on-disk" : "inside") : f.direction === "mount" ? "seen" : "outside"}`,
        )
        .join(" ");
    io.out(
      formatTable(
        FORMATS.map((f) => [f.name, f.direction, colText(f), f.title]),
        { header: ["NAME", "DIRECTION", "COLUMNS", "FORMAT"] },
      ),
    );
    io.out("\nDirection userns: inside = id in the new namespace, outside = id in its parent.\n");
    io.out("Direction mount: on-disk = id stored in the filesystem, seen = id shown through the idmapped mount.\n");
    io.out("A mount map is the map of the user namespace attached to the mount, so numbers carry over unchanged.\n");
    return;
  }
  if (!o.from || !o.to) throw usageError("convert needs --from FMT and --to FMT (see userns convert --list)");
  const names = FORMATS.map((f) => f.name as string);
  for (const n of [o.from, o.to])
    if (!names.includes(n)) throw usageError(`unknown format ${JSON.stringify(n)}; known: ${names.join(", ")}`);
  const from = getFormat(o.from);
  const to = getFormat(o.to);
  const { text, path } = readInput(io, file);
  const passwd = parsePasswd(readOptional(o.passwd));
  const groups = readOptional(o.group)
    .split("\n")
    .map((l) => l.split(":"))
    .filter((f) => f.length >= 3 && /^[0-9]+$/.test(f[2]!))
    .map((f) => ({ name: f[0]!, gid: Number(f[2]) }));
  const parentUid = readMapFile(o.parentUidMap, "--parent-uid-map");
  const parentGid = readMapFile(o.parentGidMap, "--parent-gid-map");
  const contUid = readMapFile(o.containerUidMap, "--container-uid-map");
  const contGid = readMapFile(o.containerGidMap, "--container-gid-map");
  const ctx: ParseOptions = {
    kind: o.kind,
    owner: o.owner,
    subuid: parseSubid(readOptional(o.subuid)).entries,
    subgid: parseSubid(readOptional(o.subgid)).entries,
    users: passwd,
    groups,
    uid: num(o.uid, "--uid") ?? process.getuid?.(),
    gid: num(o.gid, "--gid") ?? process.getgid?.(),
    rootOwner: num(o.rootOwner, "--root-owner"),
    parentMaps: parentUid || parentGid ? { uid: parentUid, gid: parentGid } : undefined,
    containerMaps: contUid || contGid ? { uid: contUid, gid: contGid } : undefined,
  };
  let maps: MapSet;
  try {
    maps = from.parse(text, ctx);
  } catch (e) {
    if (e instanceof FormatError && path) (e as { path?: string }).path = path;
    throw e;
  }
  const out = to.format(maps, { kind: o.kind, owner: o.owner });
  const note =
    from.direction !== to.direction
      ? `${from.name} is a ${from.direction} map and ${to.name} a ${to.direction} map: the numbers carry over unchanged, because an idmapped mount's map is the map of the user namespace attached to it (on-disk id = inside id, seen id = outside id)`
      : undefined;
  if (o.json) {
    io.out(
      `${JSON.stringify({ from: from.name, to: to.name, kind: o.kind, direction: { from: from.direction, to: to.direction }, uid: triples(maps.uid) ?? null, gid: triples(maps.gid) ?? null, text: out, note: note ?? null }, null, 2)}\n`,
    );
    return;
  }
  if (note) io.err(`note: ${note}\n`);
  if (o.table) {
    const d = to.direction === "mount";
    io.out(mapRows(maps, d ? "ON-DISK" : "INSIDE", d ? "SEEN" : "OUTSIDE"));
    return;
  }
  io.out(out);
}

function runSubid(
  io: CliIo,
  user: string | undefined,
  o: {
    json?: boolean;
    all?: boolean;
    free?: string;
    min?: string;
    align?: string;
    subuid: string;
    subgid: string;
    passwd: string;
  },
): void {
  const passwd = parsePasswd(readOptional(o.passwd));
  const subuid = parseSubid(readOptional(o.subuid));
  const subgid = parseSubid(readOptional(o.subgid));
  const who = o.all
    ? undefined
    : resolveUser(user ?? process.env.SUDO_USER ?? process.env.USER ?? process.getuid?.(), passwd);
  const report = subidReport(who, { subuid, subgid, passwd });
  let free: { start: number; count: number } | undefined | null = null;
  if (o.free !== undefined) {
    const size = num(o.free, "--free");
    if (!size) throw usageError("--free needs a size of at least 1");
    free = findFreeRange(size, {
      taken: [...subuid.entries, ...subgid.entries],
      min: num(o.min, "--min") ?? 100000,
      align: num(o.align, "--align") ?? 1,
    });
  }
  const missing = !o.all && report.subuid.length === 0 && report.subgid.length === 0;
  const failed = report.overlaps.length > 0 || missing || free === undefined;
  if (o.json) {
    io.out(`${JSON.stringify({ ...report, free: free === null ? undefined : (free ?? null) }, null, 2)}\n`);
  } else {
    const rows = [
      ...report.subuid.map((e) => ["subuid", e.owner, e.start, e.start + e.count - 1, e.count, e.line]),
      ...report.subgid.map((e) => ["subgid", e.owner, e.start, e.start + e.count - 1, e.count, e.line]),
    ];
    const name = o.all ? "all owners" : (report.user.name ?? String(report.user.uid));
    if (rows.length) {
      io.out(
        formatTable(rows, {
          header: ["FILE", "OWNER", "START", "END", "COUNT", "LINE"],
          align: ["left", "left", "right", "right", "right", "right"],
        }),
      );
    } else io.out(`no subordinate ids for ${name}\n`);
    if (report.overlaps.length) {
      io.out("\nOVERLAPS\n");
      io.out(
        formatTable(
          report.overlaps.map(({ file, overlap: ov }) => [
            file,
            ov.type,
            `${ov.start}-${ov.start + ov.count - 1}`,
            ov.message,
          ]),
          { header: ["FILE", "TYPE", "IDS", "WHAT"] },
        ),
      );
    }
    const warnings = report.warnings;
    if (warnings.length) {
      io.out("\nWARNINGS\n");
      for (const w of warnings) io.out(`  ${w}\n`);
    }
    if (free !== null) {
      io.out(
        free
          ? `\nfree range: ${free.start}-${free.start + free.count - 1} (${free.count} ids, overlaps no delegation in either file)\n`
          : "\nno free range of that size\n",
      );
    }
  }
  if (failed) process.exitCode = EXIT_REFUSED;
}

async function runDoctor(io: CliIo, o: { json?: boolean; user?: string }): Promise<void> {
  // Loaded on use: the CLI loads every command's module to build --help, so each keeps its imports to itself.
  const { doctorChecks, realDoctorEnv } = await import("./doctor.js");
  const checks = doctorChecks(realDoctorEnv(), { user: o.user });
  const failed = checks.some((c) => c.verdict === "fail");
  if (o.json) io.out(`${JSON.stringify({ ok: !failed, checks }, null, 2)}\n`);
  else {
    const mark: Record<Verdict, string> = { ok: "ok", warn: "WARN", fail: "FAIL", info: "info" };
    io.out(
      formatTable(
        checks.map((c) => [c.title, mark[c.verdict], c.detail]),
        { header: ["CHECK", "VERDICT", "DETAIL"] },
      ),
    );
    const n = (v: Verdict) => checks.filter((c) => c.verdict === v).length;
    io.out(
      `\n${n("ok")} ok, ${n("warn")} warning(s), ${n("fail")} failed; "by kernel version" means judged from the version table, not probed\n`,
    );
  }
  if (failed) process.exitCode = EXIT_REFUSED;
}

const kindOption = () =>
  new Option("--kind <kind>", "which maps: uid, gid or both").choices(["uid", "gid", "both"]).default("both");

/** Adds `convert`, `subid` and `doctor` to the program. */
export function registerFormatCommands(program: Command, io: CliIo): void {
  program
    .command("convert")
    .description("convert an id map between container ecosystems' formats (see --list for names and directions)")
    .argument("[file]", "input file, or - for stdin (default stdin)")
    .option("--from <fmt>", "input format")
    .option("--to <fmt>", "output format")
    .addOption(kindOption())
    .option("--list", "list every format with its direction and columns")
    .option("--json", "print JSON: both maps, the output text and the directions")
    .option("--table", "print the maps as a table instead of the output format")
    .option("--owner <name>", "subid/docker: owner name to write, or whose subid lines to read")
    .option("--subuid <file>", "subuid file for docker, subid and podman keep-id/auto", "/etc/subuid")
    .option("--subgid <file>", "subgid file", "/etc/subgid")
    .option("--passwd <file>", "passwd file, to match subid owners by name or uid", "/etc/passwd")
    .option("--group <file>", "group file, for docker user:group", "/etc/group")
    .option("--uid <uid>", "caller's uid for podman keep-id (default: yours)")
    .option("--gid <gid>", "caller's gid for podman keep-id (default: yours)")
    .option("--root-owner <uid>", "owner of the root directory, for nspawn --private-users=yes")
    .option("--parent-uid-map <file>", "uid_map of podman's rootless namespace, for @host ids and keep-id")
    .option("--parent-gid-map <file>", "gid_map of podman's rootless namespace")
    .option("--container-uid-map <file>", "container's uid_map, for bare idmap and crun's @")
    .option("--container-gid-map <file>", "container's gid_map")
    .addHelpText(
      "after",
      `
Examples:
  $ userns convert --list
  $ echo 'lxc.idmap = u 0 100000 65536' | userns convert --from lxc --to oci --kind uid
  $ echo 'both 1000 1000' | userns convert --from incus-raw --to lxc-entry
  $ userns convert --from oci --to kernel --kind gid config.json
  $ echo '--uidmap=0:1:1000' | userns convert --from podman --to unshare --table
  $ echo 'X-mount.idmap=b:1000:0:1' | userns convert --from x-mount-idmap --to oci-mount

Exit codes: 0 converted, 1 input refused (ERR_USERNS_FORMAT, with line/column), 2 usage.`,
    )
    .action((file: string | undefined, opts: ConvertOpts) => runConvert(io, file, opts));

  program
    .command("subid")
    .description("show a user's /etc/subuid and /etc/subgid ranges, with overlaps flagged")
    .argument("[user]", "login name or uid (default: you); matched by both forms, as shadow does")
    .option("--all", "check every owner, not one user")
    .option("--free <size>", "also find a free range of this size that overlaps no delegation")
    .option("--min <id>", "lowest start for --free (default 100000)")
    .option("--align <n>", "start --free on a multiple of n (e.g. 65536)")
    .option("--json", "print JSON")
    .option("--subuid <file>", "subuid file", "/etc/subuid")
    .option("--subgid <file>", "subgid file", "/etc/subgid")
    .option("--passwd <file>", "passwd file", "/etc/passwd")
    .addHelpText(
      "after",
      `
Examples:
  $ userns subid alice
  $ userns subid 1000 --json
  $ userns subid --all
  $ userns subid --all --free 65536 --align 65536

Exit codes: 0 ranges found and no overlaps, 1 overlaps, no ranges or no free range, 2 usage.`,
    )
    .action((user: string | undefined, opts: Parameters<typeof runSubid>[2]) => runSubid(io, user, opts));

  program
    .command("doctor")
    .description("check what this kernel and system allow for user namespaces and idmapped mounts")
    .option("--json", "print JSON")
    .option("--user <name>", "whose /etc/subuid entries to check (default: you)")
    .addHelpText(
      "after",
      `
Examples:
  $ userns doctor
  $ userns doctor --json | jq '.checks[] | select(.verdict == "fail")'
  $ userns doctor --user alice

Each check has a verdict: ok, info, WARN or FAIL. Features marked "by kernel version"
are judged from the kernel version table, not probed.
Exit codes: 0 no check failed, 1 some check failed, 2 usage.`,
    )
    .action((opts: { json?: boolean; user?: string }) => runDoctor(io, opts));
}
