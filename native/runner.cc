// Kernel runner for map-write cases (case-formats §1).
//
// TypeScript compiles each case into a small step program (lib/verify/program.ts):
// which process does which syscall, in which order, with which bytes. This file
// only executes programs; every decision about what a case means lives in TS.
//
// Per native call, the worker thread W (a libuv threadpool thread) forks one
// zygote: a child of Node that drops Node's anonymous memory (TrimMemory) so
// that its own forks are cheap. For each case the zygote acts as agent 0 (root
// of the initial namespace) and forks "agents": single-threaded children that
// execute runs of steps on command. All agents are direct children of the
// zygote, which kills (by pid) and reaps every one of them at the end of each
// case, including on timeout. Agents talk to the zygote over SOCK_SEQPACKET
// socketpairs; map-file fds move between processes with SCM_RIGHTS, so the
// opener and the writer can be different processes, as the kernel's
// opener/writer checks require.
//
// The zygote and the agents are forked from a multithreaded process, so they
// only make raw syscalls: no malloc, stdio, locks or exceptions. Everything they
// read (steps, bytes) and write (results) lives in a MAP_SHARED region mapped
// before the fork; paths are formatted into stack buffers. Every process sets
// PR_SET_PDEATHSIG, so nothing outlives its parent.
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "addon.h"
#include "child/ops.h"
#include "child/protocol.h"
#include "child/reap.h"
#include "child/sys.h"

