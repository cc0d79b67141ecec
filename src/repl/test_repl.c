/* test_repl.c: a real replicator on 127.0.0.1 against hostile and honest peers:
 * garbage is dropped and counted and changes nothing; two nodes converge. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* What a test makes in /tmp is named /tmp/sigil-WHAT-PID-XXXXXX, WHAT one
 * of these, PID the test's process: main() removes what a test process
 * leaves behind when it fails (an assertion skips the test's cleanup). */
static const char *const tmp_kinds[] = {"repl", "pki", "log"};

static void tmp_name(char *buf, size_t len, const char *what)
{
	snprintf(buf, len, "/tmp/sigil-%s-%d-XXXXXX", what, (int)getpid());
}

static void remove_leftovers(pid_t pid)
{
	DIR *d = opendir("/tmp");
	struct dirent *e;

	while (d && (e = readdir(d))) {
		for (size_t k = 0; k < sizeof(tmp_kinds) / sizeof(tmp_kinds[0]); k++) {
			char prefix[64], path[320];

			snprintf(prefix, sizeof(prefix), "sigil-%s-%d-", tmp_kinds[k], (int)pid);
			if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
				continue;
			snprintf(path, sizeof(path), "/tmp/%s", e->d_name);
			nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
		}
	}
	if (d)
		closedir(d);
}

/* Ports this process reserved (see free_port()), released at exit. */
static int reserved_port[256];
static unsigned n_reserved;

static const char *port_dir(void)
{
	const char *d = getenv("SIGIL_PORT_DIR");
	return d && *d ? d : "/tmp/sigil-ports";
}

static void release_ports(void)
{
	char path[PATH_MAX];
	unsigned i;

	for (i = 0; i < n_reserved; i++) {
		snprintf(path, sizeof(path), "%s/%d", port_dir(), reserved_port[i]);
		unlink(path);
	}
	rmdir(port_dir()); /* fails while another test holds ports: fine */
}

/* A free TCP port on 127.0.0.1 (bound, then released), below the kernel's
 * ephemeral range (32768 and up by default), so that no connection's local
 * port takes it before the node meant for it listens; reserved, as the
 * integration tests' sg_ports does, by a file in SIGIL_PORT_DIR
 * (/tmp/sigil-ports) holding this pid, so a test running beside this one
 * does not pick it meanwhile. */
static int free_port(void)
{
	static unsigned seed;
	char path[PATH_MAX], pid[32];
	int i;

	if (!seed) {
		seed = (unsigned)getpid() ^ (unsigned)sg_now_ns();
		atexit(release_ports);
	}
	assert_true(n_reserved < sizeof(reserved_port) / sizeof(reserved_port[0]));
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	for (i = 0; i < 1000; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET,
		                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int port = 10000 + (int)(rand_r(&seed) % 22000), fd, rc;

		if (mkdir(port_dir(), 0755) != 0 && errno != EEXIST)
			continue;
		snprintf(path, sizeof(path), "%s/%d", port_dir(), port);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0)
			continue; /* another test's, or the dir was just removed */
		rc = write(fd, pid, strlen(pid)) == (ssize_t)strlen(pid) ? 0 : -1;
		close(fd);
		a.sin_port = htons((uint16_t)port);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(fd >= 0);
		rc = rc ? rc : bind(fd, (struct sockaddr *)&a, sizeof(a));
		close(fd);
		if (rc != 0) {
			unlink(path);
			continue;
		}
		reserved_port[n_reserved++] = port;
		return port;
	}
	fail_msg("no free port in 10000-31999 after 1000 tries");
	return -1;
}

static unsigned test_grace_ms; /* tombstone_grace of the nodes a test starts; 0: default */
static int test_no_listen;     /* 1: the nodes a test starts do not listen */
static uint64_t test_max_map;  /* the LMDB map of the stores a test opens; 0: default */
static size_t test_quarantine; /* max_quarantine_bytes of the nodes a test starts */
static uint64_t test_max_file; /* max_file_size of the stores a test opens; 0: default */
static const char *test_host = "127.0.0.1"; /* the host the nodes a test starts listen on */
static const char *test_tls;                /* a directory written by pki_write(): nodes use TLS */

/*
 * A test PKI, valid until 2126: the cluster's CA and a node certificate
 * (IP:127.0.0.1) signed by it, and an unrelated CA with a certificate of
 * its own (an intruder that holds a well-formed certificate).
 */
static const char CA_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                             "MIIBkzCCATqgAwIBAgIURDSCQviNhzM8gMU8jCvw7mtzoZIwCgYIKoZIzj0EAwIw\n"
                             "JzElMCMGA1UEAwwcc2lnaWxmcyB0ZXN0X3JlcGwgY2x1c3RlciBDQTAgFw0yNjEy\n"
                             "MDMxMzQ5MDVaGA8yMTI2MTEwOTEzNDkwNVowJzElMCMGA1UEAwwcc2lnaWxmcyB0\n"
                             "ZXN0X3JlcGwgY2x1c3RlciBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABJ+q\n"
                             "gpvpGJAkl9EQVwUfmZw2BD3WkUolIImnp+60rdzXh2ApqgI+95XVIg+rar5WUVfm\n"
                             "4uXTq2fl1RUUAgt16n+jQjBAMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQD\n"
                             "AgEGMB0GA1UdDgQWBBTm7HO1bPlP4QopVPfOQ7vgQCYHqTAKBggqhkjOPQQDAgNH\n"
                             "ADBEAiA6vK8++LmjIrG5NaVIhs3hAE8clXSIp6xnfMFlDZ5PqAIgUdtHTgnQ9YHu\n"
                             "KjWCtPc7ijxcuIycUQRaKz5Ns9B71+w=\n"
                             "-----END CERTIFICATE-----\n";

static const char NODE_CERT[] = "-----BEGIN CERTIFICATE-----\n"
                                "MIIB1jCCAXygAwIBAgIIF5UYVbKYBtUwCgYIKoZIzj0EAwIwJzElMCMGA1UEAwwc\n"
                                "c2lnaWxmcyB0ZXN0X3JlcGwgY2x1c3RlciBDQTAgFw0yNjEyMDMxMzQ5MDlaGA8y\n"
                                "MTI2MTEwOTEzNDkwOVowDzENMAsGA1UEAwwEbm9kZTBZMBMGByqGSM49AgEGCCqG\n"
                                "SM49AwEHA0IABCK8WTf4HnWe93mEfa1R0+r1H/V0BNbzzqBiljWpVm7FCNLjYV4N\n"
                                "1HBq9sore4fgym1sLR6nKVf4lquZIg5fVOejgacwgaQwDAYDVR0TAQH/BAIwADAO\n"
                                "BgNVHQ8BAf8EBAMCA4gwHQYDVR0lBBYwFAYIKwYBBQUHAwEGCCsGAQUFBwMCMCUG\n"
                                "A1UdEQQeMByHBH8AAAGCCWxvY2FsaG9zdIIJMTI3LjAuMC4xMB0GA1UdDgQWBBSl\n"
                                "TO3wYcvzK62xJnFQpu73at/sJDAfBgNVHSMEGDAWgBTm7HO1bPlP4QopVPfOQ7vg\n"
                                "QCYHqTAKBggqhkjOPQQDAgNIADBFAiBwv1rL8XqbAv4V0mnP5DudfAHv5BVPE4Ab\n"
                                "syEhldzhDgIhAO5kHpLLXG9ecAzY9vO3yV0o2GbHITzy2RrKQUe256Zt\n"
                                "-----END CERTIFICATE-----\n";

static const char NODE_KEY[] = "-----BEGIN PRIVATE KEY-----\n"
                               "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgF+lT/yuFrqZN8BJ6\n"
                               "vbkzuRCJuWux5/LiNZbuPpdYH0mhRANCAAQivFk3+B51nvd5hH2tUdPq9R/1dATW\n"
                               "886gYpY1qVZuxQjS42FeDdRwavbKK3uH4MptbC0epylX+JarmSIOX1Tn\n"
                               "-----END PRIVATE KEY-----\n";

