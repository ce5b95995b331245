import { describe, expect, it } from "vitest";
import {
  type Cred,
  createUserNs,
  cred,
  dropCaps,
  FULL_CAPS,
  formatSetgroups,
  IdMap,
  INIT_USER_NS,
  type MapFile,
  type MapKind,
  mapWrite,
  NO_CAPS,
  nsCapable,
  procFileMayWrite,
  setgroupsWrite,
  taskDumpOwner,
  type UserNs,
  usernsMaySetgroups,
  validateMapRequest,
} from "../../lib/model/index.js";

const root = cred(INIT_USER_NS, 0, 0, FULL_CAPS);
const nobody = cred(INIT_USER_NS, 65534, 65534, NO_CAPS);

function makeChild(creator: Cred, id = 1): UserNs {
  const r = createUserNs(
    { ns: creator.ns, euid: creator.euid, egid: creator.egid, hasSetfcap: creator.caps.has("CAP_SETFCAP") },
    id,
  );
  if (!r.ok) throw new Error(r.reason);
  return r.ns;
}
/** The child's own credentials right after unshare: same kernel ids, every capability there. */
const inside = (ns: UserNs, creator: Cred): Cred => cred(ns, creator.euid, creator.egid, FULL_CAPS);
const open = (kind: MapKind, target: UserNs, opener: Cred): MapFile => ({ kind, target, opener, pos: 0 });

