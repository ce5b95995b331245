// Where a lone spawn's wall time goes, phase by phase, from the scheduler's own events: spawn() against the Node
// floor (spawn-node-floor.c), interleaved in batches of 100 in one process, recorded with
// `perf record -a -e sched:...` and read back with `perf script`. Per way it prints the median of each phase of a
// spawn of /bin/true with uid and gid map "0 100000 65536", from the parent's clone3 (sched_process_fork) to the
// next one, and the CPU time each party used between the program's exec and its exit.
//
//   npm run build:ts && node scripts/bench/spawn-sched.mjs [BATCHES]      (as root, with perf; 60 by default)
//
// The phases, as the trace shows them (parent: the Node thread that spawns):
//   fork -> parent sleeps       after clone3: the map writes, the release, what else the parent does before it
//                               blocks (the child, woken on the parent's CPU, mostly runs only then)
//   fork -> exec                until the program's execve (sched_process_exec)
//   exec -> parent runs         the parent woken by the error pipe's EOF
//   parent runs -> sleeps       the parent's work after the exec, before its event loop sleeps
//   exec -> exit                the program itself, and whoever shares its CPU meanwhile
//   exit -> parent runs         the wake-up for the exit
//   parent runs -> next fork    the exit callback, the next spawn's preparation, until its clone3
// The first 20 batches are a warm-up and are left out. Tracing slows everything somewhat; compare the ways, not
// the absolute figures.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { measuredSpawnOptions } from "./spawn-call.mjs";

const root = join(import.meta.dirname, "..", "..");
const opts = measuredSpawnOptions;
const BATCH = 100;
const WARM_BATCHES = 20;

if (process.argv[2] === "--child") {
  // The traced process: batches of BATCH spawns, spawn() first, then the Node floor, alternating.
  const { spawn } = await import(pathToFileURL(join(root, "dist", "spawn", "index.js")).href);
  const m = { exports: {} };
  process.dlopen(m, process.argv[3]);
  const floor = m.exports;
  const ways = [
    async () => {
      await spawn("/bin/true", [], opts).exited;
    },
    () => new Promise((resolve) => floor.start(() => resolve(), true)),
  ];
  const batches = Number(process.argv[4]);
  for (let b = 0; b < batches; b++) for (let i = 0; i < BATCH; i++) await ways[b % 2]();
  process.exit(0);
}

