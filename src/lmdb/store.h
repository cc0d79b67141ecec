/* store.h: the versioned entry store of sigilfs, the one public contract of src/lmdb/.
 * Every other module reaches LMDB only through these functions. */
#ifndef SIGIL_STORE_H
#define SIGIL_STORE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Model
 * -----
 * The store holds entries: files, directories, symlinks and tombstones (what
 * a delete leaves behind). Each entry has a stable 64-bit id, never reused,
 * which the filesystem uses as its inode number; the root directory is
 * SG_ROOT_ID. An entry is named by its parent directory's id and its name;
 * its path relative to the mount root is built by walking parents.
 *
 * Every change (create, content update, delete, rename, metadata change) gets
 * in the same LMDB transaction:
 *   - the next store-wide version (1, 2, 3, ...), and
 *   - a stamp: a 64-bit hybrid-logical-clock value, the origin node id and
 *     the origin's sequence number.
 * The change log keeps at most one row per entry: the entry's latest version.
 * sg_store_changes_after() lists them in version order. A rename is two
 * changes, each with its own version and stamp: the moved entry at its new
 * path, then a tombstone at its old one (an exchange: both moved entries).
 *
 * Last-writer-wins is decided here: a change that carries an explicit stamp
 * older, by (hlc, origin), than the entry it would replace is refused with
 * -ESTALE and nothing changes. Local changes pass stamp == NULL: the store
 * stamps them itself, at commit time, with its own clock, so a local change
 * always wins over what the node has seen.
 *
 * Mutations are queued to one writer thread that groups the ops of many
 * callers into one LMDB transaction (group commit), in arrival order. A
 * change with an explicit stamp (a peer's), a put, a purge and a reconcile
 * return once their transaction has committed. A local change by handle
 * (stamp == NULL: create, write, setattr, remove, rename, setxattr,
 * removexattr) returns as soon as it is applied to the writer's open
 * transaction, which commits within sync_delay_ns (deferred commit: a burst
 * of a caller's changes shares one commit and one fdatasync). Every read
 * of this API sees it at once; what is committed only (the version, the
 * log, the version vector: what leaves the node) lists it after the commit.
 * A crash before the commit loses it, as unsynced data on any file system;
 * sg_store_sync() returns once every change acknowledged before it is on
 * stable storage, and fails (once) if an acknowledged change could not be
 * saved. The writer defers nothing while the disk is nearly full: a change
 * then fails with -ENOSPC instead of being lost.
 *
 * Errors: every function that can fail returns 0 or a negative errno. No
 * LMDB code crosses this header.
 *
 * Threads: every function may be called from any thread once the store is
 * open, except sg_store_close().
 */

#define SG_ROOT_ID 1ULL

/** Longest entry name, in bytes (as NAME_MAX). */
#define SG_NAME_MAX 255
/** Longest path the store builds or resolves, in bytes, without the NUL. */
#define SG_PATH_MAX 4095

typedef struct sg_store sg_store;

enum sg_type {
	SG_TYPE_NONE = 0,
	SG_TYPE_FILE = 1,
	SG_TYPE_DIR = 2,
	SG_TYPE_SYMLINK = 3,
	SG_TYPE_TOMBSTONE = 4,
};

/** The stamp a change carries. */
typedef struct sg_stamp {
	uint64_t hlc;    /**< (unix_ms << 16) | logical counter */
	uint64_t origin; /**< node id of the node that made the change */
	uint64_t seq;    /**< the origin's own sequence number, from 1 */
} sg_stamp;

/** An entry's attributes, as the store holds them. */
typedef struct sg_attr {
	uint64_t id;     /**< entry id, the inode number */
	uint64_t parent; /**< parent directory's id (the root is its own parent) */
	uint32_t type;   /**< enum sg_type */
	uint32_t mode;   /**< permission bits only (07777) */
	uint32_t uid;
	uint32_t gid;
	uint32_t nlink;   /**< 1 for files and symlinks, 2 + subdirectories for a directory */
	uint64_t size;    /**< content length; symlink target length; 0 for a directory */
	int64_t mtime_ns; /**< nanoseconds since the epoch */
	int64_t ctime_ns;
	uint64_t version; /**< store-wide version of the entry's latest change */
	sg_stamp stamp;   /**< stamp of the entry's latest change */
	sg_stamp base;    /**< that change's base (see sg_change.base) */
} sg_attr;

/** Options for sg_store_open(). Zero means "the default" for every number. */
typedef struct sg_store_opts {
	const char *dir;  /**< directory holding the store's files; created if missing */
	uint64_t node_id; /**< this node's id; 0: keep the stored one, or make one on first open */
	uint64_t max_file_size; /**< largest content accepted, bytes; default SG_DEFAULT_MAX_FILE */
	uint64_t initial_map;   /**< first LMDB map size, bytes; default SG_DEFAULT_INITIAL_MAP; the
	                           map grows when it fills */
	uint64_t max_map;       /**< largest map the store grows to, bytes; default 64 GiB */
	unsigned batch_max;     /**< most ops in one transaction; default 1000 */
	/** how long a local change (a call with stamp == NULL) may be held in
	 *  memory, acknowledged, before its commit; default SG_DEFAULT_SYNC_DELAY_NS;
	 *  negative: none, every change is committed before its call returns */
	int64_t sync_delay_ns;
	/** how long the writer waits for the next change before it commits what
	 *  it holds (within sync_delay_ns); default SG_DEFAULT_LINGER_NS */
	int64_t linger_ns;
	/** 1: no commit journal; every durable point is an LMDB commit (two
	 *  fdatasyncs), as before the journal (for comparisons) */
	int no_journal;
	/** the most of the store's pages mapped into the process (its RSS):
	 *  past it, the store unmaps about the excess (the pages stay in the
	 *  kernel's page cache); bytes; 0: SG_DEFAULT_MAX_MAPPED; UINT64_MAX:
	 *  never */
	uint64_t max_mapped;
	/** branch pages the warm-up after the open maps under one read
	 *  snapshot before it takes the next; 0: SG_DEFAULT_WARM_CHUNK */
	unsigned warm_chunk;
} sg_store_opts;

#define SG_DEFAULT_MAX_FILE (64ULL << 20)
/* address space, not disk or memory: the file grows as pages are used */
#define SG_DEFAULT_INITIAL_MAP (1ULL << 30)
#define SG_DEFAULT_SYNC_DELAY_NS 5000000LL /* 5 ms */
#define SG_DEFAULT_LINGER_NS 200000LL      /* 200 us: a busy caller's next op comes sooner */
#define SG_DEFAULT_MAX_MAPPED (16ULL << 20)
#define SG_DEFAULT_WARM_CHUNK 64

/** One child of a directory, for sg_store_list(). */
typedef struct sg_dirent {
	uint64_t id;
	uint32_t type;    /**< enum sg_type, never SG_TYPE_TOMBSTONE */
	const char *name; /**< borrowed: valid only during the callback */
} sg_dirent;

/** Called per child; return non-zero to stop the listing (that value is returned). */
typedef int (*sg_dirent_cb)(void *ctx, const sg_dirent *d);

/** One extended attribute (user.* only) carried by a change. */
typedef struct sg_xattr {
	const char *name;
	const void *value;
	size_t len;
} sg_xattr;

/** One change, path based: what the log lists and what a peer applies. */
typedef struct sg_change {
	const char *path; /**< normalized, relative to the root, no leading '/': "etc/app.conf" */
	uint32_t type;    /**< enum sg_type; SG_TYPE_TOMBSTONE for a delete */
	uint32_t mode, uid, gid;
	int64_t mtime_ns, ctime_ns;
	const void *data; /**< file content or symlink target; NULL with len 0 otherwise */
	size_t len;
	uint64_t
	    version; /**< store-wide version (set by sg_store_changes_after; ignored by apply) */
	uint64_t id; /**< entry id (set by sg_store_changes_after; ignored by apply) */
	sg_stamp stamp;
	/** the last version made by another node that the writer had seen at this
	 *  path before its change ({0}: none); a run of the writer's own edits keeps
	 *  the base of its first. A change from another origin whose base is older
	 *  than the held version never saw it: the held version loses to a
	 *  concurrent write (a conflict) */
	sg_stamp base;
	const sg_xattr *xattrs; /**< the entry's complete user.* set after the change */
	size_t nxattrs;
} sg_change;

/** A write that lost to a concurrent one, recorded where it was held. */
typedef struct sg_conflict {
	uint64_t seq; /**< 1, 2, 3... in the order recorded */
	const char *path;
	sg_stamp loser;      /**< stamp of the losing (held) version */
	sg_stamp winner;     /**< stamp of the change that replaced it */
	uint32_t loser_type; /**< enum sg_type of the losing version */
	const void *data;    /**< the losing content (file or symlink target) */
	size_t len;
	int64_t when_ns; /**< when it was recorded */
} sg_conflict;

typedef int (*sg_conflict_cb)(void *ctx, const sg_conflict *c);

/** Called per change; return non-zero to stop (that value is returned). Pointers are borrowed. */
typedef int (*sg_change_cb)(void *ctx, const sg_change *c);

/** What the store tells an observer after each commit, per change. */
typedef struct sg_note {
	uint64_t id;      /**< entry changed (for a tombstone: the tombstone's id) */
	uint64_t parent;  /**< its parent */
	const char *name; /**< its name (borrowed) */
	uint64_t old_id;  /**< entry that the change replaced or removed at that name, or 0 */
	uint64_t version;
	uint32_t type; /**< type after the change */
	/** who made it: SG_NOTE_REMOTE (applied with an explicit stamp: a peer's
	 *  change), SG_NOTE_LOCAL (a handle-based call with stamp == NULL: the
	 *  filesystem's own, the kernel already knows), SG_NOTE_PUT (sg_store_put:
	 *  local and replicated, but the kernel does not know of it) */
	int local;
	/** 1: a new regular file without content, as create(2) makes it; what it
	 *  holds is usually written, and noted, a moment later */
	int empty_new;
} sg_note;

/** Values of sg_note.local; every non-zero one is a local change to replicate. */
enum {
	SG_NOTE_REMOTE = 0,
	SG_NOTE_LOCAL = 1,
	SG_NOTE_PUT = 2,
};

/** Observer: runs on the writer thread after the commit; must not call back into mutations. */
typedef void (*sg_observer)(void *ctx, const sg_note *notes, size_t n);

/* ---- lifetime ---------------------------------------------------------- */

/**
 * Open (creating if needed) the store in opts->dir and start its writer.
 * @param[out] out  the store, to be closed with sg_store_close()
 * @return 0, -EINVAL for bad options, -ENOMEM, -EIO for a damaged store, or
 *         another negative errno from the file system.
 */
int sg_store_open(sg_store **out, const sg_store_opts *opts);

/** Drain the writer, sync and close. NULL is accepted. No call may be in flight. */
void sg_store_close(sg_store *st);

/** This node's id (as stored). */
uint64_t sg_store_node_id(const sg_store *st);

/** A random id made when the store was created: a peer's cursor into this
 *  store's versions is only good for the same id. Never 0. */
uint64_t sg_store_id(const sg_store *st);

/** The newest store-wide version committed (deferred local changes count
 *  once their commit is done). */
uint64_t sg_store_version(sg_store *st);

/** The store's clock high-water mark: the newest stamp handed out or seen,
 *  committed or not (never goes back; persisted with every commit). */
uint64_t sg_store_hlc(sg_store *st);

/** Largest content accepted, bytes. */
uint64_t sg_store_max_file_size(const sg_store *st);

/** Register the (single) commit observer; NULL removes it. Call before traffic starts. */
void sg_store_set_observer(sg_store *st, sg_observer cb, void *ctx);

/**
 * Register the (single) visibility observer, for caches of what readers see
 * (the kernel's). It hears of changes as soon as the store's readers see
 * them: for a batch written to the journal, before that write is done, so
 * before the commit observer. It hears of changes again when their journal
 * write fails (they are committed instead) and when their commit fails (they
 * are gone, and a cache of them must go too), so it may hear of one change
 * twice. Same thread and rules as the commit observer; NULL removes it.
 * Call before traffic starts.
 */
void sg_store_set_visible_observer(sg_store *st, sg_observer cb, void *ctx);

/** Statistics for statfs and status. */
typedef struct sg_store_stats {
	uint64_t entries; /**< live entries, root included */
	uint64_t tombstones;
	uint64_t map_size;        /**< current LMDB map, bytes */
	uint64_t used_bytes;      /**< pages in use, bytes */
	uint64_t commits;         /**< times changes were made durable since open: journal
	                               batches and checkpoints */
	uint64_t journal_batches; /**< of those, batches written to the journal */
	uint64_t checkpoints;     /**< LMDB commits (the journal starts over after each) */
	uint64_t ops;             /**< mutations committed since open */
	uint64_t purged;          /**< tombstones purged since open (sg_store_purge) */
	uint64_t forgotten;       /**< entries dropped since open by sg_store_reconcile */
	uint64_t deferred;        /**< local changes acknowledged before their commit, since open */
	uint64_t lost;            /**< of those, lost to a failed commit */
	uint64_t map_trims;       /**< times the mapped store pages were dropped (max_mapped) */
	uint64_t branch_pages;    /**< branch pages of the trees a lookup walks (dir, ent,
	                               data, xattr) */
	uint64_t map_warmed;      /**< of those, mapped after the open (0: not yet done) */
	uint64_t map_warm_snapshots; /**< read snapshots the warm-up took for it */
	int map_single;              /**< 1: a fault maps only its page (fault-around off) */
	uint64_t conflicts;          /**< conflicts recorded (as sg_store_conflicts lists them) */
	int refusing;                /**< 1: a checkpoint (or the undo of a failed change)
	                                  failed and lost from view changes the journal holds:
	                                  every change and every read fails with EIO until
	                                  the daemon restarts and replays the journal */
} sg_store_stats;

int sg_store_stats_get(sg_store *st, sg_store_stats *out);

/* ---- reads (each is one short read transaction) ------------------------- */
/* After a failed checkpoint (sg_store_stats.refusing) every read returns
 * -EIO: the store's view lacks changes its journal holds. */

/** Find child `name` of `parent`. -ENOENT if absent or a tombstone, -ENOTDIR if parent is
 *  not a directory, -ENAMETOOLONG for a name over SG_NAME_MAX. */
int sg_store_lookup(sg_store *st, uint64_t parent, const char *name, sg_attr *out);

/** Attributes of entry `id`. -ENOENT if unknown or a tombstone. */
int sg_store_getattr(sg_store *st, uint64_t id, sg_attr *out);

/**
 * Content of a file, or target of a symlink.
 * @param[out] out  malloc'd copy (NUL-terminated for convenience), owned by the caller; NULL when
 * empty
 * @param[out] len  its length
 * @return 0, -ENOENT, -EISDIR for a directory, -ENOMEM.
 */
int sg_store_read(sg_store *st, uint64_t id, void **out, size_t *len);

/**
 * Call cb for every live child of directory `dir`, in name order, starting
 * after `after` (NULL or "" from the beginning). Costs the number of
 * children. -ENOTDIR, -ENOENT.
 */
int sg_store_list(sg_store *st, uint64_t dir, const char *after, sg_dirent_cb cb, void *ctx);

/** Resolve a normalized relative path ("" is the root). -ENOENT, -ENOTDIR, -ENAMETOOLONG. */
int sg_store_resolve(sg_store *st, const char *path, sg_attr *out);

/** Build the path of entry `id` (tombstones too). @param[out] out malloc'd, "" for the root. */
int sg_store_path(sg_store *st, uint64_t id, char **out);

/** Extended attribute `name` of entry `id`: malloc'd copy in *out. -ENODATA if unset. */
int sg_store_getxattr(sg_store *st, uint64_t id, const char *name, void **out, size_t *len);

/** All extended attribute names of `id`, each NUL-terminated, concatenated; malloc'd. */
int sg_store_listxattr(sg_store *st, uint64_t id, char **out, size_t *len);

/**
 * List the log: every entry whose latest version is > `after`, in version
 * order, at most `max` of them (0: no limit), with paths built.
 * Tombstones are listed as changes of type SG_TYPE_TOMBSTONE.
 * cb may run while the store holds the lock of the writer's open
 * transaction (the listing reads it): every local change on the node then
 * waits for cb. It should copy what it needs, and leave slow work
 * (compression, I/O) until the call has returned.
 * A long listing is read in several reads, each going on after the last
 * row it handed over, so that the lock is let go every half millisecond or
 * so: an entry changed during the call may then be listed twice, at its old
 * version and at its new one (versions only grow, so it is never missed).
 */
int sg_store_changes_after(sg_store *st, uint64_t after, size_t max, sg_change_cb cb, void *ctx);

/**
 * As sg_store_changes_after(), but in one read: the listing is the store at
 * one moment, each entry once, for a reader that needs that (a digest of
 * the tree; the mirror, whose commit would otherwise hold a file read before
 * a directory above it was renamed or removed). Local changes wait for the
 * whole of it.
 */
int sg_store_changes_after_atomic(sg_store *st, uint64_t after, size_t max, sg_change_cb cb,
                                  void *ctx);

/**
 * As sg_store_changes_after(), but the entries whose latest change has the
 * origin `except` are left out: they are not read beyond their stamp (no
 * path, content or xattrs) and not handed to cb. `max` counts the rows
 * read, those left out included.
 */
int sg_store_changes_after_except(sg_store *st, uint64_t after, size_t max, uint64_t except,
                                  sg_change_cb cb, void *ctx);

/* ---- mutations (queued to the writer; each returns after its commit) ----- */

/** Fields of sg_store_setattr(). */
enum {
	SG_SET_MODE = 1 << 0,
	SG_SET_UID = 1 << 1,
	SG_SET_GID = 1 << 2,
	SG_SET_SIZE = 1 << 3,
	SG_SET_MTIME = 1 << 4,
};

/** Flags of sg_store_rename() (the values of RENAME_NOREPLACE and RENAME_EXCHANGE). */
enum {
	SG_RENAME_NOREPLACE = 1 << 0,
	SG_RENAME_EXCHANGE = 1 << 1,
};

/**
 * Create child `name` in directory `parent`.
 * @param stamp   NULL for a local change
 * @param type    SG_TYPE_FILE, SG_TYPE_DIR or SG_TYPE_SYMLINK
 * @param data    initial content of a file or the symlink target (len bytes)
 * @param now_ns  mtime and ctime of the new entry
 * @param[out] out attributes of the new entry (may be NULL)
 * @return 0, -EEXIST, -ENOENT/-ENOTDIR for a bad parent, -ENAMETOOLONG,
 *         -EINVAL for a bad name or type, -EFBIG, -ENOSPC, -ESTALE (stamp older
 *         than the tombstone at that name).
 */
int sg_store_create(sg_store *st, const sg_stamp *stamp, uint64_t parent, const char *name,
                    uint32_t type, uint32_t mode, uint32_t uid, uint32_t gid, const void *data,
                    size_t len, int64_t now_ns, sg_attr *out);

/**
 * Replace the content of file `id` (one change).
 * @return 0, -ENOENT, -EISDIR/-EINVAL for a non-file, -EFBIG, -ENOSPC, -ESTALE.
 */
int sg_store_write(sg_store *st, const sg_stamp *stamp, uint64_t id, const void *data, size_t len,
                   int64_t mtime_ns, int64_t now_ns, sg_attr *out);

/**
 * sg_store_write() for a local save (stamped here) of content its writer
 * loaded from the version `seen` (the attributes the store gave then: its
 * stamp and base). When the entry has changed since, a peer's version that
 * arrived while the file was open, the save is based on what it saw, not on
 * what is held, and the peer's version, which it replaces unseen, is
 * recorded as a conflict (with its content), as it will be on that peer.
 * seen == NULL is sg_store_write(st, NULL, ...).
 * @return as sg_store_write().
 */
int sg_store_write_seen(sg_store *st, const sg_attr *seen, uint64_t id, const void *data,
                        size_t len, int64_t mtime_ns, int64_t now_ns, sg_attr *out);

/**
 * Change the fields of `in` selected by `mask` (SG_SET_*). SG_SET_SIZE
 * truncates or zero-extends a file's content. ctime becomes now_ns.
 * @return 0, -ENOENT, -EISDIR (size of a directory), -EFBIG, -EINVAL, -ESTALE.
 */
int sg_store_setattr(sg_store *st, const sg_stamp *stamp, uint64_t id, unsigned mask,
                     const sg_attr *in, int64_t now_ns, sg_attr *out);

/**
 * Delete child `name` of `parent`, leaving a tombstone.
 * @param dir  1 for rmdir semantics, 0 for unlink semantics
 * @return 0, -ENOENT, -ENOTDIR (rmdir of a non-directory), -EISDIR (unlink
 *         of a directory), -ENOTEMPTY, -ESTALE.
 */
int sg_store_remove(sg_store *st, const sg_stamp *stamp, uint64_t parent, const char *name, int dir,
                    int64_t now_ns);

/**
 * Rename `oparent/oname` to `nparent/nname` in one transaction, replacing a
 * file, symlink or empty directory there (atomically for readers), or
 * swapping both (SG_RENAME_EXCHANGE). A tombstone stays at the old name.
 * @return 0, -ENOENT, -EEXIST (NOREPLACE), -ENOTEMPTY, -EISDIR, -ENOTDIR,
 *         -EINVAL (a directory into itself, or bad flags), -ESTALE.
 */
int sg_store_rename(sg_store *st, const sg_stamp *stamp, uint64_t oparent, const char *oname,
                    uint64_t nparent, const char *nname, unsigned flags, int64_t now_ns);

/** flags: 0, XATTR_CREATE or XATTR_REPLACE. -EEXIST, -ENODATA, -ERANGE (name of 0 or over
 *  255 bytes), -E2BIG (value over 64 KiB, as the kernel's own limit). */
int sg_store_setxattr(sg_store *st, const sg_stamp *stamp, uint64_t id, const char *name,
                      const void *value, size_t len, int flags, int64_t now_ns);

/** -ENODATA if unset. */
int sg_store_removexattr(sg_store *st, const sg_stamp *stamp, uint64_t id, const char *name,
                         int64_t now_ns);

/**
 * Apply a path-based change, as a peer or a restore sends it. LWW: refused
 * with -ESTALE when c->stamp is older, by (hlc, origin), than the entry held
 * at that path (tombstones included); an equal stamp is a no-op (0). Where
 * nothing is held at the path, a change at or below the horizon stamp
 * (sg_store_purge_horizon) that this store has seen (sg_store_vv) is refused
 * with -ESTALE too: its delete was purged here, and it must not come back.
 * A change of type SG_TYPE_TOMBSTONE deletes what is there (a directory's
 * whole subtree). Missing parent directories are made as placeholders with
 * a zero stamp, so that any real change to them wins (changes arrive in the
 * sender's version order, in which a directory's latest row may come after
 * its children's). A change older than the tombstone of one of its parent
 * directories went with that directory: -ESTALE. -ENOTDIR when a parent is
 * not a directory.
 * When the change wins over a held version it did not see (its base is older
 * than the held stamp) and that version was live, a conflict is recorded.
 * c->xattrs replaces the entry's user.* attributes. The store's clock
 * observes c->stamp.hlc.
 */
int sg_store_apply(sg_store *st, const sg_change *c);

/** sg_store_apply_many()'s result for a change this store held already,
 *  with the same stamp (a redelivery): nothing was done */
#define SG_APPLY_HELD 1

/**
 * Apply n changes as sg_store_apply() would, queued together so that the
 * writer commits them in as few transactions as it can, in order.
 * @param[out] rcs  each change's result: 0 (applied), SG_APPLY_HELD (held
 *                  already; sg_store_apply() says 0 for it), -ESTALE, ...
 * @return 0 once all are done (per-change results in rcs), -ENOMEM.
 */
int sg_store_apply_many(sg_store *st, const sg_change *c, size_t n, int *rcs);

/**
 * Make a path-based change as a fresh LOCAL change (for a restore from Git):
 * as sg_store_apply() (type FILE, DIR, SYMLINK or TOMBSTONE; content, mode,
 * uid, gid, mtime and the user.* set replace what is held; a TOMBSTONE
 * deletes what is at the path, a directory with its whole subtree; a change
 * of type replaces the entry), except that the store stamps it itself at
 * commit as the handle-based calls with stamp == NULL do (this node's origin,
 * its next sequence number, its clock now, which has observed every stamp the
 * node holds, so the change is newer than any of them): c->stamp, c->base,
 * c->version, c->id and c->ctime_ns are ignored (ctime becomes now). It is
 * never refused as stale and records no conflict; its base is what a local
 * edit's would be. Parents are not made: they must exist as directories.
 * A change identical to what is held (same type, content, mode, uid, gid and
 * user.* set; mtime not compared), and a TOMBSTONE where nothing live is, is
 * a no-op: 0, no new version, no note. Otherwise it replicates as any local
 * change; its observer note says SG_NOTE_PUT.
 * @param c  path normalized ("etc/app.conf", not the root); a symlink target of
 *           1..SG_PATH_MAX bytes without NUL; xattr names "user." + 1..250 bytes,
 *           no name twice, values <= 64 KiB, at most 256 of them
 * @return 0, -ENOENT (a parent is missing or deleted), -ENOTDIR (a parent is
 *         not a directory), -EINVAL (bad path, type or field), -ENAMETOOLONG,
 *         -EFBIG, -ENOSPC, -ENOMEM.
 */
int sg_store_put(sg_store *st, const sg_change *c);

/**
 * sg_store_put() for n changes, queued together in order (a parent put before
 * its children is made before them), committed in as few transactions as the
 * writer can.
 * @param[out] rcs  each change's result
 * @return 0 once all are done (per-change results in rcs), -ENOMEM.
 */
int sg_store_put_many(sg_store *st, const sg_change *c, size_t n, int *rcs);

/** List recorded conflicts with seq > after, oldest first (at most max; 0: all). */
int sg_store_conflicts(sg_store *st, uint64_t after, size_t max, sg_conflict_cb cb, void *ctx);

/* ---- tombstone purge and snapshot catch-up ------------------------------------ */

/**
 * What a store no longer has the history of, once tombstones were purged.
 *   version: the highest version of a tombstone purged here (0: none ever).
 *     A peer whose cursor into this store is below it may have missed a
 *     delete: it must take a full listing (a snapshot) instead.
 *   stamp: the newest stamp, by (hlc, origin), of a tombstone purged here or
 *     taken over from a peer's snapshot (sg_store_reconcile); {0}: none.
 *     An entry older than it that this store has seen (see sg_vv_entry) and
 *     no longer holds was deleted: it is never brought back (sg_store_apply
 *     refuses it), and a peer's copy of it goes at that peer's snapshot.
 */
typedef struct sg_horizon {
	uint64_t version;
	sg_stamp stamp;
} sg_horizon;

/** One origin of a version vector: the highest sequence number applied from it. */
typedef struct sg_vv_entry {
	uint64_t origin;
	uint64_t seq;
} sg_vv_entry;

/** The store's purge horizon. 0 or a negative errno. */
int sg_store_purge_horizon(sg_store *st, sg_horizon *out);

/** Called per origin, in increasing origin order; non-zero stops (that value is returned). */
typedef int (*sg_vv_cb)(void *ctx, const sg_vv_entry *e);

/**
 * The store's version vector, in one read transaction: for every origin
 * whose change was ever applied here (this node included), the highest
 * sequence number applied from it. A change (origin, seq) with seq at or
 * below its origin's entry is "seen": it was applied here, or (rarely, when
 * changes arrived out of order) one after it was.
 */
int sg_store_vv(sg_store *st, sg_vv_cb cb, void *ctx);

/**
 * Purge tombstones: forget, with their log rows, the tombstones at versions
 * <= upto whose stamps are older than before_ns (by the stamp's wall-clock
 * milliseconds), and then the tombstones of directories left with no child.
 * A directory tombstone with children is kept until its children go. The
 * horizon (sg_store_purge_horizon) rises to cover what was purged. The caller
 * decides upto (how far every peer has the log) and before_ns (the grace).
 * Queued to the writer in bounded batches (other mutations run between them).
 * @param[out] purged  how many tombstones were purged (may be NULL)
 * @return 0, -ENOSPC, -EIO.
 */
int sg_store_purge(sg_store *st, uint64_t upto, int64_t before_ns, uint64_t *purged);

/** What a peer's complete snapshot said, for sg_store_reconcile(). */
typedef struct sg_snapshot {
	sg_horizon horizon;    /**< the peer's horizon when it listed */
	const sg_vv_entry *vv; /**< the peer's version vector, origins increasing */
	size_t nvv;
	/** 1 if `path` must stay: the snapshot listed it (live or tombstone), or it never
	 *  leaves this node; 0 if the snapshot did not list it. Runs on the writer
	 *  thread: it must not call the store. */
	int (*keep)(void *ctx, const char *path);
	void *ctx;
} sg_snapshot;

/**
 * After applying a peer's complete listing of its log (a snapshot), drop
 * every live entry here that the peer deleted and purged: one that the
 * snapshot did not list, whose stamp is at or below the peer's horizon stamp
 * and which the peer had seen (its vector covers the stamp; an entry
 * written here that the peer never received stays and replicates). A
 * directory stays while anything below it stays. Dropped entries are
 * forgotten without a tombstone (nothing to replicate: the peer purged the
 * delete); the observer hears of each as a SG_NOTE_REMOTE tombstone note.
 * The store's horizon stamp rises to the peer's, so that a copy of a dropped
 * entry arriving later from a third node is refused.
 * @param[out] dropped  entries dropped (may be NULL)
 * @return 0, -EINVAL, -ENOSPC, -EIO.
 */
int sg_store_reconcile(sg_store *st, const sg_snapshot *snap, uint64_t *dropped);

/** Called with each problem sg_store_check() finds (one line, no newline). */
typedef void (*sg_check_cb)(void *ctx, const char *problem);

/**
 * Verify the store's invariants in one read transaction: every entry has a
 * log row that points back at it and a directory row under its parent;
 * every log row and directory row points at an entry that agrees; every
 * content row belongs to a file or symlink of that size; every directory's
 * child counts are right; the counters in meta agree. Reads only.
 * @param cb       told of each problem (at most 100 are reported)
 * @param[out] checked  entries examined
 * @return the number of problems found (0: consistent), or a negative errno.
 */
int sg_store_check(sg_store *st, sg_check_cb cb, void *ctx, uint64_t *checked);

/** Durability barrier: returns once every change acknowledged before the call
 *  is committed and on disk. @return 0, the error of a failed commit (-EIO,
 *  -ENOSPC) that lost acknowledged changes since the last sync (told once),
 *  or the sync's own error. */
int sg_store_sync(sg_store *st);

/** Returns once every change acknowledged before the call is committed and
 *  on disk, so that sg_store_version() counts it: for a reader of the log
 *  that must see what was just written. Unlike sg_store_sync() it leaves a
 *  lost commit's error to the next sg_store_sync(). @return 0, or the error
 *  of the commit it waited for. */
int sg_store_settle(sg_store *st);

/**
 * sg_store_sync() without waiting: `done(arg, rc)` is called once, with
 * what sg_store_sync() would return, when the barrier is reached. It runs
 * on the store's writer thread and must be quick and must not call into
 * the store (a FUSE reply is what it is for: the FUSE worker that asked is
 * free meanwhile, and fsyncs that come together share one journal write).
 * @return 0 (done will be called), or -ENOMEM or -ESHUTDOWN (it will not).
 */
int sg_store_sync_async(sg_store *st, void (*done)(void *arg, int rc), void *arg);

/**
 * sg_store_sync(), and commit what the journal holds to LMDB (a checkpoint,
 * which the writer otherwise makes within a second of the first journaled
 * change): for tests, benchmarks and a clean stop. 0 or -errno.
 */
int sg_store_checkpoint(sg_store *st);

/* ---- paths ---------------------------------------------------------------- */

/**
 * Check one name: -EINVAL for "", ".", "..", a '/' or a NUL inside;
 * -ENAMETOOLONG over SG_NAME_MAX bytes.
 */
int sg_name_check(const char *name, size_t len);

#endif
