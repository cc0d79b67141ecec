/* test_conf.c: unit tests of the settings module (src/conf.h): sigil.conf parsing, mount
 * option overrides, the checks of every value and the exact messages that name file and line. */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"

/* ---- fixture --------------------------------------------------------------- */

struct fx {
	char dir[64];
	char path[128]; /* the config file */
	char ca[128], cert[128], key[128];
	sg_config cfg;
	char err[1024];
	char want[1024];
};

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f) {
		return -1;
	}
	strcpy(f->dir, "/tmp/sigil-conf-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/sigil.conf", f->dir);
	snprintf(f->ca, sizeof(f->ca), "%s/ca.pem", f->dir);
	snprintf(f->cert, sizeof(f->cert), "%s/node.pem", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/node.key", f->dir);
	/* conf checks only that a TLS file looks like PEM; TLS reads it later */
	write_file(f->ca, "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n");
	write_file(f->cert, "-----BEGIN CERTIFICATE-----\ncert\n-----END CERTIFICATE-----\n");
	write_file(f->key, "-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	sg_config_free(&f->cfg);
	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* ---- helpers --------------------------------------------------------------- */

/* Write text as the config file and load it into a fresh cfg. */
static int load_text(struct fx *f, const char *text)
{
	sg_config_free(&f->cfg);
	f->err[0] = '\0';
	write_file(f->path, text);
	return sg_config_load(&f->cfg, f->path, f->err, sizeof(f->err));
}

/* Assert that err is exactly "PATH:LINE: what". */
static void expect_at(struct fx *f, unsigned line, const char *what)
{
	snprintf(f->want, sizeof(f->want), "%s:%u: %s", f->path, line, what);
	assert_string_equal(f->err, f->want);
}

static void assert_setting(const struct fx *f, const char *key, const char *value, unsigned line)
{
	char at[256], want[256];

	assert_non_null(sg_config_get(&f->cfg, key));
	assert_string_equal(sg_config_get(&f->cfg, key), value);
	assert_int_equal(sg_config_where(&f->cfg, key, at, sizeof(at)), 0);
	snprintf(want, sizeof(want), "%s:%u", f->path, line);
	assert_string_equal(at, want);
}

static uint64_t get_u64(const struct fx *f, const char *key)
{
	uint64_t v = 0;

	assert_int_equal(sg_config_get_u64(&v, &f->cfg, key), 0);
	return v;
}

/* ---- tests ------------------------------------------------------------------- */

static void test_good_file(void **state)
{
	struct fx *f = *state;
	char text[4096];
	static const char *const want[][2] = {
	    {"data", "/var/lib/sigil"},
	    {"node", "web1"},
	    {"listen", "tls+tcp://10.0.0.1:7470"},
	    {"peers", "tls+tcp://10.0.0.2:7470, tls+tcp://10.0.0.3:7470"},
	    {"tls_ca", NULL},
	    {"tls_cert", NULL},
	    {"tls_key", NULL},
	    {"max_offset", "250"},
	    {"local_only", "4913:*~"},
	    {"max_file_size", "16M"},
	    {"cache_timeout", "1.5"},
	    {"mirror", "/var/lib/sigil/mirror.git"},
	    {"commit_interval", "500ms"},
	    {"remote", "ssh://git@git.example.com/fleet.git"},
	    {"tombstone_grace", "7d"},
	    {"log_level", "debug"},
	    {"seed", "/srv/fleet.git#v1.2"},
	    {"sync_delay", "2ms"},
	    {"max_quarantine_bytes", "32M"},
	    {"max_mapped", "8M"},
	    {"threads", "2"},
	    {"pull_interval", "5000"},
	};

	snprintf(text, sizeof(text),
	         "data = /var/lib/sigil\n"
	         "node = web1\n"
	         "listen = tls+tcp://10.0.0.1:7470\n"
	         "peers = tls+tcp://10.0.0.2:7470, tls+tcp://10.0.0.3:7470\n"
	         "tls_ca = %s\n"
	         "tls_cert = %s\n"
	         "tls_key = %s\n"
	         "max_offset = 250\n"
	         "local_only = 4913:*~\n"
	         "max_file_size = 16M\n"
	         "cache_timeout = 1.5\n"
	         "mirror = /var/lib/sigil/mirror.git\n"
	         "commit_interval = 500ms\n"
	         "remote = ssh://git@git.example.com/fleet.git\n"
	         "tombstone_grace = 7d\n"
	         "log_level = debug\n"
	         "seed = /srv/fleet.git#v1.2\n"
	         "sync_delay = 2ms\n"
	         "max_quarantine_bytes = 32M\n"
	         "max_mapped = 8M\n"
	         "threads = 2\n"
	         "pull_interval = 5000\n",
	         f->ca, f->cert, f->key);
	assert_int_equal(load_text(f, text), 0);
	assert_string_equal(f->err, "");
	for (unsigned i = 0; i < SG_CONFIG_NKEYS; i++) {
		assert_string_equal(sg_config_key(i), want[i][0]);
		if (want[i][1]) {
			assert_setting(f, want[i][0], want[i][1], i + 1);
		}
	}
	assert_null(sg_config_key(SG_CONFIG_NKEYS));
	assert_setting(f, "tls_ca", f->ca, 5);
	assert_setting(f, "tls_cert", f->cert, 6);
	assert_setting(f, "tls_key", f->key, 7);
	assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), 0);

	assert_int_equal(get_u64(f, "max_offset"), 250);
	assert_int_equal(get_u64(f, "max_file_size"), 16 << 20);
	assert_int_equal(get_u64(f, "cache_timeout"), 1500);
	assert_int_equal(get_u64(f, "commit_interval"), 500);
	assert_int_equal(get_u64(f, "tombstone_grace"), 7ULL * 86400 * 1000);
	assert_int_equal(get_u64(f, "log_level"), 7);
	assert_int_equal(get_u64(f, "sync_delay"), 2);
	assert_int_equal(get_u64(f, "max_quarantine_bytes"), 32 << 20);
	assert_int_equal(get_u64(f, "max_mapped"), 8 << 20);
	assert_int_equal(get_u64(f, "threads"), 2);
	assert_int_equal(get_u64(f, "pull_interval"), 5000);
	assert_int_equal(load_text(f, "mirror = off\n"), 0);
	assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), 0);
	assert_int_equal(load_text(f, "mirror = mirror.git\n"), 0);
	assert_int_not_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), 0);
	assert_non_null(strstr(f->err, "neither an absolute path nor off"));
}

