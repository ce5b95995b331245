/**
 * Every interop format by CLI name, with its syntax, direction and columns,
 * and {@link convert} between any two.
 */
import { formatCrunMount, parseCrunMount } from "./crun.js";
import { FormatError } from "./errors.js";
import { formatIncusRaw, parseIncusRaw } from "./incus.js";
import {
  formatCri,
  formatGo,
  formatIncusJson,
  formatOci,
  formatOciMount,
  formatStorage,
  parseCri,
  parseGo,
  parseIncusJson,
  parseOci,
  parseOciMount,
  parseStorage,
} from "./json.js";
import { formatKernel, parseKernel } from "./kernel.js";
import { formatLxcEntries, formatLxcIdmap, parseLxcEntries, parseLxcIdmap } from "./lxc.js";
import { formatNspawn, parseNspawn } from "./nspawn.js";
import { formatPodman, parsePodman } from "./podman.js";
import { formatDocker, formatSubidFormat, parseDocker, parseSubidFormat } from "./subid.js";
import type { FormatName, FormatOptions, FormatSpec, MapSet, ParseOptions } from "./types.js";
import {
  formatUnshare,
  formatUnshareLegacy,
  formatXMountIdmapMapSet,
  parseUnshare,
  parseUnshareLegacy,
  parseXMountIdmapMapSet,
} from "./unshare.js";

const count = (name: string) => ({ name, is: "count" }) as const;
const kind = (name: string) => ({ name, is: "kind" }) as const;

