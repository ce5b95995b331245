/**
 * spawn with `join` and a new pid namespace: the first child joins and unshares, then clones the program
 * (CLONE_PARENT) as pid 1 of the new pid namespace; this process is its parent.
 */
import { closeSync, openSync, readFileSync, readlinkSync } from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { UsernsError } from "../../lib/errors.js";
import { native } from "../../lib/kernel/native.js";
import { UserNamespace } from "../../lib/namespaces/user-namespace.js";
import { spawn } from "../../lib/spawn/index.js";
import { describeKernel } from "../helpers/kernel.js";
import { children, fdTable, procLine, run, settle, waitFor } from "../helpers/spawn.js";

const nsIno = (pid: number | "self", type: string): string => readlinkSync(`/proc/${pid}/ns/${type}`);

async function rejection(p: PromiseLike<unknown>): Promise<UsernsError> {
  try {
    await p;
  } catch (e) {
    return e as UsernsError;
  }
  throw new Error("expected a rejection");
}

/** The owning user namespace of /proc/PID/ns/pid (NS_GET_USERNS), as "user:[INO]". */
function pidNsOwner(pid: number): string {
  const fd = native().openNs(`/proc/${pid}/ns/pid`);
  try {
    const owner = native().nsGetUserns(fd);
    try {
      return `user:[${native().nsIdentity(owner).ino}]`;
    } finally {
      native().close(owner);
    }
  } finally {
    native().close(fd);
  }
}

