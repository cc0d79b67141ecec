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
#define MAX_MSG (80u << 20)   /* largest message: one 64 MiB file and its envelope */
#define PAGE_BYTES (4u << 20) /* a pull page, unless one change is larger */
#define REQ_TIMEOUT_MS 3000
#define SERVER_THREADS 3
#define MAX_PEERS 64
#define MAX_PAGES_PER_PULL 256
#define MAX_QUARANTINE 10000

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
	int64_t next_try_ns;         /* back off after failures */
	_Atomic unsigned failures;
	/* each peer has its own worker, so a frozen peer holds up nobody else */
	sg_repl *r;
	pthread_t thread;
	int thread_started;
	pthread_cond_t cond;        /* with r->lock: work for this peer */
	int want_push, want_pull;   /* under r->lock */
	_Atomic int64_t last_ok_ns; /* monotonic time of the last good exchange, 0: never */
};

struct held {
	sg_change c;
	void *block; /* the change's bytes (a decoded message copy) */
	struct held *next;
};

struct sg_repl {
	sg_store *st;
	char *name;
	uint64_t node_id;
	char *listen;
	nng_tls_config *tls_srv, *tls_cli;
	nng_socket rep;
	int rep_open;
	pthread_t srv[SERVER_THREADS];
	int nsrv;
	pthread_t sync;
	int sync_started;

	pthread_mutex_t lock; /* peers list, push state, stop */
	pthread_cond_t cond;
	int stop;
	int push_pending, push_delete;
	int64_t push_first_ns;
	int pull_all; /* sg_repl_sync_now(): the next round pulls from every peer, now */
	struct peer *peers[MAX_PEERS];
	size_t npeers;

	char **patterns;
	size_t npatterns;
	unsigned max_offset_ms, push_delay_ms, pull_interval_ms;

	pthread_mutex_t qlock; /* the quarantine, filled by the peer workers */
	struct held *quarantine;
	size_t nquarantine;

