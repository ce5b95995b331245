/**
 * Map requests are checked by the model (lib/model/mapwrite.ts:
 * validateMapRequest, which runs the kernel's map_write rules) before any
 * syscall, so a map the kernel would refuse fails with the model's
 * explanation and no process is created.
 */
import { UsernsError } from "../errors.js";
import { IdMap } from "../model/idmap.js";
import { validateMapRequest } from "../model/mapwrite.js";
import { assertNewidmapAllows } from "../subid/newidmap.js";
import {
  chooseMapWriter,
  type MapInput,
  type MapMethod,
  type MapWriter,
  type PreparedMap,
  parseMapText,
  readKernelMap,
  writerCreds,
} from "./maps.js";

const ownMaps = new Map<"uid" | "gid", IdMap>();

/**
 * This process's own map of a kind, as the kernel shows it to us: the parent
 * map of namespaces we create. Read once: a multithreaded process can never
 * change its user namespace, and a namespace's maps never change once written.
 */
export function ownMap(kind: "uid" | "gid"): IdMap {
  let m = ownMaps.get(kind);
  if (m === undefined) {
    m = readKernelMap("self", kind);
    ownMaps.set(kind, m);
  }
  return m;
}

/** Who will write the map, as the model needs to know it. */
export interface MapWriterContext {
  /** privileged: CAP_SETUID/CAP_SETGID over the parent (direct as root, newuidmap, a helper in the parent namespace). */
  readonly writer: "privileged" | "unprivileged";
  /** The writer's namespace map of this kind; default: this process's own. */
  readonly parentMap?: IdMap;
  /** The writer's euid/egid and the new namespace's owner, in the writer's ids; default: this process's. */
  readonly euid?: number;
  readonly egid?: number;
  readonly ownerUid?: number;
}

/** Validates a map request with the model and returns the exact text to write. */
export function prepareMap(
  kind: "uid" | "gid",
  input: MapInput,
  setgroups: "allow" | "deny" | undefined,
  ctx: MapWriterContext,
): PreparedMap {
  if (typeof input !== "string" && !(input instanceof IdMap))
    throw new UsernsError(`${kind}Map`, { code: "ERR_USERNS_USAGE", reason: "must be an IdMap or map text" });
  const euid = ctx.euid ?? process.geteuid?.() ?? 0;
  const egid = ctx.egid ?? process.getegid?.() ?? 0;
  const v = validateMapRequest({
    kind,
    map: input,
    parentMap: ctx.parentMap ?? ownMap(kind),
    writer: ctx.writer,
    euid,
    egid,
    setgroups: setgroups ?? "allow",
    ownerUid: ctx.ownerUid ?? euid,
  });
  if (!v.ok) {
    throw new UsernsError(`checking ${kind}_map${v.line !== undefined ? ` line ${v.line}` : ""}`, {
      code: v.errno,
      // The write(2) the model predicts the kernel would refuse.
      syscall: "write",
      step: `${kind}_map`,
      rule: v.rule,
      reason: `${v.reason} (rule ${v.rule})`,
    });
  }
  return { map: v.map, text: v.lines };
}

/** A map request checked and ready to write: the maps, and which way they will be written. */
export interface PreparedMaps {
  readonly uid: PreparedMap | undefined;
  readonly gid: PreparedMap | undefined;
  readonly setgroups: "allow" | "deny" | undefined;
  readonly method: MapMethod;
}

function asMap(kind: "uid" | "gid", input: MapInput | undefined): IdMap | undefined {
  if (input === undefined) return undefined;
  if (typeof input !== "string") return input;
  try {
    return parseMapText(input, kind);
  } catch (e) {
    // Refused while parsing: as the model's other refusals, the write(2) it predicts the kernel would refuse.
    const ue = e as UsernsError;
    throw new UsernsError(ue.attempted, { ...ue, code: ue.code, syscall: "write", reason: ue.reason });
  }
}

/**
 * Picks the way maps will be written and validates them with the model for
 * that writer. With `parent` (a held namespace the new one is created in), a
 * helper that joined the parent writes them, as the creator chosen there.
 */
