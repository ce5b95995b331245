// Shared plumbing for the userns addon: a registry so each source file adds
// its own exports, and the one place that turns an errno into a JS error.
#pragma once
#include <napi.h>

namespace userns {

using InitFn = void (*)(Napi::Env, Napi::Object);

// Each translation unit registers its exports with a static Registrar, so
// adding a feature never means editing a central list (and two features
// never collide in one file).
struct Registrar {
  explicit Registrar(InitFn fn);
};

#define USERNS_REGISTER(fn) static ::userns::Registrar registrar_##fn(fn)

// Builds the JS error class handed in by lib/kernel at load time and throws
// it. `what` says what was being attempted, in the user's terms.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char *syscall,
                             const std::string &what);
// Same, but returns the error value instead of throwing (for async paths).
Napi::Value MakeErrnoError(Napi::Env env, int err, const char *syscall,
                           const std::string &what);
// A usage error (bad argument from JS): a TypeError.
[[noreturn]] void ThrowUsage(Napi::Env env, const std::string &msg);

// Argument helpers: each throws a usage error when the argument is wrong.
int ArgFd(const Napi::CallbackInfo &info, size_t i, const char *name);
std::string ArgString(const Napi::CallbackInfo &info, size_t i,
                      const char *name);

}  // namespace userns