static const char OTHER_CA_PEM[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBkTCCATagAwIBAgIUJYuC1G4gBRraX+IKjG2l3j8FNz8wCgYIKoZIzj0EAwIw\n"
    "JTEjMCEGA1UEAwwac2lnaWxmcyB0ZXN0X3JlcGwgb3RoZXIgQ0EwIBcNMjYxMjAz\n"
    "MTM0OTA1WhgPMjEyNjExMDkxMzQ5MDVaMCUxIzAhBgNVBAMMGnNpZ2lsZnMgdGVz\n"
    "dF9yZXBsIG90aGVyIENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE5ny7aIkB\n"
    "12dYb71V2Jr7UkVNe9549VYABCKFaxaAlmJYNOxiu6KnknThsKQYBKkBZ4DY0F1z\n"
    "5z1GsnLapJD9EqNCMEAwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYw\n"
    "HQYDVR0OBBYEFEEBoA0gFElAiCKZSerQyROu/guEMAoGCCqGSM49BAMCA0kAMEYC\n"
    "IQDn/9S8YNVcEO0QOTps+GvUGNNGHJ+sl6tpcRc2V9zy5gIhAKHPcZGeSuMnMhy7\n"
    "Dkaf7GHKkJI6xFeWVAxgIvuqLEHy\n"
    "-----END CERTIFICATE-----\n";

static const char INTRUDER_CERT[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIB2TCCAX+gAwIBAgIJAKLYsYq102PgMAoGCCqGSM49BAMCMCUxIzAhBgNVBAMM\n"
    "GnNpZ2lsZnMgdGVzdF9yZXBsIG90aGVyIENBMCAXDTI2MTIwMzEzNDkwNVoYDzIx\n"
    "MjYxMTA5MTM0OTA1WjATMREwDwYDVQQDDAhpbnRydWRlcjBZMBMGByqGSM49AgEG\n"
    "CCqGSM49AwEHA0IABH6k6h3Kvvc3/5k9DkTdcpuGEQ7v+qv2JjJC78lEGdomPMiN\n"
    "iCG8TcZfDS1cphK0hsft/PmI9n8AJXUVV9pbI++jgacwgaQwDAYDVR0TAQH/BAIw\n"
    "ADAOBgNVHQ8BAf8EBAMCA4gwHQYDVR0lBBYwFAYIKwYBBQUHAwEGCCsGAQUFBwMC\n"
    "MCUGA1UdEQQeMByHBH8AAAGCCWxvY2FsaG9zdIIJMTI3LjAuMC4xMB0GA1UdDgQW\n"
    "BBTUvxhpJBH0AIbeZH2FcCGgVeSLGTAfBgNVHSMEGDAWgBRBAaANIBRJQIgimUnq\n"
    "0MkTrv4LhDAKBggqhkjOPQQDAgNIADBFAiEAjBFWE9V11QSVmXIfBCj42hVUm9tV\n"
    "lLOVfUT5/VOGF5ICICdupwrOrhKK4ZgaharUJ34EcQpfHe4ycZ/8N5LrXWNS\n"
    "-----END CERTIFICATE-----\n";

static const char INTRUDER_KEY[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgxMTffWvO2D088PAQ\n"
    "js70o9c7GqcQeXoy+8DSZw/lL7ChRANCAAR+pOodyr73N/+ZPQ5E3XKbhhEO7/qr\n"
    "9iYyQu/JRBnaJjzIjYghvE3GXw0tXKYStIbH7fz5iPZ/ACV1FVfaWyPv\n"
    "-----END PRIVATE KEY-----\n";

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Write the test PKI into dir: ca.pem, node.crt, node.key, other.pem,
 * intruder.crt, intruder.key. */
static void pki_write(const char *dir)
{
	write_file(dir, "ca.pem", CA_PEM);
	write_file(dir, "node.crt", NODE_CERT);
	write_file(dir, "node.key", NODE_KEY);
	write_file(dir, "other.pem", OTHER_CA_PEM);
	write_file(dir, "intruder.crt", INTRUDER_CERT);
	write_file(dir, "intruder.key", INTRUDER_KEY);
}
static unsigned test_pull_ms = 100;     /* the nodes' pull interval */
static unsigned test_push_gap_ms;       /* the nodes' push gap; 0: default */
static unsigned test_create_delay_ms;   /* the nodes' create window; 0: default */
static uint64_t reader_at = UINT64_MAX; /* how far the (pretend) mirror has read the log */

static uint64_t log_reader(void *ctx)
{
	(void)ctx;
	return reader_at;
}

/* (Re)start replication on n's store. */
static void node_repl(struct node *n, const char *name, const char *peer)
{
	sg_repl_opts ro = {0};
	char ca[128], cert[128], key[128];

	ro.store = n->st;
	ro.node_name = name;
	ro.listen = test_no_listen ? NULL : n->url;
	ro.peers = &peer;
	if (test_tls) {
		snprintf(ca, sizeof(ca), "%s/ca.pem", test_tls);
		snprintf(cert, sizeof(cert), "%s/node.crt", test_tls);
		snprintf(key, sizeof(key), "%s/node.key", test_tls);
		ro.tls_ca = ca;
		ro.tls_cert = cert;
		ro.tls_key = key;
	}
	ro.npeers = peer ? 1 : 0;
	ro.pull_interval_ms = test_pull_ms;
	ro.push_gap_ms = test_push_gap_ms;
	ro.create_delay_ms = test_create_delay_ms;
	ro.tombstone_grace_ms = test_grace_ms;
	ro.max_quarantine_bytes = test_quarantine;
	ro.log_reader = log_reader;
	assert_int_equal(sg_repl_start(&n->r, &ro), 0);
	sg_store_set_observer(n->st, sg_repl_on_commit, n->r);
}

static void node_start(struct node *n, const char *name, const char *peer)
{
	sg_store_opts so = {0};

	tmp_name(n->dir, sizeof(n->dir), "repl");
	assert_non_null(mkdtemp(n->dir));
	snprintf(n->url, sizeof(n->url), "%s://%s:%d", test_tls ? "tls+tcp" : "tcp", test_host,
	         free_port());
	so.dir = n->dir;
	so.node_id = sg_hash64(name, strlen(name));
	so.sync_delay_ns = -1; /* versions move with each call (the daemons defer commits) */
	so.initial_map = test_max_map;
	so.max_map = test_max_map;
	so.max_file_size = test_max_file;
	assert_int_equal(sg_store_open(&n->st, &so), 0);
	node_repl(n, name, peer);
}

/* Stop n's replication only: the node is away, its store stays. */
static void node_away(struct node *n)
{
	sg_store_set_observer(n->st, NULL, NULL);
	sg_repl_stop(n->r);
	n->r = NULL;
}

static void node_stop(struct node *n)
{
	sg_store_set_observer(n->st, NULL, NULL);
	sg_repl_stop(n->r);
	sg_store_close(n->st);
	nftw(n->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Send raw bytes as a request over `tls` (NULL: none); the reply (if any) within 1 s. */
static int send_raw_tls(const char *url, nng_tls_config *tls, const void *buf, size_t len,
                        nng_msg **reply)
{
	nng_socket s;
	nng_dialer d;
	nng_msg *m;
	int rv;

	assert_int_equal(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 1000);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 1000);
	assert_int_equal(nng_dialer_create(&d, s, url), 0);
	if (tls)
		assert_int_equal(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls), 0);
	assert_int_equal(nng_dialer_start(d, 0), 0);
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

static int send_raw(const char *url, const void *buf, size_t len, nng_msg **reply)
{
	return send_raw_tls(url, NULL, buf, len, reply);
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

/* Wait (at most `ms`) for `path` on n to hold `want` (NULL: to be gone). */
static int wait_for_ms(struct node *n, const char *path, const char *want, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
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

/* wait_for_ms() for at most 5 s. */
static int wait_for(struct node *n, const char *path, const char *want)
{
	return wait_for_ms(n, path, want, 5000);
}

/* Wait (at most 5 s) for path to be a file of `size` bytes on n. */
static int wait_for_size(struct node *n, const char *path, uint64_t size)
{
	for (int i = 0; i < 500; i++) {
		sg_attr x;

		if (sg_store_resolve(n->st, path, &x) == 0 && x.size == size)
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
	/* the worker counts a change once its commit is back, a moment after
	 * readers see it */
	for (int i = 0; i < 100; i++) {
		sg_repl_stats_get(b.r, &rs);
		if (rs.applied >= 4)
			break;
		usleep(10000);
	}
	assert_true(rs.applied >= 4);
	assert_int_equal(rs.malformed, 0);
	node_stop(&b);
	node_stop(&a);
}

static void count_failures(void *ctx, const sg_repl_peer *p)
{
	*(unsigned *)ctx += p->failures;
}

/* Failures in a row of n's peers, summed. */
static unsigned peer_failures(struct node *n)
{
	unsigned f = 0;

	sg_repl_peers(n->r, count_failures, &f);
	return f;
}

static void stats_of(struct node *n, sg_repl_stats *rs)
{
	sg_repl_stats_get(n->r, rs);
}

/* A file of `len` bytes of `fill` named `name` at the root of n. */
static void make_file(struct node *n, const char *name, size_t len, char fill)
{
	char *buf = malloc(len ? len : 1);

	assert_non_null(buf);
	memset(buf, fill, len);
	assert_int_equal(sg_store_create(n->st, NULL, SG_ROOT_ID, name, SG_TYPE_FILE, 0644, 0, 0,
	                                 buf, len, sg_now_ns(), NULL),
	                 0);
	free(buf);
}

/*
 * Nodes with different max_file_size: a file larger than the receiver's
 * limit is passed over alone, counted once, and the rest flows, by pull and
 * by push. (It used to make the whole message malformed: the pull fetched
 * the same page forever and the pusher timed out at every try.)
 */
static void test_smaller_max_file_passes_over(void **state)
{
	struct node a, b, c, d;
	sg_repl_stats rs;
	sg_attr x;
	uint64_t pulls;

	/* pull only: a (1 MiB, does not listen) pulls from b (64 MiB) */
	node_start(&b, "beta", NULL);
	make_file(&b, "big", 2u << 20, 'b');
	make_file(&b, "after", 5, 'a');
	test_no_listen = 1;
	test_max_file = 1u << 20;
	node_start(&a, "alpha", b.url);
	test_no_listen = 0;
	test_max_file = 0;
	assert_true(wait_for(&a, "after", "aaaaa"));
	assert_int_equal(sg_store_resolve(a.st, "big", &x), -ENOENT);
	stats_of(&a, &rs);
	pulls = rs.pulls;
	usleep(500000); /* five more rounds: the cursor is past it, it is not counted again */
	stats_of(&a, &rs);
	assert_true(rs.pulls > pulls);
	assert_int_equal(rs.too_large, 1);
	assert_int_equal(rs.malformed, 0);
	assert_int_equal(rs.refused, 0);
	assert_int_equal(rs.deferred, 0);
	assert_int_equal(peer_failures(&a), 0);

	/* push only: d (64 MiB, does not listen) pushes to c (1 MiB) */
	test_max_file = 1u << 20;
	node_start(&c, "gamma", NULL);
	test_no_listen = 1;
	test_max_file = 0;
	node_start(&d, "delta", c.url);
	test_no_listen = 0;
	make_file(&d, "big", 2u << 20, 'd');
	make_file(&d, "after", 5, 'z');
	assert_true(wait_for(&c, "after", "zzzzz"));
	assert_int_equal(sg_store_resolve(c.st, "big", &x), -ENOENT);
	stats_of(&c, &rs);
	assert_int_equal(rs.too_large, 1);
	assert_int_equal(rs.malformed, 0);
	for (int i = 0; i < 100; i++) { /* counted once the ACK is back */
		stats_of(&d, &rs);
		if (rs.pushes >= 1)
			break;
		usleep(10000);
	}
	assert_true(rs.pushes >= 1);
	assert_int_equal(peer_failures(&d), 0);
	node_stop(&d);
	node_stop(&c);
	node_stop(&a);
	node_stop(&b);
}

/*
 * A node whose max_file_size is above what a message carries (64 MiB of
 * file data) never sends such a file: it passes it over, counted once, and
 * sends the rest. (Encoding it failed the whole page: every pull of this
 * node timed out, and every push failed.)
 */
static void test_file_too_large_for_wire_not_sent(void **state)
{
	struct node a, e;
	sg_repl_stats rs;
	sg_attr x;

	test_max_file = 100u << 20;
	node_start(&e, "epsilon", NULL);
	test_max_file = 0;
	node_start(&a, "alpha", e.url); /* pulls from e; e learns a and pushes to it */
	make_file(&e, "huge", (size_t)SG_WIRE_MAX_FILE + 1, 'h');
	make_file(&e, "after", 5, 'e');
	assert_true(wait_for(&a, "after", "eeeee"));
	assert_int_equal(sg_store_resolve(a.st, "huge", &x), -ENOENT);
	usleep(300000);
	stats_of(&e, &rs);
	assert_int_equal(rs.too_large, 1); /* by its pushes and a's pulls: counted once */
	stats_of(&a, &rs);
	assert_int_equal(rs.malformed, 0);
	assert_int_equal(peer_failures(&a), 0);
	assert_int_equal(peer_failures(&e), 0);
	node_stop(&a);
	node_stop(&e);
}

/* What n's status sees of its one peer. */
static void peer_view(void *ctx, const sg_repl_peer *p)
{
	*(sg_repl_peer *)ctx = *p;
}

static sg_repl_peer one_peer(struct node *n)
{
	sg_repl_peer p = {0};

	sg_repl_peers(n->r, peer_view, &p);
	return p;
}

/* Wait (at most 5 s) for n's one peer to be known to hold n's log up to its version. */
static int wait_holds(struct node *n)
{
	for (int i = 0; i < 500; i++) {
		if (one_peer(n).holds == sg_store_version(n->st))
			return 1;
		usleep(10000);
	}
	return 0;
}

/* Wait (at most 5 s) for the counter at `off` in n's sg_repl_stats to reach `want`. */
static int wait_stat(struct node *n, size_t off, uint64_t want)
{
	sg_repl_stats rs;

	for (int i = 0; i < 500; i++) {
		uint64_t v;

		sg_repl_stats_get(n->r, &rs);
		memcpy(&v, (const char *)&rs + off, sizeof(v));
		if (v >= want)
			return 1;
		usleep(10000);
	}
	return 0;
}

static int wait_applied(struct node *n, uint64_t want)
{
	return wait_stat(n, offsetof(sg_repl_stats, applied), want);
}

static int wait_pulls(struct node *n, uint64_t want)
{
	return wait_stat(n, offsetof(sg_repl_stats, pulls), want);
}

/*
 * A push that holds a range of its sender's log whole, all of it taken,
 * moves the receiver's pull cursor past it: the next pull does not fetch
 * it again. One that passed over a change of another origin in its range
 * does not. The nodes pull once at the start and then not for a minute, so
 * only pushes move the cursor here.
 */
static void test_push_moves_pull_cursor(void **state)
{
	struct node a, b;
	sg_repl_stats rs;
	sg_attr d;
	char name[32];
	uint64_t top;

	(void)state;
	test_pull_ms = 60000;
	node_start(&a, "alpha", NULL);
	node_start(&b, "beta", a.url);
	/* b's first pull: it knows a's id and incarnation, and a learns b */
	for (int i = 0; i < 500; i++) {
		stats_of(&a, &rs);
		if (one_peer(&b).node_id && rs.peers == 1)
			break;
		usleep(10000);
	}
	assert_true(one_peer(&b).node_id != 0);
	assert_int_equal(rs.peers, 1);
	assert_int_equal(sg_store_create(a.st, NULL, SG_ROOT_ID, "etc", SG_TYPE_DIR, 0755, 0, 0,
	                                 NULL, 0, sg_now_ns(), &d),
	                 0);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "f%02d", i);
		assert_int_equal(sg_store_create(a.st, NULL, d.id, name, SG_TYPE_FILE, 0640, 0, 0,
		                                 name, strlen(name), sg_now_ns(), NULL),
		                 0);
	}
	assert_true(wait_for(&b, "etc/f19", "f19"));
	top = sg_store_version(a.st);
	for (int i = 0; i < 500 && one_peer(&b).pulled < top; i++)
		usleep(10000);
	assert_int_equal(one_peer(&b).pulled, top); /* all of a's log, by pushes */
	stats_of(&b, &rs);
	assert_true(rs.pushes_as_pulls >= 1);
	assert_int_equal(rs.pulls, 1); /* the first one only */

	/* b's own change lands in a's log: a's next push passes over it, so
	 * that push is not a whole range and b's cursor stays before it */
	assert_int_equal(sg_store_create(b.st, NULL, SG_ROOT_ID, "from-b", SG_TYPE_FILE, 0640, 0, 0,
	                                 "b", 1, sg_now_ns(), NULL),
	                 0);
	assert_true(wait_for(&a, "from-b", "b"));
	assert_true(wait_applied(&a, 1));
	stats_of(&b, &rs);
	{
		uint64_t moved = rs.pushes_as_pulls;

		assert_int_equal(sg_store_create(a.st, NULL, d.id, "after", SG_TYPE_FILE, 0640, 0,
		                                 0, "x", 1, sg_now_ns(), NULL),
		                 0);
		assert_true(wait_for(&b, "etc/after", "x"));
		assert_true(wait_applied(&b, 22));
		stats_of(&b, &rs);
		assert_int_equal(rs.pushes_as_pulls, moved);
		assert_int_equal(one_peer(&b).pulled, top);
	}
	/* a pull brings b's cursor to the end, the row of b's change included */
	sg_repl_sync_now(b.r);
	for (int i = 0; i < 500 && one_peer(&b).pulled < sg_store_version(a.st); i++)
		usleep(10000);
	assert_int_equal(one_peer(&b).pulled, sg_store_version(a.st));
	stats_of(&b, &rs);
	assert_int_equal(rs.malformed, 0);
	assert_int_equal(rs.refused, 0);
	node_stop(&b);
	node_stop(&a);
}

/* Node a, and node b that knows a; returns once a has learned b (so that
 * a's pushes go to b). */
static void pair_start(struct node *a, struct node *b)
{
	node_start(a, "alpha", NULL);
	node_start(b, "beta", a->url);
	assert_true(wait_stat(a, offsetof(sg_repl_stats, peers), 1));
}

/* The push counter of n, once it has reached `want` (at most 5 s): a push
 * counts when its answer is in, a moment after the peer applied it. */
static uint64_t pushes_after(struct node *n, uint64_t want)
{
	sg_repl_stats rs;

	wait_stat(n, offsetof(sg_repl_stats, pushes), want);
	usleep(100000); /* a push after it would count by now */
	stats_of(n, &rs);
	return rs.pushes;
}

/*
 * When pushes go. A new empty file waits for its content (the create
 * window), and goes with it as one change. A change made within the push
 * gap after a push waits for the gap's end, and the changes made meanwhile
 * go as one push. After a quiet spell a change goes at once. Both windows
 * are 3 s here, long enough to see from the test, and pulls are a minute
 * apart, so only pushes bring a's changes to b.
 */
static void test_push_gap_and_create_window(void **state)
{
	struct node a, b;
	sg_repl_stats rs;
	sg_attr f;
	char name[32];
	uint64_t p0;

	(void)state;
	test_pull_ms = 60000;
	test_push_gap_ms = 3000;
	test_create_delay_ms = 3000;
	pair_start(&a, &b);
	p0 = pushes_after(&a, 0);

	/* an empty file, as create(2) makes it, is not pushed alone... */
	assert_int_equal(sg_store_create(a.st, NULL, SG_ROOT_ID, "new.conf", SG_TYPE_FILE, 0644, 0,
	                                 0, NULL, 0, sg_now_ns(), &f),
	                 0);
	usleep(300000);
	assert_int_equal(pushes_after(&a, 0), p0);
	assert_true(wait_for(&b, "new.conf", NULL)); /* not there */
	/* ...its content, written next, goes at once (no push for a gap
	 * before it), with the create as one change */
	assert_int_equal(
	    sg_store_write(a.st, NULL, f.id, "content", 7, sg_now_ns(), sg_now_ns(), NULL), 0);
	assert_true(wait_for(&b, "new.conf", "content"));
	assert_int_equal(pushes_after(&a, p0 + 1), p0 + 1);
	stats_of(&b, &rs);
	assert_int_equal(rs.applied, 1);

	/* changes right after a push wait for the gap, then go together */
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "g%d", i);
		make_file(&a, name, 10, 'g');
	}
	usleep(300000);
	stats_of(&b, &rs);
	assert_int_equal(rs.applied, 1);
	assert_int_equal(pushes_after(&a, 0), p0 + 1);
	assert_true(wait_for(&b, "g4", "gggggggggg"));
	assert_true(wait_applied(&b, 6));
	assert_int_equal(pushes_after(&a, p0 + 2), p0 + 2);

	/* after a quiet spell of a gap, a change goes at once: well within
	 * a gap */
	usleep(3100000);
	make_file(&a, "quiet", 5, 'q');
	assert_true(wait_for_ms(&b, "quiet", "qqqqq", 2500));
	assert_int_equal(pushes_after(&a, p0 + 3), p0 + 3);
	stats_of(&b, &rs);
	assert_int_equal(rs.applied, 7);
	assert_int_equal(rs.malformed, 0);
	node_stop(&b);
	node_stop(&a);
}

/*
 * A pull (not a snapshot's page) leaves out the puller's own changes: a's
 * writes, pushed to b, do not come back to a when a pulls from b. b's own
 * change in the same range does. The first pull of each is a snapshot,
 * which lists everything; the nodes pull again only when told to.
 */
/* A change still held by the push gap when replication stops goes before
 * the stop ends: the peer has it without pulling (its pulls are an hour
 * apart, and this node's listener is closed by then). */
static void test_stop_sends_pending_push(void **state)
{
	struct node a, b;
	uint64_t p0;

	(void)state;
	test_pull_ms = 3600000;
	test_push_gap_ms = 3000;
	pair_start(&a, &b);
	p0 = pushes_after(&a, 0);
	make_file(&a, "first", 3, 'f'); /* after a quiet spell: pushed at once */
	assert_true(wait_for(&b, "first", "fff"));
	assert_int_equal(pushes_after(&a, p0 + 1), p0 + 1);
	make_file(&a, "last", 4, 'l'); /* within the gap: held */
	usleep(200000);
	assert_true(wait_for_ms(&b, "last", NULL, 10)); /* not there yet */
	node_away(&a);
	assert_true(wait_for_ms(&b, "last", "llll", 10));
	test_pull_ms = 100;
	test_push_gap_ms = 0;
	node_stop(&b);
	node_stop(&a); /* its replication is stopped already */
}

static void test_pull_leaves_out_own(void **state)
{
	struct node a, b;
	sg_repl_stats rs;
	uint64_t applied, duplicates, pulls;
	char name[32];

	(void)state;
	test_pull_ms = 60000;
	node_start(&a, "alpha", NULL);
	node_start(&b, "beta", a.url);
	make_file(&a, "first", 10, 'a');
	assert_true(wait_for(&b, "first", "aaaaaaaaaa"));
	assert_true(wait_stat(&a, offsetof(sg_repl_stats, peers), 1)); /* a has learned b */
	/* a's first pull from b: a snapshot, a's own changes too */
	stats_of(&a, &rs);
	pulls = rs.pulls;
	sg_repl_sync_now(a.r);
	assert_true(wait_pulls(&a, pulls + 1));
	stats_of(&a, &rs);
	assert_int_equal(rs.applied, 0);
	assert_true(rs.duplicates >= 1); /* "first" came back (held: a no-op) */

	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "f%02d", i);
		make_file(&a, name, 100, 'x');
	}
	assert_true(wait_applied(&b, 21));
	make_file(&b, "from-b", 3, 'b');
	assert_true(wait_for(&a, "from-b", "bbb"));
	assert_true(wait_applied(&a, rs.applied + 1));
	stats_of(&a, &rs);
	applied = rs.applied;
	duplicates = rs.duplicates;
	pulls = rs.pulls;
	sg_repl_sync_now(a.r);
	assert_true(wait_pulls(&a, pulls + 1));
	usleep(100000);
	stats_of(&a, &rs);
	/* from b's log: only b's own change (held already), none of a's 20 */
	assert_int_equal(rs.applied, applied);
	assert_int_equal(rs.duplicates, duplicates + 1);
	assert_int_equal(rs.malformed, 0);
	node_stop(&b);
	node_stop(&a);
}

/*
 * How much of this node's log a peer is known to hold: a peer that joins
 * late takes the history by pulls, which this node sees (pulled_by), not by
 * pushes (acked stays 0); a push it acknowledges moves acked. Status shows
 * how far behind a peer is from these. (It used to count only pushes: a
 * peer that caught up by pulling kept showing lag.)
 */
static void test_peer_holds_by_pulls(void **state)
{
	struct node a, b;
	sg_repl_peer p;
	uint64_t v;

	node_start(&a, "alpha", NULL);
	make_file(&a, "one", 1, '1');
	make_file(&a, "two", 1, '2');
	make_file(&a, "three", 1, '3');
	v = sg_store_version(a.st);
	node_start(&b, "beta", a.url); /* a learns b from b's pulls */
	assert_true(wait_for(&b, "three", "3"));
	assert_true(wait_holds(&a));
	p = one_peer(&a);
	assert_int_equal(p.pulled_by, v);
	assert_int_equal(p.acked, 0); /* nothing was pushed to it */
	assert_int_equal(p.node_id, sg_store_node_id(b.st));
	/* a push it acknowledges */
	make_file(&a, "four", 1, '4');
	assert_true(wait_for(&b, "four", "4"));
	assert_true(wait_holds(&a));
	p = one_peer(&a);
	assert_true(p.acked == sg_store_version(a.st) || p.pulled_by == sg_store_version(a.st));
	for (int i = 0; i < 500 && one_peer(&a).acked != sg_store_version(a.st); i++)
		usleep(10000);
	assert_int_equal(one_peer(&a).acked, sg_store_version(a.st));
	/* b away: a's changes wait for it, and a knows it */
	node_away(&b);
	make_file(&a, "five", 1, '5');
	make_file(&a, "six", 1, '6');
	usleep(300000);
	p = one_peer(&a);
	assert_int_equal(p.holds, sg_store_version(a.st) - 2);
	node_repl(&b, "beta", a.url);
	assert_true(wait_for(&b, "six", "6"));
	assert_true(wait_holds(&a));
	node_stop(&b);
	node_stop(&a);
}

/* Make `c` (made on c a moment before) older than what comes next: stamps
 * are per millisecond. */
static void tick(void)
{
	usleep(3000);
}

/* The log lists an entry at its latest change, so a directory's row may come
 * after its children's: c makes x/ and x/y, a makes a file x meanwhile, then
 * c changes x's mode. a's page lists x/y (its parent x is a's file here:
 * -ENOTDIR) before x (newer than a's file: x becomes c's directory). x/y
 * must arrive all the same, not be passed over for good. */
static void test_child_before_its_directory(void **state)
{
	struct node a, c;
	sg_attr d, x, in = {.mode = 0700};
	sg_repl_stats rs;

	node_start(&c, "gamma", NULL);
	node_start(&a, "alpha", NULL); /* they do not know each other yet */
	assert_int_equal(sg_store_create(c.st, NULL, SG_ROOT_ID, "x", SG_TYPE_DIR, 0755, 0, 0, NULL,
	                                 0, sg_now_ns(), &d),
	                 0);
	assert_int_equal(sg_store_create(c.st, NULL, d.id, "y", SG_TYPE_FILE, 0644, 0, 0, "child",
	                                 5, sg_now_ns(), NULL),
	                 0);
	tick();
	assert_int_equal(sg_store_create(a.st, NULL, SG_ROOT_ID, "x", SG_TYPE_FILE, 0644, 0, 0,
	                                 "a's file", 8, sg_now_ns(), NULL),
	                 0);
	tick();
	assert_int_equal(sg_store_setattr(c.st, NULL, d.id, SG_SET_MODE, &in, sg_now_ns(), NULL),
	                 0);

	node_away(&a);
	node_repl(&a, "alpha", c.url); /* a pulls c's log: x/y, then x */
	assert_true(wait_for(&a, "x/y", "child"));
	assert_int_equal(sg_store_resolve(a.st, "x", &x), 0);
	assert_int_equal(x.type, SG_TYPE_DIR);
	assert_int_equal(x.mode, 0700);
	/* and c keeps its tree: a's file x is older than c's change of x */
	usleep(300000);
	assert_true(wait_for(&c, "x/y", "child"));
	sg_repl_stats_get(a.r, &rs);
	assert_int_equal(rs.refused, 0);
	assert_int_equal(sg_store_check(a.st, NULL, NULL, NULL), 0);
	node_stop(&a);
	node_stop(&c);
}

/* A child refused for good (its parent is a newer file here) is counted
 * once, not on every try, and the cursor moves on. a does not listen, so
 * nothing of a's comes back to c to change c's log. */
static void test_refused_for_good_counted_once(void **state)
{
	struct node a, c;
	sg_attr d, x;
	sg_repl_stats rs;

	node_start(&c, "gamma", NULL);
	test_no_listen = 1;
	node_start(&a, "alpha", NULL);
	assert_int_equal(sg_store_create(c.st, NULL, SG_ROOT_ID, "x", SG_TYPE_DIR, 0755, 0, 0, NULL,
	                                 0, sg_now_ns(), &d),
	                 0);
	assert_int_equal(sg_store_create(c.st, NULL, d.id, "y", SG_TYPE_FILE, 0644, 0, 0, "child",
	                                 5, sg_now_ns(), NULL),
	                 0);
	assert_int_equal(sg_store_create(c.st, NULL, SG_ROOT_ID, "z", SG_TYPE_FILE, 0644, 0, 0,
	                                 "after", 5, sg_now_ns(), NULL),
	                 0);
	tick();
	assert_int_equal(sg_store_create(a.st, NULL, SG_ROOT_ID, "x", SG_TYPE_FILE, 0644, 0, 0,
	                                 "a's file", 8, sg_now_ns(), NULL),
	                 0);
	node_away(&a);
	node_repl(&a, "alpha", c.url);
	test_no_listen = 0;
	assert_true(wait_for(&a, "z", "after"));
	assert_true(wait_for(&a, "x", "a's file"));
	usleep(500000); /* five more pull rounds */
	sg_repl_stats_get(a.r, &rs);
	assert_int_equal(rs.refused, 1); /* x/y */
	assert_int_equal(rs.deferred, 0);
	assert_int_equal(sg_store_resolve(a.st, "x/y", &x), -ENOTDIR);
	node_stop(&a);
	node_stop(&c);
}

/* A change the store cannot take for now (its map is full: -ENOSPC) is
 * fetched again, not passed over: once there is room, it arrives. */
static void test_transient_error_fetched_again(void **state)
{
	struct node a, c;
	sg_repl_stats rs;
	/* A large value takes a run of contiguous pages. The ballast's run,
	 * once freed, is where big goes: the store's small writes meanwhile
	 * (meta rows, each retry's) may take pages from it, so it is larger
	 * than big by far more than they take. (Both 3 MiB, a 5 MiB map: big
	 * sometimes never fitted again, under ASan about one run in three.) */
	size_t len = 2u << 20, blen = 7u << 19;
	char *big = malloc(len + 1), *ballast = malloc(blen);
	int full = 0;

	assert_non_null(big);
	assert_non_null(ballast);
	memset(big, 'b', len);
	big[len] = '\0';
	memset(ballast, 'x', blen);
	node_start(&c, "gamma", NULL);
	assert_int_equal(sg_store_create(c.st, NULL, SG_ROOT_ID, "big", SG_TYPE_FILE, 0644, 0, 0,
	                                 big, len, sg_now_ns(), NULL),
	                 0);
	test_max_map = 5u << 20; /* room for one of them, not two */
	node_start(&a, "alpha", NULL);
	test_max_map = 0;
	assert_int_equal(sg_store_create(a.st, NULL, SG_ROOT_ID, "ballast", SG_TYPE_FILE, 0644, 0,
	                                 0, ballast, blen, sg_now_ns(), NULL),
	                 0);
	node_away(&a);
	node_repl(&a, "alpha", c.url);
	for (int i = 0; i < 500 && !full; i++) {
		sg_repl_stats_get(a.r, &rs);
		full = rs.deferred > 0 || rs.refused > 0;
		usleep(10000);
	}
	assert_true(full);
	assert_int_equal(rs.refused, 0);
	/* room again: the next rounds fetch it again */
	assert_int_equal(sg_store_remove(a.st, NULL, SG_ROOT_ID, "ballast", 0, sg_now_ns()), 0);
	assert_true(wait_for(&a, "big", big));
	sg_repl_stats_get(a.r, &rs);
	assert_int_equal(rs.refused, 0);
	node_stop(&a);
	node_stop(&c);
	free(big);
	free(ballast);
}

/* sg_store_put (a restore) replicates like any local change. */
static void test_puts_replicate(void **state)
{
	struct node a, b;
	sg_change c[3];
	int rcs[3];
	sg_attr x;

	node_start(&a, "alpha", NULL);
	node_start(&b, "beta", a.url);
	memset(c, 0, sizeof(c));
	c[0].path = "etc";
	c[0].type = SG_TYPE_DIR;
	c[0].mode = 0755;
	c[1].path = "etc/restored.conf";
	c[1].type = SG_TYPE_FILE;
	c[1].mode = 0644;
	c[1].data = "from git";
	c[1].len = 8;
	c[2].path = "etc/restored.conf~";
	c[2].type = SG_TYPE_FILE;
	c[2].mode = 0644;
	assert_int_equal(sg_store_put_many(a.st, c, 3, rcs), 0);
	assert_int_equal(rcs[0], 0);
	assert_int_equal(rcs[1], 0);
	assert_int_equal(rcs[2], 0);
	assert_true(wait_for(&b, "etc/restored.conf", "from git"));
	assert_int_equal(sg_store_resolve(b.st, "etc/restored.conf~", &x), -ENOENT);
	/* b edits it; a put on a restores it over b's newer-looking version */
	assert_int_equal(sg_store_resolve(b.st, "etc/restored.conf", &x), 0);
	assert_int_equal(
	    sg_store_write(b.st, NULL, x.id, "edited on b", 11, sg_now_ns(), sg_now_ns(), NULL), 0);
	assert_true(wait_for(&a, "etc/restored.conf", "edited on b"));
	assert_int_equal(sg_store_put(a.st, &c[1]), 0);
	assert_true(wait_for(&b, "etc/restored.conf", "from git"));
	/* a put tombstone deletes on both */
	c[0].type = SG_TYPE_TOMBSTONE;
	assert_int_equal(sg_store_put(a.st, &c[0]), 0);
	assert_true(wait_for(&b, "etc", NULL));
	node_stop(&b);
	node_stop(&a);
}

/* Push `c` to n as a made-up node that does not listen; the ACK's code. */
static uint32_t push_raw(struct node *n, const sg_change *c)
{
	sg_msg push, *m = NULL;
	nng_msg *reply = NULL;
	void *buf;
	size_t len;
	uint32_t code;

	memset(&push, 0, sizeof(push));
	push.type = SG_MSG_PUSH;
	push.node_id = 0x7777;
	push.incarnation = 1;
	push.node_name = "skewed";
	push.listen_url = "";
	push.changes = c;
	push.nchanges = 1;
	assert_int_equal(sg_wire_encode(&push, &buf, &len), 0);
	assert_int_equal(send_raw(n->url, buf, len, &reply), 0);
	free(buf);
	assert_int_equal(sg_wire_decode(nng_msg_body(reply), nng_msg_len(reply), NULL, &m), 0);
	nng_msg_free(reply);
	assert_int_equal(m->type, SG_MSG_ACK);
	code = m->code;
	sg_wire_free(m);
	return code;
}

/* A change stamped further ahead than max_offset (500 ms) is not applied
 * before this clock catches up, and it is not lost either. Pushed, it is not
 * taken: the ACK says EAGAIN and the pusher (which may not listen, so
 * nobody can pull it from there) sends it again; taken once the clock has
 * caught up. Pulled, it is held in the quarantine and applied then. */
static void test_future_stamps_come_later(void **state)
{
	struct node a, b;
	sg_repl_stats rs;
	sg_change c;
	sg_attr x;
	uint64_t ahead_ms = 1500, hlc;

	node_start(&a, "alpha", NULL);
	memset(&c, 0, sizeof(c));
	c.path = "pushed-from-the-future";
	c.type = SG_TYPE_FILE;
	c.mode = 0644;
	c.data = "soon";
	c.len = 4;
	hlc = ((uint64_t)(sg_now_ns() / 1000000) + ahead_ms) << 16;
	c.stamp.hlc = hlc;
	c.stamp.origin = 0x7777;
	c.stamp.seq = 1;
	assert_int_equal(push_raw(&a, &c), EAGAIN);
	sg_repl_stats_get(a.r, &rs);
	assert_int_equal(rs.deferred, 1);
	assert_int_equal(rs.applied, 0);
	assert_int_equal(rs.quarantined, 0); /* not held: the pusher keeps it */
	assert_int_equal(sg_store_resolve(a.st, c.path, &x), -ENOENT);
	assert_true(sg_store_hlc(a.st) < hlc); /* the clock was not dragged ahead */
	/* the pusher sends it again until it is taken */
	while ((uint64_t)(sg_now_ns() / 1000000) + 500 < (hlc >> 16))
		usleep(50000);
	usleep(50000);
	assert_int_equal(push_raw(&a, &c), 0);
	assert_true(wait_for(&a, c.path, "soon"));

	/* pulled: b holds a change stamped ahead (relayed from 0x7777) */
	node_start(&b, "beta", NULL);
	c.path = "pulled-from-the-future";
	hlc = ((uint64_t)(sg_now_ns() / 1000000) + ahead_ms) << 16;
	c.stamp.hlc = hlc;
	c.stamp.seq = 2;
	assert_int_equal(sg_store_apply(b.st, &c), 0);
	node_away(&a);
	node_repl(&a, "alpha", b.url);
	for (int i = 0; i < 100; i++) {
		sg_repl_stats_get(a.r, &rs);
		if (rs.quarantined)
			break;
		usleep(10000);
	}
	assert_int_equal(rs.quarantined, 1);
	assert_int_equal(sg_store_resolve(a.st, c.path, &x), -ENOENT);
	assert_true(wait_for(&a, c.path, "soon"));
	assert_true((uint64_t)(sg_now_ns() / 1000000) + 500 >= (hlc >> 16));
	sg_repl_stats_get(a.r, &rs);
	assert_int_equal(rs.quarantined, 1); /* held once, though pulled on every round */
	node_stop(&b);
	node_stop(&a);
}

/* A pulled change too far ahead for which the quarantine has no room is not
 * dropped: the cursor stays before it, and once the clock has caught up the
 * next pull applies it. The rest of its page is applied meanwhile. */
static void test_quarantine_full_keeps_cursor(void **state)
{
	struct node a, b;
	sg_repl_stats rs;
	sg_change c;
	sg_attr x;
	uint64_t hlc;

	node_start(&b, "beta", NULL);
	memset(&c, 0, sizeof(c));
	c.path = "from-the-future";
	c.type = SG_TYPE_FILE;
	c.mode = 0644;
	c.data = "soon";
	c.len = 4;
	hlc = ((uint64_t)(sg_now_ns() / 1000000) + 1500) << 16;
	c.stamp.hlc = hlc;
	c.stamp.origin = 0x7777;
	c.stamp.seq = 1;
	assert_int_equal(sg_store_apply(b.st, &c), 0);
	assert_int_equal(sg_store_create(b.st, NULL, SG_ROOT_ID, "now", SG_TYPE_FILE, 0644, 0, 0,
	                                 "now", 3, sg_now_ns(), NULL),
	                 0);
	test_quarantine = 16; /* smaller than any change */
	node_start(&a, "alpha", b.url);
	test_quarantine = 0;
	assert_true(wait_for(&a, "now", "now"));
	sg_repl_stats_get(a.r, &rs);
	assert_int_equal(rs.quarantined, 0);
	assert_true(rs.deferred >= 1);
	if ((uint64_t)(sg_now_ns() / 1000000) + 500 < (hlc >> 16))
		assert_int_equal(sg_store_resolve(a.st, c.path, &x), -ENOENT);
	assert_true(wait_for(&a, c.path, "soon"));
	sg_repl_stats_get(a.r, &rs);
	assert_int_equal(rs.refused, 0);
	node_stop(&a);
	node_stop(&b);
}

/*
 * a (which does not listen, and pulls every pull_ms) writes while b is away,
 * so its push fails; b comes back. a's push must reach b within `tries`
 * waits of up to 5 s each: a node that does not listen is never pulled
 * from, so its pushes are the only way its changes leave.
 */
static void push_fails_then_arrives(unsigned pull_ms, int tries)
{
	struct node a, b;
	int failed = 0, arrived = 0;

	node_start(&b, "beta", NULL);
	node_away(&b); /* b's address, nobody listening */
	test_no_listen = 1;
	test_pull_ms = pull_ms;
	node_start(&a, "alpha", b.url);
	test_no_listen = 0;
	test_pull_ms = 100;
	assert_int_equal(sg_store_create(a.st, NULL, SG_ROOT_ID, "pushed", SG_TYPE_FILE, 0644, 0, 0,
	                                 "once", 4, sg_now_ns(), NULL),
	                 0);
	for (int i = 0; i < 1000 && !failed; i++) {
		sg_repl_stats rs;

		sg_repl_stats_get(a.r, &rs);
		failed = rs.pushes == 0 && peer_failures(&a) > 0;
		usleep(10000);
	}
	assert_true(failed);
	node_repl(&b, "beta", NULL); /* b is back; it cannot pull from a */
	for (int i = 0; i < tries && !arrived; i++)
		arrived = wait_for(&b, "pushed", "once");
	assert_true(arrived);
	node_stop(&a);
	node_stop(&b);
}

/* A failed push is sent again on the next rounds, not only at the next write. */
static void test_failed_push_retried(void **state)
{
	(void)state;
	push_fails_then_arrives(100, 3);
}

/* ... even when a's pulls (every minute) would come much later: rounds, which
 * send failed pushes again, are at most a second apart. */
static void test_failed_push_retried_between_pulls(void **state)
{
	(void)state;
	push_fails_then_arrives(60000, 1); /* within 5 s, not a minute */
}

/* A fake peer that answers each request with the wrong type of reply: a
 * PULL with an ACK, a PUSH with a page of CHANGES. */
static void test_wrong_reply_type_is_malformed(void **state)
{
	struct node a;
	nng_socket fake;
	char url[64];
	sg_repl_stats rs;
	int pulls = 0, pushes = 0;

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", free_port());
	assert_int_equal(nng_rep0_open(&fake), 0);
	nng_socket_set_ms(fake, NNG_OPT_RECVTIMEO, 200);
	assert_int_equal(nng_listen(fake, url, NULL, 0), 0);
	node_start(&a, "alpha", url);
	assert_int_equal(sg_store_create(a.st, NULL, SG_ROOT_ID, "f", SG_TYPE_FILE, 0644, 0, 0, "f",
	                                 1, sg_now_ns(), NULL),
	                 0);
	for (int i = 0; i < 100 && (pulls < 2 || pushes < 1); i++) {
		nng_msg *in, *out;
		sg_msg *m = NULL, reply;
		void *buf;
		size_t len;

		if (nng_recvmsg(fake, &in, 0) != 0)
			continue;
		assert_int_equal(sg_wire_decode(nng_msg_body(in), nng_msg_len(in), NULL, &m), 0);
		nng_msg_free(in);
		memset(&reply, 0, sizeof(reply));
		reply.type = m->type == SG_MSG_PULL ? SG_MSG_ACK : SG_MSG_CHANGES;
		pulls += m->type == SG_MSG_PULL;
		pushes += m->type == SG_MSG_PUSH;
		sg_wire_free(m);
		reply.node_id = 0x5555;
		reply.incarnation = 1;
		reply.node_name = "fake";
		reply.listen_url = "";
		assert_int_equal(sg_wire_encode(&reply, &buf, &len), 0);
		assert_int_equal(nng_msg_alloc(&out, 0), 0);
		assert_int_equal(nng_msg_append(out, buf, len), 0);
		free(buf);
		assert_int_equal(nng_sendmsg(fake, out, 0), 0);
	}
	assert_true(pulls >= 2);
	assert_true(pushes >= 1);
	usleep(100000);
	nng_close(fake);
	sg_repl_stats_get(a.r, &rs);
	assert_int_equal(rs.malformed, pulls + pushes);
	assert_int_equal(rs.pulls, 0);
	assert_int_equal(rs.pushes, 0);
	node_stop(&a);
}

/* The connections a fake peer took: when each came (monotonic ns). */
static struct {
	pthread_mutex_t lock;
	int n;
	int64_t at[8];
} conns = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void conn_added(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void)p, (void)ev, (void)arg;
	pthread_mutex_lock(&conns.lock);
	if (conns.n < 8)
		conns.at[conns.n] = sg_mono_ns();
	conns.n++;
	pthread_mutex_unlock(&conns.lock);
}

