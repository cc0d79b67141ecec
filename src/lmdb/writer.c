/* writer.c: the store's single writer thread. It drains queued mutations in
 * arrival order into one LMDB transaction (group commit), versions and stamps
 * every change, decides last-writer-wins, and grows the map when it fills. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "lmdb/store_i.h"
#include "log.h"
#include "util.h"

#define DOMAIN "store"
#define PURGE_BATCH_ROWS 4096 /* log rows one purge transaction looks at */

struct note_slot {
	sg_note n;
	char name[SG_NAME_MAX + 1];
};

/* State of the writer and of its open write transaction. */
struct wctx {
	sg_store *st;
	MDB_txn *txn; /* where the op writes: the open transaction or a child of it */
	uint64_t version, seq, hlc, next_id, live, tombs, conflict_seq;
	int map_full;
	struct note_slot *notes;
	size_t nnotes, cap;
	/* the open transaction (see "the batch" below) */
	MDB_txn *parent;
	int64_t opened_ns;       /* first acknowledged change in it */
	_Atomic int64_t last_ns; /* last op run (callers' own runs too: sg_writer_submit) */
	size_t acked;            /* deferred changes in it (acknowledged, or about to be) */
	size_t released;         /* of those, acknowledged already: it can no longer be dropped */
	struct sg_op **waiters;  /* ops in it that wait for the commit */
	size_t nwait, capw;
	int need_sync;
	int changed;      /* an op changed something in it */
	int busy;         /* changes keep coming: hold the transaction open (linger) */
	uint64_t est;     /* bytes it may write, roughly: sizes its room */
	uint64_t avail;   /* free bytes where the store lives, at the last commit */
	int64_t avail_ns; /* when avail was read */
	uint64_t hlc_floor;
	/* the journal (journal.c): records of what the open transaction holds
	 * beyond the last batch written; once a batch is written the
	 * transaction holds durable changes (durable) and is never dropped */
	struct sg_jbuf j;
	int jfail;          /* a record could not be kept: checkpoint instead */
	size_t durable;     /* changes in it that a journal batch made durable */
	int64_t durable_ns; /* when the first of them was */
	int force_cp;       /* stopping: commit what is open */
	/* a batch being written without wtxn_lock (txn_durable) */
	int jbusy;
	pthread_cond_t jdone; /* with wtxn_lock: jbusy went 0 */
	struct sg_jbuf jspare;
	struct sg_op **wspare;
	size_t capw_spare;
	struct note_slot *nspare;
	size_t cap_spare;
	int cp_asked; /* a waiter asked for a checkpoint */
	/* an op run in the open transaction itself, with no child transaction
	 * (flat_ok): every put and delete keeps the row it replaces, so that a
	 * failed op is undone by hand (undo_run) */
	int flat;
	int soft_full;    /* a flat op stopped short of the map's end */
	int lost;         /* a flat op could not be undone: never commit it */
	uint64_t psize;   /* the map's page size */
	uint64_t pg_map;  /* pages the map holds, when the transaction opened */
	uint64_t pg_base; /* pages in use then */
	uint64_t grow;    /* bytes the transaction's writes may have added */
	struct undo *u;   /* the flat op's undo records, in order */
	size_t nu, capu;
	unsigned char *ub; /* their keys and old values */
	size_t ulen, ucap;
	/* a checkpoint that found no room on disk (room_wait) */
	int room_retry; /* the caller runs its batch again: COMMIT_NOROOM */
	int room_tries; /* times the batch ran again so far */
};

/* One put or delete of a flat op: the row as it was (had: there was one). */
struct undo {
	MDB_dbi dbi;
	int had;
	size_t off, kl, vl; /* key, then old value, at ub + off */
};

/* A checkpoint (an LMDB commit, synced: readers and the writer wait for it)
 * comes in a lull (no op for CP_LULL_NS) once the open transaction's first
 * durable point is CP_MAX_NS old, at CP_HARD_NS whatever comes, or when its
 * estimated size or the journal's room calls for one. */
#define CP_MAX_NS 1000000000LL
#define CP_LULL_NS 10000000LL
#define CP_HARD_NS 5000000000LL
#define CP_EST_MAX(st) ((st)->map_size / 16)

/* ---- low-level puts; every LMDB write goes through w_put/w_del ---- */

/* Keep a record of a put or delete for the next journal batch. */
static void jrec(struct wctx *w, MDB_dbi dbi, int del, const void *k, size_t kl, const void *v,
                 size_t vl)
{
	int db;

	if (!w->st->jn || w->jfail)
		return;
	db = sg_journal_db_index(w->st, dbi);
	if (db < 0 || sg_journal_rec(&w->j, db, del, k, kl, v, vl) != 0)
		w->jfail = 1;
}

/*
 * A flat op's room. Its transaction can take at most every page in use when
 * it opened (each is copied once when first changed, and split once more
 * when found full), plus what its writes add: at most GROW_FACTOR times
 * their bytes in new and split pages. Undoing the op's rows costs as much
 * again. Short of that much map, the op stops (soft_full) before LMDB could
 * fail it with MDB_MAP_FULL, which would leave the whole transaction, and
 * the acknowledged changes in it, unusable.
 */
#define GROW_FACTOR 5
#define ROW_EST(kl, vl) (GROW_FACTOR * ((uint64_t)(kl) + (vl) + 64))
#define FLAT_SLACK 256 /* pages: the free list's own pages, the meta pages */

static int room_for(const struct wctx *w, uint64_t more)
{
	uint64_t bytes = w->grow + more + GROW_FACTOR * (uint64_t)w->ulen;

	return w->psize && 2 * w->pg_base + bytes / w->psize + FLAT_SLACK <= w->pg_map;
}

/* Keep the row that (dbi, key) holds before a flat op changes it. 1: kept,
 * 0: there is none (a delete has nothing to do), or -errno. */
static int undo_keep(struct wctx *w, MDB_dbi dbi, MDB_val *key, int del)
{
	MDB_val old = {0, NULL};
	int rc = mdb_get(w->txn, dbi, key, &old);
	struct undo *u;

	if (rc && rc != MDB_NOTFOUND)
		return sg_mdb_err(rc);
	if (rc && del)
		return 0;
	if (w->nu == w->capu) {
		size_t cap = w->capu ? 2 * w->capu : 64;
		void *p = realloc(w->u, cap * sizeof(*w->u));
		if (!p)
			return -ENOMEM;
		w->u = p;
		w->capu = cap;
	}
	if (w->ulen + key->mv_size + old.mv_size > w->ucap) {
		size_t cap = w->ucap ? w->ucap : 4096;
		void *p;
		while (cap < w->ulen + key->mv_size + old.mv_size)
			cap *= 2;
		if (!(p = realloc(w->ub, cap)))
			return -ENOMEM;
		w->ub = p;
		w->ucap = cap;
	}
	u = &w->u[w->nu++];
	*u = (struct undo){dbi, rc == 0, w->ulen, key->mv_size, old.mv_size};
	memcpy(w->ub + w->ulen, key->mv_data, key->mv_size);
	if (old.mv_size)
		memcpy(w->ub + w->ulen + key->mv_size, old.mv_data, old.mv_size);
	w->ulen += key->mv_size + old.mv_size;
	return 1;
}

__attribute__((weak)) int sg_writer_undo_fault(void)
{
	return 0;
}

__attribute__((weak)) int sg_writer_commit_fault(void)
{
	return 0;
}

/* Put back, last first, every row the flat op changed. 0 or -errno: the
 * open transaction is then beyond repair. */
static int undo_run(struct wctx *w)
{
	int rc = w->nu && sg_writer_undo_fault() ? EIO : 0;

	while (w->nu && !rc) {
		const struct undo *u = &w->u[--w->nu];
		MDB_val key = {u->kl, w->ub + u->off}, val = {u->vl, w->ub + u->off + u->kl};

		rc = u->had ? mdb_put(w->txn, u->dbi, &key, &val, 0)
		            : mdb_del(w->txn, u->dbi, &key, NULL);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	w->nu = 0;
	w->ulen = 0;
	return sg_mdb_err(rc);
}

/* Before a flat op's put or delete: room for it, and its undo record.
 * 1: go on, 0: nothing to delete, or -errno (-ENOSPC with soft_full). */
static int flat_prep(struct wctx *w, MDB_dbi dbi, MDB_val *key, size_t vl, int del)
{
	if (!room_for(w, ROW_EST(key->mv_size, vl))) {
		w->soft_full = 1;
		return -ENOSPC;
	}
	return undo_keep(w, dbi, key, del);
}

static int w_put(struct wctx *w, MDB_dbi dbi, const void *k, size_t kl, const void *v, size_t vl)
{
	MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
	int rc;

	if (w->flat && (rc = flat_prep(w, dbi, &key, vl, 0)) < 0)
		return rc;
	w->grow += ROW_EST(kl, vl);
	rc = mdb_put(w->txn, dbi, &key, &val, 0);
	if (rc == MDB_MAP_FULL)
		w->map_full = 1;
	if (rc == 0)
		jrec(w, dbi, 0, k, kl, v, vl);
	return sg_mdb_err(rc);
}

static int w_del(struct wctx *w, MDB_dbi dbi, const void *k, size_t kl)
{
	MDB_val key = {kl, (void *)k};
	int rc;

	if (w->flat && (rc = flat_prep(w, dbi, &key, 0, 1)) <= 0)
		return rc;
	w->grow += ROW_EST(kl, 0);
	rc = mdb_del(w->txn, dbi, &key, NULL);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc == MDB_MAP_FULL)
		w->map_full = 1;
	if (rc == 0)
		jrec(w, dbi, 1, k, kl, NULL, 0);
	return sg_mdb_err(rc);
}

/*
 * Flat runs: an op (or the counters of a journal batch) goes into the open
 * transaction itself, keeping what each of its puts and deletes replaces;
 * if it fails, that is put back. A nested transaction would do the same,
 * but LMDB allocates its dirty lists (some 3 MiB) for every one and merges
 * them into the parent's on commit.
 */
static void flat_begin(struct wctx *w, size_t *jl, uint32_t *jn)
{
	*jl = w->j.len;
	*jn = w->j.nrec;
	w->flat = 1;
	w->nu = 0;
	w->ulen = 0;
}

/* After a flat run that returned rc. rc: kept (0) or undone (-errno); 1:
 * it stopped short of the map's end, undone, and must run nested; -EIO if
 * LMDB failed the transaction itself. */
static int flat_end(sg_store *st, struct wctx *w, int rc, size_t jl, uint32_t jn)
{
	w->flat = 0;
	if (!rc && !w->map_full && !w->soft_full) {
		w->nu = 0;
		w->ulen = 0;
		return 0;
	}
	/* nothing of it stays: neither do its journal records */
	w->j.len = jl;
	w->j.nrec = jn;
	if (undo_run(w) != 0 || w->map_full) {
		/* what the transaction holds is lost, as in a crash; what the
		 * journal holds comes back with a restart */
		sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-STORE-UNDO",
		       "a failed change could not be undone; refusing changes until a restart");
		atomic_store(&st->broken, 1);
		w->lost = 1;
		w->map_full = 0;
		w->soft_full = 0;
		return -EIO;
	}
	if (w->soft_full) {
		w->soft_full = 0;
		return 1;
	}
	return rc ? rc : -ENOSPC;
}

static int rec_put(struct wctx *w, uint64_t id, const struct sg_rec *rec, const char *name)
{
	unsigned char k[8];
	unsigned char v[sizeof(struct sg_rec) + SG_NAME_MAX];

	sg_be64(k, id);
	memcpy(v, rec, sizeof(*rec));
	memcpy(v + sizeof(*rec), name, rec->namelen);
	return w_put(w, w->st->ent, k, 8, v, sizeof(*rec) + rec->namelen);
}

static size_t dkey(unsigned char *k, uint64_t parent, const char *name)
{
	size_t n = strlen(name);

	sg_be64(k, parent);
	memcpy(k + 8, name, n);
	return 8 + n;
}

static int dirent_put(struct wctx *w, uint64_t parent, const char *name, uint64_t id, uint32_t type)
{
	unsigned char k[8 + SG_NAME_MAX], v[9];
	size_t kl = dkey(k, parent, name);

	sg_be64(v, id);
	v[8] = (unsigned char)type;
	return w_put(w, w->st->dir, k, kl, v, 9);
}

static int dirent_del(struct wctx *w, uint64_t parent, const char *name)
{
	unsigned char k[8 + SG_NAME_MAX];

	return w_del(w, w->st->dir, k, dkey(k, parent, name));
}

static int data_put(struct wctx *w, uint64_t id, const void *data, size_t len)
{
	unsigned char k[8];

	sg_be64(k, id);
	if (len == 0)
		return w_del(w, w->st->data, k, 8);
	return w_put(w, w->st->data, k, 8, data, len);
}

static int xattrs_del_all(struct wctx *w, uint64_t id)
{
	for (;;) {
		unsigned char k[8], dk[8 + SG_NAME_MAX];
		MDB_cursor *cur;
		MDB_val key = {8, k}, val;
		size_t kl = 0;
		int rc;

		sg_be64(k, id);
		rc = mdb_cursor_open(w->txn, w->st->xattr, &cur);
		if (rc)
			return sg_mdb_err(rc);
		rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		if (rc == 0 && key.mv_size > 8 && key.mv_size <= sizeof(dk) &&
		    sg_get_be64(key.mv_data) == id) {
			kl = key.mv_size;
			memcpy(dk, key.mv_data, kl);
		}
		mdb_cursor_close(cur);
		if (rc && rc != MDB_NOTFOUND)
			return sg_mdb_err(rc);
		if (!kl)
			return 0;
		rc = w_del(w, w->st->xattr, dk, kl);
		if (rc)
			return rc;
	}
}

/* ---- versions, stamps, last-writer-wins ---- */

static int log_bump(struct wctx *w, uint64_t id, struct sg_rec *rec)
{
	unsigned char k[8], v[8];
	int rc;

	if (rec->version) {
		sg_be64(k, rec->version);
		rc = w_del(w, w->st->log, k, 8);
		if (rc)
			return rc;
	}
	rec->version = ++w->version;
	sg_be64(k, rec->version);
	sg_be64(v, id);
	return w_put(w, w->st->log, k, 8, v, 8);
}

static int log_drop(struct wctx *w, const struct sg_rec *rec)
{
	unsigned char k[8];

	if (!rec->version)
		return 0;
	sg_be64(k, rec->version);
	return w_del(w, w->st->log, k, 8);
}

static uint64_t hlc_tick(struct wctx *w)
{
	uint64_t now = (uint64_t)(sg_now_ns() / 1000000) << 16;

	w->hlc = now > w->hlc ? now : w->hlc + 1;
	return w->hlc;
}

/* Stamp `rec` for a change: local (stamp == NULL) or as given; then version it. */
/*
 * The base a local change replacing `rec` carries: the last version from
 * another node that this node had seen at the path. A run of local edits
 * (a truncate then a write, a save then a chmod) keeps the base of its first,
 * so a peer can still tell that the whole run never saw its version.
 */
static sg_stamp base_of(const struct wctx *w, const struct sg_rec *rec)
{
	if (rec->origin == w->st->node_id)
		return (sg_stamp){rec->base_hlc, rec->base_origin, rec->base_seq};
	return (sg_stamp){rec->hlc, rec->origin, rec->seq};
}

