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
	/** URL to serve peers on (tls+tcp://HOST:PORT or tcp://...), or NULL.
	 *  A wildcard host (0.0.0.0, ::, "*" or none) is never advertised: each
	 *  message carries this URL with the host replaced by this node's address
	 *  on the connection it goes over (which the peer can dial back), or no
	 *  URL when that is not known yet (a dialer's first message). */
	const char *listen;
	/** URLs of peers to start from. More are learned from the peers; a learned
	 *  URL is dialed only if its scheme is this node's own transport (only
	 *  tls+tcp:// on a node that uses TLS, that is listens or has a peer on
	 *  tls+tcp://; otherwise only the schemes of listen and peers) and its
	 *  host is not a wildcard. */
	const char *const *peers;
	size_t npeers;
	const char *tls_ca;     /**< cluster CA (PEM file): required for tls+tcp:// */
	const char *tls_cert;   /**< this node's certificate (PEM file) */
	const char *tls_key;    /**< its private key (PEM file) */
	unsigned max_offset_ms; /**< a remote stamp further ahead is quarantined; default 500 */
	/** bytes (wire size) of pulled changes held until the clock catches up;
	 *  default SG_REPL_QUARANTINE_BYTES_DEFAULT. Past it, a pull stops before
	 *  the page of a change that does not fit, and fetches it again later */
	size_t max_quarantine_bytes;
	unsigned
	    push_delay_ms; /**< window that folds a delete into a following create; default 150 */
	/** how long a push of only new empty files (as create(2) makes them)
	 *  waits for their content, which then goes with them as one change;
	 *  default 5 */
	unsigned create_delay_ms;
	/** pushes go at most one per this many ms: a change after a quiet
	 *  spell goes at once, a stream of them in batches; default 10 */
	unsigned push_gap_ms;
	unsigned pull_interval_ms; /**< anti-entropy period; default 1000 */
	const char
	    *local_only; /**< ':'-separated fnmatch patterns of names never sent; NULL: default */
	/** how long a tombstone is kept at least, and how long a silent peer holds
	 *  back the purge, ms; default SG_REPL_TOMBSTONE_GRACE_DEFAULT */
	uint64_t tombstone_grace_ms;
	/** optional: how far another reader of the store's log (the Git mirror)
	 *  has read it (a store version); tombstones past it are not purged, so
	 *  that it sees every delete. Called from the replicator's threads. */
	uint64_t (*log_reader)(void *ctx);
	void *log_reader_ctx;
} sg_repl_opts;

/** Default max_quarantine_bytes: 256 MiB (and at most 10,000 changes). */
#define SG_REPL_QUARANTINE_BYTES_DEFAULT ((size_t)256 << 20)

/** Default tombstone_grace_ms: 7 days. */
#define SG_REPL_TOMBSTONE_GRACE_DEFAULT (7ULL * 24 * 3600 * 1000)

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
	uint64_t applied; /**< remote changes applied */
	/** remote changes this node held already, with the same stamp: the
	 *  same change by push and again by a pull, or from two peers' logs */
	uint64_t duplicates;
	uint64_t stale;         /**< remote changes refused as older than what is held (or deleted
	                             and purged here) */
	uint64_t quarantined;   /**< pulled changes stamped too far in the future, held until
	                             this clock catches up (once per change) */
	uint64_t malformed;     /**< messages dropped: undecodable or invalid */
	uint64_t refused;       /**< changes refused by the store for good: for a structural
	                             reason (e.g. a parent that is a newer file here) that a
	                             second try after the rest of their pull did not clear;
	                             each counted once */
	uint64_t deferred;      /**< changes not taken for now and not passed over: a transient
	                             store error (no space, I/O), stamped too far ahead on a
	                             push (the pusher sends it again), or the quarantine full;
	                             the pull cursor stays before them. Counted per attempt */
	uint64_t pushes, pulls; /**< successful exchanges */
	uint64_t peers;         /**< peers known */
	uint64_t purged;        /**< tombstones purged since start (periodic and sg_repl_gc) */
	uint64_t snapshots_served;   /**< listings from the start given to a peer that had
	                                  missed purged deletes (or had no cursor) while this
	                                  node had purged some */
	uint64_t snapshots_received; /**< complete snapshots taken from a peer that had purged */
	uint64_t forgotten; /**< entries dropped because a snapshot said they were deleted */
	/** messages dropped as larger than this node accepts (80 MiB). NNG cuts
	 *  one over 96 MiB with its connection before this node sees it, and
	 *  counts it only among ordinary disconnects: those are not in here */
	uint64_t oversized;
	/** changes passed over for their size, each counted once: a file
	 *  received larger than this node's max_file_size (this node keeps what
	 *  it holds at that path; the pull cursor and the pusher move on), or one
	 *  in this node's log too large for any message (a file over 64 MiB, or
	 *  over 80 MiB with its xattrs), which this node does not send */
	uint64_t too_large;
	/** TLS handshakes this node's listener refused: a peer with no
	 *  certificate, or one not from the cluster CA (NNG's listener "auth") */
	uint64_t tls_refused;
	/** TLS handshakes this node's dialers failed because the peer's
	 *  certificate is not from the cluster CA (NNG's dialers' "auth"); one
	 *  that refused this node's certificate shows as a failed exchange */
	uint64_t tls_failed;
	/** connections dropped for not speaking this protocol: not SP at all, or
	 *  another SP protocol (NNG's "proto" and "reject", listener and dialers) */
	uint64_t proto_errors;
	/** pushes that moved this node's pull cursor into their sender's log:
	 *  the push held a range of that log whole, as a pull's page would, and
	 *  every change of it was taken, so the next pull starts after it */
	uint64_t pushes_as_pulls;
	/** connections to a peer closed for a new one, after every exchange
	 *  with it failed for 5 s (at most one per 5 s per peer): a peer that
	 *  is down, or one that takes requests and does not answer them */
	uint64_t renewed;
} sg_repl_stats;

