// spawn's N-API glue: JS arguments into a Child (native/child/child.h, whose
// header comment is the child-side contract), the child started and resumed,
// and the small fd and /proc helpers spawn uses. The child's own code is in
// native/child/run.cc, its parent-side lifecycle in native/child/holder.cc,
// exit watching in native/watch.cc.
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "addon.h"
#include "child/child.h"
#include "watch.h"

namespace userns {
namespace {

using namespace child;  // NOLINT: Child, Step, Record, the op constants and the lifecycle

void FinalizeChild(Napi::Env, Child *c) {
  if (c->state == State::kHeld) KillAndReap(c);
  CloseFd(c->pidfd);
  // A child we could not reap might still read the Child: never free it then.
  if (!c->leaked) delete c;
}

Child *ArgChild(const Napi::CallbackInfo &info, size_t i) {
  if (info.Length() <= i || !info[i].IsExternal()) ThrowUsage(info.Env(), "handle must be a spawn handle");
  return info[i].As<Napi::External<Child>>().Data();
}

// A number as an integer a double holds exactly, or a usage error naming it.
int64_t ExactInt(Napi::Env env, double v, const char *name) {
  if (!std::isfinite(v) || v != std::trunc(v) || std::fabs(v) > 9007199254740992.0)
    ThrowUsage(env, std::string(name) + " must be an integer");
  return static_cast<int64_t>(v);
}

int64_t ArgInt(const Napi::CallbackInfo &info, const Napi::Value &v, const char *name) {
  if (!v.IsNumber()) ThrowUsage(info.Env(), std::string(name) + " must be a number");
  return ExactInt(info.Env(), v.As<Napi::Number>().DoubleValue(), name);
}

std::vector<std::string> ArgStrings(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (info.Length() <= i || !info[i].IsArray()) ThrowUsage(info.Env(), std::string(name) + " must be an array of strings");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<std::string> out;
  out.reserve(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a.Get(k);
    if (!v.IsString()) ThrowUsage(info.Env(), std::string(name) + " must be an array of strings");
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s.find('\0') != std::string::npos)
      ThrowUsage(info.Env(), std::string(name) + " must not contain NUL bytes");
    out.push_back(std::move(s));
  }
  return out;
}

// Marks procFiles' handles: spawnStart takes no other external as its writes.
const napi_type_tag kProcFilesTag = {0x7573657273706f63ULL, 0x66696c6573000001ULL};

// An argument [name, data, ...] of files of /proc/PID: names plain file names.
std::vector<std::string> ArgProcFiles(const Napi::CallbackInfo &info, size_t i, const char *name) {
  std::vector<std::string> files = ArgStrings(info, i, name);
  if (files.size() % 2 != 0) ThrowUsage(info.Env(), std::string(name) + " must be [name, data, ...]");
  for (size_t k = 0; k < files.size(); k += 2)
    if (files[k].empty() || files[k].find('/') != std::string::npos)
      ThrowUsage(info.Env(), std::string(name) + ": names must be plain file names");
  return files;
}

// Opens /proc/PID/NAME and writes data with one write(2), as /proc map files
// demand. Returns 0 or the errno; *opened says whether the open succeeded.
// By path, not relative to an O_PATH fd of /proc/PID: that fd costs an open
// and a close per spawn, and guards nothing here, since the callers write to
// their own children, whose pids cannot be reused before they reap them.
int WriteProcFile(int pid, const std::string &name, const std::string &data, bool *opened) {
  char path[32 + 256];
  if (name.size() > 255) return ENAMETOOLONG;
  ProcPath(path, pid, name.c_str());
  int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
  *opened = fd >= 0;
  if (fd < 0) return errno;
  ssize_t n = write(fd, data.data(), data.size());
  int e = n < 0 ? errno : (static_cast<size_t>(n) != data.size() ? EIO : 0);
  close(fd);
  return e;
}

// Ops that cannot change the child's credentials (see Child::credSteps).
bool CredentialNeutral(int32_t op) {
  return op == kWait || op == kStdio || op == kChdir || op == kSetsid || op == kCloseFd || op == kParentDeathSignal ||
         op == kAttachMount || op == kPropagation;
}

// A reader of spawnStart's numbers: each an integer a double holds exactly.
struct Nums {
  const double *d;
  size_t len;
  size_t at;
  int64_t Next(Napi::Env env, const char *name) {
    if (at >= len) ThrowUsage(env, std::string("nums ends before ") + name);
    return ExactInt(env, d[at++], name);
  }
};

// What spawnStart did after clone3, in out[1] (see spawnStart).
enum StartStatus : int32_t {
  kStartHeld = 0,
  kStartWriteFailed = 1,
  kStartExec = 2,
  kStartPending = 3,
  kStartWatching = 4,
};

// spawnStart(cloneFlags, path, argv, envp, nums, strings, exitMode, blobs,
//            noVm, writes, wait, out[, onExit[, onEvent]])
//   nums: a Float64Array [count, nFd, fdSrc..., nSteps, steps..., nGids,
//   gids...] (count: the numbers after it; the array may be longer): fdSrc
//   entries an fd, -1 (closed) or -2 (/dev/null); five numbers per step,
//   [op, a, b, sIndex, s2Index]: sIndex/s2Index index `strings` or are -1;
//   an s2Index of -2 - k names blobs[k] (binary data, NUL bytes allowed: the
//   sandbox's fs specs and BPF programs); the gids the setgroups steps index.
//   noVm: a fork-like child with its own memory even where CLONE_VM is used,
//   for a child that outlives exec (the sandbox's fork-like reaping pid 1).
//   writes: undefined, [name, data, ...] or a procFiles handle: files of
//     /proc/PID written after clone3 (setgroups, uid_map, gid_map), as
//     writeProcFiles would; the first failure stops there and leaves the
//     child held.
//   wait: after the writes, release the child and block until its next
//     event, as spawnResume would.
//   onExit: with wait, the exit callback to arm on the pidfd meanwhile.
//   onEvent: without wait, after the writes, release the child and watch it
//     from the event loop, as spawnWatch(handle, onEvent) would.
//   out: an Int32Array of 5 for the numbers below.
// The plain spawn is thus one call, with no JS between clone3 and execve.
// Returns the handle, or once the child has exec'd (nothing is left to hold)
// its exit watch or undefined. out[0] the pid; out[1] a StartStatus:
//   held          the child runs its steps, blocked at a first wait if any
//   writeFailed   out[2] index of the write, out[3] 0 open / 1 write, out[4] errno
//   exec          wait, and execve succeeded: out[2] the pidfd. With onExit
//                 (cb(code, signal)) and out[3] 1, a watch of its exit was
//                 armed meanwhile and is returned (pidfdWatchRef takes it; it
//                 owns the pidfd); with out[3] 0 the pidfd is the caller's
//   pending       wait, and something else came (a failed step, a death):
//                 spawnResume(handle, false) reports it; or onEvent, and
//                 nothing could be watched: the child is released, and
//                 spawnResume(handle, false) waits for what comes
//   watching      onEvent: released and watched; onEvent reports
Napi::Value SpawnStart(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto c = std::make_unique<Child>();
  int64_t cloneFlags = ArgInt(info, info[0], "cloneFlags");
  c->path = ArgString(info, 1, "path");
  if (c->path.find('\0') != std::string::npos) ThrowUsage(env, "path must not contain NUL bytes");
  std::vector<std::string> argv = ArgStrings(info, 2, "argv");
  // null: this process's environment as libc holds it (what process.env
  // reads and writes on the main thread), copied here without a JS string
  // per variable, into one block (one allocation, not one per variable).
  std::vector<std::string> envp;
  bool ownEnviron = info.Length() > 3 && info[3].IsNull();
  if (ownEnviron) {
    size_t total = 0, n = 0;
    for (char **e = environ; e != nullptr && *e != nullptr; e++, n++) total += strlen(*e) + 1;
    c->envBlock.resize(total);
    c->envp.reserve(n + 1);
    char *p = c->envBlock.data();
    for (char **e = environ; e != nullptr && *e != nullptr; e++) {
      size_t len = strlen(*e) + 1;
      memcpy(p, *e, len);
      c->envp.push_back(p);
      p += len;
    }
  } else {
    envp = ArgStrings(info, 3, "envp");
  }
  // The numbers, in one Float64Array: [count, nFd, fd..., nSteps, (op, a, b,
  // s, s2)..., nGids, gid...], count the numbers after it. One buffer read
  // instead of an element read and a conversion per number.
  if (info.Length() <= 4 || !info[4].IsTypedArray() ||
      info[4].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    ThrowUsage(env, "nums must be a Float64Array");
  Napi::Float64Array numsArr = info[4].As<Napi::Float64Array>();
  Nums nums{numsArr.Data(), numsArr.ElementLength(), 0};
  int64_t count = nums.Next(env, "count");
  if (count < 0 || static_cast<size_t>(count) > nums.len - 1) ThrowUsage(env, "nums holds fewer numbers than its count");
  nums.len = 1 + static_cast<size_t>(count);
  int64_t nFd = nums.Next(env, "nFd");
  if (nFd < 0 || nFd > kMaxFds) ThrowUsage(env, "too many stdio entries");
  for (int64_t k = 0; k < nFd; k++) {
    int64_t fd = nums.Next(env, "fdSrc[i]");
    if (fd < kDevNull || fd > INT_MAX) ThrowUsage(env, "fdSrc[i] must be an fd, -1 or -2 (/dev/null)");
    c->fdSrc.push_back(static_cast<int>(fd));
  }
  int64_t nSteps = nums.Next(env, "nSteps");
  if (nSteps < 0 || static_cast<size_t>(nSteps) > (nums.len - nums.at) / 5) ThrowUsage(env, "nSteps out of range");
  // The gids first (the setgroups steps are checked against them), then back to the steps.
  size_t stepsAt = nums.at;
  nums.at += 5 * static_cast<size_t>(nSteps);
  int64_t nGids = nums.Next(env, "nGids");
  if (nGids < 0 || static_cast<size_t>(nGids) != nums.len - nums.at) ThrowUsage(env, "nGids does not match the count");
  for (int64_t k = 0; k < nGids; k++) {
    int64_t g = nums.Next(env, "gids[i]");
    if (g < 0 || g > UINT32_MAX) ThrowUsage(env, "gids[i] must be a u32");
    c->gids.push_back(static_cast<gid_t>(g));
  }
  nums.at = stepsAt;
  std::vector<std::string> strings = ArgStrings(info, 5, "strings");
  c->exitMode = info.Length() > 6 && info[6].ToBoolean().Value();
  std::vector<std::string> blobs;
  if (info.Length() > 7 && !info[7].IsUndefined()) {
    if (!info[7].IsArray()) ThrowUsage(env, "blobs must be an array of Uint8Arrays");
    Napi::Array a = info[7].As<Napi::Array>();
    for (uint32_t k = 0; k < a.Length(); k++) {
      Napi::Value v = a.Get(k);
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
        ThrowUsage(env, "blobs must be an array of Uint8Arrays");
      Napi::Uint8Array u = v.As<Napi::Uint8Array>();
      blobs.emplace_back(reinterpret_cast<const char *>(u.Data()), u.ByteLength());
    }
  }
  c->noVm = info.Length() > 8 && info[8].ToBoolean().Value();
  // A list prepared once by procFiles (the same maps are written on every
  // spawn of a program run again and again), or [name, data, ...].
  std::vector<std::string> ownWrites;
  const std::vector<std::string> *writesPtr = &ownWrites;
  if (info.Length() > 9 && info[9].IsExternal()) {
    if (!info[9].As<Napi::Object>().CheckTypeTag(&kProcFilesTag)) ThrowUsage(env, "writes must be a procFiles handle");
    writesPtr = info[9].As<Napi::External<std::vector<std::string>>>().Data();
  } else if (info.Length() > 9 && !info[9].IsUndefined())
    ownWrites = ArgProcFiles(info, 9, "writes");
  const std::vector<std::string> &writes = *writesPtr;
  bool wait = info.Length() > 10 && info[10].ToBoolean().Value();
  if (info.Length() <= 11 || !info[11].IsTypedArray() ||
      info[11].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
      info[11].As<Napi::Int32Array>().ElementLength() < 5)
    ThrowUsage(env, "out must be an Int32Array of 5");
  int32_t *out = info[11].As<Napi::Int32Array>().Data();
  Napi::Function onExit;
  if (info.Length() > 12 && !info[12].IsUndefined()) {
    if (!info[12].IsFunction()) ThrowUsage(env, "onExit must be a function");
    onExit = info[12].As<Napi::Function>();
  }
  Napi::Function onEvent;
  if (info.Length() > 13 && !info[13].IsUndefined()) {
    if (!info[13].IsFunction()) ThrowUsage(env, "onEvent must be a function");
    if (wait) ThrowUsage(env, "onEvent is for a spawnStart that does not wait");
    onEvent = info[13].As<Napi::Function>();
  }

  // Storage first, pointers after: the vector must not move once pointed into.
  size_t nArgv = argv.size(), nEnv = envp.size(), nStrings = strings.size();
  c->storage.reserve(nArgv + nEnv + nStrings + blobs.size());
  for (auto &s : argv) c->storage.push_back(std::move(s));
  for (auto &s : envp) c->storage.push_back(std::move(s));
  for (auto &s : strings) c->storage.push_back(std::move(s));
  for (auto &s : blobs) c->storage.push_back(std::move(s));
  for (size_t k = 0; k < nArgv; k++) c->argv.push_back(c->storage[k].data());
  c->argv.push_back(nullptr);
  // With ownEnviron, envp is empty (nEnv 0): c->envp already points into envBlock.
  for (size_t k = 0; k < nEnv; k++) c->envp.push_back(c->storage[nArgv + k].data());
  c->envp.push_back(nullptr);
  const std::string *str = c->storage.data() + nArgv + nEnv;
  size_t nStr = nStrings;
  const std::string *blob = str + nStrings;
  int64_t nBlob = static_cast<int64_t>(c->storage.size() - nArgv - nEnv - nStrings);
  for (int64_t k = 0; k < nSteps; k++) {
    Step s{};
    s.op = static_cast<int32_t>(nums.Next(env, "step op"));
    s.a = nums.Next(env, "step a");
    s.b = nums.Next(env, "step b");
    int64_t si = nums.Next(env, "step s");
    int64_t s2 = nums.Next(env, "step s2");
    if (si < -1 || si >= static_cast<int64_t>(nStr) || s2 >= static_cast<int64_t>(nStr) || -2 - s2 >= nBlob)
      ThrowUsage(env, "step string index out of range");
    s.s = si >= 0 ? str[si].c_str() : nullptr;
    if (s2 >= 0) {
      s.s2 = str[s2].data();
      s.s2len = str[s2].size();
    } else if (s2 <= -2) {
      s.s2 = blob[-2 - s2].data();
      s.s2len = blob[-2 - s2].size();
    }
    // Which slots an op reads comes from the protocol table (lib/child/protocol.ts).
    uint8_t slots = SpawnOpSlots(s.op);
    if (!SpawnOpKnown(s.op)) ThrowUsage(env, "unknown step op " + std::to_string(s.op));
    if ((slots & kSlotS) && s.s == nullptr) ThrowUsage(env, "step needs a path");
    if ((slots & kSlotS2) && s.s2 == nullptr) ThrowUsage(env, "step needs data");
    if ((slots & kSlotGids) && (s.a < 0 || s.b < 0 || static_cast<size_t>(s.a + s.b) > c->gids.size()))
      ThrowUsage(env, "setgroups step out of range");
    if (s.op == kWait) c->waitsLeft++;
    if (s.op == kSbReaper) {
      if (c->exitMode || c->reaperStep >= 0) ThrowUsage(env, "at most one reaper step, not in exit mode");
      // Without noVm, pid 1 execs the init binary whose fd is in b (the CLONE_VM path only).
      if (!c->noVm && (!USERNS_CLONE_VM || s.b < 0)) ThrowUsage(env, "a reaper step needs noVm or an init fd");
      if (!c->noVm) c->reaperStep = static_cast<int>(c->steps.size());
    }
    if (s.op == kFork) {
      if (c->forkStep >= 0) ThrowUsage(env, "only one fork step");
      if (c->noVm) ThrowUsage(env, "a fork step cannot run in a noVm child");
      if (c->exitMode) ThrowUsage(env, "a fork step cannot run in exit mode");
      if (!USERNS_CLONE_VM) ThrowUsage(env, "a fork step needs the CLONE_VM spawn path (x86_64)");
      c->forkStep = static_cast<int>(c->steps.size());
    }
    c->steps.push_back(s);
  }
  c->credSteps = false;
  for (const Step &st : c->steps) c->credSteps = c->credSteps || !CredentialNeutral(st.op);
  if ((wait || !onEvent.IsEmpty()) && (c->exitMode || c->forkStep >= 0))
    ThrowUsage(env, "wait and onEvent need a child that execs without a fork step");

  const char *failedCall = nullptr;
  const char *what = nullptr;
  int e = Start(c.get(), static_cast<uint64_t>(cloneFlags), &failedCall, &what);
  if (e != 0) ThrowErrno(env, e, failedCall, what);
  out[0] = c->pid;
  out[1] = kStartHeld;
  for (size_t k = 0; k < writes.size(); k += 2) {
    bool opened = true;
    int we = WriteProcFile(c->pid, writes[k], writes[k + 1], &opened);
    if (we != 0) {
      out[1] = kStartWriteFailed;
      out[2] = static_cast<int32_t>(k / 2);
      out[3] = opened ? 1 : 0;
      out[4] = we;
      return Napi::External<Child>::New(env, c.release(), FinalizeChild);
    }
  }
  if (wait) {
    SendRelease(c.get());
    // Armed while the child runs its last steps and execs, on the other CPU
    // if there is one: this thread would only wait meanwhile.
    ExitWatch *exitWatch = onExit.IsEmpty() ? nullptr : ArmExitWatch(env, c->pidfd, onExit);
    int pidfd = -1;
    if (TakeExec(c.get(), &pidfd)) {
      out[1] = kStartExec;
      out[2] = pidfd;
      out[3] = exitWatch != nullptr ? 1 : 0;
      return exitWatch != nullptr ? AdoptExitWatch(env, exitWatch) : env.Undefined();
    }
    if (exitWatch != nullptr) DropExitWatch(exitWatch);
    out[1] = kStartPending;
  }
  Napi::Value handle = Napi::External<Child>::New(env, c.get(), FinalizeChild);
  Child *held = c.release();
  if (!onEvent.IsEmpty()) out[1] = WatchChild(env, held, handle, onEvent) ? kStartWatching : kStartPending;
  return handle;
}

// A pidfd for the program made by the kFork step, once the first child is
// reaped. pidfd_open by pid is race-free here: the program is our child and
// nobody has waited for it. On failure the program is killed and reaped.
int ProgramPidfd(Napi::Env env, Child *c) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, c->grandPid, 0));
  if (pidfd < 0) {
    int pe = errno;
    int e = ReapGrandchild(c, true);
    Release(c, e != 0);
    ThrowErrno(env, pe, "pidfd_open", "opening a pidfd for the program");
  }
  return pidfd;
}

