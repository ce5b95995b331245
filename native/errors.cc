#include <cerrno>
#include <climits>
#include <string>

#include "addon.h"

namespace userns {

namespace {
// The error class comes from lib/kernel (UsernsError), so native code and TS
// code raise the same type with the same fields.
struct InstanceData {
  Napi::FunctionReference errorClass;
};

InstanceData *Data(Napi::Env env) { return env.GetInstanceData<InstanceData>(); }

Napi::Value SetErrorClass(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction())
    ThrowUsage(env, "setErrorClass(cls): cls must be a constructor");
  InstanceData *d = Data(env);
  if (d == nullptr) {
    d = new InstanceData();
    env.SetInstanceData(d);
  }
  d->errorClass = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
}
}  // namespace

USERNS_REGISTER(Register);

Napi::Value MakeErrnoError(Napi::Env env, int err, const char *syscall,
                           const std::string &what) {
  InstanceData *d = Data(env);
  if (d != nullptr && !d->errorClass.IsEmpty()) {
    Napi::Object opts = Napi::Object::New(env);
    opts.Set("errno", Napi::Number::New(env, err));
    opts.Set("syscall", Napi::String::New(env, syscall));
    return d->errorClass.New({Napi::String::New(env, what), opts});
  }
  Napi::Error e = Napi::Error::New(env, what + ": " + syscall + " failed with errno " +
                                            std::to_string(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e.Value();
}

void ThrowErrno(Napi::Env env, int err, const char *syscall, const std::string &what) {
  throw Napi::Error(env, MakeErrnoError(env, err, syscall, what));
}

void ThrowUsage(Napi::Env env, const std::string &msg) {
  throw Napi::TypeError::New(env, msg);
}

int ArgFd(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (info.Length() <= i || !info[i].IsNumber())
    ThrowUsage(info.Env(), std::string(name) + " must be a file descriptor (number)");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (v < 0 || v > INT_MAX || v != static_cast<int>(v))
    ThrowUsage(info.Env(), std::string(name) + " must be a non-negative integer fd");
  return static_cast<int>(v);
}

std::string ArgString(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (info.Length() <= i || !info[i].IsString())
    ThrowUsage(info.Env(), std::string(name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

}  // namespace userns
