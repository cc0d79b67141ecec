/* test_repl.c: a real replicator on 127.0.0.1 against hostile and honest peers:
 * garbage is dropped and counted and changes nothing; two nodes converge. */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmocka.h>

#include "lmdb/store.h"
#include "repl/repl.h"
#include "repl/wire_i.h"
#include "util.h"

struct node {
	char dir[64];
	char url[64];
	sg_store *st;
	sg_repl *r;
};

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

/* A free TCP port on 127.0.0.1 (bound, then released). */
static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static void node_start(struct node *n, const char *name, const char *peer)
{
	sg_store_opts so = {0};
	sg_repl_opts ro = {0};

	strcpy(n->dir, "/tmp/sigil-repl-XXXXXX");
	assert_non_null(mkdtemp(n->dir));
	snprintf(n->url, sizeof(n->url), "tcp://127.0.0.1:%d", free_port());
	so.dir = n->dir;
	so.node_id = sg_hash64(name, strlen(name));
	assert_int_equal(sg_store_open(&n->st, &so), 0);
	ro.store = n->st;
	ro.node_name = name;
	ro.listen = n->url;
	ro.peers = &peer;
	ro.npeers = peer ? 1 : 0;
	ro.pull_interval_ms = 100;
	assert_int_equal(sg_repl_start(&n->r, &ro), 0);
	sg_store_set_observer(n->st, sg_repl_on_commit, n->r);
}

static void node_stop(struct node *n)
{
	sg_store_set_observer(n->st, NULL, NULL);
	sg_repl_stop(n->r);
	sg_store_close(n->st);
	nftw(n->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Send raw bytes as a request; the reply (if any) within 1 s. */
static int send_raw(const char *url, const void *buf, size_t len, nng_msg **reply)
{
	nng_socket s;
	nng_msg *m;
	int rv;

	assert_int_equal(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 1000);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 1000);
	assert_int_equal(nng_dial(s, url, NULL, 0), 0);
	assert_int_equal(nng_msg_alloc(&m, 0), 0);
	assert_int_equal(nng_msg_append(m, buf, len), 0);
	rv = nng_sendmsg(s, m, 0);
	if (rv == 0)
		rv = nng_recvmsg(s, reply, 0);
	else
		nng_msg_free(m);
	nng_close(s);
	return rv;
}

static void test_garbage_is_dropped_and_counted(void **state)
{
	struct node a;
	sg_repl_stats rs;
	sg_attr x;
	nng_msg *reply = NULL;
	unsigned char junk[512];
	sg_msg pull;
	void *good;
	size_t goodlen;
	uint64_t v0;

	node_start(&a, "alpha", NULL);
	assert_int_equal(sg_store_create(a.st, NULL, SG_ROOT_ID, "keep.conf", SG_TYPE_FILE, 0644, 0,
	                                 0, "keep", 4, sg_now_ns(), &x),
	                 0);
	v0 = sg_store_version(a.st);

	/* random bytes, a truncated valid message, a valid header with a bad body */
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)(i * 131 + 7);
	assert_int_equal(send_raw(a.url, junk, sizeof(junk), &reply), NNG_ETIMEDOUT);
	memset(&pull, 0, sizeof(pull));
	pull.type = SG_MSG_PULL;
	pull.node_id = 0x9999;
	pull.incarnation = 1;
	pull.node_name = "probe";
	pull.listen_url = "";
	pull.max_bytes = 1 << 20;
	assert_int_equal(sg_wire_encode(&pull, &good, &goodlen), 0);
	assert_int_equal(send_raw(a.url, good, goodlen - 3, &reply), NNG_ETIMEDOUT);
	assert_int_equal(send_raw(a.url, "SGL1", 4, &reply), NNG_ETIMEDOUT);

	sg_repl_stats_get(a.r, &rs);
	assert_int_equal(rs.malformed, 3);
	assert_int_equal(sg_store_version(a.st), v0); /* nothing changed */

	/* the node still answers an honest pull, with what it holds */
	assert_int_equal(send_raw(a.url, good, goodlen, &reply), 0);
	{
		sg_msg *m = NULL;
		assert_int_equal(sg_wire_decode(nng_msg_body(reply), nng_msg_len(reply), NULL, &m),
		                 0);
		assert_int_equal(m->type, SG_MSG_CHANGES);
		assert_int_equal(m->nchanges, 1);
		assert_string_equal(m->changes[0].path, "keep.conf");
		assert_int_equal(m->changes[0].len, 4);
		assert_memory_equal(m->changes[0].data, "keep", 4);
		sg_wire_free(m);
	}
	nng_msg_free(reply);
	free(good);
	node_stop(&a);
}

