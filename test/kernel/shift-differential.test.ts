/**
 * The proof of the ownership shift: on a filesystem that supports both, a
 * shifted copy of a tree must look, file by file, exactly like the original
 * seen through an idmapped mount with the same map: owner, group and mode
 * (`find`), every ACL entry (`getfacl -n`) and the capability with its root
 * id (`getcap -n`). Generated trees (fixed, printed seed), on tmpfs and on
 * ext4 (a loop image), in a private mount namespace.
 */
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import fc from "fast-check";
import { afterEach, beforeEach, expect, it } from "vitest";
import { describeKernel } from "../helpers/kernel.js";
import { hostMountinfo, inPrivateMountNs } from "../helpers/mountns.js";
import { mapText, TREE_JS, type TreeSpec, treeArb } from "../helpers/shift-trees.js";

const SEED = 20261206;
// Under the sanitizer job every child (find, getfacl, getcap) runs with the ASan runtime
// preloaded: the same checks on fewer trees there; the full count everywhere else.
const SAN = process.env.USERNS_EXPECT_SANITIZER === "1";
const TMPFS_TREES = SAN ? 20 : 220;
const EXT4_TREES = SAN ? 5 : 30;

let before = "";
beforeEach(() => {
  before = hostMountinfo();
});
afterEach(() => {
  expect(hostMountinfo()).toBe(before);
});

interface Outcome {
  trees: number;
  inodes: number;
  acls: number;
  caps: number;
  forced: number;
  rawDiffers: number;
  capLines: string[];
  differences: { tree: number; diff: string[]; spec: TreeSpec }[];
  errors: { tree: number; error: string; spec: TreeSpec }[];
}

/** Runs the comparison for `specs` on a filesystem mounted at ws by `mountCmd`. */
function differential(specs: TreeSpec[], mountJs: string): Outcome {
  return inPrivateMountNs<Outcome>(
    `${TREE_JS}
const { shiftOwnership } = await import(LIB + "/shift/index.js");
const { idmapMount } = await import(LIB + "/mounts/idmap-mount.js");
const specs = ${JSON.stringify(specs)};
const maps = ${JSON.stringify(specs.map((s) => [mapText(s.uidMap), mapText(s.gidMap)]))};
const ws = TMP + "/ws";
fs.mkdirSync(ws);
${mountJs}
const res = { trees: 0, inodes: 0, acls: 0, caps: 0, forced: 0, rawDiffers: 0, capLines: [], differences: [], errors: [] };
for (let t = 0; t < specs.length; t++) {
  const orig = ws + "/o" + t, copy = ws + "/c" + t, view = ws + "/v" + t;
  try {
    buildTree(orig, specs[t]);
    buildTree(copy, specs[t]);
    fs.mkdirSync(view);
    const m = idmapMount(orig, { uidMap: maps[t][0], gidMap: maps[t][1], recursive: true });
    m.attach(view);
    m.close();
    // Owners outside the map show as overflowuid/gid (65534) through the mount: --force 65534 stores the same.
    const r = shiftOwnership(copy, { uidMap: maps[t][0], gidMap: maps[t][1], force: 65534 });
    res.inodes += r.inodes; res.acls += r.acls; res.caps += r.caps; res.forced += r.forced;
    const seen = viewOf(view);
    // The comparison can fail: the unshifted original differs from its idmapped view.
    if (diffViews(viewOf(orig), seen).length > 0) res.rawDiffers++;
    if (res.capLines.length < 3) res.capLines.push(...seen.cap.filter((l) => l.includes("rootid")).slice(0, 1));
    const d = diffViews(seen, viewOf(copy));
    if (d.length) res.differences.push({ tree: t, diff: d.slice(0, 20), spec: specs[t] });
    execFileSync("umount", [view]);
    fs.rmSync(orig, { recursive: true }); fs.rmSync(copy, { recursive: true });
  } catch (e) {
    res.errors.push({ tree: t, error: String(e && e.stack || e), spec: specs[t] });
  }
  res.trees++;
}
out(res);
`,
    600_000,
  );
}

function report(name: string, r: Outcome, seed: number): void {
  console.log(
    `${name}: ${r.trees} trees, ${r.inodes} inodes, ${r.acls} ACLs, ${r.caps} capabilities, ${r.forced} owners outside the map, ${r.differences.length} trees with differences, ${r.errors.length} errors (seed ${seed}); e.g. ${r.capLines[0] ?? "-"}`,
  );
  for (const d of r.differences.slice(0, 3)) console.log(JSON.stringify(d));
  for (const e of r.errors.slice(0, 3)) console.log(JSON.stringify(e));
}

describeKernel("ownership shift against the idmapped view", () => {
  it(`tmpfs: ${TMPFS_TREES} generated trees, 0 differences (seed ${SEED})`, () => {
    console.log(`shift differential: fast-check seed ${SEED}`);
    const specs = fc.sample(treeArb, { numRuns: TMPFS_TREES, seed: SEED });
    const r = differential(specs, `execFileSync("mount", ["-t", "tmpfs", "-o", "mode=0755", "shiftdiff", ws]);`);
    report("tmpfs", r, SEED);
    expect(r.errors).toEqual([]);
    expect(r.differences).toEqual([]);
    expect(r.trees).toBe(TMPFS_TREES);
    // The generator reaches what the issue lists.
    expect(r.acls).toBeGreaterThan(SAN ? 10 : 100);
    expect(r.caps).toBeGreaterThan(SAN ? 3 : 30);
    expect(r.forced).toBeGreaterThan(SAN ? 5 : 50);
    expect(r.rawDiffers).toBe(TMPFS_TREES);
    // getcap -n shows v3 root ids, so they are compared too.
    expect(r.capLines.length).toBeGreaterThan(0);
  }, 600_000);

  it(`ext4 on a loop image: ${EXT4_TREES} generated trees, 0 differences (seed ${SEED + 1})`, () => {
    const img = execFileSync("mktemp", [`${process.env.TMPDIR ?? "/tmp"}/userns-shift-ext4-XXXXXX.img`], {
      encoding: "utf8",
    }).trim();
    try {
      execFileSync("truncate", ["-s", "64M", img]);
      execFileSync("mkfs.ext4", ["-q", "-F", img], { stdio: "pipe" });
      const specs = fc.sample(treeArb, { numRuns: EXT4_TREES, seed: SEED + 1 });
      const r = differential(specs, `execFileSync("mount", ["-o", "loop", ${JSON.stringify(img)}, ws]);`);
      report("ext4", r, SEED + 1);
      expect(r.errors).toEqual([]);
      expect(r.differences).toEqual([]);
      expect(r.trees).toBe(EXT4_TREES);
      expect(r.rawDiffers).toBe(EXT4_TREES);
    } finally {
      rmSync(img, { force: true });
    }
  }, 600_000);
});
