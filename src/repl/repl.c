/* repl.c: replication over NNG: a rep0 server answering pulls and pushes, and
 * one sync thread that pushes fresh local changes and pulls from peers. */
#include "config.h"

#include <errno.h>
#include <fnmatch.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"
#include "repl/repl.h"
#include "repl/wire_i.h"
#include "util.h"

#define DOMAIN "repl"
#define MAX_MSG (80u << 20) /* largest message: one 64 MiB file and its envelope */
/* NNG's receive limit, above MAX_MSG: NNG drops a larger message with its
 * connection and counts it only with ordinary disconnects (1.5.2 has no
 * counter for it: its rcv_max statistic is the limit itself), so messages
 * up to this are let through to be counted here as oversized and dropped */
#define RECV_LIMIT (MAX_MSG + (16u << 20))
#define QUIET_NS (60 * 1000000000LL) /* a refusing state ends after this long without one */
#define PAGE_BYTES (4u << 20)        /* a pull page, unless one change is larger */
#define REQ_TIMEOUT_MS 3000
#define SERVE_POLL_MS 1000
#define SERVER_THREADS 3
#define MAX_PEERS 64
#define MAX_NAMES 256 /* node names remembered, relayed origins included */
#define MAX_PAGES_PER_PULL 256
#define MAX_QUARANTINE 10000    /* changes held for a clock to catch up (and r->qmax bytes) */
#define LATER_BYTES (16u << 20) /* refused changes of a pull kept for another try */
#define ADV_MAX 300             /* an advertised URL: at most 256 bytes on the wire */
#define MAX_PULLERS 256         /* nodes whose pull cursors into this store are remembered */
#define TOO_LARGE_SEEN 64       /* changes passed over for their size, remembered to count once */
/* A peer that has failed every exchange this long gets a new connection (at
 * most once per this long): see peer_renew() */
#define RENEW_AFTER_NS (5 * 1000000000LL)
#define CLOSES_STUCK_MAX 8 /* sockets NNG did not close in time: renew no more */
#define FINAL_PUSH_MS 1000 /* how long a stop waits for the push it sends */

struct peer {
	char *url;
	nng_socket sock;
	nng_dialer dialer;
	int open;
	_Atomic int self; /* the URL turned out to be this node */
	/* written by the sync thread only; atomic because status reads them */
	_Atomic uint64_t node_id;
	_Atomic uint64_t pull_since; /* that peer's version we have consumed */
	uint64_t pull_inc;           /* ...of that peer's store id */
	_Atomic uint64_t push_since; /* our version pushed to it */
	/* our version up to which it acknowledged our pushes (0: none yet; unlike
	 * push_since, which starts at our version when the peer is learned) */
	_Atomic uint64_t push_acked;
	_Atomic int64_t next_try_ns; /* back off after failures */
	_Atomic unsigned failures;
	/* its worker's: when the failures in a row began, and when its
	 * connection was last renewed (peer_renew) */
	int64_t fail_since_ns, renewed_ns;
	/* under r->lock: what the dialers of its earlier sockets counted
	 * (NNG's "auth", "proto" + "reject"), so that the totals stay counters */
	uint64_t auth_base, proto_base;
	/* each peer has its own worker, so a frozen peer holds up nobody else */
	sg_repl *r;
	pthread_t thread;
	int thread_started;
	pthread_cond_t cond;        /* with r->lock: work for this peer */
	int want_push, want_pull;   /* under r->lock */
	int final;                  /* under r->lock: sg_repl_stop() waits for this push */
	int push_retry;             /* under r->lock: a push failed or was not all taken */
	int push_refused;           /* its worker's: the last push was not all taken */
	_Atomic int64_t last_ok_ns; /* monotonic time of the last good exchange, 0: never */
	/* the sync thread's: handshakes failed because of its certificate */
	uint64_t auth_seen;
	int64_t auth_last_ns; /* when that count last moved (0: not failing) */
	/* a snapshot from this peer under way (its worker's only): the hashes of
	 * the paths its pages listed, an open-addressed set (0: a free slot) */
	char
	    adv[ADV_MAX]; /* its worker's: this node's URL as that peer sees it (wildcard listen) */
	int snap_on;      /* set under r->lock too: push_covers reads it */
	uint64_t snap_inc;     /* the peer's incarnation it comes from */
	sg_stamp snap_horizon; /* the peer's purge horizon when it began */
	uint64_t *snap_set;
	size_t snap_n, snap_cap;
};

/* A node that pulls from this one: how far it has this store's log. */
struct puller {
	uint64_t node_id;
	uint64_t cursor; /* its cursor into this store (0 if for another incarnation) */
	int64_t last_ns; /* monotonic time of its last pull */
};

struct held {
	sg_change c;
	void *block;  /* the change's bytes (a decoded message copy) */
	size_t bytes; /* its wire size, counted against r->qmax */
	struct held *next;
};

struct sg_repl {
	sg_store *st;
	char *name;
	uint64_t node_id;
	char *listen;
	int listen_wild;  /* listen names a wildcard address: advertise the one a peer sees */
	unsigned schemes; /* SCHEME_* of the URLs learned from peers that this node dials */
	nng_tls_config *tls_srv, *tls_cli;
	nng_socket rep;
	int rep_open;
	nng_listener lst; /* its listener, for NNG's statistics */
	int lst_ok;
	/* the sync thread's: refusals the listener has seen, and since when it
	 * refuses (0: quiet), so that a refusing peer is logged once per spell */
	uint64_t auth_seen, proto_seen;
	int64_t auth_last_ns, proto_last_ns;
	/* the server threads, each with its aio (owned here: sg_repl_stop()
	 * stops it). They end, and close their contexts, before rep closes:
	 * NNG 1.5 can panic when a context's send or close meets the close of
	 * its socket ("pthread_mutex_lock: Invalid argument" in nng_ctx_send(),
	 * "pthread_mutex_unlock: Invalid argument" in nng_ctx_close(), both
	 * seen in test_repl under load; nanomsg/nng#2238 reports the first) */
	struct server {
		sg_repl *r;
		nng_aio *aio;
		pthread_t thread;
	} srv[SERVER_THREADS];
	int nsrv;
	pthread_t sync;
	int sync_started;

	pthread_mutex_t lock; /* peers list, push state, stop */
	pthread_cond_t cond;
	int stop;
	_Atomic int stopping; /* r->stop, for the server threads */
	/* the changes committed since the workers were last woken for a push:
	 * some (push_pending), among them a delete, or a change that is neither
	 * a delete nor a new empty file (push_plain); since push_first_ns */
	int push_pending, push_delete, push_plain;
	int64_t push_first_ns;
	uint64_t own_top;     /* the version of this node's latest change noted (for peers) */
	int64_t last_push_ns; /* when the workers were last woken for a push */
	int64_t push_gap_ns;
	int pull_all; /* sg_repl_sync_now(): the next round pulls from every peer, now */
	struct peer *peers[MAX_PEERS];
	size_t npeers;

	char **patterns;
	size_t npatterns;
	unsigned max_offset_ms, push_delay_ms, create_delay_ms, pull_interval_ms;

	pthread_mutex_t qlock; /* the quarantine, filled by the peer workers */
	struct held *quarantine;
	size_t nquarantine, qbytes, qmax;

	_Atomic uint64_t applied, duplicates, stale, quarantined, malformed, refused, pushes, pulls,
	    deferred;
	_Atomic uint64_t purged, snap_served, snap_received, forgotten, oversized, too_large;
	_Atomic uint64_t push_cursor; /* pushes that moved a pull cursor (push_covers) */
	_Atomic uint64_t renewed;     /* connections dropped for a new one (peer_renew) */

	/* the latest changes passed over for their size, so that each is counted
	 * and logged once, not at every page that lists it */
	pthread_mutex_t biglock;
	sg_stamp big_seen[TOO_LARGE_SEEN];
	size_t big_next;

	/* tombstone purge (under lock): who pulls from us and how far */
	uint64_t grace_ms;
	pthread_mutex_t rdlock; /* the log reader, and a call of it */
	uint64_t (*log_reader)(void *ctx);
	void *log_reader_ctx;
	int64_t started_ns; /* monotonic */
	struct puller pullers[MAX_PULLERS];
	size_t npullers;

	pthread_mutex_t nlock; /* names of the nodes heard from, for sg_repl_node_name() */
	struct {
		uint64_t id;
		char name[65];
	} names[MAX_NAMES];
	size_t nnames;
};

/* The one place NNG's codes become errnos. */
static int nng_err(int rv)
{
	switch (rv) {
	case 0:
		return 0;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EINVAL:
		return -EINVAL;
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	case NNG_ECONNREFUSED:
		return -ECONNREFUSED;
	case NNG_ECLOSED:
		return -ESHUTDOWN;
	case NNG_EADDRINUSE:
		return -EADDRINUSE;
	case NNG_ENOENT:
		return -ENOENT;
	case NNG_ECRYPTO:
	case NNG_EPEERAUTH:
		return -EACCES;
	case NNG_ECONNSHUT:
		return -ECONNRESET;
	case NNG_EADDRINVAL:
		return -EINVAL;
	default:
		return -EIO;
	}
}

enum { SCHEME_TCP = 1, SCHEME_TLS = 2, SCHEME_IPC = 4, SCHEME_INPROC = 8 };

static unsigned url_scheme(const char *url)
{
	if (strncmp(url, "tcp://", 6) == 0)
		return SCHEME_TCP;
	if (strncmp(url, "tls+tcp://", 10) == 0)
		return SCHEME_TLS;
	if (strncmp(url, "ipc://", 6) == 0)
		return SCHEME_IPC;
	if (strncmp(url, "inproc://", 9) == 0)
		return SCHEME_INPROC;
	return 0;
}

static int url_ok(const char *url)
{
	return url_scheme(url) != 0;
}

static int url_tls(const char *url)
{
	return url_scheme(url) == SCHEME_TLS;
}

/* The host of a tcp:// or tls+tcp:// URL, without brackets, into buf, and
 * where its port starts (after the ':'). -1 if it has none. */
static int url_host(const char *url, char *buf, size_t len, const char **port)
{
	const char *h = strstr(url, "://"), *e;
	size_t n;

	if (!h || !(url_scheme(url) & (SCHEME_TCP | SCHEME_TLS)))
		return -1;
	h += 3;
	if (*h == '[') {
		e = strchr(++h, ']');
		if (!e || e[1] != ':')
			return -1;
		n = (size_t)(e - h);
		*port = e + 2;
	} else {
		e = strrchr(h, ':');
		if (!e)
			return -1;
		n = (size_t)(e - h);
		*port = e + 1;
	}
	if (n >= len)
		return -1;
	memcpy(buf, h, n);
	buf[n] = '\0';
	return 0;
}

/* Does the URL name every address of its host (a listener's wildcard:
 * no host, "*", 0.0.0.0, ::), which no peer can dial? */
static int url_wildcard(const char *url)
{
	char host[64];
	const char *port;
	unsigned char a[16], zero[16] = {0};

	if (url_host(url, host, sizeof(host), &port) < 0)
		return 0;
	if (!*host || strcmp(host, "*") == 0)
		return 1;
	if (inet_pton(AF_INET, host, a) == 1)
		return memcmp(a, zero, 4) == 0;
	if (inet_pton(AF_INET6, host, a) == 1)
		return memcmp(a, zero, 16) == 0;
	return 0;
}

/* ---- local-only names ---- */

static int patterns_parse(sg_repl *r, const char *spec)
{
	char *copy = strdup(spec), *save = NULL, *tok;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
		char **np = realloc(r->patterns, (r->npatterns + 1) * sizeof(*np));
		if (!np || !(np[r->npatterns] = strdup(tok))) {
			if (np)
				r->patterns = np;
			free(copy);
			return -ENOMEM;
		}
		r->patterns = np;
		r->npatterns++;
	}
	free(copy);
	return 0;
}

int sg_repl_local_only(const sg_repl *r, const char *path)
{
	const char *p = path;

	while (*p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char comp[SG_NAME_MAX + 1];

		if (n && n <= SG_NAME_MAX) {
			memcpy(comp, p, n);
			comp[n] = '\0';
			for (size_t i = 0; i < r->npatterns; i++)
				if (fnmatch(r->patterns[i], comp, 0) == 0)
					return 1;
		}
		p += n;
		if (*p == '/')
			p++;
	}
	return 0;
}

