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
//   signals in the kernel, the child resets ignored ones too (as libuv does)
//   and restores the parent's mask just before execve.
// * Every failure writes one fixed-size Record {kind, step, errno} to the
//   O_CLOEXEC error pipe and exits 127. EOF without a record means execve
//   succeeded (or, for exit-mode helpers, that the steps all ran).
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
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <string>
#include <unordered_set>
#include <vector>

#include "addon.h"
#include "child/sandbox.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace userns {
namespace {

// ---------------------------------------------------------------- raw syscalls

#if defined(__x86_64__)
#define USERNS_CLONE_VM 1
// A syscall that returns -errno and never writes errno (see the contract).
__attribute__((always_inline)) inline long Sys(long n, long a = 0, long b = 0, long c = 0, long d = 0,
                                               long e = 0, long f = 0) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

// clone3 onto a new stack. The child cannot return into this function (its
// stack pointer is the new stack), so the child branch calls fn(arg) right
// here and exits with its result. r8/r9 survive the syscall in both tasks.
__attribute__((noinline)) long Clone3Vm(struct clone_args *ca, int (*fn)(void *), void *arg) {
  long ret;
  register long r8 __asm__("r8") = reinterpret_cast<long>(fn);
  register long r9 __asm__("r9") = reinterpret_cast<long>(arg);
  __asm__ volatile(
      "syscall\n\t"
      "testq %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      "xorl %%ebp, %%ebp\n\t"
      "movq %%r9, %%rdi\n\t"
      "callq *%%r8\n\t"
      "movl %%eax, %%edi\n\t"
      "movl $231, %%eax\n\t"  // exit_group
      "syscall\n\t"
      "hlt\n\t"
      "1:\n\t"
      : "=a"(ret)
      : "a"(static_cast<long>(__NR_clone3)), "D"(ca), "S"(sizeof(*ca)), "r"(r8), "r"(r9)
      : "rcx", "r11", "memory", "cc");
  return ret;
}
#else
#define USERNS_CLONE_VM 0
// Fork-like path: the child has its own copy of memory, so libc's syscall()
// and its errno are safe to use.
inline long Sys(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
  long r = syscall(n, a, b, c, d, e, f);
  return r < 0 ? -errno : r;
}
#endif

// ---------------------------------------------------------------- the step list

// Operations, mirrored by lib/spawn/native-steps.ts (same numbers).
enum Op : int32_t {
  kWait = 1,          // a: 1 = tell the parent first (READY record)
  kSetns = 2,         // a: fd, b: nstype
  kUnshare = 3,       // a: CLONE_NEW* flags
  kChdir = 4,         // s: path
  kSetgroups = 5,     // a: offset into gids, b: count
  kSetresgid = 6,     // a: gid
  kSetresuid = 7,     // a: uid
  kPdeathsig = 8,     // a: signal, b: 1 = check the parent through the error pipe, not getppid
  kSetsid = 9,        //
  kStdio = 10,        // apply fdSrc, then CLOEXEC on everything above
  kAttachMount = 11,  // a: detached mount fd, s: target path
  kWriteFile = 12,    // s: path, s2: data
  kPropagation = 13,  // a: mount flags for "/" (MS_REC|MS_PRIVATE ...)
  kDumpable = 14,     // a: 0/1
  kFork = 15,         // the later steps run in a new process (see the contract); this one exits 0
  // Sandbox steps (native/child/sandbox.h; prepared by lib/sandbox/prepare.ts).
  kSbBase = 16,           // the base tmpfs, pivot into it, the new root at /newroot
  kSbFs = 17,             // a: subop | flags << 8 | mode << 16, b: fd/attrs, s: dest, s2: source/spec/data
  kSbPivot = 18,          // the new root becomes "/", the old one is detached
  kSbHostname = 19,       // s: the name
  kSbKeepCaps = 20,       // PR_SET_KEEPCAPS before a uid change
  kSbCaps = 21,           // a: capabilities kept (bit mask), b: cap_last_cap
  kSbNoNewPrivs = 22,     //
  kSbSeccomp = 23,        // s2: struct sock_filter[]
  kSbLoopback = 24,       //
  kSbDisableUserns = 25,  //
  kSbReaper = 26,         // this process stays as the reaping pid 1, the rest runs in its child
  kExecSearch = 27,       // s2: candidate paths, NUL-separated: execve each until one is not ENOENT
};

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
  // Parent-only state below: the child never reads it.
  int syncR = -1, syncW = -1, errR = -1, errW = -1;
  void *stack = nullptr;
  void *forkStack = nullptr;
  // A kSbReaper step on the CLONE_VM path: pid 1 clones the program onto
  // `reaperStack` (CLONE_VM, its own child), then execs the init binary.
  // Prepared before the first clone3, like forkArgs.
  int reaperStep = -1;
  struct clone_args reaperArgs = {};
  void *reaperStack = nullptr;
  size_t mapSize = 0;
  int pid = -1;
  int pidfd = -1;
  int waitsLeft = 0;
  int dumpable = -1;
  bool leaked = false;
  bool grandDone = false;  // the grandchild was reaped, or its pidfd handed over
  State state = State::kHeld;
};

// ---------------------------------------------------------------- child side

#define CHILD_FN __attribute__((noinline, no_sanitize_address, no_sanitize_undefined))

CHILD_FN void ChildFail(const Child *c, int step, long negErr) {
  Record r;
  r.kind = kFail;
  r.step = step;
  r.err = static_cast<int32_t>(-negErr);
  Sys(__NR_write, c->childErrW, reinterpret_cast<long>(&r), sizeof r);
  for (;;) Sys(__NR_exit_group, 127);
}

