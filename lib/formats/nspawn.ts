/**
 * systemd-nspawn `--private-users=`: `no`, `yes`, `pick`, `identity`,
 * `managed`, `<base>[:<count>]` (count defaults to 65536). The map is always
 * one extent from container id 0, the same for uids and gids:
 * `0 <base> <count>`. `identity` is `0 0 65536`. `yes` takes the base from the
 * root directory's owner (`rootOwner`, which must be a multiple of 65536);
 * `pick` and `managed` are chosen at run time and cannot be converted.
 */
import type { IdMap } from "../model/idmap.js";
import { IdMap as IdMapClass } from "../model/idmap.js";
import { FormatError } from "./errors.js";
import { fromSingle, toSingle } from "./kinds.js";
import { parseU32 } from "./text.js";
import type { FormatOptions, MapSet, ParseOptions } from "./types.js";

const NAME = "nspawn";

/** Parses one `--private-users=` value (the option name is optional). */
export function parseNspawn(text: string, options: ParseOptions = {}): MapSet {
  let s = text.trim();
  let col = text.length - text.trimStart().length + 1;
  const pre = /^(--private-users=|PrivateUsers=)/.exec(s);
  if (pre) {
    s = s.slice(pre[0].length);
    col += pre[0].length;
  }
  const pos = { line: 1, column: col };
  if (/\s/.test(s)) throw new FormatError(NAME, "parse", "expected one value", pos);
  const one = (base: number, count: number): MapSet => {
    if (count === 0) throw new FormatError(NAME, "parse", "count must be at least 1", pos);
    if (base + count > 0x1_0000_0000) throw new FormatError(NAME, "parse", "range runs past 4294967295", pos);
    return fromSingle(IdMapClass.of([0, base, count]), options.kind);
  };
  switch (s) {
    case "no":
    case "false":
    case "0":
      throw new FormatError(NAME, "parse", `--private-users=${s} creates no user namespace: no map to convert`, pos);
    case "identity":
      return one(0, 65536);
    case "yes":
    case "true":
    case "1":
      if (options.rootOwner === undefined) {
        throw new FormatError(
          NAME,
          "parse",
          "--private-users=yes takes the base from the root directory's owner: give it (rootOwner)",
          pos,
        );
      }
      if (options.rootOwner % 65536 !== 0) {
        throw new FormatError(
          NAME,
          "parse",
          `root directory owner ${options.rootOwner} is not a multiple of 65536 (nspawn refuses it)`,
          pos,
        );
      }
      return one(options.rootOwner, 65536);
    case "pick":
    case "managed":
      throw new FormatError(
        NAME,
        "parse",
        `--private-users=${s} picks a range at run time: no fixed map to convert`,
        pos,
      );
  }
  const m = /^([^:]*)(?::(.*))?$/.exec(s)!;
  const base = parseU32(NAME, m[1]!, "base", pos);
  const count = m[2] === undefined ? 65536 : parseU32(NAME, m[2], "count", { line: 1, column: col + m[1]!.length + 1 });
  return one(base, count);
}

/** Writes `--private-users=<base>:<count>`; the map must be one extent starting at container id 0. */
export function formatNspawn(maps: MapSet, options: FormatOptions = {}): string {
  const m: IdMap = toSingle(NAME, maps, options.kind);
  const e = m.extents[0];
  if (m.size !== 1 || !e || e.first !== 0) {
    throw new FormatError(
      NAME,
      "format",
      "nspawn maps exactly one range starting at container id 0 (0 <base> <count>)",
    );
  }
  return `--private-users=${e.lowerFirst}:${e.count}\n`;
}