/* ---- peers ---- */

static void *peer_main(void *arg);

/* Add a peer URL if new (not ours, not known), with its worker. A URL
 * learned from a peer (not configured) must have a scheme this node
 * dials learned peers with (only tls+tcp:// on a node that uses TLS) and a
 * host one can dial. Called with r->lock held. */
static void peer_learn_locked(sg_repl *r, const char *url, int learned)
{
	struct peer *p;

	if (r->stop) /* sg_repl_stop() walks r->peers unlocked from here on */
		return;
	if (!url || !*url || !url_ok(url) || (r->listen && strcmp(url, r->listen) == 0))
		return;
	if (learned && (!(url_scheme(url) & r->schemes) || url_wildcard(url))) {
		sg_log(SG_LOG_DEBUG, DOMAIN, "SIGIL-REPL-PEER-SCHEME",
		       "not dialing %s, learned from a peer: %s", url,
		       url_wildcard(url)          ? "a wildcard address"
		       : r->schemes == SCHEME_TLS ? "this node speaks TLS only"
		                                  : "not a scheme this node was configured with");
		return;
	}
	for (size_t i = 0; i < r->npeers; i++)
		if (strcmp(r->peers[i]->url, url) == 0)
			return;
	if (r->npeers == MAX_PEERS)
		return;
	p = calloc(1, sizeof(*p));
	if (!p || !(p->url = strdup(url))) {
		free(p);
		return;
	}
	p->push_since = sg_store_version(r->st); /* history travels by pull */
	p->r = r;
	pthread_cond_init(&p->cond, NULL);
	if (pthread_create(&p->thread, NULL, peer_main, p) == 0)
		p->thread_started = 1;
	else
		sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-REPL-THREAD", "no worker for peer %s", url);
	r->peers[r->npeers++] = p;
	sg_log(SG_LOG_INFO, DOMAIN, "SIGIL-REPL-PEER", "peer %s added", url);
}

static void peers_learn(sg_repl *r, const sg_msg *m)
{
	pthread_mutex_lock(&r->lock);
	/* a message from a peer this node backs off from: it is back, try it at once */
	for (size_t i = 0; *m->listen_url && i < r->npeers; i++)
		if (r->peers[i]->next_try_ns && strcmp(r->peers[i]->url, m->listen_url) == 0)
			r->peers[i]->next_try_ns = 0;
	peer_learn_locked(r, m->listen_url, 1);
	for (size_t i = 0; i < m->npeers; i++)
		peer_learn_locked(r, m->peers[i], 1);
	pthread_mutex_unlock(&r->lock);
}

static int peer_open(sg_repl *r, struct peer *p)
{
	int rv;

	/* under the lock, so that sg_repl_stop() closes every socket it made */
	pthread_mutex_lock(&r->lock);
	if (r->stop || p->open) {
		rv = r->stop ? NNG_ECLOSED : 0;
		pthread_mutex_unlock(&r->lock);
		return nng_err(rv);
	}
	rv = nng_req0_open(&p->sock);
	if (rv) {
		pthread_mutex_unlock(&r->lock);
		return nng_err(rv);
	}
	nng_socket_set_size(p->sock, NNG_OPT_RECVMAXSZ, RECV_LIMIT);
	nng_socket_set_ms(p->sock, NNG_OPT_SENDTIMEO, REQ_TIMEOUT_MS);
	nng_socket_set_ms(p->sock, NNG_OPT_RECVTIMEO, REQ_TIMEOUT_MS);
	nng_socket_set_ms(p->sock, NNG_OPT_REQ_RESENDTIME, 60000);
	rv = nng_dialer_create(&p->dialer, p->sock, p->url);
	if (!rv && url_tls(p->url)) {
		if (!r->tls_cli)
			rv = NNG_EINVAL;
		else
			rv = nng_dialer_set_ptr(p->dialer, NNG_OPT_TLS_CONFIG, r->tls_cli);
	}
	if (!rv) {
		nng_dialer_set_ms(p->dialer, NNG_OPT_RECONNMINT, 100);
		nng_dialer_set_ms(p->dialer, NNG_OPT_RECONNMAXT, 2000);
		rv = nng_dialer_start(p->dialer, NNG_FLAG_NONBLOCK);
	}
	if (rv) {
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-DIAL", "cannot dial %s: %s", p->url,
		       nng_strerror(rv));
		nng_close(p->sock);
		pthread_mutex_unlock(&r->lock);
		return nng_err(rv);
	}
	p->open = 1;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

/* ---- messages ---- */

static void msg_head(sg_repl *r, sg_msg *m, uint32_t type)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->node_id = r->node_id;
	m->incarnation = sg_store_id(r->st);
	m->node_name = r->name;
	m->listen_url = r->listen && !r->listen_wild ? r->listen : "";
}

/*
 * The listen URL to advertise in a message over `pipe`: the configured one,
 * or for a wildcard listener (0.0.0.0, ::, no host) the same with the host
 * replaced by this end's address of that connection, which the peer can
 * reach (it is the one the connection runs between); "" if not known.
 */
static void advertised(const sg_repl *r, nng_pipe pipe, char *buf, size_t len)
{
	char host[64], ip[INET6_ADDRSTRLEN];
	const char *port;
	nng_sockaddr sa;

	buf[0] = '\0';
	if (!r->listen)
		return;
	if (!r->listen_wild) {
		snprintf(buf, len, "%s", r->listen);
		return;
	}
	if (url_host(r->listen, host, sizeof(host), &port) < 0 ||
	    nng_pipe_get_addr(pipe, NNG_OPT_LOCADDR, &sa) != 0)
		return;
	if (sa.s_family == NNG_AF_INET && inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof(ip)))
		snprintf(buf, len, "%s://%s:%s", url_tls(r->listen) ? "tls+tcp" : "tcp", ip, port);
	else if (sa.s_family == NNG_AF_INET6 &&
	         inet_ntop(AF_INET6, sa.s_in6.sa_addr, ip, sizeof(ip)))
		snprintf(buf, len, "%s://[%s]:%s", url_tls(r->listen) ? "tls+tcp" : "tcp", ip,
		         port);
	if (strlen(buf) + 1 >= len)
		buf[0] = '\0';
}

/* The peer URLs to gossip; borrowed from r until the next call on this thread. */
static size_t peer_urls(sg_repl *r, const char **urls, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->npeers && n < max; i++)
		if (!r->peers[i]->self)
			urls[n++] = r->peers[i]->url;
	pthread_mutex_unlock(&r->lock);
	return n;
}

/*
 * The one place that makes the NNG messages this node sends. It stays a
 * function of its own, out of line, because tests/lsan.supp names it: NNG
 * 1.5.2 can lose a message it was handed when the connection closes just
 * as it sends (see there).
 */
__attribute__((noinline)) static int handed_to_nng(const void *buf, size_t len, nng_msg **out)
{
	int rv = nng_msg_alloc(out, 0);

	if (rv)
		return nng_err(rv);
	rv = nng_msg_append(*out, buf, len);
	if (rv) {
		nng_msg_free(*out);
		return nng_err(rv);
	}
	return 0;
}

static int to_nng(const sg_msg *m, nng_msg **out)
{
	void *buf;
	size_t len;
	int rc = sg_wire_encode(m, &buf, &len);

	if (rc)
		return rc;
	rc = handed_to_nng(buf, len, out);
	free(buf);
	return rc;
}

static int name_ok(const char *s);

/* Remember which name a node id goes by (the author of its changes in the mirror). */
static void name_learn(sg_repl *r, uint64_t id, const char *name)
{
	size_t i;

	if (!id || !name || !name_ok(name))
		return;
	pthread_mutex_lock(&r->nlock);
	for (i = 0; i < r->nnames && r->names[i].id != id; i++)
		;
	if (i == r->nnames && r->nnames < MAX_NAMES)
		r->nnames++;
	if (i < r->nnames) {
		r->names[i].id = id;
		snprintf(r->names[i].name, sizeof r->names[i].name, "%s", name);
	}
	pthread_mutex_unlock(&r->nlock);
}

int sg_repl_node_name(sg_repl *r, uint64_t id, char *buf, size_t len)
{
	int rc = -ENOENT;

	if (!r || !len)
		return -ENOENT;
	if (id == r->node_id) {
		snprintf(buf, len, "%s", r->name);
		return 0;
	}
	pthread_mutex_lock(&r->nlock);
	for (size_t i = 0; i < r->nnames; i++)
		if (r->names[i].id == id) {
			snprintf(buf, len, "%s", r->names[i].name);
			rc = 0;
			break;
		}
	pthread_mutex_unlock(&r->nlock);
	return rc;
}

static int from_nng(sg_repl *r, nng_msg *nm, sg_msg **out)
{
	/* the wire's own limits, not this node's max_file_size: a change larger
	 * than this node takes is passed over alone (apply_batch), not the whole
	 * message with it, which the sender would send again forever */
	sg_wire_limits lim = {.max_msg = MAX_MSG};
	int rc = sg_wire_decode(nng_msg_body(nm), nng_msg_len(nm), &lim, out);

	if (rc == -EMSGSIZE) {
		uint64_t n = atomic_fetch_add(&r->oversized, 1) + 1;
		if (n == 1 || n % 1000 == 0)
			sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-OVERSIZED",
			       "dropped a message of %zu bytes, over the limit of %u; %llu so far",
			       nng_msg_len(nm), MAX_MSG, (unsigned long long)n);
	} else if (rc) {
		uint64_t n = atomic_fetch_add(&r->malformed, 1) + 1;
		/* once, then every 1000th: a hostile peer must not flood the log */
		if (n == 1 || n % 1000 == 0)
			sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-MALFORMED",
			       "dropped a malformed message of %zu bytes (%s); %llu so far",
			       nng_msg_len(nm), strerror(-rc), (unsigned long long)n);
	} else {
		name_learn(r, (*out)->node_id, (*out)->node_name);
	}
	return rc;
}

/* A deep copy of a change, for a page of the log. */
struct page {
	sg_change *v;
	void **blocks;
	size_t n, cap, bytes, max_bytes;
	uint64_t next;
	int more;
	uint64_t only_origin; /* 0: all origins */
	int gap;              /* only_origin passed over a change a pull would list */
	sg_repl *r;
};

static int page_add(struct page *pg, const sg_change *c)
{
	size_t sz = sg_wire_change_size(c), need = 0;
	char *blk, *p;
	sg_xattr *xs;

	if (pg->n && pg->bytes + sz > pg->max_bytes) {
		pg->more = 1;
		return 1;
	}
	if (pg->n == pg->cap) {
		size_t cap = pg->cap ? pg->cap * 2 : 64;
		sg_change *nv = realloc(pg->v, cap * sizeof(*nv));
		void **nb;
		if (!nv)
			return -ENOMEM;
		pg->v = nv;
		nb = realloc(pg->blocks, cap * sizeof(*nb));
		if (!nb)
			return -ENOMEM;
		pg->blocks = nb;
		pg->cap = cap;
	}
	need = strlen(c->path) + 1 + c->len + 1 + c->nxattrs * sizeof(sg_xattr);
	for (size_t i = 0; i < c->nxattrs; i++)
		need += strlen(c->xattrs[i].name) + 1 + c->xattrs[i].len + 1;
	blk = malloc(need);
	if (!blk)
		return -ENOMEM;
	xs = (sg_xattr *)blk;
	p = blk + c->nxattrs * sizeof(sg_xattr);
	pg->v[pg->n] = *c;
	strcpy(p, c->path);
	pg->v[pg->n].path = p;
	p += strlen(c->path) + 1;
	if (c->len)
		memcpy(p, c->data, c->len);
	p[c->len] = '\0';
	pg->v[pg->n].data = c->len ? p : NULL;
	p += c->len + 1;
	for (size_t i = 0; i < c->nxattrs; i++) {
		strcpy(p, c->xattrs[i].name);
		xs[i].name = p;
		p += strlen(p) + 1;
		if (c->xattrs[i].len)
			memcpy(p, c->xattrs[i].value, c->xattrs[i].len);
		p[c->xattrs[i].len] = '\0';
		xs[i].value = p;
		xs[i].len = c->xattrs[i].len;
		p += c->xattrs[i].len + 1;
	}
	pg->v[pg->n].xattrs = c->nxattrs ? xs : NULL;
	pg->blocks[pg->n] = blk;
	pg->n++;
	pg->bytes += sz;
	return 0;
}

