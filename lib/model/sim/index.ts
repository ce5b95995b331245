/**
 * SIMULATIONS of designs that never reached mainline Linux (kernel-semantics
 * §10). Exported from the model as the `sim` namespace only, apart from the
 * functions that mirror the running kernel.
 */
export * from "./fsid.js";
export * from "./isolated.js";