describe("mapWrite: the order of checks in proc_*_map_write + map_write (spec §2.1, §11)", () => {
  const ns = makeChild(root);
  it.each<[string, () => ReturnType<typeof mapWrite>, string | null, string | null]>([
    [
      "a plain privileged write",
      () => mapWrite({ file: open("uid", ns, root), writer: root, data: "0 0 10\n" }),
      null,
      null,
    ],
    [
      "rule 5: the initial namespace's map",
      () => mapWrite({ file: open("uid", INIT_USER_NS, root), writer: root, data: "0 0 1" }),
      "EPERM",
      "initial_ns",
    ],
    [
      "rule 6: init writes a grandchild's map",
      () => {
        const a = mapWrite({ file: open("uid", ns, root), writer: root, data: "0 0 10" });
        const b = mapWrite({ file: open("gid", a.ns, root), writer: root, data: "0 0 10" });
        const grand = makeChild(inside(b.ns, cred(b.ns, 0, 0, FULL_CAPS)), 2);
        return mapWrite({ file: open("uid", grand, root), writer: root, data: "0 0 1" });
      },
      "EPERM",
      "opener_ns",
    ],
    [
      "rule 3: lseek(1) then write",
      () => mapWrite({ file: { ...open("uid", ns, root), pos: 1 }, writer: root, data: "0 0 1" }),
      "EINVAL",
      "ppos",
    ],
    [
      "rule 3: pwrite at offset 0",
      () => mapWrite({ file: open("uid", ns, root), writer: root, data: "0 0 1", pwrite: true }),
      "ESPIPE",
      "pwrite",
    ],
    [
      "rule 4: 4096 bytes",
      () => mapWrite({ file: open("uid", ns, root), writer: root, data: `0 0 1${" ".repeat(4091)}` }),
      "EINVAL",
      "page_size",
    ],
    [
      "the size check (EINVAL) comes before 'already written' (EPERM)",
      () => {
        const a = mapWrite({ file: open("uid", ns, root), writer: root, data: "0 0 1" });
        return mapWrite({ file: open("uid", a.ns, root), writer: root, data: " ".repeat(5000) });
      },
      "EINVAL",
      "page_size",
    ],
    [
      "CAP_SYS_ADMIN of the opener (EPERM) comes before parsing (EINVAL)",
      () => mapWrite({ file: open("uid", ns, nobody), writer: root, data: "garbage" }),
      "EPERM",
      "cap_sys_admin",
    ],
    [
      "projid needs no CAP_SYS_ADMIN, so parsing decides",
      () => mapWrite({ file: open("projid", ns, nobody), writer: nobody, data: "garbage" }),
      "EINVAL",
      "syntax",
    ],
    [
      "parsing (EINVAL) comes before permission (EPERM)",
      () => {
        const c = makeChild(cred(INIT_USER_NS, 1000, 1000, NO_CAPS));
        const o = cred(INIT_USER_NS, 1000, 1000, NO_CAPS);
        return mapWrite({ file: open("uid", c, o), writer: o, data: "0 0 10\n0 0 10" });
      },
      "EINVAL",
      "mappings_overlap",
    ],
  ])("%s", (_n, run, errno, rule) => {
    const r = run();
    expect(r.ok ? null : r.errno).toBe(errno);
    expect(r.ok ? null : r.rule).toBe(rule);
  });

  it("rule 1: a second write on the same fd → EINVAL; the first map stays", () => {
    const a = mapWrite({ file: open("uid", ns, root), writer: root, data: "0 0 1\n" });
    expect(a.ok).toBe(true);
    const b = mapWrite({ file: a.file, current: a.ns, writer: root, data: "1 1 1\n" });
    expect(b).toMatchObject({ ok: false, errno: "EINVAL", rule: "ppos" });
    expect(b.ns.uidMap.toString()).toBe("0 0 1\n");
  });

  it("rule 2: a second write on a new fd → EPERM", () => {
    const a = mapWrite({ file: open("uid", ns, root), writer: root, data: "0 0 1\n" });
    const b = mapWrite({ file: open("uid", a.ns, root), current: a.ns, writer: root, data: "0 0 1\n" });
    expect(b).toMatchObject({ ok: false, errno: "EPERM", rule: "map_written" });
  });

  it("rule 20: projid_map needs no capability; a second write → EPERM", () => {
    const c = makeChild(cred(INIT_USER_NS, 65534, 65534, NO_CAPS));
    const a = mapWrite({ file: open("projid", c, nobody), writer: nobody, data: "0 0 4294967295" });
    expect(a.ok).toBe(true);
    const b = mapWrite({ file: open("projid", a.ns, nobody), writer: nobody, data: "0 0 1" });
    expect(b).toMatchObject({ ok: false, errno: "EPERM", rule: "map_written" });
  });

  it("a failed write leaves the fd at 0, so the next write on it is judged afresh", () => {
    const a = mapWrite({ file: open("uid", ns, root), writer: root, data: "0 0 0" });
    expect(a.ok).toBe(false);
    expect(mapWrite({ file: a.file, writer: root, data: "0 0 1" }).ok).toBe(true);
  });
});

