/**
 * Subordinate-id lines as a map format (`subid`) and Docker `userns-remap`
 * (`docker`). Both describe outside ranges only; the inside ids are assigned
 * consecutively from 0 in line order, which is what Docker does with all of
 * a remap user's ranges (and newuidmap callers commonly do).
 */
import type { Extent } from "../model/extent.js";
import { extent } from "../model/extent.js";
import { IdMap } from "../model/idmap.js";
import { parseSubid, type SubidEntry } from "../subid/parse.js";
import { rangesFor } from "../subid/ranges.js";
import { FormatError } from "./errors.js";
import { fromSingle, toSingle } from "./kinds.js";
import type { FormatOptions, IdKind, KindSelection, MapSet, ParseOptions, ResolveContext } from "./types.js";

/** Inside ids from 0 over the ranges in order. */
export function concatenateRanges(ranges: readonly { start: number; count: number }[]): IdMap {
  const out: Extent[] = [];
  let next = 0;
  for (const r of ranges) {
    if (next + r.count > 0xffff_ffff) throw new RangeError("subordinate ranges add up to more than 4294967295 ids");
    out.push(extent(next, r.start, r.count));
    next += r.count;
  }
  return IdMap.from(out);
}

function rangesOf(format: string, map: IdMap): string[] {
  let next = 0;
  return map.extents.map((e, i) => {
    if (e.first !== next) {
      throw new FormatError(
        format,
        "format",
        `extent ${i + 1} starts at inside id ${e.first}, expected ${next}: subid lines can only describe a map whose inside ids run from 0 without gaps, in line order`,
      );
    }
    next += e.count;
    return `${e.lowerFirst}:${e.count}`;
  });
}

/**
 * Parses subid lines. With one owner in the text, all its lines are used;
 * with several, `options.owner` picks one. Bad lines are errors here.
 */
export function parseSubidFormat(text: string, options: ParseOptions = {}): MapSet {
  const f = parseSubid(text);
  const bad = f.issues[0];
  if (bad) throw new FormatError("subid", "parse", bad.message, { line: bad.line, column: bad.column });
  if (f.entries.length === 0)
    throw new FormatError("subid", "parse", "no owner:start:count line", { line: 1, column: 1 });
  const owners = [...new Set(f.entries.map((e) => e.owner))];
  let entries: SubidEntry[] = [...f.entries];
  if (owners.length > 1) {
    if (!options.owner) {
      throw new FormatError("subid", "parse", `lines for several owners (${owners.join(", ")}): choose one`, {
        line: f.entries.find((e) => e.owner !== owners[0])!.line,
        column: 1,
      });
    }
    entries = entries.filter((e) => e.owner === options.owner);
    if (entries.length === 0)
      throw new FormatError("subid", "parse", `no line for ${options.owner}`, { line: 1, column: 1 });
  }
  try {
    return fromSingle(concatenateRanges(entries), options.kind);
  } catch (e) {
    throw new FormatError("subid", "parse", (e as Error).message, {
      line: entries[entries.length - 1]!.line,
      column: 1,
    });
  }
}

/** Writes `owner:start:count` lines (owner from options, default the placeholder `user`). */
export function formatSubidFormat(maps: MapSet, options: FormatOptions = {}): string {
  const m = toSingle("subid", maps, options.kind);
  const owner = options.owner ?? "user";
  return rangesOf("subid", m)
    .map((r) => `${owner}:${r}\n`)
    .join("");
}

/** A parsed `userns-remap` value. */
export interface DockerRemap {
  /** User name or uid; `default` becomes `dockremap`. */
  readonly user: string;
  /** Group name or gid; defaults to the user's name. */
  readonly group: string | undefined;
}

/** Parses `default`, `user`, `user:group`, `uid`, `uid:gid`, or a daemon.json holding `"userns-remap"`. */
export function parseDockerRemapValue(text: string): DockerRemap {
  let s = text.trim();
  let col = text.length - text.trimStart().length + 1;
  if (s.startsWith("{")) {
    let v: unknown;
    try {
      v = JSON.parse(s);
    } catch {
      throw new FormatError("docker", "parse", "not valid JSON", { line: 1, column: col });
    }
    const r = (v as Record<string, unknown>)["userns-remap"];
    if (typeof r !== "string")
      throw new FormatError("docker", "parse", 'no "userns-remap" string in daemon.json', { pointer: "/userns-remap" });
    s = r;
    col = 1;
  } else {
    const pre = /^--userns-remap[= ]/.exec(s);
    if (pre) {
      s = s.slice(pre[0].length).trim();
      col += pre[0].length;
    }
  }
  if (s === "") throw new FormatError("docker", "parse", "empty userns-remap value", { line: 1, column: col });
  const parts = s.split(":");
  if (parts.length > 2 || parts.some((p) => p === "" || /\s/.test(p))) {
    throw new FormatError(
      "docker",
      "parse",
      `expected default, user, user:group, uid or uid:gid, got ${JSON.stringify(s)}`,
      { line: 1, column: col },
    );
  }
  if (parts[0] === "default") return { user: "dockremap", group: parts[1] ?? "dockremap" };
  return { user: parts[0]!, group: parts[1] };
}

