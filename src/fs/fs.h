/* fs.h: the FUSE filesystem of sigilfs (low-level API), the one public contract
 * of src/fs/. Callbacks are thin: they translate kernel requests to store calls. */
#ifndef SIGIL_FS_H
#define SIGIL_FS_H

#include <stdint.h>
#include <stdio.h>

#include "lmdb/store.h"

struct fuse_args;

typedef struct sg_fs sg_fs;

typedef struct sg_fs_opts {
	const char *data_dir; /**< for statfs: the file system that holds the store */
	double entry_timeout; /**< seconds the kernel may cache names; default 10 */
	double attr_timeout;  /**< seconds the kernel may cache attributes; default 10 */
	int debug;            /**< log every request */
} sg_fs_opts;

/**
 * Make a filesystem over `st` (borrowed: it must outlive the fs).
 * @param args  FUSE's own options (-o allow_other, fsname, ...); FUSE may add to
 *              them: the caller frees them with fuse_opt_free_args() afterwards.
 * @return 0, -EINVAL for options FUSE refuses, -ENOMEM.
 */
int sg_fs_new(sg_fs **out, sg_store *st, const sg_fs_opts *opts, struct fuse_args *args);

/** Mount on `mountpoint`. 0 or -errno (FUSE has logged why). */
int sg_fs_mount(sg_fs *fs, const char *mountpoint);

/** FUSE worker threads when the config does not say (`threads`): one per
 *  online CPU, at least SG_FS_THREADS_MIN, at most SG_FS_THREADS_MAX. */
#define SG_FS_THREADS_MIN 2
#define SG_FS_THREADS_MAX 16

/** Serve requests until unmounted or sg_fs_exit(): with `threads` worker
 *  threads (0: one per online CPU, as above), or on the calling thread
 *  alone if single. */
int sg_fs_run(sg_fs *fs, int single, unsigned threads);

/** Ask sg_fs_run() to return (async-signal-safe through FUSE's own handlers). */
void sg_fs_exit(sg_fs *fs);

/** Install SIGINT/SIGTERM/SIGHUP handlers that end sg_fs_run(). */
int sg_fs_signals(sg_fs *fs);

/** Unmount (if mounted), commit every open file's pending content, free. NULL accepted. */
void sg_fs_free(sg_fs *fs);

/**
 * Store visibility observer: pass to
 * sg_store_set_visible_observer(st, sg_fs_on_visible, fs). For changes that
 * did not come through the kernel (notes with local == 0) it drops stale
 * buffers and queues kernel cache invalidations, sent from the fs's own
 * thread (never from a request handler), as soon as the store serves them.
 */
void sg_fs_on_visible(void *fs, const sg_note *notes, size_t n);

/** Count of kernel invalidations sent so far (for tests and status). */
uint64_t sg_fs_invalidations(sg_fs *fs);

/** What the filesystem has done since it was mounted. */
typedef struct sg_fs_stats {
	uint64_t reads, writes; /**< read and write requests */
	uint64_t bytes_read, bytes_written;
	uint64_t saves;         /**< contents committed to the store (one per save) */
	uint64_t invalidations; /**< kernel cache invalidations sent */
	uint64_t inodes;        /**< inodes the kernel holds or has open, now */
	uint64_t inodes_full;   /**< of them, those with open handles or a buffer (the
	                             rest cost 16-32 bytes each) */
	unsigned workers;       /**< FUSE worker threads at most (1 with -s); 0 until
	                             the loop runs */
} sg_fs_stats;

void sg_fs_stats_get(sg_fs *fs, sg_fs_stats *out);

/**
 * Writes the content of read-only status file /.sigil/NAME into f.
 * @return 0, or -ENOENT for a name it does not know.
 */
typedef int (*sg_fs_status_fn)(void *ctx, const char *name, FILE *f);

/**
 * Serve /.sigil/NAME for each of `names` (NULL-terminated, at most 16, borrowed
 * for the fs's lifetime) through fn, generated anew at each open. Call before
 * sg_fs_mount(). /.sigil/conflicts and /.sigil/lost/ are always there.
 */
void sg_fs_set_status(sg_fs *fs, const char *const *names, sg_fs_status_fn fn, void *ctx);

#endif
