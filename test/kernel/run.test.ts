/**
 * run(): a program run to completion in a new user namespace, and spawn()'s
 * timeout / signal / killSignal and `await child` after the streams closed.
 */
import { existsSync } from "node:fs";
import { afterAll, expect, it } from "vitest";
import { UsernsError } from "../../lib/errors.js";
import { UserNamespace } from "../../lib/namespaces/user-namespace.js";
import { RunError, run, spawn, type UsernsChildProcess } from "../../lib/spawn/index.js";
import { describeKernel } from "../helpers/kernel.js";
import { children, openFds } from "../helpers/spawn.js";

const userns = {
  namespaces: ["user"],
  uidMap: "0 100000 65536\n",
  gidMap: "0 100000 65536\n",
  uid: 0,
  gid: 0,
} as const;

async function rejection(p: PromiseLike<unknown>): Promise<RunError> {
  try {
    await p;
  } catch (e) {
    return e as RunError;
  }
  throw new Error("expected a rejection");
}

/** The process is gone and reaped: no /proc entry, not among our children. */
function gone(pid: number | undefined): void {
  expect(pid).toBeTypeOf("number");
  expect(existsSync(`/proc/${pid}`)).toBe(false);
  expect(children().map((c) => c.pid)).not.toContain(pid);
}

