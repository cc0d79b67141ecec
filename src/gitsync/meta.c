/* meta.c: the metadata file of a mirrored tree, ".sigil" at its root.
 *
 * Text, one record per line, sorted by path, so `git diff` and `git log -p`
 * of it read well:
 *
 *   # sigilfs metadata: what Git cannot hold. See sigilfs(8).
 *   d 0755 0 0 etc                 a directory (every one is listed)
 *   f 0600 0 103 etc/shadow        a file whose mode or owner is not the default
 *   l 0777 1000 1000 etc/link      a symlink with an owner other than root
 *   x user.color 726564 etc/app    a user.* extended attribute, value in hex
 *
 * TYPE MODE(octal) UID GID PATH; the path runs to the end of the line, with
 * '\', control bytes and DEL escaped (\\, \n, \xHH). The root is ".". */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gitsync_i.h"
#include "util.h"

static const char HEADER[] = "# sigilfs metadata: what Git cannot hold (directories, exact modes, "
                             "owners, xattrs). See sigilfs(8).\n"
                             "# TYPE MODE UID GID PATH  (d directory, f file, l symlink)\n"
                             "# x NAME HEXVALUE PATH    (an extended attribute)\n";

void sg_gitmeta_init(sg_gitmeta *m)
{
	memset(m, 0, sizeof(*m));
}

static void ent_free(struct sg_gitmeta_ent *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->nx; i++) {
		free(e->x[i].name);
		free(e->x[i].value);
	}
	free(e->x);
	free(e->path);
	free(e);
}

void sg_gitmeta_clear(sg_gitmeta *m)
{
	for (size_t i = 0; i < m->nb; i++) {
		struct sg_gitmeta_ent *e = m->b[i];
		while (e) {
			struct sg_gitmeta_ent *n = e->next;
			ent_free(e);
			e = n;
		}
	}
	free(m->b);
	sg_gitmeta_init(m);
}

static size_t slot(const sg_gitmeta *m, const char *path)
{
	return sg_hash64(path, strlen(path)) & (m->nb - 1);
}

const struct sg_gitmeta_ent *sg_gitmeta_get(const sg_gitmeta *m, const char *path)
{
	if (!m->nb)
		return NULL;
	for (struct sg_gitmeta_ent *e = m->b[slot(m, path)]; e; e = e->next)
		if (strcmp(e->path, path) == 0)
			return e;
	return NULL;
}

static int grow(sg_gitmeta *m)
{
	size_t nb = m->nb ? m->nb * 2 : 64;
	struct sg_gitmeta_ent **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < m->nb; i++) {
		struct sg_gitmeta_ent *e = m->b[i];
		while (e) {
			struct sg_gitmeta_ent *n = e->next;
			size_t s = sg_hash64(e->path, strlen(e->path)) & (nb - 1);
			e->next = b[s];
			b[s] = e;
			e = n;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
	return 0;
}

/* Find or add the record of path. */
static struct sg_gitmeta_ent *get_or_add(sg_gitmeta *m, const char *path)
{
	struct sg_gitmeta_ent *e = (struct sg_gitmeta_ent *)sg_gitmeta_get(m, path);
	size_t s;

	if (e)
		return e;
	if (m->n + 1 > m->nb && grow(m) < 0)
		return NULL;
	if (!(e = calloc(1, sizeof(*e))) || !(e->path = strdup(path))) {
		free(e);
		return NULL;
	}
	s = slot(m, path);
	e->next = m->b[s];
	m->b[s] = e;
	m->n++;
	return e;
}

static void unlink_ent(sg_gitmeta *m, struct sg_gitmeta_ent *victim)
{
	struct sg_gitmeta_ent **pp = &m->b[slot(m, victim->path)];

	while (*pp && *pp != victim)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = victim->next;
		m->n--;
		ent_free(victim);
	}
}

uint32_t sg_gitmeta_default_mode(uint32_t type, int exec)
{
	switch (type) {
	case SG_TYPE_DIR:
		return 0755;
	case SG_TYPE_SYMLINK:
		return 0777;
	default:
		return exec ? 0755 : 0644;
	}
}

static int needs_attrs(uint32_t type, uint32_t mode, uint32_t uid, uint32_t gid)
{
	if (type == SG_TYPE_DIR)
		return 1;
	if (uid || gid)
		return 1;
	if (type == SG_TYPE_SYMLINK)
		return 0;
	return mode != 0644 && mode != 0755;
}

