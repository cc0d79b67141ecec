/* store_i.h: private to src/lmdb/: the store's layout in LMDB, its handle, and
 * the op queue shared by store.c (API, reads) and writer.c (group commit). */
#ifndef SIGIL_STORE_I_H
#define SIGIL_STORE_I_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "lmdb/store.h"

/*
 * LMDB databases (all integers big-endian in keys, native in values):
 *   meta    "format","node_id","version","seq","hlc","next_id","live","tombs" -> u64,
 *           "purge_version","purge_hlc","purge_origin","purge_seq" -> u64 (absent: 0),
 *           "journal_id","journal_seq" (journal.c), "settle" (writer.c) -> u64 (absent: 0)
 *   ent     id(8)                 -> struct sg_rec + name
 *   dir     parent(8) + name      -> id(8) + type(1)     (a directory's children, name order)
 *   data    id(8)                 -> content / symlink target
 *   xattr   id(8) + name          -> value
 *   log     version(8)            -> id(8)               (one row per entry: its latest version)
 *   origins origin(8)             -> highest seq seen
 *   conflicts seq(8)              -> struct sg_conflict_rec + path + losing content
 * Keys are at most 8 + 255 bytes, well under LMDB's 511: any path depth works.
 */

#define SG_STORE_FORMAT 2
#define SG_XATTR_MAX (64 * 1024)
#define SG_PUT_XATTRS_MAX 256 /* as many as one change may carry on the wire */

/** An entry as stored in `ent`, followed by namelen bytes of name. */
struct sg_rec {
	uint64_t parent;
	uint64_t size;
	int64_t mtime_ns;
	int64_t ctime_ns;
	uint64_t version;
	uint64_t hlc;
	uint64_t origin;
	uint64_t seq;
	uint64_t base_hlc; /* stamp of the version this one replaced where it was made */
	uint64_t base_origin;
	uint64_t base_seq;
	uint32_t type;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint32_t nchild;  /* live children, for a directory */
	uint32_t nsubdir; /* live subdirectories */
	uint32_t namelen;
	uint32_t pad;
};

/** A recorded conflict as stored, followed by pathlen bytes of path and len of data. */
struct sg_conflict_rec {
	uint64_t loser_hlc, loser_origin, loser_seq;
	uint64_t winner_hlc, winner_origin, winner_seq;
	int64_t when_ns;
	uint64_t len;
	uint32_t loser_type;
	uint32_t pathlen;
};

enum sg_op_kind {
	/* the filesystem's changes, by handle: OP_CREATE to OP_REMOVEXATTR */
	OP_CREATE,
	OP_WRITE,
	OP_SETATTR,
	OP_REMOVE,
	OP_RENAME,
	OP_SETXATTR,
	OP_REMOVEXATTR,
	OP_APPLY,
	OP_PUT,
	OP_PURGE,
	OP_RECONCILE,
	OP_SYNC, /* flags: SYNC_CHECKPOINT, SYNC_KEEP_ERR */
};

/* OP_SYNC's flags */
#define SYNC_CHECKPOINT 1u /* and commit the journal to LMDB */
#define SYNC_KEEP_ERR 2u   /* leave a lost commit's error to the next sync */

/** One queued mutation; lives on the caller's stack until done. */
struct sg_op {
	enum sg_op_kind kind;
	const sg_stamp *stamp; /* NULL: local, stamped at commit */
	uint64_t id, parent, nparent;
	const char *name, *nname;
	uint32_t type, mode, uid, gid;
	unsigned mask, flags;
	const void *data;
	size_t len;
	int64_t mtime_ns, now_ns;
	const sg_attr *in;
	const sg_attr *seen; /* OP_WRITE: the version its content was loaded from */
	const sg_change *change;
	const sg_snapshot *snap; /* OP_RECONCILE */
	uint64_t upto, after;    /* OP_PURGE: versions (after, upto] */
	/* results */
	uint64_t count; /* OP_PURGE: purged; OP_RECONCILE: dropped */
	uint64_t last;  /* OP_PURGE: the last version examined (0: the end was reached) */
	int rc;
	int held; /* OP_APPLY: the change was here already (the same stamp): nothing done */
	sg_attr out;
	int early; /* a local change: acknowledged before its commit when deferral is on */
	int done;
	/* set: nobody waits; the writer calls it (without its locks) instead of
	 * setting done, and the op is the callback's to free */
	void (*cb)(struct sg_op *op);
	struct sg_op *next;
};

struct wctx; /* writer.c */

/* ---- the commit journal (journal.c) ---- */
#define SG_JBLK 4096
#define SG_JOURNAL_SIZE (8ULL << 20)
#define SG_JOURNAL_MIN_FREE (64ULL << 20) /* make one only with this much room besides */

/** LMDB puts and deletes, as journal records. */
struct sg_jbuf {
	unsigned char *p;
	size_t len, cap;
	uint32_t nrec;
};

