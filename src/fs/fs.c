/* fs.c: FUSE low-level operations over the store. Each callback takes its
 * context from the request, makes one store call and maps the result to a reply. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs/fs_i.h"
#include "log.h"
#include "util.h"

#define DOMAIN "fs"
#define RESERVED_NAME ".sigil"

/* The read-only status directory /.sigil and its files are not in the store:
 * they have inode numbers the store never hands out. Like ZFS's hidden .zfs,
 * /.sigil is reached by name and not listed, so that tools walking the tree
 * (cp -a, rsync, tar, the Git mirror) do not copy status files. */
#define INO_VIRTUAL 0xffff000000000000ULL
#define INO_SIGIL_DIR (INO_VIRTUAL + 1)
#define INO_CONFLICTS (INO_VIRTUAL + 2)
#define INO_LOST_DIR (INO_VIRTUAL + 3)
#define INO_STATUS_BASE (INO_VIRTUAL + 16) /* + index into the provider's names */
#define IS_STATUS(fs, ino) ((ino) >= INO_STATUS_BASE && (ino) < INO_STATUS_BASE + (fs)->nstatus)
#define INO_LOST_BASE (INO_VIRTUAL + (1ULL << 32)) /* + conflict seq: its lost content */
#define IS_VIRTUAL(ino) ((ino) >= INO_VIRTUAL)
#define IS_LOST(ino) ((ino) > INO_LOST_BASE && (ino) < INO_LOST_BASE + (1ULL << 32))

/* A generated status file's content, owned by its open handle. */
struct vfile {
	char *data;
	size_t len;
};

static sg_fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static uint32_t type_bits(uint32_t type)
{
	switch (type) {
	case SG_TYPE_DIR:
		return S_IFDIR;
	case SG_TYPE_SYMLINK:
		return S_IFLNK;
	default:
		return S_IFREG;
	}
}

static void ts_of(int64_t ns, struct timespec *ts)
{
	ts->tv_sec = ns / 1000000000;
	ts->tv_nsec = ns % 1000000000;
	if (ts->tv_nsec < 0) {
		ts->tv_nsec += 1000000000;
		ts->tv_sec--;
	}
}

static int64_t ns_of(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* A file's attributes as the kernel should see them: a dirty buffer's size and mtime win. */
static void stat_of(const sg_attr *a, struct sg_inode *in, struct stat *s)
{
	memset(s, 0, sizeof(*s));
	s->st_ino = a->id;
	s->st_mode = type_bits(a->type) | (a->mode & 07777);
	s->st_nlink = a->nlink;
	s->st_uid = a->uid;
	s->st_gid = a->gid;
	s->st_size = (off_t)a->size;
	s->st_blksize = 4096;
	ts_of(a->mtime_ns, &s->st_mtim);
	ts_of(a->ctime_ns, &s->st_ctim);
	if (in) {
		pthread_mutex_lock(&in->lock);
		if (in->dirty) {
			s->st_size = (off_t)in->len;
			ts_of(in->mtime_ns, &s->st_mtim);
		}
		pthread_mutex_unlock(&in->lock);
	}
	s->st_atim = s->st_mtim;
	s->st_blocks = (s->st_size + 511) / 512;
}

static int name_ok(fuse_ino_t parent, const char *name)
{
	size_t n = strlen(name);

	if (n > SG_NAME_MAX)
		return -ENAMETOOLONG;
	if (parent == SG_ROOT_ID && strcmp(name, RESERVED_NAME) == 0)
		return -EPERM;
	if (IS_VIRTUAL(parent))
		return -EROFS;
	return 0;
}

/* Does a change at parent/name touch the read-only /.sigil: the directory
 * itself, or a name inside it? Such a change fails with EROFS. */
static int in_sigil(fuse_ino_t parent, const char *name)
{
	return IS_VIRTUAL(parent) || (parent == SG_ROOT_ID && strcmp(name, RESERVED_NAME) == 0);
}

/* Undo one kernel reference (a reply that did not reach the kernel). */
static void inode_unref(sg_fs *fs, uint64_t ino)
{
	sg_inode_forget(&fs->inodes, ino, 1);
}

/* An entry for the kernel, with one more kernel reference to it counted:
 * counted before the kernel can forget it; undo with inode_unref() if the
 * reply does not get there. */
static void entry_ref(sg_fs *fs, const sg_attr *a, struct fuse_entry_param *e)
{
	struct sg_inode *in = sg_inode_get(&fs->inodes, a->id, SG_IGET_FIND);

	memset(e, 0, sizeof(*e));
	e->ino = a->id;
	e->generation = 1;
	e->attr_timeout = fs->attr_timeout;
	e->entry_timeout = fs->entry_timeout;
	stat_of(a, in, &e->attr);
	if (in)
		sg_inode_put(&fs->inodes, in, 0, 0);
	sg_inode_ref(&fs->inodes, a->id, 1);
}

static void reply_entry(fuse_req_t req, const sg_attr *a)
{
	sg_fs *fs = fs_of(req);
	struct fuse_entry_param e;

	entry_ref(fs, a, &e);
	if (fuse_reply_entry(req, &e) != 0)
		inode_unref(fs, a->id);
}

static void virtual_stat(fuse_ino_t ino, struct stat *s)
{
	memset(s, 0, sizeof(*s));
	s->st_ino = ino;
	if (ino == INO_SIGIL_DIR || ino == INO_LOST_DIR) {
		s->st_mode = S_IFDIR | 0555;
		s->st_nlink = 2;
	} else {
		s->st_mode = S_IFREG | 0444;
		s->st_nlink = 1;
	}
	clock_gettime(CLOCK_REALTIME, &s->st_mtim);
	s->st_atim = s->st_ctim = s->st_mtim;
}

static void reply_virtual_entry(fuse_req_t req, fuse_ino_t ino)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.generation = 1;
	/* status changes all the time: no caching */
	virtual_stat(ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static int conflict_line(void *ctx, const sg_conflict *c)
{
	FILE *f = ctx;

	fprintf(f, "%llu\t%s\t%llx\t%016llx\t%llx\t%016llx\t%zu\n", (unsigned long long)c->seq,
	        c->path, (unsigned long long)c->loser.hlc, (unsigned long long)c->loser.origin,
	        (unsigned long long)c->winner.hlc, (unsigned long long)c->winner.origin, c->len);
	return 0;
}

/* The lost content of one conflict, into a memstream. */
static int lost_content(void *ctx, const sg_conflict *c)
{
	FILE *f = ctx;

	if (c->len && fwrite(c->data, 1, c->len, f) != c->len)
		return -EIO;
	return 1; /* just this one */
}

/* Does conflict `seq` exist? */
static int lost_exists_cb(void *ctx, const sg_conflict *c)
{
	*(uint64_t *)ctx = c->seq;
	return 1;
}

static int lost_exists(sg_fs *fs, uint64_t seq)
{
	uint64_t found = 0;

	sg_store_conflicts(fs->st, seq - 1, 1, lost_exists_cb, &found);
	return found == seq;
}

struct dirsnap;
static int snap_add(struct dirsnap *d, uint64_t ino, uint32_t type, const char *name);

static int lost_list_cb(void *ctx, const sg_conflict *c)
{
	char name[24];

	snprintf(name, sizeof(name), "%llu", (unsigned long long)c->seq);
	return snap_add(ctx, INO_LOST_BASE + c->seq, SG_TYPE_FILE, name);
}

/* Generate /.sigil/conflicts: one line per conflict, tab-separated: seq, path,
 * loser hlc, loser origin, winner hlc, winner origin, bytes of lost content;
 * the lost content itself is /.sigil/lost/SEQ. */
static int virtual_open(sg_fs *fs, fuse_ino_t ino, struct vfile **out)
{
	struct vfile *v = calloc(1, sizeof(*v));
	FILE *f;
	int rc;

	if (!v)
		return -ENOMEM;
	f = open_memstream(&v->data, &v->len);
	if (!f) {
		free(v);
		return -ENOMEM;
	}
	if (ino == INO_CONFLICTS)
		rc = sg_store_conflicts(fs->st, 0, 0, conflict_line, f);
	else if (IS_STATUS(fs, ino))
		rc = fs->status_fn(fs->status_ctx, fs->status_names[ino - INO_STATUS_BASE], f);
	else if (IS_LOST(ino))
		rc = sg_store_conflicts(fs->st, ino - INO_LOST_BASE - 1, 1, lost_content, f);
	else
		rc = -EISDIR;
	if (rc == 1)
		rc = 0;
	fclose(f);
	if (rc) {
		free(v->data);
		free(v);
		return rc;
	}
	*out = v;
	return 0;
}

static void reply_attr(fuse_req_t req, const sg_attr *a, struct sg_inode *in)
{
	struct stat s;

	stat_of(a, in, &s);
	fuse_reply_attr(req, &s, fs_of(req)->attr_timeout);
}

/* Commit a dirty buffer as one change. Called with in->lock held. */
static int commit(sg_fs *fs, struct sg_inode *in)
{
	sg_attr a;
	int rc;

	if (!in->dirty || in->gone)
		return 0;
	/* the buffer's content started from in->last: if a peer's version came
	 * meanwhile, this save did not see it (the store keeps it as a conflict) */
	rc = sg_store_write_seen(fs->st, in->loaded ? &in->last : NULL, in->ino, in->buf, in->len,
	                         in->mtime_ns, sg_now_ns(), &a);
	if (rc == -ENOENT) {
		/* unlinked or replaced meanwhile: as on a local fs, the data goes with it */
		in->gone = 1;
		in->dirty = 0;
		return 0;
	}
	if (rc) {
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-FS-COMMIT",
		       "cannot save inode %llu (%zu bytes): %s", (unsigned long long)in->ino,
		       in->len, strerror(-rc));
		return rc;
	}
	in->dirty = 0;
	in->last = a;
	atomic_fetch_add(&fs->saves, 1);
	return 0;
}

static int buf_reserve(struct sg_inode *in, size_t want)
{
	char *nb;
	size_t cap;

	if (want <= in->cap)
		return 0;
	cap = in->cap ? in->cap : 4096;
	while (cap < want)
		cap *= 2;
	nb = realloc(in->buf, cap);
	if (!nb)
		return -ENOMEM;
	in->buf = nb;
	in->cap = cap;
	return 0;
}

/* Set the buffer's length, zero-filling growth. Called with in->lock held. */
static int buf_resize(struct sg_inode *in, size_t len)
{
	int rc = buf_reserve(in, len);

	if (rc)
		return rc;
	if (len > in->len)
		memset(in->buf + in->len, 0, len - in->len);
	in->len = len;
	return 0;
}

/* ---- lifecycle ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	/* the kernel's write-back cache would reorder and delay our one-change-per-save */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* POSIX ACLs are not stored: system.posix_acl_* answers EOPNOTSUPP */
	conn->want &= ~FUSE_CAP_POSIX_ACL;
	/* READDIRPLUS on the kernel's guess (the first chunk of a listing,
	 * then only after LOOKUPs in that directory), not on every chunk: an
	 * entry with its attributes is about five times the bytes, so a
	 * names-only listing of 10,000 entries took five times the round
	 * trips (fs-bench: 17.2 ms against 2.7 ms) */
}

