// listns(2) (Linux 6.19+): the kernel's own list of namespace ids. The
// inventory asks it first and scans /proc where the kernel answers ENOSYS.
// The number and struct layout are defined here: distribution headers lag.
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "addon.h"

#ifndef __NR_listns
#if defined(__x86_64__) || defined(__aarch64__)
#define __NR_listns 470
#endif
#endif

namespace userns {
namespace {

// struct ns_id_req, version 0 (32 bytes).
struct NsIdReq {
  uint32_t size;
  uint32_t spare;
  uint64_t ns_id;
  uint32_t ns_type;
  uint32_t spare2;
  uint64_t user_ns_id;
};

// listns(nsType, userNsId) -> bigint[]: every namespace id of that type
// (CLONE_NEW* value; 0 for all) the caller may see, owned by userNsId (0n: any).
Napi::Value Listns(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBigInt())
    ThrowUsage(env, "listns(nsType: number, userNsId: bigint)");
  uint32_t type = info[0].As<Napi::Number>().Uint32Value();
  bool lossless = false;
  uint64_t owner = info[1].As<Napi::BigInt>().Uint64Value(&lossless);
#ifdef __NR_listns
  std::vector<uint64_t> out;
  uint64_t last = 0;
  for (;;) {
    NsIdReq req = {sizeof(NsIdReq), 0, last, type, 0, owner};
    uint64_t ids[256];
    long n = syscall(__NR_listns, &req, ids, 256, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowErrno(env, errno, "listns", "listing namespaces");
    }
    for (long i = 0; i < n; i++) out.push_back(ids[i]);
    if (n < 256) break;
    last = ids[n - 1];
  }
  Napi::Array arr = Napi::Array::New(env, out.size());
  for (size_t i = 0; i < out.size(); i++) arr.Set(i, Napi::BigInt::New(env, out[i]));
  return arr;
#else
  (void)type;
  (void)owner;
  ThrowErrno(env, ENOSYS, "listns", "listing namespaces (no syscall number for this architecture)");
#endif
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("listns", Napi::Function::New(env, Listns, "listns"));
}

}  // namespace

USERNS_REGISTER(Register);

}  // namespace userns
