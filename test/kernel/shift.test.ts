/**
 * Ownership shift on the real kernel: refusals (each names the path and
 * leaves the tree exactly as it was), the double-shift guard, reverse,
 * mount boundaries, what the kernel stores for a capability written by
 * root, the choice between an idmapped mount and a shift, and the CLI.
 * Scenarios run in private mount namespaces.
 */
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { afterEach, beforeEach, expect, it } from "vitest";
import { describeKernel } from "../helpers/kernel.js";
import { hostMountinfo, inPrivateMountNs } from "../helpers/mountns.js";
import { TREE_JS } from "../helpers/shift-trees.js";

let before = "";
beforeEach(() => {
  before = hostMountinfo();
});
afterEach(() => {
  expect(hostMountinfo()).toBe(before);
});

const PRELUDE = `${TREE_JS}
const S = await import(LIB + "/shift/index.js");
const ws = TMP + "/ws";
fs.mkdirSync(ws);
execFileSync("mount", ["-t", "tmpfs", "-o", "mode=0755", "shifttest", ws]);
const err = (f) => { try { f(); return { ok: true }; } catch (e) { return { ok: false, code: e.code, path: e.path, syscall: e.syscall, message: e.message }; } };
const small = (dir) => {
  buildTree(dir, { uidMap: [], gidMap: [], root: { uid: 0, gid: 0, mode: 0o755 }, nodes: [
    { type: "dir", parent: -1, uid: 1, gid: 1, mode: 0o755 },
    { type: "file", parent: 0, uid: 2, gid: 2, mode: 0o4755, cap: { version: 2, rootid: 0, effective: true, permitted: 8192 } },
    { type: "file", parent: -1, uid: 70000, gid: 3, mode: 0o644, acl: [{ tag: "user", id: 9, perm: 6 }] },
    { type: "symlink", parent: 0, uid: 4, gid: 4, mode: 0o777 },
  ] });
};
const same = (a, b) => diffViews(a, b).length === 0;
const leftovers = (dir) => fs.readdirSync(dir).filter((n) => n.startsWith(".userns-shift"));
`;