static void commit_each(struct sg_inode *in, void *ctx)
{
	pthread_mutex_lock(&in->lock);
	commit(ctx, in);
	pthread_mutex_unlock(&in->lock);
}

static void op_destroy(void *userdata)
{
	sg_fs *fs = userdata;

	sg_itable_each(&fs->inodes, commit_each, fs);
}

/* ---- names ---- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	sg_attr a;
	int rc;

	if (strlen(name) > SG_NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (parent == SG_ROOT_ID && strcmp(name, RESERVED_NAME) == 0) {
		reply_virtual_entry(req, INO_SIGIL_DIR);
		return;
	}
	if (parent == INO_SIGIL_DIR) {
		if (strcmp(name, "conflicts") == 0)
			reply_virtual_entry(req, INO_CONFLICTS);
		else if (strcmp(name, "lost") == 0)
			reply_virtual_entry(req, INO_LOST_DIR);
		else {
			sg_fs *fs = fs_of(req);
			size_t i;
			for (i = 0; i < fs->nstatus; i++)
				if (strcmp(name, fs->status_names[i]) == 0)
					break;
			if (i < fs->nstatus)
				reply_virtual_entry(req, INO_STATUS_BASE + i);
			else
				fuse_reply_err(req, ENOENT);
		}
		return;
	}
	if (parent == INO_LOST_DIR) {
		char *end;
		unsigned long long seq = strtoull(name, &end, 10);

		if (*name && !*end && seq > 0 && seq < (1ULL << 32) && lost_exists(fs_of(req), seq))
			reply_virtual_entry(req, INO_LOST_BASE + seq);
		else
			fuse_reply_err(req, ENOENT);
		return;
	}
	rc = sg_store_lookup(fs_of(req)->st, parent, name, &a);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	reply_entry(req, &a);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	sg_inode_forget(&fs_of(req)->inodes, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	sg_fs *fs = fs_of(req);

	for (size_t i = 0; i < count; i++)
		sg_inode_forget(&fs->inodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* Attributes of ino; an unlinked file still open is served from its last attributes. */
