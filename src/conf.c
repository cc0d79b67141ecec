/* conf.c: sigil.conf (INI, read with libinih) and mount options as one set of settings,
 * each with the file and line that set it, and the checks of their values. */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "conf.h"

/* What a value must look like. */
enum kind {
	K_ABSPATH,  /* an absolute path */
	K_NODE,     /* 1 to 64 of [A-Za-z0-9._-] */
	K_URL,      /* tls+tcp://HOST:PORT, tcp://HOST:PORT, ipc://PATH */
	K_URLS,     /* URLs separated by ';', ',' or blanks */
	K_PEM,      /* a readable regular file in PEM form */
	K_MS,       /* whole milliseconds, 1 to 3600000 */
	K_PATTERNS, /* ':'-separated name patterns; may be empty */
	K_SIZE,     /* bytes, with K, M or G */
	K_SECONDS,  /* seconds, 0 to 86400, decimals allowed */
	K_DURATION, /* a number and ms, s, m, h or d */
	K_DELAY,    /* 0, or a number and ms or s, at most 1 s */
	K_REMOTE,   /* a git remote: anything without blanks */
	K_LEVEL,    /* a syslog level name */
	K_MIRROR,   /* an absolute path, or "off" */
	K_THREADS,  /* a whole number from 1 to SG_MAX_THREADS */
};

enum {
	KEY_DATA,
	KEY_NODE,
	KEY_LISTEN,
	KEY_PEERS,
	KEY_TLS_CA,
	KEY_TLS_CERT,
	KEY_TLS_KEY,
	KEY_MAX_OFFSET,
	KEY_LOCAL_ONLY,
	KEY_MAX_FILE_SIZE,
	KEY_CACHE_TIMEOUT,
	KEY_MIRROR,
	KEY_COMMIT_INTERVAL,
	KEY_REMOTE,
	KEY_TOMBSTONE_GRACE,
	KEY_LOG_LEVEL,
	KEY_SEED,
	KEY_SYNC_DELAY,
	KEY_MAX_QUARANTINE_BYTES,
	KEY_MAX_MAPPED,
	KEY_THREADS,
	KEY_PULL_INTERVAL,
	KEY_COUNT
};
_Static_assert(KEY_COUNT == SG_CONFIG_NKEYS, "SG_CONFIG_NKEYS is the number of keys");

static const struct keydef {
	const char *name;
	enum kind kind;
} keys[KEY_COUNT] = {
    [KEY_DATA] = {"data", K_ABSPATH},
    [KEY_NODE] = {"node", K_NODE},
    [KEY_LISTEN] = {"listen", K_URL},
    [KEY_PEERS] = {"peers", K_URLS},
    [KEY_TLS_CA] = {"tls_ca", K_PEM},
    [KEY_TLS_CERT] = {"tls_cert", K_PEM},
    [KEY_TLS_KEY] = {"tls_key", K_PEM},
    [KEY_MAX_OFFSET] = {"max_offset", K_MS},
    [KEY_LOCAL_ONLY] = {"local_only", K_PATTERNS},
    [KEY_MAX_FILE_SIZE] = {"max_file_size", K_SIZE},
    [KEY_CACHE_TIMEOUT] = {"cache_timeout", K_SECONDS},
    [KEY_MIRROR] = {"mirror", K_MIRROR},
    [KEY_COMMIT_INTERVAL] = {"commit_interval", K_DURATION},
    [KEY_REMOTE] = {"remote", K_REMOTE},
    [KEY_TOMBSTONE_GRACE] = {"tombstone_grace", K_DURATION},
    [KEY_LOG_LEVEL] = {"log_level", K_LEVEL},
    [KEY_SEED] = {"seed", K_REMOTE},
    [KEY_SYNC_DELAY] = {"sync_delay", K_DELAY},
    [KEY_MAX_QUARANTINE_BYTES] = {"max_quarantine_bytes", K_SIZE},
    [KEY_MAX_MAPPED] = {"max_mapped", K_SIZE},
    [KEY_THREADS] = {"threads", K_THREADS},
    [KEY_PULL_INTERVAL] = {"pull_interval", K_MS},
};

static const char *const levels[] = {"err", "warning", "notice", "info", "debug"};
#define LEVEL_FIRST 3 /* LOG_ERR */

#define SECTION "sigil"
#define URL_SEPS "; ,\t"