/** The lines of a user or group given by name or by id, matching both forms as shadow does. */
function matchLines(
  entries: readonly { owner: string; start: number; count: number }[],
  who: string,
  ids: ResolveContext,
  kind: IdKind,
) {
  const known: readonly { name: string; id: number }[] =
    kind === "uid"
      ? (ids.users ?? []).map((u) => ({ name: u.name, id: u.uid }))
      : (ids.groups ?? []).map((g) => ({ name: g.name, id: g.gid }));
  const numeric = /^[0-9]+$/.test(who);
  const hit = known.find((k) => (numeric ? k.id === Number(who) : k.name === who));
  return rangesFor(entries, { name: numeric ? hit?.name : who, uid: numeric ? Number(who) : hit?.id });
}

/** Resolves a Docker remap through subuid/subgid entries: all the user's ranges, concatenated from container id 0. */
export function resolveDockerRemap(remap: DockerRemap, ctx: ResolveContext, kind: KindSelection = "both"): MapSet {
  const group = remap.group ?? remap.user;
  const out: { uid?: IdMap; gid?: IdMap } = {};
  if (kind !== "gid") {
    if (!ctx.subuid) throw new FormatError("docker", "parse", "resolving userns-remap needs /etc/subuid");
    const u = matchLines(ctx.subuid, remap.user, ctx, "uid");
    if (u.length === 0) throw new FormatError("docker", "parse", `no /etc/subuid range for ${remap.user}`);
    out.uid = concatenateRanges(u);
  }
  if (kind !== "uid") {
    if (!ctx.subgid) throw new FormatError("docker", "parse", "resolving userns-remap needs /etc/subgid");
    const g = matchLines(ctx.subgid, group, ctx, "gid");
    if (g.length === 0) throw new FormatError("docker", "parse", `no /etc/subgid range for ${group}`);
    out.gid = concatenateRanges(g);
  }
  return out;
}

/** Registry adapter for `docker`. */
export function parseDocker(text: string, options: ParseOptions = {}): MapSet {
  const bundle = text.trimStart().startsWith("{") ? parseDockerBundle(text, options) : undefined;
  if (bundle) return bundle;
  return resolveDockerRemap(parseDockerRemapValue(text), options, options.kind);
}

/**
 * Docker cannot take a map, only a user name whose subordinate ranges
 * become the map. This writes the daemon.json setting plus the /etc/subuid
 * and /etc/subgid lines that produce the map (owner default `dockremap`).
 */
export function formatDocker(maps: MapSet, options: FormatOptions = {}): string {
  const owner = options.owner ?? "dockremap";
  const ks = options.kind ?? "both";
  const uid = ks !== "gid" ? maps.uid : undefined;
  const gid = ks !== "uid" ? maps.gid : undefined;
  if (!uid && !gid) throw new FormatError("docker", "format", "no map to write");
  const out: Record<string, unknown> = { "userns-remap": owner };
  if (uid) out["/etc/subuid"] = rangesOf("docker", uid).map((r) => `${owner}:${r}`);
  if (gid) out["/etc/subgid"] = rangesOf("docker", gid).map((r) => `${owner}:${r}`);
  return `${JSON.stringify(out, null, 2)}\n`;
}

/** Parses the output of {@link formatDocker} back (used for round trips): the remap plus its subid lines. */
export function parseDockerBundle(text: string, options: ParseOptions = {}): MapSet | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const lines = (k: string) =>
    Array.isArray(o[k]) && o[k].every((x) => typeof x === "string") ? (o[k] as string[]).join("\n") : undefined;
  const su = lines("/etc/subuid");
  const sg = lines("/etc/subgid");
  if (su === undefined && sg === undefined) return undefined;
  const subuid = su !== undefined ? parseSubid(su).entries : undefined;
  const subgid = sg !== undefined ? parseSubid(sg).entries : undefined;
  const remap = parseDockerRemapValue(text);
  const ks = options.kind ?? "both";
  const pick = (e: typeof subuid, who: string) => (e ? concatenateRanges(e.filter((x) => x.owner === who)) : undefined);
  return {
    uid: ks !== "gid" ? pick(subuid, remap.user) : undefined,
    gid: ks !== "uid" ? pick(subgid, remap.group ?? remap.user) : undefined,
  };
}
