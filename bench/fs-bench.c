/* fs-bench.c: per-operation latency of file system calls in one directory,
 * for bench/fs-bench.sh (see bench/README.md). Compiled by the script:
 *	gcc -O2 -pthread -o fs-bench fs-bench.c
 *
 *	fs-bench run DIR THREADS N_FAST N_SYNC N_READDIR READDIR_ENTRIES
 *		prints one line per op: op threads n p50_ns p99_ns ops_per_s;
 *		with FS_BENCH_RAW=DIR in the environment, also every sample (ns,
 *		one a line, in the order taken per thread) into DIR/OP.txt
 *	fs-bench wa DIR MODE N DAEMON_PID DEVSTAT
 *		MODE fsync: N saves one at a time, each open+write 1 KiB+fsync+close;
 *		MODE editor: N editor saves (temp, write, fsync, close, rename over);
 *		MODE stream: N saves back to back, open+write 1 KiB+close, no fsync.
 *		Reads write_bytes, wchar and syscw of /proc/PID/io (PID "self":
 *		this process) and the sectors written of DEVSTAT (/sys/block/X/stat,
 *		or "-") just before and 0.5 s after the loop; prints the deltas:
 *		mode n write_bytes dev_write_bytes seconds wchar syscw
 *		(write_bytes: page cache the kernel charged to PID as dirtied, by
 *		whole folio; wchar: bytes PID passed to write calls, any fd;
 *		syscw: its write calls)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char buf[1024];
static const char *root;
static int nthreads;
static long n_fast, n_sync, n_readdir, rd_entries;
static pthread_barrier_t bar;

static void die(const char *what, const char *path)
{
	fprintf(stderr, "fs-bench: %s %s: %s\n", what, path ? path : "", strerror(errno));
	exit(2);
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void put_file(const char *p, int do_fsync)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("open", p);
	if (write(fd, buf, sizeof buf) != sizeof buf)
		die("write", p);
	if (do_fsync && fsync(fd))
		die("fsync", p);
	if (close(fd))
		die("close", p);
}

/* ---- the timed operations */

enum {
	OP_STAT,
	OP_READ,
	OP_REREAD,
	OP_CREATE,
	OP_UNLINK,
	OP_MKDIR,
	OP_FSYNC,
	OP_SAVE,
	OP_READDIR,
	NOPS
};
static const char *opname[NOPS] = {"stat",   "open_read_close", "reread",      "create_write_close",
                                   "unlink", "mkdir",           "write_fsync", "editor_save",
                                   "readdir"};
static uint64_t *lat[NOPS]; /* [thread * n + i] */
static long nops[NOPS];
static uint64_t wall[NOPS];

struct th {
	int id;
	char dir[4096 - 64]; /* room for the names appended in 4096-byte paths */
};

static void one(int op, struct th *t, long i, int fd_open, char *p, char *q)
{
	char rb[1024];
	struct stat st;
	int fd;

	switch (op) {
	case OP_STAT:
		snprintf(p, 4096, "%s/f", t->dir);
		if (stat(p, &st))
			die("stat", p);
		break;
	case OP_READ:
		snprintf(p, 4096, "%s/f", t->dir);
		fd = open(p, O_RDONLY);
		if (fd < 0 || read(fd, rb, sizeof rb) != sizeof rb)
			die("open+read", p);
		close(fd);
		break;
	case OP_REREAD:
		if (pread(fd_open, rb, sizeof rb, 0) != sizeof rb)
			die("pread", "f");
		break;
	case OP_CREATE:
		snprintf(p, 4096, "%s/c%ld", t->dir, i);
		fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0 || write(fd, buf, sizeof buf) != sizeof buf)
			die("create+write", p);
		if (close(fd))
			die("close", p);
		break;
	case OP_UNLINK:
		snprintf(p, 4096, "%s/c%ld", t->dir, i);
		if (unlink(p))
			die("unlink", p);
		break;
	case OP_MKDIR:
		snprintf(p, 4096, "%s/d%ld", t->dir, i);
		if (mkdir(p, 0755))
			die("mkdir", p);
		break;
	case OP_FSYNC:
		if (pwrite(fd_open, buf, sizeof buf, 0) != sizeof buf || fsync(fd_open))
			die("pwrite+fsync", "s");
		break;
	case OP_SAVE:
		snprintf(p, 4096, "%s/cfg.tmp", t->dir);
		snprintf(q, 4096, "%s/cfg", t->dir);
		put_file(p, 1);
		if (rename(p, q))
			die("rename", p);
		break;
	case OP_READDIR: {
		DIR *d;
		struct dirent *e;
		long k = 0;
		snprintf(p, 4096, "%s/big", root);
		d = opendir(p);
		if (!d)
			die("opendir", p);
		while ((e = readdir(d)))
			k++;
		closedir(d);
		if (k < rd_entries)
			fprintf(stderr, "fs-bench: readdir saw %ld entries, wanted %ld\n", k,
			        rd_entries),
			    exit(2);
		break;
	}
	}
}