static void test_empty_and_lookups(void **state)
{
	struct fx *f = *state;
	char at[16];
	uint64_t v = 42;

	assert_int_equal(load_text(f, ""), 0);
	for (unsigned i = 0; i < SG_CONFIG_NKEYS; i++) {
		assert_null(sg_config_get(&f->cfg, sg_config_key(i)));
	}
	assert_null(sg_config_get(&f->cfg, "nope"));
	assert_int_equal(sg_config_where(&f->cfg, "node", at, sizeof(at)), -ENOENT);
	assert_int_equal(sg_config_where(&f->cfg, "nope", at, sizeof(at)), -EINVAL);
	assert_int_equal(sg_config_get_u64(&v, &f->cfg, "max_offset"), -ENOENT);
	assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), 0);

	assert_int_equal(load_text(f, "node = a\n"), 0);
	assert_int_equal(sg_config_get_u64(&v, &f->cfg, "node"), -EINVAL);
	assert_int_equal(v, 42);
	/* a buffer too small for "PATH:LINE" */
	assert_int_equal(sg_config_where(&f->cfg, "node", at, sizeof(at)), -ENAMETOOLONG);
	sg_config_free(&f->cfg);
	sg_config_free(&f->cfg);
	sg_config_free(NULL);
}

static void test_comments_blanks_quotes(void **state)
{
	struct fx *f = *state;

	assert_int_equal(load_text(f, "\xEF\xBB\xBF# a comment\n"
	                              "\n"
	                              "; another comment\n"
	                              "   \t\n"
	                              "node = web1 ; inline comment\n"
	                              "  data = \"/srv/sigil data\"\n"
	                              "\tlocal_only = .#*:*~\n"
	                              "remote=\"\"\n"
	                              "log_level: info\r\n"
	                              "# the last line has no newline\n"
	                              "max_offset = 100"),
	                 0);
	assert_setting(f, "node", "web1", 5);
	assert_setting(f, "data", "/srv/sigil data", 6);
	assert_setting(f, "local_only", ".#*:*~", 7);
	assert_setting(f, "remote", "", 8);
	assert_setting(f, "log_level", "info", 9);
	assert_setting(f, "max_offset", "100", 11);
	assert_null(sg_config_get(&f->cfg, "peers"));
}

