/* check.c: sg_store_check(), a read-only walk over every table that verifies
 * the store's invariants (for sigilctl check, and for the tests). */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lmdb/store_i.h"

#define MAX_REPORTED 100

struct chk {
	sg_store *st;
	MDB_txn *txn;
	sg_check_cb cb;
	void *ctx;
	int problems;
	uint64_t n_live, n_tombs, max_id;
	/* child counts, accumulated while the directory table is walked in key order */
	uint64_t cur_parent, cur_nchild, cur_nsubdir;
};

static void problem(struct chk *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct chk *k, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (++k->problems > MAX_REPORTED || !k->cb)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	k->cb(k->ctx, msg);
}

/* Walk every row of one table: fn(key, value) for each. */
static int walk(struct chk *k, MDB_dbi dbi,
                void (*fn)(struct chk *, const MDB_val *, const MDB_val *))
{
	MDB_cursor *cur;
	MDB_val key, val;
	int rc = mdb_cursor_open(k->txn, dbi, &cur), op = MDB_FIRST;

	if (rc)
		return sg_mdb_err(rc);
	while ((rc = mdb_cursor_get(cur, &key, &val, op)) == 0) {
		fn(k, &key, &val);
		op = MDB_NEXT;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : sg_mdb_err(rc);
}

static int is_live(uint32_t type)
{
	return type == SG_TYPE_FILE || type == SG_TYPE_DIR || type == SG_TYPE_SYMLINK;
}

static void check_entry(struct chk *k, const MDB_val *key, const MDB_val *val)
{
	char name[SG_NAME_MAX + 1];
	struct sg_rec rec, parent;
	unsigned char lk[8];
	MDB_val lkey = {8, lk}, lval, dval;
	uint64_t id, did;
	uint32_t dtype;
	int rc;

	if (key->mv_size != 8) {
		problem(k, "ent: a key of %zu bytes", key->mv_size);
		return;
	}
	id = sg_get_be64(key->mv_data);
	if (id > k->max_id)
		k->max_id = id;
	rc = sg_rec_get(k->st, k->txn, id, &rec, name);
	if (rc) {
		problem(k, "entry %llu: unreadable record (%zu bytes)", (unsigned long long)id,
		        val->mv_size);
		return;
	}
	if (is_live(rec.type))
		k->n_live++;
	else if (rec.type == SG_TYPE_TOMBSTONE)
		k->n_tombs++;
	else
		problem(k, "entry %llu: type %u", (unsigned long long)id, rec.type);
	/* content */
	sg_be64(lk, id);
	rc = mdb_get(k->txn, k->st->data, &lkey, &dval);
	if (rec.type == SG_TYPE_FILE || rec.type == SG_TYPE_SYMLINK) {
		size_t have = rc == 0 ? dval.mv_size : 0;
		if (have != rec.size)
			problem(k, "entry %llu (%s): size %llu but %zu bytes of content",
			        (unsigned long long)id, name, (unsigned long long)rec.size, have);
	} else if (rc == 0) {
		problem(k, "entry %llu (%s): content on a directory or tombstone",
		        (unsigned long long)id, name);
	}
	if (id == SG_ROOT_ID)
		return;
	/* its log row points back at it */
	if (rec.version == 0) {
		problem(k, "entry %llu (%s): no version", (unsigned long long)id, name);
	} else {
		sg_be64(lk, rec.version);
		rc = mdb_get(k->txn, k->st->log, &lkey, &lval);
		if (rc || lval.mv_size != 8 || sg_get_be64(lval.mv_data) != id)
			problem(k, "entry %llu (%s): log row %llu does not point at it",
			        (unsigned long long)id, name, (unsigned long long)rec.version);
	}
	/* its directory row, under its parent */
	rc = sg_dirent_get(k->st, k->txn, rec.parent, name, &did, &dtype);
	if (rc || did != id || dtype != rec.type)
		problem(k, "entry %llu (%s): no matching row in directory %llu",
		        (unsigned long long)id, name, (unsigned long long)rec.parent);
	rc = sg_rec_get(k->st, k->txn, rec.parent, &parent, NULL);
	if (rc)
		problem(k, "entry %llu (%s): parent %llu is missing", (unsigned long long)id, name,
		        (unsigned long long)rec.parent);
	else if (is_live(rec.type) && parent.type != SG_TYPE_DIR)
		problem(k, "entry %llu (%s): live under parent %llu of type %u",
		        (unsigned long long)id, name, (unsigned long long)rec.parent, parent.type);
}

static void check_log(struct chk *k, const MDB_val *key, const MDB_val *val)
{
	struct sg_rec rec;
	uint64_t version, id;

	if (key->mv_size != 8 || val->mv_size != 8) {
		problem(k, "log: a row of %zu/%zu bytes", key->mv_size, val->mv_size);
		return;
	}
	version = sg_get_be64(key->mv_data);
	id = sg_get_be64(val->mv_data);
	if (sg_rec_get(k->st, k->txn, id, &rec, NULL) != 0)
		problem(k, "log row %llu: entry %llu is missing", (unsigned long long)version,
		        (unsigned long long)id);
	else if (rec.version != version)
		problem(k, "log row %llu: entry %llu is at version %llu",
		        (unsigned long long)version, (unsigned long long)id,
		        (unsigned long long)rec.version);
}

static void flush_counts(struct chk *k)
{
	struct sg_rec p;

	if (!k->cur_parent)
		return;
	if (sg_rec_get(k->st, k->txn, k->cur_parent, &p, NULL) == 0 && p.type == SG_TYPE_DIR &&
	    (p.nchild != k->cur_nchild || p.nsubdir != k->cur_nsubdir))
		problem(k, "directory %llu: counts %u children, %u subdirs; has %llu, %llu",
		        (unsigned long long)k->cur_parent, p.nchild, p.nsubdir,
		        (unsigned long long)k->cur_nchild, (unsigned long long)k->cur_nsubdir);
}

static void check_dirent(struct chk *k, const MDB_val *key, const MDB_val *val)
{
	char name[SG_NAME_MAX + 1];
	struct sg_rec rec;
	uint64_t parent, id;
	uint32_t type;
	size_t n;

	if (key->mv_size <= 8 || key->mv_size > 8 + SG_NAME_MAX || val->mv_size != 9) {
		problem(k, "dir: a row of %zu/%zu bytes", key->mv_size, val->mv_size);
		return;
	}
	parent = sg_get_be64(key->mv_data);
	n = key->mv_size - 8;
	id = sg_get_be64(val->mv_data);
	type = ((unsigned char *)val->mv_data)[8];
	if (parent != k->cur_parent) {
		flush_counts(k);
		k->cur_parent = parent;
		k->cur_nchild = k->cur_nsubdir = 0;
	}
	if (is_live(type)) {
		k->cur_nchild++;
		k->cur_nsubdir += type == SG_TYPE_DIR;
	}
	if (sg_rec_get(k->st, k->txn, id, &rec, name) != 0) {
		problem(k, "directory %llu row %.*s: entry %llu is missing",
		        (unsigned long long)parent, (int)n, (char *)key->mv_data + 8,
		        (unsigned long long)id);
		return;
	}
	if (rec.parent != parent || rec.namelen != n || memcmp(name, (char *)key->mv_data + 8, n) ||
	    rec.type != type)
		problem(k, "directory %llu row %.*s: entry %llu says %llu/%s type %u",
		        (unsigned long long)parent, (int)n, (char *)key->mv_data + 8,
		        (unsigned long long)id, (unsigned long long)rec.parent, name, rec.type);
}

static void check_data(struct chk *k, const MDB_val *key, const MDB_val *val)
{
	struct sg_rec rec;
	uint64_t id;

	if (key->mv_size != 8) {
		problem(k, "data: a key of %zu bytes", key->mv_size);
		return;
	}
	id = sg_get_be64(key->mv_data);
	if (sg_rec_get(k->st, k->txn, id, &rec, NULL) != 0)
		problem(k, "data of entry %llu: the entry is missing", (unsigned long long)id);
}

int sg_store_check(sg_store *st, sg_check_cb cb, void *ctx, uint64_t *checked)
{
	struct chk k = {.st = st, .cb = cb, .ctx = ctx};
	uint64_t meta_live, meta_tombs, next_id, version, checked_n;
	int rc;

	rc = sg_rd_begin_committed(st, &k.txn);
	if (rc)
		return rc;
	rc = walk(&k, st->ent, check_entry);
	checked_n = k.n_live + k.n_tombs;
	rc = rc ? rc : walk(&k, st->log, check_log);
	rc = rc ? rc : walk(&k, st->dir, check_dirent);
	if (!rc)
		flush_counts(&k);
	rc = rc ? rc : walk(&k, st->data, check_data);
	if (!rc) {
		rc = sg_meta_get(st, k.txn, "live", &meta_live);
		rc = rc ? rc : sg_meta_get(st, k.txn, "tombs", &meta_tombs);
		rc = rc ? rc : sg_meta_get(st, k.txn, "next_id", &next_id);
		rc = rc ? rc : sg_meta_get(st, k.txn, "version", &version);
	}
	if (!rc) {
		if (meta_live != k.n_live || meta_tombs != k.n_tombs)
			problem(&k, "meta counts %llu live, %llu tombstones; found %llu, %llu",
			        (unsigned long long)meta_live, (unsigned long long)meta_tombs,
			        (unsigned long long)k.n_live, (unsigned long long)k.n_tombs);
		if (next_id <= k.max_id)
			problem(&k, "meta next_id %llu is not above the largest id %llu",
			        (unsigned long long)next_id, (unsigned long long)k.max_id);
	}
	if (!rc) {
		sg_horizon h;

		rc = sg_horizon_read(st, k.txn, &h);
		if (!rc && h.version > version)
			problem(&k, "meta purge_version %llu is past the version %llu",
			        (unsigned long long)h.version, (unsigned long long)version);
	}
	sg_rd_end(st, k.txn);
	if (checked)
		*checked = checked_n;
	return rc < 0 ? rc : k.problems;
}