static int key_index(const char *name)
{
	for (int i = 0; i < KEY_COUNT; i++) {
		if (strcmp(keys[i].name, name) == 0) {
			return i;
		}
	}
	return -1;
}

const char *sg_config_key(size_t i)
{
	return i < KEY_COUNT ? keys[i].name : NULL;
}

/* ---- storage ----------------------------------------------------------------- */

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* Replace v with value[0..len) from origin:line. 0 or -ENOMEM (v unchanged). */
static int value_put(sg_config_value *v, const char *value, size_t len, const char *origin,
                     unsigned line)
{
	char *nv = dup_n(value, len), *no = strdup(origin);

	if (!nv || !no) {
		free(nv);
		free(no);
		return -ENOMEM;
	}
	free(v->value);
	free(v->origin);
	v->value = nv;
	v->origin = no;
	v->line = line;
	return 0;
}

static int where(const sg_config_value *v, char *buf, size_t len)
{
	int n = v->line ? snprintf(buf, len, "%s:%u", v->origin, v->line)
	                : snprintf(buf, len, "%s", v->origin);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void say(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- loading ----------------------------------------------------------------- */

/* One sg_config_load(): the reader's state and the first error. */
struct load {
	sg_config *cfg;
	const char *path;
	FILE *f;
	char *buf; /* getline's line */
	size_t cap;
	unsigned lineno;                 /* lines read so far: libinih counts the same */
	int read_errno;                  /* set when getline failed on an I/O error */
	unsigned first[SG_CONFIG_NKEYS]; /* line where each key was set in this file */
	int rc;                          /* first error, 0 if none */
	unsigned err_line;
	char *err;
	size_t errlen;
};

static void fail(struct load *ld, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record the first error, at the current line: "PATH:LINE: what". */
static void fail(struct load *ld, int rc, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ld->rc) {
		return;
	}
	ld->rc = rc;
	ld->err_line = ld->lineno;
	if (!ld->err || !ld->errlen) {
		return;
	}
	n = snprintf(ld->err, ld->errlen, "%s:%u: ", ld->path, ld->lineno);
	if (n >= 0 && (size_t)n < ld->errlen) {
		va_start(ap, fmt);
		vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
}

/*
 * libinih's reader: one line per call, so its line count stays ours (Debian's
 * libinih is built without INI_HANDLER_LINENO: the handler gets no line).
 * Leading blanks are dropped: libinih would take an indented line for the
 * continuation of the previous value, and indentation means nothing here.
 * A line longer than libinih's buffer would be split in two, so it is refused
 * (a long comment is just skipped). A UTF-8 byte order mark is dropped too.
 * Section headers are checked here, at their own line: libinih tells the
 * handler only about keys.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct load *ld = stream;
	ssize_t n;
	size_t len;
	char *s;

	errno = 0;
	n = getline(&ld->buf, &ld->cap, ld->f);
	if (n < 0) {
		if (ferror(ld->f)) {
			ld->read_errno = errno ? errno : EIO;
		}
		return NULL;
	}
	ld->lineno++;
	s = ld->buf;
	len = (size_t)n;
	if (ld->lineno == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
		s += 3; /* a UTF-8 byte order mark */
		len -= 3;
	}
	while (len && (s[len - 1] == '\n' || s[len - 1] == '\r')) {
		len--;
	}
	while (len && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	s[len] = '\0';
	if (num < 3) {
		return NULL;
	}
	if (len > (size_t)num - 2) {
		if (*s != '#' && *s != ';') {
			fail(ld, -EINVAL, "line too long (at most %d characters)", num - 2);
		}
		len = 0;
	} else if (*s == '[') {
		char *end = strchr(s + 1, ']');

		/* without ']' it is libinih's syntax error */
		if (end && ((size_t)(end - s - 1) != strlen(SECTION) ||
		            strncmp(s + 1, SECTION, strlen(SECTION)) != 0)) {
			fail(ld, -EINVAL,
			     "unknown section [%.*s]; keys go at the top or under [" SECTION "]",
			     (int)(end - s - 1), s + 1);
		}
	}
	memcpy(str, s, len);
	str[len] = '\n';
	str[len + 1] = '\0';
	return str;
}

/* libinih's handler: one key = value line. 1 to go on, 0 on an error. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct load *ld = user;
	sg_config_value *v;
	size_t len;
	int i, rc;

	if (*section && strcmp(section, SECTION) != 0) {
		return 0; /* reported at the section's line */
	}
	i = key_index(name);
	if (i < 0) {
		fail(ld, -EINVAL, "unknown key '%s'", name);
		return 0;
	}
	if (ld->first[i]) {
		fail(ld, -EINVAL, "'%s' set twice (first at line %u)", name, ld->first[i]);
		return 0;
	}
	ld->first[i] = ld->lineno;
	if (!value) {
		value = "";
	}
	len = strlen(value);
	if (value[0] == '"') {
		if (len < 2 || value[len - 1] != '"') {
			fail(ld, -EINVAL, "%s: unterminated quote", name);
			return 0;
		}
		value++;
		len -= 2;
	}
	v = &ld->cfg->v[i];
	if (v->value && v->line == 0) {
		return 1; /* a mount option overrides the file */
	}
	rc = value_put(v, value, len, ld->path, ld->lineno);
	if (rc) {
		fail(ld, rc, "%s: %s", name, strerror(-rc));
		return 0;
	}
	return 1;
}

