// Parent-side helpers for sandboxes (lib/sandbox/prepare.ts): file content
// the child copies into the new root is prepared here, before clone3.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "addon.h"

namespace userns {
namespace {

// memfdFromBytes(bytes) -> fd: an O_CLOEXEC memfd holding the bytes, for a
// child to copy from (sendfile with its own offset, so the fd is never moved).
Napi::Value MemfdFromBytes(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) ThrowUsage(env, "bytes must be a Uint8Array");
  Napi::Uint8Array u = info[0].As<Napi::Uint8Array>();
  int fd = memfd_create("userns-sandbox-file", MFD_CLOEXEC);
  if (fd < 0) ThrowErrno(env, errno, "memfd_create", "preparing a sandbox file's content");
  const uint8_t *p = u.Data();
  size_t left = u.ByteLength();
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      close(fd);
      ThrowErrno(env, e, "write", "preparing a sandbox file's content");
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return Napi::Number::New(env, fd);
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("memfdFromBytes", Napi::Function::New(env, MemfdFromBytes, "memfdFromBytes"));
}

}  // namespace

USERNS_REGISTER(Register);

}  // namespace userns
