/*
 * The one raw syscall instruction of the native code (x86_64), in C so that
 * both the C++ engines (through Sys() in sys.h) and the freestanding C
 * program native/init/init.c, which has no libc at all, use the same one.
 * It returns -errno and never writes errno: code after a CLONE_VM clone
 * shares the parent thread's TLS, and init.c has no errno.
 */
#pragma once

#if defined(__x86_64__)
static inline __attribute__((always_inline)) long userns_raw_syscall(long n, long a, long b, long c, long d, long e,
                                                                     long f) {
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
#endif
