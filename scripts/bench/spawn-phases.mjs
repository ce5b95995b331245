// Where one spawn's time goes, without instrumenting the library: wraps the
// addon's exports that spawn() calls and measures each call's wall time and
// this process's CPU time (getrusage) around it, one spawn at a time, after a
// warm-up. With --js-only the kernel-facing calls are stubs (no process is
// created), which leaves the JavaScript around them: run that under callgrind
// for instruction counts that do not depend on the machine's load.
//
//   npm run build:ts && node scripts/bench/spawn-phases.mjs [N]          (as root)
//   node scripts/bench/spawn-phases.mjs N --js-only
//   valgrind --tool=callgrind node scripts/bench/spawn-phases.mjs 2000 --js-only
//
// Prints per spawn: the median wall time of each native call, the mean CPU
// time in each, and the CPU time of spawn() as a whole and of the whole loop
// (which adds the exit watch: the event-loop wake-up, waitid, the callback).
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { measuredSpawnOptions } from "./spawn-call.mjs";

const root = join(import.meta.dirname, "..", "..");
const { spawn } = await import(pathToFileURL(join(root, "dist", "spawn", "index.js")).href);
const { native } = await import(pathToFileURL(join(root, "dist", "kernel", "native.js")).href);
const N = Number(process.argv[2] ?? 1000);
const jsOnly = process.argv.includes("--js-only");
const n = native();
let onExit;
if (jsOnly) {
  // The plain spawn's one call, as when the child exec'd within it: out = [pid, exec, pidfd].
  n.spawnStart = (...a) => {
    a[11].set([2, 2, 1 << 20]);
    return undefined;
  };
  n.pidfdWatch = (_fd, cb) => {
    onExit = cb;
    return {};
  };
}
const names = ["spawnStart", "writeProcFiles", "spawnResume", "spawnWatch", "pidfdWatch", "writerCreds", "procFiles"];
const acc = {};
let on = false;
for (const name of names) {
  const f = n[name];
  if (typeof f !== "function") continue;
  acc[name] = { wall: [], cpu: 0 };
  n[name] = function (...a) {
    if (!on) return f.apply(this, a);
    const c = process.cpuUsage();
    const t = process.hrtime.bigint();
    try {
      return f.apply(this, a);
    } finally {
      acc[name].wall.push(Number(process.hrtime.bigint() - t) / 1000);
      const d = process.cpuUsage(c);
      acc[name].cpu += d.user + d.system;
    }
  };
}
const opts = measuredSpawnOptions;
async function one() {
  const c = spawn("/bin/true", [], opts);
  const p = c.exited;
  if (jsOnly) onExit(0, null);
  return p;
}
for (let i = 0; i < Math.min(200, N); i++) await one();
on = true;
let syncCpu = 0;
const c0 = process.cpuUsage();
for (let i = 0; i < N; i++) {
  const a = process.cpuUsage();
  const c = spawn("/bin/true", [], opts);
  const d = process.cpuUsage(a);
  syncCpu += d.user + d.system;
  const p = c.exited;
  if (jsOnly) onExit(0, null);
  await p;
}
const loop = process.cpuUsage(c0);
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const f1 = (x) => x.toFixed(1).padStart(7);
console.log(`${N} spawns${jsOnly ? " (--js-only: native calls stubbed)" : ""}; µs per spawn`);
console.log(`${"".padEnd(16)} ${"wall med".padStart(8)} ${"cpu mean".padStart(8)}`);
for (const [k, v] of Object.entries(acc))
  if (v.wall.length > 0) console.log(`${k.padEnd(16)} ${f1(med(v.wall))}  ${f1(v.cpu / N)}`);
console.log(`${"spawn() call".padEnd(16)} ${"".padStart(7)}  ${f1(syncCpu / N)}`);
console.log(`${"whole loop".padEnd(16)} ${"".padStart(7)}  ${f1((loop.user + loop.system) / N)}`);
