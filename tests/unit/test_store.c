/* test_store.c: unit tests of the versioned entry store (src/lmdb/store.h):
 * versions and stamps, the change log, LWW, persistence, limits, errors, group commit. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "lmdb/store.h"

#define NODE_A 0x1111ULL
#define NODE_B 0x2222ULL
#define NODE_C 0x3333ULL

/* ---- fixture --------------------------------------------------------------- */

struct fx {
	char dir[64];
	sg_store_opts opts;
	sg_store *st;
};

/* The suite runs twice: with the commit journal (the default) and without. */
static int no_journal;

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int fx_setup(void **state, uint64_t initial_map, uint64_t max_file_size)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL) {
		return -1;
	}
	strcpy(f->dir, "/tmp/sigil-store-XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	f->opts.dir = f->dir;
	f->opts.node_id = NODE_A;
	f->opts.initial_map = initial_map;
	f->opts.max_file_size = max_file_size;
	/* the store's logic, seen through what is committed (version, log):
	 * every change commits before its call returns; test_deferred_* cover
	 * deferred commits */
	f->opts.sync_delay_ns = -1;
	f->opts.no_journal = no_journal;
	if (sg_store_open(&f->st, &f->opts) != 0) {
		nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

/* Reopen the fixture's store with these deferral settings (0: defaults). */
static int fx_reopen_with(struct fx *f, int64_t sync_delay_ns, int64_t linger_ns)
{
	sg_store_close(f->st);
	f->opts.sync_delay_ns = sync_delay_ns;
	f->opts.linger_ns = linger_ns;
	return sg_store_open(&f->st, &f->opts) == 0 ? 0 : -1;
}

static int setup(void **state)
{
	return fx_setup(state, 0, 0);
}

static int setup_small_map(void **state)
{
	return fx_setup(state, 1ULL << 20, 0);
}

static int setup_small_file(void **state)
{
	return fx_setup(state, 0, 4096);
}

/* Deferred commits at their defaults: acknowledged local changes commit
 * within a few milliseconds. */
static int setup_deferred(void **state)
{
	if (fx_setup(state, 0, 0) != 0)
		return -1;
	return fx_reopen_with(*state, 0, 0);
}

static int setup_deferred_small_map(void **state)
{
	if (fx_setup(state, 1ULL << 20, 0) != 0)
		return -1;
	return fx_reopen_with(*state, 0, 0);
}

/* Deferred commits that wait for a sync (or the close): what is
 * acknowledged and not committed can be looked at. */
static int setup_deferred_hold(void **state)
{
	if (fx_setup(state, 0, 0) != 0)
		return -1;
	return fx_reopen_with(*state, 3600LL * 1000000000, 3600LL * 1000000000);
}

static void print_problem(void *ctx, const char *problem)
{
	fprintf(stderr, "store check: %s\n", problem);
}

/* Every test leaves a consistent store: sg_store_check() finds no problem,
 * and none after a reopen either. */
static int teardown(void **state)
{
	struct fx *f = *state;
	sg_store_opts so = {0};
	uint64_t checked = 0;
	int problems = 0;

	if (f->st) /* a test may have closed it itself */
		problems = sg_store_check(f->st, print_problem, NULL, NULL);
	sg_store_close(f->st);
	if (problems == 0) {
		so.dir = f->dir;
		so.no_journal = no_journal;
		problems = sg_store_open(&f->st, &so);
		if (problems == 0) {
			problems = sg_store_check(f->st, print_problem, NULL, &checked);
			sg_store_close(f->st);
		}
	}
	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	if (problems != 0 || checked == 0)
		fprintf(stderr, "store check: %d problems, %llu entries checked\n", problems,
		        (unsigned long long)checked);
	return problems != 0 || checked == 0 ? -1 : 0;
}

/* ---- helpers --------------------------------------------------------------- */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t hlc_now(void)
{
	return ((uint64_t)now_ns() / 1000000ULL) << 16;
}

/* Create and assert success; returns the new id. */
static uint64_t mk(sg_store *st, uint64_t parent, const char *name, uint32_t type, const char *data,
                   sg_attr *out)
{
	sg_attr a;
	size_t len = data ? strlen(data) : 0;

	assert_int_equal(
	    sg_store_create(st, NULL, parent, name, type, 0644, 0, 0, data, len, now_ns(), &a), 0);
	assert_true(a.id != 0);
	assert_int_equal(a.type, type);
	if (out) {
		*out = a;
	}
	return a.id;
}

static void assert_content(sg_store *st, uint64_t id, const void *data, size_t len)
{
	void *buf = NULL;
	size_t n = 12345;

	assert_int_equal(sg_store_read(st, id, &buf, &n), 0);
	assert_int_equal(n, len);
	if (len > 0) {
		assert_non_null(buf);
		assert_memory_equal(buf, data, len);
	}
	free(buf);
}

static void assert_stamp_equal(const sg_stamp *a, const sg_stamp *b)
{
	assert_int_equal(a->hlc, b->hlc);
	assert_int_equal(a->origin, b->origin);
	assert_int_equal(a->seq, b->seq);
}

/* A copy of the change log, as sg_store_changes_after() lists it. */
struct row {
	char *path;
	uint32_t type, mode, uid, gid;
	int64_t mtime_ns;
	uint64_t version, id;
	sg_stamp stamp;
	sg_stamp base;
	void *data;
	size_t len;
	size_t nxattrs;
	char xattr0[512]; /* "name=value" of the first xattr */
};

struct rows {
	struct row *v;
	size_t n, cap;
	size_t stop_after; /* return 42 from the callback at this row; 0: never */
	size_t calls;
};

static int collect_cb(void *ctx, const sg_change *c)
{
	struct rows *r = ctx;
	struct row *w;

	r->calls++;
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->v = realloc(r->v, r->cap * sizeof(*r->v));
		if (r->v == NULL) {
			abort();
		}
	}
	w = &r->v[r->n++];
	memset(w, 0, sizeof(*w));
	w->path = strdup(c->path ? c->path : "(null)");
	w->type = c->type;
	w->mode = c->mode;
	w->uid = c->uid;
	w->gid = c->gid;
	w->mtime_ns = c->mtime_ns;
	w->version = c->version;
	w->id = c->id;
	w->stamp = c->stamp;
	w->base = c->base;
	w->nxattrs = c->nxattrs;
	if (c->nxattrs)
		snprintf(w->xattr0, sizeof(w->xattr0), "%s=%.*s", c->xattrs[0].name,
		         (int)c->xattrs[0].len, (const char *)c->xattrs[0].value);
	w->len = c->len;
	if (c->len > 0) {
		w->data = malloc(c->len);
		if (w->data == NULL || c->data == NULL) {
			abort();
		}
		memcpy(w->data, c->data, c->len);
	}
	if (r->stop_after != 0 && r->calls == r->stop_after) {
		return 42;
	}
	return 0;
}

static void rows_free(struct rows *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].path);
		free(r->v[i].data);
	}
	free(r->v);
	memset(r, 0, sizeof(*r));
}

static void changes(sg_store *st, uint64_t after, size_t max, struct rows *r)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(sg_store_changes_after(st, after, max, collect_cb, r), 0);
}

static const struct row *row_by_path(const struct rows *r, const char *path)
{
	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->v[i].path, path) == 0) {
			return &r->v[i];
		}
	}
	return NULL;
}

/* Every row after `after`, versions increasing, each entry at most once. */
static void assert_log_shape(const struct rows *r, uint64_t after, uint64_t newest)
{
	for (size_t i = 0; i < r->n; i++) {
		assert_true(r->v[i].version > after);
		assert_true(r->v[i].version <= newest);
		if (i > 0) {
			assert_true(r->v[i].version >= r->v[i - 1].version);
		}
		for (size_t j = 0; j < i; j++) {
			assert_true(r->v[i].id != r->v[j].id);
		}
	}
}

static void assert_path(sg_store *st, uint64_t id, const char *want)
{
	char *p = NULL;

	assert_int_equal(sg_store_path(st, id, &p), 0);
	assert_non_null(p);
	assert_string_equal(p, want);
	free(p);
}

/* ---- 1. versions and stamps ------------------------------------------------ */

struct seqcheck {
	sg_store *st;
	uint64_t version; /* store version before the next change */
	uint64_t seq;     /* seq the next local change must get */
	uint64_t hlc;     /* the latest local hlc seen */
};

/* The change just made raised the version by one and was stamped in turn. */
static void check_local(struct seqcheck *c, const char *what, const sg_attr *a)
{
	uint64_t v = sg_store_version(c->st);

	if (v != c->version + 1 || a->stamp.seq != c->seq) {
		print_error("after %s: version %llu -> %llu, seq %llu (want %llu)\n", what,
		            (unsigned long long)c->version, (unsigned long long)v,
		            (unsigned long long)a->stamp.seq, (unsigned long long)c->seq);
	}
	assert_int_equal(v, c->version + 1);
	assert_int_equal(a->version, v);
	assert_int_equal(a->stamp.origin, sg_store_node_id(c->st));
	assert_int_equal(a->stamp.seq, c->seq);
	assert_true(a->stamp.hlc > c->hlc);
	assert_true(sg_store_hlc(c->st) >= a->stamp.hlc);
	c->version = v;
	c->seq++;
	c->hlc = a->stamp.hlc;
}

static void test_versions_and_stamps(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	struct seqcheck c = {.st = st};
	sg_attr root, d, a, g, in;
	struct rows r;
	uint64_t before;

	assert_int_equal(sg_store_node_id(st), NODE_A);
	assert_int_equal(sg_store_getattr(st, SG_ROOT_ID, &root), 0);
	assert_int_equal(root.id, SG_ROOT_ID);
	assert_int_equal(root.type, SG_TYPE_DIR);
	assert_int_equal(root.parent, SG_ROOT_ID);
	c.version = sg_store_version(st);
	c.seq = root.stamp.origin == NODE_A ? root.stamp.seq + 1 : 1;
	c.hlc = root.stamp.origin == NODE_A ? root.stamp.hlc : 0;

	/* create */
	mk(st, SG_ROOT_ID, "d", SG_TYPE_DIR, NULL, &d);
	check_local(&c, "mkdir", &d);
	assert_int_equal(d.parent, SG_ROOT_ID);
	mk(st, d.id, "f", SG_TYPE_FILE, "one", &a);
	check_local(&c, "create", &a);
	assert_int_equal(a.parent, d.id);
	assert_int_equal(a.size, 3);
	assert_int_equal(sg_store_getattr(st, a.id, &g), 0);
	assert_int_equal(g.version, a.version);
	assert_stamp_equal(&g.stamp, &a.stamp);

	/* write */
	assert_int_equal(sg_store_write(st, NULL, a.id, "two!", 4, 1000, now_ns(), &a), 0);
	check_local(&c, "write", &a);
	assert_int_equal(a.size, 4);
	assert_int_equal(a.mtime_ns, 1000);
	assert_content(st, a.id, "two!", 4);

	/* setattr */
	memset(&in, 0, sizeof(in));
	in.mode = 0600;
	assert_int_equal(sg_store_setattr(st, NULL, a.id, SG_SET_MODE, &in, now_ns(), &a), 0);
	check_local(&c, "setattr", &a);
	assert_int_equal(a.mode, 0600);
	assert_int_equal(sg_store_getattr(st, a.id, &g), 0);
	assert_int_equal(g.mode, 0600);
	assert_int_equal(g.version, a.version);

	/* setxattr, removexattr: metadata changes of the entry */
	assert_int_equal(sg_store_setxattr(st, NULL, a.id, "user.x", "v", 1, 0, now_ns()), 0);
	assert_int_equal(sg_store_getattr(st, a.id, &a), 0);
	check_local(&c, "setxattr", &a);
	assert_int_equal(sg_store_removexattr(st, NULL, a.id, "user.x", now_ns()), 0);
	assert_int_equal(sg_store_getattr(st, a.id, &a), 0);
	check_local(&c, "removexattr", &a);

	/* remove: the tombstone carries the change's version and stamp */
	before = sg_store_version(st);
	assert_int_equal(sg_store_remove(st, NULL, d.id, "f", 0, now_ns()), 0);
	changes(st, before, 0, &r);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.v[0].path, "d/f");
	assert_int_equal(r.v[0].type, SG_TYPE_TOMBSTONE);
	memset(&g, 0, sizeof(g));
	g.version = r.v[0].version;
	g.stamp = r.v[0].stamp;
	check_local(&c, "remove", &g);
	rows_free(&r);

	/* a directory's remove too */
	assert_int_equal(sg_store_remove(st, NULL, SG_ROOT_ID, "d", 1, now_ns()), 0);
	changes(st, c.version, 0, &r);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.v[0].path, "d");
	assert_int_equal(r.v[0].type, SG_TYPE_TOMBSTONE);
	memset(&g, 0, sizeof(g));
	g.version = r.v[0].version;
	g.stamp = r.v[0].stamp;
	check_local(&c, "rmdir", &g);
	rows_free(&r);
}

/*
 * A rename is one change (store.h: "Every change (create, content update, delete,
 * rename, metadata change) gets ... the next store-wide version, and a stamp"); it
 * lists as two rows: the moved entry at its new path and a tombstone at the old one.
 * The same for an exchange, which leaves no tombstone.
 */
static void test_rename_is_one_change(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	sg_attr d, a, b, x;
	struct rows r, rx;
	const struct row *moved, *tomb, *ra, *rb;
	uint64_t before, after, xbefore, xafter;

	mk(st, SG_ROOT_ID, "d", SG_TYPE_DIR, NULL, &d);
	mk(st, d.id, "f", SG_TYPE_FILE, "two!", &a);

	before = sg_store_version(st);
	assert_int_equal(sg_store_rename(st, NULL, d.id, "f", d.id, "g", 0, now_ns()), 0);
	after = sg_store_version(st);
	changes(st, before, 0, &r);
	assert_int_equal(r.n, 2);
	assert_log_shape(&r, before, after);
	moved = row_by_path(&r, "d/g");
	tomb = row_by_path(&r, "d/f");
	assert_non_null(moved);
	assert_non_null(tomb);
	assert_int_equal(moved->id, a.id);
	assert_int_equal(moved->type, SG_TYPE_FILE);
	assert_int_equal(moved->len, 4);
	assert_memory_equal(moved->data, "two!", 4);
	assert_int_equal(moved->stamp.origin, NODE_A);
	assert_true(moved->stamp.hlc > a.stamp.hlc);
	assert_int_equal(tomb->type, SG_TYPE_TOMBSTONE);
	assert_true(tomb->id != a.id);
	assert_int_equal(tomb->stamp.origin, NODE_A);
	assert_path(st, a.id, "d/g");
	assert_path(st, tomb->id, "d/f");
	assert_int_equal(sg_store_getattr(st, a.id, &x), 0);
	assert_int_equal(x.version, moved->version);
	assert_stamp_equal(&x.stamp, &moved->stamp);

	/* an exchange: both entries move, no tombstone */
	mk(st, d.id, "b", SG_TYPE_FILE, "bee", &b);
	xbefore = sg_store_version(st);
	assert_int_equal(
	    sg_store_rename(st, NULL, d.id, "g", d.id, "b", SG_RENAME_EXCHANGE, now_ns()), 0);
	xafter = sg_store_version(st);
	changes(st, xbefore, 0, &rx);
	assert_int_equal(rx.n, 2);
	ra = row_by_path(&rx, "d/b");
	rb = row_by_path(&rx, "d/g");
	assert_non_null(ra);
	assert_non_null(rb);
	assert_int_equal(ra->id, a.id);
	assert_int_equal(rb->id, b.id);

	if (after != before + 1 || xafter != xbefore + 1) {
		print_error(
		    "rename: version %llu -> %llu; moved v%llu (hlc %llx seq %llu), "
		    "tombstone v%llu (hlc %llx seq %llu); exchange: version %llu -> %llu, "
		    "rows v%llu seq %llu, v%llu seq %llu\n",
		    (unsigned long long)before, (unsigned long long)after,
		    (unsigned long long)moved->version, (unsigned long long)moved->stamp.hlc,
		    (unsigned long long)moved->stamp.seq, (unsigned long long)tomb->version,
		    (unsigned long long)tomb->stamp.hlc, (unsigned long long)tomb->stamp.seq,
		    (unsigned long long)xbefore, (unsigned long long)xafter,
		    (unsigned long long)ra->version, (unsigned long long)ra->stamp.seq,
		    (unsigned long long)rb->version, (unsigned long long)rb->stamp.seq);
	}

	/* store.h: a rename is two changes, the moved entry and the tombstone at the
	 * old name, each with its own version, sequence number and newer stamp, so a
	 * peer paging through changes_after can never get one without the other's slot */
	assert_int_equal(after, before + 2);
	assert_int_equal(moved->version, before + 1);
	assert_int_equal(tomb->version, before + 2);
	assert_int_equal(moved->stamp.seq, a.stamp.seq + 1);
	assert_int_equal(tomb->stamp.seq, a.stamp.seq + 2);
	assert_true(tomb->stamp.hlc > moved->stamp.hlc);
	assert_int_equal(xafter, xbefore + 2);
	assert_int_equal(ra->version + rb->version, 2 * xbefore + 3);
	assert_int_not_equal(ra->version, rb->version);
	assert_true(ra->stamp.seq != rb->stamp.seq);
	rows_free(&r);
	rows_free(&rx);
}

/* ---- 2. the change log ----------------------------------------------------- */

static void test_changes_after(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	uint64_t v0 = sg_store_version(st);
	sg_attr d, fa, ga, ha;
	struct rows r;
	char buf[32];
	int64_t mt = 0;

	assert_int_equal(sg_store_create(st, NULL, SG_ROOT_ID, "d", SG_TYPE_DIR, 0750, 1000, 1001,
	                                 NULL, 0, now_ns(), &d),
	                 0);
	assert_int_equal(sg_store_create(st, NULL, d.id, "f", SG_TYPE_FILE, 0640, 1000, 1001, "x",
	                                 1, now_ns(), &fa),
	                 0);
	for (int i = 0; i < 10; i++) {
		snprintf(buf, sizeof(buf), "content %d", i);
		mt = 5000 + i;
		assert_int_equal(
		    sg_store_write(st, NULL, fa.id, buf, strlen(buf), mt, now_ns(), &fa), 0);
	}
	mk(st, SG_ROOT_ID, "g", SG_TYPE_FILE, "gee", &ga);
	mk(st, d.id, "h", SG_TYPE_SYMLINK, "../g", &ha);
	assert_int_equal(sg_store_version(st), v0 + 14);
	assert_int_equal(fa.version, v0 + 12);

	/* the whole log: shape only (the root may or may not be listed) */
	changes(st, 0, 0, &r);
	assert_log_shape(&r, 0, v0 + 14);
	assert_true(r.n >= 4);
	rows_free(&r);

	/* after v0: exactly d, d/f (once, latest), g, d/h in version order */
	changes(st, v0, 0, &r);
	assert_int_equal(r.n, 4);
	assert_log_shape(&r, v0, v0 + 14);
	assert_string_equal(r.v[0].path, "d");
	assert_int_equal(r.v[0].id, d.id);
	assert_int_equal(r.v[0].type, SG_TYPE_DIR);
	assert_int_equal(r.v[0].version, v0 + 1);
	assert_int_equal(r.v[0].mode, 0750);
	assert_int_equal(r.v[0].uid, 1000);
	assert_int_equal(r.v[0].gid, 1001);
	assert_int_equal(r.v[0].len, 0);
	assert_null(r.v[0].data);
	assert_string_equal(r.v[1].path, "d/f");
	assert_int_equal(r.v[1].id, fa.id);
	assert_int_equal(r.v[1].type, SG_TYPE_FILE);
	assert_int_equal(r.v[1].version, v0 + 12);
	assert_int_equal(r.v[1].mode, 0640);
	assert_int_equal(r.v[1].mtime_ns, mt);
	assert_int_equal(r.v[1].len, strlen("content 9"));
	assert_memory_equal(r.v[1].data, "content 9", strlen("content 9"));
	assert_stamp_equal(&r.v[1].stamp, &fa.stamp);
	assert_string_equal(r.v[2].path, "g");
	assert_int_equal(r.v[2].id, ga.id);
	assert_int_equal(r.v[2].version, v0 + 13);
	assert_string_equal(r.v[3].path, "d/h");
	assert_int_equal(r.v[3].id, ha.id);
	assert_int_equal(r.v[3].type, SG_TYPE_SYMLINK);
	assert_int_equal(r.v[3].version, v0 + 14);
	assert_int_equal(r.v[3].len, 4);
	assert_memory_equal(r.v[3].data, "../g", 4);
	rows_free(&r);

	/* after d/f's version: only the two later ones */
	changes(st, v0 + 12, 0, &r);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.v[0].path, "g");
	assert_string_equal(r.v[1].path, "d/h");
	rows_free(&r);

	/* between writes: a version no row holds any more */
	changes(st, v0 + 5, 0, &r);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.v[0].path, "d/f");
	rows_free(&r);

	/* max */
	changes(st, v0, 2, &r);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.v[0].path, "d");
	assert_string_equal(r.v[1].path, "d/f");
	rows_free(&r);
	changes(st, v0, 1, &r);
	assert_int_equal(r.n, 1);
	rows_free(&r);

	/* nothing after the newest */
	changes(st, sg_store_version(st), 0, &r);
	assert_int_equal(r.n, 0);
	rows_free(&r);

	/* the callback's stop value comes back */
	memset(&r, 0, sizeof(r));
	r.stop_after = 2;
	assert_int_equal(sg_store_changes_after(st, v0, 0, collect_cb, &r), 42);
	assert_int_equal(r.calls, 2);
	rows_free(&r);
}

/* ---- 3. tombstones --------------------------------------------------------- */

static void test_tombstones(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	sg_attr a, b, x;
	sg_store_stats s0, s1;
	struct rows r;
	uint64_t v;
	void *buf = NULL;
	size_t len = 0;

	mk(st, SG_ROOT_ID, "a", SG_TYPE_FILE, "hello", &a);
	assert_int_equal(sg_store_stats_get(st, &s0), 0);
	v = sg_store_version(st);
	assert_int_equal(sg_store_remove(st, NULL, SG_ROOT_ID, "a", 0, now_ns()), 0);
	assert_int_equal(sg_store_version(st), v + 1);
	assert_int_equal(sg_store_stats_get(st, &s1), 0);
	assert_int_equal(s1.entries, s0.entries - 1);
	assert_int_equal(s1.tombstones, s0.tombstones + 1);

	changes(st, v, 0, &r);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.v[0].path, "a");
	assert_int_equal(r.v[0].type, SG_TYPE_TOMBSTONE);
	assert_int_equal(r.v[0].version, v + 1);
	assert_int_equal(r.v[0].len, 0);
	/* the tombstone has a path of its own (sg_store_path builds tombstones' too) */
	assert_path(st, r.v[0].id, "a");
	rows_free(&r);

	assert_int_equal(sg_store_lookup(st, SG_ROOT_ID, "a", &x), -ENOENT);
	assert_int_equal(sg_store_getattr(st, a.id, &x), -ENOENT);
	assert_int_equal(sg_store_read(st, a.id, &buf, &len), -ENOENT);
	assert_int_equal(sg_store_resolve(st, "a", &x), -ENOENT);
	assert_int_equal(sg_store_remove(st, NULL, SG_ROOT_ID, "a", 0, now_ns()), -ENOENT);

	/* recreate at the same name: a new id */
	mk(st, SG_ROOT_ID, "a", SG_TYPE_FILE, "again", &b);
	assert_true(b.id != a.id);
	assert_int_equal(sg_store_lookup(st, SG_ROOT_ID, "a", &x), 0);
	assert_int_equal(x.id, b.id);
	assert_content(st, b.id, "again", 5);
	changes(st, v + 1, 0, &r);
	assert_non_null(row_by_path(&r, "a"));
	assert_int_equal(row_by_path(&r, "a")->type, SG_TYPE_FILE);
	assert_int_equal(row_by_path(&r, "a")->id, b.id);
	rows_free(&r);

	/* and as a directory after that */
	assert_int_equal(sg_store_remove(st, NULL, SG_ROOT_ID, "a", 0, now_ns()), 0);
	mk(st, SG_ROOT_ID, "a", SG_TYPE_DIR, NULL, &x);
	assert_true(x.id != a.id && x.id != b.id);
	assert_int_equal(sg_store_resolve(st, "a", &x), 0);
	assert_int_equal(x.type, SG_TYPE_DIR);
}

/* ---- 4. last-writer-wins through sg_store_apply ---------------------------- */

static sg_change file_change(const char *path, const char *data, uint64_t hlc, uint64_t origin,
                             uint64_t seq)
{
	sg_change c;

	memset(&c, 0, sizeof(c));
	c.path = path;
	c.type = SG_TYPE_FILE;
	c.mode = 0644;
	c.mtime_ns = 77;
	c.ctime_ns = 78;
	c.data = data;
	c.len = strlen(data);
	c.stamp.hlc = hlc;
	c.stamp.origin = origin;
	c.stamp.seq = seq;
	return c;
}