// EOF after a kFork step: the first child has exited (it held a write end)
// and the program has exec'd, or died. Reaps the first child, then hands
// over a pidfd for the program. pidfd_open by pid is race-free here: the
// program is our child and nobody has waited for it.
Napi::Value ForkedExec(Napi::Env env, Child *c, Napi::Object out) {
  siginfo_t si;
  int e = Reap(c, &si);
  CloseFd(c->pidfd);
  if (e != 0) {
    Release(c, true);
    ThrowErrno(env, e, "waitid", "reaping the intermediate child");
  }
  if (c->grandPid <= 0) {
    // It died (a signal) before it created the program.
    Release(c);
    out.Set("kind", "failed");
    out.Set("step", c->forkStep);
    out.Set("errno", ECHILD);
    return out;
  }
  int pidfd = ProgramPidfd(env, c);
  c->grandDone = true;
  Release(c);
  out.Set("kind", "exec");
  out.Set("pidfd", pidfd);
  out.Set("pid", c->grandPid);
  return out;
}

// READY from a wait after the kFork step: the program's process waits at
// it, so the first child is past its clone3 and exits (grandPid is final
// once it is reaped). The program becomes the held child: its pidfd
// replaces the first child's and grandDone is set, so that release, abort
// and EOF then go as for a child without fork step.
Napi::Value ForkedReady(Napi::Env env, Child *c, Napi::Object out) {
  siginfo_t si;
  int e = Reap(c, &si);
  CloseFd(c->pidfd);
  if (e != 0 || c->grandPid <= 0) {
    e = e != 0 ? e : ECHILD;
    int ke = ReapGrandchild(c, true);
    Release(c, ke != 0);
    ThrowErrno(env, e, "waitid", "reaping the intermediate child");
  }
  int pidfd = ProgramPidfd(env, c);
  c->pidfd = pidfd;
  c->pid = c->grandPid;
  c->grandDone = true;
  out.Set("pid", c->pid);
  return out;
}