static int x_equal(const struct sg_gitmeta_ent *e, const sg_xattr *x, size_t nx)
{
	if (e->nx != nx)
		return 0;
	for (size_t i = 0; i < nx; i++) {
		size_t j;
		for (j = 0; j < e->nx; j++)
			if (strcmp(e->x[j].name, x[i].name) == 0)
				break;
		if (j == e->nx || e->x[j].len != x[i].len ||
		    (x[i].len && memcmp(e->x[j].value, x[i].value, x[i].len) != 0))
			return 0;
	}
	return 1;
}

static int x_replace(struct sg_gitmeta_ent *e, const sg_xattr *x, size_t nx)
{
	struct sg_gitmeta_x *v = nx ? calloc(nx, sizeof(*v)) : NULL;

	if (nx && !v)
		return -ENOMEM;
	for (size_t i = 0; i < nx; i++) {
		v[i].name = strdup(x[i].name);
		v[i].value = malloc(x[i].len ? x[i].len : 1);
		v[i].len = x[i].len;
		if (!v[i].name || !v[i].value) {
			for (size_t j = 0; j <= i; j++) {
				free(v[j].name);
				free(v[j].value);
			}
			free(v);
			return -ENOMEM;
		}
		if (x[i].len)
			memcpy(v[i].value, x[i].value, x[i].len);
	}
	for (size_t i = 0; i < e->nx; i++) {
		free(e->x[i].name);
		free(e->x[i].value);
	}
	free(e->x);
	e->x = v;
	e->nx = nx;
	return 0;
}

int sg_gitmeta_set(sg_gitmeta *m, const char *path, uint32_t type, uint32_t mode, uint32_t uid,
                   uint32_t gid, const sg_xattr *x, size_t nx)
{
	struct sg_gitmeta_ent *e = (struct sg_gitmeta_ent *)sg_gitmeta_get(m, path);
	int attrs = needs_attrs(type, mode, uid, gid);

	if (!attrs && !nx) {
		if (!e)
			return 0;
		unlink_ent(m, e);
		return 1;
	}
	if (e && e->type == type && e->attrs == attrs &&
	    (!attrs || (e->mode == mode && e->uid == uid && e->gid == gid)) && x_equal(e, x, nx))
		return 0;
	if (!(e = get_or_add(m, path)))
		return -ENOMEM;
	e->type = type;
	e->attrs = attrs;
	e->mode = mode;
	e->uid = uid;
	e->gid = gid;
	if (x_replace(e, x, nx) < 0)
		return -ENOMEM;
	return 1;
}

int sg_path_under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	if (!n)
		return 1;
	return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int sg_gitmeta_remove(sg_gitmeta *m, const char *path, int sub,
                      void (*gone)(void *ctx, const struct sg_gitmeta_ent *e), void *ctx)
{
	int changed = 0;

	if (!sub) {
		struct sg_gitmeta_ent *e = (struct sg_gitmeta_ent *)sg_gitmeta_get(m, path);
		if (e) {
			if (gone)
				gone(ctx, e);
			unlink_ent(m, e);
			changed = 1;
		}
		return changed;
	}
	for (size_t i = 0; i < m->nb; i++) {
		struct sg_gitmeta_ent **pp = &m->b[i];
		while (*pp) {
			struct sg_gitmeta_ent *e = *pp;
			if (sg_path_under(e->path, path)) {
				if (gone)
					gone(ctx, e);
				*pp = e->next;
				m->n--;
				ent_free(e);
				changed = 1;
			} else {
				pp = &e->next;
			}
		}
	}
	return changed;
}

void sg_gitmeta_each(const sg_gitmeta *m, void (*cb)(void *ctx, const struct sg_gitmeta_ent *e),
                     void *ctx)
{
	for (size_t i = 0; i < m->nb; i++)
		for (struct sg_gitmeta_ent *e = m->b[i]; e; e = e->next)
			cb(ctx, e);
}

/* ---- text ---- */

struct sbuf {
	char *p;
	size_t len, cap;
	int oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;
		while (cap < b->len + n + 1)
			cap *= 2;
		if (!(p = realloc(b->p, cap))) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

/* escape a path or name: '\' and bytes < 0x20, DEL; with sp, spaces too */
static void sb_esc(struct sbuf *b, const char *s, int sp)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char t[5];
		if (c == '\\')
			sb_add(b, "\\\\", 2);
		else if (c == '\n')
			sb_add(b, "\\n", 2);
		else if (c < 0x20 || c == 0x7f || (sp && c == ' ')) {
			snprintf(t, sizeof(t), "\\x%02x", c);
			sb_add(b, t, 4);
		} else
			sb_add(b, (const char *)&c, 1);
	}
}

