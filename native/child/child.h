// The spawn child: what it reads (Child), what it reports (Record), and the
// functions each side calls. Plain C++, no N-API (see sys.h): the parent's
// N-API glue is native/spawn.cc.
//
// Spawning into new namespaces: clone3 + a child that runs a short list of
// steps TS prepared, then execve (or _exit, for helpers).
//
// Child-side contract (read this before touching ChildMain):
// * On x86_64 the child is created with CLONE_VM on its own mmap'd stack, as
//   posix_spawn does, so spawning costs the same whatever the size of the
//   Node heap (no page tables are copied). The child therefore SHARES memory
//   with the parent, and with the parent's thread's TLS (no CLONE_SETTLS):
//   - it may only READ the Child object, which is complete before clone3 and
//     never changed until the child has exec'd or exited;
//   - it never writes anything the parent might read, except on its own
//     stack; results go through the error pipe only;
//   - it makes raw syscalls (Sys) that never touch errno, because errno lives
//     in the parent thread's TLS; no libc, no malloc, no locks, no stdio, no
//     C++ exceptions, no N-API;
//   - the parent frees the Child and unmaps the stack only after EOF on the
//     error pipe (exec replaced the child's mm, or it exited) or after the
//     child was reaped.
// * Signals are blocked around clone3; CLONE_CLEAR_SIGHAND resets handled
//   signals in the kernel, the child resets ignored ones among 1-31 too (as
//   libuv does) and restores the parent's mask just before execve.
// * Every failure writes one fixed-size Record {kind, step, errno} to the
//   O_CLOEXEC error pipe and exits 127. EOF without a record means execve
//   succeeded (or, for exit-mode helpers, that the steps all ran).
// * A kSbReaper step (the sandbox's reaping pid 1) splits the work too: on
//   the CLONE_VM path pid 1 clones the program with CLONE_VM on `reaperStack`
//   (its own child, which goes on with the later steps), then execs the
//   static init binary (native/init/init.c) and so leaves our memory. Without
//   an init binary the child is created fork-like (noVm: its own copy of
//   memory) and pid 1 stays in SandboxReaper (native/child/sandbox.cc).
// * Other architectures take the fork-like path (no CLONE_VM, stack 0): the
//   same child code then runs on a private copy of memory.
// * A fork step (kFork: a pid namespace created after joining) splits the
//   work between two processes: the first child clones the program's
//   process with CLONE_VM|CLONE_PARENT on a second pooled stack and exits;
//   the steps after kFork run in that grandchild, which is a child of this
//   process (CLONE_PARENT) and pid 1 of the new pid namespace. The kernel
//   stores the grandchild's pid (as this process sees it) in
//   Child::grandPid at clone time (CLONE_PARENT_SETTID), the only write into
//   the Child made on the child side; the parent reads it only after it has
//   reaped the first child. Both write to the same error pipe, so there is
//   still one record for a failure and EOF only once the first child has
//   exited and the program has exec'd.
#pragma once
#include <linux/sched.h>
#include <signal.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "protocol.h"
#include "sys.h"

