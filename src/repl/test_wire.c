/* test_wire.c: unit tests of the replication message codec (src/repl/wire_i.h): round trips
 * of every message type, the byte layout, and one refusal per validation rule. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "repl/wire_i.h"

/* ---- an independent encoder, with no validation, written from the layout in wire_i.h ---- */

struct raw {
	unsigned char *p;
	size_t len, cap;
};

static void raw_grow(struct raw *b, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + n) {
			cap *= 2;
		}
		b->p = realloc(b->p, cap);
		assert_non_null(b->p);
		b->cap = cap;
	}
}

static void raw_le(struct raw *b, uint64_t v, size_t n)
{
	raw_grow(b, n);
	for (size_t i = 0; i < n; i++) {
		b->p[b->len++] = (unsigned char)(v >> (8 * i));
	}
}

static void raw_bytes(struct raw *b, const void *s, size_t n, size_t lenbytes)
{
	raw_le(b, n, lenbytes);
	raw_grow(b, n);
	if (n > 0) {
		memcpy(b->p + b->len, s, n);
	}
	b->len += n;
}

static void raw_str(struct raw *b, const char *s, size_t lenbytes)
{
	raw_bytes(b, s, strlen(s), lenbytes);
}

static void raw_stamp(struct raw *b, const sg_stamp *s)
{
	raw_le(b, s->hlc, 8);
	raw_le(b, s->origin, 8);
	raw_le(b, s->seq, 8);
}

static void raw_change(struct raw *b, const sg_change *c)
{
	raw_str(b, c->path, 2);
	raw_le(b, c->type, 1);
	raw_le(b, c->mode, 4);
	raw_le(b, c->uid, 4);
	raw_le(b, c->gid, 4);
	raw_le(b, (uint64_t)c->mtime_ns, 8);
	raw_le(b, (uint64_t)c->ctime_ns, 8);
	raw_stamp(b, &c->stamp);
	raw_stamp(b, &c->base);
	raw_bytes(b, c->data, c->len, 4);
	raw_le(b, c->nxattrs, 2);
	for (size_t i = 0; i < c->nxattrs; i++) {
		raw_str(b, c->xattrs[i].name, 1);
		raw_bytes(b, c->xattrs[i].value, c->xattrs[i].len, 4);
	}
}

/* Encode m as the layout says, whatever its fields hold; magic and version as given. */
static struct raw raw_msg_mv(const sg_msg *m, uint32_t magic, uint16_t version)
{
	struct raw b = {0};

	raw_le(&b, magic, 4);
	raw_le(&b, version, 2);
	raw_le(&b, m->type, 2);
	raw_le(&b, m->node_id, 8);
	raw_le(&b, m->incarnation, 8);
	raw_str(&b, m->node_name, 1);
	raw_str(&b, m->listen_url, 2);
	switch (m->type) {
	case SG_MSG_PULL:
		raw_le(&b, m->since, 8);
		raw_le(&b, m->max_bytes, 4);
		raw_le(&b, m->known_incarnation, 8);
		raw_le(&b, m->flags, 1);
		break;
	case SG_MSG_CHANGES:
		raw_le(&b, m->next, 8);
		raw_le(&b, m->more, 1);
		raw_le(&b, m->snapshot, 1);
		raw_stamp(&b, &m->horizon);
		raw_le(&b, m->nvv, 2);
		for (size_t i = 0; i < m->nvv; i++) {
			raw_le(&b, m->vv[i].origin, 8);
			raw_le(&b, m->vv[i].seq, 8);
		}
		break;
	case SG_MSG_PUSH:
		raw_le(&b, m->since, 8);
		raw_le(&b, m->next, 8);
		break;
	case SG_MSG_ACK:
		raw_le(&b, m->code, 4);
		break;
	default:
		break;
	}
	if (m->type == SG_MSG_CHANGES || m->type == SG_MSG_PUSH) {
		raw_le(&b, m->nchanges, 4);
		for (size_t i = 0; i < m->nchanges; i++) {
			raw_change(&b, &m->changes[i]);
		}
	}
	if (m->type == SG_MSG_PULL || m->type == SG_MSG_CHANGES) {
		raw_le(&b, m->npeers, 2);
		for (size_t i = 0; i < m->npeers; i++) {
			raw_str(&b, m->peers[i], 2);
		}
	}
	return b;
}

static struct raw raw_msg(const sg_msg *m)
{
	return raw_msg_mv(m, SG_WIRE_MAGIC, SG_WIRE_VERSION);
}

/* Offset of the first occurrence of `marker` in the message. */
static size_t raw_find(const struct raw *b, const char *marker)
{
	size_t n = strlen(marker);

	for (size_t i = 0; i + n <= b->len; i++) {
		if (memcmp(b->p + i, marker, n) == 0) {
			return i;
		}
	}
	fail_msg("marker %s not found", marker);
	return 0;
}

/* Replace the first occurrence of `from` in the message by as many bytes from `to`. */
static void raw_patch(struct raw *b, const char *from, const void *to)
{
	memcpy(b->p + raw_find(b, from), to, strlen(from));
}

/* Decode from an exact-size heap copy, so that the sanitizers see any read past the end. */
static int decode_copy(const void *buf, size_t len, const sg_wire_limits *lim, sg_msg **out)
{
	void *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	if (len > 0) {
		memcpy(copy, buf, len);
	}
	rc = sg_wire_decode(copy, len, lim, out);
	free(copy);
	return rc;
}

/* ---- sample messages ----------------------------------------------------------------- */

static const char *const sample_peers[] = {"tcp://10.0.0.2:7420", "tls+tcp://b.example:7420",
                                           "ipc:///run/sigil/c.sock", "inproc://d"};

static const unsigned char file_data[] = {'k', '=', 'v', '\n', 0, 0xff, 'x'};
static unsigned char big_value[65536];

static const sg_xattr dir_xattrs[] = {
    {"user.a", "1", 1},
    {"user.empty", "", 0},
    {"user.big", big_value, sizeof(big_value)},
};
static const sg_xattr file_xattrs[] = {{"user.mime", "text/plain", 10}};

