/* scale-bench.c: the measuring half of bench/scale-bench.sh: mount time, stat
 * and open+read of random files, readdir of a big directory and a whole-tree
 * walk, in the tree of bench/scale-tree.h. Compiled by the script:
 *	gcc -O2 -pthread -o scale-bench scale-bench.c
 *
 *	scale-bench populate ROOT N SIZE THREADS
 *		build the tree under ROOT on a plain file system; prints "seconds S"
 *	scale-bench mount PROBE TIMEOUT_S CMD [ARG...]
 *		exec CMD, stat PROBE every 100 µs until it answers; prints
 *		"mount_ns T exit_ns E rc RC" (E: when CMD exited; sigilfs returns
 *		once its mount serves). Exit 1 if PROBE never answered.
 *	scale-bench ops ROOT N SIZE M SEED RAW [stat|read|both]
 *		stat M random distinct files, then open+read+close M other ones
 *		(checking the content), or only one of the two; appends each sample
 *		(ns, one a line) to RAW-stat.txt and RAW-read.txt; prints
 *		"stat n p50_ns p99_ns max_ns" and "read n p50_ns p99_ns max_ns"
 *	scale-bench readdir DIR REPEAT RAW
 *		REPEAT full listings (opendir, readdir to the end, closedir); the
 *		first is printed apart, the others appended to RAW (ns, one a line);
 *		prints "readdir entries first_ns n p50_ns p99_ns"
 *	scale-bench walk ROOT
 *		list every directory and lstat every entry; prints "entries E seconds S"
 *	scale-bench evict FILE | warm FILE
 *		drop FILE's pages from the page cache (POSIX_FADV_DONTNEED) or read
 *		it all in; prints "resident_before P resident_after Q" (percent)
 *	scale-bench faultcost FILE N
 *		what this machine charges for mapping a page of FILE (in the page
 *		cache) the way the daemon's LMDB map does: mmap it shared and
 *		read-only, touch N random pages (first touch: a minor fault), touch
 *		them again (mapped), MADV_DONTNEED it all and touch them again;
 *		prints "fault_ns F refault_ns R mapped_ns M pages_per_fault P
 *		dontneed_ns D" (per touch; P: pages the fault mapped, from RssFile)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "scale-tree.h"

static void die(const char *what, const char *path)
{
	fprintf(stderr, "scale-bench: %s %s: %s\n", what, path ? path : "", strerror(errno));
	exit(2);
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* nearest rank, as repl-bench.py's pct() */
static uint64_t pct(const uint64_t *v, size_t n, double p)
{
	size_t k = (size_t)(p / 100.0 * n + 0.999999999);
	return n ? v[k ? k - 1 : 0] : 0;
}

/* samples, unsorted, one a line (ns) */
static void dump(const char *file, const uint64_t *v, size_t n)
{
	FILE *f = fopen(file, "a");
	if (!f)
		die("fopen", file);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%llu\n", (unsigned long long)v[i]);
	if (fclose(f))
		die("write", file);
}

/* ---- populate */

static st_tree ptree;
static const char *proot;
static uint64_t pnext;
static pthread_mutex_t plock = PTHREAD_MUTEX_INITIALIZER;

static void *populate_worker(void *arg)
{
	char p[4096], rel[64], *data = malloc(ptree.size + 1);
	(void)arg;
	for (;;) {
		uint64_t first, last;
		pthread_mutex_lock(&plock);
		first = pnext;
		pnext += 1000;
		pthread_mutex_unlock(&plock);
		if (first >= ptree.n)
			break;
		last = first + 1000 < ptree.n ? first + 1000 : ptree.n;
		for (uint64_t i = first; i < last; i++) {
			size_t dl;
			int fd;
			st_path(&ptree, i, rel, sizeof rel, &dl);
			snprintf(p, sizeof p, "%s/%s", proot, rel);
			st_content(&ptree, i, data);
			fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd < 0 || write(fd, data, ptree.size) != (ssize_t)ptree.size ||
			    close(fd))
				die("create", p);
		}
	}
	free(data);
	return NULL;
}

