/* store.c: the versioned entry store over LMDB: open and close, every read, and
 * the public mutation calls, which queue ops for the writer (writer.c). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "lmdb/store_i.h"
#include "log.h"
#include "util.h"

#define DOMAIN "store"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15) /* Linux 6.7 */
#endif

/* The one place LMDB's codes become errnos. */
int sg_mdb_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
		return -ENOSPC;
	case MDB_TXN_FULL:
	case MDB_CURSOR_FULL:
	case MDB_PAGE_FULL:
		return -E2BIG;
	case MDB_BAD_VALSIZE:
		return -ENAMETOOLONG;
	case MDB_READERS_FULL:
		return -EAGAIN;
	case MDB_INVALID:
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_VERSION_MISMATCH:
	case MDB_PANIC:
	case MDB_BAD_TXN:
	case MDB_BAD_RSLOT:
	case MDB_INCOMPATIBLE:
	case MDB_BAD_DBI:
	case MDB_MAP_RESIZED:
	case MDB_TLS_FULL:
	case MDB_DBS_FULL:
		return -EIO;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

void sg_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)v;
		v >>= 8;
	}
}

uint64_t sg_get_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

int sg_name_check(const char *name, size_t len)
{
	if (len == 0 || (len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		return -EINVAL;
	if (memchr(name, '/', len) || memchr(name, '\0', len))
		return -EINVAL;
	if (len > SG_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* ---- small readers shared with writer.c ---- */

int sg_rec_get(sg_store *st, MDB_txn *txn, uint64_t id, struct sg_rec *rec, char *name)
{
	unsigned char k[8];
	MDB_val key = {8, k}, val;
	int rc;

	sg_be64(k, id);
	rc = mdb_get(txn, st->ent, &key, &val);
	if (rc)
		return sg_mdb_err(rc);
	if (val.mv_size < sizeof(*rec))
		return -EIO;
	memcpy(rec, val.mv_data, sizeof(*rec));
	if (rec->namelen > SG_NAME_MAX || val.mv_size != sizeof(*rec) + rec->namelen)
		return -EIO;
	if (name) {
		memcpy(name, (char *)val.mv_data + sizeof(*rec), rec->namelen);
		name[rec->namelen] = '\0';
	}
	return 0;
}

void sg_rec_to_attr(uint64_t id, const struct sg_rec *rec, sg_attr *out)
{
	memset(out, 0, sizeof(*out));
	out->id = id;
	out->parent = rec->parent;
	out->type = rec->type;
	out->mode = rec->mode & 07777;
	out->uid = rec->uid;
	out->gid = rec->gid;
	out->nlink = rec->type == SG_TYPE_DIR ? 2 + rec->nsubdir : 1;
	out->size = rec->size;
	out->mtime_ns = rec->mtime_ns;
	out->ctime_ns = rec->ctime_ns;
	out->version = rec->version;
	out->stamp.hlc = rec->hlc;
	out->stamp.origin = rec->origin;
	out->stamp.seq = rec->seq;
	out->base.hlc = rec->base_hlc;
	out->base.origin = rec->base_origin;
	out->base.seq = rec->base_seq;
}

int sg_dirent_get(sg_store *st, MDB_txn *txn, uint64_t parent, const char *name, uint64_t *id,
                  uint32_t *type)
{
	unsigned char k[8 + SG_NAME_MAX];
	size_t n = strlen(name);
	MDB_val key, val;
	int rc;

	if (n > SG_NAME_MAX)
		return -ENAMETOOLONG;
	sg_be64(k, parent);
	memcpy(k + 8, name, n);
	key.mv_size = 8 + n;
	key.mv_data = k;
	rc = mdb_get(txn, st->dir, &key, &val);
	if (rc)
		return sg_mdb_err(rc);
	if (val.mv_size != 9)
		return -EIO;
	*id = sg_get_be64(val.mv_data);
	if (type)
		*type = ((unsigned char *)val.mv_data)[8];
	return 0;
}

int sg_meta_get(sg_store *st, MDB_txn *txn, const char *key, uint64_t *out)
{
	MDB_val k = {strlen(key), (void *)key}, v;
	int rc = mdb_get(txn, st->meta, &k, &v);

	if (rc)
		return sg_mdb_err(rc);
	if (v.mv_size != 8)
		return -EIO;
	memcpy(out, v.mv_data, 8);
	return 0;
}

int sg_meta_get0(sg_store *st, MDB_txn *txn, const char *key, uint64_t *out)
{
	int rc = sg_meta_get(st, txn, key, out);

	if (rc == -ENOENT) {
		*out = 0;
		rc = 0;
	}
	return rc;
}

int sg_horizon_read(sg_store *st, MDB_txn *txn, sg_horizon *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc = sg_meta_get0(st, txn, "purge_version", &out->version);
	rc = rc ? rc : sg_meta_get0(st, txn, "purge_hlc", &out->stamp.hlc);
	rc = rc ? rc : sg_meta_get0(st, txn, "purge_origin", &out->stamp.origin);
	rc = rc ? rc : sg_meta_get0(st, txn, "purge_seq", &out->stamp.seq);
	return rc;
}

int sg_path_build(sg_store *st, MDB_txn *txn, uint64_t id, char **out)
{
	char name[SG_NAME_MAX + 1];
	char *buf, *p;
	struct sg_rec rec;
	size_t cap = SG_PATH_MAX + 1;
	int rc, depth = 0;

	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	p = buf + cap - 1;
	*p = '\0';
	while (id != SG_ROOT_ID) {
		rc = sg_rec_get(st, txn, id, &rec, name);
		if (rc)
			goto fail;
		if ((size_t)(p - buf) < rec.namelen + (*p ? 1u : 0u)) {
			rc = -ENAMETOOLONG;
			goto fail;
		}
		if (*p)
			*--p = '/';
		p -= rec.namelen;
		memcpy(p, name, rec.namelen);
		id = rec.parent;
		if (++depth > SG_PATH_MAX) {
			rc = -ELOOP;
			goto fail;
		}
	}
	memmove(buf, p, strlen(p) + 1);
	*out = buf;
	return 0;
fail:
	free(buf);
	return rc;
}

int sg_xattrs_read(sg_store *st, MDB_txn *txn, uint64_t id, sg_xattr **out, size_t *n, void **block)
{
	unsigned char k[8];
	MDB_cursor *cur;
	MDB_val key = {8, k}, val;
	size_t count = 0, bytes = 0;
	char *blk = NULL, *p = NULL;
	sg_xattr *xs = NULL;
	int rc, op;

	*out = NULL;
	*n = 0;
	*block = NULL;
	rc = mdb_cursor_open(txn, st->xattr, &cur);
	if (rc)
		return sg_mdb_err(rc);
	/* two passes: size, then copy */
	for (int pass = 0; pass < 2; pass++) {
		sg_be64(k, id);
		key.mv_size = 8;
		key.mv_data = k;
		op = MDB_SET_RANGE;
		if (pass == 1) {
			if (!count)
				break;
			blk = malloc(count * sizeof(*xs) + bytes);
			if (!blk) {
				mdb_cursor_close(cur);
				return -ENOMEM;
			}
			xs = (sg_xattr *)blk;
			p = blk + count * sizeof(*xs);
			count = 0;
		}
		for (;;) {
			int r = mdb_cursor_get(cur, &key, &val, op);
			size_t nl;

			op = MDB_NEXT;
			if (r == MDB_NOTFOUND)
				break;
			if (r) {
				mdb_cursor_close(cur);
				if (pass == 1)
					free(blk);
				return sg_mdb_err(r);
			}
			if (key.mv_size <= 8 || sg_get_be64(key.mv_data) != id)
				break;
			nl = key.mv_size - 8;
			if (pass == 0) {
				bytes += nl + 1 + val.mv_size + 1;
			} else {
				memcpy(p, (char *)key.mv_data + 8, nl);
				p[nl] = '\0';
				xs[count].name = p;
				p += nl + 1;
				if (val.mv_size)
					memcpy(p, val.mv_data, val.mv_size);
				p[val.mv_size] = '\0';
				xs[count].value = p;
				xs[count].len = val.mv_size;
				p += val.mv_size + 1;
			}
			count++;
		}
	}
	mdb_cursor_close(cur);
	if (count) {
		*out = xs;
		*n = count;
		*block = blk;
	}
	return 0;
}

/* ---- read transactions ----
 *
 * A reader sees every change acknowledged before it began. The writer
 * acknowledges a local change once it is applied to its open transaction
 * and commits within sync_delay (writer.c); while such a transaction is
 * open it is published in st->wtxn, and a reader borrows it under
 * wtxn_lock rather than open a snapshot that lacks those changes. The
 * borrow is per thread and re-entrant (a listing's callback may read
 * again), and a thread may hold borrows of a few stores at once. */

#define BORROW_MAX 4
static _Thread_local struct {
	sg_store *st;
	int depth;
} borrowed[BORROW_MAX];

/* A snapshot of what LMDB holds committed (holding the map lock shared). */
static int snapshot(sg_store *st, MDB_txn **txn)
{
	int rc;

	pthread_rwlock_rdlock(&st->map_lock);
	rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, txn);
	if (rc) {
		pthread_rwlock_unlock(&st->map_lock);
		return sg_mdb_err(rc);
	}
	return 0;
}

/* Borrow the writer's open transaction, if there is one; with `durable`,
 * only once what it holds is in the journal. 0: borrowed. */
static int borrow(sg_store *st, MDB_txn **txn, int durable)
{
	int slot = -1;

	for (int i = 0; i < BORROW_MAX; i++) {
		if (borrowed[i].depth && borrowed[i].st == st) {
			/* this thread holds wtxn_lock already */
			if (durable && sg_writer_make_durable_locked(st, 0) != 0)
				return -1;
			borrowed[i].depth++;
			*txn = st->wtxn;
			return 0;
		}
		if (!borrowed[i].depth && slot < 0)
			slot = i;
	}
	if (slot < 0)
		return -1; /* a thread nesting reads of more than BORROW_MAX stores,
		              which sigilfs never does: a snapshot */
	sg_wtxn_lock(st);
	/* first: it may wait (releasing the lock) for a batch being written */
	if ((!durable || sg_writer_make_durable_locked(st, 1) == 0) && st->wtxn) {
		borrowed[slot].st = st;
		borrowed[slot].depth = 1;
		*txn = st->wtxn;
		return 0;
	}
	pthread_mutex_unlock(&st->wtxn_lock);
	return -1;
}

/*
 * A store that refuses changes (st->broken) lost from view what its last
 * checkpoint should have committed: changes made durable in the journal,
 * which only a restart's replay brings back. It serves no read then: an
 * older state of the tree, files gone and contents rolled back without an
 * error, is worse than EIO for configuration.
 */
int sg_rd_begin(sg_store *st, MDB_txn **txn)
{
	if (atomic_load(&st->broken))
		return -EIO;
	if (borrow(st, txn, 0) == 0)
		return 0;
	/* nothing uncommitted: a snapshot */
	return snapshot(st, txn);
}

int sg_rd_begin_committed(sg_store *st, MDB_txn **txn)
{
	if (atomic_load(&st->broken))
		return -EIO;
	/* with the journal, durable changes live in the writer's open
	 * transaction until its checkpoint: borrow it once all it holds is */
	if (st->jn && borrow(st, txn, 1) == 0)
		return 0;
	return snapshot(st, txn);
}

void sg_rd_end(sg_store *st, MDB_txn *txn)
{
	for (int i = 0; i < BORROW_MAX; i++) {
		if (borrowed[i].depth && borrowed[i].st == st && txn == st->wtxn) {
			if (--borrowed[i].depth == 0) {
				borrowed[i].st = NULL;
				pthread_mutex_unlock(&st->wtxn_lock);
				sg_map_trim(st, 1);
			}
			return;
		}
	}
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&st->map_lock);
	sg_map_trim(st, 1);
}

/* The process's resident file-backed pages (RssFile and shared memory:
 * statm's third field), bytes; 0 if unknown. One pread of statm, kept open
 * (two syscalls less than opening it each time: it is read every few
 * reads). /proc/self is the opener's process: a store is not used across a
 * fork (LMDB forbids it). */
static uint64_t rss_file(sg_store *st)
{
	char buf[160];
	unsigned long size, resident, shared;
	ssize_t n = -1;

	pthread_mutex_lock(&st->statm_lock);
	for (int attempt = 0; attempt < 2 && n <= 0; attempt++) {
		if (st->statm_fd >= 0 && attempt) {
			close(st->statm_fd); /* it failed: open it again, once */
			st->statm_fd = -1;
		}
		if (st->statm_fd < 0)
			st->statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
		if (st->statm_fd >= 0)
			n = pread(st->statm_fd, buf, sizeof(buf) - 1, 0);
	}
	pthread_mutex_unlock(&st->statm_lock);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (sscanf(buf, "%lu %lu %lu", &size, &resident, &shared) != 3)
		return 0;
	return (uint64_t)shared * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Find the map of the store's file in /proc/self/maps, by the file's device
 * and inode (LMDB does not say where its map is unless it is fixed). With
 * the map lock held shared. 0, or -errno. */
static int map_find(sg_store *st)
{
	struct stat sb;
	char line[640];
	int fd, rc = -ENOENT;
	FILE *maps;

	if (mdb_env_get_fd(st->env, &fd) != 0 || fstat(fd, &sb) != 0)
		return -EIO;
	if (!(maps = fopen("/proc/self/maps", "re")))
		return -errno;
	while (fgets(line, sizeof(line), maps)) {
		unsigned long start, end, off, ino;
		unsigned maj, min;

		/* the device shown there is the superblock's, which is not
		 * stat's on some file systems (btrfs subvolumes): or the name */
		if (sscanf(line, "%lx-%lx %*s %lx %x:%x %lu", &start, &end, &off, &maj, &min,
		           &ino) != 6 ||
		    ino != sb.st_ino || off != 0 ||
		    (makedev(maj, min) != sb.st_dev && !strstr(line, "/data.mdb\n")))
			continue;
		st->map_addr = (char *)start;
		st->map_len = end - start;
		st->trim_pos = 0;
		rc = 0;
		break;
	}
	fclose(maps);
	return rc;
}

/*
 * On a fault in a file mapping the kernel maps the faulting page and the
 * neighbours it finds in the page cache (fault-around: 16 pages). A lookup
 * in a large store uses one page of them: on the 1M-file store each warm
 * lookup mapped about 20 pages, so the map passed max_mapped every few
 * dozen lookups, and each drop of the excess (and each fault after it) fell
 * on a lookup (bench/results/scale.md). The kernel skips fault-around on a
 * range registered with a userfaultfd for write-protect faults. The map is
 * read-only: no write ever faults there, and with the asynchronous mode
 * (Linux 6.7) the kernel would resolve such a fault itself, so nothing ever
 * waits on this descriptor; it is never read. A fault then maps only its
 * page. Without the mode (older kernels), faults map around as before.
 * Only once the store's used part is past the bound: a store the bound
 * lets stay mapped whole is better served by fault-around, which saves
 * faults on scans. With map_lock held, shared by the one trimming, or
 * exclusively.
 */
void sg_map_watch(sg_store *st)
{
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC};
	struct uffdio_register reg = {.mode = UFFDIO_REGISTER_MODE_WP};
	MDB_envinfo info;

	if (st->uffd == -2 || mdb_env_info(st->env, &info) != 0 ||
	    ((uint64_t)info.me_last_pgno + 1) * (uint64_t)sysconf(_SC_PAGESIZE) <= st->max_mapped ||
	    (!st->map_addr && map_find(st) != 0))
		return;
	if (st->uffd == -1) {
		int fd =
		    (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
		int err = errno;

		if (fd >= 0 && ioctl(fd, UFFDIO_API, &api) != 0)
			err = errno;
		else if (fd >= 0) {
			st->uffd = fd;
			err = 0;
		}
		if (err) {
			sg_log(SG_LOG_INFO, DOMAIN, "SIGIL-STORE-AROUND",
			       "no asynchronous userfaultfd (%s): each fault on the store maps its "
			       "neighbours too",
			       strerror(err));
			if (fd >= 0)
				close(fd);
			st->uffd = -2;
			return;
		}
	}
	reg.range.start = (uintptr_t)st->map_addr;
	reg.range.len = st->map_len;
	if (ioctl(st->uffd, UFFDIO_REGISTER, &reg) != 0)
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-STORE-AROUND",
		       "cannot register the store's map with userfaultfd: %s", strerror(errno));
}

/*
 * Whether map page `pgno`, mapped at `p`, is a B-tree branch page or a meta
 * page: the pages every lookup walks through. This reads LMDB's page header
 * (its file format, frozen since 0.9: the page's own number in the first 8
 * bytes, the flags at byte 10; P_BRANCH 0x01, P_META 0x08, P_LEAF 0x02,
 * P_OVERFLOW 0x04). An overflow page's continuation has no header and could
 * look like one by chance: that page is then kept mapped, nothing more.
 */
static bool map_page_upper(const char *p, uint64_t pgno)
{
	uint64_t own;
	uint16_t flags;

	memcpy(&own, p, sizeof(own));
	memcpy(&flags, p + 10, sizeof(flags));
	return own == pgno && (flags & (0x01 | 0x08)) && !(flags & (0x02 | 0x04));
}

/*
 * Unmap the runs in iov[0..n). Each madvise call flushes the TLB, which
 * costs about 30 us on this kind of machine however little it unmaps:
 * process_madvise on this process (Linux 6.13 and later take MADV_DONTNEED
 * there) unmaps them all in one call. Where it is refused, one madvise per
 * run. By the one trimming.
 */
static void map_unmap(sg_store *st, struct iovec *iov, size_t n)
{
	size_t want = 0;

	if (!n)
		return;
	if (st->pidfd == -1) {
		st->pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
		if (st->pidfd < 0)
			st->pidfd = -2;
	}
	for (size_t i = 0; i < n; i++)
		want += iov[i].iov_len;
	if (st->pidfd >= 0 &&
	    syscall(SYS_process_madvise, st->pidfd, iov, n, MADV_DONTNEED, 0) == (long)want)
		return;
	if (st->pidfd >= 0) {
		close(st->pidfd); /* refused (or done in part): not again */
		st->pidfd = -2;
	}
	for (size_t i = 0; i < n; i++)
		madvise(iov[i].iov_base, iov[i].iov_len, MADV_DONTNEED);
}

#define MAP_IOV 256

/* Add a run to iov (MAP_IOV of them), unmapping those first if it is full. */
static void map_unmap_add(sg_store *st, struct iovec *iov, size_t *n, char *base, size_t len)
{
	if (*n == MAP_IOV) {
		map_unmap(st, iov, *n);
		*n = 0;
	}
	iov[*n].iov_base = base;
	iov[(*n)++].iov_len = len;
}

/*
 * Unmap the map's pages in [off, off + len) (page-aligned), but keep the
 * branch and meta pages that are mapped: every lookup walks through the
 * upper levels of the B-trees, and a branch page dropped costs the next
 * lookup that passes there a fault. Which pages are mapped comes from
 * /proc/self/pagemap (bit 63: present), so that finding them faults
 * nothing in; their headers say which are branch pages. (A page mapped by
 * fault-around and never touched can cost a fault in the hypervisor when
 * its header is read, about 1.5 us here; with fault-around off, sg_map_watch,
 * every mapped page was touched.) Without pagemap, the whole range goes.
 * Returns the pages kept. With the map lock held shared, by the one
 * trimming.
 */
static uint64_t map_drop(sg_store *st, size_t off, size_t len)
{
	const size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	uint64_t ents[512], kept = 0;
	struct iovec iov[MAP_IOV];
	size_t first = off / pg, n = len / pg, run = off, i = 0, niov = 0;

	if (st->pagemap_fd == -1) {
		st->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		if (st->pagemap_fd < 0)
			st->pagemap_fd = -2;
	}
	while (st->pagemap_fd >= 0 && i < n) {
		size_t want = n - i < 512 ? n - i : 512;
		uintptr_t vpage = (uintptr_t)(st->map_addr + off) / pg + i;
		ssize_t got = pread(st->pagemap_fd, ents, want * sizeof(ents[0]),
		                    (off_t)(vpage * sizeof(ents[0])));

		if (got <= 0 || got % (ssize_t)sizeof(ents[0]))
			break; /* the rest of the range goes whole */
		for (size_t j = 0; j < (size_t)got / sizeof(ents[0]); j++, i++) {
			size_t at = off + i * pg;

			if (!(ents[j] >> 63) || !map_page_upper(st->map_addr + at, first + i))
				continue;
			if (at > run)
				map_unmap_add(st, iov, &niov, st->map_addr + run, at - run);
			run = at + pg;
			kept++;
		}
	}
	if (off + len > run)
		map_unmap_add(st, iov, &niov, st->map_addr + run, off + len - run);
	map_unmap(st, iov, niov);
	return kept;
}

/* Where the map is, under a fresh snapshot: the lock the snapshot holds
 * keeps it there until sg_rd_end (map_find is the trimmer's: wait out a
 * drop, 1 s at most). 0, or -1 with no snapshot held. */
static int warm_hold(sg_store *st, MDB_txn **txn, const char **base, uint64_t *last)
{
	const size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	MDB_envinfo info;
	size_t len;

	if (snapshot(st, txn) != 0)
		return -1;
	for (int i = 0; atomic_exchange(&st->trimming, 1); i++) {
		if (i == 1000 || atomic_load(&st->warm_stop)) {
			sg_rd_end(st, *txn);
			return -1;
		}
		usleep(1000);
	}
	if (!st->map_addr)
		map_find(st);
	*base = st->map_addr;
	len = st->map_len;
	atomic_store(&st->trimming, 0);
	if (!*base || len < pg || mdb_env_info(st->env, &info) != 0) {
		sg_rd_end(st, *txn);
		return -1;
	}
	*last = info.me_last_pgno;
	if ((*last + 1) * pg > len)
		*last = len / pg - 1;
	return 0;
}

/*
 * Map the branch pages of the B-trees a lookup walks (dir, ent, data,
 * xattr) once after the open, level by level from the roots, so that the
 * first lookups of a fresh daemon do not each fault in a path of them: on
 * the 1M-file store the first 200 lookups after a mount took most of the
 * slow ones (bench/results/scale.md). Leaves are not touched. This reads
 * LMDB's file format (frozen since 0.9): a named database's record in the
 * main database (its MDB_db: depth at byte 6, entries at 32, root page at
 * 40), checked against mdb_stat; a branch page's header (page number,
 * flags, and `lower` at byte 12: 16 + 2 x the nodes), its node offsets
 * from byte 16, and in each node the child's page number in the first six
 * bytes. Every offset and page number is checked against the page and the
 * map before it is used; a root that does not look right ends that tree's
 * walk, a page below it is passed over. At most half of max_mapped is
 * mapped so.
 *
 * The walk takes a new snapshot every warm_chunk pages (64): a cold store
 * reads each page from the disk, and while a snapshot is held a map growth
 * waits for it and LMDB cannot reuse the pages freed after it. A page number
 * read under an older one may by then be a freed or reused page: its
 * header check drops it (or it is a branch page of another place, which
 * costs a page of the budget). Nothing is written through any of it.
 */
static void warm_upper(sg_store *st)
{
	const size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	const char *names[] = {"dir", "ent", "data", "xattr"};
	const MDB_dbi dbis[] = {st->dir, st->ent, st->data, st->xattr};
	uint64_t budget = st->max_mapped == UINT64_MAX ? UINT64_MAX : st->max_mapped / pg / 2;
	uint64_t *cur = NULL, *next = NULL, last, touched = 0, snaps = 1;
	size_t cap = 0, held = 0;
	const char *base = NULL;
	volatile unsigned char sum = 0;
	MDB_txn *txn = NULL;
	MDB_dbi main_db;

	if (warm_hold(st, &txn, &base, &last) != 0)
		goto out;
	if (mdb_dbi_open(txn, NULL, 0, &main_db) != 0)
		goto out;
	for (size_t t = 0; t < sizeof(dbis) / sizeof(dbis[0]) && budget; t++) {
		MDB_val key = {strlen(names[t]), (void *)names[t]}, val;
		MDB_stat ms;
		uint64_t root, entries;
		uint16_t depth;
		size_t ncur = 1;

		if (mdb_get(txn, main_db, &key, &val) != 0 || val.mv_size < 48 ||
		    mdb_stat(txn, dbis[t], &ms) != 0)
			continue;
		memcpy(&depth, (char *)val.mv_data + 6, 2);
		memcpy(&entries, (char *)val.mv_data + 32, 8);
		memcpy(&root, (char *)val.mv_data + 40, 8);
		if (depth != ms.ms_depth || entries != ms.ms_entries || depth < 2 || root > last)
			continue;
		if (cap < 1) {
			if (!(cur = calloc(1, sizeof(*cur))) || !(next = calloc(1, sizeof(*next))))
				goto out;
			cap = 1;
		}
		cur[0] = root;
		/* levels 1 .. depth - 1 are branch pages */
		for (unsigned level = 1; level < depth && ncur && budget; level++) {
			size_t nnext = 0;

			for (size_t i = 0; i < ncur && budget && !atomic_load(&st->warm_stop);
			     i++) {
				const char *p;
				uint64_t own;
				uint16_t flags, lower;

				if (++held > st->warm_chunk) {
					sg_rd_end(st, txn);
					txn = NULL;
					if (warm_hold(st, &txn, &base, &last) != 0)
						goto out;
					held = 1;
					snaps++;
				}
				if (cur[i] > last)
					continue;
				p = base + cur[i] * pg;
				budget--;
				memcpy(&own, p, 8); /* the fault that maps it */
				memcpy(&flags, p + 10, 2);
				memcpy(&lower, p + 12, 2);
				if (own != cur[i] || !(flags & 0x01) || lower < 16 || lower > pg) {
					if (level == 1) {
						ncur =
						    0; /* not what it should be: leave this tree */
						break;
					}
					continue; /* freed or reused since it was read */
				}
				sum += (unsigned char)own;
				touched++;
				for (size_t k = 16; level + 1 < depth && k + 2 <= lower; k += 2) {
					uint16_t off, lo, hi, top;
					uint64_t child;

					memcpy(&off, p + k, 2);
					if (off < lower || (size_t)off + 8 > pg)
						continue;
					memcpy(&lo, p + off, 2);
					memcpy(&hi, p + off + 2, 2);
					memcpy(&top, p + off + 4, 2);
					child = lo | (uint64_t)hi << 16 | (uint64_t)top << 32;
					if (child > last)
						continue;
					if (nnext == cap) {
						size_t ncap = cap * 2;
						uint64_t *a = realloc(cur, ncap * sizeof(*a)), *b;

						if (!a)
							goto out;
						cur = a;
						if (!(b = realloc(next, ncap * sizeof(*b))))
							goto out;
						next = b;
						cap = ncap;
					}
					next[nnext++] = child;
				}
			}
			{
				uint64_t *x = cur;

				cur = next;
				next = x;
				ncur = nnext;
			}
		}
	}
out:
	free(cur);
	free(next);
	if (txn)
		sg_rd_end(st, txn);
	atomic_store(&st->warm_snapshots, snaps);
	atomic_store(&st->map_warmed, touched);
	(void)sum;
}

static void *warm_main(void *arg)
{
	sg_thread_name("sigil-warm");
	warm_upper(arg);
	return NULL;
}

/*
 * LMDB reads through a shared read-only map of the store's file. Each page a
 * lookup touches is mapped into the process (with its neighbours in the page
 * cache where fault-around is on, sg_map_watch), and stays mapped: on a
 * large store every lookup adds to the daemon's RSS until it holds the whole
 * file (bench/results/scale.md). Past max_mapped, drop map pages
 * (MADV_DONTNEED on a shared file mapping only unmaps: the pages stay in the
 * page cache, nothing is written or lost, and the next access maps them
 * again with a minor fault).
 *
 * What the map holds is not measured directly (that would mean walking its
 * page tables): RssFile counts every file mapping of the process, the
 * mirror's Git packs and the libraries too. A drop of the whole map (its
 * used part, but the branch pages, which map_drop keeps and counts), then
 * RssFile read again less those, tells what the rest holds (rss_other);
 * the map's share is RssFile beyond that. A drop costs in
 * proportion to the pages it unmaps, so most drops take only a span of the
 * used part, in turn (a clock hand), sized to unmap about the excess over
 * 15/16 of the bound: many small drops, none that stalls its caller for
 * long. Every SG_TRIM_FULL-th drop takes the whole map again, to measure the
 * rest afresh. The map lock, shared, keeps the map where it is meanwhile (it
 * moves only when it grows, which takes the lock exclusively and forgets
 * map_addr); readers on other threads may go on reading.
 */
void sg_map_trim(sg_store *st, unsigned n)
{
	uint64_t before = atomic_fetch_add(&st->trim_ticks, n), rss, other, used, mine, span;
	const uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE); /* LMDB's page too */
	MDB_envinfo info;

	if (st->max_mapped == UINT64_MAX || before / SG_TRIM_EVERY == (before + n) / SG_TRIM_EVERY)
		return;
	/* a store whose used part fits in the bound cannot pass it: no statm */
	pthread_rwlock_rdlock(&st->map_lock);
	used =
	    mdb_env_info(st->env, &info) == 0 ? ((uint64_t)info.me_last_pgno + 1) * pg : UINT64_MAX;
	pthread_rwlock_unlock(&st->map_lock);
	if (used <= st->max_mapped)
		return;
	if (st->uffd == -1 && !atomic_exchange(&st->trimming, 1)) {
		/* the store has just grown past the bound */
		pthread_rwlock_rdlock(&st->map_lock);
		sg_map_watch(st);
		pthread_rwlock_unlock(&st->map_lock);
		atomic_store(&st->trimming, 0);
	}
	rss = rss_file(st);
	other = atomic_load(&st->rss_other);
	if (rss <= other + st->max_mapped || atomic_exchange(&st->trimming, 1))
		return;
	pthread_rwlock_rdlock(&st->map_lock);
	if (!st->map_addr && map_find(st) != 0) {
		/* not found: do not look again at every check */
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-STORE-MAPPED",
		       "cannot find the store's map in /proc/self/maps: max_mapped is not applied");
		st->max_mapped = UINT64_MAX;
	} else if (mdb_env_info(st->env, &info) == 0) {
		used = ((uint64_t)info.me_last_pgno + 1) * pg;
		if (used > st->map_len)
			used = st->map_len;
		if (st->trim_pos >= used)
			st->trim_pos = 0;
		if (!other || st->drops % SG_TRIM_FULL == 0) {
			/* the branch pages it keeps are the map's too */
			uint64_t kept = map_drop(st, 0, used), after = rss_file(st);

			atomic_store(&st->rss_other, after > kept * pg ? after - kept * pg : 0);
		} else {
			/* the map's pages lie anywhere in its used part: a span
			 * in proportion to the excess unmaps about the excess */
			mine = rss - other;
			span = (uint64_t)((double)used * (double)(mine - st->max_mapped / 16 * 15) /
			                  (double)mine);
			span = (span + pg - 1) / pg * pg;
			while (span) {
				uint64_t len =
				    used - st->trim_pos < span ? used - st->trim_pos : span;

				map_drop(st, st->trim_pos, len);
				span -= len;
				st->trim_pos = st->trim_pos + len >= used ? 0 : st->trim_pos + len;
			}
		}
		st->drops++;
		atomic_fetch_add(&st->map_trims, 1);
	}
	pthread_rwlock_unlock(&st->map_lock);
	atomic_store(&st->trimming, 0);
}

