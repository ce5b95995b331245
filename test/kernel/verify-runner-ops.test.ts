/**
 * The runner's path and namespace-fd ops on their own (statPath, openPath,
 * setnsFd): what each returns, how each fails, and which programs the runner
 * refuses before running them. The sandbox cross-check builds on exactly
 * these: open a namespace's file while host paths still resolve, join it by
 * fd, then statx from inside. The namespaces here are made outside the
 * library (util-linux unshare, maps written from this process), and the only
 * mount is a tmpfs inside the private mount namespace of a child made for
 * the test.
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { runPrograms } from "../../lib/verify/kernel.js";
import {
  encodeSteps,
  Op,
  ProgramBuilder,
  programStatus,
  REQUIRED,
  Status,
  type StepSpec,
  stepResult,
  stepText,
} from "../../lib/verify/program.js";
import { describeKernel } from "../helpers/kernel.js";

const { EBADF, EINVAL, ENOENT } = constants.errno;
const CLONE_NEWNS = 0x0002_0000;
const CLONE_NEWUSER = 0x1000_0000;
/** sizeof(struct statx). */
const STATX = 256;

const cstr = (s: string) => Buffer.from(`${s}\0`, "utf8");

/** The fields of a struct statx the cross-check reads (uid @20, gid @24, mode @28, mnt_id @144). */
function statxAt(area: Uint8Array, off: number) {
  const dv = new DataView(area.buffer, area.byteOffset + off, STATX);
  return {
    uid: dv.getUint32(20, true),
    gid: dv.getUint32(24, true),
    mode: dv.getUint16(28, true),
    mountId: Number(dv.getBigUint64(144, true)),
  };
}

/** Mount id of the topmost mount at `target` in /proc/PID/mountinfo. */
function mountIdAt(pid: number | "self", target: string): number {
  const ids = readFileSync(`/proc/${pid}/mountinfo`, "utf8")
    .split("\n")
    .map((l) => l.split(" "))
    .filter((f) => f[4] === target)
    .map((f) => Number(f[0]));
  if (ids.length === 0) throw new Error(`nothing mounted at ${target} for ${pid}`);
  return ids[ids.length - 1]!;
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (ok()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
});

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "runner-ops-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A process in a fresh user namespace mapping 0..65535 to 100000..165535. */
async function userNsSleeper(): Promise<number> {
  const self = readlinkSync("/proc/self/ns/user");
  const c = spawn("unshare", ["-U", "sleep", "30"], { stdio: "ignore" });
  children.push(c);
  const pid = c.pid!;
  await until("the user namespace", () => readlinkSync(`/proc/${pid}/ns/user`) !== self);
  writeFileSync(`/proc/${pid}/uid_map`, "0 100000 65536\n");
  writeFileSync(`/proc/${pid}/setgroups`, "deny");
  writeFileSync(`/proc/${pid}/gid_map`, "0 100000 65536\n");
  return pid;
}

/**
 * A process alone in a private mount namespace (owned by the initial user
 * namespace) with a tmpfs at `dir`: mode 0715, root owned by host 100007:100008,
 * holding `f` owned by host 5:5. The host sees `dir` as mkdtemp left it (0700).
 */
async function mountNsSleeper(): Promise<number> {
  const script =
    'mount -t tmpfs -o mode=0715,uid=100007,gid=100008 none "$1" && : > "$1/f" && chown 5:5 "$1/f" && exec sleep 30';
  const c = spawn("unshare", ["--mount", "--propagation", "private", "sh", "-c", script, "sh", dir], {
    stdio: "ignore",
  });
  children.push(c);
  const pid = c.pid!;
  await until("the tmpfs in the child's mount namespace", () => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "latin1").startsWith("sleep\0");
    } catch {
      return false;
    }
  });
  return pid;
}

async function run(pb: ProgramBuilder) {
  const enc = pb.encode(10_000);
  const [area] = await runPrograms([enc]);
  return { enc, area: area! };
}

