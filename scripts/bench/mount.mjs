// Idmapped-mount churn: create (open_tree + mount_setattr IDMAP), attach
// (move_mount) and detach (umount2), ours against a C program making the
// same syscalls. Each side runs in its own private mount namespace (util-linux
// unshare), with the same untimed warm-up and the same timed count, in
// alternating rounds whose order flips each round, so that drift hits both
// alike; the ratio is the median of the per-round ratios.
//
// Why the warm-up: umount2 waits for an expedited RCU grace period, and how
// long depends on where the scheduler has put the kernel's rcu_exp_gp
// kthread (on the caller's CPU: ~3 µs; on the other CPU: two cross-CPU
// wake-ups, ~30 µs). A fresh process starts in one placement and moves to
// the other once its CPU is loaded, so unwarmed runs of different lengths
// compare different kernel paths. `perf record -e sched:sched_switch -a`
// shows it (scripts/bench/mount-floor.c says more).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const ROUNDS = 15;
const WARMUP = "3000";
const ITERATIONS = "2000";
const COLD = "500";

function runJson(cmd, args, env = {}) {
  const out = execFileSync("unshare", ["--mount", "--propagation", "private", cmd, ...args], {
    encoding: "utf8",
    env: { ...process.env, ...env },
  });
  return JSON.parse(out.trim().split("\n").at(-1));
}

export async function run({ compileC, median, root }) {
  if (!existsSync(join(root, "dist", "mounts", "idmap-mount.js"))) return null;
  if (process.getuid?.() !== 0) return [{ name: "idmapped mount churn", ours: "(needs root)", base: "", ratio: "" }];
  const floor = compileC("mount-floor");
  const oursScript = join(root, "scripts", "bench", "mount-ours.mjs");
  const runC = () => runJson(floor, [ITERATIONS, WARMUP]);
  const runOurs = () => runJson(process.execPath, [oursScript, join(root, "dist"), ITERATIONS, WARMUP]);
  const wall = { ours: [], base: [], ratio: [] };
  const cpu = { ours: [], base: [], ratio: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const [c, o] = round % 2 === 0 ? [runC(), runOurs()] : [runOurs(), runC()].reverse();
    wall.ours.push(o.ns_per_op);
    wall.base.push(c.ns_per_op);
    wall.ratio.push(o.ns_per_op / c.ns_per_op);
    cpu.ours.push(o.cpu_ns_per_op);
    cpu.base.push(c.cpu_ns_per_op);
    cpu.ratio.push(o.cpu_ns_per_op / c.cpu_ns_per_op);
  }
  // Cold: the first cycles of a fresh process, where the placement usually differs (see above).
  // Against a fresh C process, and against the same C process after it has used as much CPU as
  // our process had used by the start of its timed loop (Node's start-up and imports).
  const cold = { ours: [], base: [], ratio: [], burned: [], ratioBurned: [], burnMs: [] };
  for (let round = 0; round < 5; round++) {
    const o = runJson(process.execPath, [oursScript, join(root, "dist"), COLD, "0"]);
    const c = runJson(floor, [COLD, "0"]);
    const burnMs = Math.round(o.cpu_before_ms);
    const cb = runJson(floor, [COLD, "0"], { BURN_MS: String(burnMs) });
    cold.ours.push(o.ns_per_op);
    cold.base.push(c.ns_per_op);
    cold.ratio.push(o.ns_per_op / c.ns_per_op);
    cold.burned.push(cb.ns_per_op);
    cold.ratioBurned.push(o.ns_per_op / cb.ns_per_op);
    cold.burnMs.push(burnMs);
  }
  const us = (ns) => `${(ns / 1000).toFixed(1)} µs`;
  const spread = (xs) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;
  return [
    {
      name: `idmapped mount: create + attach + detach (median of ${ROUNDS} rounds, per-round ${spread(wall.ratio)}×)`,
      ours: us(median(wall.ours)),
      base: `${us(median(wall.base))} (C)`,
      ratio: `${median(wall.ratio).toFixed(2)}×`,
      goal: "≤ 1.25×",
    },
    {
      name: `idmapped mount: CPU time per cycle, whole process (per-round ${spread(cpu.ratio)}×)`,
      ours: us(median(cpu.ours)),
      base: `${us(median(cpu.base))} (C)`,
      ratio: `${median(cpu.ratio).toFixed(2)}×`,
      goal: "",
    },
    {
      name: `idmapped mount: cold, first ${COLD} cycles of a fresh process (per-round ${spread(cold.ratio)}×)`,
      ours: us(median(cold.ours)),
      base: `${us(median(cold.base))} (C)`,
      ratio: `${median(cold.ratio).toFixed(2)}×`,
      goal: "",
    },
    {
      name: `idmapped mount: cold, C first using as much CPU as our start-up (${median(cold.burnMs)} ms; per-round ${spread(cold.ratioBurned)}×)`,
      ours: us(median(cold.ours)),
      base: `${us(median(cold.burned))} (C)`,
      ratio: `${median(cold.ratioBurned).toFixed(2)}×`,
      goal: "",
    },
  ];
}