/* ---- lifetime ---- */

static int meta_init(sg_store *st, const sg_store_opts *opts, int *replayed)
{
	MDB_txn *txn;
	uint64_t v;
	int rc;

	rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rc)
		return sg_mdb_err(rc);
	rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &st->meta);
	rc = rc ? rc : mdb_dbi_open(txn, "ent", MDB_CREATE, &st->ent);
	rc = rc ? rc : mdb_dbi_open(txn, "dir", MDB_CREATE, &st->dir);
	rc = rc ? rc : mdb_dbi_open(txn, "data", MDB_CREATE, &st->data);
	rc = rc ? rc : mdb_dbi_open(txn, "xattr", MDB_CREATE, &st->xattr);
	rc = rc ? rc : mdb_dbi_open(txn, "log", MDB_CREATE, &st->log);
	rc = rc ? rc : mdb_dbi_open(txn, "origins", MDB_CREATE, &st->origins);
	rc = rc ? rc : mdb_dbi_open(txn, "conflicts", MDB_CREATE, &st->conflicts);
	if (rc) {
		mdb_txn_abort(txn);
		return sg_mdb_err(rc);
	}

	rc = sg_meta_get(st, txn, "format", &v);
	if (rc == -ENOENT) {
		/* a new store: format, node id, and the root directory */
		struct {
			const char *k;
			uint64_t v;
		} init[] = {{"format", SG_STORE_FORMAT},
		            {"node_id", 0},
		            {"version", 0},
		            {"seq", 0},
		            {"hlc", 0},
		            {"next_id", SG_ROOT_ID + 1},
		            {"live", 1},
		            {"tombs", 0},
		            {"conflict_seq", 0},
		            {"store_id", 0}};
		struct sg_rec root;
		unsigned char k[8];
		MDB_val key = {8, k}, val = {sizeof(root), &root};
		uint64_t id = opts->node_id;

		rc = 0;
		while (id == 0 && getrandom(&id, sizeof(id), 0) != sizeof(id))
			;
		init[1].v = id;
		id = 0;
		while (id == 0 && getrandom(&id, sizeof(id), 0) != sizeof(id))
			;
		init[sizeof(init) / sizeof(init[0]) - 1].v = id ? id : 1;
		for (size_t i = 0; i < sizeof(init) / sizeof(init[0]) && !rc; i++) {
			MDB_val mk = {strlen(init[i].k), (void *)init[i].k}, mv = {8, &init[i].v};
			rc = mdb_put(txn, st->meta, &mk, &mv, 0);
		}
		memset(&root, 0, sizeof(root));
		root.parent = SG_ROOT_ID;
		root.type = SG_TYPE_DIR;
		root.mode = 0755;
		root.mtime_ns = root.ctime_ns = sg_now_ns();
		sg_be64(k, SG_ROOT_ID);
		rc = rc ? rc : mdb_put(txn, st->ent, &key, &val, 0);
		if (rc) {
			mdb_txn_abort(txn);
			return sg_mdb_err(rc);
		}
	} else if (rc) {
		mdb_txn_abort(txn);
		return rc;
	} else if (v != SG_STORE_FORMAT) {
		mdb_txn_abort(txn);
		sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-STORE-FORMAT",
		       "%s: store format %llu, expected %d", st->path, (unsigned long long)v,
		       SG_STORE_FORMAT);
		return -EIO;
	}

	if (!opts->no_journal) {
		/* what the last checkpoint does not cover, before anything reads */
		rc = sg_journal_open(st, txn, replayed);
		if (rc) {
			mdb_txn_abort(txn);
			return rc;
		}
	}
	{
		uint64_t node, ver, hlc, live, tombs, sid;
		rc = sg_meta_get(st, txn, "node_id", &node);
		rc = rc ? rc : sg_meta_get(st, txn, "store_id", &sid);
		rc = rc ? rc : sg_meta_get(st, txn, "version", &ver);
		rc = rc ? rc : sg_meta_get(st, txn, "hlc", &hlc);
		rc = rc ? rc : sg_meta_get(st, txn, "live", &live);
		rc = rc ? rc : sg_meta_get(st, txn, "tombs", &tombs);
		if (rc) {
			mdb_txn_abort(txn);
			return rc == -ENOENT ? -EIO : rc;
		}
		if (opts->node_id && opts->node_id != node) {
			mdb_txn_abort(txn);
			sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-STORE-NODE",
			       "%s belongs to node id %016llx, not %016llx", st->path,
			       (unsigned long long)node, (unsigned long long)opts->node_id);
			return -EINVAL;
		}
		st->node_id = node;
		st->store_id = sid;
		atomic_store(&st->version, ver);
		atomic_store(&st->hlc, hlc);
		atomic_store(&st->live, live);
		atomic_store(&st->tombs, tombs);
	}
	rc = mdb_txn_commit(txn);
	return sg_mdb_err(rc);
}

