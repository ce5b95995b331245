/**
 * Rootless spawns, as the unprivileged CI user (scripts/ci-user.sh creates
 * `usernstest` with subuid/subgid 300000:65536). Each scenario runs in a
 * separate Node process against a compiled copy of lib/: started with that
 * user's uid/gid when the suite runs as root, as the suite's own user when
 * that user runs it (CI's second pass; see test/helpers/rootless.ts).
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, expect, it } from "vitest";
import { nativePath } from "../../lib/kernel/native.js";
import { compiledLib } from "../helpers/mountns.js";
import { describeRootless, testUserIds } from "../helpers/rootless.js";
import { procLine } from "../helpers/spawn.js";

const root = join(import.meta.dirname, "..", "..");
let outDir = "";
let uid = -1;
let gid = -1;

function scenario(name: string, arg?: string): Record<string, unknown> {
  const extra = arg === undefined ? [] : [arg];
  // As root: as the test user. Run by that user itself (CI's second pass): as we are.
  const asUser = process.getuid?.() === 0 ? { uid, gid, env: { HOME: "/" } } : { env: {} };
  const r = spawnSync(process.execPath, [join(root, "test/fixtures/rootless-scenarios.mjs"), name, ...extra], {
    ...(asUser.uid !== undefined ? { uid: asUser.uid, gid: asUser.gid } : {}),
    cwd: "/",
    env: { ...process.env, USERNS_LIB: outDir, USERNS_BINDING: nativePath(), ...asUser.env },
    encoding: "utf8",
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`scenario ${name} failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

/** The process exists, is our `sleep`, and has not exited. */
function isSleeping(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.includes("(sleep)") && !/\) Z/.test(stat);
  } catch {
    return false;
  }
}

