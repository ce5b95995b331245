/**
 * Map requests are checked before any syscall, so a map the kernel would
 * refuse fails with an explanation and no process is created.
 */
import { readFileSync } from "node:fs";
import { UsernsError } from "../errors.js";
import { IdMap } from "../model/idmap.js";
import { mapIdRangeDown } from "../model/lookup.js";
import { type MapInput, type PreparedMap, parseMapText } from "./maps.js";

/** This process's own map of a kind, as the kernel shows it to us: the parent map of namespaces we create. */
export function ownMap(kind: "uid" | "gid"): IdMap {
  return parseMapText(readFileSync(`/proc/self/${kind}_map`, "utf8"), kind);
}

/**
 * Validates a map request against the parent namespace's map (ours, unless
 * given) and returns the exact text to write.
 */
export function prepareMap(
  kind: "uid" | "gid",
  input: MapInput,
  parentMap: IdMap | undefined,
  _setgroups: "allow" | "deny" | undefined,
): PreparedMap {
  const map = typeof input === "string" ? parseMapText(input, kind) : input;
  if (!(map instanceof IdMap))
    throw new UsernsError(`${kind}Map`, { code: "ERR_USERNS_USAGE", reason: "must be an IdMap or map text" });
  if (map.isEmpty) throw new UsernsError(`checking ${kind}_map`, { code: "EINVAL", reason: "the map has no lines" });
  const text = map.toString();
  if (text.length >= 4096)
    throw new UsernsError(`checking ${kind}_map`, {
      code: "EINVAL",
      reason: `the map text is ${text.length} bytes; the kernel takes at most 4095`,
    });
  if (map.size > 340)
    throw new UsernsError(`checking ${kind}_map`, {
      code: "EINVAL",
      reason: `${map.size} lines; the kernel takes at most 340`,
    });
  const parent = parentMap ?? ownMap(kind);
  for (const [i, e] of map.extents.entries()) {
    const fits = mapIdRangeDown(parent, e.lowerFirst, e.count);
    if (fits === undefined || fits === 0xffffffff) {
      throw new UsernsError(`checking ${kind}_map line ${i + 1} "${e.first} ${e.lowerFirst} ${e.count}"`, {
        code: "EPERM",
        reason: `lower ids ${e.lowerFirst}-${e.lowerFirst + e.count - 1} are not mapped inside one extent of the parent namespace`,
      });
    }
  }
  return { map, text };
}
