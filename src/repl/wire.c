/* wire.c: encoder and validating decoder of the messages replication peers exchange (wire_i.h).
 * Self-contained (store.h's types and constants only) so that it can be fuzzed on its own. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repl/wire_i.h"

#define WIRE_NAME_MAX 64
#define WIRE_URL_MAX 256
#define WIRE_XATTRS_MAX 256
#define WIRE_XATTR_PREFIX "user."
#define WIRE_XATTR_PREFIX_LEN 5
#define WIRE_XATTR_NAME_MAX (WIRE_XATTR_PREFIX_LEN + 250)
#define WIRE_XATTR_VALUE_MAX 65536
#define WIRE_DEFAULT_MAX_MSG ((size_t)80 << 20)
#define WIRE_DEFAULT_MAX_CHANGES 100000
#define WIRE_DEFAULT_MAX_PEERS 256

/* magic, version, type, node_id, incarnation, then the lengths of node_name and listen_url */
#define WIRE_HEADER_FIXED (4 + 2 + 2 + 8 + 8 + 1 + 2)
/* path length, type, mode, uid, gid, mtime, ctime, stamp, base, data length, nxattrs */
#define WIRE_CHANGE_FIXED (2 + 1 + 4 * 3 + 8 * 2 + 8 * 3 * 2 + 4 + 2)
#define WIRE_XATTR_FIXED (1 + 4)
#define WIRE_VV_ENTRY (8 + 8)
/* the most a CHANGES message takes besides its changes: the header with the
 * longest name and URL, the fixed fields, the largest version vector and
 * peer list, the change count (a PUSH takes less) */
#define WIRE_ENVELOPE_MAX                                                                          \
	(WIRE_HEADER_FIXED + WIRE_NAME_MAX + WIRE_URL_MAX + 8 + 1 + 1 + 8 * 3 + 2 +                \
	 (size_t)SG_WIRE_VV_MAX * WIRE_VV_ENTRY + 4 + 2 +                                          \
	 (size_t)WIRE_DEFAULT_MAX_PEERS * (2 + WIRE_URL_MAX))

/* ---- validators, shared by encode and decode: 1 when valid ---------------- */

static int name_ok(const char *s, size_t n)
{
	if (n == 0 || n > WIRE_NAME_MAX) {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-')) {
			return 0;
		}
	}
	return 1;
}

static const char *const url_schemes[] = {"tcp://", "tls+tcp://", "ipc://", "inproc://"};

/* Printable ASCII (space included), a known scheme and something after it. */
static int url_ok(const char *s, size_t n, int may_be_empty)
{
	if (n == 0) {
		return may_be_empty;
	}
	if (n > WIRE_URL_MAX) {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch > 0x7e) {
			return 0;
		}
	}
	for (size_t k = 0; k < sizeof(url_schemes) / sizeof(url_schemes[0]); k++) {
		size_t sl = strlen(url_schemes[k]);

		if (n > sl && memcmp(s, url_schemes[k], sl) == 0) {
			return 1;
		}
	}
	return 0;
}

/* Normalized relative path: components of 1..SG_NAME_MAX bytes, none "." or "..", no NUL. */
static int path_ok(const char *s, size_t n)
{
	size_t start = 0;

	if (n == 0 || n > SG_PATH_MAX) {
		return 0;
	}
	for (size_t i = 0; i <= n; i++) {
		size_t clen;

		if (i < n && s[i] == '\0') {
			return 0;
		}
		if (i < n && s[i] != '/') {
			continue;
		}
		clen = i - start;
		if (clen == 0 || clen > SG_NAME_MAX) {
			return 0;
		}
		if (s[start] == '.' && (clen == 1 || (clen == 2 && s[start + 1] == '.'))) {
			return 0;
		}
		start = i + 1;
	}
	return 1;
}

static int xattr_name_ok(const char *s, size_t n)
{
	return n > WIRE_XATTR_PREFIX_LEN && n <= WIRE_XATTR_NAME_MAX &&
	       memcmp(s, WIRE_XATTR_PREFIX, WIRE_XATTR_PREFIX_LEN) == 0 && !memchr(s, '\0', n);
}

