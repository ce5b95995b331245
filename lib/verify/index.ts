/**
 * Differential verification: the kernel runner for map-write cases, the
 * seeded case generators, and the kernel-against-model campaign.
 *
 * @packageDocumentation
 */
export {
  type CampaignOptions,
  type CampaignResult,
  type CampaignSummary,
  type Disagreement,
  modelPredictor,
  type Predictor,
  runCampaign,
  shrinkCase,
} from "./campaign.js";
export { type MapCase, type MapResult, type NestedResult, parseMapCase, resolveMapCase } from "./cases.js";
export { COMPARED_FIELDS, compareResults, type FieldDiff } from "./compare.js";
export { type CaseObject, generateCase, generateCases, Rng } from "./generate.js";
export { type CaseInput, type KernelRunOptions, runMapCasesOnKernel } from "./kernel.js";
