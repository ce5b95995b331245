// The measuring process of the spawn section (scripts/bench/spawn.mjs runs
// it; not meant to be run by hand). It runs alone in a private mount
// namespace, where a temporary file is bind-mounted over /etc/subuid and
// /etc/subgid so that util-linux `unshare --map-users` (which goes through
// newuidmap/newgidmap) finds a range for root; the host's files are never
// touched:
//   unshare --mount --propagation private node --expose-gc spawn-worker.mjs CONFIG_JSON
//
// It measures, interleaved in rounds, the ways of running /bin/true in a
// new user namespace with uid and gid map "0 100000 65536":
//   floor   the C program (clone3 CLONE_VM, map writes, exec), its own samples
//   ours    userns spawn(), awaiting the exit status
//   node    the Node floor (spawn-node-floor.c, when cfg.nodeFloor is given): the
//           C floor's syscalls from one N-API call, its exit through one callback
//   unshare child_process.spawn of `unshare --map-users --map-groups`, awaiting 'exit'
// Rounds alternate between no ballast and `mib` MiB of Buffers allocated in
// this process (the C floor then allocates the same amount itself), so the
// with/without comparison is interleaved too. Then throughput: for each of
// cfg.inFlight (1, 4, 16), `ours` (and `node`) keeps that many spawns in flight
// from this one thread (Promise-level concurrency) for cfg.concMs, taking turns
// with the C floor running as many threads for as long, and with the C floor's
// one-thread event loop keeping as many in flight, cfg.concRounds times.
// With cfg.loaded, a CPU-bound busy loop pinned to the last CPU runs
// throughout (started here, killed by pid at the end). Prints one JSON line:
// {samples: {"ours@0": [[µs...] per slice], ...}, conc: [{k, ours, floor, node?} spawns/s per round]}.
import { spawn as cpSpawn, execFileSync } from "node:child_process";
import { mkdtempSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { measuredSpawnOptions } from "./spawn-call.mjs";

const cfg = JSON.parse(process.argv[2] ?? "{}");
if (readlinkSync("/proc/self/ns/mnt") === cfg.callerMountNs) {
  console.error("spawn-worker: run me under unshare --mount --propagation private");
  process.exit(2);
}
if (typeof globalThis.gc !== "function") {
  console.error("spawn-worker: run me with --expose-gc");
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), "userns-bench-subid-"));
// Removed however this process ends ('exit' also fires after an uncaught
// error). The file is only the source of the bind mounts, not a mount point,
// so it can go while they last; they vanish with this namespace.
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
const subid = join(dir, "subid");
writeFileSync(subid, "root:100000:65536\n");
execFileSync("mount", ["--bind", subid, "/etc/subuid"]);
execFileSync("mount", ["--bind", subid, "/etc/subgid"]);

// The load of the "loaded" mode: one CPU-bound process on the last CPU, ours to start and to kill by pid.
let busy;
if (cfg.loaded) {
  const cpu = availableParallelism() - 1;
  busy = cpSpawn("taskset", ["-c", String(cpu), process.execPath, "-e", "for (;;) {}"], { stdio: "ignore" });
  process.on("exit", () => busy.kill("SIGKILL"));
}

const { spawn } = await import(pathToFileURL(join(cfg.root, "dist", "spawn", "index.js")).href);
const opts = measuredSpawnOptions;
const unshareArgs = ["--map-users=100000,0,65536", "--map-groups=100000,0,65536", "/bin/true"];

// The Node floor (spawn-node-floor.c), when the bench could build it: the C floor's syscalls from one N-API call.
let nodeFloor;
if (cfg.nodeFloor) {
  const m = { exports: {} };
  process.dlopen(m, cfg.nodeFloor);
  nodeFloor = m.exports;
}
// Like spawn(), it waits for the exec only when nothing else of its own is in flight.
let nodeLive = 0;

