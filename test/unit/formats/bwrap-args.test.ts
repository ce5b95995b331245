/**
 * fromBwrapArgs: table tests taken from bwrap.xml (../shared/peer-tests/bubblewrap/bwrap.xml), option by option,
 * and the argument lists bwrap refuses, with bwrap's messages (as Debian's bwrap 0.8.0 prints them; the overlay
 * options are newer and their messages come from the 0.11.1 suite). Pure: fds are a fake BwrapIo.
 */
import { describe, expect, it } from "vitest";
import {
  BwrapArgsError,
  type BwrapCommand,
  type BwrapContext,
  type BwrapIo,
  fromBwrapArgs,
} from "../../../lib/formats/bwrap.js";

const fds: Record<number, Uint8Array> = {
  3: new TextEncoder().encode("--dir\0/tmp/a\0--setenv\0X\0y\0"),
  4: new Uint8Array(16),
  5: new Uint8Array(12),
  6: new Uint8Array(8),
  7: new TextEncoder().encode("data"),
};
const io: BwrapIo = {
  readFd(fd) {
    const d = fds[fd];
    if (d === undefined) throw Object.assign(new Error("EBADF"), { code: "EBADF" });
    return d;
  },
  isOpen: (fd) => fd <= 2 || fd in fds,
};
const root: BwrapContext = { uid: 0, gid: 0, cwd: "/work", env: { HOME: "/root", PATH: "/bin", FOO: "1" }, io };
const user: BwrapContext = { ...root, uid: 1000, gid: 1000, env: { HOME: "/home/u", FOO: "1" } };

function run(argv: string[], ctx: BwrapContext = root): BwrapCommand {
  const r = fromBwrapArgs(argv, ctx);
  if (r.kind !== "run") throw new Error(`expected a command, got ${r.kind}`);
  return r;
}

function refusal(argv: string[], ctx: BwrapContext = root): BwrapArgsError {
  try {
    fromBwrapArgs(argv, ctx);
  } catch (e) {
    if (e instanceof BwrapArgsError) return e;
    throw e;
  }
  throw new Error(`accepted: ${argv.join(" ")}`);
}