// The kernel's struct sigaction for rt_sigaction (not glibc's).
struct KSigaction {
  unsigned long handler;
  unsigned long flags;
  unsigned long restorer;
  unsigned long mask;
};

CHILD_FN long ChildStdio(const Child *c) {
  int n = static_cast<int>(c->fdSrc.size());
  int src[kMaxFds];
  int devNull = -1;
  for (int i = 0; i < n; i++) {
    src[i] = c->fdSrc[i];
    if (src[i] != kDevNull) continue;
    if (devNull < 0) {
      long r = Sys(__NR_openat, AT_FDCWD, reinterpret_cast<long>("/dev/null"), O_RDWR | O_CLOEXEC | O_NOCTTY);
      if (r < 0) return r;
      devNull = static_cast<int>(r);
      // The lowest free fd may be a target slot (the caller closed fd 0,
      // say): move it above the slots so that it is an ordinary source.
      if (devNull < n) {
        r = Sys(__NR_fcntl, devNull, F_DUPFD_CLOEXEC, n);
        Sys(__NR_close, devNull);
        if (r < 0) return r;
        devNull = static_cast<int>(r);
      }
    }
    src[i] = devNull;
  }
  // Pass 1: move every source that sits on a target slot it does not belong
  // to out of the way (above n), so pass 2 never overwrites an fd that a
  // later target still needs.
  for (int i = 0; i < n; i++) {
    if (src[i] >= 0 && src[i] < n && src[i] != i) {
      long r = Sys(__NR_fcntl, src[i], F_DUPFD_CLOEXEC, n);
      if (r < 0) return r;
      int old = src[i];
      for (int j = i; j < n; j++)
        if (src[j] == old) src[j] = static_cast<int>(r);
    }
  }
  // Pass 2: dup3 into place (the copy is not close-on-exec); an fd already in
  // place just loses its close-on-exec flag.
  for (int i = 0; i < n; i++) {
    long r;
    if (src[i] == i) {
      // Inheriting an fd the parent does not have open leaves it closed.
      r = Sys(__NR_fcntl, i, F_SETFD, 0);
      if (r == -EBADF) r = 0;
    } else if (src[i] >= 0) {
      r = Sys(__NR_dup3, src[i], i, 0);
    } else {
      r = Sys(__NR_close, i);
      if (r == -EBADF) r = 0;
    }
    if (r < 0) return r;
  }
  // Hygiene: nothing above the stdio the caller asked for survives exec,
  // whatever flags other code in the process opened it with. Kernels before
  // 5.11 lack CLOSE_RANGE_CLOEXEC (EINVAL); the fds we created are O_CLOEXEC
  // anyway, so that is not an error.
  long r = Sys(__NR_close_range, n, ~0U, CLOSE_RANGE_CLOEXEC);
  if (r < 0 && r != -EINVAL && r != -ENOSYS) return r;
  return 0;
}

#if USERNS_CLONE_VM
CHILD_FN int GrandchildMain(void *arg);
CHILD_FN int ReaperProgramMain(void *arg);
#endif

