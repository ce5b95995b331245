/**
 * podman and buildah id-map options.
 *
 * `--uidmap` / `--gidmap`: `[flags]container_id:from_id[:amount]`, several
 * triples may be joined with `:` in one value. container_id is the id inside
 * (IdMap.first); from_id is the id in the parent namespace (lowerFirst): a
 * host id when rootful, an intermediate id of podman's rootless namespace
 * when rootless (0 = the caller, 1.. = its subordinate ids in /etc/subuid order).
 * Flags: `+` extends (cuts the new extent out of the earlier ones), `u`/`g`
 * restrict the value to uids/gids; a lone `--uidmap` is copied to gids and
 * vice versa; `@host` names a parent-namespace id, translated through the
 * rootless map (`parentMaps`). podman sorts the result and merges extents
 * that continue each other, so a map comes back in canonical form.
 *
 * `--userns=keep-id[:uid=U,gid=G,size=N]`, `nomap` and `auto[:size=N,uidmapping=…,gidmapping=…]`
 * are resolved from the inputs in {@link ResolveContext}; see {@link resolvePodmanUserns}.
 */
import { type Extent, extent } from "../model/extent.js";
import { IdMap } from "../model/idmap.js";
import { findExtentUp } from "../model/lookup.js";
import { INVALID_ID } from "../model/u32.js";
import { rangesFor } from "../subid/ranges.js";
import { FormatError } from "./errors.js";
import { filterKinds, kindsOf } from "./kinds.js";
import { at, makeExtent, parseU32, type Token, tokenizeAll } from "./text.js";
import type { FormatOptions, IdKind, KindSelection, MapSet, ParseOptions, ResolveContext } from "./types.js";

const NAME = "podman";

/** One parsed triple with its flags. */
export interface PodmanTriple {
  /** `+`: cut this extent out of the earlier ones. */
  readonly extend: boolean;
  /** Applies to uids (no flag, or `u`). */
  readonly uids: boolean;
  /** Applies to gids (no flag, or `g`). */
  readonly gids: boolean;
  /** Id inside the container (IdMap.first). */
  readonly containerId: number;
  /** Parent-side id (IdMap.lowerFirst): host id rootful, intermediate id rootless. */
  readonly fromId: number;
  /** `@`: fromId is a host id to translate through the rootless map. */
  readonly fromIsHost: boolean;
  readonly amount: number;
}

/** Parses one `--uidmap`/`--gidmap` value into triples. */
export function parsePodmanIdmapValue(value: string, where: Token): PodmanTriple[] {
  const fields = value.split(":");
  if (fields.length === 2) fields.push("1");
  if (fields.length % 3 !== 0) {
    throw new FormatError(
      NAME,
      "parse",
      `expected [+ug]container:[@]from[:amount] (or joined triples), got ${JSON.stringify(value)}`,
      at(where),
    );
  }
  const out: PodmanTriple[] = [];
  let col = where.column - 1 + (where.text.length - value.length);
  for (let i = 0; i < fields.length; i += 3) {
    const [c, f, a] = [fields[i]!, fields[i + 1]!, fields[i + 2]!];
    const pos = { line: where.line, column: col + 1 };
    const fm = /^([+ug]*)(.*)$/.exec(c)!;
    const flags = fm[1]!;
    if (fm[2] === "") throw new FormatError(NAME, "parse", "empty container id", pos);
    const containerId = parseU32(NAME, fm[2]!, "container id", { line: pos.line, column: pos.column + flags.length });
    const fcol = pos.column + c.length + 1;
    const fromIsHost = f.startsWith("@");
    const fromId = parseU32(NAME, fromIsHost ? f.slice(1) : f, "from id", { line: pos.line, column: fcol });
    const amount = parseU32(NAME, a, "amount", { line: pos.line, column: fcol + f.length + 1 });
    const u = flags.includes("u");
    const g = flags.includes("g");
    out.push({
      extend: flags.includes("+"),
      uids: u || !g,
      gids: g || !u,
      containerId,
      fromId,
      fromIsHost,
      amount,
    });
    col += c.length + f.length + a.length + 3;
  }
  return out;
}

