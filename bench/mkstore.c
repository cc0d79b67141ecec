/* mkstore.c: fill a sigilfs data dir directly through the store API (no FUSE),
 * with the tree of bench/scale-tree.h, for bench/scale-bench.sh.
 *
 *	mkstore [-m apply|create] [-t THREADS] [-b BATCH] [-c CHUNK] [-s SIZE] DATADIR N
 *
 * -m apply (default): sg_store_apply_many() with explicit stamps (origin: a
 *    made-up node "mkstore", seq 1, 2, ...; hlc increasing), CHUNK changes per
 *    call (default 5000) from THREADS submitters (default 2), so the store's
 *    writer always has the next batch queued; as if the tree had arrived from
 *    a peer.
 * -m create: sg_store_create() with a local stamp from THREADS threads
 *    (default 64), each waiting for its commit; the writer groups what is
 *    queued (group commit), as FUSE writers would.
 * -b BATCH: the store's batch_max, the most ops in one transaction (default
 *    the store's own, 1000).
 * Prints one line: "files N dirs D seconds S files_per_s R commits C used_bytes U".
 * Exit 0 on success, 1 on any failure (with a line on stderr).
 *
 * Built by the script against the tree's libsigil.a:
 *	gcc -O2 -std=c11 -pthread -I src -o mkstore bench/mkstore.c libsigil.a -llmdb ...
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

#include "lmdb/store.h"
#include "scale-tree.h"

static sg_store *st;
static st_tree tree;
static unsigned nthreads = 0, chunk = 5000;
static uint64_t origin, hlc0;
static int64_t now0;
static atomic_uint_fast64_t next_file;
static atomic_int failed;
static uint64_t *dir_ids; /* create mode: id of each st_dir(k) */

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(const char *what, const char *path, int rc)
{
	if (atomic_exchange(&failed, 1) == 0)
		fprintf(stderr, "mkstore: %s %s: %s\n", what, path ? path : "", strerror(-rc));
}

/* ---- apply: path-based changes with explicit stamps */

static void stamp_of(uint64_t k, sg_stamp *s)
{
	/* k: 0 .. dirs + files - 1, in the order the changes are made */
	s->hlc = hlc0 + k;
	s->origin = origin;
	s->seq = k + 1;
}

static void *apply_worker(void *arg)
{
	sg_change *c = calloc(chunk, sizeof(*c));
	char *paths = malloc((size_t)chunk * 64);
	char *data = malloc((size_t)chunk * (tree.size + 1));
	int *rcs = calloc(chunk, sizeof(int));
	uint64_t ndirs = st_ndirs(&tree);

	(void)arg;
	if (!c || !paths || !data || !rcs) {
		fail("out of memory", NULL, -ENOMEM);
		goto out;
	}
	while (!atomic_load(&failed)) {
		uint64_t first = atomic_fetch_add(&next_file, chunk), n;

		if (first >= tree.n)
			break;
		n = tree.n - first < chunk ? tree.n - first : chunk;
		for (uint64_t j = 0; j < n; j++) {
			uint64_t i = first + j;
			size_t dl;
			char *p = paths + j * 64, *d = data + j * (tree.size + 1);

			st_path(&tree, i, p, 64, &dl);
			st_content(&tree, i, d);
			memset(&c[j], 0, sizeof(c[j]));
			c[j].path = p;
			c[j].type = SG_TYPE_FILE;
			c[j].mode = 0644;
			c[j].mtime_ns = c[j].ctime_ns = now0;
			c[j].data = d;
			c[j].len = tree.size;
			stamp_of(ndirs + i, &c[j].stamp);
		}
		int rc = sg_store_apply_many(st, c, n, rcs);
		if (rc) {
			fail("sg_store_apply_many", NULL, rc);
			break;
		}
		for (uint64_t j = 0; j < n; j++)
			if (rcs[j]) {
				fail("apply", c[j].path, rcs[j]);
				break;
			}
	}
out:
	free(c);
	free(paths);
	free(data);
	free(rcs);
	return NULL;
}

static int apply_dirs(void)
{
	uint64_t nd = st_ndirs(&tree);
	sg_change *c = calloc(nd, sizeof(*c));
	char(*names)[64] = calloc(nd, 64);
	int *rcs = calloc(nd, sizeof(int));
	int rc = -ENOMEM;

	if (!c || !names || !rcs)
		goto out;
	for (uint64_t k = 0; k < nd; k++) {
		st_dir(&tree, k, names[k], 64);
		c[k].path = names[k];
		c[k].type = SG_TYPE_DIR;
		c[k].mode = 0755;
		c[k].mtime_ns = c[k].ctime_ns = now0;
		stamp_of(k, &c[k].stamp);
	}
	rc = sg_store_apply_many(st, c, nd, rcs);
	for (uint64_t k = 0; !rc && k < nd; k++)
		if (rcs[k]) {
			fail("apply", names[k], rcs[k]);
			rc = rcs[k];
		}
out:
	free(c);
	free(names);
	free(rcs);
	return rc;
}

/* ---- create: local creates from many threads, one commit wait each */