	_Atomic uint64_t applied, stale, quarantined, malformed, refused, pushes, pulls;
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

static int url_ok(const char *url)
{
	return strncmp(url, "tcp://", 6) == 0 || strncmp(url, "tls+tcp://", 10) == 0 ||
	       strncmp(url, "ipc://", 6) == 0 || strncmp(url, "inproc://", 9) == 0;
}

static int url_tls(const char *url)
{
	return strncmp(url, "tls+tcp://", 10) == 0;
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

/* Add a peer URL if new (not ours, not known), with its worker. Called with r->lock held. */
static void peer_learn_locked(sg_repl *r, const char *url)
{
	struct peer *p;

	if (!url || !*url || !url_ok(url) || (r->listen && strcmp(url, r->listen) == 0))
		return;
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
	peer_learn_locked(r, m->listen_url);
	for (size_t i = 0; i < m->npeers; i++)
		peer_learn_locked(r, m->peers[i]);
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
	nng_socket_set_size(p->sock, NNG_OPT_RECVMAXSZ, MAX_MSG);
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
	m->listen_url = r->listen ? r->listen : "";
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

static int to_nng(const sg_msg *m, nng_msg **out)
{
	void *buf;
	size_t len;
	int rc = sg_wire_encode(m, &buf, &len), rv;

	if (rc)
		return rc;
	rv = nng_msg_alloc(out, 0);
	if (!rv)
		rv = nng_msg_append(*out, buf, len);
	free(buf);
	if (rv) {
		nng_msg_free(*out);
		return nng_err(rv);
	}
	return 0;
}

static int from_nng(sg_repl *r, nng_msg *nm, sg_msg **out)
{
	sg_wire_limits lim = {.max_msg = MAX_MSG, .max_file = sg_store_max_file_size(r->st)};
	int rc = sg_wire_decode(nng_msg_body(nm), nng_msg_len(nm), &lim, out);

	if (rc) {
		uint64_t n = atomic_fetch_add(&r->malformed, 1) + 1;
		/* once, then every 1000th: a hostile peer must not flood the log */
		if (n == 1 || n % 1000 == 0)
			sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-MALFORMED",
			       "dropped a malformed message of %zu bytes (%s); %llu so far",
			       nng_msg_len(nm), strerror(-rc), (unsigned long long)n);
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

static int page_cb(void *ctx, const sg_change *c)
{
	struct page *pg = ctx;
	int rc;

	/* the root's own attributes stay local: it has no path a peer could apply */
	if (!*c->path || sg_repl_local_only(pg->r, c->path) ||
	    (pg->only_origin && c->stamp.origin != pg->only_origin)) {
		pg->next = c->version; /* not for peers: step over it */
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

static void held_free(struct held *h)
{
	free(h->block);
	free(h);
}

/* Keep a change stamped too far ahead until the local clock catches up. */
static void quarantine_add(sg_repl *r, const sg_change *c)
{
	struct page pg = {.max_bytes = SIZE_MAX, .r = r};
	struct held *h;

	if (page_add(&pg, c) != 0 || !(h = calloc(1, sizeof(*h)))) {
		page_free(&pg);
		return;
	}
	h->c = pg.v[0];
	h->block = pg.blocks[0];
	free(pg.v);
	free(pg.blocks);
	pthread_mutex_lock(&r->qlock);
	if (r->nquarantine >= MAX_QUARANTINE) {
		pthread_mutex_unlock(&r->qlock);
		held_free(h);
		return;
	}
	h->next = r->quarantine;
	r->quarantine = h;
	r->nquarantine++;
	pthread_mutex_unlock(&r->qlock);
}

static int too_far_ahead(sg_repl *r, const sg_change *c)
{
	uint64_t limit = ((uint64_t)(sg_now_ns() / 1000000) + r->max_offset_ms) << 16;

	return c->stamp.hlc > limit;
}

/* Count and log one store result. */
static void applied(sg_repl *r, const sg_change *c, int rc)
{
	if (rc == 0) {
		atomic_fetch_add(&r->applied, 1);
		sg_log(SG_LOG_DEBUG, DOMAIN, "SIGIL-REPL-APPLIED", "%s from %016llx", c->path,
		       (unsigned long long)c->stamp.origin);
	} else if (rc == -ESTALE) {
		atomic_fetch_add(&r->stale, 1);
	} else {
		uint64_t n = atomic_fetch_add(&r->refused, 1) + 1;
		if (n <= 10 || n % 1000 == 0)
			sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-REFUSED", "%s from %016llx: %s",
			       c->path, (unsigned long long)c->stamp.origin, strerror(-rc));
	}
}

/* Is c fit to apply now? 0: apply; 1: skip (local-only, or held for later). */
static int screen(sg_repl *r, const sg_change *c, int may_quarantine)
{
	if (sg_repl_local_only(r, c->path))
		return 1;
	if (too_far_ahead(r, c)) {
		uint64_t n = atomic_fetch_add(&r->quarantined, 1) + 1;
		if (n == 1 || n % 1000 == 0)
			sg_log(
			    SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-SKEW",
			    "%s from %016llx is stamped %llu ms ahead of this clock (max %u ms): "
			    "held until then; %llu so far",
			    c->path, (unsigned long long)c->stamp.origin,
			    (unsigned long long)((c->stamp.hlc >> 16) -
			                         (uint64_t)(sg_now_ns() / 1000000)),
			    r->max_offset_ms, (unsigned long long)n);
		if (may_quarantine)
			quarantine_add(r, c);
		return 1;
	}
	return 0;
}

static void apply_one(sg_repl *r, const sg_change *c, int may_quarantine)
{
	if (screen(r, c, may_quarantine) == 0)
		applied(r, c, sg_store_apply(r->st, c));
}

/* Apply a page of changes in order, queued together: one commit, not one each. */
static void apply_all(sg_repl *r, const sg_change *cs, size_t n, int may_quarantine)
{
	sg_change *ok = malloc((n ? n : 1) * sizeof(*ok));
	int *rcs = malloc((n ? n : 1) * sizeof(*rcs));
	size_t k = 0;

	if (!ok || !rcs) {
		free(ok);
		free(rcs);
		for (size_t i = 0; i < n; i++)
			apply_one(r, &cs[i], may_quarantine);
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (screen(r, &cs[i], may_quarantine) == 0)
			ok[k++] = cs[i];
	if (k && sg_store_apply_many(r->st, ok, k, rcs) == 0)
		for (size_t i = 0; i < k; i++)
			applied(r, &ok[i], rcs[i]);
	free(ok);
	free(rcs);
}

/* ---- the server: answer PULL and PUSH ---- */

static nng_msg *serve(sg_repl *r, const sg_msg *m)
{
	const char *urls[MAX_PEERS];
	sg_msg reply;
	nng_msg *out = NULL;
	int rc;

	peers_learn(r, m);
	if (m->type == SG_MSG_PULL) {
		struct page pg = {.r = r};
		uint64_t since = m->known_incarnation == sg_store_id(r->st) ? m->since : 0;

		pg.max_bytes =
		    m->max_bytes && m->max_bytes < PAGE_BYTES ? m->max_bytes : PAGE_BYTES;
		pg.next = since;
		rc = sg_store_changes_after(r->st, since, 0, page_cb, &pg);
		if (rc < 0) {
			page_free(&pg);
			return NULL;
		}
		msg_head(r, &reply, SG_MSG_CHANGES);
		reply.next = pg.next;
		reply.more = (uint32_t)pg.more;
		reply.changes = pg.v;
		reply.nchanges = pg.n;
		reply.peers = urls;
		reply.npeers = peer_urls(r, urls, MAX_PEERS);
		rc = to_nng(&reply, &out);
		page_free(&pg);
		return rc ? NULL : out;
	}
	if (m->type == SG_MSG_PUSH) {
		apply_all(r, m->changes, m->nchanges, 0);
		msg_head(r, &reply, SG_MSG_ACK);
		return to_nng(&reply, &out) ? NULL : out;
	}
	atomic_fetch_add(&r->malformed, 1);
	return NULL;
}

static void *server_main(void *arg)
{
	sg_repl *r = arg;
	nng_aio *aio;
	nng_ctx ctx;

	if (nng_aio_alloc(&aio, NULL, NULL))
		return NULL;
	if (nng_ctx_open(&ctx, r->rep)) {
		nng_aio_free(aio);
		return NULL;
	}
	for (;;) {
		nng_msg *in, *out;
		sg_msg *m;
		int rv;

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
			out = serve(r, m);
			sg_wire_free(m);
		}
		nng_msg_free(in);
		if (!out)
			continue; /* dropped: the requester times out */
		nng_aio_set_msg(aio, out);
		nng_ctx_send(ctx, aio);
		nng_aio_wait(aio);
		rv = nng_aio_result(aio);
		if (rv)
			nng_msg_free(out);
		if (rv == NNG_ECLOSED)
			break;
	}
	nng_ctx_close(ctx);
	nng_aio_free(aio);
	return NULL;
}

/* ---- the client: push and pull ---- */

static void peer_failed(sg_repl *r, struct peer *p, const char *what, int rc)
{
	int64_t backoff = 200000000LL << (p->failures < 5 ? p->failures : 5);

	if (backoff > 5000000000LL)
		backoff = 5000000000LL;
	if (p->failures == 0)
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-REPL-PEER-DOWN", "%s with %s failed: %s",
		       what, p->url, strerror(-rc));
	p->failures++;
	p->next_try_ns = sg_mono_ns() + backoff;
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
	rc = from_nng(r, in, reply);
	nng_msg_free(in);
	return rc;
}

static void pull_from(sg_repl *r, struct peer *p)
{
	const char *urls[MAX_PEERS];
	sg_msg m;

	msg_head(r, &m, SG_MSG_PULL);
	m.max_bytes = PAGE_BYTES;
	m.peers = urls;
	m.npeers = peer_urls(r, urls, MAX_PEERS);
	for (int page = 0; page < MAX_PAGES_PER_PULL; page++) {
		sg_msg *reply = NULL;
		int rc;

		m.since = p->pull_since;
		m.known_incarnation = p->pull_inc;
		rc = exchange(r, p, &m, &reply);
		if (rc == 0 && reply->type != SG_MSG_CHANGES)
			rc = -EBADMSG;
		if (rc) {
			sg_wire_free(reply);
			peer_failed(r, p, "pull", rc);
			return;
		}
		peer_ok(p);
		if (reply->node_id == r->node_id) {
			p->self = 1;
			sg_wire_free(reply);
			return;
		}
		p->node_id = reply->node_id;
		apply_all(r, reply->changes, reply->nchanges, 1);
		peers_learn(r, reply);
		p->pull_since = reply->next;
		p->pull_inc = reply->incarnation;
		atomic_fetch_add(&r->pulls, 1);
		if (!reply->more) {
			sg_wire_free(reply);
			return;
		}
		sg_wire_free(reply);
	}
}

static void push_to(sg_repl *r, struct peer *p)
{
	for (int page = 0; page < MAX_PAGES_PER_PULL; page++) {
		struct page pg = {.r = r, .max_bytes = PAGE_BYTES, .only_origin = r->node_id};
		sg_msg m, *reply = NULL;
		int rc;

		pg.next = p->push_since;
		rc = sg_store_changes_after(r->st, p->push_since, 0, page_cb, &pg);
		if (rc < 0 || pg.n == 0) {
			if (rc >= 0)
				p->push_since = pg.next;
			page_free(&pg);
			return;
		}
		msg_head(r, &m, SG_MSG_PUSH);
		m.changes = pg.v;
		m.nchanges = pg.n;
		rc = exchange(r, p, &m, &reply);
		if (rc == 0 && reply->type != SG_MSG_ACK)
			rc = -EBADMSG;
		if (rc == 0 && reply->node_id == r->node_id)
			p->self = 1;
		sg_wire_free(reply);
		if (rc) {
			page_free(&pg);
			peer_failed(r, p, "push", rc);
			return;
		}
		peer_ok(p);
		p->push_since = pg.next;
		atomic_fetch_add(&r->pushes, 1);
		page_free(&pg);
		if (!pg.more)
			return;
	}
}

static void quarantine_retry(sg_repl *r)
{
	struct held *ready = NULL, **pp;

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
		h->next = ready;
		ready = h;
	}
	pthread_mutex_unlock(&r->qlock);
	while (ready) {
		struct held *h = ready;
		ready = h->next;
		apply_one(r, &h->c, 0);
		held_free(h);
	}
}

/* A peer's worker: push and pull with that one peer when asked. */
static void *peer_main(void *arg)
{
	struct peer *p = arg;
	sg_repl *r = p->r;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		int push, pull;

		while (!r->stop && !p->want_push && !p->want_pull)
			pthread_cond_wait(&p->cond, &r->lock);
		if (r->stop)
			break;
		push = p->want_push;
		pull = p->want_pull;
		p->want_push = p->want_pull = 0;
		if (atomic_load(&p->self) || p->next_try_ns > sg_mono_ns())
			continue; /* backing off: the next round retries */
		pthread_mutex_unlock(&r->lock);
		if (push)
			push_to(r, p);
		if (pull)
			pull_from(r, p);
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* The scheduler: wake the workers for pushes right after commits, and for
 * anti-entropy pulls with up to three random peers every interval (every
 * peer, at once, when sg_repl_sync_now() asked). */
static void *sync_main(void *arg)
{
	sg_repl *r = arg;
	int64_t next_pull = sg_mono_ns();

	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		int64_t now = sg_mono_ns(), wake = next_pull;
		struct timespec ts;

		if (r->push_pending) {
			int64_t due_at = r->push_first_ns +
			                 (r->push_delete ? (int64_t)r->push_delay_ms * 1000000 : 0);
			if (now >= due_at) {
				r->push_pending = r->push_delete = 0;
				for (size_t i = 0; i < r->npeers; i++) {
					r->peers[i]->want_push = 1;
					pthread_cond_signal(&r->peers[i]->cond);
				}
			} else if (due_at < wake) {
				wake = due_at;
			}
		}
		if (now >= next_pull || r->pull_all) {
			uint32_t rnd = 0;
			size_t n = r->npeers, picked = 0, most = r->pull_all ? n : 3;

			r->pull_all = 0;
			if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
				rnd = (uint32_t)now;
			for (size_t k = 0; k < n && picked < most; k++) {
				struct peer *p = r->peers[(rnd + k) % n];
				if (atomic_load(&p->self))
					continue;
				p->want_pull = 1;
				pthread_cond_signal(&p->cond);
				picked++;
			}
			pthread_mutex_unlock(&r->lock);
			quarantine_retry(r);
			pthread_mutex_lock(&r->lock);
			next_pull = sg_mono_ns() + (int64_t)r->pull_interval_ms * 1000000;
			continue;
		}
		ts.tv_sec = wake / 1000000000;
		ts.tv_nsec = wake % 1000000000;
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
	int wake = 0, del = 0;

	for (size_t i = 0; i < n; i++) {
		if (!notes[i].local || sg_repl_local_only(r, notes[i].name))
			continue;
		wake = 1;
		if (notes[i].type == SG_TYPE_TOMBSTONE)
			del = 1;
	}
	if (!wake)
		return;
	pthread_mutex_lock(&r->lock);
	if (!r->push_pending)
		r->push_first_ns = sg_mono_ns();
	r->push_pending = 1;
	r->push_delete |= del;
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
	r->max_offset_ms = o->max_offset_ms ? o->max_offset_ms : 500;
	r->push_delay_ms = o->push_delay_ms ? o->push_delay_ms : 150;
	r->pull_interval_ms = o->pull_interval_ms ? o->pull_interval_ms : 1000;
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->qlock, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&r->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	rc = patterns_parse(r, o->local_only ? o->local_only : SG_REPL_LOCAL_ONLY_DEFAULT);
	if (!rc && need_tls) {
		rc = tls_make(o, NNG_TLS_MODE_SERVER, &r->tls_srv);
		rc = rc ? rc : tls_make(o, NNG_TLS_MODE_CLIENT, &r->tls_cli);
	}
	if (rc)
		goto fail;
	for (size_t i = 0; i < o->npeers; i++)
		peer_learn_locked(r, o->peers[i]);

	if (r->listen) {
		nng_listener l;

		rv = nng_rep0_open(&r->rep);
		if (!rv) {
			r->rep_open = 1;
			nng_socket_set_size(r->rep, NNG_OPT_RECVMAXSZ, MAX_MSG);
			rv = nng_listener_create(&l, r->rep, r->listen);
		}
		if (!rv && url_tls(r->listen))
			rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, r->tls_srv);
		if (!rv)
			rv = nng_listener_start(l, 0);
		if (rv) {
			/* the caller reports it, naming where the URL was configured */
			sg_log(SG_LOG_DEBUG, DOMAIN, "SIGIL-REPL-LISTEN", "cannot listen on %s: %s",
			       r->listen, nng_strerror(rv));
			rc = nng_err(rv);
			goto fail;
		}
		for (int i = 0; i < SERVER_THREADS; i++) {
			if (pthread_create(&r->srv[i], NULL, server_main, r))
				break;
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

void sg_repl_stop(sg_repl *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = 1;
	pthread_cond_signal(&r->cond);
	for (size_t i = 0; i < r->npeers; i++) {
		struct peer *p = r->peers[i];
		if (p->open) /* a worker blocked on a silent peer wakes with NNG_ECLOSED */
			nng_close(p->sock);
		p->open = 0;
		pthread_cond_signal(&p->cond);
	}
	pthread_mutex_unlock(&r->lock);
	if (r->sync_started)
		pthread_join(r->sync, NULL);
	for (size_t i = 0; i < r->npeers; i++)
		if (r->peers[i]->thread_started)
			pthread_join(r->peers[i]->thread, NULL);
	if (r->rep_open)
		nng_close(r->rep); /* wakes the server threads with NNG_ECLOSED */
	for (int i = 0; i < r->nsrv; i++)
		pthread_join(r->srv[i], NULL);
	for (size_t i = 0; i < r->npeers; i++) {
		pthread_cond_destroy(&r->peers[i]->cond);
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
	pthread_cond_destroy(&r->cond);
	free(r->name);
	free(r->listen);
	free(r);
}

void sg_repl_stats_get(sg_repl *r, sg_repl_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->applied = atomic_load(&r->applied);
	out->stale = atomic_load(&r->stale);
	out->quarantined = atomic_load(&r->quarantined);
	out->malformed = atomic_load(&r->malformed);
	out->refused = atomic_load(&r->refused);
	out->pushes = atomic_load(&r->pushes);
	out->pulls = atomic_load(&r->pulls);
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
		};
		if (p->self)
			continue;
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
