// The watches (native/watch.cc) spawn's one-call path arms. An exit watch: on
// the pidfd of a child released but not yet exec'd, while the child runs its
// last steps and execs, so that the registration costs the thread no time of
// the spawn's; kept if the child exec'd, dropped unfired if not. A child
// watch: of a released child's exec, then of the program's exit, from the
// event loop.
#pragma once
#include <napi.h>

namespace userns {

namespace child {
struct Child;
}
struct ExitWatch;

// Arms a watch of `pidfd` (still the caller's) that calls cb(code, signal)
// once the process has exited and been reaped. nullptr if it cannot be armed
// (the caller then watches the pidfd itself, pidfdWatch). Never throws.
ExitWatch *ArmExitWatch(Napi::Env env, int pidfd, Napi::Function cb);
// The process exec'd: the watch owns the pidfd from here. Returns the handle
// pidfdWatchRef takes.
Napi::Value AdoptExitWatch(Napi::Env env, ExitWatch *w);
// It did not: removes the registration before the pidfd is closed and frees
// the watch, which never fires.
void DropExitWatch(ExitWatch *w);

// Releases the held child `c` from its wait (if it has one left) and watches
// on the loop for what it does next, reporting to cb(kind, a, b) as
// spawnWatch (native/watch.cc) says. `handle` is the child's handle, kept
// alive until the exec. False: nothing could be watched; the child is
// released all the same. Never throws.
bool WatchChild(Napi::Env env, child::Child *c, Napi::Value handle, Napi::Function cb);

}  // namespace userns
