/**
 * The campaign's generators: deterministic per seed, and covering every input
 * field of case-formats §1 with the edge cases the issue lists.
 */
import { describe, expect, it } from "vitest";
import { shrinkCandidates } from "../../lib/verify/campaign.js";
import { parseMapCase } from "../../lib/verify/cases.js";
import { compareResults } from "../../lib/verify/compare.js";
import { generateCase, generateCases, Rng } from "../../lib/verify/generate.js";

const sample = generateCases(7, 4000);
const bytesOf = (c: Record<string, unknown>) =>
  typeof c.lines_hex === "string" ? Buffer.from(c.lines_hex, "hex") : Buffer.from(String(c.lines), "utf8");
const lineCount = (c: Record<string, unknown>) => bytesOf(c).toString("latin1").replace(/\n$/, "").split("\n").length;
const roleOf = (v: unknown) => (typeof v === "object" && v !== null ? (v as { role: string }).role : v);

describe("case generators", () => {
  it("are deterministic for a seed and differ across seeds", () => {
    expect(generateCases(7, 50)).toEqual(generateCases(7, 50));
    expect(generateCase(7, 10)).toEqual(sample[10]);
    expect(generateCases(8, 50)).not.toEqual(generateCases(7, 50));
    const r = new Rng(1);
    const xs = Array.from({ length: 1000 }, () => r.int(0, 9));
    expect(new Set(xs).size).toBe(10);
  });

  it("produce only cases the format accepts (malformed input is a separate concern)", () => {
    for (const c of sample) expect(() => parseMapCase(c)).not.toThrow();
  });

  const has = (pred: (c: Record<string, unknown>) => boolean) => sample.filter(pred).length;
  it.each([
    ["kind uid", (c: Record<string, unknown>) => c.kind === "uid"],
    ["kind gid", (c: Record<string, unknown>) => c.kind === "gid"],
    ["kind projid", (c: Record<string, unknown>) => c.kind === "projid"],
    ["parent string", (c: Record<string, unknown>) => typeof c.parent === "string"],
    [
      "parent object with setgroups",
      (c: Record<string, unknown>) =>
        Array.isArray(c.parent) && c.parent.some((p) => typeof p === "object" && p !== null && "setgroups" in p),
    ],
    ["parent chain of 3", (c: Record<string, unknown>) => Array.isArray(c.parent) && c.parent.length === 3],
    ["parent null", (c: Record<string, unknown>) => c.parent === null],
    [
      "lines_hex with 0xA0",
      (c: Record<string, unknown>) => typeof c.lines_hex === "string" && c.lines_hex.includes("a0"),
    ],
    ["NUL byte", (c: Record<string, unknown>) => bytesOf(c).includes(0)],
    ["empty line", (c: Record<string, unknown>) => /\n\n|^\n/.test(bytesOf(c).toString("latin1"))],
    [
      "no trailing newline",
      (c: Record<string, unknown>) => bytesOf(c).length > 0 && !bytesOf(c).toString("latin1").endsWith("\n"),
    ],
    ["tab/vt/ff/cr separators", (c: Record<string, unknown>) => /[\t\v\f\r]/.test(bytesOf(c).toString("latin1"))],
    ["leading zeros", (c: Record<string, unknown>) => /(^|\s)00+\d/.test(bytesOf(c).toString("latin1"))],
    ["signs", (c: Record<string, unknown>) => /[+-]\d/.test(bytesOf(c).toString("latin1"))],
    ["0x prefix", (c: Record<string, unknown>) => bytesOf(c).toString("latin1").includes("0x")],
    ["numbers past u32", (c: Record<string, unknown>) => /\d{11,}|429496729[6-9]/.test(bytesOf(c).toString("latin1"))],
    ["count 4294967295", (c: Record<string, unknown>) => / 4294967295\n/.test(bytesOf(c).toString("latin1"))],
    ["first 4294967294", (c: Record<string, unknown>) => /^4294967294 /.test(bytesOf(c).toString("latin1"))],
    ["4095 bytes", (c: Record<string, unknown>) => bytesOf(c).length === 4095],
    ["4096 bytes", (c: Record<string, unknown>) => bytesOf(c).length === 4096],
    ["exactly 5 extents", (c: Record<string, unknown>) => lineCount(c) === 5],
    ["exactly 6 extents", (c: Record<string, unknown>) => lineCount(c) === 6],
    ["exactly 340 extents", (c: Record<string, unknown>) => lineCount(c) === 340],
    ["exactly 341 extents", (c: Record<string, unknown>) => lineCount(c) === 341],
    ["writer unprivileged", (c: Record<string, unknown>) => roleOf(c.writer) === "unprivileged"],
    ["writer inside", (c: Record<string, unknown>) => roleOf(c.writer) === "inside"],
    [
      "writer with drop_caps",
      (c: Record<string, unknown>) => typeof c.writer === "object" && "drop_caps" in (c.writer as object),
    ],
    ["writer with uid", (c: Record<string, unknown>) => typeof c.writer === "object" && "uid" in (c.writer as object)],
    ["creator unprivileged", (c: Record<string, unknown>) => roleOf(c.creator) === "unprivileged"],
    [
      "opener split from writer",
      (c: Record<string, unknown>) => c.opener !== undefined && roleOf(c.opener) !== roleOf(c.writer),
    ],
    ["opener inside", (c: Record<string, unknown>) => roleOf(c.opener) === "inside"],
    ["setgroups deny", (c: Record<string, unknown>) => c.setgroups === "deny"],
    ["setgroups 8 bytes", (c: Record<string, unknown>) => c.setgroups === "deny    "],
    ["second same", (c: Record<string, unknown>) => c.second !== undefined && c.second_fd === "same"],
    ["second reopen", (c: Record<string, unknown>) => c.second_fd === "reopen"],
    ["second pwrite0", (c: Record<string, unknown>) => c.second_fd === "pwrite0"],
    ["setgroups_after", (c: Record<string, unknown>) => c.setgroups_after !== undefined],
  ])("cover %s", (_name, pred) => {
    expect(has(pred)).toBeGreaterThan(0);
  });
});