int sg_config_load(sg_config *cfg, const char *path, char *err, size_t errlen)
{
	struct load ld = {.cfg = cfg, .path = path, .err = err, .errlen = errlen};
	int rc;

	ld.f = fopen(path, "re");
	if (!ld.f) {
		rc = -errno;
		say(err, errlen, "%s: cannot read: %s", path, strerror(-rc));
		return rc;
	}
	rc = ini_parse_stream(read_line, &ld, on_key, &ld);
	if (ld.read_errno) {
		rc = -ld.read_errno;
		say(err, errlen, "%s: cannot read: %s", path, strerror(-rc));
		goto out;
	}
	if (rc == -2) {
		rc = -ENOMEM;
		say(err, errlen, "%s: %s", path, strerror(-rc));
		goto out;
	}
	/* libinih returns the first line it could not parse, or the first whose handler failed */
	if (rc > 0 && (!ld.rc || (unsigned)rc < ld.err_line)) {
		say(err, errlen, "%s:%d: expected 'key = value' or '[" SECTION "]'", path, rc);
		rc = -EINVAL;
		goto out;
	}
	rc = ld.rc;
out:
	free(ld.buf);
	fclose(ld.f);
	return rc;
}

/* ---- access ------------------------------------------------------------------ */

int sg_config_set(sg_config *cfg, const char *key, const char *value, const char *origin,
                  unsigned line, char *err, size_t errlen)
{
	char at[64] = "";
	int i = key_index(key), rc;

	if (line) {
		snprintf(at, sizeof(at), ":%u", line);
	}
	if (i < 0) {
		say(err, errlen, "%s%s: unknown key '%s'", origin, at, key);
		return -EINVAL;
	}
	if (!value) {
		say(err, errlen, "%s%s: %s: no value", origin, at, key);
		return -EINVAL;
	}
	rc = value_put(&cfg->v[i], value, strlen(value), origin, line);
	if (rc) {
		say(err, errlen, "%s%s: %s: %s", origin, at, key, strerror(-rc));
	}
	return rc;
}

const char *sg_config_get(const sg_config *cfg, const char *key)
{
	int i = key_index(key);

	return i < 0 ? NULL : cfg->v[i].value;
}

int sg_config_where(const sg_config *cfg, const char *key, char *buf, size_t len)
{
	int i = key_index(key);

	if (i < 0) {
		return -EINVAL;
	}
	if (!cfg->v[i].value) {
		return -ENOENT;
	}
	return where(&cfg->v[i], buf, len);
}

void sg_config_free(sg_config *cfg)
{
	if (!cfg) {
		return;
	}
	for (int i = 0; i < SG_CONFIG_NKEYS; i++) {
		free(cfg->v[i].value);
		free(cfg->v[i].origin);
		cfg->v[i] = (sg_config_value){0};
	}
}

/* ---- values ------------------------------------------------------------------ */

/* Decimal digits at *s, at least one, without overflow; *s moves past them. */
static int parse_uint(const char **s, uint64_t *out)
{
	const char *p = *s;
	uint64_t v = 0;

	if (*p < '0' || *p > '9') {
		return -EINVAL;
	}
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10) {
			return -EINVAL;
		}
		v = v * 10 + d;
	}
	*s = p;
	*out = v;
	return 0;
}