/* A change's fields but its path and xattr names (data and len must describe its data). */
static int change_ok(const sg_change *c, uint64_t max_file)
{
	const sg_stamp *s = &c->stamp;
	int placeholder = c->type == SG_TYPE_DIR && s->hlc == 0 && s->origin == 0 && s->seq == 0;

	if (c->type < SG_TYPE_FILE || c->type > SG_TYPE_TOMBSTONE || c->mode > 07777) {
		return 0;
	}
	if (!placeholder && (s->hlc == 0 || s->origin == 0)) {
		return 0;
	}
	if (c->len > 0 && c->data == NULL) {
		return 0;
	}
	switch (c->type) {
	case SG_TYPE_FILE:
		if (c->len > max_file) {
			return 0;
		}
		break;
	case SG_TYPE_SYMLINK:
		/* no NUL: a target is a C string everywhere it is used */
		if (c->len == 0 || c->len > SG_PATH_MAX || memchr(c->data, '\0', c->len)) {
			return 0;
		}
		break;
	default:
		if (c->len != 0) {
			return 0;
		}
		break;
	}
	if (c->nxattrs > WIRE_XATTRS_MAX || (c->type == SG_TYPE_TOMBSTONE && c->nxattrs > 0)) {
		return 0;
	}
	return 1;
}

/* A purge horizon: none (all zero), or a real stamp. */
static int horizon_ok(const sg_stamp *h)
{
	if (h->hlc == 0 && h->origin == 0 && h->seq == 0) {
		return 1;
	}
	return h->hlc != 0 && h->origin != 0;
}

/* A push's range of its sender's log: none (both 0), or since < next. */
static int push_range_ok(uint64_t since, uint64_t next)
{
	return next ? since < next : since == 0;
}

/* A version vector: at most SG_WIRE_VV_MAX entries, origins increasing, nothing zero. */
static int vv_ok(const sg_vv_entry *vv, size_t n)
{
	if (n > SG_WIRE_VV_MAX || (n > 0 && vv == NULL)) {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (vv[i].origin == 0 || vv[i].seq == 0 ||
		    (i > 0 && vv[i].origin <= vv[i - 1].origin)) {
			return 0;
		}
	}
	return 1;
}

/* ---- sizes ---------------------------------------------------------------- */

/* acc += n; 0 on overflow. */
static int add_size(size_t *acc, size_t n)
{
	if (n > SIZE_MAX - *acc) {
		return 0;
	}
	*acc += n;
	return 1;
}

size_t sg_wire_change_size(const sg_change *c)
{
	size_t n = WIRE_CHANGE_FIXED;
	int ok = add_size(&n, c->path ? strlen(c->path) : 0) && add_size(&n, c->len);

	for (size_t i = 0; ok && c->xattrs && i < c->nxattrs; i++) {
		const sg_xattr *x = &c->xattrs[i];

		ok = add_size(&n, WIRE_XATTR_FIXED) &&
		     add_size(&n, x->name ? strlen(x->name) : 0) && add_size(&n, x->len);
	}
	return ok ? n : SIZE_MAX;
}

/* ---- encode --------------------------------------------------------------- */

/* Validate a change for encoding and add its size to *size: 0 or -EINVAL. */
static int change_check(const sg_change *c, size_t *size)
{
	if (c->path == NULL || !path_ok(c->path, strlen(c->path)) ||
	    !change_ok(c, SG_WIRE_MAX_FILE) || (c->nxattrs > 0 && c->xattrs == NULL)) {
		return -EINVAL;
	}
	for (size_t i = 0; i < c->nxattrs; i++) {
		const sg_xattr *x = &c->xattrs[i];

		if (x->name == NULL || !xattr_name_ok(x->name, strlen(x->name)) ||
		    x->len > WIRE_XATTR_VALUE_MAX || (x->len > 0 && x->value == NULL)) {
			return -EINVAL;
		}
	}
	return add_size(size, sg_wire_change_size(c)) ? 0 : -EINVAL;
}

int sg_wire_change_check(const sg_change *c)
{
	size_t size = 0;

	if (c == NULL) {
		return -EINVAL;
	}
	if (c->type == SG_TYPE_FILE && c->len > SG_WIRE_MAX_FILE) {
		return -EFBIG;
	}
	if (change_check(c, &size) != 0) {
		return -EINVAL;
	}
	return size > WIRE_DEFAULT_MAX_MSG - WIRE_ENVELOPE_MAX ? -EFBIG : 0;
}

