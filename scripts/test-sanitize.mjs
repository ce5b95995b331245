#!/usr/bin/env node
// Runs the native-facing tests (test/kernel) against the AddressSanitizer +
// UBSan build from `npm run build:sanitize`. Node itself is not built with
// ASan, so the runtime is preloaded; leak detection is off because V8 keeps
// memory until exit by design.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const binding = join(root, "build-sanitize", "Release", "userns.node");
if (!existsSync(binding)) {
  console.error(`test-sanitize: ${binding} is missing; run npm run build:sanitize first`);
  process.exit(2);
}
const rt = (name) => execFileSync("g++", [`-print-file-name=${name}`], { encoding: "utf8" }).trim();
const env = {
  ...process.env,
  USERNS_BINDING: binding,
  USERNS_EXPECT_SANITIZER: "1",
  LD_PRELOAD: [rt("libasan.so"), rt("libubsan.so")].join(":"),
  ASAN_OPTIONS: "detect_leaks=0:verify_asan_link_order=0:abort_on_error=1",
  UBSAN_OPTIONS: "print_stacktrace=1:halt_on_error=1",
};
const extra = process.argv.slice(2);
const r = spawnSync("npx", ["vitest", "run", "test/kernel", ...extra], { stdio: "inherit", env, cwd: root });
process.exit(r.status ?? 1);
