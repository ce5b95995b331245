// The floor for spawn-with-maps: clone3(CLONE_NEWUSER | CLONE_VM |
// CLONE_PIDFD) onto a separate stack, the parent writes setgroups/uid_map/
// gid_map while the child waits on a pipe, the child execs /bin/true with
// this program's environment, the parent waits for it. Prints the median
// and p99 per spawn in microseconds.
//
//   cc -O2 -o /tmp/spawn-floor scripts/bench/spawn-floor.c
//   /tmp/spawn-floor [iterations] [resident MiB to allocate first] [samples]
//
// With a third argument "samples", the JSON line also carries every sample
// ("samplesUs", in run order), so a harness can pool runs and pair them.
//
// x86_64 only (the child is entered through a few lines of assembly, as
// glibc's clone does). Run as root: the map "0 100000 65536" needs
// CAP_SETUID in the parent namespace.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
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

static int sync_r, sync_w, err_w;

static long raw(long n, long a, long b, long c) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return ret;
}

static int child(void *arg) {
  (void)arg;
  char go;
  raw(__NR_close, sync_w, 0, 0);
  if (raw(__NR_read, sync_r, (long)&go, 1) != 1) raw(__NR_exit_group, 126, 0, 0);
  static char *const argv[] = {"true", NULL};
  // The caller's environment, as execv passes it and as userns spawn passes
  // it by default: the floor does the same work as the measured call.
  long r = raw(__NR_execve, (long)"/bin/true", (long)argv, (long)environ);
  int e = (int)-r;
  raw(__NR_write, err_w, (long)&e, sizeof e);
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

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 200;
  long mib = argc > 2 ? atol(argv[2]) : 0;
  if (mib > 0) {
    char *ballast = malloc((size_t)mib << 20);
    memset(ballast, 1, (size_t)mib << 20);
  }
  const size_t stack_size = 64 * 1024;
  char *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  double *t = calloc((size_t)n, sizeof *t);
  for (int i = 0; i < n; i++) {
    int sp[2], ep[2];
    pipe2(sp, O_CLOEXEC);
    pipe2(ep, O_CLOEXEC);
    sync_r = sp[0];
    sync_w = sp[1];
    err_w = ep[1];
    double t0 = now_us();
    int pidfd = -1;
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = CLONE_NEWUSER | CLONE_VM | CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
    ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
    ca.exit_signal = SIGCHLD;
    ca.stack = (uint64_t)(uintptr_t)stack;
    ca.stack_size = stack_size;
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    long pid = clone3_vm(&ca, child, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
      fprintf(stderr, "clone3: %s\n", strerror((int)-pid));
      return 1;
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
    write(sp[1], "g", 1);
    close(sp[1]);
    int e;
    if (read(ep[0], &e, sizeof e) == sizeof e) {
      fprintf(stderr, "execve: %s\n", strerror(e));
      return 1;
    }
    close(ep[0]);
    wait_pidfd(pidfd);
    t[i] = now_us() - t0;
  }
  int samples = argc > 3 && strcmp(argv[3], "samples") == 0;
  double *raw_t = NULL;
  if (samples) {
    raw_t = calloc((size_t)n, sizeof *raw_t);
    memcpy(raw_t, t, (size_t)n * sizeof *t);
  }
  qsort(t, (size_t)n, sizeof *t, cmp_double);
  printf("{\"name\":\"c-clone3-vm-floor\",\"n\":%d,\"residentMiB\":%ld,\"medianUs\":%.1f,\"p99Us\":%.1f", n, mib,
         t[n / 2], t[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1]);
  if (samples) print_samples(raw_t, n);
  printf("}\n");
  return 0;
}