/*
 * A change passed over for its size: received larger than this node's
 * max_file_size (inbound), or too large to go in a message (outbound). The
 * cursor moves past it; it is counted and logged once per change (the
 * latest TOO_LARGE_SEEN remembered), not at every page or peer that lists it.
 */
static void too_large(sg_repl *r, const sg_change *c, int inbound)
{
	uint64_t n;
	int seen = 0;

	pthread_mutex_lock(&r->biglock);
	for (size_t i = 0; i < TOO_LARGE_SEEN && !seen; i++)
		seen = r->big_seen[i].hlc == c->stamp.hlc &&
		       r->big_seen[i].origin == c->stamp.origin &&
		       r->big_seen[i].seq == c->stamp.seq;
	if (!seen)
		r->big_seen[r->big_next++ % TOO_LARGE_SEEN] = c->stamp;
	pthread_mutex_unlock(&r->biglock);
	if (seen)
		return;
	n = atomic_fetch_add(&r->too_large, 1) + 1;
	if (n > 10 && n % 1000 != 0)
		return;
	if (inbound)
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-TOO-LARGE",
		       "%s from %016llx: %zu bytes, over this node's max_file_size of %llu: "
		       "passed over, what this node holds there stays; %llu so far",
		       c->path, (unsigned long long)c->stamp.origin, c->len,
		       (unsigned long long)sg_store_max_file_size(r->st), (unsigned long long)n);
	else
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-TOO-LARGE",
		       "%s (%zu bytes, %zu xattrs) is too large for a replication message "
		       "(files up to %llu bytes, with their xattrs up to %u bytes): not sent to "
		       "peers; %llu so far",
		       c->path, c->len, c->nxattrs, (unsigned long long)SG_WIRE_MAX_FILE, MAX_MSG,
		       (unsigned long long)n);
}

static int page_cb(void *ctx, const sg_change *c)
{
	struct page *pg = ctx;
	int rc;

	/* the root's own attributes stay local: it has no path a peer could apply */
	if (!*c->path || sg_repl_local_only(pg->r, c->path)) {
		pg->next = c->version; /* not for peers: step over it */
		return 0;
	}
	if (pg->only_origin && c->stamp.origin != pg->only_origin) {
		pg->next = c->version; /* not for this page: step over it */
		pg->gap = 1;
		return 0;
	}
	/* one change that cannot be encoded must not fail its page at every try */
	rc = sg_wire_change_check(c);
	if (rc) {
		if (rc == -EFBIG)
			too_large(pg->r, c, 0);
		else
			sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-REPL-UNSENDABLE",
			       "%s (version %llu) cannot be encoded: not sent to peers", c->path,
			       (unsigned long long)c->version);
		pg->next = c->version;
		return 0;
	}
	rc = page_add(pg, c);
	if (rc == 0)
		pg->next = c->version;
	return rc;
}

static void page_free(struct page *pg)
{
	for (size_t i = 0; i < pg->n; i++)
		free(pg->blocks[i]);
	free(pg->v);
	free(pg->blocks);
}

/* ---- applying what peers send ---- */

/* Store errors that say nothing about the change itself (no space, I/O, no
 * memory, shutting down): such a change is fetched or sent again later,
 * never passed over. */
static int transient(int rc)
{
	return rc == -ENOSPC || rc == -EIO || rc == -ENOMEM || rc == -EAGAIN || rc == -ESHUTDOWN;
}

/* What became of a batch of remote changes. */
struct outcome {
	size_t again;   /* not taken for now: the sender or the next pull brings them again */
	size_t refused; /* refused for good with no `later` to keep them for another try */
};

static void held_free(struct held *h)
{
	free(h->block);
	free(h);
}

static int same_change(const sg_change *a, const sg_change *b)
{
	return a->stamp.hlc == b->stamp.hlc && a->stamp.origin == b->stamp.origin &&
	       a->stamp.seq == b->stamp.seq && a->type == b->type && strcmp(a->path, b->path) == 0;
}

/* Is c held already, or is there no room for it? 1: held; -ENOSPC: full; 0: neither.
 * Called with r->qlock held. */
static int quarantine_room_locked(const sg_repl *r, const sg_change *c, size_t bytes)
{
	for (const struct held *h = r->quarantine; h; h = h->next)
		if (same_change(&h->c, c))
			return 1;
	if (r->nquarantine >= MAX_QUARANTINE || r->qbytes + bytes > r->qmax)
		return -ENOSPC;
	return 0;
}

/* Link h into the quarantine. Called with r->qlock held. */
static void quarantine_link_locked(sg_repl *r, struct held *h)
{
	h->next = r->quarantine;
	r->quarantine = h;
	r->nquarantine++;
	r->qbytes += h->bytes;
}

/* Keep a change stamped too far ahead until the local clock catches up.
 * 0: held now; 1: held already (a page fetched again lists it again);
 * -ENOSPC: the quarantine is full (by count or by bytes); -ENOMEM. */
static int quarantine_add(sg_repl *r, const sg_change *c)
{
	struct page pg = {.max_bytes = SIZE_MAX, .r = r};
	size_t bytes = sg_wire_change_size(c);
	struct held *h;
	int rc;

	pthread_mutex_lock(&r->qlock);
	rc = quarantine_room_locked(r, c, bytes);
	pthread_mutex_unlock(&r->qlock);
	if (rc)
		return rc;
	/* copied outside the lock: a change may be 64 MiB */
	if (page_add(&pg, c) != 0 || !(h = calloc(1, sizeof(*h)))) {
		page_free(&pg);
		return -ENOMEM;
	}
	h->c = pg.v[0];
	h->block = pg.blocks[0];
	h->bytes = bytes;
	free(pg.v);
	free(pg.blocks);
	pthread_mutex_lock(&r->qlock);
	rc = quarantine_room_locked(r, c, bytes); /* another worker may have come first */
	if (rc == 0)
		quarantine_link_locked(r, h);
	pthread_mutex_unlock(&r->qlock);
	if (rc)
		held_free(h);
	return rc;
}

static int too_far_ahead(sg_repl *r, const sg_change *c)
{
	uint64_t limit = ((uint64_t)(sg_now_ns() / 1000000) + r->max_offset_ms) << 16;

	return c->stamp.hlc > limit;
}

/* One change not taken for now: count it, log now and then. */
static void deferred(sg_repl *r, struct outcome *o, const sg_change *c, const char *why)
{
	uint64_t n = atomic_fetch_add(&r->deferred, 1) + 1;

	o->again++;
	if (n == 1 || n % 1000 == 0)
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-DEFERRED",
		       "%s from %016llx not taken for now (%s): it comes again; %llu so far",
		       c->path, (unsigned long long)c->stamp.origin, why, (unsigned long long)n);
}

/* A change the store refused for good (it lost to a newer conflicting entry
 * here: last-writer-wins converges it). */
static void refused(sg_repl *r, const sg_change *c, int rc)
{
	uint64_t n = atomic_fetch_add(&r->refused, 1) + 1;

	if (n <= 10 || n % 1000 == 0)
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-REFUSED", "%s from %016llx: %s", c->path,
		       (unsigned long long)c->stamp.origin, strerror(-rc));
}

/* Count one store result. 1: refused for a reason of its own (worth another
 * try once the rest of its batch is in); 0: settled (applied, held already,
 * stale, or deferred for a transient error). */
static int settle(sg_repl *r, const sg_change *c, int rc, struct outcome *o)
{
	if (rc == SG_APPLY_HELD) {
		atomic_fetch_add(&r->duplicates, 1);
		return 0;
	}
	if (rc == 0) {
		atomic_fetch_add(&r->applied, 1);
		sg_log(SG_LOG_DEBUG, DOMAIN, "SIGIL-REPL-APPLIED", "%s from %016llx", c->path,
		       (unsigned long long)c->stamp.origin);
		return 0;
	}
	if (rc == -ESTALE) {
		atomic_fetch_add(&r->stale, 1);
		return 0;
	}
	if (transient(rc)) {
		deferred(r, o, c, strerror(-rc));
		return 0;
	}
	return 1;
}

/* Changes the store refused within their page, kept for another try after
 * the next pages of the same pull (the log may list a directory's latest
 * row pages after its children's), with the cursor to fetch them again. */
struct later {
	struct page pg; /* deep copies */
	int *rc;        /* each one's last refusal */
	size_t rc_cap;
	uint64_t since, inc; /* the cursor before the page the oldest came in */
	int set;
};

/* Keep c (refused with rc) for later. 0, or -ENOSPC past LATER_BYTES, -ENOMEM. */
static int later_add(struct later *l, const sg_change *c, int rc)
{
	l->pg.max_bytes = SIZE_MAX; /* one page of any size */
	if (l->pg.bytes + sg_wire_change_size(c) > LATER_BYTES)
		return -ENOSPC;
	if (l->pg.n == l->rc_cap) {
		size_t cap = l->rc_cap ? l->rc_cap * 2 : 16;
		int *nr = realloc(l->rc, cap * sizeof(*nr));

		if (!nr)
			return -ENOMEM;
		l->rc = nr;
		l->rc_cap = cap;
	}
	if (page_add(&l->pg, c) != 0)
		return -ENOMEM;
	l->rc[l->pg.n - 1] = rc;
	return 0;
}

static void later_free(struct later *l)
{
	page_free(&l->pg);
	free(l->rc);
	memset(l, 0, sizeof(*l));
	l->pg.max_bytes = SIZE_MAX;
}

/* Count what is still refused as refused for good, and forget it. */
static void later_refuse(sg_repl *r, struct later *l)
{
	for (size_t i = 0; i < l->pg.n; i++)
		refused(r, &l->pg.v[i], l->rc[i]);
	later_free(l);
}

/*
 * Apply n remote changes in order, queued together (one commit, not one
 * each). A change the store refuses for a reason of its own (its parent is
 * a file here, and a later change in the batch makes it a directory) is
 * tried once more after the rest of the batch; if still refused, it goes to
 * `later` (the caller tries it again after its next pages), or with no
 * `later`, it counts as refused. Changes stamped too far ahead are held in
 * the quarantine when may_quarantine, and not taken otherwise. Changes not
 * taken for now (transient store errors, too far ahead on a push, a full
 * quarantine) are counted in o->again and flagged in again[] if given.
 */
static void apply_batch(sg_repl *r, const sg_change *cs, size_t n, int may_quarantine,
                        struct later *later, struct outcome *o, char *again)
{
	sg_change *ok = malloc((n ? n : 1) * sizeof(*ok));
	size_t *idx = malloc((n ? n : 1) * sizeof(*idx));
	int *rcs = malloc((n ? n : 1) * sizeof(*rcs));
	size_t k = 0, nf = 0;

