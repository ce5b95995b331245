/** Malformed input: every parser says what is wrong and where. */
import { describe, expect, it } from "vitest";
import { UsernsError } from "../../../lib/errors.js";
import { FormatError, getFormat } from "../../../lib/formats/index.js";
import type { FormatName, ParseOptions } from "../../../lib/formats/types.js";

interface Bad {
  format: FormatName;
  input: string;
  options?: ParseOptions;
  where: { line?: number; column?: number; pointer?: string };
  says: RegExp;
}

const rows: Bad[] = [
  { format: "kernel", input: "0 0 1\n\n1 1 1\n", where: { line: 2, column: 1 }, says: /line is empty/ },
  { format: "kernel", input: "0 0 1 9\n", where: { line: 1, column: 7 }, says: /exactly three fields/ },
  { format: "kernel", input: "0 0\n", where: { line: 1, column: 4 }, says: /count field is missing/ },
  { format: "kernel", input: "0 +1 1\n", where: { line: 1, column: 3 }, says: /lower field starts with '\+'/ },
  { format: "kernel", input: "0 0 0x10\n", where: { line: 1, column: 6 }, says: /unexpected 'x' in the count field/ },
  { format: "kernel", input: "0 4294967296 1\n", where: { line: 1, column: 3 }, says: /does not fit in 32 bits/ },
  { format: "kernel", input: "5 0 0\n", where: { line: 1, column: 5 }, says: /count is 0/ },
  { format: "kernel", input: "2 0 4294967295\n", where: { line: 1, column: 5 }, says: /reach past 4294967294/ },
  // What the model's own map_write parser refuses, now that the kernel format reads through it.
  { format: "kernel", input: "0 0 10\n5 10 1\n", where: { line: 2, column: 1 }, says: /overlaps line 1's 0-9/ },
  { format: "kernel", input: "4294967295 0 1\n", where: { line: 1, column: 1 }, says: /\(u32\)-1/ },
  { format: "kernel", input: "0 0 1\n\u00e9 1 1\n", where: { line: 2, column: 1 }, says: /byte 0xc3/ },
  { format: "kernel", input: "0 0 1 \u00e9\n", where: { line: 1, column: 7 }, says: /byte 0xc3/ },
  {
    format: "oci",
    input: '{"uidMappings": [{"containerID": 0, "hostID": 1}]}',
    where: { pointer: "/uidMappings/0" },
    says: /missing field "size"/,
  },
  {
    format: "oci",
    input: '{"uidMappings": [{"containerId": 0, "hostID": 1, "size": 1}]}',
    where: { pointer: "/uidMappings/0/containerId" },
    says: /cri's spelling/,
  },
  {
    format: "oci",
    input: '{"uidMappings": [{"containerID": -1, "hostID": 1, "size": 1}]}',
    where: { pointer: "/uidMappings/0/containerID" },
    says: /integer from 0/,
  },
  {
    format: "oci",
    input: '{\n  "uidMappings": [\n    {"containerID": 0,}\n  ]\n}',
    where: { line: 3, column: 23 },
    says: /not valid JSON: expected a property name/,
  },
  { format: "oci", input: "", where: { line: 1, column: 1 }, says: /unexpected end/ },
  { format: "oci", input: '{"foo": 1}', where: { pointer: "" }, says: /uidMappings/ },
  {
    format: "oci-mount",
    input: '{"options":["idmap"],"uidMappings":[]}',
    where: { pointer: "/gidMappings" },
    says: /both or neither/,
  },
  {
    format: "oci-mount",
    input: '{"options":["idmap"]}',
    where: { pointer: "/options" },
    says: /container's user namespace/,
  },
  { format: "lxc", input: "lxc.idmap = b 0 100000 65536\n", where: { line: 1, column: 13 }, says: /no "b"/ },
  { format: "lxc", input: "lxc.idmap = u 0 100000\n", where: { line: 1 }, says: /4 values/ },
  { format: "lxc", input: "idmap u 0 1 1\n", where: { line: 1, column: 1 }, says: /expected "lxc.idmap/ },
  { format: "lxc-entry", input: "b:0:100000:65536 x:0:1:1", where: { line: 1, column: 18 }, says: /kind must be/ },
  { format: "lxc-entry", input: "u:0:abc:1", where: { line: 1, column: 5 }, says: /hostid/ },
  {
    format: "incus-raw",
    input: "both 1000 1000\nuid 50-60 500-509\n",
    where: { line: 2, column: 11 },
    says: /same length/,
  },
  { format: "incus-raw", input: "user 1 1\n", where: { line: 1, column: 1 }, says: /kind must be/ },
  { format: "incus-raw", input: "uid 60-50 1-11\n", where: { line: 1, column: 8 }, says: /ends before it starts/ },
  {
    format: "incus-json",
    input: '[{"Isuid":false,"Isgid":false,"Hostid":1,"Nsid":0,"Maprange":1}]',
    where: { pointer: "/0" },
    says: /neither Isuid nor Isgid/,
  },
  { format: "podman", input: "--uidmap=0:1:2:3", where: { line: 1, column: 10 }, says: /joined triples/ },
  { format: "podman", input: "--uidmap 0:x:1", where: { line: 1, column: 12 }, says: /from id/ },
  { format: "podman", input: "--uidmap=0:@5:1", where: { line: 1 }, says: /parentMaps/ },
  { format: "podman", input: "--userns=auto --uidmap=0:1:1", where: { line: 1 }, says: /cannot be combined/ },
  {
    format: "podman",
    input: "--userns=keep-id:foo=1",
    options: { parentMaps: {} },
    where: { line: 1 },
    says: /unknown option "foo"/,
  },
  { format: "podman", input: "--userns=host", where: { line: 1 }, says: /no id map/ },
  { format: "podman", input: "--privileged", where: { line: 1, column: 1 }, says: /unknown option/ },
  {
    format: "crun-mount",
    input: "idmap=uids=0-1-10#10-11;gids=0-100-10",
    where: { line: 1, column: 19 },
    says: /fs-host-length/,
  },
  { format: "crun-mount", input: "idmap=foo=bar", where: { line: 1, column: 7 }, says: /uids=/ },
  { format: "crun-mount", input: "idmap", where: { line: 1, column: 1 }, says: /containerMaps/ },
  {
    format: "unshare",
    input: "--map-users=100000,0,65536",
    where: { line: 1, column: 13 },
    says: /use --from unshare-legacy/,
  },
  { format: "unshare", input: "--map-users=auto", where: { line: 1, column: 13 }, says: /run time/ },
  { format: "unshare-legacy", input: "0:100000:65536", where: { line: 1, column: 1 }, says: /use --from unshare\)/ },
  {
    format: "x-mount-idmap",
    input: "X-mount.idmap=/proc/1/ns/user",
    where: { line: 1, column: 15 },
    says: /names a user namespace/,
  },
  { format: "x-mount-idmap", input: "X-mount.idmap=u:0:1", where: { line: 1, column: 15 }, says: /first:second:count/ },
  { format: "docker", input: "a:b:c", where: { line: 1, column: 1 }, says: /user:group/ },
  {
    format: "docker",
    input: "nobody",
    options: { subuid: [], subgid: [] },
    where: {},
    says: /no \/etc\/subuid range for nobody/,
  },
  { format: "subid", input: "alice:100000\n", where: { line: 1, column: 1 }, says: /owner:start:count/ },
  { format: "subid", input: "alice:1:1\nbob:2:1\n", where: { line: 2, column: 1 }, says: /several owners/ },
  { format: "nspawn", input: "--private-users=pick", where: { line: 1, column: 17 }, says: /run time/ },
  { format: "nspawn", input: "yes", options: { rootOwner: 1000 }, where: { line: 1 }, says: /multiple of 65536/ },
  { format: "nspawn", input: "100000:0", where: { line: 1 }, says: /at least 1/ },
  {
    format: "go",
    input: '{"UidMappings":[{"ContainerID":0,"HostID":1,"Size":1.5}]}',
    where: { pointer: "/UidMappings/0/Size" },
    says: /integer/,
  },
  { format: "storage", input: "[1]", where: { pointer: "/0" }, says: /expected an object/ },
  { format: "cri", input: '{"uids":{}}', where: { pointer: "/uids" }, says: /array/ },
];

describe("formats: malformed input", () => {
  it.each(rows)("$format: $input", ({ format, input, options, where, says }) => {
    let err: unknown;
    try {
      getFormat(format).parse(input, options);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FormatError);
    expect(UsernsError.isUsernsError(err)).toBe(true);
    const fe = err as FormatError;
    expect(fe.code).toBe("ERR_USERNS_FORMAT");
    expect(fe.format).toBe(format);
    expect(fe.message).toMatch(says);
    if (where.line !== undefined) expect(fe.line).toBe(where.line);
    if (where.column !== undefined) expect(fe.column).toBe(where.column);
    if (where.pointer !== undefined) expect(fe.pointer).toBe(where.pointer);
  });
});
