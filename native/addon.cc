#include "addon.h"

#include <vector>

namespace userns {

namespace {
std::vector<InitFn> &Registry() {
  static std::vector<InitFn> fns;
  return fns;
}
}  // namespace

Registrar::Registrar(InitFn fn) { Registry().push_back(fn); }

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  for (InitFn fn : Registry()) fn(env, exports);
  return exports;
}

}  // namespace userns

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return userns::Init(env, exports);
}

NODE_API_MODULE(userns, InitAddon)
