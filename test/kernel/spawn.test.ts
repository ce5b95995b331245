import { execFileSync } from "node:child_process";
import { readFileSync, readlinkSync } from "node:fs";
import { afterAll, expect, it } from "vitest";
import { UsernsError } from "../../lib/errors.js";
import { native } from "../../lib/kernel/native.js";
import { IdMap } from "../../lib/model/idmap.js";
import { UserNamespace } from "../../lib/namespaces/user-namespace.js";
import { spawn } from "../../lib/spawn/index.js";
import { describeKernel } from "../helpers/kernel.js";
import { children, fdTable, openFds, procLine, run, settle, waitFor } from "../helpers/spawn.js";

const nsIno = (pid: number | "self", type: string): string => readlinkSync(`/proc/${pid}/ns/${type}`);

async function rejection(p: PromiseLike<unknown>): Promise<UsernsError> {
  try {
    await p;
  } catch (e) {
    return e as UsernsError;
  }
  throw new Error("expected a rejection");
}

describeKernel("spawn into new namespaces", () => {
  afterAll(() => UserNamespace.clearCache());

  it("uses CLONE_VM with its own stack on this architecture", () => {
    expect(native().spawnUsesCloneVm()).toBe(process.arch === "x64");
  });

  it("reads the effective capabilities with capget, as /proc/self/status shows them", () => {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"));
    expect(native().capEffective()).toBe(BigInt(`0x${m![1]}`));
    // writerCreds: the same bits (CAP_SETUID 7 and CAP_SETGID 6 both), with the effective ids, in one call.
    const caps = BigInt(`0x${m![1]}`);
    const out = new Uint32Array(3);
    native().writerCreds(out);
    expect([...out]).toEqual([
      ((caps >> 7n) & (caps >> 6n) & 1n) === 1n ? 1 : 0,
      process.geteuid!(),
      process.getegid!(),
    ]);
    expect(() => native().writerCreds(new Int32Array(3) as unknown as Uint32Array)).toThrow(TypeError);
  });

  it("clone3 accepts CLONE_NEWTIME with CLONE_VM: the child enters the time namespace at execve", async () => {
    // kernel/nsproxy.c copy_namespaces skips timens_on_fork for CLONE_VM; exec_task_namespaces switches at exec.
    const child = spawn("sleep", ["5"], { namespaces: ["time"], stdio: "ignore" });
    await new Promise<void>((r) => child.once("spawn", r));
    expect(nsIno(child.pid!, "time")).not.toBe(nsIno("self", "time"));
    expect(nsIno(child.pid!, "time")).toBe(nsIno(child.pid!, "time_for_children"));
    child.kill("SIGKILL");
    await child;
  });

  it.each([
    { name: "one extent", uid: "0 100000 65536\n", gid: "0 200000 65536\n" },
    {
      name: "two extents, out of order",
      uid: "1000 300000 10\n0 100000 1000\n",
      gid: "0 100000 1000\n1000 300000 10\n",
    },
    { name: "model value", uid: IdMap.of([0, 400000, 5], [5, 500000, 5]), gid: IdMap.of([0, 400000, 10]) },
  ])("applies maps exactly ($name): /proc readback inside and outside, and id", async ({ uid, gid }) => {
    const uidMap = typeof uid === "string" ? IdMap.of(...lines(uid)) : uid;
    const gidMap = typeof gid === "string" ? IdMap.of(...lines(gid)) : gid;
    const child = spawn(
      "sh",
      ["-c", "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; echo --; id -u; id -g; echo end; sleep 5"],
      {
        namespaces: ["user"],
        uidMap: uid,
        gidMap: gid,
        uid: 0,
        gid: 0,
      },
    );
    const out = (await waitFor(child.stdout!, "end\n")).replace("end\n", "");
    // Read back from outside while it runs: lower ids in our (initial) namespace's ids.
    const expected = (m: IdMap): string => m.extents.map((e) => procLine(e.first, e.lowerFirst, e.count)).join("");
    expect(readFileSync(`/proc/${child.pid}/uid_map`, "utf8")).toBe(expected(uidMap));
    expect(readFileSync(`/proc/${child.pid}/gid_map`, "utf8")).toBe(expected(gidMap));
    expect(child.mapping).toEqual({
      method: "direct",
      uidMap: uidMap.toString(),
      gidMap: gidMap.toString(),
      setgroups: undefined,
    });
    child.kill("SIGTERM");
    const st = await child;
    expect(st.signal).toBe("SIGTERM");
    const [u, g, ids] = out.split("--\n");
    expect(u).toBe(expected(uidMap));
    expect(g).toBe(expected(gidMap));
    expect(ids).toBe("0\n0\n");
  });

  it("starts the program with no signal caught or ignored, as child_process does", async () => {
    // Node ignores SIGPIPE; a listener makes SIGUSR2 and SIGWINCH caught here. None of it may reach the program:
    // CLONE_CLEAR_SIGHAND resets the caught ones, the child resets the ignored ones among 1-31.
    const sigMasks = (status: string): string[] =>
      ["SigIgn", "SigCgt"].map((k) => new RegExp(`^${k}:\\s*([0-9a-f]+)$`, "m").exec(status)![1]!);
    const onSignal = (): void => {};
    process.on("SIGUSR2", onSignal);
    process.on("SIGWINCH", onSignal);
    try {
      const [ign, cgt] = sigMasks(readFileSync("/proc/self/status", "utf8")).map((h) => BigInt(`0x${h}`));
      expect(ign! & (1n << 12n)).not.toBe(0n); // SIGPIPE (13) is ignored in this process
      expect(cgt! & (1n << 11n)).not.toBe(0n); // SIGUSR2 (12) is caught
      const r = await run("cat", ["/proc/self/status"], {
        namespaces: ["user"],
        uidMap: "0 100000 1",
        gidMap: "0 100000 1",
      });
      expect(r.code).toBe(0);
      // Nothing ignored; caught only what the program itself catches (cat nothing, unless a preloaded runtime such
      // as the sanitizer build's ASan installs its own handlers): the same as under child_process.
      expect(sigMasks(r.stdout)[0]).toBe("0000000000000000");
      expect(sigMasks(r.stdout)).toEqual(sigMasks(execFileSync("cat", ["/proc/self/status"], { encoding: "utf8" })));
    } finally {
      process.off("SIGUSR2", onSignal);
      process.off("SIGWINCH", onSignal);
    }
  });

  it("writes setgroups before gid_map and id shows the mapped groups", async () => {
    const r = await run("sh", ["-c", "cat /proc/self/setgroups; id -u; id -g; id -G"], {
      namespaces: ["user"],
      uidMap: "0 100000 1000",
      gidMap: "0 100000 1000",
      setgroups: "deny",
      uid: 5,
      gid: 7,
    });
    expect(r.stdout).toBe("deny\n5\n7\n7\n");
    expect(r.code).toBe(0);
  });

  it("sets supplementary groups inside when setgroups is allowed", async () => {
    const r = await run("id", ["-G"], {
      namespaces: ["user"],
      uidMap: "0 100000 1000",
      gidMap: "0 100000 1000",
      uid: 1,
      gid: 2,
      groups: [3, 4],
    });
    expect(r.stdout).toBe("2 3 4\n");
  });

  it("creates all eight namespace types at once", async () => {
    const child = spawn("sh", ["-c", "echo $$; hostname; echo end; sleep 5"], {
      namespaces: ["user", "mount", "pid", "uts", "ipc", "net", "cgroup", "time"],
      uidMap: "0 100000 65536",
      gidMap: "0 100000 65536",
      uid: 0,
      gid: 0,
    });
    const out = await waitFor(child.stdout!, "end\n");
    for (const t of ["user", "mnt", "pid", "uts", "ipc", "net", "cgroup", "time"]) {
      expect(nsIno(child.pid!, t), t).not.toBe(nsIno("self", t));
    }
    // pid 1 of a pid namespace ignores signals it has no handler for, except SIGKILL from outside.
    child.kill("SIGKILL");
    await child;
    // pid 1 in its own pid namespace; a new uts namespace starts with our hostname.
    expect(out.split("\n")[0]).toBe("1");
  });

  it("a new mount namespace is private: a mount inside does not show outside", async () => {
    const r = await run("sh", ["-c", "mount -t tmpfs none /mnt && grep -c ' /mnt ' /proc/self/mountinfo"], {
      namespaces: ["user", "mount"],
      uidMap: "0 100000 65536",
      gidMap: "0 100000 65536",
      uid: 0,
      gid: 0,
    });
    expect(r.stdout.trim()).toBe("1");
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toMatch(/ \/mnt tmpfs/);
  });

  it("joins a held user namespace", async () => {
    const ns = await UserNamespace.create({ uidMap: "0 100000 65536", gidMap: "0 100000 65536" });
    const child = spawn("sh", ["-c", "id -u; echo end; sleep 5"], { join: ns, uid: 0, gid: 0 });
    const out = await waitFor(child.stdout!, "end\n");
    expect(nsIno(child.pid!, "user")).toBe(`user:[${ns.identity.ino}]`);
    child.kill();
    await child;
    expect(out).toBe("0\nend\n");
    ns.close();
  });

  it("joins by path and by fd", async () => {
    const ns = await UserNamespace.create({ uidMap: "0 110000 100", gidMap: "0 110000 100", cache: false });
    const holder = spawn("sleep", ["5"], { join: ns.fd });
    // 'spawn' comes after execve, and the join happened before it.
    await new Promise<void>((r) => holder.once("spawn", r));
    const r = await run("cat", ["/proc/self/uid_map"], { join: `/proc/${holder.pid}/ns/user` });
    expect(r.stdout).toBe(procLine(0, 110000, 100));
    holder.kill();
    await holder;
    ns.close();
  });

  it("nests three levels with a different map at each, read back from every level", async () => {
    const l1 = await UserNamespace.create({ uidMap: "0 100000 65536", gidMap: "0 100000 65536", cache: false });
    const l2 = await UserNamespace.create({ parent: l1, uidMap: "0 1000 5000", gidMap: "0 2000 5000", cache: false });
    const p2 = l2.parent();
    const p1 = l1.parent();
    const current = UserNamespace.current();
    expect(p2?.equals(l1)).toBe(true);
    expect(p1?.equals(current)).toBe(true);
    for (const h of [p2, p1, current]) h?.close();
    const l3 = spawn("sh", ["-c", "cat /proc/self/uid_map; id -u; echo end; sleep 5"], {
      join: l2,
      namespaces: ["user"],
      uidMap: "0 100 10",
      gidMap: "0 200 10",
      uid: 0,
      gid: 0,
    });
    const out = await waitFor(l3.stdout!, "end\n");
    expect(l3.mapping?.method).toBe("parent-helper");
    const pid = l3.pid!;
    // From the initial namespace: kuids (100000 + 1000 + 100).
    expect(readFileSync(`/proc/${pid}/uid_map`, "utf8")).toBe(procLine(0, 101100, 10));
    expect(readFileSync(`/proc/${pid}/gid_map`, "utf8")).toBe(procLine(0, 102200, 10));
    // From inside L1 and inside L2: lower ids in the reader's ids.
    const fromL1 = await run("cat", [`/proc/${pid}/uid_map`, `/proc/${pid}/gid_map`], { join: l1 });
    expect(fromL1.stdout).toBe(procLine(0, 1100, 10) + procLine(0, 2200, 10));
    const fromL2 = await run("cat", [`/proc/${pid}/uid_map`, `/proc/${pid}/gid_map`], { join: l2 });
    expect(fromL2.stdout).toBe(procLine(0, 100, 10) + procLine(0, 200, 10));
    // And L2's own map as seen from L1 and from the initial namespace.
    expect(l2.maps().uid.toString()).toBe("0 101000 5000\n");
    const l2FromL1 = await run("cat", ["/proc/self/uid_map"], { join: l2 });
    expect(l2FromL1.stdout).toBe(procLine(0, 1000, 5000));
    l3.kill();
    await l3;
    // From L3 itself: its parent's view, the lines as written.
    expect(out).toBe(`${procLine(0, 100, 10)}0\nend\n`);
    l1.close();
    l2.close();
  });

  it("nests 33 levels below the initial namespace and the 34th fails with ENOSPC", async () => {
    const chain: UserNamespace[] = [];
    let parent: UserNamespace | undefined;
    for (let level = 1; level <= 33; level++) {
      const ns: UserNamespace = UserNamespace.createSync({
        uidMap: level === 1 ? "0 100000 100" : "0 0 100",
        gidMap: level === 1 ? "0 100000 100" : "0 0 100",
        parent,
        cache: false,
      });
      chain.push(ns);
      parent = ns;
    }
    const e = await rejection(
      run("true", [], { join: parent, namespaces: ["user"], uidMap: "0 0 1", gidMap: "0 0 1" }),
    );
    expect(e.code).toBe("ENOSPC");
    expect(e.step).toBe("unshare");
    // A process can still run at level 33 itself.
    const r = await run("cat", ["/proc/self/uid_map"], { join: parent });
    expect(r.stdout).toBe(procLine(0, 0, 100));
    for (const ns of chain) ns.close();
  });

  it.each([
    { name: "missing program", file: "/nonexistent/prog", opts: {}, step: "execve", code: "ENOENT" },
    { name: "not executable", file: "/etc/passwd", opts: {}, step: "execve", code: "EACCES" },
    { name: "missing cwd", file: "/bin/true", opts: { cwd: "/nonexistent-dir" }, step: "chdir", code: "ENOENT" },
    { name: "unmapped uid", file: "/bin/true", opts: { uid: 5000 }, step: "setuid", code: "EINVAL" },
  ])(
    "a child-side failure ($name) rejects with the step and errno and leaves nothing",
    async ({ file, opts, step, code }) => {
      const fds = openFds();
      const e = await rejection(
        spawn(file, [], { namespaces: ["user"], uidMap: "0 100000 10", gidMap: "0 100000 10", ...opts }),
      );
      expect(UsernsError.isUsernsError(e)).toBe(true);
      expect(e.code).toBe(code);
      expect(e.step).toBe(step);
      expect(openFds()).toBe(fds);
      expect(children()).toEqual([]);
    },
  );

  it("runs the attach-mount step (move_mount) in the child and reports its errno", async () => {
    // A real detached mount comes from open_tree (the mounts module); an fd that is not one must fail in move_mount.
    const [r, w] = native().pipe();
    const e = await rejection(
      spawn("/bin/true", [], {
        namespaces: ["user", "mount"],
        uidMap: "0 100000 10",
        gidMap: "0 100000 10",
        mounts: [{ fd: r, target: "/mnt" }],
      }),
    );
    native().close(r);
    native().close(w);
    expect(e.step).toBe("attachMount");
    expect(e.syscall).toBe("move_mount");
    expect(e.code).toBe("EINVAL");
  });

  it("emits 'error' (not only the promise) for listeners, like ChildProcess", async () => {
    const child = spawn("/nonexistent/prog", []);
    const err = await new Promise<UsernsError>((resolve) => child.on("error", resolve));
    expect(err.code).toBe("ENOENT");
    expect(err.step).toBe("execve");
  });

  it("refuses a map the kernel would refuse before creating any process", async () => {
    const l1 = await UserNamespace.create({ uidMap: "0 100000 100", gidMap: "0 100000 100", cache: false });
    const child = spawn("/bin/true", [], { join: l1, namespaces: ["user"], uidMap: "0 50 100", gidMap: "0 0 1" });
    const e = await rejection(child);
    expect(e.code).toBe("EPERM");
    expect(e.step).toBe("uid_map");
    expect(e.reason).toMatch(/rule/);
    expect(child.pid).toBeUndefined();
    l1.close();
  });

  it.each([
    { name: "overlapping lines", uidMap: "0 100000 10\n5 200000 10\n", code: "EINVAL", line: 2 },
    { name: "count 0", uidMap: "0 100000 0\n", code: "EINVAL", line: 1 },
    { name: "not a number", uidMap: "0 x 1\n", code: "EINVAL", line: 1 },
  ])("the model refuses $name before clone3", async ({ uidMap, code, line }) => {
    const before = children().length;
    const child = spawn("/bin/true", [], { namespaces: ["user"], uidMap });
    const e = await rejection(child);
    expect(e.code).toBe(code);
    expect(e.message).toContain(`line ${line}`);
    expect(child.pid).toBeUndefined();
    expect(children().length).toBe(before);
  });

  it("1,000 spawns leave no zombie and no extra fd", async () => {
    // Let streams of earlier tests finish closing (libuv closes handles on a later loop turn).
    await settle();
    const before = fdTable();
    for (let i = 0; i < 100; i++) {
      await Promise.all(
        Array.from(
          { length: 10 },
          () =>
            spawn("/bin/true", [], {
              namespaces: ["user"],
              uidMap: "0 100000 65536",
              gidMap: "0 100000 65536",
              stdio: "ignore",
            }).exited,
        ),
      );
    }
    expect(children()).toEqual([]);
    await settle();
    // Every fd open now was open before, as the same file (fds of earlier tests may have been closed meanwhile
    // by finalizers, so this is a subset check, not a count).
    const after = fdTable();
    expect(after.filter((f) => !before.includes(f))).toEqual([]);
  }, 120_000);

  it("pipes stdin to the program and reports exit codes; 'close' follows 'exit'", async () => {
    const child = spawn("sh", ["-c", "cat; exit 3"], {
      namespaces: ["user"],
      uidMap: "0 100000 1",
      gidMap: "0 100000 1",
    });
    const events: string[] = [];
    let out = "";
    child.on("spawn", () => events.push("spawn"));
    child.on("exit", (code) => events.push(`exit ${code}`));
    child.stdout!.on("data", (d) => (out += d));
    const closed = new Promise((r) => child.on("close", (code) => r(code)));
    child.stdin!.end("hello\n");
    expect(await closed).toBe(3);
    events.push("close");
    expect(events).toEqual(["spawn", "exit 3", "close"]);
    expect(out).toBe("hello\n");
    expect(child.exitCode).toBe(3);
    expect(child.kill()).toBe(false);
  });

  it("passes stdio fds through in any arrangement", async () => {
    const [r, w] = native().pipe();
    const child = spawn("sh", ["-c", "echo to-three >&3; echo to-one"], { stdio: ["ignore", w, "ignore", w] });
    native().close(w);
    await child;
    const buf = Buffer.alloc(100);
    const { readSync, closeSync } = await import("node:fs");
    const n = readSync(r, buf);
    closeSync(r);
    expect(buf.subarray(0, n).toString()).toBe("to-three\nto-one\n");
  });

  it("sets argv0, env, cwd and a new session", async () => {
    const r = await run("sh", ["-c", 'echo "$0 $FOO $(pwd)"; ps -o sid= -p $$; echo $$'], {
      argv0: "my-sh",
      env: { FOO: "bar", PATH: "/usr/bin:/bin" },
      cwd: "/tmp",
      detached: true,
    });
    const [line, sid, pid] = r.stdout
      .trim()
      .split("\n")
      .map((s) => s.trim());
    expect(line).toBe("my-sh bar /tmp");
    expect(sid).toBe(pid);
  });

  it("kills through the pidfd and reports the signal", async () => {
    const child = spawn("sleep", ["100"], { namespaces: ["user", "pid"], uidMap: "0 100000 1", gidMap: "0 100000 1" });
    await new Promise<void>((r) => child.once("spawn", r));
    expect(child.pidfd).toBeGreaterThan(2);
    expect(child.kill("SIGKILL")).toBe(true);
    const st = await child;
    expect(st).toEqual({ pid: child.pid, code: null, signal: "SIGKILL" });
    expect(child.killed).toBe(true);
    expect(child.pidfd).toBe(-1);
  });
});

function lines(text: string): [number, number, number][] {
  return text
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/).map(Number) as [number, number, number]);
}