static int attr_get(sg_fs *fs, fuse_ino_t ino, struct sg_inode *in, sg_attr *a)
{
	int rc = sg_store_getattr(fs->st, ino, a);

	if (rc == -ENOENT && in) {
		pthread_mutex_lock(&in->lock);
		if (in->loaded) {
			*a = in->last;
			a->nlink = 0;
			rc = 0;
		}
		pthread_mutex_unlock(&in->lock);
	}
	return rc;
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	sg_fs *fs = fs_of(req);
	struct sg_inode *in;
	sg_attr a;
	int rc;

	if (IS_VIRTUAL(ino)) {
		struct stat s;
		virtual_stat(ino, &s);
		fuse_reply_attr(req, &s, 0);
		return;
	}
	in = sg_inode_get(&fs->inodes, ino, SG_IGET_FIND);
	rc = attr_get(fs, ino, in, &a);

	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_attr(req, &a, in);
	if (in)
		sg_inode_put(&fs->inodes, in, 0, 0);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
	sg_fs *fs = fs_of(req);
	struct sg_inode *in;
	int64_t now = sg_now_ns();
	unsigned mask = 0;
	sg_attr want, a;
	int rc = 0;

	if (IS_VIRTUAL(ino)) {
		/* chmod, chown and times: not permitted (touch says so); a size: read-only */
		fuse_reply_err(req, (to_set & FUSE_SET_ATTR_SIZE) ? EROFS : EPERM);
		return;
	}
	in = sg_inode_get(&fs->inodes, ino, SG_IGET_FIND);
	memset(&want, 0, sizeof(want));
	if (to_set & FUSE_SET_ATTR_MODE) {
		mask |= SG_SET_MODE;
		want.mode = attr->st_mode & 07777;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		mask |= SG_SET_UID;
		want.uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		mask |= SG_SET_GID;
		want.gid = attr->st_gid;
	}
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		mask |= SG_SET_MTIME;
		want.mtime_ns = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? now : ns_of(&attr->st_mtim);
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		want.size = (uint64_t)attr->st_size;
		if (attr->st_size < 0) {
			rc = -EINVAL;
			goto out;
		}
		if (want.size > sg_store_max_file_size(fs->st)) {
			rc = -EFBIG;
			goto out;
		}
	}
	if (in) {
		/* an open file's buffer takes the size (and a new mtime) */
		pthread_mutex_lock(&in->lock);
		if (in->loaded && in->nopen && !in->gone) {
			if (to_set & FUSE_SET_ATTR_SIZE) {
				rc = buf_resize(in, want.size);
				if (rc == 0) {
					in->dirty = 1;
					in->mtime_ns = now;
				}
				to_set &= ~FUSE_SET_ATTR_SIZE;
			}
			if (mask & SG_SET_MTIME)
				in->mtime_ns = want.mtime_ns;
		}
		pthread_mutex_unlock(&in->lock);
		if (rc)
			goto out;
	}
	if (to_set & FUSE_SET_ATTR_SIZE)
		mask |= SG_SET_SIZE;
	if (mask) {
		rc = sg_store_setattr(fs->st, NULL, ino, mask, &want, now, &a);
	} else {
		rc = attr_get(fs, ino, in, &a);
	}
out:
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_attr(req, &a, in);
	if (in)
		sg_inode_put(&fs->inodes, in, 0, 0);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	void *data;
	size_t len;
	sg_attr a;
	int rc = sg_store_getattr(fs_of(req)->st, ino, &a);

	if (rc == 0 && a.type != SG_TYPE_SYMLINK)
		rc = -EINVAL;
	if (rc == 0)
		rc = sg_store_read(fs_of(req)->st, ino, &data, &len);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fuse_reply_readlink(req, data ? data : "");
	free(data);
}

static int do_create(fuse_req_t req, fuse_ino_t parent, const char *name, uint32_t type,
                     mode_t mode, const char *target, sg_attr *a)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	int rc = name_ok(parent, name);

	if (rc)
		return rc;
	return sg_store_create(fs_of(req)->st, NULL, parent, name, type, mode & 07777, ctx->uid,
	                       ctx->gid, target, target ? strlen(target) : 0, sg_now_ns(), a);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	sg_attr a;
	int rc;

	if (in_sigil(parent, name)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	/* device nodes, FIFOs and sockets have no meaning in replicated config */
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	rc = do_create(req, parent, name, SG_TYPE_FILE, mode, NULL, &a);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_entry(req, &a);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	sg_attr a;
	int rc = do_create(req, parent, name, SG_TYPE_DIR, mode, NULL, &a);

	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_entry(req, &a);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	sg_attr a;
	int rc = do_create(req, parent, name, SG_TYPE_SYMLINK, 0777, link, &a);

	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_entry(req, &a);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	/* one entry, one path: replication and the mirror have no hard links */
	fuse_reply_err(req, IS_VIRTUAL(ino) || in_sigil(newparent, newname) ? EROFS : EPERM);
}

/*
 * A file about to be unlinked or renamed over may still be opened by the
 * kernel, which looked it up just before (a reader racing a save by rename):
 * as on a local file system it must stay readable until the kernel forgets
 * it. Keep its content in the inode's buffer; the store drops the entry.
 */
static struct sg_inode *victim_hold(sg_fs *fs, fuse_ino_t parent, const char *name)
{
	struct sg_inode *in;
	sg_attr a;

	if (sg_store_lookup(fs->st, parent, name, &a) || a.type != SG_TYPE_FILE)
		return NULL;
	in = sg_inode_get(&fs->inodes, a.id, SG_IGET_KNOWN);
	if (!in)
		return NULL; /* the kernel holds no reference: nothing can open it */
	pthread_mutex_lock(&in->lock);
	in->held++; /* a release meanwhile must not drop the buffer */
	if (!in->loaded) {
		void *data;
		size_t len;

		if (sg_store_read(fs->st, a.id, &data, &len) == 0) {
			in->buf = data;
			in->len = in->cap = len;
			in->loaded = 1;
			in->mtime_ns = a.mtime_ns;
			in->last = a;
		}
	}
	pthread_mutex_unlock(&in->lock);
	return in;
}

