/* journal.c: the store's commit journal. A durable point of the writer (an
 * fsync, or a burst of changes sync_delay old) appends the LMDB puts and
 * deletes made since the last one, as one checksummed batch, to a
 * preallocated file written in place with O_DIRECT|O_DSYNC: one or two
 * 4 KiB writes instead of an LMDB commit (which rewrites the root-to-leaf
 * path of every B-tree it touches and syncs twice). The writer's LMDB
 * transaction stays open across durable points and commits, synced, at a
 * checkpoint; the journal then starts over. Opening the store replays the
 * batches the last checkpoint does not cover.
 *
 * File: block 0 holds {magic, version, journal id}; batches follow, each at
 * a block boundary: a header {magic, crc32c, journal id, seq, payload bytes,
 * records}, then records {db index u8, op u8, key length u16, value length
 * u32, key, value}, padded to a block. Batch seqs rise by one and never
 * repeat; replay stops at the first block that is not the next batch of this
 * journal (a torn write, a stale block, the end). The meta keys
 * "journal_id" and "journal_seq" (the last batch a commit covers) say which
 * journal belongs to the store and from where to replay. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "lmdb/store_i.h"
#include "log.h"
#include "util.h"

#define DOMAIN "store"
#define JMAGIC 0x314a4753u /* "SGJ1" */
#define JVERSION 1

struct jfile_hdr {
	uint32_t magic, version;
	uint64_t jid;
};

struct jbatch_hdr {
	uint32_t magic;
	uint32_t crc; /* crc32c of the header (this field 0) and the payload */
	uint64_t jid;
	uint64_t seq;
	uint32_t len;  /* payload bytes */
	uint32_t nrec; /* records in it */
};

struct jrec_hdr {
	uint8_t db, op;
	uint16_t klen;
	uint32_t vlen;
};

#define JOP_PUT 1
#define JOP_DEL 2

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1; /* Castagnoli */
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] =
			    (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t crc32c(uint32_t crc, const void *buf, size_t n)
{
	const unsigned char *p = buf;

	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		v ^= crc;
		crc = crc_table[7][v & 0xff] ^ crc_table[6][(v >> 8) & 0xff] ^
		      crc_table[5][(v >> 16) & 0xff] ^ crc_table[4][(v >> 24) & 0xff] ^
		      crc_table[3][(v >> 32) & 0xff] ^ crc_table[2][(v >> 40) & 0xff] ^
		      crc_table[1][(v >> 48) & 0xff] ^ crc_table[0][v >> 56];
		p += 8;
		n -= 8;
	}
	while (n--)
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* The store's databases, in the order a record's db index names them. */
static MDB_dbi *db_at(sg_store *st, unsigned i)
{
	MDB_dbi *dbs[] = {&st->meta,  &st->ent, &st->dir,     &st->data,
	                  &st->xattr, &st->log, &st->origins, &st->conflicts};

	return i < sizeof(dbs) / sizeof(dbs[0]) ? dbs[i] : NULL;
}

int sg_journal_db_index(sg_store *st, MDB_dbi dbi)
{
	MDB_dbi *d;

	for (unsigned i = 0; (d = db_at(st, i)) != NULL; i++)
		if (*d == dbi)
			return (int)i;
	return -1;
}

/* Append one record to a growable buffer. 0 or -ENOMEM. */
int sg_journal_rec(struct sg_jbuf *b, int db, int del, const void *k, size_t kl, const void *v,
                   size_t vl)
{
	struct jrec_hdr h = {(uint8_t)db, del ? JOP_DEL : JOP_PUT, (uint16_t)kl, (uint32_t)vl};
	size_t need = b->len + sizeof(h) + kl + vl;

	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 16384;
		unsigned char *n;
		while (cap < need)
			cap *= 2;
		n = realloc(b->p, cap);
		if (!n)
			return -ENOMEM;
		b->p = n;
		b->cap = cap;
	}
	memcpy(b->p + b->len, &h, sizeof(h));
	memcpy(b->p + b->len + sizeof(h), k, kl);
	if (vl)
		memcpy(b->p + b->len + sizeof(h) + kl, v, vl);
	b->len = need;
	b->nrec++;
	return 0;
}

