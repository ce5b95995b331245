// Spawn benchmarks: /bin/true in a new user namespace with uid and gid map
// "0 100000 65536", per spawn, against (1) the C floor, clone3 with CLONE_VM,
// the map writes and exec (scripts/bench/spawn-floor.c), and (2)
// child_process.spawn of util-linux `unshare --map-users --map-groups`,
// today's way for Node users (it writes the maps through newuidmap and
// newgidmap). Each again with 1 GiB of Buffers allocated in the Node process
// (the floor then holds 1 GiB resident itself). Beside them the Node floor
// (scripts/bench/spawn-node-floor.c, where node_api.h can be found): the C
// floor's spawn from one N-API call with one exit callback, measured against
// the C floor and spawn() against it, which tells the library's own cost from
// Node's.
//
// All samples come from one child process (scripts/bench/spawn-worker.mjs)
// that interleaves the ways in small batches and alternates rounds without
// and with the ballast, so that load from elsewhere on the machine hits every
// column alike; this process stays small. Needs root (direct map writes, and
// the worker's private mount namespace for the subuid entry).
//
// Then throughput: spawns per second with 1, 4 and 16 of ours in flight from
// one thread, against the C floor with as many threads (spawn-floor.c
// `threads`), and beside them the C floor from one thread with an event loop
// (spawn-floor.c `loop`: what any one thread reaches). Everything runs twice: on the machine as it is ("quiet"), and
// "loaded", with a CPU-bound busy loop pinned to the last CPU for the whole
// run (the worker starts it and kills it by pid). `--spawn-mode=quiet` or
// `--spawn-mode=loaded` runs one of the two.
import { execFileSync } from "node:child_process";
import { existsSync, readlinkSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";

const MIB = 1024;

function has(cmd) {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const us = (x) => `${Math.round(x).toLocaleString("en-US")} µs`;

export async function run({ compileC, median, percentile, root }) {
  if (!existsSync(join(root, "dist", "spawn", "index.js"))) return null;
  if (process.geteuid?.() !== 0) {
    console.error("bench: spawn: needs root (direct map writes, a private mount namespace for the subuid entry)");
    return null;
  }
  for (const cmd of ["unshare", "newuidmap", "newgidmap", "mount", "taskset"]) {
    if (!has(cmd)) {
      console.error(`bench: spawn: ${cmd} not found (packages util-linux, uidmap, mount)`);
      return null;
    }
  }
  const floor = compileC("spawn-floor", ["-pthread"]);
  const nodeFloor = compileNodeFloor(compileC);
  // quiet, then loaded (a CPU-bound process on the last CPU); `--spawn-mode=quiet` or `=loaded` runs one.
  const modeArg = process.argv.find((a) => a.startsWith("--spawn-mode="))?.slice(13);
  const modes = modeArg === "quiet" || modeArg === "loaded" ? [modeArg] : ["quiet", "loaded"];
  const rows = [];
  for (const mode of modes) rows.push(...measure(mode, { floor, nodeFloor, root, median, percentile }));
  return rows;
}

/**
 * The Node floor (spawn-node-floor.c) as an addon for this Node, or null without its headers (node_api.h beside
 * the node binary, in ../include/node, as Debian's nodejs and the nodejs.org builds have it).
 */
function compileNodeFloor(compileC) {
  const include = join(dirname(process.execPath), "..", "include", "node");
  if (!existsSync(join(include, "node_api.h"))) {
    console.error(`bench: spawn: no ${join(include, "node_api.h")}: the Node floor rows are left out`);
    return null;
  }
  return compileC("spawn-node-floor", ["-shared", "-fPIC", `-I${include}`]);
}

const range = (xs) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}×`;

function measure(mode, { floor, nodeFloor, root, median, percentile }) {
  const cfg = {
    root,
    floor,
    nodeFloor,
    mib: MIB,
    loaded: mode === "loaded",
    // The worker checks that it is not in this mount namespace before it bind-mounts anything.
    callerMountNs: readlinkSync("/proc/self/ns/mnt"),
    rounds: 6, // without, with, without, with, without, with the ballast
    slices: 6,
    floor_n: 80,
    ours_n: 80,
    unshare_n: 10,
    unshare_big_n: 3,
    inFlight: [1, 4, 16],
    concMs: 1000,
    concRounds: 5,
  };
  const t0 = Date.now();
  const out = execFileSync(
    "unshare",
    [
      "--mount",
      "--propagation",
      "private",
      process.execPath,
      "--expose-gc",
      join(root, "scripts", "bench", "spawn-worker.mjs"),
      JSON.stringify(cfg),
    ],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 64 << 20 },
  );
  const { samples, conc } = JSON.parse(out);
  console.error(`bench: spawn (${mode}): ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const pre = mode === "quiet" ? "" : `loaded (a busy loop on CPU ${availableParallelism() - 1}): `;
  // Every sample of a way, and its samples round by round (a round is cfg.slices interleaved slices).
  const all = (way, mib) => samples[`${way}@${mib}`].flat();
  const byRound = (way, mib) => {
    const slices = samples[`${way}@${mib}`];
    const rounds = [];
    for (let i = 0; i < slices.length; i += cfg.slices) rounds.push(slices.slice(i, i + cfg.slices).flat());
    return rounds;
  };
  const rows = [];
  for (const mib of [0, MIB]) {
    const tag = mib === 0 ? "" : ", 1 GiB of Buffers allocated";
    const ours = all("ours", mib);
    const fl = all("floor", mib);
    const un = all("unshare", mib);
    const oursR = byRound("ours", mib);
    const flR = byRound("floor", mib);
    for (const [stat, f, goal] of [
      ["median", median, "≤ 1.15×"],
      ["p99", (xs) => percentile(xs, 99), "≤ 1.3×"],
    ]) {
      const perRound = oursR.map((o, i) => f(o) / f(flR[i]));
      rows.push({
        name: `${pre}spawn /bin/true with uid+gid map, ${stat}${tag} (n=${ours.length}; per-round ${range(perRound)})`,
        ours: us(f(ours)),
        base: `${us(f(fl))} (C clone3 floor${mib ? ", 1 GiB resident" : ""})`,
        ratio: `${(f(ours) / f(fl)).toFixed(2)}×`,
        goal,
      });
    }
    rows.push({
      name: `${pre}spawn /bin/true with uid+gid map, median${tag} (n=${ours.length}/${un.length})`,
      ours: us(median(ours)),
      base: `${us(median(un))} (child_process.spawn unshare --map-users)`,
      ratio: `${(median(un) / median(ours)).toFixed(1)}× faster`,
      goal: "≥ 5× faster",
    });
  }
  for (const mib of samples["node@0"] !== undefined ? [0, MIB] : []) {
    // What the library adds over the least any Node addon pays for the same spawn, and what that least costs; with
    // the ballast too, where V8 collects more often (what a Node process pays, the C floor not).
    const tag = mib === 0 ? "" : ", 1 GiB of Buffers allocated";
    const ours = all("ours", mib);
    const node = all("node", mib);
    const fl = all("floor", mib);
    const nodeR = byRound("node", mib);
    const flR = byRound("floor", mib);
    const oursR = byRound("ours", mib);
    for (const [stat, f] of [
      ["median", median],
      ["p99", (xs) => percentile(xs, 99)],
    ]) {
      rows.push({
        name: `${pre}spawn /bin/true with uid+gid map, ${stat}${tag}: userns against the Node floor (n=${ours.length}; per-round ${range(oursR.map((o, i) => f(o) / f(nodeR[i])))})`,
        ours: us(f(ours)),
        base: `${us(f(node))} (Node floor: the C floor's syscalls from one N-API call, one exit callback)`,
        ratio: `${(f(ours) / f(node)).toFixed(2)}×`,
        goal: "",
      });
      rows.push({
        name: `${pre}the Node floor against the C floor, ${stat}${tag} (n=${node.length}; per-round ${range(nodeR.map((o, i) => f(o) / f(flR[i])))})`,
        ours: us(f(node)),
        base: `${us(f(fl))} (C clone3 floor${mib ? ", 1 GiB resident" : ""})`,
        ratio: `${(f(node) / f(fl)).toFixed(2)}×`,
        goal: "",
      });
    }
  }
  const change = median(all("ours", MIB)) / median(all("ours", 0)) - 1;
  rows.push({
    name: `${pre}spawn: effect of 1 GiB of Buffers on our median`,
    ours: us(median(all("ours", MIB))),
    base: `${us(median(all("ours", 0)))} (no ballast)`,
    ratio: `${change >= 0 ? "+" : ""}${(change * 100).toFixed(1)}%`,
    goal: "< 10%",
  });
  for (const k of cfg.inFlight) {
    const rs = conc.filter((c) => c.k === k);
    const perRound = rs.map((c) => c.ours / c.floor);
    rows.push({
      name: `${pre}spawns per second, ${k} in flight (${rs.length} rounds of ${cfg.concMs} ms; per-round ${range(perRound)})`,
      ours: `${Math.round(median(rs.map((c) => c.ours)))}/s`,
      base: `${Math.round(median(rs.map((c) => c.floor)))}/s (C floor, ${k} thread${k > 1 ? "s" : ""})`,
      ratio: `${median(perRound).toFixed(2)}×`,
      goal: k > 1 ? "≥ 0.9×" : "",
    });
  }
  // What one thread can reach: the C floor's own spawns from one thread with an event loop (spawn-floor.c's loop
  // mode), as spawn() keeps several in flight from Node's one thread.
  for (const k of cfg.inFlight.filter((k) => k > 1)) {
    const rs = conc.filter((c) => c.k === k);
    const perRound = rs.map((c) => c.loop / c.floor);
    rows.push({
      name: `${pre}the C floor from one thread with an event loop: spawns per second, ${k} in flight (per-round ${range(perRound)})`,
      ours: `${Math.round(median(rs.map((c) => c.loop)))}/s`,
      base: `${Math.round(median(rs.map((c) => c.floor)))}/s (C floor, ${k} threads)`,
      ratio: `${median(perRound).toFixed(2)}×`,
      goal: "",
    });
  }
  if (conc.some((c) => c.node !== undefined))
    for (const k of cfg.inFlight) {
      const rs = conc.filter((c) => c.k === k);
      const perRound = rs.map((c) => c.node / c.floor);
      rows.push({
        name: `${pre}the Node floor: spawns per second, ${k} in flight (per-round ${range(perRound)})`,
        ours: `${Math.round(median(rs.map((c) => c.node)))}/s`,
        base: `${Math.round(median(rs.map((c) => c.floor)))}/s (C floor, ${k} thread${k > 1 ? "s" : ""})`,
        ratio: `${median(perRound).toFixed(2)}×`,
        goal: "",
      });
    }
  return rows;
}