static void test_sections(void **state)
{
	struct fx *f = *state;

	assert_int_equal(load_text(f, "# sigil\n[sigil]\nnode = web1\n  data = /d\n"), 0);
	assert_setting(f, "node", "web1", 3);
	assert_setting(f, "data", "/d", 4);

	assert_int_equal(load_text(f, "[sigil]\nnode = web1\n\n[mirror]\nremote = x\n"), -EINVAL);
	expect_at(f, 4, "unknown section [mirror]; keys go at the top or under [sigil]");

	/* even an empty one */
	assert_int_equal(load_text(f, "node = web1\n[Sigil]\n"), -EINVAL);
	expect_at(f, 2, "unknown section [Sigil]; keys go at the top or under [sigil]");

	assert_int_equal(load_text(f, "node = web1\n[sigil\n"), -EINVAL);
	expect_at(f, 2, "expected 'key = value' or '[sigil]'");
}

static void test_unknown_key(void **state)
{
	struct fx *f = *state;

	assert_int_equal(load_text(f, "# sigil.conf\n[sigil]\nnodes = web1\nfoo = 1\n"), -EINVAL);
	expect_at(f, 3, "unknown key 'nodes'");
	/* keys are lower case, as the mount options */
	assert_int_equal(load_text(f, "Node = web1\n"), -EINVAL);
	expect_at(f, 1, "unknown key 'Node'");
}

static void test_syntax_errors(void **state)
{
	struct fx *f = *state;
	char text[512];

	assert_int_equal(load_text(f, "node = web1\njust words\n"), -EINVAL);
	expect_at(f, 2, "expected 'key = value' or '[sigil]'");

	/* the first error wins, whoever found it */
	assert_int_equal(load_text(f, "node = a\nfoo = 1\njust words\n"), -EINVAL);
	expect_at(f, 2, "unknown key 'foo'");
	assert_int_equal(load_text(f, "node = a\njust words\nfoo = 1\n"), -EINVAL);
	expect_at(f, 2, "expected 'key = value' or '[sigil]'");

	assert_int_equal(load_text(f, "node = \"web1\n"), -EINVAL);
	expect_at(f, 1, "node: unterminated quote");

	memset(text, 0, sizeof(text));
	strcpy(text, "node = a\nremote = ");
	memset(text + strlen(text), 'x', 200);
	strcat(text, "\n");
	assert_int_equal(load_text(f, text), -EINVAL);
	expect_at(f, 2, "line too long (at most 198 characters)");

	/* a long comment is only a comment */
	memset(text, 0, sizeof(text));
	strcpy(text, "# ");
	memset(text + 2, 'x', 300);
	strcat(text, "\nnode = a\n");
	assert_int_equal(load_text(f, text), 0);
	assert_setting(f, "node", "a", 2);
}

