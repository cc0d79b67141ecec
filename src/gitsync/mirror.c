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
 *     pack per batch (a small one directly, see pack_write_small); the
 *     branch moves only after the pack is on disk (synced), so a crash
 *     loses at most the batch, which is redone from the version in the
 *     branch head's trailer;
 *   - a thread of its own, the folder, folds the small packs when they pile
 *     up, geometrically, in the background: a commit never waits for it.
 *
 * The libgit2 objects of the mirror are confined to this thread; the folder
 * and the pusher open repository handles of their own. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <git2/sys/mempack.h>
#include <git2/sys/odb_backend.h>
#include <git2/sys/repository.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "gitsync_i.h"
#include "log.h"
#include "util.h"

#define PAGE_CHANGES 20000    /* changes per batch */
#define PAGE_BYTES (64 << 20) /* ...and content copied: a page stops past it */
#define SETTLE_BATCHES 64     /* the objects of at most this many batches stay in memory */
#define SETTLE_OBJECTS 1000   /* ...none of a batch with more */
#define MAX_PACKS 16          /* the folder folds the smallest packs beyond this */
#define RENAMES_MAX (1 << 20) /* moves remembered while the mirror is behind */
#define RENAME_MIN_BYTES 64   /* smaller files are never paired by content alone */
#define PUSH_BACKOFF_MAX_MS 60000
#define LAG_RING 4096                   /* commit times remembered for the lag */
#define SETTLE_MAX_NS (200 * 1000000LL) /* a burst after a quiet spell gathers this long */
#define IDLE_NS (100 * 1000000LL)       /* quiet this long, the mirror tidies up */
/* a batch whose last changes include a local delete waits this long after
 * them for what follows (an editor's save: the old file renamed or removed,
 * the new one written), as replication holds a delete before pushing */
#define DEL_HOLD_NS (150 * 1000000LL)
/* nor is a batch cut within this long of the last change (a new file's
 * create and its content are two changes) */
#define QUIET_NS (25 * 1000000LL)

/* One change of a batch, as the mirror keeps it. */
struct chg {
	char *path;
	uint32_t type, mode, uid, gid;
	git_oid oid; /* blob of a file or symlink */
	char *data;  /* its content until the blob is made (batch_blobs) */
	size_t len;
	sg_xattr *x;
	size_t nx;
	uint64_t version, origin, hlc;
	uint64_t id;      /* the store's entry id (a tombstone's own) */
	uint64_t restore; /* the restore that wrote it (an annot id), 0: none */
};

/* A move the store made here: it left tombstone `tomb` at the old name and
 * moved entry `moved` (same id) to the new one. */
struct ren {
	uint64_t tomb, moved, version;
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
	git_odb_backend *packs; /* libgit2's pack backend, inside odb */
	unsigned unsettled;     /* batches since odb_settle() */
	git_oid head;           /* the branch's commit; zero before the first */
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
	int64_t del_tail_ns;  /* the last changes told include a local delete: when (mono), 0 */
	int64_t last_note_ns; /* when changes were last told (mono) */
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
	/* under lock: the moves the observer told of, not yet mirrored, and
	 * the versions it told of at all (watched_from < v <= noted) */
	struct ren *ren;
	size_t nren, capren;
	uint64_t watched_from;
	int watching;

