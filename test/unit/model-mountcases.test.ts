import { describe, expect, it } from "vitest";
import { predictMountCase, predictMountCaseLine } from "../../lib/model/index.js";

const M = "0 100000 65536";
const base = { id: "c", uid_map: M, gid_map: M };

describe("mount-case predictor (case-formats §2)", () => {
  it("the spec §8.4 worked example, field for field", () => {
    const r = predictMountCase({
      ...base,
      files: [
        { name: "a", uid: 0, gid: 0, mode: "0644" },
        { name: "b", uid: 1000, gid: 1000 },
        { name: "c", uid: 100000, gid: 100000 },
        { name: "d", uid: 165536, gid: 165536, type: "dir", mode: "0755" },
      ],
      creates: [
        { name: "root-made" },
        { name: "mapped", as: { fsuid: 100000, fsgid: 100000 }, mode: "0600" },
        { name: "dir1", type: "dir", as: { uid: 100007, gid: 100007 } },
      ],
      chowns: [
        { name: "a", uid: 100005, gid: -1 },
        { name: "b", uid: 5, gid: -1 },
        { name: "c", uid: -1, gid: -1 },
      ],
    });
    expect(r).toEqual({
      id: "c",
      ok: true,
      step: null,
      errno: null,
      mount_setattr: { ok: true, errno: null },
      root_stat: { name: ".", uid: 100000, gid: 100000, mode: "1777", disk_uid: 0, disk_gid: 0 },
      stat: [
        { name: "a", uid: 100000, gid: 100000, mode: "0644", disk_uid: 0, disk_gid: 0 },
        { name: "b", uid: 101000, gid: 101000, mode: "0644", disk_uid: 1000, disk_gid: 1000 },
        { name: "c", uid: 65534, gid: 65534, mode: "0644", disk_uid: 100000, disk_gid: 100000 },
        { name: "d", uid: 65534, gid: 65534, mode: "0755", disk_uid: 165536, disk_gid: 165536 },
      ],
      creates: [
        {
          name: "root-made",
          ok: false,
          errno: "EOVERFLOW",
          uid: null,
          gid: null,
          mode: null,
          disk_uid: null,
          disk_gid: null,
        },
        { name: "mapped", ok: true, errno: null, uid: 100000, gid: 100000, mode: "0600", disk_uid: 0, disk_gid: 0 },
        { name: "dir1", ok: true, errno: null, uid: 100007, gid: 100007, mode: "0755", disk_uid: 7, disk_gid: 7 },
      ],
      chowns: [
        { name: "a", ok: true, errno: null, uid: 100005, gid: 100000, mode: "0644", disk_uid: 5, disk_gid: 0 },
        { name: "b", ok: false, errno: "EOVERFLOW", uid: null, gid: null, mode: null, disk_uid: null, disk_gid: null },
        { name: "c", ok: false, errno: "EOVERFLOW", uid: null, gid: null, mode: null, disk_uid: null, disk_gid: null },
      ],
    });
  });

  it.each([
    ["userns init → EPERM (rule 43)", { userns: "init" }, "mount_setattr", "EPERM"],
    ["userns netns → EINVAL (rule 43)", { userns: "netns" }, "mount_setattr", "EINVAL"],
    ["userns file → EINVAL (rule 43)", { userns: "file" }, "mount_setattr", "EINVAL"],
    ["unwritten uid_map → EINVAL (rule 44)", { uid_map: null }, "mount_setattr", "EINVAL"],
    ["unwritten gid_map → EINVAL (rule 44)", { gid_map: null }, "mount_setattr", "EINVAL"],
    ["ramfs → EINVAL (rule 47)", { fs: "ramfs" }, "mount_setattr", "EINVAL"],
    ["source attached → EINVAL (rule 41)", { source: "attached" }, "mount_setattr", "EINVAL"],
    [
      "attached with the initial namespace: EPERM comes first",
      { source: "attached", userns: "init" },
      "mount_setattr",
      "EPERM",
    ],
    ["an invalid uid_map fails its write", { uid_map: "0 0 0\n" }, "uid_map", "EINVAL"],
    ["an overlapping gid_map fails its write", { gid_map: "0 100000 10\n5 200000 10\n" }, "gid_map", "EINVAL"],
    ["bad setgroups text", { setgroups: "maybe" }, "setgroups", "EINVAL"],
  ] as const)("%s", (_n, over, step, errno) => {
    const r = predictMountCase({ ...base, ...over });
    expect([r.ok, r.step, r.errno, r.mount_setattr?.ok ?? null]).toEqual([
      false,
      step,
      errno,
      step === "mount_setattr" ? false : null,
    ]);
    expect(r.stat).toBeUndefined();
  });

  it("twice → the second mount_setattr is EPERM (rule 42), the case still succeeds", () => {
    const r = predictMountCase({ ...base, twice: true });
    expect([r.ok, r.mount_setattr_again]).toEqual([true, { ok: false, errno: "EPERM" }]);
  });

  it("userns none: a plain clone shows raw ids and root creates 0:0", () => {
    const r = predictMountCase({
      id: 1,
      userns: "none",
      files: [{ name: "x", uid: 7, gid: 8 }],
      creates: [{ name: "y" }],
    });
    expect(r.mount_setattr).toBeNull();
    expect(r.stat).toEqual([{ name: "x", uid: 7, gid: 8, mode: "0644", disk_uid: 7, disk_gid: 8 }]);
    expect(r.creates?.[0]).toMatchObject({ ok: true, uid: 0, gid: 0, disk_uid: 0 });
  });

  it.each([
    [
      "as {uid,gid} drops caps: a 0755 root owned by (mapped) 0 denies writes",
      { root: { uid: 0, gid: 0, mode: "0755" } },
      { uid: 100001, gid: 100001 },
      "EACCES",
    ],
    [
      "the owner through the mount may create in its 0700 dir",
      { root: { uid: 1, gid: 1, mode: "0700" } },
      { uid: 100001, gid: 100001 },
      null,
    ],
    [
      "a root dir whose owner is unmapped through the mount: EACCES even for a mapped fsuid",
      { root: { uid: 100000, gid: 0, mode: "0777" } },
      { fsuid: 100000, fsgid: 100000 },
      "EACCES",
    ],
    [
      "a 0700 root of someone else: lookup fails first (EACCES), even before EOVERFLOW",
      { root: { uid: 5, gid: 5, mode: "0700" } },
      { uid: 7, gid: 7 },
      "EACCES",
    ],
    [
      "fsuid unmapped: EOVERFLOW before permission",
      { root: { uid: 5, gid: 5, mode: "0755" } },
      { fsuid: 7, fsgid: 7 },
      "EOVERFLOW",
    ],
  ] as const)("creates: %s", (_n, over, as, errno) => {
    const r = predictMountCase({ ...base, ...over, creates: [{ name: "n", as }] });
    expect(r.creates?.[0]?.errno ?? null).toBe(errno);
  });

  it("creates then chowns in order, EEXIST for an existing name, ENOENT for a missing parent", () => {
    const r = predictMountCase({
      ...base,
      files: [{ name: "f" }],
      creates: [
        { name: "f", as: { fsuid: 100000, fsgid: 100000 } },
        { name: "nodir/x", as: { fsuid: 100000, fsgid: 100000 } },
        { name: "g", as: { fsuid: 100000, fsgid: 100000 } },
      ],
      chowns: [
        { name: "g", uid: 100003, gid: 100004 },
        { name: "missing", uid: 100000, gid: 100000 },
      ],
    });
    expect(r.creates?.map((x) => x.errno)).toEqual(["EEXIST", "ENOENT", null]);
    expect(r.chowns?.map((x) => [x.errno, x.disk_uid, x.disk_gid])).toEqual([
      [null, 3, 4],
      ["ENOENT", null, null],
    ]);
  });

  it("reidmap replaces the mapping: on-disk 0 shows as 200000 (spec §8.6)", () => {
    const r = predictMountCase({
      ...base,
      files: [{ name: "f" }],
      reidmap: { uid_map: "0 200000 65536", gid_map: "0 200000 65536" },
    });
    expect(r.reidmap).toEqual({
      ok: true,
      errno: null,
      stat: [{ name: "f", uid: 200000, gid: 200000, mode: "0644", disk_uid: 0, disk_gid: 0 }],
    });
    const bad = predictMountCase({ ...base, reidmap: { uid_map: M, gid_map: null } });
    expect(bad.reidmap).toEqual({ ok: false, errno: "EINVAL", stat: null });
  });

  it("a recursive clone with recursive setattr idmaps the submount too; without, it shows raw ids", () => {
    const sub = { name: "s", uid: 5, gid: 5 };
    const both = predictMountCase({ ...base, submount: sub, recursive: true, setattr_recursive: true });
    expect(both.stat).toEqual([{ name: "s", uid: 100005, gid: 100005, mode: "1777", disk_uid: 5, disk_gid: 5 }]);
    const top = predictMountCase({ ...base, submount: sub, recursive: true });
    expect(top.stat?.[0]).toMatchObject({ uid: 5, gid: 5, mode: "1777" });
    const flat = predictMountCase({ ...base, submount: sub });
    expect(flat.stat?.[0]).toMatchObject({ uid: 100000, gid: 100000, mode: "0755", disk_uid: 5 });
  });

  it.each([
    ["not JSON", "{", "not JSON"],
    ["not an object", "[1]", "JSON object"],
    ["a bad userns", '{"id":"x","userns":"bogus"}', "userns must be one of"],
    ["a bad mode", '{"id":"x","files":[{"name":"a","mode":"9"}]}', "mode must be"],
    ["a file in a missing dir", '{"id":"x","files":[{"name":"a/b"}]}', "parent directory"],
    ["as mixing both forms", '{"id":"x","creates":[{"name":"a","as":{"uid":1,"fsuid":1}}]}', "mixes"],
  ])("malformed: %s → stage input", (_n, line, msg) => {
    const r = predictMountCaseLine(line);
    expect(r.stage).toBe("input");
    expect(r.ok).toBeNull();
    expect(r.error).toContain(msg);
  });
});