/* Validate `m` as decode would with default limits; its encoded size in *size. */
static int msg_check(const sg_msg *m, size_t *size)
{
	size_t n = WIRE_HEADER_FIXED;

	if (m->type < SG_MSG_PULL || m->type > SG_MSG_ACK || m->node_id == 0 ||
	    m->incarnation == 0 || m->node_name == NULL || m->listen_url == NULL) {
		return -EINVAL;
	}
	if (!name_ok(m->node_name, strlen(m->node_name)) ||
	    !url_ok(m->listen_url, strlen(m->listen_url), 1)) {
		return -EINVAL;
	}
	n += strlen(m->node_name) + strlen(m->listen_url);
	switch (m->type) {
	case SG_MSG_PULL:
		if (m->flags & ~SG_PULL_FLAGS) {
			return -EINVAL;
		}
		n += 8 + 4 + 8 + 1;
		break;
	case SG_MSG_CHANGES:
		if (m->more > 1 || m->snapshot > 1 || !horizon_ok(&m->horizon) ||
		    !vv_ok(m->vv, m->nvv)) {
			return -EINVAL;
		}
		n += 8 + 1 + 1 + 8 * 3 + 2 + m->nvv * WIRE_VV_ENTRY;
		break;
	case SG_MSG_PUSH:
		if (!push_range_ok(m->since, m->next)) {
			return -EINVAL;
		}
		n += 8 + 8;
		break;
	case SG_MSG_ACK:
		n += 4;
		break;
	default:
		break;
	}
	if (m->type == SG_MSG_CHANGES || m->type == SG_MSG_PUSH) {
		if (m->nchanges > WIRE_DEFAULT_MAX_CHANGES ||
		    (m->nchanges > 0 && m->changes == NULL)) {
			return -EINVAL;
		}
		n += 4;
		for (size_t i = 0; i < m->nchanges; i++) {
			int rc = change_check(&m->changes[i], &n);

			if (rc) {
				return rc;
			}
			if (n > WIRE_DEFAULT_MAX_MSG) {
				return -EINVAL;
			}
		}
	}
	if (m->type == SG_MSG_PULL || m->type == SG_MSG_CHANGES) {
		if (m->npeers > WIRE_DEFAULT_MAX_PEERS || (m->npeers > 0 && m->peers == NULL)) {
			return -EINVAL;
		}
		n += 2;
		for (size_t i = 0; i < m->npeers; i++) {
			if (m->peers[i] == NULL || !url_ok(m->peers[i], strlen(m->peers[i]), 0)) {
				return -EINVAL;
			}
			n += 2 + strlen(m->peers[i]);
		}
	}
	if (n > WIRE_DEFAULT_MAX_MSG) {
		return -EINVAL;
	}
	*size = n;
	return 0;
}

/* The writer: the size is computed first, so it never checks room. */
static unsigned char *put_le(unsigned char *p, uint64_t v, size_t nbytes)
{
	for (size_t i = 0; i < nbytes; i++) {
		*p++ = (unsigned char)(v >> (8 * i));
	}
	return p;
}

static unsigned char *put_bytes(unsigned char *p, const void *data, size_t n, size_t lenbytes)
{
	p = put_le(p, n, lenbytes);
	if (n > 0) {
		memcpy(p, data, n);
	}
	return p + n;
}

static unsigned char *put_str(unsigned char *p, const char *s, size_t lenbytes)
{
	return put_bytes(p, s, strlen(s), lenbytes);
}

static unsigned char *put_stamp(unsigned char *p, const sg_stamp *s)
{
	p = put_le(p, s->hlc, 8);
	p = put_le(p, s->origin, 8);
	return put_le(p, s->seq, 8);
}

static unsigned char *put_change(unsigned char *p, const sg_change *c)
{
	p = put_str(p, c->path, 2);
	p = put_le(p, c->type, 1);
	p = put_le(p, c->mode, 4);
	p = put_le(p, c->uid, 4);
	p = put_le(p, c->gid, 4);
	p = put_le(p, (uint64_t)c->mtime_ns, 8);
	p = put_le(p, (uint64_t)c->ctime_ns, 8);
	p = put_stamp(p, &c->stamp);
	p = put_stamp(p, &c->base);
	p = put_bytes(p, c->data, c->len, 4);
	p = put_le(p, c->nxattrs, 2);
	for (size_t i = 0; i < c->nxattrs; i++) {
		p = put_str(p, c->xattrs[i].name, 1);
		p = put_bytes(p, c->xattrs[i].value, c->xattrs[i].len, 4);
	}
	return p;
}