static int conns_count(void)
{
	int n;

	pthread_mutex_lock(&conns.lock);
	n = conns.n;
	pthread_mutex_unlock(&conns.lock);
	return n;
}

/* A peer that takes requests and never answers them: the connection stays
 * open, so NNG never dials it again on its own. After 5 s without an answer
 * the node closes it and dials anew, not sooner, and counts it. */
static void test_silent_peer_gets_new_connection(void **state)
{
	struct node a;
	nng_socket fake;
	char url[64];
	sg_repl_stats rs;
	int64_t first_fail;

	(void)state;
	conns.n = 0;
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", free_port());
	assert_int_equal(nng_rep0_open(&fake), 0);
	assert_int_equal(nng_pipe_notify(fake, NNG_PIPE_EV_ADD_POST, conn_added, NULL), 0);
	assert_int_equal(nng_listen(fake, url, NULL, 0), 0);
	node_start(&a, "alpha", url);
	/* the first request times out after 3 s; 5 s of failures after that,
	 * and the next failure renews: about 11 s; 30 s for a slow machine */
	for (int i = 0; i < 300 && conns_count() < 2; i++)
		usleep(100000);
	sg_repl_stats_get(a.r, &rs);
	first_fail = conns.at[0] + 3000000000LL; /* REQ_TIMEOUT_MS after it connected */
	assert_int_equal(conns_count() >= 2, 1);
	assert_int_equal(rs.renewed >= 1, 1);
	/* not before the peer had failed for 5 s */
	assert_true(conns.at[1] - first_fail >= 5000000000LL);
	assert_true(one_peer(&a).failures >= 2);
	node_stop(&a);
	nng_close(fake);
}

