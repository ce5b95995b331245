/**
 * Kernel tests run real syscalls and need root on Linux. Elsewhere they are
 * reported as skipped with the reason; under CI they must run, and
 * scripts/ci-summary.mjs fails the run if any kernel test was skipped.
 */
import { describe } from "vitest";

/** Why kernel tests cannot run here, or undefined when they can. */
export function kernelSkipReason(): string | undefined {
  if (process.platform !== "linux") return `needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return "needs root in the initial user namespace (run as root, as CI does)";
  return undefined;
}

/** A describe block of real-kernel tests; skipped, with the reason in its name, where they cannot run. */
export function describeKernel(name: string, fn: () => void): void {
  const reason = kernelSkipReason();
  if (reason === undefined) describe(`[kernel] ${name}`, fn);
  else describe.skip(`[kernel] ${name} (skipped: ${reason})`, fn);
}
