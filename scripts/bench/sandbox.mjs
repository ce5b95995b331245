// Sandbox benchmark: spawning /bin/true in the sandbox a widely used Node sandboxing package
// asks bwrap for (`--ro-bind / /`, a writable bind of a working directory, `--tmpfs /tmp`,
// `--dev /dev`, `--proc /proc`, `--unshare-user --unshare-pid --unshare-net`, `--new-session
// --die-with-parent`, `--cap-drop ALL`), per spawn, median and p99, against:
//   bwrap-cp  child_process.spawn('bwrap', same args), awaiting 'exit' (what such a package does)
//   bwrap-c   bwrap started from a small C program (scripts/bench/bwrap-from-c.c)
//   floor     a C program building the same sandbox itself (scripts/bench/sandbox-floor.c)
// and what the sandbox adds over a plain spawn() of /bin/true (no namespaces; and the same
// namespaces without the sandbox). All ways run interleaved in small batches, in rounds, in this
// process, so that load from elsewhere hits every column alike: 10 per way per round, rounds until
// 100 (1,000 samples per way, so that p99 is the 11th-slowest and not the slowest of a few) or
// 30 s, at least 8. Afterwards the floor's own per-step medians (sandbox-floor ... phases) go to
// stderr: where the time of a sandboxed spawn goes. Root: bwrap's user namespace maps 0 to 0 (one
// id), and so do ours and the floor's.
import { spawn as cpSpawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const us = (x) => `${Math.round(x).toLocaleString("en-US")} µs`;

function which(cmd) {
  try {
    return execFileSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" }).trim();
  } catch {
    return undefined;
  }
}

export async function run({ compileC, median, percentile, root }) {
  const dist = join(root, "dist", "spawn", "index.js");
  if (!existsSync(dist) || !existsSync(join(root, "dist", "sandbox", "prepare.js"))) return null;
  if (process.geteuid?.() !== 0) {
    console.error("bench: sandbox: needs root (bwrap maps root's uid; the floor writes the maps itself)");
    return null;
  }
  const bwrap = which("bwrap");
  if (bwrap === undefined) {
    console.error("bench: sandbox: bwrap not found (Debian package bubblewrap)");
    return null;
  }
  const floor = compileC("sandbox-floor");
  const bwrapC = compileC("bwrap-from-c");
  const { spawn } = await import(pathToFileURL(dist).href);
  const work = mkdtempSync(join(tmpdir(), "userns-bench-sandbox-"));
  try {
    const bwrapArgs = [
      ...["--ro-bind", "/", "/", "--bind", work, work, "--tmpfs", "/tmp", "--dev", "/dev", "--proc", "/proc"],
      ...["--unshare-user", "--unshare-pid", "--unshare-net", "--new-session", "--die-with-parent"],
      ...["--cap-drop", "ALL", "/bin/true"],
    ];
    const sandboxed = {
      namespaces: ["user", "mount", "pid", "net"],
      uidMap: "0 0 1",
      gidMap: "0 0 1",
      filesystem: [
        { op: "bind", source: "/", dest: "/", readOnly: true },
        { op: "bind", source: work, dest: work },
        { op: "tmpfs", dest: "/tmp" },
        { op: "dev", dest: "/dev" },
        { op: "proc", dest: "/proc" },
      ],
      detached: true,
      parentDeathSignal: "SIGKILL",
      capabilities: [],
      stdio: "ignore",
    };
    const sameNs = { namespaces: ["user", "pid", "net"], uidMap: "0 0 1", gidMap: "0 0 1", stdio: "ignore" };
    const plain = { stdio: "ignore" };
    const ours = (opts) => async () => {
      const { code } = await spawn("/bin/true", [], opts).exited;
      if (code !== 0) throw new Error(`userns spawn: /bin/true exited ${code}`);
    };
    const ways = {
      ours: ours(sandboxed),
      plain: ours(plain),
      sameNs: ours(sameNs),
      bwrapCp: () =>
        new Promise((resolve, reject) => {
          const c = cpSpawn(bwrap, bwrapArgs, { stdio: ["ignore", "ignore", "inherit"] });
          c.on("error", reject);
          c.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`bwrap exited ${code}`))));
        }),
    };
    const batch = async (fn, n) => {
      const t = [];
      for (let i = 0; i < n; i++) {
        const t0 = process.hrtime.bigint();
        await fn();
        t.push(Number(process.hrtime.bigint() - t0) / 1000);
      }
      return t;
    };
    const cBatch = (bin, args) => JSON.parse(execFileSync(bin, args, { encoding: "utf8" })).samplesUs;
    const samples = { ours: [], plain: [], sameNs: [], bwrapCp: [], bwrapC: [], floor: [] };
    // Warm-up, outside the samples.
    await batch(ways.ours, 10);
    await batch(ways.bwrapCp, 3);
    cBatch(floor, ["5", work, "samples"]);
    const maxRounds = 100;
    const minRounds = 8;
    const budgetMs = 30_000;
    const n = 10;
    const t0 = Date.now();
    for (let r = 0; r < maxRounds && (r < minRounds || Date.now() - t0 < budgetMs); r++) {
      samples.floor.push(...cBatch(floor, [String(n), work, "samples"]));
      samples.ours.push(...(await batch(ways.ours, n)));
      samples.bwrapC.push(...cBatch(bwrapC, [String(n), "samples", bwrap, ...bwrapArgs]));
      samples.bwrapCp.push(...(await batch(ways.bwrapCp, n)));
      samples.sameNs.push(...(await batch(ways.sameNs, n)));
      samples.plain.push(...(await batch(ways.plain, n)));
    }
    console.error(`bench: sandbox: ${((Date.now() - t0) / 1000).toFixed(1)} s, ${samples.ours.length} per way`);
    const phases = JSON.parse(execFileSync(floor, ["200", work, "phases"], { encoding: "utf8" })).phasesUs;
    console.error("bench: sandbox: the C floor, step by step (median, p99 of 200):");
    for (const p of phases) console.error(`  ${us(p.medianUs).padStart(10)} ${us(p.p99Us).padStart(10)}  ${p.step}`);
    const p99 = (xs) => percentile(xs, 99);
    const rows = [];
    const N = samples.ours.length;
    for (const [stat, f] of [
      ["median", median],
      ["p99", p99],
    ]) {
      rows.push({
        name: `sandboxed spawn of /bin/true (bwrap args of a Node sandboxing package), ${stat} (n=${N})`,
        ours: us(f(samples.ours)),
        base: `${us(f(samples.bwrapCp))} (child_process.spawn bwrap)`,
        ratio: `${(f(samples.bwrapCp) / f(samples.ours)).toFixed(1)}× faster`,
        goal: stat === "median" ? "≥ 4× faster" : "",
      });
      rows.push({
        name: `sandboxed spawn, ${stat} (n=${N})`,
        ours: us(f(samples.ours)),
        base: `${us(f(samples.bwrapC))} (bwrap started from C)`,
        ratio: `${(f(samples.bwrapC) / f(samples.ours)).toFixed(2)}× faster`,
        goal: stat === "median" ? "faster" : "",
      });
      rows.push({
        name: `sandboxed spawn, ${stat} (n=${N})`,
        ours: us(f(samples.ours)),
        base: `${us(f(samples.floor))} (C floor: clone3, mounts, pivot_root, exec)`,
        ratio: `${(f(samples.ours) / f(samples.floor)).toFixed(2)}×`,
        goal: stat === "median" ? "≤ 1.3×" : "",
      });
    }
    rows.push({
      name: `sandbox cost over spawn() of /bin/true, no namespaces, median (n=${N})`,
      ours: us(median(samples.ours)),
      base: `${us(median(samples.plain))} (spawn(), no namespaces)`,
      ratio: `+${us(median(samples.ours) - median(samples.plain))}`,
      goal: "",
    });
    rows.push({
      name: `sandbox cost over spawn() with the same user, pid and net namespaces, median (n=${N})`,
      ours: us(median(samples.ours)),
      base: `${us(median(samples.sameNs))} (spawn(), namespaces only)`,
      ratio: `+${us(median(samples.ours) - median(samples.sameNs))}`,
      goal: "",
    });
    return rows;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
