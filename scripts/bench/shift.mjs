// Ownership shift of 100,000 inodes on tmpfs (ACL and capability handling on:
// 1% of the files carry ACLs, 0.5% capabilities) against coreutils
// `chown -hR` to one fixed owner on an identical tree, the floor (one lchown
// per inode, no maps, no xattrs); and the time of an idmapped mount of the
// same tree, the alternative. Alternating rounds in one private mount
// namespace; the ratio is the median of the per-round ratios. Also the floor
// of any exact shift (scripts/bench/shift-floor.c: the per-inode syscalls a
// shift cannot avoid, in C on one thread), which shows what bounds the ratio.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const INODES = 100000;
const ROUNDS = 7;

export async function run({ compileC, median, root }) {
  if (!existsSync(join(root, "dist", "shift", "index.js"))) return null;
  if (process.getuid?.() !== 0) return [{ name: "ownership shift", ours: "(needs root)", base: "", ratio: "" }];
  const worker = join(root, "scripts", "bench", "shift-worker.mjs");
  const floorBin = compileC("shift-floor");
  const out = execFileSync(
    "unshare",
    [
      "--mount",
      "--propagation",
      "private",
      process.execPath,
      worker,
      join(root, "dist"),
      String(INODES),
      String(ROUNDS),
      floorBin,
    ],
    { encoding: "utf8", maxBuffer: 1 << 24 },
  );
  const r = JSON.parse(out.trim().split("\n").at(-1));
  const ms = (x) => `${x.toFixed(0)} ms`;
  const lo = Math.min(...r.ratio).toFixed(2);
  const hi = Math.max(...r.ratio).toFixed(2);
  const ratio = median(r.ratio);
  const mountUs = median(r.mount) * 1000;
  return [
    {
      name: `ownership shift, ${r.inodes.toLocaleString("en-US")} inodes on tmpfs, ${r.acls} ACLs + ${r.caps} capabilities (median of ${ROUNDS} rounds, per-round ${lo}–${hi}×)`,
      ours: ms(median(r.shift)),
      base: `${ms(median(r.chown))} (chown -hR)`,
      ratio: `${ratio.toFixed(2)}×`,
      goal: "≤ 1.5×",
    },
    {
      name: `ownership shift: CPU time, user + system, all threads (per-round ${Math.min(...r.cpuRatio).toFixed(2)}–${Math.max(...r.cpuRatio).toFixed(2)}×)`,
      ours: ms(median(r.shiftCpu)),
      base: `${ms(median(r.chownCpu))} (chown -hR)`,
      ratio: `${median(r.cpuRatio).toFixed(2)}×`,
    },
    {
      name: "ownership shift: CPU time / wall time (2.0 when both threads had a core to themselves; chown -hR runs on one)",
      ours: `${median(r.shiftCpu.map((c, i) => c / r.shift[i])).toFixed(2)}`,
      base: `${median(r.chownCpu.map((c, i) => c / r.chown[i])).toFixed(2)} (chown -hR)`,
      ratio: "",
    },
    {
      name: "floor of any exact shift: C, one thread, statx + listxattrat + fchownat per inode (scripts/bench/shift-floor.c), CPU time",
      ours: ms(median(r.floorCpu)),
      base: `${ms(median(r.chownCpu))} (chown -hR)`,
      ratio: `${(median(r.floorCpu) / median(r.chownCpu)).toFixed(2)}×`,
    },
    {
      name: "the same floor without the xattr check (statx + fchownat), CPU time",
      ours: ms(median(r.floorNoXCpu)),
      base: `${ms(median(r.chownCpu))} (chown -hR)`,
      ratio: `${(median(r.floorNoXCpu) / median(r.chownCpu)).toFixed(2)}×`,
    },
    {
      name: "ownership shift against that floor (CPU time: the cost of maps, plan, journal and the second walk)",
      ours: ms(median(r.shiftCpu)),
      base: `${ms(median(r.floorCpu))} (floor)`,
      ratio: `${(median(r.shiftCpu) / median(r.floorCpu)).toFixed(2)}×`,
    },
    {
      name: `ownership shift back (--reverse), same tree`,
      ours: ms(median(r.back)),
      base: `${ms(median(r.chown))} (chown -hR)`,
      ratio: `${(median(r.back) / median(r.chown)).toFixed(2)}×`,
    },
    {
      name: "idmapped mount of the same tree instead (create + attach, recursive)",
      ours: `${mountUs.toFixed(0)} µs`,
      base: `${ms(median(r.shift))} (the shift)`,
      ratio: `${(median(r.shift) / median(r.mount)).toFixed(0)}× faster`,
    },
  ];
}
