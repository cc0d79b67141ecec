/* mirror.c: the mirror thread. It reads the store's log after the last
 * mirrored version and turns it into commits on refs/heads/NODE of a bare
 * repository:
 *
 *   - one page of the log is one batch; the batch is cut into runs of
 *     consecutive changes (in version order) from one origin node, and of
 *     one restore or none: one commit per run, chained, so the history reads
 *     in the order the store took the changes; a commit's author is the
 *     run's origin, and a restore's commits carry its Sigil-Restore trailer;
 *   - each commit's tree is its parent's tree updated at the changed paths
 *     only (git_tree_create_updated), so its cost follows the number of
 *     changes, not the size of the tree;
 *   - new objects go to an in-memory object database and are written as one
 *     pack per batch; the branch moves only after the pack is on disk
 *     (libgit2's fsync option is on), so a crash loses at most the batch,
 *     which is redone from the version in the branch head's trailer;
 *   - small packs are folded into one when they pile up.
 *
 * All libgit2 objects are confined to this thread. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <git2.h>
#include <git2/sys/mempack.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gitsync_i.h"
#include "log.h"
#include "util.h"

#define PAGE_CHANGES 20000 /* changes per batch */
#define MAX_PACKS 32       /* fold the packs into one beyond this, when idle */
#define MAX_PACKS_BUSY 128 /* ...or beyond this, busy or not */
#define PUSH_BACKOFF_MAX_MS 60000
#define LAG_RING 4096                   /* commit times remembered for the lag */
#define SETTLE_MAX_NS (200 * 1000000LL) /* a burst after a quiet spell gathers this long */

/* One change of a batch, as the mirror keeps it. */
struct chg {
	char *path;
	uint32_t type, mode, uid, gid;
	git_oid oid; /* blob of a file or symlink */
	sg_xattr *x;
	size_t nx;
	uint64_t version, origin, hlc;
	uint64_t restore; /* the restore that wrote it (an annot id), 0: none */
};

/* One line of a commit message. */
struct op {
	const char *verb; /* added, modified, deleted, renamed */
	char *path;
	char *to; /* renamed: new path */
	git_oid oid;
	int file; /* a blob (rename candidates) */
	const struct chg *c;
};

struct sg_mirror {
	sg_store *st;
	char *path, *node, *branch, *remote, *local_only;
	unsigned interval_ms;
	sg_origin_name_fn origin_name;
	void *origin_ctx;

	git_repository *repo;
	git_odb *odb;
	git_odb_backend *mempack;
	git_oid head; /* the branch's commit; zero before the first */
	int has_head;
	git_tree *tree;  /* its tree, NULL before the first */
	sg_gitmeta meta; /* its metadata file */
	uint64_t cursor;
	uint64_t store_id;

	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond, done;
	int stop, wake;
	uint64_t flush_want; /* a flush waits for cursor >= this */
	int flush_err;

	_Atomic uint64_t v_mirrored, commits;
	_Atomic int64_t pending_since_ms; /* wall ms of the oldest unmirrored change seen, 0 */
	/* under lock: when versions committed (oldest first), for the lag */
	struct {
		uint64_t version;
		int64_t ms;
	} seen[LAG_RING];
	size_t seen_head, seen_n;
	char head_hex[41]; /* under lock */

	/* under lock: the restores whose changes are not all mirrored yet, newest
	 * first; `open` is the one writing now, `noted` the newest version the
	 * observer told of (a batch during a restore waits for its notes) */
	struct annot *annots, *open;
	uint64_t annot_seq, noted;

	int importing;         /* a new mirror's first pages: their packs make the base */
	struct pusher *pusher; /* NULL without a remote */
	char last_err[256];    /* why the last batch failed (mirror thread only) */
};

/*
 * A restore's mark. While a restore writes (sg_mirror_restore_begin/_end),
 * the observer records the versions of the changes made with sg_store_put
 * (its writes, SG_NOTE_PUT; no other code puts while the daemon runs): the
 * commits holding them, and no other change, carry its trailer. It goes once
 * the restore has ended and a batch has committed its last version.
 */
struct vrange {
	uint64_t lo, hi;
};

struct annot {
	uint64_t id;
	char *trailer; /* "Sigil-Restore: ...\n" */
	struct vrange *r;
	size_t nr, capr;
	struct annot *next;
};

struct pusher;
static void pusher_kick(struct pusher *p);

/* ---- libgit2 lifetime and errors ---- */

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static int init_count;

void sg_git_init(void)
{
	pthread_mutex_lock(&init_lock);
	if (init_count++ == 0) {
		git_libgit2_init();
		/* packs, indexes and refs reach the disk before the branch moves */
		git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1);
	}
	pthread_mutex_unlock(&init_lock);
}

void sg_git_shutdown(void)
{
	pthread_mutex_lock(&init_lock);
	if (init_count > 0 && --init_count == 0)
		git_libgit2_shutdown();
	pthread_mutex_unlock(&init_lock);
}

int sg_git_err(int rc, const char *what)
{
	const git_error *e;

	if (rc >= 0)
		return rc;
	e = git_error_last();
	sg_log(SG_LOG_DEBUG, DOMAIN, "SIGIL-GIT-ERROR", "%s: libgit2 %d: %s", what, rc,
	       e && e->message ? e->message : "no message");
	switch (rc) {
	case GIT_ENOTFOUND:
		return -ENOENT;
	case GIT_EEXISTS:
		return -EEXIST;
	case GIT_EAMBIGUOUS:
	case GIT_EINVALIDSPEC:
		return -EINVAL;
	case GIT_ELOCKED:
		return -EBUSY;
	case GIT_EUNBORNBRANCH:
		return -ENOENT;
	case GIT_ENONFASTFORWARD:
	case GIT_EMODIFIED:
		return -EAGAIN;
	default:
		if (e && e->klass == GIT_ERROR_NOMEMORY)
			return -ENOMEM;
		if (e && e->klass == GIT_ERROR_NET)
			return -ECONNREFUSED;
		return -EIO;
	}
}

int sg_git_cred_cb(git_credential **out, const char *url, const char *user, unsigned allowed,
                   void *payload)
{
	(void)url;
	(void)payload;
	if (allowed & GIT_CREDENTIAL_SSH_KEY)
		return git_credential_ssh_key_from_agent(out, user ? user : "git");
	if (allowed & GIT_CREDENTIAL_USERNAME)
		return git_credential_username_new(out, user ? user : "git");
	return GIT_PASSTHROUGH;
}

int sg_git_remote_new(git_remote **out, git_repository *repo, const char *name, const char *url)
{
	git_remote_create_options co;

	/* not git_remote_create_anonymous() or git_remote_create(): their
	 * url.*.insteadOf lookup leaks about 250 KB of pcre2 match data per call
	 * in libgit2 1.5.1 (fixed upstream by libgit2 PR #6382), and sigilfs uses
	 * the URL as written anyway */
	git_remote_create_options_init(&co, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	co.repository = repo;
	co.name = name;
	co.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF;
	if (!name)
		co.flags |= GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	return git_remote_create_with_opts(out, url, &co);
}

static const char *git_msg(void)
{
	const git_error *e = git_error_last();
	return e && e->message ? e->message : "unknown error";
}

/* ---- the branch head ---- */

/* Read "Key: value" from the trailers of a commit message. */
static int trailer_u64(const char *msg, const char *key, int hex, uint64_t *out)
{
	size_t kl = strlen(key);

	for (const char *p = msg; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ':' && p[kl + 1] == ' ') {
			char *end;
			*out = strtoull(p + kl + 2, &end, hex ? 16 : 10);
			return end != p + kl + 2 ? 0 : -EINVAL;
		}
	}
	return -ENOENT;
}

static int blob_read(git_repository *repo, const git_tree *tree, const char *path, char **out,
                     size_t *len)
{
	git_tree_entry *te = NULL;
	git_blob *blob = NULL;
	int rc = git_tree_entry_bypath(&te, tree, path);

	*out = NULL;
	*len = 0;
	if (rc < 0)
		return sg_git_err(rc, path);
	if (git_tree_entry_type(te) != GIT_OBJECT_BLOB) {
		git_tree_entry_free(te);
		return -EINVAL;
	}
	rc = git_blob_lookup(&blob, repo, git_tree_entry_id(te));
	git_tree_entry_free(te);
	if (rc < 0)
		return sg_git_err(rc, "blob lookup");
	*len = (size_t)git_blob_rawsize(blob);
	if (!(*out = malloc(*len + 1))) {
		git_blob_free(blob);
		return -ENOMEM;
	}
	memcpy(*out, git_blob_rawcontent(blob), *len);
	(*out)[*len] = '\0';
	git_blob_free(blob);
	return 0;
}