static int stamp_and_log(struct wctx *w, const sg_stamp *stamp, uint64_t id, struct sg_rec *rec)
{
	const sg_stamp base = base_of(w, rec);

	/* a remote change's base is set from the change afterwards (apply_base) */
	rec->base_hlc = base.hlc;
	rec->base_origin = base.origin;
	rec->base_seq = base.seq;
	if (stamp) {
		unsigned char k[8];
		MDB_val key = {8, k}, val;
		uint64_t have = 0;

		rec->hlc = stamp->hlc;
		rec->origin = stamp->origin;
		rec->seq = stamp->seq;
		if (stamp->hlc > w->hlc)
			w->hlc = stamp->hlc;
		if (stamp->origin == 0)
			return log_bump(w, id, rec); /* a placeholder */
		sg_be64(k, stamp->origin);
		if (mdb_get(w->txn, w->st->origins, &key, &val) == 0 && val.mv_size == 8)
			memcpy(&have, val.mv_data, 8);
		if (stamp->seq > have) {
			int rc = w_put(w, w->st->origins, k, 8, &stamp->seq, 8);
			if (rc)
				return rc;
		}
	} else {
		rec->hlc = hlc_tick(w);
		rec->origin = w->st->node_id;
		rec->seq = ++w->seq;
	}
	return log_bump(w, id, rec);
}

/* <0 when stamp a is older than the entry's, 0 equal, >0 newer (by hlc, then origin). */
static int stamp_cmp(const sg_stamp *a, const struct sg_rec *rec)
{
	if (a->hlc != rec->hlc)
		return a->hlc < rec->hlc ? -1 : 1;
	if (a->origin != rec->origin)
		return a->origin < rec->origin ? -1 : 1;
	return 0;
}

static int refused(const sg_stamp *stamp, const struct sg_rec *rec)
{
	return stamp && stamp_cmp(stamp, rec) < 0;
}

/* ---- notes for the observer ---- */

/* Note a change for the observer; the note, or NULL if there was no memory
 * for it (the observer misses it; the change itself stands). */
static sg_note *note(struct wctx *w, uint64_t id, uint64_t parent, const char *name,
                     uint64_t old_id, uint32_t type, uint64_t version, int local)
{
	struct note_slot *s;

	if (w->nnotes == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct note_slot *n = realloc(w->notes, cap * sizeof(*n));
		if (!n)
			return NULL;
		w->notes = n;
		w->cap = cap;
	}
	s = &w->notes[w->nnotes++];
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->n.id = id;
	s->n.parent = parent;
	s->n.name = NULL;
	s->n.old_id = old_id;
	s->n.version = version;
	s->n.type = type;
	s->n.local = local;
	s->n.empty_new = 0;
	return &s->n;
}

/* ---- entry helpers ---- */

static int get_live(struct wctx *w, uint64_t id, struct sg_rec *rec, char *name)
{
	int rc = sg_rec_get(w->st, w->txn, id, rec, name);

	return rc == 0 && rec->type == SG_TYPE_TOMBSTONE ? -ENOENT : rc;
}

static int get_dir(struct wctx *w, uint64_t id, struct sg_rec *rec, char *name)
{
	int rc = get_live(w, id, rec, name);

	return rc == 0 && rec->type != SG_TYPE_DIR ? -ENOTDIR : rc;
}

/* A directory's child counts and times change with its children; not a versioned change. */
static int parent_adjust(struct wctx *w, uint64_t pid, int dchild, int dsubdir, int64_t now)
{
	char name[SG_NAME_MAX + 1];
	struct sg_rec p;
	int rc = sg_rec_get(w->st, w->txn, pid, &p, name);

	if (rc)
		return rc;
	p.nchild = (uint32_t)((int64_t)p.nchild + dchild);
	p.nsubdir = (uint32_t)((int64_t)p.nsubdir + dsubdir);
	if (now) {
		p.mtime_ns = now;
		p.ctime_ns = now;
	}
	return rec_put(w, pid, &p, name);
}

/* Forget an entry row entirely (record, content, xattrs, log row); not its dirent. */
static int row_drop(struct wctx *w, uint64_t id, const struct sg_rec *rec)
{
	unsigned char k[8];
	int rc;

	sg_be64(k, id);
	rc = w_del(w, w->st->ent, k, 8);
	rc = rc ? rc : w_del(w, w->st->data, k, 8);
	rc = rc ? rc : xattrs_del_all(w, id);
	rc = rc ? rc : log_drop(w, rec);
	if (rc)
		return rc;
	if (rec->type == SG_TYPE_TOMBSTONE)
		w->tombs--;
	else
		w->live--;
	return 0;
}

/* Delete everything below directory `id` (entries and tombstones), for a remote
 * delete of a directory or a file replacing one. */
static int subtree_drop(struct wctx *w, uint64_t id, int depth)
{
	unsigned char k[8 + SG_NAME_MAX];
	MDB_cursor *cur;
	MDB_val key, val;
	int rc;

	if (depth > SG_PATH_MAX)
		return -ELOOP;
	for (;;) {
		char name[SG_NAME_MAX + 1];
		struct sg_rec rec;
		uint64_t cid;
		size_t n;

		sg_be64(k, id);
		key.mv_size = 8;
		key.mv_data = k;
		rc = mdb_cursor_open(w->txn, w->st->dir, &cur);
		if (rc)
			return sg_mdb_err(rc);
		rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		if (rc == 0 && (key.mv_size < 8 || sg_get_be64(key.mv_data) != id))
			rc = MDB_NOTFOUND;
		if (rc == 0) {
			n = key.mv_size - 8;
			memcpy(name, (char *)key.mv_data + 8, n);
			name[n] = '\0';
			cid = sg_get_be64(val.mv_data);
		}
		mdb_cursor_close(cur);
		if (rc == MDB_NOTFOUND)
			return 0;
		if (rc)
			return sg_mdb_err(rc);
		rc = sg_rec_get(w->st, w->txn, cid, &rec, NULL);
		/* a deleted directory's tombstone keeps its children's below it */
		if (rc == 0 && (rec.type == SG_TYPE_DIR || rec.type == SG_TYPE_TOMBSTONE))
			rc = subtree_drop(w, cid, depth + 1);
		rc = rc ? rc : row_drop(w, cid, &rec);
		rc = rc ? rc : dirent_del(w, id, name);
		if (rc)
			return rc;
	}
}

/* What is left of a directory a delete did not cover: a placeholder, as a
 * change whose parent is missing makes one (apply_parent): mode 0755, root's,
 * no xattrs, stamped zero so that any real change to it wins. */
static int placeholder_in_place(struct wctx *w, uint64_t id, struct sg_rec *rec, const char *name)
{
	static const sg_stamp zero;
	int rc;

	if (rec->origin == 0 && rec->hlc == 0)
		return 0; /* one already: a delete delivered again changes nothing */
	rc = xattrs_del_all(w, id);
	rec->mode = 0755;
	rec->uid = rec->gid = 0;
	rec->mtime_ns = rec->ctime_ns = 0;
	rc = rc ? rc : stamp_and_log(w, &zero, id, rec);
	rc = rc ? rc : rec_put(w, id, rec, name);
	if (!rc)
		note(w, id, rec->parent, name, 0, SG_TYPE_DIR, rec->version, 0);
	return rc;
}

/*
 * A peer's delete of directory `id`, stamped `stamp`: drop what the delete
 * covers, every entry below that is older than it. An entry newer than the
 * delete was made without it being seen (a write racing the rm -r on
 * another node): it survives, and so do the directories on its way, as
 * placeholders. Either order of arrival then ends the same: a change newer
 * than a directory's tombstone brings the directory back as a placeholder
 * too (apply_parent). *kept: live entries left directly below `id`.
 */
static int subtree_drop_covered(struct wctx *w, uint64_t id, const sg_stamp *stamp, int depth,
                                size_t *kept)
{
	char after[SG_NAME_MAX + 1] = "";
	int rc;

	*kept = 0;
	if (depth > SG_PATH_MAX)
		return -ELOOP;
	for (;;) {
		unsigned char k[8 + SG_NAME_MAX];
		char name[SG_NAME_MAX + 1];
		struct sg_rec rec;
		MDB_cursor *cur;
		MDB_val key, val;
		uint64_t cid;
		size_t n, alen = strlen(after), sub = 0;
		int live, covered;

		sg_be64(k, id);
		memcpy(k + 8, after, alen);
		key.mv_size = 8 + alen;
		key.mv_data = k;
		rc = mdb_cursor_open(w->txn, w->st->dir, &cur);
		if (rc)
			return sg_mdb_err(rc);
		rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		if (rc == 0 && alen && key.mv_size == 8 + alen &&
		    memcmp((char *)key.mv_data + 8, after, alen) == 0)
			rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT); /* kept last time */
		if (rc == 0 && (key.mv_size < 8 || sg_get_be64(key.mv_data) != id))
			rc = MDB_NOTFOUND;
		if (rc == 0) {
			n = key.mv_size - 8;
			memcpy(name, (char *)key.mv_data + 8, n);
			name[n] = '\0';
			cid = sg_get_be64(val.mv_data);
		}
		mdb_cursor_close(cur);
		if (rc == MDB_NOTFOUND)
			break;
		if (rc)
			return sg_mdb_err(rc);
		rc = sg_rec_get(w->st, w->txn, cid, &rec, NULL);
		if (rc)
			return rc;
		live = rec.type != SG_TYPE_TOMBSTONE;
		covered = stamp_cmp(stamp, &rec) > 0;
		if (rec.type == SG_TYPE_DIR) {
			rc = subtree_drop_covered(w, cid, stamp, depth + 1, &sub);
			if (rc)
				return rc;
			if (sub) {
				/* something newer lives below: the directory stays */
				if (covered)
					rc = placeholder_in_place(w, cid, &rec, name);
				covered = 0;
			}
		}
		if (covered) {
			if (!live) /* a deleted directory's tombstone: its children's go too */
				rc = subtree_drop(w, cid, depth + 1);
			rc = rc ? rc : row_drop(w, cid, &rec);
			rc = rc ? rc : dirent_del(w, id, name);
			if (!rc && live)
				rc = parent_adjust(w, id, -1, rec.type == SG_TYPE_DIR ? -1 : 0, 0);
		} else {
			if (live)
				(*kept)++;
			memcpy(after, name, strlen(name) + 1);
		}
		if (rc)
			return rc;
	}
	if (!*kept)
		return subtree_drop(w, id, depth); /* only newer tombstones left: they go too */
	return 0;
}

/* Move the children (tombstones) of a replaced directory under its successor. */
static int children_move(struct wctx *w, uint64_t from, uint64_t to)
{
	for (;;) {
		unsigned char k[8];
		char name[SG_NAME_MAX + 1];
		struct sg_rec rec;
		MDB_cursor *cur;
		MDB_val key = {8, k}, val;
		uint64_t cid;
		uint32_t type;
		int rc;

		sg_be64(k, from);
		rc = mdb_cursor_open(w->txn, w->st->dir, &cur);
		if (rc)
			return sg_mdb_err(rc);
		rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		if (rc == 0 && (key.mv_size < 8 || sg_get_be64(key.mv_data) != from))
			rc = MDB_NOTFOUND;
		if (rc == 0) {
			memcpy(name, (char *)key.mv_data + 8, key.mv_size - 8);
			name[key.mv_size - 8] = '\0';
			cid = sg_get_be64(val.mv_data);
			type = ((unsigned char *)val.mv_data)[8];
		}
		mdb_cursor_close(cur);
		if (rc == MDB_NOTFOUND)
			return 0;
		if (rc)
			return sg_mdb_err(rc);
		rc = sg_rec_get(w->st, w->txn, cid, &rec, NULL);
		if (rc)
			return rc;
		rec.parent = to;
		rc = rec_put(w, cid, &rec, name);
		rc = rc ? rc : dirent_del(w, from, name);
		rc = rc ? rc : dirent_put(w, to, name, cid, type);
		if (rc)
			return rc;
		if (type != SG_TYPE_TOMBSTONE) {
			rc = parent_adjust(w, to, 1, type == SG_TYPE_DIR, 0);
			if (rc)
				return rc;
		}
	}
}

/* Turn a live entry into a tombstone in place (same id). */
static int tombstone_in_place(struct wctx *w, const sg_stamp *stamp, uint64_t id,
                              struct sg_rec *rec, const char *name, int64_t now)
{
	unsigned char k[8];
	int was_dir = rec->type == SG_TYPE_DIR;
	int rc;

	sg_be64(k, id);
	rc = w_del(w, w->st->data, k, 8);
	rc = rc ? rc : xattrs_del_all(w, id);
	if (rc)
		return rc;
	rec->type = SG_TYPE_TOMBSTONE;
	rec->size = 0;
	rec->nchild = rec->nsubdir = 0;
	rec->ctime_ns = now;
	rc = stamp_and_log(w, stamp, id, rec);
	rc = rc ? rc : rec_put(w, id, rec, name);
	rc = rc ? rc : dirent_put(w, rec->parent, name, id, SG_TYPE_TOMBSTONE);
	rc = rc ? rc : parent_adjust(w, rec->parent, -1, was_dir ? -1 : 0, now);
	if (rc)
		return rc;
	w->live--;
	w->tombs++;
	return 0;
}

/* A new entry row at parent/name (its dirent must be free). */
static int entry_new(struct wctx *w, const sg_stamp *stamp, uint64_t parent, const char *name,
                     uint32_t type, uint32_t mode, uint32_t uid, uint32_t gid, const void *data,
                     size_t len, int64_t mtime, int64_t ctime, uint64_t *idp, struct sg_rec *rec)
{
	uint64_t id = w->next_id++;
	int rc;

	memset(rec, 0, sizeof(*rec));
	rec->parent = parent;
	rec->type = type;
	rec->mode = mode & 07777;
	rec->uid = uid;
	rec->gid = gid;
	rec->size = type == SG_TYPE_DIR || type == SG_TYPE_TOMBSTONE ? 0 : len;
	rec->mtime_ns = mtime;
	rec->ctime_ns = ctime;
	rec->namelen = (uint32_t)strlen(name);
	rc = stamp_and_log(w, stamp, id, rec);
	rc = rc ? rc : rec_put(w, id, rec, name);
	if (!rc && rec->size)
		rc = data_put(w, id, data, len);
	rc = rc ? rc : dirent_put(w, parent, name, id, type);
	if (!rc && type != SG_TYPE_TOMBSTONE)
		rc = parent_adjust(w, parent, 1, type == SG_TYPE_DIR, ctime);
	if (rc)
		return rc;
	if (type == SG_TYPE_TOMBSTONE)
		w->tombs++;
	else
		w->live++;
	*idp = id;
	return 0;
}

/* ---- the ops ---- */

static int op_create(struct wctx *w, struct sg_op *op)
{
	struct sg_rec p, rec, old;
	uint64_t eid = 0, id;
	uint32_t etype;
	sg_note *n;
	int rc;

	rc = get_dir(w, op->parent, &p, NULL);
	if (rc)
		return rc;
	rc = sg_dirent_get(w->st, w->txn, op->parent, op->name, &eid, &etype);
	if (rc == 0) {
		if (etype != SG_TYPE_TOMBSTONE)
			return -EEXIST;
		rc = sg_rec_get(w->st, w->txn, eid, &old, NULL);
		if (rc)
			return rc;
		if (refused(op->stamp, &old))
			return -ESTALE;
		rc = row_drop(w, eid, &old);
		rc = rc ? rc : dirent_del(w, op->parent, op->name);
		if (rc)
			return rc;
	} else if (rc != -ENOENT) {
		return rc;
	} else {
		eid = 0;
	}
	rc = entry_new(w, op->stamp, op->parent, op->name, op->type, op->mode, op->uid, op->gid,
	               op->data, op->len, op->now_ns, op->now_ns, &id, &rec);
	if (!rc && eid) {
		/* made after seeing the delete: that is its base */
		const sg_stamp b = base_of(w, &old);

		rec.base_hlc = b.hlc;
		rec.base_origin = b.origin;
		rec.base_seq = b.seq;
		rc = rec_put(w, id, &rec, op->name);
		rc = rc                        ? rc
		     : op->type == SG_TYPE_DIR ? children_move(w, eid, id)
		                               : subtree_drop(w, eid, 0);
	}
	if (rc)
		return rc;
	sg_rec_to_attr(id, &rec, &op->out);
	n = note(w, id, op->parent, op->name, eid, op->type, rec.version, op->stamp == NULL);
	if (n && op->type == SG_TYPE_FILE && op->len == 0)
		n->empty_new = 1;
	return 0;
}