static sg_change typed_change(const char *path, uint32_t type, uint64_t hlc, uint64_t origin,
                              uint64_t seq)
{
	sg_change c;

	memset(&c, 0, sizeof(c));
	c.path = path;
	c.type = type;
	c.mode = 0755;
	c.stamp.hlc = hlc;
	c.stamp.origin = origin;
	c.stamp.seq = seq;
	return c;
}

static void make_local(sg_store *st, const char *name, const char *data)
{
	assert_int_equal(sg_store_create(st, NULL, SG_ROOT_ID, name, SG_TYPE_FILE, 0644, 0, 0, data,
	                                 strlen(data), now_ns(), NULL),
	                 0);
}

/* The log without one origin's entries: the others as the full listing has
 * them, in version order; those left out still count against max. */
static void test_changes_except(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	uint64_t h = hlc_now(), local = sg_store_node_id(st), v0 = sg_store_version(st);
	struct rows all, mine, theirs;
	sg_change c;

	make_local(st, "l1", "a");
	c = file_change("r1", "b", h, NODE_B, 1);
	assert_int_equal(sg_store_apply(st, &c), 0);
	make_local(st, "l2", "c");
	c = file_change("r2", "d", h + 1, NODE_B, 2);
	assert_int_equal(sg_store_apply(st, &c), 0);

	changes(st, v0, 0, &all);
	assert_int_equal(all.n, 4);
	memset(&mine, 0, sizeof(mine));
	assert_int_equal(sg_store_changes_after_except(st, v0, 0, NODE_B, collect_cb, &mine), 0);
	assert_int_equal(mine.n, 2);
	assert_string_equal(mine.v[0].path, "l1");
	assert_string_equal(mine.v[1].path, "l2");
	assert_int_equal(mine.v[1].version, all.v[2].version);
	assert_int_equal(mine.v[1].len, 1);
	memset(&theirs, 0, sizeof(theirs));
	assert_int_equal(sg_store_changes_after_except(st, v0, 0, local, collect_cb, &theirs), 0);
	assert_int_equal(theirs.n, 2);
	assert_string_equal(theirs.v[0].path, "r1");
	assert_string_equal(theirs.v[1].path, "r2");
	assert_int_equal(theirs.v[1].stamp.origin, NODE_B);
	rows_free(&theirs);
	/* max counts rows read: the first two are l1 and r1 (left out) */
	memset(&theirs, 0, sizeof(theirs));
	assert_int_equal(sg_store_changes_after_except(st, v0, 2, local, collect_cb, &theirs), 0);
	assert_int_equal(theirs.n, 1);
	assert_string_equal(theirs.v[0].path, "r1");
	/* origin 0 leaves nothing out */
	rows_free(&mine);
	memset(&mine, 0, sizeof(mine));
	assert_int_equal(sg_store_changes_after_except(st, v0, 0, 0, collect_cb, &mine), 0);
	assert_int_equal(mine.n, 4);
	rows_free(&all);
	rows_free(&mine);
	rows_free(&theirs);
}

static void test_lww_apply(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	uint64_t h = hlc_now();
	sg_change c;
	sg_attr a, l, x;
	struct rows r;
	uint64_t v, far;

	/* a remote change creates the entry, with its stamp kept */
	c = file_change("r", "v1", h, NODE_B, 1);
	v = sg_store_version(st);
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_version(st), v + 1);
	assert_int_equal(sg_store_resolve(st, "r", &a), 0);
	assert_int_equal(a.type, SG_TYPE_FILE);
	assert_int_equal(a.version, v + 1);
	assert_stamp_equal(&a.stamp, &c.stamp);
	assert_int_equal(a.mtime_ns, 77);
	assert_content(st, a.id, "v1", 2);

	/* older: refused, nothing changes */
	c = file_change("r", "old", h - 1, NODE_B, 2);
	assert_int_equal(sg_store_apply(st, &c), -ESTALE);
	assert_int_equal(sg_store_version(st), v + 1);
	assert_int_equal(sg_store_resolve(st, "r", &x), 0);
	assert_stamp_equal(&x.stamp, &a.stamp);
	assert_content(st, a.id, "v1", 2);

	/* newer: replaces */
	c = file_change("r", "v2", h + 10, NODE_B, 3);
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_version(st), v + 2);
	assert_int_equal(sg_store_resolve(st, "r", &x), 0);
	assert_stamp_equal(&x.stamp, &c.stamp);
	assert_content(st, x.id, "v2", 2);

	/* equal: a no-op that succeeds; sg_store_apply_many() says it was held */
	c = file_change("r", "zz", h + 10, NODE_B, 3);
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_version(st), v + 2);
	assert_int_equal(sg_store_resolve(st, "r", &x), 0);
	assert_content(st, x.id, "v2", 2);
	{
		sg_change two[2] = {c, file_change("r-new", "n", h + 11, NODE_B, 4)};
		int rcs[2] = {-1, -1};

		assert_int_equal(sg_store_apply_many(st, two, 2, rcs), 0);
		assert_int_equal(rcs[0], SG_APPLY_HELD);
		assert_int_equal(rcs[1], 0);
		assert_int_equal(sg_store_version(st), v + 3);
		/* held again, now that it is here */
		assert_int_equal(sg_store_apply_many(st, &two[1], 1, rcs), 0);
		assert_int_equal(rcs[0], SG_APPLY_HELD);
		assert_int_equal(sg_store_version(st), v + 3);
	}

	/* same hlc: the origin breaks the tie */
	c = file_change("r", "low", h + 10, 0x1000, 1);
	assert_int_equal(sg_store_apply(st, &c), -ESTALE);
	c = file_change("r", "v3", h + 10, 0x3333, 1);
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_resolve(st, "r", &x), 0);
	assert_int_equal(x.stamp.origin, 0x3333);
	assert_content(st, x.id, "v3", 2);
	v = sg_store_version(st);

	/* an older remote tombstone loses to a local write */
	mk(st, SG_ROOT_ID, "l", SG_TYPE_FILE, "local", &l);
	assert_int_equal(l.stamp.origin, NODE_A);
	v = sg_store_version(st);
	c = typed_change("l", SG_TYPE_TOMBSTONE, l.stamp.hlc - 1, NODE_B, 10);
	assert_int_equal(sg_store_apply(st, &c), -ESTALE);
	assert_int_equal(sg_store_version(st), v);
	assert_int_equal(sg_store_lookup(st, SG_ROOT_ID, "l", &x), 0);
	assert_int_equal(x.id, l.id);
	assert_content(st, l.id, "local", 5);

	/* a newer one deletes */
	c = typed_change("l", SG_TYPE_TOMBSTONE, l.stamp.hlc + 1, NODE_B, 11);
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_version(st), v + 1);
	assert_int_equal(sg_store_lookup(st, SG_ROOT_ID, "l", &x), -ENOENT);
	assert_int_equal(sg_store_getattr(st, l.id, &x), -ENOENT);
	changes(st, v, 0, &r);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.v[0].path, "l");
	assert_int_equal(r.v[0].type, SG_TYPE_TOMBSTONE);
	assert_stamp_equal(&r.v[0].stamp, &c.stamp);
	rows_free(&r);

	/* a tombstone's stamp guards its name too */
	c = file_change("l", "late", l.stamp.hlc, NODE_B, 12);
	assert_int_equal(sg_store_apply(st, &c), -ESTALE);
	assert_int_equal(sg_store_lookup(st, SG_ROOT_ID, "l", &x), -ENOENT);

	/* a remote directory tombstone deletes the whole subtree */
	h = sg_store_hlc(st) + 100;
	c = typed_change("D", SG_TYPE_DIR, h, NODE_B, 20);
	assert_int_equal(sg_store_apply(st, &c), 0);
	c = file_change("D/x", "in D", h + 1, NODE_B, 21);
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_resolve(st, "D/x", &x), 0);
	assert_content(st, x.id, "in D", 4);
	c = typed_change("D", SG_TYPE_TOMBSTONE, h + 2, NODE_B, 22);
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_resolve(st, "D", &x), -ENOENT);
	assert_int_equal(sg_store_resolve(st, "D/x", &x), -ENOENT);

	/* a missing parent becomes a placeholder directory with a zero stamp (the
	 * sender's log may list a directory's latest row after its children's) */
	c = file_change("nodir/x", "x", sg_store_hlc(st) + 1, NODE_B, 30);
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_resolve(st, "nodir", &x), 0);
	assert_int_equal(x.type, SG_TYPE_DIR);
	assert_int_equal(x.stamp.hlc, 0);
	assert_int_equal(x.stamp.origin, 0);
	assert_int_equal(sg_store_resolve(st, "nodir/x", &x), 0);
	/* the directory's own change, however old, wins over the placeholder */
	c = typed_change("nodir", SG_TYPE_DIR, 5, NODE_B, 2);
	c.mode = 0700;
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_resolve(st, "nodir", &x), 0);
	assert_int_equal(x.mode, 0700);
	assert_int_equal(x.stamp.hlc, 5);
	assert_int_equal(sg_store_resolve(st, "nodir/x", &x), 0);
	/* a file in the way of a parent is refused */
	c = file_change("after-x/y", "y", sg_store_hlc(st) + 1, NODE_B, 31);
	mk(st, SG_ROOT_ID, "after-x", SG_TYPE_FILE, "f", &x);
	assert_int_equal(sg_store_apply(st, &c), -ENOTDIR);

	/* the clock observes a remote stamp far ahead (an hour) */
	far = sg_store_hlc(st) + (3600000ULL << 16);
	c = file_change("far", "future", far, NODE_B, 40);
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_true(sg_store_hlc(st) >= far);
	mk(st, SG_ROOT_ID, "after", SG_TYPE_FILE, "now", &x);
	assert_true(x.stamp.hlc > far);
	assert_int_equal(x.stamp.origin, NODE_A);
	/* so a local write over that entry wins too */
	assert_int_equal(sg_store_resolve(st, "far", &a), 0);
	assert_int_equal(sg_store_write(st, NULL, a.id, "mine", 4, 1, now_ns(), &a), 0);
	assert_true(a.stamp.hlc > x.stamp.hlc);
	assert_int_equal(a.stamp.origin, NODE_A);
	assert_content(st, a.id, "mine", 4);
}

/* The id-based mutations decide LWW too when given an explicit stamp. */
static void test_explicit_stamps(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	sg_attr a, b, x, in;
	sg_stamp old, s1, s2, s3;
	struct rows r;
	uint64_t v, h;

	mk(st, SG_ROOT_ID, "e", SG_TYPE_FILE, "local", &a);
	h = a.stamp.hlc;
	old = (sg_stamp){h - 1, NODE_B, 1};
	s1 = (sg_stamp){h + 1, NODE_B, 2};
	s2 = (sg_stamp){h + 2, NODE_B, 3};
	s3 = (sg_stamp){h + 3, NODE_B, 4};
	v = sg_store_version(st);

	assert_int_equal(sg_store_write(st, &old, a.id, "old", 3, 1, now_ns(), &x), -ESTALE);
	memset(&in, 0, sizeof(in));
	in.mode = 0600;
	assert_int_equal(sg_store_setattr(st, &old, a.id, SG_SET_MODE, &in, now_ns(), &x), -ESTALE);
	assert_int_equal(sg_store_remove(st, &old, SG_ROOT_ID, "e", 0, now_ns()), -ESTALE);
	assert_int_equal(sg_store_rename(st, &old, SG_ROOT_ID, "e", SG_ROOT_ID, "e2", 0, now_ns()),
	                 -ESTALE);
	assert_int_equal(sg_store_version(st), v);
	assert_int_equal(sg_store_getattr(st, a.id, &x), 0);
	assert_stamp_equal(&x.stamp, &a.stamp);
	assert_int_equal(x.mode, 0644);
	assert_content(st, a.id, "local", 5);
	assert_int_equal(sg_store_lookup(st, SG_ROOT_ID, "e2", &x), -ENOENT);

	/* newer: taken, with the stamp as given */
	assert_int_equal(sg_store_write(st, &s1, a.id, "remote", 6, 1, now_ns(), &x), 0);
	assert_int_equal(x.version, v + 1);
	assert_stamp_equal(&x.stamp, &s1);
	assert_content(st, a.id, "remote", 6);

	/* a remove newer than that; then a create older than the tombstone is refused */
	assert_int_equal(sg_store_remove(st, &s2, SG_ROOT_ID, "e", 0, now_ns()), 0);
	changes(st, v + 1, 0, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.v[0].type, SG_TYPE_TOMBSTONE);
	assert_stamp_equal(&r.v[0].stamp, &s2);
	rows_free(&r);
	assert_int_equal(sg_store_create(st, &s1, SG_ROOT_ID, "e", SG_TYPE_FILE, 0644, 0, 0, "x", 1,
	                                 now_ns(), &b),
	                 -ESTALE);
	assert_int_equal(sg_store_lookup(st, SG_ROOT_ID, "e", &x), -ENOENT);
	assert_int_equal(sg_store_create(st, &s3, SG_ROOT_ID, "e", SG_TYPE_FILE, 0644, 0, 0, "new",
	                                 3, now_ns(), &b),
	                 0);
	assert_true(b.id != a.id);
	assert_stamp_equal(&b.stamp, &s3);
	assert_content(st, b.id, "new", 3);

	/* a local change after those is newer than all of them */
	assert_true(sg_store_hlc(st) >= s3.hlc);
	assert_int_equal(sg_store_write(st, NULL, b.id, "mine", 4, 1, now_ns(), &x), 0);
	assert_true(x.stamp.hlc > s3.hlc);
	assert_int_equal(x.stamp.origin, NODE_A);
}

/* The published clock (sg_store_hlc) is a high-water mark: it never moves
 * back. A durable point's own clock, published after later changes were
 * acknowledged, used to set it back (a peer's change stamped from it then
 * passed for older than a local one). A thread watches it while creates
 * acknowledged before their commit run and the writer commits behind. */
struct clock_watch {
	sg_store *st;
	atomic_int stop;
	long backwards, reads;
};

static void *clock_watch_main(void *arg)
{
	struct clock_watch *cw = arg;
	uint64_t last = 0;

	while (!atomic_load(&cw->stop)) {
		uint64_t h = sg_store_hlc(cw->st);

		if (h < last)
			cw->backwards++;
		last = h;
		cw->reads++;
	}
	return NULL;
}

static void test_clock_never_steps_back(void **state)
{
	struct fx *f = *state;
	struct clock_watch cw;
	pthread_t t;
	char name[32];
	int behind = 0;

	/* the default delay: journal writes run while creates go on */
	assert_int_equal(fx_reopen_with(f, 0, 0), 0);
	memset(&cw, 0, sizeof(cw));
	cw.st = f->st;
	assert_int_equal(pthread_create(&t, NULL, clock_watch_main, &cw), 0);
	for (int i = 0; i < 20000; i++) {
		sg_attr a;

		snprintf(name, sizeof(name), "c%05d", i);
		assert_int_equal(sg_store_create(f->st, NULL, SG_ROOT_ID, name, SG_TYPE_FILE, 0644,
		                                 0, 0, "x", 1, now_ns(), &a),
		                 0);
		if (sg_store_hlc(f->st) < a.stamp.hlc)
			behind++;
	}
	atomic_store(&cw.stop, 1);
	pthread_join(t, NULL);
	assert_true(cw.reads > 0);
	assert_int_equal(cw.backwards, 0);
	assert_int_equal(behind, 0);
}

/* ---- 5. reopen ------------------------------------------------------------- */

static void test_reopen(void **state)
{
	struct fx *f = *state;
	sg_attr d, a, gone, x;
	uint64_t v, hlc, far, seq;
	sg_change c;
	void *val = NULL;
	size_t len = 0;

	mk(f->st, SG_ROOT_ID, "etc", SG_TYPE_DIR, NULL, &d);
	mk(f->st, d.id, "app.conf", SG_TYPE_FILE, "key=value\n", &a);
	assert_int_equal(sg_store_setxattr(f->st, NULL, a.id, "user.tag", "blue", 4, 0, now_ns()),
	                 0);
	mk(f->st, SG_ROOT_ID, "gone", SG_TYPE_FILE, "bye", &gone);
	assert_int_equal(sg_store_remove(f->st, NULL, SG_ROOT_ID, "gone", 0, now_ns()), 0);
	far = sg_store_hlc(f->st) + (600000ULL << 16);
	c = file_change("etc/remote", "from b", far, NODE_B, 5);
	assert_int_equal(sg_store_apply(f->st, &c), 0);
	assert_int_equal(sg_store_getattr(f->st, a.id, &a), 0);
	seq = a.stamp.seq;
	v = sg_store_version(f->st);
	hlc = sg_store_hlc(f->st);
	assert_true(hlc >= far);

	sg_store_close(f->st);
	f->st = NULL;
	f->opts.node_id = 0; /* keep the stored one */
	assert_int_equal(sg_store_open(&f->st, &f->opts), 0);

	assert_int_equal(sg_store_node_id(f->st), NODE_A);
	assert_int_equal(sg_store_version(f->st), v);
	assert_true(sg_store_hlc(f->st) >= hlc);
	assert_int_equal(sg_store_resolve(f->st, "etc/app.conf", &x), 0);
	assert_int_equal(x.id, a.id);
	assert_int_equal(x.version, a.version);
	assert_stamp_equal(&x.stamp, &a.stamp);
	assert_content(f->st, a.id, "key=value\n", 10);
	assert_int_equal(sg_store_getxattr(f->st, a.id, "user.tag", &val, &len), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(val, "blue", 4);
	free(val);
	assert_int_equal(sg_store_resolve(f->st, "etc/remote", &x), 0);
	assert_int_equal(x.stamp.hlc, far);
	assert_int_equal(x.stamp.origin, NODE_B);
	assert_content(f->st, x.id, "from b", 6);
	assert_int_equal(sg_store_resolve(f->st, "gone", &x), -ENOENT);
	assert_path(f->st, a.id, "etc/app.conf");

	/* versions, sequence numbers and the clock continue; ids are not reused */
	assert_int_equal(sg_store_write(f->st, NULL, a.id, "key=other\n", 10, 2, now_ns(), &x), 0);
	assert_int_equal(x.version, v + 1);
	assert_int_equal(x.stamp.seq, seq + 3); /* "gone": create seq + 1, remove seq + 2 */
	assert_true(x.stamp.hlc > hlc);
	mk(f->st, SG_ROOT_ID, "gone", SG_TYPE_FILE, "back", &x);
	assert_true(x.id != gone.id);
	assert_true(x.id != a.id && x.id != d.id);
	assert_int_equal(x.version, v + 2);
	assert_int_equal(x.stamp.seq, seq + 4);

	/* the same again, with the node id given explicitly */
	v = sg_store_version(f->st);
	hlc = sg_store_hlc(f->st);
	sg_store_close(f->st);
	f->st = NULL;
	f->opts.node_id = NODE_A;
	assert_int_equal(sg_store_open(&f->st, &f->opts), 0);
	assert_int_equal(sg_store_version(f->st), v);
	assert_true(sg_store_hlc(f->st) >= hlc);
	assert_content(f->st, a.id, "key=other\n", 10);
}

/* ---- 6. map growth --------------------------------------------------------- */

#define GROW_FILES 200
#define GROW_SIZE (64 * 1024)

static void fill(unsigned char *buf, size_t len, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (unsigned char)(x >> 16);
	}
}

static void test_map_growth(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	sg_store_stats s0, s1;
	unsigned char *buf = malloc(GROW_SIZE);
	uint64_t ids[GROW_FILES];
	char name[32];

	assert_non_null(buf);
	assert_int_equal(sg_store_stats_get(st, &s0), 0);
	assert_true(s0.map_size <= (2ULL << 20));
	for (unsigned i = 0; i < GROW_FILES; i++) {
		sg_attr a;

		snprintf(name, sizeof(name), "blob%03u", i);
		fill(buf, GROW_SIZE, i);
		assert_int_equal(sg_store_create(st, NULL, SG_ROOT_ID, name, SG_TYPE_FILE, 0644, 0,
		                                 0, buf, GROW_SIZE, now_ns(), &a),
		                 0);
		assert_int_equal(a.size, GROW_SIZE);
		ids[i] = a.id;
	}
	for (unsigned i = 0; i < GROW_FILES; i++) {
		void *got = NULL;
		size_t len = 0;

		fill(buf, GROW_SIZE, i);
		assert_int_equal(sg_store_read(st, ids[i], &got, &len), 0);
		assert_int_equal(len, GROW_SIZE);
		assert_memory_equal(got, buf, GROW_SIZE);
		free(got);
	}
	assert_int_equal(sg_store_checkpoint(st), 0); /* LMDB's own figures move at a checkpoint */
	assert_int_equal(sg_store_stats_get(st, &s1), 0);
	assert_true(s1.map_size > s0.map_size);
	assert_true(s1.map_size >= (uint64_t)GROW_FILES * GROW_SIZE);
	assert_true(s1.used_bytes >= (uint64_t)GROW_FILES * GROW_SIZE);
	assert_true(s1.used_bytes <= s1.map_size);
	assert_int_equal(s1.entries, s0.entries + GROW_FILES);
	free(buf);
}

/* The process's resident file-backed memory (statm's third field), bytes. */
static uint64_t rss_file_now(void)
{
	unsigned long size, resident, shared = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	assert_non_null(f);
	assert_int_equal(fscanf(f, "%lu %lu %lu", &size, &resident, &shared), 3);
	fclose(f);
	return (uint64_t)shared * (uint64_t)sysconf(_SC_PAGESIZE);
}

#define TRIM_FILES 2400
#define TRIM_SIZE (16 * 1024) /* 37.5 MiB in all */

/* Read every file once; check each content; the growth of RssFile. */
static uint64_t trim_read_all(sg_store *st, const uint64_t *ids, unsigned char *buf)
{
	uint64_t before = rss_file_now();

	for (unsigned i = 0; i < TRIM_FILES; i++) {
		void *got = NULL;
		size_t len = 0;

		fill(buf, TRIM_SIZE, i);
		assert_int_equal(sg_store_read(st, ids[i], &got, &len), 0);
		assert_int_equal(len, TRIM_SIZE);
		assert_memory_equal(got, buf, TRIM_SIZE);
		free(got);
	}
	return rss_file_now() - (rss_file_now() < before ? rss_file_now() : before);
}

/* max_mapped: reads map the store's pages into the process; past the bound
 * the store drops them, and what is read stays right. */
/* Descriptors the process has open. */
static int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Whether the running kernel is at least major.minor. */
static bool kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return false;
	return ma > major || (ma == major && mi >= minor);
}

#define WARM_FILES 20000

/* Under a bound, the branch pages of the trees a lookup walks are mapped
 * after the open (a thread walks them from the roots), and once the store
 * is past the bound, where the kernel can (Linux 6.7: an asynchronous
 * userfaultfd), a fault maps only its page, not its 16 neighbours: 50
 * lookups of random names then map a few pages each. Within the bound, or
 * unbounded, faults map around as before. */
static void test_map_warm(void **state)
{
	struct fx *f = *state;
	sg_store_stats ss;
	uint64_t before, grown;
	unsigned seed = 7;
	char name[32];

	/* an empty store is within the bound: faults map around */
	f->opts.max_mapped = 2ULL << 20;
	assert_int_equal(fx_reopen_with(f, 3600LL * 1000000000, 3600LL * 1000000000), 0);
	assert_int_equal(sg_store_stats_get(f->st, &ss), 0);
	assert_int_equal(ss.map_single, 0);
	for (unsigned i = 0; i < WARM_FILES; i++) {
		sg_attr a;

		snprintf(name, sizeof(name), "f%05u", i);
		assert_int_equal(sg_store_create(f->st, NULL, SG_ROOT_ID, name, SG_TYPE_FILE, 0644,
		                                 0, 0, name, strlen(name), now_ns(), &a),
		                 0);
	}
	assert_int_equal(sg_store_checkpoint(f->st), 0);
	/* grown past it: no more */
	assert_int_equal(sg_store_stats_get(f->st, &ss), 0);
	assert_int_equal(ss.map_single, kernel_at_least(6, 7));

	assert_int_equal(fx_reopen_with(f, -1, 0), 0);
	assert_int_equal(sg_store_stats_get(f->st, &ss), 0);
	assert_true(ss.used_bytes > f->opts.max_mapped);  /* the bound applies */
	for (int i = 0; i < 500 && !ss.map_warmed; i++) { /* 5 s at most */
		usleep(10000);
		assert_int_equal(sg_store_stats_get(f->st, &ss), 0);
	}
	assert_true(ss.branch_pages >= 3);
	assert_int_equal(ss.map_warmed, ss.branch_pages);
	assert_int_equal(ss.map_warm_snapshots, 1); /* fewer than SG_DEFAULT_WARM_CHUNK */
	if (kernel_at_least(6, 7)) {
		assert_int_equal(ss.map_single, 1);
		before = rss_file_now();
		for (int i = 0; i < 50; i++) {
			sg_attr a;

			snprintf(name, sizeof(name), "f%05u", rand_r(&seed) % WARM_FILES);
			assert_int_equal(sg_store_lookup(f->st, SG_ROOT_ID, name, &a), 0);
		}
		grown = rss_file_now() - before;
		print_message("50 lookups mapped %" PRIu64 " KiB\n", grown >> 10);
		assert_true(grown <= 50 * 4 * 4096ULL);
	}

	/* two pages per snapshot: every branch page still mapped, under
	 * a snapshot per two of them */
	f->opts.warm_chunk = 2;
	assert_int_equal(fx_reopen_with(f, -1, 0), 0);
	assert_int_equal(sg_store_stats_get(f->st, &ss), 0);
	for (int i = 0; i < 500 && !ss.map_warmed; i++) { /* 5 s at most */
		usleep(10000);
		assert_int_equal(sg_store_stats_get(f->st, &ss), 0);
	}
	assert_int_equal(ss.map_warmed, ss.branch_pages);
	assert_int_equal(ss.map_warm_snapshots, (ss.branch_pages + 1) / 2);
	f->opts.warm_chunk = 0;

	f->opts.max_mapped = UINT64_MAX;
	assert_int_equal(fx_reopen_with(f, -1, 0), 0);
	assert_int_equal(sg_store_stats_get(f->st, &ss), 0);
	assert_int_equal(ss.map_single, 0);
	f->opts.max_mapped = 0;
}