namespace userns {
namespace child {

// ---------------------------------------------------------------- the step list

// The ops (kWait, kJoin ...) and their argument slots come from
// protocol.h, generated from lib/child/protocol.ts.
using namespace protocol::spawn;  // NOLINT

struct Step {
  int32_t op;
  int64_t a;
  int64_t b;
  const char *s;   // NUL-terminated, or null
  const char *s2;  // data for kWriteFile
  size_t s2len;
};

enum RecordKind : int32_t { kReady = 1, kFail = 2 };
struct Record {
  int32_t kind;
  int32_t step;
  int32_t err;
};

constexpr size_t kStackSize = 64 * 1024;
constexpr size_t kGuardSize = 4096;
constexpr int kMaxFds = 1024;
// fdSrc value: the child opens /dev/null itself (one open for all such
// entries), which spares the parent an open and a close per spawn.
constexpr int kDevNull = -2;

enum class State { kHeld, kDone };

// Everything the child reads. Built completely before clone3 and frozen
// until the child has exec'd or exited (see the contract).
struct Child {
  std::string path;
  std::vector<std::string> storage;  // argv, envp and step strings
  std::vector<char> envBlock;        // this process's environ, copied: "K=V\0K=V\0..."
  std::vector<char *> argv;
  std::vector<char *> envp;
  std::vector<Step> steps;
  std::vector<gid_t> gids;
  std::vector<int> fdSrc;  // child fd i <- fdSrc[i]; -1 closes i; kDevNull: /dev/null
  bool exitMode = false;
  sigset_t oldmask;
  // The pipe fds as the child sees them. Set once before clone3; the parent
  // closes its copies through the parent-only fields below and never writes
  // these (with CLONE_VM the child would read the change).
  int childSyncR = -1, childSyncW = -1, childErrR = -1, childErrW = -1;
  // The index of the kFork step, or -1; with one, the clone3 arguments of
  // the grandchild (on `forkStack`), prepared before the first clone3.
  int forkStep = -1;
  struct clone_args forkArgs = {};
  // Written by the kernel during the first child's kFork clone3
  // (CLONE_PARENT_SETTID): the grandchild's pid in our pid namespace, 0 if
  // it was never created. Read only after the first child was reaped.
  int grandPid = 0;
  // The index of a kSbReaper step on the CLONE_VM path, or -1: pid 1 clones
  // the program (its own child, CLONE_VM, on `reaperStack`) with these
  // arguments, prepared before the first clone3 like forkArgs, then execs the
  // init binary.
  int reaperStep = -1;
  struct clone_args reaperArgs = {};
  void *reaperStack = nullptr;
  // Parent-only state below: the child never reads it.
  // A fork-like child with its own memory even where CLONE_VM is used, for a
  // child that outlives exec (the sandbox's fork-like reaping pid 1).
  bool noVm = false;
  int syncR = -1, syncW = -1, errR = -1, errW = -1;
  void *stack = nullptr;
  void *forkStack = nullptr;
  size_t mapSize = 0;
  int pid = -1;
  int pidfd = -1;
  int waitsLeft = 0;
  // The last release was written (the sync pipe then stays open until
  // Release), and whether that write found no reader (EPIPE).
  bool lastReleaseSent = false;
  bool releaseRefused = false;
  int dumpable = -1;
  // Some step may change the child's credentials (setresuid, setns into a
  // user namespace ...), which resets the shared mm's dumpable flag: Start
  // then saves the flag for Release to restore. Without such a step the
  // flag cannot change and both prctl calls are skipped.
  bool credSteps = true;
  // A record (or EOF: pendingGot 0) read by spawnStart's release-and-wait
  // that was not a plain exec: the next resume reports it instead of reading.
  bool hasPending = false;
  Record pending = {};
  size_t pendingGot = 0;
  bool leaked = false;
  bool grandDone = false;  // the grandchild was reaped, or its pidfd handed over
  State state = State::kHeld;
};

// ---- child side (run.cc): runs on the child's stack, raw syscalls only.

// The clone3 entry point: resets signal dispositions, runs the steps, execs.
int ChildMain(void *arg);

// ---- parent side (holder.cc): N-API free, may allocate and lock.

void CloseFd(int &fd);
// Creates the pipes, the stacks and the child (clone3, signals blocked
// around it). Returns 0, or an errno with *syscall and *what naming the
// failed call; on failure everything was released.
int Start(Child *c, uint64_t cloneFlags, const char **syscall, const char **what);
// Waits for the first child to be gone for good: after this, nothing can
// run on its stack or read the Child.
int Reap(Child *c, siginfo_t *si);
int ReapGrandchild(Child *c, bool kill);
void Release(Child *c, bool leak = false);
void KillAndReap(Child *c);
// Releases the child from its current wait, if it has one left.
void SendRelease(Child *c);
// Blocks for the child's next record or EOF; returns the bytes read.
size_t ReadNext(Child *c, Record *rec);
// Whether the child never read its last release (it died before it).
bool ReleaseUnread(Child *c);
// Reads what the released child did next. A plain exec: the child is
// released (Release) and its pidfd handed to *pidfd, true. Anything else is
// kept for the next resume (spawnResume reports it), false.
bool TakeExec(Child *c, int *pidfd);

}  // namespace child
}  // namespace userns