static void test_duplicate_key(void **state)
{
	struct fx *f = *state;

	assert_int_equal(load_text(f, "[sigil]\nnode = web1\ndata = /d\nnode = web2\n"), -EINVAL);
	expect_at(f, 4, "'node' set twice (first at line 2)");
	/* an indented line is a key, not the continuation of the one above */
	assert_int_equal(load_text(f, "node = web1\n    node = web2\n"), -EINVAL);
	expect_at(f, 2, "'node' set twice (first at line 1)");
}

static void test_missing_file(void **state)
{
	struct fx *f = *state;
	char path[256];

	snprintf(path, sizeof(path), "%s/nope.conf", f->dir);
	assert_int_equal(sg_config_load(&f->cfg, path, f->err, sizeof(f->err)), -ENOENT);
	snprintf(f->want, sizeof(f->want), "%s: cannot read: No such file or directory", path);
	assert_string_equal(f->err, f->want);

	assert_int_equal(sg_config_load(&f->cfg, f->dir, f->err, sizeof(f->err)), -EISDIR);
	snprintf(f->want, sizeof(f->want), "%s: cannot read: Is a directory", f->dir);
	assert_string_equal(f->err, f->want);

	/* no room for a message: still the code */
	assert_int_equal(sg_config_load(&f->cfg, path, NULL, 0), -ENOENT);
}

