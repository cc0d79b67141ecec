/* test_meta.c: the mirror's metadata file (.sigil at the tree's root):
 * what is recorded, the text, escapes, and errors naming the line; and the
 * mirror's commits, end to end: a store in a temporary directory, changes
 * made locally, by a restore and "from peers" (explicit stamps of other
 * origins), the mirror flushed, its commits read back with libgit2. */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "gitsync_i.h"
#include "log.h"
#include "util.h"

static char *text_of(const sg_gitmeta *m)
{
	char *t = NULL;
	size_t len = 0;

	assert_int_equal(sg_gitmeta_serialize(m, &t, &len), 0);
	assert_int_equal(strlen(t), len);
	return t;
}

/* the records' lines, without the comment header */
static const char *body(const char *t)
{
	while (*t == '#')
		t = strchr(t, '\n') + 1;
	return t;
}

static void test_defaults_are_not_recorded(void **state)
{
	sg_gitmeta m;
	char *t;

	(void)state;
	sg_gitmeta_init(&m);
	assert_int_equal(sg_gitmeta_set(&m, "a.conf", SG_TYPE_FILE, 0644, 0, 0, NULL, 0), 0);
	assert_int_equal(sg_gitmeta_set(&m, "run.sh", SG_TYPE_FILE, 0755, 0, 0, NULL, 0), 0);
	assert_int_equal(sg_gitmeta_set(&m, "l", SG_TYPE_SYMLINK, 0777, 0, 0, NULL, 0), 0);
	assert_null(sg_gitmeta_get(&m, "a.conf"));
	/* a directory is always recorded: empty ones must survive */
	assert_int_equal(sg_gitmeta_set(&m, "etc", SG_TYPE_DIR, 0755, 0, 0, NULL, 0), 1);
	assert_int_equal(sg_gitmeta_set(&m, "etc", SG_TYPE_DIR, 0755, 0, 0, NULL, 0), 0);
	t = text_of(&m);
	assert_string_equal(body(t), "d 0755 0 0 etc\n");
	free(t);
	sg_gitmeta_clear(&m);
}

static void test_modes_owners_xattrs_round_trip(void **state)
{
	sg_gitmeta m, back;
	sg_xattr x[2] = {{"user.color", "red", 3}, {"user.empty", "", 0}};
	char *t, *t2, err[80] = "";
	const struct sg_gitmeta_ent *e;

	(void)state;
	sg_gitmeta_init(&m);
	sg_gitmeta_init(&back);
	assert_int_equal(sg_gitmeta_set(&m, "etc/shadow", SG_TYPE_FILE, 0600, 0, 42, NULL, 0), 1);
	assert_int_equal(sg_gitmeta_set(&m, "etc/app.conf", SG_TYPE_FILE, 0644, 0, 0, x, 2), 1);
	assert_int_equal(
	    sg_gitmeta_set(&m, "a b\\c\nd", SG_TYPE_SYMLINK, 0777, 1000, 1000, NULL, 0), 1);
	t = text_of(&m);
	assert_string_equal(body(t), "l 0777 1000 1000 a b\\\\c\\nd\n"
	                             "x user.color 726564 etc/app.conf\n"
	                             "x user.empty - etc/app.conf\n"
	                             "f 0600 0 42 etc/shadow\n");
	assert_int_equal(sg_gitmeta_parse(&back, t, strlen(t), err, sizeof(err)), 0);
	e = sg_gitmeta_get(&back, "a b\\c\nd");
	assert_non_null(e);
	assert_int_equal(e->type, SG_TYPE_SYMLINK);
	assert_int_equal(e->uid, 1000);
	e = sg_gitmeta_get(&back, "etc/app.conf");
	assert_non_null(e);
	assert_int_equal(e->nx, 2);
	t2 = text_of(&back);
	assert_string_equal(t, t2);
	/* back to defaults: the record goes */
	assert_int_equal(sg_gitmeta_set(&m, "etc/shadow", SG_TYPE_FILE, 0644, 0, 0, NULL, 0), 1);
	assert_null(sg_gitmeta_get(&m, "etc/shadow"));
	free(t);
	free(t2);
	sg_gitmeta_clear(&m);
	sg_gitmeta_clear(&back);
}

