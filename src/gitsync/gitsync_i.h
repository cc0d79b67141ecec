/* gitsync_i.h: private to src/gitsync/: the metadata file (".sigil") that
 * carries what Git cannot hold, and the one libgit2 error translation. */
#ifndef SIGIL_GITSYNC_I_H
#define SIGIL_GITSYNC_I_H

#include <stddef.h>
#include <stdint.h>

#include <git2.h>

#include "gitsync.h"

#define DOMAIN "gitsync"

/** One extended attribute of a path, owned by the map. */
struct sg_gitmeta_x {
	char *name;
	void *value;
	size_t len;
};

/** What the metadata file says about one path. */
struct sg_gitmeta_ent {
	char *path;    /**< "" is the root */
	uint32_t type; /**< SG_TYPE_DIR, SG_TYPE_FILE or SG_TYPE_SYMLINK */
	uint32_t mode, uid, gid;
	int attrs; /**< the "d/f/l" line is present (always for a directory) */
	struct sg_gitmeta_x *x;
	size_t nx;
	struct sg_gitmeta_ent *next; /* hash chain */
};

/** A path -> entry map: the metadata of one tree. */
typedef struct sg_gitmeta {
	struct sg_gitmeta_ent **b;
	size_t nb, n;
} sg_gitmeta;

void sg_gitmeta_init(sg_gitmeta *m);
void sg_gitmeta_clear(sg_gitmeta *m);

/**
 * Parse a metadata file's text into m (which is cleared first).
 * @return 0, or -EINVAL with "line N: problem" in err.
 */
int sg_gitmeta_parse(sg_gitmeta *m, const char *buf, size_t len, char *err, size_t errlen);

/** Serialize, sorted by path. @param[out] out malloc'd text. */
int sg_gitmeta_serialize(const sg_gitmeta *m, char **out, size_t *len);

const struct sg_gitmeta_ent *sg_gitmeta_get(const sg_gitmeta *m, const char *path);

/**
 * Record a path's attributes and xattrs: a directory always, a file or
 * symlink only where they differ from what the tree implies (root owner,
 * 0644/0755 for a file, no xattrs). Removes the path's record otherwise.
 * @return 1 if the map changed, 0 if not, -ENOMEM.
 */
int sg_gitmeta_set(sg_gitmeta *m, const char *path, uint32_t type, uint32_t mode, uint32_t uid,
                   uint32_t gid, const sg_xattr *x, size_t nx);

/** Forget `path` (and with sub != 0 everything under it), telling `gone`
 *  (may be NULL) of each record before it goes. Returns 1 if the map changed. */
int sg_gitmeta_remove(sg_gitmeta *m, const char *path, int sub,
                      void (*gone)(void *ctx, const struct sg_gitmeta_ent *e), void *ctx);

/** Call cb for each entry (any order). */
void sg_gitmeta_each(const sg_gitmeta *m, void (*cb)(void *ctx, const struct sg_gitmeta_ent *e),
                     void *ctx);

/** The mode a path gets without a record: from Git's file mode. */
uint32_t sg_gitmeta_default_mode(uint32_t type, int exec);

/** The one place libgit2's codes become errnos; logs libgit2's message at debug level. */
int sg_git_err(int rc, const char *what);

/** Credentials for ssh remotes (git_credential_acquire_cb): the ssh agent's
 *  keys, else just the user name ("git" when the URL names none). */
int sg_git_cred_cb(git_credential **out, const char *url, const char *user, unsigned allowed,
                   void *payload);

/**
 * An in-memory remote for url, as written (no url.*.insteadOf rewriting).
 * @param name  the remote's name, or NULL for an anonymous one (no fetchspec)
 * @param[out] out  the remote, freed with git_remote_free()
 * @return a libgit2 code (0 or negative): pass it through sg_git_err().
 */
int sg_git_remote_new(git_remote **out, git_repository *repo, const char *name, const char *url);

/**
 * A restore starts writing with sg_store_put(): until sg_mirror_restore_end(),
 * the changes the observer reports as SG_NOTE_PUT are its own, and the
 * commits holding them (only them) end with `trailer` (one line, no newline).
 * One restore at a time. m may be NULL. @return 0, -ENOMEM.
 */
int sg_mirror_restore_begin(sg_mirror *m, const char *trailer);

/** A change the open restore made by other means than sg_store_put() (the
 *  root's attributes): its commit carries the restore's trailer too. */
void sg_mirror_restore_mark(sg_mirror *m, uint64_t version);

/** The restore has written all it will (failed != 0: it stopped on an error,
 *  which its trailer then says); with no change its mark goes. */
void sg_mirror_restore_end(sg_mirror *m, int failed);

/** While a restore or diff reads the mirror's own repository (`repo` is its
 *  path; another one is not held), its packs are not folded away. m may be
 *  NULL. Pairs, in this order, from one thread. */
void sg_mirror_hold(sg_mirror *m, const char *repo);
void sg_mirror_release(sg_mirror *m, const char *repo);

/** Is `path` equal to `prefix` or under it? "" is everything's prefix. */
int sg_path_under(const char *path, const char *prefix);

#endif
