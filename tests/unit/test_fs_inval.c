/* test_fs_inval.c: a change that does not come through the kernel (as a peer's
 * will) reaches readers of a real mount at once, despite long kernel cache timeouts.
 * Mounts sigilfs in-process in a temporary directory; skips (77) without /dev/fuse. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fs/fs.h"
#include "lmdb/store.h"
#include "util.h"

struct fixture {
	char dir[64];
	char mnt[128];
	char data[128];
	sg_store *st;
	sg_fs *fs;
	pthread_t loop;
	int running;
};

static void *loop_main(void *arg)
{
	struct fixture *f = arg;

	sg_fs_run(f->fs, 0, 0);
	return NULL;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *argv[] = {"test_fs_inval", "-odefault_permissions", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(2, argv);
	sg_store_opts so = {0};
	/* an hour: without invalidations the kernel would keep serving old data */
	sg_fs_opts fo = {.entry_timeout = 3600, .attr_timeout = 3600};

	assert_non_null(f);
	strcpy(f->dir, "/tmp/sigil-inval-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->mnt, sizeof(f->mnt), "%s/mnt", f->dir);
	snprintf(f->data, sizeof(f->data), "%s/data", f->dir);
	assert_int_equal(mkdir(f->mnt, 0755), 0);
	so.dir = f->data;
	so.node_id = 0x1111;
	assert_int_equal(sg_store_open(&f->st, &so), 0);
	fo.data_dir = f->data;
	assert_int_equal(sg_fs_new(&f->fs, f->st, &fo, &args), 0);
	fuse_opt_free_args(&args);
	sg_store_set_visible_observer(f->st, sg_fs_on_visible, f->fs);
	assert_int_equal(sg_fs_mount(f->fs, f->mnt), 0);
	assert_int_equal(pthread_create(&f->loop, NULL, loop_main, f), 0);
	f->running = 1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[512];

	if (f->running) {
		sg_fs_exit(f->fs);
		snprintf(cmd, sizeof(cmd), "fusermount3 -u %s || fusermount3 -uz %s", f->mnt,
		         f->mnt);
		if (system(cmd) != 0)
			fprintf(stderr, "unmount of %s failed\n", f->mnt);
		pthread_join(f->loop, NULL);
	}
	sg_store_set_observer(f->st, NULL, NULL);
	sg_fs_free(f->fs);
	sg_store_close(f->st);
	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void put_file(struct fixture *f, const char *name, const char *content)
{
	char p[256];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", f->mnt, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	assert_int_equal(close(fd), 0);
}

static char *get_file(struct fixture *f, const char *name)
{
	static char buf[4096];
	char p[256];
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "%s/%s", f->mnt, name);
	fd = open(p, O_RDONLY);
	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

/* A peer's change: path-based, stamped by another origin, newer than anything held. */
static void remote(struct fixture *f, const char *path, uint32_t type, const char *content)
{
	static uint64_t seq;
	sg_change c = {0};

	c.path = path;
	c.type = type;
	c.mode = 0644;
	c.mtime_ns = c.ctime_ns = sg_now_ns();
	c.data = content;
	c.len = content ? strlen(content) : 0;
	c.stamp.hlc = sg_store_hlc(f->st) + (1 << 16);
	c.stamp.origin = 0x2222;
	c.stamp.seq = ++seq;
	assert_int_equal(sg_store_apply(f->st, &c), 0);
}

/* Invalidations go out from their own thread: wait for `n` of them, 5 s at most. */
static void wait_invalidations(struct fixture *f, uint64_t n)
{
	for (int i = 0; i < 500 && sg_fs_invalidations(f->fs) < n; i++)
		usleep(10000);
	assert_true(sg_fs_invalidations(f->fs) >= n);
}

static void test_remote_update_is_seen(void **state)
{
	struct fixture *f = *state;
	char p[256];
	struct stat sb;
	uint64_t before;

	put_file(f, "app.conf", "v1\n");
	assert_string_equal(get_file(f, "app.conf"), "v1\n");
	snprintf(p, sizeof(p), "%s/app.conf", f->mnt);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_size, 3);

	before = sg_fs_invalidations(f->fs);
	remote(f, "app.conf", SG_TYPE_FILE, "version two\n");
	wait_invalidations(f, before + 1);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_size, 12);
	assert_string_equal(get_file(f, "app.conf"), "version two\n");
}

static void test_remote_create_and_delete(void **state)
{
	struct fixture *f = *state;
	char p[256];
	struct stat sb;
	uint64_t before;

	snprintf(p, sizeof(p), "%s/new.conf", f->mnt);
	assert_int_equal(stat(p, &sb), -1);
	assert_int_equal(errno, ENOENT);
	remote(f, "new.conf", SG_TYPE_FILE, "fresh\n");
	assert_int_equal(stat(p, &sb), 0);
	assert_string_equal(get_file(f, "new.conf"), "fresh\n");

	/* the kernel now caches new.conf for an hour: a remote delete must end that */
	before = sg_fs_invalidations(f->fs);
	remote(f, "new.conf", SG_TYPE_TOMBSTONE, NULL);
	wait_invalidations(f, before + 1);
	assert_int_equal(stat(p, &sb), -1);
	assert_int_equal(errno, ENOENT);
	assert_null(get_file(f, "new.conf"));
}

static void test_local_write_no_invalidation(void **state)
{
	struct fixture *f = *state;
	uint64_t before = sg_fs_invalidations(f->fs);

	/* changes made through the kernel need no invalidation */
	put_file(f, "local.conf", "mine\n");
	put_file(f, "local.conf", "mine again\n");
	assert_string_equal(get_file(f, "local.conf"), "mine again\n");
	usleep(100000);
	assert_int_equal(sg_fs_invalidations(f->fs), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_remote_update_is_seen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remote_create_and_delete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_local_write_no_invalidation, setup, teardown),
	};

	if (access("/dev/fuse", R_OK | W_OK) != 0) {
		fprintf(stderr, "no usable /dev/fuse: skipped\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