static void test_map_trim(void **state)
{
	struct fx *f = *state;
	unsigned char *buf = malloc(TRIM_SIZE);
	uint64_t *ids = calloc(TRIM_FILES, sizeof(*ids));
	sg_store_stats ss;
	uint64_t grown, rss, base;
	char name[32];
	int nfd;

	assert_non_null(buf);
	assert_non_null(ids);
	assert_int_equal(fx_reopen_with(f, 3600LL * 1000000000, 3600LL * 1000000000), 0);
	for (unsigned i = 0; i < TRIM_FILES; i++) {
		sg_attr a;

		snprintf(name, sizeof(name), "big%04u", i);
		fill(buf, TRIM_SIZE, i);
		assert_int_equal(sg_store_create(f->st, NULL, SG_ROOT_ID, name, SG_TYPE_FILE, 0644,
		                                 0, 0, buf, TRIM_SIZE, now_ns(), &a),
		                 0);
		ids[i] = a.id;
	}
	assert_int_equal(sg_store_checkpoint(f->st), 0);

	/* never trimmed: the pages read stay mapped (the store's file is in the
	 * page cache: it was just written) */
	f->opts.max_mapped = UINT64_MAX;
	assert_int_equal(fx_reopen_with(f, -1, 0), 0);
	grown = trim_read_all(f->st, ids, buf);
	assert_int_equal(sg_store_stats_get(f->st, &ss), 0);
	assert_int_equal(ss.map_trims, 0);
	assert_true(grown >= 30ULL << 20);

	/* bounded at 8 MiB: checked every SG_TRIM_EVERY (16) reads, each of
	 * which maps its 16 KiB and at most 64 KiB around them: 64 reads' worth
	 * is a generous margin. base: the test's own file pages (the store's
	 * map is empty just after the open) */
	f->opts.max_mapped = 8ULL << 20;
	assert_int_equal(fx_reopen_with(f, -1, 0), 0);
	nfd = fd_count();
	base = rss_file_now();
	trim_read_all(f->st, ids, buf);
	rss = rss_file_now();
	assert_int_equal(sg_store_stats_get(f->st, &ss), 0);
	assert_true(ss.map_trims >= 1);
	assert_true(rss <= base + (8ULL << 20) + 64 * (16 + 80) * 1024ULL);
	/* and again: all still right after the drops */
	trim_read_all(f->st, ids, buf);
	assert_true(rss_file_now() <= base + (8ULL << 20) + 64 * (16 + 80) * 1024ULL);
	/* what the checks keep open (statm) goes with the store */
	assert_int_equal(fx_reopen_with(f, -1, 0), 0);
	assert_int_equal(fd_count(), nfd);

	/* other file mappings of the process (the mirror's Git packs) count in
	 * RssFile too, and the store cannot drop them: they must neither make
	 * it drop its own pages down to nothing at every check, nor take the
	 * bound's room. 32 MiB of another file, mapped and read in, then the
	 * store opened afresh (its map empty) and read through: the map keeps
	 * most of its 8 MiB, and no more */
	{
		char other[300];
		size_t olen = 32ULL << 20;
		volatile unsigned char sum = 0;
		unsigned char *m;
		uint64_t share;
		int fd;

		snprintf(other, sizeof(other), "%s/other", f->dir);
		fd = open(other, O_RDWR | O_CREAT | O_TRUNC, 0600);
		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, (off_t)olen), 0);
		m = mmap(NULL, olen, PROT_READ, MAP_SHARED, fd, 0);
		assert_true(m != MAP_FAILED);
		for (size_t k = 0; k < olen; k += 4096)
			sum += m[k];
		assert_int_equal(fx_reopen_with(f, -1, 0), 0);
		base = rss_file_now();
		assert_true(base >= olen);
		trim_read_all(f->st, ids, buf);
		share = rss_file_now();
		share = share > base ? share - base : 0;
		assert_int_equal(sg_store_stats_get(f->st, &ss), 0);
		assert_true(ss.map_trims >= 1);
		assert_true(share >= (4ULL << 20));
		assert_true(share <= (8ULL << 20) + 64 * (16 + 80) * 1024ULL);
		munmap(m, olen);
		close(fd);
		(void)sum;
	}
	f->opts.max_mapped = 0;
	free(ids);
	free(buf);
}

/* ---- 7. limits ------------------------------------------------------------- */

static void test_file_size_limit(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	char *big = malloc(8192);
	sg_attr a, in, x;
	uint64_t v;

	assert_non_null(big);
	memset(big, 'q', 8192);
	assert_int_equal(sg_store_max_file_size(st), 4096);

	v = sg_store_version(st);
	assert_int_equal(sg_store_create(st, NULL, SG_ROOT_ID, "big", SG_TYPE_FILE, 0644, 0, 0, big,
	                                 4097, now_ns(), &a),
	                 -EFBIG);
	assert_int_equal(sg_store_lookup(st, SG_ROOT_ID, "big", &x), -ENOENT);
	assert_int_equal(sg_store_version(st), v);

	assert_int_equal(sg_store_create(st, NULL, SG_ROOT_ID, "f", SG_TYPE_FILE, 0644, 0, 0, big,
	                                 4096, now_ns(), &a),
	                 0);
	assert_int_equal(a.size, 4096);
	assert_int_equal(sg_store_write(st, NULL, a.id, "small", 5, 1, now_ns(), &a), 0);
	v = sg_store_version(st);
	assert_int_equal(sg_store_write(st, NULL, a.id, big, 4097, 1, now_ns(), &x), -EFBIG);
	assert_int_equal(sg_store_write(st, NULL, a.id, big, 8192, 1, now_ns(), &x), -EFBIG);
	assert_int_equal(sg_store_version(st), v);
	assert_content(st, a.id, "small", 5);

	memset(&in, 0, sizeof(in));
	in.size = 4097;
	assert_int_equal(sg_store_setattr(st, NULL, a.id, SG_SET_SIZE, &in, now_ns(), &x), -EFBIG);
	assert_int_equal(sg_store_version(st), v);
	assert_content(st, a.id, "small", 5);

	/* up to the limit: zero-extended; down: truncated */
	in.size = 4096;
	assert_int_equal(sg_store_setattr(st, NULL, a.id, SG_SET_SIZE, &in, now_ns(), &x), 0);
	assert_int_equal(x.size, 4096);
	memset(big, 0, 4096);
	memcpy(big, "small", 5);
	assert_content(st, a.id, big, 4096);
	in.size = 2;
	assert_int_equal(sg_store_setattr(st, NULL, a.id, SG_SET_SIZE, &in, now_ns(), &x), 0);
	assert_int_equal(x.size, 2);
	assert_content(st, a.id, "sm", 2);
	free(big);
}

static void test_names(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	char name[300];
	sg_attr a, x;
	const char *bad[] = {"", ".", "..", "a/b", "/", "x/"};

	memset(name, 'n', sizeof(name));
	name[256] = '\0';
	assert_int_equal(sg_name_check(name, 256), -ENAMETOOLONG);
	assert_int_equal(sg_store_create(st, NULL, SG_ROOT_ID, name, SG_TYPE_FILE, 0644, 0, 0, NULL,
	                                 0, now_ns(), &a),
	                 -ENAMETOOLONG);
	{
		int rc = sg_store_lookup(st, SG_ROOT_ID, name, &x);

		assert_true(rc == -ENAMETOOLONG || rc == -ENOENT);
	}

	name[255] = '\0';
	assert_int_equal(sg_name_check(name, 255), 0);
	mk(st, SG_ROOT_ID, name, SG_TYPE_FILE, "long", &a);
	assert_int_equal(sg_store_lookup(st, SG_ROOT_ID, name, &x), 0);
	assert_int_equal(x.id, a.id);
	assert_int_equal(sg_store_resolve(st, name, &x), 0);
	assert_int_equal(x.id, a.id);
	assert_path(st, a.id, name);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sg_name_check(bad[i], strlen(bad[i])), -EINVAL);
		assert_int_equal(sg_store_create(st, NULL, SG_ROOT_ID, bad[i], SG_TYPE_FILE, 0644,
		                                 0, 0, NULL, 0, now_ns(), &x),
		                 -EINVAL);
	}
	assert_int_equal(sg_name_check("a\0b", 3), -EINVAL);
	assert_int_equal(sg_name_check("...", 3), 0);
	assert_int_equal(sg_name_check(".hidden", 7), 0);

	/* a bad type */
	assert_int_equal(sg_store_create(st, NULL, SG_ROOT_ID, "t", SG_TYPE_TOMBSTONE, 0644, 0, 0,
	                                 NULL, 0, now_ns(), &x),
	                 -EINVAL);
	assert_int_equal(sg_store_create(st, NULL, SG_ROOT_ID, "t", SG_TYPE_NONE, 0644, 0, 0, NULL,
	                                 0, now_ns(), &x),
	                 -EINVAL);
	assert_int_equal(sg_store_lookup(st, SG_ROOT_ID, "t", &x), -ENOENT);
}

#define DEEP_LEVELS 20
#define DEEP_NAME 200

static void test_deep_path(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	char *path = calloc(1, 8192);
	char name[DEEP_NAME + 1];
	uint64_t ids[DEEP_LEVELS + 1];
	size_t plen = 0;
	sg_attr a, x;
	char *got = NULL;
	int rc;

	assert_non_null(path);
	ids[0] = SG_ROOT_ID;
	for (int i = 1; i <= DEEP_LEVELS; i++) {
		memset(name, 'a' + (i % 26), DEEP_NAME);
		name[DEEP_NAME] = '\0';
		ids[i] = mk(st, ids[i - 1], name, SG_TYPE_DIR, NULL, &a);
		assert_int_equal(a.parent, ids[i - 1]);
		if (plen > 0) {
			path[plen++] = '/';
		}
		memcpy(path + plen, name, DEEP_NAME);
		plen += DEEP_NAME;
		path[plen] = '\0';
		assert_int_equal(sg_store_lookup(st, ids[i - 1], name, &x), 0);
		assert_int_equal(x.id, ids[i]);
		assert_int_equal(sg_store_resolve(st, path, &x), 0);
		assert_int_equal(x.id, ids[i]);
		assert_path(st, ids[i], path);
	}
	assert_int_equal(plen, DEEP_LEVELS * DEEP_NAME + DEEP_LEVELS - 1); /* 4019 */

	/* exactly SG_PATH_MAX bytes: still a path */
	memset(name, 'z', SG_PATH_MAX - plen - 1);
	name[SG_PATH_MAX - plen - 1] = '\0';
	mk(st, ids[DEEP_LEVELS], name, SG_TYPE_FILE, "deep", &a);
	path[plen] = '/';
	strcpy(path + plen + 1, name);
	assert_int_equal(strlen(path), SG_PATH_MAX);
	assert_int_equal(sg_store_resolve(st, path, &x), 0);
	assert_int_equal(x.id, a.id);
	assert_content(st, a.id, "deep", 4);
	assert_path(st, a.id, path);

	/* one byte more: the store may refuse the name or the path, never truncate */
	strcat(name, "y");
	rc = sg_store_create(st, NULL, ids[DEEP_LEVELS], name, SG_TYPE_FILE, 0644, 0, 0, "x", 1,
	                     now_ns(), &a);
	assert_true(rc == 0 || rc == -ENAMETOOLONG);
	strcat(path, "y");
	assert_int_equal(strlen(path), SG_PATH_MAX + 1);
	assert_int_equal(sg_store_resolve(st, path, &x), -ENAMETOOLONG);
	if (rc == 0) {
		assert_int_equal(sg_store_lookup(st, ids[DEEP_LEVELS], name, &x), 0);
		assert_int_equal(x.id, a.id);
		assert_int_equal(sg_store_path(st, a.id, &got), -ENAMETOOLONG);
		free(got);
		got = NULL;
	}

	/* a 21st level of 200 bytes: 4220 bytes of path */
	memset(name, 'Q', DEEP_NAME);
	name[DEEP_NAME] = '\0';
	rc = sg_store_create(st, NULL, ids[DEEP_LEVELS], name, SG_TYPE_DIR, 0755, 0, 0, NULL, 0,
	                     now_ns(), &a);
	assert_true(rc == 0 || rc == -ENAMETOOLONG);
	if (rc == 0) {
		assert_int_equal(sg_store_lookup(st, ids[DEEP_LEVELS], name, &x), 0);
		assert_int_equal(x.id, a.id);
		assert_int_equal(sg_store_path(st, a.id, &got), -ENAMETOOLONG);
		free(got);
	}
	/* a component over SG_NAME_MAX in a path */
	memset(path, 'w', 300);
	path[300] = '\0';
	assert_int_equal(sg_store_resolve(st, path, &x), -ENAMETOOLONG);
	free(path);
}

/* ---- 8. errors and rename -------------------------------------------------- */

static void test_errors(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	sg_attr d, a, x;
	uint64_t v;

	mk(st, SG_ROOT_ID, "d", SG_TYPE_DIR, NULL, &d);
	mk(st, d.id, "a", SG_TYPE_FILE, "a", &a);
	v = sg_store_version(st);

	assert_int_equal(
	    sg_store_create(st, NULL, d.id, "a", SG_TYPE_FILE, 0644, 0, 0, NULL, 0, now_ns(), &x),
	    -EEXIST);
	assert_int_equal(sg_store_create(st, NULL, SG_ROOT_ID, "d", SG_TYPE_DIR, 0755, 0, 0, NULL,
	                                 0, now_ns(), &x),
	                 -EEXIST);
	assert_int_equal(
	    sg_store_create(st, NULL, a.id, "x", SG_TYPE_FILE, 0644, 0, 0, NULL, 0, now_ns(), &x),
	    -ENOTDIR);
	assert_int_equal(
	    sg_store_create(st, NULL, 999999, "x", SG_TYPE_FILE, 0644, 0, 0, NULL, 0, now_ns(), &x),
	    -ENOENT);
	assert_int_equal(sg_store_remove(st, NULL, d.id, "missing", 0, now_ns()), -ENOENT);
	assert_int_equal(sg_store_remove(st, NULL, SG_ROOT_ID, "d", 1, now_ns()), -ENOTEMPTY);
	assert_int_equal(sg_store_remove(st, NULL, SG_ROOT_ID, "d", 0, now_ns()), -EISDIR);
	assert_int_equal(sg_store_remove(st, NULL, d.id, "a", 1, now_ns()), -ENOTDIR);
	assert_int_equal(sg_store_lookup(st, a.id, "x", &x), -ENOTDIR);
	assert_int_equal(sg_store_write(st, NULL, 999999, "x", 1, 1, now_ns(), &x), -ENOENT);
	{
		int rc = sg_store_write(st, NULL, d.id, "x", 1, 1, now_ns(), &x);
		assert_true(rc == -EISDIR || rc == -EINVAL);
	}
	{
		void *buf = NULL;
		size_t len = 0;

		assert_int_equal(sg_store_read(st, d.id, &buf, &len), -EISDIR);
	}
	memset(&x, 0, sizeof(x));
	x.size = 1;
	assert_int_equal(sg_store_setattr(st, NULL, d.id, SG_SET_SIZE, &x, now_ns(), NULL),
	                 -EISDIR);
	assert_int_equal(sg_store_setattr(st, NULL, 999999, SG_SET_MODE, &x, now_ns(), NULL),
	                 -ENOENT);
	assert_int_equal(sg_store_getattr(st, 999999, &x), -ENOENT);
	/* nothing above changed anything */
	assert_int_equal(sg_store_version(st), v);
	assert_int_equal(sg_store_lookup(st, SG_ROOT_ID, "d", &x), 0);
	assert_content(st, a.id, "a", 1);
}

static void test_rename(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	sg_attr a, b, d, sub, p, q, s, e, fi, x;
	uint64_t v;

	mk(st, SG_ROOT_ID, "a", SG_TYPE_FILE, "AAA", &a);
	mk(st, SG_ROOT_ID, "b", SG_TYPE_FILE, "BB", &b);

	/* NOREPLACE over an existing entry */
	v = sg_store_version(st);
	assert_int_equal(sg_store_rename(st, NULL, SG_ROOT_ID, "a", SG_ROOT_ID, "b",
	                                 SG_RENAME_NOREPLACE, now_ns()),
	                 -EEXIST);
	assert_int_equal(sg_store_rename(st, NULL, SG_ROOT_ID, "a", SG_ROOT_ID, "b",
	                                 SG_RENAME_NOREPLACE | SG_RENAME_EXCHANGE, now_ns()),
	                 -EINVAL);
	assert_int_equal(
	    sg_store_rename(st, NULL, SG_ROOT_ID, "nope", SG_ROOT_ID, "c", 0, now_ns()), -ENOENT);
	assert_int_equal(sg_store_version(st), v);

	/* EXCHANGE swaps both, ids and contents */
	assert_int_equal(sg_store_rename(st, NULL, SG_ROOT_ID, "a", SG_ROOT_ID, "b",
	                                 SG_RENAME_EXCHANGE, now_ns()),
	                 0);
	assert_int_equal(sg_store_lookup(st, SG_ROOT_ID, "a", &x), 0);
	assert_int_equal(x.id, b.id);
	assert_content(st, x.id, "BB", 2);
	assert_int_equal(sg_store_lookup(st, SG_ROOT_ID, "b", &x), 0);
	assert_int_equal(x.id, a.id);
	assert_content(st, x.id, "AAA", 3);
	assert_path(st, a.id, "b");
	assert_path(st, b.id, "a");
	assert_int_equal(sg_store_rename(st, NULL, SG_ROOT_ID, "a", SG_ROOT_ID, "zz",
	                                 SG_RENAME_EXCHANGE, now_ns()),
	                 -ENOENT);

	/* plain rename over a file: the target is replaced, its id gone */
	assert_int_equal(sg_store_rename(st, NULL, SG_ROOT_ID, "a", SG_ROOT_ID, "b", 0, now_ns()),
	                 0);
	assert_int_equal(sg_store_lookup(st, SG_ROOT_ID, "b", &x), 0);
	assert_int_equal(x.id, b.id);
	assert_content(st, b.id, "BB", 2);
	assert_int_equal(sg_store_getattr(st, a.id, &x), -ENOENT);
	assert_int_equal(sg_store_lookup(st, SG_ROOT_ID, "a", &x), -ENOENT);

	/* a directory into itself or below */
	mk(st, SG_ROOT_ID, "d", SG_TYPE_DIR, NULL, &d);
	mk(st, d.id, "sub", SG_TYPE_DIR, NULL, &sub);
	assert_int_equal(sg_store_rename(st, NULL, SG_ROOT_ID, "d", sub.id, "x", 0, now_ns()),
	                 -EINVAL);
	assert_int_equal(sg_store_rename(st, NULL, SG_ROOT_ID, "d", d.id, "x", 0, now_ns()),
	                 -EINVAL);
	assert_int_equal(sg_store_lookup(st, SG_ROOT_ID, "d", &x), 0);
	assert_int_equal(x.id, d.id);

	/* type clashes */
	assert_int_equal(sg_store_rename(st, NULL, SG_ROOT_ID, "b", d.id, "sub", 0, now_ns()),
	                 -EISDIR);
	assert_int_equal(sg_store_rename(st, NULL, d.id, "sub", SG_ROOT_ID, "b", 0, now_ns()),
	                 -ENOTDIR);
	mk(st, sub.id, "leaf", SG_TYPE_FILE, "l", NULL);
	mk(st, SG_ROOT_ID, "empty", SG_TYPE_DIR, NULL, NULL);
	assert_int_equal(sg_store_rename(st, NULL, SG_ROOT_ID, "empty", d.id, "sub", 0, now_ns()),
	                 -ENOTEMPTY);
	/* over an empty directory: fine */
	assert_int_equal(sg_store_rename(st, NULL, d.id, "sub", SG_ROOT_ID, "empty", 0, now_ns()),
	                 0);
	assert_int_equal(sg_store_resolve(st, "empty/leaf", &x), 0);
	assert_int_equal(sg_store_resolve(st, "d/sub", &x), -ENOENT);

	/* a directory with contents: resolvable at the new path, paths rebuilt */
	mk(st, SG_ROOT_ID, "p", SG_TYPE_DIR, NULL, &p);
	mk(st, SG_ROOT_ID, "q", SG_TYPE_DIR, NULL, &q);
	mk(st, p.id, "s", SG_TYPE_DIR, NULL, &s);
	mk(st, s.id, "e", SG_TYPE_DIR, NULL, &e);
	mk(st, e.id, "f", SG_TYPE_FILE, "payload", &fi);
	assert_int_equal(sg_store_getattr(st, p.id, &x), 0);
	assert_int_equal(x.nlink, 3);
	assert_int_equal(sg_store_getattr(st, q.id, &x), 0);
	assert_int_equal(x.nlink, 2);
	assert_int_equal(sg_store_rename(st, NULL, p.id, "s", q.id, "t", 0, now_ns()), 0);
	assert_int_equal(sg_store_resolve(st, "q/t/e/f", &x), 0);
	assert_int_equal(x.id, fi.id);
	assert_content(st, fi.id, "payload", 7);
	assert_int_equal(sg_store_resolve(st, "q/t", &x), 0);
	assert_int_equal(x.id, s.id);
	assert_int_equal(x.parent, q.id);
	assert_int_equal(sg_store_resolve(st, "p/s/e/f", &x), -ENOENT);
	assert_int_equal(sg_store_resolve(st, "p/s", &x), -ENOENT);
	assert_path(st, fi.id, "q/t/e/f");
	assert_path(st, e.id, "q/t/e");
	assert_int_equal(sg_store_getattr(st, p.id, &x), 0);
	assert_int_equal(x.nlink, 2);
	assert_int_equal(sg_store_getattr(st, q.id, &x), 0);
	assert_int_equal(x.nlink, 3);
	assert_int_equal(sg_store_remove(st, NULL, p.id, "s", 1, now_ns()), -ENOENT);
}

/* ---- 9. list --------------------------------------------------------------- */

struct names {
	char **v;
	uint64_t *ids;
	uint32_t *types;
	size_t n, cap;
	size_t stop_after;
};

static int names_cb(void *ctx, const sg_dirent *d)
{
	struct names *l = ctx;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		l->ids = realloc(l->ids, l->cap * sizeof(*l->ids));
		l->types = realloc(l->types, l->cap * sizeof(*l->types));
		if (l->v == NULL || l->ids == NULL || l->types == NULL) {
			abort();
		}
	}
	l->v[l->n] = strdup(d->name);
	l->ids[l->n] = d->id;
	l->types[l->n] = d->type;
	l->n++;
	if (l->stop_after != 0 && l->n % l->stop_after == 0) {
		return 7;
	}
	return 0;
}

static void names_free(struct names *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i]);
	}
	free(l->v);
	free(l->ids);
	free(l->types);
	memset(l, 0, sizeof(*l));
}

static void test_list(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	const char *make[] = {"m", "b", "ab", "z", "a", "k", "B", "a.b"};
	const char *want[] = {"B", "a", "a.b", "ab", "b", "m", "z"};
	uint64_t kid = 0, sid = 0;
	sg_attr d, x;
	struct names l;

	mk(st, SG_ROOT_ID, "d", SG_TYPE_DIR, NULL, &d);
	for (size_t i = 0; i < sizeof(make) / sizeof(make[0]); i++) {
		uint64_t id = mk(st, d.id, make[i], i == 1 ? SG_TYPE_DIR : SG_TYPE_FILE, "c", NULL);

		if (strcmp(make[i], "k") == 0) {
			kid = id;
		}
		if (strcmp(make[i], "b") == 0) {
			sid = id;
		}
	}
	assert_int_equal(sg_store_remove(st, NULL, d.id, "k", 0, now_ns()), 0);
	assert_true(kid != 0);

	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_list(st, d.id, NULL, names_cb, &l), 0);
	assert_int_equal(l.n, 7);
	for (size_t i = 0; i < l.n; i++) {
		assert_string_equal(l.v[i], want[i]);
		assert_true(l.ids[i] != kid);
		assert_int_equal(l.types[i],
		                 strcmp(want[i], "b") == 0 ? SG_TYPE_DIR : SG_TYPE_FILE);
		assert_int_equal(sg_store_lookup(st, d.id, l.v[i], &x), 0);
		assert_int_equal(x.id, l.ids[i]);
	}
	assert_int_equal(l.ids[4], sid);
	names_free(&l);

	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_list(st, d.id, "", names_cb, &l), 0);
	assert_int_equal(l.n, 7);
	names_free(&l);

	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_list(st, d.id, "ab", names_cb, &l), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0], "b");
	assert_string_equal(l.v[1], "m");
	assert_string_equal(l.v[2], "z");
	names_free(&l);

	/* `after` need not exist (here: the tombstone's name, and a name between) */
	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_list(st, d.id, "k", names_cb, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0], "m");
	names_free(&l);
	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_list(st, d.id, "c", names_cb, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0], "m");
	names_free(&l);

	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_list(st, d.id, "z", names_cb, &l), 0);
	assert_int_equal(l.n, 0);
	names_free(&l);

	/* stop value */
	memset(&l, 0, sizeof(l));
	l.stop_after = 2;
	assert_int_equal(sg_store_list(st, d.id, NULL, names_cb, &l), 7);
	assert_int_equal(l.n, 2);
	names_free(&l);

	/* errors */
	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_lookup(st, d.id, "a", &x), 0);
	assert_int_equal(sg_store_list(st, x.id, NULL, names_cb, &l), -ENOTDIR);
	assert_int_equal(sg_store_list(st, 999999, NULL, names_cb, &l), -ENOENT);
	assert_int_equal(l.n, 0);

	/* the empty directory; the root lists d */
	mk(st, SG_ROOT_ID, "e", SG_TYPE_DIR, NULL, &x);
	assert_int_equal(sg_store_list(st, x.id, NULL, names_cb, &l), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(sg_store_list(st, SG_ROOT_ID, NULL, names_cb, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0], "d");
	assert_string_equal(l.v[1], "e");
	names_free(&l);
}

