/*
 * dio-gap.c: the latency of one 4 KiB O_DIRECT|O_DSYNC write (what a
 * sigilfs journal batch costs) against the idle time before it.
 *
 *	dio-gap FILE GAP_US N
 *
 * FILE (8 MiB, written first) is rewritten in place, one block at a time,
 * N times, with GAP_US microseconds of sleep before each write; prints the
 * p50 and p99 of the writes in microseconds. See
 * bench/results/fs-editor-save.md.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCKS 2048

static long long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	long long *s;
	void *buf;
	int fd, gap, n;

	if (argc != 4 || (gap = atoi(argv[2])) < 0 || (n = atoi(argv[3])) < 1) {
		fprintf(stderr, "usage: dio-gap FILE GAP_US N\n");
		return 2;
	}
	if (posix_memalign(&buf, 4096, 4096) || !(s = calloc((size_t)n, sizeof(*s))))
		return 1;
	memset(buf, 1, 4096);
	if ((fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600)) < 0) {
		perror(argv[1]);
		return 1;
	}
	for (int i = 0; i < BLOCKS; i++) /* blocks written once: no extent changes later */
		if (pwrite(fd, buf, 4096, (off_t)i * 4096) != 4096) {
			perror("pwrite");
			return 1;
		}
	fsync(fd);
	close(fd);
	if ((fd = open(argv[1], O_RDWR | O_DIRECT | O_DSYNC)) < 0) {
		perror(argv[1]);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		long long t0;

		if (gap)
			usleep((useconds_t)gap);
		t0 = now_ns();
		if (pwrite(fd, buf, 4096, (off_t)(i % BLOCKS) * 4096) != 4096) {
			perror("pwrite");
			return 1;
		}
		s[i] = now_ns() - t0;
	}
	qsort(s, (size_t)n, sizeof(*s), cmp);
	printf("%d %.1f %.1f\n", gap, s[n / 2] / 1e3, s[(long)n * 99 / 100] / 1e3);
	close(fd);
	return 0;
}