describe("new_idmap_permitted and the parent translation (spec §2.4, §2.5)", () => {
  const u65534 = cred(INIT_USER_NS, 65534, 65534, NO_CAPS);
  const own = makeChild(u65534);
  const ownDeny = setgroupsWrite(own, "deny").ns;
  it.each<[string, MapKind, UserNs, Cred, Cred, string, string | null, string | null]>([
    ["rule 14: uid 65534 maps itself once", "uid", own, u65534, u65534, "0 65534 1", null, null],
    ["rule 14: the upper id can be anything", "uid", own, u65534, u65534, "5 65534 1", null, null],
    ["rule 14: count 2", "uid", own, u65534, u65534, "0 65534 2", "EPERM", "new_idmap_permitted"],
    ["rule 14: another uid", "uid", own, u65534, u65534, "0 1000 1", "EPERM", "new_idmap_permitted"],
    [
      "rule 14/16: root of the parent, without SETFCAP",
      "uid",
      own,
      u65534,
      u65534,
      "0 0 1",
      "EPERM",
      "verify_root_map",
    ],
    ["rule 14: two lines", "uid", own, u65534, u65534, "0 65534 1\n1 1 1", "EPERM", "new_idmap_permitted"],
    ["rule 15: gid under setgroups allow", "gid", own, u65534, u65534, "0 65534 1", "EPERM", "new_idmap_permitted"],
    ["rule 15: gid after setgroups deny", "gid", ownDeny, u65534, u65534, "0 65534 1", null, null],
    [
      "rule 17: fd opened by root, written by uid 65534, 0 0 10",
      "uid",
      makeChild(root),
      u65534,
      root,
      "0 0 10",
      "EPERM",
      "new_idmap_permitted",
    ],
    ["rule 17: same fd, 0 0 1 is judged on the opener", "uid", makeChild(root), u65534, root, "0 0 1", null, null],
    ["privileged writer and opener", "uid", makeChild(root), root, root, "0 100000 65536\n65536 0 1", null, null],
  ])("%s", (_n, kind, ns, writer, opener, data, errno, rule) => {
    const r = mapWrite({ file: open(kind, ns, opener), writer, data });
    expect(r.ok ? null : r.errno).toBe(errno);
    expect(r.ok ? null : r.rule).toBe(rule);
  });

  it("rule 16: a creator without effective CAP_SETFCAP writes 5 0 1 to its own map → EPERM", () => {
    const creator = cred(INIT_USER_NS, 0, 0, dropCaps(FULL_CAPS, ["CAP_SETFCAP"]));
    const c = makeChild(creator);
    const me = inside(c, creator);
    expect(mapWrite({ file: open("uid", c, me), writer: me, data: "5 0 1" })).toMatchObject({
      errno: "EPERM",
      rule: "verify_root_map",
    });
    // The parent with CAP_SETFCAP may still map 0 into such a child; without it, only non-zero lowers.
    expect(mapWrite({ file: open("uid", c, root), writer: root, data: "0 0 1" }).ok).toBe(true);
    expect(mapWrite({ file: open("uid", c, creator), writer: creator, data: "0 0 10" })).toMatchObject({
      rule: "verify_root_map",
    });
    expect(mapWrite({ file: open("uid", c, creator), writer: creator, data: "0 1 10" }).ok).toBe(true);
  });

  it("rule 19: inside the namespace only the single-line form works", () => {
    const c = makeChild(root);
    const me = inside(c, root);
    expect(mapWrite({ file: open("uid", c, me), writer: me, data: "0 0 100" })).toMatchObject({
      errno: "EPERM",
      rule: "new_idmap_permitted",
    });
    expect(mapWrite({ file: open("uid", c, me), writer: me, data: "0 0 1" }).ok).toBe(true);
  });

  it("the opener inside, writing through root: judged on the opener (spec §2.4)", () => {
    const creator = cred(INIT_USER_NS, 65534, 65534, NO_CAPS);
    const c = makeChild(creator);
    const me = inside(c, creator);
    expect(mapWrite({ file: open("uid", c, me), writer: root, data: "0 1000 10" }).ok).toBe(false);
    expect(mapWrite({ file: open("uid", c, me), writer: root, data: "0 65534 1" }).ok).toBe(true);
  });

  describe("rule 18: the lower range must fit in one parent extent", () => {
    const a0 = makeChild(root);
    const text = "0 100000 1000\n1000 200000 1000";
    const a1 = mapWrite({ file: open("uid", a0, root), writer: root, data: text }).ns;
    const a = mapWrite({ file: open("gid", a1, root), writer: root, data: text }).ns;
    const aRoot = cred(a, 100000, 100000, FULL_CAPS);
    const b = makeChild(aRoot, 2);
    it.each<[string, string, boolean, string]>([
      ["0 0 1000", "0 0 1000", true, "0 100000 1000\n"],
      ["0 1000 1000", "0 1000 1000", true, "0 200000 1000\n"],
      ["two lines", "0 0 1000\n1000 1000 1000", true, "0 100000 1000\n1000 200000 1000\n"],
      ["crossing the boundary", "0 500 1000", false, ""],
      ["all mapped but across two extents", "0 0 2000", false, ""],
      ["0 999 2", "0 999 2", false, ""],
      ["not mapped", "0 5000 1", false, ""],
    ])("%s", (_n, data, okWanted, installed) => {
      const r = mapWrite({ file: open("uid", b, aRoot), writer: aRoot, data });
      expect(r.ok).toBe(okWanted);
      if (r.ok) expect(r.installed.toString()).toBe(installed);
      else expect(r).toMatchObject({ errno: "EPERM", rule: "map_id_range_down" });
    });
    it.each<[string, string, number]>([
      // The first missing line in written order, at every size: map_write translates
      // before sort_idmaps, while forward[] is still in the order insert_extent filled it.
      ["5 lines: write order", "10 5000 1\n0 6000 1\n20 0 1\n30 1 1\n40 2 1", 1],
      ["6 lines: still write order", "10 5000 1\n0 6000 1\n20 0 1\n30 1 1\n40 2 1\n50 3 1", 1],
      ["6 lines, one missing", "60 0 1\n50 1 1\n40 2 1\n30 5000 1\n20 3 1\n10 4 1", 4],
    ])("with several lines, the reason names the first missing line in written order: %s", (_n, data, line) => {
      const r = mapWrite({ file: open("uid", b, aRoot), writer: aRoot, data });
      expect(r).toMatchObject({ ok: false, errno: "EPERM", rule: "map_id_range_down", line });
      expect(r.ok ? "" : r.reason).toMatch(new RegExp(`^line ${line}: lower id \\d+ is not mapped`));
    });
    it("the reason tells straddling from unmapped", () => {
      const r1 = mapWrite({ file: open("uid", b, aRoot), writer: aRoot, data: "0 0 2000" });
      expect(r1.ok ? "" : r1.reason).toContain("across 2 of its extents (0-999, 1000-1999)");
      const r2 = mapWrite({ file: open("uid", b, aRoot), writer: aRoot, data: "0 1500 1000" });
      expect(r2.ok ? "" : r2.reason).toBe(
        "line 1: lower ids 1500-2499: 2000-2499 are not mapped in the parent namespace",
      );
    });
  });
});

