/**
 * Generated trees for the ownership-shift tests: a fast-check arbitrary of
 * tree specs (a map, and inodes of every kind with owners inside and outside
 * it, set-id bits, ACLs, v2 and v3 capabilities), and the JavaScript the
 * private-mount-namespace scenarios use to build a spec on disk and to read
 * a tree's view with the independent tools (`find`, `getfacl`, `getcap`).
 */
import fc from "fast-check";

/** One extent: on-disk first, new first, count. */
export type Ext = [number, number, number];

export interface NodeSpec {
  type: "file" | "dir" | "symlink" | "hardlink" | "fifo" | "chr" | "blk";
  /** Index of the parent directory in `nodes` (-1: the root). */
  parent: number;
  uid: number;
  gid: number;
  mode: number;
  /** For hardlink: index of an earlier file. */
  target?: number;
  acl?: { tag: "user" | "group"; id: number; perm: number }[];
  dacl?: { tag: "user" | "group"; id: number; perm: number }[];
  cap?: { version: 2 | 3; rootid: number; effective: boolean; permitted: number };
}

export interface TreeSpec {
  uidMap: Ext[];
  gidMap: Ext[];
  root: { uid: number; gid: number; mode: number };
  nodes: NodeSpec[];
}

/** Non-overlapping extents: on-disk firsts below 20,000, new ids from 100,000 up, in shuffled order. */
const mapArb: fc.Arbitrary<Ext[]> = fc
  .array(
    fc.tuple(fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 0, max: 2000 }), fc.integer({ min: 0, max: 5000 })),
    {
      minLength: 1,
      maxLength: 3,
    },
  )
  .chain((parts) => {
    let first = 0;
    let lower = 100000;
    const exts: Ext[] = parts.map(([count, gap, lgap], i) => {
      first += i === 0 ? (gap % 2 === 0 ? 0 : gap) : gap + 1;
      lower += lgap;
      const e: Ext = [first, lower, count];
      first += count;
      lower += count;
      return e;
    });
    return fc.shuffledSubarray(exts, { minLength: exts.length, maxLength: exts.length });
  });

function isCovered(map: Ext[], id: number): boolean {
  return map.some(([f, , c]) => id >= f && id < f + c);
}

/**
 * Through an idmapped mount, root may not search a directory whose owner or
 * group the map does not cover unless "others" may (capabilities apply only
 * to inodes whose ids are mapped: privileged_wrt_inode_uidgid); such
 * directories get o+rx so that the view can be read at all.
 */
function readableMode(spec: { uid: number; gid: number; mode: number }, uidMap: Ext[], gidMap: Ext[]): number {
  return isCovered(uidMap, spec.uid) && isCovered(gidMap, spec.gid) ? spec.mode : spec.mode | 0o005;
}

function covered(map: Ext[]): fc.Arbitrary<number> {
  return fc.oneof(...map.map(([f, , c]) => fc.integer({ min: f, max: f + c - 1 })));
}

function anyId(map: Ext[]): fc.Arbitrary<number> {
  // Mostly inside the map, sometimes outside (a gap, past the end, or a high id).
  return fc.oneof(
    { weight: 4, arbitrary: covered(map) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 30000 }) },
    { weight: 1, arbitrary: fc.integer({ min: 200000, max: 4000000 }) },
  );
}

const TYPES = ["file", "file", "dir", "dir", "symlink", "hardlink", "fifo", "chr", "blk"] as const;

