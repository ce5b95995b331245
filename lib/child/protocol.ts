/**
 * The protocols between TypeScript and the native child engines, defined once.
 *
 * Each table below is the only place an op number, an argument slot, a record
 * layout or a syscall name for error reports is written down. The TypeScript
 * encoders (lib/child/steps.ts, lib/verify/program.ts, lib/mounts/cases.ts)
 * read them directly; the C++ engines read native/child/protocol.h, which
 * scripts/gen-child-protocol.mjs generates from this file
 * (lib/child/protocol-header.ts renders it). test/unit/child-protocol.test.ts
 * fails when the committed header differs from what this file renders, and
 * when a C++ engine has no case for an op.
 *
 * How to add a step the spawn child runs before execve:
 *  1. Add a row to {@link SPAWN_OPS}: the next free number, the syscall that
 *     errors name, and which ChildStep fields go in which slot (a, b: numbers;
 *     s, s2: strings; gids: a number list, passed as offset and count in a, b).
 *  2. `npm run gen:protocol` rewrites native/child/protocol.h (enum constant
 *     `k` + the op name capitalised, e.g. kAttachMount).
 *  3. Write its `case` in RunSteps (native/child/run.cc), with raw syscalls
 *     only (native/child/sys.h); shared pieces go in native/child/ops.h.
 *  4. Add its variant to `ChildStep` (lib/child/steps.ts) and the option that
 *     emits it (spawn, sandbox); `explain()` in steps.ts may word its errnos.
 *
 * @internal
 * @packageDocumentation
 */

/**
 * A slot of a spawn step record: the numbers `a` and `b`, the strings `s` and `s2`, a gid list (`a` offset, `b`
 * count), or `blob`: bytes (a Uint8Array, NULs allowed: fs specs, BPF programs) that the C++ side reads as s2 with
 * its length; they travel in spawnStart's blobs array, named by an s2 index of -2 - k.
 */
export type SpawnSlot = "a" | "b" | "s" | "s2" | "gids" | "blob";

/** One spawn op: its number, the syscall errors report, and which step field fills which slot. */
export interface SpawnOpSpec {
  readonly op: number;
  readonly syscall: string;
  readonly args: Readonly<Partial<Record<SpawnSlot, string>>>;
  /** What the op does, for the C++ header. */
  readonly doc: string;
}

/**
 * The spawn child's ops (native/child/run.cc RunSteps). Each step travels as
 * five numbers: op, a, b, s (index into the strings, or -1), s2 (same).
 */