describe("setgroups (spec §4, rules 23 and 24)", () => {
  const ns = makeChild(root);
  it.each<[string, UserNs, string, string | null, string | null, string]>([
    ["deny", ns, "deny", null, null, "deny\n"],
    ["allow is a no-op", ns, "allow", null, null, "allow\n"],
    ["7 bytes with spaces", ns, "deny   ", null, null, "deny\n"],
    ["8 bytes", ns, "deny    ", "EINVAL", "setgroups_size", "allow\n"],
    ["denyx", ns, "denyx", "EINVAL", "setgroups_syntax", "allow\n"],
    ["Deny", ns, "Deny", "EINVAL", "setgroups_syntax", "allow\n"],
    ["a NUL ends the text", ns, "deny\u0000x", null, null, "deny\n"],
    ["allow after deny", setgroupsWrite(ns, "deny").ns, "allow", "EPERM", "setgroups_denied", "deny\n"],
    [
      "deny after gid_map",
      mapWrite({ file: open("gid", ns, root), writer: root, data: "0 0 1" }).ns,
      "deny",
      "EPERM",
      "gid_map_written",
      "allow\n",
    ],
    ["deny in the initial namespace", INIT_USER_NS, "deny", "EPERM", "gid_map_written", "allow\n"],
  ])("%s", (_n, target, text, errno, rule, after) => {
    const r = setgroupsWrite(target, text);
    expect(r.ok ? null : r.errno).toBe(errno);
    expect(r.ok ? null : r.rule).toBe(rule);
    expect(formatSetgroups(r.ns)).toBe(after);
  });

  it("a child inherits deny", () => {
    const d = setgroupsWrite(ns, "deny").ns;
    const withMaps = mapWrite({
      file: open("gid", mapWrite({ file: open("uid", d, root), writer: root, data: "0 0 10" }).ns, root),
      writer: root,
      data: "0 0 10",
    }).ns;
    const grand = makeChild(cred(withMaps, 0, 0, FULL_CAPS), 2);
    expect(formatSetgroups(grand)).toBe("deny\n");
  });

  it("rule 24: setgroups(2) needs gid_map written and allow", () => {
    expect(usernsMaySetgroups(ns)).toBe(false);
    const g = mapWrite({ file: open("gid", ns, root), writer: root, data: "0 0 1" }).ns;
    expect(usernsMaySetgroups(g)).toBe(true);
    const d = setgroupsWrite(ns, "deny").ns;
    expect(usernsMaySetgroups(mapWrite({ file: open("gid", d, root), writer: root, data: "0 0 1" }).ns)).toBe(false);
  });
});

