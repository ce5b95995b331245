/**
 * End to end: the built `userns` binary (bin/userns.js → dist/), run as a
 * child process with real stdin, files, stdout, stderr and exit codes.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { release, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FORMATS } from "../../lib/formats/index.js";

const root = join(import.meta.dirname, "..", "..");
let dir: string;

function run(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [join(root, "bin", "userns.js"), ...args], {
    input: input ?? "",
    encoding: "utf8",
    timeout: 30_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

beforeAll(() => {
  execFileSync(
    process.execPath,
    [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.build.json")],
    {
      cwd: root,
      stdio: "inherit",
    },
  );
  dir = mkdtempSync(join(tmpdir(), "userns-cli-"));
  writeFileSync(join(dir, "subuid"), "alice:100000:65536\nbob:165536:65536\nbob:165540:10\n1002:300000:10\n");
  writeFileSync(join(dir, "subgid"), "alice:100000:65536\nbob:165536:65536\n");
  writeFileSync(
    join(dir, "passwd"),
    "alice:x:1000:1000::/:/bin/sh\nbob:x:1001:1001::/:/bin/sh\ncarol:x:1002:1002::/:/bin/sh\n",
  );
  writeFileSync(
    join(dir, "config.json"),
    JSON.stringify({
      linux: {
        uidMappings: [{ containerID: 0, hostID: 1000, size: 32000 }],
        gidMappings: [{ containerID: 0, hostID: 2000, size: 10 }],
      },
    }),
  );
  writeFileSync(join(dir, "parent_map"), "0 1000 1\n1 100000 65536\n");
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("userns convert", () => {
  it("--list names every format with its direction", () => {
    const r = run(["convert", "--list"]);
    expect(r.code).toBe(0);
    for (const f of FORMATS) expect(r.out).toMatch(new RegExp(`^${f.name} +${f.direction} `, "m"));
    expect(r.out).toMatch(/^x-mount-idmap +mount +first \(on disk\)=on-disk second \(seen\)=seen/m);
    expect(r.out).toMatch(/^incus-raw +userns +host=outside inside=inside/m);
  });

  it("--list --json is the registry", () => {
    const r = run(["convert", "--list", "--json"]);
    const list = JSON.parse(r.out) as { name: string; direction: string }[];
    expect(list.map((f) => f.name)).toEqual(FORMATS.map((f) => f.name));
  });

  it("lxc on stdin → oci", () => {
    const r = run(
      ["convert", "--from", "lxc", "--to", "oci"],
      "lxc.idmap = u 0 100000 65536\nlxc.idmap = g 0 100000 65536\n",
    );
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({
      uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
      gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
    });
  });

  it("config.json from a file → kernel text for one kind", () => {
    expect(run(["convert", "--from", "oci", "--to", "kernel", "--kind", "gid", join(dir, "config.json")]).out).toBe(
      "0 2000 10\n",
    );
    const both = run(["convert", "--from", "oci", "--to", "kernel", join(dir, "config.json")]);
    expect(both.code).toBe(1);
    expect(both.err).toMatch(/holds one map.*--kind uid or --kind gid/);
  });

  it("incus raw.idmap → lxc-entry, host column first in, nsid first out", () => {
    const r = run(["convert", "--from", "incus-raw", "--to", "lxc-entry", "-"], "both 1000 1000\nuid 50-60 500-510\n");
    expect(r.out).toBe("u:1000:1000:1\nu:500:50:11\ng:1000:1000:1\n");
  });

  it("mount → userns conversion says why the numbers carry over", () => {
    const r = run(["convert", "--from", "x-mount-idmap", "--to", "lxc-entry"], "X-mount.idmap=b:1000:0:1");
    expect(r.out).toBe("b:1000:0:1\n");
    expect(r.err).toMatch(/note: x-mount-idmap is a mount map/);
  });

  it("--json carries both maps, the text and the directions", () => {
    const r = run(["convert", "--from", "unshare", "--to", "crun-mount", "--json"], "--map-users=0:100000:10");
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({
      from: "unshare",
      to: "crun-mount",
      direction: { from: "userns", to: "mount" },
      text: "idmap=uids=0-100000-10\n",
    });
    expect(j.uid).toEqual([{ first: 0, lowerFirst: 100000, count: 10 }]);
    expect(j.gid).toBeNull();
  });

  it("--table prints aligned columns named for the output's direction", () => {
    const r = run(["convert", "--from", "kernel", "--to", "oci-mount", "--table"], "0 100000 65536\n");
    expect(r.out).toBe(
      "KIND  ON-DISK    SEEN  COUNT   LAST\n----  -------  ------  -----  -----\nuid         0  100000  65536  65535\ngid         0  100000  65536  65535\n",
    );
  });

  it("podman keep-id with the rootless map from a file", () => {
    const r = run(
      ["convert", "--from", "podman", "--to", "kernel", "--kind", "uid", "--parent-uid-map", join(dir, "parent_map")],
      "--userns=keep-id:uid=11",
    );
    expect(r.out).toBe("0 1 11\n11 0 1\n12 12 65525\n");
  });

  it("docker user resolved through subuid files, by uid too", () => {
    const args = [
      "convert",
      "--from",
      "docker",
      "--to",
      "kernel",
      "--kind",
      "uid",
      "--subuid",
      join(dir, "subuid"),
      "--subgid",
      join(dir, "subgid"),
      "--passwd",
      join(dir, "passwd"),
    ];
    expect(run(args, "alice").out).toBe("0 100000 65536\n");
    expect(run(args, "1002").out).toBe("0 300000 10\n");
  });

  it("malformed input: exit 1 with line and column", () => {
    const r = run(["convert", "--from", "kernel", "--to", "oci"], "0 0 1\n1 x 1\n");
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      "userns: parsing kernel at line 2, column 3: ERR_USERNS_FORMAT: the lower field starts with 'x'; only decimal digits are accepted\n",
    );
  });

  it.each([
    [["convert", "--from", "nope", "--to", "oci"], /unknown format "nope"/],
    [["convert", "--from", "kernel"], /needs --from FMT and --to FMT/],
    [["convert", "--from", "kernel", "--to", "oci", "--kind", "projid"], /Allowed choices are uid, gid, both/],
    [["convert", "--from", "kernel", "--to", "oci", join("/nonexistent", "x")], /cannot read/],
    [["subid", "--free", "zero"], /--free must be a decimal id/],
  ])("usage error %j exits 2", (args, re) => {
    const r = run(args as string[], "0 0 1\n");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(re);
  });

  it.each(["convert", "subid", "doctor"])("%s --help shows examples and exit codes", (cmd) => {
    const r = run([cmd, "--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Examples:\n {2}\$ userns /);
    expect(r.out).toMatch(/Exit codes: 0 .*1 .*2 usage/);
  });
});

describe("userns subid", () => {
  const files = () => [
    "--subuid",
    join(dir, "subuid"),
    "--subgid",
    join(dir, "subgid"),
    "--passwd",
    join(dir, "passwd"),
  ];

  it("alice: ranges in a table, no overlap, exit 0", () => {
    const r = run(["subid", "alice", ...files()]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      "FILE    OWNER   START     END  COUNT  LINE\n------  -----  ------  ------  -----  ----\nsubuid  alice  100000  165535  65536     1\nsubgid  alice  100000  165535  65536     1\n",
    );
  });

  it("bob by uid: two overlapping lines are flagged, exit 1", () => {
    const r = run(["subid", "1001", ...files()]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^subuid +same-user +165540-165549 +bob's lines 2 and 3 overlap/m);
    expect(r.out).toMatch(/2 lines for this user/);
  });

  it("carol matched through the numeric owner; --json", () => {
    const r = run(["subid", "carol", "--json", ...files()]);
    const j = JSON.parse(r.out);
    expect(j.user).toEqual({ name: "carol", uid: 1002 });
    expect(j.subuid.map((e: { start: number }) => e.start)).toEqual([300000]);
  });

  it("--all --free finds a range past every delegation", () => {
    const r = run(["subid", "--all", "--free", "65536", "--align", "65536", "--json", ...files()]);
    // 262144 would reach 300000 (carol), so the next aligned start
    expect(JSON.parse(r.out).free).toEqual({ start: 327680, count: 65536 });
  });
});

describe("userns doctor", () => {
  it("--json reports every check with a verdict, and the exit code follows the failures", () => {
    const r = run(["doctor", "--json"]);
    const j = JSON.parse(r.out) as {
      ok: boolean;
      checks: { id: string; verdict: string; detail: string; data?: { max?: number } }[];
    };
    expect(r.code).toBe(j.ok ? 0 : 1);
    const ids = j.checks.map((c) => c.id);
    for (const id of [
      "kernel",
      "clone3",
      "pidfd",
      "mount_setattr",
      "max_user_namespaces",
      "nesting",
      "newuidmap",
      "newgidmap",
      "subid",
      "policy",
    ]) {
      expect(ids).toContain(id);
    }
    for (const c of j.checks) expect(["ok", "warn", "fail", "info"]).toContain(c.verdict);
    expect(j.checks.find((c) => c.id === "kernel")!.detail).toBe(release());
    const max = Number(readFileSync("/proc/sys/user/max_user_namespaces", "utf8"));
    expect(j.checks.find((c) => c.id === "max_user_namespaces")!.data!.max).toBe(max);
    // every mounted filesystem type gets a row: probed for real as root, else judged by kernel version
    const types = new Set(
      readFileSync("/proc/self/mountinfo", "utf8")
        .split("\n")
        .filter((l) => l.includes(" - "))
        .map((l) => l.split(" - ")[1]!.split(" ")[0]!),
    );
    const asRoot = process.getuid?.() === 0;
    for (const t of types) {
      const c = j.checks.find((x) => x.id === `idmap-fs:${t}`) as { detail: string; basis: string } | undefined;
      expect(c?.basis).toBe(asRoot ? "probe" : "kernel-version");
      if (!asRoot) expect(c?.detail).toMatch(/by kernel version/);
    }
    if (asRoot) {
      expect(j.checks.find((c) => c.id === "idmap-fs:tmpfs")).toMatchObject({ verdict: "ok" });
      expect(j.checks.find((c) => c.id === "idmap-fs:proc")?.detail).toMatch(/does not allow idmapped mounts/);
    }
  });

  it("human output is an aligned table", () => {
    const r = run(["doctor"]);
    const lines = r.out.split("\n");
    expect(lines[0]).toMatch(/^CHECK +VERDICT +DETAIL$/);
    const col = lines[0]!.indexOf("VERDICT");
    for (const l of lines.slice(2).filter((x) => x.trim() !== "" && !x.includes('by kernel version" means'))) {
      expect(l.slice(col)).toMatch(/^(ok|info|WARN|FAIL) /);
    }
  });
});