describe("fromBwrapArgs: bwrap.xml, option by option", () => {
  it("--help and --version are answered first come", () => {
    expect(fromBwrapArgs(["--help", "--bogus"], root)).toEqual({ kind: "help" });
    expect(fromBwrapArgs(["--version"], root)).toEqual({ kind: "version" });
  });

  it("the command: first non-option, or after --; options after it are its arguments", () => {
    const c = run(["--bind", "/", "/", "ls", "--dev-bind", "/", "/"]);
    expect([c.file, c.args]).toEqual(["ls", ["--dev-bind", "/", "/"]]);
    const d = run(["--", "--dev-bind", "x"]);
    expect([d.file, d.args]).toEqual(["--dev-bind", ["x"]]);
  });

  it("--args FD: NUL-separated options read at that point", () => {
    const c = run(["--args", "3", "true"]);
    expect(c.options.filesystem).toEqual([{ op: "dir", dest: "/tmp/a" }]);
    expect(c.options.env?.X).toBe("y");
  });

  it("a root caller gets a mount namespace only; --unshare-* add theirs", () => {
    expect(run(["true"]).options.namespaces).toEqual(["mount"]);
    const c = run(["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup", "true"]);
    expect(c.options.namespaces).toEqual(["mount", "pid", "net", "ipc", "uts", "cgroup"]);
  });

  it("--unshare-all = --unshare-user-try --unshare-ipc --unshare-pid --unshare-net --unshare-uts --unshare-cgroup-try", () => {
    expect(run(["--unshare-all", "true"]).options.namespaces).toEqual([
      "user",
      "mount",
      "pid",
      "net",
      "ipc",
      "uts",
      "cgroup",
    ]);
    expect(
      run(["--unshare-all", "true"], { ...root, userNamespaces: false, cgroupNamespaces: false }).options.namespaces,
    ).toEqual(["mount", "pid", "net", "ipc", "uts"]);
  });

  it("--share-net retains the network namespace after --unshare-all or --unshare-net", () => {
    expect(run(["--unshare-all", "--share-net", "true"]).options.namespaces).not.toContain("net");
    expect(run(["--unshare-net", "--share-net", "true"]).options.namespaces).not.toContain("net");
  });

  it("an unprivileged caller always gets a user namespace mapping its own ids (setgroups deny)", () => {
    const o = run(["true"], user).options;
    expect(o.namespaces).toEqual(["user", "mount"]);
    expect([o.uidMap, o.gidMap, o.setgroups, o.uid, o.gid]).toEqual(["1000 1000 1", "1000 1000 1", "deny", 1000, 1000]);
  });

  it("--uid/--gid: the ids inside (needs a user namespace)", () => {
    const o = run(["--unshare-user", "--uid", "0", "--gid", "5", "true"]).options;
    expect([o.uidMap, o.gidMap, o.uid, o.gid]).toEqual(["0 0 1", "5 0 1", 0, 5]);
    expect(run(["--uid", "7", "true"], user).options.uidMap).toBe("7 1000 1");
  });

  it("--userns/--pidns join; --hostname; --chdir; --argv0", () => {
    const o = run([
      "--userns",
      "4",
      "--pidns",
      "5",
      "--unshare-uts",
      "--hostname",
      "h",
      "--chdir",
      "/x",
      "--argv0",
      "a",
      "t",
    ]).options;
    expect(o.join).toEqual([4, 5]);
    // bwrap forks after joining the pid namespace: the program itself is in it.
    expect(o.forkAfterJoin).toBe(true);
    expect(run(["--userns", "4", "t"]).options.forkAfterJoin).toBeUndefined();
    expect(o.namespaces).toEqual(["mount", "uts"]);
    expect([o.hostname, o.cwd, o.argv0]).toEqual(["h", "/x", "a"]);
  });

  it("--setenv/--unsetenv/--clearenv in order; PWD is the sandbox's cwd", () => {
    expect(run(["--setenv", "A", "1", "--unsetenv", "FOO", "true"]).options.env).toEqual({
      HOME: "/root",
      PATH: "/bin",
      A: "1",
      PWD: "/work",
    });
    expect(
      run(["--setenv", "A", "1", "--clearenv", "--setenv", "B", "2", "--chdir", "/d", "true"]).options.env,
    ).toEqual({
      B: "2",
      PWD: "/d",
    });
  });

  it("without --chdir the cwd falls back to $HOME then /, as bwrap", () => {
    expect(run(["true"]).frontEnd.cwdFallbacks).toEqual(["/root", "/"]);
    expect(run(["--setenv", "HOME", "/h", "true"]).frontEnd.cwdFallbacks).toEqual(["/h", "/"]);
    expect(run(["--chdir", "/", "true"]).frontEnd.cwdFallbacks).toEqual([]);
  });

  it("binds: --bind, -try, --dev-bind, --ro-bind, --bind-fd, --ro-bind-fd, --remount-ro, in order", () => {
    const c = run([
      ...["--bind", "/a", "/b", "--bind-try", "/c", "/d", "--dev-bind", "/dev", "/dev", "--dev-bind-try", "/e", "/f"],
      ...["--ro-bind", "/g", "/h", "--ro-bind-try", "/i", "/j", "--bind-fd", "4", "/k", "--ro-bind-fd", "5", "/l"],
      ...["--remount-ro", "/h", "true"],
    ]);
    expect(c.options.filesystem).toEqual([
      { op: "bind", source: "/a", dest: "/b" },
      { op: "bind", source: "/c", dest: "/d", optional: true },
      { op: "bind", source: "/dev", dest: "/dev", devices: true },
      { op: "bind", source: "/e", dest: "/f", devices: true, optional: true },
      { op: "bind", source: "/g", dest: "/h", readOnly: true },
      { op: "bind", source: "/i", dest: "/j", readOnly: true, optional: true },
      { op: "bind", source: { fd: 4 }, dest: "/k" },
      { op: "bind", source: { fd: 5 }, dest: "/l", readOnly: true },
      { op: "remountReadOnly", dest: "/h" },
    ]);
  });

  it("--proc is a new procfs with a pid namespace, the caller's /proc bound without one", () => {
    expect(run(["--unshare-pid", "--proc", "/proc", "true"]).options.filesystem).toEqual([
      { op: "proc", dest: "/proc" },
    ]);
    expect(run(["--proc", "/proc", "true"]).options.filesystem).toEqual([
      { op: "bind", source: "/proc", dest: "/proc" },
    ]);
  });

  it("--perms applies to the next operation only; defaults: dir/tmpfs 0755 (core), --file 0666, --bind-data 0600", () => {
    const c = run([
      ...["--perms", "0700", "--tmpfs", "/a", "--tmpfs", "/b", "--perms", "1741", "--dir", "/c", "--dir", "/d"],
      ...["--file", "7", "/e", "--perms", "0640", "--file", "7", "/f", "--bind-data", "7", "/g"],
      ...["--ro-bind-data", "7", "/h", "--perms", "0640", "--bind-data", "7", "/i", "--chmod", "1755", "/c", "true"],
    ]);
    expect(c.options.filesystem).toEqual([
      { op: "tmpfs", dest: "/a", mode: 0o700 },
      { op: "tmpfs", dest: "/b" },
      { op: "dir", dest: "/c", mode: 0o1741 },
      { op: "dir", dest: "/d" },
      { op: "file", dest: "/e", content: { fd: 7 }, mode: 0o666 },
      { op: "file", dest: "/f", content: { fd: 7 }, mode: 0o640 },
      { op: "file", dest: "/g", content: { fd: 7 }, mode: 0o600, bind: "rw" },
      { op: "file", dest: "/h", content: { fd: 7 }, mode: 0o600, bind: "ro" },
      { op: "file", dest: "/i", content: { fd: 7 }, mode: 0o640, bind: "rw" },
      { op: "chmod", dest: "/c", mode: 0o1755 },
    ]);
  });

  it("--size sets the next tmpfs's size; --perms and --size combine either way", () => {
    const c = run([
      "--size",
      "10485760",
      "--perms",
      "0700",
      "--tmpfs",
      "/s",
      "--perms",
      "0700",
      "--size",
      "0x10",
      "--tmpfs",
      "/t",
      "x",
    ]);
    expect(c.options.filesystem).toEqual([
      { op: "tmpfs", dest: "/s", mode: 0o700, size: 10485760 },
      { op: "tmpfs", dest: "/t", mode: 0o700, size: 16 },
    ]);
  });

  it("--mqueue, --dev, --symlink (SRC is the target)", () => {
    expect(run(["--mqueue", "/q", "--dev", "/dev", "--symlink", "usr/lib", "/lib", "true"]).options.filesystem).toEqual(
      [
        { op: "mqueue", dest: "/q" },
        { op: "dev", dest: "/dev" },
        { op: "symlink", target: "usr/lib", dest: "/lib" },
      ],
    );
  });

  it("overlays: sources bottom first, relative host paths from the cwd", () => {
    const c = run([
      ...["--overlay-src", "l1", "--overlay-src", "/l2", "--overlay", "up", "wk", "/o"],
      ...[
        "--overlay-src",
        "/l1",
        "--tmp-overlay",
        "/t",
        "--overlay-src",
        "/a",
        "--overlay-src",
        "/b",
        "--ro-overlay",
        "/r",
        "x",
      ],
    ]);
    expect(c.options.filesystem).toEqual([
      { op: "overlay", dest: "/o", lower: ["/work/l1", "/l2"], upper: "/work/up", work: "/work/wk" },
      { op: "overlay", dest: "/t", lower: ["/l1"], upper: "tmpfs" },
      { op: "overlay", dest: "/r", lower: ["/a", "/b"] },
    ]);
  });

  it("--seccomp FD: only the last; --add-seccomp-fd: all, in order", () => {
    expect(run(["--seccomp", "6", "--seccomp", "4", "true"]).options.seccomp).toEqual([fds[4]]);
    expect(run(["--add-seccomp-fd", "4", "--add-seccomp-fd", "6", "true"]).options.seccomp).toEqual([fds[4], fds[6]]);
  });

  it("caps: root keeps its sets untouched by default; others get none, even uid 0 in a user namespace", () => {
    expect(run(["true"]).options.capabilities).toBeUndefined();
    expect(run(["--unshare-user", "--uid", "5", "true"]).options.capabilities).toEqual([]);
    expect(run(["--uid", "0", "true"], user).options.capabilities).toEqual([]);
  });

  it("caps: --cap-add/--cap-drop in order, from all for root and from none otherwise; ALL; cut to the bounding set", () => {
    expect(run(["--cap-add", "cap_kill", "true"], user).options.capabilities).toEqual(["CAP_KILL"]);
    const dropped = run(["--cap-drop", "CAP_KILL", "--cap-drop", "CAP_FOWNER", "true"]).options.capabilities;
    expect(dropped).toHaveLength(39);
    expect(dropped).toContain("CAP_NET_BIND_SERVICE");
    expect(run(["--cap-drop", "ALL", "--cap-add", "CAP_CHOWN", "true"]).options.capabilities).toEqual(["CAP_CHOWN"]);
    expect(run(["--cap-add", "ALL", "--cap-drop", "ALL", "true"], user).options.capabilities).toEqual([]);
    const bounded = run(["--cap-add", "ALL", "true"], {
      ...user,
      bounding: new Set(["CAP_KILL", "CAP_CHOWN"] as const),
    });
    expect(bounded.options.capabilities).toEqual(["CAP_CHOWN", "CAP_KILL"]);
  });

  it("pid 1: a reaper with --unshare-pid (bwrap's default), the program itself with --as-pid-1", () => {
    expect(run(["--unshare-pid", "true"]).options.init).toBe("reaper");
    expect(run(["--unshare-pid", "--as-pid-1", "true"]).options.init).toBe("program");
    expect(run(["true"]).options.init).toBeUndefined();
  });

  it("--die-with-parent, --new-session, --disable-userns; no_new_privs and slave propagation always", () => {
    const o = run(["--die-with-parent", "--new-session", "--unshare-user", "--disable-userns", "true"]).options;
    expect([o.parentDeathSignal, o.detached, o.disableUserNamespaces]).toEqual(["SIGKILL", true, true]);
    expect([o.noNewPrivileges, o.mountPropagation]).toEqual([true, "slave"]);
  });

  it("front-end fields: monitoring fds, lock files, --level-prefix, warnings", () => {
    const f = run([
      ...["--info-fd", "1", "--json-status-fd", "2", "--sync-fd", "4", "--block-fd", "0", "--lock-file", "/l1"],
      ...["--lock-file", "/l2", "--level-prefix", "--assert-userns-disabled", "--chdir", "/", "--chdir", "/", "x"],
    ]).frontEnd;
    expect(f).toMatchObject({ infoFd: 1, jsonStatusFd: 2, syncFd: 4, blockFd: 0, lockFiles: ["/l1", "/l2"] });
    expect([f.levelPrefix, f.assertUserNamespacesDisabled]).toEqual([true, true]);
    expect(f.warnings).toEqual(["Only the last --chdir option will take effect"]);
  });
});