	if (again)
		memset(again, 0, n);
	if (!ok || !idx || !rcs) {
		for (size_t i = 0; i < n; i++) {
			deferred(r, o, &cs[i], strerror(ENOMEM));
			if (again)
				again[i] = 1;
		}
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const sg_change *c = &cs[i];
		int rc;

		if (sg_repl_local_only(r, c->path))
			continue;
		if (c->type == SG_TYPE_FILE && c->len > sg_store_max_file_size(r->st)) {
			too_large(r, c, 1); /* settled: the cursor moves past it */
			continue;
		}
		if (!too_far_ahead(r, c)) {
			idx[k] = i;
			ok[k++] = *c;
			continue;
		}
		rc = may_quarantine ? quarantine_add(r, c) : -EAGAIN;
		if (rc == 0) {
			uint64_t q = atomic_fetch_add(&r->quarantined, 1) + 1;
			if (q == 1 || q % 1000 == 0)
				sg_log(
				    SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-SKEW",
				    "%s from %016llx is stamped %llu ms ahead of this clock (max "
				    "%u ms): held until then; %llu so far",
				    c->path, (unsigned long long)c->stamp.origin,
				    (unsigned long long)((c->stamp.hlc >> 16) -
				                         (uint64_t)(sg_now_ns() / 1000000)),
				    r->max_offset_ms, (unsigned long long)q);
		} else if (rc < 0) {
			deferred(r, o, c,
			         rc == -EAGAIN ? "stamped too far ahead of this clock"
			         : rc == -ENOSPC
			             ? "stamped too far ahead, and the quarantine is full"
			             : strerror(-rc));
			if (again)
				again[i] = 1;
		}
	}
	if (k && sg_store_apply_many(r->st, ok, k, rcs) != 0) {
		for (size_t j = 0; j < k; j++) {
			deferred(r, o, &ok[j], strerror(ENOMEM));
			if (again)
				again[idx[j]] = 1;
		}
		goto out;
	}
	for (size_t j = 0; j < k; j++) {
		size_t a = o->again;

		if (settle(r, &ok[j], rcs[j], o)) {
			idx[nf] = idx[j];
			ok[nf++] = ok[j];
		} else if (again && o->again != a) {
			again[idx[j]] = 1;
		}
	}
	/* the second try, after the rest of the batch */
	if (nf && sg_store_apply_many(r->st, ok, nf, rcs) != 0) {
		for (size_t j = 0; j < nf; j++) {
			deferred(r, o, &ok[j], strerror(ENOMEM));
			if (again)
				again[idx[j]] = 1;
		}
		goto out;
	}
	for (size_t j = 0; j < nf; j++) {
		size_t a = o->again;

		if (settle(r, &ok[j], rcs[j], o)) {
			if (!later || later_add(later, &ok[j], rcs[j]) != 0) {
				refused(r, &ok[j], rcs[j]);
				o->refused++;
			}
		} else if (again && o->again != a) {
			again[idx[j]] = 1;
		}
	}
out:
	free(ok);
	free(idx);
	free(rcs);
}

/* Try the changes kept in l again; keep those still refused. */
static void later_retry(sg_repl *r, struct later *l, struct outcome *o)
{
	struct later keep = {.pg = {.max_bytes = SIZE_MAX, .r = r}};
	int *rcs;

	if (!l->pg.n)
		return;
	rcs = malloc(l->pg.n * sizeof(*rcs));
	if (!rcs || sg_store_apply_many(r->st, l->pg.v, l->pg.n, rcs) != 0) {
		free(rcs);
		return; /* kept as they are */
	}
	keep.since = l->since;
	keep.inc = l->inc;
	keep.set = l->set;
	for (size_t i = 0; i < l->pg.n; i++)
		if (settle(r, &l->pg.v[i], rcs[i], o) && later_add(&keep, &l->pg.v[i], rcs[i]) != 0)
			refused(r, &l->pg.v[i], rcs[i]);
	free(rcs);
	later_free(l);
	*l = keep;
	if (!l->pg.n)
		l->set = 0;
}

/* Move what `from` holds to the end of `to`. */
static void later_merge(sg_repl *r, struct later *to, struct later *from)
{
	for (size_t i = 0; i < from->pg.n; i++)
		if (later_add(to, &from->pg.v[i], from->rc[i]) != 0)
			refused(r, &from->pg.v[i], from->rc[i]);
	later_free(from);
}

/* ---- tombstone purge: who has this log how far ---- */

/* Remember that `node` pulled with `cursor` into this store's log, now. */
static void puller_note(sg_repl *r, uint64_t node, uint64_t cursor)
{
	int64_t now = sg_mono_ns();
	size_t i, oldest = 0;

	if (node == 0 || node == r->node_id)
		return;
	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->npullers && r->pullers[i].node_id != node; i++)
		if (r->pullers[i].last_ns < r->pullers[oldest].last_ns)
			oldest = i;
	if (i == r->npullers) {
		if (r->npullers < MAX_PULLERS)
			r->npullers++;
		else
			i = oldest; /* the one silent for longest makes room */
	}
	r->pullers[i].node_id = node;
	r->pullers[i].cursor = cursor;
	r->pullers[i].last_ns = now;
	pthread_mutex_unlock(&r->lock);
}

/* This store's version vector, for a CHANGES reply. */
struct vv {
	sg_vv_entry *v;
	size_t n, cap;
};

static int vv_cb(void *ctx, const sg_vv_entry *e)
{
	struct vv *vv = ctx;

	if (vv->n == SG_WIRE_VV_MAX)
		return 0; /* the rest are not sent: fewer entries only ever keep more */
	if (vv->n == vv->cap) {
		size_t cap = vv->cap ? vv->cap * 2 : 16;
		sg_vv_entry *nv = realloc(vv->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		vv->v = nv;
		vv->cap = cap;
	}
	vv->v[vv->n++] = *e;
	return 0;
}

int sg_repl_gc(sg_repl *r, sg_repl_gc_result *out)
{
	int64_t now = sg_mono_ns(), grace = (int64_t)r->grace_ms * 1000000;
	int64_t warm = (int64_t)r->pull_interval_ms * 1000000 * 10;
	sg_store_stats ss;
	uint64_t upto = sg_store_version(r->st), held_by = 0;
	size_t known = 0, heard = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->grace_ms = r->grace_ms;
	pthread_mutex_lock(&r->lock);
	if (now - r->started_ns < (warm < grace ? warm : grace)) {
		out->waiting = 1; /* the peers that pull from us have not all come yet */
	} else {
		/* every node that pulled from us within the grace: its cursor */
		for (size_t i = 0; i < r->npullers; i++) {
			const struct puller *pl = &r->pullers[i];

			known++;
			if (now - pl->last_ns > grace)
				continue; /* silent too long: it will need a snapshot */
			heard++;
			if (pl->cursor < upto) {
				upto = pl->cursor;
				held_by = pl->node_id;
			}
		}
		/* a peer we know of that has not pulled within the grace: nothing of
		 * ours is known to be there, unless it has been silent for the grace
		 * (one that never answered counts from this node's start) */
		for (size_t i = 0; i < r->npeers; i++) {
			const struct peer *p = r->peers[i];
			int64_t last = atomic_load(&p->last_ok_ns);
			uint64_t id = atomic_load(&p->node_id);
			size_t j;

			if (atomic_load(&p->self))
				continue;
			known++;
			if (!last)
				last = r->started_ns;
			if (now - last > grace)
				continue;
			heard++;
			for (j = 0; id && j < r->npullers && r->pullers[j].node_id != id; j++)
				;
			if (id && j < r->npullers && now - r->pullers[j].last_ns <= grace)
				continue; /* counted above */
			if (r->listen) {
				upto = 0;
				held_by = id; /* 0: not known yet */
			}
		}
		if (known && !heard)
			out->waiting = 2; /* maybe everyone is gone, maybe we are cut off */
	}
	pthread_mutex_unlock(&r->lock);
	pthread_mutex_lock(&r->rdlock);
	if (!out->waiting && r->log_reader) {
		uint64_t read = r->log_reader(r->log_reader_ctx);

		if (read < upto) {
			upto = read;
			held_by = 0;
			out->held_by_reader = 1;
		}
	}
	pthread_mutex_unlock(&r->rdlock);
	out->upto = out->waiting ? 0 : upto;
	out->held_by = out->waiting ? 0 : held_by;
	if (!out->waiting && upto)
		rc = sg_store_purge(r->st, upto, sg_now_ns() - grace, &out->purged);
	atomic_fetch_add(&r->purged, out->purged);
	if (out->purged)
		sg_log(SG_LOG_INFO, DOMAIN, "SIGIL-REPL-PURGED",
		       "purged %llu tombstones older than %llu ms, up to version %llu",
		       (unsigned long long)out->purged, (unsigned long long)r->grace_ms,
		       (unsigned long long)upto);
	if (rc == 0)
		rc = sg_store_purge_horizon(r->st, &out->horizon);
	if (rc == 0 && sg_store_stats_get(r->st, &ss) == 0)
		out->tombstones = ss.tombstones;
	return rc;
}

void sg_repl_set_log_reader(sg_repl *r, uint64_t (*log_reader)(void *ctx), void *ctx)
{
	pthread_mutex_lock(&r->rdlock);
	r->log_reader = log_reader;
	r->log_reader_ctx = ctx;
	pthread_mutex_unlock(&r->rdlock);
}

/* ---- snapshots: the paths a peer's listing named ---- */

static void snap_drop(struct peer *p)
{
	free(p->snap_set);
	p->snap_set = NULL;
	p->snap_n = p->snap_cap = 0;
	p->snap_on = 0;
}

static uint64_t path_key(const char *path)
{
	uint64_t h = sg_hash64(path, strlen(path));

	return h ? h : 1;
}

static int snap_insert(uint64_t *set, size_t cap, uint64_t k)
{
	size_t i = (size_t)(k & (cap - 1));

	while (set[i] && set[i] != k)
		i = (i + 1) & (cap - 1);
	if (set[i])
		return 0;
	set[i] = k;
	return 1;
}

/* Add path to the set; -ENOMEM leaves the snapshot unusable (dropped). */
static int snap_add(struct peer *p, const char *path)
{
	if ((p->snap_n + 1) * 2 > p->snap_cap) {
		size_t cap = p->snap_cap ? p->snap_cap * 2 : 1024;
		uint64_t *ns = calloc(cap, sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		for (size_t i = 0; i < p->snap_cap; i++)
			if (p->snap_set[i])
				snap_insert(ns, cap, p->snap_set[i]);
		free(p->snap_set);
		p->snap_set = ns;
		p->snap_cap = cap;
	}
	p->snap_n += (size_t)snap_insert(p->snap_set, p->snap_cap, path_key(path));
	return 0;
}

static int snap_has(const struct peer *p, const char *path)
{
	uint64_t k = path_key(path);
	size_t i;

	if (!p->snap_cap)
		return 0;
	for (i = (size_t)(k & (p->snap_cap - 1)); p->snap_set[i]; i = (i + 1) & (p->snap_cap - 1))
		if (p->snap_set[i] == k)
			return 1;
	return 0;
}

struct snap_ctx {
	sg_repl *r;
	const struct peer *p;
};

/* Must `path` stay after the snapshot: listed, or never sent anywhere? */
static int snap_keep(void *ctx, const char *path)
{
	const struct snap_ctx *sc = ctx;

	return snap_has(sc->p, path) || sg_repl_local_only(sc->r, path);
}

/* The last page of a snapshot arrived: drop what the peer deleted and purged. */
static void snap_finish(sg_repl *r, struct peer *p, const sg_msg *last)
{
	struct snap_ctx sc = {r, p};
	sg_snapshot snap = {.vv = last->vv, .nvv = last->nvv, .keep = snap_keep, .ctx = &sc};
	uint64_t dropped = 0;
	int rc;

	snap.horizon.stamp = last->horizon;
	if (last->horizon.hlc) {
		rc = sg_store_reconcile(r->st, &snap, &dropped);
		if (rc < 0) {
			sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-SNAPSHOT",
			       "snapshot from %s: cannot reconcile: %s", p->url, strerror(-rc));
		} else {
			atomic_fetch_add(&r->snap_received, 1);
			atomic_fetch_add(&r->forgotten, dropped);
			sg_log(dropped ? SG_LOG_NOTICE : SG_LOG_INFO, DOMAIN, "SIGIL-REPL-SNAPSHOT",
			       "snapshot from %s (%zu entries listed): %llu entries it deleted "
			       "and purged are gone here too",
			       p->url, p->snap_n, (unsigned long long)dropped);
		}
	}
	snap_drop(p);
}

/* ---- the server: answer PULL and PUSH ---- */

/*
 * A push held the range (since, next] of its sender's log whole, as a page of
 * a pull would have listed it, and every change of it was taken (none
 * refused: a pull would have kept those for another try after its next
 * pages). A pull cursor into that log that is at `since` or past it (so
 * the range continues what it holds) moves to `next`: the next pull starts
 * there, rather than fetch again what the push brought. Not during a
 * snapshot (the paths its pages list decide what is forgotten at its end),
 * nor for another incarnation of the sender's store. The sender sends a
 * range only from at or above its purge horizon, so a cursor moved so never
 * skips the snapshot a cursor below the horizon needs.
 */
static void push_covers(sg_repl *r, const sg_msg *m)
{
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->npeers; i++) {
		struct peer *p = r->peers[i];
		uint64_t at = p->pull_since;

		if (p->node_id != m->node_id || p->pull_inc != m->incarnation || p->snap_on ||
		    at < m->since || at >= m->next)
			continue;
		p->pull_since = m->next;
		atomic_fetch_add(&r->push_cursor, 1);
	}
	pthread_mutex_unlock(&r->lock);
}