int sg_wire_encode(const sg_msg *m, void **out, size_t *len)
{
	unsigned char *buf, *p;
	size_t size = 0;
	int rc;

	if (m == NULL || out == NULL || len == NULL) {
		return -EINVAL;
	}
	rc = msg_check(m, &size);
	if (rc) {
		return rc;
	}
	buf = malloc(size);
	if (buf == NULL) {
		return -ENOMEM;
	}
	p = put_le(buf, SG_WIRE_MAGIC, 4);
	p = put_le(p, SG_WIRE_VERSION, 2);
	p = put_le(p, m->type, 2);
	p = put_le(p, m->node_id, 8);
	p = put_le(p, m->incarnation, 8);
	p = put_str(p, m->node_name, 1);
	p = put_str(p, m->listen_url, 2);
	switch (m->type) {
	case SG_MSG_PULL:
		p = put_le(p, m->since, 8);
		p = put_le(p, m->max_bytes, 4);
		p = put_le(p, m->known_incarnation, 8);
		p = put_le(p, m->flags, 1);
		break;
	case SG_MSG_CHANGES:
		p = put_le(p, m->next, 8);
		p = put_le(p, m->more, 1);
		p = put_le(p, m->snapshot, 1);
		p = put_stamp(p, &m->horizon);
		p = put_le(p, m->nvv, 2);
		for (size_t i = 0; i < m->nvv; i++) {
			p = put_le(p, m->vv[i].origin, 8);
			p = put_le(p, m->vv[i].seq, 8);
		}
		break;
	case SG_MSG_PUSH:
		p = put_le(p, m->since, 8);
		p = put_le(p, m->next, 8);
		break;
	case SG_MSG_ACK:
		p = put_le(p, m->code, 4);
		break;
	default:
		break;
	}
	if (m->type == SG_MSG_CHANGES || m->type == SG_MSG_PUSH) {
		p = put_le(p, m->nchanges, 4);
		for (size_t i = 0; i < m->nchanges; i++) {
			p = put_change(p, &m->changes[i]);
		}
	}
	if (m->type == SG_MSG_PULL || m->type == SG_MSG_CHANGES) {
		p = put_le(p, m->npeers, 2);
		for (size_t i = 0; i < m->npeers; i++) {
			p = put_str(p, m->peers[i], 2);
		}
	}
	if ((size_t)(p - buf) != size) { /* msg_check and the writer disagree: a bug here */
		free(buf);
		return -EINVAL;
	}
	*out = buf;
	*len = size;
	return 0;
}

/* ---- decode --------------------------------------------------------------- */

/*
 * Two passes over the same parser: the first validates everything and counts
 * what the message needs (changes, xattrs, peers, string bytes); the second,
 * into one zeroed allocation sized by the first, fills it. The second pass
 * checks every bound again, so even a buffer changed between the passes
 * cannot make it write past the block.
 */

/* The reader: a truncated read sets `bad` and yields zeroes. */
struct rd {
	const unsigned char *p;
	size_t left;
	int bad;
};

static uint64_t rd_uint(struct rd *r, size_t nbytes)
{
	uint64_t v = 0;

	if (r->bad || nbytes > r->left) {
		r->bad = 1;
		return 0;
	}
	for (size_t i = nbytes; i-- > 0;) {
		v = v << 8 | r->p[i];
	}
	r->p += nbytes;
	r->left -= nbytes;
	return v;
}

/* A length-prefixed byte string: its bytes in the buffer, or NULL when truncated. */
static const char *rd_bytes(struct rd *r, size_t lenbytes, size_t *n)
{
	uint64_t l = rd_uint(r, lenbytes);
	const char *s;

	*n = 0;
	if (r->bad || l > r->left) {
		r->bad = 1;
		return NULL;
	}
	s = (const char *)r->p;
	r->p += l;
	r->left -= (size_t)l;
	*n = (size_t)l;
	return s;
}