static void test_remove_subtree(void **state)
{
	sg_gitmeta m;

	(void)state;
	sg_gitmeta_init(&m);
	/* enough entries to make the table grow */
	for (int i = 0; i < 300; i++) {
		char p[32];
		snprintf(p, sizeof(p), "d/%03d", i);
		assert_int_equal(sg_gitmeta_set(&m, p, SG_TYPE_DIR, 0700, 0, 0, NULL, 0), 1);
	}
	assert_int_equal(sg_gitmeta_set(&m, "d", SG_TYPE_DIR, 0755, 0, 0, NULL, 0), 1);
	assert_int_equal(sg_gitmeta_set(&m, "dd", SG_TYPE_DIR, 0755, 0, 0, NULL, 0), 1);
	assert_int_equal(sg_gitmeta_remove(&m, "d", 1, NULL, NULL), 1);
	assert_null(sg_gitmeta_get(&m, "d"));
	assert_null(sg_gitmeta_get(&m, "d/150"));
	assert_non_null(sg_gitmeta_get(&m, "dd")); /* a sibling with the same prefix stays */
	assert_int_equal(sg_gitmeta_remove(&m, "d", 1, NULL, NULL), 0);
	sg_gitmeta_clear(&m);
}

static void expect_bad(const char *text, const char *want)
{
	sg_gitmeta m;
	char err[80] = "";

	sg_gitmeta_init(&m);
	assert_int_equal(sg_gitmeta_parse(&m, text, strlen(text), err, sizeof(err)), -EINVAL);
	assert_string_equal(err, want);
	assert_null(sg_gitmeta_get(&m, "a"));
	sg_gitmeta_clear(&m);
}

static void test_bad_files_name_the_line(void **state)
{
	(void)state;
	expect_bad("# x\nd 0755 0 0 a\nq 0755 0 0 b\n", "line 3: unknown record type");
	expect_bad("d 9999 0 0 a\n", "line 1: bad mode");
	expect_bad("d 0755 x 0 a\n", "line 1: bad uid");
	expect_bad("d 0755 0 0\n", "line 1: too few fields");
	expect_bad("d 0755 0 0 ../etc\n", "line 1: bad path");
	expect_bad("d 0755 0 0 /etc\n", "line 1: bad path");
	expect_bad("d 0755 0 0 a//b\n", "line 1: bad path");
	expect_bad("d 0755 0 0 a\\q\n", "line 1: bad path");
	expect_bad("x trusted.a 00 a\n", "line 1: bad attribute name");
	expect_bad("x user.a 0g a\n", "line 1: bad attribute value");
	expect_bad("x user.a 012 a\n", "line 1: bad attribute value");
}

/* ---- the mirror, end to end ------------------------------------------------ */

#define PEER_B 0xbbbbULL