/* Tombstones up to the store's purge horizon are gone: a mirror that stopped
 * below it would never hear of those deletes, so it rebuilds its tree. */
static int behind_horizon(sg_mirror *m, uint64_t version)
{
	sg_horizon h;

	return sg_store_purge_horizon(m->st, &h) == 0 && version < h.version;
}

/* Where does the branch stand: its commit, tree, metadata and version. */
static int head_load(sg_mirror *m)
{
	git_reference *ref = NULL;
	git_commit *c = NULL;
	uint64_t sid = 0, ver = 0;
	int rc = git_reference_lookup(&ref, m->repo, m->branch);

	if (rc == GIT_ENOTFOUND)
		return 0; /* a new mirror */
	if (rc < 0)
		return sg_git_err(rc, "branch lookup");
	rc = git_reference_peel((git_object **)&c, ref, GIT_OBJECT_COMMIT);
	git_reference_free(ref);
	if (rc < 0)
		return sg_git_err(rc, "branch head");
	git_oid_cpy(&m->head, git_commit_id(c));
	m->has_head = 1;
	git_oid_tostr(m->head_hex, sizeof(m->head_hex), &m->head);
	if (trailer_u64(git_commit_message(c), "Sigil-Store", 1, &sid) == 0 && sid == m->store_id &&
	    trailer_u64(git_commit_message(c), "Sigil-Version", 0, &ver) == 0 &&
	    !behind_horizon(m, ver)) {
		char *buf;
		size_t len;
		char err[128];

		rc = git_commit_tree(&m->tree, c);
		if (rc < 0) {
			git_commit_free(c);
			return sg_git_err(rc, "head tree");
		}
		if (blob_read(m->repo, m->tree, SG_GIT_META, &buf, &len) == 0) {
			if (sg_gitmeta_parse(&m->meta, buf, len, err, sizeof(err)) < 0)
				sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-GIT-META",
				       "%s in %s: %s; rebuilding it", SG_GIT_META, m->head_hex,
				       err);
			free(buf);
		}
		m->cursor = ver;
	} else {
		/* another store (a data dir made anew): the next commit rebuilds the
		 * tree from the whole store, on top of the old history */
		sg_log(SG_LOG_NOTICE, DOMAIN, "SIGIL-GIT-REBUILD",
		       "the mirror's head %s is not from this store, or older than its purged "
		       "tombstones: rebuilding the tree",
		       m->head_hex);
		m->cursor = 0;
	}
	git_commit_free(c);
	atomic_store(&m->v_mirrored, m->cursor);
	return 0;
}

/* ---- restores' marks ---- */

static void annot_free(struct annot *a)
{
	if (a) {
		free(a->trailer);
		free(a->r);
		free(a);
	}
}

/* Record that a restore wrote `version`: ranges kept sorted and merged. */
static void annot_add(struct annot *a, uint64_t version)
{
	size_t i = a->nr;

	while (i && a->r[i - 1].lo > version)
		i--;
	/* r[i - 1] starts at or below version; r[i] above it */
	if (i && version <= a->r[i - 1].hi + 1) {
		if (version > a->r[i - 1].hi)
			a->r[i - 1].hi = version;
	} else if (i < a->nr && a->r[i].lo == version + 1) {
		a->r[i].lo = version;
	} else {
		if (a->nr == a->capr) {
			size_t cap = a->capr ? a->capr * 2 : 8;
			struct vrange *v = realloc(a->r, cap * sizeof(*v));
			if (!v)
				return; /* its commit goes without the trailer */
			a->r = v;
			a->capr = cap;
		}
		memmove(&a->r[i + 1], &a->r[i], (a->nr - i) * sizeof(*a->r));
		a->r[i].lo = a->r[i].hi = version;
		a->nr++;
		return;
	}
	/* the range that grew may now touch its neighbour */
	if (i && i < a->nr && a->r[i - 1].hi + 1 >= a->r[i].lo) {
		a->r[i - 1].hi = a->r[i].hi > a->r[i - 1].hi ? a->r[i].hi : a->r[i - 1].hi;
		memmove(&a->r[i], &a->r[i + 1], (a->nr - i - 1) * sizeof(*a->r));
		a->nr--;
	}
}

/* The restore that wrote `version`, 0: none. Under m->lock. */
static uint64_t annot_of(const sg_mirror *m, uint64_t version)
{
	for (const struct annot *a = m->annots; a; a = a->next) {
		size_t lo = 0, hi = a->nr;
		while (lo < hi) { /* the first range ending at or above version */
			size_t mid = lo + (hi - lo) / 2;
			if (a->r[mid].hi < version)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < a->nr && a->r[lo].lo <= version)
			return a->id;
	}
	return 0;
}

/* A copy of restore id's trailer, or NULL. */
static char *annot_trailer(sg_mirror *m, uint64_t id)
{
	char *t = NULL;

	pthread_mutex_lock(&m->lock);
	for (struct annot *a = m->annots; a; a = a->next)
		if (a->id == id) {
			t = strdup(a->trailer);
			break;
		}
	pthread_mutex_unlock(&m->lock);
	return t;
}

/* Forget the marks of ended restores that have nothing left to mirror. Under m->lock. */
static void annots_prune(sg_mirror *m)
{
	struct annot **pp = &m->annots;

	while (*pp) {
		struct annot *a = *pp;
		if (a != m->open && (!a->nr || a->r[a->nr - 1].hi <= m->cursor)) {
			*pp = a->next;
			annot_free(a);
		} else {
			pp = &a->next;
		}
	}
}

int sg_mirror_restore_begin(sg_mirror *m, const char *trailer)
{
	struct annot *a;

	if (!m)
		return 0;
	if (!(a = calloc(1, sizeof(*a))) || !(a->trailer = malloc(strlen(trailer) + 2))) {
		free(a);
		return -ENOMEM;
	}
	sprintf(a->trailer, "%s\n", trailer);
	pthread_mutex_lock(&m->lock);
	a->id = ++m->annot_seq;
	a->next = m->annots;
	m->annots = a;
	m->open = a; /* one restore at a time: an earlier one has ended */
	pthread_mutex_unlock(&m->lock);
	return 0;
}

void sg_mirror_restore_end(sg_mirror *m, int failed)
{
	struct annot *a;

	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	a = m->open;
	m->open = NULL;
	if (a && failed && a->nr) {
		static const char more[] = " (failed part-way)\n";
		size_t n = strlen(a->trailer);
		char *t = realloc(a->trailer, n + sizeof(more));
		if (t) {
			memcpy(t + n - 1, more, sizeof(more));
			a->trailer = t;
		}
	}
	annots_prune(m); /* one that wrote nothing goes now */
	pthread_mutex_unlock(&m->lock);
}

/* ---- a batch ---- */

struct batch {
	sg_mirror *m;
	struct chg *v;
	size_t n, cap;
	uint64_t last; /* the page's last version */
	uint64_t upto; /* a restore writes: read only what the observer told of */
	int stopped;   /* ...and the page stopped there */
	size_t seen;
	int err;
};

static int collect(void *ctx, const sg_change *c)
{
	struct batch *b = ctx;
	struct chg *k;

	if (c->version > b->upto) {
		b->stopped = 1;
		return 1;
	}
	b->last = c->version;
	b->seen++;
	if (!*c->path || sg_path_matches(b->m->local_only, c->path))
		return 0;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		struct chg *v = realloc(b->v, cap * sizeof(*v));
		if (!v)
			goto oom;
		b->v = v;
		b->cap = cap;
	}
	k = &b->v[b->n];
	memset(k, 0, sizeof(*k));
	if (!(k->path = strdup(c->path)))
		goto oom;
	b->n++;
	k->type = c->type;
	k->mode = c->mode;
	k->uid = c->uid;
	k->gid = c->gid;
	k->version = c->version;
	k->origin = c->stamp.origin;
	k->hlc = c->stamp.hlc;
	if (c->type == SG_TYPE_FILE || c->type == SG_TYPE_SYMLINK) {
		int rc = git_blob_create_from_buffer(&k->oid, b->m->repo, c->data ? c->data : "",
		                                     c->len);
		if (rc < 0) {
			b->err = sg_git_err(rc, "blob");
			return 1;
		}
	}
	if (c->nxattrs) {
		if (!(k->x = calloc(c->nxattrs, sizeof(*k->x))))
			goto oom;
		for (size_t i = 0; i < c->nxattrs; i++) {
			char *name = strdup(c->xattrs[i].name);
			void *val = malloc(c->xattrs[i].len ? c->xattrs[i].len : 1);
			if (!name || !val) {
				free(name);
				free(val);
				goto oom;
			}
			if (c->xattrs[i].len)
				memcpy(val, c->xattrs[i].value, c->xattrs[i].len);
			k->x[i].name = name;
			k->x[i].value = val;
			k->x[i].len = c->xattrs[i].len;
			k->nx++;
		}
	}
	return 0;