static int stamp_is(const sg_stamp *a, const struct sg_rec *rec)
{
	return a->hlc == rec->hlc && a->origin == rec->origin && a->seq == rec->seq;
}

static int conflict_record(struct wctx *w, const sg_change *c, uint64_t id,
                           const struct sg_rec *held);

/* A local save (stamped in `rec` now) of content loaded from an older
 * version: the version held came from a peer while the file was open, and
 * the save replaces it without having seen it. Keep it as a conflict, with
 * its content (still in the data table), and base the save on what its
 * writer saw, so that the peer records the conflict too. */
static int write_unseen(struct wctx *w, const struct sg_op *op, const struct sg_rec *held,
                        struct sg_rec *rec)
{
	const sg_stamp *s = &op->seen->stamp;
	sg_stamp base = s->origin == w->st->node_id || s->origin == 0 ? op->seen->base : *s;
	sg_change c;
	char *path = NULL;
	int rc = 0;

	rec->base_hlc = base.hlc;
	rec->base_origin = base.origin;
	rec->base_seq = base.seq;
	if (held->origin == w->st->node_id || held->origin == 0)
		return 0; /* our own newer version (another handle's save): not a conflict */
	rc = sg_path_build(w->st, w->txn, op->id, &path);
	if (rc)
		return rc;
	memset(&c, 0, sizeof(c));
	c.path = path;
	c.stamp = (sg_stamp){rec->hlc, rec->origin, rec->seq};
	rc = conflict_record(w, &c, op->id, held);
	free(path);
	return rc;
}

static int op_write(struct wctx *w, struct sg_op *op)
{
	char name[SG_NAME_MAX + 1];
	struct sg_rec rec, held;
	int rc, unseen;

	rc = get_live(w, op->id, &rec, name);
	if (rc)
		return rc;
	if (rec.type == SG_TYPE_DIR)
		return -EISDIR;
	if (rec.type != SG_TYPE_FILE)
		return -EINVAL;
	if (refused(op->stamp, &rec))
		return -ESTALE;
	held = rec;
	unseen = !op->stamp && op->seen && !stamp_is(&op->seen->stamp, &rec);
	rec.size = op->len;
	rec.mtime_ns = op->mtime_ns;
	rec.ctime_ns = op->now_ns;
	rc = stamp_and_log(w, op->stamp, op->id, &rec);
	if (!rc && unseen)
		rc = write_unseen(w, op, &held, &rec); /* before the held content goes */
	rc = rc ? rc : data_put(w, op->id, op->data, op->len);
	rc = rc ? rc : rec_put(w, op->id, &rec, name);
	if (rc)
		return rc;
	sg_rec_to_attr(op->id, &rec, &op->out);
	note(w, op->id, rec.parent, name, 0, rec.type, rec.version, op->stamp == NULL);
	return 0;
}

static int op_setattr(struct wctx *w, struct sg_op *op)
{
	char name[SG_NAME_MAX + 1];
	struct sg_rec rec;
	int rc;

	rc = get_live(w, op->id, &rec, name);
	if (rc)
		return rc;
	if (refused(op->stamp, &rec))
		return -ESTALE;
	if (op->mask & SG_SET_SIZE) {
		unsigned char k[8];
		MDB_val key = {8, k}, val = {0, NULL};
		uint64_t size = op->in->size;
		char *buf;

		if (rec.type == SG_TYPE_DIR)
			return -EISDIR;
		if (rec.type != SG_TYPE_FILE)
			return -EINVAL;
		if (size > w->st->max_file)
			return -EFBIG;
		if (size != rec.size) {
			sg_be64(k, op->id);
			rc = mdb_get(w->txn, w->st->data, &key, &val);
			if (rc && rc != MDB_NOTFOUND)
				return sg_mdb_err(rc);
			buf = calloc(1, size ? size : 1);
			if (!buf)
				return -ENOMEM;
			if (val.mv_size && size)
				memcpy(buf, val.mv_data, val.mv_size < size ? val.mv_size : size);
			rc = data_put(w, op->id, buf, size);
			free(buf);
			if (rc)
				return rc;
			rec.size = size;
			rec.mtime_ns = op->now_ns;
		}
	}
	if (op->mask & SG_SET_MODE)
		rec.mode = op->in->mode & 07777;
	if (op->mask & SG_SET_UID)
		rec.uid = op->in->uid;
	if (op->mask & SG_SET_GID)
		rec.gid = op->in->gid;
	if (op->mask & SG_SET_MTIME)
		rec.mtime_ns = op->in->mtime_ns;
	rec.ctime_ns = op->now_ns;
	rc = stamp_and_log(w, op->stamp, op->id, &rec);
	rc = rc ? rc : rec_put(w, op->id, &rec, name);
	if (rc)
		return rc;
	sg_rec_to_attr(op->id, &rec, &op->out);
	note(w, op->id, rec.parent, name, 0, rec.type, rec.version, op->stamp == NULL);
	return 0;
}

static int op_remove(struct wctx *w, struct sg_op *op)
{
	struct sg_rec p, rec;
	uint64_t id;
	uint32_t type;
	int rc;

	rc = get_dir(w, op->parent, &p, NULL);
	rc = rc ? rc : sg_dirent_get(w->st, w->txn, op->parent, op->name, &id, &type);
	if (rc)
		return rc;
	if (type == SG_TYPE_TOMBSTONE)
		return -ENOENT;
	rc = sg_rec_get(w->st, w->txn, id, &rec, NULL);
	if (rc)
		return rc;
	if (op->flags) {
		if (rec.type != SG_TYPE_DIR)
			return -ENOTDIR;
		if (rec.nchild)
			return -ENOTEMPTY;
		if (id == SG_ROOT_ID)
			return -EBUSY;
	} else if (rec.type == SG_TYPE_DIR) {
		return -EISDIR;
	}
	if (refused(op->stamp, &rec))
		return -ESTALE;
	rc = tombstone_in_place(w, op->stamp, id, &rec, op->name, op->now_ns);
	if (rc)
		return rc;
	note(w, id, op->parent, op->name, id, SG_TYPE_TOMBSTONE, rec.version, op->stamp == NULL);
	return 0;
}

/* Is `id` equal to `anc` or below it? */
static int is_below(struct wctx *w, uint64_t id, uint64_t anc)
{
	struct sg_rec rec;

	for (int depth = 0; depth <= SG_PATH_MAX; depth++) {
		if (id == anc)
			return 1;
		if (id == SG_ROOT_ID)
			return 0;
		if (sg_rec_get(w->st, w->txn, id, &rec, NULL))
			return 0;
		id = rec.parent;
	}
	return 1;
}

/* Set an entry's base: the version at its path that its change replaced. */
static int base_set(struct wctx *w, uint64_t id, struct sg_rec *rec, const char *name,
                    const sg_stamp *base)
{
	rec->base_hlc = base->hlc;
	rec->base_origin = base->origin;
	rec->base_seq = base->seq;
	return rec_put(w, id, rec, name);
}

/* Point parent/name at entry id (moving its record there), versioned. */
static int entry_move(struct wctx *w, const sg_stamp *stamp, uint64_t id, struct sg_rec *rec,
                      uint64_t np, const char *nn, int64_t now)
{
	int rc;

	rec->parent = np;
	rec->namelen = (uint32_t)strlen(nn);
	rec->ctime_ns = now;
	rc = stamp_and_log(w, stamp, id, rec);
	rc = rc ? rc : rec_put(w, id, rec, nn);
	rc = rc ? rc : dirent_put(w, np, nn, id, rec->type);
	return rc;
}

/* A moved directory's descendants have new paths: give each live one a new
 * version (after the directory's own), so that a peer reading the log gets
 * them at their new paths. */
static int subtree_bump(struct wctx *w, const sg_stamp *stamp, uint64_t dir, int depth)
{
	unsigned char k[8 + SG_NAME_MAX];
	size_t kl = 8;
	int first = 1;

	if (depth > SG_PATH_MAX)
		return -ELOOP;
	sg_be64(k, dir);
	for (;;) {
		char name[SG_NAME_MAX + 1];
		struct sg_rec rec;
		MDB_cursor *cur;
		MDB_val key = {kl, k}, val;
		uint64_t cid;
		uint32_t type;
		int rc;

		rc = mdb_cursor_open(w->txn, w->st->dir, &cur);
		if (rc)
			return sg_mdb_err(rc);
		rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		/* step past the child handled last time */
		if (rc == 0 && !first && key.mv_size == kl && memcmp(key.mv_data, k, kl) == 0)
			rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
		if (rc == 0 && (key.mv_size <= 8 || sg_get_be64(key.mv_data) != dir))
			rc = MDB_NOTFOUND;
		if (rc == 0) {
			kl = key.mv_size;
			memcpy(k, key.mv_data, kl);
			memcpy(name, (char *)key.mv_data + 8, kl - 8);
			name[kl - 8] = '\0';
			cid = sg_get_be64(val.mv_data);
			type = ((unsigned char *)val.mv_data)[8];
		}
		mdb_cursor_close(cur);
		if (rc == MDB_NOTFOUND)
			return 0;
		if (rc)
			return sg_mdb_err(rc);
		first = 0;
		if (type == SG_TYPE_TOMBSTONE)
			continue;
		rc = sg_rec_get(w->st, w->txn, cid, &rec, NULL);
		rc = rc ? rc : stamp_and_log(w, stamp, cid, &rec);
		rc = rc ? rc : rec_put(w, cid, &rec, name);
		if (!rc && type == SG_TYPE_DIR)
			rc = subtree_bump(w, stamp, cid, depth + 1);
		if (rc)
			return rc;
	}
}

static int op_rename(struct wctx *w, struct sg_op *op)
{
	struct sg_rec op_rec, np_rec, src, dst;
	uint64_t sid, did = 0, tid;
	uint32_t stype, dtype = SG_TYPE_NONE;
	int rc, sdir, ddir;
	int64_t now = op->now_ns;

	rc = get_dir(w, op->parent, &op_rec, NULL);
	rc = rc ? rc : get_dir(w, op->nparent, &np_rec, NULL);
	rc = rc ? rc : sg_dirent_get(w->st, w->txn, op->parent, op->name, &sid, &stype);
	if (rc)
		return rc;
	if (stype == SG_TYPE_TOMBSTONE)
		return -ENOENT;
	rc = sg_rec_get(w->st, w->txn, sid, &src, NULL);
	if (rc)
		return rc;
	if (op->parent == op->nparent && strcmp(op->name, op->nname) == 0)
		return 0;
	sdir = src.type == SG_TYPE_DIR;
	if (sdir && is_below(w, op->nparent, sid))
		return -EINVAL;
	rc = sg_dirent_get(w->st, w->txn, op->nparent, op->nname, &did, &dtype);
	if (rc && rc != -ENOENT)
		return rc;
	if (rc == 0) {
		rc = sg_rec_get(w->st, w->txn, did, &dst, NULL);
		if (rc)
			return rc;
	} else {
		did = 0;
		rc = 0;
	}
	ddir = did && dst.type == SG_TYPE_DIR;
	/* the bases of the two paths: what this rename replaced at each */
	const sg_stamp src_prev = base_of(w, &src);
	const sg_stamp dst_prev = did ? base_of(w, &dst) : (sg_stamp){0, 0, 0};

	if (op->flags & SG_RENAME_EXCHANGE) {
		if (!did || dtype == SG_TYPE_TOMBSTONE)
			return -ENOENT;
		if (ddir && is_below(w, op->parent, did))
			return -EINVAL;
		if (refused(op->stamp, &src) || refused(op->stamp, &dst))
			return -ESTALE;
		/* each path's new version replaced what the other held there */
		const sg_stamp sprev = base_of(w, &src);
		const sg_stamp dprev = base_of(w, &dst);

		rc = entry_move(w, op->stamp, sid, &src, op->nparent, op->nname, now);
		rc = rc ? rc : base_set(w, sid, &src, op->nname, &dprev);
		if (!rc && sdir)
			rc = subtree_bump(w, op->stamp, sid, 0);
		rc = rc ? rc : entry_move(w, op->stamp, did, &dst, op->parent, op->name, now);
		rc = rc ? rc : base_set(w, did, &dst, op->name, &sprev);
		if (!rc && ddir)
			rc = subtree_bump(w, op->stamp, did, 0);
		if (!rc && op->parent != op->nparent && sdir != ddir) {
			rc = parent_adjust(w, op->parent, 0, ddir - sdir, now);
			rc = rc ? rc : parent_adjust(w, op->nparent, 0, sdir - ddir, now);
		} else if (!rc) {
			rc = parent_adjust(w, op->parent, 0, 0, now);
			rc = rc ? rc : parent_adjust(w, op->nparent, 0, 0, now);
		}
		if (rc)
			return rc;
		note(w, sid, op->nparent, op->nname, did, src.type, src.version, op->stamp == NULL);
		note(w, did, op->parent, op->name, sid, dst.type, dst.version, op->stamp == NULL);
		return 0;
	}

	if (did && dtype != SG_TYPE_TOMBSTONE) {
		if (op->flags & SG_RENAME_NOREPLACE)
			return -EEXIST;
		if (sdir && !ddir)
			return -ENOTDIR;
		if (!sdir && ddir)
			return -EISDIR;
		if (ddir && dst.nchild)
			return -ENOTEMPTY;
		if (refused(op->stamp, &dst))
			return -ESTALE;
		/* the replaced entry goes; its tombstone children (if a dir) too */
		if (ddir)
			rc = subtree_drop(w, did, 0);
		rc = rc ? rc : row_drop(w, did, &dst);
		rc = rc ? rc : parent_adjust(w, op->nparent, -1, ddir ? -1 : 0, now);
	} else if (did) {
		if (refused(op->stamp, &dst))
			return -ESTALE;
		rc = subtree_drop(w, did, 0);
		rc = rc ? rc : row_drop(w, did, &dst);
	}
	if (rc)
		return rc;
	if (refused(op->stamp, &src))
		return -ESTALE;
	/* source leaves: a tombstone stays at the old name */
	rc = dirent_del(w, op->parent, op->name);
	rc = rc ? rc : parent_adjust(w, op->parent, -1, sdir ? -1 : 0, now);
	rc = rc ? rc : entry_move(w, op->stamp, sid, &src, op->nparent, op->nname, now);
	rc = rc ? rc : base_set(w, sid, &src, op->nname, &dst_prev);
	rc = rc ? rc : parent_adjust(w, op->nparent, 1, sdir, now);
	if (!rc && sdir)
		rc = subtree_bump(w, op->stamp, sid, 0);
	if (rc)
		return rc;
	{
		struct sg_rec t;
		rc = entry_new(w, op->stamp, op->parent, op->name, SG_TYPE_TOMBSTONE, src.mode,
		               src.uid, src.gid, NULL, 0, now, now, &tid, &t);
		rc = rc ? rc : base_set(w, tid, &t, op->name, &src_prev);
		if (rc)
			return rc;
		note(w, tid, op->parent, op->name, sid, SG_TYPE_TOMBSTONE, t.version,
		     op->stamp == NULL);
	}
	note(w, sid, op->nparent, op->nname, dtype != SG_TYPE_TOMBSTONE ? did : 0, src.type,
	     src.version, op->stamp == NULL);
	return 0;
}