export const SPAWN_OPS = {
  wait: {
    op: 1,
    syscall: "read",
    args: { a: "notify" },
    doc: "a: 1 = tell the parent first (READY record); then block on the sync pipe",
  },
  join: { op: 2, syscall: "setns", args: { a: "fd", b: "nstype" }, doc: "setns(a, b)" },
  unshare: { op: 3, syscall: "unshare", args: { a: "flags" }, doc: "unshare(a)" },
  chdir: { op: 4, syscall: "chdir", args: { s: "path" }, doc: "chdir(s)" },
  setgroups: { op: 5, syscall: "setgroups", args: { gids: "groups" }, doc: "setgroups(b, gids + a)" },
  setgid: { op: 6, syscall: "setresgid", args: { a: "gid" }, doc: "setresgid(a, a, a)" },
  setuid: { op: 7, syscall: "setresuid", args: { a: "uid" }, doc: "setresuid(a, a, a)" },
  parentDeathSignal: {
    op: 8,
    syscall: "prctl",
    args: { a: "signal", b: "viaErrorPipe" },
    doc: "PR_SET_PDEATHSIG a; b: 1 = check the parent through the error pipe, not getppid",
  },
  setsid: { op: 9, syscall: "setsid", args: {}, doc: "setsid()" },
  stdio: { op: 10, syscall: "dup3", args: {}, doc: "apply fdSrc, then CLOEXEC on everything above" },
  attachMount: { op: 11, syscall: "move_mount", args: { a: "fd", s: "target" }, doc: 'move_mount(a, "", AT_FDCWD, s)' },
  writeFile: { op: 12, syscall: "write", args: { s: "path", s2: "data" }, doc: "open(s, O_WRONLY), one write of s2" },
  propagation: { op: 13, syscall: "mount", args: { a: "flags" }, doc: "mount(none, /, 0, a): propagation of the tree" },
  dumpable: { op: 14, syscall: "prctl", args: { a: "value" }, doc: "PR_SET_DUMPABLE a" },
  fork: {
    op: 15,
    syscall: "clone3",
    args: {},
    doc: "the later steps run in a new process (CLONE_VM|CLONE_PARENT); this one exits 0",
  },
  // The sandbox's steps (built by lib/sandbox/prepare.ts, carried out by native/child/sandbox.cc). Their errors
  // are -(errno | stage << 12): the step's `error` hook decodes them. `syscall` here is the default name only.
  sbBase: {
    op: 16,
    syscall: "mount",
    args: { a: "a" },
    doc: "the base tmpfs, pivot into it, the new root at /newroot; a: 1 stacked (no base, the root bind over /)",
  },
  sbFs: {
    op: 17,
    syscall: "mount",
    args: { a: "a", b: "b", s: "s", blob: "data" },
    doc: "a: subop | flags << 8 | mode << 16, b: fd/attrs, s: dest, s2: source/spec/data",
  },
  sbPivot: { op: 18, syscall: "pivot_root", args: {}, doc: "the new root becomes /, the old one is detached" },
  sbHostname: { op: 19, syscall: "sethostname", args: { blob: "data" }, doc: "sethostname(s2)" },
  sbKeepCaps: { op: 20, syscall: "prctl", args: {}, doc: "PR_SET_KEEPCAPS before a uid change" },
  sbCaps: {
    op: 21,
    syscall: "capset",
    args: { a: "a", b: "b" },
    doc: "a: capabilities kept (bit mask), b: cap_last_cap | 1 << 16 to cut a to the permitted set",
  },
  sbNoNewPrivs: { op: 22, syscall: "prctl", args: {}, doc: "PR_SET_NO_NEW_PRIVS" },
  sbSeccomp: { op: 23, syscall: "seccomp", args: { blob: "data" }, doc: "s2: struct sock_filter[]" },
  sbLoopback: { op: 24, syscall: "ioctl", args: {}, doc: "bring up lo" },
  sbDisableUserns: {
    op: 25,
    syscall: "unshare",
    args: { a: "a", b: "b" },
    doc: "max_user_namespaces 1, then a nested user namespace mapping a/b (-1: same) to the current ids",
  },
  sbReaper: {
    op: 26,
    syscall: "clone",
    args: { b: "b" },
    doc: "this process stays as the reaping pid 1 (b: init binary fd, or -1), the rest runs in its child",
  },
  execSearch: {
    op: 27,
    syscall: "execve",
    args: { blob: "data" },
    doc: "s2: candidate paths, NUL-separated: execve each until one is not ENOENT",
  },
  closeFd: {
    op: 28,
    syscall: "close",
    args: { a: "fd" },
    doc: "close(a) in the child's own fd table (EBADF ignored): an fd of the parent the program must not hold",
  },
} as const satisfies Record<string, SpawnOpSpec>;

/** Name of a spawn op. */
export type SpawnOpName = keyof typeof SPAWN_OPS;

/** One field of a fixed-layout record shared with C++ (little-endian, packed as listed; `pad` fields are zero). */
export interface RecordField {
  readonly name: string;
  readonly type: "u8" | "u16" | "u32" | "i32" | "u64" | "i64";
  readonly doc?: string;
}

/** The verify runner's ops (native/runner.cc RunStep); one byte in a step record. */
export const RUNNER_OPS = {
  setgroupsEmpty: { op: 1, doc: "setgroups(0, NULL)" },
  setresgid: { op: 2, doc: "setresgid(arg0 x3)" },
  setresuid: { op: 3, doc: "setresuid(arg0 x3)" },
  capsDrop: { op: 4, doc: "drop capmask from every set (CAPS_ALL: all)" },
  dumpable: { op: 5, doc: "PR_SET_DUMPABLE 1" },
  unshareUser: { op: 6, doc: "unshare(CLONE_NEWUSER)" },
  setnsUser: { op: 7, doc: "setns(open(/proc/<target>/ns/user), CLONE_NEWUSER)" },
  open: { op: 8, doc: "open /proc/<target>/<file> into fdslot" },
  write: { op: 9, doc: "write data to fdslot" },
  pwrite0: { op: 10, doc: "pwrite data at 0 to fdslot" },
  close: { op: 11, doc: "close fdslot" },
  read: { op: 12, doc: "read /proc/<target>/<file> into the output area" },
  writeFile: { op: 13, doc: "open /proc/<target>/<file>, write data, close" },
  giveFd: { op: 14, doc: "send fdslot to the zygote with the reply" },
  takeFd: { op: 15, doc: "take the fd sent with the command into fdslot" },
  spawn: { op: 16, doc: "fork agent <target>" },
  setnsPath: { op: 17, doc: "setns(open(data), CLONE_NEWUSER)" },
  readPath: { op: 18, doc: "read the file at the path in data" },
  statPath: {
    op: 19,
    doc: "statx(data, AT_SYMLINK_NOFOLLOW) into the output (outCap >= sizeof(struct statx), else EINVAL): ids as this process's user namespace sees them",
  },
  openPath: {
    op: 20,
    doc: "open(data, O_RDONLY) into fdslot: a namespace file, kept to join after /proc paths stop resolving",
  },
  setnsFd: { op: 21, doc: "setns(fdslot, arg0), then close the slot (EBADF if empty)" },
} as const satisfies Record<string, { op: number; doc: string }>;

