/**
 * The JSON shapes: OCI (process and mount), Go SysProcIDMap,
 * containers/storage, CRI and Incus. Node's JSON.parse gives no position,
 * so on a syntax error a small scanner finds the line and column; shape
 * errors name the JSON pointer of the offending value.
 */
import type { Extent } from "../model/extent.js";
import { IdMap } from "../model/idmap.js";
import { U32_RANGE } from "../model/u32.js";
import { FormatError } from "./errors.js";
import { filterKinds, fromSingle, fromTagged, toTagged } from "./kinds.js";
import { makeExtent } from "./text.js";
import type { FormatName, FormatOptions, IdKind, KindSelection, MapSet, ParseOptions } from "./types.js";

/** Where a JSON text stops being JSON: 0-based offset and what was expected. */
function jsonSyntaxError(text: string): { offset: number; reason: string } {
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const fail = (reason: string): never => {
    throw { offset: i, reason };
  };
  const lit = (w: string) => {
    if (text.startsWith(w, i)) i += w.length;
    else fail(`expected ${w}`);
  };
  const str = () => {
    i++; // opening quote
    while (i < text.length && text[i] !== '"') {
      const c = text.charCodeAt(i);
      if (c < 0x20) fail("control character in string");
      if (text[i] === "\\") {
        i++;
        if (text[i] === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail("bad \\u escape");
          i += 5;
        } else if (i < text.length && '"\\/bfnrt'.includes(text[i]!)) i++;
        else fail("bad escape");
      } else i++;
    }
    if (i >= text.length) fail("unterminated string");
    i++;
  };
  const num = () => {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i));
    if (!m || m[0] === "" || m[0] === "-") fail("expected a value");
    i += m![0].length;
  };
  const value = (depth: number): void => {
    if (depth > 512) fail("nested too deeply");
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      ws();
      if (text[i] === "}") {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a property name in double quotes");
        str();
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        value(depth + 1);
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") {
          i++;
          return;
        } else fail("expected ',' or '}'");
      }
    } else if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") {
        i++;
        return;
      }
      for (;;) {
        value(depth + 1);
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "]") {
          i++;
          return;
        } else fail("expected ',' or ']'");
      }
    } else if (c === '"') str();
    else if (c === "t") lit("true");
    else if (c === "f") lit("false");
    else if (c === "n") lit("null");
    else if (c === undefined) fail("unexpected end of input");
    else num();
  };
  try {
    value(0);
    ws();
    if (i < text.length) fail("unexpected text after the JSON value");
    return { offset: i, reason: "invalid JSON" };
  } catch (e) {
    return e as { offset: number; reason: string };
  }
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const nl = before.lastIndexOf("\n");
  return { line: before.split("\n").length, column: offset - nl };
}

/** JSON.parse with a line/column on failure. */
export function parseJsonText(format: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const { offset, reason } = jsonSyntaxError(text);
    throw new FormatError(format, "parse", `not valid JSON: ${reason}`, lineColumn(text, offset));
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Field names of one JSON mapping entry, in the format's own spelling. */
interface TripleShape {
  readonly first: string;
  readonly lower: string;
  readonly count: string;
}

function u32Field(format: string, obj: Record<string, unknown>, key: string, pointer: string): number {
  const v = obj[key];
  if (v === undefined) throw new FormatError(format, "parse", `missing field "${key}"`, { pointer });
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v >= U32_RANGE) {
    throw new FormatError(
      format,
      "parse",
      `"${key}" must be an integer from 0 to 4294967295, got ${JSON.stringify(v)}`,
      {
        pointer: `${pointer}/${key}`,
      },
    );
  }
  return v;
}

