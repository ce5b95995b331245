/**
 * The §2 mount-case corpus replayed on the real kernel (in a private mount
 * namespace, via runMountCasesKernel) and through the model: zero
 * disagreements. Also the CLI, run only inside a private mount namespace.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, expect, it } from "vitest";
import { compareMountResults } from "../../lib/cli/mount.js";
import { packageRoot } from "../../lib/kernel/native.js";
import { predictMountCase } from "../../lib/model/mountcases.js";
import { type MountCase, type MountCaseResult, parseMountCases, runMountCasesKernel } from "../../lib/mounts/cases.js";
import { describeKernel } from "../helpers/kernel.js";
import { childEnv, compiledLib, hostMountinfo } from "../helpers/mountns.js";

const corpus = join(packageRoot, "test", "fixtures", "mount-cases.jsonl");
let before = "";
beforeEach(() => {
  before = hostMountinfo();
});
afterEach(() => {
  expect(hostMountinfo()).toBe(before);
});

describeKernel("idmapped-mount cases (§2)", () => {
  let cases: ReturnType<typeof parseMountCases>;
  let results: MountCaseResult[];
  beforeAll(async () => {
    process.env.USERNS_MOUNT_RUNNER = childEnv().USERNS_MOUNT_RUNNER;
    cases = parseMountCases(readFileSync(corpus, "utf8"));
    results = await runMountCasesKernel(cases);
  }, 120_000);

  it("the corpus has at least 40 cases, and every one ran", () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
    expect(results.map((r) => r.id)).toEqual(cases.map((c) => c.id));
    expect(results.filter((r) => r.stage !== undefined)).toEqual([]);
  });

  it("the kernel and the model agree on every field of every case", () => {
    const diffs = cases.flatMap((c, i) => compareMountResults(results[i]!, predictMountCase(c as MountCase)));
    expect(diffs).toEqual([]);
  });

  const byId = (id: string) => results.find((r) => r.id === id)!;
  it.each([
    ["ramfs-refused", "mount_setattr", "EINVAL"],
    ["userns-init", "mount_setattr", "EPERM"],
    ["userns-netns", "mount_setattr", "EINVAL"],
    ["userns-file", "mount_setattr", "EINVAL"],
    ["uid-map-unwritten", "mount_setattr", "EINVAL"],
    ["source-attached", "mount_setattr", "EINVAL"],
  ])("%s fails at %s with %s (spec §8.2)", (id, step, errno) => {
    expect(byId(id)).toMatchObject({ ok: false, step, errno });
  });

  it("spec §8.4's worked example holds: creates, chowns and the unmapped owner", () => {
    const create = (id: string) => byId(id).creates!.map((c) => [c.name, c.errno, c.disk_uid]);
    expect(create("create-as-root-eoverflow")).toEqual([["n", "EOVERFLOW", null]]);
    expect(create("create-as-fsid-mapped")).toEqual([
      ["n", null, 0],
      ["d", null, 1000],
    ]);
    // Nobody may write to a directory whose owner is unmapped through the mount, not even with mode 0777.
    expect(create("create-in-unmapped-owner-dir-open")).toEqual([["dir/n", "EACCES", null]]);
    expect(byId("chown-mapped").chowns!.map((c) => [c.errno, c.disk_uid, c.disk_gid])).toEqual([
      [null, 5, 6],
      [null, 1000, 65535],
    ]);
    expect(byId("chown-to-unmapped").chowns![0]!.errno).toBe("EOVERFLOW");
    expect(byId("tmpfs-owners").stat!.map((s) => s.uid)).toEqual([100000, 101000, 165535, 65534, 65534, 65534]);
    expect(byId("twice").mount_setattr_again).toEqual({ ok: false, errno: "EPERM" });
    expect(byId("submount-recursive").stat!.find((s) => s.name === "sub")!.uid).toBe(100007);
    expect(byId("submount-not-recursive").stat!.find((s) => s.name === "sub")!.uid).toBe(100000);
    expect(byId("reidmap").reidmap!.stat!.map((s) => s.uid)).toEqual([200000, 201000, 265535]);
  });
});

function cli(args: string[], script = ""): { status: number | null; stdout: string; stderr: string } {
  const lib = compiledLib();
  const main = `import(${JSON.stringify(join(lib, "cli", "main.js"))}).then(async (m) => { process.exitCode = await m.main(process.argv.slice(1)); })`;
  const sh = `set -e\n${script}\nexec ${JSON.stringify(process.execPath)} --input-type=module -e '${main}' "$@"`;
  const r = spawnSync("unshare", ["--mount", "--propagation", "private", "--", "bash", "-c", sh, "userns", ...args], {
    encoding: "utf8",
    env: childEnv(),
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describeKernel("CLI: userns mount and verify --mount-cases (in a private mount namespace)", () => {
  it("userns mount prints what sample owners become, read back with statmount", () => {
    const d = mkdtempSync(join(tmpdir(), "userns-cli-mount-"));
    try {
      const r = cli(
        ["mount", "--map-users", "0:100000:65536", "--map-groups", "0:200000:1000", "--json", `${d}/src`, `${d}/mnt`],
        `mkdir ${d}/src ${d}/mnt; mount -t tmpfs cli ${d}/src`,
      );
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      const j = JSON.parse(r.stdout) as {
        mapsFrom: string;
        crossCheck: boolean;
        uids: { onDisk: number; seen: number }[];
        gids: { onDisk: number; seen: number }[];
      };
      expect(j.mapsFrom).toBe("statmount");
      expect(j.crossCheck).toBe(true);
      expect(j.uids).toContainEqual({ onDisk: 1000, seen: 101000 });
      expect(j.uids).toContainEqual({ onDisk: 65536, seen: 65534 });
      expect(j.gids).toContainEqual({ onDisk: 999, seen: 200999 });
      expect(j.gids).toContainEqual({ onDisk: 1000, seen: 65534 });
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it.each([
    [["mount", "--map-users", "0:1", "/a", "/b"], 2, /ondisk:seen:count/],
    [["mount", "/a", "/b"], 2, /--map-users/],
    [["mount", "--map-users", "0:100000:10", "/proc", "/tmp"], 1, /proc: the filesystem type does not allow/],
  ])("userns %j exits %i", (args, code, msg) => {
    const r = cli(args as string[]);
    expect(r.status).toBe(code);
    expect(r.stderr).toMatch(msg);
  });

  it("verify --mount-cases agrees with the model on every case; --kernel-only prints §2 results in input order", () => {
    const r = cli(["verify", "--mount-cases", corpus, "--json"]);
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split("\n");
    const summary = JSON.parse(lines.at(-1)!) as { cases: number; agree: number; disagree: number };
    const n = parseMountCases(readFileSync(corpus, "utf8")).length;
    expect(summary).toMatchObject({ cases: n, agree: n, disagree: 0 });
    expect(lines.length).toBe(1);
    const k = cli(["verify", "--mount-cases", corpus, "--kernel-only"]);
    expect(k.status).toBe(0);
    const results = k.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as MountCaseResult);
    expect(results.map((x) => x.id)).toEqual(parseMountCases(readFileSync(corpus, "utf8")).map((c) => c.id));
  }, 60_000);
});
