// Open-file-description locks for front ends that must hold a lock while a
// sandbox runs (userns-bwrap's --lock-file). Node has no fcntl(2) lock call.
#include <fcntl.h>

#include <cerrno>

#include "addon.h"

namespace userns {
namespace {

// ofdReadLock(fd) -> void: a whole-file read lock (F_OFD_SETLK, F_RDLCK), not
// waiting. OFD locks belong to the open file, not to a thread or process, so
// a multithreaded process can hold one; they conflict with classic POSIX
// record locks (F_SETLK) that other processes take, which is what a reader of
// the lock file tests. The lock goes away when the fd is closed (or at exit).
Napi::Value OfdReadLock(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) ThrowUsage(env, "fd must be a number");
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct flock fl = {};
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;
  if (fcntl(fd, F_OFD_SETLK, &fl) < 0) ThrowErrno(env, errno, "fcntl", "taking a read lock (F_OFD_SETLK)");
  return env.Undefined();
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("ofdReadLock", Napi::Function::New(env, OfdReadLock, "ofdReadLock"));
}

}  // namespace

USERNS_REGISTER(Register);

}  // namespace userns
