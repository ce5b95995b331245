/**
 * The batch predictor against the real kernel: hand-written map-write cases
 * (case-formats §1) run through the library's kernel runner,
 * runMapCasesOnKernel (real processes, unshare, /proc writes), and through the
 * model; every compared field must be equal.
 */
import { beforeAll, expect, it } from "vitest";
import { predictMapWriteCaseLine } from "../../lib/model/index.js";
import { COMPARED_FIELDS, runMapCasesOnKernel } from "../../lib/verify/index.js";
import { describeKernel } from "../helpers/kernel.js";
import { sampleMapCases } from "../helpers/mapcase-gen.js";

const desc = (n: number) =>
  Array.from({ length: n }, (_, i) => `${(n - 1 - i) * 10} ${(n - 1 - i) * 10} 10`).join("\n");
const many = (n: number) => Array.from({ length: n }, (_, i) => `${i} ${i} 1`).join("\n");
const two = "0 100000 1000\n1000 200000 1000";

const cases: Record<string, unknown>[] = [
  // parsing (rules 4, 7-13)
  { id: "format example", lines: "0 100000 10\n10 100010 10\n" },
  { id: "no final newline", lines: "0 100000 65536" },
  { id: "whitespace set", lines: "\t0\v1\f2\r\n" },
  { id: "leading zeros", lines: "010 0 1" },
  { id: "wrap 2^32", lines: "4294967296 0 1" },
  { id: "wrap 2^64+5", lines: "18446744073709551621 7 1" },
  { id: "nul ends input", lines: "0 0 1\n\u00001 1 1\n" },
  { id: "0xA0 separator", lines_hex: "30a035203130" },
  { id: "utf-8 nbsp", lines: "0\u00a05 1" },
  { id: "0x85 not space", lines_hex: "3085352031" },
  { id: "4095 bytes", lines: `0 0 1${" ".repeat(4089)}\n` },
  { id: "4096 bytes", lines: `0 0 1${" ".repeat(4090)}\n` },
  { id: "empty", lines: "" },
  { id: "empty line end", lines: "0 0 1\n\n" },
  { id: "empty line first", lines: "\n0 0 1\n" },
  { id: "hex", lines: "0x10 0 1" },
  { id: "plus", lines: "+1 0 1" },
  { id: "fourth field", lines: "0 0 1 2" },
  { id: "two fields", lines: "0 0" },
  { id: "trailing separator", lines: "0 0 " },
  { id: "first invalid", lines: "4294967295 0 1" },
  { id: "lower invalid", lines: "0 4294967295 1" },
  { id: "count 0", lines: "0 0 0" },
  { id: "largest", lines: "0 0 4294967295" },
  { id: "1 0 4294967295", lines: "1 0 4294967295" },
  { id: "upper wraps", lines: "4294967294 0 2" },
  { id: "overlap upper", lines: "0 1000 10\n5 2000 10" },
  { id: "adjacent", lines: "0 1000 10\n10 1010 10" },
  { id: "swap", lines: "0 10 10\n10 0 10" },
  { id: "340 lines", lines: many(340) },
  { id: "341 lines", lines: many(341) },
  // print order (rule 22)
  { id: "5 descending", lines: desc(5) },
  { id: "6 descending", lines: desc(6) },
  // fds (rules 1-3)
  { id: "second same fd", lines: "0 0 1\n", second: "1 1 1\n" },
  { id: "second new fd", lines: "0 0 1\n", second: "0 0 1\n", second_fd: "reopen" },
  { id: "pwrite", lines: "0 0 1\n", second: "1 1 1\n", second_fd: "pwrite0" },
  { id: "failed first then same fd", lines: "0 0 0", second: "0 0 1" },
  // privilege (rules 14-20)
  { id: "unpriv own uid", writer: "unprivileged", lines: "0 1000 1" },
  { id: "unpriv upper anything", writer: "unprivileged", lines: "5 1000 1" },
  { id: "unpriv count 2", writer: "unprivileged", lines: "0 1000 2" },
  { id: "unpriv root", writer: "unprivileged", lines: "0 0 1" },
  { id: "unpriv other uid", writer: { role: "unprivileged", uid: 1001, gid: 1001 }, lines: "0 1000 1" },
  { id: "unpriv gid allow", writer: "unprivileged", kind: "gid", lines: "0 1000 1" },
  { id: "unpriv gid deny", writer: "unprivileged", kind: "gid", lines: "0 1000 1", setgroups: "deny" },
  {
    id: "unpriv projid",
    writer: "unprivileged",
    kind: "projid",
    lines: "0 0 4294967295",
    second: "0 0 1",
    second_fd: "reopen",
  },
  { id: "unpriv opens root child", writer: "unprivileged", creator: "privileged", lines: "0 1000 1" },
  { id: "root opens unpriv child", writer: "privileged", creator: "unprivileged", lines: "0 0 100" },
  { id: "no setfcap parent", writer: { role: "privileged", drop_caps: ["CAP_SETFCAP"] }, lines: "0 0 10" },
  { id: "no setfcap parent lower 1", writer: { role: "privileged", drop_caps: ["CAP_SETFCAP"] }, lines: "0 1 10" },
  { id: "inside single", writer: "inside", lines: "0 0 1" },
  { id: "inside range", writer: "inside", lines: "0 0 100" },
  {
    id: "inside no setfcap",
    writer: "inside",
    creator: { role: "privileged", drop_caps: ["CAP_SETFCAP"] },
    lines: "5 0 1",
  },
  { id: "inside gid", writer: "inside", kind: "gid", lines: "0 0 1" },
  { id: "inside gid deny", writer: "inside", kind: "gid", lines: "0 0 1", setgroups: "deny" },
  {
    id: "opener root writer unpriv 10",
    writer: "unprivileged",
    opener: "privileged",
    creator: "privileged",
    lines: "0 0 10",
  },
  {
    id: "opener root writer unpriv 1",
    writer: "unprivileged",
    opener: "privileged",
    creator: "privileged",
    lines: "0 0 1",
  },
  {
    id: "opener inside writer root 10",
    writer: "privileged",
    opener: "inside",
    creator: "unprivileged",
    lines: "0 1000 10",
  },
  {
    id: "opener inside writer root 1",
    writer: "privileged",
    opener: "inside",
    creator: "unprivileged",
    lines: "0 1000 1",
  },
  { id: "writer lacks setuid", writer: { role: "privileged", drop_caps: ["CAP_SETUID"] }, lines: "0 0 10" },
  {
    id: "writer lacks sys_admin but owns",
    writer: { role: "privileged", drop_caps: ["CAP_SYS_ADMIN"] },
    lines: "0 0 10",
  },
  {
    id: "opener lacks sys_admin, not owner",
    writer: { role: "privileged", drop_caps: ["CAP_SYS_ADMIN"] },
    creator: { role: "unprivileged", uid: 0, gid: 0 },
    lines: "0 0 10",
  },
  // parents (rule 18, readbacks)
  { id: "p: fits", parent: two, lines: "0 0 1000" },
  { id: "p: second extent", parent: two, lines: "0 1000 1000" },
  { id: "p: two lines", parent: two, lines: "0 0 1000\n1000 1000 1000" },
  { id: "p: straddle", parent: two, lines: "0 500 1000" },
  { id: "p: all mapped, two extents", parent: two, lines: "0 0 2000" },
  { id: "p: 0 999 2", parent: two, lines: "0 999 2" },
  { id: "p: unmapped", parent: two, lines: "0 5000 1" },
  { id: "p: unprivileged in P", parent: "0 100000 65536", writer: "unprivileged", lines: "0 1000 1" },
  { id: "p: uid 1000 not in P", parent: "0 100000 1000", writer: "unprivileged", lines: "0 1000 1" },
  {
    id: "p: setgroups deny inherited",
    parent: { uid_map: "0 0 1000", gid_map: "0 0 1000", setgroups: "deny" },
    kind: "gid",
    lines: "0 0 10",
    setgroups: "allow",
  },
  { id: "p: chain", parent: ["0 100000 65536", "0 1000 1000"], lines: "0 5 10" },
  { id: "p: 32 nested parents", parent: Array(32).fill("0 0 65536"), lines: "0 0 10" },
  { id: "p: 33 nested parents, the child is the 34th (ENOSPC)", parent: Array(33).fill("0 0 65536"), lines: "0 0 10" },
  { id: "p: projid", parent: "0 100000 65536", kind: "projid", lines: "0 0 65536" },
  { id: "p: projid outside", parent: "0 100000 65536", kind: "projid", lines: "0 0 65537" },
  // setgroups (rule 23)
  { id: "sg 7 bytes", kind: "gid", setgroups: "deny   ", lines: "0 0 1" },
  { id: "sg 8 bytes", kind: "gid", setgroups: "deny    ", lines: "0 0 1" },
  { id: "sg denyx", kind: "gid", setgroups: "denyx", lines: "0 0 1" },
  { id: "sg deny after gid_map", kind: "gid", lines: "0 0 1", setgroups_after: "deny" },
  { id: "sg allow after deny", kind: "gid", setgroups: "deny", lines: "0 0 1", setgroups_after: "allow" },
  { id: "sg deny after uid_map", kind: "uid", lines: "0 0 1", setgroups_after: "deny" },
  { id: "sg unprivileged", writer: "unprivileged", kind: "uid", setgroups: "deny", lines: "0 1000 1" },
];