// Runs steps [from, end) and then execve (or exit, in exit mode). Never returns.
CHILD_FN int RunSteps(const Child *c, int from, long ppid) {
  int nsteps = static_cast<int>(c->steps.size());
  child::SandboxState sb;
  for (int i = from; i < nsteps; i++) {
    const Step &s = c->steps[i];
    long r = 0;
    switch (s.op) {
      case kWait: {
        if (s.a) {
          Record rec;
          rec.kind = kReady;
          rec.step = i;
          rec.err = 0;
          r = Sys(__NR_write, c->childErrW, reinterpret_cast<long>(&rec), sizeof rec);
          if (r < 0) break;
        }
        char go = 0;
        do r = Sys(__NR_read, c->childSyncR, reinterpret_cast<long>(&go), 1);
        while (r == -EINTR);
        // EOF: the parent gave up on us (or died) without releasing.
        if (r == 0) r = -ECANCELED;
        break;
      }
      case kSetns:
        r = Sys(__NR_setns, s.a, s.b);
        break;
      case kUnshare:
        r = Sys(__NR_unshare, s.a);
        break;
      case kChdir:
        r = Sys(__NR_chdir, reinterpret_cast<long>(s.s));
        break;
      case kSetgroups:
        r = Sys(__NR_setgroups, s.b, reinterpret_cast<long>(c->gids.data() + s.a));
        break;
      case kSetresgid:
        r = Sys(__NR_setresgid, s.a, s.a, s.a);
        break;
      case kSetresuid:
        r = Sys(__NR_setresuid, s.a, s.a, s.a);
        break;
      case kPdeathsig:
        r = Sys(__NR_prctl, PR_SET_PDEATHSIG, s.a);
        if (r != 0) break;
        // The parent may have died before the signal was armed.
        if (s.b) {
          // In a pid namespace of its own the parent has no pid here
          // (getppid() is 0 before and after its death). The parent holds
          // the only read end of the error pipe, and an exiting process
          // closes its files before its children are reparented and sent
          // their parent-death signal (do_exit: exit_files before
          // exit_notify): a pipe without reader (POLLERR) means the parent
          // is gone and the signal may have been missed.
          struct pollfd pfd;
          pfd.fd = c->childErrW;
          pfd.events = POLLOUT;
          pfd.revents = 0;
          struct timespec zero;
          zero.tv_sec = 0;
          zero.tv_nsec = 0;
          long n = Sys(__NR_ppoll, reinterpret_cast<long>(&pfd), 1, reinterpret_cast<long>(&zero), 0, 8);
          if (n < 0) r = n;
          else if (n > 0 && (pfd.revents & POLLERR)) r = -ESRCH;
        } else if (Sys(__NR_getppid) != ppid) {
          r = -ESRCH;
        }
        break;
      case kSetsid:
        r = Sys(__NR_setsid);
        break;
      case kStdio:
        r = ChildStdio(c);
        break;
      case kAttachMount:
        r = Sys(__NR_move_mount, s.a, reinterpret_cast<long>(""), AT_FDCWD, reinterpret_cast<long>(s.s),
                MOVE_MOUNT_F_EMPTY_PATH);
        break;
      case kWriteFile: {
        long fd = Sys(__NR_openat, AT_FDCWD, reinterpret_cast<long>(s.s), O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
          r = fd;
          break;
        }
        r = Sys(__NR_write, fd, reinterpret_cast<long>(s.s2), static_cast<long>(s.s2len));
        if (r >= 0 && static_cast<size_t>(r) != s.s2len) r = -EIO;
        Sys(__NR_close, fd);
        break;
      }
      case kPropagation:
        r = Sys(__NR_mount, reinterpret_cast<long>("none"), reinterpret_cast<long>("/"), 0, s.a, 0);
        break;
      case kDumpable:
        r = Sys(__NR_prctl, PR_SET_DUMPABLE, s.a);
        break;
      case kFork:
#if USERNS_CLONE_VM
        if (i != c->forkStep) {
          r = -EINVAL;
          break;
        }
        // The grandchild continues at step i + 1 (GrandchildMain); the
        // kernel reads forkArgs and writes c->grandPid before it runs.
        r = Clone3Vm(const_cast<struct clone_args *>(&c->forkArgs), GrandchildMain, const_cast<Child *>(c));
        if (r >= 0) {
          for (;;) Sys(__NR_exit_group, 0);
        }
#else
        r = -ENOSYS;
#endif
        break;
      case kSbBase:
        r = child::SandboxBase(&sb);
        break;
      case kSbFs:
        r = child::SandboxFs(&sb, s.a, s.b, s.s, s.s2, s.s2len);
        break;
      case kSbPivot:
        r = child::SandboxPivot(&sb);
        break;
      case kSbHostname:
        r = child::SandboxHostname(s.s2, s.s2len);
        break;
      case kSbKeepCaps:
        r = child::SandboxKeepCaps();
        break;
      case kSbCaps:
        r = child::SandboxCapabilities(static_cast<uint64_t>(s.a), static_cast<int>(s.b));
        break;
      case kSbNoNewPrivs:
        r = child::SandboxNoNewPrivs();
        break;
      case kSbSeccomp:
        r = child::SandboxSeccomp(s.s2, s.s2len);
        break;
      case kSbLoopback:
        r = child::SandboxLoopback();
        break;
      case kSbDisableUserns:
        r = child::SandboxDisableUserns(&sb, s.a, s.b);
        break;
      case kSbReaper:
#if USERNS_CLONE_VM
        if (i == c->reaperStep && c->reaperStack != nullptr) {
          // pid 1 shares the parent's memory: it starts the program (which
          // goes on with the next steps on its own stack), then becomes the
          // init binary, leaving that memory for good.
          long pid = Clone3Vm(const_cast<struct clone_args *>(&c->reaperArgs), ReaperProgramMain, const_cast<Child *>(c));
          if (pid < 0) {
            r = pid;
            break;
          }
          char num[24];
          long v = pid, n = 0;
          char tmp[24];
          do {
            tmp[n++] = static_cast<char>('0' + v % 10);
            v /= 10;
          } while (v > 0);
          for (long k = 0; k < n; k++) num[k] = tmp[n - 1 - k];
          num[n] = 0;
          const char *iargv[] = {"userns-init", num, nullptr};
          const char *ienvp[] = {nullptr};
          // Nothing of the parent's may stay open in pid 1 (its stdio would keep pipes alive).
          Sys(__NR_close_range, 0, ~0U, CLOSE_RANGE_CLOEXEC);
          r = Sys(__NR_execveat, s.b, reinterpret_cast<long>(""), reinterpret_cast<long>(iargv),
                  reinterpret_cast<long>(ienvp), AT_EMPTY_PATH);
          Sys(__NR_kill, pid, SIGKILL);
          break;
        }
#endif
        r = child::SandboxReaper(c->childErrW);
        break;
      case kExecSearch: {
        // execvp's search, inside the sandbox: the candidates were listed by
        // the parent from PATH; the first that is not missing decides.
        Sys(__NR_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&c->oldmask), 0, 8);
        const char *p = s.s2;
        const char *end = s.s2 + s.s2len;
        long first = -ENOENT;
        while (p < end) {
          r = Sys(__NR_execve, reinterpret_cast<long>(p), reinterpret_cast<long>(c->argv.data()),
                  reinterpret_cast<long>(c->envp.data()));
          if (r != -ENOENT && r != -ENOTDIR && first == -ENOENT) first = r;
          while (p < end && *p != 0) p++;
          p++;
        }
        r = first;  // the child fails now: no need to block signals again
        break;
      }
      default:
        r = -EINVAL;
    }
    if (r < 0) ChildFail(c, i, r);
  }
  if (c->exitMode) {
    for (;;) Sys(__NR_exit_group, 0);
  }
  Sys(__NR_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&c->oldmask), 0, 8);
  long r = Sys(__NR_execve, reinterpret_cast<long>(c->path.c_str()), reinterpret_cast<long>(c->argv.data()),
               reinterpret_cast<long>(c->envp.data()));
  ChildFail(c, nsteps, r);
  return 127;
}

#if USERNS_CLONE_VM
// The program's process after a kFork step. It starts with the first
// child's state: its fds (the parent's ends of the pipes already closed),
// default signal dispositions, every signal blocked, its credentials and
// namespaces; it is pid 1 of the pid namespace the first child unshared.
CHILD_FN int GrandchildMain(void *arg) {
  const Child *c = static_cast<const Child *>(arg);
  return RunSteps(c, c->forkStep + 1, Sys(__NR_getppid));
}
#endif