/* Each bad value, on line 2, is named with the file and line. */
static void test_bad_values(void **state)
{
	struct fx *f = *state;
	static const char *const cases[][3] = {
	    {"data", "var/lib/sigil", "'var/lib/sigil' is not an absolute path"},
	    {"data", "\"\"", "empty value"},
	    {"node", "web 1", "'web 1' is not a node name: 1 to 64 of A-Z a-z 0-9 . _ -"},
	    {"node", "web/1", "'web/1' is not a node name: 1 to 64 of A-Z a-z 0-9 . _ -"},
	    {"node", "\"\"", "empty value"},
	    {"listen", "http://h:1",
	     "'http://h:1' is not a URL: tls+tcp://HOST:PORT, tcp://HOST:PORT or ipc://PATH"},
	    {"listen", "tcp://h", "'tcp://h' needs :PORT, 1 to 65535"},
	    {"listen", "tls+tcp://h:0", "'tls+tcp://h:0' needs :PORT, 1 to 65535"},
	    {"listen", "tls+tcp://h:65536", "'tls+tcp://h:65536' needs :PORT, 1 to 65535"},
	    {"listen", "tcp://[::1]", "'tcp://[::1]' needs :PORT, 1 to 65535"},
	    {"listen", "ipc://", "'ipc://' has no path"},
	    {"peers", "tcp://a:1, udp://b:2",
	     "'udp://b:2' is not a URL: tls+tcp://HOST:PORT, tcp://HOST:PORT or ipc://PATH"},
	    {"peers", "\", ,\"", "no URL"},
	    {"max_offset", "0", "'0' is not a number of milliseconds from 1 to 3600000"},
	    {"max_offset", "3600001",
	     "'3600001' is not a number of milliseconds from 1 to 3600000"},
	    {"max_offset", "5s", "'5s' is not a number of milliseconds from 1 to 3600000"},
	    {"pull_interval", "0", "'0' is not a number of milliseconds from 1 to 3600000"},
	    {"pull_interval", "1s", "'1s' is not a number of milliseconds from 1 to 3600000"},
	    {"local_only", "a/b:c",
	     "'a/b:c' has a '/': patterns match single names, ':'-separated"},
	    {"max_file_size", "12X", "'12X' is not a size: bytes, with K, M or G (64M)"},
	    {"threads", "0", "'0' is not a number of threads from 1 to 64"},
	    {"threads", "65", "'65' is not a number of threads from 1 to 64"},
	    {"threads", "4x", "'4x' is not a number of threads from 1 to 64"},
	    {"threads", "-1", "'-1' is not a number of threads from 1 to 64"},
	    {"max_file_size", "0", "'0' is not a size: bytes, with K, M or G (64M)"},
	    {"max_file_size", "-1", "'-1' is not a size: bytes, with K, M or G (64M)"},
	    {"max_file_size", "99999999999G",
	     "'99999999999G' is not a size: bytes, with K, M or G (64M)"},
	    {"max_file_size", "99999999999999999999",
	     "'99999999999999999999' is not a size: bytes, with K, M or G (64M)"},
	    {"cache_timeout", "86401", "'86401' is not a number of seconds from 0 to 86400"},
	    {"cache_timeout", "86400.5", "'86400.5' is not a number of seconds from 0 to 86400"},
	    {"cache_timeout", "1.", "'1.' is not a number of seconds from 0 to 86400"},
	    {"cache_timeout", "10s", "'10s' is not a number of seconds from 0 to 86400"},
	    {"mirror", "mirror.git", "'mirror.git' is neither an absolute path nor off"},
	    {"commit_interval", "10",
	     "'10' is not a duration: a number and ms, s, m, h or d (500ms, 7d)"},
	    {"commit_interval", "0s",
	     "'0s' is not a duration: a number and ms, s, m, h or d (500ms, 7d)"},
	    {"commit_interval", "1.5s",
	     "'1.5s' is not a duration: a number and ms, s, m, h or d (500ms, 7d)"},
	    {"tombstone_grace", "7days",
	     "'7days' is not a duration: a number and ms, s, m, h or d (500ms, 7d)"},
	    {"remote", "a b", "'a b' has a blank"},
	    {"remote", "a\tb", "control character in value"},
	    {"log_level", "warn", "'warn' is not a log level: err, warning, notice, info or debug"},
	    {"sync_delay", "5", "'5' is not a delay: 0 (off), or a number and ms or s, at most 1s"},
	    {"sync_delay", "1001ms",
	     "'1001ms' is not a delay: 0 (off), or a number and ms or s, at most 1s"},
	    {"sync_delay", "2s",
	     "'2s' is not a delay: 0 (off), or a number and ms or s, at most 1s"},
	    {"sync_delay", "1m",
	     "'1m' is not a delay: 0 (off), or a number and ms or s, at most 1s"},
	    {"sync_delay", "-1ms",
	     "'-1ms' is not a delay: 0 (off), or a number and ms or s, at most 1s"},
	    {"sync_delay", "off",
	     "'off' is not a delay: 0 (off), or a number and ms or s, at most 1s"},
	    {"max_quarantine_bytes", "0", "'0' is not a size: bytes, with K, M or G (64M)"},
	    {"max_quarantine_bytes", "256MB", "'256MB' is not a size: bytes, with K, M or G (64M)"},
	    {"max_quarantine_bytes", "-1", "'-1' is not a size: bytes, with K, M or G (64M)"},
	    {"max_mapped", "16MB", "'16MB' is not a size: bytes, with K, M or G (64M)"},
	};
	char text[512], want[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "# bad %s\n%s = %s\n", cases[i][0], cases[i][0],
		         cases[i][1]);
		assert_int_equal(load_text(f, text), 0);
		assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), -EINVAL);
		snprintf(want, sizeof(want), "%s: %s", cases[i][0], cases[i][2]);
		expect_at(f, 2, want);
	}
}

