/* timing.h: the clock and the sort of the small timing programs in bench/
 * (save-probe.c, fuse-floor.c), included from the same directory. */
#ifndef SIGIL_BENCH_TIMING_H
#define SIGIL_BENCH_TIMING_H

#include <time.h>

/* CLOCK_MONOTONIC, in nanoseconds. */
static inline long long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* qsort's comparison of long longs, ascending. */
static inline int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

#endif