// spawnResume(handle) -> one of
//   {kind: "ready", step, pid}            the child told us it reached a wait
//                                         (pid: the waiting process's; after
//                                         a fork step, the program's)
//   {kind: "failed", step, errno}         a step failed; the child is reaped
//   {kind: "exec", pidfd, pid}            execve succeeded; the pidfd is yours
//                                         (after a fork step: the program's)
//   {kind: "exit", code, signal}          exit-mode child finished and is reaped
Napi::Value Outcome(Napi::Env env, Child *c, const Record &rec, size_t got);

// Releases the child from the wait it is blocked at, if any, then blocks
// until the next event. The waits are short: the child only runs its own
// steps (setns, unshare, chdir, execve ...).
Napi::Value SpawnResume(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Child *c = ArgChild(info, 0);
  if (c->state != State::kHeld) ThrowUsage(env, "spawn handle already finished");
  bool release = info.Length() > 1 ? info[1].ToBoolean().Value() : true;
  if (release) SendRelease(c);
  Record rec;
  size_t got = ReadNext(c, &rec);
  return Outcome(env, c, rec, got);
}

// What the child did next, as spawnResume reports it: rec holds `got` bytes.
Napi::Value Outcome(Napi::Env env, Child *c, const Record &rec, size_t got) {
  Napi::Object out = Napi::Object::New(env);
  if (got == sizeof rec && rec.kind == kReady) {
    out.Set("kind", "ready");
    out.Set("step", rec.step);
    // A wait after the fork step is the program's process telling us it waits: the first child has created it
    // and is exiting. Reap that one and hold the program by a pidfd from here on, as a child without fork step.
    if (c->forkStep >= 0 && rec.step > c->forkStep && !c->grandDone) return ForkedReady(env, c, out);
    out.Set("pid", c->pid);
    return out;
  }
  if (got == sizeof rec && rec.kind == kFail) {
    siginfo_t si;
    int e = Reap(c, &si);
    CloseFd(c->pidfd);
    // A failure in the grandchild: it exits right after its record.
    if (e == 0) e = ReapGrandchild(c, false);
    Release(c, e != 0);
    out.Set("kind", "failed");
    out.Set("step", rec.step);
    out.Set("errno", rec.err);
    return out;
  }
  if (got != 0) {
    // A torn record cannot happen (12 bytes < PIPE_BUF); treat it as a
    // protocol failure and leave nothing behind.
    KillAndReap(c);
    ThrowErrno(env, EIO, "read", "reading the child's status record");
  }
  if (c->exitMode) {
    siginfo_t si;
    int e = Reap(c, &si);
    CloseFd(c->pidfd);
    Release(c, e != 0);
    if (e != 0) ThrowErrno(env, e, "waitid", "reaping a helper process");
    out.Set("kind", "exit");
    out.Set("code", si.si_code == CLD_EXITED ? Napi::Value(Napi::Number::New(env, si.si_status)) : env.Null());
    out.Set("signal", si.si_code == CLD_EXITED ? env.Null() : Napi::Value(Napi::Number::New(env, si.si_status)));
    return out;
  }
  // EOF without a record: execve replaced the child's memory, or it died.
  // Nothing but a signal ends it silently (see ReleaseUnread).
  bool lastUnread = ReleaseUnread(c);
  if (c->waitsLeft > 0 || lastUnread) {
    siginfo_t si;
    int e = Reap(c, &si);
    CloseFd(c->pidfd);
    // Killed at a wait after the fork step before its READY was read: the program is our child too.
    if (e == 0) e = ReapGrandchild(c, true);
    Release(c, e != 0);
    if (e != 0) ThrowErrno(env, e, "waitid", "reaping a child that died before its release");
    // The wait it was not released from: the first whose release it did not read.
    int waits = 0;
    for (const Step &st : c->steps) waits += st.op == kWait;
    int consumed = waits - c->waitsLeft - (lastUnread ? 1 : 0);
    int wait = -1;
    for (int i = 0, k = 0; i < static_cast<int>(c->steps.size()) && wait < 0; i++)
      if (c->steps[i].op == kWait && k++ == consumed) wait = i;
    out.Set("kind", "failed");
    out.Set("step", wait);
    out.Set("errno", ECHILD);
    if (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED) out.Set("signal", si.si_status);
    return out;
  }
  // It exec'd (or died after its release, which the exit watcher reports):
  // either way it no longer runs on our stack or reads the Child.
  if (c->forkStep >= 0 && !c->grandDone) return ForkedExec(env, c, out);
  int pidfd = c->pidfd;
  c->pidfd = -1;
  Release(c);
  out.Set("kind", "exec");
  out.Set("pidfd", pidfd);
  out.Set("pid", c->pid);
  return out;
}