/* Answer m; adv: this node's URL as the requester can reach it. */
static nng_msg *serve(sg_repl *r, const sg_msg *m, const char *adv)
{
	const char *urls[MAX_PEERS];
	sg_msg reply;
	nng_msg *out = NULL;
	int rc;

	peers_learn(r, m);
	if (m->type == SG_MSG_PULL) {
		struct page pg = {.r = r};
		struct vv vv = {0};
		sg_horizon h;
		uint64_t top, since = m->known_incarnation == sg_store_id(r->st) ? m->since : 0;

		puller_note(r, m->node_id, since);
		if (sg_store_purge_horizon(r->st, &h) < 0)
			return NULL;
		if (since && since < h.version && !(m->flags & SG_PULL_IN_SNAPSHOT)) {
			/* it may have missed a delete purged here: everything again */
			sg_log(SG_LOG_INFO, DOMAIN, "SIGIL-REPL-SNAPSHOT-SERVE",
			       "%s (%016llx) has this log up to %llu only, below the purge "
			       "horizon %llu: it gets a snapshot",
			       m->node_name, (unsigned long long)m->node_id,
			       (unsigned long long)since, (unsigned long long)h.version);
			since = 0;
		}
		if (since == 0 && h.stamp.hlc)
			atomic_fetch_add(&r->snap_served, 1);
		/* the vector before the listing: what it covers, the listing has */
		if (sg_store_vv(r->st, vv_cb, &vv) < 0) {
			free(vv.v);
			return NULL;
		}
		pg.max_bytes =
		    m->max_bytes && m->max_bytes < PAGE_BYTES ? m->max_bytes : PAGE_BYTES;
		pg.next = since;
		top = sg_store_version(r->st);
		/* the requester's own changes, where it holds them all: not read,
		 * not sent (it would find each held). Never in a snapshot. */
		if (since && (m->flags & SG_PULL_OWN_HELD))
			rc = sg_store_changes_after_except(r->st, since, 0, m->node_id, page_cb,
			                                   &pg);
		else
			rc = sg_store_changes_after(r->st, since, 0, page_cb, &pg);
		/* the whole log read: the cursor passes the versions purged at its end too */
		if (!pg.more && pg.next < top)
			pg.next = top;
		/* the horizon after it: every delete purged before the listing is under it */
		if (rc < 0 || sg_store_purge_horizon(r->st, &h) < 0) {
			page_free(&pg);
			free(vv.v);
			return NULL;
		}
		msg_head(r, &reply, SG_MSG_CHANGES);
		reply.listen_url = adv;
		reply.next = pg.next;
		reply.more = (uint32_t)pg.more;
		reply.snapshot = since == 0;
		reply.horizon = h.stamp;
		reply.vv = vv.v;
		reply.nvv = vv.n;
		reply.changes = pg.v;
		reply.nchanges = pg.n;
		reply.peers = urls;
		reply.npeers = peer_urls(r, urls, MAX_PEERS);
		rc = to_nng(&reply, &out);
		page_free(&pg);
		free(vv.v);
		return rc ? NULL : out;
	}
	if (m->type == SG_MSG_PUSH) {
		struct outcome o = {0};

		/* a change stamped too far ahead is not held for a pusher: it sends
		 * it again until this clock catches up (a pusher that does not
		 * listen cannot be pulled from) */
		apply_batch(r, m->changes, m->nchanges, 0, NULL, &o, NULL);
		if (m->next && !o.again && !o.refused)
			push_covers(r, m);
		msg_head(r, &reply, SG_MSG_ACK);
		reply.listen_url = adv;
		reply.code = o.again ? EAGAIN : 0; /* EAGAIN: not all taken, send it again */
		return to_nng(&reply, &out) ? NULL : out;
	}
	atomic_fetch_add(&r->malformed, 1);
	return NULL;
}

static void *server_main(void *arg)
{
	struct server *sv = arg;
	sg_repl *r = sv->r;
	nng_aio *aio = sv->aio;
	nng_ctx ctx;

	sg_thread_name("sigil-server");
	if (nng_ctx_open(&ctx, r->rep))
		return NULL;
	for (;;) {
		nng_msg *in, *out;
		sg_msg *m;
		int rv;

		if (atomic_load(&r->stopping))
			break;
		/* bounded, so that a stop ends this thread even if NNG's close hangs */
		nng_aio_set_timeout(aio, SERVE_POLL_MS);
		nng_ctx_recv(ctx, aio);
		nng_aio_wait(aio);
		rv = nng_aio_result(aio);
		if (rv == NNG_ECLOSED)
			break;
		if (rv)
			continue;
		in = nng_aio_get_msg(aio);
		out = NULL;
		if (from_nng(r, in, &m) == 0) {
			char adv[ADV_MAX];

			advertised(r, nng_msg_get_pipe(in), adv, sizeof(adv));
			out = serve(r, m, adv);
			sg_wire_free(m);
		}
		nng_msg_free(in);
		if (!out)
			continue; /* dropped: the requester times out */
		if (atomic_load(&r->stopping)) {
			/* stopping: no send (the requester times out) */
			nng_msg_free(out);
			break;
		}
		nng_aio_set_msg(aio, out);
		nng_ctx_send(ctx, aio);
		nng_aio_wait(aio); /* within SERVE_POLL_MS, the aio's timeout */
		rv = nng_aio_result(aio);
		if (rv)
			nng_msg_free(out);
		if (rv == NNG_ECLOSED)
			break;
	}
	nng_ctx_close(ctx); /* rep is still open: sg_repl_stop() joins first */
	return NULL;
}

/* ---- what NNG counts: refused handshakes and protocol errors ---- */

struct tstats {
	uint64_t auth_in;   /* the listener: TLS handshakes refused */
	uint64_t proto_in;  /* the listener: not our protocol (not SP, or another SP protocol) */
	uint64_t auth_out;  /* the dialers: a peer's certificate not from the cluster CA */
	uint64_t proto_out; /* the dialers: a peer not speaking our protocol */
};

/* The scope `name` ("listener", "dialer") of the object with that id. Not
 * nng_stat_find_listener(): in NNG 1.5.2 it returns the first listener's
 * statistics whichever listener it is asked for. */
static nng_stat *stat_scope(nng_stat *s, const char *name, int id)
{
	for (; s; s = nng_stat_next(s)) {
		nng_stat *found;

		if (nng_stat_type(s) != NNG_STAT_SCOPE)
			continue;
		if (strcmp(nng_stat_name(s), name) == 0) {
			nng_stat *sid = nng_stat_find(s, "id");

			if (sid && nng_stat_value(sid) == (uint64_t)id)
				return s;
		}
		if ((found = stat_scope(nng_stat_child(s), name, id)))
			return found;
	}
	return NULL;
}

static uint64_t stat_of(nng_stat *scope, const char *name)
{
	nng_stat *s = scope ? nng_stat_find(scope, name) : NULL;

	return s ? nng_stat_value(s) : 0;
}

/*
 * Read NNG's counters (nng_stats_get) of the listener and of every peer's
 * dialer. In NNG 1.5.2: auth counts failed TLS handshakes (EPEERAUTH,
 * ECRYPTO), proto counts connections that did not speak SP, reject those of
 * another SP protocol. If `auth` is given, it gets each peer's dialer's auth
 * count, for the peers in `ps` (as many as `np`). 0, or -ENOTSUP when NNG
 * keeps no statistics.
 */
static int transport_read(sg_repl *r, struct tstats *t, struct peer **ps, uint64_t *auth,
                          size_t *np)
{
	nng_dialer ds[MAX_PEERS];
	int open[MAX_PEERS];
	uint64_t auth_base[MAX_PEERS], proto_base[MAX_PEERS];
	nng_stat *all;
	size_t n;
	int rv;

	memset(t, 0, sizeof(*t));
	pthread_mutex_lock(&r->lock);
	n = r->npeers;
	for (size_t i = 0; i < n; i++) {
		open[i] = r->peers[i]->open;
		ds[i] = r->peers[i]->dialer;
		auth_base[i] = r->peers[i]->auth_base;
		proto_base[i] = r->peers[i]->proto_base;
		if (ps)
			ps[i] = r->peers[i];
	}
	/* under the lock, so that a renewal (which carries a dialer's counts
	 * into the base, then closes it) is seen whole or not at all */
	rv = nng_stats_get(&all);
	pthread_mutex_unlock(&r->lock);
	if (np)
		*np = n;
	if (rv != 0)
		return -ENOTSUP;
	if (r->lst_ok) {
		nng_stat *l = stat_scope(all, "listener", nng_listener_id(r->lst));

		t->auth_in = stat_of(l, "auth");
		t->proto_in = stat_of(l, "proto") + stat_of(l, "reject");
	}
	for (size_t i = 0; i < n; i++) {
		nng_stat *d = open[i] ? stat_scope(all, "dialer", nng_dialer_id(ds[i])) : NULL;
		uint64_t a = auth_base[i] + stat_of(d, "auth");

		t->auth_out += a;
		t->proto_out += proto_base[i] + stat_of(d, "proto") + stat_of(d, "reject");
		if (auth)
			auth[i] = a;
	}
	nng_stats_free(all);
	return 0;
}

/* One spell of refusals: 1 when it starts (count moved, quiet before), so
 * that it is logged once; the spell ends after QUIET_NS without one. */
static int spell(uint64_t now_count, uint64_t *seen, int64_t *last_ns, int64_t now)
{
	int start = 0;

	if (now_count > *seen) {
		start = *last_ns == 0;
		*last_ns = now;
	} else if (*last_ns && now - *last_ns > QUIET_NS) {
		*last_ns = 0;
	}
	*seen = now_count;
	return start;
}

/* Log refused peers, once per spell (not for every try of a peer that
 * retries every second). Called from the sync thread only. */
static void transport_watch(sg_repl *r)
{
	struct peer *ps[MAX_PEERS];
	uint64_t auth[MAX_PEERS];
	struct tstats t;
	size_t n = 0;
	int64_t now = sg_mono_ns();

	if (transport_read(r, &t, ps, auth, &n) < 0)
		return;
	if (spell(t.auth_in, &r->auth_seen, &r->auth_last_ns, now))
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-PEER-REFUSED",
		       "refused a peer on %s: its TLS handshake failed (no certificate, or one not "
		       "from the cluster CA); %llu so far",
		       r->listen, (unsigned long long)t.auth_in);
	if (spell(t.proto_in, &r->proto_seen, &r->proto_last_ns, now))
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-PEER-PROTOCOL",
		       "refused a connection on %s: it does not speak this protocol; %llu so far",
		       r->listen, (unsigned long long)t.proto_in);
	for (size_t i = 0; i < n; i++)
		if (spell(auth[i], &ps[i]->auth_seen, &ps[i]->auth_last_ns, now))
			sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-PEER-CERT",
			       "%s presents a certificate that is not from the cluster CA: not "
			       "talking to it; %llu handshakes failed so far",
			       ps[i]->url, (unsigned long long)auth[i]);
}

/* ---- the client: push and pull ---- */

static void close_bounded(const nng_socket *socks, size_t n);
static _Atomic int closes_stuck; /* close_bounded()'s closes not done in time, not done yet */

/*
 * Close p's socket, so that its next exchange dials anew: for a peer that
 * has failed every exchange for RENEW_AFTER_NS. NNG redials a connection
 * that breaks, but a request that times out leaves its connection open, and
 * nothing else is tried while that connection stays: a connection on which
 * no answer comes back, whatever holds it up at either end, would keep the
 * peer out of reach for as long as it stays open. A peer that is down loses
 * nothing by it (its dialer was retrying anyway). Not while NNG leaves
 * closes hanging (nanomsg/nng#1813, see close_bounded()): each would hold a
 * thread for good. Called by p's worker only; 1 if it closed the socket.
 */