/* What sg_store_open() set up besides LMDB and the journal. */
static void store_free(sg_store *st)
{
	free(st->path);
	if (st->statm_fd >= 0)
		close(st->statm_fd);
	if (st->uffd >= 0)
		close(st->uffd);
	if (st->pagemap_fd >= 0)
		close(st->pagemap_fd);
	if (st->pidfd >= 0)
		close(st->pidfd);
	pthread_mutex_destroy(&st->statm_lock);
	pthread_rwlock_destroy(&st->map_lock);
	pthread_mutex_destroy(&st->q_lock);
	pthread_mutex_destroy(&st->wtxn_lock);
	pthread_cond_destroy(&st->q_cond);
	pthread_cond_destroy(&st->done_cond);
	free(st);
}

int sg_store_open(sg_store **out, const sg_store_opts *opts)
{
	sg_store *st;
	MDB_envinfo info;
	int rc, dead = 0;

	if (!opts || !opts->dir || !*opts->dir)
		return -EINVAL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->path = strdup(opts->dir);
	st->max_file = opts->max_file_size ? opts->max_file_size : SG_DEFAULT_MAX_FILE;
	/* A transaction is checkpointed once its estimated size reaches a
	 * sixteenth of the map (writer.c), so the map sets how many changes a
	 * checkpoint carries: a 64 MiB map made a create loop pay an LMDB
	 * commit and its fdatasync every 240 files or so. */
	st->map_size = opts->initial_map ? opts->initial_map : SG_DEFAULT_INITIAL_MAP;
	st->max_map = opts->max_map ? opts->max_map : (64ULL << 30);
	st->batch_max = opts->batch_max ? opts->batch_max : 1000;
	st->sync_delay_ns = opts->sync_delay_ns < 0    ? 0
	                    : opts->sync_delay_ns == 0 ? SG_DEFAULT_SYNC_DELAY_NS
	                                               : (uint64_t)opts->sync_delay_ns;
	st->linger_ns = opts->linger_ns > 0 ? (uint64_t)opts->linger_ns : SG_DEFAULT_LINGER_NS;
	st->max_mapped = opts->max_mapped ? opts->max_mapped : SG_DEFAULT_MAX_MAPPED;
	st->warm_chunk = opts->warm_chunk ? opts->warm_chunk : SG_DEFAULT_WARM_CHUNK;
	st->statm_fd = -1;
	st->uffd = -1;
	st->pagemap_fd = -1;
	st->pidfd = -1;
	pthread_mutex_init(&st->statm_lock, NULL);
	pthread_rwlock_init(&st->map_lock, NULL);
	pthread_mutex_init(&st->q_lock, NULL);
	pthread_mutex_init(&st->wtxn_lock, NULL);
	sg_cond_init_mono(&st->q_cond); /* the writer waits against sg_mono_ns() */
	pthread_cond_init(&st->done_cond, NULL);
	if (!st->path) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = sg_mkdir_p(opts->dir, 0700);
	if (rc)
		goto fail;
	rc = mdb_env_create(&st->env);
	if (rc) {
		rc = sg_mdb_err(rc);
		goto fail;
	}
	mdb_env_set_maxdbs(st->env, 12);
	mdb_env_set_maxreaders(st->env, 256);
	rc = mdb_env_set_mapsize(st->env, st->map_size);
	/* MDB_NOTLS: FUSE worker threads come and go; MDB_NOMETASYNC: one
	 * fdatasync per commit keeps integrity, sg_store_sync() makes the
	 * last commit durable too; MDB_NORDAHEAD: lookups are random, and the
	 * kernel's readahead around each page fault read and mapped 80 times
	 * more than they used on a cold 1M-file store (bench/results/scale.md) */
	rc =
	    rc ? rc
	       : mdb_env_open(st->env, opts->dir, MDB_NOTLS | MDB_NOMETASYNC | MDB_NORDAHEAD, 0600);
	if (rc) {
		sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-STORE-OPEN", "cannot open store in %s: %s",
		       opts->dir, mdb_strerror(rc));
		rc = sg_mdb_err(rc);
		goto fail;
	}
	mdb_reader_check(st->env, &dead);
	if (dead)
		sg_log(SG_LOG_NOTICE, DOMAIN, "SIGIL-STORE-READERS", "cleared %d stale readers",
		       dead);
	/* the map may be larger than asked, from an earlier run */
	mdb_env_info(st->env, &info);
	if (info.me_mapsize > st->map_size)
		st->map_size = info.me_mapsize;
	{
		int replayed = 0;
		rc = meta_init(st, opts, &replayed);
		/* replayed changes, or a new journal's id, are on disk before the
		 * journal is written again */
		if (rc == 0 && replayed && (rc = mdb_env_sync(st->env, 1)) != 0)
			rc = sg_mdb_err(rc);
		if (rc)
			goto fail;
	}
	pthread_rwlock_rdlock(&st->map_lock);
	sg_map_watch(st);
	pthread_rwlock_unlock(&st->map_lock);
	rc = sg_writer_start(st);
	if (rc)
		goto fail;
	st->warming = pthread_create(&st->warmer, NULL, warm_main, st) == 0;
	*out = st;
	return 0;
