// Helpers shared by the bench's C programs (spawn-floor.c, sandbox-floor.c, bwrap-from-c.c):
// the clock, the map writes, waiting on a pidfd, and the JSON line they print. Header-only
// (every function static) so that each program still builds with one `gcc -O2 -o OUT FILE.c`.
#ifndef USERNS_BENCH_FLOOR_COMMON_H
#define USERNS_BENCH_FLOOR_COMMON_H

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

// Monotonic time in microseconds.
static inline double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static inline int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

// Writes `data` to an existing file (a /proc map file); exits on any failure.
static inline void write_file(const char *path, const char *data) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, data, strlen(data)) != (ssize_t)strlen(data)) {
    perror(path);
    exit(1);
  }
  close(fd);
}

// Waits for the child behind `pidfd` to exit, closes the pidfd; returns its siginfo.
static inline siginfo_t wait_pidfd(int pidfd) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED) != 0) {
    perror("waitid");
    exit(1);
  }
  close(pidfd);
  return si;
}

// Prints `,"samplesUs":[...]` (every sample, in run order).
static inline void print_samples(const double *t, int n) {
  printf(",\"samplesUs\":[");
  for (int i = 0; i < n; i++) printf("%s%.1f", i ? "," : "", t[i]);
  printf("]");
}

// Sorts the samples in place and prints `,"medianUs":M,"p99Us":P` (the nearest-rank percentiles the
// bench's median() and percentile() take).
static inline void print_median_p99(double *t, int n) {
  qsort(t, (size_t)n, sizeof *t, cmp_double);
  int p99 = (n * 99) / 100 < n ? (n * 99) / 100 : n - 1;
  printf(",\"medianUs\":%.1f,\"p99Us\":%.1f", t[n / 2], t[p99]);
}

#endif