static int64_t to_i64(uint64_t v)
{
	return v <= INT64_MAX ? (int64_t)v : -(int64_t)(UINT64_MAX - v) - 1;
}

struct dec {
	struct rd r;
	uint64_t max_file;
	size_t max_changes, max_peers;
	int fill; /* 0: validate and count; 1: validate and build */
	/* what the message needs: counted by the first pass, capacities of the second */
	size_t nchanges, nxattrs, npeers, nbytes, nvv;
	/* second pass: the arrays and the string area of the block, and how much is used */
	sg_change *ch;
	sg_xattr *xa;
	sg_vv_entry *vv;
	const char **peers;
	char *str;
	size_t xa_used, str_used;
	int overflow;
};

/* Count (first pass) or copy NUL-terminated into the block (second pass) n bytes at s. */
static const char *keep(struct dec *d, const char *s, size_t n)
{
	char *t;

	if (!d->fill) {
		/* no overflow: every string costs at least n + 1 bytes of the buffer */
		d->nbytes += n + 1;
		return NULL;
	}
	if (n >= d->nbytes - d->str_used) {
		d->overflow = 1;
		return NULL;
	}
	t = d->str + d->str_used;
	memcpy(t, s, n);
	t[n] = '\0';
	d->str_used += n + 1;
	return t;
}

static void rd_stamp(struct rd *r, sg_stamp *s)
{
	s->hlc = rd_uint(r, 8);
	s->origin = rd_uint(r, 8);
	s->seq = rd_uint(r, 8);
}

static int parse_change(struct dec *d, sg_change *c)
{
	struct rd *r = &d->r;
	const char *path, *data;
	size_t plen, dlen;
	sg_xattr *xs = NULL;

	memset(c, 0, sizeof(*c));
	path = rd_bytes(r, 2, &plen);
	if (path == NULL || !path_ok(path, plen)) {
		return -EBADMSG;
	}
	c->type = (uint32_t)rd_uint(r, 1);
	c->mode = (uint32_t)rd_uint(r, 4);
	c->uid = (uint32_t)rd_uint(r, 4);
	c->gid = (uint32_t)rd_uint(r, 4);
	c->mtime_ns = to_i64(rd_uint(r, 8));
	c->ctime_ns = to_i64(rd_uint(r, 8));
	rd_stamp(r, &c->stamp);
	rd_stamp(r, &c->base);
	data = rd_bytes(r, 4, &dlen);
	c->nxattrs = (size_t)rd_uint(r, 2);
	if (r->bad) {
		return -EBADMSG;
	}
	c->data = data;
	c->len = dlen;
	if (!change_ok(c, d->max_file)) {
		return -EBADMSG;
	}
	c->path = keep(d, path, plen);
	c->data = dlen > 0 ? keep(d, data, dlen) : NULL;
	if (d->fill && c->nxattrs > 0) {
		if (c->nxattrs > d->nxattrs - d->xa_used) {
			return -EBADMSG;
		}
		xs = d->xa + d->xa_used;
		c->xattrs = xs;
	}
	for (size_t i = 0; i < c->nxattrs; i++) {
		size_t nlen, vlen;
		const char *name = rd_bytes(r, 1, &nlen);
		const char *value = rd_bytes(r, 4, &vlen);

		if (r->bad || !xattr_name_ok(name, nlen) || vlen > WIRE_XATTR_VALUE_MAX) {
			return -EBADMSG;
		}
		if (xs) {
			xs[i].name = keep(d, name, nlen);
			xs[i].value = keep(d, value, vlen);
			xs[i].len = vlen;
		} else {
			keep(d, name, nlen);
			keep(d, value, vlen);
		}
	}
	if (d->fill) {
		d->xa_used += c->nxattrs;
	} else {
		d->nxattrs += c->nxattrs;
	}
	return d->overflow ? -EBADMSG : 0;
}