// spawnSignal(handle, sig) -> true if sent. For a child released but not yet
// known to have exec'd: every signal is blocked until just before its
// execve, so a signal sent now acts on the program as it starts (or, for
// one that terminates, ends it before it runs).
Napi::Value SpawnSignal(const Napi::CallbackInfo &info) {
  Child *c = ArgChild(info, 0);
  int64_t sig = ArgInt(info, info.Length() > 1 ? info[1] : info.Env().Undefined(), "signal");
  bool sent = c->state == State::kHeld && c->pidfd >= 0 &&
              syscall(SYS_pidfd_send_signal, c->pidfd, static_cast<int>(sig), nullptr, 0) == 0;
  return Napi::Boolean::New(info.Env(), sent);
}

// spawnAbort(handle): SIGKILL through the pidfd, reap, free. For a child
// whose maps could not be written, or that is no longer wanted.
Napi::Value SpawnAbort(const Napi::CallbackInfo &info) {
  Child *c = ArgChild(info, 0);
  if (c->state == State::kHeld) KillAndReap(c);
  return info.Env().Undefined();
}

// ---------------------------------------------------------------- small helpers

// pidfdSendSignal(pidfd, sig) -> true if sent, false if the process is gone.
Napi::Value PidfdSendSignal(const Napi::CallbackInfo &info) {
  int pidfd = ArgFd(info, 0, "pidfd");
  int64_t sig = ArgInt(info, info.Length() > 1 ? info[1] : info.Env().Undefined(), "signal");
  if (syscall(SYS_pidfd_send_signal, pidfd, static_cast<int>(sig), nullptr, 0) == 0)
    return Napi::Boolean::New(info.Env(), true);
  if (errno == ESRCH) return Napi::Boolean::New(info.Env(), false);
  ThrowErrno(info.Env(), errno, "pidfd_send_signal", "sending signal " + std::to_string(sig));
}

