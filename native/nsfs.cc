// Namespace files: open, identify, and ask nsfs (ioctl_ns(2)) about them.
// The request numbers are in nsfs-ioctl.h, shared with procscan.cc.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "addon.h"
#include "nsfs-ioctl.h"


namespace userns {
namespace {

std::string FdWhat(const char *verb, int fd) {
  return std::string(verb) + " of namespace fd " + std::to_string(fd);
}

// openNs(path) -> fd, O_RDONLY|O_CLOEXEC. Namespace files are opened
// read-only: nsfs needs no more for ioctls, setns or mount_setattr.
Napi::Value OpenNs(const Napi::CallbackInfo &info) {
  std::string path = ArgString(info, 0, "path");
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) ThrowErrno(info.Env(), errno, "open", "opening namespace file " + path);
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value Close(const Napi::CallbackInfo &info) {
  int fd = ArgFd(info, 0, "fd");
  // close() is never retried on EINTR on Linux: the fd is gone either way.
  if (close(fd) < 0 && errno != EINTR)
    ThrowErrno(info.Env(), errno, "close", "closing fd " + std::to_string(fd));
  return info.Env().Undefined();
}

// fstat on an nsfs fd gives the namespace's (dev, ino) identity.
Napi::Value Identity(const Napi::CallbackInfo &info) {
  int fd = ArgFd(info, 0, "fd");
  struct stat st;
  if (fstat(fd, &st) < 0) ThrowErrno(info.Env(), errno, "fstat", FdWhat("identifying", fd));
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("dev", Napi::BigInt::New(info.Env(), static_cast<uint64_t>(st.st_dev)));
  o.Set("ino", Napi::BigInt::New(info.Env(), static_cast<uint64_t>(st.st_ino)));
  return o;
}

Napi::Value GetOwnerUid(const Napi::CallbackInfo &info) {
  int fd = ArgFd(info, 0, "fd");
  uid_t uid = 0;
  if (ioctl(fd, NS_GET_OWNER_UID, &uid) < 0)
    ThrowErrno(info.Env(), errno, "ioctl", FdWhat("NS_GET_OWNER_UID", fd));
  return Napi::Number::New(info.Env(), static_cast<double>(uid));
}

Napi::Value FdIoctl(const Napi::CallbackInfo &info, unsigned long req, const char *name) {
  int fd = ArgFd(info, 0, "fd");
  int r = ioctl(fd, req);
  if (r < 0) ThrowErrno(info.Env(), errno, "ioctl", FdWhat(name, fd));
  return Napi::Number::New(info.Env(), r);
}

Napi::Value GetParent(const Napi::CallbackInfo &info) {
  return FdIoctl(info, NS_GET_PARENT, "NS_GET_PARENT");
}
Napi::Value GetUserns(const Napi::CallbackInfo &info) {
  return FdIoctl(info, NS_GET_USERNS, "NS_GET_USERNS");
}
Napi::Value GetNstype(const Napi::CallbackInfo &info) {
  return FdIoctl(info, NS_GET_NSTYPE, "NS_GET_NSTYPE");
}

Napi::Value GetId(const Napi::CallbackInfo &info) {
  int fd = ArgFd(info, 0, "fd");
  uint64_t id = 0;
  if (ioctl(fd, NS_GET_ID, &id) < 0) ThrowErrno(info.Env(), errno, "ioctl", FdWhat("NS_GET_ID", fd));
  return Napi::BigInt::New(info.Env(), id);
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("openNs", Napi::Function::New(env, OpenNs, "openNs"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("nsIdentity", Napi::Function::New(env, Identity, "nsIdentity"));
  exports.Set("nsGetOwnerUid", Napi::Function::New(env, GetOwnerUid, "nsGetOwnerUid"));
  exports.Set("nsGetParent", Napi::Function::New(env, GetParent, "nsGetParent"));
  exports.Set("nsGetUserns", Napi::Function::New(env, GetUserns, "nsGetUserns"));
  exports.Set("nsGetNstype", Napi::Function::New(env, GetNstype, "nsGetNstype"));
  exports.Set("nsGetId", Napi::Function::New(env, GetId, "nsGetId"));
}

}  // namespace

USERNS_REGISTER(Register);

}  // namespace userns