static void list_url(void *ctx, const sg_repl_peer *p)
{
	char *buf = ctx;

	strcat(buf, p->url);
	strcat(buf, " ");
}

/* n's peers' URLs, each followed by a space, into buf (4 KiB). */
static const char *peer_list(struct node *n, char *buf)
{
	buf[0] = '\0';
	sg_repl_peers(n->r, list_url, buf);
	return buf;
}

/* A PULL from a made-up node advertising `listen` and gossiping `peers`. */
static void *gossip(const char *listen, const char *const *peers, size_t npeers, size_t *len)
{
	sg_msg pull;
	void *buf;

	memset(&pull, 0, sizeof(pull));
	pull.type = SG_MSG_PULL;
	pull.node_id = 0x6666;
	pull.incarnation = 1;
	pull.node_name = "gossip";
	pull.listen_url = listen;
	pull.max_bytes = 1 << 20;
	pull.peers = peers;
	pull.npeers = npeers;
	assert_int_equal(sg_wire_encode(&pull, &buf, len), 0);
	return buf;
}

/* A node dials the URLs it learns from peers only with its own transport: a
 * TLS node never dials plain tcp:// (it would talk in plaintext), a tcp://
 * node only tcp://; and nobody dials a wildcard address (0.0.0.0, ::). */