static int populate(const char *root, uint64_t n, unsigned size, int threads)
{
	char p[4096], rel[64];
	pthread_t tid[64];
	uint64_t t0 = now_ns();

	st_tree_init(&ptree, n, size);
	proot = root;
	for (uint64_t k = 0; k < st_ndirs(&ptree); k++) {
		st_dir(&ptree, k, rel, sizeof rel);
		snprintf(p, sizeof p, "%s/%s", root, rel);
		if (mkdir(p, 0755) && errno != EEXIST)
			die("mkdir", p);
	}
	if (threads < 1 || threads > 64)
		threads = 1;
	for (int k = 0; k < threads; k++)
		pthread_create(&tid[k], NULL, populate_worker, NULL);
	for (int k = 0; k < threads; k++)
		pthread_join(tid[k], NULL);
	printf("seconds %.3f\n", (now_ns() - t0) / 1e9);
	return 0;
}

/* ---- mount time */

static int mount_time(const char *probe, double timeout, char **cmd)
{
	struct stat sb;
	uint64_t t0, t_ok = 0, t_exit = 0, deadline;
	int status = 0, rc = -1;
	pid_t pid;

	t0 = now_ns();
	pid = fork();
	if (pid < 0)
		die("fork", NULL);
	if (pid == 0) {
		execvp(cmd[0], cmd);
		_exit(127);
	}
	deadline = t0 + (uint64_t)(timeout * 1e9);
	while (now_ns() < deadline) {
		if (!t_exit && waitpid(pid, &status, WNOHANG) == pid) {
			t_exit = now_ns();
			rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			if (rc != 0 && !t_ok)
				break;
		}
		if (!t_ok && stat(probe, &sb) == 0)
			t_ok = now_ns();
		if (t_ok && t_exit)
			break;
		usleep(100);
	}
	if (!t_exit) { /* bounded: the launcher never hangs us */
		if (waitpid(pid, &status, WNOHANG) != pid) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
		}
		t_exit = now_ns();
	}
	printf("mount_ns %llu exit_ns %llu rc %d\n", t_ok ? (unsigned long long)(t_ok - t0) : 0ULL,
	       (unsigned long long)(t_exit - t0), rc);
	return t_ok ? 0 : 1;
}

/* ---- stat and read of random files */

