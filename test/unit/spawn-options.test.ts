import { describe, expect, it } from "vitest";
import { stepName } from "../../lib/child/steps.js";
import { UsernsError } from "../../lib/errors.js";
import { type SpawnOptions, validateSpawnOptions } from "../../lib/spawn/index.js";

function usage(options: SpawnOptions): string {
  try {
    validateSpawnOptions(options);
  } catch (e) {
    expect(UsernsError.isUsernsError(e)).toBe(true);
    expect((e as UsernsError).code).toBe("ERR_USERNS_USAGE");
    return (e as UsernsError).message;
  }
  return "ok";
}

describe("spawn option validation (before any syscall)", () => {
  it.each([
    {
      name: "misspelled uidmap",
      options: { uidmap: "0 0 1" },
      message: /unknown spawn option "uidmap" \(did you mean "uidMap"\?\)/,
    },
    { name: "misspelled namespace list", options: { namespace: ["user"] }, message: /did you mean "namespaces"/ },
    { name: "child_process shell", options: { shell: true }, message: /unknown spawn option "shell"/ },
    { name: "unknown namespace", options: { namespaces: ["users"] }, message: /unknown namespace "users"/ },
    { name: "duplicate namespace", options: { namespaces: ["net", "net"] }, message: /twice/ },
    {
      name: "map without user",
      options: { namespaces: ["net"], uidMap: "0 0 1" },
      message: /uidMap needs namespaces to include "user"/,
    },
    { name: "setgroups without user", options: { setgroups: "deny" }, message: /setgroups needs/ },
    { name: "bad setgroups", options: { namespaces: ["user"], setgroups: "no" }, message: /"allow" or "deny"/ },
    { name: "negative uid", options: { uid: -1 }, message: /uid must be an integer/ },
    { name: "uid too large", options: { uid: 2 ** 32 }, message: /uid must be an integer/ },
    { name: "bad groups", options: { groups: [1, "2"] }, message: /groups must be an array of gids/ },
    { name: "bad map writer", options: { namespaces: ["user"], mapWriter: "sudo" }, message: /mapWriter/ },
    { name: "bad propagation", options: { mountPropagation: "rprivate" }, message: /mountPropagation/ },
    { name: "bad mount entry", options: { mounts: [{ fd: -1, target: "/x" }] }, message: /mounts entries/ },
    {
      name: "mounts without a new mount namespace",
      options: { mounts: [{ fd: 5, target: "/x" }] },
      message: /mounts needs namespaces to include "mount"/,
    },
  ])("refuses $name", ({ options, message }) => {
    expect(usage(options as SpawnOptions)).toMatch(message);
  });

  it("refuses an unknown parent-death signal like ChildProcess.kill", () => {
    expect(() => validateSpawnOptions({ parentDeathSignal: "SIGNOPE" as NodeJS.Signals })).toThrow(
      expect.objectContaining({ code: "ERR_UNKNOWN_SIGNAL" }),
    );
  });

  it("accepts every option at once", () => {
    expect(
      usage({
        namespaces: ["user", "mount", "pid", "uts", "ipc", "net", "cgroup", "time"],
        uidMap: "0 100000 10",
        gidMap: "0 100000 10",
        setgroups: "deny",
        mapWriter: "auto",
        uid: 0,
        gid: 0,
        groups: [],
        cwd: "/",
        env: {},
        argv0: "x",
        stdio: "inherit",
        detached: true,
        parentDeathSignal: "SIGKILL",
        mountPropagation: "slave",
        mounts: [],
      }),
    ).toBe("ok");
  });
});

describe("step names in errors", () => {
  const plan = {
    cloneFlags: 0,
    path: "/bin/true",
    argv: [],
    envp: [],
    fdSrc: [],
    steps: [
      { op: "wait", notify: false },
      { op: "join", fd: 3, nstype: 0x10000000, label: "join user" },
      { op: "writeFile", path: "/proc/1/uid_map", data: "0 0 1", label: "uid_map" },
      { op: "setuid", uid: 0 },
      { op: "fork" },
    ],
  } as const;
  it.each([
    [0, "wait", "read"],
    [1, "join user", "setns"],
    [2, "uid_map", "write"],
    [3, "setuid", "setresuid"],
    [4, "fork", "clone3"],
    [5, "execve", "execve"],
  ])("step %i is %s (%s)", (i, step, syscall) => {
    expect(stepName(plan, i)).toEqual({ step, syscall });
  });
});