describeKernel("run(): to completion, in a new user namespace", () => {
  afterAll(() => UserNamespace.clearCache());

  it("resolves with stdout, stderr, exitCode, signal, pid and mapping; the program ran as root of its namespace", async () => {
    const r = await run("sh", ["-c", "id -u; echo oops >&2; cat /proc/self/uid_map"], userns);
    expect(r.stdout).toMatch(/^0\n\s+0\s+100000\s+65536\n$/);
    expect(r.stderr).toBe("oops\n");
    expect(r.exitCode).toBe(0);
    expect(r.signal).toBeNull();
    expect(r.pid).toBeTypeOf("number");
    expect(r.mapping).toEqual({ method: "direct", uidMap: "0 100000 65536\n", gidMap: "0 100000 65536\n" });
    expect(r.killedBy).toBeUndefined();
    gone(r.pid);
  });

  it("includes output a background grandchild writes after the program exited", async () => {
    const r = await run("sh", ["-c", "(sleep 0.3; echo late; echo late-err >&2) & echo early"], userns);
    expect(r.stdout).toBe("early\nlate\n");
    expect(r.stderr).toBe("late-err\n");
  });

  it("writes input to stdin and closes it; without input stdin is /dev/null", async () => {
    expect((await run("cat", [], { ...userns, input: "hello\n" })).stdout).toBe("hello\n");
    const bin = await run("cat", [], { ...userns, input: Buffer.from([0, 255, 10]), encoding: "buffer" });
    expect(Buffer.isBuffer(bin.stdout)).toBe(true);
    expect([...bin.stdout]).toEqual([0, 255, 10]);
    // cat of /dev/null ends at once rather than waiting on a pipe nobody writes.
    expect((await run("sh", ["-c", "cat; readlink /proc/self/fd/0"], userns)).stdout).toBe("/dev/null\n");
    // A program that does not read its input: the EPIPE is not an error of run's.
    const big = "x".repeat(1 << 20);
    expect((await run("true", [], { ...userns, input: big })).exitCode).toBe(0);
  });

  it("decodes with the encoding asked for", async () => {
    const r = await run("printf", ["\\150\\151"], { ...userns, encoding: "hex" });
    expect(r.stdout).toBe("6869");
  });

  it("rejects a non-zero exit with a RunError carrying every field; reject: false resolves instead", async () => {
    const e = await rejection(run("sh", ["-c", "echo out; echo err >&2; exit 3"], userns));
    expect(e).toBeInstanceOf(RunError);
    expect(UsernsError.isUsernsError(e)).toBe(true);
    expect(e.code).toBe("ERR_USERNS_EXIT");
    expect(e.message).toMatch(/^running sh -c .* \(pid \d+\): ERR_USERNS_EXIT: exited with code 3$/);
    expect(e).toMatchObject({ stdout: "out\n", stderr: "err\n", exitCode: 3, signal: null, timedOut: false });
    expect(e.pid).toBeTypeOf("number");
    expect(e.mapping?.method).toBe("direct");
    const r = await run("sh", ["-c", "echo out; exit 3"], { ...userns, reject: false });
    expect(r).toMatchObject({ stdout: "out\n", exitCode: 3, signal: null, killedBy: undefined });
    const k = await rejection(run("sh", ["-c", "kill -USR1 $$"], userns));
    expect(k).toMatchObject({ code: "ERR_USERNS_EXIT", exitCode: null, signal: "SIGUSR1" });
  });

  it("timeout sends killSignal and rejects with ERR_USERNS_TIMEOUT and the output so far; nothing is left", async () => {
    const fds = openFds();
    const t0 = Date.now();
    const e = await rejection(run("sh", ["-c", "echo started; exec sleep 30"], { ...userns, timeout: 300 }));
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(e).toBeInstanceOf(RunError);
    expect(e).toMatchObject({
      code: "ERR_USERNS_TIMEOUT",
      stdout: "started\n",
      exitCode: null,
      signal: "SIGTERM",
      killedBy: "timeout",
      timedOut: true,
    });
    expect(e.message).toMatch(/timed out after 300 ms, sent SIGTERM; it ended by SIGTERM$/);
    expect(e.mapping?.method).toBe("direct");
    gone(e.pid);
    expect(openFds()).toBe(fds);
  });

  it("timeout with killSignal SIGKILL ends pid 1 of a new pid namespace (which ignores an unhandled SIGTERM)", async () => {
    const e = await rejection(
      run("sleep", ["30"], { ...userns, namespaces: ["user", "pid"], timeout: 200, killSignal: "SIGKILL" }),
    );
    expect(e).toMatchObject({ code: "ERR_USERNS_TIMEOUT", signal: "SIGKILL", killedBy: "timeout" });
    gone(e.pid);
  });

  it("an AbortSignal kills the program and rejects with ABORT_ERR, the reason as cause", async () => {
    const ac = new AbortController();
    const p = run("sh", ["-c", "echo started; exec sleep 30"], { ...userns, signal: ac.signal });
    setTimeout(() => ac.abort(new Error("user pressed stop")), 300);
    const e = await rejection(p);
    expect(e).toMatchObject({
      code: "ABORT_ERR",
      stdout: "started\n",
      signal: "SIGTERM",
      killedBy: "abort",
      timedOut: false,
    });
    expect((e.cause as Error).message).toBe("user pressed stop");
    gone(e.pid);
    // Already aborted: killed as soon as it started.
    const pre = await rejection(run("sleep", ["30"], { ...userns, signal: AbortSignal.abort() }));
    expect(pre).toMatchObject({ code: "ABORT_ERR", killedBy: "abort" });
  });

  it("maxBuffer: keeps that many bytes, kills the program, rejects with ERR_CHILD_PROCESS_STDIO_MAXBUFFER", async () => {
    const e = await rejection(run("yes", [], { ...userns, maxBuffer: 1000 }));
    expect(e).toMatchObject({ code: "ERR_CHILD_PROCESS_STDIO_MAXBUFFER", killedBy: "maxBuffer" });
    expect(e.stdout).toBe("y\n".repeat(500));
    expect(e.signal === "SIGTERM" || e.signal === "SIGPIPE").toBe(true);
    gone(e.pid);
    // Exactly at the limit is fine.
    const r = await run("head", ["-c", "1000", "/dev/zero"], { ...userns, maxBuffer: 1000 });
    expect(r.stdout.length).toBe(1000);
  });

  it("a program that cannot start rejects with the spawn error's code and step; no pid", async () => {
    const e = await rejection(run("/nonexistent/prog", [], userns));
    expect(e).toBeInstanceOf(RunError);
    expect(e).toMatchObject({ code: "ENOENT", step: "execve", exitCode: null, signal: null, stdout: "" });
    const refused = await rejection(run("true", [], { ...userns, uidMap: "0 4294967295 2\n" }));
    expect(refused.code).toBe("EINVAL");
    expect(refused.pid).toBeUndefined();
  });

  it("usage errors reject (never throw), also spawn's", async () => {
    const calls = [
      () => run("true", [], { ...userns, timeout: -1 }),
      () => run("true", [], { ...userns, maxBuffer: 0 }),
      // @ts-expect-error: an unknown option
      () => run("true", [], { ...userns, timout: 5 }),
      () => run("true", [], { ...userns, input: "x", stdio: "inherit" }),
    ];
    for (const call of calls) {
      let p: Promise<unknown> | undefined;
      expect(() => {
        p = call();
      }).not.toThrow();
      expect((await rejection(p!)).code).toBe("ERR_USERNS_USAGE");
    }
  });
});