static size_t blocks(size_t n)
{
	return (n + SG_JBLK - 1) / SG_JBLK * SG_JBLK;
}

/* Room for a batch of `len` payload bytes after pos? */
int sg_journal_fits(const sg_store *st, size_t len)
{
	const struct sg_journal *j = st->jn;

	return j && j->pos + blocks(sizeof(struct jbatch_hdr) + len) <= j->size;
}

static int scratch(struct sg_journal *j, size_t n)
{
	void *p;

	if (n <= j->cap)
		return 0;
	n = blocks(n);
	if (posix_memalign(&p, SG_JBLK, n) != 0)
		return -ENOMEM;
	free(j->buf);
	j->buf = p;
	j->cap = n;
	return 0;
}

/* A failed write or sync: the caller commits to the store instead. Logged
 * once for a run of failures (a durable point comes every few milliseconds). */
static int journal_failed(struct sg_journal *j, const char *what, int rc)
{
	if (j->fails++ == 0)
		sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-STORE-JOURNAL",
		       "journal %s failed: %s; changes are committed to the store directly "
		       "until a journal write works again",
		       what, strerror(-rc));
	return rc;
}

int sg_journal_write(sg_store *st, const struct sg_jbuf *b, uint64_t seq)
{
	struct sg_journal *j = st->jn;
	struct jbatch_hdr h = {JMAGIC, 0, j->jid, seq, (uint32_t)b->len, b->nrec};
	size_t n = blocks(sizeof(h) + b->len);
	ssize_t w;
	int rc;

	if (!sg_journal_fits(st, b->len))
		return -ENOSPC;
	if ((rc = scratch(j, n)) != 0)
		return rc;
	memcpy(j->buf, &h, sizeof(h));
	if (b->len)
		memcpy(j->buf + sizeof(h), b->p, b->len);
	memset(j->buf + sizeof(h) + b->len, 0, n - sizeof(h) - b->len);
	h.crc = crc32c(0, j->buf, sizeof(h) + b->len);
	memcpy(j->buf, &h, sizeof(h));
	w = pwrite(j->fd, j->buf, n, (off_t)j->pos);
	if (w != (ssize_t)n)
		return journal_failed(j, "write", w < 0 ? -errno : -EIO);
	if (!j->dsync && fdatasync(j->fd) != 0)
		return journal_failed(j, "sync", -errno);
	if (j->fails) {
		sg_log(SG_LOG_NOTICE, DOMAIN, "SIGIL-STORE-JOURNAL",
		       "journal writes work again, after %llu failed",
		       (unsigned long long)j->fails);
		j->fails = 0;
	}
	j->pos += n;
	atomic_fetch_add(&st->jwrites, 1);
	return 0;
}

void sg_journal_reset(sg_store *st)
{
	if (st->jn)
		st->jn->pos = SG_JBLK;
}

