// The floor for idmapped-mount churn: create (open_tree + mount_setattr
// IDMAP), attach (move_mount) and detach (umount2) in a loop, with raw
// syscalls and nothing else. Run it alone in a private mount namespace:
//   cc -O2 -o mount-floor scripts/bench/mount-floor.c
//   unshare --mount --propagation private ./mount-floor ITERATIONS WARMUP
// Prints one JSON line: {"iterations":N,"ns_per_op":X,"cpu_ns_per_op":Y}.
// WARMUP untimed cycles come first, as on our side (mount-ours.mjs): most of
// a cycle is umount2 waiting for an expedited RCU grace period, and that
// wait is short only while the kernel's rcu_exp_gp kthread runs on the
// caller's CPU. The scheduler moves it to the idle CPU once the caller's
// CPU is loaded (after ~1,500 cycles here), so an unwarmed run measures a
// different kernel path from a warmed one.
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OPEN_TREE_CLONE_ 1
#define AT_RECURSIVE_ 0x8000
#define AT_EMPTY_PATH_ 0x1000
#define MOVE_MOUNT_F_EMPTY_PATH_ 0x4
#define MOUNT_ATTR_IDMAP_ 0x100000

struct mount_attr_ {
  uint64_t attr_set, attr_clr, propagation, userns_fd;
};

// Set once the scratch directories exist, so that a failure removes them too.
static char g_dir[64], g_src[128], g_dst[128];

static void cleanup(void) {
  if (!g_dir[0]) return;
  umount2(g_dst, MNT_DETACH);
  umount2(g_src, MNT_DETACH);
  rmdir(g_src);
  rmdir(g_dst);
  rmdir(g_dir);
  g_dir[0] = 0;
}

static void die(const char *what) {
  perror(what);
  cleanup();
  exit(1);
}

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) die(path);
  close(fd);
}

// A user namespace carrying `0 100000 65536` for both maps, held by an fd.
static int make_userns(void) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) die("pipe2");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    char c;
    if (unshare(CLONE_NEWUSER) < 0) _exit(1);
    close(p[1]);
    (void)!read(p[0], &c, 1);
    _exit(0);
  }
  close(p[0]);
  char path[64];
  // Wait until the child is in its own namespace.
  for (;;) {
    char a[64], b[64];
    snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
    ssize_t n1 = readlink(path, a, sizeof a - 1);
    ssize_t n2 = readlink("/proc/self/ns/user", b, sizeof b - 1);
    if (n1 > 0 && n2 > 0 && (n1 != n2 || memcmp(a, b, (size_t)n1) != 0)) break;
    usleep(1000);
  }
  snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
  write_file(path, "0 100000 65536\n");
  snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
  write_file(path, "0 100000 65536\n");
  snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open userns");
  close(p[1]);
  waitpid(pid, NULL, 0);
  return fd;
}

static void cycle(const char *src, const char *dst, const struct mount_attr_ *attr) {
  int fd = (int)syscall(SYS_open_tree, AT_FDCWD, src, OPEN_TREE_CLONE_ | O_CLOEXEC);
  if (fd < 0) die("open_tree");
  if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH_, attr, sizeof *attr) < 0) die("mount_setattr");
  if (syscall(SYS_move_mount, fd, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH_) < 0) die("move_mount");
  close(fd);
  if (umount2(dst, 0) < 0) die("umount2");
}

static double ns_between(const struct timespec *a, const struct timespec *b) {
  return (double)(b->tv_sec - a->tv_sec) * 1e9 + (double)(b->tv_nsec - a->tv_nsec);
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000;
  long warmup = argc > 2 ? atol(argv[2]) : 0;
  // BURN_MS=N: use N ms of CPU first, as a runtime's start-up does (the cold
  // comparison in scripts/bench/mount.mjs gives it Node's start-up CPU time).
  const char *burn = getenv("BURN_MS");
  if (burn != NULL) {
    struct timespec b0, b1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b0);
    volatile unsigned long sink = 0;
    do {
      for (int k = 0; k < 100000; k++) sink += (unsigned long)k;
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b1);
    } while (ns_between(&b0, &b1) < (double)atol(burn) * 1e6);
  }
  char dir[] = "/tmp/mount-floor-XXXXXX";
  if (!mkdtemp(dir)) die("mkdtemp");
  char *src = g_src, *dst = g_dst;
  snprintf(src, sizeof g_src, "%s/src", dir);
  snprintf(dst, sizeof g_dst, "%s/dst", dir);
  snprintf(g_dir, sizeof g_dir, "%s", dir);
  if (mkdir(src, 0755) < 0 || mkdir(dst, 0755) < 0) die("mkdir");
  if (mount("floor", src, "tmpfs", 0, NULL) < 0) die("mount tmpfs");
  int ns = make_userns();
  struct mount_attr_ attr = {MOUNT_ATTR_IDMAP_, 0, 0, (uint64_t)ns};
  for (long i = 0; i < warmup; i++) cycle(src, dst, &attr);
  struct timespec t0, t1, c0, c1;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < n; i++) cycle(src, dst, &attr);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
  printf("{\"iterations\":%ld,\"ns_per_op\":%.0f,\"cpu_ns_per_op\":%.0f}\n", n, ns_between(&t0, &t1) / (double)n,
         ns_between(&c0, &c1) / (double)n);
  cleanup();
  close(ns);
  return 0;
}