oom:
	b->err = -ENOMEM;
	return 1;
}

static void chg_free(struct chg *k)
{
	for (size_t i = 0; i < k->nx; i++) {
		free((char *)k->x[i].name);
		free((void *)k->x[i].value);
	}
	free(k->x);
	free(k->path);
}

static void batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		chg_free(&b->v[i]);
	free(b->v);
}

static int by_path_version(const void *a, const void *b)
{
	const struct chg *x = a, *y = b;
	int c = strcmp(x->path, y->path);
	if (c)
		return c;
	return x->version < y->version ? -1 : x->version > y->version;
}

/* ---- one commit ---- */

struct commit_ctx {
	sg_mirror *m;
	git_tree_update *rm, *up;
	size_t nrm, nup, caprm, capup;
	struct op *ops;
	size_t nops, capops;
	int meta_changed;
	int64_t newest_ms;
};

static int push_update(git_tree_update **v, size_t *n, size_t *cap, git_tree_update_t action,
                       const char *path, const git_oid *oid, git_filemode_t mode)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		git_tree_update *nv = realloc(*v, c * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = c;
	}
	memset(&(*v)[*n], 0, sizeof(**v));
	(*v)[*n].action = action;
	(*v)[*n].path = path;
	if (oid)
		git_oid_cpy(&(*v)[*n].id, oid);
	(*v)[*n].filemode = mode;
	(*n)++;
	return 0;
}

