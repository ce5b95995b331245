// File locks. Node has no flock(2) or fcntl(2) lock call.
// - flock exclusive locks, for the inventory's lease directory: released by the
//   kernel when the fd is closed or the process dies, so a crashed allocator
//   never leaves the directory locked (a pid-file lock would).
// - open-file-description read locks, for front ends that must hold a lock
//   while a sandbox runs (userns-bwrap's --lock-file).
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

// ofdReadLock(fd) -> void: a whole-file read lock (F_OFD_SETLK, F_RDLCK), not
// waiting. OFD locks belong to the open file, not to a thread or process, so
// a multithreaded process can hold one; they conflict with classic POSIX
// record locks (F_SETLK) that other processes take, which is what a reader of
// the lock file tests. The lock goes away when the fd is closed (or at exit).
Napi::Value OfdReadLock(const Napi::CallbackInfo &info) {
  int fd = ArgFd(info, 0, "fd");
  struct flock fl = {};
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;
  if (fcntl(fd, F_OFD_SETLK, &fl) < 0) ThrowErrno(info.Env(), errno, "fcntl", "taking a read lock (F_OFD_SETLK)");
  return info.Env().Undefined();
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("lockExclusive", Napi::Function::New(env, LockExclusive, "lockExclusive"));
  exports.Set("tryLockExclusive", Napi::Function::New(env, TryLockExclusive, "tryLockExclusive"));
  exports.Set("ofdReadLock", Napi::Function::New(env, OfdReadLock, "ofdReadLock"));
}

}  // namespace

USERNS_REGISTER(Register);

}  // namespace userns
