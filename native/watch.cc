// Exit watching for spawned programs: libuv polls each pidfd with the rest of
// the loop and the callback reaps with waitid(P_PIDFD); children left over
// when an environment ends are reaped by one thread.
#include <dlfcn.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "addon.h"
#include "child/reap.h"

namespace userns {
namespace {

void CloseFd(int &fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// Exit tracking without a thread per child: the pidfd becomes readable when
// the process exits, so libuv polls it with the rest of the loop, and the
// callback reaps with waitid(P_PIDFD).
struct Watch;
struct WatchSet {
  std::unordered_set<Watch *> live;
};

struct Watch {
  uv_poll_t poll;
  int pidfd;
  napi_env env;
  Napi::FunctionReference cb;
  std::unique_ptr<Napi::AsyncContext> ctx;
  WatchSet *set;
  // false: a plain fd (fdWatch), reported once readable and closed, never reaped.
  bool reap = true;
  bool exited = false;
  bool exitedNormally = false;
  int status = 0;
};

void OnWatchClosed(uv_handle_t *h);

void StopWatch(Watch *w) {
  w->set->live.erase(w);
  uv_poll_stop(&w->poll);
  uv_close(reinterpret_cast<uv_handle_t *>(&w->poll), OnWatchClosed);
}

// The JS callback runs only once libuv has let go of the fd and we have
// closed it, so by 'exit' the pidfd is gone from the fd table. (Closing it
// earlier is unsafe: libuv's close path still names the fd number to epoll,
// and a reused number would be deregistered by mistake.)
void OnWatchClosed(uv_handle_t *h) {
  std::unique_ptr<Watch> w(static_cast<Watch *>(h->data));
  CloseFd(w->pidfd);
  if (w->cb.IsEmpty() || !w->ctx) return;  // env cleanup: no JS any more
  // Raw N-API with status checks, not the throwing wrappers: while a worker
  // is being terminated its loop still runs but JS cannot, and that must not
  // turn into a fatal error. The child has been reaped either way.
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value args[2], recv, result;
  napi_get_null(env, &args[0]);
  napi_get_null(env, &args[1]);
  if (w->exited) napi_create_int32(env, w->status, &args[w->exitedNormally ? 0 : 1]);
  napi_get_global(env, &recv);
  napi_status st = napi_make_callback(env, *w->ctx, recv, w->cb.Value(), 2, args, &result);
  if (st == napi_pending_exception) {
    // A listener threw: report it as an uncaught exception, as Node would.
    napi_value exc;
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

void OnPidfdReadable(uv_poll_t *h, int status, int events) {
  Watch *w = static_cast<Watch *>(h->data);
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (status == 0 && w->reap) {
    int e = child::ReapPidfd(w->pidfd, &si, WNOHANG);
    if (e == 0 && si.si_pid == 0) return;  // not exited yet
    if (e == 0) {
      w->exited = true;
      w->exitedNormally = si.si_code == CLD_EXITED;
      w->status = si.si_status;
    }
  }
  StopWatch(w);
}

thread_local WatchSet *tlsWatches = nullptr;

// Reaps children still running when their environment ends (a worker
// thread terminated, say): their loop is gone, but they are still our
// children and must not become zombies. One thread for all of them, only
// in this case; it ends when the last one has exited.
void ReapLeftovers(std::vector<int> pidfds) {
  while (!pidfds.empty()) {
    std::vector<struct pollfd> p;
    for (int fd : pidfds) p.push_back({fd, POLLIN, 0});
    if (poll(p.data(), p.size(), -1) < 0 && errno != EINTR) break;
    std::vector<int> rest;
    for (auto &e : p) {
      if (e.revents == 0) {
        rest.push_back(e.fd);
        continue;
      }
      siginfo_t si;
      memset(&si, 0, sizeof si);
      if (child::ReapPidfd(e.fd, &si, WNOHANG) == 0 && si.si_pid == 0) {
        rest.push_back(e.fd);
        continue;
      }
      close(e.fd);
    }
    pidfds.swap(rest);
  }
  for (int fd : pidfds) close(fd);
}

void CleanupWatches(WatchSet *set) {
  if (tlsWatches == set) tlsWatches = nullptr;
  std::vector<Watch *> all(set->live.begin(), set->live.end());
  std::vector<int> leftovers;
  for (Watch *w : all) {
    w->cb.Reset();
    w->ctx.reset();
    if (!w->reap) {
      StopWatch(w);  // its close callback closes the fd
      continue;
    }
    // The reaper owns the pidfd from here; libuv only deregisters it.
    leftovers.push_back(w->pidfd);
    StopWatch(w);
    w->pidfd = -1;
  }
  delete set;
  if (!leftovers.empty()) std::thread(ReapLeftovers, std::move(leftovers)).detach();
}

// Keeps this library mapped for the life of the process. A worker that
// loaded the addon unloads it when it ends, but libuv still runs our close
// callbacks after that, and the leftover reaper thread runs our code.
// A held CLONE_VM child also runs our code until it execs.
void PinAddon() {
  static std::once_flag once;
  std::call_once(once, [] {
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&ReapLeftovers), &info) != 0 && info.dli_fname != nullptr)
      dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  });
}

// One set per environment (one per thread: a worker has its own env and
// loop); the cleanup hook closes what is still watched when the env ends.
WatchSet *Watches(Napi::Env env) {
  if (tlsWatches == nullptr) {
    tlsWatches = new WatchSet();
    env.AddCleanupHook(CleanupWatches, tlsWatches);
  }
  return tlsWatches;
}

void FinalizeWatch(Napi::Env, Watch *) {}

// pidfdWatch(pidfd, cb(code, signal)) -> handle. Takes ownership of pidfd:
// it is closed once the child has been reaped.
// fdWatch(fd, cb()) -> handle: the same for any pollable fd, without the
// reaping: cb runs once the fd is readable (or hung up), after the fd, which
// the watch owns, has been closed. spawn learns this way, from a copy of the
// error pipe's read end, that the program has exec'd or a step failed,
// without blocking the thread until then.
Napi::Value Watch1(const Napi::CallbackInfo &info, bool reap) {
  Napi::Env env = info.Env();
  int pidfd = ArgFd(info, 0, reap ? "pidfd" : "fd");
  if (info.Length() < 2 || !info[1].IsFunction()) ThrowUsage(env, "cb must be a function");
  uv_loop_t *loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr)
    ThrowUsage(env, "no event loop for this environment");
  auto w = std::make_unique<Watch>();
  w->reap = reap;
  w->pidfd = pidfd;
  w->env = env;
  w->cb = Napi::Persistent(info[1].As<Napi::Function>());
  w->ctx = std::make_unique<Napi::AsyncContext>(env, "userns.spawn");
  int r = uv_poll_init(loop, &w->poll, pidfd);
  if (r < 0) ThrowErrno(env, -r, "uv_poll_init", "watching the child's pidfd");
  w->poll.data = w.get();
  w->set = Watches(env);
  r = uv_poll_start(&w->poll, UV_READABLE, OnPidfdReadable);
  if (r < 0) {
    Watch *raw = w.release();
    raw->set->live.insert(raw);
    raw->pidfd = -1;  // the caller still owns it on failure
    raw->cb.Reset();
    StopWatch(raw);
    ThrowErrno(env, -r, "uv_poll_start", "watching the child's pidfd");
  }
  Watch *raw = w.release();
  raw->set->live.insert(raw);
  return Napi::External<Watch>::New(env, raw, FinalizeWatch);
}

Napi::Value PidfdWatch(const Napi::CallbackInfo &info) { return Watch1(info, true); }
Napi::Value FdWatch(const Napi::CallbackInfo &info) { return Watch1(info, false); }

// pidfdWatchRef(handle, ref): like ChildProcess.ref()/unref().
Napi::Value PidfdWatchRef(const Napi::CallbackInfo &info) {
  if (info.Length() < 2 || !info[0].IsExternal()) ThrowUsage(info.Env(), "pidfdWatchRef(handle, ref)");
  Watch *w = info[0].As<Napi::External<Watch>>().Data();
  // The pointer may be stale (the watch closed and was freed): look it up
  // before touching it.
  if (tlsWatches == nullptr || tlsWatches->live.count(w) == 0) return info.Env().Undefined();
  if (info[1].ToBoolean().Value())
    uv_ref(reinterpret_cast<uv_handle_t *>(&w->poll));
  else
    uv_unref(reinterpret_cast<uv_handle_t *>(&w->poll));
  return info.Env().Undefined();
}

void Register(Napi::Env env, Napi::Object exports) {
  PinAddon();
  exports.Set("pidfdWatch", Napi::Function::New(env, PidfdWatch, "pidfdWatch"));
  exports.Set("pidfdWatchRef", Napi::Function::New(env, PidfdWatchRef, "pidfdWatchRef"));
  exports.Set("fdWatch", Napi::Function::New(env, FdWatch, "fdWatch"));
}

}  // namespace

USERNS_REGISTER(Register);

}  // namespace userns
