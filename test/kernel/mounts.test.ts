/**
 * Idmapped mounts on the real kernel. Every scenario runs in a child alone
 * in a private mount namespace (test/helpers/mountns.ts); each test checks
 * that the host's mount table is the same before and after.
 */
import { execFileSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { afterEach, beforeEach, expect, it } from "vitest";
import { describeKernel } from "../helpers/kernel.js";
import { childEnv, compiledLib, hostMountinfo, inPrivateMountNs } from "../helpers/mountns.js";

const PRELUDE = `
const fs = await import("node:fs");
const { execFileSync, spawnSync } = await import("node:child_process");
const { idmapMount } = await import(LIB + "/mounts/idmap-mount.js");
const { inspectMount } = await import(LIB + "/mounts/inspect.js");
const { probeIdmapSupport } = await import(LIB + "/mounts/probe.js");
const { createHelperUserns } = await import(LIB + "/mounts/helper-userns.js");
const { classifyIdmapRefusal } = await import(LIB + "/mounts/explain.js");
const { native } = await import(LIB + "/kernel/native.js");
const b = native();
// Under TMP (see inPrivateMountNs), which the parent removes from the host side.
const ws = TMP + "/ws";
fs.mkdirSync(ws);
execFileSync("mount", ["-t", "tmpfs", "-o", "mode=0755", "proofws", ws]);
const MAP = "0 100000 65536\\n";
const mk = (p, uid, gid, mode = 0o644, dir = false) => {
  if (dir) fs.mkdirSync(p); else fs.writeFileSync(p, "");
  fs.chownSync(p, uid, gid); fs.chmodSync(p, mode);
};
const err = (f) => { try { f(); return { ok: true }; } catch (e) { return { ok: false, code: e.code, refusal: e.refusal, message: e.message, syscall: e.syscall }; } };
`;

let before = "";
beforeEach(() => {
  before = hostMountinfo();
});
afterEach(() => {
  expect(hostMountinfo()).toBe(before);
});

interface Refused {
  ok: boolean;
  code?: string;
  refusal?: string;
  message?: string;
  syscall?: string;
}

describeKernel("idmapped mounts", () => {
  it("tmpfs: ownership through the mount equals the prediction, and statmount's read-back equals what was set", () => {
    const r = inPrivateMountNs<{
      detached: number;
      seen: [number, number][];
      predicted: [number, number][];
      mapsFrom: string;
      agrees: boolean;
      kernelUid: string;
      idmappedInMountinfo: boolean;
      afterUnmount: boolean;
    }>(`${PRELUDE}
      fs.mkdirSync(ws + "/src"); fs.mkdirSync(ws + "/mnt");
      execFileSync("mount", ["-t", "tmpfs", "src", ws + "/src"]);
      const owners = [[0, 0], [1000, 1001], [65535, 65535], [65536, 7], [100000, 100000], [4294967294, 0]];
      owners.forEach(([u, g], i) => mk(ws + "/src/f" + i, u, g));
      const m = idmapMount(ws + "/src", { uidMap: MAP, gidMap: MAP });
      const detached = b.fstatAt(m.fd, "f1", 0).uid;
      m.attach(ws + "/mnt");
      const info = inspectMount(ws + "/mnt");
      const seen = owners.map((_, i) => { const s = fs.statSync(ws + "/mnt/f" + i); return [s.uid, s.gid]; });
      const predicted = owners.map(([uid, gid]) => { const p = info.predictOwner({ uid, gid }); return [p.uid, p.gid]; });
      const idmappedInMountinfo = fs.readFileSync("/proc/self/mountinfo", "utf8").split("\\n").some((l) => l.includes(ws + "/mnt ") && l.includes("idmapped"));
      m.unmount(); m.close();
      const afterUnmount = fs.readFileSync("/proc/self/mountinfo", "utf8").includes(ws + "/mnt ");
      out({ detached, seen, predicted, mapsFrom: info.mapsFrom, agrees: info.crossCheck?.agrees, kernelUid: info.maps.uid.toString(), idmappedInMountinfo, afterUnmount });
    `);
    expect(r.detached).toBe(101000);
    expect(r.seen).toEqual([
      [100000, 100000],
      [101000, 101001],
      [165535, 165535],
      [65534, 100007],
      [65534, 65534],
      [65534, 100000],
    ]);
    expect(r.predicted).toEqual(r.seen);
    expect(r.mapsFrom).toBe("statmount");
    expect(r.kernelUid).toBe("0 100000 65536\n");
    expect(r.agrees).toBe(true);
    expect(r.idmappedInMountinfo).toBe(true);
    expect(r.afterUnmount).toBe(false);
  });

  it("statmount read-back of a 6-extent map written out of order equals the model's statmount view", () => {
    const r = inPrivateMountNs<{ agrees: boolean; kernel: string[]; seen: number }>(`${PRELUDE}
      fs.mkdirSync(ws + "/src"); fs.mkdirSync(ws + "/mnt");
      execFileSync("mount", ["-t", "tmpfs", "src", ws + "/src"]);
      mk(ws + "/src/f", 25, 25);
      const map = [5, 1, 4, 0, 3, 2].map((i) => (i * 10) + " " + (300000 + i * 1000) + " 10").join("\\n") + "\\n";
      const m = idmapMount(ws + "/src", { uidMap: map, gidMap: map });
      m.attach(ws + "/mnt");
      const info = inspectMount(ws + "/mnt");
      const sm = b.statmount(info.mountId, 0x2000n, -1);
      out({ agrees: info.crossCheck.agrees, kernel: sm.uidmap, seen: fs.statSync(ws + "/mnt/f").uid });
    `);
    expect(r.agrees).toBe(true);
    // Above 5 extents the kernel keeps (and shows) them sorted by first.
    expect(r.kernel).toEqual([0, 1, 2, 3, 4, 5].map((i) => `${i * 10} ${300000 + i * 1000} 10`));
    expect(r.seen).toBe(302005);
  });

  it("ext4 on a loop device: idmapped, and the loop device is gone afterwards", () => {
    const img = execFileSync("mktemp", ["/tmp/userns-ext4-XXXXXX.img"], { encoding: "utf8" }).trim();
    try {
      execFileSync("truncate", ["-s", "16M", img]);
      execFileSync("mkfs.ext4", ["-q", "-F", img], { stdio: "pipe" });
      const r = inPrivateMountNs<{ fsType: string; seen: number[]; loop: string; created: number[] }>(`${PRELUDE}
        fs.mkdirSync(ws + "/src"); fs.mkdirSync(ws + "/mnt");
        execFileSync("mount", ["-o", "loop", ${JSON.stringify(img)}, ws + "/src"]);
        const loop = execFileSync("losetup", ["-j", ${JSON.stringify(img)}], { encoding: "utf8" });
        mk(ws + "/src/a", 0, 0); mk(ws + "/src/b", 2000, 2000); fs.chmodSync(ws + "/src", 0o1777);
        const m = idmapMount(ws + "/src", { uidMap: MAP, gidMap: MAP });
        m.attach(ws + "/mnt");
        const fsType = inspectMount(ws + "/mnt").fsType;
        const seen = ["a", "b"].map((n) => fs.statSync(ws + "/mnt/" + n).uid);
        const c = b.fsOpAs(2, 100042, 100042, 0, -100, ws + "/mnt/new", 0o600, -1, -1);
        const st = fs.statSync(ws + "/src/new");
        m.unmount(); m.close();
        execFileSync("umount", [ws + "/src"]);
        out({ fsType, seen, loop, created: [c.errno, st.uid, st.gid] });
      `);
      expect(r.fsType).toBe("ext4");
      expect(r.loop).toContain(img);
      expect(r.seen).toEqual([100000, 102000]);
      expect(r.created).toEqual([0, 42, 42]);
      // autoclear detaches the loop device when its last mount goes.
      let left = "x";
      for (let i = 0; i < 50 && left !== ""; i++) {
        left = execFileSync("losetup", ["-j", img], { encoding: "utf8" }).trim();
        if (left !== "") execFileSync("sleep", ["0.1"]);
      }
      expect(left).toBe("");
    } finally {
      rmSync(img, { force: true });
    }
  });

  it("overlayfs: the overlay itself is refused with a reason; an idmapped lower layer works", () => {
    const r = inPrivateMountNs<{ direct: Refused; layered: { uid: number; gid: number } | Refused }>(`${PRELUDE}
      for (const d of ["lower", "upper", "work", "merged", "lowerid", "merged2", "upper2", "work2"]) fs.mkdirSync(ws + "/" + d);
      mk(ws + "/lower/f", 0, 0);
      execFileSync("mount", ["-t", "overlay", "ov", "-o", "lowerdir=" + ws + "/lower,upperdir=" + ws + "/upper,workdir=" + ws + "/work", ws + "/merged"]);
      const direct = err(() => idmapMount(ws + "/merged", { uidMap: MAP, gidMap: MAP }).close());
      let layered;
      try {
        const lm = idmapMount(ws + "/lower", { uidMap: MAP, gidMap: MAP });
        lm.attach(ws + "/lowerid"); lm.close();
        execFileSync("mount", ["-t", "overlay", "ov2", "-o", "lowerdir=" + ws + "/lowerid,upperdir=" + ws + "/upper2,workdir=" + ws + "/work2", ws + "/merged2"], { stdio: "pipe" });
        const s = fs.statSync(ws + "/merged2/f");
        layered = { uid: s.uid, gid: s.gid };
      } catch (e) { layered = { ok: false, message: String(e.stderr ?? e.message) }; }
      out({ direct, layered });
    `);
    // Linux 6.18: overlayfs lacks FS_ALLOW_IDMAP (spec §8.5); the kernel says EINVAL.
    expect(r.direct).toMatchObject({ ok: false, code: "EINVAL", refusal: "fs-type-not-allowed" });
    expect(r.direct.message).toMatch(/overlay: the filesystem type does not allow idmapped mounts/);
    // Idmapped layers (5.19+): the overlay shows the lower file through the layer's idmap.
    expect(r.layered).toEqual({ uid: 100000, gid: 100000 });
  });

  it("recursive vs non-recursive with a submount; recursive over a proc submount fails as a whole", () => {
    const r = inPrivateMountNs<{ nonrec: number; rec: number; withProc: Refused; topOnly: boolean }>(`${PRELUDE}
      for (const d of ["src", "m1", "m2"]) fs.mkdirSync(ws + "/" + d);
      execFileSync("mount", ["-t", "tmpfs", "src", ws + "/src"]);
      fs.mkdirSync(ws + "/src/sub"); fs.mkdirSync(ws + "/src/p");
      execFileSync("mount", ["-t", "tmpfs", "sub", ws + "/src/sub"]);
      fs.chownSync(ws + "/src/sub", 7, 7);
      const a = idmapMount(ws + "/src", { uidMap: MAP, gidMap: MAP });
      a.attach(ws + "/m1");
      const nonrec = fs.statSync(ws + "/m1/sub").uid;
      const c = idmapMount(ws + "/src", { uidMap: MAP, gidMap: MAP, recursive: true });
      c.attach(ws + "/m2");
      const rec = fs.statSync(ws + "/m2/sub").uid;
      execFileSync("mount", ["-t", "proc", "proc", ws + "/src/p"]);
      const withProc = err(() => idmapMount(ws + "/src", { uidMap: MAP, gidMap: MAP, recursive: true }).close());
      let topOnly = false;
      const d = idmapMount(ws + "/src", { uidMap: MAP, gidMap: MAP }); topOnly = true; d.close();
      out({ nonrec, rec, withProc, topOnly });
    `);
    // Without AT_RECURSIVE the clone has no submount: the empty directory underneath (on-disk 0) shows.
    expect(r.nonrec).toBe(100000);
    expect(r.rec).toBe(100007);
    expect(r.withProc).toMatchObject({ ok: false, code: "EINVAL", refusal: "fs-type-not-allowed" });
    expect(r.withProc.message).toMatch(/submount/);
    expect(r.topOnly).toBe(true);
  });

  it("read-only: creating through the mount is EROFS and statmount shows RDONLY|IDMAP", () => {
    const r = inPrivateMountNs<{ create: string; attr: string; source: number }>(`${PRELUDE}
      fs.mkdirSync(ws + "/src"); fs.mkdirSync(ws + "/mnt");
      execFileSync("mount", ["-t", "tmpfs", "src", ws + "/src"]);
      const m = idmapMount(ws + "/src", { uidMap: MAP, gidMap: MAP, readOnly: true, nosuid: true, nodev: true });
      m.attach(ws + "/mnt");
      const c = b.fsOpAs(2, 100000, 100000, 0, -100, ws + "/mnt/x", 0o644, -1, -1);
      const sm = b.statmount(b.mountIdOf(-100, ws + "/mnt", 0).mountId, 2n, -1);
      const s = b.fsOpAs(0, 0, 0, 0, -100, ws + "/src/y", 0o644, -1, -1);
      out({ create: c.errno, attr: "0x" + sm.mntAttr.toString(16), source: s.errno });
    `);
    expect(r.create).toBe(30); // EROFS
    expect(r.attr).toBe("0x100007"); // IDMAP | NODEV | NOSUID | RDONLY
    expect(r.source).toBe(0);
  });

  it("probe: tmpfs supported; proc, ramfs and devtmpfs refused with the filesystem named; answers cached per filesystem", () => {
    const r = inPrivateMountNs<{
      tmpfs: boolean;
      proc: Refused & { fsType: string };
      ramfs: Refused & { fsType: string };
      devtmpfs: Refused & { fsType: string };
      cached: boolean;
    }>(`${PRELUDE}
      fs.mkdirSync(ws + "/r");
      execFileSync("mount", ["-t", "ramfs", "r", ws + "/r"]);
      // devtmpfs shares tmpfs's statfs magic; only the mount's own type tells them apart.
      fs.mkdirSync(ws + "/d");
      execFileSync("mount", ["-t", "devtmpfs", "d", ws + "/d"]);
      const t = probeIdmapSupport(ws);
      const p = probeIdmapSupport("/proc");
      const rf = probeIdmapSupport(ws + "/r");
      const dv = probeIdmapSupport(ws + "/d");
      const view = (x) => ({ ok: x.supported, fsType: x.fsType, refusal: x.refusal, code: x.error?.code, message: x.error?.message });
      out({ tmpfs: t.supported, proc: view(p), ramfs: view(rf), devtmpfs: view(dv), cached: probeIdmapSupport(ws) === t });
    `);
    expect(r.tmpfs).toBe(true);
    expect(r.cached).toBe(true);
    for (const [name, v] of [
      ["proc", r.proc],
      ["ramfs", r.ramfs],
      ["devtmpfs", r.devtmpfs],
    ] as const) {
      expect(v).toMatchObject({ ok: false, fsType: name, refusal: "fs-type-not-allowed", code: "EINVAL" });
      expect(v.message).toContain(`${name}: the filesystem type does not allow idmapped mounts`);
    }
  });

  it("refusals say why: initial userns, wrong fd type, no maps, already idmapped, attached source, EBUSY, no capability", () => {
    const r = inPrivateMountNs<Record<string, Refused>>(`${PRELUDE}
      fs.mkdirSync(ws + "/src"); fs.mkdirSync(ws + "/mnt");
      execFileSync("mount", ["-t", "tmpfs", "src", ws + "/src"]);
      mk(ws + "/src/f", 0, 0);
      const init = { fd: b.openNs("/proc/self/ns/user") };
      const net = { fd: b.openNs("/proc/self/ns/net") };
      const file = { fd: fs.openSync(ws + "/src/f", "r") };
      const empty = createHelperUserns({});
      const res = {};
      res.initial = err(() => idmapMount(ws + "/src", { userns: init }).close());
      res.netns = err(() => idmapMount(ws + "/src", { userns: net }).close());
      res.file = err(() => idmapMount(ws + "/src", { userns: file }).close());
      res.noMapsHeld = err(() => idmapMount(ws + "/src", { userns: empty }).close());
      res.noMapsGiven = err(() => idmapMount(ws + "/src", { uidMap: "", gidMap: MAP }).close());
      const m = idmapMount(ws + "/src", { uidMap: MAP, gidMap: MAP });
      m.attach(ws + "/mnt");
      res.already = err(() => idmapMount(ws + "/mnt", { uidMap: MAP, gidMap: MAP }).close());
      // An attached source (open_tree without OPEN_TREE_CLONE), classified from the kernel's errno.
      const ns = createHelperUserns({ uidMap: MAP, gidMap: MAP });
      const attached = b.openTree(-100, ws + "/src", 0);
      try { b.mountSetattr(attached, "", 0x1000, { attrSet: 0x100000, usernsFd: ns.fd }); res.attached = { ok: true }; }
      catch (e) { res.attached = { ok: false, code: e.code, refusal: classifyIdmapRefusal({ syscall: "mount_setattr", code: e.code, usernsFd: ns.fd, sourcePath: ws + "/src", sourceAttached: true }) }; }
      // A file open for writing on the clone (through /proc/self/fd): EBUSY.
      const clone = b.openTree(-100, ws + "/src", 1);
      const w = fs.openSync("/proc/self/fd/" + clone + "/f", "w");
      try { b.mountSetattr(clone, "", 0x1000, { attrSet: 0x100000, usernsFd: ns.fd }); res.busy = { ok: true }; }
      catch (e) { res.busy = { ok: false, code: e.code, refusal: classifyIdmapRefusal({ syscall: "mount_setattr", code: e.code, usernsFd: ns.fd }) }; }
      fs.closeSync(w);
      // Without CAP_SYS_ADMIN: the same call from a uid-1000 child.
      const child = spawnSync(process.execPath, ["--input-type=module", "-e",
        "const { idmapMount } = await import(" + JSON.stringify(LIB + "/mounts/idmap-mount.js") + ");" +
        "try { idmapMount('/tmp', { uidMap: '0 100000 1', gidMap: '0 100000 1' }); console.log('{\\"ok\\":true}'); }" +
        "catch (e) { console.log(JSON.stringify({ ok: false, code: e.code, refusal: e.refusal, message: e.message })); }"],
        { uid: 1000, gid: 1000, encoding: "utf8", env: process.env });
      res.unprivileged = JSON.parse(child.stdout || JSON.stringify({ ok: null, message: child.stderr }));
      out(res);
    `);
    expect(r.initial).toMatchObject({ ok: false, code: "EPERM", refusal: "initial-userns" });
    expect(r.netns).toMatchObject({ ok: false, code: "EINVAL", refusal: "wrong-fd-type" });
    expect(r.file).toMatchObject({ ok: false, code: "EINVAL", refusal: "wrong-fd-type" });
    expect(r.noMapsHeld).toMatchObject({ ok: false, code: "EINVAL", refusal: "userns-no-maps" });
    expect(r.noMapsGiven).toMatchObject({ ok: false, code: "EINVAL", refusal: "userns-no-maps" });
    expect(r.already).toMatchObject({ ok: false, code: "EPERM", refusal: "already-idmapped" });
    expect(r.attached).toMatchObject({ ok: false, code: "EINVAL", refusal: "source-attached" });
    expect(r.busy).toMatchObject({ ok: false, code: "EBUSY", refusal: "file-open-for-writing" });
    expect(r.unprivileged).toMatchObject({ ok: false, code: "EPERM", refusal: "capability-missing" });
    for (const v of Object.values(r)) expect(v.message ?? "has a reason").not.toMatch(/^[^:]*: EINVAL$/);
  });

  it("re-idmap with open_tree_attr (6.15+): a new clone shows the new map; the old mount is unchanged", () => {
    const r = inPrivateMountNs<{ old: number; fresh: number; kernel: string }>(`${PRELUDE}
      fs.mkdirSync(ws + "/src"); fs.mkdirSync(ws + "/mnt"); fs.mkdirSync(ws + "/mnt2");
      execFileSync("mount", ["-t", "tmpfs", "src", ws + "/src"]);
      mk(ws + "/src/f", 3, 3);
      const m = idmapMount(ws + "/src", { uidMap: MAP, gidMap: MAP });
      m.attach(ws + "/mnt");
      const n = m.reidmap({ uidMap: "0 200000 65536", gidMap: "0 200000 65536" });
      n.attach(ws + "/mnt2");
      out({ old: fs.statSync(ws + "/mnt/f").uid, fresh: fs.statSync(ws + "/mnt2/f").uid, kernel: inspectMount(ws + "/mnt2").maps.uid.toString() });
    `);
    expect(r).toEqual({ old: 100003, fresh: 200003, kernel: "0 200000 65536\n" });
  });

  it("the private namespace's mounts never existed on the host", () => {
    // afterEach compares the whole table; this also checks no scenario directory stayed mounted.
    expect(hostMountinfo()).not.toContain("userns-mountns-");
    expect(existsSync("/proc/self/mountinfo")).toBe(true);
  });
});

describeKernel("mount bench scripts (smoke)", () => {
  it("mount-floor.c builds and runs, and so does our side, each in a private mount namespace", () => {
    const exe = execFileSync("mktemp", ["/tmp/userns-mount-floor-XXXXXX"], { encoding: "utf8" }).trim();
    try {
      execFileSync("cc", ["-O2", "-Wall", "-Werror", "-o", exe, "scripts/bench/mount-floor.c"], { stdio: "pipe" });
      const run = (cmd: string[]) =>
        JSON.parse(
          execFileSync("unshare", ["--mount", "--propagation", "private", "--", ...cmd], {
            encoding: "utf8",
            env: childEnv(),
          }),
        ) as { iterations: number; ns_per_op: number; cpu_ns_per_op: number };
      // Both remove their scratch directories (the tmp guard checks); the 5 warm-up cycles exercise that path too.
      const floor = run([exe, "20", "5"]);
      const ours = run([process.execPath, "scripts/bench/mount-ours.mjs", compiledLib(), "20", "5"]);
      expect(floor.iterations).toBe(20);
      expect(ours.iterations).toBe(20);
      expect(floor.ns_per_op).toBeGreaterThan(0);
      expect(ours.ns_per_op).toBeGreaterThan(0);
      expect(floor.cpu_ns_per_op).toBeGreaterThan(0);
      expect(ours.cpu_ns_per_op).toBeGreaterThan(0);
    } finally {
      rmSync(exe, { force: true });
    }
  });
});