/** Removes from `list` every id that the new extent's inside or parent range claims (podman's breakInsert). */
function breakInsert(list: Extent[], add: Extent): Extent[] {
  const out: Extent[] = [];
  for (const e of list) {
    // offsets k of e that clash: e.first+k in add's inside range, or e.lowerFirst+k in add's parent range
    const cut = [
      [add.first - e.first, add.first + add.count - e.first],
      [add.lowerFirst - e.lowerFirst, add.lowerFirst + add.count - e.lowerFirst],
    ]
      .map(([a, b]) => [Math.max(0, a!), Math.min(e.count, b!)] as const)
      .filter(([a, b]) => a < b)
      .sort((x, y) => x[0] - y[0]);
    let k = 0;
    for (const [a, b] of cut) {
      if (a > k) out.push(extent(e.first + k, e.lowerFirst + k, a - k));
      k = Math.max(k, b);
    }
    if (k < e.count) out.push(extent(e.first + k, e.lowerFirst + k, e.count - k));
  }
  out.push(add);
  return out;
}

/** Fills unassigned container ids from 0 with the parent's ids not used yet (podman's rootless fill). */
function fillFromParent(list: Extent[], parent: IdMap): Extent[] {
  // available intermediate ids: the parent's inside ranges minus the ones already used as lowerFirst
  const used = [...list].sort((a, b) => a.lowerFirst - b.lowerFirst);
  const avail: [number, number][] = [];
  for (const p of [...parent.extents].sort((a, b) => a.first - b.first)) {
    let s = p.first;
    const end = p.first + p.count;
    for (const u of used) {
      const ue = u.lowerFirst + u.count;
      if (ue <= s || u.lowerFirst >= end) continue;
      if (u.lowerFirst > s) avail.push([s, u.lowerFirst]);
      s = Math.max(s, ue);
    }
    if (s < end) avail.push([s, end]);
  }
  const byCid = [...list].sort((a, b) => a.first - b.first);
  const out: Extent[] = [];
  let next = 0;
  let ai = 0;
  let cur = avail[0]?.[0];
  const take = (limit: number) => {
    while (cur !== undefined && next < limit) {
      const [, e] = avail[ai]!;
      const n = Math.min(limit - next, e - cur);
      out.push(extent(next, cur, n));
      next += n;
      cur += n;
      if (cur >= e) {
        ai++;
        cur = avail[ai]?.[0];
      }
    }
  };
  for (const m of byCid) {
    take(m.first);
    out.push(m);
    next = Math.max(next, m.first + m.count);
  }
  take(INVALID_ID);
  return out;
}

function buildMap(
  triples: readonly { t: PodmanTriple; tok: Token }[],
  kind: IdKind,
  parent: IdMap | undefined,
): IdMap | undefined {
  let list: Extent[] = [];
  let fill = false;
  for (const { t, tok } of triples) {
    if (kind === "uid" ? !t.uids : !t.gids) continue;
    if (t.amount === 0) continue; // podman ignores a zero amount
    const pieces: Extent[] = [];
    if (t.fromIsHost) {
      if (!parent) {
        throw new FormatError(
          NAME,
          "parse",
          `@${t.fromId} names a host id: give the rootless namespace's ${kind} map (parentMaps) to translate it`,
          at(tok),
        );
      }
      // podman maps each host id on its own and merges afterwards; walking the
      // parent's extents gives the same pieces without a loop per id
      let id = t.fromId;
      const end = t.fromId + t.amount;
      while (id < end) {
        const e = findExtentUp(parent, id, 1);
        if (!e)
          throw new FormatError(NAME, "parse", `host ${kind} ${id} is not mapped in the rootless namespace`, at(tok));
        const k = Math.min(end - id, e.lowerFirst + e.count - id);
        pieces.push(makeExtent(NAME, t.containerId + (id - t.fromId), e.first + (id - e.lowerFirst), k, at(tok)));
        id += k;
      }
    } else pieces.push(makeExtent(NAME, t.containerId, t.fromId, t.amount, at(tok)));
    for (const p of pieces) {
      if (!t.extend) list.push(p);
      else {
        if (list.length === 0 && parent) fill = true;
        list = breakInsert(list, p);
      }
    }
  }
  if (fill && parent) list = fillFromParent(list, parent);
  if (list.length === 0) return undefined;
  return IdMap.from(list).canonical();
}

/** A parsed podman argument list. */
export interface PodmanArgs {
  readonly uidmap: { value: string; tok: Token }[];
  readonly gidmap: { value: string; tok: Token }[];
  readonly userns: { value: string; tok: Token } | undefined;
}

