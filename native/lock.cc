// An exclusive advisory lock on a file, for the inventory's lease directory.
// Node has no flock(2); a lock file taken with flock is released by the
// kernel when the fd is closed or the process dies, so a crashed allocator
// never leaves the directory locked (a pid-file lock would).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "addon.h"

namespace userns {
namespace {

// lockExclusive(path) -> fd: open(O_RDWR|O_CREAT|O_CLOEXEC, 0600) and a
// blocking flock(LOCK_EX). The lock lives as long as the fd.
Napi::Value LockExclusive(const Napi::CallbackInfo &info) {
  std::string path = ArgString(info, 0, "path");
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0600);
  if (fd < 0) ThrowErrno(info.Env(), errno, "open", "opening lock file " + path);
  int r;
  do {
    r = flock(fd, LOCK_EX);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(info.Env(), err, "flock", "locking " + path);
  }
  return Napi::Number::New(info.Env(), fd);
}

// tryLockExclusive(fd) -> boolean: flock(LOCK_EX|LOCK_NB) on an open fd;
// false when another open file description holds the lock.
Napi::Value TryLockExclusive(const Napi::CallbackInfo &info) {
  int fd = ArgFd(info, 0, "fd");
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) return Napi::Boolean::New(info.Env(), true);
  if (errno == EWOULDBLOCK) return Napi::Boolean::New(info.Env(), false);
  ThrowErrno(info.Env(), errno, "flock", "trying the lock on fd " + std::to_string(fd));
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("lockExclusive", Napi::Function::New(env, LockExclusive, "lockExclusive"));
  exports.Set("tryLockExclusive", Napi::Function::New(env, TryLockExclusive, "tryLockExclusive"));
}

}  // namespace

USERNS_REGISTER(Register);

}  // namespace userns
