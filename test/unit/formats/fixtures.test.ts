/**
 * Each format against examples written from its own documentation
 * (research/peers.md §b), then back out and in again.
 */
import { describe, expect, it } from "vitest";
import { FORMATS, FormatError, getFormat } from "../../../lib/formats/index.js";
import type { FormatName, MapSet, ParseOptions } from "../../../lib/formats/types.js";
import { IdMap } from "../../../lib/model/idmap.js";

type T = [number, number, number][];
const triples = (m: IdMap | undefined): T | undefined => m?.extents.map((e) => [e.first, e.lowerFirst, e.count]);

interface Row {
  name: string;
  format: FormatName;
  input: string;
  options?: ParseOptions;
  uid: T | undefined;
  gid: T | undefined;
}

const rows: Row[] = [
  {
    name: "kernel two lines",
    format: "kernel",
    input: "0 100000 65536\n65536 1000 1\n",
    uid: [
      [0, 100000, 65536],
      [65536, 1000, 1],
    ],
    gid: [
      [0, 100000, 65536],
      [65536, 1000, 1],
    ],
  },
  {
    name: "kernel %10u read-back",
    format: "kernel",
    input: "         0          0 4294967295\n",
    uid: [[0, 0, 4294967295]],
    gid: [[0, 0, 4294967295]],
  },
  {
    name: "kernel \\r\\n and tabs",
    format: "kernel",
    input: "0\t1000\t1\r\n",
    options: { kind: "uid" },
    uid: [[0, 1000, 1]],
    gid: undefined,
  },
  { name: "kernel unwritten map", format: "kernel", input: "", uid: [], gid: [] },
  {
    name: "oci config.json",
    format: "oci",
    input: JSON.stringify({
      ociVersion: "1.0.0",
      linux: {
        uidMappings: [{ containerID: 0, hostID: 1000, size: 32000 }],
        gidMappings: [{ hostID: 1000, containerID: 0, size: 32000 }],
      },
    }),
    uid: [[0, 1000, 32000]],
    gid: [[0, 1000, 32000]],
  },
  {
    name: "oci bare array as gid",
    format: "oci",
    input: '[{"containerID":0,"hostID":1000,"size":1}]',
    options: { kind: "gid" },
    uid: undefined,
    gid: [[0, 1000, 1]],
  },
  {
    name: "oci-mount mount object (on-disk 0 seen as 100000)",
    format: "oci-mount",
    input: JSON.stringify({
      destination: "/data",
      type: "bind",
      source: "/srv/data",
      options: ["rbind", "ridmap"],
      uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
      gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
    }),
    uid: [[0, 100000, 65536]],
    gid: [[0, 100000, 65536]],
  },
  {
    name: "oci-mount bare idmap uses the container's maps",
    format: "oci-mount",
    input: JSON.stringify({
      mounts: [
        { destination: "/proc", type: "proc", source: "proc" },
        { destination: "/d", type: "bind", source: "/s", options: ["idmap"] },
      ],
    }),
    options: { containerMaps: { uid: IdMap.of([0, 5000, 10]), gid: IdMap.of([0, 6000, 10]) } },
    uid: [[0, 5000, 10]],
    gid: [[0, 6000, 10]],
  },
  {
    name: "lxc config lines",
    format: "lxc",
    input: "# container\nlxc.rootfs.path = dir:/x\nlxc.idmap = u 0 100000 65536\nlxc.idmap = g 0 100000 65536\n",
    uid: [[0, 100000, 65536]],
    gid: [[0, 100000, 65536]],
  },
  {
    name: "lxc legacy key",
    format: "lxc",
    input: "lxc.id_map = u 0 100000 10\n",
    uid: [[0, 100000, 10]],
    gid: undefined,
  },
  {
    name: "lxc-entry usernsexec",
    format: "lxc-entry",
    input: "-m b:0:100000:65536 -m u:65536:1000:1",
    uid: [
      [0, 100000, 65536],
      [65536, 1000, 1],
    ],
    gid: [[0, 100000, 65536]],
  },
  {
    name: "incus raw.idmap (host first)",
    format: "incus-raw",
    input: "both 1000 1000\nuid 50-60 500-510\n",
    uid: [
      [1000, 1000, 1],
      [500, 50, 11],
    ],
    gid: [[1000, 1000, 1]],
  },
  {
    name: "incus json",
    format: "incus-json",
    input: '[{"Isuid":true,"Isgid":false,"Hostid":1000000,"Nsid":0,"Maprange":65536}]',
    uid: [[0, 1000000, 65536]],
    gid: undefined,
  },
  {
    name: "incus json stored as a string",
    format: "incus-json",
    input: JSON.stringify('[{"Isuid":true,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":65536}]'),
    uid: [[0, 1000000, 65536]],
    gid: [[0, 1000000, 65536]],
  },
  {
    name: "podman --uidmap copied to gids",
    format: "podman",
    input: "--uidmap 0:100000:65536",
    uid: [[0, 100000, 65536]],
    gid: [[0, 100000, 65536]],
  },
  {
    name: "podman joined triples",
    format: "podman",
    input: "--uidmap=0:1:1000:1000:0:1",
    uid: [
      [0, 1, 1000],
      [1000, 0, 1],
    ],
    gid: [
      [0, 1, 1000],
      [1000, 0, 1],
    ],
  },
  {
    name: "podman g flag is not copied (docs example)",
    format: "podman",
    input: '--gidmap "0:0:1000" --gidmap "g2000:2000:1"',
    uid: [[0, 0, 1000]],
    gid: [
      [0, 0, 1000],
      [2000, 2000, 1],
    ],
  },
  {
    name: "podman + breaks earlier extents (docs example)",
    format: "podman",
    input: '--gidmap="0:0:65000" --gidmap="+100000:1:1"',
    options: { kind: "gid" },
    uid: undefined,
    gid: [
      [0, 0, 1],
      [2, 2, 64998],
      [100000, 1, 1],
    ],
  },
  {
    name: "podman @host through the rootless map",
    format: "podman",
    input: "--gidmap=100000:@2000:2",
    options: { kind: "gid", parentMaps: { gid: IdMap.of([0, 1000, 1], [1, 2000, 65536]) } },
    uid: undefined,
    gid: [[100000, 1, 2]],
  },
  {
    name: "podman +g@host fills the rest from 0 (rootless)",
    format: "podman",
    input: "--gidmap=+g100000:@2000",
    options: {
      kind: "gid",
      parentMaps: { uid: IdMap.of([0, 1000, 1], [1, 100000, 10]), gid: IdMap.of([0, 1000, 1], [1, 2000, 10]) },
    },
    uid: undefined,
    gid: [
      [0, 0, 1],
      [1, 2, 9],
      [100000, 1, 1],
    ],
  },
  {
    name: "podman keep-id:uid=11 (PR #15389 example)",
    format: "podman",
    input: "--userns=keep-id:uid=11,gid=11",
    options: {
      parentMaps: { uid: IdMap.of([0, 1000, 1], [1, 100000, 65536]), gid: IdMap.of([0, 1000, 1], [1, 100000, 65536]) },
    },
    uid: [
      [0, 1, 11],
      [11, 0, 1],
      [12, 12, 65525],
    ],
    gid: [
      [0, 1, 11],
      [11, 0, 1],
      [12, 12, 65525],
    ],
  },
  {
    name: "podman keep-id from uid and /etc/subuid",
    format: "podman",
    input: "--userns=keep-id",
    options: {
      uid: 1000,
      gid: 1000,
      users: [{ name: "alice", uid: 1000 }],
      subuid: [{ owner: "alice", start: 100000, count: 65536 }],
      subgid: [{ owner: "1000", start: 200000, count: 3000 }],
    },
    uid: [
      [0, 1, 1000],
      [1000, 0, 1],
      [1001, 1001, 64536],
    ],
    gid: [
      [0, 1, 1000],
      [1000, 0, 1],
      [1001, 1001, 2000],
    ],
  },
  {
    name: "podman nomap",
    format: "podman",
    input: "--userns=nomap",
    options: {
      parentMaps: { uid: IdMap.of([0, 1000, 1], [1, 100000, 65536]), gid: IdMap.of([0, 1000, 1], [1, 100000, 65536]) },
    },
    uid: [[0, 1, 65536]],
    gid: [[0, 1, 65536]],
  },
  {
    name: "podman auto:size=8192 with uidmapping",
    format: "podman",
    input: "--userns=auto:size=8192,uidmapping=0:5000:1",
    options: {
      subuid: [{ owner: "containers", start: 2147483647, count: 2147483648 }],
      subgid: [{ owner: "containers", start: 2147483647, count: 2147483648 }],
    },
    uid: [
      [0, 5000, 1],
      [1, 2147483648, 8191],
    ],
    gid: [[0, 2147483647, 8192]],
  },
  {
    name: "crun idmap= (docs example)",
    format: "crun-mount",
    input: "idmap=uids=0-1-10#10-11-10;gids=0-100-10",
    uid: [
      [0, 1, 10],
      [10, 11, 10],
    ],
    gid: [[0, 100, 10]],
  },
  {
    name: "crun @ relative to the container",
    format: "crun-mount",
    input: "uids=@0-0-10",
    options: { containerMaps: { uid: IdMap.of([0, 100000, 65536]) } },
    uid: [[0, 100000, 10]],
    gid: undefined,
  },
  {
    name: "unshare 2.39 inner:outer:count",
    format: "unshare",
    input: "--map-users=0:100000:65536 --map-groups 0:100000:65536",
    uid: [[0, 100000, 65536]],
    gid: [[0, 100000, 65536]],
  },
  {
    name: "unshare-legacy outer,inner,count",
    format: "unshare-legacy",
    input: "--map-users=100000,0,65536",
    uid: [[0, 100000, 65536]],
    gid: undefined,
  },
  {
    name: "X-mount.idmap b:1000:0:1 (on-disk 1000 seen as 0)",
    format: "x-mount-idmap",
    input: "X-mount.idmap='b:1000:0:1'",
    uid: [[1000, 0, 1]],
    gid: [[1000, 0, 1]],
  },
  {
    name: "X-mount.idmap fstab \\040, no prefix = both",
    format: "x-mount-idmap",
    input: "X-mount.idmap=u:0:100000:10\\040g:0:200000:10\\0400:300000:1",
    uid: [
      [0, 100000, 10],
      [0, 300000, 1],
    ],
    gid: [
      [0, 200000, 10],
      [0, 300000, 1],
    ],
  },
  {
    name: "docker default → dockremap's ranges concatenated",
    format: "docker",
    input: '{"userns-remap": "default"}',
    options: {
      subuid: [
        { owner: "dockremap", start: 100000, count: 65536 },
        { owner: "dockremap", start: 300000, count: 10 },
      ],
      subgid: [{ owner: "dockremap", start: 100000, count: 65536 }],
    },
    uid: [
      [0, 100000, 65536],
      [65536, 300000, 10],
    ],
    gid: [[0, 100000, 65536]],
  },
  {
    name: "docker uid:gid matched by name (as shadow does)",
    format: "docker",
    input: "1001:1002",
    options: {
      users: [{ name: "bob", uid: 1001 }],
      groups: [{ name: "bobs", gid: 1002 }],
      subuid: [{ owner: "bob", start: 100000, count: 5 }],
      subgid: [{ owner: "1002", start: 7, count: 5 }],
    },
    uid: [[0, 100000, 5]],
    gid: [[0, 7, 5]],
  },
  {
    name: "subid lines (docs example)",
    format: "subid",
    input: "# delegations\nalice:100000:65536\n\nalice:300000:10\n",
    uid: [
      [0, 100000, 65536],
      [65536, 300000, 10],
    ],
    gid: [
      [0, 100000, 65536],
      [65536, 300000, 10],
    ],
  },
  {
    name: "nspawn base:count",
    format: "nspawn",
    input: "--private-users=1879048192:65536",
    uid: [[0, 1879048192, 65536]],
    gid: [[0, 1879048192, 65536]],
  },
  {
    name: "nspawn base only",
    format: "nspawn",
    input: "PrivateUsers=65536",
    uid: [[0, 65536, 65536]],
    gid: [[0, 65536, 65536]],
  },
  { name: "nspawn identity", format: "nspawn", input: "identity", uid: [[0, 0, 65536]], gid: [[0, 0, 65536]] },
  {
    name: "nspawn yes with root owner",
    format: "nspawn",
    input: "yes",
    options: { rootOwner: 131072 },
    uid: [[0, 131072, 65536]],
    gid: [[0, 131072, 65536]],
  },
  {
    name: "go SysProcIDMap array",
    format: "go",
    input: '[{"ContainerID":0,"HostID":1000,"Size":1}]',
    options: { kind: "uid" },
    uid: [[0, 1000, 1]],
    gid: undefined,
  },
  {
    name: "storage idtools JSON",
    format: "storage",
    input:
      '{"uidmap":[{"container_id":0,"host_id":100000,"size":65536}],"GIDMap":[{"container_id":0,"host_id":100000,"size":65536}]}',
    uid: [[0, 100000, 65536]],
    gid: [[0, 100000, 65536]],
  },
  {
    name: "cri JSON",
    format: "cri",
    input:
      '{"mode":"POD","uids":[{"hostId":100000,"containerId":0,"length":65536}],"gids":[{"hostId":100000,"containerId":0,"length":65536}]}',
    uid: [[0, 100000, 65536]],
    gid: [[0, 100000, 65536]],
  },
];