/** Tree specs: 1-30 inodes. ACL ids and capability root ids stay inside the map (see the README: outside it the mount shows ids no file can hold). */
export const treeArb: fc.Arbitrary<TreeSpec> = fc.tuple(mapArb, mapArb).chain(([uidMap, gidMap]) => {
  const uidCoversRoot = uidMap.some(([f, , c]) => f === 0 && c > 0);
  const aclArb = fc.uniqueArray(
    fc.oneof(
      fc.record({ tag: fc.constant("user" as const), id: covered(uidMap), perm: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ tag: fc.constant("group" as const), id: covered(gidMap), perm: fc.integer({ min: 0, max: 7 }) }),
    ),
    { maxLength: 4, selector: (e) => `${e.tag}:${e.id}` },
  );
  const capArb = fc.record({
    version: uidCoversRoot ? fc.constantFrom(2 as const, 3 as const) : fc.constant(3 as const),
    rootid: covered(uidMap),
    effective: fc.boolean(),
    permitted: fc.integer({ min: 1, max: 0x7fffffff }),
  });
  const nodeArb = fc.record({
    type: fc.constantFrom(...TYPES),
    parentPick: fc.nat(),
    uid: anyId(uidMap),
    gid: anyId(gidMap),
    mode: fc.oneof(
      fc.constantFrom(0o644, 0o755, 0o600, 0o4755, 0o2755, 0o6755, 0o2745, 0o1777, 0o4711),
      fc.integer({ min: 0, max: 0o7777 }),
    ),
    targetPick: fc.nat(),
    acl: fc.option(aclArb, { nil: undefined }),
    dacl: fc.option(aclArb, { nil: undefined }),
    cap: fc.option(capArb, { nil: undefined, freq: 3 }),
  });
  return fc
    .record({
      root: fc.record({ uid: anyId(uidMap), gid: anyId(gidMap), mode: fc.constantFrom(0o755, 0o700, 0o2775, 0o1777) }),
      raw: fc.array(nodeArb, { minLength: 1, maxLength: 30 }),
    })
    .map(({ root, raw }) => {
      const nodes: NodeSpec[] = [];
      const dirs: number[] = [-1];
      const files: number[] = [];
      for (const r of raw) {
        const parent = dirs[r.parentPick % dirs.length]!;
        let type: NodeSpec["type"] = r.type;
        if (type === "hardlink" && files.length === 0) type = "file";
        const mode = type === "dir" ? readableMode(r, uidMap, gidMap) : r.mode;
        const n: NodeSpec = { type, parent, uid: r.uid, gid: r.gid, mode };
        if (type === "hardlink") n.target = files[r.targetPick % files.length]!;
        if (type !== "symlink" && type !== "hardlink" && r.acl && r.acl.length > 0) n.acl = r.acl;
        if (type === "dir" && r.dacl && r.dacl.length > 0) n.dacl = r.dacl;
        if (type === "file" && r.cap) n.cap = r.cap;
        nodes.push(n);
        if (type === "dir") dirs.push(nodes.length - 1);
        if (type === "file") files.push(nodes.length - 1);
      }
      return { uidMap, gidMap, root: { ...root, mode: readableMode(root, uidMap, gidMap) }, nodes };
    });
});

/** uid_map text of extents. */
export function mapText(m: Ext[]): string {
  return m.map((e) => `${e.join(" ")}\n`).join("");
}

/**
 * JavaScript for a scenario body (after `LIB` is defined): `buildTree(dir,
 * spec)` makes the spec on disk (as root), `viewOf(dir)` reads what the
 * independent tools show: `find` (type, owner, group, mode), `getfacl -n`,
 * `getcap -n` (root ids), each normalised to sorted per-path lines.
 */