#if USERNS_CLONE_VM
// The program's process under an exec'd init (kSbReaper on the CLONE_VM
// path): a child of pid 1, sharing memory until its own execve.
CHILD_FN int ReaperProgramMain(void *arg) {
  const Child *c = static_cast<const Child *>(arg);
  return RunSteps(c, c->reaperStep + 1, Sys(__NR_getppid));
}
#endif

CHILD_FN int ChildMain(void *arg) {
  const Child *c = static_cast<const Child *>(arg);
  // Our copies of the parent's ends: without this, the child would keep its
  // own sync pipe open and never see EOF if the parent died.
  Sys(__NR_close, c->childSyncW);
  Sys(__NR_close, c->childErrR);
  // CLONE_CLEAR_SIGHAND reset handled signals; reset ignored ones as well so
  // the program starts with default dispositions (SIGPIPE above all).
  KSigaction dfl;
  dfl.handler = reinterpret_cast<unsigned long>(SIG_DFL);
  dfl.flags = 0;
  dfl.restorer = 0;
  dfl.mask = 0;
  for (long sig = 1; sig < 65; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    Sys(__NR_rt_sigaction, sig, reinterpret_cast<long>(&dfl), 0, 8);
  }
  return RunSteps(c, 0, Sys(__NR_getppid));
}

// ---------------------------------------------------------------- parent side

void CloseFd(int &fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// Child stacks are reused: a fresh mapping costs mmap + mprotect + munmap and
// a page fault for every page the child touches, and those faults take the
// lock of the mm the child shares with every Node thread. A stack goes back
// to the pool only when Release() would have unmapped it, i.e. when the
// child has exec'd or exited and can no longer run on it.
constexpr size_t kStackPoolMax = 4;
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

// Waits for the child to be gone for good: after this, nothing can run on
// its stack or read the Child.
int Reap(Child *c, siginfo_t *si) {
  memset(si, 0, sizeof *si);
  for (;;) {
    if (waitid(static_cast<idtype_t>(P_PIDFD), c->pidfd, si, WEXITED) == 0) return 0;
    if (errno != EINTR) return errno;
  }
}

// Reaps the grandchild of a kFork step, if the first child created it, with
// SIGKILL first if `kill`. Call only once the first child was reaped, so
// that grandPid is final. The grandchild is our child (CLONE_PARENT) and not
// yet waited for, so its pid cannot name another process before this waitid.
int ReapGrandchild(Child *c, bool kill) {
  if (c->grandPid <= 0 || c->grandDone) return 0;
  if (kill) ::kill(c->grandPid, SIGKILL);
  siginfo_t si;
  for (;;) {
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, static_cast<id_t>(c->grandPid), &si, WEXITED) == 0) break;
    if (errno != EINTR) return errno;
  }
  c->grandDone = true;
  return 0;
}