/** All formats, in the order `convert --list` shows them. */
export const FORMATS: readonly FormatSpec[] = Object.freeze([
  {
    name: "kernel",
    title: "kernel map text (/proc/PID/uid_map)",
    syntax: "first lower count (one line per extent; %10u read-back accepted)",
    direction: "userns",
    columns: [{ name: "first", is: "first" }, { name: "lower", is: "lowerFirst" }, count("count")],
    holds: "one",
    roundTrip: "exact",
    notes: "first = id inside the namespace, lower = id in the parent namespace. Holds one map: --kind picks it.",
    parse: parseKernel,
    format: formatKernel,
  },
  {
    name: "oci",
    title: "OCI runtime-spec linux.uidMappings/gidMappings",
    syntax:
      '{"uidMappings":[{"containerID":0,"hostID":1000,"size":32000}],"gidMappings":[…]} (a config.json or a bare array)',
    direction: "userns",
    columns: [{ name: "containerID", is: "first" }, { name: "hostID", is: "lowerFirst" }, count("size")],
    holds: "tagged",
    roundTrip: "exact",
    notes: "containerID = inside, hostID = outside.",
    parse: parseOci,
    format: formatOci,
  },
  {
    name: "oci-mount",
    title: "OCI mount uidMappings/gidMappings with idmap/ridmap",
    syntax: '{"options":["idmap"],"uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],"gidMappings":[…]}',
    direction: "mount",
    columns: [{ name: "containerID", is: "first" }, { name: "hostID", is: "lowerFirst" }, count("size")],
    holds: "tagged",
    roundTrip: "exact",
    notes:
      "MOUNT direction: containerID = id stored on disk, hostID = id seen through the mount. Both arrays or neither; bare idmap uses the container's maps.",
    parse: parseOciMount,
    format: formatOciMount,
  },
  {
    name: "lxc",
    title: "LXC lxc.idmap lines",
    syntax: "lxc.idmap = u|g nsid hostid range",
    direction: "userns",
    columns: [kind("u|g"), { name: "nsid", is: "first" }, { name: "hostid", is: "lowerFirst" }, count("range")],
    holds: "tagged",
    roundTrip: "exact",
    notes:
      "nsid = inside, hostid = outside. No 'b': equal maps are written as u and g lines. Other config keys are skipped.",
    parse: parseLxcIdmap,
    format: formatLxcIdmap,
  },
  {
    name: "lxc-entry",
    title: "LXC/LXD/Incus entry strings",
    syntax: "u|g|b:nsid:hostid:range (lxc-usernsexec -m)",
    direction: "userns",
    columns: [kind("u|g|b"), { name: "nsid", is: "first" }, { name: "hostid", is: "lowerFirst" }, count("range")],
    holds: "tagged",
    roundTrip: "exact",
    notes: "nsid = inside, hostid = outside.",
    parse: parseLxcEntries,
    format: formatLxcEntries,
  },
  {
    name: "incus-raw",
    title: "Incus/LXD raw.idmap",
    syntax: "both|uid|gid host[-end] inside[-end]",
    direction: "userns",
    columns: [kind("both|uid|gid"), { name: "host", is: "lowerFirst" }, { name: "inside", is: "first" }],
    holds: "tagged",
    roundTrip: "exact",
    notes: "HOST comes first, inside second; ranges are inclusive and of equal length.",
    parse: parseIncusRaw,
    format: formatIncusRaw,
  },
  {
    name: "incus-json",
    title: "Incus/LXD idmap JSON (volatile.idmap.*)",
    syntax: '[{"Isuid":true,"Isgid":true,"Hostid":1000000,"Nsid":0,"Maprange":65536}]',
    direction: "userns",
    columns: [
      kind("Isuid/Isgid"),
      { name: "Hostid", is: "lowerFirst" },
      { name: "Nsid", is: "first" },
      count("Maprange"),
    ],
    holds: "tagged",
    roundTrip: "exact",
    notes: "Nsid = inside, Hostid = outside.",
    parse: parseIncusJson,
    format: formatIncusJson,
  },
  {
    name: "podman",
    title: "podman/buildah --uidmap, --gidmap, --userns",
    syntax: "--uidmap=[+ug]container:[@]from[:amount][:…]  --userns=auto[:…]|keep-id[:uid=U,gid=G,size=N]|nomap",
    direction: "userns",
    columns: [{ name: "container", is: "first" }, { name: "from", is: "lowerFirst" }, count("amount")],
    holds: "tagged",
    roundTrip: "canonical",
    notes:
      "container = inside; from = host id (rootful) or podman's intermediate id (rootless: 0 = you, 1.. = your subuids). podman sorts and merges, so maps come back canonical.",
    parse: parsePodman,
    format: formatPodman,
  },
  {
    name: "crun-mount",
    title: "crun/podman idmap= mount option",
    syntax: "idmap=uids=fs-host-len[#…];gids=fs-host-len[#…] (@ = relative to the container)",
    direction: "mount",
    columns: [{ name: "fs", is: "first" }, { name: "host", is: "lowerFirst" }, count("len")],
    holds: "tagged",
    roundTrip: "exact",
    notes:
      "MOUNT direction: fs = id on the backing filesystem, host = id it shows as. Verified with crun 1.8.1 on Linux 6.18: crun writes each triple as `fs host len` into the mount's user namespace map, so uids=0-100007-1 shows a file stored as uid 0 as host uid 100007 (uid 7 in a container mapping 0 → 100000). Before crun 1.13, @ picked the container extent by the fs id rather than the host id; ridmap needs crun 1.9+.",
    parse: parseCrunMount,
    format: formatCrunMount,
  },
  {
    name: "unshare",
    title: "util-linux 2.39+ unshare --map-users/--map-groups",
    syntax: "--map-users=inner:outer:count  --map-groups=inner:outer:count",
    direction: "userns",
    columns: [{ name: "inner", is: "first" }, { name: "outer", is: "lowerFirst" }, count("count")],
    holds: "tagged",
    roundTrip: "exact",
    notes: "inner = inside, outer = outside. Bare values apply to the selected kinds.",
    parse: parseUnshare,
    format: formatUnshare,
  },
  {
    name: "unshare-legacy",
    title: "util-linux before 2.39 (outer,inner,count)",
    syntax: "--map-users=outer,inner,count",
    direction: "userns",
    columns: [{ name: "outer", is: "lowerFirst" }, { name: "inner", is: "first" }, count("count")],
    holds: "tagged",
    roundTrip: "exact",
    notes: "OUTER comes first. Deprecated by util-linux but still parsed.",
    parse: parseUnshareLegacy,
    format: formatUnshareLegacy,
  },
  {
    name: "x-mount-idmap",
    title: "mount(8) X-mount.idmap",
    syntax: "X-mount.idmap=[u:|g:|b:]first:second:count …",
    direction: "mount",
    columns: [
      kind("u|g|b"),
      { name: "first (on disk)", is: "first" },
      { name: "second (seen)", is: "lowerFirst" },
      count("count"),
    ],
    holds: "tagged",
    roundTrip: "exact",
    notes:
      "MOUNT direction: first = on-disk id, second = id seen through the mount (util-linux PR #4613; the man page said the opposite until 2026). No prefix = both.",
    parse: parseXMountIdmapMapSet,
    format: formatXMountIdmapMapSet,
  },
  {
    name: "docker",
    title: "Docker userns-remap",
    syntax: "default | user[:group] | uid[:gid] (or daemon.json)",
    direction: "userns",
    columns: [{ name: "user[:group]", is: "lowerFirst" }],
    holds: "tagged",
    roundTrip: "exact",
    notes:
      "Names a user: all its /etc/subuid and /etc/subgid ranges, concatenated from container id 0. Output is daemon.json plus the subid lines that give the map.",
    parse: parseDocker,
    format: formatDocker,
  },
  {
    name: "subid",
    title: "/etc/subuid and /etc/subgid lines",
    syntax: "owner:start:count",
    direction: "userns",
    columns: [{ name: "owner", is: "kind" }, { name: "start", is: "lowerFirst" }, count("count")],
    holds: "one",
    roundTrip: "exact",
    notes: "Outside ranges only; inside ids are assigned from 0 in line order (as Docker does).",
    parse: parseSubidFormat,
    format: formatSubidFormat,
  },
  {
    name: "nspawn",
    title: "systemd-nspawn --private-users",
    syntax: "--private-users=base[:count] | identity | yes | pick | managed | no",
    direction: "userns",
    columns: [{ name: "base", is: "lowerFirst" }, count("count")],
    holds: "one",
    roundTrip: "exact",
    notes: "Always one range from container id 0, same for uids and gids. pick/managed are chosen at run time.",
    parse: parseNspawn,
    format: formatNspawn,
  },
  {
    name: "go",
    title: "Go syscall.SysProcIDMap",
    syntax: '{"UidMappings":[{"ContainerID":0,"HostID":1000,"Size":1}],"GidMappings":[…]}',
    direction: "userns",
    columns: [{ name: "ContainerID", is: "first" }, { name: "HostID", is: "lowerFirst" }, count("Size")],
    holds: "tagged",
    roundTrip: "exact",
    notes: "ContainerID = inside, HostID = outside.",
    parse: parseGo,
    format: formatGo,
  },
  {
    name: "storage",
    title: "containers/storage idtools.IDMap JSON",
    syntax: '{"uidmap":[{"container_id":0,"host_id":100000,"size":65536}],"gidmap":[…]}',
    direction: "userns",
    columns: [{ name: "container_id", is: "first" }, { name: "host_id", is: "lowerFirst" }, count("size")],
    holds: "tagged",
    roundTrip: "exact",
    notes: "container_id = inside, host_id = outside.",
    parse: parseStorage,
    format: formatStorage,
  },
  {
    name: "cri",
    title: "CRI LinuxIDMapping JSON",
    syntax: '{"uids":[{"hostId":100000,"containerId":0,"length":65536}],"gids":[…]}',
    direction: "userns",
    columns: [{ name: "hostId", is: "lowerFirst" }, { name: "containerId", is: "first" }, count("length")],
    holds: "tagged",
    roundTrip: "exact",
    notes: "containerId = inside, hostId = outside.",
    parse: parseCri,
    format: formatCri,
  },
] satisfies FormatSpec[]);

/** The format named `name`, or a usage-style FormatError listing the names. */
export function getFormat(name: string): FormatSpec {
  const f = FORMATS.find((x) => x.name === name);
  if (!f) {
    throw new FormatError(name, "parse", `unknown format; known: ${FORMATS.map((x) => x.name).join(", ")}`);
  }
  return f;
}

/** Parses `text` as `from` and writes it as `to`. */
export function convert(
  text: string,
  from: FormatName,
  to: FormatName,
  options: ParseOptions & FormatOptions = {},
): { maps: MapSet; text: string } {
  const maps = getFormat(from).parse(text, options);
  return { maps, text: getFormat(to).format(maps, options) };
}
