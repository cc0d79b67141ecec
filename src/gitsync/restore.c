/* restore.c: Git -> store. Compare the tree of a revision with the live
 * store (a drift check), or write the difference into the store as new local
 * changes, so that the revision's state wins on every node (restore, deploy).
 *
 * The revision's tree says what should exist: its blobs, links and trees,
 * plus the directories, exact modes, owners and xattrs of its ".sigil"
 * metadata file. Whatever lives in the store under the prefix and is not in
 * the tree is deleted, except names that stay local to a node. */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gitsync_i.h"
#include "log.h"
#include "util.h"

#define PUT_CHUNK 256

/* What the revision wants at one path. */
struct want {
	char *path;
	uint32_t type, mode, uid, gid;
	git_oid oid; /* blob of a file or symlink */
	int exec;
	int ensure; /* an ancestor of the prefix: only made if missing */
	const struct sg_gitmeta_ent *me;
};

/* What the store holds at one path. */
struct live {
	char *path;
	sg_attr a;
};

struct ctx {
	const sg_git_apply_opts *o;
	git_repository *repo;
	sg_gitmeta meta;
	const char *prefix;
	struct want *w;
	size_t nw, capw;
	struct live *l;
	size_t nl, capl;
	int err;
};

static int want_add(struct ctx *c, const char *path, uint32_t type, const git_oid *oid, int exec,
                    int ensure)
{
	struct want *w;

	if (c->nw == c->capw) {
		size_t cap = c->capw ? c->capw * 2 : 256;
		struct want *v = realloc(c->w, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->w = v;
		c->capw = cap;
	}
	w = &c->w[c->nw];
	memset(w, 0, sizeof(*w));
	if (!(w->path = strdup(path)))
		return -ENOMEM;
	c->nw++;
	w->type = type;
	if (oid)
		git_oid_cpy(&w->oid, oid);
	w->exec = exec;
	w->ensure = ensure;
	w->me = sg_gitmeta_get(&c->meta, path);
	if (w->me && w->me->attrs && w->me->type == type) {
		w->mode = w->me->mode;
		w->uid = w->me->uid;
		w->gid = w->me->gid;
	} else {
		w->mode = sg_gitmeta_default_mode(type, exec);
	}
	return 0;
}

/* Is path an ancestor of the prefix ("a" of "a/b/c")? */
static int above_prefix(const char *path, const char *prefix)
{
	size_t n = strlen(path);
	return *prefix && strncmp(prefix, path, n) == 0 && prefix[n] == '/';
}

static int walk_cb(const char *root, const git_tree_entry *e, void *payload)
{
	struct ctx *c = payload;
	char path[SG_PATH_MAX + 2];
	git_object_t t = git_tree_entry_type(e);
	git_filemode_t fm = git_tree_entry_filemode(e);
	int rc;

	if (snprintf(path, sizeof(path), "%s%s", root, git_tree_entry_name(e)) > SG_PATH_MAX ||
	    (!*root && strcmp(git_tree_entry_name(e), SG_GIT_META) == 0))
		return t == GIT_OBJECT_TREE ? 1 : 0;
	if (sg_path_matches(c->o->local_only, path))
		return t == GIT_OBJECT_TREE ? 1 : 0;
	if (t == GIT_OBJECT_TREE && above_prefix(path, c->prefix))
		return want_add(c, path, SG_TYPE_DIR, NULL, 0, 1) < 0 ? (c->err = -ENOMEM, -1) : 0;
	if (!sg_path_under(path, c->prefix))
		return t == GIT_OBJECT_TREE ? 1 : 0;
	if (t == GIT_OBJECT_TREE)
		rc = want_add(c, path, SG_TYPE_DIR, NULL, 0, 0);
	else if (t == GIT_OBJECT_BLOB && fm == GIT_FILEMODE_LINK)
		rc = want_add(c, path, SG_TYPE_SYMLINK, git_tree_entry_id(e), 0, 0);
	else if (t == GIT_OBJECT_BLOB)
		rc = want_add(c, path, SG_TYPE_FILE, git_tree_entry_id(e),
		              fm == GIT_FILEMODE_BLOB_EXECUTABLE, 0);
	else
		return 0; /* a submodule: nothing of ours */
	if (rc < 0) {
		c->err = rc;
		return -1;
	}
	return 0;
}

/* Directories the metadata lists that the tree cannot (empty ones). */
static void meta_dirs(void *arg, const struct sg_gitmeta_ent *e)
{
	struct ctx *c = arg;

	if (c->err || !e->attrs || e->type != SG_TYPE_DIR || !*e->path ||
	    sg_path_matches(c->o->local_only, e->path))
		return;
	if (!sg_path_under(e->path, c->prefix) && !above_prefix(e->path, c->prefix))
		return;
	for (size_t i = 0; i < c->nw; i++)
		if (strcmp(c->w[i].path, e->path) == 0)
			return;
	if (want_add(c, e->path, SG_TYPE_DIR, NULL, 0, above_prefix(e->path, c->prefix)) < 0)
		c->err = -ENOMEM;
}

static int depth(const char *p)
{
	int d = 0;
	for (; *p; p++)
		d += *p == '/';
	return d;
}

/* parents before children */
static int by_depth(const void *a, const void *b)
{
	const struct want *x = a, *y = b;
	int dx = depth(x->path), dy = depth(y->path);
	return dx != dy ? dx - dy : strcmp(x->path, y->path);
}

static int by_path(const void *a, const void *b)
{
	return strcmp((*(const struct want *const *)a)->path,
	              (*(const struct want *const *)b)->path);
}

/* ---- the live side ---- */

static int live_add(struct ctx *c, const char *path, const sg_attr *a)
{
	if (c->nl == c->capl) {
		size_t cap = c->capl ? c->capl * 2 : 256;
		struct live *v = realloc(c->l, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->l = v;
		c->capl = cap;
	}
	if (!(c->l[c->nl].path = strdup(path)))
		return -ENOMEM;
	c->l[c->nl].a = *a;
	c->nl++;
	return 0;
}

struct list_ctx {
	struct ctx *c;
	const char *dir;
	uint64_t *ids;
	char **names;
	uint32_t *types;
	size_t n, cap;
};

static int list_cb(void *arg, const sg_dirent *d)
{
	struct list_ctx *lc = arg;

	if (lc->n == lc->cap) {
		size_t cap = lc->cap ? lc->cap * 2 : 64;
		uint64_t *ids = realloc(lc->ids, cap * sizeof(*ids));
		char **names;
		if (!ids)
			return -ENOMEM;
		lc->ids = ids;
		if (!(names = realloc(lc->names, cap * sizeof(*names))))
			return -ENOMEM;
		lc->names = names;
		lc->cap = cap;
	}
	if (!(lc->names[lc->n] = strdup(d->name)))
		return -ENOMEM;
	lc->ids[lc->n++] = d->id;
	return 0;
}

/* Pre-order walk of the store below directory `id` at `path`. */
static int live_walk(struct ctx *c, uint64_t id, const char *path)
{
	struct list_ctx lc = {.c = c, .dir = path};
	int rc = sg_store_list(c->o->store, id, NULL, list_cb, &lc);

	for (size_t i = 0; rc == 0 && i < lc.n; i++) {
		char child[SG_PATH_MAX + 2];
		sg_attr a;
		if (snprintf(child, sizeof(child), "%s%s%s", path, *path ? "/" : "", lc.names[i]) >
		    SG_PATH_MAX)
			continue;
		if (sg_path_matches(c->o->local_only, child))
			continue;
		if (sg_store_getattr(c->o->store, lc.ids[i], &a) < 0)
			continue; /* gone meanwhile */
		rc = live_add(c, child, &a);
		if (rc == 0 && a.type == SG_TYPE_DIR)
			rc = live_walk(c, a.id, child);
	}
	for (size_t i = 0; i < lc.n; i++)
		free(lc.names[i]);
	free(lc.names);
	free(lc.ids);
	return rc < 0 ? rc : 0;
}

/* ---- comparison ---- */

struct xa {
	char *names;
	size_t len;
};

/* Do the live entry's xattrs equal the wanted ones? */
static int xattrs_equal(sg_store *st, uint64_t id, const struct sg_gitmeta_ent *me)
{
	char *names = NULL;
	size_t len = 0, n = 0;
	int eq = 1;

	if (sg_store_listxattr(st, id, &names, &len) < 0)
		return 0;
	for (size_t off = 0; off < len && eq; off += strlen(names + off) + 1) {
		const char *name = names + off;
		void *val = NULL;
		size_t vl = 0;
		size_t j;
		n++;
		if (!me) {
			eq = 0;
			break;
		}
		for (j = 0; j < me->nx; j++)
			if (strcmp(me->x[j].name, name) == 0)
				break;
		if (j == me->nx || sg_store_getxattr(st, id, name, &val, &vl) < 0 ||
		    vl != me->x[j].len || (vl && memcmp(val, me->x[j].value, vl) != 0))
			eq = 0;
		free(val);
	}
	free(names);
	return eq && n == (me ? me->nx : 0);
}

/* What differs between the live entry and the want: "" if nothing. */
static int differs(struct ctx *c, const struct want *w, const sg_attr *a, char *why, size_t len)
{
	sg_store *st = c->o->store;

	why[0] = '\0';
	if (a->type != w->type) {
		snprintf(why, len, "type");
		return 1;
	}
	if (w->ensure)
		return 0;
	if (w->type != SG_TYPE_DIR) {
		git_blob *blob = NULL;
		void *data = NULL;
		size_t dl = 0;
		int same = 0;
		if (git_blob_lookup(&blob, c->repo, &w->oid) == 0 &&
		    (uint64_t)git_blob_rawsize(blob) == a->size &&
		    sg_store_read(st, a->id, &data, &dl) == 0 && dl == a->size &&
		    (!dl || memcmp(data, git_blob_rawcontent(blob), dl) == 0))
			same = 1;
		free(data);
		git_blob_free(blob);
		if (!same)
			snprintf(why + strlen(why), len - strlen(why), "%scontent",
			         *why ? ", " : "");
	}
	if (w->type != SG_TYPE_SYMLINK && (a->mode & 07777) != w->mode)
		snprintf(why + strlen(why), len - strlen(why), "%smode", *why ? ", " : "");
	if (a->uid != w->uid || a->gid != w->gid)
		snprintf(why + strlen(why), len - strlen(why), "%sowner", *why ? ", " : "");
	if (!xattrs_equal(st, a->id, w->me))
		snprintf(why + strlen(why), len - strlen(why), "%sxattrs", *why ? ", " : "");
	return *why != '\0';
}

/* ---- writing ---- */

struct pending {
	sg_change ch[PUT_CHUNK];
	git_blob *blobs[PUT_CHUNK];
	sg_xattr *xs[PUT_CHUNK];
	int rcs[PUT_CHUNK];
	size_t n;
};

static int flush_puts(struct ctx *c, struct pending *p, char *err, size_t errlen)
{
	int rc = 0;

	if (p->n)
		rc = sg_store_put_many(c->o->store, p->ch, p->n, p->rcs);
	for (size_t i = 0; i < p->n; i++) {
		if (!rc && p->rcs[i] < 0) {
			rc = p->rcs[i];
			snprintf(err, errlen, "%s: %s", p->ch[i].path, strerror(-rc));
		}
		git_blob_free(p->blobs[i]);
		free(p->xs[i]);
		free((char *)p->ch[i].path);
	}
	if (rc < 0 && !*err)
		snprintf(err, errlen, "cannot write to the store: %s", strerror(-rc));
	p->n = 0;
	return rc;
}

static int queue_put(struct ctx *c, struct pending *p, const struct want *w, const char *del_path,
                     char *err, size_t errlen)
{
	sg_change *ch = &p->ch[p->n];
	int64_t now = sg_now_ns();

	memset(ch, 0, sizeof(*ch));
	p->blobs[p->n] = NULL;
	p->xs[p->n] = NULL;
	ch->mtime_ns = ch->ctime_ns = now;
	if (del_path) {
		ch->type = SG_TYPE_TOMBSTONE;
		if (!(ch->path = strdup(del_path)))
			return -ENOMEM;
	} else {
		if (!(ch->path = strdup(w->path)))
			return -ENOMEM;
		ch->type = w->type;
		ch->mode = w->mode;
		ch->uid = w->uid;
		ch->gid = w->gid;
		if (w->type != SG_TYPE_DIR) {
			int rc = git_blob_lookup(&p->blobs[p->n], c->repo, &w->oid);
			if (rc < 0) {
				free((char *)ch->path);
				snprintf(err, errlen, "%s: cannot read its blob", w->path);
				return sg_git_err(rc, "blob");
			}
			ch->data = git_blob_rawcontent(p->blobs[p->n]);
			ch->len = (size_t)git_blob_rawsize(p->blobs[p->n]);
		}
		if (w->me && w->me->nx) {
			sg_xattr *x = calloc(w->me->nx, sizeof(*x));
			if (!x) {
				git_blob_free(p->blobs[p->n]);
				free((char *)ch->path);
				return -ENOMEM;
			}
			for (size_t i = 0; i < w->me->nx; i++) {
				x[i].name = w->me->x[i].name;
				x[i].value = w->me->x[i].value;
				x[i].len = w->me->x[i].len;
			}
			p->xs[p->n] = x;
			ch->xattrs = x;
			ch->nxattrs = w->me->nx;
		}
	}
	p->n++;
	return p->n == PUT_CHUNK ? flush_puts(c, p, err, errlen) : 0;
}

/*
 * The root: its mode, owner and user.* xattrs, when the revision records
 * them and the whole tree is compared (a prefix leaves the root alone). The
 * store's path-based puts do not take the root: these are the handle calls
 * the file system makes for chmod, chown and setfattr on the mount point.
 */
static int root_apply(struct ctx *c, sg_git_apply_result *res, FILE *out, char *err, size_t errlen)
{
	const struct sg_gitmeta_ent *me = sg_gitmeta_get(&c->meta, "");
	sg_store *st = c->o->store;
	struct want w = {.path = "", .type = SG_TYPE_DIR};
	char why[64], *names = NULL;
	size_t len = 0;
	int64_t now = sg_now_ns();
	unsigned mask = 0;
	sg_attr a, in;
	int rc;

	if (*c->prefix || !me || !me->attrs || me->type != SG_TYPE_DIR)
		return 0;
	w.mode = me->mode;
	w.uid = me->uid;
	w.gid = me->gid;
	w.me = me;
	if ((rc = sg_store_getattr(st, SG_ROOT_ID, &a)) < 0) {
		snprintf(err, errlen, "cannot read the root: %s", strerror(-rc));
		return rc;
	}
	if (!differs(c, &w, &a, why, sizeof(why)))
		return 0;
	res->modified++;
	if (out)
		fprintf(out, "M / (%s)\n", why);
	if (c->o->mode != SG_GIT_RESTORE)
		return 0;
	in = a;
	if ((a.mode & 07777) != w.mode) {
		mask |= SG_SET_MODE;
		in.mode = w.mode;
	}
	if (a.uid != w.uid) {
		mask |= SG_SET_UID;
		in.uid = w.uid;
	}
	if (a.gid != w.gid) {
		mask |= SG_SET_GID;
		in.gid = w.gid;
	}
	if (mask && (rc = sg_store_setattr(st, NULL, SG_ROOT_ID, mask, &in, now, NULL)) < 0)
		goto out;
	/* the xattrs the revision lacks go, the others take its values */
	if ((rc = sg_store_listxattr(st, SG_ROOT_ID, &names, &len)) < 0)
		goto out;
	for (size_t off = 0; off < len; off += strlen(names + off) + 1) {
		size_t j = 0;
		while (j < me->nx && strcmp(me->x[j].name, names + off) != 0)
			j++;
		if (j == me->nx &&
		    (rc = sg_store_removexattr(st, NULL, SG_ROOT_ID, names + off, now)) < 0 &&
		    rc != -ENODATA)
			goto out;
	}
	for (size_t j = 0; j < me->nx; j++) {
		void *val = NULL;
		size_t vl = 0;
		int same = sg_store_getxattr(st, SG_ROOT_ID, me->x[j].name, &val, &vl) == 0 &&
		           vl == me->x[j].len && (!vl || memcmp(val, me->x[j].value, vl) == 0);
		free(val);
		if (!same && (rc = sg_store_setxattr(st, NULL, SG_ROOT_ID, me->x[j].name,
		                                     me->x[j].value, me->x[j].len, 0, now)) < 0)
			goto out;
	}
	/* the restore's mark covers the root's change (the log keeps its last) */
	if (sg_store_getattr(st, SG_ROOT_ID, &a) == 0)
		sg_mirror_restore_mark(c->o->mirror, a.version);
	rc = sg_store_sync(st);
out:
	free(names);
	if (rc < 0)
		snprintf(err, errlen, "/: %s", strerror(-rc));
	return rc < 0 ? rc : 0;
}

/* ---- opening the repository ---- */

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* git_clone's remote, made without the leaking insteadOf lookup */
static int clone_remote_cb(git_remote **out, git_repository *repo, const char *name,
                           const char *url, void *payload)
{
	(void)payload;
	return sg_git_remote_new(out, repo, name, url);
}

static int repo_get(git_repository **out, const char *where, char *tmp, size_t tmplen, char *err,
                    size_t errlen)
{
	int rc;

	tmp[0] = '\0';
	if (strncmp(where, "file://", 7) == 0)
		where += 7;
	if (strstr(where, "://")) {
		git_clone_options co;
		snprintf(tmp, tmplen, "/tmp/sigil-restore-XXXXXX");
		if (!mkdtemp(tmp)) {
			snprintf(err, errlen, "cannot make a temporary directory: %s",
			         strerror(errno));
			tmp[0] = '\0';
			return -errno;
		}
		git_clone_options_init(&co, GIT_CLONE_OPTIONS_VERSION);
		co.bare = 1;
		co.fetch_opts.callbacks.credentials = sg_git_cred_cb;
		co.remote_cb = clone_remote_cb;
		rc = git_clone(out, where, tmp, &co);
		if (rc < 0) {
			const git_error *e = git_error_last();
			snprintf(err, errlen, "cannot fetch %s: %s", where,
			         e && e->message ? e->message : "error");
			return sg_git_err(rc, "clone");
		}
		return 0;
	}
	rc = git_repository_open_ext(out, where, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
	if (rc < 0) {
		snprintf(err, errlen, "%s: not a Git repository", where);
		return sg_git_err(rc, "open");
	}
	return 0;
}

/* ---- the whole ---- */

int sg_git_apply(const sg_git_apply_opts *o, sg_git_apply_result *res, FILE *out, char *err,
                 size_t errlen)
{
	struct ctx c = {.o = o};
	git_object *obj = NULL;
	git_commit *commit = NULL;
	git_tree *tree = NULL;
	struct want **sorted = NULL;
	struct pending *pend = NULL;
	char tmp[64] = "", prefix[SG_PATH_MAX + 1];
	const char *rev = o->rev && *o->rev ? o->rev : "HEAD";
	int rc, marked = 0;

	memset(res, 0, sizeof(*res));
	err[0] = '\0';
	sg_gitmeta_init(&c.meta);
	sg_git_init();
	/* the prefix: no leading or trailing '/' */
	{
		const char *p = o->prefix ? o->prefix : "";
		size_t n;
		while (*p == '/')
			p++;
		snprintf(prefix, sizeof(prefix), "%s", p);
		n = strlen(prefix);
		while (n && prefix[n - 1] == '/')
			prefix[--n] = '\0';
		c.prefix = prefix;
	}
	sg_mirror_hold(o->mirror, o->repo);
	if ((rc = repo_get(&c.repo, o->repo, tmp, sizeof(tmp), err, errlen)) < 0)
		goto out;
	rc = git_revparse_single(&obj, c.repo, rev);
	if (rc == 0)
		rc = git_object_peel((git_object **)&commit, obj, GIT_OBJECT_COMMIT);
	if (rc < 0) {
		snprintf(err, errlen, "%s: no such revision in %s", rev, o->repo);
		rc = sg_git_err(rc, "revision");
		rc = rc == -EIO ? -ENOENT : rc;
		goto out;
	}
	git_oid_tostr(res->commit, sizeof(res->commit), git_commit_id(commit));
	if ((rc = git_commit_tree(&tree, commit)) < 0) {
		snprintf(err, errlen, "%s: cannot read its tree", res->commit);
		rc = sg_git_err(rc, "tree");
		goto out;
	}
	{
		git_tree_entry *te = NULL;
		if (git_tree_entry_bypath(&te, tree, SG_GIT_META) == 0) {
			git_blob *blob = NULL;
			char why[128] = "";
			rc = git_blob_lookup(&blob, c.repo, git_tree_entry_id(te));
			if (rc == 0)
				rc = sg_gitmeta_parse(&c.meta, git_blob_rawcontent(blob),
				                      (size_t)git_blob_rawsize(blob), why,
				                      sizeof(why));
			git_blob_free(blob);
			git_tree_entry_free(te);
			if (rc < 0) {
				snprintf(err, errlen, "%s:%s: %s", res->commit, SG_GIT_META,
				         *why ? why : "unreadable");
				rc = rc == -ENOMEM ? rc : -EINVAL;
				goto out;
			}
		}
	}
	/* what the revision wants */
	rc = git_tree_walk(tree, GIT_TREEWALK_PRE, walk_cb, &c);
	if (c.err || rc < 0) {
		rc = c.err ? c.err : sg_git_err(rc, "tree walk");
		goto out;
	}
	sg_gitmeta_each(&c.meta, meta_dirs, &c);
	if (c.err) {
		rc = c.err;
		goto out;
	}
	if (*prefix) {
		int found = 0;
		for (size_t i = 0; i < c.nw && !found; i++)
			found = strcmp(c.w[i].path, prefix) == 0;
		if (!found && o->mode == SG_GIT_RESTORE) {
			/* restoring a path the revision lacks deletes it: say so, but only
			 * if the store has it at all */
			sg_attr a;
			if (sg_store_resolve(o->store, prefix, &a) < 0) {
				snprintf(err, errlen, "%s: in neither %s nor the store", prefix,
				         res->commit);
				rc = -ENOENT;
				goto out;
			}
		}
	}
	if (c.nw)
		qsort(c.w, c.nw, sizeof(*c.w), by_depth);
	if (c.nw && !(sorted = malloc(c.nw * sizeof(*sorted)))) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < c.nw; i++)
		sorted[i] = &c.w[i];
	if (c.nw)
		qsort(sorted, c.nw, sizeof(*sorted), by_path);

	/* what the store holds */
	{
		sg_attr a;
		rc = sg_store_resolve(o->store, prefix, &a);
		if (rc == 0 && *prefix && !sg_path_matches(o->local_only, prefix))
			rc = live_add(&c, prefix, &a);
		if (rc == 0 && a.type == SG_TYPE_DIR)
			rc = live_walk(&c, a.id, prefix);
		if (rc == -ENOENT || rc == -ENOTDIR)
			rc = 0;
		if (rc < 0) {
			snprintf(err, errlen, "cannot read the store: %s", strerror(-rc));
			goto out;
		}
	}
	if (o->mode == SG_GIT_RESTORE && !(pend = calloc(1, sizeof(*pend)))) {
		rc = -ENOMEM;
		goto out;
	}
	if (pend && o->mirror && o->trailer) {
		if ((rc = sg_mirror_restore_begin(o->mirror, o->trailer)) < 0)
			goto out;
		marked = 1;
	}

	/* deletions: what the store has and the revision lacks (the top of each subtree) */
	{
		const char *gone = NULL;
		for (size_t i = 0; i < c.nl; i++) {
			struct want key = {.path = c.l[i].path}, *kp = &key;
			if (gone && sg_path_under(c.l[i].path, gone))
				continue;
			if (c.nw && bsearch(&kp, sorted, c.nw, sizeof(*sorted), by_path))
				continue;
			gone = c.l[i].path;
			res->deleted++;
			if (out)
				fprintf(out, "D %s%s\n", c.l[i].path,
				        c.l[i].a.type == SG_TYPE_DIR ? "/" : "");
			if (pend && (rc = queue_put(&c, pend, NULL, c.l[i].path, err, errlen)) < 0)
				goto out;
		}
	}
	/* additions and changes, parents first */
	for (size_t i = 0; i < c.nw; i++) {
		const struct want *w = &c.w[i];
		sg_attr a;
		char why[64];

		rc = sg_store_resolve(o->store, w->path, &a);
		if (rc == 0 && !differs(&c, w, &a, why, sizeof(why))) {
			if (!w->ensure)
				res->unchanged++;
			continue;
		}
		if (rc < 0 && rc != -ENOENT && rc != -ENOTDIR) {
			snprintf(err, errlen, "%s: %s", w->path, strerror(-rc));
			goto out;
		}
		if (rc == 0) {
			res->modified++;
			if (out)
				fprintf(out, "M %s%s (%s)\n", w->path,
				        w->type == SG_TYPE_DIR ? "/" : "", why);
		} else {
			res->added++;
			if (out)
				fprintf(out, "A %s%s\n", w->path,
				        w->type == SG_TYPE_DIR ? "/" : "");
		}
		if (pend && (rc = queue_put(&c, pend, w, NULL, err, errlen)) < 0)
			goto out;
	}
	rc = pend ? flush_puts(&c, pend, err, errlen) : 0;
	if (rc == 0)
		rc = root_apply(&c, res, out, err, errlen);
	if (rc == 0 && o->mode == SG_GIT_RESTORE)
		sg_log(SG_LOG_NOTICE, DOMAIN, "SIGIL-GIT-RESTORE",
		       "restored %s%s%s from %s (%s): %llu added, %llu modified, %llu deleted",
		       *prefix ? "/" : "the tree", prefix, "", o->repo, res->commit,
		       (unsigned long long)res->added, (unsigned long long)res->modified,
		       (unsigned long long)res->deleted);
out:
	if (marked)
		sg_mirror_restore_end(o->mirror, rc < 0);
	if (pend) {
		for (size_t i = 0; i < pend->n; i++) {
			git_blob_free(pend->blobs[i]);
			free(pend->xs[i]);
			free((char *)pend->ch[i].path);
		}
		free(pend);
	}
	free(sorted);
	for (size_t i = 0; i < c.nw; i++)
		free(c.w[i].path);
	free(c.w);
	for (size_t i = 0; i < c.nl; i++)
		free(c.l[i].path);
	free(c.l);
	sg_gitmeta_clear(&c.meta);
	git_tree_free(tree);
	git_commit_free(commit);
	git_object_free(obj);
	git_repository_free(c.repo);
	sg_mirror_release(o->mirror, o->repo);
	if (tmp[0])
		nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	sg_git_shutdown();
	if (rc < 0 && !*err)
		snprintf(err, errlen, "%s", strerror(-rc));
	return rc;
}