static int op_add(struct commit_ctx *cc, const char *verb, const char *path, const git_oid *oid,
                  int file, const struct chg *c)
{
	struct op *o;

	if (cc->nops == cc->capops) {
		size_t cap = cc->capops ? cc->capops * 2 : 64;
		struct op *v = realloc(cc->ops, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		cc->ops = v;
		cc->capops = cap;
	}
	o = &cc->ops[cc->nops];
	memset(o, 0, sizeof(*o));
	if (!(o->path = strdup(path)))
		return -ENOMEM;
	cc->nops++;
	o->verb = verb;
	if (oid)
		git_oid_cpy(&o->oid, oid);
	o->file = file;
	o->c = c;
	return 0;
}

/* List the files of a subtree that goes away, as deletions (rename candidates). */
struct walk_del {
	struct commit_ctx *cc;
	const char *base;
	const struct chg *c;
	int err;
};

static int walk_del_cb(const char *root, const git_tree_entry *e, void *payload)
{
	struct walk_del *w = payload;
	char path[SG_PATH_MAX + 2];

	if (git_tree_entry_type(e) != GIT_OBJECT_BLOB)
		return 0;
	snprintf(path, sizeof(path), "%s/%s%s", w->base, root, git_tree_entry_name(e));
	if (op_add(w->cc, "deleted", path, git_tree_entry_id(e), 1, w->c) < 0) {
		w->err = -ENOMEM;
		return -1;
	}
	return 0;
}

/* Each directory a deletion takes away is a line of the message. */
struct dir_gone {
	struct commit_ctx *cc;
	const struct chg *c;
	int err;
};

static void dir_gone_cb(void *ctx, const struct sg_gitmeta_ent *e)
{
	struct dir_gone *dg = ctx;
	char p[SG_PATH_MAX + 2];

	if (dg->err || !e->attrs || e->type != SG_TYPE_DIR)
		return;
	snprintf(p, sizeof(p), "%s/", e->path);
	if (op_add(dg->cc, "deleted", p, NULL, 0, dg->c) < 0)
		dg->err = -ENOMEM;
}

/* The effect of one change on the tree being built (cur) and on the metadata. */
static int plan(struct commit_ctx *cc, git_tree *cur, const struct chg *c)
{
	sg_mirror *m = cc->m;
	git_tree_entry *te = NULL;
	int exists = cur ? git_tree_entry_bypath(&te, cur, c->path) == 0 : 0;
	int was_tree = exists && git_tree_entry_type(te) == GIT_OBJECT_TREE;
	int was_meta_dir = 0;
	int rc = 0;

	{
		const struct sg_gitmeta_ent *me = sg_gitmeta_get(&m->meta, c->path);
		was_meta_dir = me && me->attrs && me->type == SG_TYPE_DIR;
	}
	if ((int64_t)(c->hlc >> 16) > cc->newest_ms)
		cc->newest_ms = (int64_t)(c->hlc >> 16);

	if (c->type == SG_TYPE_TOMBSTONE) {
		struct dir_gone dg = {cc, c, 0};
		int mc = sg_gitmeta_remove(&m->meta, c->path, 1, dir_gone_cb, &dg);
		cc->meta_changed |= mc;
		if (dg.err) {
			rc = dg.err;
			goto out;
		}
		if (exists) {
			rc = push_update(&cc->rm, &cc->nrm, &cc->caprm, GIT_TREE_UPDATE_REMOVE,
			                 c->path, NULL, 0);
			if (!rc && was_tree) {
				git_tree *sub = NULL;
				struct walk_del w = {cc, c->path, c, 0};
				if (git_tree_lookup(&sub, m->repo, git_tree_entry_id(te)) == 0) {
					git_tree_walk(sub, GIT_TREEWALK_PRE, walk_del_cb, &w);
					git_tree_free(sub);
				}
				rc = w.err;
			} else if (!rc) {
				rc = op_add(cc, "deleted", c->path, git_tree_entry_id(te), 1, c);
			}
		}
		goto out;
	}
	if (c->type == SG_TYPE_DIR) {
		int mc;
		if (exists && !was_tree) /* a file became a directory */
			rc = push_update(&cc->rm, &cc->nrm, &cc->caprm, GIT_TREE_UPDATE_REMOVE,
			                 c->path, NULL, 0);
		if (rc)
			goto out;
		mc = sg_gitmeta_set(&m->meta, c->path, c->type, c->mode, c->uid, c->gid, c->x,
		                    c->nx);
		if (mc < 0) {
			rc = mc;
			goto out;
		}
		cc->meta_changed |= mc;
		if (mc) {
			char p[SG_PATH_MAX + 2];
			snprintf(p, sizeof(p), "%s/", c->path);
			rc = op_add(cc, was_meta_dir || was_tree ? "modified" : "added", p, NULL, 0,
			            c);
		}
		goto out;
	}
	/* a file or a symlink */
	{
		git_filemode_t fm = c->type == SG_TYPE_SYMLINK ? GIT_FILEMODE_LINK
		                    : (c->mode & 0111)         ? GIT_FILEMODE_BLOB_EXECUTABLE
		                                               : GIT_FILEMODE_BLOB;
		int same = exists && !was_tree && git_tree_entry_filemode(te) == fm &&
		           git_oid_equal(git_tree_entry_id(te), &c->oid);
		int mc;

		if (was_tree) { /* a directory became a file */
			rc = push_update(&cc->rm, &cc->nrm, &cc->caprm, GIT_TREE_UPDATE_REMOVE,
			                 c->path, NULL, 0);
			if (rc)
				goto out;
			cc->meta_changed |= sg_gitmeta_remove(&m->meta, c->path, 1, NULL, NULL);
		}
		mc = sg_gitmeta_set(&m->meta, c->path, c->type, c->mode, c->uid, c->gid, c->x,
		                    c->nx);
		if (mc < 0) {
			rc = mc;
			goto out;
		}
		cc->meta_changed |= mc;
		if (!same) {
			rc = push_update(&cc->up, &cc->nup, &cc->capup, GIT_TREE_UPDATE_UPSERT,
			                 c->path, &c->oid, fm);
			if (!rc)
				rc = op_add(cc, exists && !was_tree ? "modified" : "added", c->path,
				            &c->oid, 1, c);
		} else if (mc) {
			rc = op_add(cc, "modified", c->path, &c->oid, 0, c);
		}
	}
out:
	git_tree_entry_free(te);
	return rc;
}

static int by_op_path(const void *a, const void *b);

static int by_update_path(const void *a, const void *b)
{
	return strcmp(((const git_tree_update *)a)->path, ((const git_tree_update *)b)->path);
}

/* A removal under another removal (rm -rf: the children's tombstones and the
 * directory's) is done by the outer one; libgit2 wants each path once. */
static void rm_fold(struct commit_ctx *cc)
{
	size_t w = 0;

	if (cc->nrm)
		qsort(cc->rm, cc->nrm, sizeof(*cc->rm), by_update_path);
	for (size_t i = 0; i < cc->nrm; i++) {
		if (w && (strcmp(cc->rm[i].path, cc->rm[w - 1].path) == 0 ||
		          sg_path_under(cc->rm[i].path, cc->rm[w - 1].path)))
			continue;
		cc->rm[w++] = cc->rm[i];
	}
	cc->nrm = w;
	/* the same for the lines of the message: one "deleted" per path */
	if (cc->nops)
		qsort(cc->ops, cc->nops, sizeof(*cc->ops), by_op_path);
	for (size_t i = 1; i < cc->nops; i++) {
		struct op *a = &cc->ops[i - 1], *b = &cc->ops[i];
		if (a->verb && b->verb && strcmp(a->verb, b->verb) == 0 &&
		    strcmp(a->path, b->path) == 0)
			a->verb = NULL;
	}
}

/* Pair a deleted file with an added one of the same content: a rename. */
static void find_renames(struct commit_ctx *cc)
{
	for (size_t i = 0; i < cc->nops; i++) {
		struct op *d = &cc->ops[i];
		if (!d->file || !d->verb || strcmp(d->verb, "deleted") != 0)
			continue;
		for (size_t j = 0; j < cc->nops; j++) {
			struct op *a = &cc->ops[j];
			if (!a->file || !a->verb || strcmp(a->verb, "added") != 0 ||
			    !git_oid_equal(&a->oid, &d->oid))
				continue;
			d->verb = "renamed";
			d->to = a->path;
			a->path = NULL;
			a->verb = NULL; /* folded into the rename */
			if (a->c && (!d->c || a->c->version > d->c->version))
				d->c = a->c;
			break;
		}
	}
}

static void origin_label(sg_mirror *m, uint64_t origin, char *buf, size_t len)
{
	if (!m->origin_name || m->origin_name(m->origin_ctx, origin, buf, len) < 0 || !*buf)
		snprintf(buf, len, "node-%016" PRIx64, origin);
}

static void iso_ms(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	char day[32];

	gmtime_r(&t, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%.20s.%03dZ", day, (int)(ms % 1000));
}

static int by_op_path(const void *a, const void *b)
{
	const struct op *x = a, *y = b;
	if (!x->verb || !y->verb)
		return !x->verb - !y->verb;
	return strcmp(x->path, y->path);
}

/* The message: a summary line, one line per path, the trailers. */
static char *message(sg_mirror *m, struct commit_ctx *cc, uint64_t origin, uint64_t first,
                     uint64_t last, uint64_t upto, const char *trailer)
{
	char *buf = NULL;
	size_t len = 0, live = 0;
	FILE *f = open_memstream(&buf, &len);
	char who[80];
	const struct op *one = NULL;

	if (!f)
		return NULL;
	if (cc->nops)
		qsort(cc->ops, cc->nops, sizeof(*cc->ops), by_op_path);
	for (size_t i = 0; i < cc->nops; i++)
		if (cc->ops[i].verb) {
			live++;
			one = one ? one : &cc->ops[i];
		}
	origin_label(m, origin, who, sizeof(who));
	if (live == 1 && one->to)
		fprintf(f, "renamed %s -> %s", one->path, one->to);
	else if (live == 1)
		fprintf(f, "%s %s", one->verb, one->path);
	else if (live > 1)
		fprintf(f, "%zu paths changed, first %s", live, one->path);
	else
		fprintf(f, "metadata changed");
	fprintf(f, " (on %s)\n\n", who);
	for (size_t i = 0; i < cc->nops; i++) {
		const struct op *o = &cc->ops[i];
		char when[40] = "?";
		if (!o->verb)
			continue;
		if (o->c)
			iso_ms((int64_t)(o->c->hlc >> 16), when, sizeof(when));
		if (o->to)
			fprintf(f, "%-8s %s -> %s  (%s, %s)\n", o->verb, o->path, o->to, who, when);
		else
			fprintf(f, "%-8s %s  (%s, %s)\n", o->verb, o->path, who, when);
	}
	fprintf(f, "\n%s", trailer ? trailer : "");
	fprintf(f,
	        "Sigil-Origin: %s\nSigil-Versions: %" PRIu64 "..%" PRIu64
	        "\nSigil-Store: %016" PRIx64 "\nSigil-Version: %" PRIu64 "\n",
	        who, first, last, m->store_id, upto);
	fclose(f);
	return buf;
}

static void commit_ctx_free(struct commit_ctx *cc)
{
	for (size_t i = 0; i < cc->nops; i++) {
		free(cc->ops[i].path);
		free(cc->ops[i].to);
	}
	free(cc->ops);
	free(cc->rm);
	free(cc->up);
	memset(cc, 0, sizeof(*cc));
}

/* The empty tree, the baseline of a first commit. */
static int empty_tree(git_repository *repo, git_tree **out)
{
	git_treebuilder *tb = NULL;
	git_oid oid;
	int rc = git_treebuilder_new(&tb, repo, NULL);

	if (rc == 0)
		rc = git_treebuilder_write(&oid, tb);
	git_treebuilder_free(tb);
	if (rc == 0)
		rc = git_tree_lookup(out, repo, &oid);
	return sg_git_err(rc, "empty tree");
}

/* What a batch builds before the branch moves. */
struct build {
	git_tree *tree; /* current tree (owned) */
	git_oid head;   /* current commit */
	int has_head;
	git_packbuilder *pb; /* the batch's new objects */
	int made;            /* commits made */
};

/* Put into the pack every tree on the way from the root to each changed path. */
static int pack_paths(struct build *bd, const git_tree_update *u, size_t n)
{
	char path[SG_PATH_MAX + 1];
	int rc;

	if ((rc = git_packbuilder_insert(bd->pb, git_tree_id(bd->tree), NULL)) < 0)
		return sg_git_err(rc, "pack insert");
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s", u[i].path);
		for (char *s = strrchr(path, '/'); s; s = strrchr(path, '/')) {
			git_tree_entry *te = NULL;
			*s = '\0';
			if (git_tree_entry_bypath(&te, bd->tree, path) < 0)
				continue; /* removed with its parent */
			if (git_tree_entry_type(te) == GIT_OBJECT_TREE)
				rc = git_packbuilder_insert(bd->pb, git_tree_entry_id(te), NULL);
			git_tree_entry_free(te);
			if (rc < 0)
				return sg_git_err(rc, "pack insert");
		}
		if (u[i].action == GIT_TREE_UPDATE_UPSERT &&
		    (rc = git_packbuilder_insert(bd->pb, &u[i].id, NULL)) < 0)
			return sg_git_err(rc, "pack insert");
	}
	return 0;
}

/* Apply one run's changes (one origin's, of one restore or none; one per
 * path) to the tree and commit them, as holding every version up to upto. */
static int commit_group(sg_mirror *m, struct build *bd, struct chg **v, size_t n, uint64_t upto)
{
	struct commit_ctx cc = {.m = m};
	git_signature *author = NULL, *committer = NULL;
	git_commit *parent = NULL;
	git_tree *next = NULL;
	git_oid oid, coid;
	char *msg = NULL, *trailer = NULL, who[80], email[100];
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++)
		rc = plan(&cc, bd->tree, v[i]);
	if (rc)
		goto out;
	if (cc.meta_changed) {
		char *text;
		size_t len;
		git_oid moid;
		if ((rc = sg_gitmeta_serialize(&m->meta, &text, &len)) < 0)
			goto out;
		rc = git_blob_create_from_buffer(&moid, m->repo, text, len);
		free(text);
		if (rc < 0) {
			rc = sg_git_err(rc, "metadata blob");
			goto out;
		}
		if ((rc = push_update(&cc.up, &cc.nup, &cc.capup, GIT_TREE_UPDATE_UPSERT,
		                      SG_GIT_META, &moid, GIT_FILEMODE_BLOB)) < 0)
			goto out;
	}
	if (!cc.nrm && !cc.nup)
		goto out; /* nothing Git can see changed */
	rm_fold(&cc);
	find_renames(&cc);
	if (cc.nrm) {
		rc = git_tree_create_updated(&oid, m->repo, bd->tree, cc.nrm, cc.rm);
		if (rc < 0 || (rc = git_tree_lookup(&next, m->repo, &oid)) < 0) {
			rc = sg_git_err(rc, "tree update");
			goto out;
		}
		git_tree_free(bd->tree);
		bd->tree = next;
		next = NULL;
	}
	if (cc.nup) {
		rc = git_tree_create_updated(&oid, m->repo, bd->tree, cc.nup, cc.up);
		if (rc < 0 || (rc = git_tree_lookup(&next, m->repo, &oid)) < 0) {
			rc = sg_git_err(rc, "tree update");
			goto out;
		}
		git_tree_free(bd->tree);
		bd->tree = next;
		next = NULL;
	}
	if ((rc = pack_paths(bd, cc.up, cc.nup)) < 0 || (rc = pack_paths(bd, cc.rm, cc.nrm)) < 0)
		goto out;

	origin_label(m, v[0]->origin, who, sizeof(who));
	snprintf(email, sizeof(email), "%s@sigil", who);
	rc = git_signature_new(&author, who, email, (git_time_t)(cc.newest_ms / 1000), 0);
	if (rc == 0) {
		snprintf(email, sizeof(email), "%s@sigil", m->node);
		rc = git_signature_now(&committer, m->node, email);
	}
	if (rc < 0) {
		rc = sg_git_err(rc, "signature");
		goto out;
	}
	{
		uint64_t first = UINT64_MAX, last = 0;
		for (size_t i = 0; i < n; i++) {
			first = v[i]->version < first ? v[i]->version : first;
			last = v[i]->version > last ? v[i]->version : last;
		}
		if (v[0]->restore && !(trailer = annot_trailer(m, v[0]->restore))) {
			rc = -ENOMEM;
			goto out;
		}
		if (!(msg = message(m, &cc, v[0]->origin, first, last, upto, trailer))) {
			rc = -ENOMEM;
			goto out;
		}
	}
	if (bd->has_head && (rc = git_commit_lookup(&parent, m->repo, &bd->head)) < 0) {
		rc = sg_git_err(rc, "parent");
		goto out;
	}
	rc = git_commit_create(&coid, m->repo, NULL, author, committer, "UTF-8", msg, bd->tree,
	                       parent ? 1 : 0, (const git_commit **)&parent);
	if (rc < 0) {
		rc = sg_git_err(rc, "commit");
		goto out;
	}
	if ((rc = git_packbuilder_insert(bd->pb, &coid, NULL)) < 0) {
		rc = sg_git_err(rc, "pack insert");
		goto out;
	}
	git_oid_cpy(&bd->head, &coid);
	bd->has_head = 1;
	bd->made++;
out:
	git_commit_free(parent);
	git_signature_free(author);
	git_signature_free(committer);
	free(msg);
	free(trailer);
	commit_ctx_free(&cc);
	return rc;
}

