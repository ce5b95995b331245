// GENERATED from lib/child/protocol.ts by scripts/gen-child-protocol.mjs
// (npm run gen:protocol). Do not edit: change the table there and regenerate;
// test/unit/child-protocol.test.ts fails while the two differ.
// Plain C++: no N-API, so the child side can include it.
#pragma once
#include <cstddef>
#include <cstdint>

namespace userns {
namespace protocol {

// ---- spawn child (native/child/run.cc): five numbers per step, op a b s s2
namespace spawn {
enum SpawnOp : int32_t {
  kWait = 1,  // a: 1 = tell the parent first (READY record); then block on the sync pipe
  kJoin = 2,  // setns(a, b)
  kUnshare = 3,  // unshare(a)
  kChdir = 4,  // chdir(s)
  kSetgroups = 5,  // setgroups(b, gids + a)
  kSetgid = 6,  // setresgid(a, a, a)
  kSetuid = 7,  // setresuid(a, a, a)
  kParentDeathSignal = 8,  // PR_SET_PDEATHSIG a; b: 1 = check the parent through the error pipe, not getppid
  kSetsid = 9,  // setsid()
  kStdio = 10,  // apply fdSrc, then CLOEXEC on everything above
  kAttachMount = 11,  // move_mount(a, "", AT_FDCWD, s)
  kWriteFile = 12,  // open(s, O_WRONLY), one write of s2
  kPropagation = 13,  // mount(none, /, 0, a): propagation of the tree
  kDumpable = 14,  // PR_SET_DUMPABLE a
  kFork = 15,  // the later steps run in a new process (CLONE_VM|CLONE_PARENT); this one exits 0
  kSbBase = 16,  // the base tmpfs, pivot into it, the new root at /newroot; a: 1 stacked (no base, the root bind over /)
  kSbFs = 17,  // a: subop | flags << 8 | mode << 16, b: fd/attrs, s: dest, s2: source/spec/data
  kSbPivot = 18,  // the new root becomes /, the old one is detached
  kSbHostname = 19,  // sethostname(s2)
  kSbKeepCaps = 20,  // PR_SET_KEEPCAPS before a uid change
  kSbCaps = 21,  // a: capabilities kept (bit mask), b: cap_last_cap | 1 << 16 to cut a to the permitted set
  kSbNoNewPrivs = 22,  // PR_SET_NO_NEW_PRIVS
  kSbSeccomp = 23,  // s2: struct sock_filter[]
  kSbLoopback = 24,  // bring up lo
  kSbDisableUserns = 25,  // max_user_namespaces 1, then a nested user namespace mapping a/b (-1: same) to the current ids
  kSbReaper = 26,  // this process stays as the reaping pid 1 (b: init binary fd, or -1), the rest runs in its child
  kExecSearch = 27,  // s2: candidate paths, NUL-separated: execve each until one is not ENOENT
  kCloseFd = 28,  // close(a) in the child's own fd table (EBADF ignored): an fd of the parent the program must not hold
};
constexpr int32_t kSpawnOpMax = 28;
// Slots an op reads: 1 a, 2 b, 4 s (required), 8 s2 (required: a string or a blob), 16 gids (a offset, b count).
constexpr uint8_t SpawnOpSlots(int32_t op) {
  switch (op) {
    case kWait: return 1;
    case kJoin: return 3;
    case kUnshare: return 1;
    case kChdir: return 4;
    case kSetgroups: return 16;
    case kSetgid: return 1;
    case kSetuid: return 1;
    case kParentDeathSignal: return 3;
    case kSetsid: return 0;
    case kStdio: return 0;
    case kAttachMount: return 5;
    case kWriteFile: return 12;
    case kPropagation: return 1;
    case kDumpable: return 1;
    case kFork: return 0;
    case kSbBase: return 1;
    case kSbFs: return 15;
    case kSbPivot: return 0;
    case kSbHostname: return 8;
    case kSbKeepCaps: return 0;
    case kSbCaps: return 3;
    case kSbNoNewPrivs: return 0;
    case kSbSeccomp: return 8;
    case kSbLoopback: return 0;
    case kSbDisableUserns: return 3;
    case kSbReaper: return 2;
    case kExecSearch: return 8;
    case kCloseFd: return 1;
    default: return 0;
  }
}
constexpr bool SpawnOpKnown(int32_t op) {
  switch (op) {
    case kWait:
    case kJoin:
    case kUnshare:
    case kChdir:
    case kSetgroups:
    case kSetgid:
    case kSetuid:
    case kParentDeathSignal:
    case kSetsid:
    case kStdio:
    case kAttachMount:
    case kWriteFile:
    case kPropagation:
    case kDumpable:
    case kFork:
    case kSbBase:
    case kSbFs:
    case kSbPivot:
    case kSbHostname:
    case kSbKeepCaps:
    case kSbCaps:
    case kSbNoNewPrivs:
    case kSbSeccomp:
    case kSbLoopback:
    case kSbDisableUserns:
    case kSbReaper:
    case kExecSearch:
    case kCloseFd:
      return true;
    default:
      return false;
  }
}
constexpr uint8_t kSlotA = 1, kSlotB = 2, kSlotS = 4, kSlotS2 = 8, kSlotGids = 16;
}  // namespace spawn

// ---- verify runner (native/runner.cc)
namespace runner {
enum RunnerOp : uint8_t {
  kSetgroupsEmpty = 1,  // setgroups(0, NULL)
  kSetresgid = 2,  // setresgid(arg0 x3)
  kSetresuid = 3,  // setresuid(arg0 x3)
  kCapsDrop = 4,  // drop capmask from every set (CAPS_ALL: all)
  kDumpable = 5,  // PR_SET_DUMPABLE 1
  kUnshareUser = 6,  // unshare(CLONE_NEWUSER)
  kSetnsUser = 7,  // setns(open(/proc/<target>/ns/user), CLONE_NEWUSER)
  kOpen = 8,  // open /proc/<target>/<file> into fdslot
  kWrite = 9,  // write data to fdslot
  kPwrite0 = 10,  // pwrite data at 0 to fdslot
  kClose = 11,  // close fdslot
  kRead = 12,  // read /proc/<target>/<file> into the output area
  kWriteFile = 13,  // open /proc/<target>/<file>, write data, close
  kGiveFd = 14,  // send fdslot to the zygote with the reply
  kTakeFd = 15,  // take the fd sent with the command into fdslot
  kSpawn = 16,  // fork agent <target>
  kSetnsPath = 17,  // setns(open(data), CLONE_NEWUSER)
  kReadPath = 18,  // read the file at the path in data
  kStatPath = 19,  // statx(data, AT_SYMLINK_NOFOLLOW) into the output (outCap >= sizeof(struct statx), else EINVAL): ids as this process's user namespace sees them
  kOpenPath = 20,  // open(data, O_RDONLY) into fdslot: a namespace file, kept to join after /proc paths stop resolving
  kSetnsFd = 21,  // setns(fdslot, arg0), then close the slot (EBADF if empty)
  kRunnerOpMax = 21,
};
struct CaseHeader {
  uint32_t size;  // whole case, header + steps + data
  uint16_t nsteps;
  uint8_t nagents;  // including W as agent 0
  uint8_t pad0;
  uint32_t timeoutMs;
  uint32_t resultOff;  // absolute offset of this case's result area
  uint32_t resultSize;
  uint32_t dataOff;  // relative to the case start
  uint32_t dataLen;
  uint32_t pad1;
};
static_assert(sizeof(CaseHeader) == 32, "CaseHeader layout");
static_assert(offsetof(CaseHeader, size) == 0, "CaseHeader.size");
static_assert(offsetof(CaseHeader, nsteps) == 4, "CaseHeader.nsteps");
static_assert(offsetof(CaseHeader, nagents) == 6, "CaseHeader.nagents");
static_assert(offsetof(CaseHeader, pad0) == 7, "CaseHeader.pad0");
static_assert(offsetof(CaseHeader, timeoutMs) == 8, "CaseHeader.timeoutMs");
static_assert(offsetof(CaseHeader, resultOff) == 12, "CaseHeader.resultOff");
static_assert(offsetof(CaseHeader, resultSize) == 16, "CaseHeader.resultSize");
static_assert(offsetof(CaseHeader, dataOff) == 20, "CaseHeader.dataOff");
static_assert(offsetof(CaseHeader, dataLen) == 24, "CaseHeader.dataLen");
static_assert(offsetof(CaseHeader, pad1) == 28, "CaseHeader.pad1");
struct RunnerStep {
  uint8_t agent;
  uint8_t op;
  uint8_t flags;
  uint8_t fdslot;
  uint8_t target;  // agent index whose pid names /proc/<pid>, or kTargetSelf
  uint8_t file;
  uint16_t pad0;
  int32_t arg0;
  int32_t arg1;
  uint64_t capmask;
  uint32_t dataOff;  // into the case data
  uint32_t dataLen;
  uint32_t resOff;  // into the case result area: a 16-byte result record
  uint32_t outOff;  // into the case result area: read output
  uint32_t outCap;
  uint32_t pad1;
};
static_assert(sizeof(RunnerStep) == 48, "RunnerStep layout");
static_assert(offsetof(RunnerStep, agent) == 0, "RunnerStep.agent");
static_assert(offsetof(RunnerStep, op) == 1, "RunnerStep.op");
static_assert(offsetof(RunnerStep, flags) == 2, "RunnerStep.flags");
static_assert(offsetof(RunnerStep, fdslot) == 3, "RunnerStep.fdslot");
static_assert(offsetof(RunnerStep, target) == 4, "RunnerStep.target");
static_assert(offsetof(RunnerStep, file) == 5, "RunnerStep.file");
static_assert(offsetof(RunnerStep, pad0) == 6, "RunnerStep.pad0");
static_assert(offsetof(RunnerStep, arg0) == 8, "RunnerStep.arg0");
static_assert(offsetof(RunnerStep, arg1) == 12, "RunnerStep.arg1");
static_assert(offsetof(RunnerStep, capmask) == 16, "RunnerStep.capmask");
static_assert(offsetof(RunnerStep, dataOff) == 24, "RunnerStep.dataOff");
static_assert(offsetof(RunnerStep, dataLen) == 28, "RunnerStep.dataLen");
static_assert(offsetof(RunnerStep, resOff) == 32, "RunnerStep.resOff");
static_assert(offsetof(RunnerStep, outOff) == 36, "RunnerStep.outOff");
static_assert(offsetof(RunnerStep, outCap) == 40, "RunnerStep.outCap");
static_assert(offsetof(RunnerStep, pad1) == 44, "RunnerStep.pad1");
constexpr uint32_t kCaseHeaderSize = 32;
constexpr uint32_t kStepSize = 48;
constexpr uint32_t kResultSize = 16;  // {i64 ret; i32 err; i32 aux}
constexpr uint32_t kCaseStatusSize = 16;
constexpr int kMaxAgents = 40;
constexpr int kMaxFdSlots = 8;
constexpr uint8_t kTargetSelf = 0xff;
enum StepFlags : uint8_t { kRequired = 1, kCapsAll = 2 };
enum Status : int32_t { kDone = 1, kSetupAbort = 2, kTimeout = 3, kAgentLost = 4 };
const char *const kFiles[] = {"uid_map", "gid_map", "projid_map", "setgroups", "ns/user"};
constexpr uint8_t kNumFiles = 5;
}  // namespace runner

// ---- mount helper fsOpAs (native/mount.cc)
namespace fsop {
enum FsCredMode : int32_t { kCredRoot = 0, kCredSetresIds = 1, kCredFsIds = 2 };
enum FsOp : int32_t { kFsCreate = 0, kFsMkdir = 1, kFsChown = 2, kFsChmod = 3 };
enum FsStep : int32_t { kFsStepSetgroups = 1, kFsStepSetgid = 3, kFsStepSetuid = 4, kFsStepCapset = 5, kFsStepOp = 10 };
// The name of an FsStep in results ("" for none).
constexpr const char *FsStepName(int32_t step) {
  switch (step) {
    case 1: return "setgroups";
    case 3: return "setgid";
    case 4: return "setuid";
    case 5: return "capset";
    case 10: return "op";
    default: return "";
  }
}
}  // namespace fsop

}  // namespace protocol
}  // namespace userns