static void test_good_values(void **state)
{
	struct fx *f = *state;
	static const char *const cases[][3] = {
	    {"max_file_size", "1", "1"},
	    {"max_file_size", "4k", "4096"},
	    {"max_file_size", "2G", "2147483648"},
	    {"cache_timeout", "0", "0"},
	    {"cache_timeout", "86400", "86400000"},
	    {"cache_timeout", "0.25", "250"},
	    {"max_offset", "3600000", "3600000"},
	    {"commit_interval", "1s", "1000"},
	    {"commit_interval", "5m", "300000"},
	    {"tombstone_grace", "2h", "7200000"},
	    {"log_level", "err", "3"},
	    {"log_level", "warning", "4"},
	    {"log_level", "notice", "5"},
	    {"log_level", "info", "6"},
	    {"sync_delay", "0", "0"},
	    {"sync_delay", "0ms", "0"},
	    {"sync_delay", "5ms", "5"},
	    {"sync_delay", "1000ms", "1000"},
	    {"sync_delay", "1s", "1000"},
	    {"max_quarantine_bytes", "1", "1"},
	    {"max_quarantine_bytes", "256M", "268435456"},
	    {"max_quarantine_bytes", "1G", "1073741824"},
	};
	static const char *const urls[] = {"tcp://[::1]:7470", "tls+tcp://*:7470",
	                                   "tcp://host.example:1", "ipc:///run/sigil/a.sock"};
	char text[512], num[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "%s = %s\n", cases[i][0], cases[i][1]);
		assert_int_equal(load_text(f, text), 0);
		assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), 0);
		snprintf(num, sizeof(num), "%llu", (unsigned long long)get_u64(f, cases[i][0]));
		assert_string_equal(num, cases[i][2]);
	}
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		snprintf(text, sizeof(text), "node = a\nlisten = %s\npeers = %s;%s\n", urls[i],
		         urls[i], urls[i]);
		assert_int_equal(load_text(f, text), 0);
		/* tls+tcp:// would need the TLS files */
		if (strncmp(urls[i], "tls", 3) == 0) {
			assert_int_equal(sg_config_set(&f->cfg, "tls_ca", f->ca, "-o", 0, NULL, 0),
			                 0);
			assert_int_equal(
			    sg_config_set(&f->cfg, "tls_cert", f->cert, "-o", 0, NULL, 0), 0);
			assert_int_equal(
			    sg_config_set(&f->cfg, "tls_key", f->key, "-o", 0, NULL, 0), 0);
		}
		assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), 0);
	}
	/* empty local_only: every name is replicated */
	assert_int_equal(load_text(f, "local_only = \"\"\n"), 0);
	assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), 0);
	assert_setting(f, "local_only", "", 1);
}

static void test_unreadable_tls_file(void **state)
{
	struct fx *f = *state;
	char text[512], want[512];

	snprintf(text, sizeof(text),
	         "[sigil]\nnode = a\ntls_cert = %s\ntls_ca = %s/missing.pem\ntls_key = %s\n",
	         f->cert, f->dir, f->key);
	assert_int_equal(load_text(f, text), 0);
	assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), -ENOENT);
	snprintf(want, sizeof(want),
	         "tls_ca: cannot read %s/missing.pem: No such file or directory", f->dir);
	expect_at(f, 4, want);

	snprintf(text, sizeof(text), "tls_key = %s\n", f->dir);
	assert_int_equal(load_text(f, text), 0);
	assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), -EINVAL);
	snprintf(want, sizeof(want), "tls_key: %s is not a regular file", f->dir);
	expect_at(f, 1, want);
}

/* A TLS file that is there but is not PEM is named with its key, file and line
 * (TLS itself would say only "Cryptographic error"). */
