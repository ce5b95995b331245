import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { parseMapFlag, registerRunCommand, runOptions } from "../../lib/cli/run.js";
import { registerShowCommand } from "../../lib/cli/show.js";
import { UserNamespace } from "../../lib/namespaces/user-namespace.js";
import { spawn } from "../../lib/spawn/index.js";
import { runCommands } from "../helpers/cli.js";
import { describeKernel } from "../helpers/kernel.js";
import { procLine } from "../helpers/spawn.js";

const cli = (args: string[]) =>
  runCommands((program, io) => {
    registerRunCommand(program, io);
    registerShowCommand(program, io);
  }, args);

let dir = "";

describeKernel("userns run and userns show", () => {
  // Made here, not at module level: when the block is skipped (no root) its hooks do not run, and a directory made
  // at module level would be left behind.
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "userns-cli-"));
    // uid 0 inside a namespace is uid 100000 outside: let it write here.
    chmodSync(dir, 0o777);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => {
    process.exitCode = undefined;
  });
  afterAll(() => {
    UserNamespace.clearCache();
  });

  it("runs with util-linux inner:outer:count maps, several namespaces, and passes the exit status through", async () => {
    const file = join(dir, "a");
    const r = await cli([
      "run",
      "--map-users",
      "0:100000:1000",
      "--map-users",
      "1000:300000:10",
      "--map-groups",
      "0:200000:1000",
      "--user",
      "0",
      "--group",
      "0",
      "--pid",
      "--mount",
      "--uts",
      "--",
      "sh",
      "-c",
      `{ cat /proc/self/uid_map /proc/self/gid_map; id -u; echo $$; } > ${file}; exit 7`,
    ]);
    expect(r.code).toBe(7);
    expect(readFileSync(file, "utf8")).toBe(
      `${procLine(0, 100000, 1000)}${procLine(1000, 300000, 10)}${procLine(0, 200000, 1000)}0\n1\n`,
    );
  });

  it("--map-root-user maps our own ids to 0 and denies setgroups; --json reports it", async () => {
    const r = await cli(["run", "-r", "--json", "--", "true"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({
      mapping: { method: "direct", uidMap: "0 0 1\n", gidMap: "0 0 1\n", setgroups: "deny" },
      code: 0,
      status: 0,
    });
  });

  it("reports a signal as 128 + its number", async () => {
    const r = await cli(["run", "-r", "--", "sh", "-c", "kill -TERM $$"]);
    expect(r.code).toBe(128 + 15);
  });

  it.each([
    ["0:100000", "expected inner:outer:count"],
    ["a:b:c", "is not a number"],
    ["0:0:4294967296", "larger than"],
  ])("rejects --map-users %s as usage", async (v, msg) => {
    expect(() => parseMapFlag(v, "uid")).toThrow(msg);
    const r = await cli(["run", "--map-users", v, "--", "true"]);
    expect(r.code).toBe(2);
  });

  it("turns flags into spawn options", () => {
    expect(runOptions({ mapUsers: ["0:1000:1"], net: true, ipc: true, setgroups: "deny" })).toMatchObject({
      namespaces: ["user", "ipc", "net"],
      setgroups: "deny",
    });
  });

  it("shows the namespace chain of a process with maps as the kernel reports them", async () => {
    const l1 = await UserNamespace.create({ uidMap: "0 100000 65536", gidMap: "0 100000 65536", cache: false });
    const child = spawn("sleep", ["10"], {
      join: l1,
      namespaces: ["user"],
      uidMap: "0 10 5",
      gidMap: "0 20 5",
      setgroups: "deny",
    });
    await new Promise<void>((r) => child.once("spawn", r));
    const r = await cli(["show", String(child.pid), "--json"]);
    child.kill("SIGKILL");
    await child;
    expect(r.code).toBe(0);
    const { chain } = JSON.parse(r.out) as { chain: Record<string, unknown>[] };
    expect(chain.map((l) => [l.uidMap, l.gidMap, l.setgroups, l.ownerUid, l.initial])).toEqual([
      [["0 100010 5"], ["0 100020 5"], "deny", 100000, false],
      [["0 100000 65536"], ["0 100000 65536"], "allow", 0, false],
      [["0 0 4294967295"], ["0 0 4294967295"], "allow", 0, true],
    ]);
    expect(chain[1]!.ino).toBe(String(l1.identity.ino));
    const table = await cli(["show", "self"]);
    expect(table.out).toMatch(
      /^UP\s+NAMESPACE\s+OWNER\s+SETGROUPS\s+UID_MAP\s+GID_MAP\n0\s+user:\[4026531837\] \(initial\)/,
    );
    l1.close();
  });

  it("rejects a bad pid as usage", async () => {
    expect((await cli(["show", "abc"])).code).toBe(2);
  });
});