static int op_setxattr(struct wctx *w, struct sg_op *op, int remove)
{
	unsigned char k[8 + SG_NAME_MAX];
	char name[SG_NAME_MAX + 1];
	struct sg_rec rec;
	MDB_val key, val;
	size_t kl;
	int rc, exists;

	rc = get_live(w, op->id, &rec, name);
	if (rc)
		return rc;
	kl = dkey(k, op->id, op->name);
	key.mv_size = kl;
	key.mv_data = k;
	rc = mdb_get(w->txn, w->st->xattr, &key, &val);
	if (rc && rc != MDB_NOTFOUND)
		return sg_mdb_err(rc);
	exists = rc == 0;
	if (remove && !exists)
		return -ENODATA;
	if (!remove && (op->flags & XATTR_CREATE) && exists)
		return -EEXIST;
	if (!remove && (op->flags & XATTR_REPLACE) && !exists)
		return -ENODATA;
	if (refused(op->stamp, &rec))
		return -ESTALE;
	rc = remove ? w_del(w, w->st->xattr, k, kl)
	            : w_put(w, w->st->xattr, k, kl, op->data, op->len);
	if (rc)
		return rc;
	rec.ctime_ns = op->now_ns;
	rc = stamp_and_log(w, op->stamp, op->id, &rec);
	rc = rc ? rc : rec_put(w, op->id, &rec, name);
	if (rc)
		return rc;
	note(w, op->id, rec.parent, name, 0, rec.type, rec.version, op->stamp == NULL);
	return 0;
}

/* Walk a path's directories, making missing ones as placeholders (zero
 * stamp: any real change to them wins); `leaf` gets the last component. */
static int apply_parent(struct wctx *w, const sg_stamp *stamp, const char *path, uint64_t *pid,
                        char *leaf)
{
	static const sg_stamp zero;
	const char *p = path;
	uint64_t id = SG_ROOT_ID;

	for (;;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		struct sg_rec rec;
		uint64_t cid;
		uint32_t type;
		int rc = sg_name_check(p, n);

		if (rc)
			return rc;
		memcpy(leaf, p, n);
		leaf[n] = '\0';
		if (!e) {
			*pid = id;
			return 0;
		}
		rc = sg_dirent_get(w->st, w->txn, id, leaf, &cid, &type);
		if (rc && rc != -ENOENT)
			return rc;
		if (rc == 0 && type != SG_TYPE_TOMBSTONE) {
			rc = get_dir(w, cid, &rec, NULL);
			if (rc)
				return rc;
		} else {
			uint64_t old = 0;

			if (rc == 0) {
				/* a directory deleted after this change was made took the
				 * change with it; one deleted before it comes back for it */
				rc = sg_rec_get(w->st, w->txn, cid, &rec, NULL);
				if (rc == 0 && stamp_cmp(stamp, &rec) < 0)
					return -ESTALE;
				rc = rc ? rc : row_drop(w, cid, &rec);
				rc = rc ? rc : dirent_del(w, id, leaf);
				if (rc)
					return rc;
				old = cid;
			}
			rc = entry_new(w, &zero, id, leaf, SG_TYPE_DIR, 0755, 0, 0, NULL, 0, 0, 0,
			               &cid, &rec);
			/* the tombstones below the deleted directory stay below its successor */
			if (!rc && old)
				rc = children_move(w, old, cid);
			if (rc)
				return rc;
		}
		id = cid;
		p = e + 1;
	}
}

/* Replace all user.* attributes of `id` with the change's. */
static int xattrs_set_all(struct wctx *w, uint64_t id, const sg_change *c)
{
	int rc = xattrs_del_all(w, id);

	for (size_t i = 0; !rc && i < c->nxattrs; i++) {
		unsigned char k[8 + SG_NAME_MAX];
		size_t kl = dkey(k, id, c->xattrs[i].name);

		rc = w_put(w, w->st->xattr, k, kl, c->xattrs[i].value, c->xattrs[i].len);
	}
	return rc;
}

/* The held version of `path` loses to a change that did not see it: keep it. */
static int conflict_record(struct wctx *w, const sg_change *c, uint64_t id,
                           const struct sg_rec *held)
{
	struct sg_conflict_rec cr;
	unsigned char k[8], *v;
	MDB_val key, val = {0, NULL};
	size_t plen = strlen(c->path), vlen;
	int rc;

	memset(&cr, 0, sizeof(cr));
	if (held->type == SG_TYPE_FILE || held->type == SG_TYPE_SYMLINK) {
		sg_be64(k, id);
		key.mv_size = 8;
		key.mv_data = k;
		rc = mdb_get(w->txn, w->st->data, &key, &val);
		if (rc && rc != MDB_NOTFOUND)
			return sg_mdb_err(rc);
		if (rc)
			val.mv_size = 0;
	}
	cr.loser_hlc = held->hlc;
	cr.loser_origin = held->origin;
	cr.loser_seq = held->seq;
	cr.winner_hlc = c->stamp.hlc;
	cr.winner_origin = c->stamp.origin;
	cr.winner_seq = c->stamp.seq;
	cr.when_ns = sg_now_ns();
	cr.len = val.mv_size;
	cr.loser_type = held->type;
	cr.pathlen = (uint32_t)plen;
	vlen = sizeof(cr) + plen + val.mv_size;
	v = malloc(vlen);
	if (!v)
		return -ENOMEM;
	memcpy(v, &cr, sizeof(cr));
	memcpy(v + sizeof(cr), c->path, plen);
	if (val.mv_size)
		memcpy(v + sizeof(cr) + plen, val.mv_data, val.mv_size);
	sg_be64(k, ++w->conflict_seq);
	rc = w_put(w, w->st->conflicts, k, 8, v, vlen);
	free(v);
	if (rc == 0)
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-STORE-CONFLICT",
		       "%s: version %llx from %016llx lost to concurrent %llx from %016llx "
		       "(kept as conflict %llu, %zu bytes)",
		       c->path, (unsigned long long)held->hlc, (unsigned long long)held->origin,
		       (unsigned long long)c->stamp.hlc, (unsigned long long)c->stamp.origin,
		       (unsigned long long)w->conflict_seq, (size_t)val.mv_size);
	return rc;
}

/* A remote change keeps the base its writer saw, not the one held here. */
static int apply_base(struct wctx *w, uint64_t id, struct sg_rec *rec, const char *name,
                      const sg_change *c)
{
	rec->base_hlc = c->base.hlc;
	rec->base_origin = c->base.origin;
	rec->base_seq = c->base.seq;
	return rec_put(w, id, rec, name);
}

/* ---- purge horizon ---- */

/* a <= b by (hlc, origin) */
static int stamp_le(const sg_stamp *a, const sg_stamp *b)
{
	return a->hlc != b->hlc ? a->hlc < b->hlc : a->origin <= b->origin;
}

/* Has this store applied change `s` (or a later one of its origin)? */
static int seen_here(struct wctx *w, const sg_stamp *s)
{
	unsigned char k[8];
	MDB_val key = {8, k}, val;
	uint64_t have = 0;

	if (s->origin == 0)
		return 0; /* a placeholder: nobody's change */
	if (s->origin == w->st->node_id && s->seq <= w->seq)
		return 1;
	sg_be64(k, s->origin);
	if (mdb_get(w->txn, w->st->origins, &key, &val) == 0 && val.mv_size == 8)
		memcpy(&have, val.mv_data, 8);
	return s->seq <= have;
}

/* A change for a path held nowhere here, older than the horizon, that this
 * store has seen: its delete was purged here; it must not come back. */
static int purged_guard(struct wctx *w, const sg_change *c)
{
	sg_horizon h;
	int rc = sg_horizon_read(w->st, w->txn, &h);

	if (rc)
		return rc;
	if (h.stamp.hlc == 0 || !stamp_le(&c->stamp, &h.stamp) || !seen_here(w, &c->stamp))
		return 0;
	sg_log(SG_LOG_DEBUG, DOMAIN, "SIGIL-STORE-PURGED",
	       "refused %s from %016llx: stamp %llx is at or below the purge horizon %llx and "
	       "its delete was purged",
	       c->path, (unsigned long long)c->stamp.origin, (unsigned long long)c->stamp.hlc,
	       (unsigned long long)h.stamp.hlc);
	return -ESTALE;
}

static int horizon_write(struct wctx *w, const sg_horizon *h)
{
	int rc = w_put(w, w->st->meta, "purge_version", 13, &h->version, 8);

	rc = rc ? rc : w_put(w, w->st->meta, "purge_hlc", 9, &h->stamp.hlc, 8);
	rc = rc ? rc : w_put(w, w->st->meta, "purge_origin", 12, &h->stamp.origin, 8);
	rc = rc ? rc : w_put(w, w->st->meta, "purge_seq", 9, &h->stamp.seq, 8);
	return rc;
}

/* Raise the horizon stamp to s (if newer). */
static void horizon_raise(sg_horizon *h, const sg_stamp *s)
{
	if (s->hlc && !stamp_le(s, &h->stamp))
		h->stamp = *s;
}

static int has_children(struct wctx *w, uint64_t id)
{
	unsigned char k[8];
	MDB_cursor *cur;
	MDB_val key = {8, k}, val;
	int rc;

	sg_be64(k, id);
	rc = mdb_cursor_open(w->txn, w->st->dir, &cur);
	if (rc)
		return sg_mdb_err(rc);
	rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	if (rc == 0)
		rc = key.mv_size > 8 && sg_get_be64(key.mv_data) == id;
	else if (rc == MDB_NOTFOUND)
		rc = 0;
	else
		rc = sg_mdb_err(rc);
	mdb_cursor_close(cur);
	return rc;
}

/* May tombstone `rec` go: a tombstone at or below upto, stamped before the cutoff? */
static int purgeable(const struct sg_rec *rec, uint64_t upto, int64_t before_ns)
{
	return rec->type == SG_TYPE_TOMBSTONE && rec->version && rec->version <= upto &&
	       before_ns > 0 && (rec->hlc >> 16) < (uint64_t)(before_ns / 1000000);
}

/* Purge tombstone `id` if it still may go and has no child, then its parent
 * tombstones that it left childless. 0 or a negative errno; *n counts. */
static int purge_one(struct wctx *w, struct sg_op *op, uint64_t id, sg_horizon *h)
{
	while (id != SG_ROOT_ID) {
		char name[SG_NAME_MAX + 1];
		struct sg_rec rec;
		int rc = sg_rec_get(w->st, w->txn, id, &rec, name);

		if (rc == -ENOENT)
			return 0; /* gone already, with a child of its */
		if (rc)
			return rc;
		if (!purgeable(&rec, op->upto, op->now_ns))
			return 0;
		rc = has_children(w, id);
		if (rc)
			return rc < 0 ? rc : 0; /* its children go first */
		rc = row_drop(w, id, &rec);
		rc = rc ? rc : dirent_del(w, rec.parent, name);
		if (rc)
			return rc;
		op->count++;
		if (rec.version > h->version)
			h->version = rec.version;
		horizon_raise(h, &(sg_stamp){rec.hlc, rec.origin, rec.seq});
		id = rec.parent;
	}
	return 0;
}

static int op_purge(struct wctx *w, struct sg_op *op)
{
	uint64_t *ids = malloc(PURGE_BATCH_ROWS * sizeof(*ids));
	unsigned char k[8];
	MDB_cursor *cur = NULL;
	MDB_val key = {8, k}, val;
	size_t n = 0, looked = 0;
	sg_horizon h;
	int rc, r, mop = MDB_SET_RANGE;

	op->count = 0;
	op->last = 0;
	if (!ids)
		return -ENOMEM;
	rc = sg_horizon_read(w->st, w->txn, &h);
	rc = rc ? rc : sg_mdb_err(mdb_cursor_open(w->txn, w->st->log, &cur));
	sg_be64(k, op->after + 1);
	/* collect first: the purge deletes log rows under the cursor */
	while (rc == 0 && looked < PURGE_BATCH_ROWS) {
		struct sg_rec rec;
		uint64_t version, id;

		r = mdb_cursor_get(cur, &key, &val, mop);
		mop = MDB_NEXT;
		if (r == MDB_NOTFOUND)
			break;
		if (r || key.mv_size != 8 || val.mv_size != 8) {
			rc = r ? sg_mdb_err(r) : -EIO;
			break;
		}
		version = sg_get_be64(key.mv_data);
		if (version > op->upto)
			break;
		looked++;
		if (looked == PURGE_BATCH_ROWS)
			op->last = version; /* more may follow: the caller goes on after it */
		id = sg_get_be64(val.mv_data);
		rc = sg_rec_get(w->st, w->txn, id, &rec, NULL);
		if (rc == 0 && purgeable(&rec, op->upto, op->now_ns))
			ids[n++] = id;
	}
	if (cur)
		mdb_cursor_close(cur);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = purge_one(w, op, ids[i], &h);
	free(ids);
	if (rc == 0 && op->count)
		rc = horizon_write(w, &h);
	return rc;
}

/* ---- a peer's snapshot: drop what it deleted and purged ---- */

struct recon {
	struct sg_op *op;
	const sg_snapshot *snap;
	char path[SG_PATH_MAX + 1];
};