fail:
	sg_journal_close(st);
	if (st->env)
		mdb_env_close(st->env);
	store_free(st);
	return rc;
}

void sg_store_close(sg_store *st)
{
	if (!st)
		return;
	if (st->warming) {
		atomic_store(&st->warm_stop, 1);
		pthread_join(st->warmer, NULL);
	}
	sg_writer_stop(st);
	mdb_env_sync(st->env, 1);
	sg_journal_close(st);
	mdb_env_close(st->env);
	store_free(st);
}

uint64_t sg_store_node_id(const sg_store *st)
{
	return st->node_id;
}

uint64_t sg_store_id(const sg_store *st)
{
	return st->store_id;
}

uint64_t sg_store_version(sg_store *st)
{
	return atomic_load(&st->version);
}

uint64_t sg_store_hlc(sg_store *st)
{
	return atomic_load(&st->hlc);
}

uint64_t sg_store_max_file_size(const sg_store *st)
{
	return st->max_file;
}

void sg_store_set_observer(sg_store *st, sg_observer cb, void *ctx)
{
	pthread_mutex_lock(&st->q_lock);
	st->observer = cb;
	st->observer_ctx = ctx;
	pthread_mutex_unlock(&st->q_lock);
}

void sg_store_set_visible_observer(sg_store *st, sg_observer cb, void *ctx)
{
	pthread_mutex_lock(&st->q_lock);
	st->visible = cb;
	st->visible_ctx = ctx;
	pthread_mutex_unlock(&st->q_lock);
}

