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
import { parsePasswd } from "../subid/read.js";
import { type CliIo, parseDecimalId, readOptional } from "./io.js";
import { formatTable } from "./table.js";

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
    uid: parseDecimalId(o.uid, "--uid") ?? process.getuid?.(),
    gid: parseDecimalId(o.gid, "--gid") ?? process.getgid?.(),
    rootOwner: parseDecimalId(o.rootOwner, "--root-owner"),
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

const kindOption = () =>
  new Option("--kind <kind>", "which maps: uid, gid or both").choices(["uid", "gid", "both"]).default("both");

/** Adds `convert` to the program. */
export function registerConvertCommand(program: Command, io: CliIo): void {
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
}