static int peer_renew(sg_repl *r, struct peer *p, int64_t now)
{
	nng_socket old;
	nng_stat *all;
	int had = 0;

	if (atomic_load(&closes_stuck) >= CLOSES_STUCK_MAX)
		return 0;
	p->renewed_ns = now;
	pthread_mutex_lock(&r->lock);
	if (!r->stop && p->open) {
		/* what its dialer counted, carried over (transport_read) */
		if (nng_stats_get(&all) == 0) {
			nng_stat *d = stat_scope(all, "dialer", nng_dialer_id(p->dialer));

			p->auth_base += stat_of(d, "auth");
			p->proto_base += stat_of(d, "proto") + stat_of(d, "reject");
			nng_stats_free(all);
		}
		old = p->sock;
		p->open = 0;
		had = 1;
	}
	pthread_mutex_unlock(&r->lock);
	if (!had)
		return 0;
	atomic_fetch_add(&r->renewed, 1);
	sg_log(SG_LOG_NOTICE, DOMAIN, "SIGIL-REPL-RENEW",
	       "%s has not answered for %lld s: a new connection to it", p->url,
	       (long long)((now - p->fail_since_ns) / 1000000000LL));
	close_bounded(&old, 1);
	return 1;
}

static void peer_failed(sg_repl *r, struct peer *p, const char *what, int rc)
{
	int64_t backoff = 200000000LL << (p->failures < 5 ? p->failures : 5);
	int64_t now = sg_mono_ns();

	if (backoff > 5000000000LL)
		backoff = 5000000000LL;
	if (p->failures == 0) {
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-PEER-DOWN", "%s with %s failed: %s",
		       what, p->url, strerror(-rc));
		p->fail_since_ns = now;
	}
	p->failures++;
	p->next_try_ns = now + backoff;
	/* a new connection is tried at the next round, not after the backoff */
	if (now - p->fail_since_ns >= RENEW_AFTER_NS && now - p->renewed_ns >= RENEW_AFTER_NS &&
	    peer_renew(r, p, now))
		p->next_try_ns = 0;
}

static void peer_ok(struct peer *p)
{
	atomic_store(&p->last_ok_ns, sg_mono_ns());
	if (p->failures)
		sg_log(SG_LOG_INFO, DOMAIN, "SIGIL-REPL-PEER-UP", "%s answers again", p->url);
	p->failures = 0;
	p->next_try_ns = 0;
}

/* Send m to p and decode the reply. */
static int exchange(sg_repl *r, struct peer *p, const sg_msg *m, sg_msg **reply)
{
	nng_msg *out, *in;
	int rc, rv;

	rc = peer_open(r, p);
	if (rc)
		return rc;
	rc = to_nng(m, &out);
	if (rc)
		return rc;
	rv = nng_sendmsg(p->sock, out, 0);
	if (rv) {
		nng_msg_free(out);
		return nng_err(rv);
	}
	rv = nng_recvmsg(p->sock, &in, 0);
	if (rv)
		return nng_err(rv);
	if (r->listen_wild) /* what to advertise to this peer from now on */
		advertised(r, nng_msg_get_pipe(in), p->adv, sizeof(p->adv));
	rc = from_nng(r, in, reply);
	nng_msg_free(in);
	return rc;
}

static void pull_from(sg_repl *r, struct peer *p)
{
	const char *urls[MAX_PEERS];
	struct later later = {.pg = {.max_bytes = SIZE_MAX, .r = r}};
	int rewind = 0;
	sg_msg m;

	msg_head(r, &m, SG_MSG_PULL);
	if (r->listen_wild)
		m.listen_url = p->adv; /* updated by each exchange */
	m.max_bytes = PAGE_BYTES;
	m.peers = urls;
	m.npeers = peer_urls(r, urls, MAX_PEERS);
	for (int page = 0; page < MAX_PAGES_PER_PULL; page++) {
		struct later fresh = {.pg = {.max_bytes = SIZE_MAX, .r = r}};
		struct outcome o = {0};
		uint64_t since = p->pull_since, inc = p->pull_inc;
		sg_msg *reply = NULL;
		int rc;

		m.since = since;
		m.known_incarnation = inc;
		/* this node holds every change of its own: the peer may leave them
		 * out, but not from a snapshot's pages (what they do not name is
		 * forgotten at its end, snap_finish); and a snapshot under way goes
		 * on to its end */
		m.flags = p->snap_on ? SG_PULL_IN_SNAPSHOT : SG_PULL_OWN_HELD;
		rc = exchange(r, p, &m, &reply);
		if (rc == 0 && reply->type != SG_MSG_CHANGES) {
			atomic_fetch_add(&r->malformed, 1);
			rc = -EBADMSG;
		}
		if (rc) {
			sg_wire_free(reply);
			peer_failed(r, p, "pull", rc);
			rewind = 1; /* what `later` holds is fetched again */
			break;
		}
		peer_ok(p);
		if (reply->node_id == r->node_id) {
			p->self = 1;
			sg_wire_free(reply);
			rewind = 1;
			break;
		}
		p->node_id = reply->node_id;
		if (reply->snapshot) {
			/* a listing from the start: note every path it names */
			snap_drop(p);
			pthread_mutex_lock(&r->lock);
			p->snap_on = 1;
			pthread_mutex_unlock(&r->lock);
			p->snap_inc = reply->incarnation;
			p->snap_horizon = reply->horizon;
		} else if (p->snap_on && (reply->incarnation != p->snap_inc ||
		                          reply->incarnation != p->pull_inc)) {
			snap_drop(p); /* not a continuation of it */
		} else if (p->snap_on && memcmp(&reply->horizon, &p->snap_horizon,
		                                sizeof(p->snap_horizon)) != 0) {
			/* it purged since the snapshot began: its earlier pages may
			 * name entries deleted and purged since, which its end would
			 * keep here. From the start again (SG_PULL_IN_SNAPSHOT lets a
			 * snapshot run to its end below the horizon only while the
			 * horizon stays where it was) */
			sg_log(SG_LOG_INFO, DOMAIN, "SIGIL-REPL-SNAPSHOT",
			       "%s purged during its snapshot: from the start again", p->url);
			snap_drop(p);
			sg_wire_free(reply);
			later_free(&later);
			pthread_mutex_lock(&r->lock);
			p->pull_since = 0;
			pthread_mutex_unlock(&r->lock);
			return;
		}
		apply_batch(r, reply->changes, reply->nchanges, 1, &fresh, &o, NULL);
		/* what earlier pages could not place may fit now */
		later_retry(r, &later, &o);
		if (fresh.pg.n && !later.set) {
			later.since = since;
			later.inc = inc;
			later.set = 1;
		}
		later_merge(r, &later, &fresh);
		for (size_t i = 0; p->snap_on && i < reply->nchanges; i++)
			if (snap_add(p, reply->changes[i].path) < 0)
				snap_drop(p);
		peers_learn(r, reply);
		atomic_fetch_add(&r->pulls, 1);
		if (o.again) {
			/* not all taken: the cursor stays before this page (before the
			 * page of the oldest change still refused), the next round
			 * fetches it again; applying is idempotent */
			sg_wire_free(reply);
			rewind = 1;
			break;
		}
		pthread_mutex_lock(&r->lock);
		/* a push may have moved the cursor past this page meanwhile
		 * (push_covers): it stays there */
		if (reply->snapshot || p->snap_on || p->pull_inc != reply->incarnation ||
		    p->pull_since < reply->next)
			p->pull_since = reply->next;
		p->pull_inc = reply->incarnation;
		pthread_mutex_unlock(&r->lock);
		if (!reply->more) {
			/* the whole log: what is still refused lost to a newer entry */
			later_refuse(r, &later);
			if (p->snap_on)
				snap_finish(r, p, reply);
			sg_wire_free(reply);
			return;
		}
		sg_wire_free(reply);
	}
	if (rewind && later.set) {
		pthread_mutex_lock(&r->lock);
		p->pull_since = later.since;
		p->pull_inc = later.inc;
		pthread_mutex_unlock(&r->lock);
		later_free(&later);
	} else {
		/* the page limit: the next round goes on from here, not back */
		later_refuse(r, &later);
	}
}

/* Push this node's changes that p has not taken yet. 0: all taken; 1: not
 * all (the peer failed, or did not take everything): the next round sends
 * them again. */
static int push_to(sg_repl *r, struct peer *p)
{
	for (int page = 0; page < MAX_PAGES_PER_PULL; page++) {
		struct page pg = {.r = r, .max_bytes = PAGE_BYTES, .only_origin = r->node_id};
		sg_msg m, *reply = NULL;
		sg_horizon h;
		uint32_t code = 0;
		int rc;

		pg.next = p->push_since;
		rc = sg_store_changes_after(r->st, p->push_since, 0, page_cb, &pg);
		if (rc < 0 || pg.n == 0) {
			/* nothing of ours past it: what it acknowledged covers these too */
			if (rc >= 0 && p->push_acked == p->push_since)
				p->push_acked = pg.next;
			if (rc >= 0)
				p->push_since = pg.next;
			page_free(&pg);
			return rc < 0;
		}
		msg_head(r, &m, SG_MSG_PUSH);
		if (r->listen_wild)
			m.listen_url = p->adv;
		m.changes = pg.v;
		m.nchanges = pg.n;
		/* this page is what a pull's would be: say which range it is
		 * (push_covers), from at or above the purge horizon only */
		if (!pg.gap && pg.next > p->push_since && sg_store_purge_horizon(r->st, &h) == 0 &&
		    p->push_since >= h.version) {
			m.since = p->push_since;
			m.next = pg.next;
		}
		rc = exchange(r, p, &m, &reply);
		if (rc == 0 && reply->type != SG_MSG_ACK) {
			atomic_fetch_add(&r->malformed, 1);
			rc = -EBADMSG;
		}
		if (rc == 0 && reply->node_id == r->node_id)
			p->self = 1;
		if (rc == 0)
			code = reply->code;
		sg_wire_free(reply);
		if (rc) {
			page_free(&pg);
			peer_failed(r, p, "push", rc);
			return 1;
		}
		peer_ok(p);
		if (code) {
			/* it answered, but did not take every change (stamped too far
			 * ahead of its clock, or its store could not): again next round */
			if (!p->push_refused)
				sg_log(
				    SG_LOG_NOTICE, DOMAIN, "SIGIL-REPL-PUSH-AGAIN",
				    "%s did not take all of a push (%s): sent again until it does",
				    p->url, strerror((int)code));
			p->push_refused = 1;
			page_free(&pg);
			return 1;
		}
		p->push_refused = 0;
		p->push_since = pg.next;
		p->push_acked = pg.next;
		atomic_fetch_add(&r->pushes, 1);
		page_free(&pg);
		if (!pg.more)
			return 0;
	}
	return 1; /* the page limit: the rest next round */
}

/* Apply the quarantined changes the clock has caught up with, in the order
 * they came; those not taken for now (a transient store error) stay. */
static void quarantine_retry(sg_repl *r)
{
	struct held *ready = NULL, **pp, **hs;
	struct outcome o = {0};
	sg_change *cs;
	char *again;
	size_t n = 0, i;

	pthread_mutex_lock(&r->qlock);
	pp = &r->quarantine;
	while (*pp) {
		struct held *h = *pp;
		if (too_far_ahead(r, &h->c)) {
			pp = &h->next;
			continue;
		}
		*pp = h->next;
		r->nquarantine--;
		r->qbytes -= h->bytes;
		h->next = ready; /* the quarantine is newest first: this makes it oldest first */
		ready = h;
		n++;
	}
	pthread_mutex_unlock(&r->qlock);
	if (!n)
		return;
	hs = malloc(n * sizeof(*hs));
	cs = malloc(n * sizeof(*cs));
	again = malloc(n);
	for (i = 0; ready; i++) {
		struct held *h = ready;

		ready = h->next;
		if (hs && cs && again) {
			hs[i] = h;
			cs[i] = h->c;
		} else {
			pthread_mutex_lock(&r->qlock); /* no memory: back, for the next round */
			quarantine_link_locked(r, h);
			pthread_mutex_unlock(&r->qlock);
		}
	}
	if (hs && cs && again) {
		apply_batch(r, cs, n, 0, NULL, &o, again);
		for (i = 0; i < n; i++) {
			if (again[i]) {
				pthread_mutex_lock(&r->qlock);
				quarantine_link_locked(r, hs[i]);
				pthread_mutex_unlock(&r->qlock);
			} else {
				held_free(hs[i]);
			}
		}
	}
	free(hs);
	free(cs);
	free(again);
}