export const TREE_JS = `
const fs = await import("node:fs");
const { execFileSync } = await import("node:child_process");
const { shiftNative } = await import(LIB + "/kernel/shift.js");
const FX = await import(LIB + "/model/fsxattr.js");
const XN = shiftNative();
const TAG = { user: FX.ACL_TAG.USER, group: FX.ACL_TAG.GROUP };
function aclBytes(entries, mode) {
  const base = [
    { tag: FX.ACL_TAG.USER_OBJ, perm: (mode >> 6) & 7, id: FX.ACL_UNDEFINED_ID },
    ...entries.filter((e) => e.tag === "user").sort((a, b) => a.id - b.id).map((e) => ({ tag: TAG.user, perm: e.perm, id: e.id })),
    { tag: FX.ACL_TAG.GROUP_OBJ, perm: (mode >> 3) & 7, id: FX.ACL_UNDEFINED_ID },
    ...entries.filter((e) => e.tag === "group").sort((a, b) => a.id - b.id).map((e) => ({ tag: TAG.group, perm: e.perm, id: e.id })),
    { tag: FX.ACL_TAG.MASK, perm: 7, id: FX.ACL_UNDEFINED_ID },
    { tag: FX.ACL_TAG.OTHER, perm: mode & 7, id: FX.ACL_UNDEFINED_ID },
  ];
  return Buffer.from(FX.encodeAcl(base));
}
function pathOf(spec, i) {
  const parts = [];
  for (let j = i; j >= 0; j = spec.nodes[j].parent) parts.push("n" + j);
  return parts.reverse().join("/");
}
function buildTree(dir, spec) {
  fs.mkdirSync(dir);
  const sh = [];
  spec.nodes.forEach((n, i) => {
    const p = dir + "/" + pathOf(spec, i);
    if (n.type === "file") fs.writeFileSync(p, "x" + i);
    else if (n.type === "dir") fs.mkdirSync(p);
    else if (n.type === "symlink") fs.symlinkSync(i % 2 ? "/etc/passwd" : "n0", p);
    else if (n.type === "hardlink") fs.linkSync(dir + "/" + pathOf(spec, n.target), p);
    else if (n.type === "fifo") sh.push("mkfifo " + JSON.stringify(p));
    else sh.push("mknod " + JSON.stringify(p) + (n.type === "chr" ? " c 1 3" : " b 7 " + (i % 8)));
  });
  if (sh.length > 0) execFileSync("sh", ["-ec", sh.join("\\n")]);
  const own = (p, n, isLink) => {
    if (isLink) fs.lchownSync(p, n.uid, n.gid);
    else { fs.chownSync(p, n.uid, n.gid); fs.chmodSync(p, n.mode); }
  };
  own(dir, spec.root, false);
  spec.nodes.forEach((n, i) => {
    const p = dir + "/" + pathOf(spec, i);
    if (n.type === "hardlink") return;
    own(p, n, n.type === "symlink");
    if (n.acl) XN.xattrSet(p, "system.posix_acl_access", aclBytes(n.acl, n.mode));
    if (n.dacl) XN.xattrSet(p, "system.posix_acl_default", aclBytes(n.dacl, 0o750));
    if (n.cap) {
      const c = { version: n.cap.version, effective: n.cap.effective, data: [n.cap.permitted, 0, 0, 0], rootid: n.cap.rootid };
      XN.xattrSet(p, "security.capability", Buffer.from(FX.encodeCaps(c)));
    }
  });
}
function sortedBlocks(text, start) {
  const blocks = [];
  let cur = [];
  for (const line of text.split("\\n")) {
    if (line.startsWith(start) && cur.length) { blocks.push(cur.join("\\n")); cur = []; }
    if (line !== "") cur.push(line);
  }
  if (cur.length) blocks.push(cur.join("\\n"));
  return blocks.sort();
}
function viewOf(dir) {
  const run = (cmd, args) => execFileSync(cmd, args, { cwd: dir, encoding: "utf8", maxBuffer: 1 << 28 });
  const stat = run("find", [".", "-printf", "%p %y %U %G %#m\\\\n"]).split("\\n").filter(Boolean).sort();
  const acl = sortedBlocks(run("getfacl", ["-R", "-P", "-n", "."]), "# file:");
  const cap = run("getcap", ["-n", "-r", "."]).split("\\n").filter(Boolean).sort();
  return { stat, acl, cap };
}
function diffViews(a, b) {
  const out = [];
  for (const k of ["stat", "acl", "cap"]) {
    const sa = new Set(a[k]);
    const sb = new Set(b[k]);
    for (const x of a[k]) if (!sb.has(x)) out.push(k + " only in expected: " + x);
    for (const x of b[k]) if (!sa.has(x)) out.push(k + " only in shifted: " + x);
  }
  return out;
}
`;

/** mulberry32: a small seeded PRNG for the large fixed trees (crash test, benchmark). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A larger tree for one map (`0 100000 65536` split in two extents): `n`
 * inodes, ~8% owners outside the map, ~5% with ACLs, ~3% with capabilities,
 * set-id bits, symlinks, hard links and a few fifos.
 */
export function bigTreeSpec(seed: number, n: number): TreeSpec {
  const r = prng(seed);
  const uidMap: Ext[] = [
    [0, 100000, 1000],
    [1000, 201000, 64536],
  ];
  const gidMap: Ext[] = [[0, 300000, 65536]];
  const pick = (k: number) => Math.floor(r() * k);
  const id = () => (r() < 0.08 ? 70000 + pick(1000) : pick(3000));
  const nodes: NodeSpec[] = [];
  const dirs = [-1];
  const files: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = r();
    const type: NodeSpec["type"] =
      x < 0.15 ? "dir" : x < 0.2 ? "symlink" : x < 0.23 && files.length ? "hardlink" : x < 0.235 ? "fifo" : "file";
    const uid = id();
    const gid = id();
    const mode = type === "dir" ? 0o755 : r() < 0.05 ? 0o4755 : r() < 0.05 ? 0o2755 : 0o644;
    const node: NodeSpec = { type, parent: dirs[pick(dirs.length)]!, uid, gid, mode };
    if (type === "hardlink") node.target = files[pick(files.length)]!;
    if ((type === "file" || type === "dir") && r() < 0.05) node.acl = [{ tag: "user", id: pick(3000), perm: 5 }];
    if (type === "dir" && r() < 0.05) node.dacl = [{ tag: "group", id: pick(3000), perm: 7 }];
    if (type === "file" && r() < 0.03) {
      node.cap = { version: r() < 0.5 ? 2 : 3, rootid: pick(2000), effective: r() < 0.5, permitted: 1 << pick(30) };
    }
    nodes.push(node);
    if (type === "dir") dirs.push(i);
    if (type === "file") files.push(i);
  }
  return { uidMap, gidMap, root: { uid: 0, gid: 0, mode: 0o755 }, nodes };
}
