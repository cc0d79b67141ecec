/* fs_i.h: private to src/fs/: the inode table (what the kernel knows, and
 * each open file's shared content buffer) and the fs handle. */
#ifndef SIGIL_FS_I_H
#define SIGIL_FS_I_H

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>

#include "fs/fs.h"

/* One inode the kernel holds (nlookup > 0) or that has open handles. */
struct sg_inode {
	uint64_t ino;
	uint64_t nlookup;     /* kernel references (lookup/create/mkdir... minus forget) */
	unsigned nopen;       /* open file handles */
	unsigned refs;        /* table users right now */
	pthread_mutex_t lock; /* guards the buffer fields below */
	char *buf;            /* content, shared by every handle, loaded at first open */
	size_t len, cap;
	int loaded;        /* buf holds the content */
	int dirty;         /* buf differs from the store: commit at flush/fsync/release */
	_Atomic int stale; /* changed by a peer since the kernel cached it (set without the lock) */
	int gone;          /* unlinked or replaced: serve the kernel from buf until it
	                      forgets the inode; commit nothing */
	int held;          /* unlinks/renames in flight that may make it gone: keep buf */
	int64_t mtime_ns;  /* of the buffered content */
	sg_attr last;      /* last attributes seen, for an unlinked open file */
	struct sg_inode *next;
};

/* An inode the kernel holds with nothing else to it, in 8 bytes: the inode
 * number in the top SG_ISLOT_INO_BITS bits, then the stale bit, then the
 * lookup count. 0: empty. An inode whose number or count does not fit stays
 * a full struct sg_inode. */
struct sg_islot {
	uint64_t v;
};
#define SG_ISLOT_INO_BITS 40
#define SG_ISLOT_INO_MAX ((1ULL << SG_ISLOT_INO_BITS) - 1)
#define SG_ISLOT_COUNT_BITS (63 - SG_ISLOT_INO_BITS)
#define SG_ISLOT_COUNT_MAX ((1ULL << SG_ISLOT_COUNT_BITS) - 1)

struct sg_itable {
	pthread_mutex_t lock;
	struct sg_inode **slots; /* full inodes, chained */
	size_t nslots, count;
	struct sg_islot *cslots; /* the rest, open addressing */
	size_t ncslots, ccount;
};

/* sg_inode_get's `create` */
#define SG_IGET_FIND 0   /* a full inode only (one in use, open or with a buffer) */
#define SG_IGET_KNOWN 1  /* also one the kernel merely holds */
#define SG_IGET_CREATE 2 /* any: made if need be */

int sg_itable_init(struct sg_itable *t);
void sg_itable_fini(struct sg_itable *t);
/* Find (and pin) an inode, as `create` says (SG_IGET_*). NULL if absent (or ENOMEM). */
struct sg_inode *sg_inode_get(struct sg_itable *t, uint64_t ino, int create);
/* Unpin; adjust nlookup by -forget and nopen by -closed; frees when unused. */
void sg_inode_put(struct sg_itable *t, struct sg_inode *in, uint64_t forget, unsigned closed);
/* Add kernel references (a successful lookup/create reply). */
void sg_inode_ref(struct sg_itable *t, uint64_t ino, uint64_t n);
/* Undo n kernel references (a forget, or a reply that did not reach the kernel). */
void sg_inode_forget(struct sg_itable *t, uint64_t ino, uint64_t n);
/* A peer changed ino: the kernel's cached pages of it are stale (if it holds it). */
void sg_inode_mark_stale(struct sg_itable *t, uint64_t ino);
/* Inodes held in full and compactly, for status. */
void sg_itable_counts(struct sg_itable *t, size_t *full, size_t *compact);
/* Is `ino` known to the kernel? */
int sg_inode_known(struct sg_itable *t, uint64_t ino);
/* Call fn for every inode, each pinned, without the table lock held (fn may block). */
void sg_itable_each(struct sg_itable *t, void (*fn)(struct sg_inode *, void *), void *ctx);

struct inval {
	uint64_t parent, ino;
	char *name; /* NULL: inode only */
	struct inval *next;
};

struct sg_fs {
	sg_store *st;
	struct fuse_session *se;
	char *data_dir;
	double entry_timeout, attr_timeout;
	int debug;
	int mounted;
	int signals;
	struct sg_itable inodes;

	/* kernel invalidations, sent by their own thread */
	pthread_t inval_thread;
	int inval_started, inval_stop;
	pthread_mutex_t inval_lock;
	pthread_cond_t inval_cond;
	struct inval *inval_head, *inval_tail;
	_Atomic uint64_t invalidations;
	_Atomic unsigned workers; /* the loop's bound on FUSE workers, once it runs */
	_Atomic uint64_t reads, writes, bytes_read, bytes_written, saves;

	/* fsyncs handed to the store, not yet answered (sync_async): the
	 * session must outlive their replies */
	pthread_mutex_t sync_lock;
	pthread_cond_t sync_cond;
	unsigned syncs;

	/* /.sigil status files served by the daemon's provider */
	const char *const *status_names;
	size_t nstatus;
	sg_fs_status_fn status_fn;
	void *status_ctx;
};

#endif