/* Had the snapshot's peer applied change s? */
static int seen_by(const sg_snapshot *snap, const sg_stamp *s)
{
	size_t lo = 0, hi = snap->nvv;

	if (s->origin == 0)
		return 1; /* a placeholder: it stands for nothing the peer could lack */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (snap->vv[mid].origin == s->origin)
			return s->seq <= snap->vv[mid].seq;
		if (snap->vv[mid].origin < s->origin)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* Walk directory `dir` (its path in rc->path, plen bytes): drop each live
 * child the snapshot says went; *kept counts those that stay. */
static int recon_dir(struct wctx *w, struct recon *rc_, uint64_t dir, size_t plen, int depth,
                     uint64_t *kept)
{
	unsigned char k[8 + SG_NAME_MAX];
	size_t kl = 8;
	int first = 1;

	if (depth > SG_PATH_MAX)
		return -ELOOP;
	sg_be64(k, dir);
	*kept = 0;
	for (;;) {
		char name[SG_NAME_MAX + 1];
		struct sg_rec rec;
		MDB_cursor *cur;
		MDB_val key = {kl, k}, val;
		uint64_t cid, below = 0;
		uint32_t type;
		size_t n, clen;
		int rc, keep;

		rc = mdb_cursor_open(w->txn, w->st->dir, &cur);
		if (rc)
			return sg_mdb_err(rc);
		rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		/* step past the child handled last time (it may have been dropped) */
		if (rc == 0 && !first && key.mv_size == kl && memcmp(key.mv_data, k, kl) == 0)
			rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
		if (rc == 0 && (key.mv_size <= 8 || sg_get_be64(key.mv_data) != dir))
			rc = MDB_NOTFOUND;
		if (rc == 0) {
			kl = key.mv_size;
			memcpy(k, key.mv_data, kl);
			n = kl - 8;
			memcpy(name, (char *)key.mv_data + 8, n);
			name[n] = '\0';
			cid = sg_get_be64(val.mv_data);
			type = ((unsigned char *)val.mv_data)[8];
		}
		mdb_cursor_close(cur);
		if (rc == MDB_NOTFOUND)
			return 0;
		if (rc)
			return sg_mdb_err(rc);
		first = 0;
		if (type == SG_TYPE_TOMBSTONE)
			continue;
		clen = plen + (plen ? 1 : 0) + n;
		if (clen > SG_PATH_MAX) {
			(*kept)++; /* no path a peer could have listed: leave it be */
			continue;
		}
		if (plen)
			rc_->path[plen] = '/';
		memcpy(rc_->path + plen + (plen ? 1 : 0), name, n);
		rc_->path[clen] = '\0';
		rc = sg_rec_get(w->st, w->txn, cid, &rec, NULL);
		if (rc == 0 && rec.type == SG_TYPE_DIR)
			rc = recon_dir(w, rc_, cid, clen, depth + 1, &below);
		if (rc)
			return rc;
		rc_->path[clen] = '\0'; /* the walk below wrote past it */
		keep = below > 0 ||
		       !stamp_le(&(sg_stamp){rec.hlc, rec.origin, rec.seq},
		                 &rc_->snap->horizon.stamp) ||
		       !seen_by(rc_->snap, &(sg_stamp){rec.hlc, rec.origin, rec.seq}) ||
		       rc_->snap->keep(rc_->snap->ctx, rc_->path);
		rc_->path[plen] = '\0';
		if (keep) {
			(*kept)++;
			continue;
		}
		/* deleted where the snapshot came from, the delete purged there: forget it */
		if (rec.type == SG_TYPE_DIR)
			rc = subtree_drop(w, cid, 0); /* only tombstones are left below */
		rc = rc ? rc : row_drop(w, cid, &rec);
		rc = rc ? rc : dirent_del(w, dir, name);
		rc = rc ? rc : parent_adjust(w, dir, -1, rec.type == SG_TYPE_DIR ? -1 : 0, 0);
		if (rc)
			return rc;
		rc_->op->count++;
		note(w, cid, dir, name, cid, SG_TYPE_TOMBSTONE, w->version, SG_NOTE_REMOTE);
	}
}

static int op_reconcile(struct wctx *w, struct sg_op *op)
{
	struct recon *rc_;
	sg_horizon h;
	uint64_t kept = 0;
	int rc;

	op->count = 0;
	if (op->snap->horizon.stamp.hlc == 0)
		return 0; /* the peer purged nothing: every delete it knows of was listed */
	rc = sg_horizon_read(w->st, w->txn, &h);
	if (rc)
		return rc;
	rc_ = malloc(sizeof(*rc_));
	if (!rc_)
		return -ENOMEM;
	rc_->op = op;
	rc_->snap = op->snap;
	rc_->path[0] = '\0';
	rc = recon_dir(w, rc_, SG_ROOT_ID, 0, 0, &kept);
	free(rc_);
	if (rc)
		return rc;
	horizon_raise(&h, &op->snap->horizon.stamp);
	return horizon_write(w, &h);
}

static int op_apply(struct wctx *w, struct sg_op *op)
{
	const sg_change *c = op->change;
	char leaf[SG_NAME_MAX + 1];
	struct sg_rec rec, p;
	uint64_t pid = 0, eid = 0, id;
	uint32_t etype;
	int rc, exists;

	op->held = 0; /* an op may run again (nested, or after the map grew) */
	int64_t now = sg_now_ns();

	rc = apply_parent(w, &c->stamp, c->path, &pid, leaf);
	rc = rc ? rc : get_dir(w, pid, &p, NULL);
	if (rc)
		return rc;
	rc = sg_dirent_get(w->st, w->txn, pid, leaf, &eid, &etype);
	if (rc && rc != -ENOENT)
		return rc;
	exists = rc == 0;
	if (!exists) {
		rc = purged_guard(w, c);
		if (rc)
			return rc;
	}
	if (exists) {
		sg_stamp held;

		rc = sg_rec_get(w->st, w->txn, eid, &rec, NULL);
		if (rc)
			return rc;
		rc = stamp_cmp(&c->stamp, &rec);
		if (rc < 0) {
			sg_log(
			    SG_LOG_DEBUG, DOMAIN, "SIGIL-STORE-STALE",
			    "refused %s from %016llx: stamp %llx older than held %llx from %016llx",
			    c->path, (unsigned long long)c->stamp.origin,
			    (unsigned long long)c->stamp.hlc, (unsigned long long)rec.hlc,
			    (unsigned long long)rec.origin);
			return -ESTALE;
		}
		if (rc == 0) {
			op->held = 1; /* already applied: redelivery is harmless */
			return 0;
		}
		/* a live version the change's writer never saw loses: keep it as a conflict */
		held = (sg_stamp){rec.hlc, rec.origin, rec.seq};
		rc = 0;
		if (rec.type != SG_TYPE_TOMBSTONE && rec.origin != 0 &&
		    rec.origin != c->stamp.origin && /* one node's versions are in order */
		    (c->base.hlc < held.hlc ||
		     (c->base.hlc == held.hlc && c->base.origin < held.origin)) &&
		    !(rec.type == SG_TYPE_DIR && c->type == SG_TYPE_DIR))
			rc = conflict_record(w, c, eid, &rec);
		if (rc)
			return rc;
	}

	if (c->type == SG_TYPE_TOMBSTONE) {
		if (!exists) {
			rc = entry_new(w, &c->stamp, pid, leaf, SG_TYPE_TOMBSTONE, c->mode, c->uid,
			               c->gid, NULL, 0, c->mtime_ns, c->ctime_ns, &id, &rec);
			if (!rc)
				rc = apply_base(w, id, &rec, leaf, c);
			if (!rc)
				note(w, id, pid, leaf, 0, SG_TYPE_TOMBSTONE, rec.version, 0);
			return rc;
		}
		if (rec.type == SG_TYPE_TOMBSTONE) {
			rec.ctime_ns = c->ctime_ns;
			rc = stamp_and_log(w, &c->stamp, eid, &rec);
			rc = rc ? rc : apply_base(w, eid, &rec, leaf, c);
		} else {
			if (rec.type == SG_TYPE_DIR) {
				size_t kept = 0;
				rc = subtree_drop_covered(w, eid, &c->stamp, 0, &kept);
				/* counts as they are now */
				rc = rc ? rc : sg_rec_get(w->st, w->txn, eid, &rec, NULL);
				if (!rc && kept)
					/* newer entries below outlive the delete */
					return placeholder_in_place(w, eid, &rec, leaf);
				rec.nchild = rec.nsubdir = 0;
				/* subtree_drop did not adjust this directory's own counts */
				rc = rc ? rc : rec_put(w, eid, &rec, leaf);
			}
			rc = rc ? rc
			        : tombstone_in_place(w, &c->stamp, eid, &rec, leaf, c->ctime_ns);
			rc = rc ? rc : apply_base(w, eid, &rec, leaf, c);
		}
		if (!rc)
			note(w, eid, pid, leaf, eid, SG_TYPE_TOMBSTONE, rec.version, 0);
		return rc;
	}

	if (exists && rec.type == c->type) {
		/* same kind of entry: update in place, keep its id */
		rec.mode = c->mode & 07777;
		rec.uid = c->uid;
		rec.gid = c->gid;
		rec.mtime_ns = c->mtime_ns;
		rec.ctime_ns = c->ctime_ns;
		if (c->type != SG_TYPE_DIR) {
			rec.size = c->len;
			rc = data_put(w, eid, c->data, c->len);
		}
		rc = rc ? rc : xattrs_set_all(w, eid, c);
		rc = rc ? rc : stamp_and_log(w, &c->stamp, eid, &rec);
		rc = rc ? rc : apply_base(w, eid, &rec, leaf, c);
		if (!rc)
			note(w, eid, pid, leaf, 0, rec.type, rec.version, 0);
		return rc;
	}
	if (exists) {
		/* a different kind, or a tombstone: the old row goes, a new one comes */
		int was_live = rec.type != SG_TYPE_TOMBSTONE;
		int was_dir = rec.type == SG_TYPE_DIR;

		if (c->type != SG_TYPE_DIR)
			rc = subtree_drop(w, eid, 0);
		rc = rc ? rc : row_drop(w, eid, &rec);
		rc = rc ? rc : dirent_del(w, pid, leaf);
		if (!rc && was_live)
			rc = parent_adjust(w, pid, -1, was_dir ? -1 : 0, now);
		if (rc)
			return rc;
	}
	{
		struct sg_rec nrec;
		rc = entry_new(w, &c->stamp, pid, leaf, c->type, c->mode, c->uid, c->gid, c->data,
		               c->len, c->mtime_ns, c->ctime_ns, &id, &nrec);
		if (!rc && exists && c->type == SG_TYPE_DIR)
			rc = children_move(w, eid, id);
		rc = rc ? rc : xattrs_set_all(w, id, c);
		rc = rc ? rc : apply_base(w, id, &nrec, leaf, c);
		if (!rc)
			note(w, id, pid, leaf, exists ? eid : 0, c->type, nrec.version, 0);
	}
	return rc;
}

/* Walk a put's directories, all of which must be live directories (a put
 * makes no placeholders); `leaf` gets the last component. */
static int put_parent(struct wctx *w, const char *path, uint64_t *pid, char *leaf)
{
	const char *p = path;
	uint64_t id = SG_ROOT_ID;

	for (;;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		struct sg_rec rec;
		uint32_t type;
		int rc = sg_name_check(p, n);

		if (rc)
			return rc;
		memcpy(leaf, p, n);
		leaf[n] = '\0';
		if (!e) {
			*pid = id;
			return 0;
		}
		rc = sg_dirent_get(w->st, w->txn, id, leaf, &id, &type);
		if (rc)
			return rc;
		if (type == SG_TYPE_TOMBSTONE)
			return -ENOENT;
		rc = get_dir(w, id, &rec, NULL);
		if (rc)
			return rc;
		p = e + 1;
	}
}

/* Does entry `id` (of the change's type) already hold what c says? 1, 0 or a negative errno. */
static int put_same(struct wctx *w, uint64_t id, const struct sg_rec *rec, const sg_change *c)
{
	sg_xattr *xs = NULL;
	void *block = NULL;
	size_t nxs = 0;
	int rc, same;

	if ((rec->mode & 07777) != (c->mode & 07777) || rec->uid != c->uid || rec->gid != c->gid)
		return 0;
	if (c->type != SG_TYPE_DIR) {
		unsigned char k[8];
		MDB_val key = {8, k}, val = {0, NULL};

		if (rec->size != c->len)
			return 0;
		sg_be64(k, id);
		rc = mdb_get(w->txn, w->st->data, &key, &val);
		if (rc && rc != MDB_NOTFOUND)
			return sg_mdb_err(rc);
		if (rc)
			val.mv_size = 0;
		if (val.mv_size != c->len || (c->len && memcmp(val.mv_data, c->data, c->len)))
			return 0;
	}
	rc = sg_xattrs_read(w->st, w->txn, id, &xs, &nxs, &block);
	if (rc)
		return rc;
	same = nxs == c->nxattrs;
	/* the change's names are distinct (put_check), so equal counts and every
	 * one of them held with its value means equal sets */
	for (size_t i = 0; same && i < c->nxattrs; i++) {
		size_t j;

		for (j = 0; j < nxs && strcmp(xs[j].name, c->xattrs[i].name); j++)
			;
		same = j < nxs && xs[j].len == c->xattrs[i].len &&
		       (!xs[j].len || !memcmp(xs[j].value, c->xattrs[i].value, xs[j].len));
	}
	free(block);
	return same;
}

/* Set an entry's base to what a local change replacing `old` carries. */
static int put_base(struct wctx *w, uint64_t id, struct sg_rec *rec, const char *name,
                    const struct sg_rec *old)
{
	const sg_stamp b = base_of(w, old);

	return base_set(w, id, rec, name, &b);
}

/*
 * A path-based change made here, for a restore: stamped as a local change
 * (stamp_and_log with NULL), never refused, no conflict, no placeholders.
 */
static int op_put(struct wctx *w, struct sg_op *op)
{
	const sg_change *c = op->change;
	char leaf[SG_NAME_MAX + 1];
	struct sg_rec rec, nrec;
	uint64_t pid = 0, eid = 0, id;
	uint32_t etype = SG_TYPE_NONE;
	int64_t now = sg_now_ns();
	int rc;

	rc = put_parent(w, c->path, &pid, leaf);
	if (rc)
		return rc;
	rc = sg_dirent_get(w->st, w->txn, pid, leaf, &eid, &etype);
	if (rc && rc != -ENOENT)
		return rc;
	if (rc == 0) {
		rc = sg_rec_get(w->st, w->txn, eid, &rec, NULL);
		if (rc)
			return rc;
	} else {
		eid = 0;
	}

	if (c->type == SG_TYPE_TOMBSTONE) {
		if (!eid || rec.type == SG_TYPE_TOMBSTONE)
			return 0; /* nothing live there: nothing to delete */
		if (rec.type == SG_TYPE_DIR) {
			rc = subtree_drop(w, eid, 0);
			rec.nchild = rec.nsubdir = 0;
			/* subtree_drop did not adjust this directory's own counts */
			rc = rc ? rc : rec_put(w, eid, &rec, leaf);
		}
		rc = rc ? rc : tombstone_in_place(w, NULL, eid, &rec, leaf, now);
		if (rc)
			return rc;
		note(w, eid, pid, leaf, eid, SG_TYPE_TOMBSTONE, rec.version, SG_NOTE_PUT);
		return 0;
	}

	if (eid && rec.type == c->type) {
		/* same kind of entry: update in place, keep its id, unless nothing changes */
		rc = put_same(w, eid, &rec, c);
		if (rc)
			return rc < 0 ? rc : 0;
		rec.mode = c->mode & 07777;
		rec.uid = c->uid;
		rec.gid = c->gid;
		rec.mtime_ns = c->mtime_ns;
		rec.ctime_ns = now;
		if (c->type != SG_TYPE_DIR) {
			rec.size = c->len;
			rc = data_put(w, eid, c->data, c->len);
		}
		rc = rc ? rc : xattrs_set_all(w, eid, c);
		rc = rc ? rc : stamp_and_log(w, NULL, eid, &rec);
		rc = rc ? rc : rec_put(w, eid, &rec, leaf);
		if (rc)
			return rc;
		note(w, eid, pid, leaf, 0, rec.type, rec.version, SG_NOTE_PUT);
		return 0;
	}
	if (eid) {
		/* a tombstone or another kind: the old row goes, a new one comes */
		int was_live = rec.type != SG_TYPE_TOMBSTONE;
		int was_dir = rec.type == SG_TYPE_DIR;

		/* a new directory keeps the tombstones below a deleted one (as op_create) */
		if (c->type != SG_TYPE_DIR || rec.type != SG_TYPE_TOMBSTONE)
			rc = subtree_drop(w, eid, 0);
		rc = rc ? rc : row_drop(w, eid, &rec);
		rc = rc ? rc : dirent_del(w, pid, leaf);
		if (!rc && was_live)
			rc = parent_adjust(w, pid, -1, was_dir ? -1 : 0, now);
		if (rc)
			return rc;
	}
	rc = entry_new(w, NULL, pid, leaf, c->type, c->mode, c->uid, c->gid, c->data, c->len,
	               c->mtime_ns, now, &id, &nrec);
	if (!rc && eid && c->type == SG_TYPE_DIR && rec.type == SG_TYPE_TOMBSTONE)
		rc = children_move(w, eid, id);
	rc = rc ? rc : xattrs_set_all(w, id, c);
	/* made after seeing what was there: that is its base */
	if (!rc && eid)
		rc = put_base(w, id, &nrec, leaf, &rec);
	if (rc)
		return rc;
	note(w, id, pid, leaf, eid, c->type, nrec.version, SG_NOTE_PUT);
	return 0;
}

static int exec_op(struct wctx *w, struct sg_op *op)
{
	switch (op->kind) {
	case OP_CREATE:
		return op_create(w, op);
	case OP_WRITE:
		return op_write(w, op);
	case OP_SETATTR:
		return op_setattr(w, op);
	case OP_REMOVE:
		return op_remove(w, op);
	case OP_RENAME:
		return op_rename(w, op);
	case OP_SETXATTR:
		return op_setxattr(w, op, 0);
	case OP_REMOVEXATTR:
		return op_setxattr(w, op, 1);
	case OP_APPLY:
		return op_apply(w, op);
	case OP_PUT:
		return op_put(w, op);
	case OP_PURGE:
		return op_purge(w, op);
	case OP_RECONCILE:
		return op_reconcile(w, op);
	case OP_SYNC:
		return 0;
	}
	return -EINVAL;
}

/* ---- the batch ---- */

static int meta_load(struct wctx *w, MDB_txn *txn)
{
	sg_store *st = w->st;
	int rc;

	rc = sg_meta_get(st, txn, "version", &w->version);
	rc = rc ? rc : sg_meta_get(st, txn, "seq", &w->seq);
	rc = rc ? rc : sg_meta_get(st, txn, "hlc", &w->hlc);
	rc = rc ? rc : sg_meta_get(st, txn, "next_id", &w->next_id);
	rc = rc ? rc : sg_meta_get(st, txn, "live", &w->live);
	rc = rc ? rc : sg_meta_get(st, txn, "tombs", &w->tombs);
	rc = rc ? rc : sg_meta_get(st, txn, "conflict_seq", &w->conflict_seq);
	return rc;
}

static int meta_save(struct wctx *w)
{
	struct {
		const char *k;
		uint64_t v;
	} m[] = {{"version", w->version},          {"seq", w->seq},   {"hlc", w->hlc},
	         {"next_id", w->next_id},          {"live", w->live}, {"tombs", w->tombs},
	         {"conflict_seq", w->conflict_seq}};
	int rc = 0;

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]) && !rc; i++)
		rc = w_put(w, w->st->meta, m[i].k, strlen(m[i].k), &m[i].v, 8);
	return rc;
}