static void victim_release(sg_fs *fs, struct sg_inode *in, int removed)
{
	if (!in)
		return;
	pthread_mutex_lock(&in->lock);
	in->held--;
	if (removed && in->loaded) {
		in->dirty = 0; /* as on a local fs, unsaved data goes with the file */
		in->gone = 1;
	} else if (!removed && in->loaded && !in->nopen && !in->dirty && !in->held) {
		/* the entry stays: the store, not a buffer nobody uses, holds its content */
		free(in->buf);
		in->buf = NULL;
		in->len = in->cap = 0;
		in->loaded = 0;
	}
	pthread_mutex_unlock(&in->lock);
	sg_inode_put(&fs->inodes, in, 0, 0);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	sg_fs *fs = fs_of(req);
	struct sg_inode *victim;
	int rc;

	if (in_sigil(parent, name)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	victim = victim_hold(fs, parent, name);
	rc = sg_store_remove(fs->st, NULL, parent, name, 0, sg_now_ns());
	victim_release(fs, victim, rc == 0);
	fuse_reply_err(req, -rc);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	int rc = in_sigil(parent, name)
	             ? -EROFS
	             : sg_store_remove(fs_of(req)->st, NULL, parent, name, 1, sg_now_ns());

	fuse_reply_err(req, -rc);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
	unsigned sflags = 0;
	int rc = in_sigil(parent, name) || in_sigil(newparent, newname)
	             ? -EROFS
	             : name_ok(newparent, newname);

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		rc = -EINVAL; /* RENAME_WHITEOUT is for overlay filesystems */
	if (flags & RENAME_NOREPLACE)
		sflags |= SG_RENAME_NOREPLACE;
	if (flags & RENAME_EXCHANGE)
		sflags |= SG_RENAME_EXCHANGE;
	if (rc == 0) {
		sg_fs *fs = fs_of(req);
		struct sg_inode *victim = sflags ? NULL : victim_hold(fs, newparent, newname);

		rc = sg_store_rename(fs->st, NULL, parent, name, newparent, newname, sflags,
		                     sg_now_ns());
		victim_release(fs, victim, rc == 0);
	}
	fuse_reply_err(req, -rc);
}

/* ---- files ---- */

/* Load the content into the inode's buffer. Called with in->lock held. */
static int load_locked(sg_fs *fs, struct sg_inode *in)
{
	void *data;
	size_t len;
	sg_attr a;
	int rc = sg_store_getattr(fs->st, in->ino, &a);

	if (rc == 0 && a.type == SG_TYPE_DIR)
		rc = -EISDIR;
	if (rc == 0)
		rc = sg_store_read(fs->st, in->ino, &data, &len);
	if (rc)
		return rc;
	free(in->buf);
	in->buf = data;
	in->len = in->cap = len;
	in->loaded = 1;
	in->dirty = 0;
	in->gone = 0;
	in->mtime_ns = a.mtime_ns;
	in->last = a;
	return 0;
}

/*
 * Write-only handles bypass the kernel's page cache (direct_io). Through the
 * cache, every write() first asks for security.capability (a GETXATTR round
 * trip, since FUSE inodes never get S_NOSEC and libfuse 3.14 cannot offer
 * HANDLE_KILLPRIV_V2) to decide what to strip; a direct write does not, and
 * strips nothing: writes_direct() says which handles, and kill_suid() does
 * the stripping here. Readers' cached pages still see the data: the kernel
 * drops the range a direct write covers. Read-write handles keep the cache,
 * which their reads and mmap need.
 */
static int writes_direct(int flags)
{
	return (flags & O_ACCMODE) == O_WRONLY;
}

/* Whether the caller of `req` is in group `gid`, primary or supplementary. */
static int in_group(fuse_req_t req, uint32_t gid)
{
	gid_t list[64];
	int i, n;

	if (fuse_req_ctx(req)->gid == gid)
		return 1;
	n = fuse_req_getgroups(req, 64, list);
	for (i = 0; i < n && i < 64; i++)
		if (list[i] == gid)
			return 1;
	return 0;
}

/* As the kernel's setattr_should_drop_suidgid() before a write: a writer
 * without CAP_FSETID (here: not root) clears setuid, and setgid where the
 * group may execute or the writer is not in the file's group. Only user.*
 * xattrs exist here, so there is no security.capability to remove. */
static int kill_suid(sg_fs *fs, fuse_req_t req, fuse_ino_t ino)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	uint32_t kill = 0;
	sg_attr a, want;
	int rc;

	if (ctx->uid == 0)
		return 0;
	rc = sg_store_getattr(fs->st, ino, &a);
	if (rc)
		return rc == -ENOENT ? 0 : rc; /* unlinked while open: nothing to keep */
	if (a.mode & S_ISUID)
		kill |= S_ISUID;
	if ((a.mode & S_ISGID) && ((a.mode & S_IXGRP) || !in_group(req, a.gid)))
		kill |= S_ISGID;
	if (!kill)
		return 0;
	memset(&want, 0, sizeof(want));
	want.mode = a.mode & 07777 & ~kill;
	return sg_store_setattr(fs->st, NULL, ino, SG_SET_MODE, &want, sg_now_ns(), NULL);
}

/* Pin the inode for an open handle. The buffer gets the content now for a
 * handle that may write, or when the kernel's cached pages are stale; a
 * read-only open of a cached file loads nothing: the kernel serves its reads
 * from the page cache, and a READ that does come loads it then (op_read). */