static void test_tls_file_not_pem(void **state)
{
	struct fx *f = *state;
	char text[512], want[512], der[128], big[128];
	FILE *out;

	snprintf(der, sizeof(der), "%s/ca.der", f->dir);
	write_file(der, "0\x82\x01\x0a binary, not PEM\n");
	snprintf(text, sizeof(text), "node = a\ntls_ca = %s\ntls_cert = %s\ntls_key = %s\n", der,
	         f->cert, f->key);
	assert_int_equal(load_text(f, text), 0);
	assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), -EINVAL);
	snprintf(want, sizeof(want), "tls_ca: %s is not a PEM file (no '-----BEGIN' line)", der);
	expect_at(f, 2, want);

	/* an empty key file, and a mount option naming a non-PEM file */
	write_file(der, "");
	snprintf(text, sizeof(text), "tls_key = %s\n", der);
	assert_int_equal(load_text(f, text), 0);
	assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), -EINVAL);
	snprintf(want, sizeof(want), "tls_key: %s is not a PEM file (no '-----BEGIN' line)", der);
	expect_at(f, 1, want);
	sg_config_free(&f->cfg);
	assert_int_equal(sg_config_set(&f->cfg, "tls_cert", f->path, "-o", 0, NULL, 0), 0);
	assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), -EINVAL);
	snprintf(want, sizeof(want), "-o: tls_cert: %s is not a PEM file (no '-----BEGIN' line)",
	         f->path);
	assert_string_equal(f->err, want);

	/* the marker found far into the file, across the reader's chunks */
	snprintf(big, sizeof(big), "%s/bundle.pem", f->dir);
	out = fopen(big, "w");
	assert_non_null(out);
	for (int i = 0; i < 3000; i++) {
		fputs("# a comment line before the certificates\n", out);
	}
	fputs("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n", out);
	assert_int_equal(fclose(out), 0);
	sg_config_free(&f->cfg);
	assert_int_equal(sg_config_set(&f->cfg, "tls_ca", big, "-o", 0, NULL, 0), 0);
	assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), 0);
}

static void test_keys_that_go_together(void **state)
{
	struct fx *f = *state;
	char text[512];

	assert_int_equal(load_text(f, "data = /d\npeers = tcp://a:1\n"), 0);
	assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), -EINVAL);
	expect_at(f, 2, "peers: replication needs node");

	assert_int_equal(
	    load_text(f, "node = a\nlisten = tcp://a:1\npeers = tcp://b:1, tls+tcp://c:1\n"), 0);
	assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), -EINVAL);
	expect_at(f, 3, "peers: tls+tcp:// needs tls_ca, tls_cert and tls_key; tls_ca is not set");

	snprintf(text, sizeof(text),
	         "node = a\nlisten = tls+tcp://a:1\ntls_ca = %s\ntls_cert = %s\n", f->ca, f->cert);
	assert_int_equal(load_text(f, text), 0);
	assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), -EINVAL);
	expect_at(f, 2,
	          "listen: tls+tcp:// needs tls_ca, tls_cert and tls_key; tls_key is not set");

	assert_int_equal(load_text(f, "remote = ssh://h/r.git\n"), 0);
	assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), 0);
	assert_int_equal(load_text(f, "remote = ssh://h/r.git\nmirror = off\n"), 0);
	assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), -EINVAL);
	expect_at(f, 1, "remote: remote needs the mirror, which is off");
}