/* Grow the map; 0, or -ENOSPC at the configured maximum. */
static int map_grow(sg_store *st)
{
	uint64_t want = st->map_size * 2;
	int rc;

	if (st->map_size >= st->max_map)
		return -ENOSPC;
	if (want > st->max_map)
		want = st->max_map;
	pthread_rwlock_wrlock(&st->map_lock);
	rc = mdb_env_set_mapsize(st->env, want);
	st->map_addr = NULL; /* it may have moved (sg_map_trim) */
	if (!rc && st->uffd >= 0)
		sg_map_watch(st); /* a new mapping, to register again */
	pthread_rwlock_unlock(&st->map_lock);
	if (rc) {
		sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-STORE-GROW", "cannot grow map to %llu bytes: %s",
		       (unsigned long long)want, mdb_strerror(rc));
		return sg_mdb_err(rc);
	}
	sg_log(SG_LOG_INFO, DOMAIN, "SIGIL-STORE-GROW", "map grown from %llu to %llu MiB",
	       (unsigned long long)(st->map_size >> 20), (unsigned long long)(want >> 20));
	st->map_size = want;
	return 0;
}

/* LMDB reports a short write as EIO: when the data dir's file system has no
 * room left for the batch, tell the writer the truth, ENOSPC. */
static int commit_err(sg_store *st, struct sg_op **ops, size_t n, int mdb_rc)
{
	struct statvfs sv;
	uint64_t need = 1 << 20, avail;
	int rc = sg_mdb_err(mdb_rc);

	if (rc != -EIO && rc != -ENOSPC)
		return rc;
	if (statvfs(st->path, &sv) < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		need += ops[i]->len + (ops[i]->change ? ops[i]->change->len : 0);
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	return avail < need ? -ENOSPC : rc;
}

/*
 * The batch
 * ---------
 * The writer keeps one write transaction open across batches of ops. A
 * local change (op->early) is acknowledged as soon as it is applied there:
 * its caller returns while the change is still in memory, and readers see
 * it by borrowing the open transaction (store.c). The transaction commits
 * (one fdatasync) when
 *   - the writer was idle (no op for linger_ns): a lone change commits at
 *     once, after its acknowledgement, so it reaches the peers without delay
 *     and the caller's next change, coming during the commit, finds the
 *     writer busy;
 *   - an op in it waits for the commit: a peer's change, a put, a purge, a
 *     sync (fsync), or any op while deferral is off;
 *   - no op came for linger_ns (the burst is over), or the oldest
 *     acknowledged change has waited sync_delay;
 *   - it holds batch_max changes or grows large, or the writer stops.
 * Deferral is off with sync_delay 0, while the disk is nearly full (a
 * commit that cannot be written would lose acknowledged changes: callers
 * get ENOSPC instead), and after a failed commit until a sync reports it.
 * Only committed changes reach the observer, so nothing leaves the node
 * before it is on disk.
 *
 * The journal
 * -----------
 * With the journal (journal.c), "commits" above are durable points: the
 * records of the LMDB puts and deletes made since the last one, with the
 * counters, go to the journal as one batch (one O_DIRECT|O_DSYNC write of a
 * few 4 KiB blocks), and the transaction stays open and published, so that
 * readers, and readers of durable state (replication, the mirror: they
 * first write a batch of whatever the transaction holds beyond the last
 * one), see what is durable. The LMDB commit, synced, comes at a
 * checkpoint: CP_MAX_NS after the first durable point, when the transaction
 * grows large, the journal has no room for the next batch, the disk runs
 * short, the map must grow, the store closes, or sg_store_checkpoint()
 * asks. The journal then starts over. A lone change waits the linger like
 * any other (a batch is one write, where a commit was two fdatasyncs). The
 * writer thread writes a batch without wtxn_lock: meanwhile local changes go
 * on into the open transaction on their callers' threads (run_direct), and
 * make the next batch, so a batch being written holds up no create or save
 * (ops that wait, queued for the writer thread, wait for it anyway). A
 * transaction holding journaled changes is never dropped; if its checkpoint
 * fails the store refuses changes until a restart replays the journal.
 */
#define DEFER_MIN_FREE (64ULL << 20) /* defer only with this much disk left, beyond 2x the txn */
#define OP_EST(op) (16384 + (uint64_t)(op)->len)

struct snap {
	uint64_t version, seq, hlc, next_id, live, tombs, conflict_seq;
	size_t nnotes;
};

static void snap_take(const struct wctx *w, struct snap *s)
{
	*s = (struct snap){w->version, w->seq,   w->hlc,          w->next_id,
	                   w->live,    w->tombs, w->conflict_seq, w->nnotes};
}

static void snap_restore(struct wctx *w, const struct snap *s)
{
	w->version = s->version;
	w->seq = s->seq;
	w->hlc = s->hlc;
	w->next_id = s->next_id;
	w->live = s->live;
	w->tombs = s->tombs;
	w->conflict_seq = s->conflict_seq;
	w->nnotes = s->nnotes;
}

/* Read the free space again, after a durable point or a commit. With room
 * well past what deferring needs, a reading younger than AVAIL_TTL_NS
 * stands (a statfs at every durable point was one per create in a create
 * loop); near the line it is read every time. */
#define AVAIL_TTL_NS (10 * 1000000LL)
#define AVAIL_SLACK (256ULL << 20)
static void avail_refresh(struct wctx *w)
{
	struct statvfs sv;
	int64_t now = sg_mono_ns();

	if (w->avail_ns && now - w->avail_ns < AVAIL_TTL_NS &&
	    w->avail > DEFER_MIN_FREE + 2 * w->est + AVAIL_SLACK)
		return;
	w->avail = statvfs(w->st->path, &sv) == 0 ? (uint64_t)sv.f_bavail * sv.f_frsize : 0;
	w->avail_ns = now;
}

/* May this op be acknowledged before its commit? */
static int deferrable(const struct wctx *w, const struct sg_op *op)
{
	const sg_store *st = w->st;

	return op->early && st->sync_delay_ns && !atomic_load(&st->wb_err) &&
	       !atomic_load(&st->broken) && w->avail > DEFER_MIN_FREE + 2 * (w->est + OP_EST(op)) &&
	       w->est + OP_EST(op) <= st->map_size / 8;
}

/* The map's size and use as the transaction opens: a flat op's room. */
static void flat_room(sg_store *st, struct wctx *w)
{
	MDB_envinfo info;
	MDB_stat ms;

	w->grow = 0;
	w->psize = 0; /* unknown: no op runs flat */
	if (mdb_env_info(st->env, &info) || mdb_env_stat(st->env, &ms) || !ms.ms_psize)
		return;
	w->psize = ms.ms_psize;
	w->pg_map = info.me_mapsize / ms.ms_psize;
	w->pg_base = info.me_last_pgno + 1;
}

/* Open the write transaction. With wtxn_lock held. 0 or -errno. */
static int txn_open(sg_store *st, struct wctx *w)
{
	int rc;

	pthread_rwlock_rdlock(&st->map_lock);
	rc = mdb_txn_begin(st->env, NULL, 0, &w->parent);
	if (rc == 0)
		rc = meta_load(w, w->parent);
	else
		rc = sg_mdb_err(rc);
	if (rc) {
		if (w->parent)
			mdb_txn_abort(w->parent);
		w->parent = NULL;
		pthread_rwlock_unlock(&st->map_lock);
		return rc;
	}
	/* a replayed batch must not reuse clock values handed out before */
	if (w->hlc < w->hlc_floor)
		w->hlc = w->hlc_floor;
	w->txn = w->parent;
	w->lost = 0;
	flat_room(st, w);
	w->nnotes = 0;
	w->map_full = 0;
	w->acked = w->released = 0;
	w->est = 0;
	w->changed = 0;
	w->j.len = 0;
	w->j.nrec = 0;
	w->jfail = 0;
	w->durable = 0;
	w->durable_ns = 0;
	return 0;
}

/* The open transaction is gone (aborted or committed): forget it. With
 * wtxn_lock held; releases it. */
static void txn_gone(sg_store *st, struct wctx *w)
{
	if (w->hlc > w->hlc_floor)
		w->hlc_floor = w->hlc;
	w->parent = NULL;
	w->txn = NULL;
	st->wtxn = NULL;
	pthread_rwlock_unlock(&st->map_lock);
	pthread_mutex_unlock(&st->wtxn_lock);
}

static void waiter_add(struct wctx *w, struct sg_op *op)
{
	if (w->nwait == w->capw) {
		size_t cap = w->capw ? w->capw * 2 : 64;
		struct sg_op **n = realloc(w->waiters, cap * sizeof(*n));
		if (!n)
			abort(); /* a few hundred bytes; without them the caller would hang */
		w->waiters = n;
		w->capw = cap;
	}
	w->waiters[w->nwait++] = op;
}

static void ops_done(sg_store *st, struct sg_op **ops, size_t n)
{
	struct sg_op *async = NULL, **tail = &async, *next;
	int waited = 0;

	if (!n)
		return;
	pthread_mutex_lock(&st->q_lock);
	for (size_t i = 0; i < n; i++) {
		if (ops[i]->cb) {
			/* off the queue, so next is free: a list of them, in order,
			 * to call once the lock is released */
			ops[i]->next = NULL;
			*tail = ops[i];
			tail = &ops[i]->next;
		} else {
			ops[i]->done = 1;
			waited = 1;
		}
	}
	if (waited)
		pthread_cond_broadcast(&st->done_cond);
	pthread_mutex_unlock(&st->q_lock);
	for (; async; async = next) {
		next = async->next;
		async->cb(async);
	}
}

/* Grow the map ahead of need, with no transaction open, so that a
 * transaction holding acknowledged changes does not run out of map. */
static void map_headroom(sg_store *st)
{
	MDB_envinfo info;
	MDB_stat ms;

	if (mdb_env_info(st->env, &info) || mdb_env_stat(st->env, &ms))
		return;
	if ((uint64_t)(info.me_last_pgno + 1) * ms.ms_psize > st->map_size / 2)
		map_grow(st);
}

static int jseq_put(struct wctx *w, uint64_t seq)
{
	return w->st->jn ? w_put(w, w->st->meta, "journal_seq", 11, &seq, 8) : 0;
}

/* The counters (and the journal's seq) into the open transaction, flat or
 * in a child transaction, so that a failure leaves it as it was. 0 or
 * -errno. */
static int meta_stage(sg_store *st, struct wctx *w, uint64_t seq)
{
	size_t jl;
	uint32_t jn;
	MDB_txn *child;
	int rc;

	if (room_for(w, 8 * ROW_EST(16, 8))) {
		flat_begin(w, &jl, &jn);
		rc = meta_save(w);
		rc = flat_end(st, w, rc ? rc : jseq_put(w, seq), jl, jn);
		if (rc != 1)
			return rc;
	}
	jl = w->j.len;
	jn = w->j.nrec;
	rc = mdb_txn_begin(st->env, w->parent, 0, &child);
	if (rc)
		return sg_mdb_err(rc);
	w->txn = child;
	rc = meta_save(w);
	rc = rc ? rc : jseq_put(w, seq);
	if (rc == 0 && !w->map_full) {
		rc = sg_mdb_err(mdb_txn_commit(child));
	} else {
		mdb_txn_abort(child);
		if (rc == 0)
			rc = -ENOSPC;
	}
	if (rc) {
		w->j.len = jl;
		w->j.nrec = jn;
	}
	w->map_full = 0;
	w->txn = w->parent;
	return rc;
}

/* Write what the open transaction holds beyond the last journal batch as the
 * next one. With wtxn_lock held, between ops. 0 or -errno (nothing written). */
static int journal_batch(sg_store *st, struct wctx *w)
{
	uint64_t seq = st->jseq + 1;
	int rc;

	if (!w->j.len)
		return w->jfail ? -ENOMEM : 0;
	if (w->jfail || atomic_load(&st->broken))
		return -EIO;
	rc = meta_stage(st, w, seq);
	rc = rc ? rc : sg_journal_write(st, &w->j, seq);
	if (rc)
		return rc;
	st->jseq = seq;
	w->j.len = 0;
	w->j.nrec = 0;
	if (!w->durable_ns)
		w->durable_ns = sg_mono_ns();
	w->durable++;
	return 0;
}

int sg_writer_make_durable_locked(sg_store *st, int may_wait)
{
	struct wctx *w = st->wctx;

	/* the writer writes a batch: ours comes after it */
	while (w && w->jbusy) {
		if (!may_wait)
			return -EBUSY;
		pthread_cond_wait(&w->jdone, &st->wtxn_lock);
		w = st->wctx;
	}
	/* only a published transaction: one that is not may yet be dropped */
	if (!w || !w->parent || !st->wtxn)
		return 0;
	return journal_batch(st, w);
}

/* What a durable point hands on: the counters it made durable, the ops that
 * waited for it and the notes for the observer. */
struct post {
	uint64_t version, hlc, live, tombs;
	struct sg_op **waiters;
	size_t nwait, capw;
	struct note_slot *notes;
	size_t nnotes, cap;
	int shown; /* the visibility observer has heard of the notes */
};

/* The writer's counters, waiters and notes as a post (its arrays, not copies). */
static struct post post_of(const struct wctx *w)
{
	return (struct post){w->version, w->hlc,   w->live,   w->tombs, w->waiters, w->nwait,
	                     w->capw,    w->notes, w->nnotes, w->cap,   0};
}

/* Tell an observer of p's notes. */
static void post_tell(sg_observer cb, void *ctx, const struct post *p)
{
	sg_note *notes;

	if (!cb || !p->nnotes || !(notes = malloc(p->nnotes * sizeof(*notes))))
		return;
	for (size_t i = 0; i < p->nnotes; i++) {
		notes[i] = p->notes[i].n;
		notes[i].name = p->notes[i].name;
	}
	cb(ctx, notes, p->nnotes);
	free(notes);
}

/* Raise the published clock to h, never lower it: a durable point's clock
 * may be older than what changes acknowledged since then published. */
static void hlc_publish(sg_store *st, uint64_t h)
{
	uint64_t cur = atomic_load(&st->hlc);

	while (h > cur && !atomic_compare_exchange_weak(&st->hlc, &cur, h))
		;
}

/* What follows a durable point, without wtxn_lock: the waiters complete, the
 * observer hears of the changes. */
static void post_run(sg_store *st, const struct post *p, int err, size_t acked)
{
	if (err) {
		sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-STORE-COMMIT", "commit of %zu ops failed: %s",
		       p->nwait + acked, strerror(-err));
		if (acked) {
			atomic_store(&st->wb_err, err);
			atomic_fetch_add(&st->lost_acked, acked);
			sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-STORE-LOST",
			       "%zu acknowledged changes were not saved: %s; the next fsync fails",
			       acked, strerror(-err));
		}
	}
	if (!err) {
		atomic_store(&st->version, p->version);
		hlc_publish(st, p->hlc);
		atomic_store(&st->live, p->live);
		atomic_store(&st->tombs, p->tombs);
		atomic_fetch_add(&st->commits, 1);
		atomic_fetch_add(&st->ops, acked);
	}
	for (size_t i = 0; i < p->nwait; i++) {
		struct sg_op *op = p->waiters[i];
		if (op->kind == OP_SYNC) {
			/* a lost commit of acknowledged changes is told once, here */
			int wb = op->flags & SYNC_KEEP_ERR ? 0 : atomic_exchange(&st->wb_err, 0);
			op->rc = err ? err : wb;
			continue;
		}
		if (err && op->rc == 0)
			op->rc = err;
		if (op->rc)
			continue;
		atomic_fetch_add(&st->ops, 1);
		if (op->kind == OP_PURGE)
			atomic_fetch_add(&st->purged, op->count);
		if (op->kind == OP_RECONCILE)
			atomic_fetch_add(&st->forgotten, op->count);
	}
	/* told again after a failed journal write (p came back through
	 * post_undo) and after a failed commit (what a cache took is gone) */
	if (err || !p->shown)
		post_tell(st->visible, st->visible_ctx, p);
	if (!err)
		post_tell(st->observer, st->observer_ctx, p);
	ops_done(st, p->waiters, p->nwait);
}