static void test_learned_urls_match_transport(void **state)
{
	char dir[64], list[4096], want[256], cert[128], key[128], ca[128];
	char plain[64], plain2[64], tls1[64], wild[64];
	struct node a, t;
	nng_socket fake;
	nng_tls_config *cli;
	nng_msg *reply = NULL, *in;
	void *buf;
	size_t len;

	snprintf(plain, sizeof(plain), "tcp://127.0.0.1:%d", free_port());
	snprintf(plain2, sizeof(plain2), "tcp://127.0.0.1:%d", free_port());
	snprintf(tls1, sizeof(tls1), "tls+tcp://127.0.0.1:%d", free_port());
	snprintf(wild, sizeof(wild), "tcp://0.0.0.0:%d", free_port());

	/* a tcp:// node learns tcp:// URLs, not tls+tcp://, ipc:// or a wildcard */
	node_start(&a, "alpha", NULL);
	{
		const char *peers[] = {"ipc:///tmp/sigil-nowhere", plain2, wild};

		buf = gossip(tls1, peers, 3, &len);
		assert_int_equal(send_raw(a.url, buf, len, &reply), 0);
		nng_msg_free(reply);
		free(buf);
	}
	snprintf(want, sizeof(want), "%s ", plain2);
	assert_string_equal(peer_list(&a, list), want);
	node_stop(&a);

	/* a TLS node learns tls+tcp:// URLs only: plain tcp:// would be plaintext */
	tmp_name(dir, sizeof(dir), "pki");
	assert_non_null(mkdtemp(dir));
	pki_write(dir);
	test_tls = dir;
	node_start(&t, "tau", NULL);
	test_tls = NULL;
	assert_int_equal(nng_rep0_open(&fake), 0);
	nng_socket_set_ms(fake, NNG_OPT_RECVTIMEO, 1500);
	assert_int_equal(nng_listen(fake, plain, NULL, 0), 0);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	snprintf(cert, sizeof(cert), "%s/node.crt", dir);
	snprintf(key, sizeof(key), "%s/node.key", dir);
	assert_int_equal(nng_tls_config_alloc(&cli, NNG_TLS_MODE_CLIENT), 0);
	assert_int_equal(nng_tls_config_ca_file(cli, ca), 0);
	{
		char *c = NULL, *k = NULL;
		FILE *f;
		size_t n;

		assert_non_null(f = fopen(cert, "r"));
		assert_true(getdelim(&c, &n, '\0', f) > 0);
		fclose(f);
		assert_non_null(f = fopen(key, "r"));
		assert_true(getdelim(&k, &n, '\0', f) > 0);
		fclose(f);
		assert_int_equal(nng_tls_config_own_cert(cli, c, k, NULL), 0);
		free(c);
		free(k);
	}
	{
		const char *peers[] = {plain2, tls1};

		buf = gossip(plain, peers, 2, &len);
		assert_int_equal(send_raw_tls(t.url, cli, buf, len, &reply), 0);
		nng_msg_free(reply);
		free(buf);
	}
	snprintf(want, sizeof(want), "%s ", tls1);
	assert_string_equal(peer_list(&t, list), want);
	/* and it never talks to the plain listener it was told of */
	assert_int_equal(nng_recvmsg(fake, &in, 0), NNG_ETIMEDOUT);
	nng_close(fake);
	nng_tls_config_free(cli);
	node_stop(&t);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A node listening on a wildcard address (0.0.0.0) advertises the address a
 * peer reached it at (127.0.0.1 here), never the wildcard, which the peer
 * could not dial. */
static void test_wildcard_listen_advertises_dialable(void **state)
{
	struct node a, b;
	char list[4096], want[128], dial[64];
	const char *port;
	sg_msg *m;
	nng_msg *reply = NULL;
	void *buf;
	size_t len;

	test_host = "0.0.0.0";
	node_start(&a, "alpha", NULL);
	test_host = "127.0.0.1";
	port = strrchr(a.url, ':') + 1;
	snprintf(dial, sizeof(dial), "tcp://127.0.0.1:%s", port);
	assert_int_equal(sg_store_create(a.st, NULL, SG_ROOT_ID, "f", SG_TYPE_FILE, 0644, 0, 0, "f",
	                                 1, sg_now_ns(), NULL),
	                 0);

	/* its reply to a pull */
	buf = gossip("", NULL, 0, &len);
	assert_int_equal(send_raw(dial, buf, len, &reply), 0);
	free(buf);
	assert_int_equal(sg_wire_decode(nng_msg_body(reply), nng_msg_len(reply), NULL, &m), 0);
	nng_msg_free(reply);
	assert_string_equal(m->listen_url, dial);
	sg_wire_free(m);

	/* a peer that dialed it learns no other URL for it; and a pulls from b
	 * (b learned nothing undialable, a learned b) */
	node_start(&b, "beta", dial);
	assert_true(wait_for(&b, "f", "f"));
	assert_int_equal(sg_store_create(b.st, NULL, SG_ROOT_ID, "g", SG_TYPE_FILE, 0644, 0, 0, "g",
	                                 1, sg_now_ns(), NULL),
	                 0);
	assert_true(wait_for(&a, "g", "g"));
	usleep(300000); /* a few rounds of gossip both ways */
	snprintf(want, sizeof(want), "%s ", dial);
	assert_string_equal(peer_list(&b, list), want);
	snprintf(want, sizeof(want), "%s ", b.url);
	assert_string_equal(peer_list(&a, list), want);
	node_stop(&b);
	node_stop(&a);
}

/* A TLS configuration for an end in `mode` trusting `ca` and presenting
 * cert/key (NULL: no certificate); names relative to dir. */
static nng_tls_config *tls_conf(const char *dir, nng_tls_mode mode, const char *ca,
                                const char *cert, const char *key)
{
	nng_tls_config *cfg;
	char path[128];

	assert_int_equal(nng_tls_config_alloc(&cfg, mode), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, ca);
	assert_int_equal(nng_tls_config_ca_file(cfg, path), 0);
	if (cert) {
		char *c = NULL, *k = NULL;
		size_t n = 0;
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s", dir, cert);
		assert_non_null(f = fopen(path, "r"));
		assert_true(getdelim(&c, &n, '\0', f) > 0);
		fclose(f);
		snprintf(path, sizeof(path), "%s/%s", dir, key);
		assert_non_null(f = fopen(path, "r"));
		n = 0;
		assert_true(getdelim(&k, &n, '\0', f) > 0);
		fclose(f);
		assert_int_equal(nng_tls_config_own_cert(cfg, c, k, NULL), 0);
		free(c);
		free(k);
	}
	assert_int_equal(nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_NONE), 0);
	return cfg;
}

