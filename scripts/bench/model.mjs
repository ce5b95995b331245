// Model benchmarks: id lookups on 5- and 340-extent maps against C doing the
// kernel's algorithm, and parse+validate of a 340-extent map.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

function nsPerOp(fn, iterations) {
  for (let i = 0; i < iterations / 10; i++) fn(i); // warm up the JIT
  const t0 = process.hrtime.bigint();
  let sink = 0;
  for (let i = 0; i < iterations; i++) sink ^= fn(i);
  const t1 = process.hrtime.bigint();
  if (sink === 0.5) console.log(sink); // keep the loop observable
  return Number(t1 - t0) / iterations;
}

/** Lookups per nanosecond the way the C baseline loops: one indirect call per lookup. */
function nsPerLookup(lookup, map, ids, iterations) {
  let sink = 0;
  for (let i = 0; i < iterations / 10; i++) sink ^= lookup(map, ids[i & 4095]);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) sink ^= lookup(map, ids[i & 4095]);
  const t1 = process.hrtime.bigint();
  if (sink === 0.5) console.log(sink);
  return Number(t1 - t0) / iterations;
}

export async function run({ compileC, median, root }) {
  const m = await import(join(root, "dist", "model", "index.js"));
  const rows = [];
  // Maps of N extents of 1000 ids with gaps, written in reverse order.
  const makeMap = (n) =>
    m.IdMap.of(...Array.from({ length: n }, (_, i) => [(n - 1 - i) * 2000, 100000 + (n - 1 - i) * 3000, 1000]));
  const lookupC = existsSync(join(root, "scripts/bench/lookup.c")) ? compileC("lookup") : null;
  for (const n of [5, 340]) {
    const map = makeMap(n);
    const span = n * 2000;
    // Same id sequence as the C program: a linear congruential walk over the upper range.
    const ids = new Uint32Array(4096);
    let x = 12345;
    for (let i = 0; i < ids.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      ids[i] = x % span;
    }
    const ours = median([0, 1, 2, 3, 4].map(() => nsPerLookup(m.mapIdDown, map, ids, 5_000_000)));
    let base = null;
    if (lookupC) {
      base = median(
        [0, 1, 2, 3, 4].map(() => Number(execFileSync(lookupC, [String(n), "20000000"], { encoding: "utf8" }).trim())),
      );
    }
    rows.push({
      name: `id lookup (map_id_down), ${n} extents`,
      ours: `${ours.toFixed(1)} ns`,
      base: base === null ? "(no C baseline)" : `${base.toFixed(1)} ns (C)`,
      ratio: base === null ? "" : `${(ours / base).toFixed(2)}×`,
      goal: "≤ 3×",
    });
  }
  if (typeof m.validateMapRequest === "function") {
    // Short numbers, so that 340 lines fit in the kernel's 4095-byte limit.
    const text = Array.from({ length: 340 }, (_, i) => `${i * 3} ${i * 3 + 1000} 2`).join("\n");
    const args = { kind: "uid", map: text, parentMap: m.IdMap.IDENTITY, writer: "privileged", euid: 0, egid: 0 };
    const check = m.validateMapRequest(args);
    if (!check.ok || check.map.size !== 340) throw new Error(`bench input refused: ${JSON.stringify(check)}`);
    const us = median([0, 1, 2, 3, 4].map(() => nsPerOp(() => (m.validateMapRequest(args).ok ? 1 : 0), 2000) / 1000));
    rows.push({
      name: "parse + validate a 340-extent map",
      ours: `${us.toFixed(1)} µs`,
      base: "50 µs (goal)",
      ratio: `${(us / 50).toFixed(2)}× of goal`,
      goal: "< 50 µs",
    });
  }
  return rows;
}