static const sg_change sample_changes[] = {
    {.path = "etc",
     .type = SG_TYPE_DIR,
     .mode = 0755,
     .uid = 0,
     .gid = 0,
     .mtime_ns = 1700000000000000001LL,
     .ctime_ns = 1700000000000000002LL,
     .stamp = {0x18c0000000010001ULL, 0x1111, 1},
     .xattrs = dir_xattrs,
     .nxattrs = 3},
    {.path = "etc/app.conf",
     .type = SG_TYPE_FILE,
     .mode = 07644,
     .uid = 1000,
     .gid = 0xffffffffu,
     .mtime_ns = -1,
     .ctime_ns = INT64_MIN,
     .data = file_data,
     .len = sizeof(file_data),
     .stamp = {0x18c0000000020000ULL, 0x2222, 7},
     .base = {0x18c0000000010001ULL, 0x1111, 1},
     .xattrs = file_xattrs,
     .nxattrs = 1},
    {.path = "etc/empty", .type = SG_TYPE_FILE, .mode = 0600, .stamp = {5, 6, 7}},
    {.path = "etc/link",
     .type = SG_TYPE_SYMLINK,
     .mode = 0777,
     .data = "../target",
     .len = 9,
     .mtime_ns = INT64_MAX,
     .stamp = {UINT64_MAX, UINT64_MAX, UINT64_MAX}},
    {.path = "etc/old", .type = SG_TYPE_TOMBSTONE, .stamp = {9, 0x1111, 3}, .base = {8, 1, 2}},
    {.path = "a/b/placeholder", .type = SG_TYPE_DIR, .mode = 0755}, /* all-zero stamp */
};

static sg_msg sample_header(uint32_t type)
{
	sg_msg m = {0};

	m.type = type;
	m.node_id = 0x0102030405060708ULL;
	m.incarnation = 0xfedcba9876543210ULL;
	m.node_name = "node-A_1.example";
	m.listen_url = "tcp://0.0.0.0:7420";
	return m;
}

static sg_msg sample_pull(void)
{
	sg_msg m = sample_header(SG_MSG_PULL);

	m.since = 123456789;
	m.max_bytes = 4u << 20;
	m.known_incarnation = 0xabcdefULL;
	m.peers = sample_peers;
	m.npeers = 4;
	return m;
}

static const sg_vv_entry sample_vv[] = {
    {0x1111, 3}, {0x2222, 7}, {0x0102030405060708ULL, 1}, {UINT64_MAX, UINT64_MAX}};

static sg_msg sample_changes_msg(void)
{
	sg_msg m = sample_header(SG_MSG_CHANGES);

	m.next = 42;
	m.more = 1;
	m.snapshot = 1;
	m.horizon = (sg_stamp){0x18c0000000010001ULL, 0x2222, 5};
	m.vv = sample_vv;
	m.nvv = sizeof(sample_vv) / sizeof(sample_vv[0]);
	m.changes = sample_changes;
	m.nchanges = sizeof(sample_changes) / sizeof(sample_changes[0]);
	m.peers = sample_peers;
	m.npeers = 2;
	return m;
}

/* A CHANGES message with one change, c, for the refusal tests. */
static sg_msg one_change(const sg_change *c)
{
	sg_msg m = sample_header(SG_MSG_CHANGES);

	m.changes = c;
	m.nchanges = 1;
	return m;
}

static sg_change good_file(void)
{
	sg_change c = {0};

	c.path = "dir/file";
	c.type = SG_TYPE_FILE;
	c.mode = 0644;
	c.data = "hello";
	c.len = 5;
	c.stamp = (sg_stamp){100, 0x1111, 1};
	return c;
}

/* ---- equality ------------------------------------------------------------------------- */

static void assert_blob_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	assert_int_equal(alen, blen);
	if (alen > 0) {
		assert_non_null(a);
		assert_non_null(b);
		assert_memory_equal(a, b, alen);
	}
}

static void assert_stamp_equal(const sg_stamp *a, const sg_stamp *b)
{
	assert_int_equal(a->hlc, b->hlc);
	assert_int_equal(a->origin, b->origin);
	assert_int_equal(a->seq, b->seq);
}

/* Decoded d against the original o, field by field; d's strings must be C strings. */
static void assert_change_equal(const sg_change *o, const sg_change *d)
{
	assert_string_equal(o->path, d->path);
	assert_int_equal(o->type, d->type);
	assert_int_equal(o->mode, d->mode);
	assert_int_equal(o->uid, d->uid);
	assert_int_equal(o->gid, d->gid);
	assert_true(o->mtime_ns == d->mtime_ns);
	assert_true(o->ctime_ns == d->ctime_ns);
	assert_blob_equal(o->data, o->len, d->data, d->len);
	if (d->len == 0) {
		assert_null(d->data); /* store.h: NULL with len 0 */
	} else {
		assert_int_equal(((const char *)d->data)[d->len], '\0');
	}
	assert_int_equal(d->version, 0);
	assert_int_equal(d->id, 0);
	assert_stamp_equal(&o->stamp, &d->stamp);
	assert_stamp_equal(&o->base, &d->base);
	assert_int_equal(o->nxattrs, d->nxattrs);
	if (d->nxattrs == 0) {
		assert_null(d->xattrs);
	}
	for (size_t i = 0; i < o->nxattrs; i++) {
		assert_string_equal(o->xattrs[i].name, d->xattrs[i].name);
		assert_blob_equal(o->xattrs[i].value, o->xattrs[i].len, d->xattrs[i].value,
		                  d->xattrs[i].len);
		assert_non_null(d->xattrs[i].value);
		assert_int_equal(((const char *)d->xattrs[i].value)[d->xattrs[i].len], '\0');
	}
}