function parseTriples(format: string, shape: TripleShape, value: unknown, pointer: string): IdMap {
  if (!Array.isArray(value)) throw new FormatError(format, "parse", "expected an array of mappings", { pointer });
  const out: Extent[] = [];
  value.forEach((item, idx) => {
    const p = `${pointer}/${idx}`;
    if (!isObj(item)) throw new FormatError(format, "parse", "expected an object", { pointer: p });
    const known = [shape.first, shape.lower, shape.count];
    for (const k of Object.keys(item)) {
      if (!known.includes(k)) {
        const alt = Object.entries(SHAPES).find(([, s]) => [s.first, s.lower, s.count].includes(k));
        throw new FormatError(
          format,
          "parse",
          `unknown field "${k}": ${format} uses ${known.map((x) => `"${x}"`).join(", ")}${alt ? ` ("${k}" is ${alt[0]}'s spelling)` : ""}`,
          { pointer: `${p}/${k}` },
        );
      }
    }
    const first = u32Field(format, item, shape.first, p);
    const lower = u32Field(format, item, shape.lower, p);
    const count = u32Field(format, item, shape.count, p);
    out.push(makeExtent(format, first, lower, count, { pointer: p }));
  });
  return IdMap.from(out);
}

function writeTriples(shape: TripleShape, map: IdMap): Record<string, number>[] {
  return map.extents.map((e) => ({ [shape.first]: e.first, [shape.lower]: e.lowerFirst, [shape.count]: e.count }));
}

const SHAPES: Record<"oci" | "go" | "storage" | "cri", TripleShape> = {
  oci: { first: "containerID", lower: "hostID", count: "size" },
  go: { first: "ContainerID", lower: "HostID", count: "Size" },
  storage: { first: "container_id", lower: "host_id", count: "size" },
  cri: { first: "containerId", lower: "hostId", count: "length" },
};

/** Container keys for the uid and gid arrays, first spelling is the one written. */
const KEYS: Record<"oci" | "go" | "storage" | "cri", { uid: string[]; gid: string[] }> = {
  oci: { uid: ["uidMappings"], gid: ["gidMappings"] },
  go: { uid: ["UidMappings"], gid: ["GidMappings"] },
  storage: { uid: ["uidmap", "UIDMap"], gid: ["gidmap", "GIDMap"] },
  cri: { uid: ["uids"], gid: ["gids"] },
};

type TripleFormat = keyof typeof SHAPES;

function parseContainer(
  format: FormatName,
  which: TripleFormat,
  obj: Record<string, unknown>,
  pointer: string,
  sel: KindSelection | undefined,
): MapSet | undefined {
  const found: { uid?: IdMap; gid?: IdMap } = {};
  let any = false;
  for (const kind of ["uid", "gid"] as IdKind[]) {
    for (const key of KEYS[which][kind]) {
      if (obj[key] !== undefined) {
        found[kind] = parseTriples(format, SHAPES[which], obj[key], `${pointer}/${key}`);
        any = true;
        break;
      }
    }
  }
  return any ? filterKinds(found, sel) : undefined;
}

/** Parses a JSON triple format: a bare array (kind from options) or an object holding the uid/gid arrays. */
function parseTripleJson(format: FormatName, which: TripleFormat, text: string, options: ParseOptions): MapSet {
  const v = parseJsonText(format, text);
  if (Array.isArray(v)) return fromSingle(parseTriples(format, SHAPES[which], v, ""), options.kind);
  if (isObj(v)) {
    const direct = parseContainer(format, which, v, "", options.kind);
    if (direct) return direct;
    if (which === "oci" && isObj(v.linux)) {
      const nested = parseContainer(format, which, v.linux, "/linux", options.kind);
      if (nested) return nested;
    }
  }
  const keys = [...KEYS[which].uid, ...KEYS[which].gid].map((k) => `"${k}"`).join(" or ");
  throw new FormatError(format, "parse", `expected an array of mappings or an object with ${keys}`, { pointer: "" });
}

function formatTripleJson(format: FormatName, which: TripleFormat, maps: MapSet, options: FormatOptions): string {
  const sel = filterKinds(maps, options.kind);
  if (!sel.uid && !sel.gid) throw new FormatError(format, "format", `no ${options.kind ?? "uid or gid"} map to write`);
  const out: Record<string, unknown> = {};
  if (sel.uid) out[KEYS[which].uid[0]!] = writeTriples(SHAPES[which], sel.uid);
  if (sel.gid) out[KEYS[which].gid[0]!] = writeTriples(SHAPES[which], sel.gid);
  return `${JSON.stringify(out, null, 2)}\n`;
}

/** OCI `linux.uidMappings`/`gidMappings`: containerID = inside (first), hostID = outside (lowerFirst). */
export const parseOci = (text: string, o: ParseOptions = {}): MapSet => parseTripleJson("oci", "oci", text, o);
/** Writes `{"uidMappings": […], "gidMappings": […]}`. */
export const formatOci = (m: MapSet, o: FormatOptions = {}): string => formatTripleJson("oci", "oci", m, o);
/** Go `[]syscall.SysProcIDMap` (or a SysProcAttr-like object with UidMappings/GidMappings). */
export const parseGo = (text: string, o: ParseOptions = {}): MapSet => parseTripleJson("go", "go", text, o);
/** Writes `{"UidMappings": […], "GidMappings": […]}`. */
export const formatGo = (m: MapSet, o: FormatOptions = {}): string => formatTripleJson("go", "go", m, o);
/** containers/storage `idtools.IDMap` arrays (`uidmap`/`gidmap`). */
export const parseStorage = (text: string, o: ParseOptions = {}): MapSet =>
  parseTripleJson("storage", "storage", text, o);
/** Writes `{"uidmap": […], "gidmap": […]}`. */
export const formatStorage = (m: MapSet, o: FormatOptions = {}): string => formatTripleJson("storage", "storage", m, o);
/** CRI `LinuxIDMapping` arrays (`uids`/`gids` of a UserNamespace). */
export const parseCri = (text: string, o: ParseOptions = {}): MapSet => parseTripleJson("cri", "cri", text, o);
/** Writes `{"uids": […], "gids": […]}`. */
export const formatCri = (m: MapSet, o: FormatOptions = {}): string => formatTripleJson("cri", "cri", m, o);

/**
 * OCI mount idmap: a mount object with `uidMappings`/`gidMappings` (both or
 * neither) and the `idmap` or `ridmap` option. containerID = id stored on disk
 * (first), hostID = id seen through the mount (lowerFirst). A full config or
 * a `mounts` array is accepted when exactly one mount carries mappings. With
 * the option and no mappings the runtime uses the container's maps: pass them
 * as `containerMaps`.
 */
export function parseOciMount(text: string, options: ParseOptions = {}): MapSet {
  const F = "oci-mount";
  const v = parseJsonText(F, text);
  let mount: Record<string, unknown> | undefined;
  let pointer = "";
  const mounts = isObj(v) && Array.isArray(v.mounts) ? v.mounts : Array.isArray(v) ? v : undefined;
  if (mounts) {
    const base = Array.isArray(v) ? "" : "/mounts";
    const idm = mounts
      .map((m, i) => ({ m, i }))
      .filter(({ m }) => isObj(m) && (m.uidMappings !== undefined || m.gidMappings !== undefined || hasIdmapOption(m)));
    if (idm.length !== 1) {
      throw new FormatError(F, "parse", `expected exactly one idmapped mount, found ${idm.length}`, { pointer: base });
    }
    mount = idm[0]!.m as Record<string, unknown>;
    pointer = `${base}/${idm[0]!.i}`;
  } else if (isObj(v)) mount = v;
  if (!mount) throw new FormatError(F, "parse", "expected a mount object", { pointer: "" });
  const hasU = mount.uidMappings !== undefined;
  const hasG = mount.gidMappings !== undefined;
  if (hasU !== hasG) {
    throw new FormatError(F, "parse", "uidMappings and gidMappings must be given together (OCI: both or neither)", {
      pointer: `${pointer}/${hasU ? "gidMappings" : "uidMappings"}`,
    });
  }
  if (!hasU) {
    if (!hasIdmapOption(mount)) {
      throw new FormatError(F, "parse", 'no uidMappings/gidMappings and no "idmap"/"ridmap" option', { pointer });
    }
    if (!options.containerMaps) {
      throw new FormatError(
        F,
        "parse",
        "idmap without mappings uses the container's user namespace maps: give them (containerMaps)",
        { pointer: `${pointer}/options` },
      );
    }
    return filterKinds(options.containerMaps, options.kind);
  }
  return filterKinds(
    {
      uid: parseTriples(F, SHAPES.oci, mount.uidMappings, `${pointer}/uidMappings`),
      gid: parseTriples(F, SHAPES.oci, mount.gidMappings, `${pointer}/gidMappings`),
    },
    options.kind,
  );
}

/**
 * One OCI `uidMappings`/`gidMappings` array, already parsed from JSON, as a
 * map: containerID → first, hostID → lowerFirst. For callers holding the
 * object rather than the text (lib/mounts' fromOciMountMappings).
 */
export function parseOciMappingArray(value: unknown, pointer = ""): IdMap {
  return parseTriples("oci-mount", SHAPES.oci, value, pointer);
}

function hasIdmapOption(m: Record<string, unknown>): boolean {
  return Array.isArray(m.options) && m.options.some((o) => o === "idmap" || o === "ridmap");
}

/** Writes a mount fragment `{"options": ["idmap"], "uidMappings": […], "gidMappings": […]}`; needs both maps. */
export function formatOciMount(maps: MapSet, options: FormatOptions = {}): string {
  const sel = filterKinds(maps, options.kind);
  if (!sel.uid || !sel.gid) {
    throw new FormatError(
      "oci-mount",
      "format",
      "an OCI mount needs both uidMappings and gidMappings: convert with --kind both and give both maps",
    );
  }
  const out = {
    options: ["idmap"],
    uidMappings: writeTriples(SHAPES.oci, sel.uid),
    gidMappings: writeTriples(SHAPES.oci, sel.gid),
  };
  return `${JSON.stringify(out, null, 2)}\n`;
}

/**
 * Incus/LXD JSON (`volatile.idmap.*`): `[{"Isuid":…,"Isgid":…,"Hostid":…,"Nsid":…,"Maprange":…}]`.
 * Nsid = inside (first), Hostid = outside (lowerFirst). The config stores it
 * as a JSON string; a string holding the array is accepted.
 */
export function parseIncusJson(text: string, options: ParseOptions = {}): MapSet {
  const F = "incus-json";
  let v = parseJsonText(F, text);
  if (typeof v === "string") v = parseJsonText(F, v);
  if (!Array.isArray(v)) throw new FormatError(F, "parse", "expected an array of idmap entries", { pointer: "" });
  const entries: { kind: KindSelection; extent: Extent }[] = [];
  v.forEach((item, idx) => {
    const p = `/${idx}`;
    if (!isObj(item)) throw new FormatError(F, "parse", "expected an object", { pointer: p });
    const known = ["Isuid", "Isgid", "Hostid", "Nsid", "Maprange"];
    for (const k of Object.keys(item)) {
      if (!known.includes(k)) throw new FormatError(F, "parse", `unknown field "${k}"`, { pointer: `${p}/${k}` });
    }
    for (const k of ["Isuid", "Isgid"]) {
      if (item[k] !== undefined && typeof item[k] !== "boolean") {
        throw new FormatError(F, "parse", `"${k}" must be true or false`, { pointer: `${p}/${k}` });
      }
    }
    const u = item.Isuid === true;
    const g = item.Isgid === true;
    if (!u && !g) throw new FormatError(F, "parse", "entry is neither Isuid nor Isgid", { pointer: p });
    const e = makeExtent(
      F,
      u32Field(F, item, "Nsid", p),
      u32Field(F, item, "Hostid", p),
      u32Field(F, item, "Maprange", p),
      {
        pointer: p,
      },
    );
    entries.push({ kind: u && g ? "both" : u ? "uid" : "gid", extent: e });
  });
  return fromTagged(entries, options.kind);
}

/** Writes the Incus JSON array (entries with Isuid and Isgid both true when the maps are equal). */
export function formatIncusJson(maps: MapSet, options: FormatOptions = {}): string {
  const out = toTagged("incus-json", maps, options.kind).map(({ kind, extent: e }) => ({
    Isuid: kind !== "gid",
    Isgid: kind !== "uid",
    Hostid: e.lowerFirst,
    Nsid: e.first,
    Maprange: e.count,
  }));
  return `${JSON.stringify(out)}\n`;
}
