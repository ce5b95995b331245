/**
 * crun's mount option (podman `--mount …,idmap=…`, `-v src:dst:idmap=…`):
 * `idmap[=uids=<fs>-<host>-<len>[#…];gids=…]`, also `ridmap`. fs = the id
 * stored on the backing filesystem (IdMap.first), host = the id it shows as
 * (lowerFirst). A triple prefixed `@` is relative to the container's user
 * namespace: its host part is a container id, translated through the
 * container's map (`containerMaps`: host = container map's outside id of
 * `host`). Bare `idmap` means "use the container's maps" (`containerMaps`).
 *
 * Verified against crun 1.8.1 on Linux 6.18 (test/kernel/formats-crun.test.ts):
 * crun writes each triple unchanged, as `fs host len`, into the uid_map/gid_map
 * of a user namespace it makes for the mount, so on-disk `fs` shows as `host`.
 * `idmap=uids=0-100007-1;…` in a container mapping 0 → 100000 shows a file
 * stored as uid 0 as uid 7 inside; the swapped reading would show 65534.
 * Where crun differs from this parser:
 * - `@`: crun before 1.13 picks the container extent by the fs id and adds
 *   its offset to the host id (crun commit 487ba3a8 "fix checking of relative
 *   idmapped mount" made it look up the host id, as here); the two agree when
 *   both ids fall in the same extent of the container's map.
 * - `@`: crun uses the extent holding the first id only and does not check
 *   that the whole range fits in it; this parser refuses a range that spans
 *   extents.
 * - `ridmap` came with crun 1.9 (commit 0e506e56); crun 1.8.1 does not
 *   recognise it and bind-mounts without an idmap, silently.
 * - Bare `idmap` without a container user namespace: crun 1.8.1 fails
 *   (mount_setattr EPERM); with explicit uids/gids it needs none.
 */
import type { Extent } from "../model/extent.js";
import { IdMap } from "../model/idmap.js";
import { mapIdRangeDown } from "../model/lookup.js";
import { INVALID_ID } from "../model/u32.js";
import { FormatError } from "./errors.js";
import { filterKinds } from "./kinds.js";
import { makeExtent, parseU32 } from "./text.js";
import type { FormatOptions, IdKind, MapSet, ParseOptions } from "./types.js";

const NAME = "crun-mount";

/** Parses `idmap=uids=…;gids=…` (the `idmap=`/`ridmap=` prefix is optional). */
export function parseCrunMount(text: string, options: ParseOptions = {}): MapSet {
  const trimmed = text.replace(/[\r\n]+$/, "");
  if (/[\n]/.test(trimmed))
    throw new FormatError(NAME, "parse", "expected one option on one line", { line: 2, column: 1 });
  let s = trimmed;
  let col = 1;
  const lead = /^[ \t]*/.exec(s)![0].length;
  s = s.slice(lead);
  col += lead;
  const pre = /^(r?idmap)(=|$)/.exec(s);
  if (pre) {
    if (pre[2] === "") {
      if (!options.containerMaps) {
        throw new FormatError(NAME, "parse", `bare ${pre[1]} uses the container's maps: give them (containerMaps)`, {
          line: 1,
          column: col,
        });
      }
      return filterKinds(options.containerMaps, options.kind);
    }
    s = s.slice(pre[0].length);
    col += pre[0].length;
  }
  s = s.replace(/[ \t]+$/, "");
  const found: Partial<Record<IdKind, IdMap>> = {};
  for (const part of s.split(";")) {
    const m = /^(uids|gids)=(.*)$/.exec(part);
    if (!m) {
      throw new FormatError(NAME, "parse", `expected uids=… or gids=…, got ${JSON.stringify(part)}`, {
        line: 1,
        column: col,
      });
    }
    const kind: IdKind = m[1] === "uids" ? "uid" : "gid";
    if (found[kind]) throw new FormatError(NAME, "parse", `${m[1]} given twice`, { line: 1, column: col });
    let c = col + m[1]!.length + 1;
    const list: Extent[] = [];
    for (const triple of m[2]!.split("#")) {
      const rel = triple.startsWith("@");
      const body = rel ? triple.slice(1) : triple;
      const f = body.split("-");
      const pos = { line: 1, column: c };
      if (f.length !== 3) {
        throw new FormatError(NAME, "parse", `expected [@]fs-host-length, got ${JSON.stringify(triple)}`, pos);
      }
      let fc = c + (rel ? 1 : 0);
      const fs = parseU32(NAME, f[0]!, "filesystem id", { line: 1, column: fc });
      fc += f[0]!.length + 1;
      let host = parseU32(NAME, f[1]!, "host id", { line: 1, column: fc });
      fc += f[1]!.length + 1;
      const len = parseU32(NAME, f[2]!, "length", { line: 1, column: fc });
      if (rel) {
        const cm = options.containerMaps?.[kind];
        if (!cm) {
          throw new FormatError(
            NAME,
            "parse",
            `@ makes the host id relative to the container: give the container's ${kind} map (containerMaps)`,
            pos,
          );
        }
        const h = len > 0 ? mapIdRangeDown(cm, host, len) : INVALID_ID;
        if (h === INVALID_ID) {
          throw new FormatError(
            NAME,
            "parse",
            `container ${kind}s ${host}-${host + len - 1} are not mapped by one extent of the container's map`,
            pos,
          );
        }
        host = h;
      }
      list.push(makeExtent(NAME, fs, host, len, pos));
      c += triple.length + 1;
    }
    found[kind] = IdMap.from(list);
    col += part.length + 1;
  }
  return filterKinds(found, options.kind);
}

/** Writes `idmap=uids=…;gids=…` with `#`-joined triples. */
export function formatCrunMount(maps: MapSet, options: FormatOptions = {}): string {
  const { uid, gid } = filterKinds(maps, options.kind);
  if (!uid && !gid) throw new FormatError(NAME, "format", `no ${options.kind ?? "uid or gid"} map to write`);
  const t = (m: IdMap) => m.extents.map((e) => `${e.first}-${e.lowerFirst}-${e.count}`).join("#");
  const parts: string[] = [];
  if (uid) parts.push(`uids=${t(uid)}`);
  if (gid) parts.push(`gids=${t(gid)}`);
  return `idmap=${parts.join(";")}\n`;
}
