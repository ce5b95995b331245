// The floor for spawn-with-maps, doing what `spawn("/bin/true", [], { namespaces: ["user"], uidMap,
// gidMap, setgroups: "deny", stdio: "ignore" })` must do, and nothing else:
//   - clone3(CLONE_NEWUSER | CLONE_VM | CLONE_PIDFD | CLONE_CLEAR_SIGHAND) onto a separate stack, with
//     every signal blocked around the call (as spawn does);
//   - the parent writes setgroups "deny", uid_map and gid_map ("0 100000 65536") while the child waits
//     on a pipe, then releases it;
//   - the child opens /dev/null and dup3s it onto fds 0, 1 and 2 (stdio "ignore"), restores the signal
//     mask and execs /bin/true with this program's environment;
//   - the parent learns from an O_CLOEXEC error pipe that execve succeeded (EOF), then waits for the exit
//     with waitid(P_PIDFD) and closes the pidfd.
// It does not reset signal dispositions in the child: this program ignores no signal, so nothing is left
// to reset (a Node process ignores SIGPIPE, so spawn must; see the README's "Where spawn's time goes").
//
//   cc -O2 -pthread -o /tmp/spawn-floor scripts/bench/spawn-floor.c
//   /tmp/spawn-floor [iterations] [resident MiB to allocate first] [samples]
//       one spawn at a time; prints the median and p99 per spawn in µs (with "samples": every sample,
//       "samplesUs", in run order, so a harness can pool runs and pair them)
//   /tmp/spawn-floor threads T MILLISECONDS [resident MiB]
//       T threads, each spawning one program after another, for that long; prints the spawns per second
//       (the throughput floor for T spawns in flight)
//   /tmp/spawn-floor loop K MILLISECONDS [resident MiB]
//       one thread keeping K spawns in flight for that long, as an event loop would (and as spawn() does
//       with others in flight): it releases each child and learns of its exec (the error pipe's EOF) and
//       then of its exit (the pidfd) from one epoll set; prints the spawns per second. What a single
//       thread can reach, beside what K threads reach.
//
// x86_64 only (the child is entered through a few lines of assembly, as glibc's clone does). Run as
// root: the map "0 100000 65536" needs CAP_SETUID in the parent namespace.
#define _GNU_SOURCE
#include <stdatomic.h>
#include <sys/epoll.h>

#include "spawn-floor.h"

static double deadline_us;
static atomic_long spawned;

static void *thread_main(void *arg) {
  (void)arg;
  char *stack = new_stack();
  while (now_us() < deadline_us) {
    spawn_one(stack);
    atomic_fetch_add(&spawned, 1);
  }
  return NULL;
}

// One spawn of the loop mode: its job and stack live until its exit. The epoll set watches its error pipe until
// the exec (execd 0), then its pidfd.
struct slot {
  struct job job;
  char *stack;
  int pidfd, err_r, execd;
};

static void loop_start(int ep, struct slot *s) {
  spawn_begin(&s->job, s->stack, &s->pidfd, &s->err_r);
  s->execd = 0;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, s->err_r, &ev) < 0) {
    perror("epoll_ctl");
    exit(1);
  }
}

// The loop mode's one thread: K children in flight, each watched through its exec, then its exit.
static long loop_run(int k) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct slot *slots = calloc((size_t)k, sizeof *slots);
  long done = 0;
  int live = 0;
  for (int i = 0; i < k; i++) {
    slots[i].stack = new_stack();
    loop_start(ep, &slots[i]);
    live++;
  }
  while (live > 0) {
    struct epoll_event evs[64];
    int n = epoll_wait(ep, evs, 64, -1);
    for (int i = 0; i < n; i++) {
      struct slot *s = evs[i].data.ptr;
      if (!s->execd) {
        epoll_ctl(ep, EPOLL_CTL_DEL, s->err_r, NULL);
        spawn_exec_wait(s->err_r);
        s->execd = 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
        epoll_ctl(ep, EPOLL_CTL_ADD, s->pidfd, &ev);
        continue;
      }
      epoll_ctl(ep, EPOLL_CTL_DEL, s->pidfd, NULL);
      wait_pidfd(s->pidfd);
      done++;
      live--;
      if (now_us() < deadline_us) {
        loop_start(ep, s);
        live++;
      }
    }
  }
  return done;
}

static void ballast(long mib) {
  if (mib <= 0) return;
  char *b = malloc((size_t)mib << 20);
  memset(b, 1, (size_t)mib << 20);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "threads") == 0) {
    int nthreads = argc > 2 ? atoi(argv[2]) : 1;
    long ms = argc > 3 ? atol(argv[3]) : 1000;
    ballast(argc > 4 ? atol(argv[4]) : 0);
    pthread_t *t = calloc((size_t)nthreads, sizeof *t);
    double t0 = now_us();
    deadline_us = t0 + (double)ms * 1000;
    for (int i = 0; i < nthreads; i++) pthread_create(&t[i], NULL, thread_main, NULL);
    for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
    double secs = (now_us() - t0) / 1e6;
    printf("{\"name\":\"c-clone3-vm-floor-threads\",\"threads\":%d,\"spawns\":%ld,\"seconds\":%.4f,\"perSecond\":%.1f}\n",
           nthreads, atomic_load(&spawned), secs, (double)atomic_load(&spawned) / secs);
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "loop") == 0) {
    int k = argc > 2 ? atoi(argv[2]) : 1;
    long ms = argc > 3 ? atol(argv[3]) : 1000;
    ballast(argc > 4 ? atol(argv[4]) : 0);
    double t0 = now_us();
    deadline_us = t0 + (double)ms * 1000;
    long done = loop_run(k);
    double secs = (now_us() - t0) / 1e6;
    printf("{\"name\":\"c-clone3-vm-floor-loop\",\"inFlight\":%d,\"spawns\":%ld,\"seconds\":%.4f,\"perSecond\":%.1f}\n", k,
           done, secs, (double)done / secs);
    return 0;
  }
  int n = argc > 1 ? atoi(argv[1]) : 200;
  ballast(argc > 2 ? atol(argv[2]) : 0);
  char *stack = new_stack();
  double *t = calloc((size_t)n, sizeof *t);
  for (int i = 0; i < n; i++) {
    double t0 = now_us();
    spawn_one(stack);
    t[i] = now_us() - t0;
  }
  printf("{\"name\":\"c-clone3-vm-floor\",\"n\":%d", n);
  if (argc > 3 && strcmp(argv[3], "samples") == 0) print_samples(t, n);
  print_median_p99(t, n);
  printf("}\n");
  return 0;
}