/* A size in bytes: digits and an optional K, M or G (powers of 1024); not 0. */
static int parse_size(const char *s, uint64_t *out)
{
	uint64_t v;
	unsigned shift = 0;

	if (parse_uint(&s, &v)) {
		return -EINVAL;
	}
	switch (*s) {
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	default:
		break;
	}
	if (shift) {
		s++;
	}
	if (*s || v == 0 || v > (UINT64_MAX >> shift)) {
		return -EINVAL;
	}
	*out = v << shift;
	return 0;
}

/* A duration: digits and a unit, ms, s, m, h or d, in milliseconds; not 0. */
static int parse_duration(const char *s, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	uint64_t v;

	if (parse_uint(&s, &v)) {
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s, units[i].unit) == 0) {
			if (v == 0 || v > UINT64_MAX / units[i].ms) {
				return -EINVAL;
			}
			*out = v * units[i].ms;
			return 0;
		}
	}
	return -EINVAL;
}

/* A delay: 0 (none), or digits and ms or s, at most 1 s; in milliseconds. */
static int parse_delay(const char *s, uint64_t *out)
{
	uint64_t v;

	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	if (parse_uint(&s, &v)) {
		return -EINVAL;
	}
	if (strcmp(s, "s") == 0 && v <= 1) {
		*out = v * 1000;
		return 0;
	}
	if (strcmp(s, "ms") == 0 && v <= 1000) {
		*out = v;
		return 0;
	}
	return -EINVAL;
}

/* Seconds, 0 to 86400, with an optional fraction (beyond 1 ms ignored), in milliseconds. */
static int parse_seconds(const char *s, uint64_t *out)
{
	uint64_t sec, ms = 0, scale = 100;

	if (parse_uint(&s, &sec) || sec > 86400) {
		return -EINVAL;
	}
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9') {
			return -EINVAL;
		}
		for (; *s >= '0' && *s <= '9'; s++) {
			ms += (uint64_t)(*s - '0') * scale;
			scale /= 10;
		}
	}
	if (*s || sec * 1000 + ms > 86400000) {
		return -EINVAL;
	}
	*out = sec * 1000 + ms;
	return 0;
}