/* post_run() for the writer's own state. `closed`: the transaction is gone
 * (a checkpoint, or nothing to keep), so the map may grow. */
static void txn_post(sg_store *st, struct wctx *w, int err, size_t acked, int closed)
{
	struct post p = post_of(w);

	post_run(st, &p, err, acked);
	w->nwait = 0;
	w->need_sync = 0;
	w->nnotes = 0;
	if (closed) {
		avail_refresh(w);
		map_headroom(st);
	}
}

/* txn_checkpoint(): the disk had no room for the commit and nothing in it
 * was acknowledged; the caller waits (room_wait) and runs its batch again. */
#define COMMIT_NOROOM 1
#define ROOM_TRIES 2              /* runs again, at most */
#define ROOM_WAIT_NS 2000000000LL /* for old readers, at most */

/*
 * Commit the open transaction to LMDB, synced when it holds journaled
 * changes (a checkpoint: the journal then starts over). With wtxn_lock held;
 * releases it. The waiters complete; a failure is theirs, and the deferred
 * changes in it are lost: that is logged and reported to the next sync.
 * Journaled changes are never dropped: after a failed checkpoint the store
 * refuses changes until a restart replays the journal.
 * @return 0, or MDB_MAP_FULL when nothing in it was acknowledged: the
 *         caller grows the map and runs its batch again (the waiters are
 *         left to it); COMMIT_NOROOM likewise, when the disk had no room
 *         and w->room_retry is set.
 */
static int txn_checkpoint(sg_store *st, struct wctx *w)
{
	int rc, mrc = 0, err = 0;
	size_t acked = w->acked, durable = w->durable;

	if (!w->changed && !durable) {
		/* only syncs (or failed ops) in it: nothing to write; a sync remains */
		mdb_txn_abort(w->parent);
	} else if (w->lost) {
		mdb_txn_abort(w->parent); /* half of an op is in it */
		err = -EIO;
	} else if ((rc = meta_save(w)) != 0 || (rc = jseq_put(w, st->jseq)) != 0 || w->map_full) {
		mdb_txn_abort(w->parent);
		if (w->map_full)
			mrc = MDB_MAP_FULL;
		else
			err = rc;
	} else if (sg_writer_commit_fault()) {
		mdb_txn_abort(w->parent);
		mrc = EIO;
	} else {
		mrc = mdb_txn_commit(w->parent); /* frees the transaction, even when it fails */
	}
	w->map_full = 0;
	if (mrc == MDB_MAP_FULL && !w->released && !durable) {
		txn_gone(st, w);
		return MDB_MAP_FULL;
	}
	if (mrc && w->room_retry && !w->released && !durable &&
	    commit_err(st, w->waiters, w->nwait, mrc) == -ENOSPC) {
		txn_gone(st, w);
		return COMMIT_NOROOM;
	}
	txn_gone(st, w);
	w->acked = w->released = 0;
	w->durable = 0;
	w->durable_ns = 0;
	w->cp_asked = 0;
	if (mrc)
		err = commit_err(st, w->waiters, w->nwait, mrc);
	if (!err && (w->need_sync || durable)) {
		int r = mdb_env_sync(st->env, 1);
		if (r) {
			sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-STORE-SYNC", "sync failed: %s",
			       mdb_strerror(r));
			err = sg_mdb_err(r);
		}
	}
	if (err && durable && !atomic_exchange(&st->broken, 1))
		sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-STORE-BROKEN",
		       "a checkpoint failed (%s): the changes since the last one are in the "
		       "journal only; changes are refused until sigilfs restarts and replays it",
		       strerror(-err));
	if (!err && durable)
		sg_journal_reset(st);
	if (!err && (w->changed || durable))
		atomic_fetch_add(&st->checkpoints, 1);
	txn_post(st, w, err, acked, 1);
	return 0;
}

/* Is a checkpoint due rather than a journal batch? */
static int cp_due(sg_store *st, const struct wctx *w)
{
	int64_t now = sg_mono_ns(), age = w->durable_ns ? now - w->durable_ns : 0;

	/* lost: half of an op is in it; it is aborted, at once */
	return !st->jn || w->lost || w->force_cp || w->cp_asked || w->jfail || age >= CP_HARD_NS ||
	       (age >= CP_MAX_NS && now - atomic_load(&w->last_ns) >= CP_LULL_NS) ||
	       w->est >= CP_EST_MAX(st) || !sg_journal_fits(st, w->j.len + SG_JBLK) ||
	       /* short of room: commit now, while a failure is still the
	        * caller's error (ENOSPC), not journaled changes the store
	        * cannot take */
	       w->avail < DEFER_MIN_FREE + 2 * w->est;
}

/* Hand the waiters and notes of the open transaction to p, leaving w the
 * spare arrays (the writer thread's own: only it makes a durable point). */
static void post_take(struct wctx *w, struct post *p)
{
	*p = post_of(w);
	w->waiters = w->wspare;
	w->capw = w->capw_spare;
	w->nwait = 0;
	w->notes = w->nspare;
	w->cap = w->cap_spare;
	w->nnotes = 0;
}

/* Give p's arrays back as spares, once post_run() is done with them. */
static void post_return(struct wctx *w, struct post *p)
{
	w->wspare = p->waiters;
	w->capw_spare = p->capw;
	w->nspare = p->notes;
	w->cap_spare = p->cap;
}

/* The batch of p could not be written: its waiters and notes go back in
 * front of what came meanwhile (notes only: no op waits while the writer
 * writes), for the checkpoint that follows. */
static void post_undo(struct wctx *w, struct post *p)
{
	size_t n = p->nnotes + w->nnotes;

	if (n > p->cap) {
		struct note_slot *v = realloc(p->notes, n * sizeof(*v));
		if (v) {
			p->notes = v;
			p->cap = n;
		}
	}
	if (n <= p->cap && w->nnotes)
		memcpy(p->notes + p->nnotes, w->notes, w->nnotes * sizeof(*w->notes));
	p->nnotes = n <= p->cap ? n : p->nnotes; /* else the observer misses those */
	w->nnotes = 0;
	/* what meanwhile came in is w's current arrays: they become the spares */
	w->wspare = w->waiters;
	w->capw_spare = w->capw;
	w->nspare = w->notes;
	w->cap_spare = w->cap;
	w->waiters = p->waiters;
	w->capw = p->capw;
	w->nwait = p->nwait;
	w->notes = p->notes;
	w->cap = p->cap;
	w->nnotes = p->nnotes;
}

/*
 * A durable point: the changes in the open transaction are written to the
 * journal, which keeps the transaction open (readers borrow it) until its
 * checkpoint. The batch is written with wtxn_lock released: local changes
 * go on into the transaction meanwhile (run_direct), for the next batch,
 * and readers borrow it; a reader of durable state waits for the write
 * (jbusy). Only the writer thread makes one. With wtxn_lock held; releases
 * it.
 */
static int txn_durable(sg_store *st, struct wctx *w)
{
	size_t acked = w->acked, released = w->released;
	int need_sync = w->need_sync, rc;
	uint64_t seq = st->jseq + 1;
	struct sg_jbuf jb;
	struct post p;

	if (w->changed && w->j.len) {
		if (w->jfail || atomic_load(&st->broken) || meta_stage(st, w, seq) != 0)
			return txn_checkpoint(st, w); /* commit instead */
		jb = w->j;
		w->j = w->jspare;
		w->j.len = 0;
		w->j.nrec = 0;
		post_take(w, &p);
		st->wtxn = w->parent; /* readers borrow it from now on */
		atomic_store(&st->hlc, w->hlc);
		w->changed = 0;
		w->acked = w->released = 0;
		w->need_sync = 0;
		w->jbusy = 1;
		pthread_mutex_unlock(&st->wtxn_lock);
		/* readers see the changes now: caches of them go before the write */
		post_tell(st->visible, st->visible_ctx, &p);
		p.shown = 1;
		rc = sg_journal_write(st, &jb, seq);
		sg_wtxn_lock(st);
		w->jbusy = 0;
		pthread_cond_broadcast(&w->jdone);
		w->jspare = jb;
		if (rc) {
			/* no room, or it failed: commit it all instead */
			post_undo(w, &p);
			w->changed = 1;
			w->acked += acked;
			w->released += released;
			w->need_sync |= need_sync;
			return txn_checkpoint(st, w);
		}
		st->jseq = seq;
		if (!w->durable_ns)
			w->durable_ns = sg_mono_ns();
		w->durable++;
		avail_refresh(w);
		pthread_mutex_unlock(&st->wtxn_lock);
		post_run(st, &p, 0, acked);
		post_return(w, &p);
		return 0;
	}
	if (w->changed && w->jfail)
		return txn_checkpoint(st, w);
	/* nothing to write: only syncs, or a reader of durable state wrote it */
	avail_refresh(w);
	if (w->changed) {
		st->wtxn = w->parent;
		atomic_store(&st->hlc, w->hlc);
	}
	w->changed = 0;
	w->acked = w->released = 0;
	pthread_mutex_unlock(&st->wtxn_lock);
	txn_post(st, w, 0, acked, 0);
	return 0;
}

/* Make what the open transaction holds durable: a journal batch, or a
 * checkpoint when one is due. With wtxn_lock held; releases it. */
static int txn_commit(sg_store *st, struct wctx *w)
{
	if ((!w->changed && !w->durable) || cp_due(st, w))
		return txn_checkpoint(st, w);
	return txn_durable(st, w);
}

/* Make what is open durable, if anything: changes not yet journaled, or a
 * journaled transaction whose checkpoint is due. */
static void flush_open(sg_store *st, struct wctx *w)
{
	sg_wtxn_lock(st);
	if (!w->parent)
		pthread_mutex_unlock(&st->wtxn_lock);
	else if (w->acked || w->changed || w->nwait || !w->durable || cp_due(st, w))
		txn_commit(st, w);
	else
		pthread_mutex_unlock(&st->wtxn_lock);
}

/*
 * LMDB reuses the pages a commit freed only in transactions that begin after
 * a later commit. With the journal, commits are few: when the map is full
 * at its maximum, make one (it counts in the meta "settle"), so that room a
 * delete freed is there for what comes next. With no transaction open.
 * 0 (run the ops again) or -ENOSPC.
 */
static int settle_freed(sg_store *st)
{
	MDB_txn *t;
	uint64_t v = 0;
	int rc;

	pthread_rwlock_rdlock(&st->map_lock);
	rc = mdb_txn_begin(st->env, NULL, 0, &t);
	if (rc == 0) {
		MDB_val k = {6, "settle"}, d = {8, &v};
		rc = sg_meta_get0(st, t, "settle", &v) ? MDB_PANIC : 0;
		v++;
		rc = rc ? rc : mdb_put(t, st->meta, &k, &d, 0);
		if (rc == 0)
			rc = mdb_txn_commit(t);
		else
			mdb_txn_abort(t);
	}
	pthread_rwlock_unlock(&st->map_lock);
	return rc ? -ENOSPC : 0;
}

/* Readers (LMDB's reader table, as mdb_reader_list() prints it: "pid
 * thread txnid", or "-" for a free slot) whose snapshot is older than
 * `below`. */
struct old_readers {
	unsigned long long below;
	int n;
};

static int old_reader(const char *line, void *ctx)
{
	struct old_readers *o = ctx;
	unsigned long long txnid;
	size_t tid;
	int pid;

	if (sscanf(line, "%d %zx %llu", &pid, &tid, &txnid) == 3 && txnid < o->below)
		o->n++;
	return 0;
}

/*
 * The disk had no room for a commit. The pages that earlier commits freed
 * (a delete's, and the old copies of every page a commit rewrote) are
 * LMDB's to reuse only once no reader holds a snapshot from before they
 * were freed; such a reader lets go within a moment (a page of the log for
 * a peer or the mirror, a read). So before the batch runs again, the second
 * time after one more commit (so that what the last one freed counts too):
 * wait, at most ROOM_WAIT_NS, until no reader holds a snapshot older than
 * the last commit. Newer readers do not hold the freed pages: they are not
 * waited for. With no transaction open.
 */
static void room_wait(sg_store *st, int round)
{
	int64_t until = sg_mono_ns() + ROOM_WAIT_NS;
	MDB_envinfo info;

	if (round > 1)
		settle_freed(st);
	while (mdb_env_info(st->env, &info) == 0) {
		struct old_readers o = {.below = (unsigned long long)info.me_last_txnid};

		if (mdb_reader_list(st->env, old_reader, &o) < 0 || o.n == 0 ||
		    sg_mono_ns() >= until)
			break;
		usleep(1000);
	}
}