describe("cap_capable (spec §1.6) and opening /proc files", () => {
  const child0 = makeChild(cred(INIT_USER_NS, 1000, 1000, NO_CAPS));
  const child1 = mapWrite({ file: open("uid", child0, root), writer: root, data: "0 1000 1" }).ns;
  const child = mapWrite({ file: open("gid", child1, root), writer: root, data: "0 1000 1" }).ns;
  const grand = makeChild(cred(child, 1000, 1000, FULL_CAPS), 2);
  const u1000 = cred(INIT_USER_NS, 1000, 1000, NO_CAPS);
  it.each<[string, Cred, UserNs, boolean]>([
    ["own namespace: the effective set decides", root, INIT_USER_NS, true],
    ["own namespace without the cap", u1000, INIT_USER_NS, false],
    ["the owner has every cap in its child", u1000, child, true],
    ["and in the grandchild through the walk", u1000, grand, true],
    ["root of init has caps in every descendant", root, grand, true],
    ["caps never reach an ancestor", cred(child, 1000, 1000, FULL_CAPS), INIT_USER_NS, false],
    ["another uid is not the owner", cred(INIT_USER_NS, 1001, 1001, NO_CAPS), child, false],
  ])("%s", (_n, c, target, want) => {
    expect(nsCapable(c, target, "CAP_SETUID")).toBe(want);
  });

  it("task_dump_owner: dumpable tasks own their files; others belong to root of mm->user_ns", () => {
    expect(taskDumpOwner({ euid: 1000, egid: 1001, dumpable: true, mmUserNs: INIT_USER_NS })).toEqual({
      uid: 1000,
      gid: 1001,
    });
    expect(taskDumpOwner({ euid: 1000, egid: 1001, dumpable: false, mmUserNs: INIT_USER_NS })).toEqual({
      uid: 0,
      gid: 0,
    });
    const c = mapWrite({ file: open("uid", makeChild(root), root), writer: root, data: "0 100000 10" }).ns;
    expect(taskDumpOwner({ euid: 100005, egid: 5, dumpable: false, mmUserNs: c })).toEqual({ uid: 100000, gid: 0 });
  });

  it("DAC on /proc/PID files: owner, or CAP_DAC_OVERRIDE over mapped owner ids", () => {
    expect(procFileMayWrite(u1000, 1000, 1000)).toBe(true);
    expect(procFileMayWrite(u1000, 0, 0)).toBe(false);
    expect(procFileMayWrite(root, 1000, 1000)).toBe(true);
    expect(procFileMayWrite(cred(INIT_USER_NS, 0, 0, dropCaps(FULL_CAPS, ["CAP_DAC_OVERRIDE"])), 1000, 1000)).toBe(
      false,
    );
  });
});