void sg_repl_stats_get(sg_repl *r, sg_repl_stats *out);

/** What sg_repl_gc() did, and why not more. */
typedef struct sg_repl_gc_result {
	uint64_t purged; /**< tombstones purged by this call */
	/** tombstones at versions up to this one were purgeable: every peer heard
	 *  from within the grace has pulled past it */
	uint64_t upto;
	uint64_t held_by;    /**< node id of the peer whose cursor set upto (0: none, or a
	                          peer that has not answered yet: then upto is 0) */
	int held_by_reader;  /**< 1: the log reader (sg_repl_opts.log_reader) set upto */
	int waiting;         /**< nothing may go yet: 1 just started (the peers that pull from
	                          this node have not all come yet); 2 no peer heard from within
	                          the grace (this node may be the one cut off) */
	sg_horizon horizon;  /**< the store's purge horizon afterwards */
	uint64_t tombstones; /**< tombstones left */
	uint64_t grace_ms;
} sg_repl_gc_result;

/**
 * Purge now the tombstones every peer has (sg_store_purge): those older than
 * the grace, at versions every peer heard from within the grace has pulled
 * past (a peer silent for longer no longer holds the purge back: it will
 * catch up by a snapshot; a known peer that has not answered since this
 * node started counts as heard until the grace has passed since the start).
 * Nothing goes during the first ten pull intervals after start (or the
 * grace, if shorter), nor while the node has peers and heard from none of
 * them within the grace (it may be the one cut off). The replicator also
 * does this by itself every tenth of the grace (at least every second, at
 * most hourly).
 * @return 0 (what happened in out), or a negative errno from the store.
 */
int sg_repl_gc(sg_repl *r, sg_repl_gc_result *out);

/**
 * Replace the log reader of sg_repl_opts (NULL: none). Returns once no call
 * of the old one is under way, so that its context may go (stop the mirror
 * only after this, if it stops before the replicator). Thread-safe.
 */
void sg_repl_set_log_reader(sg_repl *r, uint64_t (*log_reader)(void *ctx), void *ctx);

/** One peer as this node sees it. */
typedef struct sg_repl_peer {
	const char *url;    /**< borrowed: valid during the callback */
	uint64_t node_id;   /**< 0 until it has answered */
	int up;             /**< its last exchange succeeded */
	unsigned failures;  /**< exchanges failed in a row */
	int64_t last_ok_ms; /**< ms since its last good exchange, -1 if never */
	uint64_t pulled;    /**< its store version this node has pulled up to */
	uint64_t pushed;    /**< this node's version pushed to it (starts at this node's
	                         version when the peer is learned: history goes by pull) */
	/** this node's version up to which it acknowledged this node's pushes
	 *  (each push carries this node's own changes up to a version); 0: none */
	uint64_t acked;
	/** this node's version it pulled up to: the cursor its latest pull from
	 *  this node started from (it had taken this node's log up to there);
	 *  0: it has not pulled from this node since this node started, or only
	 *  with a cursor for another incarnation of this store */
	uint64_t pulled_by;
	/** the highest version of this node's log it is known to hold: the newer
	 *  of acked and pulled_by. This node's committed version minus it is how
	 *  far behind this node it is (changes passed over for good on its side,
	 *  refused or too large, count as held) */
	uint64_t holds;
} sg_repl_peer;

/** Call cb for every known peer (not this node itself). */
void sg_repl_peers(sg_repl *r, void (*cb)(void *ctx, const sg_repl_peer *p), void *ctx);

/**
 * The name of node `id`, as it introduced itself in a message this node
 * received (or this node's own name), into buf. -ENOENT if never heard of.
 */
int sg_repl_node_name(sg_repl *r, uint64_t id, char *buf, size_t len);

/** Does `path` (or any of its components) match a local-only pattern? */
int sg_repl_local_only(const sg_repl *r, const char *path);

/**
 * Decode and validate one peer message as the server would, then free it:
 * 0 if valid, -EBADMSG or -EMSGSIZE. For fuzzing and tests.
 */
int sg_repl_check_message(const void *buf, size_t len);

#endif
