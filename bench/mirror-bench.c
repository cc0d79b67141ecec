/* mirror-bench.c: the Git mirror's cost, through the store and mirror APIs
 * (no FUSE), for bench/mirror-bench.sh.
 *
 *	mirror-bench commit DIR N K     commit time of one changed file in an N-file tree
 *	mirror-bench lag DIR N RATE SECS mirror lag under a steady RATE writes/s
 *
 * commit: fills a fresh store in DIR/store with N files of 1 KiB (1000 per
 * directory), mirrors it once into DIR/mirror.git (the import, timed), then K
 * times changes one random file and asks the mirror to commit it now
 * (sg_mirror_flush): each sample is the time from the store's commit to the
 * branch moving. Prints "import_ms X" and "sample_ms X" lines.
 *
 * lag: the same tree, the mirror at its default interval (1 s), 4 writer
 * threads changing random files at RATE writes/s in all for SECS seconds; a
 * sampler reads the mirror's lag (how long the oldest change not yet in the
 * mirror has waited) every 20 ms. Prints "rate X" and "lag_ms X" lines.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gitsync/gitsync.h"
#include "lmdb/store.h"
#include "log.h"

#define PER_DIR 1000
#define WRITERS 4

static sg_store *st;
static uint64_t nfiles;

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "mirror-bench: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
	exit(1);
}

static void file_path(uint64_t i, char *out, size_t len)
{
	snprintf(out, len, "d%04llu/f%07llu.conf", (unsigned long long)(i / PER_DIR),
	         (unsigned long long)i);
}

static void content(uint64_t i, unsigned gen, char *buf)
{
	int n = snprintf(buf, 1024, "# file %llu, generation %u\n", (unsigned long long)i, gen);
	memset(buf + n, 'x', 1023 - (size_t)n);
	buf[1023] = '\n';
}

static int put_file(uint64_t i, unsigned gen)
{
	char path[64], buf[1024];
	sg_change c = {0};

	file_path(i, path, sizeof(path));
	content(i, gen, buf);
	c.path = path;
	c.type = SG_TYPE_FILE;
	c.mode = 0644;
	c.data = buf;
	c.len = sizeof(buf);
	return sg_store_put(st, &c);
}

static void fill(const char *dir, uint64_t n)
{
	sg_store_opts so = {0};
	char sdir[4096];
	enum { CH = 1000 };
	static sg_change c[CH];
	static char paths[CH][64], bufs[CH][1024];
	int rcs[CH], rc;
	uint64_t ndirs = (n + PER_DIR - 1) / PER_DIR;

	snprintf(sdir, sizeof(sdir), "%s/store", dir);
	so.dir = sdir;
	so.node_id = 0xbe4c;
	if ((rc = sg_store_open(&st, &so)) < 0)
		die("store open", rc);
	for (uint64_t d = 0; d < ndirs; d += CH) {
		size_t k = 0;
		for (; k < CH && d + k < ndirs; k++) {
			memset(&c[k], 0, sizeof(c[k]));
			snprintf(paths[k], sizeof(paths[k]), "d%04llu",
			         (unsigned long long)(d + k));
			c[k].path = paths[k];
			c[k].type = SG_TYPE_DIR;
			c[k].mode = 0755;
		}
		if ((rc = sg_store_put_many(st, c, k, rcs)) < 0)
			die("put dirs", rc);
	}
	for (uint64_t i = 0; i < n; i += CH) {
		size_t k = 0;
		for (; k < CH && i + k < n; k++) {
			memset(&c[k], 0, sizeof(c[k]));
			file_path(i + k, paths[k], sizeof(paths[k]));
			content(i + k, 0, bufs[k]);
			c[k].path = paths[k];
			c[k].type = SG_TYPE_FILE;
			c[k].mode = 0644;
			c[k].data = bufs[k];
			c[k].len = sizeof(bufs[k]);
		}
		if ((rc = sg_store_put_many(st, c, k, rcs)) < 0)
			die("put files", rc);
		for (size_t j = 0; j < k; j++)
			if (rcs[j] < 0)
				die("put file", rcs[j]);
	}
	nfiles = n;
}

static sg_mirror *mirror_start(const char *dir, unsigned interval_ms)
{
	sg_mirror_opts mo = {0};
	sg_mirror *m;
	char path[4096];
	int rc;

	snprintf(path, sizeof(path), "%s/mirror.git", dir);
	mo.store = st;
	mo.path = path;
	mo.node_name = "bench";
	mo.interval_ms = interval_ms;
	if ((rc = sg_mirror_start(&m, &mo)) < 0)
		die("mirror start", rc);
	sg_store_set_observer(st, sg_mirror_on_commit, m);
	return m;
}

/* ---- lag ---- */