// writeOnce(path, data): open O_WRONLY and one write(2), as /proc map files
// demand (a second write through the same fd is EINVAL).
Napi::Value WriteOnce(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "path");
  std::string data = ArgString(info, 1, "data");
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) ThrowErrno(env, errno, "open", "opening " + path);
  ssize_t n = write(fd, data.data(), data.size());
  int e = errno;
  close(fd);
  if (n < 0) ThrowErrno(env, e, "write", "writing " + path);
  if (static_cast<size_t>(n) != data.size()) ThrowErrno(env, EIO, "write", "short write to " + path);
  return env.Undefined();
}

// writeProcFiles(pid, [name, data, ...]) -> null, or {index, syscall, errno}
// for the first file that failed (the later ones are not attempted): each
// file /proc/PID/NAME written with one write(2) (WriteProcFile), in order.
// procFiles([name, data, ...]) -> handle: the list checked and copied once,
// for spawnStart's writes. Freed with the handle.
Napi::Value ProcFiles(const Napi::CallbackInfo &info) {
  auto files = std::make_unique<std::vector<std::string>>(ArgProcFiles(info, 0, "files"));
  auto handle = Napi::External<std::vector<std::string>>::New(
      info.Env(), files.release(), [](Napi::Env, std::vector<std::string> *f) { delete f; });
  handle.TypeTag(&kProcFilesTag);
  return handle;
}