#define BIG_CHILDREN 1000
#define BIG_THREADS 4

struct big_arg {
	sg_store *st;
	uint64_t dir;
	int first, count;
	int failures;
};

static void *big_main(void *p)
{
	struct big_arg *b = p;
	char name[32];

	for (int i = b->first; i < b->first + b->count; i++) {
		snprintf(name, sizeof(name), "n%04d", i);
		if (sg_store_create(b->st, NULL, b->dir, name, SG_TYPE_FILE, 0644, 0, 0, name,
		                    strlen(name), now_ns(), NULL) != 0) {
			b->failures++;
		}
	}
	return NULL;
}

static void test_list_many(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	struct big_arg args[BIG_THREADS];
	pthread_t th[BIG_THREADS];
	struct names l, page;
	char after[32];
	sg_attr d;
	int rc;

	mk(st, SG_ROOT_ID, "big", SG_TYPE_DIR, NULL, &d);
	for (int t = 0; t < BIG_THREADS; t++) {
		args[t] = (struct big_arg){.st = st,
		                           .dir = d.id,
		                           .first = t * (BIG_CHILDREN / BIG_THREADS),
		                           .count = BIG_CHILDREN / BIG_THREADS};
		assert_int_equal(pthread_create(&th[t], NULL, big_main, &args[t]), 0);
	}
	for (int t = 0; t < BIG_THREADS; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(args[t].failures, 0);
	}

	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_list(st, d.id, NULL, names_cb, &l), 0);
	assert_int_equal(l.n, BIG_CHILDREN);
	for (int i = 0; i < BIG_CHILDREN; i++) {
		snprintf(after, sizeof(after), "n%04d", i);
		assert_string_equal(l.v[i], after);
	}

	/* page through with `after`, 100 at a time */
	memset(&page, 0, sizeof(page));
	page.stop_after = 100;
	after[0] = '\0';
	for (;;) {
		size_t n0 = page.n;

		rc = sg_store_list(st, d.id, after, names_cb, &page);
		assert_true(rc == 0 || rc == 7);
		if (page.n == n0) {
			break;
		}
		snprintf(after, sizeof(after), "%s", page.v[page.n - 1]);
		if (rc == 0) {
			break;
		}
	}
	assert_int_equal(page.n, BIG_CHILDREN);
	for (int i = 0; i < BIG_CHILDREN; i++) {
		assert_string_equal(page.v[i], l.v[i]);
		assert_int_equal(page.ids[i], l.ids[i]);
	}
	names_free(&page);
	names_free(&l);
}

/* ---- 10. concurrency and group commit -------------------------------------- */

#define CC_THREADS 8
#define CC_FILES 200

struct cc_op {
	uint64_t version;
	sg_stamp stamp;
};

struct cc_arg {
	sg_store *st;
	uint64_t dir;
	int t;
	int failures;
	uint64_t ids[CC_FILES];
	struct cc_op ops[2 * CC_FILES];
};

static void *cc_main(void *p)
{
	struct cc_arg *c = p;
	char name[32], data[64];
	sg_attr a;

	for (int i = 0; i < CC_FILES; i++) {
		snprintf(name, sizeof(name), "t%d-%03d", c->t, i);
		if (sg_store_create(c->st, NULL, c->dir, name, SG_TYPE_FILE, 0644, 0, 0, "new", 3,
		                    now_ns(), &a) != 0) {
			c->failures++;
			continue;
		}
		c->ids[i] = a.id;
		c->ops[2 * i].version = a.version;
		c->ops[2 * i].stamp = a.stamp;
		snprintf(data, sizeof(data), "thread %d file %d", c->t, i);
		if (sg_store_write(c->st, NULL, a.id, data, strlen(data), 1, now_ns(), &a) != 0) {
			c->failures++;
			continue;
		}
		c->ops[2 * i + 1].version = a.version;
		c->ops[2 * i + 1].stamp = a.stamp;
	}
	return NULL;
}

static int op_cmp(const void *a, const void *b)
{
	const struct cc_op *x = a, *y = b;

	return x->version < y->version ? -1 : x->version > y->version;
}

static void test_concurrency(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	struct cc_arg *args = calloc(CC_THREADS, sizeof(*args));
	struct cc_op *all = calloc(CC_THREADS * 2 * CC_FILES, sizeof(*all));
	pthread_t th[CC_THREADS];
	sg_store_stats s0, s1;
	const size_t nops = CC_THREADS * 2 * CC_FILES;
	uint64_t v0;
	sg_attr d;
	struct rows r;
	char data[64];

	assert_non_null(args);
	assert_non_null(all);
	mk(st, SG_ROOT_ID, "cc", SG_TYPE_DIR, NULL, &d);
	assert_int_equal(sg_store_sync(st), 0);
	v0 = sg_store_version(st);
	assert_int_equal(sg_store_stats_get(st, &s0), 0);
	for (int t = 0; t < CC_THREADS; t++) {
		args[t].st = st;
		args[t].dir = d.id;
		args[t].t = t;
		assert_int_equal(pthread_create(&th[t], NULL, cc_main, &args[t]), 0);
	}
	for (int t = 0; t < CC_THREADS; t++) {
		pthread_join(th[t], NULL);
	}
	assert_int_equal(sg_store_sync(st), 0); /* deferred changes: committed now */
	for (int t = 0; t < CC_THREADS; t++) {
		assert_int_equal(args[t].failures, 0);
		memcpy(all + (size_t)t * 2 * CC_FILES, args[t].ops, sizeof(args[t].ops));
	}
	assert_int_equal(sg_store_stats_get(st, &s1), 0);

	/* every op got its own version, densely; stamps follow the versions */
	assert_int_equal(sg_store_version(st), v0 + nops);
	qsort(all, nops, sizeof(*all), op_cmp);
	for (size_t i = 0; i < nops; i++) {
		assert_int_equal(all[i].version, v0 + 1 + i);
		assert_int_equal(all[i].stamp.origin, NODE_A);
		if (i > 0) {
			assert_int_equal(all[i].stamp.seq, all[i - 1].stamp.seq + 1);
			assert_true(all[i].stamp.hlc > all[i - 1].stamp.hlc);
		}
	}

	/* grouping happened */
	assert_int_equal(s1.ops - s0.ops, nops);
	assert_true(s1.commits - s0.commits < s1.ops - s0.ops);
	assert_int_equal(s1.entries, s0.entries + CC_THREADS * CC_FILES);

	/* the log: one row per file, at its write's version */
	changes(st, v0, 0, &r);
	assert_int_equal(r.n, CC_THREADS * CC_FILES);
	assert_log_shape(&r, v0, v0 + nops);
	for (size_t i = 1; i < r.n; i++) {
		assert_true(r.v[i].version > r.v[i - 1].version);
	}
	rows_free(&r);
	for (int t = 0; t < CC_THREADS; t++) {
		for (int i = 0; i < CC_FILES; i++) {
			sg_attr a;

			snprintf(data, sizeof(data), "thread %d file %d", t, i);
			assert_int_equal(sg_store_getattr(st, args[t].ids[i], &a), 0);
			assert_int_equal(a.version, args[t].ops[2 * i + 1].version);
			assert_content(st, args[t].ids[i], data, strlen(data));
		}
	}
	free(all);
	free(args);
}

/* ---- 11. extended attributes ----------------------------------------------- */

static int has_name(const char *list, size_t len, const char *name)
{
	for (size_t i = 0; i < len; i += strlen(list + i) + 1) {
		if (strcmp(list + i, name) == 0) {
			return 1;
		}
	}
	return 0;
}

static void test_xattrs(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	sg_attr a;
	void *val = NULL;
	char *list = NULL;
	size_t len = 0;

	mk(st, SG_ROOT_ID, "x", SG_TYPE_FILE, "data", &a);

	assert_int_equal(sg_store_listxattr(st, a.id, &list, &len), 0);
	assert_int_equal(len, 0);
	free(list);
	list = NULL;
	assert_int_equal(sg_store_getxattr(st, a.id, "user.a", &val, &len), -ENODATA);

	assert_int_equal(sg_store_setxattr(st, NULL, a.id, "user.a", "1", 1, 0, now_ns()), 0);
	assert_int_equal(
	    sg_store_setxattr(st, NULL, a.id, "user.bb", "22", 2, XATTR_CREATE, now_ns()), 0);
	assert_int_equal(sg_store_setxattr(st, NULL, a.id, "user.empty", "", 0, 0, now_ns()), 0);
	assert_int_equal(sg_store_getxattr(st, a.id, "user.a", &val, &len), 0);
	assert_int_equal(len, 1);
	assert_memory_equal(val, "1", 1);
	free(val);
	val = NULL;
	assert_int_equal(sg_store_getxattr(st, a.id, "user.bb", &val, &len), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(val, "22", 2);
	free(val);
	val = NULL;
	assert_int_equal(sg_store_getxattr(st, a.id, "user.empty", &val, &len), 0);
	assert_int_equal(len, 0);
	free(val);
	val = NULL;

	assert_int_equal(sg_store_listxattr(st, a.id, &list, &len), 0);
	assert_int_equal(len,
	                 strlen("user.a") + 1 + strlen("user.bb") + 1 + strlen("user.empty") + 1);
	assert_true(has_name(list, len, "user.a"));
	assert_true(has_name(list, len, "user.bb"));
	assert_true(has_name(list, len, "user.empty"));
	free(list);
	list = NULL;

	/* flags */
	assert_int_equal(
	    sg_store_setxattr(st, NULL, a.id, "user.a", "9", 1, XATTR_CREATE, now_ns()), -EEXIST);
	assert_int_equal(
	    sg_store_setxattr(st, NULL, a.id, "user.nope", "9", 1, XATTR_REPLACE, now_ns()),
	    -ENODATA);
	assert_int_equal(sg_store_getxattr(st, a.id, "user.nope", &val, &len), -ENODATA);
	assert_int_equal(
	    sg_store_setxattr(st, NULL, a.id, "user.a", "new", 3, XATTR_REPLACE, now_ns()), 0);
	assert_int_equal(sg_store_getxattr(st, a.id, "user.a", &val, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(val, "new", 3);
	free(val);
	val = NULL;

	/* remove */
	assert_int_equal(sg_store_removexattr(st, NULL, a.id, "user.a", now_ns()), 0);
	assert_int_equal(sg_store_getxattr(st, a.id, "user.a", &val, &len), -ENODATA);
	assert_int_equal(sg_store_removexattr(st, NULL, a.id, "user.a", now_ns()), -ENODATA);
	assert_int_equal(sg_store_listxattr(st, a.id, &list, &len), 0);
	assert_false(has_name(list, len, "user.a"));
	assert_true(has_name(list, len, "user.bb"));
	free(list);

	/* the content is untouched; xattrs of a directory work too */
	assert_content(st, a.id, "data", 4);
	assert_int_equal(sg_store_setxattr(st, NULL, SG_ROOT_ID, "user.r", "root", 4, 0, now_ns()),
	                 0);
	assert_int_equal(sg_store_getxattr(st, SG_ROOT_ID, "user.r", &val, &len), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(val, "root", 4);
	free(val);
	val = NULL;
	/* an unknown entry */
	assert_int_equal(sg_store_setxattr(st, NULL, 999999, "user.a", "1", 1, 0, now_ns()),
	                 -ENOENT);
	assert_int_equal(sg_store_getxattr(st, 999999, "user.a", &val, &len), -ENOENT);
}

static void test_xattr_size_limit(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	sg_attr a;
	void *val = NULL;
	size_t len = 0;
	char *huge = calloc(1, 65537);

	assert_non_null(huge);
	mk(st, SG_ROOT_ID, "x", SG_TYPE_FILE, "data", &a);

	/* 64 KiB is fine, one byte more is not (store.h: -E2BIG, as the kernel says) */
	memset(huge, 'h', 65537);
	assert_int_equal(sg_store_setxattr(st, NULL, a.id, "user.big", huge, 65536, 0, now_ns()),
	                 0);
	assert_int_equal(sg_store_getxattr(st, a.id, "user.big", &val, &len), 0);
	assert_int_equal(len, 65536);
	assert_memory_equal(val, huge, 65536);
	free(val);
	val = NULL;
	assert_int_equal(sg_store_setxattr(st, NULL, a.id, "user.big2", huge, 65537, 0, now_ns()),
	                 -E2BIG);
	assert_int_equal(sg_store_getxattr(st, a.id, "user.big2", &val, &len), -ENODATA);
	free(huge);
}

/* ---- 12. sync -------------------------------------------------------------- */

static void test_sync(void **state)
{
	struct fx *f = *state;

	assert_int_equal(sg_store_sync(f->st), 0);
	mk(f->st, SG_ROOT_ID, "s", SG_TYPE_FILE, "synced", NULL);
	assert_int_equal(sg_store_sync(f->st), 0);
	assert_int_equal(sg_store_sync(f->st), 0);
}

/* ---- 13. observer ---------------------------------------------------------- */

#define OBS_MAX 64

struct obs_note {
	sg_note n;
	char name[SG_NAME_MAX + 1];
};

struct obs {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct obs_note v[OBS_MAX];
	size_t n;
	size_t calls;
};

static void obs_cb(void *ctx, const sg_note *notes, size_t n)
{
	struct obs *o = ctx;

	pthread_mutex_lock(&o->mu);
	o->calls++;
	for (size_t i = 0; i < n && o->n < OBS_MAX; i++) {
		o->v[o->n].n = notes[i];
		snprintf(o->v[o->n].name, sizeof(o->v[o->n].name), "%s",
		         notes[i].name ? notes[i].name : "(null)");
		o->v[o->n].n.name = o->v[o->n].name;
		o->n++;
	}
	pthread_cond_broadcast(&o->cv);
	pthread_mutex_unlock(&o->mu);
}

/* Wait (5 s at most) for the note of `id` at `version`; copy it to *out. */
static int obs_wait(struct obs *o, uint64_t id, uint64_t version, sg_note *out)
{
	struct timespec dl;
	int found = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	pthread_mutex_lock(&o->mu);
	for (;;) {
		for (size_t i = 0; i < o->n && !found; i++) {
			if (o->v[i].n.id == id && o->v[i].n.version == version) {
				*out = o->v[i].n;
				found = 1;
			}
		}
		if (found || pthread_cond_timedwait(&o->cv, &o->mu, &dl) != 0) {
			break;
		}
	}
	pthread_mutex_unlock(&o->mu);
	return found;
}

/* ---- deferred commits ------------------------------------------------------ */

struct dread {
	sg_store *st;
	uint64_t dir, file;
	int rc_lookup, rc_getattr, rc_resolve;
	char content[32], listed[64], path[64];
};

static int dread_list_cb(void *ctx, const sg_dirent *d)
{
	struct dread *r = ctx;

	snprintf(r->listed + strlen(r->listed), sizeof(r->listed) - strlen(r->listed), "%s%s",
	         r->listed[0] ? "," : "", d->name);
	return 0;
}

/* Another thread's reads, as a FUSE worker makes them. */
static void *dread_main(void *arg)
{
	struct dread *r = arg;
	sg_attr a;
	void *buf = NULL;
	size_t len = 0;
	char *path = NULL;

	r->rc_lookup = sg_store_lookup(r->st, r->dir, "f", &a);
	r->rc_getattr = sg_store_getattr(r->st, r->file, &a);
	r->rc_resolve = sg_store_resolve(r->st, "d/f", &a);
	if (sg_store_read(r->st, r->file, &buf, &len) == 0 && buf)
		snprintf(r->content, sizeof(r->content), "%.*s", (int)len, (char *)buf);
	free(buf);
	sg_store_list(r->st, r->dir, NULL, dread_list_cb, r);
	if (sg_store_path(r->st, r->file, &path) == 0)
		snprintf(r->path, sizeof(r->path), "%s", path);
	free(path);
	return NULL;
}

static void dread_run(struct dread *r)
{
	pthread_t th;

	r->listed[0] = r->content[0] = r->path[0] = '\0';
	assert_int_equal(pthread_create(&th, NULL, dread_main, r), 0);
	pthread_join(th, NULL);
}

/* Acknowledged and not committed: every read sees it, from any thread;
 * what leaves the node (version, log, observer) does not, until the sync. */
static void test_deferred_reads(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	struct obs *o = calloc(1, sizeof(*o));
	sg_store_stats s0, s1;
	struct dread r = {.st = st};
	sg_attr d, a;
	sg_note n;
	struct rows rows;
	uint64_t v0;

	/* a lone change (the writer idle) commits at once; the ones that follow
	 * within the linger (here an hour) are held */
	mk(st, SG_ROOT_ID, "first", SG_TYPE_FILE, "1", NULL);
	assert_int_equal(sg_store_sync(st), 0);
	v0 = sg_store_version(st);
	assert_non_null(o);
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->cv, NULL);
	sg_store_set_observer(st, obs_cb, o);
	assert_int_equal(sg_store_stats_get(st, &s0), 0);
	mk(st, SG_ROOT_ID, "d", SG_TYPE_DIR, NULL, &d);
	mk(st, d.id, "f", SG_TYPE_FILE, "hello", &a);
	assert_int_equal(sg_store_stats_get(st, &s1), 0);
	assert_int_equal(s1.deferred - s0.deferred, 2);
	assert_int_equal(s1.commits, s0.commits);

	/* durable: nothing yet; the version and the observer wait for it */
	assert_int_equal(sg_store_version(st), v0);
	pthread_mutex_lock(&o->mu);
	assert_int_equal(o->calls, 0);
	pthread_mutex_unlock(&o->mu);
	/* what leaves the node is on disk first: without the journal, the log
	 * shows committed changes only; with it, reading the log writes what
	 * the writer holds as a journal batch, then shows it */
	changes(st, v0, 0, &rows);
	assert_int_equal(rows.n, no_journal ? 0 : 2);
	rows_free(&rows);
	assert_int_equal(sg_store_stats_get(st, &s1), 0);
	assert_int_equal(s1.journal_batches - s0.journal_batches, no_journal ? 0 : 1);
	assert_int_equal(s1.commits, s0.commits);
	assert_int_equal(sg_store_check(st, print_problem, NULL, NULL), 0);

	/* seen: everything, from another thread */
	r.dir = d.id;
	r.file = a.id;
	dread_run(&r);
	assert_int_equal(r.rc_lookup, 0);
	assert_int_equal(r.rc_getattr, 0);
	assert_int_equal(r.rc_resolve, 0);
	assert_string_equal(r.content, "hello");
	assert_string_equal(r.listed, "f");
	assert_string_equal(r.path, "d/f");

	/* a later change to it, also seen at once */
	assert_int_equal(sg_store_write(st, NULL, a.id, "world", 5, now_ns(), now_ns(), &a), 0);
	assert_int_equal(sg_store_rename(st, NULL, d.id, "f", SG_ROOT_ID, "g", 0, now_ns()), 0);
	dread_run(&r);
	assert_int_equal(r.rc_lookup, -ENOENT);
	assert_string_equal(r.content, "world");
	assert_string_equal(r.listed, "");
	assert_string_equal(r.path, "g");

	/* the sync commits it all, and the observer hears of it then */
	assert_int_equal(sg_store_sync(st), 0);
	assert_true(sg_store_version(st) > v0);
	assert_true(obs_wait(o, d.id, d.version, &n));
	assert_int_equal(n.local, SG_NOTE_LOCAL);
	changes(st, v0, 0, &rows);
	assert_true(rows.n >= 3); /* d, g, and f's tombstone */
	rows_free(&rows);
	assert_int_equal(sg_store_stats_get(st, &s0), 0);
	assert_true(s0.commits > s1.commits);
	assert_int_equal(s0.lost, 0);

	/* a peer's change commits what waits with it */
	mk(st, SG_ROOT_ID, "late", SG_TYPE_FILE, "x", &a);
	{
		sg_change c = file_change("peer", "p", sg_store_hlc(st) + 1, NODE_B, 1);
		assert_int_equal(sg_store_apply(st, &c), 0);
	}
	assert_int_equal(sg_store_getattr(st, a.id, &a), 0);
	assert_true(sg_store_version(st) > a.version);

	/* the close commits what is still held: it is there after a reopen */
	mk(st, SG_ROOT_ID, "at-close", SG_TYPE_FILE, "kept", &a);
	sg_store_set_observer(st, NULL, NULL);
	assert_int_equal(fx_reopen_with(f, -1, 0), 0);
	st = f->st;
	assert_int_equal(sg_store_resolve(st, "at-close", &a), 0);
	assert_content(st, a.id, "kept", 4);
	pthread_mutex_destroy(&o->mu);
	pthread_cond_destroy(&o->cv);
	free(o);
}

/* What the visibility observer saw of a peer's change "vis", from inside its call. */
struct vis {
	sg_store *st;
	struct obs *commits; /* the commit observer's record */
	int calls;
	uint64_t version_then; /* the store's committed version at the call */
	size_t commits_then;   /* the commit observer's calls by then */
	char content[16];      /* what a reader got at the call */
};

static void vis_cb(void *ctx, const sg_note *notes, size_t n)
{
	struct vis *v = ctx;

	for (size_t i = 0; i < n; i++) {
		void *buf = NULL;
		size_t len = 0;

		if (!notes[i].name || strcmp(notes[i].name, "vis") != 0)
			continue;
		v->calls++;
		v->version_then = sg_store_version(v->st);
		pthread_mutex_lock(&v->commits->mu);
		v->commits_then = v->commits->calls;
		pthread_mutex_unlock(&v->commits->mu);
		if (sg_store_read(v->st, notes[i].id, &buf, &len) == 0 && buf)
			snprintf(v->content, sizeof(v->content), "%.*s", (int)len, (char *)buf);
		free(buf);
	}
}

/* The commit observer's record, and a journaled transaction open, as on a
 * busy node. */
static void vis_start(sg_store *st, struct vis *v)
{
	memset(v, 0, sizeof(*v));
	v->st = st;
	v->commits = calloc(1, sizeof(*v->commits));
	assert_non_null(v->commits);
	pthread_mutex_init(&v->commits->mu, NULL);
	pthread_cond_init(&v->commits->cv, NULL);
	mk(st, SG_ROOT_ID, "before", SG_TYPE_FILE, "1", NULL);
	assert_int_equal(sg_store_sync(st), 0);
}

/* A peer's "vis", applied with both observers on, until the commit observer
 * has heard of it. */
static void vis_apply(sg_store *st, struct vis *v, sg_attr *a, sg_note *n)
{
	sg_change c = file_change("vis", "new", sg_store_hlc(st) + 1, NODE_B, 1);

	sg_store_set_observer(st, obs_cb, v->commits);
	sg_store_set_visible_observer(st, vis_cb, v);
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_resolve(st, "vis", a), 0);
	assert_true(obs_wait(v->commits, a->id, a->version, n));
	sg_store_set_visible_observer(st, NULL, NULL);
	sg_store_set_observer(st, NULL, NULL);
}

static void vis_end(struct vis *v)
{
	pthread_mutex_destroy(&v->commits->mu);
	pthread_cond_destroy(&v->commits->cv);
	free(v->commits);
}

/* The visibility observer hears of a peer's change once, as readers see it:
 * before the commit observer and, with the journal, before the batch is
 * written (the committed version has not moved yet). */
static void test_visible_first(void **state)
{
	struct fx *f = *state;
	struct vis v;
	sg_attr a;
	sg_note n;

	vis_start(f->st, &v);
	vis_apply(f->st, &v, &a, &n);
	assert_int_equal(n.local, SG_NOTE_REMOTE);
	assert_int_equal(v.calls, 1);
	assert_string_equal(v.content, "new");
	assert_int_equal(v.commits_then, 0);
	if (!no_journal)
		assert_true(v.version_then < a.version);
	else
		assert_true(v.version_then >= a.version);
	vis_end(&v);
}

/* At the defaults, acknowledged changes reach the log on their own, soon. */
static void test_deferred_commit_soon(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	uint64_t v0 = sg_store_version(st);
	struct rows rows;
	sg_attr a;
	int n = 0;

	mk(st, SG_ROOT_ID, "soon", SG_TYPE_FILE, "s", &a);
	/* bounded: 2 s against a 5 ms delay */
	for (n = 0; n < 2000 && sg_store_version(st) == v0; n++)
		usleep(1000);
	assert_true(sg_store_version(st) > v0);
	changes(st, v0, 0, &rows);
	assert_int_equal(rows.n, 1);
	assert_string_equal(rows.v[0].path, "soon");
	rows_free(&rows);
}

static void test_observer(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	struct obs *o = calloc(1, sizeof(*o));
	sg_attr a, b, x;
	sg_note n;
	sg_change c;
	struct rows r;
	uint64_t v;

	assert_non_null(o);
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->cv, NULL);
	sg_store_set_observer(st, obs_cb, o);

	/* a local create */
	mk(st, SG_ROOT_ID, "obs", SG_TYPE_FILE, "o", &a);
	assert_true(obs_wait(o, a.id, a.version, &n));
	assert_int_equal(n.parent, SG_ROOT_ID);
	assert_string_equal(n.name, "obs");
	assert_int_equal(n.type, SG_TYPE_FILE);
	assert_int_equal(n.local, 1);
	assert_int_equal(n.old_id, 0);

	/* a remote apply */
	c = file_change("rem", "remote", sg_store_hlc(st) + 1, NODE_B, 1);
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_resolve(st, "rem", &b), 0);
	assert_true(obs_wait(o, b.id, b.version, &n));
	assert_int_equal(n.version, sg_store_version(st));
	assert_int_equal(n.parent, SG_ROOT_ID);
	assert_string_equal(n.name, "rem");
	assert_int_equal(n.type, SG_TYPE_FILE);
	assert_int_equal(n.local, 0);

	/* a local remove: the tombstone, replacing the file */
	v = sg_store_version(st);
	assert_int_equal(sg_store_remove(st, NULL, SG_ROOT_ID, "obs", 0, now_ns()), 0);
	changes(st, v, 0, &r);
	assert_int_equal(r.n, 1);
	assert_true(obs_wait(o, r.v[0].id, v + 1, &n));
	assert_int_equal(n.type, SG_TYPE_TOMBSTONE);
	assert_int_equal(n.old_id, a.id);
	assert_int_equal(n.parent, SG_ROOT_ID);
	assert_string_equal(n.name, "obs");
	assert_int_equal(n.local, 1);
	rows_free(&r);

	/* a local rename over a file: the moved entry replaces the target */
	mk(st, SG_ROOT_ID, "from", SG_TYPE_FILE, "1", &a);
	assert_int_equal(
	    sg_store_rename(st, NULL, SG_ROOT_ID, "from", SG_ROOT_ID, "rem", 0, now_ns()), 0);
	assert_int_equal(sg_store_getattr(st, a.id, &x), 0);
	assert_true(obs_wait(o, a.id, x.version, &n));
	assert_string_equal(n.name, "rem");
	assert_int_equal(n.parent, SG_ROOT_ID);
	assert_int_equal(n.old_id, b.id);
	assert_int_equal(n.local, 1);

	/* close with the observer still set: ctx must outlive the store */
	sg_store_close(st);
	f->st = NULL;
	pthread_cond_destroy(&o->cv);
	pthread_mutex_destroy(&o->mu);
	free(o);
}