static void *worker(void *arg)
{
	struct th *t = arg;
	char *p = malloc(4096), *q = malloc(4096);
	int op, fdr, fds;
	long i, n;
	uint64_t t0, t1, start = 0;

	snprintf(p, 4096, "%s/f", t->dir);
	put_file(p, 0);
	snprintf(p, 4096, "%s/s", t->dir);
	put_file(p, 0);
	snprintf(p, 4096, "%s/cfg", t->dir);
	put_file(p, 0);
	snprintf(p, 4096, "%s/f", t->dir);
	fdr = open(p, O_RDONLY);
	snprintf(p, 4096, "%s/s", t->dir);
	fds = open(p, O_WRONLY);
	if (fdr < 0 || fds < 0)
		die("open", t->dir);

	for (op = 0; op < NOPS; op++) {
		n = nops[op];
		/* warm-up for the ops that repeat on one object */
		if (op == OP_STAT || op == OP_READ || op == OP_REREAD || op == OP_FSYNC ||
		    op == OP_SAVE)
			for (i = 0; i < (op >= OP_FSYNC ? 5 : 50); i++)
				one(op, t, i, op == OP_FSYNC ? fds : fdr, p, q);
		if (op == OP_READDIR)
			one(op, t, 0, -1, p, q);
		pthread_barrier_wait(&bar);
		if (t->id == 0)
			start = now_ns();
		for (i = 0; i < n; i++) {
			t0 = now_ns();
			one(op, t, i, op == OP_FSYNC ? fds : fdr, p, q);
			t1 = now_ns();
			lat[op][t->id * n + i] = t1 - t0;
		}
		pthread_barrier_wait(&bar);
		if (t->id == 0)
			wall[op] = now_ns() - start;
		if (op == OP_MKDIR) /* untimed: leave the directory as it was */
			for (i = 0; i < n; i++) {
				snprintf(p, 4096, "%s/d%ld", t->dir, i);
				rmdir(p);
			}
	}
	close(fdr);
	close(fds);
	free(p);
	free(q);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int run(void)
{
	pthread_t tid[64];
	struct th th[64];
	char p[4096];
	int k, op;
	long i;

	if (nthreads < 1 || nthreads > 64)
		return fprintf(stderr, "fs-bench: 1..64 threads\n"), 2;
	for (op = 0; op < NOPS; op++) {
		nops[op] = op == OP_READDIR                    ? n_readdir
		           : (op == OP_FSYNC || op == OP_SAVE) ? n_sync
		                                               : n_fast;
		lat[op] = calloc((size_t)nthreads * nops[op] + 1, sizeof(uint64_t));
	}
	/* the big directory, once, untimed; reused when it is already full */
	snprintf(p, sizeof p, "%s/big", root);
	if (mkdir(p, 0755) && errno != EEXIST)
		die("mkdir", p);
	snprintf(p, sizeof p, "%s/big/e%ld", root, rd_entries - 1);
	if (access(p, F_OK))
		for (i = 0; i < rd_entries; i++) {
			int fd;
			snprintf(p, sizeof p, "%s/big/e%ld", root, i);
			fd = open(p, O_WRONLY | O_CREAT, 0644);
			if (fd < 0)
				die("create", p);
			close(fd);
		}
	pthread_barrier_init(&bar, NULL, nthreads);
	for (k = 0; k < nthreads; k++) {
		th[k].id = k;
		snprintf(th[k].dir, sizeof th[k].dir, "%s/t%d-%d", root, nthreads, k);
		if (mkdir(th[k].dir, 0755) && errno != EEXIST)
			die("mkdir", th[k].dir);
		pthread_create(&tid[k], NULL, worker, &th[k]);
	}
	for (k = 0; k < nthreads; k++)
		pthread_join(tid[k], NULL);
	for (op = 0; op < NOPS; op++) {
		long n = (long)nthreads * nops[op];
		const char *raw = getenv("FS_BENCH_RAW");
		if (raw && *raw) {
			FILE *f;
			snprintf(p, sizeof p, "%s/%s.txt", raw, opname[op]);
			if (!(f = fopen(p, "w")))
				die("fopen", p);
			for (i = 0; i < n; i++)
				fprintf(f, "%llu\n", (unsigned long long)lat[op][i]);
			if (fclose(f))
				die("write", p);
		}
		qsort(lat[op], n, sizeof(uint64_t), cmp_u64);
		printf("%s %d %ld %llu %llu %.1f\n", opname[op], nthreads, n,
		       (unsigned long long)lat[op][(n - 1) / 2],
		       (unsigned long long)lat[op][(long)((n - 1) * 0.99)],
		       wall[op] ? n / (wall[op] / 1e9) : 0.0);
	}
	return 0;
}

/* ---- write amplification */

struct pio {
	long long wb, wchar, syscw; /* -1: not found */
};

static struct pio proc_io(const char *pid)
{
	char p[256], line[256];
	struct pio v = {-1, -1, -1};
	long long x;
	FILE *f;
	snprintf(p, sizeof p, "/proc/%s/io", pid);
	if (!(f = fopen(p, "r")))
		die("fopen", p);
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "write_bytes: %lld", &x) == 1)
			v.wb = x;
		else if (sscanf(line, "wchar: %lld", &x) == 1)
			v.wchar = x;
		else if (sscanf(line, "syscw: %lld", &x) == 1)
			v.syscw = x;
	}
	fclose(f);
	if (v.wb < 0 || v.wchar < 0 || v.syscw < 0) {
		errno = ENODATA;
		die("no write_bytes, wchar or syscw in", p);
	}
	return v;
}