static int pack_count(const char *repo_path)
{
	char dir[4200];
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(dir, sizeof(dir), "%s/objects/pack", repo_path);
	if (!(d = opendir(dir)))
		return 0;
	while ((de = readdir(d)))
		if (strlen(de->d_name) > 5 &&
		    strcmp(de->d_name + strlen(de->d_name) - 5, ".pack") == 0)
			n++;
	closedir(d);
	return n;
}

static int repo_open(sg_mirror *m);

static int reopen(sg_mirror *m)
{
	int rc;

	git_tree_free(m->tree);
	m->tree = NULL;
	git_odb_free(m->odb);
	m->odb = NULL;
	m->mempack = NULL;
	git_repository_free(m->repo);
	m->repo = NULL;
	if ((rc = repo_open(m)) < 0)
		return rc;
	if (m->has_head) {
		git_commit *c = NULL;
		rc = git_commit_lookup(&c, m->repo, &m->head);
		if (rc == 0)
			rc = git_commit_tree(&m->tree, c);
		git_commit_free(c);
		if (rc < 0)
			return sg_git_err(rc, "reopen");
	}
	return 0;
}

/*
 * Packs: each batch writes a small pack. When more than MAX_PACKS pile up,
 * they are folded: everything the branch reaches that the base commit does
 * not goes into one pack (the base's own tree is only walked, not packed),
 * and the small packs go. The base pack, which holds everything up to the
 * base commit, is rebuilt (a full repack) only when the fold has grown to
 * half its size, so folding costs the changes since the base, not the tree.
 * DIR/sigil-base names the base: "<commit> <pack name> <objects>".
 */
#define BASE_PACKS 64

struct base {
	git_oid commit;
	char pack[BASE_PACKS][56]; /* "pack-" + 40 hex digits */
	size_t npacks;
	uint64_t objects;
};

/* DIR/sigil-base: "<commit> <objects> <pack> [<pack>...]" */
static int base_read(sg_mirror *m, struct base *b)
{
	char path[4200], hex[64], word[100], file[4400];
	unsigned long long n;
	FILE *f;
	int ok;

	memset(b, 0, sizeof(*b));
	snprintf(path, sizeof(path), "%s/sigil-base", m->path);
	if (!(f = fopen(path, "r")))
		return -ENOENT;
	ok = fscanf(f, "%63s %llu", hex, &n) == 2 && git_oid_fromstr(&b->commit, hex) == 0;
	while (ok && b->npacks < BASE_PACKS && fscanf(f, "%99s", word) == 1) {
		if (strncmp(word, "pack-", 5) != 0 || strlen(word) >= sizeof(b->pack[0])) {
			ok = 0;
			break;
		}
		snprintf(file, sizeof(file), "%s/objects/pack/%s.pack", m->path, word);
		if (access(file, R_OK) != 0)
			ok = 0; /* repacked by someone else: start a new base */
		snprintf(b->pack[b->npacks++], sizeof(b->pack[0]), "%s", word);
	}
	fclose(f);
	if (!ok || !b->npacks)
		return -EINVAL;
	b->objects = n;
	return 0;
}

