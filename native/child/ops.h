// Child steps that more than one engine runs, written once: taking ids and
// joining a namespace. Raw syscalls only (child/sys.h); each returns 0 or
// -errno.
#pragma once
#include <fcntl.h>

#include "sys.h"

namespace userns {
namespace child {

// setresgid(gid, gid, gid): real, effective and saved at once, so nothing of
// the old id is left to return to.
CHILD_FN inline long SetAllGids(long gid) { return Sys(__NR_setresgid, gid, gid, gid); }

// setresuid(uid, uid, uid).
CHILD_FN inline long SetAllUids(long uid) { return Sys(__NR_setresuid, uid, uid, uid); }

// setgroups(n, list); n = 0 drops every supplementary group.
CHILD_FN inline long SetGroups(long n, const void *list) { return Sys(__NR_setgroups, n, reinterpret_cast<long>(list)); }

// setns(fd, nstype).
CHILD_FN inline long JoinNs(long fd, long nstype) { return Sys(__NR_setns, fd, nstype); }

// setns into the namespace file at `path` (an nsfs file such as
// /proc/PID/ns/user); the fd is closed again either way.
CHILD_FN inline long JoinNsPath(const char *path, long nstype) {
  long fd = Sys(__NR_openat, AT_FDCWD, reinterpret_cast<long>(path), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return fd;
  long r = JoinNs(fd, nstype);
  Sys(__NR_close, fd);
  return r;
}

}  // namespace child
}  // namespace userns