describe("comparing results", () => {
  const base = {
    id: 1,
    ok: true,
    errno: null,
    written: 6,
    stage: "write",
    len: 6,
    readback_from_parent: "x",
    readback_from_init: "x",
    readback_from_inside: "x",
    setgroups_readback: "allow\n",
  };
  it.each([
    ["equal results agree", base, base, []],
    ["a differing read-back", base, { ...base, readback_from_init: "y" }, ["readback_from_init"]],
    ["ids and model extras are not compared", base, { ...base, id: 2, rule: "r", reason: "why" }, []],
    [
      "nested results compare ok/errno/written/stage",
      { ...base, second: { ok: false, errno: "EINVAL", written: -1 } },
      { ...base, second: { ok: false, errno: "EPERM", written: -1 } },
      ["second"],
    ],
    [
      "a missing nested result differs from a present one",
      { ...base, second: { ok: true, errno: null, written: 1 } },
      base,
      ["second"],
    ],
    [
      "two unbuilt cases compare only ok and stage",
      { id: 1, ok: null, stage: "setup", setup_error: "a" },
      { id: 1, ok: null, stage: "setup", errno: null, len: 3, setup_error: "b" },
      [],
    ],
    [
      "setup against write differs",
      { id: 1, ok: null, stage: "setup" },
      base,
      [
        "ok",
        "written",
        "stage",
        "len",
        "readback_from_parent",
        "readback_from_init",
        "readback_from_inside",
        "setgroups_readback",
      ],
    ],
  ])("%s", (_n, k, m, fields) => {
    expect(compareResults(k, m).map((d) => d.field)).toEqual(fields);
  });
});

describe("shrink candidates", () => {
  it("drop optional fields, simplify credentials, lines and numbers", () => {
    const c = {
      id: "x",
      kind: "gid",
      parent: ["0 100000 65536\n"],
      writer: { role: "privileged", drop_caps: ["CAP_SETUID", "CAP_SETFCAP"] },
      setgroups: "deny",
      second: "1 1 1\n",
      second_fd: "reopen",
      lines: "0 100 10\n10 200 10\n",
    };
    const cands = shrinkCandidates(c);
    expect(cands.some((x) => !("setgroups" in x))).toBe(true);
    expect(cands.some((x) => !("second" in x) && !("second_fd" in x))).toBe(true);
    expect(cands.some((x) => x.kind === "uid")).toBe(true);
    expect(cands.some((x) => x.writer === "privileged")).toBe(true);
    expect(
      cands.some(
        (x) => JSON.stringify(x.writer) === JSON.stringify({ role: "privileged", drop_caps: ["CAP_SETFCAP"] }),
      ),
    ).toBe(true);
    expect(cands.some((x) => x.parent === "0 100000 65536\n")).toBe(true);
    expect(cands.some((x) => x.lines === "0 100 10\n")).toBe(true);
    expect(cands.some((x) => x.lines === "0 0 10\n10 200 10\n")).toBe(true);
    // Non-UTF-8 results move to lines_hex.
    const hex = shrinkCandidates({ lines_hex: "30a030a0310a" });
    expect(hex.every((x) => typeof x.lines_hex === "string" || typeof x.lines === "string")).toBe(true);
  });
});