/* Dial url over tls for a moment (an intruder trying its luck), then go. */
/* Dial t with tls, and hold the dialer until t has counted `want` refused
 * handshakes in all (3 s at most): a handshake that is slow (the
 * sanitizers, a busy machine) must not be cut short, and then not counted
 * as a refusal. */
static void knock(struct node *t, nng_tls_config *tls, uint64_t want)
{
	nng_socket s;
	nng_dialer d;
	sg_repl_stats rs;

	assert_int_equal(nng_req0_open(&s), 0);
	assert_int_equal(nng_dialer_create(&d, s, t->url), 0);
	if (tls)
		assert_int_equal(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls), 0);
	nng_dialer_start(d, NNG_FLAG_NONBLOCK);
	usleep(150000);
	for (int i = 0; i < 143; i++) {
		sg_repl_stats_get(t->r, &rs);
		if (rs.tls_refused >= want)
			break;
		usleep(20000);
	}
	nng_close(s);
}

/* Send what is not SP at all to 127.0.0.1:port. */
static void garbage(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	                        .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	const char req[] = "GET / HTTP/1.0\r\n\r\n";

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
	usleep(150000);
	close(fd);
}

/* stderr into a file while a test looks at what is logged. */
static int stderr_saved = -1;
static char stderr_path[64];

