/**
 * The fault matrix: each map writer × each fault before exec. Every failure
 * rejects exactly once and emits 'error' exactly once, with code, errno,
 * syscall, step, the path involved and, for a refused map, the rule; the
 * process has the same fds and no children afterwards.
 *
 * The runner (test/fixtures/fault-scenarios.mjs) works in a Node process of
 * its own against the compiled library: as root for the direct and
 * parent-helper writers, and as the unprivileged test user for newuidmap,
 * the self-map and the parent helper under a newuidmap-made parent. When the
 * suite itself runs as that user, the user's rows run and the root rows are
 * skipped as needing root.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { nativePath } from "../../lib/kernel/native.js";
import { describeKernel } from "../helpers/kernel.js";
import { compiledLib } from "../helpers/mountns.js";
import { describeRootless, runAsTestUser } from "../helpers/rootless.js";

const script = join(import.meta.dirname, "..", "fixtures", "fault-scenarios.mjs");

interface Cell {
  settled: string;
  rejections: number;
  errors: number;
  spawned: number;
  exits: number;
  name?: string;
  message?: string;
  code?: string;
  errno?: number;
  syscall?: string;
  step?: string;
  path?: string;
  rule?: string;
  pidBeforeFailure?: number;
  fdsBefore: string[];
  fdsAfter: string[];
  childrenBefore: string[];
  childrenAfter: string[];
}
interface Emfile {
  tries: { rejections: number; errors: number; code?: string; exited: boolean }[];
  fdsBefore: string[];
  fdsAfter: string[];
  childrenAfter: string[];
}
interface Matrix {
  writer: string;
  cells: Record<string, Cell> & { emfile: Emfile & { notUnderSanitizer?: string } };
}

const env = (): NodeJS.ProcessEnv => ({ USERNS_LIB: compiledLib(), USERNS_BINDING: nativePath() });
const SAN = process.env.USERNS_EXPECT_SANITIZER === "1";

function asRoot(args: string): Matrix {
  const writer = args;
  const r = spawnSync(process.execPath, [script, ...args.split(" ")], {
    env: { ...process.env, ...env() },
    encoding: "utf8",
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`fault-scenarios ${writer} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as Matrix;
}

/** What each fault must report: [code, syscall, step, path, rule]. */
const EXPECTED: Record<string, [string, string | undefined, string, string | undefined, string | undefined]> = {
  modelRefused: ["EINVAL", "write", "uid_map", undefined, "mappings_overlap"],
  setgroups: ["EPERM", "setgroups", "setgroups", undefined, undefined],
  setgid: ["EINVAL", "setresgid", "setgid", undefined, undefined],
  setuid: ["EINVAL", "setresuid", "setuid", undefined, undefined],
  chdir: ["ENOENT", "chdir", "chdir", "/nonexistent-userns-dir", undefined],
  execveENOENT: ["ENOENT", "execve", "execve", "/nonexistent-userns-prog", undefined],
  execveEACCES: ["EACCES", "execve", "execve", "/etc/passwd", undefined],
  join: ["EINVAL", "setns", "join user", "/proc/self/ns/user", undefined],
  newidmapRefused: ["EPERM", "newuidmap", "uid_map", "/etc/subuid", "subid_range"],
  sigkillBeforeRelease: ["ECHILD", "read", "wait", undefined, undefined],
  createModelRefused: ["EINVAL", "write", "uid_map", undefined, "mappings_overlap"],
  createNewidmapRefused: ["EPERM", "newuidmap", "uid_map", "/etc/subuid", "subid_range"],
  createSigkillBeforeRelease: ["ECHILD", "read", "wait", undefined, undefined],
};

/** The faults each writer's row must contain (a writer without newuidmap has no newuidmap rule to break ...). */
const ROWS: Record<string, string[]> = {
  direct: ["modelRefused", "setgroups", "setgid", "setuid", "chdir", "execveENOENT", "execveEACCES", "join"],
  "parent-helper": ["modelRefused", "setgroups", "setgid", "setuid", "chdir", "execveENOENT", "execveEACCES"],
  self: ["modelRefused", "setgroups", "setgid", "setuid", "chdir", "execveENOENT", "execveEACCES", "join"],
  newuidmap: [
    "modelRefused",
    "newidmapRefused",
    "setgroups",
    "setgid",
    "setuid",
    "chdir",
    "execveENOENT",
    "execveEACCES",
    "sigkillBeforeRelease",
    "createModelRefused",
    "createNewidmapRefused",
    "createSigkillBeforeRelease",
  ],
};