static int parse_ms(const char *s, uint64_t *out)
{
	uint64_t v;

	if (parse_uint(&s, &v) || *s || v == 0 || v > 3600000) {
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int parse_threads(const char *s, uint64_t *out)
{
	uint64_t v;

	if (parse_uint(&s, &v) || *s || v == 0 || v > SG_MAX_THREADS) {
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int parse_level(const char *s, uint64_t *out)
{
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (strcmp(s, levels[i]) == 0) {
			*out = LEVEL_FIRST + i;
			return 0;
		}
	}
	return -EINVAL;
}

int sg_config_get_u64(uint64_t *out, const sg_config *cfg, const char *key)
{
	int i = key_index(key);
	const char *v;

	if (i < 0) {
		return -EINVAL;
	}
	v = cfg->v[i].value;
	if (!v) {
		return -ENOENT;
	}
	switch (keys[i].kind) {
	case K_SIZE:
		return parse_size(v, out);
	case K_DURATION:
		return parse_duration(v, out);
	case K_DELAY:
		return parse_delay(v, out);
	case K_SECONDS:
		return parse_seconds(v, out);
	case K_MS:
		return parse_ms(v, out);
	case K_THREADS:
		return parse_threads(v, out);
	case K_LEVEL:
		return parse_level(v, out);
	default:
		return -EINVAL;
	}
}

/* ---- checks ------------------------------------------------------------------ */

static int check_url(const char *u, char *why, size_t len)
{
	const char *rest, *colon;
	uint64_t port;

	if (strncmp(u, "ipc://", 6) == 0) {
		if (!u[6]) {
			say(why, len, "'%s' has no path", u);
			return -EINVAL;
		}
		return 0;
	}
	if (strncmp(u, "tls+tcp://", 10) == 0) {
		rest = u + 10;
	} else if (strncmp(u, "tcp://", 6) == 0) {
		rest = u + 6;
	} else {
		say(why, len,
		    "'%s' is not a URL: tls+tcp://HOST:PORT, tcp://HOST:PORT or ipc://PATH", u);
		return -EINVAL;
	}
	colon = strrchr(rest, ':'); /* the last one: [::1]:7470 */
	if (colon) {
		const char *p = colon + 1;

		if (parse_uint(&p, &port) == 0 && !*p && port >= 1 && port <= 65535) {
			return 0;
		}
	}
	say(why, len, "'%s' needs :PORT, 1 to 65535", u);
	return -EINVAL;
}

static int check_urls(const char *list, char *why, size_t len)
{
	char *copy = strdup(list), *save = NULL, *t;
	int rc = 0, n = 0;

	if (!copy) {
		return -ENOMEM;
	}
	for (t = strtok_r(copy, URL_SEPS, &save); t && !rc; t = strtok_r(NULL, URL_SEPS, &save)) {
		rc = check_url(t, why, len);
		n++;
	}
	free(copy);
	if (!rc && n == 0) {
		say(why, len, "no URL");
		rc = -EINVAL;
	}
	return rc;
}

#define PEM_SCAN_MAX (4u << 20) /* a CA bundle is far smaller */

/* A readable regular file that holds a PEM block ("-----BEGIN"): TLS would
 * otherwise refuse it later with a bare "Cryptographic error". */
static int check_pem(const char *path, char *why, size_t len)
{
	static const char begin[] = "-----BEGIN ";
	char buf[4096 + sizeof(begin)];
	size_t keep = 0, n, total = 0;
	struct stat sb;
	FILE *f;
	int rc, found = 0;

	if (access(path, R_OK) < 0 || stat(path, &sb) < 0) {
		rc = -errno;
		say(why, len, "cannot read %s: %s", path, strerror(errno));
		return rc;
	}
	if (!S_ISREG(sb.st_mode)) {
		say(why, len, "%s is not a regular file", path);
		return -EINVAL;
	}
	f = fopen(path, "re");
	if (!f) {
		rc = -errno;
		say(why, len, "cannot read %s: %s", path, strerror(errno));
		return rc;
	}
	/* search in chunks, keeping a tail so that a marker across two is found */
	while (!found && total < PEM_SCAN_MAX &&
	       (n = fread(buf + keep, 1, sizeof(buf) - 1 - keep, f)) > 0) {
		total += n;
		n += keep;
		buf[n] = '\0';
		for (size_t i = 0; !found && i + sizeof(begin) - 1 <= n; i++) {
			found = memcmp(buf + i, begin, sizeof(begin) - 1) == 0;
		}
		keep = n < sizeof(begin) - 2 ? n : sizeof(begin) - 2;
		memmove(buf, buf + n - keep, keep);
	}
	rc = ferror(f) ? -EIO : 0;
	fclose(f);
	if (rc) {
		say(why, len, "cannot read %s: %s", path, strerror(-rc));
		return rc;
	}
	if (!found) {
		say(why, len, "%s is not a PEM file (no '-----BEGIN' line)", path);
		return -EINVAL;
	}
	return 0;
}

static int check_node(const char *s, char *why, size_t len)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");

	if (s[n] || n < 1 || n > 64) {
		say(why, len, "'%s' is not a node name: 1 to 64 of A-Z a-z 0-9 . _ -", s);
		return -EINVAL;
	}
	return 0;
}

static int check_patterns(const char *s, char *why, size_t len)
{
	const char *slash = strchr(s, '/');

	if (slash) {
		say(why, len, "'%s' has a '/': patterns match single names, ':'-separated", s);
		return -EINVAL;
	}
	return 0;
}

/* Check one value of kind k. 0, or a negative errno with why filled. */
static int check_value(enum kind k, const char *v, char *why, size_t len)
{
	uint64_t n;

	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			say(why, len, "control character in value");
			return -EINVAL;
		}
	}
	if (!*v && k != K_PATTERNS) {
		say(why, len, "empty value");
		return -EINVAL;
	}
	switch (k) {
	case K_MIRROR:
		if (strcmp(v, "off") == 0)
			return 0;
		if (v[0] != '/') {
			say(why, len, "'%s' is neither an absolute path nor off", v);
			return -EINVAL;
		}
		return 0;
	case K_ABSPATH:
		if (v[0] != '/') {
			say(why, len, "'%s' is not an absolute path", v);
			return -EINVAL;
		}
		return 0;
	case K_NODE:
		return check_node(v, why, len);
	case K_URL:
		return check_url(v, why, len);
	case K_URLS:
		return check_urls(v, why, len);
	case K_PEM:
		return check_pem(v, why, len);
	case K_MS:
		if (parse_ms(v, &n)) {
			say(why, len, "'%s' is not a number of milliseconds from 1 to 3600000", v);
			return -EINVAL;
		}
		return 0;
	case K_THREADS:
		if (parse_threads(v, &n)) {
			say(why, len, "'%s' is not a number of threads from 1 to %d", v,
			    SG_MAX_THREADS);
			return -EINVAL;
		}
		return 0;
	case K_PATTERNS:
		return check_patterns(v, why, len);
	case K_SIZE:
		if (parse_size(v, &n)) {
			say(why, len, "'%s' is not a size: bytes, with K, M or G (64M)", v);
			return -EINVAL;
		}
		return 0;
	case K_SECONDS:
		if (parse_seconds(v, &n)) {
			say(why, len, "'%s' is not a number of seconds from 0 to 86400", v);
			return -EINVAL;
		}
		return 0;
	case K_DURATION:
		if (parse_duration(v, &n)) {
			say(why, len,
			    "'%s' is not a duration: a number and ms, s, m, h or d (500ms, 7d)", v);
			return -EINVAL;
		}
		return 0;
	case K_DELAY:
		if (parse_delay(v, &n)) {
			say(why, len,
			    "'%s' is not a delay: 0 (off), or a number and ms or s, at most 1s", v);
			return -EINVAL;
		}
		return 0;
	case K_REMOTE:
		if (v[strcspn(v, " \t")]) {
			say(why, len, "'%s' has a blank", v);
			return -EINVAL;
		}
		return 0;
	case K_LEVEL:
		if (parse_level(v, &n)) {
			say(why, len,
			    "'%s' is not a log level: err, warning, notice, info or debug", v);
			return -EINVAL;
		}
		return 0;
	}
	return -EINVAL;
}

