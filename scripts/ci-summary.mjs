#!/usr/bin/env node
// Reads one or more vitest JSON reports and prints the closing line
// `N passed, N failed, N skipped`. Exits 1 when any test failed, when a report
// is missing, or (under CI) when any kernel test was skipped: kernel tests
// must run in CI.
import { existsSync, readFileSync } from "node:fs";

// `--check NAME:passed|failed` adds a check that is not a vitest test (the campaign).
// `--tap LABEL=FILE[@N,N…]` adds every point of a TAP run (bubblewrap's suite through run-bubblewrap.sh, with
// `exit-status N` appended): `ok` passes, `ok … # SKIP` is skipped, `not ok N` fails unless N is listed after `@`
// (a point the README explains, counted as a known failure, never as passed). `@file` marks the whole file as a
// known failure (a script of one point that stops under its own `set -e` without printing `not ok`): it counts as
// one known failure while it fails, and as one passed point (with a note to drop the mark) once it passes.
// `--unprivileged REPORT`: a report of the suite run by the unprivileged test user. There the root-only kernel
// tests are skipped by design; its rootless tests ("[rootless]") must run, as everywhere.
const args = process.argv.slice(2);
const files = [];
const checks = [];
const taps = [];
const unprivileged = new Set();
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--check") checks.push(args[++i] ?? "");
  else if (args[i] === "--tap") taps.push(args[++i] ?? "");
  else if (args[i] === "--unprivileged") {
    unprivileged.add(args[i + 1]);
    files.push(args[++i]);
  } else files.push(args[i]);
}
let knownFailing = 0;
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
for (const t of taps) {
  const m = /^([^=]+)=([^@]+)(?:@(file|[\d,]*))?$/.exec(t);
  if (!m || !existsSync(m[2])) {
    console.error(`ci-summary: no TAP output for ${t}`);
    failed += 1;
    continue;
  }
  const known = new Set((m[3] ?? "").split(",").filter(Boolean).map(Number));
  const lines = readFileSync(m[2], "utf8").split("\n");
  let ok = 0;
  let skip = 0;
  let bad = 0;
  let knownHere = 0;
  for (const line of lines) {
    const notOk = /^not ok (\d+)?/.exec(line);
    if (notOk) {
      if (notOk[1] !== undefined && known.has(Number(notOk[1]))) knownHere += 1;
      else {
        bad += 1;
        console.error(`ci-summary: ${m[1]}: ${line.slice(0, 200)}`);
      }
    } else if (/^ok\b/.test(line)) {
      if (/# SKIP/i.test(line)) skip += 1;
      else ok += 1;
    }
  }
  // The file's own exit status: the runner's summary line says `(exit N)`; .ci/run appends the runner's as `exit-status N`.
  const text = lines.join("\n");
  const status = /^exit-status (\d+)/m.exec(text);
  const fileExit = /^bubblewrap .*\(exit (\d+)\)$/m.exec(text);
  if (fileExit && fileExit[1] !== "0" && bad + knownHere === 0) {
    console.error(`ci-summary: ${m[1]}: the suite file exited ${fileExit[1]} without a failing point`);
    bad += 1;
  }
  // The runner exits non-zero on any `not ok`; non-zero without one means the file itself broke off.
  if (!lines.some((l) => l.startsWith("bubblewrap ")) || (status && status[1] !== "0" && bad + knownHere === 0)) {
    console.error(`ci-summary: ${m[1]}: the suite did not finish (exit ${status?.[1] ?? "?"})`);
    bad += 1;
  }
  if (m[3] === "file") {
    if (bad + knownHere > 0) {
      console.error(`ci-summary: bubblewrap ${m[1]}: fails as a whole, a known failure (README)`);
      knownFailing += 1;
      continue;
    }
    console.error(`ci-summary: bubblewrap ${m[1]}: marked as a known failure but passed; drop the @file mark`);
  }
  console.error(
    `ci-summary: bubblewrap ${m[1]}: ${ok} ok, ${bad} not ok, ${knownHere} known failures, ${skip} skipped`,
  );
  passed += ok;
  failed += bad;
  skipped += skip;
  knownFailing += knownHere;
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
// Known failures on a line of their own: the closing line stays the plain `N passed, N failed, N skipped`.
if (knownFailing)
  console.log(`${knownFailing} known failures of bubblewrap's suite (README lists each with its reason)`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(ok && failed === 0 ? 0 : 1);