/* Every field; those the type does not carry must be zero in the decoded message. */
static void assert_msg_equal(const sg_msg *o, const sg_msg *d)
{
	int pull = o->type == SG_MSG_PULL, changes = o->type == SG_MSG_CHANGES;
	int push = o->type == SG_MSG_PUSH;
	int has_changes = changes || o->type == SG_MSG_PUSH, has_peers = pull || changes;

	assert_int_equal(o->type, d->type);
	assert_int_equal(o->node_id, d->node_id);
	assert_int_equal(o->incarnation, d->incarnation);
	assert_string_equal(o->node_name, d->node_name);
	assert_string_equal(o->listen_url, d->listen_url);
	assert_int_equal(pull || push ? o->since : 0, d->since);
	assert_int_equal(pull ? o->max_bytes : 0, d->max_bytes);
	assert_int_equal(pull ? o->known_incarnation : 0, d->known_incarnation);
	assert_int_equal(pull ? o->flags : 0, d->flags);
	assert_int_equal(changes || push ? o->next : 0, d->next);
	assert_int_equal(changes ? o->more : 0, d->more);
	assert_int_equal(changes ? o->snapshot : 0, d->snapshot);
	if (changes) {
		assert_stamp_equal(&o->horizon, &d->horizon);
	} else {
		assert_stamp_equal(&(sg_stamp){0, 0, 0}, &d->horizon);
	}
	assert_int_equal(changes ? o->nvv : 0, d->nvv);
	for (size_t i = 0; i < d->nvv; i++) {
		assert_int_equal(o->vv[i].origin, d->vv[i].origin);
		assert_int_equal(o->vv[i].seq, d->vv[i].seq);
	}
	if (d->nvv == 0) {
		assert_null(d->vv);
	}
	assert_int_equal(has_changes ? o->nchanges : 0, d->nchanges);
	for (size_t i = 0; i < d->nchanges; i++) {
		assert_change_equal(&o->changes[i], &d->changes[i]);
	}
	if (d->nchanges == 0) {
		assert_null(d->changes);
	}
	assert_int_equal(has_peers ? o->npeers : 0, d->npeers);
	for (size_t i = 0; i < d->npeers; i++) {
		assert_string_equal(o->peers[i], d->peers[i]);
	}
	if (d->npeers == 0) {
		assert_null(d->peers);
	}
	assert_int_equal(o->type == SG_MSG_ACK ? o->code : 0, d->code);
}

/* Encode, compare with the independent encoder, decode, compare, and re-encode. */
static void round_trip(const sg_msg *m)
{
	struct raw b = raw_msg(m);
	void *buf = NULL, *buf2 = NULL;
	size_t len = 0, len2 = 0;
	sg_msg *d = NULL;

	assert_int_equal(sg_wire_encode(m, &buf, &len), 0);
	assert_int_equal(len, b.len);
	assert_memory_equal(buf, b.p, len);
	assert_int_equal(decode_copy(buf, len, NULL, &d), 0);
	assert_non_null(d);
	assert_msg_equal(m, d);
	assert_int_equal(sg_wire_encode(d, &buf2, &len2), 0);
	assert_int_equal(len2, len);
	assert_memory_equal(buf2, buf, len);
	for (size_t i = 0; i < d->nchanges; i++) {
		assert_int_equal(sg_wire_change_size(&d->changes[i]),
		                 sg_wire_change_size(&m->changes[i]));
	}
	sg_wire_free(d);
	free(buf);
	free(buf2);
	free(b.p);
}

/* m must be refused: encode -EINVAL, and decode of its raw bytes `want`. */
static void refused_raw(const sg_msg *m, struct raw b, const sg_wire_limits *lim, int want)
{
	void *buf = NULL;
	size_t len = 0;
	sg_msg *d = (sg_msg *)1;

	assert_int_equal(decode_copy(b.p, b.len, lim, &d), want);
	assert_null(d);
	if (m) {
		assert_int_equal(sg_wire_encode(m, &buf, &len), -EINVAL);
		assert_null(buf);
	}
	free(b.p);
}

static void refused(const sg_msg *m)
{
	refused_raw(m, raw_msg(m), NULL, -EBADMSG);
}

static void refused_change(const sg_change *c)
{
	sg_msg m = one_change(c);

	refused(&m);
	m.type = SG_MSG_PUSH;
	refused(&m);
}

static void accepted(const sg_msg *m, const sg_wire_limits *lim)
{
	struct raw b = raw_msg(m);
	sg_msg *d = NULL;

	assert_int_equal(decode_copy(b.p, b.len, lim, &d), 0);
	assert_msg_equal(m, d);
	sg_wire_free(d);
	free(b.p);
}

/* ---- round trips ---------------------------------------------------------------------- */

static void test_round_trip_pull(void **state)
{
	sg_msg m = sample_pull();

	(void)state;
	round_trip(&m);
	m.flags = SG_PULL_OWN_HELD;
	round_trip(&m);
	m.flags = SG_PULL_IN_SNAPSHOT;
	round_trip(&m);
	m.npeers = 0;
	m.peers = NULL;
	m.listen_url = "";
	m.known_incarnation = 0;
	round_trip(&m);
	m.flags = 0x4; /* no such flag */
	refused(&m);
	{
		void *buf = NULL;
		size_t len = 0;

		assert_int_equal(sg_wire_encode(&m, &buf, &len), -EINVAL);
		assert_null(buf);
	}
}

static void test_round_trip_changes(void **state)
{
	sg_msg m = sample_changes_msg();

	(void)state;
	round_trip(&m);
	m.more = 0;
	m.npeers = 0;
	m.peers = NULL;
	round_trip(&m);
	m.nchanges = 0;
	m.changes = NULL;
	round_trip(&m);
	m.snapshot = 0;
	m.horizon = (sg_stamp){0, 0, 0};
	m.nvv = 0;
	m.vv = NULL;
	round_trip(&m);
	m.horizon = (sg_stamp){1, 1, 0}; /* a seq of 0 is allowed: only hlc and origin say "set" */
	m.vv = sample_vv;
	m.nvv = 1;
	round_trip(&m);
}

static void test_round_trip_push(void **state)
{
	sg_msg m = sample_header(SG_MSG_PUSH);

	(void)state;
	m.changes = sample_changes;
	m.nchanges = sizeof(sample_changes) / sizeof(sample_changes[0]);
	m.listen_url = "inproc://x";
	round_trip(&m);
	m.changes = &sample_changes[3];
	m.nchanges = 1;
	round_trip(&m);
	m.since = 5; /* the range of the sender's log it holds whole */
	m.next = 9;
	round_trip(&m);
	m.since = 0;
	round_trip(&m);
	m.nchanges = 0; /* a range with nothing for peers in it */
	m.changes = NULL;
	round_trip(&m);
}

/* A push's range: both 0, or since < next; anything else is refused. */
static void test_push_range(void **state)
{
	sg_msg m = sample_header(SG_MSG_PUSH);
	void *buf = NULL;
	size_t len = 0;

	(void)state;
	m.changes = &sample_changes[3];
	m.nchanges = 1;
	accepted(&m, NULL);
	m.since = 3; /* a start without an end */
	refused(&m);
	assert_int_equal(sg_wire_encode(&m, &buf, &len), -EINVAL);
	m.next = 3; /* empty */
	refused(&m);
	assert_int_equal(sg_wire_encode(&m, &buf, &len), -EINVAL);
	m.next = 2; /* backwards */
	refused(&m);
	assert_int_equal(sg_wire_encode(&m, &buf, &len), -EINVAL);
	m.next = UINT64_MAX;
	accepted(&m, NULL);
	assert_null(buf);
}

