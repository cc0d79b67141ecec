/* repl.h: replication between sigilfs nodes over NNG, the one public contract
 * of src/repl/. Nodes push fresh changes and pull what they miss; the store
 * decides last-writer-wins. */
#ifndef SIGIL_REPL_H
#define SIGIL_REPL_H

#include <stddef.h>
#include <stdint.h>

#include "lmdb/store.h"

typedef struct sg_repl sg_repl;

/** Default names that stay on the node: editor temporaries. */
#define SG_REPL_LOCAL_ONLY_DEFAULT "4913:*~:.*.sw?:sed??????:.#*"

typedef struct sg_repl_opts {
	sg_store *store;       /**< borrowed; outlives the replicator */
	const char *node_name; /**< this node's name (1..64 of [A-Za-z0-9._-]) */
	const char
	    *listen; /**< URL to serve peers on (tls+tcp://HOST:PORT or tcp://...), or NULL */
	const char *const *peers; /**< URLs of peers to start from (more are learned from them) */
	size_t npeers;
	const char *tls_ca;     /**< cluster CA (PEM file): required for tls+tcp:// */
	const char *tls_cert;   /**< this node's certificate (PEM file) */
	const char *tls_key;    /**< its private key (PEM file) */
	unsigned max_offset_ms; /**< a remote stamp further ahead is quarantined; default 500 */
	unsigned
	    push_delay_ms; /**< window that folds a delete into a following create; default 150 */
	unsigned pull_interval_ms; /**< anti-entropy period; default 1000 */
	const char
	    *local_only; /**< ':'-separated fnmatch patterns of names never sent; NULL: default */
} sg_repl_opts;

/**
 * Validate options, open the listener, start the threads.
 * @return 0; -EINVAL with a logged reason (bad URL, TLS files missing for
 *         tls+tcp://); -EADDRINUSE; -EIO for a TLS file that cannot be read.
 */
int sg_repl_start(sg_repl **out, const sg_repl_opts *opts);

/** Stop the threads and close the sockets. NULL accepted. */
void sg_repl_stop(sg_repl *r);

/** Store observer: wake the pusher (chain it from the commit observer). */
void sg_repl_on_commit(void *r, const sg_note *notes, size_t n);

/**
 * Start an anti-entropy round now: pull from every known peer (not only up
 * to three at random), without waiting for the interval. Returns at once;
 * the pulls run on the peers' workers. A peer backing off after failures
 * is skipped, as in any round. Thread-safe.
 */
void sg_repl_sync_now(sg_repl *r);

/** Counters, for status and tests. */
typedef struct sg_repl_stats {
	uint64_t applied;       /**< remote changes applied */
	uint64_t stale;         /**< remote changes refused as older than what is held */
	uint64_t quarantined;   /**< remote changes stamped too far in the future */
	uint64_t malformed;     /**< messages dropped: undecodable or invalid */
	uint64_t refused;       /**< changes refused by the store for another reason */
	uint64_t pushes, pulls; /**< successful exchanges */
	uint64_t peers;         /**< peers known */
} sg_repl_stats;

void sg_repl_stats_get(sg_repl *r, sg_repl_stats *out);

/** One peer as this node sees it. */
typedef struct sg_repl_peer {
	const char *url;    /**< borrowed: valid during the callback */
	uint64_t node_id;   /**< 0 until it has answered */
	int up;             /**< its last exchange succeeded */
	unsigned failures;  /**< exchanges failed in a row */
	int64_t last_ok_ms; /**< ms since its last good exchange, -1 if never */
	uint64_t pulled;    /**< its store version this node has pulled up to */
	uint64_t pushed;    /**< this node's version pushed to it */
} sg_repl_peer;

/** Call cb for every known peer (not this node itself). */
void sg_repl_peers(sg_repl *r, void (*cb)(void *ctx, const sg_repl_peer *p), void *ctx);

/** Does `path` (or any of its components) match a local-only pattern? */
int sg_repl_local_only(const sg_repl *r, const char *path);

/**
 * Decode and validate one peer message as the server would, then free it:
 * 0 if valid, -EBADMSG or -EMSGSIZE. For fuzzing and tests.
 */
int sg_repl_check_message(const void *buf, size_t len);

#endif
