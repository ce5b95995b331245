// Raw syscalls for code that runs in the spawned child before execve (see the
// contract at the top of native/spawn.cc): they return -errno and never touch
// errno, which lives in the parent thread's TLS when the child shares memory
// with it. No N-API here: this header is for the child only.
#pragma once
#include <cerrno>
#include <unistd.h>

namespace userns {
namespace child {

#if defined(__x86_64__)
__attribute__((always_inline)) inline long Sys(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0,
                                               long f = 0) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}
#else
// The fork-like path: the child has its own copy of memory and of errno.
long Sys(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0);
#endif

// Child functions: never inlined into parent code, never instrumented (the
// sanitizers' runtime is not async-signal-safe, and the child shares memory).
#define USERNS_CHILD_FN __attribute__((noinline, no_sanitize_address, no_sanitize_undefined))

}  // namespace child
}  // namespace userns
