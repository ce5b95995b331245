// Idmapped-mount churn: create (open_tree + mount_setattr IDMAP), attach
// (move_mount) and detach, ours against a C program making the same
// syscalls. Both run in private mount namespaces (util-linux unshare), in
// alternating rounds so that drift hits both alike.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

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
  const floor = compileC("mount-floor", ["-pthread"]);
  // Node's own threads (V8 platform workers, libuv): the C floor gets as many idle ones.
  const threads = Number(
    execFileSync(process.execPath, ["-e", "console.log(require('fs').readdirSync('/proc/self/task').length)"], {
      encoding: "utf8",
    }).trim(),
  );
  const iterations = "1000";
  const ours = [];
  const base = [];
  const ratios = [];
  const baseMt = [];
  const ratiosMt = [];
  for (let round = 0; round < 5; round++) {
    const c = runJson(floor, [iterations]).ns_per_op;
    const cm = runJson(floor, [iterations], { IDLE_THREADS: String(threads - 1) }).ns_per_op;
    const o = runJson(process.execPath, [
      join(root, "scripts", "bench", "mount-ours.mjs"),
      join(root, "dist"),
      iterations,
    ]).ns_per_op;
    base.push(c);
    ours.push(o);
    ratios.push(o / c);
    baseMt.push(cm);
    ratiosMt.push(o / cm);
  }
  return [
    {
      name: "idmapped mount: create + attach + detach",
      ours: `${(median(ours) / 1000).toFixed(1)} µs`,
      base: `${(median(base) / 1000).toFixed(1)} µs (C)`,
      ratio: `${median(ratios).toFixed(2)}×`,
      goal: "≤ 1.25×",
    },
    {
      name: `idmapped mount: the same, C with ${threads} threads as Node has`,
      ours: `${(median(ours) / 1000).toFixed(1)} µs`,
      base: `${(median(baseMt) / 1000).toFixed(1)} µs (C, ${threads} threads)`,
      ratio: `${median(ratiosMt).toFixed(2)}×`,
      goal: "≤ 1.25×",
    },
  ];
}
