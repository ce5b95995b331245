// bwrap started from a small C program: posix_spawn of bwrap with the given arguments, then
// waitpid, per iteration. The baseline for "the library saves bwrap's own exec": what a
// sandboxing tool pays for running bwrap when its own launcher costs almost nothing.
//
//   cc -O2 -o /tmp/bwrap-from-c scripts/bench/bwrap-from-c.c
//   /tmp/bwrap-from-c ITERATIONS samples|summary BWRAP [ARGS...]
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "floor-common.h"

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: bwrap-from-c ITERATIONS samples|summary BWRAP [ARGS...]\n");
    return 2;
  }
  int n = atoi(argv[1]);
  int samples = strcmp(argv[2], "samples") == 0;
  double *t = calloc((size_t)n, sizeof *t);
  for (int i = 0; i < n; i++) {
    double t0 = now_us();
    pid_t pid;
    int e = posix_spawn(&pid, argv[3], NULL, NULL, argv + 3, environ);
    if (e != 0) {
      fprintf(stderr, "posix_spawn %s: %s\n", argv[3], strerror(e));
      return 1;
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "bwrap-from-c: bwrap failed (status %d)\n", st);
      return 1;
    }
    t[i] = now_us() - t0;
  }
  printf("{\"name\":\"bwrap-from-c\",\"n\":%d", n);
  if (samples) print_samples(t, n);
  print_median_p99(t, n);
  printf("}\n");
  return 0;
}