function checkRow(m: Matrix): void {
  expect(Object.keys(m.cells).sort()).toEqual([...ROWS[m.writer]!, "emfile"].sort());
  for (const fault of ROWS[m.writer]!) {
    const c = m.cells[fault]!;
    const [code, syscall, step, path, rule] = EXPECTED[fault]!;
    const create = fault.startsWith("create");
    expect({ fault, ...c, fdsBefore: undefined, fdsAfter: undefined }).toMatchObject({
      fault,
      settled: "rejected",
      rejections: 1,
      // UserNamespace.create returns a plain promise: no events.
      errors: create ? 0 : 1,
      spawned: 0,
      exits: 0,
      name: "UsernsError",
      code,
      step,
    });
    // JSON drops undefined: a field that must be absent is checked as absent.
    expect({ syscall: c.syscall, path: c.path, rule: c.rule }, fault).toEqual({ syscall, path, rule });
    expect(typeof c.errno, fault).toBe("number");
    // A refusal before any process: no pid was ever given out.
    if (fault.endsWith("Refused")) expect(c.pidBeforeFailure, fault).toBeUndefined();
    expect(c.fdsAfter, fault).toEqual(c.fdsBefore);
    expect(c.childrenAfter, fault).toEqual([]);
  }
  if (SAN) {
    // See fault-scenarios.mjs: the EMFILE cell runs in the regular passes (as root and as the test user).
    expect(m.cells.emfile).toEqual({ notUnderSanitizer: expect.stringContaining("IsAccessibleMemoryRange") });
    return;
  }
  const e = m.cells.emfile;
  // With no fd free the spawn fails with EMFILE; with enough freed it runs. Each try settles exactly once.
  expect(e.tries[0]).toMatchObject({ rejections: 1, errors: 1, code: "EMFILE", exited: false });
  for (const t of e.tries) {
    expect(t.rejections + (t.exited ? 1 : 0)).toBe(1);
    expect(t.errors).toBe(t.rejections);
    if (t.rejections === 1) expect(t.code).toBe("EMFILE");
  }
  expect(e.tries.some((t) => t.exited)).toBe(true);
  expect(e.fdsAfter).toEqual(e.fdsBefore);
  expect(e.childrenAfter).toEqual([]);
}

/** The SIGKILL-before-release cell of a writer whose window no JavaScript reaches (a tracer injects the signal). */
function checkSigkill(m: Matrix): void {
  const c = m.cells.sigkillBeforeRelease!;
  const [code, syscall, step] = EXPECTED.sigkillBeforeRelease!;
  // The whole cell in the message: a wrong code alone would not say what happened instead.
  expect(c.code, `${m.writer}: ${JSON.stringify({ ...c, fdsBefore: undefined, childrenBefore: undefined })}`).toBe(
    code,
  );
  expect(c, m.writer).toMatchObject({
    settled: "rejected",
    rejections: 1,
    errors: 1,
    spawned: 0,
    exits: 0,
    name: "UsernsError",
    code,
    syscall,
    step,
  });
  expect(c.message, m.writer).toMatch(/killed by SIGKILL before execve/);
  expect(c.fdsAfter, m.writer).toEqual(c.fdsBefore);
  expect(c.childrenAfter, m.writer).toEqual([]);
}

describe("fault matrix", () => {
  // The compiled copy of lib/ is built once per change of lib/: that can take a while on a loaded machine.
  beforeAll(() => {
    compiledLib();
  }, 180_000);
  describeKernel("as root", () => {
    it.each(["direct", "parent-helper"])(
      "%s: every fault rejects once, names itself, leaks nothing",
      (writer) => {
        checkRow(asRoot(writer));
      },
      120_000,
    );
    it.each(["direct", "parent-helper"])(
      "%s: the child SIGKILLed before its release (strace injects it) rejects once, leaks nothing",
      (writer) => {
        checkSigkill(asRoot(`sigkill ${writer}`));
      },
      120_000,
    );
  });
  describeRootless("as the unprivileged test user", () => {
    it.each(["newuidmap", "self", "parent-helper"])(
      "%s: every fault rejects once, names itself, leaks nothing",
      (writer) => {
        checkRow(runAsTestUser<Matrix>(script, [writer], env()));
      },
      120_000,
    );
    it.each(["self", "parent-helper"])(
      "%s: the child SIGKILLed before its release (strace injects it) rejects once, leaks nothing",
      (writer) => {
        checkSigkill(runAsTestUser<Matrix>(script, ["sigkill", writer], env()));
      },
      120_000,
    );
    // Under ASan every spawn is several times slower: fewer rounds there.
    const N = SAN ? 50 : 200;
    it(`${N} failing spawns on the newuidmap path leave no zombie and no extra fd`, () => {
      const r = runAsTestUser<{
        n: number;
        rejected: number;
        extraFds: string[];
        fdsBefore: number;
        fdsAfter: number;
        children: string[];
        zombies: string[];
      }>(script, ["loop", String(N)], env());
      expect(r).toMatchObject({ n: N, rejected: N, extraFds: [], children: [], zombies: [] });
      expect(r.fdsAfter).toBe(r.fdsBefore);
    }, 120_000);
  });
});