static void test_round_trip_ack(void **state)
{
	sg_msg m = sample_header(SG_MSG_ACK);

	(void)state;
	round_trip(&m);
	m.code = ESTALE;
	round_trip(&m);
	m.code = UINT32_MAX;
	round_trip(&m);
}

/* Fields a type does not carry are not encoded, and come back zero. */
static void test_other_fields_ignored(void **state)
{
	sg_msg m = sample_header(SG_MSG_ACK), *d = NULL;
	void *buf = NULL;
	size_t len = 0;

	(void)state;
	m.code = 5;
	m.since = 9;
	m.changes = sample_changes;
	m.nchanges = 2;
	m.peers = sample_peers;
	m.npeers = 1;
	assert_int_equal(sg_wire_encode(&m, &buf, &len), 0);
	assert_int_equal(len, 4 + 2 + 2 + 8 + 8 + 1 + strlen(m.node_name) + 2 +
	                          strlen(m.listen_url) + 4);
	assert_int_equal(sg_wire_decode(buf, len, NULL, &d), 0);
	assert_msg_equal(&m, d);
	sg_wire_free(d);
	free(buf);
}

/* The layout, byte for byte, of a small message. */
static void test_layout(void **state)
{
	static const unsigned char want[] = {
	    0x53, 0x47, 0x4c, 0x31, 0x03, 0x00, 0x04, 0x00, /* "SGL1", version 3, ACK */
	    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* node_id */
	    0x02, 0,    0,    0,    0,    0,    0,    0,    /* incarnation */
	    0x01, 'n',  0x00, 0x00,                         /* node_name "n", listen_url "" */
	    0x0d, 0x0c, 0x0b, 0x0a,                         /* code */
	};
	sg_msg m = {.type = SG_MSG_ACK,
	            .node_id = 0x0102030405060708ULL,
	            .incarnation = 2,
	            .node_name = "n",
	            .listen_url = "",
	            .code = 0x0a0b0c0du};
	void *buf = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(sg_wire_encode(&m, &buf, &len), 0);
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(buf, want, len);
	free(buf);
}

static void test_change_size(void **state)
{
	const sg_change *c = &sample_changes[1];
	sg_msg m = sample_header(SG_MSG_PUSH);
	void *a = NULL, *b = NULL;
	size_t la = 0, lb = 0;

	(void)state;
	m.changes = c;
	m.nchanges = 0;
	assert_int_equal(sg_wire_encode(&m, &a, &la), 0);
	m.nchanges = 1;
	assert_int_equal(sg_wire_encode(&m, &b, &lb), 0);
	assert_int_equal(sg_wire_change_size(c), lb - la);
	free(a);
	free(b);
}

/* ---- refusals: header ------------------------------------------------------------------ */

static void test_bad_magic_version(void **state)
{
	sg_msg m = sample_pull();

	(void)state;
	refused_raw(NULL, raw_msg_mv(&m, 0x324c4753u, SG_WIRE_VERSION), NULL, -EBADMSG);
	refused_raw(NULL, raw_msg_mv(&m, 0x53474c31u, SG_WIRE_VERSION), NULL, -EBADMSG);
	refused_raw(NULL, raw_msg_mv(&m, SG_WIRE_MAGIC, 0), NULL, -EBADMSG);
	refused_raw(NULL, raw_msg_mv(&m, SG_WIRE_MAGIC, 1), NULL, -EBADMSG); /* old formats */
	refused_raw(NULL, raw_msg_mv(&m, SG_WIRE_MAGIC, 2), NULL, -EBADMSG);
	refused_raw(NULL, raw_msg_mv(&m, SG_WIRE_MAGIC, 4), NULL, -EBADMSG);
	refused_raw(NULL, raw_msg_mv(&m, SG_WIRE_MAGIC, 0x0100), NULL, -EBADMSG);
}

static void test_bad_type(void **state)
{
	sg_msg m = sample_header(0);

	(void)state;
	refused(&m);
	m.type = 5;
	refused(&m);
	m.type = 0x0101;
	refused(&m);
}

static void test_truncated_everywhere(void **state)
{
	sg_msg m = sample_changes_msg();
	sg_change c[] = {sample_changes[0], sample_changes[1], sample_changes[3],
	                 sample_changes[4]};
	sg_xattr x[] = {{"user.a", "1", 1}, {"user.bb", "22", 2}};
	struct raw b;

	(void)state;
	c[0].xattrs = x; /* without the 64 KiB value: every offset is tried */
	c[0].nxattrs = 2;
	m.changes = c;
	m.nchanges = 4;
	b = raw_msg(&m);
	accepted(&m, NULL);
	for (size_t n = 0; n < b.len; n++) {
		sg_msg *d = (sg_msg *)1;

		assert_int_equal(decode_copy(b.p, n, NULL, &d), -EBADMSG);
		assert_null(d);
	}
	free(b.p);

	/* every other type too */
	for (uint32_t t = SG_MSG_PULL; t <= SG_MSG_ACK; t++) {
		sg_msg h = t == SG_MSG_PULL ? sample_pull() : sample_header(t);

		if (t == SG_MSG_CHANGES || t == SG_MSG_PUSH) {
			h.changes = &sample_changes[4];
			h.nchanges = 1;
		}
		b = raw_msg(&h);
		for (size_t n = 0; n < b.len; n++) {
			sg_msg *d = NULL;

			assert_int_equal(decode_copy(b.p, n, NULL, &d), -EBADMSG);
		}
		free(b.p);
	}
}

static void test_trailing_byte(void **state)
{
	(void)state;
	for (uint32_t t = SG_MSG_PULL; t <= SG_MSG_ACK; t++) {
		sg_msg m = t == SG_MSG_CHANGES ? sample_changes_msg() : sample_header(t);
		struct raw b = raw_msg(&m);

		raw_le(&b, 0, 1);
		refused_raw(NULL, b, NULL, -EBADMSG);
	}
}

