/*
 * save-steps.c: where the time of an editor's save goes, step by step.
 *
 *	save-steps DIR N
 *
 * N times (after 20 untimed): open DIR/cfg.tmp (O_CREAT|O_TRUNC), write
 * 1 KiB, fsync, close, rename it over DIR/cfg; prints p50 and p99 of each
 * step and of the whole save, in microseconds. Run it pinned beside a
 * pinned daemon (taskset) to compare a sigilfs mount with the bare disk.
 * See bench/results/fs-editor-save.md.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WARMUP 20

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
	static const char *const step[] = {"open", "write", "fsync", "close", "rename", "save"};
	char tmp[4096], dst[4096], buf[1024];
	long long *s[6];
	int n;

	if (argc != 3 || (n = atoi(argv[2])) < 1) {
		fprintf(stderr, "usage: save-steps DIR N\n");
		return 2;
	}
	snprintf(tmp, sizeof(tmp), "%s/cfg.tmp", argv[1]);
	snprintf(dst, sizeof(dst), "%s/cfg", argv[1]);
	for (int k = 0; k < 6; k++)
		if (!(s[k] = calloc((size_t)n, sizeof(long long))))
			return 1;
	for (int i = 0; i < n + WARMUP; i++) {
		long long t[6];
		int fd;

		memset(buf, 'a' + i % 26, sizeof(buf));
		t[0] = now_ns();
		if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0) {
			perror(tmp);
			return 1;
		}
		t[1] = now_ns();
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf)) {
			perror("write");
			return 1;
		}
		t[2] = now_ns();
		if (fsync(fd) != 0) {
			perror("fsync");
			return 1;
		}
		t[3] = now_ns();
		close(fd);
		t[4] = now_ns();
		if (rename(tmp, dst) != 0) {
			perror("rename");
			return 1;
		}
		t[5] = now_ns();
		if (i < WARMUP)
			continue;
		for (int k = 0; k < 5; k++)
			s[k][i - WARMUP] = t[k + 1] - t[k];
		s[5][i - WARMUP] = t[5] - t[0];
	}
	for (int k = 0; k < 6; k++) {
		qsort(s[k], (size_t)n, sizeof(long long), cmp);
		printf("%s %.1f %.1f\n", step[k], s[k][n / 2] / 1e3,
		       s[k][(long)n * 99 / 100] / 1e3);
	}
	return 0;
}
