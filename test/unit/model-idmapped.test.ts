import { describe, expect, it } from "vitest";
import {
  ALL_FS_CAPS,
  AT,
  chmodCommon,
  chownCommon,
  createThroughMount,
  type FsCaller,
  fromVfsuid,
  IdMap,
  INVALID_ID,
  type Inode,
  MOUNT_ATTR,
  type MountIdmap,
  type MountSetattrCall,
  MS,
  makeVfsgid,
  makeVfsuid,
  mountSetattr,
  type SetattrMount,
  statmountMntIdmap,
  statThroughMount,
  utimesNow,
} from "../../lib/model/index.js";

// The spec §8.4 worked example: a host tmpfs idmapped with a namespace 0 100000 65536 (uid and gid).
const A = IdMap.of([0, 100000, 65536]);
const M: MountIdmap = { uid: A, gid: A };
const root: FsCaller = { fsuid: 0, fsgid: 0, caps: ALL_FS_CAPS };
const dir: Inode = { uid: 0, gid: 0, mode: 0o1777, type: "dir" };
const file = (uid: number, gid = uid, mode = 0o644): Inode => ({ uid, gid, mode, type: "file" });

describe("ownership through an idmapped mount (spec §8.4; rules 52–55)", () => {
  it.each([
    [0, 100000],
    [1000, 101000],
    [100000, 65534],
    [165535, 65534],
    [165536, 65534],
  ])("stat from the initial namespace: on-disk uid %i shows as %i (verified on 6.18)", (disk, shown) => {
    expect(statThroughMount(M, "init", { uid: disk, gid: disk })).toEqual({ uid: shown, gid: shown });
  });

  it("a process in namespace A sees on-disk 0 as 0; one in B (0 200000 65536) sees 65534", () => {
    expect(statThroughMount(M, "init", { uid: 0, gid: 0 }, { uid: A, gid: A })).toEqual({ uid: 0, gid: 0 });
    const B = IdMap.of([0, 200000, 65536]);
    expect(statThroughMount(M, "init", { uid: 0, gid: 0 }, { uid: B, gid: B })).toEqual({ uid: 65534, gid: 65534 });
  });

  it("make_vfsuid / from_vfsuid over a namespaced filesystem (s_user_ns with 0 50000 1000)", () => {
    const fs = { uid: IdMap.of([0, 50000, 1000]), gid: IdMap.of([0, 50000, 1000]) };
    expect(makeVfsuid(M, fs, 50007)).toBe(100007); // kuid 50007 is fs uid 7, shown through M as 100007
    expect(makeVfsuid(M, fs, 7)).toBe(INVALID_ID); // kuid 7 is not mapped in the fs namespace
    expect(fromVfsuid(M, fs, 100007)).toBe(50007);
    expect(fromVfsuid(M, fs, 102000)).toBe(INVALID_ID); // fs uid 2000 is outside s_user_ns's map
    expect(makeVfsgid("nop", fs, 7)).toBe(7);
    expect(makeVfsuid("invalid", "init", 0)).toBe(INVALID_ID);
  });

  it.each([
    ["create as root (fsuid 0) → EOVERFLOW", root, { ok: false, errno: "EOVERFLOW" }],
    [
      "create as fsuid/fsgid 100000 → on-disk 0:0",
      { ...root, fsuid: 100000, fsgid: 100000, caps: [] },
      { ok: true, uid: 0, gid: 0 },
    ],
    ["create as fsuid 100000 but fsgid 0 → EOVERFLOW", { ...root, fsuid: 100000 }, { ok: false, errno: "EOVERFLOW" }],
    [
      "create as uid 101000 without caps → on-disk 1000",
      { fsuid: 101000, fsgid: 101000 },
      { ok: true, uid: 1000, gid: 1000 },
    ],
  ] as const)("%s (verified on 6.18)", (_n, caller, want) => {
    const r = createThroughMount(caller as FsCaller, M, "init", dir, "file", 0o644, 0);
    expect(r.ok ? { ok: true, uid: r.inode.uid, gid: r.inode.gid } : { ok: false, errno: r.errno }).toEqual(want);
  });

  it.each([
    ["a dir whose owner is unmapped through the mount: EACCES even for root", { ...dir, uid: 100000 }, "EACCES"],
    ["a 0755 dir of another user, caller without caps: EACCES", { ...dir, mode: 0o755, uid: 5 }, "EACCES"],
    ["a 0700 dir of another user: search fails first (EACCES at lookup)", { ...dir, mode: 0o700, uid: 5 }, "EACCES"],
  ] as const)("create: %s", (_n, d, errno) => {
    const r = createThroughMount({ fsuid: 100000, fsgid: 100000 }, M, "init", d, "file", 0o644, 0);
    expect(r.ok ? "ok" : r.errno).toBe(errno);
  });

  it("EOVERFLOW is checked before the directory's permission", () => {
    const r = createThroughMount({ fsuid: 7, fsgid: 7 }, M, "init", { ...dir, mode: 0o555 }, "file", 0o644, 0);
    expect(r.ok ? "ok" : r.errno).toBe("EOVERFLOW");
  });

  it("mode: umask applies; a setgid directory passes its group and (for dirs) S_ISGID", () => {
    const c: FsCaller = { fsuid: 100000, fsgid: 100000 };
    const r = createThroughMount(c, M, "init", dir, "file", 0o666, 0o022);
    expect(r.ok && r.inode.mode).toBe(0o644);
    const sg = { ...dir, gid: 42, mode: 0o2777 };
    const d = createThroughMount(c, M, "init", sg, "dir", 0o755, 0);
    expect(d.ok && [d.inode.gid, d.inode.mode.toString(8)]).toEqual([42, "2755"]);
    // a non-member creating a g+x setgid file in a setgid dir loses S_ISGID (mode_strip_sgid)
    const f = createThroughMount(c, M, "init", sg, "file", 0o2755, 0);
    expect(f.ok && f.inode.mode.toString(8)).toBe("755");
  });

  it.each([
    ["chown to 100005 → on-disk 5", file(0), 100005, -1, { ok: true, uid: 5, gid: 0 }],
    ["chown to 5 → EOVERFLOW", file(0), 5, -1, { ok: false, errno: "EOVERFLOW" }],
    ["chown -1/-1 on a file shown as 65534 → EOVERFLOW", file(100000), -1, -1, { ok: false, errno: "EOVERFLOW" }],
    [
      "chown of an unmapped-owner file to a mapped uid (gid still unmapped) → EOVERFLOW",
      file(100000),
      100001,
      -1,
      { ok: false, errno: "EOVERFLOW" },
    ],
    [
      "chown of an unmapped-owner file, both ids made valid → root may (CAP_CHOWN over s_user_ns)",
      file(100000),
      100001,
      100002,
      { ok: true, uid: 1, gid: 2 },
    ],
    ["chown to 4294967295 is 'unchanged'", file(0), 4294967295, -1, { ok: true, uid: 0, gid: 0 }],
  ] as const)("root: %s", (_n, f, uid, gid, want) => {
    const r = chownCommon(root, M, "init", f, uid, gid);
    expect(r.ok ? { ok: true, uid: r.inode.uid, gid: r.inode.gid } : { ok: false, errno: r.errno }).toEqual(want);
  });

  it.each([
    ["the owner may chgrp to its own fsgid", { fsuid: 100003, fsgid: 100009 }, -1, 100009, "ok"],
    ["the owner may not give the file away", { fsuid: 100003, fsgid: 100003 }, 100004, -1, "EPERM"],
    ["the owner may chown to itself", { fsuid: 100003, fsgid: 100003 }, 100003, -1, "ok"],
    ["a stranger may not", { fsuid: 100004, fsgid: 100004 }, 100004, -1, "EPERM"],
    [
      "an id unmapped in the caller's namespace → EINVAL",
      { fsuid: 100003, fsgid: 100003, userns: { uid: A, gid: A } },
      70000,
      -1,
      "EINVAL",
    ],
  ] as const)("without caps: %s", (_n, c, uid, gid, want) => {
    const r = chownCommon(c as FsCaller, M, "init", file(3), uid, gid);
    expect(r.ok ? "ok" : r.errno).toBe(want);
  });

  it("chown clears S_ISUID even for root, and S_ISGID when group-executable", () => {
    const r = chownCommon(root, M, "init", file(0, 0, 0o6755), 100001, -1);
    expect(r.ok && r.inode.mode.toString(8)).toBe("755");
    const d = chownCommon(root, M, "init", { uid: 0, gid: 0, mode: 0o6755, type: "dir" }, 100001, -1);
    expect(d.ok && d.inode.mode.toString(8)).toBe("6755");
  });

  it("chmod on a file shown as 65534 → EOVERFLOW; utimes(NULL) → EACCES (verified on 6.18)", () => {
    expect(chmodCommon(root, M, "init", file(100000), 0o600)).toMatchObject({ ok: false, errno: "EOVERFLOW" });
    expect(chmodCommon(root, M, "init", file(0), 0o600)).toMatchObject({ ok: true, inode: { mode: 0o600 } });
    expect(utimesNow(root, M, "init", file(100000))).toMatchObject({ ok: false, errno: "EACCES" });
    expect(utimesNow(root, M, "init", file(0))).toBeUndefined();
  });
});

