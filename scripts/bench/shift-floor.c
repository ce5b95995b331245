// The floor of an exact ownership shift, for the shift benchmark
// (scripts/bench/shift.mjs): the syscalls any shift that must read each
// owner and each inode's ownership xattrs before changing it has to make,
// in C, on one thread, with no maps, no plan, no journal and no second walk:
// per directory openat + getdents64, per inode statx, listxattrat (not for
// symlinks; mode "xattrs") and fchownat. Each run flips bit 16 of every
// owner and group, so every fchownat changes something (as chown -hR's
// does). Prints "wall_ms cpu_ms inodes".
//
// usage: shift-floor xattrs|noxattrs ROOT
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_listxattrat
#define SYS_listxattrat 465
#endif

static int with_xattrs;
static long inodes;

static void fail(const char *what) {
  perror(what);
  exit(1);
}

static void visit(int dfd, const char *name) {
  // The root itself is the fd (name ""), every other inode a name in its directory.
  int at = AT_SYMLINK_NOFOLLOW | (name[0] ? 0 : AT_EMPTY_PATH);
  struct statx st;
  if (statx(dfd, name, at, STATX_TYPE | STATX_MODE | STATX_UID | STATX_GID | STATX_INO, &st) < 0)
    fail("statx");
  if (with_xattrs && !S_ISLNK(st.stx_mode)) {
    char list[1024];
    if (syscall(SYS_listxattrat, dfd, name, at, list, sizeof list) < 0)
      fail("listxattrat");
  }
  if (fchownat(dfd, name, st.stx_uid ^ 0x10000, st.stx_gid ^ 0x10000, at) < 0)
    fail("fchownat");
  inodes++;
}

static void walk(int dfd) {
  static char buf[1 << 16];
  // Subdirectories are entered after the directory is read (its buffer is reused).
  size_t cap = 16, n = 0;
  char **subs = malloc(cap * sizeof *subs);
  for (;;) {
    long got = syscall(SYS_getdents64, dfd, buf, sizeof buf);
    if (got < 0) fail("getdents64");
    if (got == 0) break;
    for (long p = 0; p < got;) {
      struct dirent64 *d = (struct dirent64 *)(buf + p);
      p += d->d_reclen;
      if (d->d_name[0] == '.' && (d->d_name[1] == 0 || (d->d_name[1] == '.' && d->d_name[2] == 0))) continue;
      visit(dfd, d->d_name);
      if (d->d_type == DT_DIR) {
        if (n == cap) subs = realloc(subs, (cap *= 2) * sizeof *subs);
        subs[n++] = strdup(d->d_name);
      }
    }
  }
  for (size_t i = 0; i < n; i++) {
    int sfd = openat(dfd, subs[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sfd < 0) fail("openat");
    walk(sfd);
    close(sfd);
    free(subs[i]);
  }
  free(subs);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: shift-floor xattrs|noxattrs ROOT\n");
    return 2;
  }
  with_xattrs = strcmp(argv[1], "xattrs") == 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int root = open(argv[2], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root < 0) fail("open");
  visit(root, "");
  walk(root);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
  printf("%.1f %.1f %ld\n", (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6, cpu, inodes);
  return 0;
}