static atomic_int stop_writers;
static double rate;
static atomic_uint_fast64_t written;

static void *writer(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 1;
	double period = 1000.0 * WRITERS / rate, next = mono_ms();
	unsigned gen = 1;

	while (!atomic_load(&stop_writers)) {
		double now = mono_ms();
		if (now < next) {
			struct timespec ts = {0, (long)((next - now) * 1e6)};
			nanosleep(&ts, NULL);
		}
		next += period;
		if (put_file(rand_r(&seed) % nfiles, gen++) < 0)
			die("put", EIO);
		atomic_fetch_add(&written, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	sg_log_init("mirror-bench", 0, getenv("MB_DEBUG") ? SG_LOG_DEBUG : SG_LOG_WARNING);
	if (argc == 5 && strcmp(argv[1], "commit") == 0) {
		uint64_t n = strtoull(argv[3], NULL, 10);
		unsigned k = (unsigned)atoi(argv[4]), seed = 42;
		sg_mirror *m;
		double t0;
		int rc;

		fill(argv[2], n);
		m = mirror_start(argv[2], 1000);
		t0 = mono_ms();
		if ((rc = sg_mirror_flush(m)) < 0)
			die("import", rc);
		printf("import_ms %.3f\n", mono_ms() - t0);
		for (unsigned i = 0; i < k; i++) {
			if ((rc = put_file(rand_r(&seed) % nfiles, i + 1)) < 0)
				die("put", rc);
			t0 = mono_ms();
			if ((rc = sg_mirror_flush(m)) < 0)
				die("flush", rc);
			printf("sample_ms %.3f\n", mono_ms() - t0);
		}
		sg_store_set_observer(st, NULL, NULL);
		sg_mirror_stop(m);
		sg_store_close(st);
		return 0;
	}
	if (argc == 6 && strcmp(argv[1], "lag") == 0) {
		uint64_t n = strtoull(argv[3], NULL, 10);
		double secs = atof(argv[5]), t0, end;
		pthread_t th[WRITERS];
		sg_mirror *m;
		int rc;

		rate = atof(argv[4]);
		fill(argv[2], n);
		m = mirror_start(argv[2], 1000);
		if ((rc = sg_mirror_flush(m)) < 0)
			die("import", rc);
		t0 = mono_ms();
		end = t0 + secs * 1000;
		for (uintptr_t i = 0; i < WRITERS; i++)
			pthread_create(&th[i], NULL, writer, (void *)i);
		while (mono_ms() < end) {
			sg_mirror_stats ms;
			struct timespec ts = {0, 20 * 1000000L};
			nanosleep(&ts, NULL);
			sg_mirror_stats_get(m, &ms);
			printf("lag_ms %lld\n", (long long)ms.lag_ms);
		}
		atomic_store(&stop_writers, 1);
		for (int i = 0; i < WRITERS; i++)
			pthread_join(th[i], NULL);
		printf("rate %.1f\n", (double)atomic_load(&written) * 1000.0 / (mono_ms() - t0));
		{
			sg_mirror_stats ms;
			sg_mirror_stats_get(m, &ms);
			printf("commits %llu\n", (unsigned long long)ms.commits);
		}
		sg_store_set_observer(st, NULL, NULL);
		sg_mirror_stop(m);
		sg_store_close(st);
		return 0;
	}
	fprintf(stderr, "usage: mirror-bench commit DIR N K | lag DIR N RATE SECS\n");
	return 2;
}
