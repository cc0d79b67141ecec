/*
 * fuse-floor.c: what the FUSE round trips alone cost, with a daemon that
 * does no work at all.
 *
 *	fuse-floor serve MNT MODE     a FUSE daemon in the foreground, until unmounted
 *	fuse-floor probe DIR N        time N open+read+close, creates, unlinks, saves
 *
 * serve: a root directory that holds one 1 KiB file, "f"; any other name is
 * not there, but can be created (the new file is forgotten at once: its
 * writes are acknowledged and dropped) and unlinked. Attributes and entries
 * are cached 10 s, and the kernel checks permissions (default_permissions),
 * as on sigilfs. One thread reads /dev/fuse (the cheapest loop libfuse has).
 * MODE says what an open of "f" costs:
 *   open     OPEN answered with keep_cache, and noflush for a read-only
 *            handle (what sigilfs answers): OPEN, then RELEASE after close
 *   noopen   OPEN answered ENOSYS once, so the kernel sends no OPEN nor
 *            RELEASE for the rest of the mount: a close still sends FLUSH
 *   noflush  noopen, and FLUSH answered ENOSYS once too: an open, a read of
 *            cached pages and a close send nothing at all
 *
 * probe: on DIR/f (after 20 untimed) N times open O_RDONLY, read 1 KiB,
 * close; then N times create a new name (O_CREAT|O_EXCL), write 1 KiB,
 * close; then unlink those N; then N editor saves (open cfg.tmp with
 * O_CREAT|O_TRUNC, write 1 KiB, fsync, close, rename over cfg: the save of
 * fs-bench.c, whose fsync the floor daemon answers at once where sigilfs
 * writes its journal); prints each operation's p50 and p99 in
 * microseconds and its rate. Run both pinned to one CPU (taskset), as
 * fs-bench.sh runs its single-threaded figures.
 *
 * See bench/results/fs-floor.md.
 */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "timing.h"

#define FILE_INO 2
#define FILE_SIZE 1024
#define TIMEOUT 10.0
#define WARMUP 20

enum { M_OPEN, M_NOOPEN, M_NOFLUSH };
static int mode;
static char content[FILE_SIZE];
static fuse_ino_t next_ino = 100;

static void attr_of(fuse_ino_t ino, struct stat *s)
{
	memset(s, 0, sizeof(*s));
	s->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		s->st_mode = S_IFDIR | 0755;
		s->st_nlink = 2;
	} else {
		s->st_mode = S_IFREG | 0644;
		s->st_nlink = 1;
		s->st_size = ino == FILE_INO ? FILE_SIZE : 0;
	}
}