/* A peer's worker: push and pull with that one peer when asked. */
/* The round that took sg_repl_stop()'s push is over: tell it. Under r->lock. */
static void final_done(sg_repl *r, struct peer *p, int fin)
{
	if (fin) {
		p->final = 0;
		pthread_cond_broadcast(&r->cond);
	}
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	sg_repl *r = p->r;

	sg_thread_name("sigil-peer");
	pthread_mutex_lock(&r->lock);
	for (;;) {
		int push, pull, fin;

		while (!r->stop && !p->want_push && !p->want_pull)
			pthread_cond_wait(&p->cond, &r->lock);
		if (r->stop)
			break;
		push = p->want_push;
		pull = p->want_pull;
		fin = p->final;
		p->want_push = p->want_pull = 0;
		if (atomic_load(&p->self)) {
			final_done(r, p, fin);
			continue;
		}
		if (p->next_try_ns > sg_mono_ns()) {
			/* backing off: the next round retries, the push too */
			p->push_retry |= push;
			final_done(r, p, fin);
			continue;
		}
		pthread_mutex_unlock(&r->lock);
		if (push)
			push = push_to(r, p);
		if (pull)
			pull_from(r, p);
		pthread_mutex_lock(&r->lock);
		if (push)
			p->push_retry = 1; /* the scheduler asks again next round */
		final_done(r, p, fin);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* How often the scheduler purges: a tenth of the grace, between 1 s and 1 h. */
static int64_t gc_period_ns(const sg_repl *r)
{
	uint64_t ms = r->grace_ms / 10;

	if (ms < 1000)
		ms = 1000;
	if (ms > 3600 * 1000)
		ms = 3600 * 1000;
	return (int64_t)ms * 1000000;
}

/* When the pending push is due: a delete holds it the delete window, for the
 * create that may follow (an editor's save); new empty files alone hold it
 * the create window, for their content (a file's create and its write are
 * then one change to send and to apply, not two); anything else, now. And
 * never sooner than the push gap after the last push: a change after a quiet
 * spell goes at once, a stream of them goes in pushes at most one per gap.
 * Each push costs each peer a message, a store batch and an answer, and
 * several thread hand-offs on both ends, whatever it carries. */
static int64_t push_due(const sg_repl *r)
{
	int64_t gap = r->last_push_ns + r->push_gap_ns;
	int64_t due;

	if (r->push_delete)
		due = r->push_first_ns + (int64_t)r->push_delay_ms * 1000000;
	else if (r->push_plain)
		due = r->push_first_ns;
	else
		due = r->push_first_ns + (int64_t)r->create_delay_ms * 1000000;
	return due > gap ? due : gap;
}

/* The scheduler: wake the workers for pushes right after commits, and for
 * anti-entropy pulls with up to three random peers every pull interval
 * (every peer, at once, when sg_repl_sync_now() asked); every round (each
 * second, or each pull interval if shorter) send again the pushes that were
 * not all taken, and apply the quarantined changes whose time has come;
 * purge tombstones now and then. */
static void *sync_main(void *arg)
{
	sg_repl *r = arg;
	const int64_t round_ns =
	    (int64_t)(r->pull_interval_ms < 1000 ? r->pull_interval_ms : 1000) * 1000000;
	int64_t next_round = sg_mono_ns(), next_pull = next_round;
	int64_t next_gc = sg_mono_ns() + gc_period_ns(r);

	sg_thread_name("sigil-sync");
	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		int64_t now = sg_mono_ns(), wake = next_round < next_gc ? next_round : next_gc;
		struct timespec ts;

		if (now >= next_gc) {
			sg_repl_gc_result res;
			int rc;

			pthread_mutex_unlock(&r->lock);
			rc = sg_repl_gc(r, &res);
			if (rc < 0)
				sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-PURGE",
				       "tombstone purge failed: %s", strerror(-rc));
			pthread_mutex_lock(&r->lock);
			next_gc = sg_mono_ns() + gc_period_ns(r);
			continue;
		}

		if (r->push_pending) {
			int64_t due_at = push_due(r);

			if (now >= due_at) {
				r->push_pending = r->push_delete = r->push_plain = 0;
				r->last_push_ns = now;
				for (size_t i = 0; i < r->npeers; i++) {
					r->peers[i]->want_push = 1;
					pthread_cond_signal(&r->peers[i]->cond);
				}
			} else if (due_at < wake) {
				wake = due_at;
			}
		}
		if (now >= next_round || r->pull_all) {
			uint32_t rnd = 0;
			size_t n = r->npeers, picked = 0, most = r->pull_all ? n : 3;
			int pull = now >= next_pull || r->pull_all;

			r->pull_all = 0;
			/* a push that failed (or was not all taken) goes again, also from
			 * a node that does not listen and so is never pulled from */
			for (size_t i = 0; i < n; i++) {
				struct peer *p = r->peers[i];
				if (p->push_retry && !atomic_load(&p->self)) {
					p->push_retry = 0;
					p->want_push = 1;
					pthread_cond_signal(&p->cond);
				}
			}
			if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
				rnd = (uint32_t)now;
			for (size_t k = 0; pull && k < n && picked < most; k++) {
				struct peer *p = r->peers[(rnd + k) % n];
				if (atomic_load(&p->self))
					continue;
				p->want_pull = 1;
				pthread_cond_signal(&p->cond);
				picked++;
			}
			pthread_mutex_unlock(&r->lock);
			quarantine_retry(r);
			transport_watch(r);
			pthread_mutex_lock(&r->lock);
			next_round = sg_mono_ns() + round_ns;
			if (pull)
				next_pull = sg_mono_ns() + (int64_t)r->pull_interval_ms * 1000000;
			continue;
		}
		ts = sg_mono_deadline(wake);
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

void sg_repl_sync_now(sg_repl *r)
{
	pthread_mutex_lock(&r->lock);
	r->pull_all = 1;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

void sg_repl_on_commit(void *arg, const sg_note *notes, size_t n)
{
	sg_repl *r = arg;
	int wake = 0, del = 0, plain = 0;
	uint64_t top = 0;
	int64_t due;

	for (size_t i = 0; i < n; i++) {
		if (notes[i].local == SG_NOTE_REMOTE || sg_repl_local_only(r, notes[i].name))
			continue;
		wake = 1;
		if (notes[i].version > top)
			top = notes[i].version;
		if (notes[i].type == SG_TYPE_TOMBSTONE)
			del = 1;
		else if (!notes[i].empty_new)
			plain = 1;
	}
	if (!wake)
		return;
	pthread_mutex_lock(&r->lock);
	due = r->push_pending ? push_due(r) : INT64_MAX;
	if (!r->push_pending)
		r->push_first_ns = sg_mono_ns();
	r->push_pending = 1;
	r->push_delete |= del;
	r->push_plain |= plain;
	if (top > r->own_top)
		r->own_top = top;
	/* the scheduler sleeps until the push it knows of is due: wake it only
	 * if this one is due sooner */
	if (push_due(r) < due)
		pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/* ---- TLS ---- */

static char *slurp(const char *path, int *err)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f) {
		*err = -errno;
		return NULL;
	}
	for (;;) {
		if (len + 4096 + 1 > cap) {
			char *nb;
			cap = cap ? cap * 2 : 8192;
			if (cap > (1u << 20) || !(nb = realloc(buf, cap))) {
				free(buf);
				fclose(f);
				*err = -EFBIG;
				return NULL;
			}
			buf = nb;
		}
		size_t got = fread(buf + len, 1, 4096, f);
		len += got;
		if (got < 4096)
			break;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

static int tls_make(const sg_repl_opts *o, nng_tls_mode mode, nng_tls_config **out)
{
	nng_tls_config *cfg;
	char *cert = NULL, *key = NULL;
	int rv, err = 0;

	rv = nng_tls_config_alloc(&cfg, mode);
	if (rv)
		return nng_err(rv);
	rv = nng_tls_config_ca_file(cfg, o->tls_ca);
	if (rv) {
		sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-REPL-TLS", "CA file %s: %s", o->tls_ca,
		       nng_strerror(rv));
		goto fail;
	}
	cert = slurp(o->tls_cert, &err);
	key = cert ? slurp(o->tls_key, &err) : NULL;
	if (!cert || !key) {
		sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-REPL-TLS", "cannot read %s: %s",
		       cert ? o->tls_key : o->tls_cert, strerror(-err));
		rv = NNG_ENOENT;
		goto fail;
	}
	rv = nng_tls_config_own_cert(cfg, cert, key, NULL);
	if (rv) {
		sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-REPL-TLS", "certificate %s with key %s: %s",
		       o->tls_cert, o->tls_key, nng_strerror(rv));
		goto fail;
	}
	rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED);
	if (rv)
		goto fail;
	free(cert);
	free(key);
	*out = cfg;
	return 0;
fail:
	free(cert);
	free(key);
	nng_tls_config_free(cfg);
	return rv == NNG_ENOENT ? -ENOENT : -EINVAL;
}

/* ---- lifetime ---- */

static int name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

