// The one raw-syscall wrapper of the native engines (spawn's child, the
// verify runner's zygote and agents, the mount helpers' children).
//
// Code that runs between clone/fork and execve/_exit in a multithreaded
// process may not take locks, allocate, or touch libc state. With CLONE_VM
// (spawn's child on x86_64) it even shares the parent thread's TLS, so it may
// not write errno: Sys() returns -errno instead and, on x86_64, never goes
// through libc at all. Everything under native/child/ is plain C++ without
// N-API; each .cc there ends with a check that fails the build if napi.h or
// node_api.h got into its translation unit (test/unit/child-protocol.test.ts
// checks every one has it). Headers here are also used by N-API files.
#pragma once
#include <linux/sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "raw-syscall.h"

namespace userns {
namespace child {

// Functions that run in a child: never inlined into parent code paths the
// sanitizers instrument, never instrumented themselves (ASan's shadow and
// UBSan's handlers are not async-signal-safe and the CLONE_VM child shares
// the parent's memory).
#define CHILD_FN __attribute__((noinline, no_sanitize_address, no_sanitize_undefined))

#if defined(__x86_64__)
#define USERNS_CLONE_VM 1
// A syscall that returns -errno and never writes errno (raw-syscall.h).
__attribute__((always_inline)) inline long Sys(long n, long a = 0, long b = 0, long c = 0, long d = 0,
                                               long e = 0, long f = 0) {
  return userns_raw_syscall(n, a, b, c, d, e, f);
}

// clone3 onto a new stack. The child cannot return into this function (its
// stack pointer is the new stack), so the child branch calls fn(arg) right
// here and exits with its result. r8/r9 survive the syscall in both tasks.
__attribute__((noinline)) inline long Clone3Vm(struct clone_args *ca, int (*fn)(void *), void *arg) {
  long ret;
  register long r8 __asm__("r8") = reinterpret_cast<long>(fn);
  register long r9 __asm__("r9") = reinterpret_cast<long>(arg);
  __asm__ volatile(
      "syscall\n\t"
      "testq %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      "xorl %%ebp, %%ebp\n\t"
      "movq %%r9, %%rdi\n\t"
      "callq *%%r8\n\t"
      "movl %%eax, %%edi\n\t"
      "movl $231, %%eax\n\t"  // exit_group
      "syscall\n\t"
      "hlt\n\t"
      "1:\n\t"
      : "=a"(ret)
      : "a"(static_cast<long>(__NR_clone3)), "D"(ca), "S"(sizeof(*ca)), "r"(r8), "r"(r9)
      : "rcx", "r11", "memory", "cc");
  return ret;
}
#else
#define USERNS_CLONE_VM 0
// Fork-like path: the child has its own copy of memory, so libc's syscall()
// and its errno are safe to use.
inline long Sys(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
  long r = syscall(n, a, b, c, d, e, f);
  return r < 0 ? -errno : r;
}
#endif

// A new process sharing nothing but what fork shares, without libc's fork
// (whose atfork handlers may take locks another thread held).
inline long RawFork() { return Sys(__NR_clone, SIGCHLD, 0, 0, 0, 0); }

// Leaves this process (all threads), whatever happens.
[[noreturn]] inline void ExitGroup(int code) {
  for (;;) Sys(__NR_exit_group, code);
}

// Formats "/proc/<pid>/<file>", or "/proc/self/<file>" for a pid < 0, into buf: without libc, so a child may
// use it, and without snprintf's format parsing, which showed in spawn's profile (three map files per spawn).
// buf must hold 17 + strlen(file) + 1 bytes.
inline void ProcPath(char *buf, int pid, const char *file) {
  const char *pre = "/proc/";
  char *p = buf;
  while (*pre) *p++ = *pre++;
  if (pid < 0) {
    const char *s = "self";
    while (*s) *p++ = *s++;
  } else {
    char tmp[12];
    int n = 0;
    unsigned v = static_cast<unsigned>(pid);
    do {
      tmp[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0) *p++ = tmp[--n];
  }
  *p++ = '/';
  while (*file) *p++ = *file++;
  *p = '\0';
}

}  // namespace child
}  // namespace userns