describe("validateMapRequest (the spawn helper's pre-flight)", () => {
  const two = IdMap.of([0, 100000, 1000], [1000, 200000, 1000]);
  it.each<[string, Parameters<typeof validateMapRequest>[0], string | null, string | null]>([
    [
      "a privileged range in init",
      { kind: "uid", map: "0 100000 65536", parentMap: IdMap.IDENTITY, writer: "privileged", euid: 0, egid: 0 },
      null,
      null,
    ],
    [
      "an IdMap value",
      { kind: "gid", map: IdMap.of([0, 5, 10]), parentMap: IdMap.IDENTITY, writer: "privileged", euid: 0, egid: 0 },
      null,
      null,
    ],
    [
      "unprivileged own uid",
      { kind: "uid", map: "0 1000 1", parentMap: IdMap.IDENTITY, writer: "unprivileged", euid: 1000, egid: 1000 },
      null,
      null,
    ],
    [
      "unprivileged range",
      { kind: "uid", map: "0 1000 2", parentMap: IdMap.IDENTITY, writer: "unprivileged", euid: 1000, egid: 1000 },
      "EPERM",
      "new_idmap_permitted",
    ],
    [
      "unprivileged gid needs deny",
      { kind: "gid", map: "0 1000 1", parentMap: IdMap.IDENTITY, writer: "unprivileged", euid: 1000, egid: 1000 },
      "EPERM",
      "new_idmap_permitted",
    ],
    [
      "unprivileged gid with deny",
      {
        kind: "gid",
        map: "0 1000 1",
        parentMap: IdMap.IDENTITY,
        writer: "unprivileged",
        euid: 1000,
        egid: 1000,
        setgroups: "deny",
      },
      null,
      null,
    ],
    [
      "straddling the parent",
      { kind: "uid", map: "0 0 2000", parentMap: two, writer: "privileged", euid: 0, egid: 0 },
      "EPERM",
      "map_id_range_down",
    ],
    [
      "unmapped in the parent",
      { kind: "uid", map: "0 100000 65536", parentMap: two, writer: "privileged", euid: 0, egid: 0 },
      "EPERM",
      "map_id_range_down",
    ],
    [
      "no SETFCAP and lower 0",
      {
        kind: "uid",
        map: "0 0 10",
        parentMap: IdMap.IDENTITY,
        writer: "privileged",
        euid: 0,
        egid: 0,
        capSetfcap: false,
      },
      "EPERM",
      "verify_root_map",
    ],
    [
      "inside, single line",
      { kind: "uid", map: "0 0 1", parentMap: IdMap.IDENTITY, writer: "privileged", euid: 0, egid: 0, inside: true },
      null,
      null,
    ],
    [
      "inside, range",
      { kind: "uid", map: "0 0 10", parentMap: IdMap.IDENTITY, writer: "privileged", euid: 0, egid: 0, inside: true },
      "EPERM",
      "new_idmap_permitted",
    ],
    [
      "another owner",
      {
        kind: "uid",
        map: "0 1000 1",
        parentMap: IdMap.IDENTITY,
        writer: "unprivileged",
        euid: 1000,
        egid: 1000,
        ownerUid: 0,
      },
      "EPERM",
      "cap_sys_admin",
    ],
    [
      "bad text",
      { kind: "uid", map: "0 0", parentMap: IdMap.IDENTITY, writer: "privileged", euid: 0, egid: 0 },
      "EINVAL",
      "syntax",
    ],
  ])("%s", (_n, args, errno, rule) => {
    const v = validateMapRequest(args);
    expect(v.ok ? null : v.errno).toBe(errno);
    expect(v.ok ? null : v.rule).toBe(rule);
    if (v.ok) expect(v.lines).toBe(v.map.toString());
  });

  it("names the unmapped range in words", () => {
    const v = validateMapRequest({
      kind: "uid",
      map: "0 100000 65536",
      parentMap: two,
      writer: "privileged",
      euid: 0,
      egid: 0,
    });
    expect(v).toMatchObject({
      ok: false,
      line: 1,
      reason: "line 1: lower ids 100000-165535 are not mapped in the parent namespace",
    });
  });

  it("lines is the normalised text, never over 4095 bytes", () => {
    const text = `${"0".repeat(4000)}7 8 9`;
    const v = validateMapRequest({
      kind: "uid",
      map: text,
      parentMap: IdMap.IDENTITY,
      writer: "privileged",
      euid: 0,
      egid: 0,
    });
    expect(v).toMatchObject({ ok: true, lines: "7 8 9\n" });
  });
});