static int open_inode(sg_fs *fs, fuse_ino_t ino, int flags, struct sg_inode **out, int *keep)
{
	struct sg_inode *in = sg_inode_get(&fs->inodes, ino, SG_IGET_CREATE);
	int rc = 0, rdonly = (flags & O_ACCMODE) == O_RDONLY && !(flags & O_TRUNC);

	if (!in)
		return -ENOMEM;
	pthread_mutex_lock(&in->lock);
	*keep = !atomic_load(&in->stale);
	if (!in->loaded && rdonly && *keep) {
		sg_attr a;
		rc = sg_store_getattr(fs->st, ino, &a);
		if (rc == 0 && a.type == SG_TYPE_DIR)
			rc = -EISDIR;
	} else if (!in->loaded || (!*keep && !in->dirty)) {
		rc = load_locked(fs, in);
	}
	if (rc == 0) {
		atomic_store(&in->stale, 0);
		if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY && in->len) {
			in->len = 0;
			in->dirty = 1;
			in->mtime_ns = sg_now_ns();
		}
		in->nopen++;
	}
	pthread_mutex_unlock(&in->lock);
	if (rc) {
		sg_inode_put(&fs->inodes, in, 0, 0);
		return rc;
	}
	*out = in;
	return 0;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sg_inode *in;
	int keep, rc;

	if (IS_VIRTUAL(ino)) {
		struct vfile *v;

		if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
			fuse_reply_err(req, EROFS);
			return;
		}
		rc = virtual_open(fs_of(req), ino, &v);
		if (rc) {
			fuse_reply_err(req, -rc);
			return;
		}
		fi->fh = (uint64_t)(uintptr_t)v;
		fi->direct_io = 1; /* its size is not known to stat */
		if (fuse_reply_open(req, fi) != 0) {
			free(v->data);
			free(v);
		}
		return;
	}
	rc = open_inode(fs_of(req), ino, fi->flags, &in, &keep);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)in;
	fi->keep_cache = keep;
	fi->direct_io = writes_direct(fi->flags);
	/* closing a read-only handle commits nothing: no FLUSH round trip */
	fi->noflush = (fi->flags & O_ACCMODE) == O_RDONLY;
	if (fuse_reply_open(req, fi) != 0) {
		pthread_mutex_lock(&in->lock);
		in->nopen--;
		pthread_mutex_unlock(&in->lock);
		sg_inode_put(&fs_of(req)->inodes, in, 0, 0);
	}
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
	sg_fs *fs = fs_of(req);
	struct fuse_entry_param e;
	struct sg_inode *in;
	sg_attr a;
	int keep, rc = do_create(req, parent, name, SG_TYPE_FILE, mode, NULL, &a);

	rc = rc ? rc : open_inode(fs, a.id, fi->flags & ~O_TRUNC, &in, &keep);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = a.id;
	e.generation = 1;
	e.attr_timeout = fs->attr_timeout;
	e.entry_timeout = fs->entry_timeout;
	stat_of(&a, NULL, &e.attr);
	fi->fh = (uint64_t)(uintptr_t)in;
	fi->direct_io = writes_direct(fi->flags);
	sg_inode_ref(&fs->inodes, a.id, 1);
	if (fuse_reply_create(req, &e, fi) != 0) {
		inode_unref(fs, a.id);
		pthread_mutex_lock(&in->lock);
		in->nopen--;
		pthread_mutex_unlock(&in->lock);
		sg_inode_put(&fs->inodes, in, 0, 0);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	struct sg_inode *in = (struct sg_inode *)(uintptr_t)fi->fh;
	char *copy = NULL;
	size_t n = 0;

	if (IS_VIRTUAL(ino)) {
		/* reply from a private copy: a RELEASE on another thread may free
		 * the handle's buffer while the reply is still being written */
		struct vfile *v = (struct vfile *)(uintptr_t)fi->fh;
		if (off >= 0 && (size_t)off < v->len) {
			n = v->len - (size_t)off < size ? v->len - (size_t)off : size;
			copy = malloc(n);
			if (!copy) {
				fuse_reply_err(req, ENOMEM);
				return;
			}
			memcpy(copy, v->data + off, n);
		}
		fuse_reply_buf(req, copy, n);
		free(copy);
		return;
	}

	pthread_mutex_lock(&in->lock);
	if (!in->loaded && !in->gone) {
		int rc = load_locked(fs_of(req), in);
		if (rc) {
			pthread_mutex_unlock(&in->lock);
			fuse_reply_err(req, -rc);
			return;
		}
	}
	if (off >= 0 && (size_t)off < in->len) {
		n = in->len - (size_t)off < size ? in->len - (size_t)off : size;
		copy = malloc(n);
		if (copy)
			memcpy(copy, in->buf + off, n);
	}
	pthread_mutex_unlock(&in->lock);
	if (n && !copy) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	atomic_fetch_add(&fs_of(req)->reads, 1);
	atomic_fetch_add(&fs_of(req)->bytes_read, n);
	fuse_reply_buf(req, copy, n);
	free(copy);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
	sg_fs *fs = fs_of(req);
	struct sg_inode *in = (struct sg_inode *)(uintptr_t)fi->fh;
	uint64_t end = (uint64_t)off + size;
	int rc = 0;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (end > sg_store_max_file_size(fs->st)) {
		fuse_reply_err(req, EFBIG);
		return;
	}
	if (writes_direct(fi->flags) && !fi->writepage && (rc = kill_suid(fs, req, ino)) != 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_lock(&in->lock);
	if (end > in->len)
		rc = buf_resize(in, end);
	if (rc == 0) {
		if (size)
			memcpy(in->buf + off, buf, size);
		in->dirty = 1;
		in->mtime_ns = sg_now_ns();
	}
	pthread_mutex_unlock(&in->lock);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	atomic_fetch_add(&fs->writes, 1);
	atomic_fetch_add(&fs->bytes_written, size);
	fuse_reply_write(req, size);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sg_inode *in = (struct sg_inode *)(uintptr_t)fi->fh;
	int rc;

	if (IS_VIRTUAL(ino)) {
		fuse_reply_err(req, 0);
		return;
	}

	pthread_mutex_lock(&in->lock);
	rc = commit(fs_of(req), in);
	pthread_mutex_unlock(&in->lock);
	fuse_reply_err(req, -rc);
}

static void sync_done(sg_fs *fs)
{
	pthread_mutex_lock(&fs->sync_lock);
	if (--fs->syncs == 0)
		pthread_cond_broadcast(&fs->sync_cond);
	pthread_mutex_unlock(&fs->sync_lock);
}

/* An fsync's reply, from the store's writer thread once what it covers is
 * on disk. */
static void sync_reply(void *arg, int rc)
{
	fuse_req_t req = arg;
	sg_fs *fs = fs_of(req); /* before the reply frees req */

	fuse_reply_err(req, -rc);
	sync_done(fs);
}

/* Answer req once every change acknowledged so far is on disk, without
 * holding this FUSE worker meanwhile (with few workers, a waiting one is one
 * fewer for everything else); fsyncs from several callers share the journal
 * write. sg_fs_free() waits for the replies still due. */
static void sync_async(fuse_req_t req)
{
	sg_fs *fs = fs_of(req);
	int rc;

	pthread_mutex_lock(&fs->sync_lock);
	fs->syncs++;
	pthread_mutex_unlock(&fs->sync_lock);
	if ((rc = sg_store_sync_async(fs->st, sync_reply, req)) != 0) {
		fuse_reply_err(req, -rc);
		sync_done(fs);
	}
}

/*
 * fallocate(2) on the open file's buffer, which is what a later flush
 * commits. Nothing is reserved on disk (a store has no blocks to give out),
 * so plain allocation only sets a larger size, and FALLOC_FL_KEEP_SIZE alone
 * does nothing. PUNCH_HOLE (with KEEP_SIZE, as the kernel requires) and
 * ZERO_RANGE write zeros. COLLAPSE_RANGE, INSERT_RANGE and UNSHARE_RANGE:
 * EOPNOTSUPP.
 */
static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                         struct fuse_file_info *fi)
{
	sg_fs *fs = fs_of(req);
	struct sg_inode *in = (struct sg_inode *)(uintptr_t)fi->fh;
	int keep = mode & FALLOC_FL_KEEP_SIZE, rc = 0;
	int zero = mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE);
	uint64_t end;

	if (IS_VIRTUAL(ino)) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (off < 0 || len <= 0 || (mode & FALLOC_FL_PUNCH_HOLE && !keep)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	end = (uint64_t)off + (uint64_t)len;
	if (!keep && end > sg_store_max_file_size(fs->st)) {
		fuse_reply_err(req, EFBIG);
		return;
	}
	pthread_mutex_lock(&in->lock);
	if (!in->loaded && !in->gone)
		rc = load_locked(fs, in);
	if (rc == 0 && zero && (uint64_t)off < in->len) {
		memset(in->buf + off, 0, (end < in->len ? end : in->len) - (uint64_t)off);
		in->dirty = 1;
		in->mtime_ns = sg_now_ns();
	}
	if (rc == 0 && !keep && end > in->len) {
		rc = buf_resize(in, end);
		if (rc == 0) {
			in->dirty = 1;
			in->mtime_ns = sg_now_ns();
		}
	}
	pthread_mutex_unlock(&in->lock);
	fuse_reply_err(req, -rc);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct sg_inode *in = (struct sg_inode *)(uintptr_t)fi->fh;
	int rc;

	if (IS_VIRTUAL(ino)) {
		fuse_reply_err(req, 0);
		return;
	}

	pthread_mutex_lock(&in->lock);
	rc = commit(fs_of(req), in);
	pthread_mutex_unlock(&in->lock);
	if (rc == 0)
		sync_async(req);
	else
		fuse_reply_err(req, -rc);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	sg_fs *fs = fs_of(req);
	struct sg_inode *in = (struct sg_inode *)(uintptr_t)fi->fh;

	if (IS_VIRTUAL(ino)) {
		struct vfile *v = (struct vfile *)(uintptr_t)fi->fh;
		free(v->data);
		free(v);
		fuse_reply_err(req, 0);
		return;
	}

	pthread_mutex_lock(&in->lock);
	commit(fs, in);
	if (--in->nopen == 0 && !in->dirty && !in->gone && !in->held) {
		/* the last handle: the kernel's page cache keeps what it needs */
		free(in->buf);
		in->buf = NULL;
		in->len = in->cap = 0;
		in->loaded = 0;
	}
	pthread_mutex_unlock(&in->lock);
	sg_inode_put(&fs->inodes, in, 0, 0);
	fuse_reply_err(req, 0);
}