const COMPARED = ["id", ...COMPARED_FIELDS] as const;

// A field one side leaves out (the runner omits read-backs it never made) counts as null.
function pick(r: Record<string, unknown>, other: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(COMPARED.filter((k) => k in r || k in other).map((k) => [k, r[k] ?? null]));
}

async function runKernel(list: Record<string, unknown>[]) {
  const results = await runMapCasesOnKernel(list, { timeoutMs: 20_000 });
  const kernel = new Map<string, Record<string, unknown>>();
  for (const r of results) kernel.set(String(r.id), r as unknown as Record<string, unknown>);
  // A runner failure: a case the runner could not build although the model
  // says its setup succeeds (a predicted setup failure is a compared result).
  const runnerErrors = results
    .filter(
      (r, i) => r.setup_error !== undefined && predictMapWriteCaseLine(JSON.stringify(list[i]))?.stage !== "setup",
    )
    .map((r) => `${r.id}: ${r.setup_error}`);
  return { runnerErrors, kernel };
}

describeKernel("map-write cases: the model predicts the kernel", () => {
  let runnerErrors: string[] = [];
  let kernel = new Map<string, Record<string, unknown>>();
  beforeAll(async () => {
    ({ runnerErrors, kernel } = await runKernel(cases));
  }, 120_000);

  it("the runner ran every case", () => {
    expect(runnerErrors).toEqual([]);
    expect(kernel.size).toBe(cases.length);
  });

  it.each(cases.map((c) => [String(c.id), c] as const))("%s", (id, c) => {
    const predicted = predictMapWriteCaseLine(JSON.stringify(c)) as unknown as Record<string, unknown>;
    const actual = kernel.get(id);
    expect(actual, `kernel result for ${id}`).toBeDefined();
    expect(pick(predicted, actual!)).toEqual(pick(actual!, predicted));
  });
});

describeKernel("generated map-write cases: the model predicts the kernel", () => {
  // 200 cases from a fixed seed, spread over every input field (test/helpers/mapcase-gen.ts).
  const generated = sampleMapCases(20261124, 200);
  let runnerErrors: string[] = [];
  let kernel = new Map<string, Record<string, unknown>>();
  beforeAll(async () => {
    ({ runnerErrors, kernel } = await runKernel(generated));
  }, 120_000);

  it("the runner ran every case", () => {
    expect(runnerErrors).toEqual([]);
    expect(kernel.size).toBe(generated.length);
  });

  it("every field agrees on every case", () => {
    const disagreements: string[] = [];
    for (const c of generated) {
      const model = predictMapWriteCaseLine(JSON.stringify(c)) as unknown as Record<string, unknown>;
      const run = kernel.get(String(c.id)) ?? {};
      const predicted = pick(model, run);
      const actual = pick(run, model);
      if (JSON.stringify(predicted) !== JSON.stringify(actual)) {
        disagreements.push(
          `${JSON.stringify(c)}\n  model  ${JSON.stringify(predicted)}\n  kernel ${JSON.stringify(actual)}`,
        );
      }
    }
    expect(disagreements).toEqual([]);
  });
});
