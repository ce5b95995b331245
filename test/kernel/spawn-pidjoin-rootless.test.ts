/**
 * forkAfterJoin as the unprivileged CI user (test/helpers/rootless.ts): joining the user and pid namespaces of
 * another of its sandboxes puts the program itself in that pid namespace (bwrap's test-specifying-pidns.sh), and a
 * pid namespace it has no rights over fails in the child with setns's EPERM, naming the step; beforeExec on the
 * newuidmap path.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { beforeAll, expect, it } from "vitest";
import { nativePath } from "../../lib/kernel/native.js";
import { compiledLib } from "../helpers/mountns.js";
import { describeRootless, testUserIds } from "../helpers/rootless.js";

const root = join(import.meta.dirname, "..", "..");
let outDir = "";

function scenario(name: string): Record<string, unknown> {
  const ids = testUserIds();
  const r = spawnSync(process.execPath, [join(root, "test/fixtures/rootless-pidjoin.mjs"), name], {
    ...(ids.switched ? { uid: ids.uid, gid: ids.gid } : {}),
    cwd: "/",
    env: { ...process.env, USERNS_LIB: outDir, USERNS_BINDING: nativePath(), ...(ids.switched ? { HOME: "/" } : {}) },
    encoding: "utf8",
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`scenario ${name} failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describeRootless("forkAfterJoin (as the unprivileged CI user)", () => {
  beforeAll(() => {
    outDir = compiledLib();
  }, 120_000);

  it("runs the program in the joined pid namespace of another sandbox", () => {
    const r = scenario("join");
    expect(r.ok).toBe(true);
    expect(r.code).toBe(0);
    expect(r.ns).not.toBe(r.own);
    // The joined namespace's init (sleep) is pid 1 there; the program comes next.
    expect(r.stdout).toBe(`${r.ns}\n2\n`);
    expect([r.children, r.fdsLeft, r.errors]).toEqual(["", 0, 0]);
  });

  it("a pid namespace it has no rights over: EPERM from setns, named, settled once, nothing left", () => {
    const r = scenario("eperm");
    expect(r).toMatchObject({ ok: false, code: "EPERM", errno: 1, syscall: "setns", step: "join pid" });
    expect(r.pid).toBeUndefined();
    expect([r.children, r.fdsLeft]).toEqual(["", 0]);
    expect(r.errors).toBeLessThanOrEqual(1);
  });

  it("beforeExec after newuidmap's maps: the pid and ids of the waiting program, equal to what it sees", () => {
    const r = scenario("hold") as {
      ok: boolean;
      stdout: string;
      pid: number;
      info: { pid: number; namespaces: Record<string, number>; cmdline: string };
      ownCmdline: string;
      children: string;
      fdsLeft: number;
    };
    expect(r.ok).toBe(true);
    expect(r.info.pid).toBe(r.pid);
    // Still this process's memory (not exec'd) when the hook ran.
    expect(r.info.cmdline).toBe(r.ownCmdline);
    const ids = ["user", "mnt", "pid", "net"].map((t) => `${t}:[${r.info.namespaces[t]}]`).join("\n");
    expect(r.stdout).toBe(`${ids}\n`);
    expect([r.children, r.fdsLeft]).toEqual(["", 0]);
  });
});
