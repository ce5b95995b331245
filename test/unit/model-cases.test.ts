import { describe, expect, it } from "vitest";
import { type MapWriteCaseResult, predictMapWriteCaseLine } from "../../lib/model/index.js";

const L = (a: number, b: number, c: number) =>
  `${String(a).padStart(10)} ${String(b).padStart(10)} ${String(c).padStart(10)}\n`;
const predict = (c: object): MapWriteCaseResult => predictMapWriteCaseLine(JSON.stringify(c))!;

describe("batch predictor: case-formats §1 field for field", () => {
  it("the format's own example", () => {
    const r = predictMapWriteCaseLine(
      '{"id":"two-extents","kind":"uid","parent":null,"lines":"0 100000 10\\n10 100010 10\\n","writer":"privileged"}',
    );
    const rb = L(0, 100000, 10) + L(10, 100010, 10);
    expect(r).toEqual({
      id: "two-extents",
      ok: true,
      errno: null,
      written: 25,
      stage: "write",
      len: 25,
      readback_from_parent: rb,
      readback_from_init: rb,
      readback_from_inside: rb,
      setgroups_readback: "allow\n",
    });
  });

  it.each<[string, object, Partial<MapWriteCaseResult>]>([
    [
      "a parent namespace: readbacks in P's ids and global ids",
      { parent: "0 100000 65536", lines: "0 0 1000\n", writer: "privileged" },
      {
        ok: true,
        readback_from_parent: L(0, 0, 1000),
        readback_from_init: L(0, 100000, 1000),
        readback_from_inside: L(0, 0, 1000),
      },
    ],
    [
      "unprivileged own uid",
      { lines: "0 1000 1", writer: "unprivileged" },
      { ok: true, written: 8, readback_from_init: L(0, 1000, 1) },
    ],
    [
      "unprivileged gid after deny",
      { kind: "gid", lines: "0 1000 1", writer: "unprivileged", setgroups: "deny" },
      { ok: true, setgroups: { ok: true, errno: null, written: 4 }, setgroups_readback: "deny\n" },
    ],
    [
      "unprivileged writer cannot open a root-owned child's map",
      { lines: "0 1000 1", writer: "unprivileged", creator: "privileged" },
      { ok: false, errno: "EACCES", stage: "open", written: -1, readback_from_init: "" },
    ],
    [
      "an inside writer whose creator lacked CAP_SETFCAP",
      { lines: "0 0 1", writer: "inside", creator: { role: "privileged", drop_caps: ["CAP_SETFCAP"] } },
      { ok: false, errno: "EPERM", rule: "verify_root_map" },
    ],
    [
      "an inside writer: single line ok",
      { lines: "0 0 1", writer: "inside" },
      { ok: true, readback_from_inside: L(0, 0, 1) },
    ],
    [
      "second write, same fd",
      { lines: "0 0 1", writer: "privileged", second: "1 1 1" },
      { ok: true, second: { ok: false, errno: "EINVAL", written: -1 } },
    ],
    [
      "second write, new fd",
      { lines: "0 0 1", writer: "privileged", second: "1 1 1", second_fd: "reopen" },
      { ok: true, second: { ok: false, errno: "EPERM", written: -1 } },
    ],
    [
      "second write, pwrite",
      { lines: "0 0 1", writer: "privileged", second: "1 1 1", second_fd: "pwrite0" },
      { ok: true, second: { ok: false, errno: "ESPIPE", written: -1 } },
    ],
    [
      "a failed first write lets the same fd write again",
      { lines: "0 0 0", writer: "privileged", second: "0 0 1" },
      { ok: false, errno: "EINVAL", second: { ok: true, errno: null, written: 5 }, readback_from_init: L(0, 0, 1) },
    ],
    [
      "setgroups deny after gid_map",
      { kind: "gid", lines: "0 0 1", writer: "privileged", setgroups_after: "deny" },
      { ok: true, setgroups_after: { ok: false, errno: "EPERM", written: -1 }, setgroups_readback: "allow\n" },
    ],
    [
      "parent object with setgroups deny is inherited",
      {
        parent: { uid_map: "0 0 1000", gid_map: "0 0 1000", setgroups: "deny" },
        lines: "0 0 10",
        writer: "privileged",
      },
      { ok: true, setgroups_readback: "deny\n" },
    ],
    [
      "lines_hex: byte 0xA0 separates fields",
      { lines_hex: "30a035203130", writer: "privileged" },
      { ok: true, len: 6, readback_from_init: L(0, 5, 10) },
    ],
    [
      "a NUL in the JSON string ends the map",
      { lines: "0 0 1\n\u00001 1 1\n", writer: "privileged" },
      { ok: true, len: 13, written: 13, readback_from_init: L(0, 0, 1) },
    ],
    [
      "straddling a parent's extents",
      {
        parent: { uid_map: "0 100000 1000\n1000 200000 1000", gid_map: "0 100000 2000" },
        lines: "0 500 1000",
        writer: "privileged",
      },
      { ok: false, errno: "EPERM", rule: "map_id_range_down" },
    ],
    [
      "a chain of two parents",
      { parent: ["0 100000 65536", "0 1000 1000"], lines: "0 5 10", writer: "privileged" },
      { ok: true, readback_from_parent: L(0, 5, 10), readback_from_init: L(0, 101005, 10) },
    ],
    [
      "setup: uid 1000 unmapped in P",
      { parent: "0 100000 1000", lines: "0 1000 1", writer: "unprivileged" },
      { ok: null, stage: "setup", written: null },
    ],
    [
      "setup: P's own map is refused",
      { parent: "0 0 0", lines: "0 0 1", writer: "privileged" },
      { ok: null, stage: "setup" },
    ],
    [
      "projid from an unprivileged writer",
      { kind: "projid", lines: "0 0 4294967295", writer: "unprivileged" },
      { ok: true },
    ],
    [
      "opener privileged, writer unprivileged: single line judged on the opener",
      { lines: "0 0 1", writer: "unprivileged", opener: "privileged", creator: "privileged" },
      { ok: true },
    ],
    [
      "opener privileged, writer unprivileged: ranges need the writer's CAP_SETUID",
      { lines: "0 0 10", writer: "unprivileged", opener: "privileged", creator: "privileged" },
      { ok: false, errno: "EPERM", rule: "new_idmap_permitted" },
    ],
  ])("%s", (_n, c, want) => {
    expect(predict({ id: _n, ...c })).toMatchObject({ id: _n, ...want });
  });

  it.each<[string, string]>([
    ["not JSON", "{"],
    ["not an object", "[1]"],
    ["no lines", '{"id":1}'],
    ["lines not a string", '{"id":1,"lines":5}'],
    ["bad hex", '{"id":1,"lines_hex":"zz"}'],
    ["bad kind", '{"id":1,"lines":"0 0 1","kind":"pid"}'],
    ["bad writer", '{"id":1,"lines":"0 0 1","writer":"root"}'],
    ["inside creator", '{"id":1,"lines":"0 0 1","creator":"inside"}'],
    ["unknown capability", '{"id":1,"lines":"0 0 1","writer":{"role":"privileged","drop_caps":["CAP_FLY"]}}'],
    ["bad second_fd", '{"id":1,"lines":"0 0 1","second":"x","second_fd":"other"}'],
  ])("malformed case: %s → stage input", (_n, line) => {
    const r = predictMapWriteCaseLine(line)!;
    expect(r.stage).toBe("input");
    expect(r.ok).toBeNull();
    expect(typeof r.error).toBe("string");
  });

  it("skips empty and comment lines", () => {
    expect(predictMapWriteCaseLine("")).toBeUndefined();
    expect(predictMapWriteCaseLine("   ")).toBeUndefined();
    expect(predictMapWriteCaseLine("# note")).toBeUndefined();
  });
});
