/**
 * Ownership shift (rewriting owners, ACLs and file capabilities on disk by a
 * map) and the choice between it and an idmapped mount.
 *
 * @packageDocumentation
 */
export {
  type LayerChoice,
  type OverlayLayers,
  overlayLayersOf,
  type ShiftedView,
  type ShowShiftedOptions,
  showShifted,
} from "./choose.js";
export { JOURNAL_NAME } from "./journal.js";
export type { IdUse, MalformedXattr, UncoveredId } from "./plan.js";
export {
  MARKER_FILE,
  resumeShift,
  rollbackShift,
  SHIFT_MARKER,
  type ShiftMarker,
  type ShiftOptions,
  type ShiftReport,
  shiftMarker,
  shiftOwnership,
  shiftStatus,
} from "./shift.js";
