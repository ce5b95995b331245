// Our side of the mount-floor comparison: idmapMount (held namespace) +
// attach + unmount in a loop, in this process, which must be alone in a
// private mount namespace:
//   unshare --mount --propagation private node scripts/bench/mount-ours.mjs DISTDIR ITERATIONS WARMUP
// Prints {"iterations":N,"ns_per_op":X,"cpu_ns_per_op":Y,"cpu_before_ms":Z}; WARMUP untimed
// cycles first, as in mount-floor.c (which says why).
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readlinkSync, rmSync } from "node:fs";
import { join } from "node:path";

const [dist, nArg, warmArg] = process.argv.slice(2);
if (readlinkSync("/proc/self/ns/mnt") === readlinkSync(`/proc/${process.ppid}/ns/mnt`)) {
  console.error("mount-ours: run me under unshare --mount --propagation private");
  process.exit(2);
}
const { idmapMount } = await import(join(dist, "mounts", "idmap-mount.js"));
const { createHelperUserns } = await import(join(dist, "mounts", "helper-userns.js"));
const n = Number(nArg ?? 1000);
const dir = mkdtempSync("/tmp/mount-ours-");
mkdirSync(join(dir, "src"));
mkdirSync(join(dir, "dst"));
execFileSync("mount", ["-t", "tmpfs", "ours", join(dir, "src")]);
const ns = createHelperUserns({ uidMap: "0 100000 65536\n", gidMap: "0 100000 65536\n" });
const src = join(dir, "src");
const dst = join(dir, "dst");
const warmup = Number(warmArg ?? 0);
for (let i = 0; i < warmup; i++) {
  const m = idmapMount(src, { userns: ns });
  m.attach(dst);
  m.unmount();
}
const c0 = process.cpuUsage();
// CPU used so far (start-up, imports, the warm-up): the cold C baseline burns as much first.
const cpuBeforeMs = (c0.user + c0.system) / 1000;
const t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) {
  const m = idmapMount(src, { userns: ns });
  m.attach(dst);
  m.unmount();
}
const t1 = process.hrtime.bigint();
const c1 = process.cpuUsage(c0);
console.log(
  JSON.stringify({
    iterations: n,
    ns_per_op: Number(t1 - t0) / n,
    cpu_ns_per_op: ((c1.user + c1.system) * 1000) / n,
    cpu_before_ms: cpuBeforeMs,
  }),
);
ns.close();
execFileSync("umount", [src]);
rmSync(dir, { recursive: true });
