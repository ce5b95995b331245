// Runs inside `unshare --mount --propagation private` (scripts/bench/shift.mjs):
// a tmpfs with two identical trees of N inodes, then ROUNDS alternating rounds
// of `chown -hR` on one and `userns shift` (forward, then back) on the other,
// and idmapped mounts of the shifted tree. Prints one JSON line.
import { execFileSync } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [dist, nStr, roundsStr, floorBin] = process.argv.slice(2);
const N = Number(nStr);
const ROUNDS = Number(roundsStr);
const { shiftOwnership } = await import(join(dist, "shift", "index.js"));
const { idmapMount } = await import(join(dist, "mounts", "idmap-mount.js"));
const { shiftNative } = await import(join(dist, "kernel", "shift.js"));
const FX = await import(join(dist, "model", "fsxattr.js"));
const xn = shiftNative();

const ws = mkdtempSync(join(tmpdir(), "userns-bench-shift-"));
execFileSync("mount", ["-t", "tmpfs", "-o", "mode=0755,size=2g,nr_inodes=1000000", "benchshift", ws]);
try {
  // 1% of the files carry an ACL with two named entries, 0.5% a v2 capability.
  const acl = Buffer.from(
    FX.encodeAcl([
      { tag: FX.ACL_TAG.USER_OBJ, perm: 6, id: FX.ACL_UNDEFINED_ID },
      { tag: FX.ACL_TAG.USER, perm: 6, id: 1000 },
      { tag: FX.ACL_TAG.GROUP_OBJ, perm: 4, id: FX.ACL_UNDEFINED_ID },
      { tag: FX.ACL_TAG.GROUP, perm: 4, id: 1001 },
      { tag: FX.ACL_TAG.MASK, perm: 6, id: FX.ACL_UNDEFINED_ID },
      { tag: FX.ACL_TAG.OTHER, perm: 4, id: FX.ACL_UNDEFINED_ID },
    ]),
  );
  const cap = Buffer.from(FX.encodeCaps({ version: 2, effective: true, data: [1 << 13, 0, 0, 0] }));
  const build = (dir) => {
    // N inodes: 1 root + directories of 99 entries (a symlink every 50th).
    mkdirSync(dir);
    let made = 1;
    for (let d = 0; made < N; d++) {
      const sub = join(dir, `d${d}`);
      mkdirSync(sub);
      chownSync(sub, d % 1000, d % 1000);
      made++;
      for (let f = 0; f < 99 && made < N; f++, made++) {
        const p = join(sub, `f${f}`);
        if (f % 50 === 49) {
          symlinkSync("f0", p);
          continue;
        }
        writeFileSync(p, "");
        chownSync(p, (d + f) % 1000, (d * 7 + f) % 1000);
        if ((d * 99 + f) % 100 === 0) xn.xattrSet(p, "system.posix_acl_access", acl);
        if ((d * 99 + f) % 200 === 7) xn.xattrSet(p, "security.capability", cap);
      }
    }
    return made;
  };
  const inodes = build(join(ws, "a"));
  build(join(ws, "b"));
  mkdirSync(join(ws, "view"));
  const maps = { uidMap: "0 100000 65536", gidMap: "0 100000 65536" };
  const time = (f) => {
    const t0 = process.hrtime.bigint();
    f();
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  // CPU time (user + system, ms): of this process (all its threads), and of waited-for children
  // (/proc/self/stat cutime + cstime, in clock ticks of 10 ms): less moved by other load than wall time.
  const childCpu = () => {
    const f = readFileSync("/proc/self/stat", "utf8").split(") ")[1].split(" ");
    return (Number(f[13]) + Number(f[14])) * 10;
  };
  const selfCpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const out = {
    inodes,
    chown: [],
    shift: [],
    back: [],
    ratio: [],
    mount: [],
    acls: 0,
    caps: 0,
    chownCpu: [],
    shiftCpu: [],
    cpuRatio: [],
    floor: [],
    floorCpu: [],
    floorNoX: [],
    floorNoXCpu: [],
  };
  // The C floor (scripts/bench/shift-floor.c) on the chown tree: it times itself.
  const floor = (mode) => {
    const [wall, cpu] = execFileSync(floorBin, [mode, join(ws, "a")], { encoding: "utf8" })
      .trim()
      .split(" ")
      .map(Number);
    return { wall, cpu };
  };
  for (let r = 0; r < ROUNDS; r++) {
    const owner = r % 2 ? "4242:4242" : "4243:4243";
    const c = () => {
      const c0 = childCpu();
      out.chown.push(time(() => execFileSync("chown", ["-hR", owner, join(ws, "a")])));
      out.chownCpu.push(childCpu() - c0);
    };
    let rep;
    const s = () => {
      const c0 = selfCpu();
      out.shift.push(time(() => (rep = shiftOwnership(join(ws, "b"), maps))));
      out.shiftCpu.push(selfCpu() - c0);
    };
    if (r % 2) {
      s();
      c();
    } else {
      c();
      s();
    }
    out.acls = rep.acls;
    out.caps = rep.caps;
    out.back.push(time(() => shiftOwnership(join(ws, "b"), { ...maps, direction: "reverse" })));
    out.ratio.push(out.shift.at(-1) / out.chown.at(-1));
    if (floorBin) {
      const f = floor("xattrs");
      out.floor.push(f.wall);
      out.floorCpu.push(f.cpu);
      const g = floor("noxattrs");
      out.floorNoX.push(g.wall);
      out.floorNoXCpu.push(g.cpu);
    }
    out.cpuRatio.push(out.shiftCpu.at(-1) / out.chownCpu.at(-1));
    out.mount.push(
      time(() => {
        const m = idmapMount(join(ws, "b"), { ...maps, recursive: true });
        m.attach(join(ws, "view"));
        m.close();
      }),
    );
    execFileSync("umount", [join(ws, "view")]);
  }
  console.log(JSON.stringify(out));
} finally {
  execFileSync("umount", ["-l", ws]);
  rmSync(ws, { recursive: true, force: true });
}