export function prepareMapRequest(req: {
  uidMap?: MapInput;
  gidMap?: MapInput;
  setgroups?: "allow" | "deny";
  mapWriter?: MapWriter;
  parent?: { uid: IdMap; gid: IdMap; creator: { uid: number; gid: number } };
}): PreparedMaps {
  if (req.parent) {
    const p = req.parent;
    const ctx = (kind: "uid" | "gid"): MapWriterContext => ({
      writer: "privileged",
      parentMap: kind === "uid" ? p.uid : p.gid,
      euid: p.creator.uid,
      egid: p.creator.gid,
      ownerUid: p.creator.uid,
    });
    return prepareBoth(req, "parent-helper", ctx);
  }
  const creds = writerCreds();
  const privileged = creds[0] === 1;
  const euid = creds[1]!;
  const egid = creds[2]!;
  // The same request as text, from the same writer with the same ids, always validates the same way (our own maps
  // never change): keep the result. The model's parse and checks are a visible part of a spawn's cost when the same
  // program is spawned again and again.
  const textual =
    (req.uidMap === undefined || typeof req.uidMap === "string") &&
    (req.gidMap === undefined || typeof req.gidMap === "string");
  // The request before, again (a program spawned again and again): found without building a key.
  const last = lastPrepared;
  if (
    textual &&
    last !== undefined &&
    last.uidMap === req.uidMap &&
    last.gidMap === req.gidMap &&
    last.setgroups === req.setgroups &&
    last.mapWriter === req.mapWriter &&
    last.privileged === privileged &&
    last.euid === euid &&
    last.egid === egid
  )
    return checkedForNewidmap(last.prepared);
  const key = textual
    ? cacheKey(
        req.uidMap as string | undefined,
        req.gidMap as string | undefined,
        req.setgroups,
        req.mapWriter,
        privileged,
        euid,
        egid,
      )
    : undefined;
  const hit = key === undefined ? undefined : preparedCache.get(key);
  if (hit !== undefined) {
    rememberLast(req, privileged, euid, egid, hit);
    return checkedForNewidmap(hit);
  }
  const method = chooseMapWriter(
    req.mapWriter ?? "auto",
    { uid: asMap("uid", req.uidMap), gid: asMap("gid", req.gidMap), setgroups: req.setgroups },
    privileged,
  );
  // newuidmap is setuid root: the kernel judges it privileged (its own subuid policy is reported from its stderr).
  const writer = method === "newuidmap" || (method === "direct" && privileged) ? "privileged" : "unprivileged";
  const prepared = prepareBoth(req, method, () => ({ writer }));
  if (key !== undefined) {
    if (preparedCache.size >= PREPARED_CACHE_MAX) preparedCache.clear();
    preparedCache.set(key, prepared);
    rememberLast(req, privileged, euid, egid, prepared);
  }
  return checkedForNewidmap(prepared);
}

/**
 * newuidmap/newgidmap's own rules (the caller's /etc/subuid and /etc/subgid ranges ...), checked before any
 * process exists. Not cached: the files can change between spawns.
 */
function checkedForNewidmap(p: PreparedMaps): PreparedMaps {
  if (p.method === "newuidmap") assertNewidmapAllows({ uid: p.uid?.map, gid: p.gid?.map, setgroups: p.setgroups });
  return p;
}

/**
 * The cache's key: every input of the validation, each text field written as its length, ":" and the text (an
 * absent one as "-"), so that the key is unambiguous whatever the text holds. A template string, not
 * JSON.stringify: this runs on every spawn whose request differs from the one before.
 */
function cacheKey(
  uidMap: string | undefined,
  gidMap: string | undefined,
  setgroups: string | undefined,
  mapWriter: string | undefined,
  privileged: boolean,
  euid: number | undefined,
  egid: number | undefined,
): string {
  const f = (v: string | undefined): string => (v === undefined ? "-" : `${v.length}:${v}`);
  return `${f(uidMap)}${f(gidMap)}${f(setgroups)}${f(mapWriter)}${privileged ? 1 : 0} ${euid} ${egid}`;
}

function rememberLast(
  req: { uidMap?: MapInput; gidMap?: MapInput; setgroups?: "allow" | "deny"; mapWriter?: MapWriter },
  privileged: boolean,
  euid: number | undefined,
  egid: number | undefined,
  prepared: PreparedMaps,
): void {
  lastPrepared = {
    uidMap: req.uidMap as string | undefined,
    gidMap: req.gidMap as string | undefined,
    setgroups: req.setgroups,
    mapWriter: req.mapWriter,
    privileged,
    euid,
    egid,
    prepared,
  };
}

/** The last request that was validated or found in the cache, with every input the validation depends on. */
let lastPrepared:
  | {
      readonly uidMap?: string | undefined;
      readonly gidMap?: string | undefined;
      readonly setgroups: string | undefined;
      readonly mapWriter: string | undefined;
      readonly privileged: boolean;
      readonly euid: number | undefined;
      readonly egid: number | undefined;
      readonly prepared: PreparedMaps;
    }
  | undefined;

const PREPARED_CACHE_MAX = 64;
/** Validated requests by their text and writer; only successes are kept (a refusal throws each time). */
const preparedCache = new Map<string, PreparedMaps>();

function prepareBoth(
  req: { uidMap?: MapInput; gidMap?: MapInput; setgroups?: "allow" | "deny" },
  method: MapMethod,
  ctx: (kind: "uid" | "gid") => MapWriterContext,
): PreparedMaps {
  return {
    uid: req.uidMap !== undefined ? prepareMap("uid", req.uidMap, req.setgroups, ctx("uid")) : undefined,
    gid: req.gidMap !== undefined ? prepareMap("gid", req.gidMap, req.setgroups, ctx("gid")) : undefined,
    setgroups: req.setgroups,
    method,
  };
}

/** The uid and gid a child takes in a joined user namespace before creating one inside it: root there if mapped, else the lowest mapped id. */
export function creatorIds(parentUid: IdMap, parentGid: IdMap): { uid: number; gid: number } {
  const pick = (m: IdMap): number => {
    if (m.isEmpty)
      throw new UsernsError("creating a user namespace inside one whose maps are not written", {
        code: "EPERM",
        reason: "the creator's uid and gid must be mapped in the parent namespace (create_user_ns)",
      });
    return m.forward[0]!.first;
  };
  return { uid: pick(parentUid), gid: pick(parentGid) };
}
