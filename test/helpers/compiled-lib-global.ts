/**
 * vitest globalSetup: builds the compiled copy of lib/ that kernel tests run
 * in child processes (test/helpers/mountns.ts compiledLib) once, before the
 * test files start. Otherwise the first tests of several files each compile
 * it at the same time, in parallel forks, and on a busy machine the first
 * test of a file can run out of its time limit doing so. Cached by a hash of
 * lib/: a second run with the same sources finds it done.
 */
import { compiledLib } from "./mountns.js";

export default function setup(): void {
  if (process.platform === "linux") compiledLib();
}
