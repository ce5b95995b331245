/*
 * userns-init: the sandbox's reaping pid 1 (SandboxOptions.init "reaper").
 *
 * The child that becomes pid 1 shares the Node process's memory until it
 * execs, so it cannot stay around as pid 1 itself; it execs this program
 * instead (execveat on an fd the parent opened, so it runs from inside any
 * root). Freestanding: no libc, static, raw syscalls, nothing but a stack.
 *
 *   userns-init PID
 *
 * PID is the program (pid 2), already running. Every signal arrives blocked
 * (the mask is kept across exec), so they queue and are read from a signalfd:
 * SIGCHLD reaps every exited child (orphans are reparented here); any other
 * signal is forwarded to the program. When the program exits, this exits with
 * its status, or 128 + the signal that killed it (a pid 1 cannot die of its
 * own signals); the kernel then kills whatever is left in the namespace.
 */
#include <linux/signalfd.h>
#include <asm/unistd.h>

#include "../child/raw-syscall.h"

#define SIGCHLD_ 17
#define WNOHANG_ 1
#define SFD_CLOEXEC_ 02000000

static inline long sys(long n, long a, long b, long c, long d) { return userns_raw_syscall(n, a, b, c, d, 0, 0); }

static __attribute__((noreturn)) void quit(int code) {
  for (;;) sys(__NR_exit_group, code, 0, 0, 0);
}

__attribute__((used)) void init_main(long *sp) {
  long argc = sp[0];
  char **argv = (char **)(sp + 1);
  if (argc < 2) quit(127);
  long pid = 0;
  for (const char *p = argv[1]; *p >= '0' && *p <= '9'; p++) pid = pid * 10 + (*p - '0');
  if (pid <= 0) quit(127);
  unsigned long all = ~0UL;
  long sfd = sys(__NR_signalfd4, -1, (long)&all, 8, SFD_CLOEXEC_);
  for (;;) {
    struct signalfd_siginfo si;
    long n = sfd >= 0 ? sys(__NR_read, sfd, (long)&si, sizeof si, 0) : -9;
    if (n == -4) continue; /* EINTR */
    int signo = n == (long)sizeof si ? (int)si.ssi_signo : SIGCHLD_;
    if (signo != SIGCHLD_) {
      sys(__NR_kill, pid, signo, 0, 0);
      continue;
    }
    for (;;) {
      int status = 0;
      long w = sys(__NR_wait4, -1, (long)&status, sfd >= 0 ? WNOHANG_ : 0, 0);
      if (w <= 0) break;
      if (w == pid) quit((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f));
    }
  }
}

__asm__(
    ".text\n"
    ".globl _start\n"
    "_start:\n"
    "  xorl %ebp, %ebp\n"
    "  movq %rsp, %rdi\n"
    "  andq $-16, %rsp\n"
    "  call init_main\n"
    "  hlt\n");
