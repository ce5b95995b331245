#!/usr/bin/env node
// Reads one or more vitest JSON reports and prints the closing line
// `N passed, N failed, N skipped`. Exits 1 when any test failed, when a report
// is missing, or (under CI) when any kernel test was skipped: kernel tests
// must run in CI.
import { existsSync, readFileSync } from "node:fs";

// `--check NAME:passed|failed` adds a check that is not a vitest test (the campaign).
// `--unprivileged REPORT`: a report of the suite run by the unprivileged test user. There the root-only kernel
// tests are skipped by design; its rootless tests ("[rootless]") must run, as everywhere.
const args = process.argv.slice(2);
const files = [];
const checks = [];
const unprivileged = new Set();
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--check") checks.push(args[++i] ?? "");
  else if (args[i] === "--unprivileged") {
    unprivileged.add(args[i + 1]);
    files.push(args[++i]);
  } else files.push(args[i]);
}
let passed = 0;
let failed = 0;
let skipped = 0;
const skippedKernel = [];
let ok = true;
for (const f of files) {
  if (!existsSync(f)) {
    console.error(`ci-summary: no report at ${f} (the test run did not finish)`);
    ok = false;
    failed += 1;
    continue;
  }
  const report = JSON.parse(readFileSync(f, "utf8"));
  for (const file of report.testResults ?? []) {
    // A file that failed to load has no assertions but counts as a failure.
    if (file.status === "failed" && (file.assertionResults ?? []).length === 0) {
      failed += 1;
      console.error(`ci-summary: ${f}: ${file.name} failed to run: ${file.message ?? ""}`);
    }
    for (const t of file.assertionResults ?? []) {
      if (t.status === "passed") passed += 1;
      else if (t.status === "failed") failed += 1;
      else {
        skipped += 1;
        const titles = t.ancestorTitles ?? [];
        if (titles.some((a) => a.startsWith("[rootless]"))) skippedKernel.push(t.fullName);
        else if (!unprivileged.has(f) && titles.some((a) => a.startsWith("[kernel]"))) skippedKernel.push(t.fullName);
      }
    }
  }
}
for (const c of checks) {
  const [name, status] = c.split(":");
  if (status === "passed") passed += 1;
  else {
    failed += 1;
    console.error(`ci-summary: check ${name} ${status ?? "failed"}`);
  }
}
if (process.env.CI && skippedKernel.length > 0) {
  console.error(`ci-summary: ${skippedKernel.length} kernel test(s) were skipped in CI, where they must run:`);
  for (const n of skippedKernel.slice(0, 20)) console.error(`  - ${n}`);
  failed += skippedKernel.length;
}
if (passed === 0) {
  console.error("ci-summary: no test passed");
  ok = false;
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(ok && failed === 0 ? 0 : 1);