/* Does a URL list (or URL) name a tls+tcp:// URL? */
static int wants_tls(const char *urls)
{
	for (const char *p = urls; p && (p = strstr(p, "tls+tcp://")); p++) {
		if (p == urls || strchr(URL_SEPS, p[-1])) {
			return 1;
		}
	}
	return 0;
}

/* "WHERE: KEY: why" into err. */
static void report(const sg_config *cfg, int i, const char *why, char *err, size_t errlen)
{
	char at[4096];

	where(&cfg->v[i], at, sizeof(at));
	say(err, errlen, "%s: %s: %s", at, keys[i].name, why);
}

int sg_config_check(const sg_config *cfg, char *err, size_t errlen)
{
	static const int tls_keys[] = {KEY_TLS_CA, KEY_TLS_CERT, KEY_TLS_KEY};
	static const int repl_keys[] = {KEY_LISTEN, KEY_PEERS};
	char why[4200];
	int rc;

	for (int i = 0; i < SG_CONFIG_NKEYS; i++) {
		if (!cfg->v[i].value) {
			continue;
		}
		rc = check_value(keys[i].kind, cfg->v[i].value, why, sizeof(why));
		if (rc) {
			report(cfg, i, why, err, errlen);
			return rc;
		}
	}
	for (size_t r = 0; r < 2; r++) {
		int i = repl_keys[r];

		if (!cfg->v[i].value) {
			continue;
		}
		if (!cfg->v[KEY_NODE].value) {
			report(cfg, i, "replication needs node", err, errlen);
			return -EINVAL;
		}
		if (!wants_tls(cfg->v[i].value)) {
			continue;
		}
		for (size_t t = 0; t < 3; t++) {
			if (!cfg->v[tls_keys[t]].value) {
				snprintf(
				    why, sizeof(why),
				    "tls+tcp:// needs tls_ca, tls_cert and tls_key; %s is not set",
				    keys[tls_keys[t]].name);
				report(cfg, i, why, err, errlen);
				return -EINVAL;
			}
		}
	}
	if (cfg->v[KEY_REMOTE].value && cfg->v[KEY_MIRROR].value &&
	    strcmp(cfg->v[KEY_MIRROR].value, "off") == 0) {
		report(cfg, KEY_REMOTE, "remote needs the mirror, which is off", err, errlen);
		return -EINVAL;
	}
	return 0;
}