static int ent_cmp(const void *a, const void *b)
{
	const struct sg_gitmeta_ent *x = *(const struct sg_gitmeta_ent *const *)a;
	const struct sg_gitmeta_ent *y = *(const struct sg_gitmeta_ent *const *)b;
	return strcmp(x->path, y->path);
}

static int xname_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sg_gitmeta_x *)a)->name,
	              ((const struct sg_gitmeta_x *)b)->name);
}

int sg_gitmeta_serialize(const sg_gitmeta *m, char **out, size_t *len)
{
	struct sg_gitmeta_ent **v = m->n ? malloc(m->n * sizeof(*v)) : NULL;
	struct sbuf b = {0};
	size_t k = 0;

	if (m->n && !v)
		return -ENOMEM;
	for (size_t i = 0; i < m->nb; i++)
		for (struct sg_gitmeta_ent *e = m->b[i]; e; e = e->next)
			v[k++] = e;
	if (k)
		qsort(v, k, sizeof(*v), ent_cmp);
	sb_str(&b, HEADER);
	for (size_t i = 0; i < k; i++) {
		struct sg_gitmeta_ent *e = v[i];
		const char *path = *e->path ? e->path : ".";
		char head[64];

		if (e->attrs) {
			snprintf(head, sizeof(head), "%c %04o %u %u ",
			         e->type == SG_TYPE_DIR       ? 'd'
			         : e->type == SG_TYPE_SYMLINK ? 'l'
			                                      : 'f',
			         e->mode & 07777, e->uid, e->gid);
			sb_str(&b, head);
			sb_esc(&b, path, 0);
			sb_add(&b, "\n", 1);
		}
		if (e->nx)
			qsort(e->x, e->nx, sizeof(*e->x), xname_cmp);
		for (size_t j = 0; j < e->nx; j++) {
			sb_add(&b, "x ", 2);
			sb_esc(&b, e->x[j].name, 1);
			sb_add(&b, " ", 1);
			for (size_t q = 0; q < e->x[j].len; q++) {
				char h[3];
				snprintf(h, sizeof(h), "%02x", ((unsigned char *)e->x[j].value)[q]);
				sb_add(&b, h, 2);
			}
			if (!e->x[j].len)
				sb_add(&b, "-", 1);
			sb_add(&b, " ", 1);
			sb_esc(&b, path, 0);
			sb_add(&b, "\n", 1);
		}
	}
	free(v);
	if (b.oom) {
		free(b.p);
		return -ENOMEM;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Undo sb_esc in place. */
static int unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (*r != '\\') {
			*w++ = *r;
			continue;
		}
		r++;
		if (*r == '\\')
			*w++ = '\\';
		else if (*r == 'n')
			*w++ = '\n';
		else if (*r == 'x' && hexval(r[1]) >= 0 && hexval(r[2]) >= 0) {
			int c = hexval(r[1]) * 16 + hexval(r[2]);
			if (!c)
				return -EINVAL;
			*w++ = (char)c;
			r += 2;
		} else
			return -EINVAL;
	}
	*w = '\0';
	return 0;
}

/* A path as the file spells it: "." is the root; no leading '/', no empty,
 * "." or ".." components. */
static int path_ok(char *path)
{
	if (strcmp(path, ".") == 0) {
		path[0] = '\0';
		return 0;
	}
	if (!*path || *path == '/')
		return -EINVAL;
	for (const char *p = path; *p;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (sg_name_check(p, n) < 0)
			return -EINVAL;
		p += n;
		if (*p == '/')
			p++;
		if (e && !*p)
			return -EINVAL;
	}
	return strlen(path) > SG_PATH_MAX ? -EINVAL : 0;
}