static int base_write(sg_mirror *m, const struct base *b)
{
	char path[4200], tmp[4300], hex[GIT_OID_HEXSZ + 1];
	FILE *f;

	snprintf(path, sizeof(path), "%s/sigil-base", m->path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	git_oid_tostr(hex, sizeof(hex), &b->commit);
	if (!(f = fopen(tmp, "w")))
		return -errno;
	fprintf(f, "%s %llu", hex, (unsigned long long)b->objects);
	for (size_t i = 0; i < b->npacks; i++)
		fprintf(f, " %s", b->pack[i]);
	fputc('\n', f);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	return rename(tmp, path) == 0 ? 0 : -errno;
}

/* Remove every pack but the base's and `keep` (names without extension). */
static void packs_prune(sg_mirror *m, const struct base *b, const char *keep)
{
	char dir[4200];
	DIR *d;
	struct dirent *de;

	snprintf(dir, sizeof(dir), "%s/objects/pack", m->path);
	if (!(d = opendir(dir)))
		return;
	while ((de = readdir(d))) {
		char p[4500];
		int kept = 0;
		size_t n = strlen(keep);

		if (strncmp(de->d_name, "pack-", 5) != 0)
			continue;
		if (strncmp(de->d_name, keep, n) == 0 && de->d_name[n] == '.')
			kept = 1;
		for (size_t i = 0; b && !kept && i < b->npacks; i++) {
			n = strlen(b->pack[i]);
			kept = strncmp(de->d_name, b->pack[i], n) == 0 && de->d_name[n] == '.';
		}
		if (kept)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	closedir(d);
}

static int pack_since(sg_mirror *m, const git_oid *hide, char *name, size_t len, uint64_t *objects)
{
	git_packbuilder *pb = NULL;
	git_revwalk *w = NULL;
	int rc;

	if ((rc = git_packbuilder_new(&pb, m->repo)) < 0 ||
	    (rc = git_revwalk_new(&w, m->repo)) < 0 || (rc = git_revwalk_push(w, &m->head)) < 0 ||
	    (hide && (rc = git_revwalk_hide(w, hide)) < 0) ||
	    (rc = git_packbuilder_insert_walk(pb, w)) < 0) {
		rc = sg_git_err(rc, "repack");
		goto out;
	}
	*objects = git_packbuilder_object_count(pb);
	if ((rc = git_packbuilder_write(pb, NULL, 0, NULL, NULL)) < 0) {
		rc = sg_git_err(rc, "repack write");
		goto out;
	}
	snprintf(name, len, "pack-%s", git_oid_tostr_s(git_packbuilder_hash(pb)));
out:
	git_revwalk_free(w);
	git_packbuilder_free(pb);
	return rc;
}

static int repack(sg_mirror *m)
{
	struct base b;
	char name[100];
	uint64_t objects = 0;
	int rc, have = base_read(m, &b) == 0;
	int64_t t0 = sg_mono_ns();

	if (have && (rc = pack_since(m, &b.commit, name, sizeof(name), &objects)) == 0 &&
	    objects <= b.objects / 2 + 1000) {
		packs_prune(m, &b, name);
		sg_log(SG_LOG_INFO, DOMAIN, "SIGIL-GIT-FOLD",
		       "folded the mirror's small packs: %" PRIu64
		       " objects since the base, %" PRId64 " ms",
		       objects, (sg_mono_ns() - t0) / 1000000);
		return reopen(m);
	}
	/* no base yet, or the fold outgrew it: a full repack makes the new base */
	if ((rc = pack_since(m, NULL, name, sizeof(name), &objects)) < 0)
		return rc;
	sg_log(SG_LOG_INFO, DOMAIN, "SIGIL-GIT-REPACK",
	       "repacked the mirror: %" PRIu64 " objects in one pack (base had %" PRIu64
	       "), %" PRId64 " ms",
	       objects, have ? b.objects : 0, (sg_mono_ns() - t0) / 1000000);
	memset(&b, 0, sizeof(b));
	git_oid_cpy(&b.commit, &m->head);
	snprintf(b.pack[0], sizeof(b.pack[0]), "%.55s", name);
	b.npacks = 1;
	b.objects = objects;
	if ((rc = base_write(m, &b)) < 0)
		return rc; /* the old packs stay: nothing is lost */
	packs_prune(m, &b, name);
	/* the odb still holds the removed packs: open the repository afresh */
	return reopen(m);
}

static int meta_reload(sg_mirror *m)
{
	char *buf = NULL, err[128];
	size_t len;
	int rc = 0;

	sg_gitmeta_clear(&m->meta);
	if (m->tree && blob_read(m->repo, m->tree, SG_GIT_META, &buf, &len) == 0)
		rc = sg_gitmeta_parse(&m->meta, buf, len, err, sizeof(err));
	free(buf);
	return rc;
}

static int by_path_version_p(const void *a, const void *b)
{
	return by_path_version(*(const struct chg *const *)a, *(const struct chg *const *)b);
}

/* Mirror one page of the log. 1: more to do, 0: caught up, or -errno. */
static int batch(sg_mirror *m)
{
	struct batch b = {.m = m, .upto = UINT64_MAX};
	struct build bd = {0};
	struct chg **run = NULL;
	int rc;

	if (!m->repo && (rc = reopen(m)) < 0)
		return rc;
	pthread_mutex_lock(&m->lock);
	if (m->open) /* a restore writes: its versions are known once noted */
		b.upto = m->noted;
	pthread_mutex_unlock(&m->lock);
	rc = sg_store_changes_after(m->st, m->cursor, PAGE_CHANGES, collect, &b);
	if (b.err)
		rc = b.err;
	if (rc < 0)
		goto out;
	if (!b.seen) {
		if (b.stopped)
			usleep(1000); /* the observer's note is on its way */
		rc = 0;
		goto out;
	}
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < b.n; i++)
		b.v[i].restore = annot_of(m, b.v[i].version);
	pthread_mutex_unlock(&m->lock);
	if (b.n) {
		if (m->tree) {
			if ((rc = git_tree_dup(&bd.tree, m->tree)) < 0) {
				rc = sg_git_err(rc, "tree");
				goto out;
			}
		} else if ((rc = empty_tree(m->repo, &bd.tree)) < 0) {
			goto out;
		}
		git_oid_cpy(&bd.head, &m->head);
		bd.has_head = m->has_head;
		if ((rc = git_packbuilder_new(&bd.pb, m->repo)) < 0) {
			rc = sg_git_err(rc, "packbuilder");
			goto out;
		}
		git_packbuilder_set_threads(bd.pb, 1);
		if (!(run = malloc(b.n * sizeof(*run)))) {
			rc = -ENOMEM;
			goto out;
		}
	}
	/* one commit per run of changes (in version order) from one origin and
	 * one restore or none, each with the latest state of its paths */
	for (size_t i = 0, j; i < b.n; i = j) {
		size_t k = 0, nr = 0;
		for (j = i + 1;
		     j < b.n && b.v[j].origin == b.v[i].origin && b.v[j].restore == b.v[i].restore;
		     j++)
			;
		for (size_t x = i; x < j; x++)
			run[k++] = &b.v[x];
		qsort(run, k, sizeof(*run), by_path_version_p);
		for (size_t x = 0; x < k; x++)
			if (x + 1 == k || strcmp(run[x]->path, run[x + 1]->path) != 0)
				run[nr++] = run[x];
		/* the last run holds the page's trailing local-only changes too */
		rc = commit_group(m, &bd, run, nr, j == b.n ? b.last : b.v[j - 1].version);
		if (rc < 0)
			goto out;
	}
	if (bd.made) {
		if ((rc = git_packbuilder_write(bd.pb, NULL, 0, NULL, NULL)) < 0) {
			rc = sg_git_err(rc, "pack write");
			goto out;
		}
		if (!m->has_head || m->importing) {
			/* the packs of a new mirror's first import, page after page,
			 * hold all it has: they are the base that folds leave alone */
			struct base base;
			if (!m->has_head || base_read(m, &base) < 0)
				memset(&base, 0, sizeof(base));
			if (base.npacks < BASE_PACKS) {
				git_oid_cpy(&base.commit, &bd.head);
				snprintf(base.pack[base.npacks++], sizeof(base.pack[0]), "pack-%s",
				         git_oid_tostr_s(git_packbuilder_hash(bd.pb)));
				base.objects += git_packbuilder_object_count(bd.pb);
				base_write(m, &base);
			}
			m->importing = 1;
		}
		git_odb_refresh(m->odb);
		{
			git_reference *ref = NULL;
			char log[64];
			snprintf(log, sizeof(log), "sigil: mirror up to version %" PRIu64, b.last);
			rc = git_reference_create(&ref, m->repo, m->branch, &bd.head, 1, log);
			git_reference_free(ref);
			if (rc < 0) {
				rc = sg_git_err(rc, "branch update");
				goto out;
			}
		}
		git_oid_cpy(&m->head, &bd.head);
		m->has_head = 1;
		git_tree_free(m->tree);
		m->tree = bd.tree;
		bd.tree = NULL;
		pthread_mutex_lock(&m->lock);
		git_oid_tostr(m->head_hex, sizeof(m->head_hex), &m->head);
		pthread_mutex_unlock(&m->lock);
		atomic_fetch_add(&m->commits, (uint64_t)bd.made);
		pusher_kick(m->pusher);
	}
	git_mempack_reset(m->mempack);
	pthread_mutex_lock(&m->lock);
	m->cursor = b.last;
	annots_prune(m);
	while (m->seen_n && m->seen[m->seen_head].version <= m->cursor) {
		m->seen_head = (m->seen_head + 1) % LAG_RING;
		m->seen_n--;
	}
	pthread_mutex_unlock(&m->lock);
	atomic_store(&m->v_mirrored, b.last);
	/* fold when idle, or when the packs pile up even under a steady load */
	if (bd.made && !m->importing &&
	    ((b.seen < PAGE_CHANGES && sg_store_version(m->st) == b.last &&
	      pack_count(m->path) > MAX_PACKS) ||
	     pack_count(m->path) > MAX_PACKS_BUSY) &&
	    repack(m) < 0)
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-GIT-REPACK",
		       "cannot fold the mirror's packs: %s", git_msg());
	rc = b.seen == PAGE_CHANGES ? 1 : 0;
	if (!rc)
		m->importing = 0; /* caught up: the import is over */
out:
	if (rc < 0) {
		/* what libgit2 said, before the cleanup below overwrites it */
		snprintf(m->last_err, sizeof(m->last_err), "%s",
		         git_error_last() && git_error_last()->message ? git_error_last()->message
		                                                       : strerror(-rc));
		/* nothing moved: forget the batch's objects and metadata, redo later */
		git_mempack_reset(m->mempack);
		if (meta_reload(m) < 0)
			sg_gitmeta_clear(&m->meta);
	}
	git_packbuilder_free(bd.pb);
	git_tree_free(bd.tree);
	free(run);
	batch_free(&b);
	return rc;
}

/* ---- push ----
 *
 * A push runs on its own thread with its own repository handle, so a remote
 * that hangs (an ssh server that never answers: libgit2 1.5 has no timeout
 * for it) holds up neither the commits nor an unmount. At stop the pusher
 * gets a few seconds for a last push; a pusher still stuck then is left
 * behind (the process is exiting) rather than waited for. */

#define PUSH_STOP_WAIT_S 5

struct pusher {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	char *path, *branch, *remote;
	int due, stop, done;
	unsigned backoff_ms;
	int64_t next_ns;
	_Atomic uint64_t pushes, failures;
};

/* pushers abandoned at stop, still reachable (for the leak checkers) */
static struct pusher *abandoned[8];

static int push_ref_cb(const char *refname, const char *status, void *data)
{
	int *bad = data;
	if (status) {
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-GIT-PUSH-REFUSED",
		       "the remote refused %s: %s", refname, status);
		*bad = 1;
	}
	return 0;
}

