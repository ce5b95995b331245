#!/usr/bin/env node
// npm run bench: every figure is a ratio against a baseline measured in the
// same run, on this machine. C baselines are compiled here (gcc -O2) from
// scripts/bench/*.c. Prints a Markdown table for the README; `--json` for data.
//
// Sections run only where the feature exists in dist/ (the harness is shared
// by features that land at different times).
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, constants as osConstants, release, tmpdir } from "node:os";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";

const root = join(import.meta.dirname, "..");
const json = process.argv.includes("--json");
const only = process.argv.find((a) => a.startsWith("--only="))?.slice(7);
const buildDir = mkdtempSync(join(tmpdir(), "userns-bench-"));
// The compiled baselines are only for this run: remove them however it ends
// ('exit' also fires after an uncaught error; a signal becomes an exit).
process.on("exit", () => rmSync(buildDir, { recursive: true, force: true }));
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"])
  process.once(sig, () => process.exit(128 + osConstants.signals[sig]));

/** Compiles scripts/bench/NAME.c and returns the binary path. */
export function compileC(name, extra = []) {
  const src = join(root, "scripts", "bench", `${name}.c`);
  const out = join(buildDir, name);
  execFileSync("gcc", ["-O2", "-o", out, src, ...extra], { stdio: "inherit" });
  return out;
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
export function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))];
}

const sections = [
  ["model", "./bench/model.mjs"],
  ["spawn", "./bench/spawn.mjs"],
  ["mount", "./bench/mount.mjs"],
  ["sandbox", "./bench/sandbox.mjs"],
  ["verify", "./bench/verify.mjs"],
  ["inventory", "./bench/inventory.mjs"],
  ["shift", "./bench/shift.mjs"],
];

const rows = [];
for (const [name, file] of sections) {
  if (only && only !== name) continue;
  if (!existsSync(join(import.meta.dirname, file))) continue;
  const mod = await import(file);
  const r = await mod.run({ compileC, median, percentile, root });
  if (r === null) {
    console.error(`bench: ${name}: skipped (feature not present in dist/)`);
    continue;
  }
  rows.push(...r);
}

// Which addon the figures are of (a local build, a prebuilt binary, USERNS_BINDING): the workers load the same one.
const addon = await import(pathToFileURL(join(root, "dist", "kernel", "native.js")).href)
  .then((m) => relative(root, m.nativePath()))
  .catch((e) => `none loadable (${e?.code ?? String(e)}; see userns doctor)`);
const env = `Linux ${release()}, ${cpus()[0]?.model ?? "cpu"} ×${cpus().length}, Node ${process.version}, addon ${addon}`;
if (json) {
  console.log(JSON.stringify({ env, rows }));
} else {
  console.log(`\n${env}\n`);
  console.log("| benchmark | userns | baseline | ratio | goal |");
  console.log("| --- | --- | --- | --- | --- |");
  for (const r of rows) console.log(`| ${r.name} | ${r.ours} | ${r.base} | ${r.ratio} | ${r.goal ?? ""} |`);
}