static int fsync_dir_of(const char *path)
{
	char dir[4200], *slash;
	int fd, rc = 0;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Make a fresh journal file: a header and zeros (blocks written once, so
 * that writing them again in place changes no file system metadata). */
static int journal_create(const char *path, uint64_t size, uint64_t jid)
{
	char tmp[4300];
	unsigned char *zero;
	struct jfile_hdr h = {JMAGIC, JVERSION, jid};
	int fd, rc = 0;

	snprintf(tmp, sizeof(tmp), "%s.new", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	zero = calloc(1, 1 << 20);
	if (!zero) {
		close(fd);
		unlink(tmp);
		return -ENOMEM;
	}
	for (uint64_t off = 0; off < size && !rc; off += 1 << 20) {
		ssize_t w = pwrite(fd, zero, 1 << 20, (off_t)off);
		if (w != 1 << 20)
			rc = w < 0 ? -errno : -ENOSPC;
	}
	free(zero);
	if (!rc && pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		rc = -errno;
	if (!rc && fsync(fd) != 0)
		rc = -errno;
	close(fd);
	if (!rc && rename(tmp, path) != 0)
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return rc;
	}
	return fsync_dir_of(path);
}

static int journal_fd(struct sg_journal *j, const char *path)
{
	j->dsync = 1;
	j->fd = open(path, O_RDWR | O_CLOEXEC | O_DIRECT | O_DSYNC);
	if (j->fd < 0 && errno == EINVAL) /* no O_DIRECT here (tmpfs) */
		j->fd = open(path, O_RDWR | O_CLOEXEC | O_DSYNC);
	return j->fd < 0 ? -errno : 0;
}

/* Replay the batches after `from` into txn. Returns the last seq applied
 * (from: none), or -errno. */
static int64_t replay(sg_store *st, struct sg_journal *j, MDB_txn *txn, uint64_t from,
                      uint64_t *nbatches)
{
	uint64_t expect = from + 1, pos = SG_JBLK;
	int64_t last = (int64_t)from;

	*nbatches = 0;
	while (pos + SG_JBLK <= j->size) {
		struct jbatch_hdr h;
		size_t n, off;
		ssize_t r;

		if (scratch(j, SG_JBLK) != 0)
			return -ENOMEM;
		r = pread(j->fd, j->buf, SG_JBLK, (off_t)pos);
		if (r != SG_JBLK)
			return r < 0 ? -errno : -EIO;
		memcpy(&h, j->buf, sizeof(h));
		if (h.magic != JMAGIC || h.jid != j->jid || h.seq != expect)
			break;
		n = blocks(sizeof(h) + (size_t)h.len);
		if (h.len > j->size || pos + n > j->size)
			break;
		if (n > SG_JBLK) {
			if (scratch(j, n) != 0)
				return -ENOMEM;
			r = pread(j->fd, j->buf, n, (off_t)pos);
			if (r != (ssize_t)n)
				return r < 0 ? -errno : -EIO;
		}
		{
			uint32_t want = h.crc;
			struct jbatch_hdr z = h;
			z.crc = 0;
			memcpy(j->buf, &z, sizeof(z));
			if (crc32c(0, j->buf, sizeof(h) + h.len) != want)
				break; /* torn: never acknowledged */
		}
		off = sizeof(h);
		for (uint32_t i = 0; i < h.nrec; i++) {
			struct jrec_hdr rh;
			MDB_val key, val;
			MDB_dbi *db;
			int rc;

			if (off + sizeof(rh) > sizeof(h) + h.len)
				return -EIO;
			memcpy(&rh, j->buf + off, sizeof(rh));
			off += sizeof(rh);
			if (off + rh.klen + rh.vlen > sizeof(h) + h.len || !(db = db_at(st, rh.db)))
				return -EIO;
			key.mv_size = rh.klen;
			key.mv_data = j->buf + off;
			val.mv_size = rh.vlen;
			val.mv_data = j->buf + off + rh.klen;
			off += rh.klen + rh.vlen;
			if (rh.op == JOP_PUT)
				rc = mdb_put(txn, *db, &key, &val, 0);
			else if (rh.op == JOP_DEL)
				rc = mdb_del(txn, *db, &key, NULL);
			else
				return -EIO;
			if (rc && !(rc == MDB_NOTFOUND && rh.op == JOP_DEL))
				return sg_mdb_err(rc);
		}
		last = (int64_t)h.seq;
		expect++;
		(*nbatches)++;
		pos += n;
	}
	return last;
}

int sg_journal_open(sg_store *st, MDB_txn *txn, int *replayed)
{
	struct sg_journal *j = calloc(1, sizeof(*j));
	char path[4200];
	uint64_t jid = 0, jseq = 0, nb = 0;
	struct stat sb;
	int rc;

	*replayed = 0;
	if (!j)
		return -ENOMEM;
	j->fd = -1;
	j->size = SG_JOURNAL_SIZE;
	snprintf(path, sizeof(path), "%s/journal", st->path);
	if ((rc = sg_meta_get0(st, txn, "journal_id", &jid)) != 0 ||
	    (rc = sg_meta_get0(st, txn, "journal_seq", &jseq)) != 0)
		goto fail;
	if (jid && stat(path, &sb) == 0) {
		/* this store's journal may hold synced changes: never replaced
		 * unless it names another journal; one that cannot be read stops
		 * the open (its size is its own: a later default does not apply) */
		struct jfile_hdr fh;
		j->size = (uint64_t)sb.st_size;
		rc = j->size % SG_JBLK || j->size < 2 * SG_JBLK ? -EIO : journal_fd(j, path);
		if (rc == 0 &&
		    (scratch(j, SG_JBLK) != 0 || pread(j->fd, j->buf, SG_JBLK, 0) != SG_JBLK))
			rc = -EIO;
		if (rc == 0) {
			memcpy(&fh, j->buf, sizeof(fh));
			if (fh.magic != JMAGIC || fh.version != JVERSION)
				rc = -EIO;
		}
		if (rc) {
			sg_log(
			    SG_LOG_ERR, DOMAIN, "SIGIL-STORE-JOURNAL",
			    "%s: cannot read it (%s); it may hold synced changes the store lacks. "
			    "Move it aside to start without them",
			    path, strerror(-rc));
			goto fail;
		}
		if (fh.jid == jid) {
			int64_t last;
			j->jid = jid;
			last = replay(st, j, txn, jseq, &nb);
			if (last < 0) {
				rc = (int)last;
				sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-STORE-JOURNAL",
				       "%s: cannot replay: %s", path, strerror(-rc));
				goto fail;
			}
			if (nb) {
				uint64_t v = (uint64_t)last;
				MDB_val k = {11, "journal_seq"}, d = {8, &v};
				if ((rc = sg_mdb_err(mdb_put(txn, st->meta, &k, &d, 0))) != 0)
					goto fail;
				sg_log(SG_LOG_NOTICE, DOMAIN, "SIGIL-STORE-REPLAY",
				       "replayed %llu journal batches (%llu to %llu) the "
				       "last checkpoint did not cover",
				       (unsigned long long)nb, (unsigned long long)jseq + 1,
				       (unsigned long long)v);
				jseq = v;
				*replayed = 1;
			}
		}
	}
	if (!j->jid) {
		struct statvfs sv;
		/* none yet, or not this store's: a new one, where there is room for
		 * it beside the store (else every durable point is a commit) */
		j->size = SG_JOURNAL_SIZE;
		if (statvfs(st->path, &sv) == 0 &&
		    (uint64_t)sv.f_bavail * sv.f_frsize < SG_JOURNAL_MIN_FREE + j->size) {
			sg_log(
			    SG_LOG_WARNING, DOMAIN, "SIGIL-STORE-JOURNAL",
			    "%s: under %llu MiB free: no commit journal; every fsync commits the "
			    "store",
			    st->path, (unsigned long long)((SG_JOURNAL_MIN_FREE + j->size) >> 20));
			if (j->fd >= 0)
				close(j->fd);
			free(j->buf);
			free(j);
			return 0;
		}
		MDB_val k = {10, "journal_id"}, d = {8, &jid};
		if (jid)
			sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-STORE-JOURNAL",
			       "%s is missing or not this store's: a new one is made; changes "
			       "synced after the last checkpoint, if any, are not in the store",
			       path);
		if (j->fd >= 0)
			close(j->fd);
		j->fd = -1;
		jid = 0;
		while (jid == 0 && getrandom(&jid, sizeof(jid), 0) != sizeof(jid))
			;
		if ((rc = journal_create(path, j->size, jid)) != 0 ||
		    (rc = journal_fd(j, path)) != 0) {
			sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-STORE-JOURNAL", "cannot make %s: %s",
			       path, strerror(-rc));
			goto fail;
		}
		j->jid = jid;
		if ((rc = sg_mdb_err(mdb_put(txn, st->meta, &k, &d, 0))) != 0)
			goto fail;
		*replayed = 1; /* the new id must be on disk before a batch names it */
	}
	j->pos = SG_JBLK;
	st->jseq = jseq;
	st->jn = j;
	return 0;
fail:
	if (j->fd >= 0)
		close(j->fd);
	free(j->buf);
	free(j);
	return rc;
}

void sg_journal_close(sg_store *st)
{
	if (!st->jn)
		return;
	close(st->jn->fd);
	free(st->jn->buf);
	free(st->jn);
	st->jn = NULL;
}