/* ---- replication support: subtree re-versioning, conflicts, bases, xattrs ---- */

static void test_dir_rename_reversions_subtree(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	struct rows r;
	sg_attr d, e;
	uint64_t v0;
	size_t i_d2, i_e, i_f, i_g, i_tomb;

	mk(st, SG_ROOT_ID, "d", SG_TYPE_DIR, NULL, &d);
	mk(st, d.id, "e", SG_TYPE_DIR, NULL, &e);
	mk(st, e.id, "f", SG_TYPE_FILE, "deep", NULL);
	mk(st, d.id, "g", SG_TYPE_FILE, "flat", NULL);
	v0 = sg_store_version(st);
	assert_int_equal(sg_store_rename(st, NULL, SG_ROOT_ID, "d", SG_ROOT_ID, "d2", 0, now_ns()),
	                 0);

	/* a peer reading the log after v0 gets every descendant at its new path,
	 * after the directory itself and before the tombstone of the old path */
	changes(st, v0, 0, &r);
	assert_int_equal(r.n, 5);
	i_d2 = i_e = i_f = i_g = i_tomb = 99;
	for (size_t i = 0; i < r.n; i++) {
		if (!strcmp(r.v[i].path, "d2"))
			i_d2 = i;
		else if (!strcmp(r.v[i].path, "d2/e"))
			i_e = i;
		else if (!strcmp(r.v[i].path, "d2/e/f"))
			i_f = i;
		else if (!strcmp(r.v[i].path, "d2/g"))
			i_g = i;
		else if (!strcmp(r.v[i].path, "d") && r.v[i].type == SG_TYPE_TOMBSTONE)
			i_tomb = i;
	}
	assert_int_equal(i_d2, 0);
	assert_true(i_e < i_f);
	assert_true(i_e < 4 && i_f < 4 && i_g < 4);
	assert_int_equal(i_tomb, 4);
	assert_int_equal(r.v[i_f].len, 4);
	assert_memory_equal(r.v[i_f].data, "deep", 4);
	assert_memory_equal(r.v[i_g].data, "flat", 4);
	rows_free(&r);
}

struct conflicts {
	size_t n;
	char path[64];
	sg_stamp loser, winner;
	char data[64];
	size_t len;
};

static int conflict_cb(void *ctx, const sg_conflict *c)
{
	struct conflicts *l = ctx;

	l->n++;
	snprintf(l->path, sizeof(l->path), "%s", c->path);
	l->loser = c->loser;
	l->winner = c->winner;
	l->len = c->len;
	memcpy(l->data, c->data, c->len < sizeof(l->data) ? c->len : sizeof(l->data));
	return 0;
}

static void test_conflicts(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	struct conflicts l;
	struct rows r;
	sg_store_stats ss;
	sg_attr mine, x;
	sg_change c;
	uint64_t v;

	assert_int_equal(sg_store_stats_get(st, &ss), 0);
	assert_int_equal(ss.conflicts, 0);
	/* our write; a peer's newer write that never saw it wins and ours is kept */
	mk(st, SG_ROOT_ID, "app.conf", SG_TYPE_FILE, "mine", &mine);
	c = file_change("app.conf", "theirs", mine.stamp.hlc + 10, NODE_B, 1);
	assert_int_equal(sg_store_apply(st, &c), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_conflicts(st, 0, 0, conflict_cb, &l), 0);
	assert_int_equal(l.n, 1);
	/* the stats count what the listing lists */
	assert_int_equal(sg_store_stats_get(st, &ss), 0);
	assert_int_equal(ss.conflicts, 1);
	assert_string_equal(l.path, "app.conf");
	assert_stamp_equal(&l.loser, &mine.stamp);
	assert_int_equal(l.winner.hlc, mine.stamp.hlc + 10);
	assert_int_equal(l.winner.origin, NODE_B);
	assert_int_equal(l.len, 4);
	assert_memory_equal(l.data, "mine", 4);

	/* a change made on top of what we hold is no conflict */
	assert_int_equal(sg_store_resolve(st, "app.conf", &x), 0);
	c = file_change("app.conf", "theirs 2", x.stamp.hlc + 10, NODE_B, 2);
	c.base = x.stamp;
	assert_int_equal(sg_store_apply(st, &c), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_conflicts(st, 0, 0, conflict_cb, &l), 0);
	assert_int_equal(l.n, 1);

	/* a stale change loses here: nothing held was lost, nothing recorded */
	c = file_change("app.conf", "old", 3, NODE_C, 1);
	assert_int_equal(sg_store_apply(st, &c), -ESTALE);
	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_conflicts(st, 0, 0, conflict_cb, &l), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(sg_store_stats_get(st, &ss), 0);
	assert_int_equal(ss.conflicts, 1);

	/* a local write after the peer's names the peer's version as its base */
	assert_int_equal(sg_store_resolve(st, "app.conf", &x), 0);
	v = sg_store_version(st);
	assert_int_equal(sg_store_write(st, NULL, x.id, "ours again", 10, now_ns(), now_ns(), NULL),
	                 0);
	changes(st, v, 0, &r);
	assert_int_equal(r.n, 1);
	assert_stamp_equal(&r.v[0].base, &x.stamp);
	rows_free(&r);

	/* conflicts survive a listing from a given seq */
	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_conflicts(st, 1, 0, conflict_cb, &l), 0);
	assert_int_equal(l.n, 0);
}

static void test_xattrs_in_changes(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	static const sg_xattr set[] = {{"user.b", "2", 1}};
	struct rows r;
	sg_attr a;
	sg_change c;
	void *val;
	size_t len;
	uint64_t v;

	mk(st, SG_ROOT_ID, "x", SG_TYPE_FILE, "data", &a);
	v = sg_store_version(st);
	assert_int_equal(sg_store_setxattr(st, NULL, a.id, "user.a", "1", 1, 0, now_ns()), 0);
	changes(st, v, 0, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.v[0].nxattrs, 1);
	assert_string_equal(r.v[0].xattr0, "user.a=1");
	rows_free(&r);

	/* a peer's change carries the complete set: it replaces ours */
	c = file_change("x", "data", sg_store_hlc(st) + 1, NODE_B, 1);
	c.xattrs = set;
	c.nxattrs = 1;
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_getxattr(st, a.id, "user.a", &val, &len), -ENODATA);
	assert_int_equal(sg_store_getxattr(st, a.id, "user.b", &val, &len), 0);
	assert_int_equal(len, 1);
	assert_memory_equal(val, "2", 1);
	free(val);

	/* only user.* crosses between nodes */
	c = file_change("x", "data", sg_store_hlc(st) + 1, NODE_B, 2);
	c.xattrs = (const sg_xattr[]){{"trusted.x", "1", 1}};
	c.nxattrs = 1;
	assert_int_equal(sg_store_apply(st, &c), -EINVAL);
}

/* Replay every row of `src`'s log after `after` on `dst`, as a peer would. */
struct replay {
	sg_store *dst;
	int fails;
};

static int replay_cb(void *ctx, const sg_change *c)
{
	struct replay *r = ctx;
	int rc = sg_store_apply(r->dst, c);

	if (rc != 0 && rc != -ESTALE)
		r->fails++;
	return 0;
}