const batches = Number(process.argv[2] ?? 60);
if (batches <= WARM_BATCHES + 1) throw new Error(`spawn-sched: needs more than ${WARM_BATCHES + 1} batches`);
const include = join(dirname(process.execPath), "..", "include", "node");
if (!existsSync(join(include, "node_api.h"))) throw new Error(`spawn-sched: no ${join(include, "node_api.h")}`);
const dir = mkdtempSync(join(tmpdir(), "userns-sched-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
const floorAddon = join(dir, "spawn-node-floor.node");
execFileSync("gcc", [
  "-O2",
  "-shared",
  "-fPIC",
  `-I${include}`,
  "-o",
  floorAddon,
  join(import.meta.dirname, "spawn-node-floor.c"),
]);
const data = join(dir, "perf.data");
const events = ["sched_switch", "sched_process_exec", "sched_process_exit", "sched_process_fork"];
execFileSync(
  "perf",
  [
    "record",
    "-q",
    "-a",
    ...events.flatMap((e) => ["-e", `sched:${e}`]),
    "-o",
    data,
    "--",
    process.execPath,
    import.meta.filename,
    "--child",
    floorAddon,
    String(batches),
  ],
  { stdio: ["ignore", "ignore", "inherit"] },
);
const text = execFileSync("perf", ["script", "-i", data, "-F", "tid,pid,cpu,time,event,trace"], {
  encoding: "utf8",
  maxBuffer: 1 << 30,
  stdio: ["ignore", "pipe", "ignore"],
});

// One event: time in µs, the thread and its process, the event's name and its fields.
const ev = [];
for (const line of text.split("\n")) {
  const m = /^\s*(\d+)\/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:(\S+):\s*(.*)$/.exec(line);
  if (m) ev.push({ pid: Number(m[1]), tid: Number(m[2]), cpu: Number(m[3]), t: Number(m[4]) * 1e6, e: m[5], f: m[6] });
}
const field = (f, name) => Number(new RegExp(`${name}=(\\d+)`).exec(f)?.[1]);
// The spawning thread: the one with the most forks.
const forks = new Map();
for (const x of ev) if (x.e === "sched_process_fork") forks.set(x.tid, (forks.get(x.tid) ?? 0) + 1);
const main = [...forks].sort((a, b) => b[1] - a[1])[0][0];
const nodeThreads = new Set(ev.filter((x) => x.pid === main).map((x) => x.tid));

const kids = [];
let cur;
let inWindow = false;
const running = new Map(); // cpu -> [tid, since]
const credit = (tid, dt) => {
  if (cur === undefined || !inWindow) return;
  const who =
    tid === cur.pid
      ? "program"
      : tid === main
        ? "parent"
        : nodeThreads.has(tid)
          ? "node threads"
          : tid === 0
            ? "idle"
            : "others";
  cur.cpu[who] = (cur.cpu[who] ?? 0) + dt;
};
const flush = (t) => {
  for (const [c, [tid, since]] of running) {
    credit(tid, t - since);
    running.set(c, [tid, t]);
  }
};
for (const x of ev) {
  if (x.e === "sched_switch") {
    const prev = field(x.f, "prev_pid");
    const next = field(x.f, "next_pid");
    const r = running.get(x.cpu);
    if (r) credit(r[0], x.t - r[1]);
    running.set(x.cpu, [next, x.t]);
    if (cur === undefined) continue;
    const k = cur;
    if (prev === main && k.exec === undefined && k.parentSleeps === undefined) k.parentSleeps = x.t;
    if (next === main && k.exec !== undefined && k.exit === undefined && k.parentRuns === undefined) k.parentRuns = x.t;
    if (prev === main && k.parentRuns !== undefined && k.exit === undefined && k.parentSleeps2 === undefined)
      k.parentSleeps2 = x.t;
    if (next === main && k.exit !== undefined && k.parentRuns2 === undefined) k.parentRuns2 = x.t;
  } else if (x.e === "sched_process_fork" && x.tid === main) {
    cur = { pid: field(x.f, "child_pid"), fork: x.t, cpu: {} };
    kids.push(cur);
    inWindow = false;
  } else if (x.e === "sched_process_exec" && cur !== undefined && x.tid === cur.pid) {
    flush(x.t);
    cur.exec = x.t;
    inWindow = true;
  } else if (x.e === "sched_process_exit" && cur !== undefined && x.tid === cur.pid && cur.exit === undefined) {
    flush(x.t);
    cur.exit = x.t;
    inWindow = false;
  }
}
// Programs only: a thread Node creates is a fork event too, but never execs.
const spawned = kids.filter((k) => k.exec !== undefined);
for (let i = 0; i + 1 < spawned.length; i++) spawned[i].nextFork = spawned[i + 1].fork;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.floor(s.length / 2)];
};
const phases = [
  ["fork -> parent sleeps", "fork", "parentSleeps"],
  ["fork -> exec", "fork", "exec"],
  ["exec -> parent runs", "exec", "parentRuns"],
  ["parent runs -> sleeps", "parentRuns", "parentSleeps2"],
  ["exec -> exit", "exec", "exit"],
  ["exit -> parent runs", "exit", "parentRuns2"],
  ["parent runs -> next fork", "parentRuns2", "nextFork"],
  ["fork -> next fork", "fork", "nextFork"],
];
// The batches' programs are the last ones (anything Node or the library ran before them comes first).
if (spawned.length < batches * BATCH)
  throw new Error(`spawn-sched: ${spawned.length} programs traced, expected ${batches * BATCH}`);
spawned.splice(0, spawned.length - batches * BATCH);
const ways = [
  ["spawn()", 0],
  ["Node floor", 1],
];
const sel = (w) =>
  spawned.filter((_, i) => i >= WARM_BATCHES * BATCH && Math.floor(i / BATCH) % 2 === w && i + 1 < spawned.length);
const rows = [["phase (median µs)", ...ways.map(([n]) => n)]];
for (const [label, a, b] of phases)
  rows.push([
    label,
    ...ways.map(([, w]) =>
      median(
        sel(w)
          .filter((k) => k[a] !== undefined && k[b] !== undefined)
          .map((k) => k[b] - k[a]),
      ).toFixed(0),
    ),
  ]);
for (const who of ["program", "parent", "node threads", "others"])
  rows.push([
    `exec -> exit: CPU of ${who}`,
    ...ways.map(([, w]) => median(sel(w).map((k) => k.cpu[who] ?? 0)).toFixed(0)),
  ]);
rows.push(["spawns", ...ways.map(([, w]) => String(sel(w).length))]);
const width = Math.max(...rows.map((r) => r[0].length));
for (const r of rows)
  console.log(
    `${r[0].padEnd(width)}  ${r
      .slice(1)
      .map((c) => c.padStart(10))
      .join("  ")}`,
  );