/** The verify runner's case header (32 bytes), then `nsteps` step records, then the data. */
export const RUNNER_CASE_HEADER: readonly RecordField[] = [
  { name: "size", type: "u32", doc: "whole case, header + steps + data" },
  { name: "nsteps", type: "u16" },
  { name: "nagents", type: "u8", doc: "including W as agent 0" },
  { name: "pad0", type: "u8" },
  { name: "timeoutMs", type: "u32" },
  { name: "resultOff", type: "u32", doc: "absolute offset of this case's result area" },
  { name: "resultSize", type: "u32" },
  { name: "dataOff", type: "u32", doc: "relative to the case start" },
  { name: "dataLen", type: "u32" },
  { name: "pad1", type: "u32" },
];

/** The verify runner's step record (48 bytes). */
export const RUNNER_STEP: readonly RecordField[] = [
  { name: "agent", type: "u8" },
  { name: "op", type: "u8" },
  { name: "flags", type: "u8" },
  { name: "fdslot", type: "u8" },
  { name: "target", type: "u8", doc: "agent index whose pid names /proc/<pid>, or kTargetSelf" },
  { name: "file", type: "u8" },
  { name: "pad0", type: "u16" },
  { name: "arg0", type: "i32" },
  { name: "arg1", type: "i32" },
  { name: "capmask", type: "u64" },
  { name: "dataOff", type: "u32", doc: "into the case data" },
  { name: "dataLen", type: "u32" },
  { name: "resOff", type: "u32", doc: "into the case result area: a 16-byte result record" },
  { name: "outOff", type: "u32", doc: "into the case result area: read output" },
  { name: "outCap", type: "u32" },
  { name: "pad1", type: "u32" },
];

/** The verify runner's other constants. */
export const RUNNER = {
  /** Result record {i64 ret; i32 err; i32 aux} per step. */
  resultSize: 16,
  /** Case status record {i32 status; i32 abortStep; i32 abortErr; pad} at the start of the result area. */
  statusSize: 16,
  /** Processes per case, agent 0 included: room for 33 nested parents + creator, writer, opener + W. */
  maxAgents: 40,
  maxFdSlots: 8,
  /** `target` value meaning /proc/self. */
  targetSelf: 0xff,
  /** Step flags. */
  flags: { required: 1, capsAll: 2 },
  /** Case status codes. */
  status: { done: 1, setupAbort: 2, timeout: 3, agentLost: 4 },
  /** Files under /proc/PID, by index (`file`). */
  files: ["uid_map", "gid_map", "projid_map", "setgroups", "ns/user"],
} as const;

/**
 * The mount helper fsOpAs (native/mount.cc): which credentials the child
 * takes, which operation it runs, and the step numbers of its error record
 * ({i32 step; i32 err}) with their names.
 */
export const FS_OP = {
  credMode: { root: 0, setresIds: 1, fsIds: 2 },
  op: { create: 0, mkdir: 1, chown: 2, chmod: 3 },
  step: { setgroups: 1, setgid: 3, setuid: 4, capset: 5, op: 10 },
} as const;

/** Byte size of a record field type. */
export function fieldSize(t: RecordField["type"]): number {
  return t === "u8" ? 1 : t === "u16" ? 2 : t === "u32" || t === "i32" ? 4 : 8;
}

/** Byte offsets of a record's fields, by name, and its total size. */
export function layout(fields: readonly RecordField[]): { offsets: Readonly<Record<string, number>>; size: number } {
  const offsets: Record<string, number> = {};
  let o = 0;
  for (const f of fields) {
    const n = fieldSize(f.type);
    if (o % n !== 0) throw new Error(`protocol: field ${f.name} is not aligned`);
    offsets[f.name] = o;
    o += n;
  }
  return { offsets, size: o };
}