/* ---- directories ---- */

struct dirsnap {
	int store;        /* a store directory (not under /.sigil) */
	int64_t mtime_ns; /* the directory's mtime when the snapshot was taken */
	size_t n, cap;
	struct {
		uint64_t ino;
		uint32_t type;
		char *name;
	} * e;
};

static int snap_add(struct dirsnap *d, uint64_t ino, uint32_t type, const char *name)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		void *ne = realloc(d->e, cap * sizeof(*d->e));
		if (!ne)
			return -ENOMEM;
		d->e = ne;
		d->cap = cap;
	}
	d->e[d->n].name = strdup(name);
	if (!d->e[d->n].name)
		return -ENOMEM;
	d->e[d->n].ino = ino;
	d->e[d->n].type = type;
	d->n++;
	return 0;
}

static int snap_cb(void *ctx, const sg_dirent *d)
{
	return snap_add(ctx, d->id, d->type, d->name);
}

static void snap_clear(struct dirsnap *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->e[i].name);
	d->n = 0;
}

static void snap_free(struct dirsnap *d)
{
	snap_clear(d);
	free(d->e);
	free(d);
}

/* (Re)take the snapshot of store directory `ino`: ".", ".." and its entries. */
static int snap_store_dir(sg_fs *fs, struct dirsnap *d, fuse_ino_t ino)
{
	sg_attr a;
	int rc = sg_store_getattr(fs->st, ino, &a);

	snap_clear(d);
	d->store = 1;
	d->mtime_ns = rc ? 0 : a.mtime_ns;
	rc = rc ? rc : snap_add(d, ino, SG_TYPE_DIR, ".");
	rc = rc ? rc : snap_add(d, a.parent, SG_TYPE_DIR, "..");
	return rc ? rc : sg_store_list(fs->st, ino, NULL, snap_cb, d);
}

/*
 * A listing's first READDIR takes the snapshot again if the directory has
 * changed since opendir took it. The kernel stamps the listing it keeps with
 * the directory's mtime as it starts it, after opendir; a change made in
 * between, whose invalidation the kernel saw before that stamp, would
 * otherwise stay in its copy unseen (until it changed the directory itself).
 * At offset 0 nothing has been handed out from the old snapshot yet.
 */
