/*
 * Baseline for the model's id lookups: the kernel's map_id_range_down
 * algorithm (kernel/user_namespace.c) in plain C, timed on the same workload
 * the TypeScript bench runs.
 *
 *   cc -O2 -o lookup scripts/bench/lookup.c && ./lookup [lookups]
 *
 * Prints one JSON line per map size (5 and 340 extents):
 *   {"extents":5,"lookups":N,"ns_per_lookup":X,"checksum":C}
 *
 * Workload (the TS side must build the same, so the checksums agree):
 *   - extent i (0-based, written in ascending order) = first 10*i,
 *     lower_first 1000000 + 20*i, count 10;
 *   - lookup k asks for id x_k = s_(k mod 4096) % (10*extents + 10), single ids
 *     (count 1), where s_0 = 1 and s_{k+1} = (s_k * 1103515245 + 12345) mod 2^31;
 *     the last 10 ids of the range are unmapped;
 *   - checksum = sum mod 2^32 of the results, 4294967295 for a miss.
 * Up to 5 extents: linear scan of the written extents
 * (map_id_range_down_base); above: binary search over the extents sorted
 * by first with cmp_map_id's comparison (map_id_range_down_max).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct extent {
  uint32_t first, lower_first, count;
};

#define MAX_BASE 5

static const struct extent *down_base(const struct extent *e, unsigned n, uint32_t id, uint32_t count) {
  uint32_t idlast = id + count - 1;
  for (unsigned i = 0; i < n; i++) {
    uint32_t first = e[i].first, last = first + e[i].count - 1;
    if (id >= first && id <= last && idlast >= first && idlast <= last) return &e[i];
  }
  return NULL;
}

/* cmp_map_id for the down direction: 0 inside, -1 below, 1 above. */
static int cmp_down(uint32_t id, uint32_t count, const struct extent *el) {
  uint32_t id2 = id + count - 1, first = el->first, last = first + el->count - 1;
  if (id >= first && id <= last && id2 >= first && id2 <= last) return 0;
  if (id < first || id2 < first) return -1;
  return 1;
}

static const struct extent *down_max(const struct extent *sorted, unsigned n, uint32_t id, uint32_t count) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = cmp_down(id, count, &sorted[mid]);
    if (c == 0) return &sorted[mid];
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

static uint32_t map_id_down(const struct extent *e, unsigned n, uint32_t id) {
  const struct extent *x = n <= MAX_BASE ? down_base(e, n, id, 1) : down_max(e, n, id, 1);
  return x ? x->lower_first + (id - x->first) : UINT32_MAX;
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void run(unsigned n, unsigned long lookups) {
  struct extent e[340];
  for (unsigned i = 0; i < n; i++) e[i] = (struct extent){10 * i, 1000000 + 20 * i, 10};
  uint32_t range = 10 * n + 10, s = 1, checksum = 0;
  /* pre-generate a block of ids so the timed loop measures lookups, not the generator */
  enum { BLOCK = 4096 };
  static uint32_t ids[BLOCK];
  for (unsigned k = 0; k < BLOCK; k++) {
    ids[k] = s % range;
    s = (uint32_t)((s * 1103515245u + 12345u) & 0x7fffffffu);
  }
  double t0 = now_ns();
  for (unsigned long k = 0; k < lookups; k++) checksum += map_id_down(e, n, ids[k % BLOCK]);
  double t1 = now_ns();
  printf("{\"extents\":%u,\"lookups\":%lu,\"ns_per_lookup\":%.3f,\"checksum\":%u}\n", n, lookups,
         (t1 - t0) / (double)lookups, checksum);
}

int main(int argc, char **argv) {
  unsigned long lookups = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000000UL;
  if (lookups == 0) lookups = 1;
  run(5, lookups);
  run(340, lookups);
  return 0;
}