Napi::Value WriteProcFiles(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int64_t pid = ArgInt(info, info.Length() > 0 ? info[0] : env.Undefined(), "pid");
  if (pid <= 0 || pid > INT_MAX) ThrowUsage(env, "pid must be a positive pid");
  std::vector<std::string> files = ArgProcFiles(info, 1, "files");
  for (size_t k = 0; k < files.size(); k += 2) {
    bool opened = true;
    int e = WriteProcFile(static_cast<int>(pid), files[k], files[k + 1], &opened);
    if (e == 0) continue;
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", static_cast<double>(k / 2));
    o.Set("syscall", opened ? "write" : "open");
    o.Set("errno", e);
    return o;
  }
  return env.Null();
}

// pipe() -> [readFd, writeFd], both O_CLOEXEC.
Napi::Value Pipe(const Napi::CallbackInfo &info) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) ThrowErrno(info.Env(), errno, "pipe2", "creating a stdio pipe");
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, p[0]);
  a.Set(1u, p[1]);
  return a;
}

// dupCloexec(fd) -> a new fd for the same file, O_CLOEXEC.
Napi::Value DupCloexec(const Napi::CallbackInfo &info) {
  int fd = ArgFd(info, 0, "fd");
  int r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (r < 0) ThrowErrno(info.Env(), errno, "fcntl", "duplicating fd " + std::to_string(fd));
  return Napi::Number::New(info.Env(), r);
}