static void test_mount_option_overrides(void **state)
{
	struct fx *f = *state;
	char at[256], path[256];

	assert_int_equal(load_text(f, "node = web1\ndata = /d\nmax_offset = 100\n"), 0);
	assert_int_equal(sg_config_set(&f->cfg, "node", "web2", "-o", 0, f->err, sizeof(f->err)),
	                 0);
	assert_string_equal(sg_config_get(&f->cfg, "node"), "web2");
	assert_int_equal(sg_config_where(&f->cfg, "node", at, sizeof(at)), 0);
	assert_string_equal(at, "-o");
	assert_setting(f, "data", "/d", 2);

	/* set before load: the mount option still wins, the rest comes from the file */
	sg_config_free(&f->cfg);
	assert_int_equal(sg_config_set(&f->cfg, "data", "/o", "-o", 0, NULL, 0), 0);
	assert_int_equal(sg_config_load(&f->cfg, f->path, f->err, sizeof(f->err)), 0);
	assert_string_equal(sg_config_get(&f->cfg, "data"), "/o");
	assert_int_equal(sg_config_where(&f->cfg, "data", at, sizeof(at)), 0);
	assert_string_equal(at, "-o");
	assert_setting(f, "node", "web1", 1);

	/* a bad mount option is named as one */
	assert_int_equal(sg_config_set(&f->cfg, "max_offset", "0", "-o", 0, NULL, 0), 0);
	assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), -EINVAL);
	assert_string_equal(
	    f->err, "-o: max_offset: '0' is not a number of milliseconds from 1 to 3600000");
	snprintf(path, sizeof(path), "%s/none.pem", f->dir);
	assert_int_equal(sg_config_set(&f->cfg, "max_offset", "10", "-o", 0, NULL, 0), 0);
	assert_int_equal(sg_config_set(&f->cfg, "tls_ca", path, "-o", 0, NULL, 0), 0);
	assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), -ENOENT);
	snprintf(f->want, sizeof(f->want), "-o: tls_ca: cannot read %s: No such file or directory",
	         path);
	assert_string_equal(f->err, f->want);

	assert_int_equal(sg_config_set(&f->cfg, "nodes", "x", "-o", 0, f->err, sizeof(f->err)),
	                 -EINVAL);
	assert_string_equal(f->err, "-o: unknown key 'nodes'");
	assert_int_equal(sg_config_set(&f->cfg, "node", NULL, "-o", 0, f->err, sizeof(f->err)),
	                 -EINVAL);
	assert_string_equal(f->err, "-o: node: no value");
}

/* contrib/sigil.conf loads as is, and with every key uncommented it names every key
 * with a value that passes the checks (the TLS files are the fixture's). */
static void test_contrib_example(void **state)
{
	struct fx *f = *state;
	const char *srcdir = getenv("SIGIL_SRCDIR");
	char example[512], line[512], copy[256];
	FILE *in, *out;
	unsigned seen = 0;

	snprintf(example, sizeof(example), "%s/contrib/sigil.conf", srcdir ? srcdir : ".");
	assert_int_equal(sg_config_load(&f->cfg, example, f->err, sizeof(f->err)), 0);
	for (unsigned i = 0; i < SG_CONFIG_NKEYS; i++) {
		assert_null(sg_config_get(&f->cfg, sg_config_key(i)));
	}

	snprintf(copy, sizeof(copy), "%s/example.conf", f->dir);
	in = fopen(example, "r");
	assert_non_null(in);
	out = fopen(copy, "w");
	assert_non_null(out);
	while (fgets(line, sizeof(line), in)) {
		size_t n = strspn(line + 1, "abcdefghijklmnopqrstuvwxyz_");

		if (line[0] == '#' && n && strncmp(line + 1 + n, " = ", 3) == 0) {
			fputs(line + 1, out);
			seen++;
		} else {
			fputs(line, out);
		}
	}
	fclose(in);
	fclose(out);
	assert_int_equal(seen, SG_CONFIG_NKEYS);
	assert_int_equal(sg_config_load(&f->cfg, copy, f->err, sizeof(f->err)), 0);
	for (unsigned i = 0; i < SG_CONFIG_NKEYS; i++) {
		assert_non_null(sg_config_get(&f->cfg, sg_config_key(i)));
	}
	assert_int_equal(sg_config_set(&f->cfg, "tls_ca", f->ca, "-o", 0, NULL, 0), 0);
	assert_int_equal(sg_config_set(&f->cfg, "tls_cert", f->cert, "-o", 0, NULL, 0), 0);
	assert_int_equal(sg_config_set(&f->cfg, "tls_key", f->key, "-o", 0, NULL, 0), 0);
	assert_int_equal(sg_config_check(&f->cfg, f->err, sizeof(f->err)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_good_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_and_lookups, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_comments_blanks_quotes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sections, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_syntax_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_good_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unreadable_tls_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tls_file_not_pem, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keys_that_go_together, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mount_option_overrides, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_contrib_example, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