describe("formats: documented examples", () => {
  it.each(rows)("$name", ({ format, input, options, uid, gid }) => {
    const spec = getFormat(format);
    const maps = spec.parse(input, options);
    expect(triples(maps.uid)).toEqual(uid);
    expect(triples(maps.gid)).toEqual(gid);
    // and back: what we write reads back as the same maps (podman: canonical form)
    const kind = options?.kind;
    if ((maps.uid?.size ?? 1) === 0) return; // an unwritten map has no text form beyond ""
    const again = spec.parse(spec.format(maps, { kind }), { ...options, kind });
    const norm = (m: MapSet) => ({ uid: triples(m.uid?.canonical()), gid: triples(m.gid?.canonical()) });
    expect(norm(again)).toEqual(norm(maps));
  });
});

describe("formats: what they write", () => {
  const both: MapSet = { uid: IdMap.of([0, 100000, 65536]), gid: IdMap.of([0, 100000, 65536]) };
  const split: MapSet = { uid: IdMap.of([0, 100000, 10]), gid: IdMap.of([0, 200000, 10], [10, 5, 1]) };
  it.each([
    ["kernel", both, "0 100000 65536\n"],
    ["lxc", both, "lxc.idmap = u 0 100000 65536\nlxc.idmap = g 0 100000 65536\n"],
    ["lxc-entry", split, "u:0:100000:10\ng:0:200000:10\ng:10:5:1\n"],
    ["incus-raw", split, "uid 100000-100009 0-9\ngid 200000-200009 0-9\ngid 5 10\n"],
    ["incus-json", both, '[{"Isuid":true,"Isgid":true,"Hostid":100000,"Nsid":0,"Maprange":65536}]\n'],
    ["podman", both, "--uidmap=0:100000:65536\n"],
    ["podman", split, "--uidmap=0:100000:10\n--gidmap=0:200000:10\n--gidmap=10:5:1\n"],
    ["crun-mount", split, "idmap=uids=0-100000-10;gids=0-200000-10#10-5-1\n"],
    ["unshare", both, "--map-users=0:100000:65536\n--map-groups=0:100000:65536\n"],
    ["unshare-legacy", split, "--map-users=100000,0,10\n--map-groups=200000,0,10\n--map-groups=5,10,1\n"],
    ["x-mount-idmap", split, "X-mount.idmap=u:0:100000:10 g:0:200000:10 g:10:5:1\n"],
    ["subid", both, "user:100000:65536\n"],
    ["nspawn", both, "--private-users=100000:65536\n"],
  ] as [FormatName, MapSet, string][])("%s writes %j", (name, maps, text) => {
    expect(getFormat(name).format(maps)).toBe(text);
  });

  it("kernel read-back form pads to %10u", async () => {
    const { formatKernelMap } = await import("../../../lib/formats/kernel.js");
    expect(formatKernelMap(IdMap.of([0, 0, 4294967295]), { readback: true })).toBe(
      "         0          0 4294967295\n",
    );
  });

  it.each([
    ["kernel", split, /holds one map/],
    ["nspawn", split, /holds one map/],
    ["nspawn", { uid: IdMap.of([1, 100000, 10]) }, /starting at container id 0/],
    ["subid", { uid: IdMap.of([5, 100000, 10]) }, /inside ids run from 0/],
    ["oci-mount", { uid: IdMap.of([0, 1, 1]) }, /both uidMappings and gidMappings/],
  ] as [FormatName, MapSet, RegExp][])("%s refuses maps it cannot hold", (name, maps, re) => {
    const err = (() => {
      try {
        getFormat(name).format(maps);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).code).toBe("ERR_USERNS_FORMAT");
    expect((err as FormatError).message).toMatch(re);
  });

  it("registry lists every CLI name from the issue, each with a direction and columns", () => {
    expect(FORMATS.map((f) => f.name).sort()).toEqual(
      [
        "kernel",
        "oci",
        "oci-mount",
        "lxc",
        "lxc-entry",
        "incus-raw",
        "incus-json",
        "podman",
        "crun-mount",
        "unshare",
        "unshare-legacy",
        "x-mount-idmap",
        "docker",
        "subid",
        "nspawn",
        "go",
        "storage",
        "cri",
      ].sort(),
    );
    for (const f of FORMATS) {
      expect(["userns", "mount"]).toContain(f.direction);
      expect(f.columns.length).toBeGreaterThan(0);
    }
    expect(
      FORMATS.filter((f) => f.direction === "mount")
        .map((f) => f.name)
        .sort(),
    ).toEqual(["crun-mount", "oci-mount", "x-mount-idmap"]);
  });
});

describe("formats: typed entries name their columns", () => {
  it("incus raw.idmap entries say host and inside", async () => {
    const { parseIncusRawEntries } = await import("../../../lib/formats/incus.js");
    expect(parseIncusRawEntries("\nuid 50-60 500-510\n")).toEqual([
      { kind: "uid", hostFirst: 50, insideFirst: 500, count: 11, line: 2 },
    ]);
  });
  it("lxc.idmap lines say nsid and hostid", async () => {
    const { parseLxcIdmapLines } = await import("../../../lib/formats/lxc.js");
    expect(parseLxcIdmapLines("lxc.idmap = g 0 100000 65536")).toEqual([
      { kind: "gid", nsid: 0, hostid: 100000, range: 65536, line: 1 },
    ]);
  });
  it("X-mount.idmap entries say on-disk and seen", async () => {
    const { parseXMountIdmapEntries } = await import("../../../lib/formats/unshare.js");
    expect(parseXMountIdmapEntries("X-mount.idmap=b:1000:0:1")).toEqual([
      { kind: "both", onDisk: 1000, seen: 0, count: 1 },
    ]);
  });
  it("podman triples keep their flags", async () => {
    const { parsePodmanIdmapValue } = await import("../../../lib/formats/podman.js");
    expect(parsePodmanIdmapValue("+g100000:@2000", { text: "+g100000:@2000", line: 1, column: 1 })).toEqual([
      { extend: true, uids: false, gids: true, containerId: 100000, fromId: 2000, fromIsHost: true, amount: 1 },
    ]);
  });
});

describe("podman --userns=auto rootless", () => {
  it("allocates from the intermediate ids 1..n when the rootless map is given", () => {
    const m = getFormat("podman").parse("--userns=auto:size=100", {
      parentMaps: { uid: IdMap.of([0, 1000, 1], [1, 100000, 65536]), gid: IdMap.of([0, 1000, 1], [1, 100000, 50]) },
      kind: "uid",
    });
    expect(triples(m.uid)).toEqual([[0, 1, 100]]);
    expect(() =>
      getFormat("podman").parse("--userns=auto:size=100", {
        parentMaps: { gid: IdMap.of([0, 1000, 1], [1, 100000, 50]) },
        kind: "gid",
      }),
    ).toThrow(/fewer than size=100/);
  });
});

describe("subid format with several owners", () => {
  it("reads the lines of the owner asked for", () => {
    const m = getFormat("subid").parse("alice:100000:10\nbob:200000:5\nalice:300000:1\n", {
      owner: "alice",
      kind: "uid",
    });
    expect(triples(m.uid)).toEqual([
      [0, 100000, 10],
      [10, 300000, 1],
    ]);
  });
});