static int parse_changes(struct dec *d, sg_msg *m)
{
	struct rd *r = &d->r;
	uint64_t n = rd_uint(r, 4);
	sg_change scratch;

	if (r->bad || n > d->max_changes || n > r->left / WIRE_CHANGE_FIXED) {
		return -EBADMSG;
	}
	if (d->fill) {
		if (n != d->nchanges) {
			return -EBADMSG;
		}
		m->changes = n > 0 ? d->ch : NULL;
	} else {
		d->nchanges = (size_t)n;
	}
	m->nchanges = (size_t)n;
	for (size_t i = 0; i < n; i++) {
		int rc = parse_change(d, d->fill ? &d->ch[i] : &scratch);

		if (rc) {
			return rc;
		}
	}
	return 0;
}

static int parse_peers(struct dec *d, sg_msg *m)
{
	struct rd *r = &d->r;
	uint64_t n = rd_uint(r, 2);

	if (r->bad || n > d->max_peers) {
		return -EBADMSG;
	}
	if (d->fill) {
		if (n != d->npeers) {
			return -EBADMSG;
		}
		m->peers = n > 0 ? d->peers : NULL;
	} else {
		d->npeers = (size_t)n;
	}
	m->npeers = (size_t)n;
	for (size_t i = 0; i < n; i++) {
		size_t l;
		const char *url = rd_bytes(r, 2, &l);

		if (url == NULL || !url_ok(url, l, 0)) {
			return -EBADMSG;
		}
		url = keep(d, url, l);
		if (d->fill) {
			d->peers[i] = url;
		}
	}
	return d->overflow ? -EBADMSG : 0;
}

static int parse_vv(struct dec *d, sg_msg *m)
{
	struct rd *r = &d->r;
	uint64_t n = rd_uint(r, 2);
	sg_vv_entry prev = {0, 0};

	if (r->bad || n > SG_WIRE_VV_MAX || n > r->left / WIRE_VV_ENTRY) {
		return -EBADMSG;
	}
	if (d->fill) {
		if (n != d->nvv) {
			return -EBADMSG;
		}
		m->vv = n > 0 ? d->vv : NULL;
	} else {
		d->nvv = (size_t)n;
	}
	m->nvv = (size_t)n;
	for (size_t i = 0; i < n; i++) {
		sg_vv_entry e;

		e.origin = rd_uint(r, 8);
		e.seq = rd_uint(r, 8);
		if (r->bad || e.origin == 0 || e.seq == 0 || (i > 0 && e.origin <= prev.origin)) {
			return -EBADMSG;
		}
		if (d->fill) {
			d->vv[i] = e;
		}
		prev = e;
	}
	return 0;
}

static int parse_msg(struct dec *d, sg_msg *m)
{
	struct rd *r = &d->r;
	uint64_t magic, version;
	const char *name, *url;
	size_t nlen, ulen;
	int rc = 0;

	magic = rd_uint(r, 4);
	version = rd_uint(r, 2);
	m->type = (uint32_t)rd_uint(r, 2);
	m->node_id = rd_uint(r, 8);
	m->incarnation = rd_uint(r, 8);
	if (r->bad || magic != SG_WIRE_MAGIC || version != SG_WIRE_VERSION ||
	    m->type < SG_MSG_PULL || m->type > SG_MSG_ACK || m->node_id == 0 ||
	    m->incarnation == 0) {
		return -EBADMSG;
	}
	name = rd_bytes(r, 1, &nlen);
	url = rd_bytes(r, 2, &ulen);
	if (r->bad || !name_ok(name, nlen) || !url_ok(url, ulen, 1)) {
		return -EBADMSG;
	}
	m->node_name = keep(d, name, nlen);
	m->listen_url = keep(d, url, ulen);
	switch (m->type) {
	case SG_MSG_PULL:
		m->since = rd_uint(r, 8);
		m->max_bytes = (uint32_t)rd_uint(r, 4);
		m->known_incarnation = rd_uint(r, 8);
		m->flags = (uint32_t)rd_uint(r, 1);
		rc = r->bad || (m->flags & ~SG_PULL_FLAGS) ? -EBADMSG : parse_peers(d, m);
		break;
	case SG_MSG_CHANGES:
		m->next = rd_uint(r, 8);
		m->more = (uint32_t)rd_uint(r, 1);
		m->snapshot = (uint32_t)rd_uint(r, 1);
		rd_stamp(r, &m->horizon);
		rc = r->bad || m->more > 1 || m->snapshot > 1 || !horizon_ok(&m->horizon)
		         ? -EBADMSG
		         : parse_vv(d, m);
		rc = rc ? rc : parse_changes(d, m);
		rc = rc ? rc : parse_peers(d, m);
		break;
	case SG_MSG_PUSH:
		m->since = rd_uint(r, 8);
		m->next = rd_uint(r, 8);
		rc = r->bad || !push_range_ok(m->since, m->next) ? -EBADMSG : parse_changes(d, m);
		break;
	case SG_MSG_ACK:
		m->code = (uint32_t)rd_uint(r, 4);
		break;
	default:
		break;
	}
	if (rc == 0 && (r->bad || r->left > 0 || d->overflow)) {
		rc = -EBADMSG; /* truncated, or bytes left over */
	}
	return rc;
}