describeRootless("rootless spawn (as the unprivileged CI user)", () => {
  beforeAll(() => {
    ({ uid, gid } = testUserIds());
    // The shared compiled copy of lib/ (readable by every uid).
    outDir = compiledLib();
  }, 120_000);

  it("writes the single-line self-map itself (method self)", () => {
    const r = scenario("self");
    expect(r.ok).toBe(true);
    expect(r.mapping).toEqual({ method: "self", uidMap: `0 ${uid} 1\n`, gidMap: `0 ${gid} 1\n`, setgroups: "deny" });
    expect(r.stdout).toBe(`${procLine(0, uid, 1)}${procLine(0, gid, 1)}deny\n0\n0\n`);
  });

  it("the self-map with another program in flight: events, codes, signals, kill() right after spawn(), failures", () => {
    expect(scenario("concurrentSelf")).toEqual({
      quick: {
        code: 4,
        signal: null,
        events: ["spawn", "exit", "close"],
        mapping: { method: "self", uidMap: `0 ${uid} 1\n`, gidMap: `0 ${gid} 1\n`, setgroups: "deny" },
      },
      signal: "SIGTERM",
      killSent: true,
      killed: "SIGKILL",
      failed: { code: "ENOENT", step: "chdir", path: "/nonexistent/dir" },
      children: "",
    });
  });

  it("writes subordinate ranges through newuidmap/newgidmap", () => {
    const r = scenario("newuidmap");
    expect(r.ok).toBe(true);
    expect((r.mapping as { method: string }).method).toBe("newuidmap");
    expect(r.stdout).toBe(`${procLine(0, 300000, 65536)}${procLine(0, 300000, 65536)}0\n0\n`);
  });

  it("refuses a range outside the user's /etc/subuid before any process, naming the ranges and what would work", () => {
    const r = scenario("refused");
    expect(r.ok).toBe(false);
    expect(r.code).toBe("EPERM");
    expect(r.rule).toBe("subid_range");
    expect(r.step).toBe("uid_map");
    expect(r.syscall).toBe("newuidmap");
    expect(r.path).toBe("/etc/subuid");
    expect(r.pid).toBeUndefined();
    expect(r.message).toContain(
      "lower uids 100000-100009 are not all in usernstest's ranges in /etc/subuid: 300000-365535",
    );
    expect(r.message).toContain("--map-users auto (0:300000:65536)");
    expect(r.message).toContain("usermod --add-subuids 100000-100009 usernstest");
    expect(r.children).toBe("");
  });

  it("a failure after the maps (execve EACCES) on the newuidmap path rejects once and leaks no fd", () => {
    const r = scenario("execFails");
    expect(r).toMatchObject({ ok: false, code: "EACCES", step: "execve", syscall: "execve", path: "/etc/passwd" });
    expect(r.errors).toBe(1);
    expect(r.fdsAfter).toBe(r.fdsBefore);
    expect(r.children).toBe("");
  });

  it("the CLI prints every failure and exits 1; --map-users auto without --user says the program runs as nobody", () => {
    const r = scenario("cli") as Record<string, { status: number; stdout: string; stderr: string }>;
    expect(r.execve!.status).toBe(1);
    expect(r.execve!.stderr).toMatch(/^userns: spawning \/etc\/passwd .*step execve \(execve\): EACCES/);
    expect(r.noGidMap!.status).toBe(1);
    expect(r.noGidMap!.stderr).toMatch(
      /step setgid \(setresgid\): EINVAL: no gid map was given \(gidMap; --map-groups for userns run\)/,
    );
    expect(r.nobody).toMatchObject({ status: 0, stdout: "65534\n" });
    expect(r.nobody!.stderr).toContain(
      `note: your uid ${uid} is not in the uid map and your gid ${gid} is not in the gid map`,
    );
    expect(r.nobody!.stderr).toContain("--user 0 --group 0 for root inside");
    expect(r.check!.status).toBe(1);
    expect(r.check!.stdout).toMatch(/writer +newuidmap/);
    expect(r.check!.stdout).toMatch(/rule +subid_range/);
  });

  it("userns demo runs the nested namespace and cross-check through newuidmap, and says what each skipped section needs", () => {
    const r = scenario("cli") as Record<string, { status: number; stdout: string; stderr: string }>;
    expect(r.demo!.status).toBe(0);
    const sections = JSON.parse(r.demo!.stdout) as {
      title: string;
      skipped?: string;
      data: { mapping?: { method: string }; report?: { discrepancies: unknown[] } } | null;
    }[];
    const nested = sections.find((s) => s.title.startsWith("A nested namespace"))!;
    expect(nested.skipped).toBeUndefined();
    expect(nested.data?.mapping?.method).toBe("parent-helper");
    expect(nested.data?.report?.discrepancies).toEqual([]);
    expect(sections.find((s) => s.title.startsWith("A refused map"))!.skipped).toBeUndefined();
    const skipped = sections.filter((s) => s.skipped !== undefined);
    expect(skipped.map((s) => s.title.split(":")[0])).toEqual([
      "An idmapped mount of a scratch tmpfs",
      "A short differential campaign",
    ]);
    for (const s of skipped) expect(s.skipped).toMatch(/^needs root: .*(CAP_SYS_ADMIN|CAP_SETUID)/);
  });

  it("the model refuses a forced self gid map while setgroups is allow, before any process", () => {
    const r = scenario("selfForced");
    expect(r.ok).toBe(false);
    expect(r.code).toBe("EPERM");
    expect(r.step).toBe("gid_map");
    expect(r.pid).toBeUndefined();
  });

  it("creates a held namespace through newuidmap and nests one inside it", () => {
    const r = scenario("nested");
    expect(r.ok).toBe(true);
    expect((r.l1 as { method: string }).method).toBe("newuidmap");
    expect((r.l2 as { method: string }).method).toBe("parent-helper");
    expect(r.l2Maps).toBe("0 301000 100\n");
    expect(r.stdout).toBe(`${procLine(0, 1000, 100)}5\n`);
    expect(r.owner).toBe(300000);
  });

  it("kill() while newuidmap runs cancels the spawn and leaves no child", () => {
    const r = scenario("cancel");
    expect(r).toEqual({ ok: false, code: "ABORT_ERR", killed: true, children: "" });
  });

  it.each([
    { name: "with parentDeathSignal the program dies with its parent", arg: "pdeathsig", survives: false },
    { name: "without it the program outlives its parent (control)", arg: "none", survives: true },
    { name: "join + pid: with parentDeathSignal pid 1 dies with its parent", arg: "pid-pdeathsig", survives: false },
    { name: "join + pid: without it pid 1 outlives its parent (control)", arg: "pid-none", survives: true },
  ])("$name", async ({ arg, survives }) => {
    const { pid } = scenario("orphan", arg) as { pid: number };
    let alive = true;
    for (let i = 0; i < 40 && alive; i++) {
      await new Promise((r) => setTimeout(r, 50));
      alive = isSleeping(pid);
    }
    if (alive) process.kill(pid, "SIGKILL"); // our own test program (the control)
    expect(alive).toBe(survives);
  });

  it("join + a new pid namespace: pid 1 in the joined and in a nested user namespace", () => {
    const r = scenario("pidJoin") as Record<string, { ok: boolean; code: number; stdout: string }> & {
      children: string;
    };
    expect(r.joined).toMatchObject({ ok: true, code: 0, stdout: "1\n5\n" });
    expect(r.nested).toMatchObject({ ok: true, code: 0, stdout: `1\n${procLine(0, 1000, 100)}0\n` });
    expect(r.children).toBe("");
  });

  it("reaps a worker thread's children after the worker is terminated (no zombie)", () => {
    const r = scenario("worker");
    expect(r.first).toBe(0);
    expect(r.state).toBe("gone");
    expect(r.children).toBe("");
  });

  it("unref() lets the parent's event loop end while the program runs", async () => {
    const t0 = Date.now();
    const { pid } = scenario("unref") as { pid: number };
    const took = Date.now() - t0;
    const alive = isSleeping(pid);
    if (alive) process.kill(pid, "SIGKILL"); // the sleep we started
    expect(took).toBeLessThan(20_000);
    expect(alive).toBe(true);
  });

  it("stays dumpable after children changed credentials on the shared mm", () => {
    const r = scenario("dumpable");
    expect(r.ok).toBe(true);
    expect(r.procOwner).toBe(uid);
  });

  it("run(): to completion over newuidmap; an abort while the helpers write the maps cancels before execve", () => {
    const r = scenario("runNewuidmap") as {
      stdout: string;
      method: string;
      failed: Record<string, unknown>;
      aborted: Record<string, unknown>;
    };
    expect(r.method).toBe("newuidmap");
    expect(r.stdout).toBe("in\n0\nlate\n");
    expect(r.failed).toMatchObject({ code: "ERR_USERNS_EXIT", exitCode: 4, signal: null, stderr: "err\n" });
    // Never exec'd: no exit status, and the held child (whose pid is known) is gone.
    expect(r.aborted).toMatchObject({ code: "ABORT_ERR", exitCode: null, signal: null, killedBy: "abort" });
    expect(typeof r.aborted.pid).toBe("number");
    expect(isSleeping(r.aborted.pid as number)).toBe(false);
  });
});