static void test_rename_bases(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st, *peer;
	sg_store_opts so = {0};
	char dir[] = "/tmp/sigil-peer-XXXXXX";
	struct replay rp = {0};
	struct conflicts l;
	struct rows r;
	sg_attr a, b, x;
	sg_change c;
	uint64_t v;
	const struct row *tomb, *moved;

	assert_non_null(mkdtemp(dir));
	so.dir = dir;
	so.node_id = NODE_C;
	so.sync_delay_ns = -1;
	assert_int_equal(sg_store_open(&peer, &so), 0);
	rp.dst = peer;

	/* both files' versions were made on another node, C, and both nodes hold them */
	c = file_change("a.conf", "aaa", sg_store_hlc(st) + 1, NODE_C, 1);
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_apply(peer, &c), 0);
	c = file_change("b.conf", "bbb", sg_store_hlc(st) + 1, NODE_C, 2);
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_apply(peer, &c), 0);
	assert_int_equal(sg_store_resolve(st, "a.conf", &a), 0);
	assert_int_equal(sg_store_resolve(st, "b.conf", &b), 0);
	v = sg_store_version(st);

	/* a save by rename over an existing file, as sed -i does */
	assert_int_equal(
	    sg_store_rename(st, NULL, SG_ROOT_ID, "a.conf", SG_ROOT_ID, "b.conf", 0, now_ns()), 0);
	changes(st, v, 0, &r);
	tomb = row_by_path(&r, "a.conf");
	moved = row_by_path(&r, "b.conf");
	assert_non_null(tomb);
	assert_non_null(moved);
	assert_int_equal(tomb->type, SG_TYPE_TOMBSTONE);
	/* each path's base is the version the rename replaced there */
	assert_stamp_equal(&tomb->base, &a.stamp);
	assert_stamp_equal(&moved->base, &b.stamp);
	rows_free(&r);

	/* a run of local edits keeps the base of its first: a truncate then a
	 * write still says it was made on top of C's version */
	assert_int_equal(sg_store_resolve(st, "b.conf", &x), 0);
	v = sg_store_version(st);
	x.size = 0;
	assert_int_equal(sg_store_setattr(st, NULL, x.id, SG_SET_SIZE, &x, now_ns(), NULL), 0);
	assert_int_equal(sg_store_write(st, NULL, x.id, "new", 3, now_ns(), now_ns(), NULL), 0);
	changes(st, v, 0, &r);
	assert_int_equal(r.n, 1);
	assert_stamp_equal(&r.v[0].base, &b.stamp);
	rows_free(&r);

	/* C, holding exactly the versions these changes replaced, records no conflict */
	assert_int_equal(sg_store_changes_after(st, 0, 0, replay_cb, &rp), 0);
	assert_int_equal(rp.fails, 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_conflicts(peer, 0, 0, conflict_cb, &l), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(sg_store_resolve(peer, "a.conf", &x), -ENOENT);
	assert_int_equal(sg_store_resolve(peer, "b.conf", &x), 0);
	assert_content(peer, x.id, "new", 3);

	/* but had C saved b.conf meanwhile, C's save lost to one that never saw it */
	c = file_change("b.conf", "c's own", sg_store_hlc(peer) + 1, NODE_C, 3);
	assert_int_equal(sg_store_resolve(peer, "b.conf", &x), 0);
	c.base = x.stamp;
	assert_int_equal(sg_store_apply(peer, &c), 0); /* stands for C's local save */
	c = file_change("b.conf", "later elsewhere", sg_store_hlc(peer) + 100, NODE_B, 9);
	c.base = b.stamp; /* its writer last saw C's first version */
	assert_int_equal(sg_store_apply(peer, &c), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_conflicts(peer, 0, 0, conflict_cb, &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.path, "b.conf");
	assert_int_equal(l.len, 7);
	assert_memory_equal(l.data, "c's own", 7);

	sg_store_close(peer);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_stale_child_of_deleted_dir(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	sg_attr d, x;
	sg_change c;
	struct rows r;
	uint64_t before_delete, v;

	mk(st, SG_ROOT_ID, "etc", SG_TYPE_DIR, NULL, &d);
	mk(st, d.id, "app.conf", SG_TYPE_FILE, "x", NULL);
	before_delete = sg_store_hlc(st);
	assert_int_equal(sg_store_remove(st, NULL, d.id, "app.conf", 0, now_ns()), 0);
	assert_int_equal(sg_store_remove(st, NULL, SG_ROOT_ID, "etc", 1, now_ns()), 0);
	v = sg_store_version(st);

	/* a peer's change made before the directory was deleted went with it */
	c = file_change("etc/late.conf", "old", before_delete, NODE_B, 1);
	assert_int_equal(sg_store_apply(st, &c), -ESTALE);
	assert_int_equal(sg_store_resolve(st, "etc", &x), -ENOENT);
	changes(st, v - 1, 0, &r);
	assert_non_null(row_by_path(&r, "etc"));
	assert_int_equal(row_by_path(&r, "etc")->type, SG_TYPE_TOMBSTONE);
	rows_free(&r);

	/* one made after the delete brings the directory back for it */
	c = file_change("etc/new.conf", "new", sg_store_hlc(st) + 1, NODE_B, 2);
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_resolve(st, "etc/new.conf", &x), 0);
	assert_content(st, x.id, "new", 3);
}

/* A file made where a deleted tree was: the tombstones below the deleted
 * directory's go with it (a tombstone of a directory keeps its children's
 * below it, two levels here), and the log still lists cleanly. Found by the
 * mirror: `mkdir -p tc/sub; touch tc/sub/f; rm -r tc; echo > tc` left f's
 * tombstone under a dropped parent, and sg_store_changes_after() failed
 * with -ENOENT from the start of the log. */
static void test_file_over_deleted_tree(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	sg_attr tc, sub, x;
	struct rows r;

	mk(st, SG_ROOT_ID, "tc", SG_TYPE_DIR, NULL, &tc);
	mk(st, tc.id, "sub", SG_TYPE_DIR, NULL, &sub);
	mk(st, sub.id, "f", SG_TYPE_FILE, "x", NULL);
	assert_int_equal(sg_store_remove(st, NULL, sub.id, "f", 0, now_ns()), 0);
	assert_int_equal(sg_store_remove(st, NULL, tc.id, "sub", 1, now_ns()), 0);
	assert_int_equal(sg_store_remove(st, NULL, SG_ROOT_ID, "tc", 1, now_ns()), 0);
	mk(st, SG_ROOT_ID, "tc", SG_TYPE_FILE, "\n", &x);
	changes(st, 0, 0, &r); /* asserts the listing succeeds */
	assert_non_null(row_by_path(&r, "tc"));
	assert_int_equal(row_by_path(&r, "tc")->type, SG_TYPE_FILE);
	assert_null(row_by_path(&r, "tc/sub"));
	assert_null(row_by_path(&r, "tc/sub/f"));
	rows_free(&r);

	/* the same by a peer's change, and by a rename over the tombstone */
	mk(st, SG_ROOT_ID, "p", SG_TYPE_DIR, NULL, &tc);
	mk(st, tc.id, "sub", SG_TYPE_DIR, NULL, &sub);
	mk(st, sub.id, "f", SG_TYPE_FILE, "x", NULL);
	assert_int_equal(sg_store_remove(st, NULL, sub.id, "f", 0, now_ns()), 0);
	assert_int_equal(sg_store_remove(st, NULL, tc.id, "sub", 1, now_ns()), 0);
	assert_int_equal(sg_store_remove(st, NULL, SG_ROOT_ID, "p", 1, now_ns()), 0);
	{
		sg_change c = file_change("p", "peer", sg_store_hlc(st) + 1, NODE_B, 1);
		assert_int_equal(sg_store_apply(st, &c), 0);
	}
	changes(st, 0, 0, &r);
	assert_null(row_by_path(&r, "p/sub/f"));
	rows_free(&r);
}

/* A file open on this node while a peer's version arrives: its save, made of
 * what it loaded before, replaces the peer's version without having seen it.
 * Both ends keep the peer's version as a conflict. */
static void test_write_unseen(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st, *peer;
	sg_store_opts so = {0};
	char dir[] = "/tmp/sigil-unseen-XXXXXX";
	struct conflicts l = {0};
	struct rows r;
	sg_attr a, seen, mine, cur;
	sg_change c;

	mk(st, SG_ROOT_ID, "f", SG_TYPE_FILE, "v1", &a);
	assert_int_equal(sg_store_getattr(st, a.id, &seen), 0);

	/* B saw v1 and saved over it */
	c = file_change("f", "from b", sg_store_hlc(st) + 1, NODE_B, 1);
	c.base = seen.stamp;
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_conflicts(st, 0, 0, conflict_cb, &l), 0);
	assert_int_equal(l.n, 0); /* B saw ours: no conflict */

	/* the local save of content loaded from v1 */
	assert_int_equal(sg_store_write_seen(st, &seen, a.id, "mine", 4, now_ns(), now_ns(), &mine),
	                 0);
	assert_content(st, a.id, "mine", 4);
	assert_int_equal(sg_store_conflicts(st, 0, 0, conflict_cb, &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.path, "f");
	assert_int_equal(l.loser.origin, NODE_B);
	assert_int_equal(l.len, 6);
	assert_memory_equal(l.data, "from b", 6);
	assert_stamp_equal(&l.winner, &mine.stamp);
	/* based on what it saw (v1 was ours: v1's own base), not on B's version */
	assert_stamp_equal(&mine.base, &seen.base);
	assert_true(mine.base.hlc < c.stamp.hlc);

	/* a save of what is held now records nothing more */
	assert_int_equal(sg_store_getattr(st, a.id, &cur), 0);
	assert_int_equal(sg_store_write_seen(st, &cur, a.id, "again", 5, now_ns(), now_ns(), NULL),
	                 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_conflicts(st, 0, 0, conflict_cb, &l), 0);
	assert_int_equal(l.n, 1);

	/* on B, which holds its own version, our first save (as the log lists it
	 * there would be the latest: here its base, older than B's) loses B's
	 * version to a change that never saw it: B records it too */
	assert_non_null(mkdtemp(dir));
	so.dir = dir;
	so.node_id = NODE_B;
	so.sync_delay_ns = -1;
	assert_int_equal(sg_store_open(&peer, &so), 0);
	{
		sg_change v1 =
		    file_change("f", "v1", seen.stamp.hlc, seen.stamp.origin, seen.stamp.seq);
		assert_int_equal(sg_store_apply(peer, &v1), 0);
		assert_int_equal(sg_store_apply(peer, &c), 0);
	}
	changes(st, seen.version, 0, &r);
	assert_non_null(row_by_path(&r, "f"));
	{
		sg_change ours = file_change("f", "again", row_by_path(&r, "f")->stamp.hlc, NODE_A,
		                             row_by_path(&r, "f")->stamp.seq);
		ours.base = row_by_path(&r, "f")->base;
		assert_int_equal(sg_store_apply(peer, &ours), 0);
	}
	rows_free(&r);
	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_conflicts(peer, 0, 0, conflict_cb, &l), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.loser.origin, NODE_B);
	sg_store_close(peer);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A peer's rm -r of a directory races a write into it on another node: the
 * delete takes what it covers (older entries), the newer write survives with
 * its directory, and both orders of arrival end in the same tree. */
static void race_apply(sg_store *st, int delete_last)
{
	const uint64_t t = sg_store_hlc(st) + 1000;
	sg_change c[] = {
	    typed_change("d", SG_TYPE_DIR, t + 1, NODE_C, 1),
	    file_change("d/old", "old", t + 2, NODE_C, 2),
	    typed_change("d/sub", SG_TYPE_DIR, t + 3, NODE_C, 3),
	    file_change("d/sub/x", "x", t + 4, NODE_C, 4),
	    typed_change("d/keep", SG_TYPE_DIR, t + 5, NODE_C, 5),
	    /* B, not having seen the delete: */
	    file_change("d/new", "new", t + 30, NODE_B, 1),
	    file_change("d/keep/y", "y", t + 31, NODE_B, 2),
	    /* C's rm -r of d, at t + 20 */
	    typed_change("d", SG_TYPE_TOMBSTONE, t + 20, NODE_C, 6),
	};
	const size_t n = sizeof(c) / sizeof(c[0]);

	c[2].mode = c[4].mode = 0700;
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(sg_store_apply(st, &c[i]), 0);
	if (delete_last) {
		assert_int_equal(sg_store_apply(st, &c[5]), 0);
		assert_int_equal(sg_store_apply(st, &c[6]), 0);
		assert_int_equal(sg_store_apply(st, &c[7]), 0);
		/* delivered again: nothing changes */
		uint64_t v = sg_store_version(st);
		assert_int_equal(sg_store_apply(st, &c[7]), 0);
		assert_int_equal(sg_store_version(st), v);
	} else {
		assert_int_equal(sg_store_apply(st, &c[7]), 0);
		assert_int_equal(sg_store_apply(st, &c[5]), 0);
		assert_int_equal(sg_store_apply(st, &c[6]), 0);
	}
	(void)n;
}

static void assert_race_result(sg_store *st)
{
	sg_attr a;

	assert_int_equal(sg_store_resolve(st, "d", &a), 0);
	assert_int_equal(a.type, SG_TYPE_DIR);
	assert_int_equal(a.mode, 0755); /* a placeholder: its own attributes went */
	assert_int_equal(sg_store_resolve(st, "d/new", &a), 0);
	assert_content(st, a.id, "new", 3);
	assert_int_equal(sg_store_resolve(st, "d/keep", &a), 0);
	assert_int_equal(a.mode, 0755);
	assert_int_equal(sg_store_resolve(st, "d/keep/y", &a), 0);
	assert_content(st, a.id, "y", 1);
	assert_int_equal(sg_store_resolve(st, "d/old", &a), -ENOENT);
	assert_int_equal(sg_store_resolve(st, "d/sub", &a), -ENOENT);
	assert_int_equal(sg_store_resolve(st, "d/sub/x", &a), -ENOENT);
	assert_int_equal(sg_store_check(st, print_problem, NULL, NULL), 0);
}

static void test_delete_races_newer_write(void **state)
{
	struct fx *f = *state;
	sg_store *other;
	sg_store_opts so = {0};
	char dir[] = "/tmp/sigil-race-XXXXXX";

	/* here: the newer writes first, then the delete */
	race_apply(f->st, 1);
	assert_race_result(f->st);

	/* another node: the delete first, then the newer writes */
	assert_non_null(mkdtemp(dir));
	so.dir = dir;
	so.node_id = NODE_A;
	so.sync_delay_ns = -1;
	assert_int_equal(sg_store_open(&other, &so), 0);
	race_apply(other, 0);
	assert_race_result(other);
	sg_store_close(other);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- sg_store_put: path-based local changes (a restore) -------------------- */

static sg_change put_change(const char *path, uint32_t type, const char *data)
{
	sg_change c;

	memset(&c, 0, sizeof(c));
	c.path = path;
	c.type = type;
	c.mode = type == SG_TYPE_FILE ? 0640 : 0755;
	c.uid = 12;
	c.gid = 34;
	c.mtime_ns = 1000000000LL;
	c.data = data;
	c.len = data ? strlen(data) : 0;
	/* ignored: the store stamps a put itself */
	c.stamp = (sg_stamp){1, NODE_C, 99};
	c.base = (sg_stamp){2, NODE_C, 98};
	return c;
}

/* The change just put is the newest row of the log, stamped here as local. */
static void assert_put_row(sg_store *st, uint64_t before, const char *path, struct row *out)
{
	struct rows r;
	const struct row *w;

	assert_int_equal(sg_store_version(st), before + 1);
	changes(st, before, 0, &r);
	assert_int_equal(r.n, 1);
	w = row_by_path(&r, path);
	assert_non_null(w);
	assert_int_equal(w->version, before + 1);
	assert_int_equal(w->stamp.origin, NODE_A);
	assert_int_equal(w->stamp.hlc, sg_store_hlc(st));
	if (out) {
		*out = *w;
		out->path = NULL;
		out->data = NULL;
	}
	rows_free(&r);
}

static int count_conflicts(sg_store *st)
{
	struct conflicts l;

	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_conflicts(st, 0, 0, conflict_cb, &l), 0);
	return (int)l.n;
}

static void test_put(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	sg_xattr xa[2] = {{"user.a", "1", 1}, {"user.b", "22", 2}};
	sg_change c;
	sg_attr a, x;
	struct row w;
	uint64_t v, seq;
	void *val;
	size_t len;

	/* creates: a directory, then a file in it, each one local change */
	v = sg_store_version(st);
	c = put_change("etc", SG_TYPE_DIR, NULL);
	assert_int_equal(sg_store_put(st, &c), 0);
	assert_put_row(st, v, "etc", &w);
	assert_int_equal(w.type, SG_TYPE_DIR);
	assert_int_equal(w.mode, 0755);
	seq = w.stamp.seq;
	assert_int_equal(w.base.hlc, 0);
	assert_int_equal(w.base.origin, 0);

	v = sg_store_version(st);
	c = put_change("etc/app.conf", SG_TYPE_FILE, "hello");
	c.xattrs = xa;
	c.nxattrs = 2;
	assert_int_equal(sg_store_put(st, &c), 0);
	assert_put_row(st, v, "etc/app.conf", &w);
	assert_int_equal(w.stamp.seq, seq + 1);
	assert_int_equal(w.nxattrs, 2);
	assert_int_equal(sg_store_resolve(st, "etc/app.conf", &a), 0);
	assert_int_equal(a.type, SG_TYPE_FILE);
	assert_int_equal(a.mode, 0640);
	assert_int_equal(a.uid, 12);
	assert_int_equal(a.gid, 34);
	assert_int_equal(a.mtime_ns, 1000000000LL);
	assert_content(st, a.id, "hello", 5);
	assert_int_equal(sg_store_getxattr(st, a.id, "user.b", &val, &len), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(val, "22", 2);
	free(val);

	/* idempotent: the same change again, or with another mtime, is no version */
	v = sg_store_version(st);
	assert_int_equal(sg_store_put(st, &c), 0);
	c.mtime_ns = 5;
	xa[0] = (sg_xattr){"user.b", "22", 2}; /* the same set in another order */
	xa[1] = (sg_xattr){"user.a", "1", 1};
	assert_int_equal(sg_store_put(st, &c), 0);
	c = put_change("etc", SG_TYPE_DIR, NULL);
	assert_int_equal(sg_store_put(st, &c), 0);
	assert_int_equal(sg_store_version(st), v);
	assert_int_equal(sg_store_resolve(st, "etc/app.conf", &x), 0);
	assert_int_equal(x.version, a.version);
	assert_int_equal(x.mtime_ns, 1000000000LL);

	/* updates in place: content, then mode only, then the xattr set */
	c = put_change("etc/app.conf", SG_TYPE_FILE, "hello, world");
	c.xattrs = xa;
	c.nxattrs = 2;
	assert_int_equal(sg_store_put(st, &c), 0);
	assert_put_row(st, v, "etc/app.conf", NULL);
	assert_int_equal(sg_store_resolve(st, "etc/app.conf", &x), 0);
	assert_int_equal(x.id, a.id);
	assert_content(st, x.id, "hello, world", 12);
	v = sg_store_version(st);
	c.mode = 0600;
	assert_int_equal(sg_store_put(st, &c), 0);
	assert_put_row(st, v, "etc/app.conf", NULL);
	v = sg_store_version(st);
	c.nxattrs = 1; /* user.b only */
	assert_int_equal(sg_store_put(st, &c), 0);
	assert_put_row(st, v, "etc/app.conf", NULL);
	assert_int_equal(sg_store_getxattr(st, a.id, "user.a", &val, &len), -ENODATA);
	assert_int_equal(sg_store_getxattr(st, a.id, "user.b", &val, &len), 0);
	free(val);

	/* a type change replaces the entry: file -> symlink -> directory -> file */
	v = sg_store_version(st);
	c = put_change("etc/app.conf", SG_TYPE_SYMLINK, "../target");
	assert_int_equal(sg_store_put(st, &c), 0);
	assert_put_row(st, v, "etc/app.conf", NULL);
	assert_int_equal(sg_store_resolve(st, "etc/app.conf", &x), 0);
	assert_int_equal(x.type, SG_TYPE_SYMLINK);
	assert_true(x.id != a.id);
	assert_content(st, x.id, "../target", 9);
	assert_int_equal(sg_store_getattr(st, a.id, &x), -ENOENT);
	c = put_change("etc/app.conf", SG_TYPE_DIR, NULL);
	assert_int_equal(sg_store_put(st, &c), 0);
	c = put_change("etc/app.conf/inner", SG_TYPE_FILE, "in");
	assert_int_equal(sg_store_put(st, &c), 0);
	v = sg_store_version(st);
	c = put_change("etc/app.conf", SG_TYPE_FILE, "flat again");
	assert_int_equal(sg_store_put(st, &c), 0);
	assert_put_row(st, v, "etc/app.conf", NULL);
	assert_int_equal(sg_store_resolve(st, "etc/app.conf/inner", &x), -ENOTDIR);
	assert_int_equal(sg_store_resolve(st, "etc/app.conf", &x), 0);
	assert_int_equal(x.type, SG_TYPE_FILE);
	assert_content(st, x.id, "flat again", 10);

	/* missing or bad parents: nothing is made */
	v = sg_store_version(st);
	c = put_change("nope/file", SG_TYPE_FILE, "x");
	assert_int_equal(sg_store_put(st, &c), -ENOENT);
	c = put_change("etc/app.conf/file", SG_TYPE_FILE, "x");
	assert_int_equal(sg_store_put(st, &c), -ENOTDIR);
	assert_int_equal(sg_store_version(st), v);
	assert_int_equal(sg_store_resolve(st, "nope", &x), -ENOENT);

	/* refused before the writer: what a peer could not take either */
	c = put_change("", SG_TYPE_FILE, "x");
	assert_int_equal(sg_store_put(st, &c), -EINVAL);
	c = put_change("etc/../x", SG_TYPE_FILE, "x");
	assert_int_equal(sg_store_put(st, &c), -EINVAL);
	c = put_change("/etc/x", SG_TYPE_FILE, "x");
	assert_int_equal(sg_store_put(st, &c), -EINVAL);
	c = put_change("etc/x", SG_TYPE_NONE, NULL);
	assert_int_equal(sg_store_put(st, &c), -EINVAL);
	c = put_change("etc/x", SG_TYPE_SYMLINK, NULL);
	assert_int_equal(sg_store_put(st, &c), -EINVAL);
	c = put_change("etc/x", SG_TYPE_SYMLINK, "a");
	c.data = "a\0b";
	c.len = 3;
	assert_int_equal(sg_store_put(st, &c), -EINVAL);
	c = put_change("etc/x", SG_TYPE_DIR, "data");
	assert_int_equal(sg_store_put(st, &c), -EINVAL);
	c = put_change("etc/x", SG_TYPE_FILE, "x");
	xa[0] = (sg_xattr){"user.a", "1", 1};
	xa[1] = (sg_xattr){"user.a", "2", 1};
	c.xattrs = xa;
	c.nxattrs = 2;
	assert_int_equal(sg_store_put(st, &c), -EINVAL);
	xa[1] = (sg_xattr){"user.", "2", 1};
	assert_int_equal(sg_store_put(st, &c), -EINVAL);
	xa[1] = (sg_xattr){"trusted.x", "2", 1};
	assert_int_equal(sg_store_put(st, &c), -EINVAL);
	assert_int_equal(sg_store_version(st), v);
	assert_int_equal(count_conflicts(st), 0);
}

static void test_put_tombstone_subtree(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	sg_store_stats s0, s1;
	sg_change c;
	sg_attr d, x;
	struct row w;
	uint64_t v;

	mk(st, SG_ROOT_ID, "t", SG_TYPE_DIR, NULL, &d);
	mk(st, d.id, "a", SG_TYPE_FILE, "a", NULL);
	mk(st, d.id, "sub", SG_TYPE_DIR, NULL, &x);
	mk(st, x.id, "b", SG_TYPE_FILE, "b", NULL);
	mk(st, x.id, "gone", SG_TYPE_FILE, "g", NULL);
	assert_int_equal(sg_store_remove(st, NULL, x.id, "gone", 0, now_ns()), 0);
	mk(st, SG_ROOT_ID, "keep", SG_TYPE_FILE, "k", NULL);
	assert_int_equal(sg_store_stats_get(st, &s0), 0);

	/* a tombstone deletes the directory and all below it: one change */
	v = sg_store_version(st);
	c = put_change("t", SG_TYPE_TOMBSTONE, NULL);
	assert_int_equal(sg_store_put(st, &c), 0);
	assert_put_row(st, v, "t", &w);
	assert_int_equal(w.type, SG_TYPE_TOMBSTONE);
	assert_stamp_equal(&w.base, &(sg_stamp){0, 0, 0}); /* only local versions were held */
	assert_int_equal(sg_store_resolve(st, "t", &x), -ENOENT);
	assert_int_equal(sg_store_resolve(st, "t/sub/b", &x), -ENOENT);
	assert_int_equal(sg_store_resolve(st, "keep", &x), 0);
	assert_int_equal(sg_store_stats_get(st, &s1), 0);
	assert_int_equal(s1.entries, s0.entries - 4); /* t, a, sub, b */
	assert_int_equal(s1.tombstones, 1);           /* t's; gone's went with the subtree */

	/* again, or where nothing ever was: nothing to delete, no version */
	v = sg_store_version(st);
	assert_int_equal(sg_store_put(st, &c), 0);
	c = put_change("never", SG_TYPE_TOMBSTONE, NULL);
	assert_int_equal(sg_store_put(st, &c), 0);
	assert_int_equal(sg_store_version(st), v);
	c = put_change("t/x", SG_TYPE_TOMBSTONE, NULL);
	assert_int_equal(sg_store_put(st, &c), -ENOENT);

	/* a put where a tombstone is brings the path back */
	c = put_change("t", SG_TYPE_DIR, NULL);
	assert_int_equal(sg_store_put(st, &c), 0);
	assert_put_row(st, v, "t", &w);
	assert_int_equal(w.type, SG_TYPE_DIR);
	c = put_change("t/a", SG_TYPE_FILE, "back");
	assert_int_equal(sg_store_put(st, &c), 0);
	assert_int_equal(sg_store_resolve(st, "t/a", &x), 0);
	assert_content(st, x.id, "back", 4);

	/* a file deleted by a put */
	v = sg_store_version(st);
	c = put_change("keep", SG_TYPE_TOMBSTONE, NULL);
	assert_int_equal(sg_store_put(st, &c), 0);
	assert_put_row(st, v, "keep", NULL);
	assert_int_equal(sg_store_resolve(st, "keep", &x), -ENOENT);
}

static void test_put_over_remote(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	uint64_t ahead = hlc_now() + (300ULL << 16); /* a peer's clock 300 ms ahead */
	sg_change c, r;
	sg_attr x;
	struct row w;
	uint64_t v;

	/* a peer's file, stamped ahead of this clock: the clock observes it */
	r = file_change("app.conf", "theirs", ahead, NODE_B, 7);
	assert_int_equal(sg_store_apply(st, &r), 0);
	assert_true(sg_store_hlc(st) >= ahead);

	/* a put wins over it at once, is newer, and names it as its base: no conflict */
	v = sg_store_version(st);
	c = put_change("app.conf", SG_TYPE_FILE, "restored");
	assert_int_equal(sg_store_put(st, &c), 0);
	assert_put_row(st, v, "app.conf", &w);
	assert_true(w.stamp.hlc > ahead);
	assert_stamp_equal(&w.base, &r.stamp);
	assert_int_equal(count_conflicts(st), 0);
	assert_int_equal(sg_store_resolve(st, "app.conf", &x), 0);
	assert_content(st, x.id, "restored", 8);

	/* the peer's old change, redelivered, now loses */
	assert_int_equal(sg_store_apply(st, &r), -ESTALE);

	/* a peer's tombstone ahead of the clock; a put brings the path back over it */
	r = typed_change("dead", SG_TYPE_TOMBSTONE, ahead + 5, NODE_B, 8);
	assert_int_equal(sg_store_apply(st, &r), 0);
	v = sg_store_version(st);
	c = put_change("dead", SG_TYPE_FILE, "alive");
	assert_int_equal(sg_store_put(st, &c), 0);
	assert_put_row(st, v, "dead", &w);
	assert_true(w.stamp.hlc > ahead + 5);
	assert_stamp_equal(&w.base, &r.stamp);

	/* and a peer's directory: a put tombstone deletes it with what is below */
	r = typed_change("pd", SG_TYPE_DIR, ahead + 6, NODE_B, 9);
	assert_int_equal(sg_store_apply(st, &r), 0);
	r = file_change("pd/f", "x", ahead + 7, NODE_B, 10);
	assert_int_equal(sg_store_apply(st, &r), 0);
	c = put_change("pd", SG_TYPE_TOMBSTONE, NULL);
	assert_int_equal(sg_store_put(st, &c), 0);
	assert_int_equal(sg_store_resolve(st, "pd", &x), -ENOENT);
	assert_int_equal(count_conflicts(st), 0);
}

static void test_put_many(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	struct obs *o = calloc(1, sizeof(*o));
	sg_change cs[5];
	int rcs[5];
	sg_attr x;
	sg_note n;
	uint64_t v;

	assert_non_null(o);
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->cv, NULL);
	sg_store_set_observer(st, obs_cb, o);

	/* parents first, in path order; a bad one fails alone */
	v = sg_store_version(st);
	cs[0] = put_change("d", SG_TYPE_DIR, NULL);
	cs[1] = put_change("d/e", SG_TYPE_DIR, NULL);
	cs[2] = put_change("d/e/f", SG_TYPE_FILE, "f");
	cs[3] = put_change("x/y", SG_TYPE_FILE, "orphan");
	cs[4] = put_change("d/l", SG_TYPE_SYMLINK, "e/f");
	assert_int_equal(sg_store_put_many(st, cs, 5, rcs), 0);
	assert_int_equal(rcs[0], 0);
	assert_int_equal(rcs[1], 0);
	assert_int_equal(rcs[2], 0);
	assert_int_equal(rcs[3], -ENOENT);
	assert_int_equal(rcs[4], 0);
	assert_int_equal(sg_store_version(st), v + 4);
	assert_int_equal(sg_store_resolve(st, "d/e/f", &x), 0);
	assert_content(st, x.id, "f", 1);

	/* the observer hears of them as puts: local, but not the kernel's own */
	assert_true(obs_wait(o, x.id, x.version, &n));
	assert_int_equal(n.local, SG_NOTE_PUT);
	assert_string_equal(n.name, "f");
	assert_int_equal(n.type, SG_TYPE_FILE);

	/* all again: nothing changes */
	assert_int_equal(sg_store_put_many(st, cs, 5, rcs), 0);
	assert_int_equal(rcs[2], 0);
	assert_int_equal(rcs[3], -ENOENT);
	assert_int_equal(sg_store_version(st), v + 4);

	/* empty and all-refused batches */
	assert_int_equal(sg_store_put_many(st, cs, 0, rcs), 0);
	cs[0] = put_change("", SG_TYPE_DIR, NULL);
	assert_int_equal(sg_store_put_many(st, cs, 1, rcs), 0);
	assert_int_equal(rcs[0], -EINVAL);

	sg_store_close(st);
	f->st = NULL;
	pthread_cond_destroy(&o->cv);
	pthread_mutex_destroy(&o->mu);
	free(o);
}

/* ---- tombstone purge, the zombie guard, snapshot reconciliation -------------- */

static sg_store_stats stats_of(sg_store *st)
{
	sg_store_stats s;

	assert_int_equal(sg_store_stats_get(st, &s), 0);
	return s;
}

static sg_horizon horizon_of(sg_store *st)
{
	sg_horizon h;

	assert_int_equal(sg_store_purge_horizon(st, &h), 0);
	return h;
}

/* The tombstone row of `path` in the log (its version and stamp), or NULL. */
static int tomb_row(sg_store *st, const char *path, struct row *out)
{
	struct rows r;
	const struct row *w;
	int found = 0;

	changes(st, 0, 0, &r);
	w = row_by_path(&r, path);
	if (w && w->type == SG_TYPE_TOMBSTONE) {
		*out = *w;
		out->path = NULL;
		out->data = NULL;
		found = 1;
	}
	rows_free(&r);
	return found;
}

static void test_purge(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	struct row ta, tx, td, scratch;
	sg_horizon h;
	sg_attr d, x;
	struct rows r;
	uint64_t n = 99, v;
	int64_t far = now_ns() + 3600LL * 1000000000LL;

	h = horizon_of(st);
	assert_int_equal(h.version, 0);
	assert_int_equal(h.stamp.hlc, 0);
	mk(st, SG_ROOT_ID, "a", SG_TYPE_FILE, "a", NULL);
	mk(st, SG_ROOT_ID, "b", SG_TYPE_FILE, "b", NULL);
	mk(st, SG_ROOT_ID, "d", SG_TYPE_DIR, NULL, &d);
	mk(st, d.id, "x", SG_TYPE_FILE, "x", NULL);
	assert_int_equal(sg_store_remove(st, NULL, SG_ROOT_ID, "a", 0, now_ns()), 0);
	assert_int_equal(sg_store_remove(st, NULL, d.id, "x", 0, now_ns()), 0);
	usleep(3000); /* the next stamp's milliseconds differ */
	assert_int_equal(sg_store_remove(st, NULL, SG_ROOT_ID, "d", 1, now_ns()), 0);
	assert_true(tomb_row(st, "a", &ta));
	assert_true(tomb_row(st, "d/x", &tx));
	assert_true(tomb_row(st, "d", &td));
	assert_int_equal(stats_of(st).tombstones, 3);
	v = sg_store_version(st);

	/* too young for the grace, or past what the peers have: nothing goes */
	assert_int_equal(sg_store_purge(st, v, now_ns() - 3600LL * 1000000000LL, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(sg_store_purge(st, ta.version - 1, far, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(sg_store_version(st), v);
	assert_int_equal(stats_of(st).tombstones, 3);

	/* up to a's version: a goes; the horizon says so */
	assert_int_equal(sg_store_purge(st, ta.version, far, &n), 0);
	assert_int_equal(n, 1);
	h = horizon_of(st);
	assert_int_equal(h.version, ta.version);
	assert_stamp_equal(&h.stamp, &ta.stamp);
	assert_int_equal(stats_of(st).tombstones, 2);
	assert_int_equal(stats_of(st).purged, 1);

	/* d/x is old enough, d (a later millisecond) is not: d stays, without its child */
	assert_int_equal(sg_store_purge(st, v, (int64_t)(td.stamp.hlc >> 16) * 1000000, &n), 0);
	assert_int_equal(n, 1);
	assert_false(tomb_row(st, "d/x", &scratch));
	assert_true(tomb_row(st, "d", &td));
	assert_int_equal(horizon_of(st).version, tx.version);

	/* the rest; the log keeps the live entries only, and the version does not move */
	assert_int_equal(sg_store_purge(st, v, far, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(stats_of(st).tombstones, 0);
	assert_int_equal(stats_of(st).purged, 3);
	h = horizon_of(st);
	assert_int_equal(h.version, td.version);
	assert_stamp_equal(&h.stamp, &td.stamp);
	assert_int_equal(sg_store_version(st), v);
	changes(st, 0, 0, &r);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.v[0].path, "b");
	rows_free(&r);

	/* nothing left to purge: no change; and the names are free again */
	assert_int_equal(sg_store_purge(st, v, far, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(sg_store_resolve(st, "d", &x), -ENOENT);
	mk(st, SG_ROOT_ID, "d", SG_TYPE_DIR, NULL, &d);
	mk(st, d.id, "x", SG_TYPE_FILE, "again", NULL);
	mk(st, SG_ROOT_ID, "a", SG_TYPE_FILE, "again", NULL);
	/* a purge's horizon never goes down */
	assert_int_equal(sg_store_purge(st, 1, far, &n), 0);
	assert_int_equal(horizon_of(st).version, td.version);
}

static void test_purge_many(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	sg_attr d, sub;
	uint64_t n = 0;
	char name[32];

	/* more tombstones than one purge transaction looks at, some in a tree */
	mk(st, SG_ROOT_ID, "d", SG_TYPE_DIR, NULL, &d);
	mk(st, d.id, "sub", SG_TYPE_DIR, NULL, &sub);
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "f%04d", i);
		mk(st, i % 2 ? sub.id : SG_ROOT_ID, name, SG_TYPE_FILE, "x", NULL);
		assert_int_equal(
		    sg_store_remove(st, NULL, i % 2 ? sub.id : SG_ROOT_ID, name, 0, now_ns()), 0);
	}
	assert_int_equal(sg_store_remove(st, NULL, d.id, "sub", 1, now_ns()), 0);
	assert_int_equal(stats_of(st).tombstones, 5001);
	assert_int_equal(sg_store_purge(st, sg_store_version(st), now_ns() + 1000000000LL, &n), 0);
	assert_int_equal(n, 5001);
	assert_int_equal(stats_of(st).tombstones, 0);
	assert_int_equal(sg_store_resolve(st, "d", &d), 0);
	assert_int_equal(d.nlink, 2);
}

/* A peer's directory "zd" (stamped h0 + 1) with a child "in" (h0 + 2), then
 * its delete (h0 + 11): NODE_B's seqs seq to seq + 2. */
static void apply_deleted_dir(sg_store *st, uint64_t h0, uint64_t seq)
{
	sg_change c = typed_change("zd", SG_TYPE_DIR, h0 + 1, NODE_B, seq);

	assert_int_equal(sg_store_apply(st, &c), 0);
	c = file_change("zd/in", "in", h0 + 2, NODE_B, seq + 1);
	assert_int_equal(sg_store_apply(st, &c), 0);
	c = typed_change("zd", SG_TYPE_TOMBSTONE, h0 + 11, NODE_B, seq + 2);
	assert_int_equal(sg_store_apply(st, &c), 0);
}

static void test_purge_guard(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	uint64_t h0 = hlc_now(), n;
	sg_change c;
	sg_attr x;

	/* a peer's file and its delete; the delete is purged here */
	c = file_change("z", "z", h0, NODE_B, 1);
	assert_int_equal(sg_store_apply(st, &c), 0);
	c = typed_change("z", SG_TYPE_TOMBSTONE, h0 + 10, NODE_B, 2);
	assert_int_equal(sg_store_apply(st, &c), 0);
	apply_deleted_dir(st, h0, 3);
	assert_int_equal(sg_store_purge(st, sg_store_version(st), now_ns() + 1000000000LL, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(horizon_of(st).stamp.hlc, h0 + 11);

	/* the file, redelivered by a peer that missed the delete, does not come back;
	 * nor does the directory's child (the directory is not remade for it) */
	c = file_change("z", "z", h0, NODE_B, 1);
	assert_int_equal(sg_store_apply(st, &c), -ESTALE);
	c = file_change("zd/in", "in", h0 + 2, NODE_B, 4);
	assert_int_equal(sg_store_apply(st, &c), -ESTALE);
	assert_int_equal(sg_store_resolve(st, "z", &x), -ENOENT);
	assert_int_equal(sg_store_resolve(st, "zd", &x), -ENOENT);

	/* what this store never saw is news, however old: a node's writes while away */
	c = file_change("w", "w", h0 + 5, NODE_C, 1);
	assert_int_equal(sg_store_apply(st, &c), 0);
	c = file_change("z", "z from c", h0 + 6, NODE_C, 2);
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_resolve(st, "z", &x), 0);
	/* a change made after the horizon is news too; placeholders are not refused */
	c = file_change("zd/late", "late", h0 + 20, NODE_B, 6);
	assert_int_equal(sg_store_apply(st, &c), 0);
	c = typed_change("ph", SG_TYPE_DIR, 0, 0, 0);
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_resolve(st, "ph", &x), 0);
}

/* The store's fault seam (src/lmdb/store_i.h): the writer's own definition
 * is weak; this one makes the undo of a failed flat op fail when asked. */
int sg_writer_undo_fault(void);
static int undo_fault;
int sg_writer_undo_fault(void)
{
	return undo_fault;
}

/* A flat op fails and its undo fails too: the store refuses changes from
 * then on and never commits the half-done op; a reopen brings back every
 * change it acknowledged before (from the journal). */
static void test_undo_fails(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	uint64_t h0 = hlc_now(), n;
	sg_store_stats ss;
	sg_change c;
	sg_attr x;
	int rc;

	/* a directory purged here: a late child of it is refused (-ESTALE)
	 * after the apply has remade the directory as its placeholder parent,
	 * which the undo then takes away (test_purge_guard) */
	apply_deleted_dir(st, h0, 1);
	assert_int_equal(sg_store_purge(st, sg_store_version(st), now_ns() + 1000000000LL, &n), 0);
	assert_true(n >= 1);
	/* without the fault, the same apply is refused and leaves nothing */
	c = file_change("zd/in", "in", h0 + 2, NODE_B, 2);
	assert_int_equal(sg_store_apply(st, &c), -ESTALE);
	assert_int_equal(sg_store_resolve(st, "zd", &x), -ENOENT);
	mk(st, SG_ROOT_ID, "keep", SG_TYPE_FILE, "kept", NULL);

	undo_fault = 1;
	rc = sg_store_apply(st, &c);
	undo_fault = 0; /* before any assert: a failed one leaves the test here */
	assert_int_equal(rc, -EIO);
	assert_true(sg_store_create(st, NULL, SG_ROOT_ID, "refused", SG_TYPE_FILE, 0644, 0, 0, "r",
	                            1, now_ns(), &x) < 0);
	/* its view lost what the open transaction held: it reads nothing either */
	assert_int_equal(sg_store_stats_get(st, &ss), 0);
	assert_int_equal(ss.refusing, 1);
	assert_int_equal(sg_store_resolve(st, "keep", &x), -EIO);
	assert_int_equal(sg_store_resolve(st, "zd", &x), -EIO);

	sg_store_close(st);
	assert_int_equal(sg_store_open(&f->st, &f->opts), 0);
	st = f->st;
	assert_int_equal(sg_store_stats_get(st, &ss), 0);
	assert_int_equal(ss.refusing, 0);
	assert_int_equal(sg_store_resolve(st, "keep", &x), 0);
	assert_content(st, x.id, "kept", 4);
	assert_int_equal(sg_store_resolve(st, "zd", &x), -ENOENT);
	assert_int_equal(sg_store_resolve(st, "refused", &x), -ENOENT);
	assert_int_equal(sg_store_check(st, print_problem, NULL, NULL), 0);
	mk(st, SG_ROOT_ID, "after", SG_TYPE_FILE, "a", NULL);
}

static int journal_fd(const char *dir); /* with the journal tests, below */

/* The other seam: a checkpoint's commit fails when asked. */
int sg_writer_commit_fault(void);
static int commit_fault;
int sg_writer_commit_fault(void)
{
	return commit_fault;
}

/*
 * An acknowledged change whose commit fails is lost. sg_store_settle() (the
 * mirror's barrier before a diff or a restore) reports that, and leaves it to
 * the next sg_store_sync(): an application's fsync must still hear of it,
 * once. With the journal, its write fails too (/dev/full), so that the
 * change's only way to disk is the failing checkpoint.
 */
static void test_settle_keeps_lost_commit(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	sg_store_stats s0, s1;
	int jfd = -1, saved = -1, full, rc;
	sg_attr x;

	/* checkpointed: the open transaction then holds nothing durable (a
	 * failed checkpoint of journaled changes breaks the store instead) */
	mk(st, SG_ROOT_ID, "kept", SG_TYPE_FILE, "k", NULL);
	assert_int_equal(sg_store_checkpoint(st), 0);
	assert_int_equal(sg_store_stats_get(st, &s0), 0);
	if (!no_journal) {
		assert_true((jfd = journal_fd(f->dir)) >= 0);
		assert_true((saved = dup(jfd)) >= 0);
		assert_true((full = open("/dev/full", O_WRONLY | O_CLOEXEC)) >= 0);
		assert_int_equal(dup2(full, jfd), jfd);
		close(full);
	}
	commit_fault = 1;
	mk(st, SG_ROOT_ID, "lost", SG_TYPE_FILE, "l", NULL);
	assert_int_equal(sg_store_stats_get(st, &s1), 0);
	assert_int_equal(s1.deferred - s0.deferred, 1); /* acknowledged, not committed */
	rc = sg_store_settle(st);
	if (no_journal)
		assert_int_equal(rc, -EIO); /* held for the hour: the settle's commit lost it */
	else /* the writer may try the batch, and lose it, before the settle */
		assert_true(rc == -EIO || rc == 0);
	commit_fault = 0;
	if (!no_journal) {
		assert_int_equal(dup2(saved, jfd), jfd);
		close(saved);
	}
	assert_int_equal(sg_store_stats_get(st, &s1), 0);
	assert_int_equal(s1.lost - s0.lost, 1);
	/* not broken: nothing durable was lost, changes (and reads) go on */
	assert_int_equal(s1.refusing, 0);
	mk(st, SG_ROOT_ID, "later", SG_TYPE_FILE, "x", NULL);
	assert_int_equal(sg_store_sync(st), -EIO); /* the settle left it */
	assert_int_equal(sg_store_sync(st), 0);    /* told once */
	assert_int_equal(sg_store_resolve(st, "lost", &x), -ENOENT);
	assert_int_equal(sg_store_resolve(st, "kept", &x), 0);
	assert_int_equal(sg_store_resolve(st, "later", &x), 0);
}

/* ---- a long listing lets local changes in ---- */

#define SL_FILES 100
#define SL_ROW_US 1000 /* the listing takes SL_FILES ms at least */

struct slow_list {
	sg_store *st;
	atomic_int seen;
	int rc;
	size_t n;
	struct {
		char path[16];
		uint64_t version;
	} rows[2 * SL_FILES + 8];
};

static int slow_cb(void *ctx, const sg_change *c)
{
	struct slow_list *l = ctx;

	if (l->n < sizeof(l->rows) / sizeof(l->rows[0])) {
		snprintf(l->rows[l->n].path, sizeof(l->rows[l->n].path), "%s", c->path);
		l->rows[l->n++].version = c->version;
	}
	usleep(SL_ROW_US);
	atomic_fetch_add(&l->seen, 1);
	return 0;
}

static void *slow_list_main(void *arg)
{
	struct slow_list *l = arg;

	l->rc = sg_store_changes_after(l->st, 0, 0, slow_cb, l);
	return NULL;
}

static size_t listed(const struct slow_list *l, const char *path, uint64_t *last)
{
	size_t k = 0;

	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->rows[i].path, path) == 0) {
			k++;
			*last = l->rows[i].version;
		}
	return k;
}

/*
 * A listing of the log, whose callback is slow, does not hold local changes
 * up until it ends: with the journal it reads the writer's open transaction
 * under its lock, and lets the lock go every half millisecond (between rows).
 * Rows only move forward, so a file changed before the listing reached it is
 * listed once, at its new version; one changed after is listed twice; one
 * created meanwhile is listed at the end. Without the journal the listing
 * reads a snapshot and holds nothing: the same holds.
 */
static void test_listing_lets_changes_in(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	struct slow_list *l = calloc(1, sizeof(*l));
	sg_attr early, late, made;
	uint64_t ids[SL_FILES], v;
	pthread_t t;
	int seen_then, tries = 0;

	assert_non_null(l);
	for (int i = 0; i < SL_FILES; i++) {
		char name[16];
		snprintf(name, sizeof(name), "l%03d", i);
		ids[i] = mk(st, SG_ROOT_ID, name, SG_TYPE_FILE, "x", NULL);
	}
	l->st = st;
	assert_int_equal(pthread_create(&t, NULL, slow_list_main, l), 0);
	while (atomic_load(&l->seen) < 5 && tries++ < 2000) /* at most 2 s */
		usleep(1000);
	assert_true(atomic_load(&l->seen) >= 5);
	assert_int_equal(sg_store_write(st, NULL, ids[2], "e", 1, now_ns(), now_ns(), &early), 0);
	assert_int_equal(
	    sg_store_write(st, NULL, ids[SL_FILES - 2], "l", 1, now_ns(), now_ns(), &late), 0);
	assert_int_equal(sg_store_create(st, NULL, SG_ROOT_ID, "made", SG_TYPE_FILE, 0644, 0, 0,
	                                 "m", 1, now_ns(), &made),
	                 0);
	seen_then = atomic_load(&l->seen);
	pthread_join(t, NULL);
	assert_int_equal(l->rc, 0);
	/* the changes were done while the listing was at most half way */
	assert_true(seen_then < SL_FILES / 2);
	assert_int_equal(listed(l, "l002", &v), 2); /* listed, changed, listed again */
	assert_int_equal(v, early.version);
	assert_int_equal(listed(l, "l098", &v), 1); /* changed before the listing got there */
	assert_int_equal(v, late.version);
	assert_int_equal(listed(l, "made", &v), 1);
	assert_int_equal(v, made.version);
	assert_int_equal(listed(l, "l050", &v), 1);
	assert_int_equal(l->n, SL_FILES + 2);
	free(l);
}

/* sg_store_changes_after_atomic(): one read, each entry once, whatever
 * changes meanwhile. */
static int all_cb(void *ctx, const sg_change *c)
{
	return slow_cb(ctx, c);
}

static void *all_list_main(void *arg)
{
	struct slow_list *l = arg;

	l->rc = sg_store_changes_after_atomic(l->st, 0, 0, all_cb, l);
	return NULL;
}

static void test_changes_atomic_one_read(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	struct slow_list *l = calloc(1, sizeof(*l));
	uint64_t ids[SL_FILES / 4], v;
	sg_attr a;
	pthread_t t;
	int tries = 0;

	assert_non_null(l);
	for (int i = 0; i < SL_FILES / 4; i++) {
		char name[16];
		snprintf(name, sizeof(name), "l%03d", i);
		ids[i] = mk(st, SG_ROOT_ID, name, SG_TYPE_FILE, "x", NULL);
	}
	l->st = st;
	assert_int_equal(pthread_create(&t, NULL, all_list_main, l), 0);
	while (atomic_load(&l->seen) < 5 && tries++ < 2000)
		usleep(1000);
	assert_true(atomic_load(&l->seen) >= 5);
	assert_int_equal(sg_store_write(st, NULL, ids[2], "e", 1, now_ns(), now_ns(), &a), 0);
	pthread_join(t, NULL);
	assert_int_equal(l->rc, 0);
	assert_int_equal(l->n, SL_FILES / 4);
	assert_int_equal(listed(l, "l002", &v), 1);
	assert_true(v < a.version);
	free(l);
}

static int teardown_fault(void **state)
{
	commit_fault = 0; /* a failed assertion skips the test's own reset */
	return teardown(state);
}

struct listed {
	const char *const *paths;
};

static int keep_listed(void *ctx, const char *path)
{
	const struct listed *l = ctx;
	size_t n = strlen(path);

	if (n && path[n - 1] == '~')
		return 1; /* local-only */
	for (size_t i = 0; l->paths[i]; i++)
		if (strcmp(l->paths[i], path) == 0)
			return 1;
	return 0;
}

static void test_reconcile(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	static const char *const listed[] = {"keep", "d", NULL};
	struct listed l = {listed};
	uint64_t h0 = hlc_now(), n = 99;
	sg_vv_entry vv[2];
	sg_snapshot snap;
	sg_change c;
	sg_attr x, mine;
	struct obs *o = calloc(1, sizeof(*o));
	sg_horizon h;
	sg_note note;
	uint64_t gone_id;

	assert_non_null(o);
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->cv, NULL);
	/* what this node holds: peer B's files, one of them our own */
	c = file_change("keep", "k", h0, NODE_B, 1);
	assert_int_equal(sg_store_apply(st, &c), 0);
	c = file_change("gone", "g", h0 + 1, NODE_B, 2);
	assert_int_equal(sg_store_apply(st, &c), 0);
	assert_int_equal(sg_store_resolve(st, "gone", &x), 0);
	gone_id = x.id;
	c = file_change("dir/sub/old", "o", h0 + 2, NODE_B, 3);
	assert_int_equal(sg_store_apply(st, &c), 0); /* dir and dir/sub: placeholders */
	c = file_change("dir2/fresh", "f", h0 + 100, NODE_B, 4);
	assert_int_equal(sg_store_apply(st, &c), 0);
	c = file_change("unseen", "u", h0 + 3, NODE_C, 1);
	assert_int_equal(sg_store_apply(st, &c), 0);
	c = file_change("tmp~", "t", h0 + 4, NODE_B, 5);
	assert_int_equal(sg_store_apply(st, &c), 0);
	c = typed_change("d", SG_TYPE_DIR, h0 + 5, NODE_B, 6);
	assert_int_equal(sg_store_apply(st, &c), 0);
	c = file_change("d/x", "x", h0 + 6, NODE_B, 7);
	assert_int_equal(sg_store_apply(st, &c), 0);
	mk(st, SG_ROOT_ID, "mine", SG_TYPE_FILE, "m", &mine); /* stamped now: past the horizon */

	/* the peer's snapshot: it listed keep and d, purged deletes up to h0 + 50,
	 * and saw B's changes up to 7 and ours up to our seq (C's: never) */
	memset(&snap, 0, sizeof(snap));
	snap.horizon.version = 40;
	snap.horizon.stamp = (sg_stamp){h0 + 50, NODE_B, 99};
	vv[0] = (sg_vv_entry){NODE_A, mine.stamp.seq};
	vv[1] = (sg_vv_entry){NODE_B, 7};
	snap.vv = vv;
	snap.nvv = 2;
	snap.keep = keep_listed;
	snap.ctx = &l;
	sg_store_set_observer(st, obs_cb, o);
	assert_int_equal(sg_store_reconcile(st, &snap, &n), 0);
	/* gone, dir/sub/old, dir/sub, dir, d/x: deleted there */
	assert_int_equal(n, 5);
	assert_int_equal(sg_store_resolve(st, "gone", &x), -ENOENT);
	assert_int_equal(sg_store_resolve(st, "dir", &x), -ENOENT);
	assert_int_equal(sg_store_resolve(st, "d/x", &x), -ENOENT);
	/* listed, newer than the horizon (its directory with it), never seen there,
	 * local-only: they stay */
	assert_int_equal(sg_store_resolve(st, "keep", &x), 0);
	assert_int_equal(sg_store_resolve(st, "d", &x), 0);
	assert_int_equal(x.nlink, 2);
	assert_int_equal(sg_store_resolve(st, "dir2/fresh", &x), 0);
	assert_int_equal(sg_store_resolve(st, "unseen", &x), 0);
	assert_int_equal(sg_store_resolve(st, "tmp~", &x), 0);
	assert_int_equal(sg_store_resolve(st, "mine", &x), 0);
	assert_int_equal(stats_of(st).forgotten, 5);
	assert_int_equal(stats_of(st).tombstones, 0);
	/* the filesystem hears of it, as of a peer's delete */
	assert_true(obs_wait(o, gone_id, sg_store_version(st), &note));
	assert_int_equal(note.local, SG_NOTE_REMOTE);
	assert_int_equal(note.type, SG_TYPE_TOMBSTONE);
	assert_string_equal(note.name, "gone");

	/* the horizon stamp is the peer's now: a copy of "gone" from a third node stays out */
	h = horizon_of(st);
	assert_stamp_equal(&h.stamp, &snap.horizon.stamp);
	assert_int_equal(h.version, 0);
	c = file_change("gone", "g", h0 + 1, NODE_B, 2);
	assert_int_equal(sg_store_apply(st, &c), -ESTALE);

	/* a peer that purged nothing drops nothing; a bad vector is refused */
	snap.horizon.stamp = (sg_stamp){0, 0, 0};
	assert_int_equal(sg_store_reconcile(st, &snap, &n), 0);
	assert_int_equal(n, 0);
	vv[1].origin = NODE_A;
	assert_int_equal(sg_store_reconcile(st, &snap, &n), -EINVAL);

	sg_store_close(st);
	f->st = NULL;
	pthread_cond_destroy(&o->cv);
	pthread_mutex_destroy(&o->mu);
	free(o);
}

static int vv_collect(void *ctx, const sg_vv_entry *e)
{
	struct {
		sg_vv_entry v[8];
		size_t n;
	} *l = ctx;

	if (l->n < 8)
		l->v[l->n++] = *e;
	return 0;
}

static void test_vv(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	struct {
		sg_vv_entry v[8];
		size_t n;
	} l;
	sg_change c;
	sg_attr a;

	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_vv(st, vv_collect, &l), 0);
	assert_int_equal(l.n, 0);
	c = file_change("c", "c", hlc_now(), NODE_C, 7);
	assert_int_equal(sg_store_apply(st, &c), 0);
	mk(st, SG_ROOT_ID, "a", SG_TYPE_FILE, "a", &a);
	c = file_change("b", "b", hlc_now(), NODE_B, 3);
	assert_int_equal(sg_store_apply(st, &c), 0);
	c = file_change("b2", "b", hlc_now(), NODE_B, 2); /* out of order: the highest stays */
	assert_int_equal(sg_store_apply(st, &c), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(sg_store_vv(st, vv_collect, &l), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.v[0].origin, NODE_A);
	assert_int_equal(l.v[0].seq, a.stamp.seq);
	assert_int_equal(l.v[1].origin, NODE_B);
	assert_int_equal(l.v[1].seq, 3);
	assert_int_equal(l.v[2].origin, NODE_C);
	assert_int_equal(l.v[2].seq, 7);
}

/* ---- the commit journal ------------------------------------------------------ */

/* A process that creates nfiles files, each synced on its own (one journal
 * batch each), then dies without closing the store: within a second of the
 * first batch no checkpoint has run, so what it synced is in the journal
 * only. Returns its exit status (0: all went as planned). */
static int crash_after_syncs(const char *dir, int first, int nfiles)
{
	pid_t pid = fork();
	int status = -1;

	if (pid == 0) {
		sg_store_opts so = {0};
		sg_store_stats ss;
		sg_store *st;

		so.dir = dir;
		so.node_id = NODE_A;
		so.sync_delay_ns = -1; /* every change waits for its durable point */
		if (sg_store_open(&st, &so) != 0)
			_exit(2);
		for (int i = first; i < first + nfiles; i++) {
			char name[32], data[32];
			sg_attr a;
			snprintf(name, sizeof(name), "j%d", i);
			snprintf(data, sizeof(data), "content %d", i);
			if (sg_store_create(st, NULL, SG_ROOT_ID, name, SG_TYPE_FILE, 0644, 0, 0,
			                    data, strlen(data), now_ns(), &a) != 0)
				_exit(3);
			if (sg_store_sync(st) != 0)
				_exit(4);
		}
		if (sg_store_stats_get(st, &ss) != 0 || ss.checkpoints != 0 ||
		    ss.journal_batches < (uint64_t)nfiles)
			_exit(5); /* not the case under test: the batches would be committed */
		_exit(0);         /* no close: the open transaction dies with the process */
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void assert_jfile(sg_store *st, int i, int present)
{
	char name[32], data[32];
	sg_attr a;

	snprintf(name, sizeof(name), "j%d", i);
	snprintf(data, sizeof(data), "content %d", i);
	if (!present) {
		assert_int_equal(sg_store_resolve(st, name, &a), -ENOENT);
		return;
	}
	assert_int_equal(sg_store_resolve(st, name, &a), 0);
	assert_content(st, a.id, data, strlen(data));
}

static void jdir_make(char *dir)
{
	strcpy(dir, "/tmp/sigil-journal-XXXXXX");
	assert_non_null(mkdtemp(dir));
}

/* Synced changes survive a crash before their checkpoint: the open replays
 * them, and the store is whole. */
static void test_journal_replay(void **state)
{
	char dir[64];
	sg_store_opts so = {0};
	sg_store *st;
	uint64_t v;
	(void)state;

	jdir_make(dir);
	assert_int_equal(crash_after_syncs(dir, 0, 5), 0);
	so.dir = dir;
	assert_int_equal(sg_store_open(&st, &so), 0);
	for (int i = 0; i < 5; i++)
		assert_jfile(st, i, 1);
	assert_int_equal(sg_store_check(st, print_problem, NULL, NULL), 0);
	v = sg_store_version(st);
	assert_true(v >= 5);
	/* the versions go on from there: nothing handed out twice */
	mk(st, SG_ROOT_ID, "after", SG_TYPE_FILE, "x", NULL);
	assert_int_equal(sg_store_sync(st), 0);
	assert_true(sg_store_version(st) > v);
	sg_store_close(st);
	/* and again after a clean close (a checkpoint): nothing left to replay */
	assert_int_equal(sg_store_open(&st, &so), 0);
	for (int i = 0; i < 5; i++)
		assert_jfile(st, i, 1);
	assert_int_equal(sg_store_check(st, print_problem, NULL, NULL), 0);
	sg_store_close(st);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- batches written while changes go on ----
 * The writer thread writes a journal batch without the transaction lock;
 * local changes are applied meanwhile on their callers' threads and make the
 * next batch, and a reader of durable state waits for the batch in flight.
 * A child process does all that at once, syncs and dies without a close;
 * the open replays the journal: every change is there, the observer heard
 * of each batch once and in order. */
#define JC_THREADS 4
#define JC_FILES 200

struct jc_arg {
	sg_store *st;
	int t, fail;
};

static _Atomic int jc_stop;
static _Atomic int jc_bad_order;
static _Atomic uint64_t jc_seen_max, jc_notes;

static void jc_observer(void *ctx, const sg_note *notes, size_t n)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	(void)ctx;

	for (size_t i = 0; i < n; i++) {
		lo = notes[i].version < lo ? notes[i].version : lo;
		hi = notes[i].version > hi ? notes[i].version : hi;
	}
	if (n && lo <= atomic_load(&jc_seen_max))
		atomic_store(&jc_bad_order, 1); /* a batch told twice, or out of order */
	if (hi > atomic_load(&jc_seen_max))
		atomic_store(&jc_seen_max, hi);
	atomic_fetch_add(&jc_notes, n);
}

static void *jc_writer(void *p)
{
	struct jc_arg *c = p;

	for (int i = 0; i < JC_FILES; i++) {
		char name[32], data[48];
		sg_attr a;
		snprintf(name, sizeof(name), "c%d-%d", c->t, i);
		snprintf(data, sizeof(data), "thread %d file %d", c->t, i);
		if (sg_store_create(c->st, NULL, SG_ROOT_ID, name, SG_TYPE_FILE, 0644, 0, 0, "x", 1,
		                    now_ns(), &a) != 0 ||
		    sg_store_write(c->st, NULL, a.id, data, strlen(data), 1, now_ns(), &a) != 0)
			c->fail++;
	}
	return NULL;
}

static int jc_count(void *ctx, const sg_change *c)
{
	(void)c;
	(*(size_t *)ctx)++;
	return 0;
}

static void *jc_reader(void *p)
{
	struct jc_arg *c = p;

	for (int k = 0; k < 20000 && !atomic_load(&jc_stop); k++) {
		size_t n = 0;
		if (sg_store_changes_after(c->st, 0, 1u << 20, jc_count, &n) != 0)
			c->fail++;
	}
	return NULL;
}

/* Run JC_THREADS writers and a reader to their end; round r names its files
 * apart (c<t + r * (JC_THREADS + 1)>-<i>). */
static void jc_run(sg_store *st, int round, int *fail)
{
	struct jc_arg args[JC_THREADS + 1];
	pthread_t th[JC_THREADS + 1];

	atomic_store(&jc_stop, 0);
	for (int t = 0; t <= JC_THREADS; t++) {
		/* the threads name their files by t: each round its own */
		args[t] = (struct jc_arg){st, t + round * (JC_THREADS + 1), 0};
		if (pthread_create(&th[t], NULL, t < JC_THREADS ? jc_writer : jc_reader,
		                   &args[t]) != 0)
			_exit(3);
	}
	for (int t = 0; t < JC_THREADS; t++)
		pthread_join(th[t], NULL);
	atomic_store(&jc_stop, 1);
	pthread_join(th[JC_THREADS], NULL);
	for (int t = 0; t <= JC_THREADS; t++)
		*fail += args[t].fail;
}

/* The files of writer t are all there, with their content. */
static void jc_verify(sg_store *st, int t)
{
	for (int i = 0; i < JC_FILES; i++) {
		char name[32], want[48];
		void *buf = NULL;
		size_t len = 0;
		sg_attr a;
		snprintf(name, sizeof(name), "c%d-%d", t, i);
		snprintf(want, sizeof(want), "thread %d file %d", t, i);
		assert_int_equal(sg_store_resolve(st, name, &a), 0);
		assert_int_equal(sg_store_read(st, a.id, &buf, &len), 0);
		assert_int_equal(len, strlen(want));
		assert_memory_equal(buf, want, len);
		free(buf);
	}
}

/* Run child(dir) in a child process (it exits without closing its store, as
 * in a crash); it must exit 0. */
static void jc_fork(const char *dir, int (*child)(const char *dir))
{
	int status = -1;
	pid_t pid = fork();

	if (pid == 0)
		_exit(child(dir));
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Run child(dir) in a forked process on a fresh store dir (it must exit 0),
 * then open what it left, as the restart after a crash would. */
static sg_store *jc_after(char *dir, int (*child)(const char *dir))
{
	sg_store_opts so = {0};
	sg_store *st;

	jdir_make(dir);
	jc_fork(dir, child);
	so.dir = dir;
	so.node_id = NODE_A;
	assert_int_equal(sg_store_open(&st, &so), 0);
	return st;
}

/* A forked child's store: room enough that no checkpoint comes for the
 * transaction's size, so that the changes stay in the journal only. NULL if
 * it does not open. */
static sg_store *jc_open(const char *dir)
{
	sg_store_opts so = {0};
	sg_store *st;

	so.dir = dir;
	so.node_id = NODE_A;
	so.initial_map = 1ULL << 30;
	return sg_store_open(&st, &so) == 0 ? st : NULL;
}

/* After jc_run(): synced, no writer failed, and the observer heard of at
 * least `notes` changes, in order, up to the store's version. 0, or the
 * child's exit code for what went wrong. */
static int jc_checked(sg_store *st, int fail, uint64_t notes)
{
	if (sg_store_sync(st) != 0)
		return 4;
	if (fail)
		return 5;
	if (atomic_load(&jc_bad_order))
		return 6;
	if (atomic_load(&jc_seen_max) != sg_store_version(st) || atomic_load(&jc_notes) < notes)
		return 7; /* the observer missed changes */
	return 0;
}

static int jc_child(const char *dir)
{
	sg_store *st = jc_open(dir);
	sg_store_stats ss;
	int fail = 0, rc;

	if (!st)
		return 2;
	sg_store_set_observer(st, jc_observer, NULL);
	jc_run(st, 0, &fail);
	if ((rc = jc_checked(st, fail, 2 * JC_THREADS * JC_FILES)) != 0)
		return rc;
	if (sg_store_stats_get(st, &ss) != 0 || ss.journal_batches < 2)
		return 8; /* not the case under test */
	return 0;         /* no close: what the last checkpoint lacks is in the journal only */
}

static void test_journal_concurrent(void **state)
{
	char dir[64];
	sg_store *st = jc_after(dir, jc_child);
	(void)state;

	for (int t = 0; t < JC_THREADS; t++)
		jc_verify(st, t);
	assert_int_equal(sg_store_check(st, print_problem, NULL, NULL), 0);
	sg_store_close(st);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- a journal that cannot be written ----
 * The journal's descriptor is pointed at /dev/full (every write fails with
 * ENOSPC) while writers and a reader of durable state go on: each durable
 * point falls back to a checkpoint, with the batch's waiters and notes put
 * back in front of what came meanwhile (post_undo). No change fails or is
 * lost, the observer hears of each once and in order, and reads of durable
 * state fall back to the last checkpoint. Then the journal works again: the
 * next changes go to it, and a crash after them loses nothing. */
static int journal_fd(const char *dir)
{
	char want[128], link[256], path[64];
	int found = -1;

	snprintf(want, sizeof(want), "%s/journal", dir);
	for (int fd = 3; fd < 1024 && found < 0; fd++) {
		ssize_t n;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = '\0';
			if (strcmp(link, want) == 0)
				found = fd;
		}
	}
	return found;
}

static int jf_child(const char *dir)
{
	sg_store *st = jc_open(dir);
	sg_store_stats s0, s1, s2;
	int jfd, saved, full, fail = 0, rc;

	if (!st)
		return 2;
	sg_store_set_observer(st, jc_observer, NULL);
	atomic_store(&jc_seen_max, 0);
	atomic_store(&jc_notes, 0);
	atomic_store(&jc_bad_order, 0);
	if ((jfd = journal_fd(dir)) < 0 || (saved = dup(jfd)) < 0 ||
	    (full = open("/dev/full", O_WRONLY | O_CLOEXEC)) < 0)
		return 9;
	/* round 0: every journal write fails */
	if (sg_store_stats_get(st, &s0) != 0 || dup2(full, jfd) != jfd)
		return 9;
	jc_run(st, 0, &fail);
	if (sg_store_sync(st) != 0)
		return 4;
	if (sg_store_stats_get(st, &s1) != 0)
		return 9;
	if (s1.journal_batches != s0.journal_batches)
		return 10; /* a write to /dev/full counted as written */
	if (s1.checkpoints <= s0.checkpoints)
		return 11;
	/* round 1: the journal works again */
	if (dup2(saved, jfd) != jfd)
		return 9;
	jc_run(st, 1, &fail);
	if ((rc = jc_checked(st, fail, 2 * 2 * JC_THREADS * JC_FILES)) != 0)
		return rc;
	if (sg_store_stats_get(st, &s2) != 0 || s2.journal_batches <= s1.journal_batches)
		return 8; /* the journal was not written again */
	return 0;         /* no close: round 1 may be in the journal only */
}

static void test_journal_write_fails(void **state)
{
	char dir[64];
	sg_store *st = jc_after(dir, jf_child);
	(void)state;

	for (int round = 0; round < 2; round++)
		for (int t = 0; t < JC_THREADS; t++)
			jc_verify(st, t + round * (JC_THREADS + 1));
	assert_int_equal(sg_store_check(st, print_problem, NULL, NULL), 0);
	sg_store_close(st);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A journal write that fails (/dev/full): the visibility observer heard of
 * the batch before the write; its changes then go in a checkpoint, and it
 * hears of them again, with what the store then holds. The commit observer
 * hears of them once. */
static void test_visible_journal_fails(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	sg_store_stats s0, s1;
	int jfd, saved, full;
	struct vis v;
	sg_attr a;
	sg_note n;

	vis_start(st, &v);
	assert_true((jfd = journal_fd(f->dir)) >= 0);
	assert_true((saved = dup(jfd)) >= 0);
	assert_true((full = open("/dev/full", O_WRONLY | O_CLOEXEC)) >= 0);
	assert_int_equal(dup2(full, jfd), jfd);
	close(full);
	assert_int_equal(sg_store_stats_get(st, &s0), 0);
	vis_apply(st, &v, &a, &n);
	assert_int_equal(sg_store_stats_get(st, &s1), 0);
	assert_int_equal(dup2(saved, jfd), jfd);
	close(saved);
	assert_int_equal(s1.journal_batches, s0.journal_batches);
	assert_true(s1.checkpoints > s0.checkpoints);
	assert_int_equal(v.calls, 2);
	assert_string_equal(v.content, "new");
	pthread_mutex_lock(&v.commits->mu);
	assert_int_equal(v.commits->n, 1);
	pthread_mutex_unlock(&v.commits->mu);
	assert_content(st, a.id, "new", 3);
	assert_int_equal(sg_store_check(st, print_problem, NULL, NULL), 0);
	vis_end(&v);
}

/* ---- sg_store_sync_async ----
 * Each call's callback comes once, in the order of the calls, on another
 * thread than the caller's, with 0, and only once the changes made before
 * the call are on disk: a child that dies (_exit, no close) in the last
 * callback leaves a store that holds every change. */
#define SA_CALLS 16

static _Atomic int sa_count[SA_CALLS], sa_next, sa_bad;
static pthread_t sa_caller;

static void sa_done(void *arg, int rc)
{
	int i = (int)(intptr_t)arg;

	if (rc != 0 || pthread_equal(pthread_self(), sa_caller) ||
	    atomic_fetch_add(&sa_count[i], 1) != 0 || atomic_fetch_add(&sa_next, 1) != i)
		atomic_store(&sa_bad, 1);
	if (i == SA_CALLS - 1)
		_exit(atomic_load(&sa_bad) ? 10 : 0); /* a crash right after the last reply */
}

static int sa_child(const char *dir)
{
	sg_store *st = jc_open(dir);
	char name[16], body[32];

	if (!st)
		return 2;
	sa_caller = pthread_self();
	for (int i = 0; i < SA_CALLS; i++) {
		sg_attr a;
		snprintf(name, sizeof(name), "sa%d", i);
		snprintf(body, sizeof(body), "async %d", i);
		if (sg_store_create(st, NULL, SG_ROOT_ID, name, SG_TYPE_FILE, 0644, 0, 0, body,
		                    strlen(body), now_ns(), &a) != 0)
			return 3;
		if (sg_store_sync_async(st, sa_done, (void *)(intptr_t)i) != 0)
			return 4;
	}
	for (int k = 0; k < 1000; k++) /* the last callback ends the process */
		usleep(10000);
	return 5; /* it never came */
}

static void test_sync_async(void **state)
{
	char dir[64], name[16], body[32];
	sg_store *st = jc_after(dir, sa_child);
	(void)state;

	for (int i = 0; i < SA_CALLS; i++) {
		sg_attr a;
		snprintf(name, sizeof(name), "sa%d", i);
		snprintf(body, sizeof(body), "async %d", i);
		assert_int_equal(sg_store_lookup(st, SG_ROOT_ID, name, &a), 0);
		assert_content(st, a.id, body, strlen(body));
	}
	assert_int_equal(sg_store_check(st, print_problem, NULL, NULL), 0);
	sg_store_close(st);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Offsets of the journal's batches in file order, by their header. */
static int jbatches(const char *dir, long *off, int max)
{
	char path[128];
	unsigned char h[32];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/journal", dir);
	f = fopen(path, "rb");
	assert_non_null(f);
	for (long o = 4096; n < max; o += 4096) {
		uint32_t magic, len;
		if (fseek(f, o, SEEK_SET) != 0 || fread(h, 1, sizeof(h), f) != sizeof(h))
			break;
		memcpy(&magic, h, 4);
		memcpy(&len, h + 24, 4);
		if (magic != 0x314a4753u)
			break;
		off[n++] = o;
		o += (long)((32 + len + 4095) / 4096 * 4096) - 4096;
	}
	fclose(f);
	return n;
}

/* A torn batch (never acknowledged) is not replayed, nor anything after it;
 * stale batches from before the last checkpoint are not replayed again. */
static void test_journal_torn(void **state)
{
	char dir[64], path[128];
	long off[16];
	sg_store_opts so = {0};
	sg_store *st;
	FILE *f;
	int n, c;
	(void)state;

	jdir_make(dir);
	assert_int_equal(crash_after_syncs(dir, 0, 3), 0);
	n = jbatches(dir, off, 16);
	assert_int_equal(n, 3);
	/* tear the last one: a byte of its records changes */
	snprintf(path, sizeof(path), "%s/journal", dir);
	f = fopen(path, "r+b");
	assert_non_null(f);
	assert_int_equal(fseek(f, off[2] + 40, SEEK_SET), 0);
	c = fgetc(f);
	assert_int_equal(fseek(f, off[2] + 40, SEEK_SET), 0);
	fputc(c ^ 0x5a, f);
	fclose(f);
	so.dir = dir;
	assert_int_equal(sg_store_open(&st, &so), 0);
	assert_jfile(st, 0, 1);
	assert_jfile(st, 1, 1);
	assert_jfile(st, 2, 0);
	assert_int_equal(sg_store_check(st, print_problem, NULL, NULL), 0);
	/* remove j0: were the stale batch that made it replayed, it would be back */
	assert_int_equal(sg_store_remove(st, NULL, SG_ROOT_ID, "j0", 0, now_ns()), 0);
	sg_store_close(st); /* a checkpoint: the journal starts over */
	assert_int_equal(crash_after_syncs(dir, 3, 1), 0);
	assert_int_equal(sg_store_open(&st, &so), 0);
	assert_jfile(st, 0, 0);
	assert_jfile(st, 1, 1);
	assert_jfile(st, 2, 0);
	assert_jfile(st, 3, 1);
	assert_int_equal(sg_store_check(st, print_problem, NULL, NULL), 0);
	sg_store_close(st);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A journal of another size than today's default is still replayed; one
 * that cannot be read stops the open rather than be replaced (it may hold
 * synced changes), and once it reads again nothing is lost. */
static void test_journal_guarded(void **state)
{
	char dir[64], path[128];
	sg_store_opts so = {0};
	sg_store *st = NULL;
	struct stat sb;
	FILE *f;
	int c;
	(void)state;

	jdir_make(dir);
	snprintf(path, sizeof(path), "%s/journal", dir);
	so.dir = dir;
	assert_int_equal(crash_after_syncs(dir, 0, 3), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(truncate(path, sb.st_size + 4096), 0);
	assert_int_equal(sg_store_open(&st, &so), 0);
	for (int i = 0; i < 3; i++)
		assert_jfile(st, i, 1);
	sg_store_close(st);

	assert_int_equal(crash_after_syncs(dir, 3, 1), 0);
	f = fopen(path, "r+b");
	assert_non_null(f);
	c = fgetc(f);
	assert_int_equal(fseek(f, 0, SEEK_SET), 0);
	fputc(c ^ 0xff, f); /* the file header's magic */
	fclose(f);
	assert_true(sg_store_open(&st, &so) < 0);
	f = fopen(path, "r+b");
	assert_non_null(f);
	fputc(c, f);
	fclose(f);
	assert_int_equal(sg_store_open(&st, &so), 0);
	assert_jfile(st, 3, 1);
	assert_int_equal(sg_store_check(st, print_problem, NULL, NULL), 0);
	sg_store_close(st);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A sync writes a journal batch, not an LMDB commit; the checkpoint comes on
 * its own within about a second, or when asked for. */
static void test_journal_checkpoint(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	sg_store_stats s0, s1;
	int i;

	assert_int_equal(sg_store_checkpoint(st), 0);
	assert_int_equal(sg_store_stats_get(st, &s0), 0);
	mk(st, SG_ROOT_ID, "a", SG_TYPE_FILE, "1", NULL);
	assert_int_equal(sg_store_sync(st), 0);
	assert_int_equal(sg_store_stats_get(st, &s1), 0);
	assert_true(s1.journal_batches > s0.journal_batches);
	assert_int_equal(s1.checkpoints, s0.checkpoints);
	assert_int_equal(sg_store_checkpoint(st), 0);
	assert_int_equal(sg_store_stats_get(st, &s1), 0);
	assert_int_equal(s1.checkpoints, s0.checkpoints + 1);
	/* on its own: polled for at most 10 s */
	s0 = s1;
	mk(st, SG_ROOT_ID, "b", SG_TYPE_FILE, "2", NULL);
	assert_int_equal(sg_store_sync(st), 0);
	for (i = 0; i < 200; i++) {
		assert_int_equal(sg_store_stats_get(st, &s1), 0);
		if (s1.checkpoints > s0.checkpoints)
			break;
		usleep(50000);
	}
	assert_true(s1.checkpoints > s0.checkpoints);
}

/* A burst of creates at the default map shares its checkpoints: they come
 * by time (a second, in a lull), not every few hundred files by the
 * transaction's estimated size, as they did with a 64 MiB map (about 240
 * creates of 1 KiB each). */
static void test_checkpoint_burst(void **state)
{
	struct fx *f = *state;
	sg_store *st = f->st;
	sg_store_stats s0, s1;
	char data[1024], name[32];
	int64_t t0, secs;

	memset(data, 'x', sizeof(data) - 1);
	data[sizeof(data) - 1] = '\0';
	assert_int_equal(sg_store_checkpoint(st), 0);
	assert_int_equal(sg_store_stats_get(st, &s0), 0);
	t0 = now_ns();
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "f%04d", i);
		mk(st, SG_ROOT_ID, name, SG_TYPE_FILE, data, NULL);
	}
	assert_int_equal(sg_store_sync(st), 0);
	secs = (now_ns() - t0) / 1000000000LL;
	assert_int_equal(sg_store_stats_get(st, &s1), 0);
	print_message("2000 creates in %lld s: %llu checkpoints, %llu journal batches\n",
	              (long long)secs, (unsigned long long)(s1.checkpoints - s0.checkpoints),
	              (unsigned long long)(s1.journal_batches - s0.journal_batches));
	/* one a second at most, and one more if the burst spans a second's end */
	assert_true(s1.checkpoints - s0.checkpoints <= (uint64_t)secs + 1);
}

/* The journal runs full under a long stream of synced changes: a checkpoint
 * makes room, and every change is there after a crash and a replay. */
static void test_journal_wraps(void **state)
{
	char dir[64];
	sg_store_opts so = {0};
	sg_store *st;
	sg_store_stats ss;
	(void)state;

	jdir_make(dir);
	so.dir = dir;
	so.node_id = NODE_A;
	so.sync_delay_ns = -1;
	assert_int_equal(sg_store_open(&st, &so), 0);
	{
		/* ~40 KiB batches: the 8 MiB journal fills in about 200 */
		size_t len = 40000;
		char *buf = malloc(len);
		assert_non_null(buf);
		for (int i = 0; i < 400; i++) {
			char name[32];
			sg_attr a;
			memset(buf, 'a' + i % 26, len);
			snprintf(name, sizeof(name), "big%d", i);
			assert_int_equal(sg_store_create(st, NULL, SG_ROOT_ID, name, SG_TYPE_FILE,
			                                 0644, 0, 0, buf, len, now_ns(), &a),
			                 0);
		}
		free(buf);
	}
	assert_int_equal(sg_store_stats_get(st, &ss), 0);
	assert_true(ss.checkpoints >= 1);
	assert_true(ss.journal_batches >= 300);
	sg_store_close(st);
	assert_int_equal(sg_store_open(&st, &so), 0);
	for (int i = 0; i < 400; i += 37) {
		char name[32];
		sg_attr a;
		snprintf(name, sizeof(name), "big%d", i);
		assert_int_equal(sg_store_resolve(st, name, &a), 0);
		assert_int_equal(a.size, 40000);
	}
	assert_int_equal(sg_store_check(st, print_problem, NULL, NULL), 0);
	sg_store_close(st);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- a full disk while a reader holds an old snapshot ----
 * The store sits on a 4 MiB tmpfs, filled until not even 1 KiB more fits.
 * A reader then holds a snapshot (a slow page of the log: a peer's pull,
 * the mirror) while four files are deleted and a new one is saved. LMDB
 * reuses the pages a commit freed only once no reader holds a snapshot from
 * before it; the reader lets go within a moment, and the deletes and the
 * save wait for that rather than fail with ENOSPC. (Without the reader,
 * all of them succeed at once: the reader is what this is about.) */
#define PIN_HOLD_MS 100

struct full {
	char dir[64], small[96];
	int made, mounted;
	sg_store *st;
	pthread_t th;
	int started;
	atomic_int in; /* the reader holds its snapshot */
	int rc;
};

static int teardown_full(void **state)
{
	struct full *f = *state;

	if (!f)
		return 0;
	if (f->started)
		pthread_join(f->th, NULL);
	sg_store_close(f->st);
	if (f->mounted)
		umount2(f->small, MNT_DETACH);
	if (f->made)
		nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	*state = NULL;
	return 0;
}

static int setup_full(void **state)
{
	struct full *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	*state = f;
	strcpy(f->dir, "/tmp/sigil-full-XXXXXX");
	if (!mkdtemp(f->dir)) {
		teardown_full(state);
		return -1;
	}
	f->made = 1;
	snprintf(f->small, sizeof(f->small), "%s/small", f->dir);
	if (mkdir(f->small, 0700) != 0 || mount("tmpfs", f->small, "tmpfs", 0, "size=4m") != 0) {
		fprintf(stderr, "# cannot mount a 4 MiB tmpfs on %s: %s (the test needs root)\n",
		        f->small, strerror(errno));
		teardown_full(state); /* cmocka runs no teardown after a failed setup */
		return -1;
	}
	f->mounted = 1;
	return 0;
}

static int pin_cb(void *ctx, const sg_change *c)
{
	struct full *f = ctx;
	(void)c;
	if (!atomic_exchange(&f->in, 1))
		usleep(PIN_HOLD_MS * 1000);
	return 1; /* one is enough */
}

static void *pin_run(void *arg)
{
	struct full *f = arg;
	f->rc = sg_store_changes_after(f->st, 0, 1, pin_cb, f);
	return NULL;
}

/* Files of `size` bytes named prefix<k> until one does not fit (at most
 * `max`). The number saved; *rc the last result. */
static int fill_disk(sg_store *st, const char *prefix, size_t size, int max, int *rc)
{
	static char data[200 * 1024];
	int n = 0;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 7919 >> 3);
	for (*rc = 0; n < max && *rc == 0;) {
		char name[32];
		snprintf(name, sizeof(name), "%s%d", prefix, n);
		data[0] = (char)n;
		*rc = sg_store_create(st, NULL, SG_ROOT_ID, name, SG_TYPE_FILE, 0644, 0, 0, data,
		                      size, now_ns(), NULL);
		n += *rc == 0;
	}
	return n;
}

static void test_full_disk_reader(void **state)
{
	struct full *f = *state;
	sg_store_opts so = {.dir = f->small, .node_id = NODE_A, .no_journal = no_journal};
	int n, rc, rcs[4];
	sg_attr a;

	assert_int_equal(sg_store_open(&f->st, &so), 0);
	n = fill_disk(f->st, "f", 200 * 1024, 60, &rc);
	assert_int_equal(rc, -ENOSPC);
	assert_true(n >= 5);
	/* then smaller ones, until not even 1 KiB fits */
	fill_disk(f->st, "m", 64 * 1024, 200, &rc);
	fill_disk(f->st, "s", 8 * 1024, 200, &rc);
	fill_disk(f->st, "k", 1024, 200, &rc);
	assert_int_equal(rc, -ENOSPC);

	assert_int_equal(pthread_create(&f->th, NULL, pin_run, f), 0);
	f->started = 1;
	for (int i = 0; i < 2000 && !atomic_load(&f->in); i++)
		usleep(1000);
	assert_true(atomic_load(&f->in));
	for (int i = 0; i < 4; i++) {
		char name[16];
		snprintf(name, sizeof(name), "f%d", i);
		rcs[i] = sg_store_remove(f->st, NULL, SG_ROOT_ID, name, 0, now_ns());
	}
	rc = sg_store_create(f->st, NULL, SG_ROOT_ID, "again", SG_TYPE_FILE, 0644, 0, 0, "again\n",
	                     6, now_ns(), NULL);
	pthread_join(f->th, NULL);
	f->started = 0;
	for (int i = 0; i < 4; i++)
		if (rcs[i] != 0)
			fail_msg("deleting f%d while a reader held a snapshot: %s", i,
			         strerror(-rcs[i]));
	if (rc != 0)
		fail_msg("a save after the deletes: %s", strerror(-rc));
	assert_true(f->rc >= 0);
	assert_int_equal(sg_store_resolve(f->st, "again", &a), 0);
	assert_int_equal(a.size, 6);
	assert_int_equal(sg_store_resolve(f->st, "f0", &a), -ENOENT);
	assert_int_equal(sg_store_check(f->st, print_problem, NULL, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_versions_and_stamps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_clock_never_steps_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rename_is_one_change, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_changes_after, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dir_rename_reversions_subtree, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_conflicts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rename_bases, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stale_child_of_deleted_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delete_races_newer_write, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_unseen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_over_deleted_tree, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_xattrs_in_changes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tombstones, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lww_apply, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_changes_except, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_explicit_stamps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_map_growth, setup_small_map, teardown),
	    cmocka_unit_test_setup_teardown(test_map_trim, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_map_warm, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_size_limit, setup_small_file, teardown),
	    cmocka_unit_test_setup_teardown(test_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deep_path, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rename, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_many, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrency, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrency, setup_deferred, teardown),
	    cmocka_unit_test_setup_teardown(test_deferred_reads, setup_deferred_hold, teardown),
	    cmocka_unit_test_setup_teardown(test_deferred_commit_soon, setup_deferred, teardown),
	    cmocka_unit_test_setup_teardown(test_map_growth, setup_deferred_small_map, teardown),
	    cmocka_unit_test_setup_teardown(test_xattrs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_xattr_size_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sync, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_observer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_put, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_put_tombstone_subtree, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_put_over_remote, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_put_many, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_purge_many, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_purge_guard, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_undo_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_settle_keeps_lost_commit, setup_deferred_hold,
	                                    teardown_fault),
	    cmocka_unit_test_setup_teardown(test_listing_lets_changes_in, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_changes_atomic_one_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_visible_first, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reconcile, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vv, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_disk_reader, setup_full, teardown_full),
	};
	const struct CMUnitTest journal_tests[] = {
	    cmocka_unit_test(test_journal_replay),
	    cmocka_unit_test(test_journal_torn),
	    cmocka_unit_test(test_journal_guarded),
	    cmocka_unit_test_setup_teardown(test_journal_checkpoint, setup_deferred, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoint_burst, setup_deferred, teardown),
	    cmocka_unit_test(test_journal_wraps),
	    cmocka_unit_test(test_journal_concurrent),
	    cmocka_unit_test(test_journal_write_fails),
	    cmocka_unit_test_setup_teardown(test_visible_journal_fails, setup, teardown),
	    cmocka_unit_test(test_sync_async),
	};
	int failed;

	failed =
	    cmocka_run_group_tests_name("the store, with the commit journal", tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("the commit journal", journal_tests, NULL, NULL);
	no_journal = 1;
	failed += cmocka_run_group_tests_name("the store, without it", tests, NULL, NULL);
	return failed;
}