/* A declared length past the end of the buffer, with the bytes of a valid message after. */
static void test_length_past_end(void **state)
{
	sg_change c = good_file();
	sg_msg m = one_change(&c);
	struct raw b;

	(void)state;
	b = raw_msg(&m);
	memset(b.p + raw_find(&b, "hello") - 4, 0xff, 4); /* data length */
	refused_raw(NULL, b, NULL, -EBADMSG);
	b = raw_msg(&m);
	memset(b.p + raw_find(&b, "dir/file") - 2, 0xff, 2); /* path length */
	refused_raw(NULL, b, NULL, -EBADMSG);
	/* a change count no buffer could hold */
	m.nchanges = 0;
	b = raw_msg(&m);
	b.len -= 2 + 4; /* drop nchanges and npeers */
	raw_le(&b, 0xffffffffu, 4);
	raw_le(&b, 0, 2);
	refused_raw(NULL, b, NULL, -EBADMSG);
}

static void test_zero_ids(void **state)
{
	sg_msg m = sample_pull();

	(void)state;
	m.node_id = 0;
	refused(&m);
	m = sample_pull();
	m.incarnation = 0;
	refused(&m);
}

static void test_bad_node_name(void **state)
{
	static const char *const bad[] = {"",          "a b",  "a/b", "a:b", "caf\xc3\xa9",
	                                  "tab\there", "x\x7f"};
	char longname[66];
	sg_msg m = sample_pull();
	struct raw b;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m.node_name = bad[i];
		refused(&m);
	}
	memset(longname, 'n', 64);
	longname[64] = '\0';
	m.node_name = longname;
	accepted(&m, NULL);
	longname[64] = 'n';
	longname[65] = '\0';
	refused(&m);
	/* a NUL inside, which no C string can carry */
	m.node_name = "abXcd";
	b = raw_msg(&m);
	raw_patch(&b, "abXcd", "ab\0cd");
	refused_raw(NULL, b, NULL, -EBADMSG);
}

static void test_bad_urls(void **state)
{
	static const char *const bad[] = {
	    "http://x", "tcp:/x",      "TCP://x",        "tcp://",      "inproc://", "x",
	    " tcp://x", "tcp://a\x01", "tcp://\xc3\xa9", "tcp://a\x7f", "tls://x",   "tls+tcp:/x"};
	char url[300];
	const char *peers[1];
	sg_msg m = sample_pull();

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = sample_pull();
		m.listen_url = bad[i];
		refused(&m);
		m = sample_pull();
		peers[0] = bad[i];
		m.peers = peers;
		m.npeers = 1;
		refused(&m);
		m.type = SG_MSG_CHANGES;
		refused(&m);
	}
	/* "" is only for listen_url */
	m = sample_pull();
	peers[0] = "";
	m.peers = peers;
	m.npeers = 1;
	refused(&m);
	/* 256 bytes accepted, 257 refused */
	strcpy(url, "tcp://");
	memset(url + 6, 'h', 250);
	url[256] = '\0';
	m = sample_pull();
	m.listen_url = url;
	peers[0] = url;
	m.peers = peers;
	m.npeers = 1;
	accepted(&m, NULL);
	url[256] = 'h';
	url[257] = '\0';
	refused(&m);
	m.listen_url = "";
	refused(&m);
}

static void test_too_many_peers(void **state)
{
	static const char *peers[257];
	sg_msg m = sample_pull();
	sg_wire_limits lim = {.max_peers = 3};
	struct raw b;

	(void)state;
	for (size_t i = 0; i < 257; i++) {
		peers[i] = "inproc://p";
	}
	m.peers = peers;
	m.npeers = 256;
	accepted(&m, NULL);
	m.npeers = 257;
	refused(&m);
	m.npeers = 3;
	accepted(&m, &lim);
	m.npeers = 4;
	b = raw_msg(&m);
	refused_raw(NULL, b, &lim, -EBADMSG);
}

static void test_bad_more(void **state)
{
	sg_msg m = sample_changes_msg();

	(void)state;
	m.more = 2;
	refused(&m);
	m.more = 0;
	m.snapshot = 2;
	refused(&m);
}

static void test_bad_horizon(void **state)
{
	sg_msg m = sample_changes_msg();

	(void)state;
	m.horizon = (sg_stamp){0, 5, 1}; /* no hlc */
	refused(&m);
	m.horizon = (sg_stamp){5, 0, 1}; /* no origin */
	refused(&m);
	m.horizon = (sg_stamp){0, 0, 1}; /* a seq alone */
	refused(&m);
}

static void test_bad_vv(void **state)
{
	static sg_vv_entry many[SG_WIRE_VV_MAX + 1];
	sg_vv_entry vv[3] = {{1, 1}, {2, 2}, {3, 3}};
	sg_msg m = sample_changes_msg();
	struct raw b;
	sg_msg *d = NULL;

	(void)state;
	m.vv = vv;
	m.nvv = 3;
	accepted(&m, NULL);
	vv[1].origin = 3; /* out of order */
	refused(&m);
	vv[1].origin = 1; /* twice */
	refused(&m);
	vv[1] = (sg_vv_entry){0, 2}; /* origin 0 */
	m.vv = &vv[1];
	m.nvv = 1;
	refused(&m);
	vv[1] = (sg_vv_entry){2, 0}; /* seq 0 */
	refused(&m);
	/* the limit, and one past it */
	for (size_t i = 0; i < SG_WIRE_VV_MAX + 1; i++) {
		many[i] = (sg_vv_entry){i + 1, 1};
	}
	m.vv = many;
	m.nvv = SG_WIRE_VV_MAX;
	accepted(&m, NULL);
	m.nvv = SG_WIRE_VV_MAX + 1;
	refused(&m);
	/* a count past the bytes there are */
	m.nvv = 2;
	b = raw_msg(&m);
	b.p[4 + 2 + 2 + 8 + 8 + 1 + strlen(m.node_name) + 2 + strlen(m.listen_url) + 8 + 1 + 1 +
	    24] = 0x30; /* nvv (after next, more, snapshot, horizon): 2 -> 48 */
	assert_int_equal(decode_copy(b.p, b.len, NULL, &d), -EBADMSG);
	assert_null(d);
	free(b.p);
}

/* ---- refusals: paths --------------------------------------------------------------------- */