struct sg_journal {
	int fd;
	int dsync; /* opened O_DSYNC: a write is durable when it returns */
	uint64_t size, pos, jid;
	unsigned char *buf; /* block-aligned scratch */
	size_t cap;
	uint64_t fails; /* writes failed in a row: logged at the first and when they end */
};

struct sg_store {
	MDB_env *env;
	MDB_dbi meta, ent, dir, data, xattr, log, origins, conflicts;
	char *path;
	uint64_t node_id;
	uint64_t store_id;
	uint64_t max_file;
	uint64_t map_size, max_map;
	unsigned batch_max;

	/* every transaction holds this shared; growing the map takes it exclusively */
	pthread_rwlock_t map_lock;

	_Atomic uint64_t version; /* newest committed version */
	_Atomic uint64_t hlc;     /* clock high-water mark */
	_Atomic uint64_t commits, ops;
	_Atomic uint64_t live, tombs;
	_Atomic uint64_t purged, forgotten;

	/* deferred commits (writer.c): a local change is acknowledged once it is
	 * applied to the writer's open transaction, which commits within
	 * sync_delay_ns (0: every change commits before its call returns).
	 * While one is open it is published here and readers borrow it. */
	pthread_mutex_t wtxn_lock; /* held by the writer while it uses wtxn, and by a borrower */
	/* threads waiting in sg_wtxn_lock(), and the times one got it after a
	 * wait: a long listing lets them have it between its reads */
	atomic_uint wtxn_waiting;
	_Atomic uint64_t wtxn_grants;
	MDB_txn *wtxn;     /* the open transaction with acknowledged changes, or NULL */
	struct wctx *wctx; /* the writer's state (writer.c), under wtxn_lock */
	uint64_t sync_delay_ns, linger_ns;
	_Atomic int wb_err; /* a commit of acknowledged changes failed */
	_Atomic uint64_t deferred,
	    lost_acked; /* changes acknowledged before commit; of those lost */

	/* the writer */
	pthread_t writer;
	pthread_mutex_t q_lock;
	pthread_cond_t q_cond;    /* work arrived, or stop */
	pthread_cond_t done_cond; /* some op completed */
	struct sg_op *q_head, *q_tail;
	int stop;
	int writer_started;

	sg_observer observer;
	void *observer_ctx;
	sg_observer visible; /* told when readers see changes (maybe before durable) */
	void *visible_ctx;

	/* the commit journal (journal.c); NULL: every durable point is a commit */
	struct sg_journal *jn;
	uint64_t jseq;                         /* the last batch written (under wtxn_lock) */
	_Atomic uint64_t jwrites, checkpoints; /* batches written; commits (checkpoints) */
	_Atomic int broken; /* a checkpoint failed: changes are refused (writer.c) */

	/* the mapped pages' bound (sg_map_trim): checked every SG_TRIM_EVERY
	 * reads or ops; rss_other: the process's file pages besides the map's,
	 * as the last drop left them */
	_Atomic uint64_t max_mapped; /* UINT64_MAX: not applied */
	_Atomic uint64_t trim_ticks, map_trims, rss_other;
	_Atomic int trimming;
	/* the thread that maps the branch pages after the open (warm_upper),
	 * and its stop */
	pthread_t warmer;
	int warming;
	_Atomic int warm_stop;
	_Atomic uint64_t map_warmed;     /* the branch pages it mapped, once done */
	_Atomic uint64_t warm_snapshots; /* the snapshots it took, once done */
	unsigned warm_chunk;             /* pages it maps under one */
	/* where the map is (NULL: not known), where the next partial drop
	 * starts, and the drops so far; under map_lock, shared, by the one
	 * trimming; map_grow forgets map_addr */
	char *map_addr;
	size_t map_len, trim_pos;
	uint64_t drops;
	/* /proc/self/statm, kept open (-1: not yet) */
	int statm_fd;
	/* the userfaultfd that turns fault-around off on the map (sg_map_watch;
	 * -1: not yet, -2: the kernel cannot), under map_lock */
	int uffd;
	/* kept open by the one trimming (-1: not yet; -2: not available):
	 * /proc/self/pagemap (without it drops take whole spans), and a pidfd
	 * of this process for process_madvise (without it, madvise per run) */
	int pagemap_fd, pidfd;
	pthread_mutex_t statm_lock;
};

/* ---- store.c: shared helpers ---- */
int sg_mdb_err(int rc);
void sg_be64(unsigned char *p, uint64_t v);
uint64_t sg_get_be64(const unsigned char *p);
int sg_rec_get(sg_store *st, MDB_txn *txn, uint64_t id, struct sg_rec *rec, char *name);
int sg_xattrs_read(sg_store *st, MDB_txn *txn, uint64_t id, sg_xattr **out, size_t *n,
                   void **block);
void sg_rec_to_attr(uint64_t id, const struct sg_rec *rec, sg_attr *out);
int sg_dirent_get(sg_store *st, MDB_txn *txn, uint64_t parent, const char *name, uint64_t *id,
                  uint32_t *type);