static uint64_t rng_state;
static uint64_t rng(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int ops(const char *root, uint64_t n, unsigned size, size_t m, uint64_t seed,
               const char *raw, const char *which)
{
	st_tree t;
	uint64_t *pick, *ls, *lr;
	char p[4096], rel[64], out[4096], *want, *got;
	size_t k;

	st_tree_init(&t, n, size);
	if (2 * m > n)
		m = n / 2;
	/* 2m distinct indices: a partial Fisher-Yates shuffle of 0..n-1 */
	pick = malloc(n * sizeof(*pick));
	ls = malloc(m * sizeof(*ls));
	lr = malloc(m * sizeof(*lr));
	want = malloc(size + 1);
	got = malloc(size + 2);
	if (!pick || !ls || !lr || !want || !got)
		die("malloc", NULL);
	for (uint64_t i = 0; i < n; i++)
		pick[i] = i;
	rng_state = seed;
	for (k = 0; k < 2 * m; k++) {
		uint64_t j = k + rng() % (n - k), x = pick[k];
		pick[k] = pick[j];
		pick[j] = x;
	}
	int do_stat = strcmp(which, "read") != 0, do_read = strcmp(which, "stat") != 0;

	for (k = 0; do_stat && k < m; k++) {
		struct stat sb;
		size_t dl;
		uint64_t t0;
		st_path(&t, pick[k], rel, sizeof rel, &dl);
		snprintf(p, sizeof p, "%s/%s", root, rel);
		t0 = now_ns();
		if (stat(p, &sb))
			die("stat", p);
		ls[k] = now_ns() - t0;
		if ((unsigned)sb.st_size != size)
			fprintf(stderr, "scale-bench: %s: size %lld, want %u\n", p,
			        (long long)sb.st_size, size),
			    exit(2);
	}
	for (k = 0; do_read && k < m; k++) {
		size_t dl;
		uint64_t t0;
		ssize_t r;
		int fd;
		st_path(&t, pick[m + k], rel, sizeof rel, &dl);
		snprintf(p, sizeof p, "%s/%s", root, rel);
		t0 = now_ns();
		fd = open(p, O_RDONLY);
		if (fd < 0)
			die("open", p);
		r = read(fd, got, size + 1);
		close(fd);
		lr[k] = now_ns() - t0;
		st_content(&t, pick[m + k], want);
		if (r != (ssize_t)size || memcmp(got, want, size))
			fprintf(stderr, "scale-bench: %s: wrong content (%zd bytes)\n", p, r),
			    exit(2);
	}
	if (do_stat) {
		snprintf(out, sizeof out, "%s-stat.txt", raw);
		dump(out, ls, m);
		qsort(ls, m, sizeof(*ls), cmp_u64);
		printf("stat %zu %llu %llu %llu\n", m, (unsigned long long)pct(ls, m, 50),
		       (unsigned long long)pct(ls, m, 99), (unsigned long long)ls[m - 1]);
	}
	if (do_read) {
		snprintf(out, sizeof out, "%s-read.txt", raw);
		dump(out, lr, m);
		qsort(lr, m, sizeof(*lr), cmp_u64);
		printf("read %zu %llu %llu %llu\n", m, (unsigned long long)pct(lr, m, 50),
		       (unsigned long long)pct(lr, m, 99), (unsigned long long)lr[m - 1]);
	}
	free(pick);
	free(ls);
	free(lr);
	free(want);
	free(got);
	return 0;
}

/* ---- readdir */

static long list_once(const char *dir)
{
	DIR *d = opendir(dir);
	long k = 0;
	if (!d)
		die("opendir", dir);
	errno = 0;
	while (readdir(d))
		k++;
	if (errno)
		die("readdir", dir);
	closedir(d);
	return k - 2; /* . and .. */
}

static int readdir_bench(const char *dir, int repeat, const char *raw)
{
	uint64_t t0, first, *v;
	long entries;
	int n = repeat > 1 ? repeat - 1 : 1;

	v = calloc(n, sizeof(*v));
	t0 = now_ns();
	entries = list_once(dir);
	first = now_ns() - t0;
	for (int i = 0; i < repeat - 1; i++) {
		t0 = now_ns();
		if (list_once(dir) != entries)
			fprintf(stderr, "scale-bench: %s: entries changed\n", dir), exit(2);
		v[i] = now_ns() - t0;
	}
	if (repeat < 2)
		v[0] = first;
	dump(raw, v, n);
	qsort(v, n, sizeof(*v), cmp_u64);
	printf("readdir %ld %llu %d %llu %llu\n", entries, (unsigned long long)first, n,
	       (unsigned long long)pct(v, n, 50), (unsigned long long)pct(v, n, 99));
	free(v);
	return 0;
}

/* ---- walk */

static uint64_t walk_entries;

static void walk_dir(int dfd, const char *path)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;
	if (!d)
		die("fdopendir", path);
	while ((e = readdir(d))) {
		struct stat sb;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW))
			die("lstat", e->d_name);
		walk_entries++;
		if (S_ISDIR(sb.st_mode)) {
			int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY);
			if (fd < 0)
				die("open", e->d_name);
			walk_dir(fd, e->d_name);
		}
	}
	closedir(d);
}

