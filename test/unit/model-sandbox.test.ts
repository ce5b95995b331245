import { describe, expect, it } from "vitest";
import { IdMap } from "../../lib/model/idmap.js";
import { parseMountinfo } from "../../lib/model/mountinfo.js";
import {
  type HostMountFacts,
  type ModelFsOperation,
  normalizeSandboxPath,
  type PathFacts,
  predictSandboxMounts,
  resolveInRoot,
  type SandboxContext,
} from "../../lib/model/sandbox.js";

const maps = (lines: [number, number, number][]) => ({ uid: IdMap.of(...lines), gid: IdMap.of(...lines) });
const hostMount = (rel: string, uid: number, extra: Partial<HostMountFacts> = {}): HostMountFacts => ({
  rel,
  fsType: "ext4",
  readOnly: false,
  idmapped: false,
  owner: { uid, gid: uid },
  mode: 0o755,
  ...extra,
});
const facts = (...mounts: HostMountFacts[]): PathFacts => ({ exists: true, mounts });

function ctx(ops: (PathFacts | undefined)[], extra: Partial<SandboxContext> = {}): SandboxContext {
  return {
    userns: maps([
      [0, 100000, 65536],
      [65536, 0, 1],
    ]),
    creator: { uid: 0, gid: 0 },
    ipcCreator: { uid: 0, gid: 0 },
    ops,
    devNodes: {},
    procCovers: [],
    ...extra,
  };
}

describe("sandbox model: paths", () => {
  it("normalizes and resolves through the plan's symlinks, never above the new root", () => {
    expect(normalizeSandboxPath("//a/./b/../c/")).toBe("/a/c");
    expect(normalizeSandboxPath("/../../x")).toBe("/x");
    const links = new Map([
      ["/bin", "usr/bin"],
      ["/abs", "/srv/data"],
      ["/up", "../../etc"],
      ["/loop", "/loop"],
    ]);
    expect(resolveInRoot("/bin/sh", links)).toBe("/usr/bin/sh");
    expect(resolveInRoot("/abs/x", links)).toBe("/srv/data/x");
    expect(resolveInRoot("/up/passwd", links)).toBe("/etc/passwd");
    // A loop stops after 40 hops instead of hanging.
    expect(resolveInRoot("/loop/x", links)).toBe("/loop/x");
  });
});

describe("sandbox model: mounts and owners", () => {
  it("binds bring submounts, keep their flags, read-only recursively; owners through the maps, unmapped as nobody", () => {
    const plan: ModelFsOperation[] = [
      { op: "bind", dest: "/data", readOnly: true },
      { op: "tmpfs", dest: "/tmp", mode: 0o700 },
      { op: "chmod", dest: "/tmp", mode: 0o1777 },
      { op: "bind", dest: "/missing", optional: true },
    ];
    const p = predictSandboxMounts(
      plan,
      ctx([
        facts(hostMount("", 100005), hostMount("sub", 7, { fsType: "tmpfs" }), hostMount("ro", 0, { readOnly: true })),
        undefined,
        undefined,
        { exists: false, mounts: [] },
      ]),
    );
    expect(p.map((m) => [m.target, m.fsType, m.readOnly, m.owner.uid, m.mode])).toEqual([
      ["/", "tmpfs", false, 65536, 0o755],
      ["/data", "ext4", true, 5, 0o755],
      ["/data/sub", "tmpfs", true, 65534, 0o755],
      ["/data/ro", "ext4", true, 65536, 0o755],
      ["/tmp", "tmpfs", false, 65536, 0o1777],
    ]);
  });

  it("an idmapped bind maps on-disk owners through its idmap, then through the namespace", () => {
    const plan: ModelFsOperation[] = [
      { op: "idmappedBind", dest: "/a" },
      { op: "idmappedBind", dest: "/b" },
    ];
    const p = predictSandboxMounts(
      plan,
      ctx([
        { ...facts(hostMount("", 0)), idmap: maps([[0, 100000, 10]]) },
        { ...facts(hostMount("", 0)), idmap: maps([[0, 200000, 10]]) },
      ]),
    );
    expect(p.slice(0, 2).map((m) => [m.target, m.idmapped, m.owner.uid])).toEqual([
      ["/a", true, 0],
      ["/b", true, 65534],
    ]);
    // Made by the parent before the child's own mounts: listed first, though attached later.
    expect(p[2]!.target).toBe("/");
  });

  it("proc's root is kuid 0 (nobody where unmapped); /dev brings its nodes and devpts; a later mount hides an earlier one", () => {
    const plan: ModelFsOperation[] = [
      { op: "tmpfs", dest: "/x/y" },
      { op: "proc", dest: "/proc" },
      { op: "dev", dest: "/dev" },
      { op: "tmpfs", dest: "/x" },
      { op: "remountReadOnly", dest: "/dev" },
    ];
    const p = predictSandboxMounts(
      plan,
      ctx([], {
        devNodes: { null: facts(hostMount("", 0, { fsType: "devtmpfs" })) },
        procCovers: [{ name: "sys", mode: 0o555 }],
      }),
    );
    expect(p.map((m) => [m.target, m.fsType, m.readOnly, m.visible, m.owner.uid])).toEqual([
      ["/", "tmpfs", false, true, 65536],
      ["/x/y", "tmpfs", false, false, 65536],
      ["/proc", "proc", false, true, 65536],
      ["/proc/sys", "proc", true, true, 65536],
      ["/dev", "tmpfs", true, true, 65536],
      ["/dev/null", "devtmpfs", true, true, 65536],
      ["/dev/pts", "devpts", true, true, 65536],
      ["/x", "tmpfs", false, true, 65536],
    ]);
  });
});

describe("mountinfo parser", () => {
  it("reads fields, options, and unescapes paths", () => {
    const [m] = parseMountinfo(
      "36 35 98:0 /mnt1 /mnt\\040x rw,noatime,idmapped master:1 - ext3 /dev/root rw,errors=continue\n",
    );
    expect(m).toMatchObject({
      id: 36,
      parentId: 35,
      root: "/mnt1",
      target: "/mnt x",
      fsType: "ext3",
      source: "/dev/root",
      readOnly: false,
      idmapped: true,
    });
    expect(parseMountinfo("garbage\n")).toEqual([]);
  });
});