static void log_capture(void)
{
	int fd;

	tmp_name(stderr_path, sizeof(stderr_path), "log");
	assert_true((fd = mkstemp(stderr_path)) >= 0);
	fflush(stderr);
	stderr_saved = dup(2);
	assert_int_equal(dup2(fd, 2), 2);
	close(fd);
}

/* Stop capturing; how many captured lines hold `id`. */
static int log_count(const char *id)
{
	char line[1024];
	int n = 0;
	FILE *f;

	fflush(stderr);
	if (stderr_saved >= 0) {
		dup2(stderr_saved, 2);
		close(stderr_saved);
		stderr_saved = -1;
	}
	assert_non_null(f = fopen(stderr_path, "r"));
	while (fgets(line, sizeof(line), f)) {
		n += strstr(line, id) != NULL;
		fputs(line, stderr); /* still shown */
	}
	fclose(f);
	unlink(stderr_path);
	return n;
}

/* Refused peers are counted in the stats and logged on the listening side
 * once per spell, not once per try: intruders with no certificate or one
 * from another CA (handshakes refused), a peer whose certificate is from
 * another CA (the dialer's handshakes fail), a client that does not speak
 * SP or speaks another SP protocol, a message over the size limit. */
static void test_refused_peers_counted(void **state)
{
	char dir[64], evil[64], ca[128];
	struct node t, a;
	nng_socket fake, pair;
	nng_tls_config *srv, *none, *other;
	sg_repl_stats rs;
	int port;

	tmp_name(dir, sizeof(dir), "pki");
	assert_non_null(mkdtemp(dir));
	pki_write(dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	/* a listener with a certificate from another CA: t is told to dial it */
	snprintf(evil, sizeof(evil), "tls+tcp://127.0.0.1:%d", free_port());
	srv = tls_conf(dir, NNG_TLS_MODE_SERVER, "other.pem", "intruder.crt", "intruder.key");
	assert_int_equal(nng_rep0_open(&fake), 0);
	{
		nng_listener l;

		assert_int_equal(nng_listener_create(&l, fake, evil), 0);
		assert_int_equal(nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, srv), 0);
		assert_int_equal(nng_listener_start(l, 0), 0);
	}
	log_capture();
	test_tls = dir;
	node_start(&t, "tau", evil);
	test_tls = NULL;
	none = tls_conf(dir, NNG_TLS_MODE_CLIENT, "ca.pem", NULL, NULL);
	other = tls_conf(dir, NNG_TLS_MODE_CLIENT, "ca.pem", "intruder.crt", "intruder.key");
	/* intruders knock for a second, again and again: one spell */
	for (int i = 0; i < 4; i++) {
		knock(&t, none, 2 * (uint64_t)i + 1);
		knock(&t, other, 2 * (uint64_t)i + 2);
	}
	for (int i = 0; i < 100; i++) {
		sg_repl_stats_get(t.r, &rs);
		if (rs.tls_refused >= 8 && rs.tls_failed >= 1)
			break;
		usleep(20000);
	}
	usleep(200000); /* two more rounds of the watch */
	sg_repl_stats_get(t.r, &rs);
	node_stop(&t);
	assert_int_equal(log_count("SIGIL-REPL-PEER-REFUSED"), 1);
	assert_true(rs.tls_refused >= 8);
	assert_true(rs.tls_failed >= 1);
	assert_int_equal(rs.applied, 0);
	assert_int_equal(rs.pulls, 0);
	nng_close(fake);
	nng_tls_config_free(srv);
	nng_tls_config_free(none);
	nng_tls_config_free(other);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);

	/* on tcp://: not SP, another SP protocol, a message over the limit */
	node_start(&a, "alpha", NULL);
	port = atoi(strrchr(a.url, ':') + 1);
	garbage(port);
	assert_int_equal(nng_pair1_open(&pair), 0);
	assert_int_equal(nng_dial(pair, a.url, NULL, NNG_FLAG_NONBLOCK), 0);
	usleep(200000);
	nng_close(pair);
	{
		size_t len = (80u << 20) + 1;
		char *big = calloc(1, len);
		nng_msg *reply = NULL;

		assert_non_null(big);
		memcpy(big, "SGL1", 4);
		assert_int_equal(send_raw(a.url, big, len, &reply), NNG_ETIMEDOUT);
		free(big);
	}
	sg_repl_stats_get(a.r, &rs);
	assert_true(rs.proto_errors >= 2);
	assert_int_equal(rs.oversized, 1);
	assert_int_equal(rs.malformed, 0);
	assert_int_equal(rs.tls_refused, 0);
	node_stop(&a);
}

/* A raw PULL from a made-up node, as a peer with cursor `since` into a's log
 * sends it, with SG_PULL_* flags. */
static sg_msg *pull_raw_flags(struct node *a, uint64_t node, uint64_t since, uint64_t inc,
                              uint32_t flags)
{
	sg_msg pull, *m = NULL;
	nng_msg *reply = NULL;
	void *buf;
	size_t len;

	memset(&pull, 0, sizeof(pull));
	pull.type = SG_MSG_PULL;
	pull.node_id = node;
	pull.incarnation = 77;
	pull.node_name = "probe";
	pull.listen_url = "";
	pull.max_bytes = 1 << 20;
	pull.since = since;
	pull.known_incarnation = inc;
	pull.flags = flags;
	assert_int_equal(sg_wire_encode(&pull, &buf, &len), 0);
	assert_int_equal(send_raw(a->url, buf, len, &reply), 0);
	free(buf);
	assert_int_equal(sg_wire_decode(nng_msg_body(reply), nng_msg_len(reply), NULL, &m), 0);
	nng_msg_free(reply);
	assert_int_equal(m->type, SG_MSG_CHANGES);
	return m;
}

static sg_msg *pull_raw(struct node *a, uint64_t node, uint64_t since, uint64_t inc)
{
	return pull_raw_flags(a, node, since, inc, 0);
}