describeKernel("spawn(): timeout, signal, killSignal; await after the streams closed", () => {
  it("await child resolves once the streams closed; child.exited at exit", async () => {
    const child = spawn("sh", ["-c", "(sleep 0.3; echo late) & echo early"], userns);
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const atExit = await child.exited;
    const outAtExit = out;
    const st = await child;
    expect(st).toEqual(atExit);
    expect(outAtExit).not.toContain("late");
    expect(out).toBe("early\nlate\n");
  });

  it("await child does not wait on a pipe nobody reads", async () => {
    // Less than a pipe holds, so the program can exit without a reader; its 'close' needs the unread data drained.
    const child = spawn("sh", ["-c", "head -c 50000 /dev/zero"], userns);
    expect(await child).toMatchObject({ code: 0, signal: null });
  });

  it("timeout kills with killSignal; await resolves with the status, killedBy says why", async () => {
    const child = spawn("sleep", ["30"], { ...userns, timeout: 200, stdio: "ignore" });
    expect(await child).toMatchObject({ code: null, signal: "SIGTERM" });
    expect(child.killedBy).toBe("timeout");
    expect(child.killed).toBe(true);
    const k = spawn("sleep", ["30"], { ...userns, timeout: 200, killSignal: "SIGKILL", stdio: "ignore" });
    expect(await k).toMatchObject({ signal: "SIGKILL" });
    gone(k.pid);
  });

  it("a timeout that does not fire does nothing, and does not hold the event loop", async () => {
    const child = spawn("true", [], { ...userns, timeout: 60_000 });
    expect(await child).toMatchObject({ code: 0 });
    expect(child.killedBy).toBeUndefined();
  });

  it("an AbortSignal kills the program, emits 'error' and rejects with ABORT_ERR after close", async () => {
    const ac = new AbortController();
    const child = spawn("sleep", ["30"], { ...userns, signal: ac.signal, stdio: "ignore" });
    const errors: UsernsError[] = [];
    child.on("error", (e) => errors.push(e));
    const closed = new Promise<NodeJS.Signals | null>((r) => child.once("close", (_c, s) => r(s)));
    await new Promise<void>((r) => child.once("spawn", r));
    ac.abort();
    const e = await rejection(child);
    expect(e.code).toBe("ABORT_ERR");
    expect(await closed).toBe("SIGTERM");
    expect(errors.map((x) => x.code)).toEqual(["ABORT_ERR"]);
    expect(child.killedBy).toBe("abort");
    gone(child.pid);
  });

  it("rejects a bad timeout, signal or killSignal synchronously, as child_process", () => {
    expect(() => spawn("true", [], { timeout: 1.5 })).toThrow(/timeout must be/);
    // @ts-expect-error: not an AbortSignal
    expect(() => spawn("true", [], { signal: "SIGTERM" })).toThrow(/signal must be an AbortSignal/);
    // @ts-expect-error: not a signal name
    expect(() => spawn("true", [], { killSignal: "SIGNOPE" })).toThrow(/unknown signal/);
  });

  it("argument shapes throw synchronously; what the machine decides is reported through the handle", async () => {
    // @ts-expect-error: not a stdio entry
    expect(() => spawn("true", [], { stdio: ["pipe", "bogus"] })).toThrow(/stdio\[1\] must be/);
    // @ts-expect-error: not a namespace
    expect(() => spawn("true", [], { join: [true] })).toThrow(/join entries must be/);
    // @ts-expect-error: not a map
    expect(() => spawn("true", [], { namespaces: ["user"], uidMap: 5 })).toThrow(/uidMap must be an IdMap/);
    for (const [file, options, code] of [
      ["no-such-program-here", {}, "ENOENT"],
      ["true", { join: "/nonexistent/ns/user" }, "ENOENT"],
      ["true", { namespaces: ["user"], uidMap: "0 4294967295 2\n" }, "EINVAL"],
    ] as const) {
      let child: UsernsChildProcess | undefined;
      expect(() => {
        child = spawn(file, [], options);
      }).not.toThrow();
      const errors: string[] = [];
      child!.on("error", (e) => errors.push(e.code));
      expect((await rejection(child!)).code).toBe(code);
      // 'error' is emitted on the next tick after the failure; the promise may settle first.
      await new Promise((r) => setImmediate(r));
      expect(errors).toEqual([code]);
    }
  });
});