int sg_store_stats_get(sg_store *st, sg_store_stats *out)
{
	MDB_envinfo info;
	MDB_stat ms;
	MDB_txn *txn;

	memset(out, 0, sizeof(*out));
	out->entries = atomic_load(&st->live);
	out->tombstones = atomic_load(&st->tombs);
	out->commits = atomic_load(&st->commits);
	out->ops = atomic_load(&st->ops);
	out->purged = atomic_load(&st->purged);
	out->forgotten = atomic_load(&st->forgotten);
	out->deferred = atomic_load(&st->deferred);
	out->lost = atomic_load(&st->lost_acked);
	out->journal_batches = atomic_load(&st->jwrites);
	out->checkpoints = atomic_load(&st->checkpoints);
	out->map_trims = atomic_load(&st->map_trims);
	out->map_warmed = atomic_load(&st->map_warmed);
	out->map_warm_snapshots = atomic_load(&st->warm_snapshots);
	out->refusing = atomic_load(&st->broken);
	pthread_rwlock_rdlock(&st->map_lock);
	out->map_single = st->uffd >= 0;
	mdb_env_info(st->env, &info);
	mdb_env_stat(st->env, &ms);
	pthread_rwlock_unlock(&st->map_lock);
	out->map_size = info.me_mapsize;
	out->used_bytes = (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize;
	/* the B-tree's own count: a status read costs the same however many */
	if (sg_rd_begin_committed(st, &txn) == 0) {
		const MDB_dbi walked[] = {st->dir, st->ent, st->data, st->xattr};

		if (mdb_stat(txn, st->conflicts, &ms) == 0)
			out->conflicts = ms.ms_entries;
		for (size_t i = 0; i < sizeof(walked) / sizeof(walked[0]); i++)
			if (mdb_stat(txn, walked[i], &ms) == 0)
				out->branch_pages += ms.ms_branch_pages;
		sg_rd_end(st, txn);
	}
	return 0;
}

/* ---- reads ---- */

static int live_rec(sg_store *st, MDB_txn *txn, uint64_t id, struct sg_rec *rec, char *name)
{
	int rc = sg_rec_get(st, txn, id, rec, name);

	if (rc == 0 && rec->type == SG_TYPE_TOMBSTONE)
		rc = -ENOENT;
	return rc;
}

static int lookup_txn(sg_store *st, MDB_txn *txn, uint64_t parent, const char *name, sg_attr *out)
{
	struct sg_rec rec;
	uint64_t id;
	uint32_t type;
	int rc;

	rc = live_rec(st, txn, parent, &rec, NULL);
	if (rc)
		return rc;
	if (rec.type != SG_TYPE_DIR)
		return -ENOTDIR;
	rc = sg_dirent_get(st, txn, parent, name, &id, &type);
	if (rc)
		return rc;
	if (type == SG_TYPE_TOMBSTONE)
		return -ENOENT;
	rc = live_rec(st, txn, id, &rec, NULL);
	if (rc)
		return rc;
	sg_rec_to_attr(id, &rec, out);
	return 0;
}

int sg_store_lookup(sg_store *st, uint64_t parent, const char *name, sg_attr *out)
{
	MDB_txn *txn;
	int rc;

	if (strlen(name) > SG_NAME_MAX)
		return -ENAMETOOLONG;
	rc = sg_rd_begin(st, &txn);
	if (rc)
		return rc;
	rc = lookup_txn(st, txn, parent, name, out);
	sg_rd_end(st, txn);
	return rc;
}

int sg_store_getattr(sg_store *st, uint64_t id, sg_attr *out)
{
	struct sg_rec rec;
	MDB_txn *txn;
	int rc;

	rc = sg_rd_begin(st, &txn);
	if (rc)
		return rc;
	rc = live_rec(st, txn, id, &rec, NULL);
	if (rc == 0)
		sg_rec_to_attr(id, &rec, out);
	sg_rd_end(st, txn);
	return rc;
}

static int data_copy(sg_store *st, MDB_txn *txn, uint64_t id, void **out, size_t *len)
{
	unsigned char k[8];
	MDB_val key = {8, k}, val;
	int rc;

	*out = NULL;
	*len = 0;
	sg_be64(k, id);
	rc = mdb_get(txn, st->data, &key, &val);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return sg_mdb_err(rc);
	*out = malloc(val.mv_size + 1);
	if (!*out)
		return -ENOMEM;
	memcpy(*out, val.mv_data, val.mv_size);
	((char *)*out)[val.mv_size] = '\0';
	*len = val.mv_size;
	return 0;
}

int sg_store_read(sg_store *st, uint64_t id, void **out, size_t *len)
{
	struct sg_rec rec;
	MDB_txn *txn;
	int rc;

	*out = NULL;
	*len = 0;
	rc = sg_rd_begin(st, &txn);
	if (rc)
		return rc;
	rc = live_rec(st, txn, id, &rec, NULL);
	if (rc == 0 && rec.type == SG_TYPE_DIR)
		rc = -EISDIR;
	if (rc == 0)
		rc = data_copy(st, txn, id, out, len);
	sg_rd_end(st, txn);
	return rc;
}

int sg_store_list(sg_store *st, uint64_t dir, const char *after, sg_dirent_cb cb, void *ctx)
{
	unsigned char k[8 + SG_NAME_MAX];
	size_t alen = after ? strlen(after) : 0;
	struct sg_rec rec;
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	int rc, op = MDB_SET_RANGE;
	unsigned listed = 0;

	if (alen > SG_NAME_MAX)
		return -ENAMETOOLONG;
	rc = sg_rd_begin(st, &txn);
	if (rc)
		return rc;
	rc = live_rec(st, txn, dir, &rec, NULL);
	if (rc == 0 && rec.type != SG_TYPE_DIR)
		rc = -ENOTDIR;
	if (rc)
		goto out;
	rc = sg_mdb_err(mdb_cursor_open(txn, st->dir, &cur));
	if (rc)
		goto out;
	sg_be64(k, dir);
	if (alen)
		memcpy(k + 8, after, alen);
	key.mv_size = 8 + alen;
	key.mv_data = k;
	for (;;) {
		char name[SG_NAME_MAX + 1];
		sg_dirent d;
		size_t n;
		int r = mdb_cursor_get(cur, &key, &val, op);

		op = MDB_NEXT;
		if (r == MDB_NOTFOUND)
			break;
		if (r) {
			rc = sg_mdb_err(r);
			break;
		}
		if (key.mv_size < 8 || sg_get_be64(key.mv_data) != dir)
			break;
		n = key.mv_size - 8;
		if (val.mv_size != 9 || n > SG_NAME_MAX) {
			rc = -EIO;
			break;
		}
		if (alen && n == alen && memcmp((char *)key.mv_data + 8, after, n) == 0)
			continue;
		d.type = ((unsigned char *)val.mv_data)[8];
		if (d.type == SG_TYPE_TOMBSTONE)
			continue;
		memcpy(name, (char *)key.mv_data + 8, n);
		name[n] = '\0';
		d.id = sg_get_be64(val.mv_data);
		d.name = name;
		rc = cb(ctx, &d);
		if (rc)
			break;
		/* a listing of a large directory maps many pages in one read */
		if (++listed % 64 == 0)
			sg_map_trim(st, 1);
	}
out:
	if (cur)
		mdb_cursor_close(cur);
	sg_rd_end(st, txn);
	return rc;
}

static int resolve_txn(sg_store *st, MDB_txn *txn, const char *path, sg_attr *out)
{
	char name[SG_NAME_MAX + 1];
	struct sg_rec rec;
	uint64_t id = SG_ROOT_ID;
	const char *p = path;
	int rc;

	if (strlen(path) > SG_PATH_MAX)
		return -ENAMETOOLONG;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		sg_attr a;

		if (n == 0) { /* tolerate "a//b" and a trailing '/' */
			p++;
			continue;
		}
		rc = sg_name_check(p, n);
		if (rc)
			return rc;
		memcpy(name, p, n);
		name[n] = '\0';
		rc = lookup_txn(st, txn, id, name, &a);
		if (rc)
			return rc;
		id = a.id;
		p += n;
	}
	rc = live_rec(st, txn, id, &rec, NULL);
	if (rc)
		return rc;
	sg_rec_to_attr(id, &rec, out);
	return 0;
}