static int snap_fresh(sg_fs *fs, struct dirsnap *d, fuse_ino_t ino, off_t off)
{
	sg_attr a;

	if (off != 0 || !d->store || sg_store_getattr(fs->st, ino, &a) != 0 ||
	    a.mtime_ns == d->mtime_ns)
		return 0;
	return snap_store_dir(fs, d, ino);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	sg_fs *fs = fs_of(req);
	struct dirsnap *d = calloc(1, sizeof(*d));
	int rc = d ? 0 : -ENOMEM;

	if (ino == INO_SIGIL_DIR) {
		rc = rc ? rc : snap_add(d, ino, SG_TYPE_DIR, ".");
		rc = rc ? rc : snap_add(d, SG_ROOT_ID, SG_TYPE_DIR, "..");
		rc = rc ? rc : snap_add(d, INO_CONFLICTS, SG_TYPE_FILE, "conflicts");
		rc = rc ? rc : snap_add(d, INO_LOST_DIR, SG_TYPE_DIR, "lost");
		for (size_t i = 0; !rc && i < fs->nstatus; i++)
			rc = snap_add(d, INO_STATUS_BASE + i, SG_TYPE_FILE, fs->status_names[i]);
	} else if (ino == INO_LOST_DIR) {
		rc = rc ? rc : snap_add(d, ino, SG_TYPE_DIR, ".");
		rc = rc ? rc : snap_add(d, INO_SIGIL_DIR, SG_TYPE_DIR, "..");
		rc = rc ? rc : sg_store_conflicts(fs->st, 0, 0, lost_list_cb, d);
	} else {
		rc = rc ? rc : snap_store_dir(fs, d, ino);
	}
	if (rc) {
		if (d)
			snap_free(d);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	/* a store directory's listing may stay in the kernel, which answers
	 * later listings itself: it drops it when it changes the directory
	 * (or its mtime moved), and sg_fs_on_visible() invalidates the
	 * directory for every change made elsewhere. The snapshot is still
	 * taken here: when the kernel's copy goes missing in the middle of a
	 * listing, the rest comes from READDIR at the offset reached, which
	 * must index the same entries as the copy did (snap_fresh() retakes
	 * it only for a listing's first READDIR) */
	fi->cache_readdir = fi->keep_cache = !IS_VIRTUAL(ino);
	if (fuse_reply_open(req, fi) != 0)
		snap_free(d);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	struct dirsnap *d = (struct dirsnap *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t pos = 0;
	int rc = buf ? snap_fresh(fs_of(req), d, ino, off) : -ENOMEM;

	if (rc) {
		free(buf);
		fuse_reply_err(req, -rc);
		return;
	}
	for (size_t i = off < 0 ? 0 : (size_t)off; i < d->n; i++) {
		struct stat s = {0};
		size_t need;

		s.st_ino = d->e[i].ino;
		s.st_mode = type_bits(d->e[i].type);
		need =
		    fuse_add_direntry(req, buf + pos, size - pos, d->e[i].name, &s, (off_t)i + 1);
		if (need > size - pos)
			break;
		pos += need;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

/* READDIRPLUS: the names with their attributes, for the parts of a listing
 * the kernel asks them for, which spares `ls -l`, find, rsync and git those
 * names' LOOKUPs. The kernel counts a reference for
 * every entry with a nonzero inode (not for "." and ".."), as for a LOOKUP;
 * the attributes are read now, not at opendir, so that the kernel's
 * attr_version check can tell them from a later invalidation. An entry gone
 * since opendir, and the entries of /.sigil, go by name only. */
static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
	sg_fs *fs = fs_of(req);
	struct dirsnap *d = (struct dirsnap *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	/* a direntplus is over 128 bytes: at most size / 128 of them fit */
	uint64_t *refs = malloc((size / 128 + 1) * sizeof(*refs));
	size_t pos = 0, nrefs = 0;
	int rc = buf && refs ? snap_fresh(fs, d, ino, off) : -ENOMEM;

	if (rc) {
		free(buf);
		free(refs);
		fuse_reply_err(req, -rc);
		return;
	}
	for (size_t i = off < 0 ? 0 : (size_t)off; i < d->n; i++) {
		const char *name = d->e[i].name;
		struct fuse_entry_param e;
		sg_attr a;
		size_t need;

		if (!IS_VIRTUAL(ino) && !IS_VIRTUAL(d->e[i].ino) && strcmp(name, ".") != 0 &&
		    strcmp(name, "..") != 0 && sg_store_getattr(fs->st, d->e[i].ino, &a) == 0) {
			entry_ref(fs, &a, &e);
		} else {
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = d->e[i].ino;
			e.attr.st_mode = type_bits(d->e[i].type);
		}
		need = fuse_add_direntry_plus(req, buf + pos, size - pos, name, &e, (off_t)i + 1);
		if (need > size - pos || (e.ino && nrefs == size / 128 + 1)) {
			if (e.ino)
				inode_unref(fs, e.ino);
			break;
		}
		pos += need;
		if (e.ino)
			refs[nrefs++] = e.ino;
	}
	if (fuse_reply_buf(req, buf, pos) != 0)
		for (size_t k = 0; k < nrefs; k++)
			inode_unref(fs, refs[k]);
	free(refs);
	free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	snap_free((struct dirsnap *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	sync_async(req);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	sg_fs *fs = fs_of(req);
	sg_store_stats ss;
	struct statvfs sv;

	if (statvfs(fs->data_dir, &sv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	sg_store_stats_get(fs->st, &ss);
	sv.f_namemax = SG_NAME_MAX;
	sv.f_files = ss.entries + sv.f_ffree;
	sv.f_favail = sv.f_ffree;
	fuse_reply_statfs(req, &sv);
}

/* ---- extended attributes: user.* stored with the entry ---- */

static int xattr_ns(const char *name)
{
	if (strncmp(name, "system.posix_acl_", 17) == 0)
		return -EOPNOTSUPP;
	if (strncmp(name, "user.", 5) == 0)
		return 0;
	return -ENOTSUP;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
	int rc = IS_VIRTUAL(ino) ? -EROFS : xattr_ns(name);

	if (rc == 0)
		rc = sg_store_setxattr(fs_of(req)->st, NULL, ino, name, value, size, flags,
		                       sg_now_ns());
	fuse_reply_err(req, -rc);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	void *val = NULL;
	size_t len = 0;
	int rc = IS_VIRTUAL(ino) ? -ENODATA : xattr_ns(name);

	if (rc == -ENOTSUP)
		rc = -ENODATA; /* security.capability and friends: simply not there */
	if (rc == 0)
		rc = sg_store_getxattr(fs_of(req)->st, ino, name, &val, &len);
	if (rc)
		fuse_reply_err(req, -rc);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, len);
	free(val);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *names = NULL;
	size_t len = 0;
	int rc = IS_VIRTUAL(ino) ? 0 : sg_store_listxattr(fs_of(req)->st, ino, &names, &len);

	if (rc)
		fuse_reply_err(req, -rc);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, names, len);
	free(names);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	int rc = IS_VIRTUAL(ino) ? -EROFS : xattr_ns(name);

	if (rc == -ENOTSUP)
		rc = -ENODATA;
	if (rc == 0)
		rc = sg_store_removexattr(fs_of(req)->st, NULL, ino, name, sg_now_ns());
	fuse_reply_err(req, -rc);
}

static const struct fuse_lowlevel_ops sg_ops = {
    .init = op_init,
    .destroy = op_destroy,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .fsync = op_fsync,
    .fallocate = op_fallocate,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .fsyncdir = op_fsyncdir,
    .statfs = op_statfs,
    .setxattr = op_setxattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
    .create = op_create,
};

/* ---- changes that did not come through the kernel ---- */

static void inval_push(sg_fs *fs, uint64_t parent, const char *name, uint64_t ino)
{
	struct inval *iv = calloc(1, sizeof(*iv));

	if (!iv)
		return;
	iv->parent = parent;
	iv->ino = ino;
	if (name && !(iv->name = strdup(name))) {
		free(iv);
		return;
	}
	pthread_mutex_lock(&fs->inval_lock);
	if (fs->inval_tail)
		fs->inval_tail->next = iv;
	else
		fs->inval_head = iv;
	fs->inval_tail = iv;
	pthread_cond_signal(&fs->inval_cond);
	pthread_mutex_unlock(&fs->inval_lock);
}

/* Runs on the store's writer thread: it must not wait for anything a request
 * handler can hold while it waits for the writer (an inode's lock): it only
 * flags the inode; the next open reloads the content. */
static void mark_stale(sg_fs *fs, uint64_t ino)
{
	sg_inode_mark_stale(&fs->inodes, ino);
}

void sg_fs_on_visible(void *arg, const sg_note *notes, size_t n)
{
	sg_fs *fs = arg;
	uint64_t dirs[16];
	size_t ndirs = 0;

	for (size_t i = 0; i < n; i++) {
		const sg_note *nt = &notes[i];

		if (nt->local == SG_NOTE_LOCAL)
			continue; /* the kernel made it, the kernel knows (not a put's) */
		mark_stale(fs, nt->id);
		/* the kernel holds the root from the mount on, without a LOOKUP */
		if (nt->parent == SG_ROOT_ID || sg_inode_known(&fs->inodes, nt->parent)) {
			size_t k = 0;

			inval_push(fs, nt->parent, nt->name, 0);
			/* and the directory itself: its attributes and the
			 * listing the kernel may keep; once per directory in a
			 * batch (past 16 directories, once per change) */
			while (k < ndirs && dirs[k] != nt->parent)
				k++;
			if (k == ndirs) {
				inval_push(fs, 0, NULL, nt->parent);
				if (ndirs < sizeof(dirs) / sizeof(dirs[0]))
					dirs[ndirs++] = nt->parent;
			}
		}
		if (sg_inode_known(&fs->inodes, nt->id))
			inval_push(fs, 0, NULL, nt->id);
		if (nt->old_id && nt->old_id != nt->id) {
			mark_stale(fs, nt->old_id);
			if (sg_inode_known(&fs->inodes, nt->old_id))
				inval_push(fs, 0, NULL, nt->old_id);
		}
	}
}

static void *inval_main(void *arg)
{
	sg_fs *fs = arg;

	sg_thread_name("sigil-inval");
	for (;;) {
		struct inval *iv;

		pthread_mutex_lock(&fs->inval_lock);
		while (!fs->inval_head && !fs->inval_stop)
			pthread_cond_wait(&fs->inval_cond, &fs->inval_lock);
		iv = fs->inval_head;
		if (iv) {
			fs->inval_head = iv->next;
			if (!fs->inval_head)
				fs->inval_tail = NULL;
		}
		pthread_mutex_unlock(&fs->inval_lock);
		if (!iv)
			break;
		if (fs->mounted) {
			int rc;
			if (iv->name)
				rc = fuse_lowlevel_notify_inval_entry(fs->se, iv->parent, iv->name,
				                                      strlen(iv->name));
			else
				rc = fuse_lowlevel_notify_inval_inode(fs->se, iv->ino, 0, 0);
			if (rc == 0)
				atomic_fetch_add(&fs->invalidations, 1);
			else if (rc != -ENOENT)
				sg_log(SG_LOG_DEBUG, DOMAIN, "SIGIL-FS-INVAL",
				       "invalidation of %llu/%s: %s",
				       (unsigned long long)(iv->name ? iv->parent : iv->ino),
				       iv->name ? iv->name : "", strerror(-rc));
		}
		free(iv->name);
		free(iv);
	}
	return NULL;
}

uint64_t sg_fs_invalidations(sg_fs *fs)
{
	return atomic_load(&fs->invalidations);
}

void sg_fs_stats_get(sg_fs *fs, sg_fs_stats *out)
{
	out->reads = atomic_load(&fs->reads);
	out->writes = atomic_load(&fs->writes);
	out->bytes_read = atomic_load(&fs->bytes_read);
	out->bytes_written = atomic_load(&fs->bytes_written);
	out->saves = atomic_load(&fs->saves);
	out->invalidations = atomic_load(&fs->invalidations);
	out->workers = atomic_load(&fs->workers);
	size_t full, compact;
	sg_itable_counts(&fs->inodes, &full, &compact);
	out->inodes = full + compact;
	out->inodes_full = full;
}

void sg_fs_set_status(sg_fs *fs, const char *const *names, sg_fs_status_fn fn, void *ctx)
{
	size_t n = 0;

	while (names && names[n] && n < 16)
		n++;
	fs->status_names = names;
	fs->nstatus = fn ? n : 0;
	fs->status_fn = fn;
	fs->status_ctx = ctx;
}

/* ---- session ---- */

int sg_fs_new(sg_fs **out, sg_store *st, const sg_fs_opts *opts, struct fuse_args *args)
{
	sg_fs *fs = calloc(1, sizeof(*fs));
	int rc;

	if (!fs)
		return -ENOMEM;
	fs->st = st;
	fs->data_dir = strdup(opts && opts->data_dir ? opts->data_dir : "/");
	fs->entry_timeout = opts && opts->entry_timeout > 0 ? opts->entry_timeout : 10.0;
	fs->attr_timeout = opts && opts->attr_timeout > 0 ? opts->attr_timeout : 10.0;
	fs->debug = opts ? opts->debug : 0;
	pthread_mutex_init(&fs->inval_lock, NULL);
	pthread_cond_init(&fs->inval_cond, NULL);
	pthread_mutex_init(&fs->sync_lock, NULL);
	pthread_cond_init(&fs->sync_cond, NULL);
	rc = fs->data_dir ? sg_itable_init(&fs->inodes) : -ENOMEM;
	if (rc) {
		free(fs->data_dir);
		free(fs);
		return rc;
	}
	fs->se = fuse_session_new(args, &sg_ops, sizeof(sg_ops), fs);
	if (!fs->se) {
		sg_itable_fini(&fs->inodes);
		free(fs->data_dir);
		free(fs);
		return -EINVAL;
	}
	rc = pthread_create(&fs->inval_thread, NULL, inval_main, fs);
	if (rc == 0)
		fs->inval_started = 1;
	*out = fs;
	return 0;
}

int sg_fs_mount(sg_fs *fs, const char *mountpoint)
{
	if (fuse_session_mount(fs->se, mountpoint) != 0)
		return -EIO;
	fs->mounted = 1;
	return 0;
}

int sg_fs_signals(sg_fs *fs)
{
	if (fuse_set_signal_handlers(fs->se) != 0)
		return -EIO;
	fs->signals = 1;
	return 0;
}

/* One worker per online CPU, SG_FS_THREADS_MIN to SG_FS_THREADS_MAX. */
static unsigned default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < SG_FS_THREADS_MIN)
		return SG_FS_THREADS_MIN;
	return n > SG_FS_THREADS_MAX ? SG_FS_THREADS_MAX : (unsigned)n;
}

int sg_fs_run(sg_fs *fs, int single, unsigned threads)
{
	struct fuse_loop_config *cfg;
	int rc;

	if (!threads)
		threads = default_threads();
	atomic_store(&fs->workers, single ? 1 : threads);
	if (single) {
		rc = fuse_session_loop(fs->se);
		return rc < 0 ? rc : 0;
	}
	if (!(cfg = fuse_loop_cfg_create()))
		return -ENOMEM;
	/* At most `threads` workers, all kept. A request that finds every
	 * worker asleep wakes one, and with more workers than CPUs those
	 * wakeups cost more than the parallelism gives: on 2 CPUs, with 4
	 * callers, 2 workers took 1.9 context switches and 30 us of CPU per op
	 * where 4 took 3.3 and 38 us, and ran every op that reaches the daemon
	 * faster (bench/results/fs-threads.md). Two at least, so that a worker held
	 * up by a cold page of the store leaves another. No handler waits for
	 * a journal write: fsync is answered from the writer thread
	 * (sync_reply). */
	fuse_loop_cfg_set_clone_fd(cfg, 1);
	fuse_loop_cfg_set_max_threads(cfg, threads);
	fuse_loop_cfg_set_idle_threads(cfg, threads);
	rc = fuse_session_loop_mt(fs->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return rc < 0 ? rc : 0;
}

void sg_fs_exit(sg_fs *fs)
{
	fuse_session_exit(fs->se);
}

void sg_fs_free(sg_fs *fs)
{
	if (!fs)
		return;
	/* the loop has ended; fsyncs the store still holds are answered on
	 * this session, so it stays until they are (the store is open: the
	 * writer answers them, with an error if it must) */
	pthread_mutex_lock(&fs->sync_lock);
	while (fs->syncs)
		pthread_cond_wait(&fs->sync_cond, &fs->sync_lock);
	pthread_mutex_unlock(&fs->sync_lock);
	if (fs->inval_started) {
		pthread_mutex_lock(&fs->inval_lock);
		fs->inval_stop = 1;
		pthread_cond_signal(&fs->inval_cond);
		pthread_mutex_unlock(&fs->inval_lock);
		pthread_join(fs->inval_thread, NULL);
	}
	/* anything not yet saved (a crash of the kernel side, a lazy unmount) */
	sg_itable_each(&fs->inodes, commit_each, fs);
	if (fs->signals)
		fuse_remove_signal_handlers(fs->se);
	if (fs->mounted)
		fuse_session_unmount(fs->se);
	fs->mounted = 0;
	fuse_session_destroy(fs->se);
	for (struct inval *iv = fs->inval_head, *next; iv; iv = next) {
		next = iv->next;
		free(iv->name);
		free(iv);
	}
	sg_itable_fini(&fs->inodes);
	pthread_mutex_destroy(&fs->inval_lock);
	pthread_cond_destroy(&fs->inval_cond);
	pthread_mutex_destroy(&fs->sync_lock);
	pthread_cond_destroy(&fs->sync_cond);
	free(fs->data_dir);
	free(fs);
}
