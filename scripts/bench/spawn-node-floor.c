// The Node floor: the C floor's spawn (spawn-floor.h: the same clone3, map writes and execve) started from one
// N-API call, its exit reported by one event-loop callback into JavaScript. It is what any Node addon would pay at
// least to do what spawn() does: an N-API call in, a pidfd in an epoll set that libuv polls (as native/watch.cc
// has it), one callback out with an async context (so that AsyncLocalStorage follows the exit, as spawn's does).
// Nothing else: no option checks, no handle object or events, no reporting of a failed execve when it does not
// wait for it (it exits the process instead, a bench may). The bench compares spawn() with it to tell what the
// library adds from what running in Node costs.
//
//   gcc -O2 -shared -fPIC -I<node's include/node> -o spawn-node-floor.node scripts/bench/spawn-node-floor.c
//   const floor = { exports: {} }; process.dlopen(floor, path);
//   floor.exports.start(cb, waitExec)   cb(exitStatus) once /bin/true has exited; with waitExec, the call
//                                       blocks until the execve (as spawn() does with nothing else in flight)
//
// libuv is reached through the symbols the node binary exports; only node_api.h is needed (its uv_loop_s is
// opaque here). x86_64 only, as spawn-floor.h. Run as root, as spawn-floor.
#define _GNU_SOURCE
#include <node_api.h>
#include <sys/epoll.h>
#include <sys/wait.h>

#include "spawn-floor.h"

// The four libuv calls used, declared here so that only node_api.h is needed. uv_poll_t's size comes from libuv.
typedef struct uv_handle_s uv_handle_t;
typedef void (*poll_cb)(void *handle, int status, int events);
extern size_t uv_handle_size(int type);
extern int uv_poll_init(struct uv_loop_s *loop, void *handle, int fd);
extern int uv_poll_start(void *handle, int events, poll_cb cb);
extern void uv_ref(uv_handle_t *handle);
extern void uv_unref(uv_handle_t *handle);
enum { kUvPoll = 8, kUvReadable = 1 };  // UV_POLL in uv_handle_type, UV_READABLE in uv_poll_event

// One spawn in flight: the child reads `job` and runs on `stack` until its execve, so both live until its exit.
struct slot {
  struct job job;
  char *stack;
  int pidfd;
  napi_ref cb;
  napi_async_context ctx;
  struct slot *next;
};

static struct slot *free_slots;
static int epfd = -1;
static int in_flight;
static void *poll_handle;
static napi_env the_env;

static void check(napi_status s, const char *what) {
  if (s != napi_ok) {
    fprintf(stderr, "spawn-node-floor: %s failed (%d)\n", what, (int)s);
    exit(1);
  }
}

// The epoll set is readable: reap each exited child and call its callback.
static void on_readable(void *handle, int status, int events) {
  (void)handle;
  (void)status;
  (void)events;
  struct epoll_event evs[64];
  int n = epoll_wait(epfd, evs, 64, 0);
  for (int i = 0; i < n; i++) {
    struct slot *s = evs[i].data.ptr;
    epoll_ctl(epfd, EPOLL_CTL_DEL, s->pidfd, NULL);
    siginfo_t si = wait_pidfd(s->pidfd);
    napi_handle_scope scope;
    check(napi_open_handle_scope(the_env, &scope), "napi_open_handle_scope");
    napi_value cb, recv, arg, result;
    check(napi_get_reference_value(the_env, s->cb, &cb), "napi_get_reference_value");
    check(napi_get_global(the_env, &recv), "napi_get_global");
    check(napi_create_int32(the_env, si.si_status, &arg), "napi_create_int32");
    napi_delete_reference(the_env, s->cb);
    // The slot is free before the callback, which may start the next spawn in it.
    napi_async_context ctx = s->ctx;
    s->next = free_slots;
    free_slots = s;
    if (--in_flight == 0) uv_unref(poll_handle);
    napi_status st = napi_make_callback(the_env, ctx, recv, cb, 1, &arg, &result);
    napi_async_destroy(the_env, ctx);
    napi_close_handle_scope(the_env, scope);
    // A throwing callback: leave it to Node, as for any callback.
    if (st != napi_ok && st != napi_pending_exception) check(st, "napi_make_callback");
  }
}

// start(cb, waitExec): one spawn of /bin/true; cb(exitStatus) once it has exited.
static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  check(napi_get_cb_info(env, info, &argc, args, NULL, NULL), "napi_get_cb_info");
  bool wait_exec = false;
  if (argc > 1) napi_get_value_bool(env, args[1], &wait_exec);
  struct slot *s = free_slots;
  if (s != NULL) {
    free_slots = s->next;
  } else {
    s = calloc(1, sizeof *s);
    s->stack = new_stack();
  }
  int err_r;
  spawn_begin(&s->job, s->stack, &s->pidfd, &err_r);
  // Not waiting: the error pipe's read end is closed unread (a failed execve goes unreported).
  if (wait_exec) spawn_exec_wait(err_r);
  else close(err_r);
  check(napi_create_reference(env, args[0], 1, &s->cb), "napi_create_reference");
  napi_value name;
  check(napi_create_string_utf8(env, "spawn-node-floor", NAPI_AUTO_LENGTH, &name), "napi_create_string_utf8");
  check(napi_async_init(env, NULL, name, &s->ctx), "napi_async_init");
  struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.ptr = s};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->pidfd, &ev) < 0) {
    perror("epoll_ctl");
    exit(1);
  }
  if (in_flight++ == 0) uv_ref(poll_handle);
  return NULL;
}

NAPI_MODULE_INIT() {
  the_env = env;
  epfd = epoll_create1(EPOLL_CLOEXEC);
  struct uv_loop_s *loop;
  check(napi_get_uv_event_loop(env, &loop), "napi_get_uv_event_loop");
  poll_handle = calloc(1, uv_handle_size(kUvPoll));
  if (epfd < 0 || uv_poll_init(loop, poll_handle, epfd) != 0 ||
      uv_poll_start(poll_handle, kUvReadable, on_readable) != 0) {
    fprintf(stderr, "spawn-node-floor: cannot poll an epoll set\n");
    exit(1);
  }
  // Keeps the loop alive only while a spawn is in flight.
  uv_unref(poll_handle);
  napi_value fn;
  check(napi_create_function(env, "start", NAPI_AUTO_LENGTH, start, NULL, &fn), "napi_create_function");
  check(napi_set_named_property(env, exports, "start", fn), "napi_set_named_property");
  return exports;
}
