/**
 * "Make this tree appear with shifted owners": an idmapped mount where the
 * filesystem supports one (nothing on disk changes, and it costs
 * microseconds), for an overlay a new overlayfs over idmapped lower layers
 * (an overlayfs mount itself cannot be idmapped, its layers can), the
 * ownership shift otherwise, with the reason for the choice.
 *
 * @packageDocumentation
 */
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { resolve } from "node:path";
import { UsernsError, usageError } from "../errors.js";
import { native } from "../kernel/native.js";
import type { IdMap } from "../model/idmap.js";
import { parseMountinfo, unescapeMountinfo } from "../model/mountinfo.js";
import { IdmappedMount, idmapMount } from "../mounts/idmap-mount.js";
import { toIdMap } from "../mounts/mapformats.js";
import { type IdmapSupport, probeIdmapSupport } from "../mounts/probe.js";
import { type ShiftReport, shiftMarker, shiftOwnership } from "./shift.js";

/** The layers of an overlay to show shifted (as overlayfs takes them). */
export interface OverlayLayers {
  /** Lower directories, top first (the order of overlayfs' `lowerdir=`). */
  readonly lower: readonly string[];
  /** Upper directory (writable overlay); with `work`. Absent: a read-only overlay. */
  readonly upper?: string;
  /** Work directory, on the same filesystem as `upper`. */
  readonly work?: string;
}

/** How one layer of an overlay view was given shifted owners. */
export interface LayerChoice {
  readonly path: string;
  readonly role: "lower" | "upper";
  /** `idmapped`: an idmapped clone of it is the layer; `shifted`: its owners were rewritten on disk now; `already-shifted`: its marker says it was, with the same maps. */
  readonly method: "idmapped" | "shifted" | "already-shifted";
  readonly reason: string;
  readonly report?: ShiftReport;
}

/** What {@link showShifted} did and why. */
export type ShiftedView =
  | {
      readonly method: "idmapped-mount";
      readonly reason: string;
      readonly support: IdmapSupport;
      /** Detached unless `target` was given; the caller owns it (`close()`, `unmount()`). */
      readonly mount: IdmappedMount;
    }
  | {
      readonly method: "overlay-idmapped-layers";
      readonly reason: string;
      /** The new overlayfs mount (not itself idmapped): detached unless `target` was given; the caller owns it. */
      readonly mount: IdmappedMount;
      /** Per layer, top first (the upper first when there is one). */
      readonly layers: readonly LayerChoice[];
      /** True when the view has no upper layer (always for a view of an overlay that is mounted). */
      readonly readOnly: boolean;
    }
  | { readonly method: "shift"; readonly reason: string; readonly support: IdmapSupport; readonly report: ShiftReport };

/** Options of {@link showShifted}. */
export interface ShowShiftedOptions {
  uidMap: IdMap | string;
  gidMap?: IdMap | string;
  /** Where to attach the view (a mount), when one is made. */
  target?: string;
  /** As for shiftOwnership, when owners are rewritten on disk. */
  force?: number;
  /** Always the on-disk shift (not for explicit overlay layers). */
  preferShift?: boolean;
}

/** Splits an overlayfs layer list (`:` separates, a backslash quotes the next character). */
function splitLayers(v: string): string[] | undefined {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (c === "\\" && i + 1 < v.length) cur += v[++i];
    else if (c === ":") {
      // "::" marks data-only lower layers, which this view does not rebuild.
      if (cur === "") return undefined;
      out.push(cur);
      cur = "";
    } else cur += c;
  }
  if (cur === "") return undefined;
  out.push(cur);
  return out;
}

/**
 * The layers of the overlayfs mounted at `path` (its root), from
 * /proc/self/mountinfo; a string saying why not when they cannot be used.
 */