	/* packs: held shared by a batch (and a restore reading this repository),
	 * exclusively by the folder while it deletes packs, which it counts in
	 * packs_gen; the mirror thread reopens its repository when that moved */
	pthread_rwlock_t packs_lock;
	int packs_lock_made;
	_Atomic uint64_t packs_gen;
	uint64_t packs_seen;
	_Atomic int packs_live; /* packs not folded, as the folder last counted, plus new ones */
	struct folder *folder;
	struct pusher *pusher;     /* NULL without a remote */
	char last_err[256];        /* why the last batch failed (mirror thread only) */
	_Atomic uint64_t failures; /* batches failed since start */
	int64_t fail_since_ms;     /* under lock: wall ms of the first failure in a row, 0 */
	char fail_err[200];        /* under lock: why the last batch failed, while failing */
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
struct folder;
static void folder_kick(struct folder *fo);

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
		/* keep parsed trees of large directories (4 KiB by default, about
		 * a hundred entries): each commit reads the ones it changes */
		git_libgit2_opts(GIT_OPT_SET_CACHE_OBJECT_LIMIT, GIT_OBJECT_TREE, (size_t)1 << 20);
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

void sg_mirror_restore_mark(sg_mirror *m, uint64_t version)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	if (m->open)
		annot_add(m->open, version);
	pthread_mutex_unlock(&m->lock);
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
	int full;      /* the page stopped at PAGE_BYTES: more to do */
	size_t seen;
	size_t bytes; /* content copied */
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
	/* the root ("") is listed when its mode, owner or xattrs change */
	if ((!*c->path && c->type != SG_TYPE_DIR) || sg_path_matches(b->m->local_only, c->path))
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
	k->id = c->id;
	/* a copy of the content: the blob is made after the scan, which holds
	 * the store's open transaction (and with it every local change) */
	if ((c->type == SG_TYPE_FILE || c->type == SG_TYPE_SYMLINK) && c->len) {
		if (!(k->data = malloc(c->len)))
			goto oom;
		memcpy(k->data, c->data, c->len);
		k->len = c->len;
		b->bytes += c->len;
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
	if (b->bytes >= PAGE_BYTES) {
		b->full = 1;
		return 1;
	}
	return 0;
oom:
	b->err = -ENOMEM;
	return 1;
}

static void chg_free(struct chg *k)
{
	free(k->data);
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

/* The blobs of a page's files and symlinks, out of the store's
 * transaction. 0, or -errno. */
static int batch_blobs(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		struct chg *k = &b->v[i];
		int rc;

		if (k->type != SG_TYPE_FILE && k->type != SG_TYPE_SYMLINK)
			continue;
		rc = git_blob_create_from_buffer(&k->oid, b->m->repo, k->data ? k->data : "",
		                                 k->len);
		if (rc < 0)
			return sg_git_err(rc, "blob");
		free(k->data);
		k->data = NULL;
	}
	return 0;
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

/* What a batch builds before the branch moves. */
struct build {
	/* what the store told of the batch's moves: the moves by tombstone id,
	 * the batch's changes by entry id, and which versions it told of */
	struct ren *ren;
	size_t nren;
	struct chg **byid;
	size_t nbyid;
	uint64_t known_lo, known_hi, self;
	git_tree *tree; /* current tree (owned) */
	git_oid head;   /* current commit */
	int has_head;
	git_oid *objs; /* the batch's new objects (repeats allowed) */
	size_t nobjs, capobjs;
	int made; /* commits made */
};

struct commit_ctx {
	sg_mirror *m;
	const struct build *bd;
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

/* Each file of the subtree at tree entry te (which goes) is a "deleted" line. */
static int files_gone(struct commit_ctx *cc, const git_tree_entry *te, const struct chg *c)
{
	git_tree *sub = NULL;
	struct walk_del w = {cc, c->path, c, 0};

	if (git_tree_lookup(&sub, cc->m->repo, git_tree_entry_id(te)) == 0) {
		git_tree_walk(sub, GIT_TREEWALK_PRE, walk_del_cb, &w);
		git_tree_free(sub);
	}
	return w.err;
}

/* The effect of one change on the tree being built (cur) and on the metadata. */
static int plan(struct commit_ctx *cc, git_tree *cur, const struct chg *c)
{
	sg_mirror *m = cc->m;
	git_tree_entry *te = NULL;
	int exists = cur && *c->path ? git_tree_entry_bypath(&te, cur, c->path) == 0 : 0;
	int was_tree = exists && git_tree_entry_type(te) == GIT_OBJECT_TREE;
	int was_meta_dir = 0;
	int rc = 0;

	{
		const struct sg_gitmeta_ent *me = sg_gitmeta_get(&m->meta, c->path);
		was_meta_dir = me && me->attrs && me->type == SG_TYPE_DIR;
	}
	if ((int64_t)(c->hlc >> 16) > cc->newest_ms)
		cc->newest_ms = (int64_t)(c->hlc >> 16);
	if (!*c->path) { /* the root: its record in the metadata is all there is */
		int mc =
		    sg_gitmeta_set(&m->meta, "", SG_TYPE_DIR, c->mode, c->uid, c->gid, c->x, c->nx);
		if (mc <= 0)
			return mc;
		cc->meta_changed = 1;
		return op_add(cc, "modified", "/", NULL, 0, c);
	}

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
			if (!rc && was_tree)
				rc = files_gone(cc, te, c);
			else if (!rc)
				rc = op_add(cc, "deleted", c->path, git_tree_entry_id(te), 1, c);
		}
		goto out;
	}
	if (c->type == SG_TYPE_DIR) {
		int mc;
		if (exists && !was_tree) { /* a file became a directory: both are lines */
			rc = push_update(&cc->rm, &cc->nrm, &cc->caprm, GIT_TREE_UPDATE_REMOVE,
			                 c->path, NULL, 0);
			if (!rc)
				rc = op_add(cc, "deleted", c->path, git_tree_entry_id(te), 1, c);
		}
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

		if (was_tree || was_meta_dir) {
			/* a directory became a file: what went with it is listed */
			struct dir_gone dg = {cc, c, 0};
			if (was_tree &&
			    ((rc = push_update(&cc->rm, &cc->nrm, &cc->caprm,
			                       GIT_TREE_UPDATE_REMOVE, c->path, NULL, 0)) < 0 ||
			     (rc = files_gone(cc, te, c)) < 0))
				goto out;
			cc->meta_changed |=
			    sg_gitmeta_remove(&m->meta, c->path, 1, dir_gone_cb, &dg);
			if ((rc = dg.err) < 0)
				goto out;
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

/* Did the observer tell of change c (so a move there is known by its ids)? */
static int move_known(const struct build *bd, const struct chg *c)
{
	return c && c->origin == bd->self && c->version > bd->known_lo &&
	       c->version <= bd->known_hi;
}

static int by_ren_tomb(const void *a, const void *b)
{
	uint64_t x = ((const struct ren *)a)->tomb, y = ((const struct ren *)b)->tomb;
	return x < y ? -1 : x > y;
}

static int by_chg_id(const void *a, const void *b)
{
	uint64_t x = (*(const struct chg *const *)a)->id, y = (*(const struct chg *const *)b)->id;
	return x < y ? -1 : x > y;
}

/* The change of the batch that moved entry `id` somewhere, or NULL. */
static const struct chg *moved_by(const struct build *bd, uint64_t tomb)
{
	struct ren key = {.tomb = tomb}, *r;
	struct chg k = {.id = 0}, *kp = &k, **c;

	if (!bd->nren || !(r = bsearch(&key, bd->ren, bd->nren, sizeof(*r), by_ren_tomb)))
		return NULL;
	k.id = r->moved;
	c = bd->nbyid ? bsearch(&kp, bd->byid, bd->nbyid, sizeof(*c), by_chg_id) : NULL;
	return c && (*c)->type != SG_TYPE_TOMBSTONE ? *c : NULL;
}

static void rename_pair(struct op *d, struct op *a)
{
	d->verb = "renamed";
	d->to = a->path;
	a->path = NULL;
	a->verb = NULL; /* folded into the rename */
	if (a->c && (!d->c || a->c->version > d->c->version))
		d->c = a->c;
}

static int is(const struct op *o, const char *verb)
{
	return o->file && o->verb && strcmp(o->verb, verb) == 0;
}

static int by_op_oid(const void *a, const void *b)
{
	const struct op *x = *(const struct op *const *)a, *y = *(const struct op *const *)b;
	int c = git_oid_cmp(&x->oid, &y->oid);
	return c ? c : is(y, "deleted") - is(x, "deleted"); /* deleted first */
}

/*
 * Renames. Where the store told of a move (a local rename: a tombstone left
 * at the old name, the same entry at the new one), its files pair by path;
 * a delete and an add it told of are never a rename, whatever their content.
 * Where it could not tell (a peer's changes, or changes from before this
 * mirror watched), a deleted and an added file pair by content, if that
 * content is unique among them and not tiny (two empty files are not a move).
 */
static void find_renames(struct commit_ctx *cc)
{
	const struct build *bd = cc->bd;
	struct op **cand = NULL;
	size_t nc = 0;

	for (size_t i = 0; i < cc->nops; i++) {
		struct op *d = &cc->ops[i];
		const struct chg *mv;
		char want[SG_PATH_MAX + 2];
		if (!is(d, "deleted") || !d->c || d->c->type != SG_TYPE_TOMBSTONE ||
		    !(mv = moved_by(bd, d->c->id)))
			continue;
		/* the new path: the moved entry's, and below it what was below the old */
		if (snprintf(want, sizeof(want), "%s%s", mv->path, d->path + strlen(d->c->path)) >=
		    (int)sizeof(want))
			continue;
		for (size_t j = 0; j < cc->nops; j++)
			if (is(&cc->ops[j], "added") && strcmp(cc->ops[j].path, want) == 0) {
				rename_pair(d, &cc->ops[j]);
				break;
			}
	}
	if (!(cand = malloc((cc->nops ? cc->nops : 1) * sizeof(*cand))))
		return; /* no guesses */
	for (size_t i = 0; i < cc->nops; i++)
		if ((is(&cc->ops[i], "deleted") || is(&cc->ops[i], "added")) &&
		    !move_known(bd, cc->ops[i].c))
			cand[nc++] = &cc->ops[i];
	qsort(cand, nc, sizeof(*cand), by_op_oid);
	for (size_t i = 0, j; i < nc; i = j) {
		size_t size = 0;
		git_object_t type;
		for (j = i + 1; j < nc && git_oid_equal(&cand[j]->oid, &cand[i]->oid); j++)
			;
		/* exactly one deleted and one added file with this content */
		if (j - i != 2 || !is(cand[i], "deleted") || !is(cand[i + 1], "added"))
			continue;
		if (git_odb_read_header(&size, &type, cc->m->odb, &cand[i]->oid) < 0 ||
		    size < RENAME_MIN_BYTES)
			continue;
		rename_pair(cand[i], cand[i + 1]);
	}
	free(cand);
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

static int obj_add(struct build *bd, const git_oid *oid)
{
	if (bd->nobjs == bd->capobjs) {
		size_t cap = bd->capobjs ? bd->capobjs * 2 : 64;
		git_oid *v = realloc(bd->objs, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		bd->objs = v;
		bd->capobjs = cap;
	}
	git_oid_cpy(&bd->objs[bd->nobjs++], oid);
	return 0;
}

/* Put into the pack every tree on the way from the root to each changed path. */
static int pack_paths(struct build *bd, const git_tree_update *u, size_t n)
{
	char path[SG_PATH_MAX + 1];
	int rc;

	if ((rc = obj_add(bd, git_tree_id(bd->tree))) < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s", u[i].path);
		for (char *s = strrchr(path, '/'); s; s = strrchr(path, '/')) {
			git_tree_entry *te = NULL;
			*s = '\0';
			if (git_tree_entry_bypath(&te, bd->tree, path) < 0)
				continue; /* removed with its parent */
			if (git_tree_entry_type(te) == GIT_OBJECT_TREE)
				rc = obj_add(bd, git_tree_entry_id(te));
			git_tree_entry_free(te);
			if (rc < 0)
				return rc;
		}
		if (u[i].action == GIT_TREE_UPDATE_UPSERT && (rc = obj_add(bd, &u[i].id)) < 0)
			return rc;
	}
	return 0;
}

/* Record the root's mode, owner and user.* xattrs from the store in the
 * metadata. 0 or a negative errno. */
static int root_record(sg_mirror *m)
{
	sg_attr a;
	sg_xattr *x = NULL;
	void **vals = NULL;
	char *names = NULL;
	size_t len = 0, nx = 0, cap = 0;
	int rc;

	if ((rc = sg_store_getattr(m->st, SG_ROOT_ID, &a)) < 0 ||
	    (rc = sg_store_listxattr(m->st, SG_ROOT_ID, &names, &len)) < 0)
		return rc;
	for (size_t off = 0; off < len; off += strlen(names + off) + 1)
		cap++;
	if (cap && (!(x = calloc(cap, sizeof(*x))) || !(vals = calloc(cap, sizeof(*vals))))) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t off = 0; off < len && nx < cap; off += strlen(names + off) + 1) {
		size_t vl = 0;
		if (strncmp(names + off, "user.", 5) != 0 ||
		    sg_store_getxattr(m->st, SG_ROOT_ID, names + off, &vals[nx], &vl) < 0)
			continue;
		x[nx].name = names + off;
		x[nx].value = vals[nx];
		x[nx].len = vl;
		nx++;
	}
	rc = sg_gitmeta_set(&m->meta, "", SG_TYPE_DIR, a.mode, a.uid, a.gid, x, nx);
	rc = rc < 0 ? rc : 0;
out:
	for (size_t i = 0; vals && i < cap; i++)
		free(vals[i]);
	free(vals);
	free(x);
	free(names);
	return rc;
}

/* Apply one run's changes (one origin's, of one restore or none; one per
 * path) to the tree and commit them, as holding every version up to upto. */
static int commit_group(sg_mirror *m, struct build *bd, struct chg **v, size_t n, uint64_t upto)
{
	struct commit_ctx cc = {.m = m, .bd = bd};
	git_signature *author = NULL, *committer = NULL;
	git_commit *parent = NULL;
	git_tree *next = NULL;
	git_oid oid, coid;
	char *msg = NULL, *trailer = NULL, who[80], email[100];
	int rc = 0;

	if (!sg_gitmeta_get(&m->meta, "")) {
		/* the first commit (or the first since the root was recorded at
		 * all): the root's record, as the store has it now, unless the
		 * run changes the root itself (sorted by path: "" comes first) */
		if (!n || *v[0]->path) {
			if ((rc = root_record(m)) < 0)
				goto out;
			cc.meta_changed = 1;
		}
	}
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
	if ((rc = obj_add(bd, &coid)) < 0)
		goto out;
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

static int repo_open(sg_mirror *m, int may_create);
static int packs_rescan(sg_mirror *m);
static int meta_reload(sg_mirror *m);

/* Let go of the repository (the next batch opens it afresh). */
static void repo_close(sg_mirror *m)
{
	git_tree_free(m->tree);
	m->tree = NULL;
	git_odb_free(m->odb);
	m->odb = NULL;
	m->mempack = NULL;
	m->packs = NULL;
	m->unsettled = 0;
	git_repository_free(m->repo);
	m->repo = NULL;
}

/* Open the repository afresh, with the head's tree and metadata. On a
 * failure it stays closed, so that the next batch tries again: a batch on an
 * open repository without the head's tree would build on an empty one. */
static int reopen(sg_mirror *m)
{
	int rc;

	repo_close(m);
	/* the repository the mirror has used: a path that lost it (a disk not
	 * mounted back yet) gets no new one */
	if ((rc = repo_open(m, 0)) < 0)
		goto fail;
	if (m->has_head) {
		git_commit *c = NULL;
		rc = git_commit_lookup(&c, m->repo, &m->head);
		if (rc == 0)
			rc = git_commit_tree(&m->tree, c);
		git_commit_free(c);
		if (rc < 0) {
			rc = sg_git_err(rc, "reopen");
			goto fail;
		}
	}
	/* the metadata file as that tree holds it: a failed batch may have
	 * changed the copy in memory */
	if ((rc = meta_reload(m)) == 0)
		return 0;
fail:
	repo_close(m);
	return rc;
}

/* ---- a small pack, written directly ----
 *
 * libgit2's packbuilder runs every pack through its indexer, which costs
 * several milliseconds even for the four or five objects of a one-file
 * commit (it maps and unmaps the pack for each object, and inflates what it
 * has just deflated). A batch of few objects is written here instead: the
 * pack format (version 2) with each object whole, in zlib "stored" blocks
 * (no deltas, no compression: the folder compresses them when it folds the
 * packs), and its index (version 2), with their SHA-1 checksums and CRC32s
 * as git fsck verifies them. */

#define SMALL_PACK_OBJECTS 4096     /* a batch with more goes through libgit2 */
#define SMALL_PACK_BYTES (8u << 20) /* ...and one with more bytes */

struct sha1 {
	uint32_t h[5];
	uint64_t len;
	unsigned char buf[64];
	size_t n;
};

static uint32_t rol32(uint32_t x, int k)
{
	return (x << k) | (x >> (32 - k));
}

static void sha1_block(struct sha1 *s, const unsigned char *p)
{
	uint32_t w[80], a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4];

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	for (int i = 0; i < 80; i++) {
		uint32_t f, k, t;
		if (i < 20) {
			f = (b & c) | (~b & d);
			k = 0x5a827999;
		} else if (i < 40) {
			f = b ^ c ^ d;
			k = 0x6ed9eba1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8f1bbcdc;
		} else {
			f = b ^ c ^ d;
			k = 0xca62c1d6;
		}
		t = rol32(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rol32(b, 30);
		b = a;
		a = t;
	}
	s->h[0] += a;
	s->h[1] += b;
	s->h[2] += c;
	s->h[3] += d;
	s->h[4] += e;
}

static void sha1_init(struct sha1 *s)
{
	static const uint32_t h0[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
	memset(s, 0, sizeof(*s));
	memcpy(s->h, h0, sizeof(h0));
}

static void sha1_update(struct sha1 *s, const void *data, size_t len)
{
	const unsigned char *p = data;

	s->len += len;
	if (s->n) {
		size_t k = 64 - s->n < len ? 64 - s->n : len;
		memcpy(s->buf + s->n, p, k);
		s->n += k;
		p += k;
		len -= k;
		if (s->n < 64)
			return;
		sha1_block(s, s->buf);
		s->n = 0;
	}
	for (; len >= 64; p += 64, len -= 64)
		sha1_block(s, p);
	memcpy(s->buf, p, len);
	s->n = len;
}

static void sha1_final(struct sha1 *s, unsigned char out[20])
{
	uint64_t bits = s->len * 8;
	unsigned char pad[72] = {0x80};
	size_t padlen = (s->n < 56 ? 56 : 120) - s->n;

	for (int i = 0; i < 8; i++)
		pad[padlen + i] = (unsigned char)(bits >> (56 - 8 * i));
	sha1_update(s, pad, padlen + 8);
	for (int i = 0; i < 5; i++) {
		out[4 * i] = (unsigned char)(s->h[i] >> 24);
		out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
		out[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
		out[4 * i + 3] = (unsigned char)s->h[i];
	}
}

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_table_make(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc32_update(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

	pthread_once(&crc_once, crc_table_make);
	crc = ~crc;
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static uint32_t adler32(const unsigned char *p, size_t len)
{
	uint32_t a = 1, b = 0;

	while (len) {
		size_t k = len < 5552 ? len : 5552; /* no overflow before the modulo */
		len -= k;
		while (k--) {
			a += *p++;
			b += a;
		}
		a %= 65521;
		b %= 65521;
	}
	return b << 16 | a;
}

struct packw {
	FILE *f;
	struct sha1 sum;
	uint32_t crc;
	uint64_t off;
};

static void pw_put(struct packw *w, const void *data, size_t len)
{
	fwrite(data, 1, len, w->f);
	sha1_update(&w->sum, data, len);
	w->crc = crc32_update(w->crc, data, len);
	w->off += len;
}

static void be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* One object: its type and size, then its bytes as a zlib stream of stored blocks. */
static void pw_object(struct packw *w, git_object_t type, const unsigned char *data, size_t len)
{
	unsigned char hdr[16], blk[5];
	size_t n = 0, left = len;
	uint64_t sz = len;

	hdr[n] = (unsigned char)((unsigned)type << 4 | (sz & 15));
	for (sz >>= 4; sz; sz >>= 7) {
		hdr[n++] |= 0x80;
		hdr[n] = sz & 0x7f;
	}
	pw_put(w, hdr, n + 1);
	pw_put(w, "\x78\x01", 2); /* deflate, 32 KiB window, no dictionary */
	do {
		size_t k = left < 65535 ? left : 65535;
		blk[0] = k == left; /* BFINAL, BTYPE 00: stored */
		blk[1] = (unsigned char)k;
		blk[2] = (unsigned char)(k >> 8);
		blk[3] = (unsigned char)~k;
		blk[4] = (unsigned char)(~k >> 8);
		pw_put(w, blk, 5);
		pw_put(w, data + (len - left), k);
		left -= k;
	} while (left);
	be32(blk, adler32(data, len));
	pw_put(w, blk, 4);
}

struct pentry {
	git_oid oid;
	uint32_t crc;
	uint64_t off;
};

static int by_pentry(const void *a, const void *b)
{
	return git_oid_cmp(&((const struct pentry *)a)->oid, &((const struct pentry *)b)->oid);
}

static int by_oid(const void *a, const void *b)
{
	return git_oid_cmp(a, b);
}

/* Hand a temporary file's buffered bytes to the kernel and start writing
 * them to disk (the pack's go while its index is made). */
static int file_flush(FILE *f)
{
	if (fflush(f) != 0 || ferror(f))
		return errno ? -errno : -EIO;
	sync_file_range(fileno(f), 0, 0, SYNC_FILE_RANGE_WRITE);
	return 0;
}

/* ...and make them durable, and close it. */
static int file_done(FILE *f)
{
	int rc = file_flush(f) == 0 && fdatasync(fileno(f)) == 0 ? 0 : (errno ? -errno : -EIO);

	if (fclose(f) != 0 && !rc)
		rc = -errno;
	return rc;
}

static FILE *tmp_open(const char *dir, const char *kind, char *path, size_t len)
{
	int fd;
	FILE *f;

	snprintf(path, len, "%s/tmp_sigil_%s_XXXXXX", dir, kind);
	if ((fd = mkstemp(path)) < 0)
		return NULL;
	fchmod(fd, 0444);
	if (!(f = fdopen(fd, "w"))) {
		close(fd);
		unlink(path);
	}
	return f;
}

/*
 * Write objects v[0..n) (sorted and deduplicated here) as one pack with its
 * index under objects/pack: both files and the directory are synced before
 * it returns, so the branch may then move. *name gets "pack-<hex>".
 * -ENOSPC (or another errno) with nothing left behind; -E2BIG if the objects
 * are too many or too large for this writer (use libgit2's).
 */
static int pack_write_small(sg_mirror *m, git_oid *v, size_t n, char *name, size_t namelen)
{
	char dir[4200], ptmp[4300], itmp[4300], path[4400];
	git_odb_object **objs = NULL;
	struct pentry *ent = NULL;
	struct packw w = {0};
	FILE *fi = NULL;
	unsigned char hdr[12], sum[20], isum[20];
	size_t bytes = 0, k = 0;
	int rc = 0, dfd;

	ptmp[0] = itmp[0] = '\0';
	if (n > SMALL_PACK_OBJECTS)
		return -E2BIG;
	qsort(v, n, sizeof(*v), by_oid);
	for (size_t i = 0; i < n; i++)
		if (!k || !git_oid_equal(&v[k - 1], &v[i]))
			v[k++] = v[i];
	n = k;
	if (!(objs = calloc(n ? n : 1, sizeof(*objs))) ||
	    !(ent = calloc(n ? n : 1, sizeof(*ent)))) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if ((rc = git_odb_read(&objs[i], m->odb, &v[i])) < 0) {
			rc = sg_git_err(rc, "pack object");
			goto out;
		}
		bytes += git_odb_object_size(objs[i]);
		if (bytes > SMALL_PACK_BYTES) {
			rc = -E2BIG;
			goto out;
		}
	}
	snprintf(dir, sizeof(dir), "%s/objects/pack", m->path);
	if (!(w.f = tmp_open(dir, "pack", ptmp, sizeof(ptmp)))) {
		rc = -errno;
		ptmp[0] = '\0';
		goto out;
	}
	sha1_init(&w.sum);
	memcpy(hdr, "PACK", 4);
	be32(hdr + 4, 2);
	be32(hdr + 8, (uint32_t)n);
	pw_put(&w, hdr, 12);
	for (size_t i = 0; i < n; i++) {
		git_oid_cpy(&ent[i].oid, &v[i]);
		ent[i].off = w.off;
		w.crc = 0;
		pw_object(&w, git_odb_object_type(objs[i]), git_odb_object_data(objs[i]),
		          git_odb_object_size(objs[i]));
		ent[i].crc = w.crc;
	}
	sha1_final(&w.sum, sum);
	fwrite(sum, 1, 20, w.f);
	if ((rc = file_flush(w.f)) < 0)
		goto out;
	if (w.off + 20 >= (1ull << 31)) {
		rc = -E2BIG; /* the index would need 64-bit offsets */
		goto out;
	}

	/* the index: fan-out, names, CRC32s, offsets, the pack's checksum, its own */
	if (!(fi = tmp_open(dir, "idx", itmp, sizeof(itmp)))) {
		rc = -errno;
		itmp[0] = '\0';
		goto out;
	}
	qsort(ent, n, sizeof(*ent), by_pentry);
	{
		struct packw iw = {.f = fi};
		unsigned char b4[4];
		uint32_t fan = 0;
		size_t j = 0;
		sha1_init(&iw.sum);
		pw_put(&iw, "\377tOc\0\0\0\2", 8);
		for (unsigned byte = 0; byte < 256; byte++) {
			while (j < n && ent[j].oid.id[0] == byte) {
				j++;
				fan++;
			}
			be32(b4, fan);
			pw_put(&iw, b4, 4);
		}
		for (size_t i = 0; i < n; i++)
			pw_put(&iw, ent[i].oid.id, 20);
		for (size_t i = 0; i < n; i++) {
			be32(b4, ent[i].crc);
			pw_put(&iw, b4, 4);
		}
		for (size_t i = 0; i < n; i++) {
			be32(b4, (uint32_t)ent[i].off);
			pw_put(&iw, b4, 4);
		}
		pw_put(&iw, sum, 20);
		sha1_final(&iw.sum, isum);
		fwrite(isum, 1, 20, fi);
	}
	/* both durable, then both renamed: the pack first. The index starts
	 * to the disk before the pack's sync, which then carries its blocks'
	 * allocation too, so that the index's own sync has little left */
	rc = file_flush(fi);
	{
		int rc1 = file_done(w.f);
		rc = rc1 ? rc1 : rc;
	}
	w.f = NULL;
	{
		int rc2 = file_done(fi);
		fi = NULL;
		rc = rc ? rc : rc2;
	}
	if (rc < 0)
		goto out;
	{
		git_oid po;
		char hex[GIT_OID_HEXSZ + 1];
		git_oid_fromraw(&po, sum);
		git_oid_tostr(hex, sizeof(hex), &po);
		snprintf(name, namelen, "pack-%s", hex);
	}
	/* the pack first: a reader finds a pack by its index */
	snprintf(path, sizeof(path), "%s/%s.pack", dir, name);
	if (rename(ptmp, path) != 0) {
		rc = -errno;
		goto out;
	}
	ptmp[0] = '\0';
	snprintf(path, sizeof(path), "%s/%s.idx", dir, name);
	if (rename(itmp, path) != 0) {
		rc = -errno;
		goto out;
	}
	itmp[0] = '\0';
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0)
		rc = -errno;
	if (dfd >= 0)
		close(dfd);
out:
	if (w.f)
		fclose(w.f);
	if (fi)
		fclose(fi);
	if (ptmp[0])
		unlink(ptmp);
	if (itmp[0])
		unlink(itmp);
	for (size_t i = 0; objs && i < n; i++)
		git_odb_object_free(objs[i]);
	free(objs);
	free(ent);
	return rc;
}

/* The batch's objects as one pack: small ones here, large ones (an import)
 * through libgit2's packbuilder, which compresses and deltifies them. */
static int pack_write(sg_mirror *m, git_oid *v, size_t n, char *name, size_t namelen,
                      size_t *objects)
{
	git_packbuilder *pb = NULL;
	int rc = pack_write_small(m, v, n, name, namelen);

	if (rc != -E2BIG) {
		*objects = n;
		return rc;
	}
	if ((rc = git_packbuilder_new(&pb, m->repo)) < 0)
		return sg_git_err(rc, "packbuilder");
	git_packbuilder_set_threads(pb, 1);
	for (size_t i = 0; i < n && rc >= 0; i++)
		rc = git_packbuilder_insert(pb, &v[i], NULL);
	if (rc >= 0)
		rc = git_packbuilder_write(pb, NULL, 0, NULL, NULL);
	if (rc < 0) {
		git_packbuilder_free(pb);
		return sg_git_err(rc, "pack write");
	}
	snprintf(name, namelen, "pack-%s", git_oid_tostr_s(git_packbuilder_hash(pb)));
	*objects = git_packbuilder_object_count(pb);
	git_packbuilder_free(pb);
	return 0;
}

/* Make the packs written since the last time visible to the object
 * database, and empty the in-memory one that held their objects till now. */
static int odb_settle(sg_mirror *m)
{
	int rc;

	if (!m->repo)
		return 0;
	if ((rc = packs_rescan(m)) < 0)
		return sg_git_err(rc, "pack rescan");
	git_mempack_reset(m->mempack);
	m->unsettled = 0;
	return 0;
}

/*
 * Move the branch to `head`. The new value is written into a spare file
 * beside the ref, refs/heads/.NODE.next.lock (git and libgit2 skip names
 * ending in .lock; no branch name starts with a dot), synced, and swapped
 * with the ref (renameat2 RENAME_EXCHANGE): either name holds a whole value
 * at any time, no file is created or freed per commit (creating one costs a
 * scan of recently freed inodes on some file systems), and no reflog
 * signature is read from the configuration as git_reference_create() does.
 * With `durable` the directory is synced too: a move a crash undoes is
 * redone from the store, unless it may have been pushed meanwhile (a remote
 * would then refuse the redone commits), so only then it must last.
 */
static int branch_move(sg_mirror *m, const git_oid *head, int durable)
{
	char ref[4400], spare[4500], dir[4400], line[GIT_OID_HEXSZ + 2], *slash;
	int fd, rc = 0;

	snprintf(ref, sizeof(ref), "%s/%s", m->path, m->branch);
	snprintf(dir, sizeof(dir), "%s", ref);
	slash = strrchr(dir, '/');
	*slash = '\0';
	snprintf(spare, sizeof(spare), "%s/.%s.next.lock", dir, slash + 1);
	git_oid_tostr(line, sizeof(line), head);
	strcat(line, "\n");
	if ((fd = open(spare, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) < 0 && errno == ENOENT &&
	    sg_mkdir_p(dir, 0755) == 0)
		fd = open(spare, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	if (pwrite(fd, line, strlen(line), 0) != (ssize_t)strlen(line) ||
	    ftruncate(fd, (off_t)strlen(line)) != 0 || fdatasync(fd) != 0)
		rc = errno ? -errno : -EIO;
	close(fd);
	if (rc)
		goto out;
	if (renameat2(AT_FDCWD, spare, AT_FDCWD, ref, RENAME_EXCHANGE) != 0) {
		if (errno != ENOENT && errno != EINVAL) {
			rc = -errno;
			goto out;
		}
		/* the branch's first commit (or no RENAME_EXCHANGE here) */
		if (rename(spare, ref) != 0) {
			rc = -errno;
			goto out;
		}
	}
	if (!durable)
		goto out;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(fd) != 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
out:
	if (rc)
		git_error_set_str(GIT_ERROR_OS, "cannot move the branch");
	return rc;
}

/* The metadata file as the head's tree holds it. A tree without one gives
 * none; one that cannot be read is an error (the batch fails and is redone:
 * committing without it would drop every file's metadata); one that does
 * not parse is rebuilt, as at the start. */
static int meta_reload(sg_mirror *m)
{
	git_tree_entry *te = NULL;
	char *buf = NULL, err[128];
	size_t len;
	int rc;

	sg_gitmeta_clear(&m->meta);
	if (!m->tree)
		return 0;
	rc = git_tree_entry_bypath(&te, m->tree, SG_GIT_META);
	git_tree_entry_free(te);
	if (rc == GIT_ENOTFOUND)
		return 0;
	if (rc < 0)
		return sg_git_err(rc, SG_GIT_META);
	if ((rc = blob_read(m->repo, m->tree, SG_GIT_META, &buf, &len)) < 0)
		return rc;
	if (sg_gitmeta_parse(&m->meta, buf, len, err, sizeof(err)) < 0) {
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-GIT-META", "%s in %s: %s; rebuilding it",
		       SG_GIT_META, m->head_hex, err);
		sg_gitmeta_clear(&m->meta);
	}
	free(buf);
	return 0;
}

static int by_path_version_p(const void *a, const void *b)
{
	return by_path_version(*(const struct chg *const *)a, *(const struct chg *const *)b);
}

/* Open the repository afresh if the folder deleted packs since it was
 * opened (its handle may list them). Under packs_lock, shared. */
static int packs_fresh(sg_mirror *m)
{
	uint64_t gen = atomic_load(&m->packs_gen);
	int rc;

	if (m->repo && gen == m->packs_seen)
		return 0;
	if ((rc = reopen(m)) == 0)
		m->packs_seen = gen;
	return rc;
}

/* Mirror one page of the log. 1: more to do, 0: caught up, or -errno. */
static int batch(sg_mirror *m)
{
	struct batch b = {.m = m, .upto = UINT64_MAX};
	struct build bd = {0};
	struct chg **run = NULL;
	int rc;

	if ((rc = packs_fresh(m)) < 0)
		goto out;
	pthread_mutex_lock(&m->lock);
	if (m->open) /* a restore writes: its versions are known once noted */
		b.upto = m->noted;
	pthread_mutex_unlock(&m->lock);
	/* one read: a file read before a directory above it was moved or
	 * removed would otherwise stay in the commit (both in one run) */
	rc = sg_store_changes_after_atomic(m->st, m->cursor, PAGE_CHANGES, collect, &b);
	if (b.err)
		rc = b.err;
	if (rc >= 0)
		rc = batch_blobs(&b);
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
	/* the moves the observer told of, and which versions it told of */
	bd.known_lo = m->watching ? m->watched_from : UINT64_MAX;
	bd.known_hi = m->noted;
	if (m->nren && (bd.ren = malloc(m->nren * sizeof(*bd.ren)))) {
		memcpy(bd.ren, m->ren, m->nren * sizeof(*bd.ren));
		bd.nren = m->nren;
	}
	pthread_mutex_unlock(&m->lock);
	bd.self = sg_store_node_id(m->st);
	if (bd.nren) {
		qsort(bd.ren, bd.nren, sizeof(*bd.ren), by_ren_tomb);
		if ((bd.byid = malloc(b.n * sizeof(*bd.byid)))) {
			for (size_t i = 0; i < b.n; i++)
				bd.byid[bd.nbyid++] = &b.v[i];
			qsort(bd.byid, bd.nbyid, sizeof(*bd.byid), by_chg_id);
		}
	}
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
		char name[100];
		size_t objects = 0;
		if ((rc = pack_write(m, bd.objs, bd.nobjs, name, sizeof(name), &objects)) < 0)
			goto out;
		sg_log(SG_LOG_DEBUG, DOMAIN, "SIGIL-GIT-PACK", "%s: %zu objects, %d commits", name,
		       objects, bd.made);
		if ((rc = branch_move(m, &bd.head, m->remote != NULL)) < 0)
			goto out;
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
	/* the batch's objects stay in memory (the pack on disk is not looked
	 * at yet): so each commit spares a rescan of objects/pack */
	if (bd.made && (++m->unsettled >= SETTLE_BATCHES || bd.nobjs > SETTLE_OBJECTS) &&
	    (rc = odb_settle(m)) < 0)
		goto out;
	pthread_mutex_lock(&m->lock);
	m->cursor = b.last;
	annots_prune(m);
	{
		size_t w = 0;
		for (size_t i = 0; i < m->nren; i++)
			if (m->ren[i].version > m->cursor)
				m->ren[w++] = m->ren[i];
		m->nren = w;
	}
	while (m->seen_n && m->seen[m->seen_head].version <= m->cursor) {
		m->seen_head = (m->seen_head + 1) % LAG_RING;
		m->seen_n--;
	}
	pthread_mutex_unlock(&m->lock);
	atomic_store(&m->v_mirrored, b.last);
	/* the folder looks only when there may be something to fold */
	if (bd.made && atomic_fetch_add(&m->packs_live, 1) + 1 > MAX_PACKS)
		folder_kick(m->folder);
	rc = b.seen == PAGE_CHANGES || b.full ? 1 : 0;
out:
	if (rc < 0) {
		/* what libgit2 said, before the cleanup below overwrites it */
		snprintf(m->last_err, sizeof(m->last_err), "%s",
		         git_error_last() && git_error_last()->message ? git_error_last()->message
		                                                       : strerror(-rc));
		/* nothing moved: forget the batch's objects and metadata; what
		 * cannot be settled or read again is opened afresh (and its
		 * metadata read) by the next batch, which redoes this one */
		if (odb_settle(m) < 0 || meta_reload(m) < 0)
			repo_close(m);
	}
	free(bd.objs);
	free(bd.ren);
	free(bd.byid);
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

	sg_thread_name("sigil-pusher");
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
			ts = sg_mono_deadline(sg_mono_ns() + wait_ns);
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

	if (!p)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	sg_cond_init_mono(&p->cond);
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

/* ---- folding packs, in the background ----
 *
 * Each batch leaves a pack. A thread of its own (with its own repository
 * handle) folds them when more than MAX_PACKS pile up, geometrically, as
 * `git repack --geometric=2` does: the smallest packs are merged, going up
 * while the next pack is less than twice what is merged so far, so each
 * object is rewritten O(log n) times in all and a fold costs what it merges,
 * never the whole tree. Packs of FOLD_MAX_OBJECTS or more (an import's
 * pages, folds grown that large) are left alone, so no fold is large. The merged packs go only
 * after FOLD_GRACE_NS, and then while no batch runs (packs_lock, held shared by each batch and by a
 * restore from this mirror, taken exclusively only to delete): the mirror
 * thread opens its repository afresh before its next use of it, and other
 * readers (a push, a restore from another node) are unlikely to be caught
 * with a pack they have listed but not yet opened. */

#define FOLD_GRACE_NS (10 * 1000000000LL)
#define FOLD_MAX_OBJECTS 8192 /* a pack this large stays as it is (an import's pages) */

struct retired {
	char name[56]; /* "pack-" + 40 hex digits */
	int64_t since_ns;
};

struct folder {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	char *path;
	int due, stop;
	pthread_rwlock_t *packs_lock; /* the mirror's */
	_Atomic uint64_t *packs_gen;  /* the mirror's: bumped when packs go */
	_Atomic int *packs_live;      /* the mirror's: packs not folded, about */
	struct retired *ret;          /* folded, waiting for their grace */
	size_t nret, capret;
	_Atomic uint64_t folds;
};

struct pinfo {
	char name[56];
	uint32_t objects;
};

static int by_objects(const void *a, const void *b)
{
	const struct pinfo *x = a, *y = b;
	return x->objects < y->objects ? -1 : x->objects > y->objects;
}

static int retired_has(const struct folder *fo, const char *name)
{
	for (size_t i = 0; i < fo->nret; i++)
		if (strcmp(fo->ret[i].name, name) == 0)
			return 1;
	return 0;
}

/* The object count of a pack, and its object names (malloc'd) if out is
 * not NULL, from its index (version 2). */
static int idx_read(const char *dir, const char *name, git_oid **out, uint32_t *n)
{
	char path[4400];
	unsigned char hdr[8 + 1024];
	FILE *f;
	int rc = 0;

	if (out)
		*out = NULL;
	*n = 0;
	snprintf(path, sizeof(path), "%s/%s.idx", dir, name);
	if (!(f = fopen(path, "r")))
		return -errno;
	if (fread(hdr, 1, sizeof(hdr), f) != sizeof(hdr) ||
	    memcmp(hdr, "\377tOc\0\0\0\2", 8) != 0) {
		fclose(f);
		return -EINVAL;
	}
	*n = (uint32_t)hdr[8 + 1020] << 24 | (uint32_t)hdr[8 + 1021] << 16 |
	     (uint32_t)hdr[8 + 1022] << 8 | hdr[8 + 1023];
	if (out != NULL && *n) {
		if (!(*out = malloc((size_t)*n * sizeof(**out))))
			rc = -ENOMEM;
		for (uint32_t i = 0; !rc && i < *n; i++) {
			unsigned char raw[20];
			if (fread(raw, 1, 20, f) != 20)
				rc = -EINVAL;
			else
				git_oid_fromraw(&(*out)[i], raw);
		}
	}
	fclose(f);
	if (rc && out) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

/* Delete the packs folded at least FOLD_GRACE_NS ago (all with force). */
static void retired_delete(struct folder *fo, int force)
{
	char dir[4200], p[4400];
	struct timespec ts;
	size_t w = 0;
	int64_t now = sg_mono_ns();
	int any = 0;

	for (size_t i = 0; i < fo->nret; i++)
		any |= force || now - fo->ret[i].since_ns >= FOLD_GRACE_NS;
	if (!any)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 1;
	if (pthread_rwlock_timedwrlock(fo->packs_lock, &ts) != 0)
		return; /* a long read: the next time */
	snprintf(dir, sizeof(dir), "%s/objects/pack", fo->path);
	for (size_t i = 0; i < fo->nret; i++) {
		if (!force && now - fo->ret[i].since_ns < FOLD_GRACE_NS) {
			fo->ret[w++] = fo->ret[i];
			continue;
		}
		/* the index first: a reader that lists the packs then skips it */
		snprintf(p, sizeof(p), "%s/%s.idx", dir, fo->ret[i].name);
		unlink(p);
		snprintf(p, sizeof(p), "%s/%s.pack", dir, fo->ret[i].name);
		unlink(p);
	}
	fo->nret = w;
	atomic_fetch_add(fo->packs_gen, 1);
	pthread_rwlock_unlock(fo->packs_lock);
}

/* Fold the smallest packs into one if more than MAX_PACKS are there. */
static int fold(struct folder *fo)
{
	char dir[4200], name[100];
	struct pinfo *pk = NULL;
	size_t n = 0, cap = 0, k;
	uint64_t sum, objects = 0;
	git_repository *repo = NULL;
	git_packbuilder *pb = NULL;
	int64_t t0 = sg_mono_ns();
	DIR *d;
	struct dirent *de;
	int rc = 0;

	snprintf(dir, sizeof(dir), "%s/objects/pack", fo->path);
	if (!(d = opendir(dir)))
		return -errno;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		uint32_t cnt;
		if (strncmp(de->d_name, "pack-", 5) != 0 || l != 5 + 40 + 4 ||
		    strcmp(de->d_name + l - 4, ".idx") != 0)
			continue;
		if (n == cap) {
			struct pinfo *v = realloc(pk, (cap = cap ? cap * 2 : 64) * sizeof(*v));
			if (!v) {
				rc = -ENOMEM;
				break;
			}
			pk = v;
		}
		snprintf(pk[n].name, sizeof(pk[n].name), "%.*s", (int)(l - 4), de->d_name);
		if (retired_has(fo, pk[n].name) || idx_read(dir, pk[n].name, NULL, &cnt) < 0 ||
		    cnt >= FOLD_MAX_OBJECTS)
			continue;
		pk[n++].objects = cnt;
	}
	closedir(d);
	atomic_store(fo->packs_live, (int)n);
	if (rc || n <= MAX_PACKS)
		goto out;
	qsort(pk, n, sizeof(*pk), by_objects);
	/* the smallest two, then each next one that is less than twice the sum */
	for (sum = (uint64_t)pk[0].objects + pk[1].objects, k = 2;
	     k < n && (pk[k].objects < 2 * sum || n - k >= MAX_PACKS); k++)
		sum += pk[k].objects;
	if ((rc = git_repository_open_bare(&repo, fo->path)) < 0 ||
	    (rc = git_packbuilder_new(&pb, repo)) < 0) {
		rc = sg_git_err(rc, "fold");
		goto out;
	}
	git_packbuilder_set_threads(pb, 1);
	for (size_t i = 0; i < k && rc >= 0; i++) {
		git_oid *v = NULL;
		uint32_t cnt;
		if ((rc = idx_read(dir, pk[i].name, &v, &cnt)) < 0)
			break;
		for (uint32_t j = 0; j < cnt && rc >= 0; j++)
			rc = git_packbuilder_insert(pb, &v[j], NULL);
		free(v);
		if (rc < 0)
			rc = sg_git_err(rc, "fold insert");
		pthread_mutex_lock(&fo->lock);
		if (fo->stop && rc >= 0)
			rc = -ECANCELED;
		pthread_mutex_unlock(&fo->lock);
	}
	if (rc < 0)
		goto out;
	objects = git_packbuilder_object_count(pb);
	if ((rc = git_packbuilder_write(pb, NULL, 0, NULL, NULL)) < 0) {
		rc = sg_git_err(rc, "fold write");
		goto out;
	}
	snprintf(name, sizeof(name), "pack-%s", git_oid_tostr_s(git_packbuilder_hash(pb)));
	for (size_t i = 0; i < k; i++) {
		if (strcmp(pk[i].name, name) == 0)
			continue;
		if (fo->nret == fo->capret) {
			size_t c = fo->capret ? fo->capret * 2 : 64;
			struct retired *v = realloc(fo->ret, c * sizeof(*v));
			if (!v)
				break; /* left for the next fold to take in */
			fo->ret = v;
			fo->capret = c;
		}
		snprintf(fo->ret[fo->nret].name, sizeof(fo->ret[0].name), "%s", pk[i].name);
		fo->ret[fo->nret++].since_ns = sg_mono_ns();
	}
	atomic_fetch_sub(fo->packs_live, (int)k - 1);
	atomic_fetch_add(&fo->folds, 1);
	sg_log(SG_LOG_INFO, DOMAIN, "SIGIL-GIT-FOLD",
	       "folded %zu of the mirror's %zu packs into one of %" PRIu64 " objects, %" PRId64
	       " ms",
	       k, n, objects, (sg_mono_ns() - t0) / 1000000);
out:
	git_packbuilder_free(pb);
	git_repository_free(repo);
	free(pk);
	return rc;
}

static void *folder_main(void *arg)
{
	struct folder *fo = arg;

	sg_thread_name("sigil-folder");
	/* folds wait for whatever else wants the CPU, the mirror's commits first */
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
	pthread_mutex_lock(&fo->lock);
	while (!fo->stop) {
		if (!fo->due) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += fo->nret ? FOLD_GRACE_NS / 1000000000 : 3600;
			pthread_cond_timedwait(&fo->cond, &fo->lock, &ts);
			if (!fo->nret && !fo->due)
				continue;
		}
		fo->due = 0;
		pthread_mutex_unlock(&fo->lock);
		retired_delete(fo, 0);
		int rc = fold(fo);
		if (rc < 0 && rc != -ECANCELED)
			sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-GIT-FOLD",
			       "cannot fold the mirror's packs: %s",
			       rc == -EIO ? git_msg() : strerror(-rc));
		pthread_mutex_lock(&fo->lock);
	}
	pthread_mutex_unlock(&fo->lock);
	return NULL;
}

static struct folder *folder_start(const char *path, pthread_rwlock_t *lock, _Atomic uint64_t *gen,
                                   _Atomic int *live)
{
	struct folder *fo = calloc(1, sizeof(*fo));

	if (!fo)
		return NULL;
	pthread_mutex_init(&fo->lock, NULL);
	sg_cond_init_mono(&fo->cond);
	fo->packs_lock = lock;
	fo->packs_gen = gen;
	fo->packs_live = live;
	fo->due = 1; /* what an earlier run left */
	if (!(fo->path = strdup(path)) || pthread_create(&fo->thread, NULL, folder_main, fo) != 0) {
		free(fo->path);
		pthread_mutex_destroy(&fo->lock);
		pthread_cond_destroy(&fo->cond);
		free(fo);
		return NULL;
	}
	return fo;
}

static void folder_kick(struct folder *fo)
{
	if (!fo)
		return;
	pthread_mutex_lock(&fo->lock);
	fo->due = 1;
	pthread_cond_signal(&fo->cond);
	pthread_mutex_unlock(&fo->lock);
}

/* Stop the folder (a fold in progress ends at its next pack) and delete
 * what it has folded: the mirror thread is gone by then. */
static void folder_stop(struct folder *fo)
{
	if (!fo)
		return;
	pthread_mutex_lock(&fo->lock);
	fo->stop = 1;
	pthread_cond_signal(&fo->cond);
	pthread_mutex_unlock(&fo->lock);
	pthread_join(fo->thread, NULL);
	retired_delete(fo, 1);
	free(fo->ret);
	free(fo->path);
	pthread_mutex_destroy(&fo->lock);
	pthread_cond_destroy(&fo->cond);
	free(fo);
}

/* ---- the thread ---- */

static void *mirror_main(void *arg)
{
	sg_mirror *m = arg;
	int64_t last_ns = 0, first_ns = 0, last_end = 0;
	int idle;
	int failing = 0, stop_batches = 0;

	sg_thread_name("sigil-mirror");
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
		if (behind && !urgent) {
			/* changes still coming belong with this batch, and what
			 * follows a delete likely does too (an editor's save); a
			 * change still waits at most about an interval */
			int64_t hold = m->last_note_ns + QUIET_NS;
			int64_t cap =
			    (first_ns ? first_ns : now) + (int64_t)m->interval_ms * 1000000;
			if (m->del_tail_ns && m->del_tail_ns + DEL_HOLD_NS > hold)
				hold = m->del_tail_ns + DEL_HOLD_NS;
			if (hold > cap)
				hold = cap;
			if (hold > due)
				due = hold;
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
			int64_t started = sg_mono_ns();
			int rc;
			pthread_mutex_unlock(&m->lock);
			pthread_rwlock_rdlock(&m->packs_lock);
			rc = batch(m);
			pthread_rwlock_unlock(&m->packs_lock);
			pthread_mutex_lock(&m->lock);
			last_end = sg_mono_ns();
			/* the next batch one interval after this one started, so
			 * that under a steady load a change waits about an interval
			 * (after a failure: one interval after it) */
			last_ns = rc < 0 ? sg_mono_ns() : started;
			if (rc < 0) {
				atomic_fetch_add(&m->failures, 1);
				if (!m->fail_since_ms)
					m->fail_since_ms = sg_now_ns() / 1000000;
				snprintf(m->fail_err, sizeof(m->fail_err), "%.40s (%.150s)",
				         strerror(-rc), m->last_err);
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
				m->fail_since_ms = 0;
				m->fail_err[0] = '\0';
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
		/* housekeeping waits until the mirror has been idle a moment: a
		 * commit that follows at once (a flush after a write) would wait */
		idle = !behind && now - last_end >= IDLE_NS;
		if (idle && m->unsettled) {
			/* idle: let the object database read this batch's pack */
			pthread_mutex_unlock(&m->lock);
			pthread_rwlock_rdlock(&m->packs_lock);
			if (odb_settle(m) < 0)
				repo_close(m); /* the next batch opens it afresh */
			pthread_rwlock_unlock(&m->packs_lock);
			pthread_mutex_lock(&m->lock);
			continue;
		}
		if (idle && atomic_load(&m->packs_gen) != m->packs_seen) {
			/* packs were folded away: reopen now, while idle, not at the
			 * next commit */
			pthread_mutex_unlock(&m->lock);
			pthread_rwlock_rdlock(&m->packs_lock);
			if (packs_fresh(m) < 0)
				m->packs_seen =
				    atomic_load(&m->packs_gen); /* the next batch retries */
			pthread_rwlock_unlock(&m->packs_lock);
			pthread_mutex_lock(&m->lock);
			continue;
		}
		{
			struct timespec ts;
			int64_t wait_ns = behind ? due - now : 1000000000LL;
			if (!behind &&
			    (m->unsettled || atomic_load(&m->packs_gen) != m->packs_seen) &&
			    last_end + IDLE_NS - now < wait_ns)
				wait_ns = last_end + IDLE_NS - now;
			if (wait_ns < 1000000)
				wait_ns = 1000000;
			ts = sg_mono_deadline(sg_mono_ns() + wait_ns);
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

/* libgit2's pack backend without its rescan of objects/pack on each failed
 * lookup, which is every new object a batch writes (a readdir per blob and
 * tree): the mirror thread rescans once per pack it writes (packs_rescan). */
struct packs_be {
	git_odb_backend parent;
	git_odb_backend *in;
};

#define PB_IN(b) (((struct packs_be *)(b))->in)

static int pb_read(void **d, size_t *l, git_object_t *t, git_odb_backend *b, const git_oid *o)
{
	return PB_IN(b)->read(d, l, t, PB_IN(b), o);
}

static int pb_read_prefix(git_oid *out, void **d, size_t *l, git_object_t *t, git_odb_backend *b,
                          const git_oid *o, size_t n)
{
	return PB_IN(b)->read_prefix(out, d, l, t, PB_IN(b), o, n);
}

static int pb_read_header(size_t *l, git_object_t *t, git_odb_backend *b, const git_oid *o)
{
	return PB_IN(b)->read_header(l, t, PB_IN(b), o);
}

static int pb_exists(git_odb_backend *b, const git_oid *o)
{
	return PB_IN(b)->exists(PB_IN(b), o);
}

static int pb_exists_prefix(git_oid *out, git_odb_backend *b, const git_oid *o, size_t n)
{
	return PB_IN(b)->exists_prefix(out, PB_IN(b), o, n);
}

static int pb_freshen(git_odb_backend *b, const git_oid *o)
{
	return PB_IN(b)->freshen(PB_IN(b), o);
}

static int pb_foreach(git_odb_backend *b, git_odb_foreach_cb cb, void *payload)
{
	return PB_IN(b)->foreach (PB_IN(b), cb, payload);
}

static void pb_free(git_odb_backend *b)
{
	PB_IN(b)->free(PB_IN(b));
	free(b);
}

/* The in-memory backend, asked first for every object: a miss there (most
 * reads of the trees on disk) returns without the error message libgit2
 * formats for it, an object id printed each time. */
static int mp_read(void **d, size_t *l, git_object_t *t, git_odb_backend *b, const git_oid *o)
{
	return PB_IN(b)->exists(PB_IN(b), o) ? PB_IN(b)->read(d, l, t, PB_IN(b), o) : GIT_ENOTFOUND;
}

static int mp_read_header(size_t *l, git_object_t *t, git_odb_backend *b, const git_oid *o)
{
	return PB_IN(b)->exists(PB_IN(b), o) ? PB_IN(b)->read_header(l, t, PB_IN(b), o)
	                                     : GIT_ENOTFOUND;
}

static int mp_write(git_odb_backend *b, const git_oid *o, const void *d, size_t l, git_object_t t)
{
	return PB_IN(b)->write(PB_IN(b), o, d, l, t);
}

/* Let the object database see the packs written since the last time. */
static int packs_rescan(sg_mirror *m)
{
	return m->packs->refresh(m->packs);
}

/*
 * The mirror thread's object database: the batch's new objects in memory
 * (written to disk as one pack per batch), the packs (see packs_be), and
 * loose objects. A libgit2 code.
 */
static int odb_setup(sg_mirror *m)
{
	char dir[4200];
	git_odb_backend *b = NULL;
	struct packs_be *pb;
	int rc;

	if ((rc = git_odb_new(&m->odb)) < 0)
		return rc;
	snprintf(dir, sizeof(dir), "%s/objects", m->path);
	if ((rc = git_odb_backend_loose(&b, dir, -1, 1, 0, 0)) < 0)
		return rc;
	if ((rc = git_odb_add_backend(m->odb, b, 1)) < 0) {
		b->free(b);
		return rc;
	}
	if ((rc = git_odb_backend_pack(&b, dir)) < 0)
		return rc;
	if (!(pb = calloc(1, sizeof(*pb)))) {
		b->free(b);
		git_error_set_oom();
		return -1;
	}
	git_odb_init_backend(&pb->parent, GIT_ODB_BACKEND_VERSION);
	pb->in = b;
	pb->parent.read = pb_read;
	pb->parent.read_prefix = pb_read_prefix;
	pb->parent.read_header = pb_read_header;
	pb->parent.exists = pb_exists;
	pb->parent.exists_prefix = pb_exists_prefix;
	pb->parent.freshen = pb_freshen;
	pb->parent.foreach = pb_foreach;
	pb->parent.free = pb_free;
	if ((rc = git_odb_add_backend(m->odb, &pb->parent, 2)) < 0) {
		pb_free(&pb->parent);
		return rc;
	}
	m->packs = b;
	if ((rc = git_mempack_new(&m->mempack)) < 0)
		return rc;
	if (!(pb = calloc(1, sizeof(*pb)))) {
		m->mempack->free(m->mempack);
		m->mempack = NULL;
		git_error_set_oom();
		return -1;
	}
	/* the batch's objects, asked first; a miss there says nothing (see mp_read) */
	git_odb_init_backend(&pb->parent, GIT_ODB_BACKEND_VERSION);
	pb->in = m->mempack;
	pb->parent.read = mp_read;
	pb->parent.read_header = mp_read_header;
	pb->parent.read_prefix = pb_read_prefix;
	pb->parent.write = mp_write;
	pb->parent.exists = pb_exists;
	pb->parent.free = pb_free;
	if ((rc = git_odb_add_backend(m->odb, &pb->parent, 999)) < 0) {
		pb_free(&pb->parent);
		m->mempack = NULL;
		return rc;
	}
	return git_repository_set_odb(m->repo, m->odb);
}

/*
 * libgit2's packbuilder (an import's batch, a fold) tries each object
 * against the ten before it for a delta. For unrelated content that costs
 * about 200 ms per MiB of the batch (100 files of 1 MiB of random data:
 * 26 s, against 5 s without the search), uncancellable, and the daemon's
 * exit waits for the batch. Large files rarely delta well against each
 * other; objects over PACK_BIG_BYTES go in whole (compressed).
 *
 * libgit2 (1.5.1, and still upstream) reads its big-file threshold from the
 * key pack.deltaCacheSize, a slip for pack.bigFileThreshold; both are set,
 * so the threshold holds either way. The delta cache (deltas kept between
 * the search and the write, else made again) is bounded by the same value.
 * Set in the mirror's own config only where absent, so an administrator's
 * value stands.
 */
#define PACK_BIG_BYTES (512 << 10)

static void repo_tune(sg_mirror *m)
{
	static const char *const keys[] = {"pack.bigFileThreshold", "pack.deltaCacheSize"};
	git_config *cfg = NULL;
	int64_t v;

	if (git_repository_config(&cfg, m->repo) < 0)
		return;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (git_config_get_int64(&v, cfg, keys[i]) == GIT_ENOTFOUND &&
		    git_config_set_int64(cfg, keys[i], PACK_BIG_BYTES) < 0)
			sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-GIT-CONFIG",
			       "cannot set %s in the mirror %s: %s", keys[i], m->path, git_msg());
	git_config_free(cfg);
}

static int repo_open(sg_mirror *m, int may_create)
{
	char head[200];
	int rc = git_repository_open_bare(&m->repo, m->path);

	if (rc == GIT_ENOTFOUND && may_create) {
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
	repo_tune(m);
	if ((rc = odb_setup(m)) < 0) {
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
	/* and the file that named the base packs of earlier versions */
	static const char *const locks[] = {"HEAD.lock", "packed-refs.lock", "config.lock",
	                                    "sigil-base.tmp", "sigil-base"};
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
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (strncmp(de->d_name, "pack_git2_", 10) == 0 ||
		    strncmp(de->d_name, "tmp_", 4) == 0) {
			unlink(p);
		} else if (strncmp(de->d_name, "pack-", 5) == 0 && l > 5 &&
		           strcmp(de->d_name + l - 5, ".pack") == 0) {
			/* a pack renamed into place without its index: never used */
			char idx[4500];
			snprintf(idx, sizeof(idx), "%.*s.idx", (int)(strlen(p) - 5), p);
			if (access(idx, F_OK) != 0)
				unlink(p);
		}
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
	folder_stop(m->folder);
	git_tree_free(m->tree);
	git_odb_free(m->odb); /* frees the mempack backend it owns */
	git_repository_free(m->repo);
	sg_gitmeta_clear(&m->meta);
	free(m->path);
	free(m->node);
	free(m->branch);
	free(m->remote);
	free(m->local_only);
	free(m->ren);
	while (m->annots) {
		struct annot *a = m->annots;
		m->annots = a->next;
		annot_free(a);
	}
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	pthread_cond_destroy(&m->done);
	if (m->packs_lock_made)
		pthread_rwlock_destroy(&m->packs_lock);
	free(m);
	if (!stuck)
		sg_git_shutdown(); /* else the abandoned push still runs in libgit2 */
}

int sg_mirror_start(sg_mirror **out, const sg_mirror_opts *o)
{
	sg_mirror *m;
	char branch[80];
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
	sg_cond_init_mono(&m->cond);
	pthread_cond_init(&m->done, NULL);
	pthread_rwlock_init(&m->packs_lock, NULL); /* glibc's default: readers first */
	m->packs_lock_made = 1;
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
	if ((rc = repo_open(m, 1)) < 0 || (rc = head_load(m)) < 0) {
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
	if (!(m->folder = folder_start(m->path, &m->packs_lock, &m->packs_gen, &m->packs_live))) {
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
	if (!m->watching) {
		uint64_t lo = UINT64_MAX;
		for (size_t i = 0; i < n; i++)
			lo = notes[i].version < lo ? notes[i].version : lo;
		m->watched_from = lo - 1;
		m->watching = 1;
	}
	for (size_t i = 0; i < n; i++) {
		const sg_note *e = &notes[i];
		if (e->local == SG_NOTE_REMOTE || e->type != SG_TYPE_TOMBSTONE || !e->old_id ||
		    e->old_id == e->id)
			continue;
		if (m->nren == m->capren) {
			size_t cap = m->capren ? m->capren * 2 : 64;
			struct ren *r =
			    cap <= RENAMES_MAX ? realloc(m->ren, cap * sizeof(*r)) : NULL;
			if (!r)
				continue; /* that move reads as a delete and an add */
			m->ren = r;
			m->capren = cap;
		}
		m->ren[m->nren++] = (struct ren){e->id, e->old_id, e->version};
	}
	if (v > m->noted)
		m->noted = v;
	m->del_tail_ns = 0;
	m->last_note_ns = sg_mono_ns();
	for (size_t i = 0; i < n; i++)
		if (notes[i].local != SG_NOTE_REMOTE && notes[i].type == SG_TYPE_TOMBSTONE)
			m->del_tail_ns = sg_mono_ns();
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
	uint64_t want;
	int rc;

	/* a write acknowledged before the flush may not be committed yet: the
	 * log, and the version, count it once it is */
	if ((rc = sg_store_settle(m->st)) < 0)
		return rc;
	want = sg_store_version(m->st);

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
	out->failures = atomic_load(&m->failures);
	if (m->fail_since_ms) {
		out->failing_ms = sg_now_ns() / 1000000 - m->fail_since_ms;
		if (out->failing_ms < 1)
			out->failing_ms = 1;
		snprintf(out->error, sizeof(out->error), "%s", m->fail_err);
	}
	pthread_mutex_unlock(&m->lock);
}

void sg_mirror_hold(sg_mirror *m, const char *repo)
{
	if (m && repo && strcmp(repo, m->path) == 0)
		pthread_rwlock_rdlock(&m->packs_lock);
}

void sg_mirror_release(sg_mirror *m, const char *repo)
{
	if (m && repo && strcmp(repo, m->path) == 0)
		pthread_rwlock_unlock(&m->packs_lock);
}
