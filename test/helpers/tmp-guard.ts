/**
 * vitest globalSetup: nothing half-done stays behind, temporary directories
 * included. Before the run it notes the entries of the temp directory (and
 * of the test build cache) with names this project's code uses; afterwards
 * it fails the run, listing them, if new ones are still there.
 *
 * Vitest 4.1 only logs an error thrown by a globalSetup teardown ("error
 * during close") and still exits 0 (changed upstream by vitest-dev/vitest#10794),
 * so the teardown sets process.exitCode itself (it runs in the main vitest
 * process) and then throws for the message.
 *
 * Entries that go away within a few seconds are not counted: a bench or a
 * second run working in the same temp directory meanwhile makes (and removes)
 * its own. What such a process leaves behind for good does show up here: run
 * the suite alone to be sure a leak is this run's.
 */
import { existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Name prefixes of what tests, lib/ and the bench scripts they run make in the temp directory. */
const PREFIXES = ["userns-", "mount-ours-", "mount-floor-"];
/** The compiled-library cache of test/helpers/mountns.ts is kept on purpose; its staging directories are not. */
const CACHE = "userns-test-build-";
const STAGING = "userns-test-build-tmp-";
const cacheDir = join(import.meta.dirname, "..", "..", "node_modules", ".cache");

function entries(): Set<string> {
  const found = new Set<string>();
  const tmp = tmpdir();
  for (const e of readdirSync(tmp)) {
    if (!PREFIXES.some((p) => e.startsWith(p))) continue;
    if (e.startsWith(CACHE) && !e.startsWith(STAGING)) continue;
    found.add(join(tmp, e));
  }
  if (existsSync(cacheDir)) {
    for (const e of readdirSync(cacheDir)) if (e.startsWith(STAGING)) found.add(join(cacheDir, e));
  }
  return found;
}

export default function setup(): () => Promise<void> {
  const before = entries();
  return async () => {
    let left = [...entries()].filter((e) => !before.has(e)).sort();
    for (let i = 0; i < 30 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = left.filter((e) => existsSync(e));
    }
    if (left.length === 0) return;
    process.exitCode = 1;
    throw new Error(
      `the test run left ${left.length} temporary ${left.length === 1 ? "entry" : "entries"} behind:\n  ${left.join("\n  ")}`,
    );
  };
}
