// Exit watching for spawned programs: the pidfds are in one epoll set per
// environment, which libuv polls with the rest of the loop, and the callback
// reaps with waitid(P_PIDFD); children left over when an environment ends are
// reaped by one thread.
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>
#include <vector>

#include "addon.h"
#include "watch.h"
#include "child/child.h"
#include "child/reap.h"

namespace userns {
namespace {

void CloseFd(int &fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// Exit tracking without a thread per child: the pidfd becomes readable when
// the process exits. Every watch of an environment is in one epoll set of
// ours, and libuv polls only that set's fd: a uv_poll_t per watch would cost
// six epoll_ctl calls and an ioctl on libuv's epoll (its pollability check,
// the registration, the removals at stop and at close), against one ADD and
// one DEL here.
struct Watch;
struct WatchSet {
  uv_poll_t poll;  // on epfd, started for the life of the set
  int epfd = -1;
  std::unordered_set<Watch *> live;
  // Live watches that keep the loop alive (ChildProcess.ref()): the shared
  // handle is ref'd exactly while there is one.
  size_t refs = 0;
  // Ended (CleanupWatches) during a dispatch: freed when the dispatch ends.
  bool dispatching = false;
  bool dead = false;
};

struct Watch {
  int fd;
  napi_env env;
  Napi::FunctionReference cb;
  std::unique_ptr<Napi::AsyncContext> ctx;
  WatchSet *set;
  bool ref = true;
  // A child watch (WatchChild) in its first part: fd is a copy of this
  // child's error pipe, and `holder` keeps the child's handle (and so the
  // Child) alive.
  child::Child *child = nullptr;
  Napi::Reference<Napi::Value> holder;
  // A child watch: the callback takes (kind, a, b), the exit as kind 0.
  bool tagged = false;
};

void SetRef(Watch *w, bool ref) {
  if (w->ref == ref) return;
  w->ref = ref;
  WatchSet *set = w->set;
  if (ref && set->refs++ == 0) uv_ref(reinterpret_cast<uv_handle_t *>(&set->poll));
  if (!ref && --set->refs == 0) uv_unref(reinterpret_cast<uv_handle_t *>(&set->poll));
}

// Takes the watch off the set's books (its ref on the loop, the live set),
// for a watch whose fd is not registered; Unwatch also removes that.
void Forget(Watch *w) {
  SetRef(w, false);
  w->set->live.erase(w);
}

// Takes the watch out of the set; the caller closes its fd (or hands a pidfd
// to the leftover reaper). The DEL comes before that close and is not
// optional: a child cloned while this fd was open holds the same file in its
// own fd table until it execs, and a registration outlives a close while the
// file does.
void Unwatch(Watch *w) {
  Forget(w);
  epoll_ctl(w->set->epfd, EPOLL_CTL_DEL, w->fd, nullptr);
}

// One argument of a watch's callback: an int, null, or the watch itself (the
// handle pidfdWatchRef takes).
struct Arg {
  enum Kind { kNull, kInt, kSelf } kind;
  int value;
};
Arg IntArg(std::optional<int> v) { return v.has_value() ? Arg{Arg::kInt, *v} : Arg{Arg::kNull, 0}; }

// The handle JS holds for a watch (pidfdWatchRef takes it): a bare pointer, without a finalizer. The watch is not
// the handle's to free (it ends with its event), and a finalizer, even one that does nothing, costs N-API a weak
// reference per handle, which V8 then tracks through every young collection. A stale handle is harmless:
// pidfdWatchRef looks the pointer up among the live watches first.
Napi::Value WatchHandle(Napi::Env env, Watch *w) { return Napi::External<Watch>::New(env, w); }

// Calls the watch's JS callback with these arguments. Raw N-API with status
// checks, not the throwing wrappers: while a worker is being terminated its
// loop still runs but JS cannot, and that must not turn into a fatal error.
void Invoke(Watch *w, std::initializer_list<Arg> values) {
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value args[3], recv, result;
  size_t argc = 0;
  for (const Arg &v : values) {
    if (v.kind == Arg::kInt)
      napi_create_int32(env, v.value, &args[argc]);
    else if (v.kind == Arg::kSelf)
      args[argc] = WatchHandle(env, w);
    else
      napi_get_null(env, &args[argc]);
    argc++;
  }
  napi_get_global(env, &recv);
  napi_status st = napi_make_callback(env, *w->ctx, recv, w->cb.Value(), argc, args, &result);
  if (st == napi_pending_exception) {
    // A listener threw: report it as an uncaught exception, as Node would.
    napi_value exc;
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

// Calls the watch's JS callback with the exit status (or none), then frees
// the watch. By then the fd is closed, so by 'exit' the pidfd is gone from
// the fd table. The child has been reaped either way.
void Report(std::unique_ptr<Watch> w, bool exited, const siginfo_t &si, int kind = 0) {
  if (w->cb.IsEmpty() || !w->ctx) return;  // env cleanup: no JS any more
  std::optional<int> code, signal;
  if (exited) (si.si_code == CLD_EXITED ? code : signal) = si.si_status;
  if (w->tagged)
    Invoke(w.get(), {{Arg::kInt, kind}, IntArg(code), IntArg(signal)});
  else
    Invoke(w.get(), {IntArg(code), IntArg(signal)});
}

// The first part of a child watch ended: the child's error pipe turned
// readable. A plain exec turns the watch into the program's exit watch, on
// its pidfd, and says so (kind 1, the pidfd, the watch; null if the pidfd
// could not be watched and is the caller's to watch). A program that has
// exited by then, as short ones often have when the loop is busy, is reaped
// here and both are said at once (kind 3, code, signal): one callback, no
// registration of its pidfd. Anything else (a failed step, a death, an abort
// meanwhile) is left for spawnResume (kind 2) and ends the watch.
void OnExecReady(Watch *w) {
  child::Child *c = w->child;
  WatchSet *set = w->set;
  // The copy's DEL before its close, as in Unwatch.
  epoll_ctl(set->epfd, EPOLL_CTL_DEL, w->fd, nullptr);
  CloseFd(w->fd);
  w->child = nullptr;
  int pidfd = -1;
  bool exec = c->state == child::State::kHeld && child::TakeExec(c, &pidfd);
  w->holder.Reset();
  if (exec) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (child::ReapPidfd(pidfd, &si, WNOHANG) == 0 && si.si_pid != 0) {
      CloseFd(pidfd);
      Forget(w);
      Report(std::unique_ptr<Watch>(w), true, si, 3);
      return;
    }
    struct epoll_event ev = {};
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.ptr = w;
    if (epoll_ctl(set->epfd, EPOLL_CTL_ADD, pidfd, &ev) == 0) {
      w->fd = pidfd;
      Invoke(w, {{Arg::kInt, 1}, {Arg::kInt, pidfd}, {Arg::kSelf, 0}});
      return;
    }
  }
  Forget(w);
  std::unique_ptr<Watch> owned(w);
  Invoke(w, {{Arg::kInt, exec ? 1 : 2}, {exec ? Arg::kInt : Arg::kNull, pidfd}, {Arg::kNull, 0}});
}

// One watch's event: a pidfd that has not exited yet (a spurious wake-up) is
// re-armed; otherwise the watch ends.
void OnWatchReady(Watch *w) {
  if (w->child != nullptr) return OnExecReady(w);
  siginfo_t si;
  memset(&si, 0, sizeof si);
  int e = child::ReapPidfd(w->fd, &si, WNOHANG);
  if (e == 0 && si.si_pid == 0) {
    struct epoll_event ev = {};
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.ptr = w;
    if (epoll_ctl(w->set->epfd, EPOLL_CTL_MOD, w->fd, &ev) == 0) return;
    // Cannot re-arm: reap it the hard way, as the leftovers are.
    e = child::ReapPidfd(w->fd, &si, 0);
  }
  Unwatch(w);
  CloseFd(w->fd);
  Report(std::unique_ptr<Watch>(w), e == 0, si);
}

void FreeSet(uv_handle_t *h) {
  WatchSet *set = static_cast<WatchSet *>(h->data);
  CloseFd(set->epfd);
  delete set;
}

void OnSetReadable(uv_poll_t *h, int status, int) {
  WatchSet *set = static_cast<WatchSet *>(h->data);
  if (status < 0) return;
  struct epoll_event ev[64];
  int n;
  do n = epoll_wait(set->epfd, ev, 64, 0);
  while (n < 0 && errno == EINTR);
  set->dispatching = true;
  for (int i = 0; i < n && !set->dead; i++) {
    Watch *w = static_cast<Watch *>(ev[i].data.ptr);
    // EPOLLONESHOT: one event per watch per batch, and only this loop ends a
    // watch, so a watch named here is still live unless the set ended.
    if (set->live.count(w) != 0) OnWatchReady(w);
  }
  set->dispatching = false;
  if (set->dead) uv_close(reinterpret_cast<uv_handle_t *>(&set->poll), FreeSet);
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
    Unwatch(w);
    // The reaper owns a pidfd from here; an error pipe's copy is only closed
    // (the child's handle reaps the child).
    if (w->child == nullptr)
      leftovers.push_back(w->fd);
    else
      CloseFd(w->fd);
    delete w;
  }
  if (!leftovers.empty()) std::thread(ReapLeftovers, std::move(leftovers)).detach();
  set->dead = true;
  if (!set->dispatching) uv_close(reinterpret_cast<uv_handle_t *>(&set->poll), FreeSet);
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
// Returns nullptr with errno and the failed call on failure.
WatchSet *Watches(Napi::Env env, const char **failed) {
  if (tlsWatches != nullptr) return tlsWatches;
  uv_loop_t *loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    *failed = "napi_get_uv_event_loop";
    errno = EINVAL;
    return nullptr;
  }
  auto set = std::make_unique<WatchSet>();
  set->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (set->epfd < 0) {
    *failed = "epoll_create1";
    return nullptr;
  }
  int r = uv_poll_init(loop, &set->poll, set->epfd);
  if (r < 0) {
    CloseFd(set->epfd);
    *failed = "uv_poll_init";
    errno = -r;
    return nullptr;
  }
  set->poll.data = set.get();
  r = uv_poll_start(&set->poll, UV_READABLE, OnSetReadable);
  if (r < 0) {
    // An initialized handle is freed through libuv's close.
    uv_close(reinterpret_cast<uv_handle_t *>(&set.release()->poll), FreeSet);
    *failed = "uv_poll_start";
    errno = -r;
    return nullptr;
  }
  // Nothing watched yet: the set alone does not keep the loop alive.
  uv_unref(reinterpret_cast<uv_handle_t *>(&set->poll));
  tlsWatches = set.release();
  env.AddCleanupHook(CleanupWatches, tlsWatches);
  return tlsWatches;
}

// A watch of `fd` with callback `cb`, registered in the set and ref'd, or
// nullptr with errno set (and *failed naming the call) when it cannot be.
Watch *NewWatch(Napi::Env env, int fd, Napi::Function cb, const char **failed) {
  WatchSet *set = Watches(env, failed);
  if (set == nullptr) return nullptr;
  auto w = std::make_unique<Watch>();
  w->fd = fd;
  w->env = env;
  w->set = set;
  w->ref = false;
  w->cb = Napi::Persistent(cb);
  w->ctx = std::make_unique<Napi::AsyncContext>(env, "userns.spawn");
  struct epoll_event ev = {};
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.ptr = w.get();
  if (epoll_ctl(set->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    *failed = "epoll_ctl";
    return nullptr;
  }
  Watch *raw = w.release();
  set->live.insert(raw);
  SetRef(raw, true);
  return raw;
}

}  // namespace

// ExitWatch is an opaque name for a Watch outside this file.
ExitWatch *ArmExitWatch(Napi::Env env, int pidfd, Napi::Function cb) {
  const char *failed = nullptr;
  return reinterpret_cast<ExitWatch *>(NewWatch(env, pidfd, cb, &failed));
}

Napi::Value AdoptExitWatch(Napi::Env env, ExitWatch *w) {
  return WatchHandle(env, reinterpret_cast<Watch *>(w));
}

void DropExitWatch(ExitWatch *w) {
  Watch *watch = reinterpret_cast<Watch *>(w);
  Unwatch(watch);
  delete watch;
}

bool WatchChild(Napi::Env env, child::Child *c, Napi::Value handle, Napi::Function cb) {
  child::SendRelease(c);
  // A copy: the child's own end is closed by Release, which a failure path
  // may call while this watch is still registered.
  int fd = fcntl(c->errR, F_DUPFD_CLOEXEC, 3);
  if (fd < 0) return false;
  const char *failed = nullptr;
  Watch *w = NewWatch(env, fd, cb, &failed);
  if (w == nullptr) {
    close(fd);
    return false;
  }
  // Set before any event can be dispatched: that happens on this thread, later.
  w->tagged = true;
  w->child = c;
  w->holder = Napi::Persistent(handle);
  return true;
}

namespace {

// pidfdWatch(pidfd, cb(code, signal)) -> handle. Takes ownership of pidfd:
// it is closed once the child has been reaped.
Napi::Value PidfdWatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "pidfd");
  if (info.Length() < 2 || !info[1].IsFunction()) ThrowUsage(env, "cb must be a function");
  const char *failed = nullptr;
  // On failure the caller still owns the fd.
  Watch *w = NewWatch(env, fd, info[1].As<Napi::Function>(), &failed);
  if (w == nullptr) ThrowErrno(env, errno, failed, "watching the child's pidfd");
  return WatchHandle(env, w);
}

// spawnWatch(handle, cb(kind, a, b)) -> whether it watches. Releases the
// held child from its wait (if it has one left) and watches, on the loop,
// for what it does next, without blocking this thread until its execve:
//   cb(1, pidfd, watch)  it exec'd; the same watch now waits for the
//                        program's exit (pidfdWatchRef takes `watch`) and
//                        owns the pidfd, which the caller may signal until then
//   cb(1, pidfd, null)   it exec'd; the pidfd is the caller's to watch
//   cb(3, code, signal)  it exec'd and had already exited: reaped, no pidfd
//   cb(2, null, null)    anything else: spawnResume(handle, false) reports it
//   cb(0, code, signal)  the program exited and was reaped (after 1 with a watch)
// False: nothing could be watched (no fd to spare); the child is released,
// and spawnResume waits for what comes.
Napi::Value SpawnWatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsExternal() || !info[1].IsFunction())
    ThrowUsage(env, "spawnWatch(handle, cb)");
  child::Child *c = info[0].As<Napi::External<child::Child>>().Data();
  if (c->state != child::State::kHeld || c->hasPending) ThrowUsage(env, "spawn handle already finished");
  return Napi::Boolean::New(env, WatchChild(env, c, info[0], info[1].As<Napi::Function>()));
}