static void test_gc_waits_for_pullers(void **state)
{
	struct node a;
	sg_repl_gc_result g;
	sg_repl_stats rs;
	sg_attr x;
	sg_msg *m;
	uint64_t inc, v_tomb;

	test_grace_ms = 300;
	node_start(&a, "alpha", NULL);
	inc = sg_store_id(a.st);
	assert_int_equal(sg_store_create(a.st, NULL, SG_ROOT_ID, "x", SG_TYPE_FILE, 0644, 0, 0, "x",
	                                 1, sg_now_ns(), &x),
	                 0);
	assert_int_equal(sg_store_remove(a.st, NULL, SG_ROOT_ID, "x", 0, sg_now_ns()), 0);
	v_tomb = sg_store_version(a.st);

	/* up for less than the grace: nothing goes yet */
	assert_int_equal(sg_repl_gc(a.r, &g), 0);
	assert_int_equal(g.waiting, 1);
	assert_int_equal(g.purged, 0);
	usleep(400000);

	/* a peer that pulled within the grace, but not past the tombstone, holds it */
	sg_wire_free(pull_raw(&a, 0x9999, 1, inc));
	assert_int_equal(sg_repl_gc(a.r, &g), 0);
	assert_int_equal(g.waiting, 0);
	assert_int_equal(g.purged, 0);
	assert_int_equal(g.upto, 1);
	assert_int_equal(g.held_by, 0x9999);
	assert_int_equal(g.tombstones, 1);

	/* once it has pulled past it, the tombstone goes, once the mirror has read it too */
	sg_wire_free(pull_raw(&a, 0x9999, v_tomb, inc));
	reader_at = v_tomb - 1;
	assert_int_equal(sg_repl_gc(a.r, &g), 0);
	assert_int_equal(g.purged, 0);
	assert_int_equal(g.held_by_reader, 1);
	assert_int_equal(g.upto, v_tomb - 1);
	sg_repl_set_log_reader(a.r, NULL, NULL); /* as if the mirror stopped */
	reader_at = UINT64_MAX;
	assert_int_equal(sg_repl_gc(a.r, &g), 0);
	assert_int_equal(g.held_by_reader, 0);
	assert_int_equal(g.purged, 1);
	assert_int_equal(g.tombstones, 0);
	assert_int_equal(g.horizon.version, v_tomb);
	sg_repl_stats_get(a.r, &rs);
	assert_int_equal(rs.purged, 1);

	/* a peer below the horizon (or with no cursor) is listed everything: a snapshot,
	 * with the horizon and the vector */
	m = pull_raw(&a, 0x8888, 1, inc);
	assert_int_equal(m->snapshot, 1);
	assert_int_equal(m->horizon.hlc, g.horizon.stamp.hlc);
	assert_int_equal(m->horizon.origin, sg_store_node_id(a.st));
	assert_int_equal(m->nvv, 1);
	assert_int_equal(m->vv[0].origin, sg_store_node_id(a.st));
	assert_int_equal(m->vv[0].seq, 2);
	assert_int_equal(m->more, 0);
	sg_wire_free(m);
	m = pull_raw(&a, 0x8888, v_tomb, 0);
	assert_int_equal(m->snapshot, 1);
	sg_wire_free(m);
	/* at or past it: the usual page */
	m = pull_raw(&a, 0x8888, v_tomb, inc);
	assert_int_equal(m->snapshot, 0);
	assert_int_equal(m->nchanges, 0);
	sg_wire_free(m);
	/* below it, but within a snapshot it is taking: that snapshot goes on,
	 * with the horizon its puller compares with the first page's */
	m = pull_raw_flags(&a, 0x8888, 1, inc, SG_PULL_IN_SNAPSHOT);
	assert_int_equal(m->snapshot, 0);
	assert_int_equal(m->horizon.hlc, g.horizon.stamp.hlc);
	assert_int_equal(m->more, 0);
	sg_wire_free(m);
	sg_repl_stats_get(a.r, &rs);
	assert_int_equal(rs.snapshots_served, 2);

	/* every peer silent for longer than the grace: this node may be the one cut off */
	assert_int_equal(sg_store_create(a.st, NULL, SG_ROOT_ID, "y", SG_TYPE_FILE, 0644, 0, 0, "y",
	                                 1, sg_now_ns(), &x),
	                 0);
	assert_int_equal(sg_store_remove(a.st, NULL, SG_ROOT_ID, "y", 0, sg_now_ns()), 0);
	usleep(400000);
	assert_int_equal(sg_repl_gc(a.r, &g), 0);
	assert_int_equal(g.waiting, 2);
	assert_int_equal(g.purged, 0);
	assert_int_equal(g.tombstones, 1);
	node_stop(&a);
	test_grace_ms = 0;
}

/* Wait (at most 10 s) until gc on n has purged everything. */
static int gc_until_empty(struct node *n)
{
	for (int i = 0; i < 200; i++) {
		sg_repl_gc_result g;

		if (sg_repl_gc(n->r, &g) == 0 && g.tombstones == 0 && g.horizon.version)
			return 1;
		usleep(50000);
	}
	return 0;
}

static void test_snapshot_catch_up(void **state)
{
	struct node a, b, c;
	sg_repl_stats rs;
	sg_attr x, d;

	test_grace_ms = 500;
	node_start(&a, "alpha", NULL);
	node_start(&b, "beta", a.url);
	node_start(&c, "gamma", a.url);
	assert_int_equal(sg_store_create(a.st, NULL, SG_ROOT_ID, "etc", SG_TYPE_DIR, 0755, 0, 0,
	                                 NULL, 0, sg_now_ns(), &d),
	                 0);
	assert_int_equal(sg_store_create(a.st, NULL, d.id, "gone.conf", SG_TYPE_FILE, 0644, 0, 0,
	                                 "old", 3, sg_now_ns(), NULL),
	                 0);
	assert_int_equal(sg_store_create(a.st, NULL, d.id, "kept.conf", SG_TYPE_FILE, 0644, 0, 0,
	                                 "kept", 4, sg_now_ns(), NULL),
	                 0);
	assert_true(wait_for(&b, "etc/gone.conf", "old"));
	assert_true(wait_for(&c, "etc/gone.conf", "old"));
	assert_true(wait_for(&c, "etc/kept.conf", "kept"));
	/* the snapshot c takes below runs to two pages (4 MiB each at most),
	 * with c's own file in the second: a snapshot's pages list c's own
	 * changes too, or its end would forget them */
	make_file(&a, "big1", 3u << 20, '1');
	make_file(&a, "big2", 3u << 20, '2');
	assert_true(wait_for_size(&c, "big2", 3u << 20));
	assert_int_equal(sg_store_resolve(c.st, "etc", &x), 0);
	assert_int_equal(sg_store_create(c.st, NULL, x.id, "c-own.conf", SG_TYPE_FILE, 0644, 0, 0,
	                                 "mine", 4, sg_now_ns(), NULL),
	                 0);
	assert_true(wait_for(&a, "etc/c-own.conf", "mine"));
	assert_true(wait_for(&b, "etc/c-own.conf", "mine"));

	/* c goes away; a deletes; c writes while away */
	node_away(&c);
	assert_int_equal(sg_store_remove(a.st, NULL, d.id, "gone.conf", 0, sg_now_ns()), 0);
	assert_true(wait_for(&b, "etc/gone.conf", NULL));
	assert_int_equal(sg_store_resolve(c.st, "etc", &x), 0);
	assert_int_equal(sg_store_create(c.st, NULL, x.id, "while-away.conf", SG_TYPE_FILE, 0644, 0,
	                                 0, "new", 3, sg_now_ns(), NULL),
	                 0);

	/* past the grace, a and b purge the tombstone (c, silent, holds nothing back) */
	usleep(600000);
	assert_true(gc_until_empty(&a));
	assert_true(gc_until_empty(&b));

	/* c comes back: a snapshot tells it what went; what it wrote reaches the others */
	node_repl(&c, "gamma", a.url);
	assert_true(wait_for(&c, "etc/gone.conf", NULL));
	/* a and b pull it from c. When NNG could not close c's old sockets (the
	 * 1.5 hang close_bounded() logs as SIGIL-REPL-CLOSE-STUCK; in a daemon
	 * the process exit closes them), their connections to the old ones stay
	 * open and unanswered until renewed, after 5 s of failures */
	assert_true(wait_for_ms(&a, "etc/while-away.conf", "new", 15000));
	assert_true(wait_for_ms(&b, "etc/while-away.conf", "new", 15000));
	assert_true(wait_for(&c, "etc/kept.conf", "kept"));
	/* counted just after the reconcile that removed gone.conf */
	assert_true(wait_stat(&c, offsetof(sg_repl_stats, snapshots_received), 1));
	sg_repl_stats_get(c.r, &rs);
	assert_int_equal(rs.forgotten, 1);
	assert_true(wait_for(&c, "etc/c-own.conf", "mine"));
	/* and nothing brings the deleted file back to a or b */
	usleep(300000);
	assert_int_equal(sg_store_resolve(a.st, "etc/gone.conf", &x), -ENOENT);
	assert_int_equal(sg_store_resolve(b.st, "etc/gone.conf", &x), -ENOENT);
	assert_int_equal(sg_store_check(c.st, NULL, NULL, NULL), 0);
	node_stop(&c);
	node_stop(&b);
	node_stop(&a);
	test_grace_ms = 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_garbage_is_dropped_and_counted),
	    cmocka_unit_test(test_two_nodes_converge),
	    cmocka_unit_test(test_push_moves_pull_cursor),
	    cmocka_unit_test(test_pull_leaves_out_own),
	    cmocka_unit_test(test_stop_sends_pending_push),
	    cmocka_unit_test(test_push_gap_and_create_window),
	    cmocka_unit_test(test_smaller_max_file_passes_over),
	    cmocka_unit_test(test_file_too_large_for_wire_not_sent),
	    cmocka_unit_test(test_peer_holds_by_pulls),
	    cmocka_unit_test(test_future_stamps_come_later),
	    cmocka_unit_test(test_puts_replicate),
	    cmocka_unit_test(test_child_before_its_directory),
	    cmocka_unit_test(test_refused_for_good_counted_once),
	    cmocka_unit_test(test_transient_error_fetched_again),
	    cmocka_unit_test(test_quarantine_full_keeps_cursor),
	    cmocka_unit_test(test_failed_push_retried),
	    cmocka_unit_test(test_failed_push_retried_between_pulls),
	    cmocka_unit_test(test_wrong_reply_type_is_malformed),
	    cmocka_unit_test(test_silent_peer_gets_new_connection),
	    cmocka_unit_test(test_learned_urls_match_transport),
	    cmocka_unit_test(test_wildcard_listen_advertises_dialable),
	    cmocka_unit_test(test_refused_peers_counted),
	    cmocka_unit_test(test_gc_waits_for_pullers),
	    cmocka_unit_test(test_snapshot_catch_up),
	};

	size_t ntests = sizeof(tests) / sizeof(tests[0]);
	int failed = 0;

	/*
	 * Each test runs in a process of its own. Several nodes share one NNG
	 * here, and NNG 1.5.2's reaper thread can stick for good when a pipe is
	 * torn down at the wrong moment (nanomsg/nng#1813, fixed in 1.8.0):
	 * sg_repl_stop() then gives up on the close after a bound and goes on,
	 * but every later connection in that process suffers. A daemon runs one
	 * node per process; so does each test here.
	 */
	for (size_t i = 0; i < ntests; i++) {
		int status;
		pid_t pid;

		fflush(stdout);
		fflush(stderr);
		pid = fork();
		if (pid == 0) {
			alarm(300); /* a hung test fails, it does not hold up the suite */
			cmocka_set_test_filter(tests[i].name);
			exit(cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0);
		}
		if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0) {
			fprintf(stderr, "test_repl: %s FAILED\n", tests[i].name);
			failed++;
		}
		if (pid > 0)
			remove_leftovers(pid);
	}
	fprintf(stderr, "test_repl: %zu tests, %d failed\n", ntests, failed);
	return failed ? 1 : 0;
}
