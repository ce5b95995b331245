// The per-spawn shortcuts: the default environment copied natively from
// environ, /dev/null opened by the child, the map files written in one
// native call, validated requests reused, child stacks reused.
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { chmodSync, existsSync, mkdtempSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { writeMapsDirect } from "../../lib/child/maps.js";
import { abortChild, DEV_NULL, resumeChild, startChild, type WatchEvent, watchChild } from "../../lib/child/steps.js";
import { prepareMapRequest } from "../../lib/child/validate.js";
import { UsernsError } from "../../lib/errors.js";
import { native, nativePath, type ProcFilesHandle } from "../../lib/kernel/native.js";
import { CLONE_NEW } from "../../lib/kernel/nsfs.js";
import { spawn } from "../../lib/spawn/index.js";
import { describeKernel } from "../helpers/kernel.js";
import { compiledLib } from "../helpers/mountns.js";
import { children, run } from "../helpers/spawn.js";

/** Counts the process.nextTick calls made from lib/spawn/child-process until restore(). */
function countTicks(): { count: number; restore(): void } {
  const nextTick = process.nextTick;
  const t = {
    count: 0,
    restore: () => {
      process.nextTick = nextTick;
    },
  };
  process.nextTick = ((...args: Parameters<typeof nextTick>) => {
    if (new Error().stack?.includes("child-process")) t.count++;
    return nextTick(...args);
  }) as typeof nextTick;
  return t;
}

/** Whether our child `pid` has exited and waits to be reaped. */
const isZombie = (pid: number): boolean => children().some((c) => c.pid === pid && c.state === "Z");

describeKernel("spawn fast paths", () => {
  it("the default environment follows process.env as it is at each spawn (main thread: copied from environ)", async () => {
    const key = "USERNS_FASTPATH_TEST";
    const echo = ["-c", `printf '%s|' "\${${key}-unset}"`];
    try {
      process.env[key] = "one";
      expect((await run("sh", echo)).stdout).toBe("one|");
      process.env[key] = "two words";
      expect((await run("sh", echo)).stdout).toBe("two words|");
      delete process.env[key];
      expect((await run("sh", echo)).stdout).toBe("unset|");
      // An explicit env is passed as given, not environ.
      expect((await run("sh", echo, { env: { [key]: "given" } })).stdout).toBe("given|");
    } finally {
      delete process.env[key];
    }
  });

  it("'ignore' gives the program /dev/null, opened in the child, even where the lowest free fd is a stdio slot", async () => {
    // 64 entries: the child's lowest free fd is below 63, so the /dev/null it opens lands on a slot that must be
    // moved out of the way first; the null entries in between must end up closed.
    const [r, w] = native().pipe();
    const stdio: (number | "ignore" | null)[] = ["ignore", "ignore", "ignore", w];
    while (stdio.length < 63) stdio.push(null);
    stdio.push("ignore");
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
    const script = 'for f in /proc/$$/fd/*; do echo "${f##*/} $(readlink "$f")" >&3; done';
    const child = await run("sh", ["-c", script], {
      stdio,
    });
    native().close(w);
    expect(child.code).toBe(0);
    const buf = Buffer.alloc(1 << 16);
    const n = readSync(r, buf);
    native().close(r);
    const fds = new Map(
      buf
        .subarray(0, n)
        .toString()
        .trim()
        .split("\n")
        .map((l) => l.split(" ") as [string, string]),
    );
    expect(fds.get("0")).toBe("/dev/null");
    expect(fds.get("1")).toBe("/dev/null");
    expect(fds.get("2")).toBe("/dev/null");
    expect(fds.get("3")).toMatch(/^pipe:/);
    expect(fds.get("63")).toBe("/dev/null");
    // The null entries in between are closed: the only other fd is the pipe of the shell's own command
    // substitution, which takes the lowest free fd (4, since 4..62 are closed).
    const others = [...fds].filter(([f]) => !["0", "1", "2", "3", "63"].includes(f));
    expect(others).toEqual([["4", expect.stringMatching(/^pipe:/)]]);
  });

  it("a failure after the stdio step is reported even when the stdio entries cover the spawn pipes' fd numbers", async () => {
    // 64 entries, most of them closed: the error pipe is created at the lowest free fds, below 64, and the stdio
    // step would close it unless it lies above the entries. The execve failure must still come back as an error
    // (not as exit 127 of a program that "started"), and nothing may run on a child stack after spawn() settled.
    const dir = mkdtempSync(join(tmpdir(), "userns-fastpath-"));
    try {
      const prog = join(dir, "not-a-program");
      writeFileSync(prog, "\x7fELF garbage\n");
      chmodSync(prog, 0o755);
      const stdio: ("ignore" | null)[] = ["ignore", "ignore", "ignore"];
      while (stdio.length < 64) stdio.push(null);
      for (let i = 0; i < 3; i++) {
        await expect(run(prog, [], { stdio })).rejects.toMatchObject({ code: "ENOEXEC", step: "execve", path: prog });
      }
      // And a program that runs gets its fds as asked, the pipes gone.
      const ok = await run("sh", ["-c", "exec 2>/dev/null; ls /proc/self/fd | wc -l"], {
        stdio: ["ignore", "pipe", ...stdio.slice(2)],
      });
      expect(ok.code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(children()).toEqual([]);
  });

  it("startChild's follow-up (map writes, release, the wait for execve in the clone3 call) and watchChild", async () => {
    const exited = (pidfd: number) =>
      new Promise((resolve) => native().pidfdWatch(pidfd, (code, signal) => resolve({ code, signal })));
    const prep = prepareMapRequest({ uidMap: "0 100000 10", gidMap: "0 100000 10", setgroups: "deny" });
    const [r1, w1] = native().pipe();
    const plan = {
      cloneFlags: CLONE_NEW.user,
      path: "/bin/true",
      argv: ["true"],
      envp: [],
      fdSrc: [DEV_NULL, DEV_NULL, DEV_NULL],
      steps: [{ op: "wait", notify: false } as const, { op: "stdio" } as const],
    };
    const files = ["setgroups", "deny", "uid_map", prep.uid!.text, "gid_map", prep.gid!.text];
    // All of it: the child has exec'd when the call returns; the pidfd is ours, nothing is held.
    const a = startChild(plan, { writes: files, wait: true });
    expect(a.started.kind).toBe("exec");
    expect(a.done).toBe(true);
    expect(a.handle).toBeUndefined();
    if (a.started.kind === "exec") expect(await exited(a.started.pidfd)).toEqual({ code: 0, signal: null });
    // The same writes from the addon's copy of the list (procFiles): the maps are written as from the array.
    const copy = native().procFiles(files);
    const a2 = startChild(
      { ...plan, path: "/bin/cat", argv: ["cat", "/proc/self/uid_map"], fdSrc: [DEV_NULL, w1, DEV_NULL] },
      { writesHandle: copy, wait: true },
    );
    expect(a2.started.kind).toBe("exec");
    if (a2.started.kind === "exec") expect(await exited(a2.started.pidfd)).toEqual({ code: 0, signal: null });
    native().close(w1);
    const got = Buffer.alloc(200);
    expect(got.toString("utf8", 0, readSync(r1, got)).trim().split(/\s+/)).toEqual(["0", "100000", "10"]);
    native().close(r1);
    // Another kind of handle (a held child's) is refused before clone3; so is a list with a path for a name.
    const notFiles = startChild(plan);
    expect(() =>
      native().spawnStart(
        0,
        "/bin/true",
        ["true"],
        [],
        new Float64Array([3, 0, 0, 0]),
        [],
        false,
        undefined,
        false,
        notFiles.handle as ProcFilesHandle,
        false,
        new Int32Array(5),
      ),
    ).toThrow(TypeError);
    abortChild(notFiles);
    // Malformed numbers are refused before clone3: a count beyond the array, a fraction, steps not in fives.
    const call = (nums: Float64Array) => () =>
      native().spawnStart(
        0,
        "/bin/true",
        ["true"],
        [],
        nums,
        [],
        false,
        undefined,
        false,
        undefined,
        false,
        new Int32Array(5),
      );
    expect(call(new Float64Array([9, 0, 0, 0]))).toThrow(/fewer numbers than its count/);
    expect(call(new Float64Array([3, 0.5, 0, 0]))).toThrow(/nFd must be an integer/);
    expect(call(new Float64Array([5, 0, 1, 1, 1, 0]))).toThrow(/nSteps out of range/);
    expect(call(new Float64Array([4, 0, 0, 0, 7]))).toThrow(/nGids does not match/);
    expect(children().map((x) => x.pid)).not.toContain(notFiles.pid);
    expect(() => native().procFiles(["../uid_map", "0 0 1\n"])).toThrow(TypeError);
    expect(() => native().procFiles(["uid_map"])).toThrow(TypeError);
    // With onExit, the exit watch is armed while the child execs and comes back with the exec; it reports the exit.
    const exitSeen = new Promise((resolve) => {
      const e = startChild(plan, { writes: files, wait: true, onExit: (code, signal) => resolve({ code, signal }) });
      expect(e.started).toEqual({ kind: "exec", pidfd: expect.any(Number), watch: expect.anything() });
      expect(e.handle).toBeUndefined();
    });
    expect(await exitSeen).toEqual({ code: 0, signal: null });
    // Armed, then dropped unfired when the child does not exec: the failure is resumeChild's to report.
    let fired = false;
    const g = startChild(
      { ...plan, steps: [{ op: "wait", notify: false }, { op: "chdir", path: "/nonexistent/dir" }, { op: "stdio" }] },
      { writes: files, wait: true, onExit: () => (fired = true) },
    );
    expect(g.started.kind).toBe("pending");
    expect(() => resumeChild(g, "test", false)).toThrow(expect.objectContaining({ code: "ENOENT", step: "chdir" }));
    await new Promise((r) => setTimeout(r, 20));
    expect(fired).toBe(false);
    // A refused write stops there: which one, its syscall and errno; the child is still held, not released.
    const b = startChild(plan, { writes: [...files, "uid_map", prep.uid!.text], wait: true });
    expect(b.started).toEqual({ kind: "writeFailed", index: 3, syscall: "write", errno: 1 });
    expect(b.done).toBe(false);
    abortChild(b);
    // A step that fails after the release: the call leaves its record for resumeChild, which reports it.
    const c = startChild(
      { ...plan, steps: [{ op: "wait", notify: false }, { op: "chdir", path: "/nonexistent/dir" }, { op: "stdio" }] },
      { writes: files, wait: true },
    );
    expect(c.started.kind).toBe("pending");
    expect(() => resumeChild(c, "test", false)).toThrow(
      expect.objectContaining({ code: "ENOENT", step: "chdir", path: "/nonexistent/dir" }),
    );
    // Written, then released and watched from the event loop: the exec, then the exit, through the same watch
    // (a program that outlives this thread's next turn: sleep).
    const sleeper = { ...plan, path: "/bin/sleep", argv: ["sleep", "0.2"] };
    const d = startChild(sleeper, { writes: files });
    expect(d.started.kind).toBe("held");
    const events: WatchEvent[] = [];
    const exit = new Promise<void>((resolve) => {
      const watched = watchChild(d, (e) => {
        events.push(e);
        if (e.kind === "exec") native().pidfdWatchRef(e.watch, true);
        if (e.kind === "exit") resolve();
      });
      expect(watched).toBe(true);
    });
    await exit;
    expect(events).toEqual([
      { kind: "exec", pidfd: expect.any(Number), watch: expect.anything() },
      { kind: "exit", code: 0, signal: null },
    ]);
    expect(d.done).toBe(true);
    // The same from the one call (writes, release, watch), for a program that has exited before this thread looks
    // (it is kept busy until then): one event says both, and the program is reaped.
    const ranEvents: WatchEvent[] = [];
    let ranDone: () => void = () => {};
    const ranSeen = new Promise<void>((resolve) => (ranDone = resolve));
    const r = startChild(plan, {
      writes: files,
      watch: (e) => {
        ranEvents.push(e);
        ranDone();
      },
    });
    expect(r.started.kind).toBe("watching");
    const until = Date.now() + 2000;
    while (Date.now() < until && !isZombie(r.pid));
    await ranSeen;
    expect(ranEvents).toEqual([{ kind: "execExit", code: 0, signal: null }]);
    expect(r.done).toBe(true);
    expect(existsSync(`/proc/${r.pid}`)).toBe(false);
    // And a failing program's status comes with it: exit code 3.
    const failing = await new Promise<WatchEvent>((resolve) => {
      const q = startChild(
        { ...plan, path: "/bin/sh", argv: ["sh", "-c", "exit 3"] },
        { writes: files, watch: resolve },
      );
      expect(q.started.kind).toBe("watching");
      const end = Date.now() + 2000;
      while (Date.now() < end && !isZombie(q.pid));
    });
    expect(failing).toEqual({ kind: "execExit", code: 3, signal: null });
    // A step that fails after that release: "other", and resumeChild reports the failure.
    const f = startChild({
      ...plan,
      steps: [
        { op: "wait", notify: false },
        { op: "chdir", path: "/nonexistent/dir" },
      ],
    });
    const other = await new Promise<WatchEvent>((resolve) => watchChild(f, resolve));
    expect(other).toEqual({ kind: "other" });
    expect(() => resumeChild(f, "test", false)).toThrow(expect.objectContaining({ code: "ENOENT", step: "chdir" }));
    expect(children().map((x) => x.pid)).not.toContain(d.pid);
  });

  it("a validated map request is reused only for the same request: the last one, then the cache, never a neighbour", () => {
    const a = { uidMap: "0 100000 10", gidMap: "0 100000 10", setgroups: "deny" } as const;
    const b = { uidMap: "0 100000 10", gidMap: "0 100000 11", setgroups: "deny" } as const;
    const first = prepareMapRequest(a);
    // The same request again: the very result (the last request, compared field by field).
    expect(prepareMapRequest({ ...a })).toBe(first);
    const other = prepareMapRequest(b);
    expect(other).not.toBe(first);
    expect(other.gid!.text).toBe("0 100000 11\n");
    // Back to the first: from the cache, the same result again.
    expect(prepareMapRequest(a)).toBe(first);
    // Texts that run together the same way stay apart: uid "0 100000 1" + gid "10 100000 1" against
    // uid "0 100000 11" + gid "0 100000 1" (the key writes each text's length before it).
    const x = prepareMapRequest({ uidMap: "0 100000 1", gidMap: "10 100000 1" });
    const y = prepareMapRequest({ uidMap: "0 100000 11", gidMap: "0 100000 1" });
    expect([x.uid!.text, x.gid!.text]).toEqual(["0 100000 1\n", "10 100000 1\n"]);
    expect([y.uid!.text, y.gid!.text]).toEqual(["0 100000 11\n", "0 100000 1\n"]);
    expect(prepareMapRequest({ uidMap: "0 100000 1", gidMap: "10 100000 1" })).toBe(x);
    // A refused request is refused every time, also right after an accepted one.
    expect(() => prepareMapRequest({ uidMap: "0 100000 0" })).toThrow(UsernsError);
    expect(() => prepareMapRequest({ uidMap: "0 100000 0" })).toThrow(UsernsError);
    expect(prepareMapRequest(a)).toBe(first);
  });

  it("writes the map files in one call and reports the failing file, its syscall and errno", () => {
    const prep = prepareMapRequest({ uidMap: "0 100000 10", gidMap: "0 100000 10", setgroups: "deny" });
    const held = startChild({
      cloneFlags: CLONE_NEW.user,
      path: "/bin/true",
      argv: ["true"],
      envp: [],
      fdSrc: [DEV_NULL, DEV_NULL, DEV_NULL],
      steps: [{ op: "wait", notify: false }, { op: "stdio" }],
    });
    try {
      writeMapsDirect(held.pid, { uid: prep.uid, gid: prep.gid, setgroups: "deny" });
      // A map is written once: the second write is refused at its write(2), and setgroups is not reached again.
      let err: unknown;
      try {
        writeMapsDirect(held.pid, { uid: prep.uid, gid: prep.gid });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UsernsError);
      const e = err as UsernsError;
      expect([e.code, e.step, e.syscall, e.path]).toEqual(["EPERM", "uid_map", "write", `/proc/${held.pid}/uid_map`]);
      expect(e.message).toContain(`writing uid_map of pid ${held.pid}: EPERM`);
    } finally {
      abortChild(held);
    }
    expect(children().map((c) => c.pid)).not.toContain(held.pid);
  });

  it("reports a missing /proc/PID at the first file", () => {
    const prep = prepareMapRequest({ uidMap: "0 100000 10" });
    const pid = 0x3ffffff0; // above pid_max's hard limit: never a process
    expect(() => writeMapsDirect(pid, { uid: prep.uid, setgroups: "deny" })).toThrow(
      expect.objectContaining({ code: "ENOENT", step: "setgroups", syscall: "open" }),
    );
  });

  it("reuses a validated request; a refused one is refused every time", () => {
    const a = prepareMapRequest({ uidMap: "0 100000 65536", gidMap: "0 100000 65536", setgroups: "deny" });
    const b = prepareMapRequest({ uidMap: "0 100000 65536", gidMap: "0 100000 65536", setgroups: "deny" });
    expect(b).toBe(a);
    expect(prepareMapRequest({ uidMap: "0 100000 65536", setgroups: "deny" })).not.toBe(a);
    for (let i = 0; i < 2; i++)
      expect(() => prepareMapRequest({ uidMap: "0 100000 10\n5 200000 10\n" })).toThrow(
        expect.objectContaining({ code: "EINVAL" }),
      );
  });

  it("many concurrent spawns, some failing before exec, share the stack pool without crossing", async () => {
    const opts = { namespaces: ["user"] as const, uidMap: "0 100000 65536", gidMap: "0 100000 65536" };
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        i % 4 === 3
          ? run("/nonexistent/program", [], { ...opts, namespaces: [...opts.namespaces] })
          : run("sh", ["-c", `echo ${i}`], { ...opts, namespaces: [...opts.namespaces] }),
      ),
    );
    results.forEach((r, i) => {
      if (i % 4 === 3) expect(r.status).toBe("rejected");
      else expect(r.status === "fulfilled" && r.value.stdout).toBe(`${i}\n`);
    });
    expect(children()).toEqual([]);
  });

  it("with another program in flight (the one call releases and watches): events, codes, signals, failures", async () => {
    const opts = {
      namespaces: ["user"] as const,
      uidMap: "0 100000 65536",
      gidMap: "0 100000 65536",
      setgroups: "deny" as const,
      stdio: "ignore" as const,
    };
    // Keeps one program of ours in flight, so that every spawn below takes the watched path.
    const keeper = spawn("sleep", ["5"], { ...opts, namespaces: ["user"] });
    try {
      const events: string[] = [];
      const quick = spawn("/bin/true", [], { ...opts, namespaces: ["user"] });
      quick.on("spawn", () => events.push("spawn"));
      quick.on("exit", (code) => events.push(`exit ${code}`));
      quick.on("close", () => events.push("close"));
      // Busy until the program has exited, so that its exec and its exit are learned of together.
      const until = Date.now() + 2000;
      while (Date.now() < until && !isZombie(quick.pid!));
      expect(await quick.closed).toEqual({ pid: quick.pid, code: 0, signal: null });
      expect(events).toEqual(["spawn", "exit 0", "close"]);
      expect(quick.mapping).toEqual({
        method: "direct",
        uidMap: "0 100000 65536\n",
        gidMap: "0 100000 65536\n",
        setgroups: "deny",
      });
      // Codes and signals, learned of with the exec or after it.
      expect((await spawn("sh", ["-c", "exit 7"], { ...opts, namespaces: ["user"] }).exited).code).toBe(7);
      expect((await spawn("sh", ["-c", "kill -TERM $$"], { ...opts, namespaces: ["user"] }).exited).signal).toBe(
        "SIGTERM",
      );
      // kill() right after spawn(), before the exec is known: the program gets it as it starts.
      const killed = spawn("sleep", ["5"], { ...opts, namespaces: ["user"] });
      expect(killed.kill("SIGKILL")).toBe(true);
      expect(await killed.exited).toEqual({ pid: killed.pid, code: null, signal: "SIGKILL" });
      expect(killed.killed).toBe(true);
      // A step that fails after the release: the handle fails with the step, nothing is left behind.
      const failed = spawn("/bin/true", [], { ...opts, namespaces: ["user"], cwd: "/nonexistent/dir" });
      await expect(failed.exited).rejects.toMatchObject({ code: "ENOENT", step: "chdir", path: "/nonexistent/dir" });
    } finally {
      keeper.kill("SIGKILL");
      await keeper.exited;
    }
    expect(children()).toEqual([]);
  });

  it("'spawn' costs a tick only for its listeners, and reaches each listener added before 'exit' once", async () => {
    const opts = {
      namespaces: ["user"] as const,
      uidMap: "0 100000 1",
      gidMap: "0 100000 1",
      stdio: "ignore" as const,
    };
    const ticks = countTicks();
    try {
      // Alone, nobody listening: the program starts and ends without a tick of ours.
      for (let i = 0; i < 5; i++) expect((await spawn("/bin/true", [], opts).exited).code).toBe(0);
      expect(ticks.count).toBe(0);
      // A listener added right after spawn(): called once, on a later tick, before 'exit'.
      const events: string[] = [];
      const early = spawn("sleep", ["0.3"], opts);
      early.on("spawn", () => events.push("spawn"));
      events.push("returned");
      await new Promise((r) => setTimeout(r, 100));
      // One added while the program runs (ChildProcess would not call it): on the next tick, not within on().
      early.prependListener("spawn", () => events.push("late spawn"));
      // One removed before its tick: not called.
      const removed = (): void => void events.push("removed");
      early.on("spawn", removed);
      early.off("spawn", removed);
      events.push("added");
      await new Promise((r) => setImmediate(r));
      early.on("exit", () => events.push("exit"));
      await early.exited;
      // After the exit: never.
      early.once("spawn", () => events.push("after exit"));
      await new Promise((r) => setImmediate(r));
      expect(events).toEqual(["returned", "spawn", "added", "late spawn", "exit"]);
      // A tick for the first listener, and one for each added after 'spawn' (the removed one's too).
      expect(ticks.count).toBe(3);
      // events.once() after the exec, while the program runs.
      const running = spawn("sleep", ["0.3"], opts);
      await new Promise((r) => setTimeout(r, 100));
      await once(running, "spawn");
      await running.exited;
      // Watched (another program in flight), exec and exit learned of together: 'spawn' then 'exit', no tick.
      const keeper = spawn("sleep", ["5"], opts);
      try {
        ticks.count = 0;
        const quick = spawn("/bin/true", [], opts);
        const until = Date.now() + 2000;
        while (Date.now() < until && !isZombie(quick.pid!));
        expect((await quick.exited).code).toBe(0);
        expect(ticks.count).toBe(0);
        const order: string[] = [];
        const heard = spawn("/bin/true", [], opts);
        heard.on("spawn", () => order.push("spawn"));
        heard.on("exit", () => order.push("exit"));
        while (Date.now() < until + 2000 && !isZombie(heard.pid!));
        await heard.exited;
        expect(order).toEqual(["spawn", "exit"]);
      } finally {
        keeper.kill("SIGKILL");
        await keeper.exited;
      }
    } finally {
      ticks.restore();
    }
  });
  it("a 'spawn' listener that throws (uncaught, as any listener's) does not keep the exit from being settled", () => {
    const out = execFileSync(
      process.execPath,
      [join(import.meta.dirname, "..", "fixtures", "spawn-throwing-listener.mjs")],
      {
        env: { ...process.env, USERNS_LIB: compiledLib(), USERNS_BINDING: nativePath() },
        encoding: "utf8",
      },
    );
    const r = JSON.parse(out);
    expect(r.events).toEqual(["spawn", "exit 0"]);
    expect(r.uncaught).toEqual(["from the spawn listener"]);
    expect(r.status.code).toBe(0);
    expect(r.after.code).toBe(0);
    expect(r.fdsLeft).toBe(0);
  });
});
