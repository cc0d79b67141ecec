/* status.h: the daemon's read-only status files, /.sigil/status, members,
 * metrics and version, made from the store's, the fs's and the replicator's figures. */
#ifndef SIGIL_STATUS_H
#define SIGIL_STATUS_H

#include <stdio.h>

#include "fs/fs.h"
#include "gitsync/gitsync.h"
#include "lmdb/store.h"
#include "repl/repl.h"

/** What the status files report on; every pointer borrowed. repl may be NULL. */
typedef struct sg_status_src {
	sg_store *store;
	sg_fs *fs;
	sg_repl *repl;
	const char *node; /**< node name, or NULL */
	const char *mountpoint;
	const char *data_dir;
	int64_t started_ns;      /**< wall clock at start */
	sg_mirror *mirror;       /**< NULL when the mirror is off */
	const char *mirror_path; /**< its repository */
	const char *local_only;  /**< the names that stay on the node */
} sg_status_src;

/** The names served, NULL-terminated: status, members, metrics, version. */
extern const char *const sg_status_names[];

/** sg_fs_status_fn for an sg_status_src: 0, or -ENOENT for an unknown name. */
int sg_status_write(void *src, const char *name, FILE *f);

/**
 * The facts of the status file as one JSON object, for `sigilctl status
 * --json`: node (null if unnamed), node_id (16 hex digits, a string),
 * mountpoint, data, up_seconds, store {version, entries, tombstones,
 * map_bytes, used_bytes, commits, changes, deferred, lost}, vector (the
 * store's version vector: [{node_id, name (null if never heard of), seq}],
 * origins increasing), saves, conflicts, mirror ({path, branch, head (null
 * before the first commit), version, lag_ms, commits, pushes,
 * push_failures}, or null when off), replication ({applied, duplicates, stale, held,
 * refused, deferred, too_large, malformed, oversized, tls_refused,
 * tls_failed, proto_errors, connections_renewed, pushes, pulls, tombstones_purged,
 * snapshots_served, snapshots_received, snapshot_dropped} as in
 * sg_repl_stats, or null when off) and peers: [{url, node_id (null until it
 * answered), name (as it introduced itself, or null), state ("up" or
 * "down"), failures, last_answer_ms (null: never), pulled, pushed, acked,
 * pulled_by, holds (as in sg_repl_peer), behind_changes (this node's
 * committed version minus holds: the versions of this node's log the peer
 * is not known to hold), behind_ms (how long the oldest change past holds
 * has waited, by its stamp; 0 if none)}]. Strings are escaped; bytes that
 * are not UTF-8 come out as \u00XX. Cannot fail (the stream may).
 */
void sg_status_write_json(const sg_status_src *s, FILE *f);

/**
 * A digest of the live tree, the same on every node that holds the same tree:
 * over each entry's path, type, mode, owner, content or target, and user.*
 * xattrs (not times, ids or stamps), order-independent; names matching the
 * local_only patterns are left out. 32 hex digits into out. One pass over
 * the store's log. 0 or a negative errno.
 */
int sg_tree_digest(sg_store *st, const char *local_only, char out[33], uint64_t *entries);

#endif