static void reply_entry(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.generation = 1;
	e.attr_timeout = e.entry_timeout = TIMEOUT;
	attr_of(ino, &e.attr);
	if (fi)
		fuse_reply_create(req, &e, fi);
	else
		fuse_reply_entry(req, &e);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (parent == FUSE_ROOT_ID && !strcmp(name, "f"))
		reply_entry(req, FILE_INO, NULL);
	else
		fuse_reply_err(req, ENOENT);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat s;

	(void)fi;
	attr_of(ino, &s);
	fuse_reply_attr(req, &s, TIMEOUT);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	if (mode != M_OPEN) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fi->keep_cache = 1;
	fi->noflush = (fi->flags & O_ACCMODE) == O_RDONLY;
	fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	(void)fi;
	if (ino != FILE_INO || off >= FILE_SIZE) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	fuse_reply_buf(req, content + off,
	               size < (size_t)(FILE_SIZE - off) ? size : (size_t)(FILE_SIZE - off));
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t m,
                      struct fuse_file_info *fi)
{
	(void)parent, (void)name, (void)m;
	fi->direct_io = 1; /* as sigilfs's write-only handles: no GETXATTR per write */
	reply_entry(req, next_ino++, fi);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
	(void)ino, (void)buf, (void)off, (void)fi;
	fuse_reply_write(req, size);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino, (void)fi;
	fuse_reply_err(req, mode == M_NOFLUSH ? ENOSYS : 0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino, (void)fi;
	fuse_reply_err(req, 0);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino, (void)datasync, (void)fi;
	fuse_reply_err(req, 0);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
	(void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
	fuse_reply_err(req, 0);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino, (void)nlookup;
	fuse_reply_none(req);
}

static const struct fuse_lowlevel_ops ops = {
    .lookup = op_lookup,
    .forget = op_forget,
    .getattr = op_getattr,
    .open = op_open,
    .read = op_read,
    .create = op_create,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .unlink = op_unlink,
    .fsync = op_fsync,
    .rename = op_rename,
};

static int serve(const char *mnt, const char *m)
{
	/* the kernel checks permissions, as on a sigilfs mount */
	char *argv[] = {"fuse-floor", "-o", "default_permissions", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	struct fuse_session *se;
	int rc = 1;

	if (!strcmp(m, "open"))
		mode = M_OPEN;
	else if (!strcmp(m, "noopen"))
		mode = M_NOOPEN;
	else if (!strcmp(m, "noflush"))
		mode = M_NOFLUSH;
	else {
		fprintf(stderr, "fuse-floor: unknown mode %s (open, noopen, noflush)\n", m);
		return 2;
	}
	memset(content, 'x', sizeof(content));
	se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se)
		return 1;
	if (fuse_set_signal_handlers(se) == 0) {
		if (fuse_session_mount(se, mnt) == 0) {
			rc = fuse_session_loop(se) != 0;
			fuse_session_unmount(se);
		}
		fuse_remove_signal_handlers(se);
	}
	fuse_session_destroy(se);
	return rc;
}

static void report(const char *what, long long *s, int n, long long wall)
{
	qsort(s, (size_t)n, sizeof(*s), cmp_ll);
	printf("%s p50 %.1f us p99 %.1f us rate %.0f /s\n", what, s[n / 2] / 1e3,
	       s[(int)(n * 0.99)] / 1e3, n / (wall / 1e9));
}

static int probe(const char *dir, int n)
{
	char path[4096], dst[4096], buf[FILE_SIZE];
	long long *s = calloc((size_t)n, sizeof(long long)), t0 = 0, wall;

	if (!s)
		return 1;
	memset(buf, 'y', sizeof(buf));
	snprintf(path, sizeof(path), "%s/f", dir);
	for (int i = -WARMUP; i < n; i++) {
		long long t = now_ns();
		int fd = open(path, O_RDONLY);

		if (i == 0)
			t0 = t;
		if (fd < 0 || read(fd, buf, sizeof(buf)) != FILE_SIZE || close(fd) != 0) {
			perror(path);
			return 1;
		}
		if (i >= 0)
			s[i] = now_ns() - t;
	}
	wall = now_ns() - t0;
	report("open+read+close", s, n, wall);
	t0 = now_ns();
	for (int i = 0; i < n; i++) {
		long long t = now_ns();
		int fd;

		snprintf(path, sizeof(path), "%s/new.%d.%d", dir, (int)getpid(), i);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0 || write(fd, buf, sizeof(buf)) != FILE_SIZE || close(fd) != 0) {
			perror(path);
			return 1;
		}
		s[i] = now_ns() - t;
	}
	report("create+write+close", s, n, now_ns() - t0);
	t0 = now_ns();
	for (int i = 0; i < n; i++) {
		long long t = now_ns();

		snprintf(path, sizeof(path), "%s/new.%d.%d", dir, (int)getpid(), i);
		if (unlink(path) != 0) {
			perror(path);
			return 1;
		}
		s[i] = now_ns() - t;
	}
	report("unlink", s, n, now_ns() - t0);
	snprintf(path, sizeof(path), "%s/cfg.tmp", dir);
	snprintf(dst, sizeof(dst), "%s/cfg", dir);
	for (int i = -WARMUP; i < n; i++) {
		long long t = now_ns();
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (i == 0)
			t0 = t;
		if (fd < 0 || write(fd, buf, sizeof(buf)) != FILE_SIZE || fsync(fd) != 0 ||
		    close(fd) != 0 || rename(path, dst) != 0) {
			perror(path);
			return 1;
		}
		if (i >= 0)
			s[i] = now_ns() - t;
	}
	report("editor-save", s, n, now_ns() - t0);
	free(s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "serve"))
		return serve(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "probe") && atoi(argv[3]) > 0)
		return probe(argv[2], atoi(argv[3]));
	fprintf(stderr, "usage: fuse-floor serve MNT open|noopen|noflush\n"
	                "       fuse-floor probe DIR N\n");
	return 2;
}
