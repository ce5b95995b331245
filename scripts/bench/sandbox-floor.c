// The floor for the sandbox benchmark: the sandbox a widely used Node sandboxing package asks
// bwrap for, built by a small C program itself, then exec of /bin/true, the parent waiting.
// The same work as the library and bwrap: clone3 into new user, mount, pid and network
// namespaces, the parent writes uid_map and gid_map "0 0 1" (root, as bwrap writes them), then
// the child, as the library does for a plan that starts with a bind of "/": a recursive
// read-only copy of / stacked over / (open_tree, mount_setattr, move_mount), which becomes the
// new root; in it a writable bind of the working directory, tmpfs /tmp, a minimal /dev (tmpfs,
// six device binds, devpts, the links and shm), a new /proc with its four read-only covers;
// pivot_root(".", ".") into it and the host's root detached (one pivot_root, one umount2: no
// base tmpfs to pivot into first, as bwrap does); loopback up; a new session, the parent-death
// signal, every capability dropped (bounding set too); exec.
//
//   cc -O2 -o /tmp/sandbox-floor scripts/bench/sandbox-floor.c
//   /tmp/sandbox-floor ITERATIONS WORKDIR [samples]
//
// Prints {"medianUs","p99Us"} and with "samples" every sample in run order. With "phases"
// instead, also "phasesUs": the median time of each step of a spawn (clone3, the maps, the
// child's wake-up, each part of the sandbox, and from the last step to the parent's waitid
// returning: exec, /bin/true, exit and the namespaces' teardown), from clock readings the child
// writes to a shared page (a vDSO call each, ~20 ns). Run as root.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "floor-common.h"

static const char *workdir;
static int last_cap = 40;

// Step timings ("phases" mode): kPhase[k] ends at mark k; mark 0 is taken before clone3.
static const char *const kPhase[] = {"",
                                     "clone3 (new user, mount, pid, net namespaces)",
                                     "uid_map and gid_map written, child released",
                                     "child wakes up",
                                     "make-rslave",
                                     "read-only recursive copy of / stacked over /",
                                     "workdir bind, tmpfs /tmp",
                                     "/dev (tmpfs, 6 device binds, devpts, links)",
                                     "/proc and its covers",
                                     "pivot_root, the old root detached",
                                     "loopback up",
                                     "setsid, parent-death signal, capabilities dropped",
                                     "exec, /bin/true, exit, teardown, until waitid returns"};
enum { kMarks = sizeof kPhase / sizeof *kPhase };
static volatile double *marks;  // a MAP_SHARED page, or NULL
#define MARK(k) \
  do {          \
    if (marks) marks[k] = now_us(); \
  } while (0)

static void die(const char *what) {
  perror(what);
  _exit(120);
}

static void must(int ok, const char *what) {
  if (!ok) die(what);
}

static void bind_ro_rec(const char *path) {
  struct mount_attr a;
  memset(&a, 0, sizeof a);
  a.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  must(syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &a, sizeof a) == 0, "mount_setattr");
}

static void touch(const char *path) {
  int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0444);
  must(fd >= 0, path);
  close(fd);
}

