import { describe, expect, it } from "vitest";
import { runOptions } from "../../lib/cli/run.js";
import { extractSandboxArgs } from "../../lib/cli/sandbox-args.js";

describe("userns run: sandbox flags", () => {
  it("keeps the plan in command-line order, with --perms/--size for the next operation", () => {
    const { args, rest } = extractSandboxArgs([
      "--map-root-user",
      "--ro-bind",
      "/",
      "/",
      "--bind-try",
      "/w",
      "/w",
      "--perms",
      "1777",
      "--size",
      "1048576",
      "--tmpfs",
      "/tmp",
      "--dev",
      "/dev",
      "--symlink",
      "usr/bin",
      "/bin",
      "--mount-proc",
      "--user",
      "0",
      "--",
      "sh",
      "--bind",
    ]);
    expect(args.filesystem).toEqual([
      { op: "bind", source: "/", dest: "/", readOnly: true },
      { op: "bind", source: "/w", dest: "/w", optional: true },
      { op: "tmpfs", dest: "/tmp", mode: 0o1777, size: 1048576 },
      { op: "dev", dest: "/dev" },
      { op: "symlink", target: "usr/bin", dest: "/bin" },
      { op: "proc", dest: "/proc" },
    ]);
    // Everything else, and everything after the command, is left for commander and the command.
    expect(rest).toEqual(["--map-root-user", "--user", "0", "--", "sh", "--bind"]);
    expect([...args.namespaces].sort()).toEqual(["mount", "pid"]);
  });

  it("maps the process flags onto spawn options", () => {
    const { args } = extractSandboxArgs([
      "--hostname",
      "box",
      "--cap-drop",
      "ALL",
      "--cap-add",
      "net_bind_service",
      "--clearenv",
      "--setenv",
      "A",
      "1",
      "--chdir",
      "/w",
      "--new-session",
      "--die-with-parent",
      "--as-pid-1",
      "--ro-bind",
      "/usr",
      "/usr",
    ]);
    const o = runOptions({}, args);
    expect(o).toMatchObject({
      namespaces: ["user", "mount", "uts"],
      hostname: "box",
      capabilities: ["CAP_NET_BIND_SERVICE"],
      env: { A: "1" },
      cwd: "/w",
      detached: true,
      parentDeathSignal: "SIGKILL",
      init: "program",
      filesystem: [{ op: "bind", source: "/usr", dest: "/usr", readOnly: true }],
    });
  });

  it("takes util-linux's attached values", () => {
    const { args } = extractSandboxArgs(["--root=/srv/root", "--wd=/w", "--mount-proc=/p", "--kill-child=term"]);
    expect(args.filesystem).toEqual([
      { op: "bind", source: "/srv/root", dest: "/" },
      { op: "proc", dest: "/p" },
    ]);
    expect(args.cwd).toBe("/w");
    expect(args.parentDeathSignal).toBe("SIGTERM");
  });

  it("refuses what it cannot mean", () => {
    expect(() => extractSandboxArgs(["--bind", "/a"])).toThrow(/needs 2 value/);
    expect(() => extractSandboxArgs(["--bind=/a", "/b"])).toThrow(/separate value/);
    expect(() => extractSandboxArgs(["--perms", "999", "--tmpfs", "/t"])).toThrow(/octal/);
    expect(() => extractSandboxArgs(["--perms", "0700"])).toThrow(/--perms without/);
    expect(() => extractSandboxArgs(["--cap-drop", "CAP_NOPE"])).toThrow(/unknown capability/);
    expect(() => extractSandboxArgs(["--overlay-src", "/l"])).toThrow(/--overlay-src without/);
  });
});