/** Fields of /proc/PID/status as this process sees them. */
function status(pid: number, field: string): string {
  return new RegExp(`^${field}:\\s*(.*)$`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? "";
}

describeKernel("spawn: join + new pid namespace", () => {
  let ns: UserNamespace;
  beforeAll(async () => {
    ns = await UserNamespace.create({ uidMap: "0 100000 65536", gidMap: "0 100000 65536", cache: false });
  });
  afterAll(() => ns.close());

  it("runs the program as pid 1 of a pid namespace owned by the joined user namespace", async () => {
    const fds = fdTable();
    const child = spawn("sh", ["-c", "echo $$; echo end; sleep 5"], { join: ns, namespaces: ["pid"], uid: 0, gid: 0 });
    const out = await waitFor(child.stdout!, "end\n");
    expect(out).toBe("1\nend\n");
    const pid = child.pid!;
    expect(nsIno(pid, "pid")).not.toBe(nsIno("self", "pid"));
    expect(nsIno(pid, "user")).toBe(`user:[${ns.identity.ino}]`);
    expect(pidNsOwner(pid)).toBe(`user:[${ns.identity.ino}]`);
    // Our child (CLONE_PARENT), pid 1 in its own namespace; the intermediate process is gone.
    expect(status(pid, "PPid")).toBe(String(process.pid));
    expect(status(pid, "NSpid")).toBe(`${pid}\t1`);
    expect(children().map((c) => c.pid)).toEqual([pid]);
    expect(child.kill("SIGKILL")).toBe(true);
    expect(await child).toEqual({ pid, code: null, signal: "SIGKILL" });
    expect(child.pidfd).toBe(-1);
    expect(children()).toEqual([]);
    await settle();
    expect(fdTable()).toEqual(fds);
  });

  it("nests a new user namespace in the joined one and owns the pid namespace by it", async () => {
    const child = spawn("sh", ["-c", "echo $$; cat /proc/self/uid_map /proc/self/gid_map; id -u; echo end; sleep 5"], {
      join: ns,
      namespaces: ["user", "pid"],
      uidMap: "0 1000 10",
      gidMap: "0 2000 10",
      uid: 0,
      gid: 0,
    });
    const out = await waitFor(child.stdout!, "end\n");
    const pid = child.pid!;
    expect(child.mapping?.method).toBe("parent-helper");
    expect(out).toBe(`1\n${procLine(0, 1000, 10)}${procLine(0, 2000, 10)}0\nend\n`);
    // From here: kuids 100000 + 1000.
    expect(readFileSync(`/proc/${pid}/uid_map`, "utf8")).toBe(procLine(0, 101000, 10));
    expect(readFileSync(`/proc/${pid}/gid_map`, "utf8")).toBe(procLine(0, 102000, 10));
    const userNs = nsIno(pid, "user");
    expect(userNs).not.toBe(`user:[${ns.identity.ino}]`);
    expect(pidNsOwner(pid)).toBe(userNs);
    const held = UserNamespace.fromPid(pid);
    const parent = held.parent();
    expect(parent?.equals(ns)).toBe(true);
    parent?.close();
    held.close();
    child.kill("SIGKILL");
    await child;
    expect(children()).toEqual([]);
  });

  it("mounts its own /proc in a new mount namespace and sees only its own processes", async () => {
    const r = await run("sh", ["-c", "mount -t proc proc /proc && echo /proc/[0-9]*"], {
      join: ns,
      namespaces: ["mount", "pid"],
      uid: 0,
      gid: 0,
    });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("/proc/1\n");
    expect(r.code).toBe(0);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).toContain(" /proc ");
  });

  it("propagates the exit code and runs setsid in the program's process", async () => {
    const r = await run("sh", ["-c", "cut -d' ' -f6 /proc/self/stat; exit 3"], {
      join: ns,
      namespaces: ["pid"],
      detached: true,
      parentDeathSignal: "SIGKILL",
    });
    expect(r.code).toBe(3);
    expect(r.signal).toBeNull();
    // The session of its child (cut) as the host /proc shows it: the program's own pid.
    expect(r.stdout).toBe(`${r.pid}\n`);
  });

  it.each([
    { name: "missing program", file: "/nonexistent/prog", opts: {}, step: "execve", code: "ENOENT" },
    { name: "missing cwd", file: "/bin/true", opts: { cwd: "/nonexistent-dir" }, step: "chdir", code: "ENOENT" },
    { name: "unmapped uid", file: "/bin/true", opts: { uid: 5000 }, step: "setuid", code: "EINVAL" },
  ])(
    "a failure in the program's process ($name) rejects as without a pid namespace and leaves nothing",
    async ({ file, opts, step, code }) => {
      await settle();
      const fds = fdTable();
      const inner = await UserNamespace.create({ uidMap: "0 100000 10", gidMap: "0 100000 10", cache: false });
      const child = spawn(file, [], { join: inner, namespaces: ["pid"], ...opts });
      const e = await rejection(child);
      expect(e.code).toBe(code);
      expect(e.step).toBe(step);
      expect(child.pid).toBeUndefined();
      // The same error as without the pid namespace.
      const plain = await rejection(spawn(file, [], { join: inner, ...opts }));
      expect([plain.code, plain.step]).toEqual([code, step]);
      inner.close();
      expect(children()).toEqual([]);
      await settle();
      expect(fdTable()).toEqual(fds);
    },
  );

  it("runs the attach-mount step in the program's process and reports its errno", async () => {
    // Not a detached mount: move_mount must fail with EINVAL, from the program's process.
    const [r, w] = native().pipe();
    const e = await rejection(
      spawn("/bin/true", [], { join: ns, namespaces: ["mount", "pid"], mounts: [{ fd: r, target: "/mnt" }] }),
    );
    native().close(r);
    native().close(w);
    expect([e.step, e.syscall, e.code]).toEqual(["attachMount", "move_mount", "EINVAL"]);
    expect(children()).toEqual([]);
  });

  it("a failure in the first child (before the fork) names its step and leaves nothing", async () => {
    await settle();
    const fds = fdTable();
    // setns into the user namespace the child is already in is EINVAL.
    const current = UserNamespace.current();
    const e = await rejection(spawn("/bin/true", [], { join: current, namespaces: ["pid"] }));
    current.close();
    expect(e.step).toBe("join user");
    expect(e.code).toBe("EINVAL");
    expect(children()).toEqual([]);
    await settle();
    expect(fdTable()).toEqual(fds);
  });

  it("many spawns leave no zombie and no fd", async () => {
    await settle();
    const fds = fdTable();
    for (let i = 0; i < 10; i++) {
      await Promise.all(
        Array.from({ length: 5 }, () => spawn("/bin/true", [], { join: ns, namespaces: ["pid"], stdio: "ignore" })),
      );
    }
    expect(children()).toEqual([]);
    await settle();
    expect(fdTable()).toEqual(fds);
  });

  it("refuses joining a pid namespace and creating one", async () => {
    const child = spawn("/bin/true", [], { join: [ns, "/proc/self/ns/pid"], namespaces: ["pid"] });
    const e = await rejection(child);
    expect(e.code).toBe("ERR_USERNS_USAGE");
    expect(e.message).toMatch(/join of a pid namespace together with namespaces "pid"/);
    expect(child.pid).toBeUndefined();
  });
});

/**
 * forkAfterJoin: the program is created after setns(CLONE_NEWPID), so the joined pid namespace is its own (bwrap's
 * `--pidns FD` without `--unshare-pid`, nsenter's default fork).
 */