static long long dev_wb(const char *statp)
{
	unsigned long long x[7] = {0};
	FILE *f;
	if (!strcmp(statp, "-") || !(f = fopen(statp, "r")))
		return -1;
	if (fscanf(f, "%llu %llu %llu %llu %llu %llu %llu", &x[0], &x[1], &x[2], &x[3], &x[4],
	           &x[5], &x[6]) != 7)
		x[6] = 0;
	fclose(f);
	return (long long)x[6] * 512; /* sectors written */
}

static int wa(const char *mode, long n, const char *pid, const char *devstat)
{
	char p[4096], q[4096];
	struct pio w0, w1;
	long long d0, d1;
	uint64_t t0;
	long i;
	int nf = 20;

	snprintf(p, sizeof p, "%s/wa-%s", root, mode);
	if (mkdir(p, 0755) && errno != EEXIST)
		die("mkdir", p);
	for (i = 0; i < nf; i++) { /* the files exist before: a save replaces content */
		snprintf(p, sizeof p, "%s/wa-%s/cfg%ld", root, mode, i);
		put_file(p, 1);
	}
	sync();
	usleep(500000);
	w0 = proc_io(pid);
	d0 = dev_wb(devstat);
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		buf[i % sizeof buf] ^= 1; /* new content every time */
		snprintf(p, sizeof p, "%s/wa-%s/cfg%ld", root, mode, i % nf);
		if (!strcmp(mode, "fsync"))
			put_file(p, 1);
		else if (!strcmp(mode, "stream"))
			put_file(p, 0);
		else {
			snprintf(q, sizeof q, "%s/wa-%s/cfg%ld.tmp", root, mode, i % nf);
			put_file(q, 1);
			if (rename(q, p))
				die("rename", q);
		}
	}
	double secs = (now_ns() - t0) / 1e9;
	/* 1.5 s: the store's checkpoint (its LMDB commit of what the journal
	 * holds, within 1 s of the first journaled change) falls in the window */
	usleep(1500000);
	w1 = proc_io(pid);
	d1 = dev_wb(devstat);
	/* read before this printf: for "self", the report's own write is not in wchar */
	printf("%s %ld %lld %lld %.3f %lld %lld\n", mode, n, w1.wb - w0.wb, d0 < 0 ? -1 : d1 - d0,
	       secs, w1.wchar - w0.wchar, w1.syscw - w0.syscw);
	return 0;
}

int main(int argc, char **argv)
{
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = 'a' + i % 26;
	buf[sizeof buf - 1] = '\n';
	if (argc == 8 && !strcmp(argv[1], "run")) {
		root = argv[2];
		nthreads = atoi(argv[3]);
		n_fast = atol(argv[4]);
		n_sync = atol(argv[5]);
		n_readdir = atol(argv[6]);
		rd_entries = atol(argv[7]);
		return run();
	}
	if (argc == 7 && !strcmp(argv[1], "wa")) {
		root = argv[2];
		return wa(argv[3], atol(argv[4]), argv[5], argv[6]);
	}
	fprintf(stderr, "usage: fs-bench run DIR THREADS N_FAST N_SYNC N_READDIR ENTRIES\n"
	                "       fs-bench wa DIR fsync|editor|stream N DAEMON_PID DEVSTAT\n");
	return 2;
}