static int walk(const char *root)
{
	uint64_t t0 = now_ns();
	int fd = open(root, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		die("open", root);
	walk_dir(fd, root);
	printf("entries %llu seconds %.3f\n", (unsigned long long)walk_entries,
	       (now_ns() - t0) / 1e9);
	return 0;
}

/* ---- page cache */

static double resident(int fd, size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t pages = (len + pg - 1) / pg, in = 0;
	unsigned char *vec;
	void *m;
	if (len == 0)
		return 0;
	m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	vec = malloc(pages);
	if (m == MAP_FAILED || !vec || mincore(m, len, vec))
		die("mincore", NULL);
	for (size_t i = 0; i < pages; i++)
		in += vec[i] & 1;
	munmap(m, len);
	free(vec);
	return 100.0 * in / pages;
}

static int cache(const char *file, int evict)
{
	struct stat sb;
	double before, after;
	int fd = open(file, O_RDONLY);
	if (fd < 0 || fstat(fd, &sb))
		die("open", file);
	before = resident(fd, sb.st_size);
	if (evict) {
		fdatasync(fd);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	} else {
		static char b[1 << 20];
		while (read(fd, b, sizeof b) > 0)
			;
	}
	after = resident(fd, sb.st_size);
	close(fd);
	printf("resident_before %.1f resident_after %.1f\n", before, after);
	return 0;
}

/* The process's RssFile, pages (statm's third field). */
static long rss_file_pages(void)
{
	long size = 0, res = 0, shared = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f || fscanf(f, "%ld %ld %ld", &size, &res, &shared) != 3)
		die("read", "/proc/self/statm");
	fclose(f);
	return shared;
}

static int faultcost(const char *file, size_t n)
{
	struct stat sb;
	size_t np, *pg = malloc(n * sizeof(*pg));
	uint64_t rnd = 0x9E3779B97F4A7C15ull, t0, t1, t2, t3, t4;
	long r0, r1;
	volatile char sink = 0;
	const char *m;
	int fd = open(file, O_RDONLY);

	if (fd < 0 || fstat(fd, &sb) || !pg)
		die("open", file);
	np = (size_t)sb.st_size / 4096;
	if (np < 2 * n)
		die("faultcost: too small a file for that many pages:", file);
	m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		die("mmap", file);
	for (size_t i = 0; i < n; i++) {
		rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
		pg[i] = (size_t)(rnd >> 17) % np;
	}
	r0 = rss_file_pages();
	t0 = now_ns();
	for (size_t i = 0; i < n; i++)
		sink += m[pg[i] * 4096];
	t1 = now_ns();
	r1 = rss_file_pages();
	for (size_t i = 0; i < n; i++)
		sink += m[pg[i] * 4096];
	t2 = now_ns();
	madvise((void *)m, (size_t)sb.st_size, MADV_DONTNEED);
	t3 = now_ns();
	for (size_t i = 0; i < n; i++)
		sink += m[pg[i] * 4096];
	t4 = now_ns();
	printf(
	    "fault_ns %.0f refault_ns %.0f mapped_ns %.1f pages_per_fault %.1f dontneed_ns %llu\n",
	    (double)(t1 - t0) / n, (double)(t4 - t3) / n, (double)(t2 - t1) / n,
	    (double)(r1 - r0) / n, (unsigned long long)(t3 - t2));
	munmap((void *)m, (size_t)sb.st_size);
	close(fd);
	free(pg);
	(void)sink;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && !strcmp(argv[1], "populate"))
		return populate(argv[2], strtoull(argv[3], NULL, 10), atoi(argv[4]), atoi(argv[5]));
	if (argc >= 5 && !strcmp(argv[1], "mount"))
		return mount_time(argv[2], atof(argv[3]), argv + 4);
	if ((argc == 8 || argc == 9) && !strcmp(argv[1], "ops"))
		return ops(argv[2], strtoull(argv[3], NULL, 10), atoi(argv[4]),
		           strtoull(argv[5], NULL, 10), strtoull(argv[6], NULL, 10), argv[7],
		           argc == 9 ? argv[8] : "both");
	if (argc == 5 && !strcmp(argv[1], "readdir"))
		return readdir_bench(argv[2], atoi(argv[3]), argv[4]);
	if (argc == 3 && !strcmp(argv[1], "walk"))
		return walk(argv[2]);
	if (argc == 3 && (!strcmp(argv[1], "evict") || !strcmp(argv[1], "warm")))
		return cache(argv[2], !strcmp(argv[1], "evict"));
	if (argc == 4 && !strcmp(argv[1], "faultcost"))
		return faultcost(argv[2], strtoull(argv[3], NULL, 10));
	fprintf(stderr, "usage: see the comment at the top of scale-bench.c\n");
	return 2;
}