/*
 * Run op in a child transaction of the open one: kept there if it succeeds,
 * aborted if not; MDB_MAP_FULL on the commit sets w->map_full. Returns
 * mdb_txn_begin()'s error (op not run) or 0 (op->rc set).
 */
static int exec_nested(sg_store *st, struct wctx *w, struct sg_op *op)
{
	size_t jl = w->j.len;
	uint32_t jn = w->j.nrec;
	MDB_txn *child;
	int rc = mdb_txn_begin(st->env, w->parent, 0, &child);

	if (rc)
		return rc;
	w->txn = child;
	op->rc = exec_op(w, op);
	if (op->rc == 0 && !w->map_full) {
		rc = mdb_txn_commit(child);
		if (rc == MDB_MAP_FULL)
			w->map_full = 1;
		else if (rc)
			op->rc = sg_mdb_err(rc);
	} else {
		mdb_txn_abort(child);
	}
	if (op->rc || w->map_full) {
		/* nothing of it stays: neither do its journal records */
		w->j.len = jl;
		w->j.nrec = jn;
	}
	w->txn = w->parent;
	return 0;
}

/* Run op flat. 0: done (op->rc set); 1: undone, run it nested. */
static int exec_flat(sg_store *st, struct wctx *w, struct sg_op *op)
{
	size_t jl;
	uint32_t jn;
	int rc;

	flat_begin(w, &jl, &jn);
	rc = flat_end(st, w, exec_op(w, op), jl, jn);
	if (rc == 1)
		return 1;
	op->rc = rc;
	return 0;
}

/* May op run flat? Not the ops that walk whole tables, and not without room
 * for a transaction's worth of copies. */
static int flat_ok(const struct wctx *w, const struct sg_op *op)
{
	return op->kind != OP_PURGE && op->kind != OP_RECONCILE && room_for(w, OP_EST(op));
}

/* Run op in the open transaction: flat if it may, else (or when it ran out
 * of room flat) in a child transaction. As exec_nested. */
static int exec_run(sg_store *st, struct wctx *w, struct sg_op *op)
{
	struct snap s;

	if (flat_ok(w, op)) {
		snap_take(w, &s);
		if (exec_flat(st, w, op) == 0)
			return 0;
		snap_restore(w, &s);
	}
	return exec_nested(st, w, op);
}

/*
 * Run ops[0..n) in the open transaction, opening it if need be. A deferred
 * op is acknowledged at the end of the batch; the others wait for the
 * commit, which comes at the end of the batch when any op waits.
 */
static void run_batch(sg_store *st, struct sg_op **ops, size_t n, struct wctx *w)
{
	struct sg_op **rel = malloc(n * sizeof(*rel)); /* acknowledged at the end */
	size_t nrel = 0, i = 0;
	int rc, settled = 0;

	if (!rel)
		abort();
	if (atomic_load(&st->broken)) {
		/* a failed checkpoint: the journal holds what the store lacks */
		for (size_t k = 0; k < n; k++)
			ops[k]->rc = -EIO;
		ops_done(st, ops, n);
		free(rel);
		return;
	}
	sg_wtxn_lock(st);
	for (; i < n; i++) {
		struct sg_op *op = ops[i];
		struct snap s;
		int defer;

		if (!w->parent && (rc = txn_open(st, w)) < 0) {
			op->rc = rc;
			rel[nrel++] = op;
			continue;
		}
		if (op->kind == OP_SYNC) {
			w->need_sync = 1;
			if (op->flags & SYNC_CHECKPOINT)
				w->cp_asked = 1; /* sg_store_checkpoint() */
			op->rc = 0;
			waiter_add(w, op);
			continue;
		}
		defer = deferrable(w, op);
		snap_take(w, &s);
		rc = exec_run(st, w, op);
		if (rc) {
			op->rc = sg_mdb_err(rc);
			rel[nrel++] = op;
			continue;
		}
		if (w->map_full) {
			snap_restore(w, &s);
			if (!w->released && !w->durable) {
				/* nothing acknowledged yet: drop the transaction and every
				 * op of this batch in it, grow, run them again */
				mdb_txn_abort(w->parent);
				w->map_full = 0;
				txn_gone(st, w);
				w->nwait = 0; /* all from this batch: they run again */
				w->need_sync = 0;
				nrel = 0;
				rc = map_grow(st);
				if (rc < 0 && !settled) {
					/* at the maximum: room freed by the last commit counts
					 * from the commit after it; make one, run them again */
					settled = 1;
					rc = settle_freed(st);
				}
				sg_wtxn_lock(st);
				if (rc == 0) {
					i = (size_t)-1; /* from the start: the loop's i++ makes it 0
					                 */
					continue;
				}
				if (n > 1) {
					/* at the maximum: one op per transaction, so that only
					 * those that do not fit fail */
					pthread_mutex_unlock(&st->wtxn_lock);
					free(rel);
					for (size_t k = 0; k < n; k++)
						run_batch(st, &ops[k], 1, w);
					return;
				}
				op->rc = rc;
				rel[nrel++] = op;
				continue;
			}
			/* acknowledged changes are in it: commit them (and what this
			 * batch did so far), grow, run this op again in a new one */
			w->map_full = 0;
			txn_checkpoint(st, w); /* the map grows with no transaction open */
			ops_done(st, rel, nrel);
			nrel = 0;
			sg_wtxn_lock(st);
			if ((rc = map_grow(st)) < 0 && !settled) {
				settled = 1;
				rc = settle_freed(st);
			}
			if (rc < 0) {
				op->rc = rc;
				rel[nrel++] = op;
				continue;
			}
			i--;
			continue;
		}
		if (op->rc) {
			snap_restore(w, &s);
			rel[nrel++] = op;
			continue;
		}
		w->est += OP_EST(op);
		w->changed = 1;
		if (defer) {
			w->acked++;
			rel[nrel++] = op;
			atomic_fetch_add(&st->deferred, 1);
		} else {
			waiter_add(w, op);
		}
	}
	atomic_store(&w->last_ns, sg_mono_ns());
	if (w->parent && w->acked && !w->released)
		w->opened_ns = atomic_load(&w->last_ns);
	if (w->parent && (w->nwait || !w->acked || w->acked >= st->batch_max || w->lost)) {
		w->room_retry = w->room_tries < ROOM_TRIES;
		rc = txn_commit(st, w);
		w->room_retry = 0;
		if (rc == COMMIT_NOROOM) {
			/* no room on disk, with nothing acknowledged: wait for old
			 * readers (the second time after one more commit) and run
			 * the batch again */
			w->nwait = 0;
			w->need_sync = 0;
			free(rel);
			room_wait(st, ++w->room_tries);
			run_batch(st, ops, n, w);
			w->room_tries = 0;
			return;
		}
		if (rc == MDB_MAP_FULL) {
			/* the commit itself ran out of map, with nothing acknowledged:
			 * grow and run the batch again (at the maximum: one by one) */
			w->nwait = 0;
			w->need_sync = 0;
			free(rel);
			rc = map_grow(st);
			if (rc == 0) {
				run_batch(st, ops, n, w);
			} else if (n > 1) {
				for (size_t k = 0; k < n; k++)
					run_batch(st, &ops[k], 1, w);
			} else {
				ops[0]->rc = rc;
				ops_done(st, ops, 1);
			}
			return;
		}
	} else {
		if (w->parent && w->acked) {
			st->wtxn = w->parent; /* readers borrow it from now on */
			w->released = w->acked;
			/* the clock covers the stamps handed out, committed or not */
			atomic_store(&st->hlc, w->hlc);
		}
		pthread_mutex_unlock(&st->wtxn_lock);
		if (w->parent && w->acked && !w->busy && !st->jn) {
			/* a lone change (the writer was idle): acknowledge it, then
			 * commit at once, so that it reaches the peers without waiting
			 * for a burst; the caller's next change, if it comes during
			 * this commit, finds the writer busy. With the journal a
			 * durable point is cheap enough to wait the linger (200 us)
			 * for a next change: an editor's rename and its next save
			 * share one journal write */
			ops_done(st, rel, nrel);
			free(rel);
			flush_open(st, w);
			return;
		}
	}
	ops_done(st, rel, nrel);
	free(rel);
}

static void *writer_main(void *arg)
{
	sg_store *st = arg;
	struct wctx w = {.st = st};
	struct sg_op **batch = calloc(st->batch_max, sizeof(*batch));

	sg_thread_name("sigil-writer");
	if (!batch)
		abort();
	avail_refresh(&w);
	pthread_cond_init(&w.jdone, NULL);
	sg_wtxn_lock(st);
	st->wctx = &w;
	pthread_mutex_unlock(&st->wtxn_lock);
	for (;;) {
		size_t n = 0;
		int stop;

		/* busy: ops were queued when the last batch or commit ended, or
		 * came within linger_ns of the last op; idle otherwise */
		int queued;

		pthread_mutex_lock(&st->q_lock);
		queued = st->q_head != NULL;
		while (!st->q_head && !st->stop) {
			struct timespec ts;
			int64_t now, last, until;

			if (!w.parent) {
				pthread_cond_wait(&st->q_cond, &st->q_lock);
				continue;
			}
			now = sg_mono_ns();
			last = atomic_load(&w.last_ns);
			if (w.lost) {
				until = now; /* not a moment published */
			} else if (w.acked) {
				until = last + (int64_t)st->linger_ns;
				if (until > w.opened_ns + (int64_t)st->sync_delay_ns)
					until = w.opened_ns + (int64_t)st->sync_delay_ns;
			} else if (w.durable_ns) {
				/* only journaled changes: their checkpoint, in a lull */
				until = w.durable_ns + CP_MAX_NS;
				if (until < last + CP_LULL_NS)
					until = last + CP_LULL_NS;
				if (until > w.durable_ns + CP_HARD_NS)
					until = w.durable_ns + CP_HARD_NS;
			} else {
				until = now;
			}
			if (now >= until)
				break;
			ts = sg_mono_deadline(until);
			pthread_cond_timedwait(&st->q_cond, &st->q_lock, &ts);
		}
		if (st->q_head)
			w.busy = queued ||
			         sg_mono_ns() - atomic_load(&w.last_ns) < (int64_t)st->linger_ns;
		while (st->q_head && n < st->batch_max) {
			batch[n++] = st->q_head;
			st->q_head = st->q_head->next;
		}
		if (!st->q_head)
			st->q_tail = NULL;
		stop = st->stop;
		pthread_mutex_unlock(&st->q_lock);

		if (n) {
			run_batch(st, batch, n, &w);
			sg_map_trim(st, (unsigned)n);
		} else
			flush_open(st, &w); /* the burst is over, or it waited long enough */
		if (stop && !n) {
			w.force_cp = 1; /* what is open is committed */
			flush_open(st, &w);
			break;
		}
	}
	sg_wtxn_lock(st);
	st->wctx = NULL;
	pthread_mutex_unlock(&st->wtxn_lock);
	free(w.waiters);
	free(w.notes);
	free(w.j.p);
	free(w.wspare);
	free(w.nspare);
	free(w.jspare.p);
	free(w.u);
	free(w.ub);
	pthread_cond_destroy(&w.jdone);
	free(batch);
	return NULL;
}

int sg_writer_start(sg_store *st)
{
	int rc = pthread_create(&st->writer, NULL, writer_main, st);

	if (rc)
		return -rc;
	st->writer_started = 1;
	return 0;
}

void sg_writer_stop(sg_store *st)
{
	if (!st->writer_started)
		return;
	pthread_mutex_lock(&st->q_lock);
	st->stop = 1;
	pthread_cond_signal(&st->q_cond);
	pthread_mutex_unlock(&st->q_lock);
	pthread_join(st->writer, NULL);
	st->writer_started = 0;
}

/*
 * A deferrable local change, run on the caller's own thread in the writer's
 * open transaction: no hand-over to the writer thread and back (two context
 * switches per op, most of a create's cost in the daemon). Only while the
 * writer holds a transaction open with acknowledged changes and is not using
 * it (wtxn_lock free); it stays the writer's to commit. The op runs as on
 * the writer (exec_run); a map that runs full leaves the op to the writer,
 * which grows the map. 1: done (op->rc set), 0: queue it.
 */
static int run_direct(sg_store *st, struct sg_op *op)
{
	struct wctx *w;
	struct snap s;
	int done = 0, first = 0;

	if (pthread_mutex_trylock(&st->wtxn_lock) != 0)
		return 0; /* the writer runs a batch or commits: queue behind it */
	w = st->wctx;
	/* a transaction with nothing acknowledged or durable may yet be dropped */
	if (!w || !st->wtxn || !w->parent || !(w->released || w->durable || w->jbusy) ||
	    !deferrable(w, op))
		goto out;
	snap_take(w, &s);
	if (exec_run(st, w, op) != 0)
		goto out;
	if (w->map_full) {
		snap_restore(w, &s);
		w->map_full = 0;
		goto out;
	}
	done = 1;
	if (op->rc) {
		snap_restore(w, &s);
		first = w->lost; /* the writer aborts the transaction at once */
		goto out;
	}
	w->est += OP_EST(op);
	w->changed = 1;
	first = !w->acked;
	w->acked++;
	w->released++;
	atomic_fetch_add(&st->deferred, 1);
	atomic_store(&st->hlc, w->hlc);
	atomic_store(&w->last_ns, sg_mono_ns());
	if (first)
		w->opened_ns = atomic_load(&w->last_ns); /* its sync_delay runs from here */
out:
	pthread_mutex_unlock(&st->wtxn_lock);
	if (done)
		sg_map_trim(st, 1);
	if (first) {
		/* the writer may sleep until a checkpoint: this change is due
		 * sooner */
		pthread_mutex_lock(&st->q_lock);
		pthread_cond_signal(&st->q_cond);
		pthread_mutex_unlock(&st->q_lock);
	}
	return done;
}

/* Queue op for the writer, with q_lock held. 0, or -ESHUTDOWN once the
 * store stops (op is not queued). */
static int enqueue_locked(sg_store *st, struct sg_op *op)
{
	op->next = NULL;
	op->done = 0;
	if (st->stop)
		return -ESHUTDOWN;
	if (st->q_tail)
		st->q_tail->next = op;
	else
		st->q_head = op;
	st->q_tail = op;
	return 0;
}

int sg_writer_submit(sg_store *st, struct sg_op *op)
{
	int rc;

	if (op->early && run_direct(st, op))
		return op->rc;
	pthread_mutex_lock(&st->q_lock);
	if ((rc = enqueue_locked(st, op)) == 0) {
		pthread_cond_signal(&st->q_cond);
		while (!op->done)
			pthread_cond_wait(&st->done_cond, &st->q_lock);
		rc = op->rc;
	}
	pthread_mutex_unlock(&st->q_lock);
	return rc;
}

int sg_writer_submit_async(sg_store *st, struct sg_op *op)
{
	int rc;

	pthread_mutex_lock(&st->q_lock);
	if ((rc = enqueue_locked(st, op)) == 0)
		pthread_cond_signal(&st->q_cond);
	pthread_mutex_unlock(&st->q_lock);
	return rc;
}

void sg_writer_submit_many(sg_store *st, struct sg_op *ops, size_t n)
{
	if (n == 0)
		return;
	pthread_mutex_lock(&st->q_lock);
	for (size_t i = 0; i < n; i++) {
		if (enqueue_locked(st, &ops[i]) != 0) {
			ops[i].rc = -ESHUTDOWN;
			ops[i].done = 1;
		}
	}
	pthread_cond_signal(&st->q_cond);
	for (size_t i = 0; i < n; i++)
		while (!ops[i].done)
			pthread_cond_wait(&st->done_cond, &st->q_lock);
	pthread_mutex_unlock(&st->q_lock);
}