// Frees what only the child could still be using. Call only when the child
// has exec'd, exited and been reaped, or never existed. With `leak`, the
// stack stays mapped (and the caller keeps the Child): used when reaping
// failed and the child might, in theory, still run on them.
void Release(Child *c, bool leak = false) {
  CloseFd(c->syncW);
  CloseFd(c->errR);
  CloseFd(c->syncR);
  CloseFd(c->errW);
  if (c->stack != nullptr && !leak) GiveStack(c->stack, c->mapSize);
  if (c->forkStack != nullptr && !leak) GiveStack(c->forkStack, c->mapSize);
  if (c->reaperStack != nullptr && !leak) GiveStack(c->reaperStack, c->mapSize);
  c->reaperStack = nullptr;
  c->stack = nullptr;
  c->forkStack = nullptr;
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

int64_t ArgInt(const Napi::CallbackInfo &info, const Napi::Value &v, const char *name) {
  if (!v.IsNumber()) ThrowUsage(info.Env(), std::string(name) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int64_t>(d))) ThrowUsage(info.Env(), std::string(name) + " must be an integer");
  return static_cast<int64_t>(d);
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

// spawnStart(cloneFlags, path, argv, envp, fdSrc, steps, strings, gids, exitMode)
//   steps: flat [op, a, b, sIndex, s2Index] per step; sIndex/s2Index index
//   `strings` or are -1.
// Returns [pid, handle]. The child is running its steps and, if the list
// starts with a wait, is blocked there.
Napi::Value SpawnStart(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto c = std::make_unique<Child>();
  int64_t cloneFlags = ArgInt(info, info[0], "cloneFlags");
  c->path = ArgString(info, 1, "path");
  if (c->path.find('\0') != std::string::npos) ThrowUsage(env, "path must not contain NUL bytes");
  std::vector<std::string> argv = ArgStrings(info, 2, "argv");
  // null: this process's environment as libc holds it (what process.env
  // reads and writes on the main thread), copied here without a JS string
  // per variable.
  std::vector<std::string> envp;
  if (info.Length() > 3 && info[3].IsNull()) {
    for (char **e = environ; e != nullptr && *e != nullptr; e++) envp.emplace_back(*e);
  } else {
    envp = ArgStrings(info, 3, "envp");
  }
  if (info.Length() <= 4 || !info[4].IsArray()) ThrowUsage(env, "fdSrc must be an array of fds");
  Napi::Array fdSrc = info[4].As<Napi::Array>();
  if (fdSrc.Length() > kMaxFds) ThrowUsage(env, "too many stdio entries");
  for (uint32_t k = 0; k < fdSrc.Length(); k++) {
    int64_t fd = ArgInt(info, fdSrc.Get(k), "fdSrc[i]");
    if (fd < kDevNull || fd > INT_MAX) ThrowUsage(env, "fdSrc[i] must be an fd, -1 or -2 (/dev/null)");
    c->fdSrc.push_back(static_cast<int>(fd));
  }
  if (info.Length() <= 5 || !info[5].IsArray()) ThrowUsage(env, "steps must be a flat array of numbers");
  Napi::Array steps = info[5].As<Napi::Array>();
  if (steps.Length() % 5 != 0) ThrowUsage(env, "steps must have 5 numbers per step");
  std::vector<std::string> strings = ArgStrings(info, 6, "strings");
  if (info.Length() <= 7 || !info[7].IsArray()) ThrowUsage(env, "gids must be an array");
  Napi::Array gids = info[7].As<Napi::Array>();
  for (uint32_t k = 0; k < gids.Length(); k++) {
    int64_t g = ArgInt(info, gids.Get(k), "gids[i]");
    if (g < 0 || g > UINT32_MAX) ThrowUsage(env, "gids[i] must be a u32");
    c->gids.push_back(static_cast<gid_t>(g));
  }
  c->exitMode = info.Length() > 8 && info[8].ToBoolean().Value();
  // blobs: binary step data (NUL bytes allowed: fs specs, BPF programs),
  // named by a step's s2 index -2 - k.
  std::vector<std::string> blobs;
  if (info.Length() > 9 && info[9].IsArray()) {
    Napi::Array a = info[9].As<Napi::Array>();
    for (uint32_t k = 0; k < a.Length(); k++) {
      Napi::Value v = a.Get(k);
      if (!v.IsTypedArray()) ThrowUsage(env, "blobs must be Uint8Arrays");
      Napi::Uint8Array u = v.As<Napi::Uint8Array>();
      blobs.emplace_back(reinterpret_cast<const char *>(u.Data()), u.ByteLength());
    }
  }
  // noVm: a fork-like child with its own memory even where CLONE_VM is used,
  // for a child that outlives exec (the sandbox's reaping pid 1).
  bool noVm = info.Length() > 10 && info[10].ToBoolean().Value();

  // Storage first, pointers after: the vector must not move once pointed into.
  size_t nArgv = argv.size(), nEnv = envp.size();
  size_t nStrings = strings.size();
  c->storage.reserve(nArgv + nEnv + nStrings + blobs.size());
  for (auto &s : argv) c->storage.push_back(std::move(s));
  for (auto &s : envp) c->storage.push_back(std::move(s));
  for (auto &s : strings) c->storage.push_back(std::move(s));
  for (auto &s : blobs) c->storage.push_back(std::move(s));
  for (size_t k = 0; k < nArgv; k++) c->argv.push_back(c->storage[k].data());
  c->argv.push_back(nullptr);
  for (size_t k = 0; k < nEnv; k++) c->envp.push_back(c->storage[nArgv + k].data());
  c->envp.push_back(nullptr);
  const std::string *str = c->storage.data() + nArgv + nEnv;
  size_t nStr = nStrings;
  const std::string *blob = str + nStrings;
  size_t nBlob = c->storage.size() - nArgv - nEnv - nStrings;
  for (uint32_t k = 0; k < steps.Length(); k += 5) {
    Step s{};
    s.op = static_cast<int32_t>(ArgInt(info, steps.Get(k), "step op"));
    s.a = ArgInt(info, steps.Get(k + 1), "step a");
    s.b = ArgInt(info, steps.Get(k + 2), "step b");
    int64_t si = ArgInt(info, steps.Get(k + 3), "step s");
    int64_t s2 = ArgInt(info, steps.Get(k + 4), "step s2");
    if (si >= static_cast<int64_t>(nStr) || s2 >= static_cast<int64_t>(nStr) || -2 - s2 >= static_cast<int64_t>(nBlob))
      ThrowUsage(env, "step string index out of range");
    s.s = si >= 0 ? str[si].c_str() : nullptr;
    if (s2 >= 0) {
      s.s2 = str[s2].data();
      s.s2len = str[s2].size();
    } else if (s2 <= -2) {
      s.s2 = blob[-2 - s2].data();
      s.s2len = blob[-2 - s2].size();
    }
    if ((s.op == kSbFs) && s.s == nullptr) ThrowUsage(env, "step needs a path");
    if ((s.op == kSbFs || s.op == kSbHostname || s.op == kSbSeccomp || s.op == kExecSearch) && s.s2 == nullptr)
      ThrowUsage(env, "step needs data");
    if (s.op == kSbReaper) {
      if (c->exitMode || c->reaperStep >= 0) ThrowUsage(env, "at most one reaper step, not in exit mode");
      // Without noVm, pid 1 execs the init binary whose fd is in b (the CLONE_VM path only).
      if (!noVm && (!USERNS_CLONE_VM || s.b < 0)) ThrowUsage(env, "a reaper step needs noVm or an init fd");
      if (!noVm) c->reaperStep = static_cast<int>(c->steps.size());
    }
    if ((s.op == kChdir || s.op == kAttachMount || s.op == kWriteFile) && s.s == nullptr)
      ThrowUsage(env, "step needs a path");
    if (s.op == kSetgroups && (s.a < 0 || s.b < 0 || static_cast<size_t>(s.a + s.b) > c->gids.size()))
      ThrowUsage(env, "setgroups step out of range");
    if (s.op == kWait) c->waitsLeft++;
    if (s.op == kFork) {
      if (c->forkStep >= 0) ThrowUsage(env, "only one fork step");
      if (noVm) ThrowUsage(env, "a fork step cannot run in a noVm child");
      if (c->exitMode) ThrowUsage(env, "a fork step cannot run in exit mode");
      if (!USERNS_CLONE_VM) ThrowUsage(env, "a fork step needs the CLONE_VM spawn path (x86_64)");
      c->forkStep = static_cast<int>(c->steps.size());
    }
    c->steps.push_back(s);
  }

  int sp[2], ep[2];
  if (pipe2(sp, O_CLOEXEC) < 0) ThrowErrno(env, errno, "pipe2", "creating the spawn sync pipe");
  if (pipe2(ep, O_CLOEXEC) < 0) {
    int e = errno;
    close(sp[0]);
    close(sp[1]);
    ThrowErrno(env, e, "pipe2", "creating the spawn error pipe");
  }
  c->syncR = c->childSyncR = sp[0];
  c->syncW = c->childSyncW = sp[1];
  c->errR = c->childErrR = ep[0];
  c->errW = c->childErrW = ep[1];

  struct clone_args ca;
  memset(&ca, 0, sizeof ca);
  int pidfd = -1;
  ca.flags = static_cast<uint64_t>(cloneFlags) | CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
  ca.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  ca.exit_signal = SIGCHLD;
#if USERNS_CLONE_VM
  if (!noVm) {
  c->mapSize = kStackSize + kGuardSize;
  void *map = TakeStack(c->mapSize);
  if (map == nullptr) {
    int e = errno;
    Release(c.get());
    ThrowErrno(env, e, "mmap", "allocating the child's stack");
  }
  c->stack = map;
  if (c->forkStep >= 0) {
    void *fmap = TakeStack(c->mapSize);
    if (fmap == nullptr) {
      int e = errno;
      Release(c.get());
      ThrowErrno(env, e, "mmap", "allocating the program's stack");
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
      Release(c.get());
      ThrowErrno(env, e, "mmap", "allocating the program's stack");
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
  c->dumpable = prctl(PR_GET_DUMPABLE);
  }
#endif

  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &c->oldmask);
  long pid;
#if USERNS_CLONE_VM
  if (!noVm) {
    pid = Clone3Vm(&ca, ChildMain, c.get());
  } else {
    pid = Sys(__NR_clone3, reinterpret_cast<long>(&ca), sizeof ca);
    if (pid == 0) {
      // A copy of this process's memory: ChildMain never returns.
      ChildMain(c.get());
      for (;;) Sys(__NR_exit_group, 127);
    }
  }
#else
  pid = syscall(SYS_clone3, &ca, sizeof ca);
  if (pid == 0) _exit(ChildMain(c.get()));
  if (pid < 0) pid = -errno;
#endif
  pthread_sigmask(SIG_SETMASK, &c->oldmask, nullptr);
  if (pid < 0) {
    Release(c.get());
    ThrowErrno(env, static_cast<int>(-pid), "clone3", "creating the child process");
  }
  // The child's ends: only the child may hold them, or EOF never comes.
  CloseFd(c->syncR);
  CloseFd(c->errW);
  c->pid = static_cast<int>(pid);
  c->pidfd = pidfd;

  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, static_cast<double>(pid)));
  out.Set(1u, Napi::External<Child>::New(env, c.release(), FinalizeChild));
  return out;
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
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, c->grandPid, 0));
  if (pidfd < 0) {
    int pe = errno;
    e = ReapGrandchild(c, true);
    Release(c, e != 0);
    ThrowErrno(env, pe, "pidfd_open", "opening a pidfd for the program");
  }
  c->grandDone = true;
  Release(c);
  out.Set("kind", "exec");
  out.Set("pidfd", pidfd);
  out.Set("pid", c->grandPid);
  return out;
}

