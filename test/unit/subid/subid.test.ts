/** /etc/subuid parsing, matching by name or uid, overlaps and free-range search (subuid(5)). */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { findFreeRange, findOverlaps, parseSubid, rangesFor, subidReport, subids } from "../../../lib/subid/index.js";

const FILE = `# /etc/subuid
alice:100000:65536

1001:165536:65536
bob:165536:10
  # indented comment
carol:300000:65536
carol:300000:65536
dave:400000:100
dave:400050:100
eve:notanumber:5
frank:1:0
`;

describe("parseSubid", () => {
  it("reads name and numeric owners, skips comments and blank lines, reports bad lines", () => {
    const r = parseSubid(FILE);
    expect(r.entries.map((e) => [e.owner, e.start, e.count, e.line])).toEqual([
      ["alice", 100000, 65536, 2],
      ["1001", 165536, 65536, 4],
      ["bob", 165536, 10, 5],
      ["carol", 300000, 65536, 7],
      ["carol", 300000, 65536, 8],
      ["dave", 400000, 100, 9],
      ["dave", 400050, 100, 10],
    ]);
    expect(r.issues).toEqual([
      { line: 11, column: 5, message: 'start: expected a decimal number below 2^32, got "notanumber"' },
      { line: 12, column: 9, message: "count must be at least 1" },
    ]);
  });

  it.each([
    ["a:1", /got 2 fields/],
    ["a:1:2:3", /4 fields/],
    [":1:2", /bad owner/],
    ["a:-1:2", /start/],
    ["a:4294967295:2", /runs past/],
    ["a:1:4294967296", /count/],
  ])("reports %j", (line, re) => {
    const r = parseSubid(`${line}\n`);
    expect(r.entries).toEqual([]);
    expect(r.issues[0]!.message).toMatch(re);
  });
});

describe("subids(user): matched by name or by uid, as shadow does", () => {
  const subuid = parseSubid(FILE);
  const subgid = parseSubid("bob:500000:65536\n");
  const passwd = [
    { name: "bob", uid: 1001 },
    { name: "alice", uid: 1000 },
  ];

  it("finds bob's lines written as 'bob' and as '1001'", () => {
    const r = subidReport({ name: "bob", uid: 1001 }, { subuid, subgid, passwd });
    expect(r.subuid.map((e) => e.line)).toEqual([4, 5]);
    expect(r.subgid.map((e) => e.start)).toEqual([500000]);
    expect(r.warnings.join("\n")).toMatch(/2 lines for this user/);
  });

  it("flags overlaps within one user (same person by name and uid), duplicates, and between users", () => {
    const all = findOverlaps(
      subuid.entries,
      (a, b) => a === b || (a === "bob" && b === "1001") || (a === "1001" && b === "bob"),
    );
    expect(all.map((o) => [o.type, o.a.line, o.b.line, o.start, o.count])).toEqual([
      ["same-user", 4, 5, 165536, 10],
      ["duplicate", 7, 8, 300000, 65536],
      ["same-user", 9, 10, 400050, 50],
    ]);
    const strangers = findOverlaps([...subuid.entries, { owner: "mallory", start: 165540, count: 2, line: 99 }]);
    const between = strangers.filter((o) => o.type === "between-users");
    expect(between.map((o) => [o.a.owner, o.b.owner, o.start, o.count])).toContainEqual(["bob", "mallory", 165540, 2]);
    expect(between[0]!.message).toMatch(/share ids/);
  });

  it("warns when the user's own uid lies inside its subuid range", () => {
    const r = subidReport(
      { name: "zed", uid: 100005 },
      { subuid: parseSubid("zed:100000:65536\n"), subgid: parseSubid("") },
    );
    expect(r.warnings.join("\n")).toMatch(/own id 100005/);
  });

  it("reads the files from disk", () => {
    const dir = mkdtempSync(join(tmpdir(), "userns-subid-"));
    try {
      writeFileSync(join(dir, "subuid"), "alice:100000:65536\n1001:200000:10\n");
      writeFileSync(join(dir, "subgid"), "alice:100000:65536\n");
      writeFileSync(join(dir, "passwd"), "alice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n");
      const paths = { subuid: join(dir, "subuid"), subgid: join(dir, "subgid"), passwd: join(dir, "passwd") };
      expect(subids("alice", paths).subuid.map((e) => e.start)).toEqual([100000]);
      expect(subids("bob", paths).subuid.map((e) => e.start)).toEqual([200000]);
      expect(subids(1001, paths).user).toEqual({ name: "bob", uid: 1001 });
      expect(subids("nobody-here", { ...paths, subuid: join(dir, "missing") }).subuid).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("rangesFor matches either form", () => {
    expect(rangesFor(subuid.entries, { uid: 1001 }).map((e) => e.owner)).toEqual(["1001"]);
    expect(rangesFor(subuid.entries, { name: "bob", uid: 1001 }).map((e) => e.owner)).toEqual(["1001", "bob"]);
  });
});

describe("findFreeRange", () => {
  it.each([
    { taken: [], size: 65536, opts: {}, want: 100000 },
    { taken: [{ start: 100000, count: 65536 }], size: 65536, opts: {}, want: 165536 },
    {
      taken: [
        { start: 100000, count: 10 },
        { start: 100020, count: 10 },
      ],
      size: 10,
      opts: {},
      want: 100010,
    },
    {
      taken: [
        { start: 100000, count: 10 },
        { start: 100020, count: 10 },
      ],
      size: 11,
      opts: {},
      want: 100030,
    },
    { taken: [{ start: 0, count: 200000 }], size: 65536, opts: { align: 65536 }, want: 262144 },
    { taken: [], size: 1, opts: { min: 4294967294 }, want: 4294967294 },
    { taken: [], size: 2, opts: { min: 4294967294 }, want: undefined },
    { taken: [{ start: 100000, count: 4294867295 }], size: 1, opts: {}, want: undefined },
  ])("size $size over $taken → $want", ({ taken, size, opts, want }) => {
    expect(findFreeRange(size, { taken, ...opts })?.start).toBe(want);
  });

  it("property: the range found overlaps nothing, respects min and max, and nothing lower fits", () => {
    const ranges = fc.array(
      fc.record({ start: fc.integer({ min: 0, max: 2_000_000 }), count: fc.integer({ min: 1, max: 200_000 }) }),
      { maxLength: 12 },
    );
    fc.assert(
      fc.property(
        ranges,
        fc.integer({ min: 1, max: 300_000 }),
        fc.integer({ min: 0, max: 500_000 }),
        (taken, size, min) => {
          const r = findFreeRange(size, { taken, min, max: 3_000_000 });
          const free = (s: number) =>
            s >= min &&
            s + size - 1 <= 3_000_000 &&
            taken.every((t) => s + size - 1 < t.start || s > t.start + t.count - 1);
          if (r === undefined) {
            // nothing fits: every start from min up to the max is blocked (checked at the candidates that matter)
            const cands = [min, ...taken.map((t) => t.start + t.count)].filter((s) => s >= min);
            expect(cands.some(free)).toBe(false);
            return;
          }
          expect(free(r.start)).toBe(true);
          const lower = [min, ...taken.map((t) => t.start + t.count)].filter((s) => s >= min && s < r.start);
          expect(lower.some(free)).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });
});
