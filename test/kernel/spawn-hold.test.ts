/**
 * spawn's hold before execve: `beforeExec` sees the program's pid and namespace ids while it waits (bwrap's --info-fd
 * is written from there), and `blockFd` keeps it waiting until a byte arrives (bwrap's --block-fd).
 */
import { read as fsRead, readFileSync, readlinkSync, writeSync } from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { UsernsError } from "../../lib/errors.js";
import { native } from "../../lib/kernel/native.js";
import { UserNamespace } from "../../lib/namespaces/user-namespace.js";
import { type BeforeExecInfo, spawn } from "../../lib/spawn/index.js";
import { describeKernel } from "../helpers/kernel.js";
import { children, fdTable, run, settle } from "../helpers/spawn.js";

const TYPES = ["user", "mnt", "pid", "uts", "ipc", "net", "cgroup"] as const;
const SHOW = `for t in ${TYPES.join(" ")}; do readlink /proc/self/ns/$t; done`;
const ino = (link: string): number => Number(/\[(\d+)\]/.exec(link)![1]);

async function rejection(p: PromiseLike<unknown>): Promise<UsernsError> {
  try {
    await p;
  } catch (e) {
    return e as UsernsError;
  }
  throw new Error("expected a rejection");
}

describeKernel("spawn: beforeExec and blockFd", () => {
  let ns: UserNamespace;
  beforeAll(async () => {
    ns = await UserNamespace.create({ uidMap: "0 100000 65536", gidMap: "0 100000 65536", cache: false });
  });
  afterAll(() => ns.close());

  it("beforeExec gets the program's pid and namespace ids before execve, equal to what the program sees", async () => {
    const seen: { info: BeforeExecInfo; cmdline: string; exe: string }[] = [];
    const r = await run("sh", ["-c", SHOW], {
      namespaces: ["user", "mount", "pid", "uts", "ipc", "net", "cgroup"],
      uidMap: "0 100000 65536",
      gidMap: "0 100000 65536",
      uid: 0,
      gid: 0,
      beforeExec: (info) => {
        // Not exec'd yet: the waiting child still shares this process's memory, so its command line is ours.
        seen.push({
          info,
          cmdline: readFileSync(`/proc/${info.pid}/cmdline`, "utf8"),
          exe: readlinkSync(`/proc/${info.pid}/exe`),
        });
      },
    });
    expect(seen.length).toBe(1);
    const { info, cmdline, exe } = seen[0]!;
    expect(cmdline).toBe(readFileSync("/proc/self/cmdline", "utf8"));
    expect(exe).toBe(readlinkSync("/proc/self/exe"));
    expect(info.pid).toBe(r.pid);
    const program = r.stdout.trim().split("\n").map(ino);
    expect(TYPES.map((t) => info.namespaces[t])).toEqual(program);
    // New namespaces, not ours.
    expect(info.namespaces.net).not.toBe(ino(readlinkSync("/proc/self/ns/net")));
  });

  it("a program that exits at once: the ids were taken while it waited", async () => {
    for (let i = 0; i < 20; i++) {
      let info: BeforeExecInfo | undefined;
      const st = await spawn("/bin/true", [], {
        namespaces: ["user", "mount", "pid", "net", "ipc", "uts"],
        uidMap: "0 100000 65536",
        gidMap: "0 100000 65536",
        stdio: "ignore",
        beforeExec: (x) => {
          info = x;
        },
      });
      expect(st.code).toBe(0);
      expect(Object.keys(info!.namespaces).sort()).toEqual(
        expect.arrayContaining(["ipc", "mnt", "net", "pid", "user", "uts"]),
      );
      expect(info!.pid).toBe(st.pid);
    }
  });

  it("after a fork step (join + new pid namespace) and with a reaping pid 1: the pid is the one the handle gets", async () => {
    let forked: BeforeExecInfo | undefined;
    const r = await run("sh", ["-c", "echo $$; readlink /proc/self/ns/pid"], {
      join: ns,
      namespaces: ["pid"],
      beforeExec: (x) => {
        forked = x;
      },
    });
    expect(r.stdout).toBe(`1\npid:[${forked!.namespaces.pid}]\n`);
    expect(forked!.pid).toBe(r.pid);
    expect(forked!.namespaces.user).toBe(Number(ns.identity.ino));
    let reaped: BeforeExecInfo | undefined;
    const s = await run("sh", ["-c", "echo $$; readlink /proc/self/ns/pid"], {
      namespaces: ["user", "mount", "pid"],
      uidMap: "0 100000 65536",
      gidMap: "0 100000 65536",
      uid: 0,
      gid: 0,
      filesystem: [{ op: "bind", source: "/", dest: "/" }],
      init: "reaper",
      beforeExec: (x) => {
        reaped = x;
      },
    });
    // The program is pid 1's child; the pid reported is pid 1's (bwrap's child-pid), in the same namespaces.
    expect(s.stdout).toBe(`2\npid:[${reaped!.namespaces.pid}]\n`);
    expect(reaped!.pid).toBe(s.pid);
    expect(children()).toEqual([]);
  });

  it("an exception from beforeExec cancels the spawn: it fails with it once, nothing is left", async () => {
    await settle();
    const fds = fdTable();
    const boom = new Error("no");
    const child = spawn("/bin/true", [], {
      namespaces: ["user", "pid"],
      uidMap: "0 100000 65536",
      gidMap: "0 100000 65536",
      beforeExec: () => {
        throw boom;
      },
    });
    let errors = 0;
    child.on("error", () => errors++);
    const e = await rejection(child);
    expect(e.cause).toBe(boom);
    expect(e.message).toContain("no");
    await settle();
    expect(errors).toBeLessThanOrEqual(1);
    expect(children()).toEqual([]);
    expect(fdTable()).toEqual(fds);
  });

  it("blockFd holds the built sandbox before execve until a byte arrives, without blocking the event loop", async () => {
    const [r, w] = native().pipe();
    let info: BeforeExecInfo | undefined;
    let spawned = false;
    const child = spawn("sh", ["-c", "echo ran; readlink /proc/self/ns/net"], {
      namespaces: ["user", "net"],
      uidMap: "0 100000 65536",
      gidMap: "0 100000 65536",
      blockFd: r,
      stdio: ["ignore", "pipe", "ignore"],
      beforeExec: (x) => {
        info = x;
      },
    });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.once("spawn", () => {
      spawned = true;
    });
    // The timers run: the event loop is free while the program waits.
    await new Promise((res) => setTimeout(res, 300));
    expect(info).toBeDefined();
    expect(child.pid).toBe(info!.pid);
    expect([spawned, out]).toEqual([false, ""]);
    // It waits in its own network namespace already.
    expect(readlinkSync(`/proc/${info!.pid}/ns/net`)).toBe(`net:[${info!.namespaces.net}]`);
    writeSync(w, "x");
    expect((await child).code).toBe(0);
    await new Promise((res) => setTimeout(res, 50));
    expect(spawned).toBe(true);
    expect(out).toBe(`ran\nnet:[${info!.namespaces.net}]\n`);
    native().close(r);
    native().close(w);
  });

  it("blockFd: end of file releases too; kill() while held cancels with ABORT_ERR and leaves nothing", async () => {
    await settle();
    const fds = fdTable();
    const [r, w] = native().pipe();
    native().close(w);
    expect((await spawn("/bin/true", [], { blockFd: r, stdio: "ignore" })).code).toBe(0);
    native().close(r);
    const [r2, w2] = native().pipe();
    const child = spawn("/bin/true", [], { namespaces: ["user"], blockFd: r2, stdio: "ignore" });
    await new Promise((res) => setTimeout(res, 100));
    expect(child.kill("SIGTERM")).toBe(true);
    const e = await rejection(child);
    expect(e.code).toBe("ABORT_ERR");
    expect(children()).toEqual([]);
    // The pending read is this process's: a byte ends it; nothing is released by it any more.
    writeSync(w2, "x");
    await settle();
    native().close(r2);
    native().close(w2);
    expect(fdTable()).toEqual(fds);
    const bad = await rejection(spawn("/bin/true", [], { blockFd: 9999, stdio: "ignore" }));
    expect([bad.code, bad.syscall, bad.step]).toEqual(["EBADF", "read", "blockFd"]);
    expect(children()).toEqual([]);
  });

  it("closeFds: the held program's process does not keep a monitoring fd open (its reader sees the end)", async () => {
    const [br, bw] = native().pipe();
    const [ir, iw] = native().pipe();
    const child = spawn("/bin/true", [], { namespaces: ["user"], blockFd: br, closeFds: [iw], stdio: "ignore" });
    await new Promise((res) => setTimeout(res, 100));
    native().close(iw);
    // Our copy was the last one: end of file while the child still waits on the block fd.
    const buf = Buffer.alloc(1);
    const got = await Promise.race([
      new Promise((res) => fsRead(ir, buf, 0, 1, null, (e, n) => res(e ? e.code : n))),
      new Promise((res) => setTimeout(() => res("still open after 2 s"), 2000)),
    ]);
    expect(got).toBe(0);
    expect(child.exitCode).toBeNull();
    writeSync(bw, "x");
    expect((await child).code).toBe(0);
    for (const fd of [br, bw, ir]) native().close(fd);
    expect(() => spawn("/bin/true", [], { closeFds: [5], stdio: ["ignore", "ignore", "ignore", 5] })).toThrow(
      /closeFds: fd 5 is also a stdio entry/,
    );
  });
});