export function overlayLayersOf(path: string): OverlayLayers | string {
  const real = realpathSync(path);
  const entry = parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8"))
    .filter((e) => e.target === real)
    .at(-1);
  if (entry === undefined || entry.fsType !== "overlay") return `${real} is not the root of an overlayfs mount`;
  const lower: string[] = [];
  let upper: string | undefined;
  let work: string | undefined;
  for (const raw of entry.superOptions.split(",")) {
    const o = unescapeMountinfo(raw);
    const eq = o.indexOf("=");
    const key = eq < 0 ? o : o.slice(0, eq);
    const value = eq < 0 ? "" : o.slice(eq + 1);
    if (key === "lowerdir") {
      const ls = splitLayers(value);
      if (ls === undefined) return `its lowerdir option has data-only layers (${value})`;
      lower.push(...ls);
    } else if (key === "lowerdir+") lower.push(value);
    else if (key === "datadir+") return "it has data-only layers (datadir+)";
    else if (key === "upperdir") upper = value;
    else if (key === "workdir") work = value;
  }
  if (lower.length === 0) return "mountinfo lists no lower layers for it";
  for (const l of [...lower, ...(upper === undefined ? [] : [upper])]) {
    if (l.startsWith("/proc/") || !existsSync(l)) return `its layer ${l} is not reachable from here`;
  }
  return { lower, ...(upper !== undefined ? { upper } : {}), ...(work !== undefined ? { work } : {}) };
}

/** Escapes a path for overlayfs' upperdir/workdir (it drops a backslash and keeps the next character). */
function ovlEscape(p: string): string {
  return p.replace(/\\/g, "\\\\");
}

/**
 * Mounts overlayfs over `layers`: each lower layer an idmapped clone where
 * its filesystem allows one, else shifted on disk (once: a layer whose
 * marker records the same maps is used as it is); the upper layer shifted on
 * disk (overlayfs would need the mounter's ids inside an idmapped upper's
 * map to write there, which root in the initial namespace is not).
 */
function overlayView(
  layers: OverlayLayers,
  opts: ShowShiftedOptions,
  layerWritable: boolean,
  why: string,
): Extract<ShiftedView, { method: "overlay-idmapped-layers" }> {
  const gidMap = opts.gidMap ?? opts.uidMap;
  if (layers.lower.length === 0) throw usageError("showShifted: an overlay needs at least one lower layer");
  if ((layers.upper === undefined) !== (layers.work === undefined))
    throw usageError("showShifted: an overlay's upper and work directories go together");
  const clones: IdmappedMount[] = [];
  const choices: LayerChoice[] = [];
  const onDisk = (path: string, role: "lower" | "upper", reason: string): LayerChoice => {
    const m = shiftMarker(path);
    // A layer shared by several views is shifted once; a marker with other maps makes shiftOwnership refuse.
    if (m !== undefined && m.uidMap === toIdMap(opts.uidMap).toString() && m.gidMap === toIdMap(gidMap).toString()) {
      return { path, role, method: "already-shifted", reason: `${reason}; its marker records this shift already` };
    }
    const report = shiftOwnership(path, {
      uidMap: opts.uidMap,
      gidMap,
      ...(opts.force !== undefined ? { force: opts.force } : {}),
    });
    return { path, role, method: "shifted", reason: `${reason}; its owners were rewritten on disk`, report };
  };
  const b = native();
  let ctx = -1;
  let mfd = -1;
  try {
    if (layers.upper !== undefined) {
      choices.push(
        onDisk(
          resolve(layers.upper),
          "upper",
          "an idmapped upper layer is writable only for a mounter whose ids its map covers",
        ),
      );
    }
    const lowerSpecs: string[] = [];
    for (const l of layers.lower) {
      const path = resolve(l);
      const support = probeIdmapSupport(path);
      if (support.supported) {
        const m = idmapMount(path, { uidMap: opts.uidMap, gidMap, recursive: true });
        clones.push(m);
        lowerSpecs.push(`/proc/self/fd/${m.fd}`);
        choices.push({ path, role: "lower", method: "idmapped", reason: `${support.fsType} supports idmapped mounts` });
      } else {
        if (!layerWritable) {
          throw new UsernsError(`showing ${path} shifted`, {
            code: "ENOTSUP",
            path,
            reason: `the lower layer ${path} (${support.fsType}) cannot be idmapped, and it is in use by a mounted overlay, so it is not rewritten on disk either`,
          });
        }
        choices.push(onDisk(path, "lower", `${support.fsType} cannot be idmapped here`));
        lowerSpecs.push(ovlEscape(path).replace(/:/g, "\\:"));
      }
    }
    ctx = b.fsopen("overlay");
    b.fsconfigString(ctx, "lowerdir", lowerSpecs.join(":"));
    if (layers.upper !== undefined && layers.work !== undefined) {
      b.fsconfigString(ctx, "upperdir", ovlEscape(resolve(layers.upper)));
      b.fsconfigString(ctx, "workdir", ovlEscape(resolve(layers.work)));
    }
    b.fsconfigCreate(ctx);
    mfd = b.fsmount(ctx, 0);
  } catch (e) {
    if (mfd >= 0) b.close(mfd);
    throw e;
  } finally {
    if (ctx >= 0) b.close(ctx);
    // overlayfs holds private clones of its layers: the idmapped clones' fds are not needed after fsmount.
    for (const c of clones) c.close();
  }
  // The overlay is not idmapped itself: IdmappedMount serves as the holder of its mount fd (attach, unmount, close).
  const mount = new IdmappedMount(mfd, "overlay", false, undefined);
  if (opts.target !== undefined) {
    try {
      mount.attach(opts.target);
    } catch (e) {
      mount.close();
      throw e;
    }
  }
  const idm = choices.filter((c) => c.method === "idmapped").length;
  const readOnly = layers.upper === undefined;
  return {
    method: "overlay-idmapped-layers",
    reason: `${why}: mounted overlayfs over ${idm} idmapped of ${layers.lower.length} lower layer${layers.lower.length === 1 ? "" : "s"}${readOnly ? " (read-only: no upper layer)" : ", the upper layer shifted on disk"}`,
    mount,
    layers: choices,
    readOnly,
  };
}