// pidfdWatchRef(handle, ref): like ChildProcess.ref()/unref().
Napi::Value PidfdWatchRef(const Napi::CallbackInfo &info) {
  if (info.Length() < 2 || !info[0].IsExternal()) ThrowUsage(info.Env(), "pidfdWatchRef(handle, ref)");
  Watch *w = info[0].As<Napi::External<Watch>>().Data();
  // The pointer may be stale (the watch closed and was freed): look it up
  // before touching it.
  if (tlsWatches == nullptr || tlsWatches->live.count(w) == 0) return info.Env().Undefined();
  SetRef(w, info[1].ToBoolean().Value());
  return info.Env().Undefined();
}

void Register(Napi::Env env, Napi::Object exports) {
  PinAddon();
  // The set's fd lives as long as the environment, like libuv's own: made
  // here, with the addon, it is part of the fds a process has before its
  // first spawn, not a change that the first spawn leaves behind. A failure
  // here is retried (and reported) by the first watch.
  const char *failed = nullptr;
  Watches(env, &failed);
  exports.Set("pidfdWatch", Napi::Function::New(env, PidfdWatch, "pidfdWatch"));
  exports.Set("pidfdWatchRef", Napi::Function::New(env, PidfdWatchRef, "pidfdWatchRef"));
  exports.Set("spawnWatch", Napi::Function::New(env, SpawnWatch, "spawnWatch"));
}

}  // namespace

USERNS_REGISTER(Register);

}  // namespace userns