// This thread's effective capability set (capget), without reading and
// parsing /proc/self/status on every spawn.
uint64_t EffectiveCaps(Napi::Env env) {
  struct __user_cap_header_struct hdr;
  struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
  memset(&hdr, 0, sizeof hdr);
  memset(data, 0, sizeof data);
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  if (syscall(SYS_capget, &hdr, data) < 0) ThrowErrno(env, errno, "capget", "reading this process's capabilities");
  return (static_cast<uint64_t>(data[1].effective) << 32) | data[0].effective;
}

// capEffective() -> bigint: EffectiveCaps.
Napi::Value CapEffective(const Napi::CallbackInfo &info) {
  return Napi::BigInt::New(info.Env(), EffectiveCaps(info.Env()));
}

// writerCreds(out: Uint32Array(3)): [CAP_SETUID and CAP_SETGID both effective
// (0/1), euid, egid], what choosing and validating a map writer depends on,
// in one call: a spawn asks every time (the process may have changed them).
Napi::Value WriterCreds(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
      info[0].As<Napi::Uint32Array>().ElementLength() < 3)
    ThrowUsage(env, "out must be a Uint32Array of 3");
  uint64_t eff = EffectiveCaps(env);
  uint32_t *out = info[0].As<Napi::Uint32Array>().Data();
  out[0] = ((eff >> CAP_SETUID) & 1) != 0 && ((eff >> CAP_SETGID) & 1) != 0 ? 1 : 0;
  out[1] = geteuid();
  out[2] = getegid();
  return env.Undefined();
}

