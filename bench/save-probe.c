/*
 * save-probe.c: where the time of an fsync'd editor save goes.
 *
 *	save-probe steps DIR N
 *	save-probe dio FILE GAP_US N
 *
 * steps: N times (after 20 untimed) open DIR/cfg.tmp (O_CREAT|O_TRUNC),
 * write 1 KiB, fsync, close, rename it over DIR/cfg; prints each step's and
 * the whole save's p50 and p99 in microseconds. Run it pinned beside a
 * pinned daemon (taskset) to compare a sigilfs mount with the bare disk.
 *
 * dio: the latency of one 4 KiB O_DIRECT|O_DSYNC write (what a sigilfs
 * journal batch costs) against the idle time before it: FILE (8 MiB,
 * written first) is rewritten in place, one block at a time, N times, with
 * GAP_US microseconds of sleep before each; prints GAP_US and the writes'
 * p50 and p99 in microseconds.
 *
 * See bench/results/fs-editor-save.md.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "timing.h"

#define WARMUP 20   /* steps: untimed saves first */
#define BLOCKS 2048 /* dio: the file's 4 KiB blocks */

static int steps(int argc, char **argv)
{
	static const char *const step[] = {"open", "write", "fsync", "close", "rename", "save"};
	char tmp[4096], dst[4096], buf[1024];
	long long *s[6];
	int n;

	if (argc != 3 || (n = atoi(argv[2])) < 1) {
		fprintf(stderr, "usage: save-probe steps DIR N\n");
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
		qsort(s[k], (size_t)n, sizeof(long long), cmp_ll);
		printf("%s %.1f %.1f\n", step[k], s[k][n / 2] / 1e3,
		       s[k][(long)n * 99 / 100] / 1e3);
	}
	return 0;
}

static int dio(int argc, char **argv)
{
	long long *s;
	void *buf;
	int fd, gap, n;

	if (argc != 4 || (gap = atoi(argv[2])) < 0 || (n = atoi(argv[3])) < 1) {
		fprintf(stderr, "usage: save-probe dio FILE GAP_US N\n");
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
	qsort(s, (size_t)n, sizeof(*s), cmp_ll);
	printf("%d %.1f %.1f\n", gap, s[n / 2] / 1e3, s[(long)n * 99 / 100] / 1e3);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "steps") == 0)
		return steps(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "dio") == 0)
		return dio(argc - 1, argv + 1);
	fprintf(stderr, "usage: save-probe steps DIR N | save-probe dio FILE GAP_US N\n");
	return 2;
}