namespace userns {
namespace {

// ---- program format: native/child/protocol.h, generated from lib/child/protocol.ts ----

using namespace protocol::runner;  // NOLINT: the generated ops, records and constants
using Step = RunnerStep;
using child::Sys;

struct Result {
  int64_t ret;
  int32_t err;
  int32_t aux;  // kRead/kWriteFile: 1 = the open failed; kRead: 2 = output truncated
};

// The MAP_SHARED region: pids of the agents, then the case program, then results.
struct Control {
  int32_t pids[kMaxAgents];
};
constexpr size_t kControlSize = 256;
static_assert(sizeof(Control) <= kControlSize, "control block");

struct Region {
  uint8_t *base;
  size_t size;
  Control *control() const { return reinterpret_cast<Control *>(base); }
  uint8_t *program() const { return base + kControlSize; }
};

// What one process (W or an agent) needs to execute steps.
struct Exec {
  Region region;
  const CaseHeader *hdr;
  const Step *steps;
  const uint8_t *data;
  uint8_t *results;
  int fds[kMaxFdSlots];
  int pendingIn;   // fd received with the command (kTakeFd)
  int pendingOut;  // fd to send with the reply (kGiveFd)
};

void InitExec(Exec *x, const Region &r) {
  x->region = r;
  x->hdr = reinterpret_cast<const CaseHeader *>(r.program());
  x->steps = reinterpret_cast<const Step *>(r.program() + kCaseHeaderSize);
  x->data = r.program() + x->hdr->dataOff;
  x->results = r.program() + x->hdr->size;
  for (int i = 0; i < kMaxFdSlots; i++) x->fds[i] = -1;
  x->pendingIn = -1;
  x->pendingOut = -1;
}

int TargetPid(const Exec &x, uint8_t target) {
  return target == kTargetSelf ? -1 : x.region.control()->pids[target];
}

long OpenTarget(const Exec &x, const Step &s, int flags) {
  char path[64];
  child::ProcPath(path, TargetPid(x, s.target), kFiles[s.file]);
  return Sys(SYS_openat, AT_FDCWD, reinterpret_cast<long>(path), flags | O_CLOEXEC | O_NOCTTY);
}

long CapsDrop(const Step &s) {
  __user_cap_header_struct h{};
  h.version = _LINUX_CAPABILITY_VERSION_3;
  h.pid = 0;
  __user_cap_data_struct d[2]{};
  if (!(s.flags & kCapsAll)) {
    long r = Sys(SYS_capget, reinterpret_cast<long>(&h), reinterpret_cast<long>(d));
    if (r < 0) return r;
    for (int i = 0; i < 2; i++) {
      uint32_t m = static_cast<uint32_t>(s.capmask >> (32 * i));
      d[i].effective &= ~m;
      d[i].permitted &= ~m;
      d[i].inheritable &= ~m;
    }
  }
  return Sys(SYS_capset, reinterpret_cast<long>(&h), reinterpret_cast<long>(d));
}

// Reads an opened file into the step's output (fd < 0: the open's error).
// Closes fd. Returns the byte count or a negative errno; *aux = 1 when the
// open failed, 2 when the output was truncated.
long ReadAll(Exec *x, const Step &s, long fd, int *aux) {
  if (fd < 0) {
    *aux = 1;
    return fd;
  }
  uint8_t *out = x->results + s.outOff;
  uint32_t got = 0;
  long r = 0;
  for (;;) {
    if (got == s.outCap) {
      char probe;
      if (Sys(SYS_read, fd, reinterpret_cast<long>(&probe), 1) > 0) *aux = 2;
      break;
    }
    long n = Sys(SYS_read, fd, reinterpret_cast<long>(out + got), s.outCap - got);
    if (n == -EINTR) continue;
    if (n < 0) {
      r = n;
      break;
    }
    if (n == 0) break;
    got += static_cast<uint32_t>(n);
  }
  Sys(SYS_close, fd);
  return r < 0 ? r : got;
}

// Executes one step (never kSpawn) and records its result. Returns the result
// (negative errno on failure). Safe in a forked child: raw syscalls only.
long RunStep(Exec *x, int i) {
  const Step &s = x->steps[i];
  Result *res = reinterpret_cast<Result *>(x->results + s.resOff);
  long r = 0;
  int aux = 0;
  switch (s.op) {
    case kSetgroupsEmpty:
      r = child::SetGroups(0, nullptr);
      break;
    case kSetresgid:
      r = child::SetAllGids(s.arg0);
      break;
    case kSetresuid:
      r = child::SetAllUids(s.arg0);
      break;
    case kCapsDrop:
      r = CapsDrop(s);
      break;
    case kDumpable:
      r = Sys(SYS_prctl, PR_SET_DUMPABLE, 1);
      break;
    case kUnshareUser:
      r = Sys(SYS_unshare, CLONE_NEWUSER);
      break;
    case kSetnsUser: {
      long fd = OpenTarget(*x, s, O_RDONLY);
      if (fd < 0) {
        r = fd;
        aux = 1;
        break;
      }
      r = child::JoinNs(fd, CLONE_NEWUSER);
      Sys(SYS_close, fd);
      break;
    }
    case kOpen:
      if (x->fds[s.fdslot] >= 0) Sys(SYS_close, x->fds[s.fdslot]);
      x->fds[s.fdslot] = -1;
      r = OpenTarget(*x, s, O_WRONLY);
      if (r >= 0) x->fds[s.fdslot] = static_cast<int>(r);
      break;
    case kWrite:
      r = Sys(SYS_write, x->fds[s.fdslot], reinterpret_cast<long>(x->data + s.dataOff), s.dataLen);
      break;
    case kPwrite0:
      r = Sys(SYS_pwrite64, x->fds[s.fdslot], reinterpret_cast<long>(x->data + s.dataOff), s.dataLen, 0);
      break;
    case kClose:
      r = x->fds[s.fdslot] >= 0 ? Sys(SYS_close, x->fds[s.fdslot]) : -EBADF;
      x->fds[s.fdslot] = -1;
      break;
    case kRead:
      r = ReadAll(x, s, OpenTarget(*x, s, O_RDONLY), &aux);
      break;
    case kWriteFile: {
      long fd = OpenTarget(*x, s, O_WRONLY);
      if (fd < 0) {
        r = fd;
        aux = 1;
        break;
      }
      r = Sys(SYS_write, fd, reinterpret_cast<long>(x->data + s.dataOff), s.dataLen);
      Sys(SYS_close, fd);
      break;
    }
    case kGiveFd:
      r = x->fds[s.fdslot] >= 0 ? x->fds[s.fdslot] : -EBADF;
      if (r >= 0) {
        x->pendingOut = x->fds[s.fdslot];
        x->fds[s.fdslot] = -1;
      }
      break;
    case kSetnsPath: {
      const char *path = reinterpret_cast<const char *>(x->data + s.dataOff);
      long fd = Sys(SYS_openat, AT_FDCWD, reinterpret_cast<long>(path), O_RDONLY | O_CLOEXEC | O_NOCTTY);
      if (fd < 0) {
        r = fd;
        aux = 1;
        break;
      }
      r = child::JoinNs(fd, CLONE_NEWUSER);
      Sys(SYS_close, fd);
      break;
    }
    case kStatPath: {
      // Straight into the shared result area: no copy, no libc call in the
      // forked agent. The ids are the kernel's translation into this
      // process's user namespace (65534 where it maps nothing), which is why
      // a joined agent stats rather than the parent.
      const char *path = reinterpret_cast<const char *>(x->data + s.dataOff);
      if (s.outCap < sizeof(struct statx)) {
        r = -EINVAL;
        break;
      }
      r = Sys(SYS_statx, AT_FDCWD, reinterpret_cast<long>(path), AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
              STATX_BASIC_STATS | STATX_MNT_ID, reinterpret_cast<long>(x->results + s.outOff));
      if (r == 0) r = sizeof(struct statx);
      break;
    }
    case kOpenPath: {
      // Opened now, joined later (kSetnsFd): once an agent has joined a mount
      // namespace, host paths such as /proc/<pid>/ns/* may no longer resolve.
      const char *path = reinterpret_cast<const char *>(x->data + s.dataOff);
      if (x->fds[s.fdslot] >= 0) Sys(SYS_close, x->fds[s.fdslot]);
      r = Sys(SYS_openat, AT_FDCWD, reinterpret_cast<long>(path), O_RDONLY | O_CLOEXEC | O_NOCTTY);
      x->fds[s.fdslot] = r >= 0 ? static_cast<int>(r) : -1;
      break;
    }
    case kSetnsFd:
      r = x->fds[s.fdslot] >= 0 ? child::JoinNs(x->fds[s.fdslot], s.arg0) : -EBADF;
      if (x->fds[s.fdslot] >= 0) Sys(SYS_close, x->fds[s.fdslot]);
      x->fds[s.fdslot] = -1;
      break;
    case kReadPath: {
      const char *path = reinterpret_cast<const char *>(x->data + s.dataOff);
      long fd = Sys(SYS_openat, AT_FDCWD, reinterpret_cast<long>(path), O_RDONLY | O_CLOEXEC | O_NOCTTY);
      r = ReadAll(x, s, fd, &aux);
      break;
    }
    case kTakeFd:
      if (x->fds[s.fdslot] >= 0) Sys(SYS_close, x->fds[s.fdslot]);
      x->fds[s.fdslot] = x->pendingIn;
      r = x->pendingIn >= 0 ? x->pendingIn : -EBADF;
      x->pendingIn = -1;
      break;
    default:
      r = -EINVAL;
  }
  res->ret = r < 0 ? -1 : r;
  res->err = r < 0 ? static_cast<int32_t>(-r) : 0;
  res->aux = aux;
  return r;
}

// Messages on the W <-> agent socket.
struct Command {
  uint32_t first;
  uint32_t last;
};
struct Reply {
  int32_t status;  // 0 = ran all steps, 1 = a required step failed
  int32_t step;
  int32_t err;
};

long SendWithFd(int sock, const void *buf, size_t len, int fd) {
  iovec iov{const_cast<void *>(buf), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
  if (fd >= 0) {
    memset(cbuf, 0, sizeof cbuf);
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  long r;
  do r = Sys(SYS_sendmsg, sock, reinterpret_cast<long>(&msg), MSG_NOSIGNAL);
  while (r == -EINTR);
  return r;
}

// Receives one message; a passed fd lands in *fd (close-on-exec), else -1.
long RecvWithFd(int sock, void *buf, size_t len, int *fd) {
  iovec iov{buf, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  *fd = -1;
  long r;
  do r = Sys(SYS_recvmsg, sock, reinterpret_cast<long>(&msg), MSG_CMSG_CLOEXEC);
  while (r == -EINTR);
  if (r < 0) return r;
  for (cmsghdr *c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(fd, CMSG_DATA(c), sizeof(int));
  }
  return r;
}

[[noreturn]] void AgentExit(int code) {
  child::ExitGroup(code);
}

// The start of every forked process's life (zygote and agents). Raw syscalls only.
void ForkedPrologue(int sock, int parentSock, pid_t parent) {
  Sys(SYS_close, parentSock);
  Sys(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);
  if (Sys(SYS_getppid) != parent) AgentExit(1);
  // Block every catchable signal: Node's handlers are not ours to run. SIGKILL
  // (timeouts, end of case) cannot be blocked.
  uint64_t all = ~0ULL;
  Sys(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&all), 0, sizeof all);
  // Drop every fd inherited from Node (and from the other worker's agents).
  if (sock > 3) Sys(SYS_close_range, 3, sock - 1, 0);
  Sys(SYS_close_range, sock + 1, ~0U, 0);
}

// The agent's whole life, in the forked child. Raw syscalls only.
[[noreturn]] void AgentMain(const Region &region, int sock, int parentSock, pid_t parent) {
  ForkedPrologue(sock, parentSock, parent);

  Exec x;
  InitExec(&x, region);
  for (;;) {
    Command cmd;
    int fd = -1;
    long n = RecvWithFd(sock, &cmd, sizeof cmd, &fd);
    if (n != static_cast<long>(sizeof cmd)) AgentExit(n == 0 ? 0 : 2);
    if (x.pendingIn >= 0) Sys(SYS_close, x.pendingIn);
    x.pendingIn = fd;
    Reply rep{0, 0, 0};
    for (uint32_t i = cmd.first; i < cmd.last; i++) {
      long r = RunStep(&x, static_cast<int>(i));
      if (r < 0 && (x.steps[i].flags & kRequired)) {
        rep = Reply{1, static_cast<int32_t>(i), static_cast<int32_t>(-r)};
        break;
      }
    }
    int out = x.pendingOut;
    x.pendingOut = -1;
    if (SendWithFd(sock, &rep, sizeof rep, out) < 0) AgentExit(3);
    if (out >= 0) Sys(SYS_close, out);
  }
}

int64_t NowMs() {
  timespec t;
  Sys(SYS_clock_gettime, CLOCK_MONOTONIC, reinterpret_cast<long>(&t));
  return static_cast<int64_t>(t.tv_sec) * 1000 + t.tv_nsec / 1000000;
}

struct AgentProc {
  pid_t pid = -1;
  int sock = -1;
};

void CloseFd(int *fd) {
  if (*fd >= 0) Sys(SYS_close, *fd);
  *fd = -1;
}

// Waits for one reply from an agent until the deadline. Returns the byte count
// or a negative errno (-ETIMEDOUT when the deadline passed).
long AwaitReply(int sock, int64_t deadline, void *buf, size_t len, int *fd) {
  *fd = -1;
  for (;;) {
    int64_t left = deadline - NowMs();
    if (left <= 0) return -ETIMEDOUT;
    pollfd p{sock, POLLIN, 0};
    timespec ts{static_cast<time_t>(left / 1000), static_cast<long>(left % 1000) * 1000000};
    long pr = Sys(SYS_ppoll, reinterpret_cast<long>(&p), 1, reinterpret_cast<long>(&ts), 0, 0);
    if (pr == -EINTR) continue;
    if (pr < 0) return pr;
    if (pr == 0) return -ETIMEDOUT;
    return RecvWithFd(sock, buf, len, fd);
  }
}

// Agent 0's side of one case: runs in the zygote (a trimmed child of Node),
// forks the other agents, drives them, and kills and reaps every one of them.
// The program and result area are already in the region. Raw syscalls only.
void RunCase(const Region &region) {
  Exec x;
  InitExec(&x, region);
  int32_t *status = reinterpret_cast<int32_t *>(x.results);
  AgentProc agents[kMaxAgents];
  Control *ctl = region.control();
  const pid_t self = static_cast<pid_t>(Sys(SYS_getpid));
  for (int i = 0; i < kMaxAgents; i++) ctl->pids[i] = 0;
  ctl->pids[0] = self;
  const int64_t deadline = NowMs() + x.hdr->timeoutMs;
  const int n = x.hdr->nsteps;
  int32_t st = kDone, abortStep = -1, abortErr = 0;

  int i = 0;
  while (i < n) {
    const int a = x.steps[i].agent;
    int j = i + 1;
    while (j < n && x.steps[j].agent == a) j++;
    if (a == 0) {
      for (int k = i; k < j && st == kDone; k++) {
        const Step &s = x.steps[k];
        long r;
        if (s.op == kSpawn) {
          int sv[2];
          r = Sys(SYS_socketpair, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, reinterpret_cast<long>(sv));
          if (r == 0) {
            long pid = child::RawFork();
            if (pid == 0) AgentMain(region, sv[1], sv[0], self);
            Sys(SYS_close, sv[1]);
            if (pid < 0) {
              r = pid;
              Sys(SYS_close, sv[0]);
            } else {
              agents[s.target].pid = static_cast<pid_t>(pid);
              agents[s.target].sock = sv[0];
              ctl->pids[s.target] = static_cast<int32_t>(pid);
              r = pid;
            }
          }
          Result *res = reinterpret_cast<Result *>(x.results + s.resOff);
          res->ret = r < 0 ? -1 : r;
          res->err = r < 0 ? static_cast<int32_t>(-r) : 0;
          res->aux = 0;
        } else {
          r = RunStep(&x, k);
        }
        if (r < 0 && (s.flags & kRequired)) {
          st = kSetupAbort;
          abortStep = k;
          abortErr = static_cast<int32_t>(-r);
        }
        if (x.pendingOut >= 0) {
          // Agent 0 gave an fd to itself: hand it straight to the next TAKE.
          CloseFd(&x.pendingIn);
          x.pendingIn = x.pendingOut;
          x.pendingOut = -1;
        }
      }
    } else {
      AgentProc &ag = agents[a];
      Command cmd{static_cast<uint32_t>(i), static_cast<uint32_t>(j)};
      const int give = x.steps[i].op == kTakeFd ? x.pendingIn : -1;
      long r = ag.sock < 0 ? -ESRCH : SendWithFd(ag.sock, &cmd, sizeof cmd, give);
      if (give >= 0) CloseFd(&x.pendingIn);
      Reply rep{};
      if (r >= 0) {
        int fd = -1;
        r = AwaitReply(ag.sock, deadline, &rep, sizeof rep, &fd);
        if (r >= 0 && r != static_cast<long>(sizeof rep)) r = -EPIPE;
        if (fd >= 0) {
          CloseFd(&x.pendingIn);
          x.pendingIn = fd;
        }
      }
      if (r == -ETIMEDOUT) {
        st = kTimeout;
        abortStep = i;
        abortErr = ETIMEDOUT;
      } else if (r < 0) {
        st = kAgentLost;
        abortStep = i;
        abortErr = static_cast<int32_t>(-r);
      } else if (rep.status != 0) {
        st = kSetupAbort;
        abortStep = rep.step;
        abortErr = rep.err;
      }
    }
    if (st != kDone) break;
    if (NowMs() > deadline) {
      st = kTimeout;
      abortStep = j < n ? j : n - 1;
      abortErr = ETIMEDOUT;
      break;
    }
    i = j;
  }

  // Every agent is our direct child: kill it by pid, then reap it.
  for (int k = 1; k < kMaxAgents; k++) {
    if (agents[k].pid > 0) {
      Sys(SYS_kill, agents[k].pid, SIGKILL);
      child::ReapPid(agents[k].pid, __WALL);
    }
    CloseFd(&agents[k].sock);
  }
  for (int k = 0; k < kMaxFdSlots; k++) CloseFd(&x.fds[k]);
  CloseFd(&x.pendingIn);
  CloseFd(&x.pendingOut);
  status[0] = st;
  status[1] = abortStep;
  status[2] = abortErr;
}

#if defined(__SANITIZE_ADDRESS__)
#define USERNS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define USERNS_ASAN 1
#endif
#endif

[[maybe_unused]] uint64_t ParseHex(const char **p) {
  uint64_t v = 0;
  for (;;) {
    char c = **p;
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return v;
    v = v * 16 + static_cast<uint64_t>(d);
    (*p)++;
  }
}

[[maybe_unused]] bool StartsWith(const char *p, const char *end, const char *lit) {
  for (; *lit; lit++, p++)
    if (p >= end || *p != *lit) return false;
  return true;
}

// Forking a copy of Node costs page-table copies of its whole heap, several
// times per case. The zygote drops every anonymous private mapping it does not
// need (its own stack, which holds its TLS; the shared region; the kernel's
// vdso), so the agents it forks are cheap. File-backed mappings (code, and
// libc's data) stay. Not under ASan, whose shadow memory is anonymous.
void TrimMemory(const Region &region, uint8_t *scratch, size_t scratchLen) {
#ifndef USERNS_ASAN
  long fd = Sys(SYS_openat, AT_FDCWD, reinterpret_cast<long>("/proc/self/maps"), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  size_t got = 0;
  for (;;) {
    long n = Sys(SYS_read, fd, reinterpret_cast<long>(scratch + got), scratchLen - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
    if (got == scratchLen) break;
  }
  Sys(SYS_close, fd);
  const uintptr_t sp = reinterpret_cast<uintptr_t>(&fd);
  const uintptr_t rb = reinterpret_cast<uintptr_t>(region.base);
  const uintptr_t sb = reinterpret_cast<uintptr_t>(scratch);
  const char *p = reinterpret_cast<const char *>(scratch);
  const char *end = p + got;
  uint64_t prevEnd = 0;
  bool prevFile = false;
  while (p < end) {
    const char *eol = p;
    while (eol < end && *eol != '\n') eol++;
    if (eol == end) break;  // a partial last line: leave it mapped
    const char *q = p;
    uint64_t lo = ParseHex(&q);
    q++;
    uint64_t hi = ParseHex(&q);
    // Fields: perms offset dev inode [path]
    int field = 0;
    while (q < eol && field < 4) {
      while (q < eol && *q == ' ') q++;
      const char *f = q;
      while (q < eol && *q != ' ') q++;
      if (field == 3) {
        bool anon = q - f == 1 && *f == '0';
        while (q < eol && *q == ' ') q++;
        bool named = q < eol;
        bool special = StartsWith(q, eol, "[vdso]") || StartsWith(q, eol, "[vvar") || StartsWith(q, eol, "[vsyscall]");
        bool ours = (sp >= lo && sp < hi) || (rb >= lo && rb < hi) || (sb >= lo && sb < hi);
        // An unnamed anonymous mapping right after a file mapping is that
        // object's .bss (libc keeps state there that memcpy and friends read).
        bool bss = !named && lo == prevEnd && prevFile;
        if (anon && !special && !ours && !bss) Sys(SYS_munmap, static_cast<long>(lo), static_cast<long>(hi - lo));
        prevFile = !anon;
        prevEnd = hi;
      }
      field++;
    }
    p = eol + 1;
  }
#endif
  Sys(SYS_munmap, reinterpret_cast<long>(scratch), static_cast<long>(scratchLen));
}

// The zygote drops the heap, where the dynamic linker keeps its data, so a
// lazily bound PLT entry resolved for the first time in the zygote would crash
// it. The addon is linked with -z now; trim only when that is really so.
int FindBindNow(dl_phdr_info *info, size_t, void *arg) {
  auto *want = static_cast<std::pair<uintptr_t, int> *>(arg);
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) &ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    if (want->first < lo || want->first >= lo + ph.p_memsz) continue;
    want->second = 0;
    for (int k = 0; k < info->dlpi_phnum; k++) {
      if (info->dlpi_phdr[k].p_type != PT_DYNAMIC) continue;
      auto *d = reinterpret_cast<const ElfW(Dyn) *>(info->dlpi_addr + info->dlpi_phdr[k].p_vaddr);
      for (; d->d_tag != DT_NULL; d++) {
        if (d->d_tag == DT_BIND_NOW || (d->d_tag == DT_FLAGS && (d->d_un.d_val & DF_BIND_NOW)) ||
            (d->d_tag == DT_FLAGS_1 && (d->d_un.d_val & DF_1_NOW)))
          want->second = 1;
      }
    }
    return 1;
  }
  return 0;
}

bool AddonIsBoundNow() {
  static const bool now = [] {
    std::pair<uintptr_t, int> want{reinterpret_cast<uintptr_t>(&FindBindNow), 0};
    dl_iterate_phdr(FindBindNow, &want);
    return want.second == 1;
  }();
  return now;
}

// Zygote protocol: W sends {1} to run the case in the region, the zygote
// answers {1} when the result area is filled. EOF ends the zygote.
[[noreturn]] void ZygoteMain(const Region &region, uint8_t *scratch, size_t scratchLen, bool trim, int sock,
                             int parentSock, pid_t parent) {
  ForkedPrologue(sock, parentSock, parent);
  if (trim) TrimMemory(region, scratch, scratchLen);
  else Sys(SYS_munmap, reinterpret_cast<long>(scratch), static_cast<long>(scratchLen));
  for (;;) {
    uint32_t cmd = 0;
    int fd = -1;
    long n = RecvWithFd(sock, &cmd, sizeof cmd, &fd);
    if (fd >= 0) Sys(SYS_close, fd);
    if (n != static_cast<long>(sizeof cmd)) AgentExit(n == 0 ? 0 : 2);
    RunCase(region);
    if (SendWithFd(sock, &cmd, sizeof cmd, -1) < 0) AgentExit(3);
  }
}

// W's handle on its zygote.
struct Zygote {
  pid_t pid = -1;
  int sock = -1;
};

constexpr size_t kScratch = 4 << 20;

int StartZygote(const Region &region, Zygote *z) {
  void *scratch = mmap(nullptr, kScratch, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (scratch == MAP_FAILED) return errno;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    int e = errno;
    munmap(scratch, kScratch);
    return e;
  }
  pid_t self = getpid();
  const bool trim = AddonIsBoundNow();
  long pid = child::RawFork();
  if (pid == 0) ZygoteMain(region, static_cast<uint8_t *>(scratch), kScratch, trim, sv[1], sv[0], self);
  close(sv[1]);
  munmap(scratch, kScratch);
  if (pid < 0) {
    close(sv[0]);
    return static_cast<int>(-pid);
  }
  z->pid = static_cast<pid_t>(pid);
  z->sock = sv[0];
  return 0;
}

void StopZygote(Zygote *z, bool kill) {
  if (z->pid <= 0) return;
  if (kill) Sys(SYS_kill, z->pid, SIGKILL);
  CloseFd(&z->sock);  // EOF ends a healthy zygote
  child::ReapPid(z->pid);
  z->pid = -1;
}

// Runs one case through the zygote; restarts the zygote if it was lost. The
// zygote enforces the case deadline itself; W allows a margin on top.
void RunCaseViaZygote(const Region &region, Zygote *z) {
  int32_t *status = reinterpret_cast<int32_t *>(region.program() +
                                                reinterpret_cast<const CaseHeader *>(region.program())->size);
  if (z->pid <= 0) {
    int e = StartZygote(region, z);
    if (e != 0) {
      status[0] = kAgentLost;
      status[1] = 0;
      status[2] = e;
      return;
    }
  }
  const CaseHeader *h = reinterpret_cast<const CaseHeader *>(region.program());
  uint32_t cmd = 1;
  long r = SendWithFd(z->sock, &cmd, sizeof cmd, -1);
  if (r >= 0) {
    int fd = -1;
    r = AwaitReply(z->sock, NowMs() + h->timeoutMs + 5000, &cmd, sizeof cmd, &fd);
    if (fd >= 0) close(fd);
    if (r >= 0 && r != static_cast<long>(sizeof cmd)) r = -EPIPE;
  }
  if (r < 0) {
    StopZygote(z, true);
    status[0] = r == -ETIMEDOUT ? kTimeout : kAgentLost;
    status[1] = 0;
    status[2] = static_cast<int32_t>(-r);
  }
}

// ---- validation (JS thread): programs must be memory-safe before W runs them ----

bool ValidateCase(const uint8_t *c, size_t avail, size_t resultsLen, std::string *why, size_t *progSize,
                  size_t *resSize) {
  if (avail < kCaseHeaderSize) return *why = "truncated case header", false;
  CaseHeader h;
  memcpy(&h, c, sizeof h);
  if (h.size < kCaseHeaderSize || h.size > avail || h.size % 8 != 0) return *why = "bad case size", false;
  if (h.nagents < 1 || h.nagents > kMaxAgents) return *why = "bad agent count", false;
  if (static_cast<uint64_t>(kCaseHeaderSize) + static_cast<uint64_t>(h.nsteps) * kStepSize > h.dataOff)
    return *why = "steps overlap data", false;
  if (static_cast<uint64_t>(h.dataOff) + h.dataLen > h.size) return *why = "data out of bounds", false;
  if (h.resultSize < kCaseStatusSize || static_cast<uint64_t>(h.resultOff) + h.resultSize > resultsLen ||
      h.resultOff % 8 != 0 || h.resultSize % 8 != 0)
    return *why = "result area out of bounds", false;
  if (h.timeoutMs == 0 || h.timeoutMs > 600000) return *why = "bad timeout", false;
  const Step *steps = reinterpret_cast<const Step *>(c + kCaseHeaderSize);
  bool spawned[kMaxAgents] = {true};
  for (int i = 0; i < h.nsteps; i++) {
    Step s;
    memcpy(&s, &steps[i], sizeof s);
    std::string at = " at step " + std::to_string(i);
    if (s.op < 1 || s.op > kRunnerOpMax) return *why = "bad op" + at, false;
    if (s.agent >= h.nagents) return *why = "bad agent" + at, false;
    if (s.fdslot >= kMaxFdSlots) return *why = "bad fd slot" + at, false;
    if (s.file >= kNumFiles) return *why = "bad file" + at, false;
    if (s.target != kTargetSelf && s.target >= h.nagents) return *why = "bad target" + at, false;
    if (static_cast<uint64_t>(s.dataOff) + s.dataLen > h.dataLen) return *why = "data out of bounds" + at, false;
    if (s.resOff < kCaseStatusSize || s.resOff % 8 != 0 ||
        static_cast<uint64_t>(s.resOff) + kResultSize > h.resultSize)
      return *why = "result out of bounds" + at, false;
    if (static_cast<uint64_t>(s.outOff) + s.outCap > h.resultSize) return *why = "output out of bounds" + at, false;
    if (s.op == kSpawn) {
      if (s.agent != 0 || s.target == 0 || s.target == kTargetSelf || spawned[s.target])
        return *why = "bad spawn" + at, false;
      spawned[s.target] = true;
      continue;
    }
    if (!spawned[s.agent]) return *why = "agent used before spawn" + at, false;
    if (s.target != kTargetSelf && !spawned[s.target]) return *why = "target not spawned" + at, false;
    // W is Node: it may not change credentials or namespaces, nor name itself.
    if ((s.op == kSetnsPath || s.op == kReadPath || s.op == kStatPath || s.op == kOpenPath) &&
        (s.dataLen < 2 || s.dataLen > 4096 || c[h.dataOff + s.dataOff + s.dataLen - 1] != 0))
      return *why = "path must be NUL-terminated" + at, false;
    if (s.agent == 0 && (s.op <= kSetnsUser || s.op == kSetnsPath || s.op == kSetnsFd || s.op == kOpenPath ||
                         s.target == kTargetSelf))
      return *why = "operation not allowed in the worker" + at, false;
    if (s.op == kTakeFd && i > 0 && steps[i - 1].agent == s.agent)
      return *why = "TAKE_FD must start a run" + at, false;
    if (s.op == kGiveFd && i + 1 < h.nsteps && steps[i + 1].agent == s.agent)
      return *why = "GIVE_FD must end a run" + at, false;
  }
  *progSize = h.size;
  *resSize = h.resultSize;
  return true;
}

class RunWorker : public Napi::AsyncWorker {
 public:
  RunWorker(Napi::Env env, Napi::Buffer<uint8_t> prog, Napi::Buffer<uint8_t> res, size_t maxProg, size_t maxRes)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        progRef_(Napi::Persistent(prog)),
        resRef_(Napi::Persistent(res)),
        prog_(prog.Data()),
        progLen_(prog.Length()),
        res_(res.Data()),
        maxProg_(maxProg),
        maxRes_(maxRes) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    const size_t size = kControlSize + maxProg_ + maxRes_;
    void *m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      err_ = errno;
      SetError("mmap");
      return;
    }
    Region region{static_cast<uint8_t *>(m), size};
    Zygote zygote;
    size_t off = 0;
    while (off < progLen_) {
      CaseHeader h;
      memcpy(&h, prog_ + off, sizeof h);
      memcpy(region.program(), prog_ + off, h.size);
      memset(region.program() + h.size, 0, h.resultSize);
      RunCaseViaZygote(region, &zygote);
      memcpy(res_ + h.resultOff, region.program() + h.size, h.resultSize);
      off += h.size;
    }
    StopZygote(&zygote, false);
    munmap(m, size);
  }

  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error &) override {
    deferred_.Reject(MakeErrnoError(Env(), err_, "mmap", "mapping the kernel runner's shared region"));
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Buffer<uint8_t>> progRef_;
  Napi::Reference<Napi::Buffer<uint8_t>> resRef_;
  const uint8_t *prog_;
  size_t progLen_;
  uint8_t *res_;
  size_t maxProg_;
  size_t maxRes_;
  int err_ = 0;
};

// runMapPrograms(programs, results) -> Promise<void>. Runs the cases in
// `programs` one after another on a threadpool thread, writing each case's
// result area into `results`. Call it several times for parallel jobs.
Napi::Value RunMapPrograms(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsBuffer() || !info[1].IsBuffer())
    ThrowUsage(env, "runMapPrograms(programs: Buffer, results: Buffer)");
  auto prog = info[0].As<Napi::Buffer<uint8_t>>();
  auto res = info[1].As<Napi::Buffer<uint8_t>>();
  size_t off = 0, maxProg = 0, maxRes = 0;
  while (off < prog.Length()) {
    std::string why;
    size_t p = 0, r = 0;
    if (!ValidateCase(prog.Data() + off, prog.Length() - off, res.Length(), &why, &p, &r))
      ThrowUsage(env, "runMapPrograms: invalid program at byte " + std::to_string(off) + ": " + why);
    maxProg = p > maxProg ? p : maxProg;
    maxRes = r > maxRes ? r : maxRes;
    off += p;
  }
  auto *w = new RunWorker(env, prog, res, maxProg, maxRes);
  Napi::Promise promise = w->Promise();
  w->Queue();
  return promise;
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("runMapPrograms", Napi::Function::New(env, RunMapPrograms, "runMapPrograms"));
}

}  // namespace

USERNS_REGISTER(Register);

}  // namespace userns