describe("fromBwrapArgs: refusals with bwrap's messages", () => {
  const table: [string[], string, BwrapContext?][] = [
    [["--foo"], "Unknown option --foo"],
    [["-x", "true"], "Unknown option -x"],
    [["--bind", "/"], "--bind takes two arguments"],
    [["--chdir"], "--chdir takes one argument"],
    [["--remount-ro"], "--remount-ro takes one argument"],
    [["--uid"], "--uid takes an argument"],
    [["--setenv", "A"], "--setenv takes two arguments"],
    [["--overlay", "a", "b"], "--overlay takes three arguments"],
    [["--uid", "x", "true"], "Invalid uid: x"],
    [["--uid", "-1", "true"], "Invalid uid: -1"],
    [["--uid", "", "true"], "Invalid uid: "],
    [["--uid", "4294967295", "true"], "Invalid uid: 4294967295"],
    [["--gid", "5x", "true"], "Invalid gid: 5x"],
    [["--userns", "x", "true"], "Invalid fd: x"],
    [["--args", "99", "true"], "Can't read --args data: Bad file descriptor"],
    [["--seccomp", "99", "true"], "Can't read seccomp data: Bad file descriptor"],
    [["--seccomp", "5", "true"], "Invalid seccomp data, must be multiple of 8"],
    [["--seccomp", "4", "--add-seccomp-fd", "4", "true"], "--add-seccomp-fd cannot be combined with --seccomp"],
    [["--add-seccomp-fd", "4", "--seccomp", "4", "true"], "--seccomp cannot be combined with --add-seccomp-fd"],
    [["--file", "99", "/a", "true"], "Can't write data to file /a: Bad file descriptor"],
    [["--bind-fd", "99", "/a", "true"], "Can't find source path /proc/self/fd/99: No such file or directory"],
    [["--userns", "99", "true"], "Joining specified user namespace failed: Bad file descriptor"],
    [["--perms", "8", "--dir", "/a", "true"], "--perms takes an octal argument <= 07777"],
    [["--perms", "", "--dir", "/a", "true"], "--perms takes an octal argument <= 07777"],
    [["--perms", "-1", "--dir", "/a", "true"], "--perms takes an octal argument <= 07777"],
    [["--perms", "0x10", "--dir", "/a", "true"], "--perms takes an octal argument <= 07777"],
    [["--perms", "010000", "--dir", "/a", "true"], "--perms takes an octal argument <= 07777"],
    [["--perms", "0700", "--perms", "0700", "--tmpfs", "/a", "true"], "--perms given twice for the same action"],
    [["--perms", "0700", "--bind", "/", "/", "true"], "--perms must be followed by an option that creates a file"],
    [["--chmod", "8", "/a", "true"], "--chmod takes an octal argument <= 07777"],
    [["--size", "10", "--dir", "/a", "true"], "--size must be followed by --tmpfs"],
    [["--size", "1048576", "--size", "1048576", "--tmpfs", "/a", "true"], "--size given twice for the same action"],
    ...["0", "123bogus", "", "-12345678", " -12345678", "1k", "18446744073709551616", "9223372036854775809"].map(
      (s): [string[], string] => [["--size", s, "--tmpfs", "/a", "true"], "--size takes a non-zero number of bytes"],
    ),
    [["--cap-add", "FOO", "true"], "unknown cap: FOO"],
    [["--cap-drop", "kill", "true"], "unknown cap: kill"],
    [["--exec-label", "x", "true"], "labeling not supported on this system"],
    [["--userns", "4", "--unshare-user", "true"], "--userns not compatible --unshare-user"],
    [["--disable-userns", "true"], "--disable-userns requires --unshare-user"],
    [["--disable-userns", "true"], "--disable-userns requires --unshare-user", user],
    [["--uid", "5", "true"], "Specifying --uid requires --unshare-user or --userns"],
    [["--gid", "5", "true"], "Specifying --gid requires --unshare-user or --userns"],
    [["--hostname", "h", "true"], "Specifying --hostname requires --unshare-uts"],
    [["--as-pid-1", "true"], "Specifying --as-pid-1 requires --unshare-pid"],
    [["--userns-block-fd", "0", "true"], "--userns-block-fd requires --unshare-user"],
    [["--unshare-user", "--userns-block-fd", "0", "true"], "--userns-block-fd requires --info-fd"],
    [["--overlay", "u", "w", "/t", "true"], "--overlay requires at least one --overlay-src"],
    [["--tmp-overlay", "/t", "true"], "--tmp-overlay requires at least one --overlay-src"],
    [["--overlay-src", "/a", "--ro-overlay", "/t", "true"], "--ro-overlay requires at least two --overlay-src"],
    [
      ["--overlay-src", "/a", "true"],
      "--overlay-src must be followed by another --overlay-src or one of --overlay, --tmp-overlay, or --ro-overlay",
    ],
    [
      ["--overlay-src", "/a", "--chdir", "/", "true"],
      "--overlay-src must be followed by another --overlay-src or one of --overlay, --tmp-overlay, or --ro-overlay",
    ],
  ];
  it.each(table)("%j → bwrap: %s", (argv, text, ctx) => {
    const e = refusal(argv, ctx ?? root);
    expect(e.bwrapText).toBe(`bwrap: ${text}`);
    expect(e.exitStatus).toBe(1);
    expect(e.usage).toBe(false);
  });

  it("no command: bwrap's usage, status 1 (and a pending --perms or --size is then not an error)", () => {
    for (const argv of [[], ["--"], ["--bind", "/", "/"], ["--perms", "0700"], ["--size", "10"]]) {
      const e = refusal(argv);
      expect([e.usage, e.exitStatus]).toEqual([true, 1]);
    }
    expect(run(["--perms", "0700", "true"]).file).toBe("true");
  });

  it("--level-prefix before a refusal is remembered for its <3> prefix", () => {
    expect(refusal(["--level-prefix", "--foo"]).levelPrefix).toBe(true);
    expect(refusal(["--foo", "--level-prefix"]).levelPrefix).toBe(false);
  });

  it("a self-feeding --args fd stops at bwrap's argument limit", () => {
    const loop: BwrapIo = { readFd: () => new TextEncoder().encode("--args\x003\0"), isOpen: () => true };
    expect(refusal(["--args", "3", "true"], { ...root, io: loop }).bwrapText).toBe(
      "bwrap: Exceeded maximum number of arguments",
    );
  });
});
