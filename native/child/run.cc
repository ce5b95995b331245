// The spawn child's side: everything that runs between clone3 and execve.
// Read the contract in child.h first. No N-API, no libc beyond what the
// fork-like path needs: the build fails if napi.h gets included (sys.h).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <cerrno>

#include "child.h"
#include "ops.h"
#include "sandbox.h"
#include "sys.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif

namespace userns {
namespace child {
namespace {

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
  SandboxState sb;
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
      case kJoin:
        r = JoinNs(s.a, s.b);
        break;
      case kUnshare:
        r = Sys(__NR_unshare, s.a);
        break;
      case kChdir:
        r = Sys(__NR_chdir, reinterpret_cast<long>(s.s));
        break;
      case kSetgroups:
        r = SetGroups(s.b, c->gids.data() + s.a);
        break;
      case kSetgid:
        r = SetAllGids(s.a);
        break;
      case kSetuid:
        r = SetAllUids(s.a);
        break;
      case kParentDeathSignal:
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
      case kCloseFd:
        // The child's own fd table (no CLONE_FILES): Node's fd stays open.
        r = Sys(__NR_close, s.a);
        if (r == -EBADF) r = 0;
        break;
      // The sandbox's steps (native/child/sandbox.h; prepared by lib/sandbox/prepare.ts).
      case kSbBase:
        r = SandboxBase(&sb, s.a);
        break;
      case kSbFs:
        r = SandboxFs(&sb, s.a, s.b, s.s, s.s2, s.s2len);
        break;
      case kSbPivot:
        r = SandboxPivot(&sb);
        break;
      case kSbHostname:
        r = SandboxHostname(s.s2, s.s2len);
        break;
      case kSbKeepCaps:
        r = SandboxKeepCaps();
        break;
      case kSbCaps:
        r = SandboxCapabilities(static_cast<uint64_t>(s.a), static_cast<int>(s.b & 0xffff), (s.b >> 16) & 1);
        break;
      case kSbNoNewPrivs:
        r = SandboxNoNewPrivs();
        break;
      case kSbSeccomp:
        r = SandboxSeccomp(s.s2, s.s2len);
        break;
      case kSbLoopback:
        r = SandboxLoopback();
        break;
      case kSbDisableUserns:
        r = SandboxDisableUserns(&sb, s.a, s.b);
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
        r = SandboxReaper(c->childErrW);
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

// The program's process under an exec'd init (kSbReaper on the CLONE_VM
// path): a child of pid 1, sharing memory until its own execve.
CHILD_FN int ReaperProgramMain(void *arg) {
  const Child *c = static_cast<const Child *>(arg);
  return RunSteps(c, c->reaperStep + 1, Sys(__NR_getppid));
}
#endif

}  // namespace

CHILD_FN int ChildMain(void *arg) {
  const Child *c = static_cast<const Child *>(arg);
  // Our copies of the parent's ends: without this, the child would keep its
  // own sync pipe open and never see EOF if the parent died.
  Sys(__NR_close, c->childSyncW);
  Sys(__NR_close, c->childErrR);
  // CLONE_CLEAR_SIGHAND reset handled signals, real-time ones included. An
  // ignored signal stays ignored through execve: reset the standard ones,
  // 1-31 (SIGPIPE above all: Node ignores it), as child_process's child
  // (libuv) does; an ignored real-time signal stays ignored there too. The 33
  // calls more for 32-64 would cost ~11 us before every program starts.
  KSigaction dfl;
  dfl.handler = reinterpret_cast<unsigned long>(SIG_DFL);
  dfl.flags = 0;
  dfl.restorer = 0;
  dfl.mask = 0;
  for (long sig = 1; sig < 32; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    Sys(__NR_rt_sigaction, sig, reinterpret_cast<long>(&dfl), 0, 8);
  }
  return RunSteps(c, 0, Sys(__NR_getppid));
}

}  // namespace child
}  // namespace userns

// The child side never touches N-API: fail the build if this translation unit
// pulled it in, however indirectly.
#if defined(SRC_NAPI_H_) || defined(SRC_NODE_API_H_) || defined(NAPI_VERSION_EXPERIMENTAL)
#error "native/child/ is N-API free: do not include napi.h, node_api.h or addon.h here"
#endif