Napi::Value CloneVm(const Napi::CallbackInfo &info) { return Napi::Boolean::New(info.Env(), USERNS_CLONE_VM); }

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("spawnStart", Napi::Function::New(env, SpawnStart, "spawnStart"));
  exports.Set("spawnResume", Napi::Function::New(env, SpawnResume, "spawnResume"));
  exports.Set("spawnAbort", Napi::Function::New(env, SpawnAbort, "spawnAbort"));
  exports.Set("spawnSignal", Napi::Function::New(env, SpawnSignal, "spawnSignal"));
  exports.Set("pidfdSendSignal", Napi::Function::New(env, PidfdSendSignal, "pidfdSendSignal"));
  exports.Set("writeOnce", Napi::Function::New(env, WriteOnce, "writeOnce"));
  exports.Set("writeProcFiles", Napi::Function::New(env, WriteProcFiles, "writeProcFiles"));
  exports.Set("pipe", Napi::Function::New(env, Pipe, "pipe"));
  exports.Set("dupCloexec", Napi::Function::New(env, DupCloexec, "dupCloexec"));
  exports.Set("capEffective", Napi::Function::New(env, CapEffective, "capEffective"));
  exports.Set("writerCreds", Napi::Function::New(env, WriterCreds, "writerCreds"));
  exports.Set("procFiles", Napi::Function::New(env, ProcFiles, "procFiles"));
  exports.Set("spawnUsesCloneVm", Napi::Function::New(env, CloneVm, "spawnUsesCloneVm"));
}

}  // namespace

USERNS_REGISTER(Register);

}  // namespace userns
