import { afterEach, describe, expect, it } from "vitest";
import { registerCheckCommands } from "../../lib/cli/check.js";
import { runCommands } from "../helpers/cli.js";

const run = (args: string[], stdin?: string) => runCommands(registerCheckCommands, args, stdin);

describe("userns check", () => {
  afterEach(() => {
    process.exitCode = undefined;
  });

  it("accepts a valid map (exit 0) and shows what would be written", async () => {
    const r = await run(["check", "0 100000 65536", "--writer", "privileged"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("ok");
    expect(r.out).toContain("0 100000 65536");
  });

  it("names the rule and proposes the split when straddling is the only problem", async () => {
    const r = await run(["check", "0 0 2000", "--parent", "0 100000 1000,1000 200000 1000", "--json"]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out)).toMatchObject({
      ok: false,
      errno: "EPERM",
      rule: "map_id_range_down",
      line: 1,
      split: "0 0 1000\n1000 1000 1000\n",
    });
  });

  it("proposes no split when ids are unmapped", async () => {
    const r = await run(["check", "0 0 5000", "--parent", "0 100000 1000", "--json"]);
    expect(JSON.parse(r.out)).toMatchObject({ rule: "map_id_range_down", split: null });
  });

  it.each<[string, string[], string]>([
    ["unprivileged range", ["0 1000 2", "--writer", "unprivileged"], "new_idmap_permitted"],
    ["unprivileged gid without deny", ["0 1000 1", "--writer", "unprivileged", "--kind", "gid"], "new_idmap_permitted"],
    ["inside range", ["0 0 10", "--writer", "inside"], "new_idmap_permitted"],
    ["overlap", ["0 0 1", "0 5 1"], "mappings_overlap"],
  ])("refuses %s", async (_n, args, rule) => {
    const r = await run(["check", ...args, "--json"]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out).rule).toBe(rule);
  });

  it("unprivileged gid with --setgroups deny is fine", async () => {
    const r = await run(["check", "0 1000 1", "--writer", "unprivileged", "--kind", "gid", "--setgroups", "deny"]);
    expect(r.code).toBe(0);
  });

  it.each<[string, string[]]>([
    ["bad kind", ["check", "0 0 1", "--kind", "pid"]],
    ["bad parent", ["check", "0 0 1", "--parent", "x"]],
    ["no map", ["check"]],
    ["bad uid", ["check", "0 0 1", "--uid", "-3"]],
  ])("usage error: %s → exit 2", async (_n, args) => {
    expect((await run(args)).code).toBe(2);
  });

  it("--batch - predicts every case in input order, skipping comments", async () => {
    const cases = [
      "# comment",
      '{"id":"a","lines":"0 0 1","writer":"privileged"}',
      "",
      '{"id":"b","lines":"0 0 0","writer":"privileged"}',
      "not json",
      '{"id":"c","lines":"0 1000 2","writer":"unprivileged"}',
    ].join("\n");
    const r = await run(["check", "--batch", "-"], cases);
    const results = r.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(results.map((x) => [x.id, x.ok, x.errno, x.stage])).toEqual([
      ["a", true, null, "write"],
      ["b", false, "EINVAL", "write"],
      [null, null, null, "input"],
      ["c", false, "EPERM", "write"],
    ]);
  });

  it("--mount-batch - predicts idmapped-mount cases (case-formats §2) in input order", async () => {
    const cases = [
      "# comment",
      '{"id":"shift","uid_map":"0 100000 65536","gid_map":"0 100000 65536","files":[{"name":"f","uid":1000,"gid":0,"mode":420}]}',
      '{"id":"init","userns":"init"}',
      '{"id":"nomap","uid_map":null,"gid_map":"0 100000 65536"}',
      "not json",
    ].join("\n");
    const r = await run(["check", "--mount-batch", "-"], cases);
    const results = r.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(results.map((x) => [x.id, x.ok, x.errno ?? null])).toEqual([
      ["shift", true, null],
      ["init", false, "EPERM"],
      ["nomap", false, "EINVAL"],
      [null, null, null],
    ]);
    expect(results[0].stat[0]).toMatchObject({ name: "f", uid: 101000, disk_uid: 1000 });
  });

  it("--batch and --mount-batch together are a usage error", async () => {
    expect((await run(["check", "--batch", "-", "--mount-batch", "x"], "")).code).toBe(2);
  });
});
