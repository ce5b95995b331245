/**
 * Type fixtures: this file must compile (`npm run typecheck` includes it, and
 * test/unit/types.test.ts compiles it alone); every `@ts-expect-error` line
 * must be an error. test/types/fail/ holds whole files that must not compile.
 */
import type { Readable, Writable } from "node:stream";
import {
  type ErrnoCode,
  inspectMount,
  RunError,
  type RunResult,
  run,
  type SpawnOptions,
  spawn,
  type UsernsChildProcess,
  UsernsError,
  type UsernsErrorCode,
} from "../../lib/index.js";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(_?: T): void {}

// --- stream nullability follows stdio -----------------------------------------------------------
{
  const def = spawn("true");
  assertType<Equal<typeof def.stdout, Readable>>();
  assertType<Equal<typeof def.stdin, Writable>>();
  def.stdout.on("data", () => {});

  const piped = spawn("true", [], { stdio: "pipe" });
  assertType<Equal<typeof piped.stderr, Readable>>();

  const inherit = spawn("true", [], { stdio: "inherit" });
  assertType<Equal<typeof inherit.stdout, null>>();
  // @ts-expect-error: stdout is null with stdio 'inherit'
  inherit.stdout.on("data", () => {});

  const mixed = spawn("true", [], { stdio: ["ignore", "pipe", 2] });
  assertType<Equal<typeof mixed.stdin, null>>();
  assertType<Equal<typeof mixed.stdout, Readable>>();
  assertType<Equal<typeof mixed.stderr, null>>();

  const short = spawn("true", [], { stdio: ["inherit"] });
  // Entries not given are pipes, as child_process.
  assertType<Equal<typeof short.stdout, Readable>>();

  const withNs = spawn("id", [], { namespaces: ["user"], uidMap: "0 100000 1", gidMap: "0 100000 1", uid: 0 });
  assertType<Equal<typeof withNs.stdout, Readable>>();

  // An options object typed as SpawnOptions says nothing about stdio: either.
  const opts: SpawnOptions = {};
  const wide = spawn("true", [], opts);
  assertType<Equal<typeof wide.stdout, Readable | null>>();
  // @ts-expect-error: possibly null
  wide.stdout.on("data", () => {});

  // Any handle is a UsernsChildProcess.
  const handles: UsernsChildProcess[] = [def, inherit, mixed, wide];
  void handles;
}

// --- typed events --------------------------------------------------------------------------------
{
  const child = spawn("true");
  child.on("exit", (code, signal) => {
    assertType<Equal<typeof code, number | null>>();
    assertType<Equal<typeof signal, NodeJS.Signals | null>>();
  });
  child.once("close", (code) => assertType<Equal<typeof code, number | null>>());
  child.on("error", (err) => {
    assertType<Equal<typeof err, UsernsError>>();
    assertType<Equal<typeof err.code, UsernsErrorCode>>();
  });
  child.on("spawn", () => {});
  // @ts-expect-error: no such event
  child.on("exited", () => {});
  // @ts-expect-error: 'exit' gives a number or null, not a string
  child.on("exit", (code: string) => code);
}

// --- awaiting ----------------------------------------------------------------------------------------
async function awaiting(): Promise<void> {
  const st = await spawn("true");
  assertType<Equal<typeof st.code, number | null>>();
  const ex = await spawn("true").exited;
  assertType<Equal<typeof ex.signal, NodeJS.Signals | null>>();
}
void awaiting;

// --- options -----------------------------------------------------------------------------------------
{
  const ac = new AbortController();
  spawn("sleep", ["1"], { timeout: 100, signal: ac.signal, killSignal: "SIGKILL" });
  spawn("sleep", ["1"], { killSignal: 9 });
  // @ts-expect-error: a misspelt option is an error, also through the generic parameter
  spawn("sleep", ["1"], { timout: 100 });
  // @ts-expect-error: not a signal name
  spawn("sleep", ["1"], { killSignal: "SIGNOPE" });
  // @ts-expect-error: stdio entries are 'pipe' | 'inherit' | 'ignore' | fd | null
  spawn("sleep", ["1"], { stdio: ["pipe", "bogus"] });
}

// --- run ---------------------------------------------------------------------------------------------
async function running(): Promise<void> {
  const r = await run("id", ["-u"], { namespaces: ["user"], uidMap: "0 100000 1", gidMap: "0 100000 1" });
  assertType<Equal<typeof r, RunResult<string>>>();
  assertType<Equal<typeof r.stdout, string>>();
  assertType<Equal<typeof r.exitCode, number | null>>();
  const b = await run("cat", [], { input: Buffer.from("x"), encoding: "buffer" });
  assertType<Equal<typeof b.stdout, Buffer>>();
  const h = await run("cat", [], { encoding: "hex", maxBuffer: 10, reject: false, timeout: 5 });
  assertType<Equal<typeof h.stderr, string>>();
  // @ts-expect-error: a misspelt option
  await run("cat", [], { maxbuffer: 10 });
  // @ts-expect-error: not an encoding
  await run("cat", [], { encoding: "utf9" });
  const plain = await run("true");
  assertType<Equal<typeof plain.stdout, string>>();
  try {
    await run("false");
  } catch (e) {
    if (e instanceof RunError) {
      assertType<Equal<typeof e.exitCode, number | null>>();
      const out: string | Buffer = e.stdout;
      void out;
      const t: boolean = e.timedOut;
      void t;
    }
  }
}
void running;

// --- error codes ------------------------------------------------------------------------------------
{
  const e = new UsernsError("x", { code: "ERR_USERNS_USAGE" });
  new UsernsError("x", { code: "EPERM" });
  new UsernsError("x", { code: "E131" });
  // @ts-expect-error: not a code userns gives
  new UsernsError("x", { code: "ERR_USERNS_BOGUS" });
  // @ts-expect-error: not an errno name
  new UsernsError("x", { code: "EBOGUS" });
  switch (e.code) {
    case "ERR_USERNS_USAGE":
    case "ERR_USERNS_NATIVE_LOAD":
    case "ERR_USERNS_TIMEOUT":
    case "ABORT_ERR":
    case "ENOENT":
      break;
    // @ts-expect-error: a code that cannot occur is an error in a switch over it
    case "ERR_USERNS_NOPE":
      break;
  }
  const errno: ErrnoCode = "EACCES";
  const code: UsernsErrorCode = errno;
  void code;
}

// --- inspectMount takes a path, an fd number or anything with an fd -------------------------------------
{
  const a = (): unknown => inspectMount("/");
  const b = (): unknown => inspectMount(3);
  const c = (): unknown => inspectMount({ fd: 3 });
  // @ts-expect-error: not a path or fd
  const d = (): unknown => inspectMount(true);
  void [a, b, c, d];
}
