// The spawn child's parent side without N-API: stacks, clone3, reaping and
// releasing. native/spawn.cc turns JS arguments into a Child and calls these.
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "child.h"
#include "reap.h"
#include "sys.h"

namespace userns {
namespace child {

void CloseFd(int &fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

namespace {

// Child stacks are reused: a fresh mapping costs mmap + mprotect + munmap and
// a page fault for every page the child touches, and those faults take the
// lock of the mm the child shares with every Node thread. A stack goes back
// to the pool only when Release() would have unmapped it, i.e. when the
// child has exec'd or exited and can no longer run on it. The pool holds as
// many stacks as a busy tool has children between clone3 and exec: with 16
// spawns in flight a pool of 4 sent 12 of every 16 through mmap and munmap.
// An idle stack costs the pages its child touched (a few KiB), not 68 KiB.
constexpr size_t kStackPoolMax = 32;
std::mutex stackPoolMutex;
std::vector<void *> stackPool;

void *TakeStack(size_t size) {
  {
    std::lock_guard<std::mutex> lock(stackPoolMutex);
    if (!stackPool.empty()) {
      void *m = stackPool.back();
      stackPool.pop_back();
      return m;
    }
  }
  void *map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (map == MAP_FAILED) return nullptr;
  // A guard page below the stack turns an overflow into a fault, not into a
  // write over the parent's memory.
  if (mprotect(map, kGuardSize, PROT_NONE) < 0) {
    int e = errno;
    munmap(map, size);
    errno = e;
    return nullptr;
  }
  return map;
}

void GiveStack(void *map, size_t size) {
  {
    std::lock_guard<std::mutex> lock(stackPoolMutex);
    if (stackPool.size() < kStackPoolMax) {
      stackPool.push_back(map);
      return;
    }
  }
  munmap(map, size);
}

// Restores the process's dumpable flag. With CLONE_VM the child shares our
// mm, and a credential change in the child (setresuid, or setns into a user
// namespace we do not own) makes the kernel reset the *shared* mm's dumpable
// flag (commit_creds -> set_dumpable), which would leave Node non-dumpable.
void RestoreDumpable(Child *c) {
  if (!USERNS_CLONE_VM || c->dumpable < 0) return;
  if (prctl(PR_GET_DUMPABLE) != c->dumpable) prctl(PR_SET_DUMPABLE, c->dumpable);
}

}  // namespace

int Reap(Child *c, siginfo_t *si) { return ReapPidfd(c->pidfd, si); }

// Reaps the grandchild of a kFork step, if the first child created it, with
// SIGKILL first if `kill`. Call only once the first child was reaped, so
// that grandPid is final. The grandchild is our child (CLONE_PARENT) and not
// yet waited for, so its pid cannot name another process before this waitid.
int ReapGrandchild(Child *c, bool kill) {
  if (c->grandPid <= 0 || c->grandDone) return 0;
  if (kill) ::kill(c->grandPid, SIGKILL);
  int e = ReapPid(c->grandPid);
  if (e != 0) return e;
  c->grandDone = true;
  return 0;
}

// Frees what only the child could still be using. Call only when the child
// has exec'd, exited and been reaped, or never existed. With `leak`, the
// stack stays mapped (and the caller keeps the Child): used when reaping
// failed and the child might, in theory, still run on them.
void Release(Child *c, bool leak) {
  CloseFd(c->syncW);
  CloseFd(c->errR);
  CloseFd(c->syncR);
  CloseFd(c->errW);
  if (c->stack != nullptr && !leak) GiveStack(c->stack, c->mapSize);
  if (c->forkStack != nullptr && !leak) GiveStack(c->forkStack, c->mapSize);
  if (c->reaperStack != nullptr && !leak) GiveStack(c->reaperStack, c->mapSize);
  c->stack = nullptr;
  c->forkStack = nullptr;
  c->reaperStack = nullptr;
  c->leaked = leak;
  RestoreDumpable(c);
  c->state = State::kDone;
}

void KillAndReap(Child *c) {
  int e = 0;
  if (c->pidfd >= 0) {
    syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, nullptr, 0);
    siginfo_t si;
    e = Reap(c, &si);
    CloseFd(c->pidfd);
    if (e == 0) e = ReapGrandchild(c, true);
  }
  Release(c, e != 0);
}

// Releases the child from the wait it is blocked at, if it has one left.
// After the last release the sync pipe stays open until the child is done
// with (Release closes it), so that EOF on the error pipe can tell an exec
// from a death before the release: the byte still in the pipe, or no reader
// left to take it (EPIPE), means the child never read it.
void SendRelease(Child *c) {
  if (c->waitsLeft == 0) return;
  char go = 1;
  ssize_t w;
  do w = write(c->syncW, &go, 1);
  while (w < 0 && errno == EINTR);
  c->releaseRefused = w < 0;
  c->waitsLeft--;
  c->lastReleaseSent = c->waitsLeft == 0;
}

// Blocks until the child's next record or EOF (a record left by spawnStart's
// release-and-wait first); returns the bytes read, sizeof *rec for a record.
size_t ReadNext(Child *c, Record *rec) {
  if (c->hasPending) {
    c->hasPending = false;
    *rec = c->pending;
    return c->pendingGot;
  }
  size_t got = 0;
  while (got < sizeof *rec) {
    ssize_t n = read(c->errR, reinterpret_cast<char *>(rec) + got, sizeof *rec - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

// EOF after the last release with nothing ahead: the child exec'd (or died
// after reading its release, which the exit watcher reports). Not so while a
// wait is still ahead of it, nor if it never read its last release (the byte
// is still in the pipe, or the pipe had no reader left): then it died before
// a release, a failure before exec like any other, at that wait.
bool ReleaseUnread(Child *c) {
  int unread = 0;
  return c->lastReleaseSent && (c->releaseRefused || (ioctl(c->syncW, FIONREAD, &unread) == 0 && unread > 0));
}

// A plain exec (see ReleaseUnread for what EOF means) hands over the pidfd
// and releases the Child; anything else is kept for the next ReadNext.
bool TakeExec(Child *c, int *pidfd) {
  Record rec;
  size_t got = ReadNext(c, &rec);
  if (got == 0 && c->waitsLeft == 0 && c->forkStep < 0 && !c->exitMode && !ReleaseUnread(c)) {
    // It exec'd: nothing runs on the stack or reads the Child any more.
    *pidfd = c->pidfd;
    c->pidfd = -1;
    Release(c);
    return true;
  }
  c->hasPending = true;
  c->pending = rec;
  c->pendingGot = got;
  return false;
}

int Start(Child *c, uint64_t cloneFlags, const char **syscallName, const char **what) {
  int sp[2], ep[2];
  if (pipe2(sp, O_CLOEXEC) < 0) {
    *syscallName = "pipe2";
    *what = "creating the spawn sync pipe";
    return errno;
  }
  if (pipe2(ep, O_CLOEXEC) < 0) {
    int e = errno;
    close(sp[0]);
    close(sp[1]);
    *syscallName = "pipe2";
    *what = "creating the spawn error pipe";
    return e;
  }
  // The stdio step replaces or closes every fd below fdSrc.size(): the child's
  // own ends must lie above, or a plan with many stdio entries would close
  // the error pipe, and its EOF would tell us the child exec'd while it still
  // runs on our stack (then its failure record would be lost as well).
  int lowest = static_cast<int>(c->fdSrc.size());
  for (int *fd : {&sp[0], &ep[1]}) {
    if (*fd >= lowest) continue;
    int moved = fcntl(*fd, F_DUPFD_CLOEXEC, lowest);
    if (moved < 0) {
      int e = errno;
      close(sp[0]);
      close(sp[1]);
      close(ep[0]);
      close(ep[1]);
      *syscallName = "fcntl";
      *what = "moving the spawn pipes above the stdio fds";
      return e;
    }
    close(*fd);
    *fd = moved;
  }
  c->syncR = c->childSyncR = sp[0];
  c->syncW = c->childSyncW = sp[1];
  c->errR = c->childErrR = ep[0];
  c->errW = c->childErrW = ep[1];

  struct clone_args ca;
  memset(&ca, 0, sizeof ca);
  int pidfd = -1;
  ca.flags = cloneFlags | CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
  ca.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  ca.exit_signal = SIGCHLD;
#if USERNS_CLONE_VM
  if (!c->noVm) {
  c->mapSize = kStackSize + kGuardSize;
  void *map = TakeStack(c->mapSize);
  if (map == nullptr) {
    int e = errno;
    Release(c);
    *syscallName = "mmap";
    *what = "allocating the child's stack";
    return e;
  }
  c->stack = map;
  if (c->forkStep >= 0) {
    void *fmap = TakeStack(c->mapSize);
    if (fmap == nullptr) {
      int e = errno;
      Release(c);
      *syscallName = "mmap";
      *what = "allocating the program's stack";
      return e;
    }
    c->forkStack = fmap;
    // The grandchild: shares our memory, is our child, not the first
    // child's (exit_signal then comes from the first child, SIGCHLD), and
    // its pid lands in grandPid before it runs.
    c->forkArgs.flags = CLONE_VM | CLONE_PARENT | CLONE_PARENT_SETTID;
    c->forkArgs.parent_tid = reinterpret_cast<uint64_t>(&c->grandPid);
    c->forkArgs.exit_signal = 0;
    c->forkArgs.stack = reinterpret_cast<uint64_t>(static_cast<char *>(fmap) + kGuardSize);
    c->forkArgs.stack_size = kStackSize;
  }
  if (c->reaperStep >= 0) {
    void *rmap = TakeStack(c->mapSize);
    if (rmap == nullptr) {
      int e = errno;
      Release(c);
      *syscallName = "mmap";
      *what = "allocating the program's stack";
      return e;
    }
    c->reaperStack = rmap;
    // The program: pid 1's own child (reaped by it), sharing memory until its execve.
    c->reaperArgs.flags = CLONE_VM;
    c->reaperArgs.exit_signal = SIGCHLD;
    c->reaperArgs.stack = reinterpret_cast<uint64_t>(static_cast<char *>(rmap) + kGuardSize);
    c->reaperArgs.stack_size = kStackSize;
  }
  ca.flags |= CLONE_VM;
  ca.stack = reinterpret_cast<uint64_t>(static_cast<char *>(map) + kGuardSize);
  ca.stack_size = kStackSize;
  c->dumpable = c->credSteps ? prctl(PR_GET_DUMPABLE) : -1;
  }
#endif

  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &c->oldmask);
  long pid;
#if USERNS_CLONE_VM
  if (!c->noVm) {
    pid = Clone3Vm(&ca, ChildMain, c);
  } else {
    pid = Sys(__NR_clone3, reinterpret_cast<long>(&ca), sizeof ca);
    // A copy of this process's memory: ChildMain never returns.
    if (pid == 0) ExitGroup(ChildMain(c));
  }
#else
  pid = syscall(SYS_clone3, &ca, sizeof ca);
  if (pid == 0) _exit(ChildMain(c));
  if (pid < 0) pid = -errno;
#endif
  pthread_sigmask(SIG_SETMASK, &c->oldmask, nullptr);
  if (pid < 0) {
    Release(c);
    *syscallName = "clone3";
    *what = "creating the child process";
    return static_cast<int>(-pid);
  }
  // The child's ends: only the child may hold them, or EOF never comes.
  CloseFd(c->syncR);
  CloseFd(c->errW);
  c->pid = static_cast<int>(pid);
  c->pidfd = pidfd;
  return 0;
}

}  // namespace child
}  // namespace userns

// The child side never touches N-API: fail the build if this translation unit
// pulled it in, however indirectly.
#if defined(SRC_NAPI_H_) || defined(SRC_NODE_API_H_) || defined(NAPI_VERSION_EXPERIMENTAL)
#error "native/child/ is N-API free: do not include napi.h, node_api.h or addon.h here"
#endif