describeKernel("spawn: forkAfterJoin into a joined pid namespace", () => {
  /** A `sleep` as pid 1 of a new pid namespace, and an fd of that namespace. */
  async function heldPidNs() {
    const holder = spawn("sleep", ["30"], { namespaces: ["pid"], stdio: "ignore" });
    await new Promise<void>((r) => holder.once("spawn", () => r()));
    const fd = native().openNs(`/proc/${holder.pid}/ns/pid`);
    return { holder, fd, ns: nsIno(holder.pid!, "pid") };
  }

  it("runs the program itself in the joined pid namespace, as this process's child", async () => {
    await settle();
    const fds = fdTable();
    const { holder, fd, ns } = await heldPidNs();
    expect(ns).not.toBe(nsIno("self", "pid"));
    let before: { pid: number; pidNs: number | undefined } | undefined;
    const child = spawn("sh", ["-c", "readlink /proc/self/ns/pid; echo $$; echo end; sleep 5"], {
      join: fd,
      forkAfterJoin: true,
      beforeExec: (info) => {
        before = { pid: info.pid, pidNs: info.namespaces.pid };
      },
    });
    const out = await waitFor(child.stdout!, "end\n");
    const pid = child.pid!;
    // beforeExec saw the program's process (not the intermediate one) and the joined namespace.
    expect(before).toEqual({ pid, pidNs: Number(/\[(\d+)\]/.exec(ns)![1]) });
    // The next free pid of the joined namespace: its init (the sleep) is pid 1.
    expect(out).toBe(`${ns}\n2\nend\n`);
    expect(nsIno(pid, "pid")).toBe(ns);
    expect(status(pid, "NSpid")).toBe(`${pid}\t2`);
    expect(status(pid, "PPid")).toBe(String(process.pid));
    expect(child.kill("SIGKILL")).toBe(true);
    expect(await child).toEqual({ pid, code: null, signal: "SIGKILL" });
    // Without forkAfterJoin setns moves only the program's children: the program stays in ours.
    const plain = await run("readlink", ["/proc/self/ns/pid"], { join: fd });
    expect(plain.stdout).toBe(`${nsIno("self", "pid")}\n`);
    const itsChild = await run("sh", ["-c", "readlink /proc/self/ns/pid"], { join: fd });
    expect(itsChild.stdout).toBe(`${ns}\n`);
    native().close(fd);
    holder.kill("SIGKILL");
    await holder;
    expect(children()).toEqual([]);
    await settle();
    expect(fdTable()).toEqual(fds);
  });

  it("passes exit status, setsid and the parent-death signal through the program's process", async () => {
    const { holder, fd } = await heldPidNs();
    const r = await run(
      "sh",
      ["-c", "cut -d' ' -f6 /proc/self/stat; grep SigPnd /proc/self/status >/dev/null; exit 7"],
      {
        join: fd,
        forkAfterJoin: true,
        detached: true,
        parentDeathSignal: "SIGKILL",
      },
    );
    expect(r.code).toBe(7);
    // The session of its child (cut), as our /proc shows it: the program's own pid.
    expect(r.stdout).toBe(`${r.pid}\n`);
    native().close(fd);
    holder.kill("SIGKILL");
    await holder;
  });

  it("a pid namespace whose init has exited: the fork step fails with ENOMEM, once, and leaves nothing", async () => {
    const { holder, fd } = await heldPidNs();
    holder.kill("SIGKILL");
    await holder;
    await settle();
    const fds = fdTable();
    const child = spawn("/bin/true", [], { join: fd, forkAfterJoin: true });
    let errors = 0;
    child.on("error", () => errors++);
    const e = await rejection(child);
    expect([e.code, e.errno, e.syscall, e.step]).toEqual(["ENOMEM", 12, "clone3", "fork"]);
    expect(e.message).toMatch(/pid namespace has no init/);
    expect(child.pid).toBeUndefined();
    await settle();
    expect(errors).toBeLessThanOrEqual(1);
    expect(children()).toEqual([]);
    expect(fdTable()).toEqual(fds);
    native().close(fd);
  });

  it("a bad fd and an fd that is not a namespace are refused before anything is spawned, with a Node-style error", async () => {
    await settle();
    const fds = fdTable();
    const file = openSync("/etc/hostname", "r");
    for (const [fd, code] of [
      [9999, "EBADF"],
      [file, "ENOTTY"],
    ] as const) {
      const child = spawn("/bin/true", [], { join: fd, forkAfterJoin: true, stdio: "ignore" });
      const e = await rejection(child);
      expect([e.code, e.syscall]).toEqual([code, "ioctl"]);
      expect(typeof e.errno).toBe("number");
      expect(e.step).toBe("join");
      expect(e.path).toBe(`/proc/${process.pid}/fd/${fd}`);
      expect(e.message).toMatch(code === "EBADF" ? /not an open fd/ : /not a namespace file/);
      expect(child.pid).toBeUndefined();
    }
    closeSync(file);
    // Option errors throw at the call, as every spawn option's.
    expect(() => spawn("/bin/true", [], { forkAfterJoin: true })).toThrow(/forkAfterJoin needs join/);
    expect(children()).toEqual([]);
    await settle();
    expect(fdTable()).toEqual(fds);
  });
});
