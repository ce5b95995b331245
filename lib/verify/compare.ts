/**
 * Field-by-field comparison of two §1 results (kernel and model), exactly as
 * case-formats §1 requires: ok, errno, written, stage, len, every read-back,
 * setgroups_readback, and the nested results. `id`, `setup_error`, `error`
 * and model extras (`rule`, `reason`) are not compared.
 */

/** The compared top-level fields, in result order. */
export const COMPARED_FIELDS = [
  "ok",
  "errno",
  "written",
  "stage",
  "len",
  "readback_from_parent",
  "readback_from_init",
  "readback_from_inside",
  "setgroups_readback",
  "setgroups",
  "second",
  "setgroups_after",
] as const;

/** One field on which two results disagree. */
export interface FieldDiff {
  field: string;
  kernel: unknown;
  model: unknown;
}

const NESTED = ["ok", "errno", "written", "stage"] as const;

function norm(v: unknown): unknown {
  return v === undefined ? null : v;
}

function nestedEqual(a: unknown, b: unknown): boolean {
  if (norm(a) === null || norm(b) === null) return norm(a) === norm(b);
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  return NESTED.every((k) => norm(x[k]) === norm(y[k]));
}

/**
 * The fields on which `kernel` and `model` disagree (empty when they agree).
 * A case that could not be set up, or was malformed, is compared on `stage`
 * and `ok` only: its other fields carry no observation.
 */
export function compareResults(kernel: object, model: object): FieldDiff[] {
  const k = kernel as Record<string, unknown>;
  const m = model as Record<string, unknown>;
  const unbuilt = (s: unknown) => s === "setup" || s === "input";
  const fields: readonly string[] = unbuilt(k.stage) && unbuilt(m.stage) ? ["ok", "stage"] : COMPARED_FIELDS;
  const diffs: FieldDiff[] = [];
  for (const f of fields) {
    const a = k[f];
    const b = m[f];
    const same =
      f === "setgroups" || f === "second" || f === "setgroups_after" ? nestedEqual(a, b) : norm(a) === norm(b);
    if (!same) diffs.push({ field: f, kernel: norm(a), model: norm(b) });
  }
  return diffs;
}
