// `userns ls --json` on a host with 1,000 live user namespaces (held by a C
// helper's children, each with its own uid/gid maps), against
// `lsns -t user --json` in the same run. Both are whole programs started
// fresh each round, so Node's start-up is in our figure (a third program,
// Node running an empty script, shows how much). Wall time and CPU time
// (user + system, from GNU time) are both reported; the programs alternate
// round by round so changes in machine load hit them alike, and the ratio is
// the median of the per-round ratios. Every program gets the same small
// environment (PATH only): Node reads settings such as NODE_EXTRA_CA_CERTS at
// start-up (loading a certificate bundle costs ~50 ms of CPU per start), and
// a benchmark of listing namespaces should not time that.
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const N = 1000;
const ROUNDS = 9;
const ENV = { PATH: process.env.PATH ?? "/usr/bin:/bin" };

/** Runs a program to completion: its stdout, wall ms, and CPU ms (user + system, GNU time's %U %S). */
function timed(cmd, args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync("/usr/bin/time", ["-f", "@@cpu %U %S", cmd, ...args], {
    encoding: "utf8",
    maxBuffer: 1 << 28,
    env: ENV,
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
  const m = /@@cpu ([0-9.]+) ([0-9.]+)/.exec(r.stderr);
  if (m === null) throw new Error(`no CPU time from /usr/bin/time: ${r.stderr}`);
  return { stdout: r.stdout, wall, cpu: (Number(m[1]) + Number(m[2])) * 1000 };
}

export async function run({ median, compileC, root }) {
  const cli = join(root, "bin", "userns.js");
  if (!existsSync(join(root, "dist", "inventory", "index.js"))) return null;
  if (process.getuid?.() !== 0) return [{ name: "userns ls vs lsns", ours: "(needs root)", base: "", ratio: "" }];
  const many = compileC("userns-many");
  const holder = spawn(many, [String(N)], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise((r) => holder.once("exit", r));
  try {
    await new Promise((resolve, reject) => {
      let out = "";
      holder.stdout.on("data", (d) => {
        out += d.toString();
        if (out.includes("\n")) {
          if (out.startsWith(`ready ${N}`)) resolve();
          else reject(new Error(`userns-many: ${out}`));
        }
      });
      holder.once("exit", (c) => reject(new Error(`userns-many exited ${c}`)));
    });
    const ours = { walls: [], cpus: [], out: "" };
    const base = { walls: [], cpus: [], out: "" };
    const empty = { walls: [], cpus: [], out: "" };
    for (let i = 0; i < ROUNDS; i++) {
      for (const [acc, cmd, args] of [
        [ours, process.execPath, [cli, "ls", "--json"]],
        [base, "lsns", ["-t", "user", "--json"]],
        [empty, process.execPath, ["-e", ""]],
      ]) {
        const r = timed(cmd, args);
        acc.walls.push(r.wall);
        acc.cpus.push(r.cpu);
        acc.out = r.stdout;
      }
    }
    // The library call alone, in a process that is already running (no Node start-up, no module loading).
    const inproc = spawnSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const { listUserNamespaces } = await import(${JSON.stringify(join(root, "dist", "inventory", "index.js"))});
         const t = []; let n = 0;
         for (let i = 0; i < ${ROUNDS}; i++) { const t0 = performance.now(); n = listUserNamespaces().namespaces.length; t.push(performance.now() - t0); }
         t.sort((a, b) => a - b); console.log(JSON.stringify({ ms: t[${Math.floor(ROUNDS / 2)}], n }));`,
      ],
      { encoding: "utf8", env: ENV },
    );
    if (inproc.status !== 0) throw new Error(`in-process run failed: ${inproc.stderr}`);
    const lib = JSON.parse(inproc.stdout.trim());
    const inv = JSON.parse(ours.out);
    const lsns = JSON.parse(base.out);
    const withMaps = inv.namespaces.filter((n) => n.uidMap.length > 0 && n.gidMap.length > 0).length;
    if (inv.namespaces.length < N || lsns.namespaces.length < N)
      throw new Error(`expected ≥ ${N} namespaces: ours ${inv.namespaces.length}, lsns ${lsns.namespaces.length}`);
    if (withMaps < N) throw new Error(`only ${withMaps} namespaces with maps`);
    const w = median(ours.walls);
    const bw = median(base.walls);
    const c = median(ours.cpus);
    const bc = median(base.cpus);
    const ratio = (a, b) => median(a.map((x, i) => x / b[i]));
    return [
      {
        name: `userns ls --json, ${inv.namespaces.length} user namespaces with uid+gid maps (${inv.discovery.method}; wall, median of ${ROUNDS} interleaved rounds)`,
        ours: `${w.toFixed(0)} ms`,
        base: `lsns -t user --json: ${bw.toFixed(0)} ms (${lsns.namespaces.length} namespaces, no maps)`,
        ratio: `${ratio(ours.walls, base.walls).toFixed(2)}×`,
        goal: "≤ 1×",
      },
      {
        name: "  userns ls --json vs lsns, CPU time (user + system, median)",
        ours: `${c.toFixed(0)} ms`,
        base: `${bc.toFixed(0)} ms`,
        ratio: `${ratio(ours.cpus, base.cpus).toFixed(2)}×`,
        goal: "",
      },
      {
        name: "  Node's start-up alone (node -e '', same environment): wall / CPU, median",
        ours: `${median(empty.walls).toFixed(0)} ms / ${median(empty.cpus).toFixed(0)} ms`,
        base: `lsns: ${bw.toFixed(0)} ms / ${bc.toFixed(0)} ms`,
        ratio: `${ratio(empty.walls, base.walls).toFixed(2)}×`,
        goal: "",
      },
      {
        name: `  listUserNamespaces() alone, in a running process (${lib.n} namespaces; median of ${ROUNDS})`,
        ours: `${lib.ms.toFixed(0)} ms`,
        base: `lsns (whole program): ${bw.toFixed(0)} ms`,
        ratio: `${(lib.ms / bw).toFixed(2)}×`,
        goal: "",
      },
    ];
  } finally {
    holder.stdin.end();
    await exited;
  }
}