static int push_once(struct pusher *p)
{
	git_repository *repo = NULL;
	git_remote *rem = NULL;
	git_push_options po;
	char spec[200];
	char *specs[] = {spec};
	git_strarray refspecs = {specs, 1};
	int bad = 0, rc;

	git_push_options_init(&po, GIT_PUSH_OPTIONS_VERSION);
	po.callbacks.credentials = sg_git_cred_cb;
	po.callbacks.push_update_reference = push_ref_cb;
	po.callbacks.payload = &bad;
	snprintf(spec, sizeof(spec), "%s:%s", p->branch, p->branch);
	rc = git_repository_open_bare(&repo, p->path);
	if (rc == 0)
		rc = sg_git_remote_new(&rem, repo, NULL, p->remote);
	if (rc == 0)
		rc = git_remote_push(rem, &refspecs, &po);
	git_remote_free(rem);
	git_repository_free(repo);
	if (rc < 0)
		return sg_git_err(rc, "push");
	return bad ? -EAGAIN : 0;
}

static void *pusher_main(void *arg)
{
	struct pusher *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		int64_t now = sg_mono_ns();
		int rc;

		if (p->due && (p->stop || now >= p->next_ns)) {
			int last = p->stop;
			p->due = 0;
			pthread_mutex_unlock(&p->lock);
			rc = push_once(p);
			pthread_mutex_lock(&p->lock);
			if (rc == 0) {
				if (p->backoff_ms)
					sg_log(SG_LOG_NOTICE, DOMAIN, "SIGIL-GIT-PUSH-OK",
					       "pushed %s to %s again", p->branch, p->remote);
				atomic_fetch_add(&p->pushes, 1);
				p->backoff_ms = 0;
			} else {
				atomic_fetch_add(&p->failures, 1);
				/* the first failure of a run, then only at the backoff's cap */
				if (!p->backoff_ms || p->backoff_ms >= PUSH_BACKOFF_MAX_MS)
					sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-GIT-PUSH-FAILED",
					       "cannot push %s to %s: %s; retrying with backoff",
					       p->branch, p->remote,
					       rc == -EAGAIN ? "refused" : git_msg());
				p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : 1000;
				if (p->backoff_ms > PUSH_BACKOFF_MAX_MS)
					p->backoff_ms = PUSH_BACKOFF_MAX_MS;
				p->next_ns = sg_mono_ns() + (int64_t)p->backoff_ms * 1000000;
				p->due = 1;
			}
			if (last)
				break;
			continue;
		}
		if (p->stop)
			break;
		if (p->due) {
			struct timespec ts;
			int64_t wait_ns = p->next_ns - now;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += wait_ns / 1000000000;
			ts.tv_nsec += wait_ns % 1000000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&p->cond, &p->lock, &ts);
		} else {
			pthread_cond_wait(&p->cond, &p->lock);
		}
	}
	p->done = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void pusher_free(struct pusher *p)
{
	free(p->path);
	free(p->branch);
	free(p->remote);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

static struct pusher *pusher_start(const char *path, const char *branch, const char *remote)
{
	struct pusher *p = calloc(1, sizeof(*p));
	pthread_condattr_t ca;

	if (!p)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	p->path = strdup(path);
	p->branch = strdup(branch);
	p->remote = strdup(remote);
	if (!p->path || !p->branch || !p->remote ||
	    pthread_create(&p->thread, NULL, pusher_main, p) != 0) {
		pusher_free(p);
		return NULL;
	}
	return p;
}

static void pusher_kick(struct pusher *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->due = 1;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* A last push, a few seconds for it; 1 if the pusher had to be left behind. */
static int pusher_stop(struct pusher *p)
{
	struct timespec ts;
	int stuck = 0;

	if (!p)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += PUSH_STOP_WAIT_S;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_signal(&p->cond);
	while (!p->done)
		if (pthread_cond_timedwait(&p->cond, &p->lock, &ts) == ETIMEDOUT)
			break;
	stuck = !p->done;
	pthread_mutex_unlock(&p->lock);
	if (stuck) {
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-GIT-PUSH-ABANDONED",
		       "the push of %s to %s does not end: leaving it behind", p->branch,
		       p->remote);
		pthread_detach(p->thread);
		for (size_t i = 0; i < sizeof(abandoned) / sizeof(abandoned[0]); i++)
			if (!abandoned[i]) {
				abandoned[i] = p;
				break;
			}
		return 1;
	}
	pthread_join(p->thread, NULL);
	pusher_free(p);
	return 0;
}

/* ---- the thread ---- */

static void *mirror_main(void *arg)
{
	sg_mirror *m = arg;
	int64_t last_ns = 0, first_ns = 0;
	int failing = 0, stop_batches = 0;

	pthread_mutex_lock(&m->lock);
	for (;;) {
		uint64_t v = sg_store_version(m->st);
		int64_t now = sg_mono_ns(), due = last_ns + (int64_t)m->interval_ms * 1000000;
		int behind = v > m->cursor;
		int urgent = m->stop || m->flush_want > m->cursor;

		if (m->flush_want && m->flush_want <= m->cursor) {
			m->flush_want = 0;
			m->flush_err = 0;
			pthread_cond_broadcast(&m->done);
		}
		if (behind && !atomic_load(&m->pending_since_ms)) {
			atomic_store(&m->pending_since_ms, sg_now_ns() / 1000000);
			/* after a quiet spell, let a burst (mkdir -p, an editor's
			 * save dance, a replicated batch) gather a moment */
			first_ns = now;
		}
		if (behind && first_ns) {
			int64_t settle = (int64_t)m->interval_ms * 1000000 / 5;
			if (settle > SETTLE_MAX_NS)
				settle = SETTLE_MAX_NS;
			if (first_ns + settle > due)
				due = first_ns + settle;
		}
		if (behind && m->stop && stop_batches++ > 0) {
			/* a last batch is done; a backlog beyond it (an import of a big
			 * tree) is not worth holding the unmount: the next start resumes */
			sg_log(SG_LOG_NOTICE, DOMAIN, "SIGIL-GIT-STOP-BEHIND",
			       "stopping with versions %" PRIu64 "..%" PRIu64
			       " not yet mirrored; the next start takes them in",
			       m->cursor + 1, v);
			break;
		}
		if (behind && (urgent || now >= due)) {
			int rc;
			pthread_mutex_unlock(&m->lock);
			rc = batch(m);
			pthread_mutex_lock(&m->lock);
			last_ns = sg_mono_ns();
			if (rc < 0) {
				if (!failing++)
					sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-GIT-COMMIT-FAILED",
					       "cannot commit to the mirror %s: %s (%s); retrying",
					       m->path, strerror(-rc), m->last_err);
				if (m->flush_want) {
					m->flush_err = rc;
					m->flush_want = 0;
					pthread_cond_broadcast(&m->done);
				}
				if (m->stop)
					break;
			} else {
				if (failing)
					sg_log(SG_LOG_NOTICE, DOMAIN, "SIGIL-GIT-COMMIT-OK",
					       "the mirror commits again");
				failing = 0;
				if (m->cursor >= sg_store_version(m->st)) {
					atomic_store(&m->pending_since_ms, 0);
					first_ns = 0;
				}
				if (rc == 1)
					last_ns = 0; /* more pages: go on at once */
			}
			continue;
		}
		if (m->stop && !behind)
			break;
		{
			struct timespec ts;
			int64_t wait_ns = behind ? due - now : 1000000000LL;
			if (wait_ns < 1000000)
				wait_ns = 1000000;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += wait_ns / 1000000000;
			ts.tv_nsec += wait_ns % 1000000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			if (!m->wake)
				pthread_cond_timedwait(&m->cond, &m->lock, &ts);
			m->wake = 0;
		}
	}
	if (m->flush_want) {
		m->flush_err = m->flush_err ? m->flush_err : -ESHUTDOWN;
		m->flush_want = 0;
	}
	pthread_cond_broadcast(&m->done);
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* ---- API ---- */

static int repo_open(sg_mirror *m)
{
	char head[200];
	int rc = git_repository_open_bare(&m->repo, m->path);

	if (rc == GIT_ENOTFOUND) {
		char *parent = strdup(m->path), *s;
		if (!parent)
			return -ENOMEM;
		if ((s = strrchr(parent, '/')) && s != parent) {
			*s = '\0';
			sg_mkdir_p(parent, 0700);
		}
		free(parent);
		rc = git_repository_init(&m->repo, m->path, 1);
		if (rc == 0) {
			snprintf(head, sizeof(head), "%s", m->branch);
			rc = git_repository_set_head(m->repo, head);
		}
	}
	if (rc < 0) {
		/* the caller says it in one line; libgit2's reason goes to the debug log */
		sg_log(SG_LOG_DEBUG, DOMAIN, "SIGIL-GIT-OPEN", "cannot open the mirror %s: %s",
		       m->path, git_msg());
		return -EIO;
	}
	if ((rc = git_repository_odb(&m->odb, m->repo)) < 0 ||
	    (rc = git_mempack_new(&m->mempack)) < 0 ||
	    (rc = git_odb_add_backend(m->odb, m->mempack, 999)) < 0) {
		sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-GIT-OPEN", "cannot set up the mirror %s: %s",
		       m->path, git_msg());
		return -EIO;
	}
	return 0;
}

