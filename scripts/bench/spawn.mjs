// Spawn benchmarks: /bin/true in a new user namespace with uid and gid map
// "0 100000 65536", per spawn, against (1) the C floor, clone3 with CLONE_VM,
// the map writes and exec (scripts/bench/spawn-floor.c), and (2)
// child_process.spawn of util-linux `unshare --map-users --map-groups`,
// today's way for Node users (it writes the maps through newuidmap and
// newgidmap). Each again with 1 GiB of Buffers allocated in the Node process
// (the floor then holds 1 GiB resident itself).
//
// All samples come from one child process (scripts/bench/spawn-worker.mjs)
// that interleaves the ways in small batches and alternates rounds without
// and with the ballast, so that load from elsewhere on the machine hits every
// column alike; this process stays small. Needs root (direct map writes, and
// the worker's private mount namespace for the subuid entry).
import { execFileSync } from "node:child_process";
import { existsSync, readlinkSync } from "node:fs";
import { join } from "node:path";

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
  for (const cmd of ["unshare", "newuidmap", "newgidmap", "mount"]) {
    if (!has(cmd)) {
      console.error(`bench: spawn: ${cmd} not found (packages util-linux, uidmap, mount)`);
      return null;
    }
  }
  const floor = compileC("spawn-floor");
  const cfg = {
    root,
    floor,
    mib: MIB,
    // The worker checks that it is not in this mount namespace before it bind-mounts anything.
    callerMountNs: readlinkSync("/proc/self/ns/mnt"),
    rounds: 4, // without, with, without, with the ballast
    slices: 6,
    floor_n: 80,
    ours_n: 80,
    unshare_n: 15,
    unshare_big_n: 5,
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
  const { samples } = JSON.parse(out);
  console.error(`bench: spawn: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const s = (way, mib) => samples[`${way}@${mib}`];
  const rows = [];
  for (const mib of [0, MIB]) {
    const tag = mib === 0 ? "" : ", 1 GiB of Buffers allocated";
    const ours = s("ours", mib);
    const fl = s("floor", mib);
    const un = s("unshare", mib);
    for (const [stat, f] of [
      ["median", median],
      ["p99", (xs) => percentile(xs, 99)],
    ]) {
      rows.push({
        name: `spawn /bin/true with uid+gid map, ${stat}${tag} (n=${ours.length})`,
        ours: us(f(ours)),
        base: `${us(f(fl))} (C clone3 floor${mib ? ", 1 GiB resident" : ""})`,
        ratio: `${(f(ours) / f(fl)).toFixed(2)}×`,
        goal: stat === "median" ? "≤ 1.3×" : "",
      });
    }
    rows.push({
      name: `spawn /bin/true with uid+gid map, median${tag} (n=${ours.length}/${un.length})`,
      ours: us(median(ours)),
      base: `${us(median(un))} (child_process.spawn unshare --map-users)`,
      ratio: `${(median(un) / median(ours)).toFixed(1)}× faster`,
      goal: "≥ 5× faster",
    });
  }
  const change = median(s("ours", MIB)) / median(s("ours", 0)) - 1;
  rows.push({
    name: "spawn: effect of 1 GiB of Buffers on our median",
    ours: us(median(s("ours", MIB))),
    base: `${us(median(s("ours", 0)))} (no ballast)`,
    ratio: `${change >= 0 ? "+" : ""}${(change * 100).toFixed(1)}%`,
    goal: "< 10%",
  });
  return rows;
}
