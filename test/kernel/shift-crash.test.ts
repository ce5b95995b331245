/**
 * Crash safety of the ownership shift: a shift killed with SIGKILL at a
 * random moment (fixed, printed seed) is then resumed or rolled back (in
 * turn), and
 * the tree must be entirely in one state: equal, by the differential test's
 * comparison (find, getfacl -n, getcap -n), to the original (rolled back) or
 * to the original seen through an idmapped mount with the map (resumed).
 */
import { afterEach, beforeEach, expect, it } from "vitest";
import { describeKernel } from "../helpers/kernel.js";
import { hostMountinfo, inPrivateMountNs } from "../helpers/mountns.js";
import { bigTreeSpec, mapText, TREE_JS } from "../helpers/shift-trees.js";

const SEED = 14014;
// Under the sanitizer job (every child with the ASan runtime), the same check on fewer runs.
const SAN = process.env.USERNS_EXPECT_SANITIZER === "1";
const RUNS = SAN ? 12 : 100;
const INODES = 800;

let before = "";
beforeEach(() => {
  before = hostMountinfo();
});
afterEach(() => {
  expect(hostMountinfo()).toBe(before);
});

interface CrashOutcome {
  runs: number;
  shiftMs: number;
  states: Record<string, number>;
  recoveries: Record<string, number>;
  failures: { run: number; delayMs: number; state: string; action: string; diff: string[] }[];
}

