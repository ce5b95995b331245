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
//
// x86_64 only (the child is entered through a few lines of assembly, as glibc's clone does). Run as
// root: the map "0 100000 65536" needs CAP_SETUID in the parent namespace.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "floor-common.h"

// What one child reads: complete before clone3, never written while it runs (it shares our memory).
struct job {
  int sync_r, sync_w, err_w;
  sigset_t oldmask;
};

static long raw(long n, long a, long b, long c) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return ret;
}

static long raw4(long n, long a, long b, long c, long d) {
  long ret;
  register long r10 __asm__("r10") = d;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
  return ret;
}

static int child(void *arg) {
  const struct job *j = arg;
  char go;
  raw(__NR_close, j->sync_w, 0, 0);
  if (raw(__NR_read, j->sync_r, (long)&go, 1) != 1) raw(__NR_exit_group, 126, 0, 0);
  long r = raw4(__NR_openat, AT_FDCWD, (long)"/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY, 0);
  for (long fd = 0; fd < 3 && r >= 0; fd++) {
    long d = raw(__NR_dup3, r, fd, 0);
    if (d < 0) r = d;
  }
  if (r >= 0) {
    raw4(__NR_rt_sigprocmask, SIG_SETMASK, (long)&j->oldmask, 0, 8);
    static char *const argv[] = {"true", NULL};
    // The caller's environment, as execv passes it and as userns spawn passes it by default.
    r = raw(__NR_execve, (long)"/bin/true", (long)argv, (long)environ);
  }
  int e = (int)-r;
  raw(__NR_write, j->err_w, (long)&e, sizeof e);
  raw(__NR_exit_group, 127, 0, 0);
  return 127;
}

static long clone3_vm(struct clone_args *ca, int (*fn)(void *), void *arg) {
  long ret;
  register long r8 __asm__("r8") = (long)fn;
  register long r9 __asm__("r9") = (long)arg;
  __asm__ volatile(
      "syscall\n\t"
      "testq %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      "xorl %%ebp, %%ebp\n\t"
      "movq %%r9, %%rdi\n\t"
      "callq *%%r8\n\t"
      "movl %%eax, %%edi\n\t"
      "movl $231, %%eax\n\t"
      "syscall\n\t"
      "hlt\n\t"
      "1:\n\t"
      : "=a"(ret)
      : "a"((long)__NR_clone3), "D"(ca), "S"(sizeof(*ca)), "r"(r8), "r"(r9)
      : "rcx", "r11", "memory", "cc");
  return ret;
}

static const size_t stack_size = 64 * 1024;

static char *new_stack(void) {
  char *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    perror("mmap");
    exit(1);
  }
  return stack;
}

// One spawn of /bin/true, start to reaped exit, on the stack mapped at `stack` (one per thread).
static void spawn_one(char *stack) {
  int sp[2], ep[2];
  if (pipe2(sp, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0) {
    perror("pipe2");
    exit(1);
  }
  struct job j = {.sync_r = sp[0], .sync_w = sp[1], .err_w = ep[1]};
  int pidfd = -1;
  struct clone_args ca;
  memset(&ca, 0, sizeof ca);
  ca.flags = CLONE_NEWUSER | CLONE_VM | CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
  ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
  ca.exit_signal = SIGCHLD;
  ca.stack = (uint64_t)(uintptr_t)stack;
  ca.stack_size = stack_size;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &j.oldmask);
  long pid = clone3_vm(&ca, child, &j);
  pthread_sigmask(SIG_SETMASK, &j.oldmask, NULL);
  if (pid < 0) {
    fprintf(stderr, "clone3: %s\n", strerror((int)-pid));
    exit(1);
  }
  close(sp[0]);
  close(ep[1]);
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/setgroups", pid);
  write_file(path, "deny");
  snprintf(path, sizeof path, "/proc/%ld/uid_map", pid);
  write_file(path, "0 100000 65536\n");
  snprintf(path, sizeof path, "/proc/%ld/gid_map", pid);
  write_file(path, "0 100000 65536\n");
  if (write(sp[1], "g", 1) != 1) {
    perror("write");
    exit(1);
  }
  close(sp[1]);
  int e;
  if (read(ep[0], &e, sizeof e) == sizeof e) {
    fprintf(stderr, "execve: %s\n", strerror(e));
    exit(1);
  }
  close(ep[0]);
  wait_pidfd(pidfd);
}

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