int sg_repl_start(sg_repl **out, const sg_repl_opts *o)
{
	sg_repl *r;
	int rc = 0, rv, need_tls = 0;

	if (!o || !o->store || !name_ok(o->node_name)) {
		sg_log(
		    SG_LOG_ERR, DOMAIN, "SIGIL-REPL-OPTS",
		    "a node name of 1 to 64 characters [A-Za-z0-9._-] is needed for replication");
		return -EINVAL;
	}
	if (o->listen && (!url_ok(o->listen) || strlen(o->listen) > 256)) {
		sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-REPL-OPTS",
		       "listen URL '%s': use tls+tcp://HOST:PORT (or tcp://, ipc://)", o->listen);
		return -EINVAL;
	}
	need_tls = o->listen && url_tls(o->listen);
	for (size_t i = 0; i < o->npeers; i++) {
		if (!url_ok(o->peers[i]) || strlen(o->peers[i]) > 256) {
			sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-REPL-OPTS",
			       "peer URL '%s': use tls+tcp://HOST:PORT (or tcp://, ipc://)",
			       o->peers[i]);
			return -EINVAL;
		}
		need_tls |= url_tls(o->peers[i]);
	}
	if (need_tls && (!o->tls_ca || !o->tls_cert || !o->tls_key)) {
		sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-REPL-TLS",
		       "tls+tcp:// needs tls_ca, tls_cert and tls_key");
		return -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->st = o->store;
	r->node_id = sg_store_node_id(o->store);
	r->name = strdup(o->node_name);
	r->listen = o->listen ? strdup(o->listen) : NULL;
	r->listen_wild = o->listen && url_wildcard(o->listen);
	/* learned peers are dialed with this node's own transport only */
	if (need_tls) {
		r->schemes = SCHEME_TLS;
	} else {
		r->schemes = o->listen ? url_scheme(o->listen) : 0;
		for (size_t i = 0; i < o->npeers; i++)
			r->schemes |= url_scheme(o->peers[i]);
	}
	r->max_offset_ms = o->max_offset_ms ? o->max_offset_ms : 500;
	r->qmax =
	    o->max_quarantine_bytes ? o->max_quarantine_bytes : SG_REPL_QUARANTINE_BYTES_DEFAULT;
	r->push_delay_ms = o->push_delay_ms ? o->push_delay_ms : 150;
	r->create_delay_ms = o->create_delay_ms ? o->create_delay_ms : 5;
	r->push_gap_ns = (int64_t)(o->push_gap_ms ? o->push_gap_ms : 10) * 1000000;
	r->pull_interval_ms = o->pull_interval_ms ? o->pull_interval_ms : 1000;
	r->grace_ms =
	    o->tombstone_grace_ms ? o->tombstone_grace_ms : SG_REPL_TOMBSTONE_GRACE_DEFAULT;
	r->started_ns = sg_mono_ns();
	r->log_reader = o->log_reader;
	r->log_reader_ctx = o->log_reader_ctx;
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->qlock, NULL);
	pthread_mutex_init(&r->nlock, NULL);
	pthread_mutex_init(&r->rdlock, NULL);
	pthread_mutex_init(&r->biglock, NULL);
	sg_cond_init_mono(&r->cond);
	rc = patterns_parse(r, o->local_only ? o->local_only : SG_REPL_LOCAL_ONLY_DEFAULT);
	if (!rc && need_tls) {
		rc = tls_make(o, NNG_TLS_MODE_SERVER, &r->tls_srv);
		rc = rc ? rc : tls_make(o, NNG_TLS_MODE_CLIENT, &r->tls_cli);
	}
	if (rc)
		goto fail;
	for (size_t i = 0; i < o->npeers; i++)
		peer_learn_locked(r, o->peers[i], 0);

	if (r->listen) {
		nng_listener l;

		rv = nng_rep0_open(&r->rep);
		if (!rv) {
			r->rep_open = 1;
			nng_socket_set_size(r->rep, NNG_OPT_RECVMAXSZ, RECV_LIMIT);
			rv = nng_listener_create(&l, r->rep, r->listen);
		}
		if (!rv && url_tls(r->listen))
			rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, r->tls_srv);
		if (!rv)
			rv = nng_listener_start(l, 0);
		if (!rv) {
			r->lst = l;
			r->lst_ok = 1;
		}
		if (rv) {
			/* the caller reports it, naming where the URL was configured */
			sg_log(SG_LOG_DEBUG, DOMAIN, "SIGIL-REPL-LISTEN", "cannot listen on %s: %s",
			       r->listen, nng_strerror(rv));
			rc = nng_err(rv);
			goto fail;
		}
		for (int i = 0; i < SERVER_THREADS; i++) {
			struct server *sv = &r->srv[i];

			sv->r = r;
			if (nng_aio_alloc(&sv->aio, NULL, NULL))
				break;
			if (pthread_create(&sv->thread, NULL, server_main, sv)) {
				nng_aio_free(sv->aio);
				break;
			}
			r->nsrv++;
		}
	}
	if (pthread_create(&r->sync, NULL, sync_main, r)) {
		rc = -EAGAIN;
		goto fail;
	}
	r->sync_started = 1;
	sg_log(SG_LOG_INFO, DOMAIN, "SIGIL-REPL-START", "node %s (%016llx) %s%s, %zu peers",
	       r->name, (unsigned long long)r->node_id,
	       r->listen ? "listening on " : "not listening", r->listen ? r->listen : "",
	       r->npeers);
	*out = r;
	return 0;
fail:
	sg_repl_stop(r);
	return rc;
}

/*
 * Close sockets, waiting at most CLOSE_WAIT_MS. NNG 1.5.2's reaper thread
 * can stick for good on a pipe torn down at the wrong moment
 * (nanomsg/nng#1813, fixed in 1.8.0), and every nng_close() after that
 * waits on it forever. Rather than hang the unmount, a close that does not
 * finish in time is left to its thread and logged.
 */
#define CLOSE_WAIT_MS 2000

struct closer {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done, abandoned;
	size_t n;
	nng_socket socks[];
};

static void closer_free(struct closer *c)
{
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

static void *closer_main(void *arg)
{
	struct closer *c = arg;
	int abandoned;

	sg_thread_name("sigil-closer");
	for (size_t i = 0; i < c->n; i++)
		nng_close(c->socks[i]);
	pthread_mutex_lock(&c->lock);
	c->done = 1;
	abandoned = c->abandoned;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (abandoned) {
		atomic_fetch_sub(&closes_stuck, 1);
		closer_free(c);
	}
	return NULL;
}

static void close_bounded(const nng_socket *socks, size_t n)
{
	struct closer *c;
	struct timespec ts;
	pthread_attr_t attr;
	pthread_t t;
	int done, started;

	if (!n)
		return;
	c = calloc(1, sizeof(*c) + n * sizeof(c->socks[0]));
	if (!c) {
		for (size_t i = 0; i < n; i++)
			nng_close(socks[i]);
		return;
	}
	pthread_mutex_init(&c->lock, NULL);
	sg_cond_init_mono(&c->cond);
	c->n = n;
	memcpy(c->socks, socks, n * sizeof(c->socks[0]));
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	started = pthread_create(&t, &attr, closer_main, c) == 0;
	pthread_attr_destroy(&attr);
	if (!started) {
		closer_main(c);
		closer_free(c);
		return;
	}
	ts = sg_mono_deadline(sg_mono_ns() + (int64_t)CLOSE_WAIT_MS * 1000000);
	pthread_mutex_lock(&c->lock);
	while (!c->done)
		if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT)
			break;
	done = c->done;
	if (!done) {
		c->abandoned = 1;
		atomic_fetch_add(&closes_stuck, 1);
	}
	pthread_mutex_unlock(&c->lock);
	if (done)
		closer_free(c);
	else
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-CLOSE-STUCK",
		       "NNG did not close %zu socket(s) within %d ms (a known NNG 1.5 hang); "
		       "going on without them",
		       n, CLOSE_WAIT_MS);
}

/*
 * What this node has not pushed yet (held by the push gap or a window) goes
 * now, to the peers that answer, and the stop waits up to FINAL_PUSH_MS for
 * it: a change made just before an unmount reaches the peers now, not by a
 * pull once this node is back. A peer that does not take it in time gets it
 * so. Peers this node has pushed its latest change to are not asked (nor
 * waited for: the worker of a peer that went away may be in an exchange
 * that times out only after REQ_TIMEOUT_MS).
 */
static void final_push(sg_repl *r)
{
	struct timespec ts = sg_mono_deadline(sg_mono_ns() + (int64_t)FINAL_PUSH_MS * 1000000);
	int waiting = 0;

	pthread_mutex_lock(&r->lock);
	r->push_pending = r->push_delete = r->push_plain = 0;
	r->last_push_ns = sg_mono_ns();
	for (size_t i = 0; i < r->npeers; i++) {
		struct peer *p = r->peers[i];

		if (atomic_load(&p->self) || atomic_load(&p->failures) || !p->thread_started ||
		    atomic_load(&p->push_since) >= r->own_top)
			continue;
		p->want_push = p->final = 1;
		pthread_cond_signal(&p->cond);
		waiting = 1;
	}
	while (waiting) {
		waiting = 0;
		for (size_t i = 0; i < r->npeers; i++)
			waiting |= r->peers[i]->final;
		if (waiting && pthread_cond_timedwait(&r->cond, &r->lock, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&r->lock);
}

void sg_repl_stop(sg_repl *r)
{
	nng_socket socks[MAX_PEERS];
	size_t nsocks = 0;

	if (!r)
		return;
	final_push(r);
	pthread_mutex_lock(&r->lock);
	r->stop = 1; /* from here peer_open() opens nothing, no peer is added */
	atomic_store(&r->stopping, 1);
	pthread_cond_signal(&r->cond);
	for (size_t i = 0; i < r->npeers; i++) {
		struct peer *p = r->peers[i];
		if (p->open)
			socks[nsocks++] = p->sock;
		p->open = 0;
		pthread_cond_signal(&p->cond);
	}
	pthread_mutex_unlock(&r->lock);
	/*
	 * Outside r->lock: a worker woken by the close may need it on its way
	 * out. A worker blocked on a silent peer wakes with NNG_ECLOSED, or at
	 * worst when its request times out (REQ_TIMEOUT_MS).
	 */
	close_bounded(socks, nsocks);
	if (r->sync_started)
		pthread_join(r->sync, NULL);
	for (size_t i = 0; i < r->npeers; i++)
		if (r->peers[i]->thread_started)
			pthread_join(r->peers[i]->thread, NULL);
	/* the server threads end before rep closes (struct server): a stopped
	 * aio ends the wait in progress and fails any later one, and stopping
	 * is set, so each leaves its loop and closes its context */
	for (int i = 0; i < r->nsrv; i++)
		nng_aio_stop(r->srv[i].aio);
	for (int i = 0; i < r->nsrv; i++) {
		pthread_join(r->srv[i].thread, NULL);
		nng_aio_free(r->srv[i].aio);
	}
	r->nsrv = 0;
	if (r->rep_open)
		close_bounded(&r->rep, 1);
	for (size_t i = 0; i < r->npeers; i++) {
		pthread_cond_destroy(&r->peers[i]->cond);
		snap_drop(r->peers[i]);
		free(r->peers[i]->url);
		free(r->peers[i]);
	}
	while (r->quarantine) {
		struct held *h = r->quarantine;
		r->quarantine = h->next;
		held_free(h);
	}
	if (r->tls_srv)
		nng_tls_config_free(r->tls_srv);
	if (r->tls_cli)
		nng_tls_config_free(r->tls_cli);
	for (size_t i = 0; i < r->npatterns; i++)
		free(r->patterns[i]);
	free(r->patterns);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->qlock);
	pthread_mutex_destroy(&r->nlock);
	pthread_mutex_destroy(&r->rdlock);
	pthread_mutex_destroy(&r->biglock);
	pthread_cond_destroy(&r->cond);
	free(r->name);
	free(r->listen);
	free(r);
}

void sg_repl_stats_get(sg_repl *r, sg_repl_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->applied = atomic_load(&r->applied);
	out->duplicates = atomic_load(&r->duplicates);
	out->stale = atomic_load(&r->stale);
	out->quarantined = atomic_load(&r->quarantined);
	out->malformed = atomic_load(&r->malformed);
	out->refused = atomic_load(&r->refused);
	out->deferred = atomic_load(&r->deferred);
	out->pushes = atomic_load(&r->pushes);
	out->pulls = atomic_load(&r->pulls);
	out->purged = atomic_load(&r->purged);
	out->snapshots_served = atomic_load(&r->snap_served);
	out->snapshots_received = atomic_load(&r->snap_received);
	out->forgotten = atomic_load(&r->forgotten);
	out->oversized = atomic_load(&r->oversized);
	out->too_large = atomic_load(&r->too_large);
	out->pushes_as_pulls = atomic_load(&r->push_cursor);
	out->renewed = atomic_load(&r->renewed);
	{
		struct tstats t;

		if (transport_read(r, &t, NULL, NULL, NULL) == 0) {
			out->tls_refused = t.auth_in;
			out->tls_failed = t.auth_out;
			out->proto_errors = t.proto_in + t.proto_out;
		}
	}
	pthread_mutex_lock(&r->lock);
	out->peers = r->npeers;
	pthread_mutex_unlock(&r->lock);
}

void sg_repl_peers(sg_repl *r, void (*cb)(void *ctx, const sg_repl_peer *p), void *ctx)
{
	int64_t now = sg_mono_ns();

	/* the sync thread updates the counters without the lock: a snapshot may be
	 * a moment old, never torn in a way that matters for a status line */
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->npeers; i++) {
		struct peer *p = r->peers[i];
		int64_t ok = atomic_load(&p->last_ok_ns);
		sg_repl_peer info = {
		    .url = p->url,
		    .node_id = p->node_id,
		    .up = ok && p->failures == 0,
		    .failures = p->failures,
		    .last_ok_ms = ok ? (now - ok) / 1000000 : -1,
		    .pulled = p->pull_since,
		    .pushed = p->push_since,
		    .acked = p->push_acked,
		};
		if (p->self)
			continue;
		/* its latest pull from this node (the pullers are under r->lock too) */
		for (size_t j = 0; info.node_id && j < r->npullers; j++)
			if (r->pullers[j].node_id == info.node_id)
				info.pulled_by = r->pullers[j].cursor;
		info.holds = info.acked > info.pulled_by ? info.acked : info.pulled_by;
		cb(ctx, &info);
	}
	pthread_mutex_unlock(&r->lock);
}

int sg_repl_check_message(const void *buf, size_t len)
{
	sg_msg *m = NULL;
	int rc = sg_wire_decode(buf, len, NULL, &m);

	sg_wire_free(m);
	return rc;
}
