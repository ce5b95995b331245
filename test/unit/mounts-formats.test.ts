import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compareMountResults } from "../../lib/cli/mount.js";
import { IdMap } from "../../lib/model/idmap.js";
import { mapIdDown } from "../../lib/model/lookup.js";
import { checkMountCase, formatMode, parseMode, parseMountCases } from "../../lib/mounts/cases.js";
import { classifyIdmapRefusal, REFUSAL_TEXT } from "../../lib/mounts/explain.js";
import {
  formatXMountIdmap,
  fromOciMountMappings,
  parseMapTriple,
  parseXMountIdmap,
  toIdMap,
  toOciMountMappings,
} from "../../lib/mounts/mapformats.js";

describe("mount maps go on-disk → seen", () => {
  it("OCI uidMappings: containerID is the on-disk id, hostID the id seen through the mount", () => {
    const m = fromOciMountMappings({
      uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
      gidMappings: [{ containerID: 0, hostID: 200000, size: 10 }],
    });
    // A file owned by 0 on disk shows as 100000 through the mount (what runc's helper namespace does).
    expect(mapIdDown(m.uid, 0)).toBe(100000);
    expect(mapIdDown(m.gid, 9)).toBe(200009);
    expect(m.uid.toString()).toBe("0 100000 65536\n");
    expect(toOciMountMappings(m).uidMappings).toEqual([{ containerID: 0, hostID: 100000, size: 65536 }]);
  });

  it("X-mount.idmap u:A:B:N: A is on disk and B is seen (libmount writes `A B N`; its man page said the reverse)", () => {
    const r = parseXMountIdmap("u:1000:0:1 g:1001:1:2 5000:1000:2");
    if (r.kind !== "maps") throw new Error("expected maps");
    expect(mapIdDown(r.map.uid, 1000)).toBe(0);
    expect(r.map.uid.toString()).toBe("1000 0 1\n5000 1000 2\n");
    expect(r.map.gid.toString()).toBe("1001 1 2\n5000 1000 2\n");
    expect(parseXMountIdmap("0:0:1\\040500:1000:1")).toEqual({
      kind: "maps",
      map: { uid: IdMap.of([0, 0, 1], [500, 1000, 1]), gid: IdMap.of([0, 0, 1], [500, 1000, 1]) },
    });
    expect(parseXMountIdmap("/proc/42/ns/user")).toEqual({ kind: "userns", path: "/proc/42/ns/user" });
  });

  it.each([
    ["", /empty/],
    // The wording is lib/formats' x-mount-idmap parser's, which does the parsing.
    ["x:1:2:3", /expected \[u:\|g:\|b:\]first:second:count/],
    ["u:1:2", /expected \[u:\|g:\|b:\]first:second:count/],
    ["u:a:2:3", /expected a decimal number/],
    ["u:1:2:0", /count/],
  ])("X-mount.idmap %j is refused as usage", (text, msg) => {
    expect(() => parseXMountIdmap(text)).toThrow(msg);
    expect(() => parseXMountIdmap(text)).toThrow(expect.objectContaining({ code: "ERR_USERNS_USAGE" }));
  });

  it("formatting then parsing X-mount.idmap returns the maps", () => {
    const ext = fc.tuple(fc.nat(1 << 30), fc.nat(1 << 30), fc.integer({ min: 1, max: 1 << 20 }));
    fc.assert(
      fc.property(
        fc.array(ext, { minLength: 1, maxLength: 5 }),
        fc.array(ext, { minLength: 1, maxLength: 5 }),
        (u, g) => {
          const map = { uid: IdMap.of(...u), gid: IdMap.of(...g) };
          expect(parseXMountIdmap(formatXMountIdmap(map))).toEqual({ kind: "maps", map });
        },
      ),
    );
  });

  it("CLI triples and map text", () => {
    expect(parseMapTriple("0:100000:65536")).toEqual({ first: 0, lowerFirst: 100000, count: 65536 });
    expect(() => parseMapTriple("0:1")).toThrow(/ondisk:seen:count/);
    expect(toIdMap("0 1 2\n 3 4 5 \n").toString()).toBe("0 1 2\n3 4 5\n");
    expect(() => toIdMap("0 1")).toThrow(/first lower count/);
  });
});

describe("refusal reasons (spec §8.2 order)", () => {
  it.each([
    [{ syscall: "open_tree_attr", code: "ENOSYS" }, "no-open-tree-attr"],
    [{ syscall: "mount_setattr", code: "EBUSY" }, "file-open-for-writing"],
    [{ syscall: "mount_setattr", code: "EBADF" }, "fd-not-open"],
    [{ syscall: "mount_setattr", code: "EINVAL", mapsWritten: false }, "userns-no-maps"],
    [{ syscall: "mount_setattr", code: "EINVAL", sourceAttached: true }, "source-attached"],
    [{ syscall: "mount_setattr", code: "EINVAL", recursive: true }, "fs-type-not-allowed"],
    [{ syscall: "mount_setattr", code: "EPERM", alreadyIdmapped: true }, "already-idmapped"],
    [{ syscall: "mount_setattr", code: "EPERM" }, "capability-missing"],
    [{ syscall: "mount_setattr", code: "EINVAL" }, "unknown"],
  ] as const)("%j → %s", (ctx, refusal) => {
    expect(classifyIdmapRefusal(ctx)).toBe(refusal);
    expect(REFUSAL_TEXT[refusal]).not.toBe("");
  });
});

describe("§2 case plumbing", () => {
  it("parses JSON lines, skipping blanks and comments; bad lines become input errors in place", () => {
    const c = parseMountCases('# x\n\n{"id":"a"}\nnot json\n[1]\n{"uid_map":null}\n');
    expect(c.map((x) => x.id)).toEqual(["a", "line-2", "line-3", "line-4"]);
    expect("inputError" in c[1]!).toBe(true);
    expect("inputError" in c[2]!).toBe(true);
  });

  it.each([
    ["0644", 0o644],
    ["1777", 0o1777],
    [420, 420],
  ] as const)("mode %j", (m, v) => {
    expect(parseMode(m, 0)).toBe(v);
    expect(formatMode(v)).toBe(typeof m === "string" ? m : "0644");
  });

  it("the kernel runner refuses malformed cases by the model's schema, with the field named", () => {
    const base = { id: "x", files: [{ name: "d", type: "dir" }] };
    // A submount of the wrong shape used to reach the setup code and fail there with a TypeError.
    expect(checkMountCase({ ...base, submount: { name: 7 } } as never)).toBe("submount.name must be a string");
    expect(checkMountCase({ ...base, submount: "d" } as never)).toBe("submount must be an object");
    expect(checkMountCase({ ...base, files: [{ name: "f", mode: "01777" }] } as never)).toMatch(/files\[0\]\.mode/);
    expect(() => parseMode("01777", 0)).toThrow(/octal string/);
    expect(checkMountCase(base as never)).toBeUndefined();
  });

  it("compares results field by field, null and absent alike, diagnostics excluded", () => {
    const k = { id: "x", ok: true, step: null, errno: null, stat: [{ name: "a", uid: 1 }], setup_error: "s" };
    const m = { id: "x", ok: true, step: null, errno: null, stat: [{ name: "a", uid: 2 }], reidmap: undefined };
    expect(compareMountResults(k as never, m as never)).toEqual([
      { id: "x", field: "stat.0.uid", kernel: 1, model: 2 },
    ]);
  });
});