int sg_store_resolve(sg_store *st, const char *path, sg_attr *out)
{
	MDB_txn *txn;
	int rc;

	rc = sg_rd_begin(st, &txn);
	if (rc)
		return rc;
	rc = resolve_txn(st, txn, path, out);
	sg_rd_end(st, txn);
	return rc;
}

int sg_store_path(sg_store *st, uint64_t id, char **out)
{
	MDB_txn *txn;
	int rc;

	rc = sg_rd_begin(st, &txn);
	if (rc)
		return rc;
	rc = sg_path_build(st, txn, id, out);
	sg_rd_end(st, txn);
	return rc;
}

int sg_store_getxattr(sg_store *st, uint64_t id, const char *name, void **out, size_t *len)
{
	unsigned char k[8 + SG_NAME_MAX];
	size_t n = strlen(name);
	struct sg_rec rec;
	MDB_val key, val;
	MDB_txn *txn;
	int rc;

	*out = NULL;
	*len = 0;
	if (n == 0 || n > SG_NAME_MAX)
		return -ERANGE;
	rc = sg_rd_begin(st, &txn);
	if (rc)
		return rc;
	rc = live_rec(st, txn, id, &rec, NULL);
	if (rc)
		goto out;
	sg_be64(k, id);
	memcpy(k + 8, name, n);
	key.mv_size = 8 + n;
	key.mv_data = k;
	rc = mdb_get(txn, st->xattr, &key, &val);
	if (rc == MDB_NOTFOUND) {
		rc = -ENODATA;
		goto out;
	}
	rc = sg_mdb_err(rc);
	if (rc)
		goto out;
	*out = malloc(val.mv_size ? val.mv_size : 1);
	if (!*out) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(*out, val.mv_data, val.mv_size);
	*len = val.mv_size;
out:
	sg_rd_end(st, txn);
	return rc;
}

int sg_store_listxattr(sg_store *st, uint64_t id, char **out, size_t *len)
{
	unsigned char k[8];
	struct sg_rec rec;
	MDB_cursor *cur = NULL;
	MDB_val key = {8, k}, val;
	MDB_txn *txn;
	char *buf = NULL;
	size_t used = 0;
	int rc, op = MDB_SET_RANGE;

	*out = NULL;
	*len = 0;
	rc = sg_rd_begin(st, &txn);
	if (rc)
		return rc;
	rc = live_rec(st, txn, id, &rec, NULL);
	if (rc)
		goto out;
	rc = sg_mdb_err(mdb_cursor_open(txn, st->xattr, &cur));
	if (rc)
		goto out;
	sg_be64(k, id);
	for (;;) {
		int r = mdb_cursor_get(cur, &key, &val, op);
		size_t n;
		char *nb;

		op = MDB_NEXT;
		if (r == MDB_NOTFOUND)
			break;
		if (r) {
			rc = sg_mdb_err(r);
			goto out;
		}
		if (key.mv_size <= 8 || sg_get_be64(key.mv_data) != id)
			break;
		n = key.mv_size - 8;
		nb = realloc(buf, used + n + 1);
		if (!nb) {
			rc = -ENOMEM;
			goto out;
		}
		buf = nb;
		memcpy(buf + used, (char *)key.mv_data + 8, n);
		buf[used + n] = '\0';
		used += n + 1;
	}
	*out = buf;
	*len = used;
	buf = NULL;
out:
	free(buf);
	if (cur)
		mdb_cursor_close(cur);
	sg_rd_end(st, txn);
	return rc;
}

/* One row of a version-keyed table, for scan_after(): 0 to go on, non-zero to stop. */
typedef int (*row_fn)(sg_store *st, MDB_txn *txn, const MDB_val *key, const MDB_val *val,
                      void *arg);

/*
 * A listing's read lets the writer's lock go this often (not an atomic
 * listing's: the mirror's and the tree digest's). With the journal, a read
 * of durable state borrows the writer's open transaction and holds its lock
 * (borrow()), and every local change waits meanwhile: a pull's page held it
 * 10 to 28 ms (and a mirror batch of 4,000 changes 22 to 65 ms) on a 3-node
 * loopback cluster under a steady create loop.
 */
#define SCAN_HOLD_NS 500000LL

/* Let the threads that wait for wtxn_lock now have it before this one takes
 * it again (a mutex is not fair: the thread that let it go would most often
 * take it back at once), for 2 ms at most. */
static void wtxn_yield(sg_store *st)
{
	unsigned waiting = atomic_load(&st->wtxn_waiting);
	uint64_t g0 = atomic_load(&st->wtxn_grants);

	for (int i = 0; i < BORROW_MAX; i++)
		if (borrowed[i].depth && borrowed[i].st == st)
			return; /* a listing under another read of this thread: the lock stays */
	for (int i = 0; waiting && i < 100 && atomic_load(&st->wtxn_grants) - g0 < waiting; i++)
		usleep(20);
}

/* Call fn for every row of `dbi` (keys: big-endian u64) after `after`, in key
 * order, at most `max` (0: all). `whole`: in one read transaction; else in
 * as many as it takes to let the writer's lock go every SCAN_HOLD_NS, each
 * going on after the last row handed over. A row that moved meanwhile (an
 * entry changed again: its row is now its new version) is then read at its
 * new place too, if the listing gets there; rows only move forward. */
static int scan_after(sg_store *st, MDB_dbi dbi, uint64_t after, size_t max, int whole, row_fn fn,
                      void *arg)
{
	size_t count = 0;
	int rc = 0, more = 1;

	while (more && after != UINT64_MAX && (max == 0 || count < max)) {
		unsigned char k[8];
		MDB_cursor *cur = NULL;
		MDB_val key = {8, k}, val;
		MDB_txn *txn;
		int op = MDB_SET_RANGE;
		int64_t t0 = whole ? 0 : sg_mono_ns();

		more = 0;
		rc = sg_rd_begin_committed(st, &txn);
		if (rc)
			return rc;
		rc = sg_mdb_err(mdb_cursor_open(txn, dbi, &cur));
		if (rc)
			goto out;
		sg_be64(k, after + 1);
		while (max == 0 || count < max) {
			int r = mdb_cursor_get(cur, &key, &val, op);

			op = MDB_NEXT;
			if (r == MDB_NOTFOUND)
				break;
			if (r) {
				rc = sg_mdb_err(r);
				break;
			}
			if (key.mv_size != 8) {
				rc = -EIO;
				break;
			}
			after = sg_get_be64(key.mv_data);
			rc = fn(st, txn, &key, &val, arg);
			count++;
			if (rc)
				break;
			if (!whole && sg_mono_ns() - t0 > SCAN_HOLD_NS) {
				more = 1; /* the rest in another read */
				break;
			}
		}
	out:
		if (cur)
			mdb_cursor_close(cur);
		sg_rd_end(st, txn);
		if (rc)
			return rc;
		if (more)
			wtxn_yield(st);
	}
	return rc;
}

struct change_cb {
	sg_change_cb cb;
	void *ctx;
	uint64_t except; /* an origin left out (0: none) */
};

struct conflict_cb {
	sg_conflict_cb cb;
	void *ctx;
};