describeKernel("ownership shift: kill -9 at random points", () => {
  it(`${RUNS} killed shifts of a ${INODES}-inode tree all end entirely shifted or entirely unshifted (seed ${SEED})`, () => {
    console.log(`shift crash test: seed ${SEED}, ${RUNS} runs, ${INODES} inodes`);
    const spec = bigTreeSpec(SEED, INODES);
    const r = inPrivateMountNs<CrashOutcome>(
      `${TREE_JS}
const { spawn } = await import("node:child_process");
const S = await import(LIB + "/shift/index.js");
const { idmapMount } = await import(LIB + "/mounts/idmap-mount.js");
const spec = ${JSON.stringify(spec)};
const uidMap = ${JSON.stringify(mapText(spec.uidMap))}, gidMap = ${JSON.stringify(mapText(spec.gidMap))};
let seed = ${SEED};
const rand = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
const ws = TMP + "/ws";
fs.mkdirSync(ws);
execFileSync("mount", ["-t", "tmpfs", "-o", "mode=0755", "shiftcrash", ws]);
const orig = ws + "/orig";
buildTree(orig, spec);
fs.mkdirSync(ws + "/view");
const m = idmapMount(orig, { uidMap, gidMap, recursive: true });
m.attach(ws + "/view");
m.close();
const expectBefore = viewOf(orig);
const expectAfter = viewOf(ws + "/view");
const child = TMP + "/shift-child.mjs";
fs.writeFileSync(child, 'const S = await import(' + JSON.stringify(LIB + "/shift/index.js") + ');\\n' +
  // The addon is loaded before "go", so the kill delays spread over the shift itself.
  'S.shiftMarker(process.argv[2]);\\n' +
  'const t0 = performance.now(); process.stdout.write("go\\\\n");\\n' +
  'S.shiftOwnership(process.argv[2], { uidMap: ' + JSON.stringify(uidMap) + ', gidMap: ' + JSON.stringify(gidMap) + ', force: 65534 });\\n' +
  'process.stdout.write("done " + (performance.now() - t0) + "\\\\n");\\n');
// Runs the shift in a child; kills it delayMs after it says "go" (never, for undefined).
function runChild(dir, delayMs) {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [child, dir], { stdio: ["ignore", "pipe", "pipe"] });
    let outText = "", errText = "";
    c.stdout.on("data", (d) => {
      outText += d;
      if (delayMs !== undefined && outText.startsWith("go\\n") && !c.timer) c.timer = setTimeout(() => c.kill("SIGKILL"), delayMs);
    });
    c.stderr.on("data", (d) => (errText += d));
    c.on("exit", (code, signal) => { clearTimeout(c.timer); resolve({ code, signal, out: outText, err: errText }); });
  });
}
// Calibration: how long an uninterrupted shift takes here (median of 3).
const cals = [];
for (let k = 0; k < 3; k++) {
  execFileSync("cp", ["-a", orig, ws + "/cal"]);
  const cal = await runChild(ws + "/cal", undefined);
  if (cal.code !== 0) throw new Error("calibration shift failed: " + cal.err);
  cals.push(Number(/done ([\\d.]+)/.exec(cal.out)[1]));
  if (diffViews(expectAfter, viewOf(ws + "/cal")).length) throw new Error("the uninterrupted shift differs from the idmapped view");
  fs.rmSync(ws + "/cal", { recursive: true });
}
const shiftMs = cals.sort((a, b) => a - b)[1];
const res = { runs: 0, shiftMs, states: {}, recoveries: {}, failures: [] };
const count = (o, k) => (o[k] = (o[k] ?? 0) + 1);
let journalRuns = 0;
for (let run = 0; run < ${RUNS}; run++) {
  const dir = ws + "/victim";
  execFileSync("cp", ["-a", orig, dir]);
  const delayMs = rand() * shiftMs * 1.1;
  const c = await runChild(dir, delayMs);
  // What the kill left: classify by the journal and by comparing with both end states.
  const hasJournal = fs.existsSync(dir + "/" + S.JOURNAL_NAME);
  const hasTmp = fs.existsSync(dir + "/" + S.JOURNAL_NAME + ".tmp");
  const marker = S.shiftMarker(dir) !== undefined;
  const rawView = hasJournal ? viewOf(dir) : undefined;
  const eqBefore = rawView !== undefined && diffViews(expectBefore, rawView).length === 0;
  const eqAfter = rawView !== undefined && diffViews(expectAfter, rawView).length === 0;
  const state = c.signal !== "SIGKILL" ? "completed before the kill" : hasJournal ? (eqBefore ? "journal, nothing applied yet" : eqAfter ? "journal, all applied" : "journal, half applied") : hasTmp ? "journal being written" : marker ? "done, journal removed" : "before the journal";
  count(res.states, state);
  let action = "none";
  let want;
  if (hasJournal) {
    // Alternately, so both ways are exercised.
    action = journalRuns++ % 2 === 0 ? "resume" : "rollback";
    const rep = action === "resume" ? S.resumeShift(dir) : S.rollbackShift(dir);
    want = action === "resume" ? expectAfter : expectBefore;
  } else {
    if (hasTmp) { S.rollbackShift(dir); action = "rollback (uncommitted journal)"; }
    want = S.shiftMarker(dir) !== undefined ? expectAfter : expectBefore;
  }
  count(res.recoveries, action);
  const fin = viewOf(dir);
  const d = diffViews(want, fin);
  const leftovers = fs.readdirSync(dir).filter((n) => n.startsWith(".userns-shift"));
  if (d.length || leftovers.length || fs.existsSync(dir + "/" + S.JOURNAL_NAME)) {
    res.failures.push({ run, delayMs, state, action, diff: [...d.slice(0, 10), ...leftovers.map((l) => "left over: " + l)] });
  }
  fs.rmSync(dir, { recursive: true });
  res.runs++;
}
out(res);
`,
      900_000,
    );
    console.log(
      `shift crash test: uninterrupted shift ${r.shiftMs.toFixed(1)} ms; states at the kill ${JSON.stringify(r.states)}; recoveries ${JSON.stringify(r.recoveries)}; ${r.failures.length} failures`,
    );
    for (const f of r.failures.slice(0, 5)) console.log(JSON.stringify(f));
    expect(r.failures).toEqual([]);
    expect(r.runs).toBe(RUNS);
    // The kills reach the window that matters: a tree left half shifted, then repaired both ways.
    if (!SAN) {
      expect(r.states["journal, half applied"] ?? 0).toBeGreaterThanOrEqual(3);
      expect(r.recoveries.resume ?? 0).toBeGreaterThan(0);
      expect(r.recoveries.rollback ?? 0).toBeGreaterThan(0);
    }
  }, 900_000);
});