describe("statmount idmap view (spec §8.7)", () => {
  const big = IdMap.of(
    [10, 300010, 5],
    [0, 100000, 10],
    [20, 400000, 1],
    [30, 500000, 1],
    [40, 600000, 1],
    [50, 700000, 1],
  );
  it.each([
    ["from init: lower ids are kuids", "init", A, ["0 100000 65536"]],
    ["from A: lower ids relative to the caller", { uid: A, gid: A }, A, ["0 0 65536"]],
    ["from a namespace that maps only part of the range: skipped", { uid: IdMap.of([0, 100000, 10]), gid: A }, A, []],
    [
      "> 5 extents are listed sorted by first",
      "init",
      big,
      ["0 100000 10", "10 300010 5", "20 400000 1", "30 500000 1", "40 600000 1", "50 700000 1"],
    ],
  ] as const)("%s", (_n, caller, map, want) => {
    expect(statmountMntIdmap({ uid: map, gid: map }, "uid", caller)).toEqual({ idmapped: true, mappings: want });
  });
  it("a mount without idmap reports nothing", () => {
    expect(statmountMntIdmap("nop", "uid")).toEqual({ idmapped: false, mappings: [] });
  });
});

describe("mount_setattr check order (spec §8.2; rules 41–51)", () => {
  const tmpfs: SetattrMount = { fsType: "tmpfs", detached: true };
  const ns = { kind: "userns", uidMapWritten: true, gidMapWritten: true } as const;
  const base: MountSetattrCall = { attrSet: MOUNT_ATTR.IDMAP, usernsFd: ns, mounts: [tmpfs] };
  it.each<[string, Partial<MountSetattrCall>, string | null, number | null]>([
    ["a detached tmpfs clone: OK", {}, null, null],
    ["41: an attached, non-idmapped mount", { mounts: [{ ...tmpfs, detached: false }] }, "EINVAL", 28],
    ["42: already idmapped", { mounts: [{ ...tmpfs, idmapped: true }] }, "EPERM", 24],
    ["42 before 41: attached and idmapped", { mounts: [{ ...tmpfs, idmapped: true, detached: false }] }, "EPERM", 24],
    ["43: the initial namespace", { usernsFd: { ...ns, init: true } }, "EPERM", 15],
    ["43: a mount-namespace fd", { usernsFd: { kind: "nsfs", nstype: "mnt" } }, "EINVAL", 14],
    ["43: a regular file", { usernsFd: { kind: "file" } }, "EINVAL", 13],
    ["43: not open", { usernsFd: { kind: "closed" } }, "EBADF", 12],
    ["43: > INT_MAX", { usernsFdNumber: 2 ** 31 }, "EINVAL", 11],
    ["44: uid_map not written", { usernsFd: { ...ns, uidMapWritten: false } }, "EINVAL", 19],
    ["44: gid_map not written", { usernsFd: { ...ns, gidMapWritten: false } }, "EINVAL", 19],
    [
      "45: the filesystem's own s_user_ns",
      { usernsFd: { ...ns, id: "U" }, mounts: [{ ...tmpfs, fsUserns: "U" }] },
      "EINVAL",
      23,
    ],
    ["46: no CAP_SYS_ADMIN in the namespace", { usernsFd: { ...ns, callerCapSysAdmin: false } }, "EPERM", 16],
    ["46: no CAP_SYS_ADMIN over s_user_ns", { mounts: [{ ...tmpfs, callerCapOverFs: false }] }, "EPERM", 27],
    ["47: ramfs", { mounts: [{ ...tmpfs, fsType: "ramfs" }] }, "EINVAL", 25],
    [
      "47: proc submount with AT_RECURSIVE fails the tree",
      { flags: AT.EMPTY_PATH | AT.RECURSIVE, mounts: [tmpfs, { ...tmpfs, fsType: "proc" }] },
      "EINVAL",
      25,
    ],
    [
      "47: proc submount without AT_RECURSIVE: only the top changes",
      { mounts: [tmpfs, { ...tmpfs, fsType: "proc" }] },
      null,
      null,
    ],
    ["48: writers open", { mounts: [{ ...tmpfs, writersOpen: true }] }, "EBUSY", 29],
    ["49: unknown flags", { flags: 0x1 }, "EINVAL", 1],
    ["49: usize 31", { size: 31 }, "EINVAL", 3],
    ["49: usize 4097", { size: 4097 }, "E2BIG", 2],
    ["49: nonzero tail", { size: 40, tailNonzero: true }, "E2BIG", 5],
    ["49: two propagation types", { propagation: MS.PRIVATE | MS.SHARED }, "EINVAL", 7],
    ["49: unknown attr bit", { attrSet: MOUNT_ATTR.IDMAP | 0x400 }, "EINVAL", 8],
    ["49: atime without _ATIME in attr_clr", { attrSet: MOUNT_ATTR.NOATIME }, "EINVAL", 9],
    ["50: all-zero attr succeeds without lookup", { attrSet: 0, lookupErrno: "ENOENT" }, null, null],
    ["51: attr_clr IDMAP through mount_setattr", { attrClr: MOUNT_ATTR.IDMAP }, "EINVAL", 10],
    [
      "51: open_tree_attr replace on an idmapped clone",
      { attrClr: MOUNT_ATTR.IDMAP, replacePermission: true, mounts: [{ ...tmpfs, idmapped: true }] },
      null,
      null,
    ],
    ["may_mount fails", { mayMount: false }, "EPERM", 4],
    ["a subdirectory, not a mount root", { isMountRoot: false }, "EINVAL", 18],
    ["lookup fails", { lookupErrno: "ENOENT" }, "ENOENT", 17],
    [
      "RDONLY on a mount with writers",
      { attrSet: MOUNT_ATTR.RDONLY, mounts: [{ ...tmpfs, writersOpen: true }] },
      "EBUSY",
      29,
    ],
  ])("%s", (_n, over, errno, check) => {
    const r = mountSetattr({ ...base, ...over });
    expect(r.ok ? [null, null] : [r.errno, r.check]).toEqual([errno, check]);
  });
});
