/* test_damage.c: damage a sigilfs store on purpose, for the integration
 * tests of `sigilctl check` (t0220): delete the change log's row of one
 * entry, with the daemon down. Not installed.
 *
 *	test_damage DATADIR ENTRY_ID
 *
 * Exit 0 when exactly one row went, 1 otherwise (with a line on stderr). */
#include "config.h"

#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_dbi log;
	MDB_val key, val;
	uint64_t id;
	int rc, gone = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: test_damage DATADIR ENTRY_ID\n");
		return 2;
	}
	id = strtoull(argv[2], NULL, 10);
	rc = mdb_env_create(&env);
	rc = rc ? rc : mdb_env_set_maxdbs(env, 12);
	rc = rc ? rc : mdb_env_set_mapsize(env, 1ULL << 30);
	rc = rc ? rc : mdb_env_open(env, argv[1], 0, 0600);
	rc = rc ? rc : mdb_txn_begin(env, NULL, 0, &txn);
	rc = rc ? rc : mdb_dbi_open(txn, "log", 0, &log);
	rc = rc ? rc : mdb_cursor_open(txn, log, &cur);
	while (rc == 0 && (rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) == 0) {
		const unsigned char *p = val.mv_data;
		uint64_t v = 0;
		if (val.mv_size != 8)
			continue;
		for (int i = 0; i < 8; i++) /* the entry's id, big-endian */
			v = v << 8 | p[i];
		if (v == id && (rc = mdb_cursor_del(cur, 0)) == 0)
			gone++;
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
	if (cur)
		mdb_cursor_close(cur);
	if (rc == 0) {
		rc = mdb_txn_commit(txn); /* frees the transaction either way */
		txn = NULL;
	}
	if (txn)
		mdb_txn_abort(txn);
	if (env)
		mdb_env_close(env);
	if (rc || gone != 1) {
		fprintf(stderr, "test_damage: %s: %s, %d log rows of entry %llu deleted\n", argv[1],
		        rc ? mdb_strerror(rc) : "done", gone, (unsigned long long)id);
		return 1;
	}
	return 0;
}