static int child(void) {
  char go;
  // Wait for the maps.
  if (read(3, &go, 1) != 1) _exit(126);
  MARK(3);
  must(mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) == 0, "make-rslave");
  MARK(4);
  // --ro-bind / /: a recursive copy of /, read-only, stacked over / itself: it becomes the new root.
  // Absolute paths still lead into the host's tree (a walk from "/" does not cross a mount on its
  // starting point); relative ones, from the cwd, into the new root.
  int root = (int)syscall(SYS_open_tree, AT_FDCWD, "/", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  must(root >= 0, "open_tree /");
  struct mount_attr a;
  memset(&a, 0, sizeof a);
  a.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  must(syscall(SYS_mount_setattr, root, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) == 0, "setattr /");
  must(syscall(SYS_move_mount, root, "", AT_FDCWD, "/", MOVE_MOUNT_F_EMPTY_PATH) == 0, "move_mount /");
  must(fchdir(root) == 0, "fchdir root");
  close(root);
  MARK(5);
  // --bind WORKDIR WORKDIR
  char src[4096], dst[4096];
  snprintf(dst, sizeof dst, ".%s", workdir);
  must(mount(workdir, dst, NULL, MS_BIND | MS_REC, NULL) == 0, "bind workdir");
  memset(&a, 0, sizeof a);
  a.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  must(syscall(SYS_mount_setattr, AT_FDCWD, dst, AT_RECURSIVE, &a, sizeof a) == 0, "setattr workdir");
  // --tmpfs /tmp
  must(mount("tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") == 0, "tmpfs /tmp");
  MARK(6);
  // --dev /dev
  must(mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") == 0, "tmpfs /dev");
  static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
  for (unsigned i = 0; i < sizeof nodes / sizeof *nodes; i++) {
    snprintf(src, sizeof src, "/dev/%s", nodes[i]);
    snprintf(dst, sizeof dst, "dev/%s", nodes[i]);
    touch(dst);
    must(mount(src, dst, NULL, MS_BIND | MS_REC, NULL) == 0, "bind device");
    memset(&a, 0, sizeof a);
    a.attr_set = MOUNT_ATTR_NOSUID;
    must(syscall(SYS_mount_setattr, AT_FDCWD, dst, 0, &a, sizeof a) == 0, "setattr device");
  }
  must(mkdir("dev/pts", 0755) == 0 && mkdir("dev/shm", 0755) == 0, "mkdir pts shm");
  must(mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620") == 0,
       "devpts");
  must(symlink("pts/ptmx", "dev/ptmx") == 0, "ptmx");
  must(symlink("/proc/self/fd", "dev/fd") == 0 && symlink("/proc/self/fd/0", "dev/stdin") == 0 &&
           symlink("/proc/self/fd/1", "dev/stdout") == 0 && symlink("/proc/self/fd/2", "dev/stderr") == 0 &&
           symlink("/proc/kcore", "dev/core") == 0,
       "dev links");
  MARK(7);
  // --proc /proc, with bwrap's read-only covers
  must(mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0, "proc");
  static const char *const covers[] = {"sys", "sysrq-trigger", "irq", "bus"};
  for (unsigned i = 0; i < sizeof covers / sizeof *covers; i++) {
    snprintf(dst, sizeof dst, "proc/%s", covers[i]);
    if (access(dst, F_OK) != 0) continue;
    must(mount(dst, dst, NULL, MS_BIND | MS_REC, NULL) == 0, "proc cover");
    bind_ro_rec(dst);
  }
  MARK(8);
  // The new root (the cwd) becomes "/"; the host's root, now stacked on it, is detached (one umount2).
  must(syscall(SYS_pivot_root, ".", ".") == 0, "pivot_root");
  must(umount2(".", MNT_DETACH) == 0, "umount old root");
  must(chdir("/") == 0, "chdir /");
  MARK(9);
  // Loopback up in the new network namespace.
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  must(s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0, "SIOCGIFFLAGS");
  ifr.ifr_flags |= IFF_UP;
  must(ioctl(s, SIOCSIFFLAGS, &ifr) == 0, "SIOCSIFFLAGS");
  close(s);
  MARK(10);
  // --new-session --die-with-parent --cap-drop ALL
  must(setsid() >= 0, "setsid");
  must(prctl(PR_SET_PDEATHSIG, SIGKILL) == 0, "pdeathsig");
  for (int c = 0; c <= last_cap; c++) must(prctl(PR_CAPBSET_DROP, c, 0, 0, 0) == 0, "capbset");
  must(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == 0, "ambient");
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  must(syscall(SYS_capset, &h, d) == 0, "capset");
  MARK(11);
  static char *const argv[] = {"true", NULL};
  execve("/bin/true", argv, environ);
  die("execve");
  return 127;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: sandbox-floor ITERATIONS WORKDIR [samples|phases]\n");
    return 2;
  }
  int n = atoi(argv[1]);
  workdir = argv[2];
  FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "r");
  if (f) {
    if (fscanf(f, "%d", &last_cap) != 1) last_cap = 40;
    fclose(f);
  }
  int samples = argc > 3 && strcmp(argv[3], "samples") == 0;
  int phases = argc > 3 && strcmp(argv[3], "phases") == 0;
  double *t = calloc((size_t)n, sizeof *t);
  double *steps = NULL;
  if (phases) {
    marks = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (marks == MAP_FAILED) die("mmap");
    steps = calloc((size_t)n * kMarks, sizeof *steps);
  }
  for (int i = 0; i < n; i++) {
    int sp[2];
    if (pipe2(sp, O_CLOEXEC) != 0) die("pipe");
    double t0 = now_us();
    MARK(0);
    int pidfd = -1;
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_PIDFD;
    ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
    ca.exit_signal = SIGCHLD;
    long pid = syscall(SYS_clone3, &ca, sizeof ca);
    if (pid < 0) die("clone3");
    if (pid > 0) MARK(1);
    if (pid == 0) {
      close(sp[1]);
      if (dup2(sp[0], 3) < 0) _exit(125);
      _exit(child());
    }
    close(sp[0]);
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/uid_map", pid);
    write_file(path, "0 0 1\n");
    snprintf(path, sizeof path, "/proc/%ld/gid_map", pid);
    write_file(path, "0 0 1\n");
    MARK(2);
    if (write(sp[1], "g", 1) != 1) die("write");
    close(sp[1]);
    siginfo_t si = wait_pidfd(pidfd);
    MARK(kMarks - 1);
    if (si.si_code != CLD_EXITED || si.si_status != 0) {
      fprintf(stderr, "sandbox-floor: child ended with %d/%d\n", si.si_code, si.si_status);
      return 1;
    }
    t[i] = now_us() - t0;
    if (phases)
      for (int k = 1; k < kMarks; k++) steps[(size_t)k * n + i] = marks[k] - marks[k - 1];
  }
  printf("{\"name\":\"c-sandbox-floor\",\"n\":%d", n);
  if (samples) print_samples(t, n);
  if (phases) {
    printf(",\"phasesUs\":[");
    for (int k = 1; k < kMarks; k++) {
      double *x = steps + (size_t)k * n;
      qsort(x, (size_t)n, sizeof *x, cmp_double);
      printf("%s{\"step\":\"%s\",\"medianUs\":%.1f,\"p99Us\":%.1f}", k > 1 ? "," : "", kPhase[k], x[n / 2],
             x[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1]);
    }
    printf("]");
  }
  print_median_p99(t, n);
  printf("}\n");
  return 0;
}