int sg_path_build(sg_store *st, MDB_txn *txn, uint64_t id, char **out);
int sg_meta_get(sg_store *st, MDB_txn *txn, const char *key, uint64_t *out);
/* sg_meta_get, but an absent key reads as 0. */
int sg_meta_get0(sg_store *st, MDB_txn *txn, const char *key, uint64_t *out);
int sg_horizon_read(sg_store *st, MDB_txn *txn, sg_horizon *out);
/* A read transaction that sees every change acknowledged so far: the
 * writer's open transaction if it has one (borrowed), else a snapshot. */
int sg_rd_begin(sg_store *st, MDB_txn **txn);
/* A snapshot of what is committed only (holding the map lock shared): for
 * what leaves the node (replication, the mirror) and for checks. */
int sg_rd_begin_committed(sg_store *st, MDB_txn **txn);
/* The end of either. */
void sg_rd_end(sg_store *st, MDB_txn *txn);
/* Count `n` reads or ops; every SG_TRIM_EVERY of them, if the process's
 * resident file pages exceed max_mapped beyond those that are not the
 * map's, drop the map's pages from the process (they stay in the page
 * cache; a later access maps them again). The caller may be in a read
 * transaction, and may hold wtxn_lock. */
#define SG_TRIM_EVERY 4
#define SG_TRIM_FULL 32 /* every 32nd drop takes the whole map */
void sg_map_trim(sg_store *st, unsigned n);
/* Once the store's used part is past max_mapped, have each fault on the
 * map map only the page it needs (at the open or when it grows past, and
 * each time the map moves). With map_lock held, shared by the one
 * trimming, or exclusively. */
void sg_map_watch(sg_store *st);

/* ---- journal.c ---- */
/* Open (or make) the store's journal and replay into txn what the last
 * commit does not cover; *replayed: txn changed, commit and sync it before
 * the first batch. 0 or -errno. */
int sg_journal_open(sg_store *st, MDB_txn *txn, int *replayed);
void sg_journal_close(sg_store *st);
/* The index of dbi in records; -1 if not the store's. */
int sg_journal_db_index(sg_store *st, MDB_dbi dbi);
/* Add a put (or, with del, a delete) of key k to b. 0 or -ENOMEM. */
int sg_journal_rec(struct sg_jbuf *b, int db, int del, const void *k, size_t kl, const void *v,
                   size_t vl);
/* Does a batch of len payload bytes fit before the journal's end? */
int sg_journal_fits(const sg_store *st, size_t len);
/* Write b as batch seq, durably. 0, -ENOSPC (no room: checkpoint first) or -errno. */
int sg_journal_write(sg_store *st, const struct sg_jbuf *b, uint64_t seq);
/* After a synced commit that covers every batch: start over. */
void sg_journal_reset(sg_store *st);
/* With wtxn_lock held: write what the writer's open transaction holds that
 * no batch has yet, so that a reader of committed state may borrow it
 * (writer.c). While the writer writes a batch (without the lock) it waits
 * for it, releasing wtxn_lock meanwhile, if may_wait (a reader whose borrow
 * is not open already); else -EBUSY. 0, or -errno: do not borrow. */
int sg_writer_make_durable_locked(sg_store *st, int may_wait);

/* Take wtxn_lock; a wait is counted (wtxn_waiting, wtxn_grants). */
static inline void sg_wtxn_lock(sg_store *st)
{
	if (pthread_mutex_trylock(&st->wtxn_lock) == 0)
		return;
	atomic_fetch_add(&st->wtxn_waiting, 1);
	pthread_mutex_lock(&st->wtxn_lock);
	atomic_fetch_sub(&st->wtxn_waiting, 1);
	atomic_fetch_add(&st->wtxn_grants, 1);
}

/* ---- writer.c ---- */
int sg_writer_start(sg_store *st);
void sg_writer_stop(sg_store *st);
int sg_writer_submit(sg_store *st, struct sg_op *op);
/** Queue op (its cb set) without waiting: 0, or -ESHUTDOWN (cb not called). */
int sg_writer_submit_async(sg_store *st, struct sg_op *op);
/* Queue ops[0..n) together and wait for all; each op's rc says how it went. */
void sg_writer_submit_many(sg_store *st, struct sg_op *ops, size_t n);
/* A fault seam for the unit tests: nonzero makes the undo of a failed flat
 * op fail, as if LMDB had (the path no real failure reaches on demand).
 * writer.c's definition is weak and returns 0; tests/unit/test_store.c
 * links its own. */
int sg_writer_undo_fault(void);

/* Another: nonzero makes a checkpoint's LMDB commit fail with EIO (an
 * acknowledged change lost, which no real failure brings on demand).
 * Weak in writer.c likewise; tests/unit/test_store.c links its own. */
int sg_writer_commit_fault(void);

#endif