describeKernel("ownership shift: refusals, guards and directions", () => {
  it("bad input: not a directory, a map that does not cover the tree, an immutable inode, a bad map; each names the path and changes nothing", () => {
    const r = inPrivateMountNs<Record<string, unknown>>(`${PRELUDE}
const t = ws + "/t";
small(t);
const v0 = viewOf(t);
fs.writeFileSync(ws + "/file", "");
fs.symlinkSync(t, ws + "/link");
const notDir = err(() => S.shiftOwnership(ws + "/file", { uidMap: "0 100000 65536" }));
const viaLink = err(() => S.shiftOwnership(ws + "/link", { uidMap: "0 100000 65536" }));
const missing = err(() => S.shiftOwnership(ws + "/none", { uidMap: "0 100000 65536" }));
const uncovered = err(() => S.shiftOwnership(t, { uidMap: "0 100000 65536" }));
const unchanged1 = same(v0, viewOf(t)) && leftovers(t).length === 0;
const overlap = err(() => S.shiftOwnership(t, { uidMap: "0 100000 10\\n5 200000 10" }));
const empty = err(() => S.shiftOwnership(t, { uidMap: "" }));
// An immutable inode (chattr +i) cannot be changed: refused before the first change.
execFileSync("chattr", ["+i", t + "/n0/n1"]);
const immutable = err(() => S.shiftOwnership(t, { uidMap: "0 100000 100000" }));
execFileSync("chattr", ["-i", t + "/n0/n1"]);
const unchanged2 = same(v0, viewOf(t)) && leftovers(t).length === 0;
out({ notDir, viaLink, missing, uncovered, unchanged1, overlap, empty, immutable, unchanged2, t });
`);
    const t = r.t as string;
    expect(r.notDir).toMatchObject({ ok: false, code: "ENOTDIR", syscall: "lstat" });
    expect((r.notDir as { path: string }).path).toMatch(/\/ws\/file$/);
    expect(r.viaLink).toMatchObject({ ok: false, code: "ENOTDIR" });
    expect((r.viaLink as { message: string }).message).toContain("symlink");
    expect(r.missing).toMatchObject({ ok: false, code: "ENOENT" });
    // uid 70000 (owner of n2) and the group ids are covered by nothing in 0 100000 65536? 70000 is not.
    expect(r.uncovered).toMatchObject({ ok: false, code: "ERR_USERNS_SHIFT_UNMAPPED", path: `${t}/n2` });
    expect((r.uncovered as { message: string }).message).toContain("owner 70000 (1 inode: n2)");
    expect(r.unchanged1).toBe(true);
    expect(r.overlap).toMatchObject({ ok: false, code: "ERR_USERNS_USAGE" });
    expect((r.overlap as { message: string }).message).toContain("mappings_overlap");
    expect(r.empty).toMatchObject({ ok: false, code: "ERR_USERNS_USAGE" });
    expect(r.immutable).toMatchObject({ ok: false, code: "EPERM", path: `${t}/n0/n1` });
    expect((r.immutable as { message: string }).message).toContain("immutable");
    expect(r.unchanged2).toBe(true);
  }, 300_000);

  it("malformed capability and ACL xattrs on disk (ext4 edited offline with debugfs): refused with the paths, nothing changed", () => {
    const img = execFileSync("mktemp", [`${process.env.TMPDIR ?? "/tmp"}/userns-shift-bad-XXXXXX.img`], {
      encoding: "utf8",
    }).trim();
    try {
      execFileSync("truncate", ["-s", "16M", img]);
      execFileSync("mkfs.ext4", ["-q", "-F", img], { stdio: "pipe" });
      const r = inPrivateMountNs<Record<string, unknown>>(`${PRELUDE}
const mnt = ws + "/x";
fs.mkdirSync(mnt);
execFileSync("mount", ["-o", "loop", ${JSON.stringify(img)}, mnt]);
fs.mkdirSync(mnt + "/t");
fs.writeFileSync(mnt + "/t/good", "");
fs.writeFileSync(mnt + "/t/badcap", "");
fs.writeFileSync(mnt + "/t/badacl", "");
execFileSync("umount", [mnt]);
// 10 bytes of "capability": neither v2 nor v3. The kernel refuses to write it, so it is written offline.
fs.writeFileSync(TMP + "/bad", Buffer.from([0, 0, 0, 2, 1, 2, 3, 4, 5, 6]));
execFileSync("debugfs", ["-w", "-R", "ea_set -f " + TMP + "/bad /t/badcap security.capability", ${JSON.stringify(img)}], { stdio: "pipe" });
// An ACL cut short after its first entry's perm, stored raw (-r: debugfs would otherwise convert and check it).
fs.writeFileSync(TMP + "/badacl", Buffer.from([2, 0, 0, 0, 1, 0, 7]));
execFileSync("debugfs", ["-w", "-R", "ea_set -r -f " + TMP + "/badacl /t/badacl system.posix_acl_access", ${JSON.stringify(img)}], { stdio: "pipe" });
execFileSync("mount", ["-o", "loop", ${JSON.stringify(img)}, mnt]);
// getfacl itself stops at the bad ACL: compare owners and modes with find.
const statView = (d) => execFileSync("find", [d, "-printf", "%p %U %G %#m\\n"], { encoding: "utf8" });
const v0 = statView(mnt + "/t");
const readBack = err(() => XN.xattrGet(mnt + "/t/badcap", "security.capability"));
const readBackAcl = err(() => XN.xattrGet(mnt + "/t/badacl", "system.posix_acl_access"));
const bad = err(() => S.shiftOwnership(mnt + "/t", { uidMap: "0 100000 65536" }));
const unchanged = v0 === statView(mnt + "/t") && leftovers(mnt + "/t").length === 0;
execFileSync("umount", [mnt]);
out({ readBack, readBackAcl, bad, unchanged, mnt });
`);
      // The kernel itself will not read it (cap_inode_getsecurity: EINVAL) ...
      expect(r.readBack).toMatchObject({ ok: false, code: "EINVAL" });
      expect(r.readBackAcl).toMatchObject({ ok: false, code: "EINVAL" });
      // ... and the shift names it and changes nothing.
      expect(r.bad).toMatchObject({ ok: false, code: "ERR_USERNS_SHIFT_XATTR" });
      expect((r.bad as { message: string }).message).toContain("2 malformed xattrs");
      expect((r.bad as { message: string }).message).toContain("badcap: security.capability");
      expect((r.bad as { message: string }).message).toContain("badacl: system.posix_acl_access");
      expect([`${r.mnt}/t/badcap`, `${r.mnt}/t/badacl`]).toContain((r.bad as { path: string }).path);
      expect(r.unchanged).toBe(true);
    } finally {
      rmSync(img, { force: true });
    }
  }, 300_000);

  it("an inode the process may not change (unprivileged caller): refused before the first change", () => {
    const user = process.env.USERNS_TEST_USER ?? "usernstest";
    const uid = Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", user], { encoding: "utf8" }).trim());
    const r = inPrivateMountNs<Record<string, unknown>>(`${PRELUDE}
const { spawnSync } = await import("node:child_process");
const t = ws + "/t";
fs.mkdirSync(t); fs.chownSync(t, ${uid}, ${gid});
fs.writeFileSync(t + "/mine", ""); fs.chownSync(t + "/mine", ${uid}, ${gid}); fs.chmodSync(t + "/mine", 0o4755);
fs.writeFileSync(t + "/other", ""); fs.chownSync(t + "/other", ${uid}, 7);
const v0 = viewOf(t);
// Its own ids stay; group 7 -> 5000 is a change only CAP_CHOWN may make.
const code = "const S = await import(" + JSON.stringify(LIB + "/shift/index.js") + ");" +
  "try { S.shiftOwnership(process.argv[1], { uidMap: '${uid} ${uid} 1', gidMap: '${gid} ${gid} 1\\\\n7 5000 1' }); console.log(JSON.stringify({ ok: true })); }" +
  "catch (e) { console.log(JSON.stringify({ ok: false, code: e.code, path: e.path, message: e.message })); }";
const c = spawnSync(process.execPath, ["--input-type=module", "-e", code, t], { uid: ${uid}, gid: ${gid}, encoding: "utf8", env: process.env, cwd: "/" });
const res = JSON.parse(c.stdout || "{}");
out({ res, stderr: c.stderr, unchanged: same(v0, viewOf(t)) && leftovers(t).length === 0, t });
`);
    expect(r.res).toMatchObject({ ok: false, code: "EPERM", path: `${r.t}/other` });
    expect((r.res as { message: string }).message).toContain("may not change 1 inode");
    expect(r.unchanged).toBe(true);
  }, 300_000);

  it("a second shift is refused; --reverse restores the tree exactly; an interrupted shift blocks new ones until resumed or rolled back", () => {
    const r = inPrivateMountNs<Record<string, unknown>>(`${PRELUDE}
const t = ws + "/t";
small(t);
const v0 = viewOf(t);
const first = S.shiftOwnership(t, { uidMap: "0 100000 65536", force: 65534 });
const v1 = viewOf(t);
const marker = S.shiftMarker(t);
const again = err(() => S.shiftOwnership(t, { uidMap: "0 100000 65536", force: 65534 }));
const otherReverse = err(() => S.shiftOwnership(t, { uidMap: "0 200000 65536", direction: "reverse" }));
const back = S.shiftOwnership(t, { uidMap: "0 100000 65536", force: 65534, direction: "reverse" });
const v2 = viewOf(t);
// The forced id (uid 70000 -> 65534) cannot come back: 65534 maps back to nothing... except it is in the map here.
const statusAfter = S.shiftStatus(t);
// A journal left behind blocks a new shift.
const t2 = ws + "/t2";
small(t2);
fs.writeFileSync(t2 + "/" + S.JOURNAL_NAME, "x");
const blocked = err(() => S.shiftOwnership(t2, { uidMap: "0 100000 100000" }));
const damaged = err(() => S.rollbackShift(t2));
const noJournal = err(() => S.resumeShift(t));
out({ first, v1diff: diffViews(v0, v1).length, marker, again, otherReverse, back, v2diff: diffViews(v0, v2), statusAfter, blocked, damaged, noJournal, t });
`);
    expect(r.first).toMatchObject({ outcome: "applied", inodes: 5, caps: 1, forced: 1 });
    expect(r.v1diff).toBeGreaterThan(0);
    expect(r.marker).toEqual({ uidMap: "0 100000 65536\n", gidMap: "0 100000 65536\n", force: 65534 });
    expect(r.again).toMatchObject({ ok: false, code: "ERR_USERNS_SHIFT_ALREADY" });
    expect(r.otherReverse).toMatchObject({ ok: false, code: "ERR_USERNS_SHIFT_ALREADY" });
    expect(r.back).toMatchObject({ outcome: "applied", direction: "reverse" });
    // Everything comes back except the owner --force replaced (70000 became 65534, which maps back to 65534 - 100000: not covered, so forced again).
    expect(r.v2diff).toEqual([
      "stat only in expected: ./n2 f 70000 3 0674",
      "stat only in shifted: ./n2 f 65534 3 0674",
      "acl only in expected: # file: n2\n# owner: 70000\n# group: 3\nuser::rw-\nuser:9:rw-\ngroup::r--\nmask::rwx\nother::r--",
      "acl only in shifted: # file: n2\n# owner: 65534\n# group: 3\nuser::rw-\nuser:9:rw-\ngroup::r--\nmask::rwx\nother::r--",
    ]);
    expect(r.statusAfter).toEqual({ interrupted: false });
    expect(r.blocked).toMatchObject({ ok: false, code: "ERR_USERNS_SHIFT_JOURNAL" });
    expect(r.damaged).toMatchObject({ ok: false, code: "ERR_USERNS_SHIFT_JOURNAL" });
    expect(r.noJournal).toMatchObject({ ok: false, code: "ERR_USERNS_SHIFT_NO_JOURNAL" });
  }, 300_000);

  it("on a filesystem without user xattrs (ramfs) the completed shift is recorded in a marker file, so a second shift is still refused", () => {
    const r = inPrivateMountNs<Record<string, unknown>>(`${PRELUDE}
const t = ws + "/ram";
fs.mkdirSync(t);
execFileSync("mount", ["-t", "ramfs", "-o", "mode=0755", "ramfs", t]);
// The kernel's answer first: ramfs has no xattr handlers, so a user xattr cannot be set.
const userXattr = err(() => XN.xattrSet(t, "user.probe", Buffer.from("x")));
fs.mkdirSync(t + "/d");
fs.writeFileSync(t + "/d/f", "");
fs.chownSync(t + "/d/f", 5, 6);
fs.chmodSync(t + "/d/f", 0o2755);
const first = S.shiftOwnership(t, { uidMap: "0 100000 65536" });
const owner1 = [fs.statSync(t + "/d/f").uid, fs.statSync(t + "/d/f").gid, fs.statSync(t + "/d/f").mode & 0o7777];
const file1 = fs.readFileSync(t + "/" + S.MARKER_FILE, "utf8");
const markerStat = fs.statSync(t + "/" + S.MARKER_FILE).uid;
const marker = S.shiftMarker(t);
const again = err(() => S.shiftOwnership(t, { uidMap: "0 100000 65536" }));
const owner2 = fs.statSync(t + "/d/f").uid;
const back = S.shiftOwnership(t, { uidMap: "0 100000 65536", direction: "reverse" });
const owner3 = [fs.statSync(t + "/d/f").uid, fs.statSync(t + "/d/f").gid, fs.statSync(t + "/d/f").mode & 0o7777];
const after = leftovers(t);
const markerAfter = S.shiftMarker(t) ?? null;
const third = S.shiftOwnership(t, { uidMap: "0 100000 65536" });
out({ userXattr, first, owner1, file1, markerStat, marker, again, owner2, back, owner3, after, markerAfter, third: third.outcome, left: leftovers(t) });
`);
    expect(r.userXattr).toMatchObject({ ok: false, code: "EOPNOTSUPP" });
    expect(r.first).toMatchObject({ outcome: "applied", inodes: 3 });
    expect(r.owner1).toEqual([100005, 100006, 0o2755]);
    expect(JSON.parse(r.file1 as string)).toEqual({
      uidMap: "0 100000 65536\n",
      gidMap: "0 100000 65536\n",
      force: null,
    });
    // The marker is not part of the tree: it keeps the owner it was created with.
    expect(r.markerStat).toBe(0);
    expect(r.marker).toEqual({ uidMap: "0 100000 65536\n", gidMap: "0 100000 65536\n", force: null });
    expect(r.again).toMatchObject({ ok: false, code: "ERR_USERNS_SHIFT_ALREADY" });
    expect(r.owner2).toBe(100005);
    expect(r.back).toMatchObject({ outcome: "applied", direction: "reverse", inodes: 3 });
    expect(r.owner3).toEqual([5, 6, 0o2755]);
    expect(r.after).toEqual([]);
    expect(r.markerAfter).toBe(null);
    expect(r.third).toBe("applied");
    expect(r.left).toEqual([".userns-shift.marker"]);
  }, 300_000);

  it("the kernel's answer for capabilities root writes (init namespace, no idmap): v2 stays v2, v3 keeps its root id, v3 with root id 0 reads back as v2", () => {
    const r = inPrivateMountNs<Record<string, string>>(`${PRELUDE}
const f = ws + "/f";
fs.writeFileSync(f, "");
const caps = (c) => { XN.xattrSet(f, "security.capability", Buffer.from(FX.encodeCaps(c))); return XN.xattrGet(f, "security.capability").toString("hex"); };
const data = [0x2000, 0, 0, 0];
out({
  v2: caps({ version: 2, effective: true, data }),
  v3: caps({ version: 3, effective: true, data, rootid: 100000 }),
  v3root0: caps({ version: 3, effective: false, data, rootid: 0 }),
  getcapV3: (caps({ version: 3, effective: true, data, rootid: 100000 }), execFileSync("getcap", ["-n", f], { encoding: "utf8" }).trim().replace(f, "F")),
});
`);
    expect(r.v2).toBe("0100000200200000000000000000000000000000");
    expect(r.v3).toBe("0100000300200000000000000000000000000000a0860100");
    expect(r.v3root0).toBe("0000000200200000000000000000000000000000");
    expect(r.getcapV3).toBe("F cap_net_raw=ep [rootid=100000]");
  }, 300_000);

  it("does not enter other mounts below the root unless asked, and lists them", () => {
    const r = inPrivateMountNs<Record<string, unknown>>(`${PRELUDE}
const t = ws + "/t";
fs.mkdirSync(t + "/sub", { recursive: true });
fs.writeFileSync(t + "/a", "");
execFileSync("mount", ["-t", "tmpfs", "inner", t + "/sub"]);
fs.writeFileSync(t + "/sub/b", "");
const rep = S.shiftOwnership(t, { uidMap: "0 100000 65536" });
out({ rep, a: fs.statSync(t + "/a").uid, sub: fs.statSync(t + "/sub").uid, b: fs.statSync(t + "/sub/b").uid });
`);
    expect(r.rep).toMatchObject({ skippedMounts: ["sub"], inodes: 2 });
    expect([r.a, r.sub, r.b]).toEqual([100000, 0, 0]);
  }, 300_000);

  it("showShifted: an idmapped mount on tmpfs, the on-disk shift on a filesystem that cannot be idmapped (ramfs), each with its reason", () => {
    const r = inPrivateMountNs<Record<string, unknown>>(`${PRELUDE}
const { showShifted } = S;
const a = ws + "/a"; fs.mkdirSync(a); fs.writeFileSync(a + "/f", "");
fs.mkdirSync(ws + "/view");
const v1 = showShifted(a, { uidMap: "0 100000 65536", target: ws + "/view" });
const seen = fs.statSync(ws + "/view/f").uid, onDisk = fs.statSync(a + "/f").uid;
v1.mount.close();
const b = ws + "/b"; fs.mkdirSync(b);
execFileSync("mount", ["-t", "ramfs", "ramfs", b]);
fs.writeFileSync(b + "/f", "");
const v2 = showShifted(b, { uidMap: "0 100000 65536" });
out({ m1: v1.method, r1: v1.reason, seen, onDisk, m2: v2.method, r2: v2.reason, disk2: fs.statSync(b + "/f").uid });
`);
    expect(r).toMatchObject({ m1: "idmapped-mount", seen: 100000, onDisk: 0, m2: "shift", disk2: 100000 });
    expect(r.r1).toContain("tmpfs supports idmapped mounts");
    expect(r.r2).toContain("ramfs");
  }, 300_000);

  it("showShifted over overlayfs: given layers become an overlay over idmapped lower layers (a ramfs layer and the upper shifted on disk); a mounted overlay gets a read-only overlay over idmapped copies of its layers", () => {
    const r = inPrivateMountNs<Record<string, unknown>>(`${PRELUDE}
const { showShifted } = S;
const mk = (d, files) => { fs.mkdirSync(d, { recursive: true }); for (const [n, u] of files) { fs.writeFileSync(d + "/" + n, ""); fs.chownSync(d + "/" + n, u, u); } };
const id = (p) => { const st = fs.lstatSync(p); return [st.uid, st.gid]; };
const maps = { uidMap: "0 100000 65536" };
// 1. Layers given: two tmpfs lowers, a ramfs lower (no idmapped mounts there), an upper with work.
mk(ws + "/l1", [["a", 0]]);
mk(ws + "/l2", [["b", 5], ["a", 9]]);
fs.mkdirSync(ws + "/l3");
execFileSync("mount", ["-t", "ramfs", "-o", "mode=0755", "ramfs", ws + "/l3"]);
mk(ws + "/l3", [["r", 3]]);
mk(ws + "/up", [["c", 7]]);
fs.mkdirSync(ws + "/wk");
fs.mkdirSync(ws + "/v");
const layers = { lower: [ws + "/l1", ws + "/l2", ws + "/l3"], upper: ws + "/up", work: ws + "/wk" };
const v1 = showShifted(layers, { ...maps, target: ws + "/v" });
const seen1 = { a: id(ws + "/v/a"), b: id(ws + "/v/b"), r: id(ws + "/v/r"), c: id(ws + "/v/c") };
const disk1 = { a: id(ws + "/l1/a"), b: id(ws + "/l2/b"), r: id(ws + "/l3/r"), c: id(ws + "/up/c") };
fs.writeFileSync(ws + "/v/new", "x");
const wrote = fs.readFileSync(ws + "/up/new", "utf8");
const opts1 = fs.readFileSync("/proc/self/mountinfo", "utf8").split("\\n").find((l) => l.includes(" " + ws + "/v "));
v1.mount.unmount();
// Again over the same layers: the upper and the ramfs layer are not shifted twice.
const v2 = showShifted(layers, { ...maps, target: ws + "/v" });
const seen2 = { a: id(ws + "/v/a"), r: id(ws + "/v/r"), c: id(ws + "/v/c") };
v2.mount.unmount();
// 2. A mounted overlay: its upper and work stay in use, so the view is read-only, all layers idmapped.
mk(ws + "/m1", [["x", 0]]);
mk(ws + "/mu", [["y", 7]]);
fs.mkdirSync(ws + "/mw"); fs.mkdirSync(ws + "/m"); fs.mkdirSync(ws + "/mv");
execFileSync("mount", ["-t", "overlay", "ov", "-o", "lowerdir=" + ws + "/m1,upperdir=" + ws + "/mu,workdir=" + ws + "/mw", ws + "/m"]);
const layersOf = S.overlayLayersOf(ws + "/m");
const v3 = showShifted(ws + "/m", { ...maps, target: ws + "/mv" });
const seen3 = { x: id(ws + "/mv/x"), y: id(ws + "/mv/y") };
const disk3 = { x: id(ws + "/m1/x"), y: id(ws + "/mu/y"), viaOverlay: id(ws + "/m/y") };
const write3 = err(() => fs.writeFileSync(ws + "/mv/z", ""));
v3.mount.unmount();
const notOverlay = S.overlayLayersOf(ws + "/l1");
// The kernel's answer for an idmapped upper layer mounted by root of the initial namespace: overlayfs cannot
// create its work directory there (uid 0 is outside the map: EOVERFLOW) and mounts read-only. Hence the upper is shifted on disk.
const { idmapMount } = await import(LIB + "/mounts/idmap-mount.js");
const NB = (await import(LIB + "/kernel/native.js")).native();
mk(ws + "/uw/u", [["k", 1]]); fs.mkdirSync(ws + "/uw/w"); fs.mkdirSync(ws + "/iv");
const low = idmapMount(ws + "/l1", { ...maps, gidMap: maps.uidMap, recursive: true });
const uw = idmapMount(ws + "/uw", { ...maps, gidMap: maps.uidMap, recursive: true });
const ctx = NB.fsopen("overlay");
NB.fsconfigString(ctx, "lowerdir", "/proc/self/fd/" + low.fd);
NB.fsconfigString(ctx, "upperdir", "/proc/self/fd/" + uw.fd + "/u");
NB.fsconfigString(ctx, "workdir", "/proc/self/fd/" + uw.fd + "/w");
NB.fsconfigCreate(ctx);
const ifd = NB.fsmount(ctx, 0);
NB.close(ctx); low.close(); uw.close();
NB.moveMount(ifd, "", -100, ws + "/iv", 4);
NB.close(ifd);
const idmappedUpperWrite = err(() => fs.writeFileSync(ws + "/iv/z", ""));
execFileSync("umount", [ws + "/iv"]);
out({
  m1: v1.method, r1: v1.reason, ro1: v1.readOnly, layers1: v1.layers.map((l) => [l.path.slice(ws.length), l.role, l.method]),
  seen1, disk1, wrote, opts1,
  layers2: v2.layers.map((l) => l.method), seen2,
  layersOf, m3: v3.method, r3: v3.reason, ro3: v3.readOnly, layers3: v3.layers.map((l) => [l.path.slice(ws.length), l.method]),
  seen3, disk3, write3, notOverlay, idmappedUpperWrite,
  mountsLeft: fs.readFileSync("/proc/self/mountinfo", "utf8").split("\\n").filter((l) => l.includes(ws + "/v ") || l.includes(ws + "/mv ")).length,
});
`);
    expect(r.m1).toBe("overlay-idmapped-layers");
    expect(r.r1).toContain("2 idmapped of 3 lower layers");
    expect(r.ro1).toBe(false);
    expect(r.layers1).toEqual([
      ["/up", "upper", "shifted"],
      ["/l1", "lower", "idmapped"],
      ["/l2", "lower", "idmapped"],
      ["/l3", "lower", "shifted"],
    ]);
    // Seen through the view: every owner shifted; "a" comes from the top layer l1.
    expect(r.seen1).toEqual({ a: [100000, 100000], b: [100005, 100005], r: [100003, 100003], c: [100007, 100007] });
    // On disk: the idmapped lowers unchanged, the ramfs lower and the upper rewritten.
    expect(r.disk1).toEqual({ a: [0, 0], b: [5, 5], r: [100003, 100003], c: [100007, 100007] });
    expect(r.wrote).toBe("x");
    expect(r.opts1).toContain("upperdir=");
    expect(r.layers2).toEqual(["already-shifted", "idmapped", "idmapped", "already-shifted"]);
    expect(r.seen2).toEqual({ a: [100000, 100000], r: [100003, 100003], c: [100007, 100007] });
    expect(r.layersOf).toMatchObject({
      lower: [expect.stringMatching(/\/m1$/)],
      upper: expect.stringMatching(/\/mu$/),
    });
    expect(r.m3).toBe("overlay-idmapped-layers");
    expect(r.r3).toContain("overlayfs cannot be idmapped itself");
    expect(r.r3).toContain("read-only");
    expect(r.ro3).toBe(true);
    expect(r.layers3).toEqual([
      ["/mu", "idmapped"],
      ["/m1", "idmapped"],
    ]);
    expect(r.seen3).toEqual({ x: [100000, 100000], y: [100007, 100007] });
    expect(r.disk3).toEqual({ x: [0, 0], y: [7, 7], viaOverlay: [7, 7] });
    expect(r.write3).toMatchObject({ ok: false, code: "EROFS" });
    expect(typeof r.notOverlay).toBe("string");
    expect(r.idmappedUpperWrite).toMatchObject({ ok: false, code: "EROFS" });
    expect(r.mountsLeft).toBe(0);
  }, 300_000);

  it("userns shift: the CLI shifts, refuses a second time (exit 1), shifts back, and rejects bad usage (exit 2)", () => {
    const r = inPrivateMountNs<Record<string, { status: number | null; stdout: string; stderr: string }>>(`${PRELUDE}
const { spawnSync } = await import("node:child_process");
const cli = (...args) => {
  const c = spawnSync(process.execPath, ["--input-type=module", "-e", "const { main } = await import(" + JSON.stringify(LIB + "/cli/main.js") + "); process.exitCode = await main(process.argv.slice(1));", ...args], { encoding: "utf8", env: process.env });
  return { status: c.status, stdout: c.stdout, stderr: c.stderr };
};
const t = ws + "/t";
small(t);
out({
  shift: cli("shift", "--map-users", "0:100000:65536", "--force", "65534", t),
  again: cli("shift", "--map-users", "0:100000:65536", t),
  back: cli("shift", "--map-users", "0:100000:65536", "--force", "65534", "--reverse", "--json", t),
  usage: cli("shift", "--map-users", "0-1-2", t),
  noMap: cli("shift", t),
  unmapped: cli("shift", "--map-users", "0:100000:10", "--dry-run", t),
});
`);
    expect(r.shift?.status).toBe(0);
    expect(r.shift?.stdout).toMatch(
      /^shifted .*\/t \(forward\): 5 inodes, 5 owners changed, 1 ACLs, 1 capabilities\n1 ids outside the map were set to the --force id\n$/,
    );
    expect(r.again?.status).toBe(1);
    expect(r.again?.stderr).toContain("ERR_USERNS_SHIFT_ALREADY");
    expect(r.back?.status).toBe(0);
    expect(JSON.parse(r.back?.stdout ?? "{}")).toMatchObject({ direction: "reverse", outcome: "applied", inodes: 5 });
    expect(r.usage?.status).toBe(2);
    expect(r.noMap?.status).toBe(2);
    expect(r.unmapped?.status).toBe(1);
    expect(r.unmapped?.stderr).toContain("not covered by the map");
  }, 300_000);
});