static void test_bad_paths(void **state)
{
	static const char *const bad[] = {"",    "/",   "/a",     "a/",    "a//b", ".",    "..",
	                                  "./a", "a/.", "a/../b", "a/./b", "../a", "a/..", "//"};
	static const char *const good[] = {"a", "a/b", "...", ".a", "a..", "a/.b/..c", "-", "a b"};
	char comp[300], *longp;
	sg_change c = good_file();
	sg_msg m = one_change(&c);
	struct raw b;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c.path = bad[i];
		refused_change(&c);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		c.path = good[i];
		accepted(&m, NULL);
	}
	/* a component of 255 bytes accepted, 256 refused, at either end */
	comp[0] = 'd';
	comp[1] = '/';
	memset(comp + 2, 'c', 256);
	comp[2 + 255] = '\0';
	c.path = comp;
	accepted(&m, NULL);
	c.path = comp + 2;
	accepted(&m, NULL);
	comp[2 + 255] = 'c';
	comp[2 + 256] = '\0';
	refused_change(&c);
	c.path = comp;
	refused_change(&c);
	/* SG_PATH_MAX bytes accepted, one more refused */
	longp = malloc(SG_PATH_MAX + 2);
	assert_non_null(longp);
	for (size_t i = 0; i < SG_PATH_MAX + 1; i++) {
		longp[i] = i % 100 == 99 ? '/' : 'p';
	}
	longp[SG_PATH_MAX] = '\0';
	c.path = longp;
	accepted(&m, NULL);
	longp[SG_PATH_MAX] = 'p';
	longp[SG_PATH_MAX + 1] = '\0';
	refused_change(&c);
	free(longp);
	/* a NUL inside */
	c.path = "dir/fXle";
	b = raw_msg(&m);
	raw_patch(&b, "dir/fXle", "dir/f\0le");
	refused_raw(NULL, b, NULL, -EBADMSG);
}

/* ---- refusals: change fields ------------------------------------------------------------ */

static void test_bad_change_type(void **state)
{
	sg_change c = good_file();

	(void)state;
	c.len = 0;
	c.data = NULL;
	c.type = SG_TYPE_NONE;
	refused_change(&c);
	c.type = 5;
	refused_change(&c);
	c.type = 255;
	refused_change(&c);
}

static void test_bad_mode(void **state)
{
	sg_change c = good_file();
	sg_msg m = one_change(&c);

	(void)state;
	c.mode = 07777;
	accepted(&m, NULL);
	c.mode = 010000;
	refused_change(&c);
	c.mode = 0100644; /* S_IFREG | 0644: type bits do not belong on the wire */
	refused_change(&c);
	c.mode = UINT32_MAX;
	refused_change(&c);
}

static void test_bad_stamps(void **state)
{
	sg_change c = good_file();
	sg_change d = {.path = "d", .type = SG_TYPE_DIR, .mode = 0755};
	sg_msg m = one_change(&d);

	(void)state;
	c.stamp = (sg_stamp){0, 0, 0}; /* only a directory may be a placeholder */
	refused_change(&c);
	c.stamp = (sg_stamp){0, 1, 1};
	refused_change(&c);
	c.stamp = (sg_stamp){1, 0, 1};
	refused_change(&c);
	c.stamp = (sg_stamp){1, 1, 0}; /* seq is not checked */
	m.changes = &c;
	accepted(&m, NULL);

	m.changes = &d;
	accepted(&m, NULL); /* the placeholder: all-zero stamp */
	d.stamp = (sg_stamp){0, 0, 1};
	refused_change(&d);
	d.stamp = (sg_stamp){0, 5, 0};
	refused_change(&d);
	d.stamp = (sg_stamp){5, 0, 0};
	refused_change(&d);
	d.type = SG_TYPE_TOMBSTONE;
	d.stamp = (sg_stamp){0, 0, 0};
	refused_change(&d);
	d.type = SG_TYPE_SYMLINK;
	d.data = "t";
	d.len = 1;
	refused_change(&d);
}

static void test_bad_data(void **state)
{
	sg_change c = {.path = "d", .type = SG_TYPE_DIR, .mode = 0755, .stamp = {1, 1, 1}};
	sg_msg m = one_change(&c);
	sg_wire_limits lim = {.max_file = 10};
	char target[SG_PATH_MAX + 2];
	struct raw b;

	(void)state;
	c.data = "x";
	c.len = 1;
	refused_change(&c); /* data on a directory */
	c.stamp = (sg_stamp){0, 0, 0};
	refused_change(&c); /* nor on a placeholder */
	c.stamp = (sg_stamp){1, 1, 1};
	c.type = SG_TYPE_TOMBSTONE;
	refused_change(&c);

	/* symlinks: 1..SG_PATH_MAX bytes, no NUL */
	c.type = SG_TYPE_SYMLINK;
	c.data = "";
	c.len = 0;
	refused_change(&c);
	memset(target, 't', sizeof(target));
	c.data = target;
	c.len = SG_PATH_MAX;
	accepted(&m, NULL);
	c.len = SG_PATH_MAX + 1;
	refused_change(&c);
	c.data = "a\0b";
	c.len = 3;
	refused_change(&c);

	/* files: up to max_file */
	c.type = SG_TYPE_FILE;
	c.data = "0123456789A";
	c.len = 10;
	accepted(&m, &lim);
	c.len = 11;
	accepted(&m, NULL);
	b = raw_msg(&m);
	refused_raw(NULL, b, &lim, -EBADMSG);
	c.len = 0;
	accepted(&m, &lim);
	/* data announced but absent: encode refuses */
	c.data = NULL;
	c.len = 3;
	{
		void *buf = NULL;
		size_t len = 0;

		assert_int_equal(sg_wire_encode(&m, &buf, &len), -EINVAL);
	}
}

/* Encode refuses a file over the default SG_DEFAULT_MAX_FILE (decode would). */
static void test_file_over_default(void **state)
{
	sg_change c = good_file();
	sg_msg m = one_change(&c);
	void *buf = NULL;
	size_t len = 0;
	char *big = calloc(1, SG_DEFAULT_MAX_FILE + 1);

	(void)state;
	assert_non_null(big);
	c.data = big;
	c.len = SG_DEFAULT_MAX_FILE + 1;
	assert_int_equal(sg_wire_encode(&m, &buf, &len), -EINVAL);
	c.len = SG_DEFAULT_MAX_FILE;
	assert_int_equal(sg_wire_encode(&m, &buf, &len), 0);
	free(buf);
	free(big);
}