struct mfx {
	char dir[64], repo_path[128];
	sg_store *st;
	sg_mirror *m;
	git_repository *repo;
	uint64_t seq_b;
};

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int mfx_setup_with(void **state, int64_t sync_delay_ns)
{
	struct mfx *f = calloc(1, sizeof(*f));
	sg_store_opts so = {0};
	sg_mirror_opts mo = {0};
	char sdir[128];

	if (!f)
		return -1;
	if (getenv("TEST_DEBUG"))
		sg_log_init("test_meta", 0, SG_LOG_DEBUG);
	strcpy(f->dir, "/tmp/sigil-mirror-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(sdir, sizeof(sdir), "%s/store", f->dir);
	snprintf(f->repo_path, sizeof(f->repo_path), "%s/mirror.git", f->dir);
	so.dir = sdir;
	so.node_id = 0xaaaa;
	so.sync_delay_ns = sync_delay_ns;
	so.linger_ns = sync_delay_ns;
	if (sg_store_open(&f->st, &so) < 0)
		return -1;
	mo.store = f->st;
	mo.path = f->repo_path;
	mo.node_name = "a";
	mo.interval_ms = 3600 * 1000; /* commits come from sg_mirror_flush only */
	if (sg_mirror_start(&f->m, &mo) < 0)
		return -1;
	sg_store_set_observer(f->st, sg_mirror_on_commit, f->m);
	if (git_repository_open_bare(&f->repo, f->repo_path) < 0)
		return -1;
	*state = f;
	return 0;
}

/* Each change is committed when its call returns. */
static int mfx_setup(void **state)
{
	return mfx_setup_with(state, -1);
}

/* Local changes are acknowledged and held, for an hour, before their commit
 * (as the daemon's are, for up to a few milliseconds). */
static int mfx_setup_held(void **state)
{
	return mfx_setup_with(state, 3600LL * 1000000000);
}

static int mfx_teardown(void **state)
{
	struct mfx *f = *state;

	git_repository_free(f->repo);
	sg_store_set_observer(f->st, NULL, NULL);
	sg_mirror_stop(f->m);
	sg_store_close(f->st);
	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static uint64_t hlc_now(void)
{
	static uint64_t last;
	uint64_t h = (uint64_t)(sg_now_ns() / 1000000) << 16;

	last = h > last ? h : last + 1;
	return last;
}

/* A local change, as a restore makes it (sg_store_put). */
static void put(struct mfx *f, const char *path, uint32_t type, const char *text)
{
	sg_change c = {0};

	c.path = path;
	c.type = type;
	c.mode = type == SG_TYPE_DIR ? 0755 : 0644;
	c.data = text;
	c.len = text ? strlen(text) : 0;
	assert_int_equal(sg_store_put(f->st, &c), 0);
}

/* A local change, as the file system makes it (a handle call, no stamp). */
static void local_write(struct mfx *f, const char *name, const char *text)
{
	sg_attr a;

	if (sg_store_lookup(f->st, SG_ROOT_ID, name, &a) == 0)
		assert_int_equal(sg_store_write(f->st, NULL, a.id, text, strlen(text), sg_now_ns(),
		                                sg_now_ns(), NULL),
		                 0);
	else
		assert_int_equal(sg_store_create(f->st, NULL, SG_ROOT_ID, name, SG_TYPE_FILE, 0644,
		                                 0, 0, text, strlen(text), sg_now_ns(), NULL),
		                 0);
}

/* A change from peer B, as replication applies it. */
static void from_b(struct mfx *f, const char *path, uint32_t type, const char *text)
{
	sg_change c = {0};

	c.path = path;
	c.type = type;
	c.mode = type == SG_TYPE_DIR ? 0755 : 0644;
	c.data = text;
	c.len = text ? strlen(text) : 0;
	c.mtime_ns = c.ctime_ns = sg_now_ns();
	c.stamp.hlc = hlc_now();
	c.stamp.origin = PEER_B;
	c.stamp.seq = ++f->seq_b;
	assert_int_equal(sg_store_apply(f->st, &c), 0);
}

/* The messages of the branch's commits, newest first, NULL-terminated (malloc'd). */
static char **messages(struct mfx *f, size_t *n)
{
	git_revwalk *w = NULL;
	git_oid oid;
	char **v = calloc(1024, sizeof(*v));
	size_t k = 0;

	assert_non_null(v);
	assert_int_equal(git_revwalk_new(&w, f->repo), 0);
	git_revwalk_simplify_first_parent(w);
	assert_int_equal(git_revwalk_push_ref(w, "refs/heads/a"), 0);
	while (k < 1023 && git_revwalk_next(&oid, w) == 0) {
		git_commit *c = NULL;
		assert_int_equal(git_commit_lookup(&c, f->repo, &oid), 0);
		v[k++] = strdup(git_commit_message(c));
		git_commit_free(c);
	}
	git_revwalk_free(w);
	*n = k;
	return v;
}

static void messages_free(char **v)
{
	for (size_t i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

/* Does the message have an operation line for `path` ("added PATH  (...")? */
static int lists(const char *msg, const char *verb, const char *path)
{
	char want[300];

	snprintf(want, sizeof(want), "\n%-8s %s  (", verb, path);
	return strstr(msg, want) != NULL;
}

static void test_restore_trailer_only_on_its_changes(void **state)
{
	struct mfx *f = *state;
	char **v, lock[200];
	size_t n, marked = 0;

	put(f, "base", SG_TYPE_FILE, "base\n");
	assert_int_equal(sg_mirror_flush(f->m), 0);

	/* a restore that fails or changes nothing leaves no mark */
	assert_int_equal(sg_mirror_restore_begin(f->m, "Sigil-Restore: nothing"), 0);
	sg_mirror_restore_end(f->m, 1);
	assert_int_equal(sg_mirror_restore_begin(f->m, "Sigil-Restore: no-op"), 0);
	sg_mirror_restore_end(f->m, 0);
	local_write(f, "plain", "a normal write\n");
	assert_int_equal(sg_mirror_flush(f->m), 0);
	v = messages(f, &n);
	assert_int_equal(n, 2);
	assert_true(lists(v[0], "added", "plain"));
	assert_null(strstr(v[0], "Sigil-Restore"));
	messages_free(v);

	/* a restore's changes, with a peer's and a local write in between */
	assert_int_equal(sg_mirror_restore_begin(f->m, "Sigil-Restore: R"), 0);
	put(f, "r1", SG_TYPE_FILE, "r1\n");
	from_b(f, "remote-during", SG_TYPE_FILE, "b\n");
	local_write(f, "local-during", "l\n");
	put(f, "r2", SG_TYPE_FILE, "r2\n");
	put(f, "base", SG_TYPE_FILE, "restored\n");
	sg_mirror_restore_end(f->m, 0);
	local_write(f, "after", "after\n");
	/* and a batch that fails when it moves the branch: the mark stays */
	snprintf(lock, sizeof(lock), "%s/refs/heads/.a.next.lock", f->repo_path);
	unlink(lock);
	assert_int_equal(mkdir(lock, 0700), 0);
	assert_true(sg_mirror_flush(f->m) < 0);
	assert_int_equal(rmdir(lock), 0);
	assert_int_equal(sg_mirror_flush(f->m), 0);
	v = messages(f, &n);
	for (size_t i = 0; i < n; i++) {
		int has = strstr(v[i], "\nSigil-Restore: R\n") != NULL;
		marked += has;
		assert_int_equal(has, lists(v[i], "added", "r1") || lists(v[i], "added", "r2") ||
		                          lists(v[i], "modified", "base"));
		if (has)
			assert_true(!strstr(v[i], "remote-during") &&
			            !strstr(v[i], "local-during") && !strstr(v[i], "after") &&
			            !strstr(v[i], "plain"));
	}
	assert_int_equal(marked, 2); /* r1; then r2 and base, after the other two writes */
	messages_free(v);
}

/* Several origins in one batch: one commit per run, in the store's order. */
static void test_batch_of_origins_in_order(void **state)
{
	struct mfx *f = *state;
	static const char *const want[] = {"w", "z", "y", "x"}; /* newest first */
	char **v, b[64];
	size_t n;

	local_write(f, "x", "x\n");
	from_b(f, "y", SG_TYPE_FILE, "y\n");
	local_write(f, "z", "z\n");
	from_b(f, "w", SG_TYPE_FILE, "w\n");
	assert_int_equal(sg_mirror_flush(f->m), 0);
	v = messages(f, &n);
	assert_int_equal(n, 4);
	snprintf(b, sizeof(b), "Sigil-Origin: node-%016llx\n", (unsigned long long)PEER_B);
	for (size_t i = 0; i < 4; i++) {
		char range[64], upto[64];
		snprintf(range, sizeof(range), "Sigil-Versions: %zu..%zu\n", 4 - i, 4 - i);
		snprintf(upto, sizeof(upto), "Sigil-Version: %zu\n", 4 - i);
		assert_true(lists(v[i], "added", want[i]));
		assert_non_null(strstr(v[i], range));
		assert_non_null(strstr(v[i], upto));
		assert_int_equal(strstr(v[i], b) != NULL, i % 2 == 0);
	}
	messages_free(v);
}

/* A local create as the file system makes it; returns the new entry's id. */
static uint64_t mk(struct mfx *f, uint64_t parent, const char *name, uint32_t type,
                   const char *text)
{
	sg_attr a;

	assert_int_equal(sg_store_create(f->st, NULL, parent, name, type,
	                                 type == SG_TYPE_DIR ? 0755 : 0644, 0, 0, text,
	                                 text ? strlen(text) : 0, sg_now_ns(), &a),
	                 0);
	return a.id;
}

static void rm_entry(struct mfx *f, uint64_t parent, const char *name, int dir)
{
	assert_int_equal(sg_store_remove(f->st, NULL, parent, name, dir, sg_now_ns()), 0);
}

/* Is there a line "renamed FROM -> TO" with this old (to == 0) or new path? */
static int lists_rename(const char *msg, const char *path, int to)
{
	char want[300];

	snprintf(want, sizeof(want), to ? " -> %s  (" : "\nrenamed  %s -> ", path);
	return strstr(msg, want) != NULL;
}

/* Every path git shows as changed by the branch's head commit (but .sigil)
 * has its line in the commit's message. */
static void check_lines_cover_diff(struct mfx *f)
{
	git_object *obj = NULL;
	git_commit *c = NULL, *parent = NULL;
	git_tree *t = NULL, *pt = NULL;
	git_diff *diff = NULL;
	const char *msg;

	assert_int_equal(git_revparse_single(&obj, f->repo, "refs/heads/a"), 0);
	assert_int_equal(git_object_peel((git_object **)&c, obj, GIT_OBJECT_COMMIT), 0);
	assert_int_equal(git_commit_parent(&parent, c, 0), 0);
	assert_int_equal(git_commit_tree(&t, c), 0);
	assert_int_equal(git_commit_tree(&pt, parent), 0);
	assert_int_equal(git_diff_tree_to_tree(&diff, f->repo, pt, t, NULL), 0);
	msg = git_commit_message(c);
	for (size_t i = 0; i < git_diff_num_deltas(diff); i++) {
		const git_diff_delta *d = git_diff_get_delta(diff, i);
		const char *path =
		    d->status == GIT_DELTA_DELETED ? d->old_file.path : d->new_file.path;
		int ok;
		if (strcmp(path, SG_GIT_META) == 0)
			continue;
		if (d->status == GIT_DELTA_ADDED)
			ok = lists(msg, "added", path) || lists_rename(msg, path, 1);
		else if (d->status == GIT_DELTA_DELETED)
			ok = lists(msg, "deleted", path) || lists_rename(msg, path, 0);
		else
			ok = lists(msg, "modified", path);
		if (!ok)
			fail_msg("git shows %s %s; the message does not say it:\n%s",
			         git_diff_status_char(d->status) == 'A' ? "A" : "D/M", path, msg);
	}
	git_diff_free(diff);
	git_tree_free(t);
	git_tree_free(pt);
	git_commit_free(parent);
	git_commit_free(c);
	git_object_free(obj);
}

static char *head_message(struct mfx *f)
{
	size_t n;
	char **v = messages(f, &n), *m = strdup(v[0]);

	messages_free(v);
	return m;
}

/* A file that becomes a directory and back: every path git shows is a line. */
static void test_type_changes_list_every_path(void **state)
{
	struct mfx *f = *state;
	uint64_t tc, sub;
	char *msg;

	mk(f, SG_ROOT_ID, "tc", SG_TYPE_FILE, "a file\n");
	mk(f, SG_ROOT_ID, "keep", SG_TYPE_FILE, "another\n");
	assert_int_equal(sg_mirror_flush(f->m), 0);
	/* file -> directory */
	rm_entry(f, SG_ROOT_ID, "tc", 0);
	tc = mk(f, SG_ROOT_ID, "tc", SG_TYPE_DIR, NULL);
	sub = mk(f, tc, "sub", SG_TYPE_DIR, NULL);
	mk(f, sub, "f", SG_TYPE_FILE, "deep\n");
	assert_int_equal(sg_mirror_flush(f->m), 0);
	check_lines_cover_diff(f);
	msg = head_message(f);
	assert_true(lists(msg, "deleted", "tc") && lists(msg, "added", "tc/") &&
	            lists(msg, "added", "tc/sub/") && lists(msg, "added", "tc/sub/f"));
	free(msg);
	/* directory -> file, in one change (as a restore or a peer makes it: the
	 * log then holds the file alone, nothing of what went) */
	put(f, "tc", SG_TYPE_FILE, "a file again\n");
	assert_int_equal(sg_mirror_flush(f->m), 0);
	check_lines_cover_diff(f);
	msg = head_message(f);
	assert_true(lists(msg, "deleted", "tc/") && lists(msg, "deleted", "tc/sub/") &&
	            lists(msg, "deleted", "tc/sub/f") && lists(msg, "added", "tc"));
	free(msg);
}

/* A rename is what the store did, not what content matches. */
static void test_renames_are_moves(void **state)
{
	struct mfx *f = *state;
	static const char big[] =
	    "a file with enough content (64 bytes or more) to be recognised by "
	    "its content alone\n";
	uint64_t d;
	char *msg;

	/* two empty files, one deleted and one created: no rename */
	mk(f, SG_ROOT_ID, "emptyA", SG_TYPE_FILE, "");
	mk(f, SG_ROOT_ID, "same1", SG_TYPE_FILE, big);
	assert_int_equal(sg_mirror_flush(f->m), 0);
	rm_entry(f, SG_ROOT_ID, "emptyA", 0);
	mk(f, SG_ROOT_ID, "unrelated", SG_TYPE_FILE, "");
	/* a copy and a delete of the original, locally: not a rename either */
	mk(f, SG_ROOT_ID, "same2", SG_TYPE_FILE, big);
	rm_entry(f, SG_ROOT_ID, "same1", 0);
	assert_int_equal(sg_mirror_flush(f->m), 0);
	msg = head_message(f);
	assert_null(strstr(msg, "renamed"));
	assert_true(lists(msg, "deleted", "emptyA") && lists(msg, "added", "unrelated") &&
	            lists(msg, "deleted", "same1") && lists(msg, "added", "same2"));
	check_lines_cover_diff(f);
	free(msg);

	/* mv of an empty file, and of a directory: renames, as the store says */
	d = mk(f, SG_ROOT_ID, "dir", SG_TYPE_DIR, NULL);
	mk(f, d, "x", SG_TYPE_FILE, "");
	mk(f, d, "y", SG_TYPE_FILE, "y\n");
	assert_int_equal(sg_mirror_flush(f->m), 0);
	assert_int_equal(sg_store_rename(f->st, NULL, SG_ROOT_ID, "unrelated", SG_ROOT_ID, "moved",
	                                 0, sg_now_ns()),
	                 0);
	assert_int_equal(
	    sg_store_rename(f->st, NULL, SG_ROOT_ID, "dir", SG_ROOT_ID, "dir2", 0, sg_now_ns()), 0);
	assert_int_equal(sg_mirror_flush(f->m), 0);
	msg = head_message(f);
	assert_true(lists_rename(msg, "unrelated", 0) && lists_rename(msg, "moved", 1));
	assert_non_null(strstr(msg, "\nrenamed  dir/x -> dir2/x  ("));
	assert_non_null(strstr(msg, "\nrenamed  dir/y -> dir2/y  ("));
	check_lines_cover_diff(f);
	free(msg);

	/* a peer's delete and create (no word of a move): paired by content,
	 * unless the content is tiny */
	from_b(f, "p1", SG_TYPE_FILE, big);
	from_b(f, "e1", SG_TYPE_FILE, "");
	assert_int_equal(sg_mirror_flush(f->m), 0);
	from_b(f, "p1", SG_TYPE_TOMBSTONE, NULL);
	from_b(f, "p2", SG_TYPE_FILE, big);
	from_b(f, "e1", SG_TYPE_TOMBSTONE, NULL);
	from_b(f, "e2", SG_TYPE_FILE, "");
	assert_int_equal(sg_mirror_flush(f->m), 0);
	msg = head_message(f);
	if (!strstr(msg, "\nrenamed  p1 -> p2  ("))
		fail_msg("a peer's move of p1 to p2 is not a rename:\n%s", msg);
	assert_true(lists(msg, "deleted", "e1") && lists(msg, "added", "e2"));
	check_lines_cover_diff(f);
	free(msg);
}

/* A flush takes in what was acknowledged before it, committed to the store
 * or not yet (`sigilctl diff HEAD` right after a write). */
static void test_flush_takes_acknowledged(void **state)
{
	struct mfx *f = *state;
	git_object *o = NULL;
	char **v;
	size_t n;

	/* the writer idle, a lone change commits at once; the next is held */
	local_write(f, "first", "1\n");
	assert_int_equal(sg_mirror_flush(f->m), 0);
	local_write(f, "held", "acknowledged\n");
	assert_int_equal(sg_mirror_flush(f->m), 0);
	v = messages(f, &n);
	assert_int_equal(n, 2);
	assert_true(lists(v[0], "added", "held"));
	messages_free(v);
	assert_int_equal(git_revparse_single(&o, f->repo, "refs/heads/a:held"), 0);
	assert_int_equal(git_object_type(o), GIT_OBJECT_BLOB);
	assert_memory_equal(git_blob_rawcontent((git_blob *)o), "acknowledged\n", 13);
	git_object_free(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults_are_not_recorded),
	    cmocka_unit_test(test_modes_owners_xattrs_round_trip),
	    cmocka_unit_test(test_remove_subtree),
	    cmocka_unit_test(test_bad_files_name_the_line),
	    cmocka_unit_test_setup_teardown(test_restore_trailer_only_on_its_changes, mfx_setup,
	                                    mfx_teardown),
	    cmocka_unit_test_setup_teardown(test_batch_of_origins_in_order, mfx_setup,
	                                    mfx_teardown),
	    cmocka_unit_test_setup_teardown(test_type_changes_list_every_path, mfx_setup,
	                                    mfx_teardown),
	    cmocka_unit_test_setup_teardown(test_renames_are_moves, mfx_setup, mfx_teardown),
	    cmocka_unit_test_setup_teardown(test_flush_takes_acknowledged, mfx_setup_held,
	                                    mfx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