static void *create_worker(void *arg)
{
	char path[64], *data = malloc(tree.size + 1);

	(void)arg;
	if (!data) {
		fail("out of memory", NULL, -ENOMEM);
		return NULL;
	}
	while (!atomic_load(&failed)) {
		uint64_t i = atomic_fetch_add(&next_file, 1);
		size_t dl;
		uint64_t parent;
		int rc;

		if (i >= tree.n)
			break;
		st_path(&tree, i, path, sizeof(path), &dl);
		st_content(&tree, i, data);
		/* which directory: the same order as st_dir() */
		if (i < tree.n10k)
			parent = dir_ids[tree.ndirs + 1];
		else if (i < tree.n10k + tree.n100k)
			parent = dir_ids[tree.ndirs + 1 + (tree.n10k ? 1 : 0)];
		else
			parent = dir_ids[1 + (i - tree.n10k - tree.n100k) / ST_PER_DIR];
		rc = sg_store_create(st, NULL, parent, path + dl + 1, SG_TYPE_FILE, 0644, 0, 0,
		                     data, tree.size, now0, NULL);
		if (rc)
			fail("sg_store_create", path, rc);
	}
	free(data);
	return NULL;
}

static int create_dirs(void)
{
	uint64_t nd = st_ndirs(&tree);
	char name[64];

	dir_ids = calloc(nd, sizeof(*dir_ids));
	if (!dir_ids)
		return -ENOMEM;
	for (uint64_t k = 0; k < nd; k++) {
		sg_attr a;
		char *slash;
		uint64_t parent = SG_ROOT_ID;
		int rc;

		st_dir(&tree, k, name, sizeof(name));
		slash = strchr(name, '/');
		if (slash)
			parent = dir_ids[0];
		rc = sg_store_create(st, NULL, parent, slash ? slash + 1 : name, SG_TYPE_DIR, 0755,
		                     0, 0, NULL, 0, now0, &a);
		if (rc) {
			fail("sg_store_create", name, rc);
			return rc;
		}
		dir_ids[k] = a.id;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: mkstore [-m apply|create] [-t THREADS] [-b BATCH] [-c CHUNK] "
	                "[-s SIZE] DATADIR N\n");
	exit(2);
}

int main(int argc, char **argv)
{
	sg_store_opts so = {0};
	sg_store_stats ss;
	const char *mode = "apply";
	unsigned size = 256;
	pthread_t *th;
	double t0, t1;
	int opt, rc;

	while ((opt = getopt(argc, argv, "m:t:b:c:s:")) != -1) {
		switch (opt) {
		case 'm':
			mode = optarg;
			break;
		case 't':
			nthreads = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'b':
			so.batch_max = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			chunk = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 's':
			size = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			usage();
		}
	}
	if (argc - optind != 2 || chunk == 0 || size == 0 || size > 65536 ||
	    (strcmp(mode, "apply") && strcmp(mode, "create")))
		usage();
	st_tree_init(&tree, strtoull(argv[optind + 1], NULL, 10), size);
	if (tree.n == 0)
		usage();
	if (nthreads == 0)
		nthreads = strcmp(mode, "apply") == 0 ? 2 : 64;

	so.dir = argv[optind];
	/* a big first map: growing it means closing and reopening the map */
	so.initial_map = 1ULL << 30;
	rc = sg_store_open(&st, &so);
	if (rc) {
		fprintf(stderr, "mkstore: cannot open the store in %s: %s\n", so.dir,
		        strerror(-rc));
		return 1;
	}
	{
		struct timespec ts;
		static const char who[] = "mkstore";

		clock_gettime(CLOCK_REALTIME, &ts);
		now0 = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
		/* a minute in the past, so that anything the daemon stamps later is newer */
		hlc0 = ((uint64_t)(now0 / 1000000) - 60000) << 16;
		origin = 0x9e3779b97f4a7c15ULL;
		for (size_t k = 0; k < sizeof(who) - 1; k++)
			origin = (origin ^ (unsigned char)who[k]) * 0x100000001b3ULL;
	}
	th = calloc(nthreads, sizeof(*th));
	if (!th)
		return 1;
	t0 = mono();
	rc = strcmp(mode, "apply") == 0 ? apply_dirs() : create_dirs();
	for (unsigned k = 0; !rc && k < nthreads; k++)
		if (pthread_create(&th[k], NULL,
		                   strcmp(mode, "apply") == 0 ? apply_worker : create_worker,
		                   NULL)) {
			fail("pthread_create", NULL, -EAGAIN);
			nthreads = k;
		}
	for (unsigned k = 0; !rc && k < nthreads; k++)
		pthread_join(th[k], NULL);
	if (!rc && !atomic_load(&failed))
		rc = sg_store_sync(st);
	t1 = mono();
	if (rc)
		fail("store", NULL, rc);
	sg_store_stats_get(st, &ss);
	sg_store_close(st);
	free(th);
	free(dir_ids);
	if (atomic_load(&failed))
		return 1;
	printf("files %llu dirs %llu seconds %.3f files_per_s %.0f commits %llu used_bytes %llu\n",
	       (unsigned long long)tree.n, (unsigned long long)st_ndirs(&tree), t1 - t0,
	       tree.n / (t1 - t0), (unsigned long long)ss.commits,
	       (unsigned long long)ss.used_bytes);
	return 0;
}