// spawnResume(handle) -> one of
//   {kind: "ready", step}                 the child told us it reached a wait
//   {kind: "failed", step, errno}         a step failed; the child is reaped
//   {kind: "exec", pidfd, pid}            execve succeeded; the pidfd is yours
//                                         (after a fork step: the program's)
//   {kind: "exit", code, signal}          exit-mode child finished and is reaped
// Releases the child from the wait it is blocked at, if any, then blocks
// until the next event. The waits are short: the child only runs its own
// steps (setns, unshare, chdir, execve ...).
Napi::Value SpawnResume(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Child *c = ArgChild(info, 0);
  if (c->state != State::kHeld) ThrowUsage(env, "spawn handle already finished");
  bool release = info.Length() > 1 ? info[1].ToBoolean().Value() : true;
  if (release && c->waitsLeft > 0) {
    char go = 1;
    ssize_t w;
    do w = write(c->syncW, &go, 1);
    while (w < 0 && errno == EINTR);
    // EPIPE: the child is gone already; the error pipe says why.
    c->waitsLeft--;
    if (c->waitsLeft == 0) CloseFd(c->syncW);
  }
  Record rec;
  size_t got = 0;
  while (got < sizeof rec) {
    ssize_t n = read(c->errR, reinterpret_cast<char *>(&rec) + got, sizeof rec - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  Napi::Object out = Napi::Object::New(env);
  if (got == sizeof rec && rec.kind == kReady) {
    out.Set("kind", "ready");
    out.Set("step", rec.step);
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
  // EOF: execve replaced the child's memory (or it died by a signal before
  // exec, which the exit watcher will report). Either way it no longer runs
  // on our stack or reads the Child.
  if (c->forkStep >= 0) return ForkedExec(env, c, out);
  int pidfd = c->pidfd;
  c->pidfd = -1;
  Release(c);
  out.Set("kind", "exec");
  out.Set("pidfd", pidfd);
  out.Set("pid", c->pid);
  return out;
}

// spawnAbort(handle): SIGKILL through the pidfd, reap, free. For a child
// whose maps could not be written, or that is no longer wanted.
Napi::Value SpawnAbort(const Napi::CallbackInfo &info) {
  Child *c = ArgChild(info, 0);
  if (c->state == State::kHeld) KillAndReap(c);
  return info.Env().Undefined();
}

// ---------------------------------------------------------------- exit watching

// Exit tracking without a thread per child: the pidfd becomes readable when
// the process exits, so libuv polls it with the rest of the loop, and the
// callback reaps with waitid(P_PIDFD).
struct Watch;
struct WatchSet {
  std::unordered_set<Watch *> live;
};

struct Watch {
  uv_poll_t poll;
  int pidfd;
  napi_env env;
  Napi::FunctionReference cb;
  std::unique_ptr<Napi::AsyncContext> ctx;
  WatchSet *set;
  bool exited = false;
  bool exitedNormally = false;
  int status = 0;
};

void OnWatchClosed(uv_handle_t *h);

void StopWatch(Watch *w) {
  w->set->live.erase(w);
  uv_poll_stop(&w->poll);
  uv_close(reinterpret_cast<uv_handle_t *>(&w->poll), OnWatchClosed);
}

// The JS callback runs only once libuv has let go of the fd and we have
// closed it, so by 'exit' the pidfd is gone from the fd table. (Closing it
// earlier is unsafe: libuv's close path still names the fd number to epoll,
// and a reused number would be deregistered by mistake.)
void OnWatchClosed(uv_handle_t *h) {
  std::unique_ptr<Watch> w(static_cast<Watch *>(h->data));
  CloseFd(w->pidfd);
  if (w->cb.IsEmpty() || !w->ctx) return;  // env cleanup: no JS any more
  // Raw N-API with status checks, not the throwing wrappers: while a worker
  // is being terminated its loop still runs but JS cannot, and that must not
  // turn into a fatal error. The child has been reaped either way.
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value args[2], recv, result;
  napi_get_null(env, &args[0]);
  napi_get_null(env, &args[1]);
  if (w->exited) napi_create_int32(env, w->status, &args[w->exitedNormally ? 0 : 1]);
  napi_get_global(env, &recv);
  napi_status st = napi_make_callback(env, *w->ctx, recv, w->cb.Value(), 2, args, &result);
  if (st == napi_pending_exception) {
    // A listener threw: report it as an uncaught exception, as Node would.
    napi_value exc;
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

void OnPidfdReadable(uv_poll_t *h, int status, int events) {
  Watch *w = static_cast<Watch *>(h->data);
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (status == 0) {
    int r;
    do r = waitid(static_cast<idtype_t>(P_PIDFD), w->pidfd, &si, WEXITED | WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0 && si.si_pid == 0) return;  // not exited yet
    if (r == 0) {
      w->exited = true;
      w->exitedNormally = si.si_code == CLD_EXITED;
      w->status = si.si_status;
    }
  }
  StopWatch(w);
}

thread_local WatchSet *tlsWatches = nullptr;

// Reaps children still running when their environment ends (a worker
// thread terminated, say): their loop is gone, but they are still our
// children and must not become zombies. One thread for all of them, only
// in this case; it ends when the last one has exited.
void ReapLeftovers(std::vector<int> pidfds) {
  while (!pidfds.empty()) {
    std::vector<struct pollfd> p;
    for (int fd : pidfds) p.push_back({fd, POLLIN, 0});
    if (poll(p.data(), p.size(), -1) < 0 && errno != EINTR) break;
    std::vector<int> rest;
    for (auto &e : p) {
      if (e.revents == 0) {
        rest.push_back(e.fd);
        continue;
      }
      siginfo_t si;
      memset(&si, 0, sizeof si);
      if (waitid(static_cast<idtype_t>(P_PIDFD), e.fd, &si, WEXITED | WNOHANG) == 0 && si.si_pid == 0) {
        rest.push_back(e.fd);
        continue;
      }
      close(e.fd);
    }
    pidfds.swap(rest);
  }
  for (int fd : pidfds) close(fd);
}

void CleanupWatches(WatchSet *set) {
  if (tlsWatches == set) tlsWatches = nullptr;
  std::vector<Watch *> all(set->live.begin(), set->live.end());
  std::vector<int> leftovers;
  for (Watch *w : all) {
    w->cb.Reset();
    w->ctx.reset();
    // The reaper owns the pidfd from here; libuv only deregisters it.
    leftovers.push_back(w->pidfd);
    StopWatch(w);
    w->pidfd = -1;
  }
  delete set;
  if (!leftovers.empty()) std::thread(ReapLeftovers, std::move(leftovers)).detach();
}

// Keeps this library mapped for the life of the process. A worker that
// loaded the addon unloads it when it ends, but libuv still runs our close
// callbacks after that, and the leftover reaper thread runs our code.
// A held CLONE_VM child also runs our code until it execs.
void PinAddon() {
  static std::once_flag once;
  std::call_once(once, [] {
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&ReapLeftovers), &info) != 0 && info.dli_fname != nullptr)
      dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  });
}

// One set per environment (one per thread: a worker has its own env and
// loop); the cleanup hook closes what is still watched when the env ends.
WatchSet *Watches(Napi::Env env) {
  if (tlsWatches == nullptr) {
    tlsWatches = new WatchSet();
    env.AddCleanupHook(CleanupWatches, tlsWatches);
  }
  return tlsWatches;
}

void FinalizeWatch(Napi::Env, Watch *) {}

// pidfdWatch(pidfd, cb(code, signal)) -> handle. Takes ownership of pidfd:
// it is closed once the child has been reaped.
Napi::Value PidfdWatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int pidfd = ArgFd(info, 0, "pidfd");
  if (info.Length() < 2 || !info[1].IsFunction()) ThrowUsage(env, "cb must be a function");
  uv_loop_t *loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr)
    ThrowUsage(env, "no event loop for this environment");
  auto w = std::make_unique<Watch>();
  w->pidfd = pidfd;
  w->env = env;
  w->cb = Napi::Persistent(info[1].As<Napi::Function>());
  w->ctx = std::make_unique<Napi::AsyncContext>(env, "userns.spawn");
  int r = uv_poll_init(loop, &w->poll, pidfd);
  if (r < 0) ThrowErrno(env, -r, "uv_poll_init", "watching the child's pidfd");
  w->poll.data = w.get();
  w->set = Watches(env);
  r = uv_poll_start(&w->poll, UV_READABLE, OnPidfdReadable);
  if (r < 0) {
    Watch *raw = w.release();
    raw->set->live.insert(raw);
    raw->pidfd = -1;  // the caller still owns it on failure
    raw->cb.Reset();
    StopWatch(raw);
    ThrowErrno(env, -r, "uv_poll_start", "watching the child's pidfd");
  }
  Watch *raw = w.release();
  raw->set->live.insert(raw);
  return Napi::External<Watch>::New(env, raw, FinalizeWatch);
}