/* Round n up to the alignment of anything; 0 on overflow. */
static int align_size(size_t *n)
{
	size_t a = _Alignof(max_align_t), pad = (a - *n % a) % a;

	return add_size(n, pad);
}

/* n * size added to *acc; 0 on overflow. */
static int add_array(size_t *acc, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size) {
		return 0;
	}
	return add_size(acc, n * size);
}

/* Where the parts of the block go: sg_msg, vv, changes, xattrs, peers, then the strings. */
struct layout {
	size_t vv, ch, xa, peers, str, total;
};

static int layout_of(const struct dec *d, struct layout *l)
{
	size_t n = sizeof(sg_msg);
	int ok = align_size(&n);

	l->vv = n;
	ok = ok && add_array(&n, d->nvv, sizeof(sg_vv_entry)) && align_size(&n);
	l->ch = n;
	ok = ok && add_array(&n, d->nchanges, sizeof(sg_change)) && align_size(&n);
	l->xa = n;
	ok = ok && add_array(&n, d->nxattrs, sizeof(sg_xattr)) && align_size(&n);
	l->peers = n;
	ok = ok && add_array(&n, d->npeers, sizeof(char *));
	l->str = n;
	ok = ok && add_size(&n, d->nbytes);
	l->total = n;
	return ok;
}

static void *at(void *block, size_t off)
{
	return (char *)block + off;
}

int sg_wire_decode(const void *buf, size_t len, const sg_wire_limits *lim, sg_msg **out)
{
	struct dec d = {0};
	struct layout l;
	sg_msg scratch = {0};
	size_t max_msg = WIRE_DEFAULT_MAX_MSG;
	void *block;
	int rc;

	if (out == NULL || (buf == NULL && len > 0)) {
		return -EINVAL;
	}
	*out = NULL;
	d.max_file = SG_WIRE_MAX_FILE;
	d.max_changes = WIRE_DEFAULT_MAX_CHANGES;
	d.max_peers = WIRE_DEFAULT_MAX_PEERS;
	if (lim) { /* zero: the default, as in sg_store_opts */
		max_msg = lim->max_msg ? lim->max_msg : max_msg;
		d.max_file = lim->max_file ? lim->max_file : d.max_file;
		d.max_changes = lim->max_changes ? lim->max_changes : d.max_changes;
		d.max_peers = lim->max_peers ? lim->max_peers : d.max_peers;
	}
	if (len > max_msg) {
		return -EMSGSIZE;
	}

	/* first pass: validate and count */
	d.r = (struct rd){.p = buf, .left = len};
	rc = parse_msg(&d, &scratch);
	if (rc) {
		return rc;
	}
	if (!layout_of(&d, &l)) {
		return -ENOMEM;
	}
	block = calloc(1, l.total);
	if (block == NULL) {
		return -ENOMEM;
	}

	/* second pass: validate again and fill the block */
	d.vv = at(block, l.vv);
	d.ch = at(block, l.ch);
	d.xa = at(block, l.xa);
	d.peers = at(block, l.peers);
	d.str = at(block, l.str);
	d.fill = 1;
	d.r = (struct rd){.p = buf, .left = len};
	rc = parse_msg(&d, block);
	if (rc == 0 && (d.xa_used != d.nxattrs || d.str_used != d.nbytes)) {
		rc = -EBADMSG; /* the buffer changed between the passes */
	}
	if (rc) {
		free(block);
		return rc;
	}
	*out = block;
	return 0;
}

void sg_wire_free(sg_msg *m)
{
	free(m);
}
