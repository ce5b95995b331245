// Exit watches (native/watch.cc) as spawn's one-call path arms them: on the
// pidfd of a child released but not yet exec'd, while the child runs its last
// steps and execs, so that the registration costs the thread no time of the
// spawn's; kept if the child exec'd, dropped unfired if not.
#pragma once
#include <napi.h>

namespace userns {

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

}  // namespace userns