// pidfdWatchRef(handle, ref): like ChildProcess.ref()/unref().
Napi::Value PidfdWatchRef(const Napi::CallbackInfo &info) {
  if (info.Length() < 2 || !info[0].IsExternal()) ThrowUsage(info.Env(), "pidfdWatchRef(handle, ref)");
  Watch *w = info[0].As<Napi::External<Watch>>().Data();
  // The pointer may be stale (the watch closed and was freed): look it up
  // before touching it.
  if (tlsWatches == nullptr || tlsWatches->live.count(w) == 0) return info.Env().Undefined();
  if (info[1].ToBoolean().Value())
    uv_ref(reinterpret_cast<uv_handle_t *>(&w->poll));
  else
    uv_unref(reinterpret_cast<uv_handle_t *>(&w->poll));
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

// writeProcFiles(pid, names, data) -> null, or {index, syscall, errno} for
// the first file that failed (the later ones are not attempted). Each file
// of /proc/PID is opened relative to one directory fd and written with one
// write(2), in order: the map writes of a spawn in one call.
Napi::Value WriteProcFiles(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int64_t pid = ArgInt(info, info.Length() > 0 ? info[0] : env.Undefined(), "pid");
  if (pid <= 0 || pid > INT_MAX) ThrowUsage(env, "pid must be a positive pid");
  std::vector<std::string> names = ArgStrings(info, 1, "names");
  std::vector<std::string> data = ArgStrings(info, 2, "data");
  if (names.size() != data.size()) ThrowUsage(env, "names and data must have the same length");
  for (const auto &n : names)
    if (n.empty() || n.find('/') != std::string::npos) ThrowUsage(env, "names must be plain file names");
  auto fail = [&](size_t index, const char *syscallName, int e) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", static_cast<double>(index));
    o.Set("syscall", syscallName);
    o.Set("errno", e);
    return o;
  };
  std::string dir = "/proc/" + std::to_string(pid);
  int dfd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return fail(0, "open", errno);
  for (size_t i = 0; i < names.size(); i++) {
    int fd = openat(dfd, names[i].c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
      int e = errno;
      close(dfd);
      return fail(i, "open", e);
    }
    ssize_t n = write(fd, data[i].data(), data[i].size());
    int e = n < 0 ? errno : (static_cast<size_t>(n) != data[i].size() ? EIO : 0);
    close(fd);
    if (e != 0) {
      close(dfd);
      return fail(i, "write", e);
    }
  }
  close(dfd);
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

// capEffective() -> bigint: this thread's effective capability set (capget),
// without reading and parsing /proc/self/status on every spawn.
Napi::Value CapEffective(const Napi::CallbackInfo &info) {
  struct __user_cap_header_struct hdr;
  struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
  memset(&hdr, 0, sizeof hdr);
  memset(data, 0, sizeof data);
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  hdr.pid = 0;
  if (syscall(SYS_capget, &hdr, data) < 0) ThrowErrno(info.Env(), errno, "capget", "reading this process's capabilities");
  uint64_t eff = (static_cast<uint64_t>(data[1].effective) << 32) | data[0].effective;
  return Napi::BigInt::New(info.Env(), eff);
}

Napi::Value CloneVm(const Napi::CallbackInfo &info) { return Napi::Boolean::New(info.Env(), USERNS_CLONE_VM); }

void Register(Napi::Env env, Napi::Object exports) {
  PinAddon();
  exports.Set("spawnStart", Napi::Function::New(env, SpawnStart, "spawnStart"));
  exports.Set("spawnResume", Napi::Function::New(env, SpawnResume, "spawnResume"));
  exports.Set("spawnAbort", Napi::Function::New(env, SpawnAbort, "spawnAbort"));
  exports.Set("pidfdWatch", Napi::Function::New(env, PidfdWatch, "pidfdWatch"));
  exports.Set("pidfdWatchRef", Napi::Function::New(env, PidfdWatchRef, "pidfdWatchRef"));
  exports.Set("pidfdSendSignal", Napi::Function::New(env, PidfdSendSignal, "pidfdSendSignal"));
  exports.Set("writeOnce", Napi::Function::New(env, WriteOnce, "writeOnce"));
  exports.Set("writeProcFiles", Napi::Function::New(env, WriteProcFiles, "writeProcFiles"));
  exports.Set("pipe", Napi::Function::New(env, Pipe, "pipe"));
  exports.Set("dupCloexec", Napi::Function::New(env, DupCloexec, "dupCloexec"));
  exports.Set("capEffective", Napi::Function::New(env, CapEffective, "capEffective"));
  exports.Set("spawnUsesCloneVm", Napi::Function::New(env, CloneVm, "spawnUsesCloneVm"));
}

}  // namespace

USERNS_REGISTER(Register);

}  // namespace userns