/* Wait (at most 5 s) for `path` on n to hold `want` (NULL: to be gone). */
static int wait_for(struct node *n, const char *path, const char *want)
{
	for (int i = 0; i < 500; i++) {
		sg_attr x;
		void *data = NULL;
		size_t len = 0;
		int rc = sg_store_resolve(n->st, path, &x), ok;

		if (rc == 0 && want)
			rc = sg_store_read(n->st, x.id, &data, &len);
		ok = want ? rc == 0 && len == strlen(want) && memcmp(data, want, len) == 0
		          : rc == -ENOENT;
		free(data);
		if (ok)
			return 1;
		usleep(10000);
	}
	return 0;
}

static void test_two_nodes_converge(void **state)
{
	struct node a, b;
	sg_attr d, x;
	sg_repl_stats rs;

	node_start(&a, "alpha", NULL);
	node_start(&b, "beta", a.url); /* b knows a; a learns b from b's messages */
	assert_int_equal(sg_store_create(a.st, NULL, SG_ROOT_ID, "etc", SG_TYPE_DIR, 0755, 0, 0,
	                                 NULL, 0, sg_now_ns(), &d),
	                 0);
	assert_int_equal(sg_store_create(a.st, NULL, d.id, "app.conf", SG_TYPE_FILE, 0640, 0, 0,
	                                 "v1", 2, sg_now_ns(), &x),
	                 0);
	assert_true(wait_for(&b, "etc/app.conf", "v1"));
	/* and back: b's change reaches a (a learned b's URL) */
	assert_int_equal(sg_store_resolve(b.st, "etc/app.conf", &x), 0);
	assert_int_equal(
	    sg_store_write(b.st, NULL, x.id, "v2 from b", 9, sg_now_ns(), sg_now_ns(), NULL), 0);
	assert_true(wait_for(&a, "etc/app.conf", "v2 from b"));
	/* a delete travels as a tombstone */
	assert_int_equal(sg_store_remove(a.st, NULL, d.id, "app.conf", 0, sg_now_ns()), 0);
	assert_true(wait_for(&b, "etc/app.conf", NULL));
	/* an editor temporary stays home */
	assert_int_equal(sg_store_create(a.st, NULL, d.id, "app.conf~", SG_TYPE_FILE, 0640, 0, 0,
	                                 "backup", 6, sg_now_ns(), NULL),
	                 0);
	assert_int_equal(sg_store_create(a.st, NULL, d.id, "after", SG_TYPE_FILE, 0640, 0, 0, "x",
	                                 1, sg_now_ns(), NULL),
	                 0);
	assert_true(wait_for(&b, "etc/after", "x"));
	assert_int_equal(sg_store_resolve(b.st, "etc/app.conf~", &x), -ENOENT);
	sg_repl_stats_get(b.r, &rs);
	assert_true(rs.applied >= 4);
	assert_int_equal(rs.malformed, 0);
	node_stop(&b);
	node_stop(&a);
}

static void test_future_stamps_wait(void **state)
{
	struct node a;
	sg_repl_stats rs;
	sg_msg push;
	sg_change c;
	void *buf;
	size_t len;
	nng_msg *reply = NULL;
	sg_attr x;

	node_start(&a, "alpha", NULL);
	memset(&c, 0, sizeof(c));
	c.path = "from-the-future";
	c.type = SG_TYPE_FILE;
	c.mode = 0644;
	c.data = "soon";
	c.len = 4;
	/* an hour ahead of this clock, far past the 500 ms max offset */
	c.stamp.hlc = ((uint64_t)(sg_now_ns() / 1000000) + 3600000) << 16;
	c.stamp.origin = 0x7777;
	c.stamp.seq = 1;
	memset(&push, 0, sizeof(push));
	push.type = SG_MSG_PUSH;
	push.node_id = 0x7777;
	push.incarnation = 1;
	push.node_name = "skewed";
	push.listen_url = "";
	push.changes = &c;
	push.nchanges = 1;
	assert_int_equal(sg_wire_encode(&push, &buf, &len), 0);
	assert_int_equal(send_raw(a.url, buf, len, &reply), 0);
	nng_msg_free(reply);
	free(buf);
	sg_repl_stats_get(a.r, &rs);
	assert_int_equal(rs.quarantined, 1);
	assert_int_equal(rs.applied, 0);
	assert_int_equal(sg_store_resolve(a.st, "from-the-future", &x), -ENOENT);
	assert_true(sg_store_hlc(a.st) < c.stamp.hlc); /* the clock was not dragged ahead */
	node_stop(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_garbage_is_dropped_and_counted),
	    cmocka_unit_test(test_two_nodes_converge),
	    cmocka_unit_test(test_future_stamps_wait),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
