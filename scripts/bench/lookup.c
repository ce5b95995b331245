/* Baseline for the model's id lookups: the kernel's algorithm in C
 * (kernel/user_namespace.c: map_id_range_down_base for <= 5 extents, the
 * bsearch over the forward-sorted array above), on the same map and id
 * sequence as scripts/bench/model.mjs. Usage: lookup NEXTENTS ITERATIONS.
 * Prints nanoseconds per lookup. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct extent { uint32_t first, lower_first, count; };

static struct extent written[340], forward[340];
static unsigned nr;

static int cmp_forward(const void *a, const void *b) {
  const struct extent *x = a, *y = b;
  return x->first < y->first ? -1 : x->first > y->first;
}

static uint32_t down_base(uint32_t id) {
  for (unsigned i = 0; i < nr; i++) {
    uint32_t first = written[i].first, last = first + written[i].count - 1;
    if (id >= first && id <= last) return written[i].lower_first + (id - first);
  }
  return (uint32_t)-1;
}

static uint32_t down_max(uint32_t id) {
  unsigned lo = 0, hi = nr;
  while (lo < hi) {
    unsigned mid = (lo + hi) / 2;
    const struct extent *e = &forward[mid];
    if (id < e->first) hi = mid;
    else if (id > e->first + e->count - 1) lo = mid + 1;
    else return e->lower_first + (id - e->first);
  }
  return (uint32_t)-1;
}

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  nr = (unsigned)atoi(argv[1]);
  long iters = atol(argv[2]);
  if (nr < 1 || nr > 340) return 2;
  for (unsigned i = 0; i < nr; i++) {
    unsigned k = nr - 1 - i; /* written in reverse order, as the JS side */
    written[i] = (struct extent){k * 2000, 100000 + k * 3000, 1000};
    forward[i] = written[i];
  }
  qsort(forward, nr, sizeof forward[0], cmp_forward);
  static uint32_t ids[4096];
  uint32_t x = 12345, span = nr * 2000;
  for (int i = 0; i < 4096; i++) { x = x * 1103515245u + 12345u; ids[i] = x % span; }
  uint32_t (*fn)(uint32_t) = nr <= 5 ? down_base : down_max;
  volatile uint32_t sink = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < iters; i++) sink ^= fn(ids[i & 4095]);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
  printf("%.3f\n", ns / (double)iters);
  return 0;
}
