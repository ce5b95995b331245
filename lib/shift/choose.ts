/**
 * "Make this tree appear with shifted owners": an idmapped mount where the
 * filesystem supports one (nothing on disk changes, and it costs
 * microseconds), the ownership shift otherwise, with the reason for the
 * choice.
 *
 * @packageDocumentation
 */
import type { IdMap } from "../model/idmap.js";
import { type IdmappedMount, idmapMount } from "../mounts/idmap-mount.js";
import { type IdmapSupport, probeIdmapSupport } from "../mounts/probe.js";
import { type ShiftReport, shiftOwnership } from "./shift.js";

/** What {@link showShifted} did and why. */
export type ShiftedView =
  | {
      readonly method: "idmapped-mount";
      readonly reason: string;
      readonly support: IdmapSupport;
      /** Detached unless `target` was given; the caller owns it (`close()`, `unmount()`). */
      readonly mount: IdmappedMount;
    }
  | { readonly method: "shift"; readonly reason: string; readonly support: IdmapSupport; readonly report: ShiftReport };

/**
 * Gives `path` shifted owners by the mount-direction maps: an idmapped mount
 * of it (recursive; attached at `target` when given) if `probeIdmapSupport`
 * says its filesystem allows one, else an on-disk {@link shiftOwnership}
 * (`force` as there). `preferShift` forces the on-disk shift.
 */
export function showShifted(
  path: string,
  opts: { uidMap: IdMap | string; gidMap?: IdMap | string; target?: string; force?: number; preferShift?: boolean },
): ShiftedView {
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
  const why = opts.preferShift
    ? "an on-disk shift was asked for"
    : support.fsType === "overlay"
      ? `overlayfs cannot be idmapped itself (${support.error?.message ?? "refused"}); its layers could be, when the overlay is mounted again over idmapped layers`
      : `an idmapped mount is not possible here: ${support.error?.message ?? support.refusal ?? "refused"}`;
  const report = shiftOwnership(path, {
    uidMap: opts.uidMap,
    gidMap,
    ...(opts.force !== undefined ? { force: opts.force } : {}),
  });
  return { method: "shift", reason: `${why}; the owners were rewritten on disk`, support, report };
}