/*
 * What a daemon killed mid-batch leaves: a branch lock (libgit2 would refuse
 * every later update of the branch) and half-written packs. The mirror is
 * this node's alone (the data dir lock keeps out a second daemon), so none
 * of them belongs to a live writer.
 */
static void leftovers_remove(sg_mirror *m)
{
	static const char *const locks[] = {"HEAD.lock", "packed-refs.lock", "config.lock",
	                                    "sigil-base.tmp"};
	char p[4500], dir[4200];
	DIR *d;
	struct dirent *de;

	snprintf(p, sizeof(p), "%s/%s.lock", m->path, m->branch);
	if (unlink(p) == 0)
		sg_log(SG_LOG_NOTICE, DOMAIN, "SIGIL-GIT-STALE-LOCK",
		       "removed %s, left by a daemon that died mid-commit", p);
	for (size_t i = 0; i < sizeof(locks) / sizeof(locks[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", m->path, locks[i]);
		unlink(p);
	}
	snprintf(dir, sizeof(dir), "%s/objects/pack", m->path);
	if (!(d = opendir(dir)))
		return;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, "pack_git2_", 10) == 0 ||
		    strncmp(de->d_name, "tmp_", 4) == 0) {
			snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
			unlink(p);
		}
	closedir(d);
}

static int branch_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || n > 64 || s[0] == '.' || s[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return 0;
	return !strstr(s, "..") && !(n >= 5 && strcmp(s + n - 5, ".lock") == 0);
}

static void mirror_free(sg_mirror *m)
{
	int stuck;

	if (!m)
		return;
	stuck = pusher_stop(m->pusher); /* after the last commit: its last push */
	git_tree_free(m->tree);
	git_odb_free(m->odb); /* frees the mempack backend it owns */
	git_repository_free(m->repo);
	sg_gitmeta_clear(&m->meta);
	free(m->path);
	free(m->node);
	free(m->branch);
	free(m->remote);
	free(m->local_only);
	while (m->annots) {
		struct annot *a = m->annots;
		m->annots = a->next;
		annot_free(a);
	}
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	pthread_cond_destroy(&m->done);
	free(m);
	if (!stuck)
		sg_git_shutdown(); /* else the abandoned push still runs in libgit2 */
}

int sg_mirror_start(sg_mirror **out, const sg_mirror_opts *o)
{
	sg_mirror *m;
	char branch[80];
	pthread_condattr_t ca;
	int rc;

	*out = NULL;
	if (!o || !o->store || !o->path || o->path[0] != '/' || !branch_name_ok(o->node_name)) {
		sg_log(SG_LOG_DEBUG, DOMAIN, "SIGIL-GIT-OPTS",
		       "the mirror needs an absolute path and a node name usable as a branch");
		return -EINVAL;
	}
	if (!(m = calloc(1, sizeof(*m))))
		return -ENOMEM;
	sg_git_init();
	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&m->done, NULL);
	sg_gitmeta_init(&m->meta);
	snprintf(branch, sizeof(branch), "refs/heads/%s", o->node_name);
	m->st = o->store;
	m->store_id = sg_store_id(o->store);
	m->interval_ms = o->interval_ms ? o->interval_ms : 1000;
	m->origin_name = o->origin_name;
	m->origin_ctx = o->origin_ctx;
	m->path = strdup(o->path);
	m->node = strdup(o->node_name);
	m->branch = strdup(branch);
	m->remote = o->remote && *o->remote ? strdup(o->remote) : NULL;
	m->local_only = o->local_only ? strdup(o->local_only) : NULL;
	if (!m->path || !m->node || !m->branch || (o->remote && *o->remote && !m->remote) ||
	    (o->local_only && !m->local_only)) {
		mirror_free(m);
		return -ENOMEM;
	}
	leftovers_remove(m);
	if ((rc = repo_open(m)) < 0 || (rc = head_load(m)) < 0) {
		if (rc != -EIO)
			sg_log(SG_LOG_DEBUG, DOMAIN, "SIGIL-GIT-OPEN",
			       "cannot read the mirror %s: %s", m->path, git_msg());
		mirror_free(m);
		return -EIO;
	}
	if (m->remote && !(m->pusher = pusher_start(m->path, m->branch, m->remote))) {
		mirror_free(m);
		return -ENOMEM;
	}
	if (m->has_head)
		pusher_kick(m->pusher); /* what the last run may not have pushed */
	if ((rc = pthread_create(&m->thread, NULL, mirror_main, m)) != 0) {
		mirror_free(m);
		return -rc;
	}
	m->started = 1;
	sg_log(SG_LOG_DEBUG, DOMAIN, "SIGIL-GIT-START",
	       "mirroring into %s (%s) from store version %" PRIu64, m->path, m->branch, m->cursor);
	*out = m;
	return 0;
}

void sg_mirror_stop(sg_mirror *m)
{
	if (!m)
		return;
	if (m->started) {
		pthread_mutex_lock(&m->lock);
		m->stop = 1;
		pthread_cond_signal(&m->cond);
		pthread_mutex_unlock(&m->lock);
		pthread_join(m->thread, NULL);
	}
	mirror_free(m);
}

void sg_mirror_on_commit(void *arg, const sg_note *notes, size_t n)
{
	sg_mirror *m = arg;

	uint64_t v = 0;

	if (!m || !n)
		return;
	for (size_t i = 0; i < n; i++)
		v = notes[i].version > v ? notes[i].version : v;
	pthread_mutex_lock(&m->lock);
	if (m->open)
		for (size_t i = 0; i < n; i++)
			if (notes[i].local == SG_NOTE_PUT)
				annot_add(m->open, notes[i].version);
	if (v > m->noted)
		m->noted = v;
	/* full: keep the oldest, which is what the lag measures */
	if (m->seen_n < LAG_RING) {
		size_t k = (m->seen_head + m->seen_n) % LAG_RING;
		m->seen[k].version = v;
		m->seen[k].ms = sg_now_ns() / 1000000;
		m->seen_n++;
	}
	m->wake = 1;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

int sg_mirror_flush(sg_mirror *m)
{
	uint64_t want = sg_store_version(m->st);
	int rc;

	pthread_mutex_lock(&m->lock);
	if (m->stop) {
		pthread_mutex_unlock(&m->lock);
		return -ESHUTDOWN;
	}
	if (want > m->cursor) {
		if (want > m->flush_want)
			m->flush_want = want;
		m->wake = 1;
		pthread_cond_signal(&m->cond);
		while (m->flush_want && !m->stop)
			pthread_cond_wait(&m->done, &m->lock);
	}
	rc = m->cursor >= want ? 0 : (m->flush_err ? m->flush_err : -EIO);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

void sg_mirror_stats_get(sg_mirror *m, sg_mirror_stats *out)
{
	int64_t since;

	memset(out, 0, sizeof(*out));
	if (!m)
		return;
	out->version = atomic_load(&m->v_mirrored);
	out->commits = atomic_load(&m->commits);
	if (m->pusher) {
		out->pushes = atomic_load(&m->pusher->pushes);
		out->push_failures = atomic_load(&m->pusher->failures);
	}
	pthread_mutex_lock(&m->lock);
	while (m->seen_n && m->seen[m->seen_head].version <= m->cursor) {
		m->seen_head = (m->seen_head + 1) % LAG_RING;
		m->seen_n--;
	}
	since = m->seen_n ? m->seen[m->seen_head].ms : 0;
	if (!since && sg_store_version(m->st) > m->cursor)
		since = atomic_load(&m->pending_since_ms);
	out->lag_ms = since ? sg_now_ns() / 1000000 - since : 0;
	if (out->lag_ms < 0)
		out->lag_ms = 0;
	snprintf(out->head, sizeof(out->head), "%s", m->head_hex);
	snprintf(out->branch, sizeof(out->branch), "%s", m->branch);
	pthread_mutex_unlock(&m->lock);
}