describeKernel("verify runner path and namespace-fd ops", () => {
  it("statPath: statx of the path without following a final symlink, ids as the agent's user namespace sees them", async () => {
    const file = join(dir, "owned");
    writeFileSync(file, "x");
    chownSync(file, 1234, 5678);
    chmodSync(file, 0o640);
    const link = join(dir, "link");
    symlinkSync("owned", link);
    const pb = new ProgramBuilder();
    const a = pb.spawn("stat");
    const s = (path: string, outCap = STATX) => pb.add(a, Op.statPath, `stat ${path}`, { data: cstr(path), outCap });
    const sFile = s(file);
    const sLink = s(link);
    const sProc = s("/proc");
    const sMissing = s(join(dir, "missing"));
    const sShort = s(file, STATX - 8);
    pb.add(a, Op.unshareUser, "a user namespace that maps nothing", { flags: REQUIRED });
    const sUnmapped = s(file);
    const { enc, area } = await run(pb);
    expect(programStatus(area).status).toBe(Status.done);

    expect(stepResult(enc, area, sFile)).toEqual({ ret: STATX, err: 0, aux: 0 });
    const st = lstatSync(file);
    expect(statxAt(area, enc.outOffsets[sFile]!)).toMatchObject({ uid: 1234, gid: 5678, mode: st.mode });
    expect(st.mode & 0o7777).toBe(0o640);
    // AT_SYMLINK_NOFOLLOW: the link itself, owned by root as this process made it.
    expect(statxAt(area, enc.outOffsets[sLink]!)).toMatchObject({ uid: 0, gid: 0, mode: lstatSync(link).mode });
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    // stx_mnt_id is the id mountinfo lists for the mount the path reaches.
    expect(statxAt(area, enc.outOffsets[sProc]!).mountId).toBe(mountIdAt("self", "/proc"));

    expect(stepResult(enc, area, sMissing)).toEqual({ ret: -1, err: ENOENT, aux: 0 });
    // An output area smaller than struct statx is refused before the syscall.
    expect(stepResult(enc, area, sShort)).toEqual({ ret: -1, err: EINVAL, aux: 0 });
    // From a user namespace that maps nothing, every owner is the overflow id.
    expect(statxAt(area, enc.outOffsets[sUnmapped]!)).toMatchObject({ uid: 65534, gid: 65534 });
  });

  it("openPath + setnsFd: namespaces opened first, joined by fd, mount namespace then user namespace", async () => {
    const mnt = await mountNsSleeper();
    const user = await userNsSleeper();
    expect(lstatSync(dir).mode & 0o7777).toBe(0o700);
    const pb = new ProgramBuilder();
    const a = pb.spawn("joiner");
    const oMnt = pb.add(a, Op.openPath, "opening the mount namespace", {
      data: cstr(`/proc/${mnt}/ns/mnt`),
      fdslot: 2,
      flags: REQUIRED,
    });
    pb.add(a, Op.openPath, "opening the user namespace", {
      data: cstr(`/proc/${user}/ns/user`),
      fdslot: 1,
      flags: REQUIRED,
    });
    const jMnt = pb.add(a, Op.setnsFd, "joining the mount namespace", {
      fdslot: 2,
      arg0: CLONE_NEWNS,
      flags: REQUIRED,
    });
    const jUser = pb.add(a, Op.setnsFd, "joining the user namespace", {
      fdslot: 1,
      arg0: CLONE_NEWUSER,
      flags: REQUIRED,
    });
    const sDir = pb.add(a, Op.statPath, "stat the tmpfs root", { data: cstr(dir), outCap: STATX });
    const sFile = pb.add(a, Op.statPath, "stat a file of an unmapped owner", {
      data: cstr(join(dir, "f")),
      outCap: STATX,
    });
    const map = pb.add(a, Op.readPath, "own uid_map", { data: cstr("/proc/self/uid_map"), outCap: 128 });
    const { enc, area } = await run(pb);
    expect(programStatus(area)).toMatchObject({ status: Status.done });
    expect(stepResult(enc, area, oMnt).ret).toBeGreaterThan(2);
    expect(stepResult(enc, area, jMnt)).toEqual({ ret: 0, err: 0, aux: 0 });
    expect(stepResult(enc, area, jUser)).toEqual({ ret: 0, err: 0, aux: 0 });
    // The tmpfs only exists in the joined mount namespace; its owner 100007:100008 reads as 7:8 there.
    expect(statxAt(area, enc.outOffsets[sDir]!)).toEqual({
      uid: 7,
      gid: 8,
      mode: 0o40715,
      mountId: mountIdAt(mnt, dir),
    });
    expect(statxAt(area, enc.outOffsets[sFile]!)).toMatchObject({ uid: 65534, gid: 65534 });
    expect(stepText(enc, area, map)).toBe(`${["0", "100000", "65536"].map((n) => n.padStart(10)).join(" ")}\n`);
  });

  it("setnsFd: EBADF on an empty slot, the kernel's EINVAL for the wrong type; the slot is closed either way", async () => {
    const mnt = await mountNsSleeper();
    const user = await userNsSleeper();
    const pb = new ProgramBuilder();
    const a = pb.spawn("joiner");
    const empty = pb.add(a, Op.setnsFd, "slot never opened", { fdslot: 3, arg0: CLONE_NEWNS });
    pb.add(a, Op.openPath, "user namespace into slot 1", { data: cstr(`/proc/${user}/ns/user`), fdslot: 1 });
    // A second open into the same slot replaces (and closes) the first fd.
    pb.add(a, Op.openPath, "mount namespace into slot 1", { data: cstr(`/proc/${mnt}/ns/mnt`), fdslot: 1 });
    const wrong = pb.add(a, Op.setnsFd, "a mount namespace as a user namespace", { fdslot: 1, arg0: CLONE_NEWUSER });
    const again = pb.add(a, Op.setnsFd, "slot 1 after the failed join", { fdslot: 1, arg0: CLONE_NEWNS });
    const missing = pb.add(a, Op.openPath, "a path that does not exist", { data: cstr(join(dir, "none")), fdslot: 4 });
    const afterMissing = pb.add(a, Op.setnsFd, "slot 4 after the failed open", { fdslot: 4, arg0: 0 });
    pb.add(a, Op.openPath, "mount namespace into slot 5", { data: cstr(`/proc/${mnt}/ns/mnt`), fdslot: 5 });
    const anyType = pb.add(a, Op.setnsFd, "arg0 0: any namespace type", { fdslot: 5, arg0: 0 });
    const sDir = pb.add(a, Op.statPath, "stat the tmpfs root", { data: cstr(dir), outCap: STATX });
    const { enc, area } = await run(pb);
    expect(programStatus(area).status).toBe(Status.done);
    expect(stepResult(enc, area, empty)).toEqual({ ret: -1, err: EBADF, aux: 0 });
    expect(stepResult(enc, area, wrong)).toEqual({ ret: -1, err: EINVAL, aux: 0 });
    expect(stepResult(enc, area, again)).toEqual({ ret: -1, err: EBADF, aux: 0 });
    expect(stepResult(enc, area, missing)).toEqual({ ret: -1, err: ENOENT, aux: 0 });
    expect(stepResult(enc, area, afterMissing)).toEqual({ ret: -1, err: EBADF, aux: 0 });
    expect(stepResult(enc, area, anyType)).toEqual({ ret: 0, err: 0, aux: 0 });
    expect(statxAt(area, enc.outOffsets[sDir]!)).toMatchObject({ uid: 100007, gid: 100008, mode: 0o40715 });
  });

  it("a required setnsFd that fails aborts the case with its step and errno", async () => {
    const pb = new ProgramBuilder();
    const a = pb.spawn("joiner");
    const j = pb.add(a, Op.setnsFd, "joining nothing", { fdslot: 0, arg0: CLONE_NEWUSER, flags: REQUIRED });
    const after = pb.add(a, Op.statPath, "never runs", { data: cstr("/"), outCap: STATX });
    const { enc, area } = await run(pb);
    expect(programStatus(area)).toEqual({ status: Status.setupAbort, abortStep: j, abortErr: EBADF });
    expect(enc.labels[j]).toBe("joining nothing");
    expect(stepResult(enc, area, after)).toEqual({ ret: 0, err: 0, aux: 0 });
  });

  it("refuses, before running, namespace ops in the worker and paths that are not NUL-terminated", async () => {
    const step = (agent: number, op: number, extra: Partial<StepSpec> = {}): StepSpec => ({
      agent,
      op,
      flags: 0,
      fdslot: 0,
      target: 0,
      file: 0,
      arg0: 0,
      capmask: 0n,
      data: undefined,
      outCap: 0,
      label: "",
      ...extra,
    });
    const spawn1 = step(0, Op.spawn, { target: 1 });
    const refused = (steps: StepSpec[]) => runPrograms([encodeSteps(steps, 1000)]);
    await expect(refused([step(0, Op.openPath, { data: cstr("/") })])).rejects.toThrow(
      /operation not allowed in the worker at step 0/,
    );
    await expect(refused([step(0, Op.setnsFd, { arg0: CLONE_NEWNS })])).rejects.toThrow(
      /operation not allowed in the worker at step 0/,
    );
    for (const op of [Op.statPath, Op.openPath])
      for (const data of [Buffer.from("/tmp"), Buffer.from("\0"), undefined])
        await expect(refused([spawn1, step(1, op, { data, outCap: STATX })])).rejects.toThrow(
          /path must be NUL-terminated at step 1/,
        );
    // statPath changes nothing, so the worker may run it.
    const ok = encodeSteps([step(0, Op.statPath, { data: cstr("/"), outCap: STATX })], 1000);
    const [area] = await runPrograms([ok]);
    expect(stepResult(ok, area!, 0)).toEqual({ ret: STATX, err: 0, aux: 0 });
    expect(statxAt(area!, ok.outOffsets[0]!).mountId).toBe(mountIdAt("self", "/"));
  });
});
