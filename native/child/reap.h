// The one reaper of the native engines: waitid(2) until the process is gone,
// retried on EINTR. Raw syscalls only (child/sys.h), so the same code serves
// the parent (spawn's pidfds, the mount helpers' children) and processes
// forked from Node (the verify runner's zygote reaping its agents).
#pragma once
#include <sys/wait.h>

#include <cstring>

#include "sys.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace userns {
namespace child {

// Waits for process `id` (a pid with P_PID, a pidfd with P_PIDFD) to exit and
// reaps it. Returns 0, or the errno of waitid. With WNOHANG in `options`, a
// child still running leaves si->si_pid 0.
inline int Reap(int idtype, long id, siginfo_t *si, int options = 0) {
  memset(si, 0, sizeof *si);
  for (;;) {
    long r = Sys(__NR_waitid, idtype, id, reinterpret_cast<long>(si), WEXITED | options, 0);
    if (r == 0) return 0;
    if (r != -EINTR) return static_cast<int>(-r);
  }
}

inline int ReapPidfd(int pidfd, siginfo_t *si, int options = 0) { return Reap(P_PIDFD, pidfd, si, options); }

inline int ReapPid(long pid, int options = 0) {
  siginfo_t si;
  return Reap(P_PID, pid, &si, options);
}

// Any child (P_ALL): the sandbox's reaping pid 1 collects the program and
// the orphans reparented to it. With WNOHANG, si->si_pid 0 means none has
// exited yet.
inline int ReapAny(siginfo_t *si, int options = 0) { return Reap(P_ALL, 0, si, options); }

}  // namespace child
}  // namespace userns
