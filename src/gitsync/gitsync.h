/* gitsync.h: the Git side of sigilfs, the one public contract of src/gitsync/.
 * A background thread mirrors the store into commits of a bare repository
 * (audit), and a Git tree can be applied back to the store (restore, deploy,
 * drift check). Every libgit2 call stays in this module. */
#ifndef SIGIL_GITSYNC_H
#define SIGIL_GITSYNC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lmdb/store.h"

/*
 * The mirror's tree is the store's tree: files as blobs (the executable bit
 * kept), symlinks as links, directories as trees. What Git cannot hold goes
 * into one text file at the tree's root, ".sigil" (the name the mount keeps
 * for its status directory, so no user file can take it): every directory
 * (so empty ones survive) and every file or symlink whose mode is not 0644 /
 * 0755 or whose owner is not root, with exact mode, uid and gid; and every
 * user.* extended attribute. See sigilfs(8).
 *
 * Each commit's message ends with trailers "Sigil-Store: <store id>" and
 * "Sigil-Version: <n>": the mirror holds every change up to store version n.
 * After a restart the mirror resumes from there; the branch moves only once
 * a batch's objects are on disk, so nothing is skipped or committed twice.
 */

/** The name of the metadata file at the root of every mirrored tree. */
#define SG_GIT_META ".sigil"

typedef struct sg_mirror sg_mirror;

/** Name the author of an origin node's changes: 0 and a name in buf, or -ENOENT. */
typedef int (*sg_origin_name_fn)(void *ctx, uint64_t node_id, char *buf, size_t len);

typedef struct sg_mirror_opts {
	sg_store *store;        /**< borrowed; outlives the mirror */
	const char *path;       /**< the bare repository; created if missing */
	const char *node_name;  /**< this node: the committer, and the branch refs/heads/NAME */
	unsigned interval_ms;   /**< at most one batch per interval; default 1000 */
	const char *remote;     /**< push the branch here after each commit, or NULL */
	const char *local_only; /**< ':'-separated fnmatch patterns of names never mirrored */
	sg_origin_name_fn origin_name; /**< may be NULL: authors are then node ids */
	void *origin_ctx;
} sg_mirror_opts;

/**
 * Open or create the repository, and start the mirror thread (which catches
 * up at once with what the store holds beyond the last mirrored version).
 * @return 0; -EINVAL for bad options; -EIO with a logged reason when the
 *         repository cannot be opened or created.
 */
int sg_mirror_start(sg_mirror **out, const sg_mirror_opts *opts);

/** Commit what is pending (the last batch), push it if configured, stop. NULL accepted. */
void sg_mirror_stop(sg_mirror *m);

/** Store observer: wake the mirror (chain it from the commit observer). */
void sg_mirror_on_commit(void *m, const sg_note *notes, size_t n);

/** Commit everything the store holds now, without waiting for the interval:
 *  every change acknowledged before the call, committed to the store or not
 *  yet. Returns once it is in a Git commit. 0 or a negative errno. */
int sg_mirror_flush(sg_mirror *m);

typedef struct sg_mirror_stats {
	uint64_t version;       /**< store version mirrored up to */
	int64_t lag_ms;         /**< how long the oldest unmirrored change has waited, 0: none */
	uint64_t commits;       /**< commits made since start */
	uint64_t pushes;        /**< successful pushes */
	uint64_t push_failures; /**< failed push attempts */
	char head[41];          /**< hex id of the branch's head commit, "" before the first */
	char branch[80];        /**< refs/heads/NAME */
	uint64_t failures;      /**< batches that failed to commit, since start */
	int64_t failing_ms;     /**< how long the batches have failed, 0: the last one worked */
	char error[200];        /**< why the last batch failed, while failing_ms > 0 */
} sg_mirror_stats;

void sg_mirror_stats_get(sg_mirror *m, sg_mirror_stats *out);

/* ---- Git -> store ---------------------------------------------------------- */

/** What sg_git_apply() does. */
enum sg_git_mode {
	SG_GIT_DIFF = 0,    /**< list how the live tree differs from the revision */
	SG_GIT_DRY_RUN = 1, /**< list what a restore would change */
	SG_GIT_RESTORE = 2, /**< make the live tree equal to the revision */
};

typedef struct sg_git_apply_opts {
	sg_store *store;
	const char *repo;       /**< a repository path, or a URL (file://, ssh://) to fetch from */
	const char *rev;        /**< a revision: commit, branch, tag; NULL: HEAD */
	const char *prefix;     /**< only paths at or under this one ("" or NULL: all) */
	const char *local_only; /**< names left alone on both sides */
	enum sg_git_mode mode;
	/** the node's running mirror, or NULL. In SG_GIT_RESTORE mode the commits
	 *  holding the restore's changes, and no other change, end with the
	 *  trailer line `trailer` ("Sigil-Restore: ..."); a restore that changes
	 *  nothing leaves no mark. The store's observer must reach the mirror
	 *  (sg_mirror_on_commit) for it to know the restore's changes. */
	sg_mirror *mirror;
	const char *trailer;
} sg_git_apply_opts;

/** What sg_git_apply() found or did. */
typedef struct sg_git_apply_result {
	uint64_t added, modified, deleted; /**< paths (a deleted directory counts once) */
	uint64_t unchanged;
	char commit[41]; /**< the commit that was applied or compared */
} sg_git_apply_result;

/**
 * Compare the tree of a revision with the live store, and in SG_GIT_RESTORE
 * mode write the difference as new local changes (fresh stamps, so they win
 * everywhere and replicate; tombstones for what the tree lacks). One line
 * per difference goes to `out` (may be NULL): "A PATH", "M PATH (what)",
 * "D PATH". Can be called from any thread (it opens its own repository).
 * @param err  one line naming the problem, on failure
 * @return 0, or a negative errno: -ENOENT (no such repository, revision or
 *         prefix), -EINVAL, -EIO.
 */
int sg_git_apply(const sg_git_apply_opts *o, sg_git_apply_result *res, FILE *out, char *err,
                 size_t errlen);

/** Initialise libgit2 (after daemonizing) and shut it down. Counted. */
void sg_git_init(void);
void sg_git_shutdown(void);

#endif
