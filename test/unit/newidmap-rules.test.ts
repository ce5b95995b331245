/**
 * newuidmap's and newgidmap's own rules (shadow's verify_range, have_range,
 * get_map_ranges and the caller checks), as the pure rule function, and
 * `userns check` judging a map as its caller would write it.
 */
import { describe, expect, it } from "vitest";
import { type CallerIdentity, checkMap } from "../../lib/cli/check.js";
import { runOptions, unmappedNote } from "../../lib/cli/run.js";
import { IdMap } from "../../lib/model/idmap.js";
import { coveredBy, type NewidmapCaller, newidmapVerdict } from "../../lib/subid/newidmap.js";

const alice: NewidmapCaller = { uid: 1001, gid: 1001, passwd: { name: "alice", uid: 1001, gid: 1001 } };
const ranges = [{ start: 300000, count: 65536 }];

describe("newuidmap/newgidmap rules", () => {
  it("accepts ranges inside the caller's subordinate ranges, and the single own id", () => {
    expect(newidmapVerdict("uid", IdMap.of([0, 300000, 65536]), alice, ranges)).toEqual({
      ok: true,
      setgroupsDeny: false,
    });
    expect(newidmapVerdict("uid", IdMap.of([0, 1001, 1], [1, 300000, 100]), alice, ranges).ok).toBe(true);
  });

  it("refuses a range outside them, naming the caller's ranges, the line and what would work", () => {
    const v = newidmapVerdict("uid", IdMap.of([0, 300000, 10], [10, 200000, 10]), alice, ranges);
    expect(v).toMatchObject({ ok: false, rule: "subid_range", line: 2 });
    if (v.ok) return;
    expect(v.reason).toContain("alice's ranges in /etc/subuid: 300000-365535 (65536 ids)");
    expect(v.suggestion).toBe(
      "use --map-users auto (0:300000:65536), or ask an administrator for the range (usermod --add-subuids 200000-200009 alice)",
    );
  });

  it("asks only for the part the ranges do not cover", () => {
    const v = newidmapVerdict("uid", IdMap.of([0, 300000, 70000]), alice, ranges);
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.suggestion).toContain("--add-subuids 365536-369999 alice");
  });

  it("the own id is allowed only as a single id", () => {
    expect(newidmapVerdict("uid", IdMap.of([0, 1001, 2]), alice, ranges)).toMatchObject({
      ok: false,
      rule: "subid_range",
    });
    // newgidmap: the own gid is the real gid; with no range from /etc/subgid it writes setgroups deny itself.
    expect(newidmapVerdict("gid", IdMap.of([0, 1001, 1]), alice, ranges)).toEqual({ ok: true, setgroupsDeny: true });
  });

  it("adjacent lines of the caller count as one range (have_range walks on), a gap does not", () => {
    const split = [
      { start: 300000, count: 100 },
      { start: 300100, count: 100 },
    ];
    expect(coveredBy(split, 300050, 100)).toBe(true);
    expect(coveredBy([split[0]!, { start: 300101, count: 100 }], 300050, 100)).toBe(false);
    expect(coveredBy(split, 300000, 0)).toBe(false);
  });

  it("refuses a caller without a passwd entry, or whose real gid is not its passwd gid", () => {
    expect(newidmapVerdict("uid", IdMap.of([0, 300000, 1]), { ...alice, passwd: undefined }, ranges)).toMatchObject({
      ok: false,
      rule: "no_passwd_entry",
    });
    expect(newidmapVerdict("uid", IdMap.of([0, 300000, 1]), { ...alice, gid: 5 }, ranges)).toMatchObject({
      ok: false,
      rule: "passwd_gid_mismatch",
    });
    expect(
      newidmapVerdict("uid", IdMap.of([0, 300000, 1]), { ...alice, gid: 5, grantAuxGroupSubids: true }, ranges).ok,
    ).toBe(true);
  });

  it("refuses ranges that end past 32 bits", () => {
    // lower + count = 2^32: past UINT_MAX. Ending exactly at 4294967295 is allowed (shadow compares with >).
    expect(newidmapVerdict("uid", IdMap.of([0, 4294967290, 5]), alice, [{ start: 4294967000, count: 295 }]).ok).toBe(
      true,
    );
    const map = IdMap.of([0, 4294967291, 5]);
    expect(newidmapVerdict("uid", map, alice, [{ start: 4294967000, count: 295 }])).toMatchObject({
      ok: false,
      rule: "id_overflow",
    });
  });
});

describe("userns check as the caller (no --writer)", () => {
  const user: CallerIdentity = {
    privileged: false,
    euid: 1001,
    egid: 1001,
    uidMap: IdMap.IDENTITY,
    gidMap: IdMap.IDENTITY,
    newidmap: { caller: alice, subuid: ranges, subgid: ranges },
  };
  const root: CallerIdentity = { ...user, privileged: true, euid: 0, egid: 0 };
  const opts = { kind: "uid", setgroups: "allow" };

  it("an unprivileged caller: judged with newuidmap's rules against its own ranges", () => {
    expect(checkMap("0 100000 65536", opts, () => user)).toMatchObject({
      ok: false,
      rule: "subid_range",
      writer: "newuidmap",
    });
    expect(checkMap("0 300000 65536", opts, () => user)).toMatchObject({ ok: true, writer: "newuidmap" });
  });

  it("an unprivileged caller's self-map is written by itself", () => {
    expect(checkMap("0 1001 1", opts, () => user)).toMatchObject({ ok: true, writer: "self" });
  });

  it("a privileged caller writes directly", () => {
    expect(checkMap("0 100000 65536", opts, () => root)).toMatchObject({ ok: true, writer: "direct" });
  });

  it("a hypothetical writer (--parent, --uid or --gid given) is judged as before: privileged unless told", () => {
    expect(checkMap("0 100000 65536", { ...opts, uid: "0" }, () => user)).toMatchObject({ ok: true });
    expect(checkMap("0 100000 65536", { ...opts, uid: "0" }, () => user).writer).toBeUndefined();
  });

  it("--writer newuidmap checks the caller's ranges even for a privileged caller", () => {
    expect(checkMap("0 100000 65536", { ...opts, writer: "newuidmap" }, () => root)).toMatchObject({
      ok: false,
      rule: "subid_range",
    });
  });
});

describe("userns run without --user", () => {
  it("says the program runs as nobody when the map leaves the caller unmapped, and how to choose root", () => {
    const opts = runOptions({ mapUsers: ["0:300000:65536"], mapGroups: ["0:300000:65536"] });
    expect(unmappedNote(opts, 1001, 1001)).toBe(
      "userns: note: your uid 1001 is not in the uid map and your gid 1001 is not in the gid map: the program runs as nobody (65534) inside; choose an identity with --user/--group (e.g. --user 0 --group 0 for root inside)\n",
    );
  });

  it("is silent when --user/--group choose, or the caller is mapped", () => {
    expect(unmappedNote(runOptions({ mapUsers: ["0:300000:10"], user: "0" }), 1001, 1001)).toBeUndefined();
    expect(unmappedNote(runOptions({ mapUsers: ["0:1001:1"], mapGroups: ["0:1001:1"] }), 1001, 1001)).toBeUndefined();
    // -r maps the caller's own ids (whoever runs the test).
    expect(unmappedNote(runOptions({ mapRootUser: true }), process.geteuid!(), process.getegid!())).toBeUndefined();
  });
});