/* sg_wire_change_check: what a sender may put on the wire. */
static void test_change_check(void **state)
{
	sg_change c = good_file();
	char *big = calloc(1, SG_WIRE_MAX_FILE + 1);

	(void)state;
	assert_non_null(big);
	assert_int_equal(sg_wire_change_check(&c), 0);
	c.data = big;
	c.len = SG_WIRE_MAX_FILE;
	assert_int_equal(sg_wire_change_check(&c), 0);
	c.len = SG_WIRE_MAX_FILE + 1;
	assert_int_equal(sg_wire_change_check(&c), -EFBIG);
	c = good_file();
	c.path = "/abs";
	assert_int_equal(sg_wire_change_check(&c), -EINVAL);
	c = good_file();
	c.mode = 010000;
	assert_int_equal(sg_wire_change_check(&c), -EINVAL);
	assert_int_equal(sg_wire_change_check(NULL), -EINVAL);
	free(big);
}

/* The largest file and xattrs of one change in a CHANGES message with the
 * largest envelope: sg_wire_change_check's `total` xattr bytes (values of
 * up to 64 KiB each, 256 at most) on a 64 MiB file. */
static int check_with_xattrs(sg_change *c, sg_xattr *xs, char names[][16], const char *val,
                             size_t total)
{
	size_t n = 0;

	for (; total > 0 && n < 256; n++) {
		size_t v = total < 65536 ? total : 65536;

		snprintf(names[n], 16, "user.x%03zu", n);
		xs[n] = (sg_xattr){names[n], val, v};
		total -= v;
	}
	c->xattrs = xs;
	c->nxattrs = n;
	return sg_wire_change_check(c);
}

/* A change sg_wire_change_check passes always fits in a message with the
 * largest header, version vector and peer list; one byte more does not pass. */
static void test_change_check_fits_envelope(void **state)
{
	static sg_xattr xs[256];
	static char names[256][16];
	static sg_vv_entry vv[SG_WIRE_VV_MAX];
	static char url[300], urls[256][300];
	const char *peers[256];
	char name[65];
	sg_change c = good_file();
	char *data = calloc(1, SG_WIRE_MAX_FILE), *val = calloc(1, 65536);
	size_t lo = 0, hi = (size_t)256 * 65536;
	sg_msg m = sample_header(SG_MSG_CHANGES);
	void *buf = NULL;
	size_t len = 0;

	(void)state;
	assert_non_null(data);
	assert_non_null(val);
	c.data = data;
	c.len = SG_WIRE_MAX_FILE;
	assert_int_equal(check_with_xattrs(&c, xs, names, val, lo), 0);
	assert_int_equal(check_with_xattrs(&c, xs, names, val, hi), -EFBIG);
	while (hi - lo > 1) { /* the largest total that passes */
		size_t mid = lo + (hi - lo) / 2;

		if (check_with_xattrs(&c, xs, names, val, mid) == 0)
			lo = mid;
		else
			hi = mid;
	}
	assert_int_equal(check_with_xattrs(&c, xs, names, val, lo), 0);

	memset(name, 'n', 64);
	name[64] = '\0';
	snprintf(url, sizeof(url), "tcp://%0250d", 7);
	assert_int_equal(strlen(url), 256);
	for (size_t i = 0; i < 256; i++) {
		snprintf(urls[i], sizeof(urls[i]), "tcp://%0250zu", i);
		peers[i] = urls[i];
	}
	for (size_t i = 0; i < SG_WIRE_VV_MAX; i++)
		vv[i] = (sg_vv_entry){i + 1, 1};
	m.node_name = name;
	m.listen_url = url;
	m.vv = vv;
	m.nvv = SG_WIRE_VV_MAX;
	m.peers = peers;
	m.npeers = 256;
	m.changes = &c;
	m.nchanges = 1;
	assert_int_equal(sg_wire_encode(&m, &buf, &len), 0);
	assert_true(len <= ((size_t)80 << 20));
	free(buf);
	assert_int_equal(check_with_xattrs(&c, xs, names, val, lo + 1), -EFBIG);
	free(data);
	free(val);
}

static void test_too_many_changes(void **state)
{
	sg_change cs[3];
	sg_msg m = sample_header(SG_MSG_PUSH);
	sg_wire_limits lim = {.max_changes = 2};
	struct raw b;

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		cs[i] = good_file();
	}
	m.changes = cs;
	m.nchanges = 2;
	accepted(&m, &lim);
	m.nchanges = 3;
	accepted(&m, NULL);
	b = raw_msg(&m);
	refused_raw(NULL, b, &lim, -EBADMSG);
	m.type = SG_MSG_CHANGES;
	b = raw_msg(&m);
	refused_raw(NULL, b, &lim, -EBADMSG);
}

/* Encode refuses more changes than the default limit. */
static void test_too_many_changes_default(void **state)
{
	size_t n = 100001;
	sg_change *cs = calloc(n, sizeof(*cs));
	sg_msg m = sample_header(SG_MSG_PUSH);
	void *buf = NULL;
	size_t len = 0;

	(void)state;
	assert_non_null(cs);
	for (size_t i = 0; i < n; i++) {
		cs[i] = (sg_change){.path = "t", .type = SG_TYPE_TOMBSTONE, .stamp = {1, 1, 1}};
	}
	m.changes = cs;
	m.nchanges = n;
	assert_int_equal(sg_wire_encode(&m, &buf, &len), -EINVAL);
	m.nchanges = n - 1;
	assert_int_equal(sg_wire_encode(&m, &buf, &len), 0);
	free(buf);
	free(cs);
}

/* ---- refusals: xattrs --------------------------------------------------------------------- */

static void test_bad_xattrs(void **state)
{
	static const char *const bad[] = {
	    "user.", "trusted.a", "security.selinux", "system.x", "User.a", "usera", ""};
	static unsigned char value[65537];
	char name[260];
	sg_xattr x = {"user.a", "v", 1};
	sg_change c = good_file();
	sg_msg m = one_change(&c);
	struct raw b;

	(void)state;
	c.xattrs = &x;
	c.nxattrs = 1;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		x.name = bad[i];
		refused_change(&c);
	}
	/* "user." + 250 bytes accepted, + 251 refused (encode only: str8 cannot say 256) */
	memcpy(name, "user.", 5);
	memset(name + 5, 'n', 251);
	name[255] = '\0';
	x.name = name;
	accepted(&m, NULL);
	name[255] = 'n';
	name[256] = '\0';
	{
		void *buf = NULL;
		size_t len = 0;

		assert_int_equal(sg_wire_encode(&m, &buf, &len), -EINVAL);
	}
	/* a NUL inside the name */
	x.name = "user.aXb";
	b = raw_msg(&m);
	raw_patch(&b, "user.aXb", "user.a\0b");
	refused_raw(NULL, b, NULL, -EBADMSG);
	/* values up to 65536 bytes */
	x.name = "user.v";
	x.value = value;
	x.len = 65536;
	accepted(&m, NULL);
	x.len = 65537;
	refused_change(&c);
	/* announced but absent: encode refuses */
	x.value = NULL;
	x.len = 1;
	{
		void *buf = NULL;
		size_t len = 0;

		assert_int_equal(sg_wire_encode(&m, &buf, &len), -EINVAL);
	}
}

