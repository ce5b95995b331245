// The C floor's spawn of /bin/true, shared by spawn-floor.c (the C baseline) and spawn-node-floor.c (the same
// syscalls started from one N-API call): what `spawn("/bin/true", [], { namespaces: ["user"], uidMap, gidMap,
// setgroups: "deny", stdio: "ignore" })` must do. See spawn-floor.c's header for the steps. Header-only, every
// function static, so that each program still builds from its one .c file. x86_64 only.
#ifndef USERNS_BENCH_SPAWN_FLOOR_H
#define USERNS_BENCH_SPAWN_FLOOR_H

#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
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

// Starts one spawn of /bin/true on `stack` with `j` (which must stay as it is until the child has exec'd): the
// pipes, clone3, the map writes and the release. Returns the pid; *pidfd and *err_r (the error pipe's read end, EOF
// once execve succeeded) are the caller's to close.
static long spawn_begin(struct job *j, char *stack, int *pidfd, int *err_r) {
  int sp[2], ep[2];
  if (pipe2(sp, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0) {
    perror("pipe2");
    exit(1);
  }
  j->sync_r = sp[0];
  j->sync_w = sp[1];
  j->err_w = ep[1];
  *pidfd = -1;
  struct clone_args ca;
  memset(&ca, 0, sizeof ca);
  ca.flags = CLONE_NEWUSER | CLONE_VM | CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
  ca.pidfd = (uint64_t)(uintptr_t)pidfd;
  ca.exit_signal = SIGCHLD;
  ca.stack = (uint64_t)(uintptr_t)stack;
  ca.stack_size = stack_size;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &j->oldmask);
  long pid = clone3_vm(&ca, child, j);
  pthread_sigmask(SIG_SETMASK, &j->oldmask, NULL);
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
  *err_r = ep[0];
  return pid;
}

// Learns from the error pipe that execve succeeded (EOF), and closes it; exits if it failed.
static void spawn_exec_wait(int err_r) {
  int e;
  if (read(err_r, &e, sizeof e) == sizeof e) {
    fprintf(stderr, "execve: %s\n", strerror(e));
    exit(1);
  }
  close(err_r);
}

// One spawn of /bin/true, start to reaped exit, on the stack mapped at `stack` (one per thread).
static inline void spawn_one(char *stack) {
  struct job j;
  int pidfd, err_r;
  spawn_begin(&j, stack, &pidfd, &err_r);
  spawn_exec_wait(err_r);
  wait_pidfd(pidfd);
}

#endif