/** Splits `--uidmap=V`, `--uidmap V`, `--gidmap …`, `--userns …` and bare values (which count as `--uidmap`, or `--gidmap` with kind gid). */
export function parsePodmanArgs(text: string, bareAs: "uidmap" | "gidmap" = "uidmap"): PodmanArgs {
  const toks = tokenizeAll(text).map((t) => {
    const q = /^(['"])(.*)\1$/.exec(t.text);
    return q ? { ...t, text: q[2]!, column: t.column + 1 } : t;
  });
  const out: PodmanArgs = { uidmap: [], gidmap: [], userns: undefined };
  const args = out as { uidmap: PodmanArgs["uidmap"]; gidmap: PodmanArgs["gidmap"]; userns: PodmanArgs["userns"] };
  for (let i = 0; i < toks.length; i++) {
    const tok = toks[i]!;
    const m = /^--(uidmap|gidmap|userns)(=(.*))?$/.exec(tok.text);
    let opt = bareAs as "uidmap" | "gidmap" | "userns";
    let value = tok.text;
    let vtok = tok;
    if (m) {
      opt = m[1] as typeof opt;
      if (m[2] !== undefined) {
        value = m[3]!;
        let c = tok.column + m[1]!.length + 3;
        const q = /^(['"])(.*)\1$/.exec(value);
        if (q) {
          value = q[2]!;
          c++;
        }
        vtok = { ...tok, text: value, column: c };
      } else {
        const next = toks[i + 1];
        if (!next) throw new FormatError(NAME, "parse", `--${opt} needs a value`, at(tok, tok.text.length));
        value = next.text;
        vtok = next;
        i++;
      }
    } else if (tok.text.startsWith("-")) {
      throw new FormatError(NAME, "parse", `unknown option ${JSON.stringify(tok.text)}`, at(tok));
    }
    if (opt === "userns") {
      if (args.userns) throw new FormatError(NAME, "parse", "--userns given twice", at(tok));
      args.userns = { value, tok: vtok };
    } else args[opt].push({ value, tok: vtok });
  }
  if (out.userns && (out.uidmap.length || out.gidmap.length)) {
    throw new FormatError(
      NAME,
      "parse",
      "--userns cannot be combined with --uidmap/--gidmap (podman refuses it)",
      at(out.userns.tok),
    );
  }
  return out;
}

/** Parses podman `--uidmap`/`--gidmap`/`--userns` arguments into maps (relative to podman's parent namespace). */
export function parsePodman(text: string, options: ParseOptions = {}): MapSet {
  const args = parsePodmanArgs(text, options.kind === "gid" ? "gidmap" : "uidmap");
  if (args.userns) return filterKinds(resolvePodmanUserns(args.userns.value, options, args.userns.tok), options.kind);
  if (args.uidmap.length === 0 && args.gidmap.length === 0) {
    throw new FormatError(NAME, "parse", "no --uidmap, --gidmap or --userns given", { line: 1, column: 1 });
  }
  // a lone --uidmap is copied to gids and vice versa (podman's ParseIDMapping)
  const uvals = args.uidmap.length ? args.uidmap : args.gidmap;
  const gvals = args.gidmap.length ? args.gidmap : args.uidmap;
  const triples = (vals: PodmanArgs["uidmap"]) =>
    vals.flatMap(({ value, tok }) => parsePodmanIdmapValue(value, tok).map((t) => ({ t, tok })));
  const want = kindsOf(options.kind);
  let uid = want.includes("uid") ? buildMap(triples(uvals), "uid", options.parentMaps?.uid) : undefined;
  let gid = want.includes("gid") ? buildMap(triples(gvals), "gid", options.parentMaps?.gid) : undefined;
  // rootless: when only one kind came out, podman fills the other with every available id
  if (options.parentMaps) {
    if (uid && !gid && options.parentMaps.gid) gid = IdMap.from(fillFromParent([], options.parentMaps.gid)).canonical();
    if (gid && !uid && options.parentMaps.uid) uid = IdMap.from(fillFromParent([], options.parentMaps.uid)).canonical();
  }
  return filterKinds({ uid, gid }, options.kind);
}

/** Writes `--uidmap=` (and `--gidmap=`) lines: one `--uidmap` set when uids and gids map the same. */
export function formatPodman(maps: MapSet, options: FormatOptions = {}): string {
  const { uid, gid } = filterKinds(maps, options.kind);
  if (!uid && !gid) throw new FormatError(NAME, "format", `no ${options.kind ?? "uid or gid"} map to write`);
  const t = (e: Extent) => `${e.first}:${e.lowerFirst}:${e.count}`;
  if (uid && gid && uid.sameMapping(gid))
    return uid
      .canonical()
      .extents.map((e) => `--uidmap=${t(e)}\n`)
      .join("");
  // a map alone gets the u/g flag so podman does not copy it to the other kind
  const lines: string[] = [];
  for (const e of uid?.canonical().extents ?? []) lines.push(`--uidmap=${gid ? "" : "u"}${t(e)}`);
  for (const e of gid?.canonical().extents ?? []) lines.push(`--gidmap=${uid ? "" : "g"}${t(e)}`);
  return lines.map((l) => `${l}\n`).join("");
}

/** Podman's rootless parent map: the caller at 0, then every subordinate range in file order from 1. */
export function rootlessParentMap(ownId: number, ranges: readonly { start: number; count: number }[]): IdMap {
  const out: Extent[] = [extent(0, ownId, 1)];
  let next = 1;
  for (const r of ranges) {
    out.push(extent(next, r.start, r.count));
    next += r.count;
  }
  return IdMap.from(out);
}

function parentFor(kind: IdKind, ctx: ResolveContext, tok: Token): IdMap {
  const given = ctx.parentMaps?.[kind];
  if (given) return given;
  const own = kind === "uid" ? ctx.uid : ctx.gid;
  const entries = kind === "uid" ? ctx.subuid : ctx.subgid;
  if (own === undefined || !entries) {
    throw new FormatError(
      NAME,
      "parse",
      `resolving this --userns needs the rootless ${kind} map: give parentMaps, or the caller's ${kind} and /etc/sub${kind} entries`,
      at(tok),
    );
  }
  // subuid owners are matched against the caller's uid and login name (gid files too: shadow keys both by user)
  const ranges = rangesFor(entries, { uid: ctx.uid, name: ctx.users?.find((u) => u.uid === ctx.uid)?.name });
  return rootlessParentMap(own, ranges);
}

function parseOpts(value: string, allowed: readonly string[], tok: Token): Map<string, string> {
  const out = new Map<string, string>();
  if (value === "") return out;
  for (const kv of value.split(",")) {
    const eq = kv.indexOf("=");
    if (eq < 0)
      throw new FormatError(NAME, "parse", `invalid option ${JSON.stringify(kv)}: expected key=value`, at(tok));
    const k = kv.slice(0, eq);
    if (!allowed.includes(k)) {
      throw new FormatError(
        NAME,
        "parse",
        `unknown option ${JSON.stringify(k)}: expected ${allowed.join(", ")}`,
        at(tok),
      );
    }
    if (out.has(k) && k !== "uidmapping" && k !== "gidmapping")
      throw new FormatError(NAME, "parse", `option ${k} given twice`, at(tok));
    out.set(k, out.has(k) ? `${out.get(k)}\n${kv.slice(eq + 1)}` : kv.slice(eq + 1));
  }
  return out;
}

/**
 * What a podman `--userns` value resolves to, relative to podman's parent
 * namespace (the rootless namespace for keep-id and nomap, the host for rootful auto):
 *
 * - `keep-id[:uid=U,gid=G,size=N]` (rootless): with n intermediate ids
 *   after the caller's own (n = subordinate ids, capped at N-1 by `size`),
 *   container U → intermediate 0 (the caller), 0..U-1 → 1..U, U+1.. → U+1..n.
 *   U defaults to the caller's uid (G to its gid).
 * - `nomap` (rootless): container 0..n-1 → intermediate 1..n (the caller is not mapped).
 * - `auto[:size=N,uidmapping=C:H[:S],gidmapping=…]`: container 0..N-1 →
 *   the first N ids of the `containers` user's /etc/subuid and /etc/subgid
 *   ranges (rootful), or of the intermediate ids 1..n when the rootless map
 *   is given in `parentMaps` (N defaults to 1024, storage.conf's
 *   auto-userns-min-size); uidmapping/gidmapping entries are then cut in as
 *   with `+`. podman also skips ranges other containers hold and sizes the
 *   namespace from the image, which a converter cannot see.
 * - `host`, `""`, `ns:…`, `container:…`: no map to convert (an error says so).
 */
export function resolvePodmanUserns(spec: string, ctx: ResolveContext & { kind?: KindSelection }, tok?: Token): MapSet {
  const t = tok ?? { text: spec, line: 1, column: 1 };
  const colon = spec.indexOf(":");
  const mode = colon < 0 ? spec : spec.slice(0, colon);
  const rest = colon < 0 ? "" : spec.slice(colon + 1);
  const out: { uid?: IdMap; gid?: IdMap } = {};
  if (mode === "keep-id" || mode === "nomap") {
    const o = parseOpts(rest, mode === "keep-id" ? ["uid", "gid", "size"] : [], t);
    const size = o.has("size") ? parseU32(NAME, o.get("size")!, "size", at(t)) : undefined;
    for (const kind of kindsOf(ctx.kind)) {
      const parent = parentFor(kind, ctx, t);
      const total = parent.extents.reduce((s, e) => s + e.count, 0);
      let n = total - 1; // intermediate ids 1..n are the subordinate ones
      if (size !== undefined) n = Math.min(n, Math.max(0, size - 1));
      const list: Extent[] = [];
      if (mode === "nomap") {
        if (n > 0) list.push(extent(0, 1, n));
      } else {
        const own = kind === "uid" ? ctx.uid : ctx.gid;
        const want = o.get(kind);
        const x = want !== undefined ? parseU32(NAME, want, kind, at(t)) : own;
        if (x === undefined) throw new FormatError(NAME, "parse", `keep-id needs the caller's ${kind}`, at(t));
        if (Math.min(x, n) > 0) list.push(extent(0, 1, Math.min(x, n)));
        list.push(extent(x, 0, 1));
        if (n > x) list.push(extent(x + 1, x + 1, n - x));
      }
      out[kind] = IdMap.from(list).canonical();
    }
    return out;
  }
  if (mode === "auto") {
    const o = parseOpts(rest, ["size", "uidmapping", "gidmapping"], t);
    const size = o.has("size") ? parseU32(NAME, o.get("size")!, "size", at(t)) : 1024;
    if (size === 0) throw new FormatError(NAME, "parse", "size must be at least 1", at(t));
    for (const kind of kindsOf(ctx.kind)) {
      // rootless (parentMaps given): the subordinate intermediate ids 1..n; rootful: the containers user's ranges
      const parent = ctx.parentMaps?.[kind];
      const entries = parent
        ? [{ start: 1, count: parent.extents.reduce((s, e) => s + e.count, 0) - 1 }].filter((e) => e.count > 0)
        : (kind === "uid" ? ctx.subuid : ctx.subgid)?.filter((e) => e.owner === "containers");
      if (!entries || entries.length === 0) {
        throw new FormatError(
          NAME,
          "parse",
          `auto needs the "containers" user's /etc/sub${kind} ranges (rootful) or the rootless ${kind} map (parentMaps)`,
          at(t),
        );
      }
      let list: Extent[] = [];
      let next = 0;
      for (const e of entries) {
        if (next >= size) break;
        const n = Math.min(e.count, size - next);
        list.push(extent(next, e.start, n));
        next += n;
      }
      if (next < size) {
        throw new FormatError(
          NAME,
          "parse",
          `${parent ? "the rootless namespace has" : "the containers user has"} ${next} subordinate ${kind}s, fewer than size=${size}`,
          at(t),
        );
      }
      for (const v of (o.get(`${kind}mapping`) ?? "").split("\n").filter((x) => x !== "")) {
        const fields = v.split(":");
        if (fields.length === 2) fields.push("1");
        if (fields.length !== 3)
          throw new FormatError(NAME, "parse", `${kind}mapping must be C:H[:S], got ${JSON.stringify(v)}`, at(t));
        const triples = parsePodmanIdmapValue(fields.join(":"), { ...t, text: fields.join(":") });
        const m = buildMap(
          triples.map((x) => ({ t: { ...x, extend: false, uids: true, gids: true }, tok: t })),
          kind,
          ctx.parentMaps?.[kind],
        );
        for (const e of m?.extents ?? []) list = breakInsert(list, e);
      }
      out[kind] = IdMap.from(list).canonical();
    }
    return out;
  }
  if (mode === "host" || mode === "" || mode === "private") {
    throw new FormatError(
      NAME,
      "parse",
      `--userns=${spec} creates no id map to convert (runs in the caller's namespace)`,
      at(t),
    );
  }
  if (mode === "ns" || mode === "container") {
    throw new FormatError(
      NAME,
      "parse",
      `--userns=${spec} joins an existing namespace: read its uid_map and gid_map instead`,
      at(t),
    );
  }
  throw new FormatError(NAME, "parse", `unknown --userns mode ${JSON.stringify(mode)}`, at(t));
}