const ways = {
  node: () =>
    new Promise((resolve, reject) => {
      const waitExec = nodeLive === 0;
      nodeLive++;
      nodeFloor.start((status) => {
        nodeLive--;
        if (status === 0) resolve();
        else reject(new Error(`node floor: /bin/true exited ${status}`));
      }, waitExec);
    }),
  ours: async () => {
    const { code } = await spawn("/bin/true", [], opts).exited;
    if (code !== 0) throw new Error(`userns spawn: /bin/true exited ${code}`);
  },
  unshare: () =>
    new Promise((resolve, reject) => {
      const c = cpSpawn("unshare", unshareArgs, { stdio: ["ignore", "ignore", "inherit"] });
      c.on("error", reject);
      c.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`unshare exited ${code}`))));
    }),
};

async function batch(fn, n) {
  const t = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    t.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return t;
}

function floorBatch(n, mib) {
  const out = execFileSync(cfg.floor, [String(n), String(mib), "samples"], { encoding: "utf8" });
  return JSON.parse(out).samplesUs;
}

/** Spawns per second with `k` of `way` in flight from this thread, for `ms`. */
async function inFlight(way, k, ms) {
  let count = 0;
  const t0 = performance.now();
  const end = t0 + ms;
  const loop = async () => {
    while (performance.now() < end) {
      await way();
      count++;
    }
  };
  await Promise.all(Array.from({ length: k }, loop));
  return count / ((performance.now() - t0) / 1000);
}

function floorThreads(k, ms) {
  const out = execFileSync(cfg.floor, ["threads", String(k), String(ms)], { encoding: "utf8" });
  return JSON.parse(out).perSecond;
}

/** The C floor's spawns from one thread with an event loop, `k` in flight (spawn-floor.c's loop mode). */
function floorLoop(k, ms) {
  const out = execFileSync(cfg.floor, ["loop", String(k), String(ms)], { encoding: "utf8" });
  return JSON.parse(out).perSecond;
}

const samples = {};
// One array per slice, so that the ratios can be paired slice by slice.
const add = (key, xs) => {
  samples[key] ??= [];
  samples[key].push(xs);
};
let ballast = [];
// Warm up the JIT, the page cache and the helpers, outside any sample.
await batch(ways.ours, 30);
if (nodeFloor) await batch(ways.node, 30);
await batch(ways.unshare, 3);
floorBatch(10, 0);
for (let r = 0; r < cfg.rounds; r++) {
  const mib = r % 2 === 1 ? cfg.mib : 0;
  if (mib > 0) {
    for (let i = 0; i < mib; i++) ballast.push(Buffer.alloc(1 << 20, 1));
  } else {
    ballast = [];
  }
  // Measure the steady state: a collection started by the allocation (or the
  // release) must not land in the samples.
  globalThis.gc();
  await batch(ways.ours, 10);
  // Interleave small batches so that load from other processes hits all ways alike.
  for (let k = 0; k < cfg.slices; k++) {
    add(`floor@${mib}`, floorBatch(cfg.floor_n, mib));
    add(`ours@${mib}`, await batch(ways.ours, cfg.ours_n));
    if (nodeFloor) add(`node@${mib}`, await batch(ways.node, cfg.ours_n));
    add(`unshare@${mib}`, await batch(ways.unshare, mib > 0 ? cfg.unshare_big_n : cfg.unshare_n));
  }
}
ballast = [];
globalThis.gc();
const conc = [];
await inFlight(ways.ours, 4, 200);
if (nodeFloor) await inFlight(ways.node, 4, 200);
for (let r = 0; r < cfg.concRounds; r++) {
  for (const k of cfg.inFlight) {
    // Rotate which side goes first, so that a trend in the machine's load does not favour one.
    const sides = [
      ["floor", () => floorThreads(k, cfg.concMs)],
      ["ours", () => inFlight(ways.ours, k, cfg.concMs)],
      ["loop", () => floorLoop(k, cfg.concMs)],
      ...(nodeFloor ? [["node", () => inFlight(ways.node, k, cfg.concMs)]] : []),
    ];
    const round = { k };
    for (let i = 0; i < sides.length; i++) {
      const [name, run] = sides[(i + r) % sides.length];
      round[name] = await run();
    }
    conc.push(round);
  }
}
busy?.kill("SIGKILL");
console.log(JSON.stringify({ rss: process.memoryUsage().rss, samples, conc }));