/* A log row: build the change (path, content, xattrs) and hand it over. */
static int change_row(sg_store *st, MDB_txn *txn, const MDB_val *key, const MDB_val *val, void *arg)
{
	struct change_cb *u = arg;
	struct sg_rec rec;
	sg_change c;
	char *path = NULL;
	void *data = NULL, *xblock = NULL;
	sg_xattr *xs = NULL;
	size_t len = 0, nxs = 0;
	uint64_t id;
	int rc;

	if (val->mv_size != 8)
		return -EIO;
	id = sg_get_be64(val->mv_data);
	rc = sg_rec_get(st, txn, id, &rec, NULL);
	if (rc == 0 && u->except && rec.origin == u->except)
		return 0;
	rc = rc ? rc : sg_path_build(st, txn, id, &path);
	if (rc == 0 && rec.type != SG_TYPE_DIR && rec.type != SG_TYPE_TOMBSTONE)
		rc = data_copy(st, txn, id, &data, &len);
	if (rc == 0 && rec.type != SG_TYPE_TOMBSTONE)
		rc = sg_xattrs_read(st, txn, id, &xs, &nxs, &xblock);
	if (rc == 0) {
		memset(&c, 0, sizeof(c));
		c.path = path;
		c.type = rec.type;
		c.mode = rec.mode;
		c.uid = rec.uid;
		c.gid = rec.gid;
		c.mtime_ns = rec.mtime_ns;
		c.ctime_ns = rec.ctime_ns;
		c.data = data;
		c.len = len;
		c.version = sg_get_be64(key->mv_data);
		c.id = id;
		c.stamp = (sg_stamp){rec.hlc, rec.origin, rec.seq};
		c.base = (sg_stamp){rec.base_hlc, rec.base_origin, rec.base_seq};
		c.xattrs = xs;
		c.nxattrs = nxs;
		rc = u->cb(u->ctx, &c);
	}
	free(path);
	free(data);
	free(xblock);
	return rc;
}

int sg_store_changes_after(sg_store *st, uint64_t after, size_t max, sg_change_cb cb, void *ctx)
{
	struct change_cb u = {cb, ctx, 0};

	return scan_after(st, st->log, after, max, 0, change_row, &u);
}

int sg_store_changes_after_atomic(sg_store *st, uint64_t after, size_t max, sg_change_cb cb,
                                  void *ctx)
{
	struct change_cb u = {cb, ctx, 0};

	return scan_after(st, st->log, after, max, 1, change_row, &u);
}

int sg_store_changes_after_except(sg_store *st, uint64_t after, size_t max, uint64_t except,
                                  sg_change_cb cb, void *ctx)
{
	struct change_cb u = {cb, ctx, except};

	return scan_after(st, st->log, after, max, 0, change_row, &u);
}

/* A conflict row: decode it and hand it over. */
static int conflict_row(sg_store *st, MDB_txn *txn, const MDB_val *key, const MDB_val *val,
                        void *arg)
{
	struct conflict_cb *u = arg;
	struct sg_conflict_rec cr;
	sg_conflict c;
	char *path;
	int rc;

	if (val->mv_size < sizeof(cr))
		return -EIO;
	memcpy(&cr, val->mv_data, sizeof(cr));
	if (val->mv_size != sizeof(cr) + cr.pathlen + cr.len || cr.pathlen > SG_PATH_MAX)
		return -EIO;
	path = strndup((char *)val->mv_data + sizeof(cr), cr.pathlen);
	if (!path)
		return -ENOMEM;
	memset(&c, 0, sizeof(c));
	c.seq = sg_get_be64(key->mv_data);
	c.path = path;
	c.loser = (sg_stamp){cr.loser_hlc, cr.loser_origin, cr.loser_seq};
	c.winner = (sg_stamp){cr.winner_hlc, cr.winner_origin, cr.winner_seq};
	c.loser_type = cr.loser_type;
	c.data = (char *)val->mv_data + sizeof(cr) + cr.pathlen;
	c.len = cr.len;
	c.when_ns = cr.when_ns;
	rc = u->cb(u->ctx, &c);
	free(path);
	return rc;
}

int sg_store_conflicts(sg_store *st, uint64_t after, size_t max, sg_conflict_cb cb, void *ctx)
{
	struct conflict_cb u = {cb, ctx};

	return scan_after(st, st->conflicts, after, max, 0, conflict_row, &u);
}

/* ---- mutations: build an op, queue it, wait ---- */

static int submit(sg_store *st, struct sg_op *op, sg_attr *out)
{
	int rc;

	/* the filesystem's own changes may be acknowledged before their commit */
	op->early = op->stamp == NULL && op->kind <= OP_REMOVEXATTR;
	rc = sg_writer_submit(st, op);

	if (rc == 0 && out)
		*out = op->out;
	return rc;
}

int sg_store_create(sg_store *st, const sg_stamp *stamp, uint64_t parent, const char *name,
                    uint32_t type, uint32_t mode, uint32_t uid, uint32_t gid, const void *data,
                    size_t len, int64_t now_ns, sg_attr *out)
{
	struct sg_op op = {.kind = OP_CREATE,
	                   .stamp = stamp,
	                   .parent = parent,
	                   .name = name,
	                   .type = type,
	                   .mode = mode,
	                   .uid = uid,
	                   .gid = gid,
	                   .data = data,
	                   .len = len,
	                   .now_ns = now_ns};
	int rc = sg_name_check(name, strlen(name));

	if (rc)
		return rc;
	if (type != SG_TYPE_FILE && type != SG_TYPE_DIR && type != SG_TYPE_SYMLINK)
		return -EINVAL;
	if (type == SG_TYPE_FILE && len > st->max_file)
		return -EFBIG;
	if (type == SG_TYPE_SYMLINK && (len == 0 || len > SG_PATH_MAX))
		return len ? -ENAMETOOLONG : -EINVAL;
	return submit(st, &op, out);
}

/* A content write stamped `stamp` (NULL: a fresh local one), made from what
 * `seen` described (NULL: the current version). */
static int write_op(sg_store *st, const sg_stamp *stamp, const sg_attr *seen, uint64_t id,
                    const void *data, size_t len, int64_t mtime_ns, int64_t now_ns, sg_attr *out)
{
	struct sg_op op = {.kind = OP_WRITE,
	                   .stamp = stamp,
	                   .seen = seen,
	                   .id = id,
	                   .data = data,
	                   .len = len,
	                   .mtime_ns = mtime_ns,
	                   .now_ns = now_ns};

	if (len > st->max_file)
		return -EFBIG;
	return submit(st, &op, out);
}

int sg_store_write(sg_store *st, const sg_stamp *stamp, uint64_t id, const void *data, size_t len,
                   int64_t mtime_ns, int64_t now_ns, sg_attr *out)
{
	return write_op(st, stamp, NULL, id, data, len, mtime_ns, now_ns, out);
}

int sg_store_write_seen(sg_store *st, const sg_attr *seen, uint64_t id, const void *data,
                        size_t len, int64_t mtime_ns, int64_t now_ns, sg_attr *out)
{
	return write_op(st, NULL, seen, id, data, len, mtime_ns, now_ns, out);
}

int sg_store_setattr(sg_store *st, const sg_stamp *stamp, uint64_t id, unsigned mask,
                     const sg_attr *in, int64_t now_ns, sg_attr *out)
{
	struct sg_op op = {
	    .kind = OP_SETATTR, .stamp = stamp, .id = id, .mask = mask, .in = in, .now_ns = now_ns};

	if (mask & ~(unsigned)(SG_SET_MODE | SG_SET_UID | SG_SET_GID | SG_SET_SIZE | SG_SET_MTIME))
		return -EINVAL;
	if ((mask & SG_SET_SIZE) && in->size > st->max_file)
		return -EFBIG;
	return submit(st, &op, out);
}

int sg_store_remove(sg_store *st, const sg_stamp *stamp, uint64_t parent, const char *name, int dir,
                    int64_t now_ns)
{
	struct sg_op op = {.kind = OP_REMOVE,
	                   .stamp = stamp,
	                   .parent = parent,
	                   .name = name,
	                   .flags = dir ? 1u : 0u,
	                   .now_ns = now_ns};
	int rc = sg_name_check(name, strlen(name));

	if (rc)
		return rc == -EINVAL ? -ENOENT : rc;
	return submit(st, &op, NULL);
}

int sg_store_rename(sg_store *st, const sg_stamp *stamp, uint64_t oparent, const char *oname,
                    uint64_t nparent, const char *nname, unsigned flags, int64_t now_ns)
{
	struct sg_op op = {.kind = OP_RENAME,
	                   .stamp = stamp,
	                   .parent = oparent,
	                   .name = oname,
	                   .nparent = nparent,
	                   .nname = nname,
	                   .flags = flags,
	                   .now_ns = now_ns};
	int rc;

	if (flags & ~(unsigned)(SG_RENAME_NOREPLACE | SG_RENAME_EXCHANGE))
		return -EINVAL;
	if ((flags & SG_RENAME_NOREPLACE) && (flags & SG_RENAME_EXCHANGE))
		return -EINVAL;
	rc = sg_name_check(oname, strlen(oname));
	if (rc)
		return rc == -EINVAL ? -ENOENT : rc;
	rc = sg_name_check(nname, strlen(nname));
	if (rc)
		return rc;
	return submit(st, &op, NULL);
}

int sg_store_setxattr(sg_store *st, const sg_stamp *stamp, uint64_t id, const char *name,
                      const void *value, size_t len, int flags, int64_t now_ns)
{
	struct sg_op op = {.kind = OP_SETXATTR,
	                   .stamp = stamp,
	                   .id = id,
	                   .name = name,
	                   .data = value,
	                   .len = len,
	                   .flags = (unsigned)flags,
	                   .now_ns = now_ns};
	size_t n = strlen(name);

	if (n == 0 || n > SG_NAME_MAX)
		return -ERANGE;
	if (len > SG_XATTR_MAX)
		return -E2BIG;
	return submit(st, &op, NULL);
}