static int parse_line(sg_gitmeta *m, char *line, const char **why)
{
	char *f[4], *rest = line;
	struct sg_gitmeta_ent *e;

	/* split four fields; the path is the rest */
	for (int i = 0; i < 4; i++) {
		char *sp = strchr(rest, ' ');
		if (!sp) {
			*why = "too few fields";
			return -EINVAL;
		}
		*sp = '\0';
		f[i] = rest;
		rest = sp + 1;
	}
	if (unescape(rest) < 0 || path_ok(rest) < 0) {
		*why = "bad path";
		return -EINVAL;
	}
	if (strlen(f[0]) != 1 || !strchr("dfl", f[0][0])) {
		*why = "unknown record type";
		return -EINVAL;
	}
	{
		char *end;
		unsigned long mode = strtoul(f[1], &end, 8);
		unsigned long uid, gid;
		if (*end || mode > 07777) {
			*why = "bad mode";
			return -EINVAL;
		}
		uid = strtoul(f[2], &end, 10);
		if (*end || !*f[2] || uid > UINT32_MAX) {
			*why = "bad uid";
			return -EINVAL;
		}
		gid = strtoul(f[3], &end, 10);
		if (*end || !*f[3] || gid > UINT32_MAX) {
			*why = "bad gid";
			return -EINVAL;
		}
		if (!(e = get_or_add(m, rest)))
			return -ENOMEM;
		e->type = f[0][0] == 'd'   ? SG_TYPE_DIR
		          : f[0][0] == 'l' ? SG_TYPE_SYMLINK
		                           : SG_TYPE_FILE;
		e->mode = (uint32_t)mode;
		e->uid = (uint32_t)uid;
		e->gid = (uint32_t)gid;
		e->attrs = 1;
	}
	return 0;
}

/* "x NAME HEX PATH" */
static int parse_x(sg_gitmeta *m, char *line, const char **why)
{
	char *name = line + 2, *hex, *path, *sp;
	struct sg_gitmeta_ent *e;
	struct sg_gitmeta_x *v;
	size_t hl, len;
	unsigned char *val;

	if (!(sp = strchr(name, ' '))) {
		*why = "too few fields";
		return -EINVAL;
	}
	*sp = '\0';
	hex = sp + 1;
	if (!(sp = strchr(hex, ' '))) {
		*why = "too few fields";
		return -EINVAL;
	}
	*sp = '\0';
	path = sp + 1;
	if (unescape(path) < 0 || path_ok(path) < 0) {
		*why = "bad path";
		return -EINVAL;
	}
	if (unescape(name) < 0 || strncmp(name, "user.", 5) != 0 || strlen(name) > 255 ||
	    strlen(name) < 6) {
		*why = "bad attribute name";
		return -EINVAL;
	}
	hl = strlen(hex);
	len = strcmp(hex, "-") == 0 ? 0 : hl / 2;
	if ((len && hl % 2) || (!len && strcmp(hex, "-") != 0) || len > 65536) {
		*why = "bad attribute value";
		return -EINVAL;
	}
	if (!(val = malloc(len ? len : 1)))
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		int h = hexval(hex[2 * i]), l = hexval(hex[2 * i + 1]);
		if (h < 0 || l < 0) {
			free(val);
			*why = "bad attribute value";
			return -EINVAL;
		}
		val[i] = (unsigned char)(h * 16 + l);
	}
	if (!(e = get_or_add(m, path)) || !(v = realloc(e->x, (e->nx + 1) * sizeof(*v)))) {
		free(val);
		return -ENOMEM;
	}
	e->x = v;
	if (!(v[e->nx].name = strdup(name))) {
		free(val);
		return -ENOMEM;
	}
	v[e->nx].value = val;
	v[e->nx].len = len;
	e->nx++;
	return 0;
}

int sg_gitmeta_parse(sg_gitmeta *m, const char *buf, size_t len, char *err, size_t errlen)
{
	size_t lineno = 0, off = 0;
	char *line = NULL;
	int rc = 0;

	sg_gitmeta_clear(m);
	while (off < len) {
		const char *nl = memchr(buf + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (buf + off)) : len - off;
		const char *why = "bad record";

		lineno++;
		free(line);
		if (!(line = malloc(n + 1))) {
			rc = -ENOMEM;
			break;
		}
		memcpy(line, buf + off, n);
		line[n] = '\0';
		off += n + (nl ? 1 : 0);
		if (!n || line[0] == '#')
			continue;
		if (memchr(line, '\0', n)) {
			rc = -EINVAL;
			why = "NUL byte";
		} else if (n > 2 && line[0] == 'x' && line[1] == ' ') {
			rc = parse_x(m, line, &why);
		} else {
			rc = parse_line(m, line, &why);
		}
		if (rc) {
			if (rc == -EINVAL)
				snprintf(err, errlen, "line %zu: %s", lineno, why);
			break;
		}
	}
	free(line);
	/* entries that had only x lines keep attrs = 0: defaults apply */
	if (rc)
		sg_gitmeta_clear(m);
	return rc;
}