function isLayers(x: string | OverlayLayers): x is OverlayLayers {
  return typeof x === "object";
}

/**
 * Gives a tree shifted owners by the mount-direction maps, choosing the tool:
 *
 * - `source` is overlay layers (`{lower, upper, work}`): a new overlayfs over
 *   idmapped clones of the lower layers (each that its filesystem allows;
 *   another is shifted on disk), the upper layer shifted on disk;
 * - `source` is the root of a mounted overlayfs (which cannot be idmapped
 *   itself): a read-only overlayfs over idmapped clones of its layers, the
 *   upper on top (the mounted overlay keeps its upper and work directories
 *   in use, so the view cannot write); when its layers cannot be used (not
 *   reachable, data-only layers, a layer that cannot be idmapped), the
 *   on-disk shift of the tree through it;
 * - any other directory: an idmapped mount of it (recursive) if
 *   `probeIdmapSupport` says its filesystem allows one, else the on-disk
 *   {@link shiftOwnership}.
 *
 * The view is attached at `target` when given; the caller owns the returned
 * mount. `preferShift` forces the on-disk shift of a path.
 */
export function showShifted(source: string | OverlayLayers, opts: ShowShiftedOptions): ShiftedView {
  if (isLayers(source)) {
    return overlayView(source, opts, true, "overlay layers were given (an overlayfs mount cannot be idmapped itself)");
  }
  const path = source;
  const support = probeIdmapSupport(path);
  const gidMap = opts.gidMap ?? opts.uidMap;
  if (support.supported && !opts.preferShift) {
    const mount = idmapMount(path, { uidMap: opts.uidMap, gidMap, recursive: true });
    if (opts.target !== undefined) {
      try {
        mount.attach(opts.target);
      } catch (e) {
        mount.close();
        throw e;
      }
    }
    return {
      method: "idmapped-mount",
      reason: `${support.fsType} supports idmapped mounts on this kernel: nothing on disk is changed`,
      support,
      mount,
    };
  }
  let why: string;
  if (opts.preferShift) why = "an on-disk shift was asked for";
  else if (support.fsType === "overlay") {
    const layers = overlayLayersOf(path);
    const head = `overlayfs cannot be idmapped itself (${support.error?.message ?? "refused"})`;
    if (typeof layers !== "string") {
      // The mounted overlay keeps its upper and work directories: every layer, the upper on top, becomes a lower one.
      const all: OverlayLayers = { lower: [...(layers.upper !== undefined ? [layers.upper] : []), ...layers.lower] };
      try {
        return overlayView(all, opts, false, `${head}; its layers can be`);
      } catch (e) {
        why = `${head}, and an overlay over idmapped copies of its layers failed (${(e as Error).message})`;
      }
    } else why = `${head}, and its layers cannot be used: ${layers}`;
  } else why = `an idmapped mount is not possible here: ${support.error?.message ?? support.refusal ?? "refused"}`;
  const report = shiftOwnership(path, {
    uidMap: opts.uidMap,
    gidMap,
    ...(opts.force !== undefined ? { force: opts.force } : {}),
  });
  return { method: "shift", reason: `${why}; the owners were rewritten on disk`, support, report };
}