int sg_store_removexattr(sg_store *st, const sg_stamp *stamp, uint64_t id, const char *name,
                         int64_t now_ns)
{
	struct sg_op op = {
	    .kind = OP_REMOVEXATTR, .stamp = stamp, .id = id, .name = name, .now_ns = now_ns};
	size_t n = strlen(name);

	if (n == 0 || n > SG_NAME_MAX)
		return -ERANGE;
	return submit(st, &op, NULL);
}

/* What sg_store_apply() refuses before queueing; 0 if the change may go to the writer. */
static int apply_check(sg_store *st, const sg_change *c)
{

	if (!c->path || !*c->path || strlen(c->path) > SG_PATH_MAX)
		return c->path && *c->path ? -ENAMETOOLONG : -EINVAL;
	if (c->type < SG_TYPE_FILE || c->type > SG_TYPE_TOMBSTONE)
		return -EINVAL;
	if (c->type == SG_TYPE_FILE && c->len > st->max_file)
		return -EFBIG;
	if (c->type == SG_TYPE_SYMLINK && (c->len == 0 || c->len > SG_PATH_MAX))
		return -EINVAL;
	if ((c->stamp.origin == 0 || c->stamp.hlc == 0) &&
	    !(c->type == SG_TYPE_DIR && c->stamp.origin == 0 && c->stamp.hlc == 0))
		return -EINVAL; /* only a directory placeholder has no stamp */
	for (size_t i = 0; i < c->nxattrs; i++)
		if (!c->xattrs[i].name || strncmp(c->xattrs[i].name, "user.", 5) ||
		    strlen(c->xattrs[i].name) > SG_NAME_MAX || c->xattrs[i].len > SG_XATTR_MAX)
			return -EINVAL;
	return 0;
}

int sg_store_apply(sg_store *st, const sg_change *c)
{
	struct sg_op op = {.kind = OP_APPLY, .stamp = &c->stamp, .change = c};
	int rc = apply_check(st, c);

	return rc ? rc : submit(st, &op, NULL);
}

int sg_store_apply_many(sg_store *st, const sg_change *c, size_t n, int *rcs)
{
	struct sg_op *ops = calloc(n ? n : 1, sizeof(*ops));
	size_t k = 0;

	if (!ops)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		rcs[i] = apply_check(st, &c[i]);
		if (rcs[i])
			continue;
		ops[k].kind = OP_APPLY;
		ops[k].stamp = &c[i].stamp;
		ops[k].change = &c[i];
		ops[k].id = i; /* where its result goes */
		k++;
	}
	sg_writer_submit_many(st, ops, k);
	for (size_t j = 0; j < k; j++)
		rcs[ops[j].id] = ops[j].rc == 0 && ops[j].held ? SG_APPLY_HELD : ops[j].rc;
	free(ops);
	return 0;
}

/* What sg_store_put() refuses before queueing: anything a peer would refuse
 * on the wire too, so that a put change can always be sent. */
static int put_check(sg_store *st, const sg_change *c)
{
	const char *p;

	if (!c->path || !*c->path)
		return -EINVAL;
	if (strlen(c->path) > SG_PATH_MAX)
		return -ENAMETOOLONG;
	for (p = c->path;;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		int rc = sg_name_check(p, n);

		if (rc)
			return rc;
		if (!e)
			break;
		p = e + 1;
	}
	if (c->type < SG_TYPE_FILE || c->type > SG_TYPE_TOMBSTONE)
		return -EINVAL;
	if (c->len && !c->data)
		return -EINVAL;
	switch (c->type) {
	case SG_TYPE_FILE:
		if (c->len > st->max_file)
			return -EFBIG;
		break;
	case SG_TYPE_SYMLINK:
		if (c->len == 0 || memchr(c->data, '\0', c->len))
			return -EINVAL;
		if (c->len > SG_PATH_MAX)
			return -ENAMETOOLONG;
		break;
	default:
		if (c->len)
			return -EINVAL;
		break;
	}
	if (c->type == SG_TYPE_TOMBSTONE)
		return 0; /* its mode, owner and xattrs do not matter */
	if (c->nxattrs > SG_PUT_XATTRS_MAX || (c->nxattrs && !c->xattrs))
		return -EINVAL;
	for (size_t i = 0; i < c->nxattrs; i++) {
		const sg_xattr *x = &c->xattrs[i];
		size_t n = x->name ? strlen(x->name) : 0;

		if (n <= 5 || n > 5 + 250 || strncmp(x->name, "user.", 5) ||
		    x->len > SG_XATTR_MAX || (x->len && !x->value))
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->xattrs[j].name, x->name) == 0)
				return -EINVAL;
	}
	return 0;
}

int sg_store_put(sg_store *st, const sg_change *c)
{
	struct sg_op op = {.kind = OP_PUT, .change = c};
	int rc = put_check(st, c);

	return rc ? rc : submit(st, &op, NULL);
}

int sg_store_put_many(sg_store *st, const sg_change *c, size_t n, int *rcs)
{
	struct sg_op *ops = calloc(n ? n : 1, sizeof(*ops));
	size_t k = 0;

	if (!ops)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		rcs[i] = put_check(st, &c[i]);
		if (rcs[i])
			continue;
		ops[k].kind = OP_PUT;
		ops[k].change = &c[i];
		ops[k].id = i; /* where its result goes */
		k++;
	}
	sg_writer_submit_many(st, ops, k);
	for (size_t j = 0; j < k; j++)
		rcs[ops[j].id] = ops[j].rc;
	free(ops);
	return 0;
}

/* ---- purge and snapshots ---- */

int sg_store_purge_horizon(sg_store *st, sg_horizon *out)
{
	MDB_txn *txn;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = sg_rd_begin_committed(st, &txn);
	if (rc)
		return rc;
	rc = sg_horizon_read(st, txn, out);
	sg_rd_end(st, txn);
	return rc;
}

int sg_store_vv(sg_store *st, sg_vv_cb cb, void *ctx)
{
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	MDB_txn *txn;
	uint64_t own = 0;
	int rc, r, op = MDB_FIRST, own_done;

	rc = sg_rd_begin_committed(st, &txn);
	if (rc)
		return rc;
	rc = sg_meta_get0(st, txn, "seq", &own);
	own_done = own == 0;
	rc = rc ? rc : sg_mdb_err(mdb_cursor_open(txn, st->origins, &cur));
	while (rc == 0) {
		sg_vv_entry e;

		r = mdb_cursor_get(cur, &key, &val, op);
		op = MDB_NEXT;
		if (r == MDB_NOTFOUND)
			break;
		if (r || key.mv_size != 8 || val.mv_size != 8) {
			rc = r ? sg_mdb_err(r) : -EIO;
			break;
		}
		e.origin = sg_get_be64(key.mv_data);
		memcpy(&e.seq, val.mv_data, 8);
		if (!own_done && st->node_id <= e.origin) {
			sg_vv_entry me = {st->node_id, own};

			own_done = 1;
			if (e.origin == st->node_id) {
				if (e.seq < own)
					e.seq = own;
			} else {
				rc = cb(ctx, &me);
				if (rc)
					break;
			}
		}
		if (e.origin && e.seq)
			rc = cb(ctx, &e);
	}
	if (rc == 0 && !own_done) {
		sg_vv_entry me = {st->node_id, own};

		rc = cb(ctx, &me);
	}
	if (cur)
		mdb_cursor_close(cur);
	sg_rd_end(st, txn);
	return rc;
}

int sg_store_purge(sg_store *st, uint64_t upto, int64_t before_ns, uint64_t *purged)
{
	uint64_t after = 0, total = 0;
	int rc = 0;

	/* bounded transactions, so that writes from the filesystem and peers
	 * never wait long behind a large purge */
	while (after < upto) {
		struct sg_op op = {
		    .kind = OP_PURGE, .upto = upto, .after = after, .now_ns = before_ns};

		rc = submit(st, &op, NULL);
		if (rc)
			break;
		total += op.count;
		if (op.last == 0 || op.last <= after)
			break;
		after = op.last;
	}
	if (purged)
		*purged = total;
	return rc;
}

int sg_store_reconcile(sg_store *st, const sg_snapshot *snap, uint64_t *dropped)
{
	struct sg_op op = {.kind = OP_RECONCILE, .snap = snap};
	int rc;

	if (!snap || !snap->keep || (snap->nvv && !snap->vv))
		return -EINVAL;
	for (size_t i = 1; i < snap->nvv; i++)
		if (snap->vv[i].origin <= snap->vv[i - 1].origin)
			return -EINVAL; /* the writer looks origins up by bisection */
	rc = submit(st, &op, NULL);
	if (dropped)
		*dropped = rc == 0 ? op.count : 0;
	return rc;
}

int sg_store_sync(sg_store *st)
{
	struct sg_op op = {.kind = OP_SYNC};

	return submit(st, &op, NULL);
}

struct sync_async {
	struct sg_op op; /* first: the op is the whole */
	void (*done)(void *arg, int rc);
	void *arg;
};

static void sync_async_done(struct sg_op *op)
{
	struct sync_async *a = (struct sync_async *)op;

	a->done(a->arg, op->rc);
	free(a);
}

int sg_store_sync_async(sg_store *st, void (*done)(void *arg, int rc), void *arg)
{
	struct sync_async *a = calloc(1, sizeof(*a));
	int rc;

	if (!a)
		return -ENOMEM;
	a->op.kind = OP_SYNC;
	a->op.cb = sync_async_done;
	a->done = done;
	a->arg = arg;
	if ((rc = sg_writer_submit_async(st, &a->op)) != 0)
		free(a);
	return rc;
}

int sg_store_settle(sg_store *st)
{
	struct sg_op op = {.kind = OP_SYNC, .flags = SYNC_KEEP_ERR};

	return submit(st, &op, NULL);
}

int sg_store_checkpoint(sg_store *st)
{
	struct sg_op op = {.kind = OP_SYNC, .flags = SYNC_CHECKPOINT};

	return submit(st, &op, NULL);
}