static void test_xattrs_on_tombstone(void **state)
{
	sg_xattr x = {"user.a", "v", 1};
	sg_change c = {.path = "gone", .type = SG_TYPE_TOMBSTONE, .stamp = {1, 1, 1}};
	sg_msg m = one_change(&c);

	(void)state;
	accepted(&m, NULL);
	c.xattrs = &x;
	c.nxattrs = 1;
	refused_change(&c);
	/* on every live type they are fine */
	c.type = SG_TYPE_DIR;
	accepted(&m, NULL);
	c.stamp = (sg_stamp){0, 0, 0};
	accepted(&m, NULL);
	c.type = SG_TYPE_SYMLINK;
	c.stamp = (sg_stamp){1, 1, 1};
	c.data = "t";
	c.len = 1;
	accepted(&m, NULL);
}

static void test_too_many_xattrs(void **state)
{
	static sg_xattr xs[257];
	static char names[257][16];
	sg_change c = good_file();
	sg_msg m = one_change(&c);

	(void)state;
	for (size_t i = 0; i < 257; i++) {
		snprintf(names[i], sizeof(names[i]), "user.x%zu", i);
		xs[i] = (sg_xattr){names[i], "v", 1};
	}
	c.xattrs = xs;
	c.nxattrs = 256;
	accepted(&m, NULL);
	c.nxattrs = 257;
	refused_change(&c);
}

/* ---- limits on the whole message -------------------------------------------------------- */

static void test_msg_size(void **state)
{
	sg_msg m = sample_changes_msg();
	struct raw b = raw_msg(&m);
	sg_wire_limits lim = {.max_msg = b.len};
	sg_msg *d = NULL;

	(void)state;
	assert_int_equal(decode_copy(b.p, b.len, &lim, &d), 0);
	sg_wire_free(d);
	d = (sg_msg *)1;
	lim.max_msg = b.len - 1;
	assert_int_equal(decode_copy(b.p, b.len, &lim, &d), -EMSGSIZE);
	assert_null(d);
	free(b.p);
	/* over the default 80 MiB: refused before anything is read */
	d = (sg_msg *)1;
	assert_int_equal(sg_wire_decode("", ((size_t)80 << 20) + 1, NULL, &d), -EMSGSIZE);
	assert_null(d);
}

/* Encode refuses a message past the default max_msg, each change being valid. */
static void test_msg_size_encode(void **state)
{
	sg_change cs[2];
	sg_msg m = sample_header(SG_MSG_PUSH);
	char *big = calloc(1, SG_DEFAULT_MAX_FILE);
	void *buf = NULL;
	size_t len = 0;

	(void)state;
	assert_non_null(big);
	for (size_t i = 0; i < 2; i++) {
		cs[i] = good_file();
		cs[i].data = big;
		cs[i].len = SG_DEFAULT_MAX_FILE;
	}
	m.changes = cs;
	m.nchanges = 2;
	assert_int_equal(sg_wire_encode(&m, &buf, &len), -EINVAL);
	assert_null(buf);
	free(big);
}

static void test_bad_args(void **state)
{
	sg_msg m = sample_pull(), *d = NULL;
	void *buf = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(sg_wire_encode(NULL, &buf, &len), -EINVAL);
	assert_int_equal(sg_wire_encode(&m, NULL, &len), -EINVAL);
	assert_int_equal(sg_wire_encode(&m, &buf, NULL), -EINVAL);
	assert_int_equal(sg_wire_decode(NULL, 0, NULL, &d), -EBADMSG);
	m.node_name = NULL;
	assert_int_equal(sg_wire_encode(&m, &buf, &len), -EINVAL);
	m = sample_pull();
	m.listen_url = NULL;
	assert_int_equal(sg_wire_encode(&m, &buf, &len), -EINVAL);
	m = sample_pull();
	m.peers = NULL;
	assert_int_equal(sg_wire_encode(&m, &buf, &len), -EINVAL);
	sg_wire_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_pull),
	    cmocka_unit_test(test_round_trip_changes),
	    cmocka_unit_test(test_round_trip_push),
	    cmocka_unit_test(test_round_trip_ack),
	    cmocka_unit_test(test_other_fields_ignored),
	    cmocka_unit_test(test_layout),
	    cmocka_unit_test(test_change_size),
	    cmocka_unit_test(test_bad_magic_version),
	    cmocka_unit_test(test_push_range),
	    cmocka_unit_test(test_bad_type),
	    cmocka_unit_test(test_truncated_everywhere),
	    cmocka_unit_test(test_trailing_byte),
	    cmocka_unit_test(test_length_past_end),
	    cmocka_unit_test(test_zero_ids),
	    cmocka_unit_test(test_bad_node_name),
	    cmocka_unit_test(test_bad_urls),
	    cmocka_unit_test(test_too_many_peers),
	    cmocka_unit_test(test_bad_more),
	    cmocka_unit_test(test_bad_horizon),
	    cmocka_unit_test(test_bad_vv),
	    cmocka_unit_test(test_bad_paths),
	    cmocka_unit_test(test_bad_change_type),
	    cmocka_unit_test(test_bad_mode),
	    cmocka_unit_test(test_bad_stamps),
	    cmocka_unit_test(test_bad_data),
	    cmocka_unit_test(test_file_over_default),
	    cmocka_unit_test(test_change_check),
	    cmocka_unit_test(test_change_check_fits_envelope),
	    cmocka_unit_test(test_too_many_changes),
	    cmocka_unit_test(test_too_many_changes_default),
	    cmocka_unit_test(test_bad_xattrs),
	    cmocka_unit_test(test_xattrs_on_tombstone),
	    cmocka_unit_test(test_too_many_xattrs),
	    cmocka_unit_test(test_msg_size),
	    cmocka_unit_test(test_msg_size_encode),
	    cmocka_unit_test(test_bad_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
