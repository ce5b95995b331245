#!/usr/bin/env node
// Spawn-with-maps of /bin/true through userns spawn(), next to Node's
// child_process.spawn of /bin/true and of util-linux `unshare -r`, in one
// process and one run. Prints one JSON line: median and p99 in microseconds.
//
//   npm run build:ts && node scripts/bench/spawn-ours.mjs [iterations] [MiB of Buffers to allocate first]
//
// Needs root for the map "0 100000 65536" (direct write). Compare with the
// C floor: cc -O2 -o /tmp/spawn-floor scripts/bench/spawn-floor.c && /tmp/spawn-floor N MiB
import { spawn as cpSpawn } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const root = join(import.meta.dirname, "..", "..");
const { spawn } = await import(pathToFileURL(join(root, "dist/spawn/index.js")).href);
const n = Number(process.argv[2] ?? 300);
const mib = Number(process.argv[3] ?? 0);
const ballast = [];
for (let i = 0; i < mib; i++) ballast.push(Buffer.alloc(1 << 20, 1));

async function measure(fn) {
  for (let i = 0; i < 20; i++) await fn();
  const t = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    t.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  t.sort((a, b) => a - b);
  return {
    medianUs: Math.round(t[t.length >> 1]),
    p99Us: Math.round(t[Math.min(t.length - 1, Math.floor(t.length * 0.99))]),
  };
}

const opts = {
  namespaces: ["user"],
  uidMap: "0 100000 65536",
  gidMap: "0 100000 65536",
  setgroups: "deny",
  stdio: "ignore",
};
const result = {
  n,
  residentMiB: mib,
  usernsSpawn: await measure(() => spawn("/bin/true", [], opts).exited),
  childProcessTrue: await measure(
    () => new Promise((r) => cpSpawn("/bin/true", [], { stdio: "ignore" }).on("exit", r)),
  ),
  childProcessUnshareR: await measure(
    () =>
      new Promise((r) =>
        cpSpawn("unshare", ["--user", "--map-root-user", "/bin/true"], { stdio: "ignore" }).on("exit", r),
      ),
  ),
};
console.log(JSON.stringify(result));
ballast.length = 0;
