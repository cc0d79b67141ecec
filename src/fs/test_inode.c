/* test_inode.c: the inode table (inode.c) against a plain model: lookup
 * counts kept exactly through refs, forgets, pins and opens, whether an
 * inode sits compactly or in full; the stale flag kept across both; the
 * compact map's growth and back-shift deletion under many inodes; inode
 * numbers and counts too big for a compact slot kept in full. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fs/fs_i.h"

static void test_lookup_only_is_compact(void **state)
{
	struct sg_itable t;
	size_t full, compact;
	(void)state;

	assert_int_equal(sg_itable_init(&t), 0);
	sg_inode_ref(&t, 5, 2);
	assert_true(sg_inode_known(&t, 5));
	assert_false(sg_inode_known(&t, 6));
	sg_itable_counts(&t, &full, &compact);
	assert_int_equal(full, 0);
	assert_int_equal(compact, 1);
	/* FIND does not make a full inode of a compact one; KNOWN does */
	assert_null(sg_inode_get(&t, 5, SG_IGET_FIND));
	assert_null(sg_inode_get(&t, 6, SG_IGET_KNOWN));
	struct sg_inode *in = sg_inode_get(&t, 5, SG_IGET_KNOWN);
	assert_non_null(in);
	assert_int_equal(in->nlookup, 2);
	sg_itable_counts(&t, &full, &compact);
	assert_int_equal(full, 1);
	assert_int_equal(compact, 0);
	/* unpinned with nothing in it: back to compact, count intact */
	sg_inode_put(&t, in, 0, 0);
	sg_itable_counts(&t, &full, &compact);
	assert_int_equal(full, 0);
	assert_int_equal(compact, 1);
	sg_inode_forget(&t, 5, 1);
	assert_true(sg_inode_known(&t, 5));
	sg_inode_forget(&t, 5, 1);
	assert_false(sg_inode_known(&t, 5));
	sg_itable_counts(&t, &full, &compact);
	assert_int_equal(full + compact, 0);
	sg_itable_fini(&t);
}

static void test_open_and_buffer_stay_full(void **state)
{
	struct sg_itable t;
	size_t full, compact;
	(void)state;

	assert_int_equal(sg_itable_init(&t), 0);
	sg_inode_ref(&t, 9, 1);
	struct sg_inode *in = sg_inode_get(&t, 9, SG_IGET_CREATE);
	in->nopen = 1;
	in->buf = malloc(16);
	in->loaded = 1;
	sg_inode_put(&t, in, 0, 0);
	/* a lookup while open counts on the full inode */
	sg_inode_ref(&t, 9, 3);
	sg_itable_counts(&t, &full, &compact);
	assert_int_equal(full, 1);
	assert_int_equal(compact, 0);
	/* closed, but the (unlinked) content is kept while the kernel holds it */
	in = sg_inode_get(&t, 9, SG_IGET_FIND);
	assert_non_null(in);
	assert_int_equal(in->nlookup, 4);
	in->gone = 1;
	sg_inode_put(&t, in, 0, 1);
	sg_itable_counts(&t, &full, &compact);
	assert_int_equal(full, 1);
	sg_inode_forget(&t, 9, 4);
	sg_itable_counts(&t, &full, &compact);
	assert_int_equal(full + compact, 0);
	/* an inode opened without a lookup (none counted) goes when closed */
	in = sg_inode_get(&t, 11, SG_IGET_CREATE);
	in->nopen = 1;
	sg_inode_put(&t, in, 0, 0);
	in = sg_inode_get(&t, 11, SG_IGET_FIND);
	sg_inode_put(&t, in, 0, 1);
	sg_itable_counts(&t, &full, &compact);
	assert_int_equal(full + compact, 0);
	sg_itable_fini(&t);
}

static void test_stale_survives_both_forms(void **state)
{
	struct sg_itable t;
	(void)state;

	assert_int_equal(sg_itable_init(&t), 0);
	sg_inode_mark_stale(&t, 3); /* not held: nothing to mark */
	sg_inode_ref(&t, 3, 1);
	sg_inode_mark_stale(&t, 3);
	sg_inode_ref(&t, 3, 1); /* a lookup keeps the flag */
	struct sg_inode *in = sg_inode_get(&t, 3, SG_IGET_CREATE);
	assert_int_equal(atomic_load(&in->stale), 1);
	assert_int_equal(in->nlookup, 2);
	atomic_store(&in->stale, 0); /* an open reloaded it */
	sg_inode_put(&t, in, 0, 0);
	in = sg_inode_get(&t, 3, SG_IGET_KNOWN);
	assert_int_equal(atomic_load(&in->stale), 0);
	atomic_store(&in->stale, 1);
	sg_inode_put(&t, in, 0, 0);
	in = sg_inode_get(&t, 3, SG_IGET_KNOWN);
	assert_int_equal(atomic_load(&in->stale), 1);
	assert_int_equal(in->nlookup, 2);
	sg_inode_put(&t, in, 2, 0);
	assert_false(sg_inode_known(&t, 3));
	sg_itable_fini(&t);
}

/* A compact slot holds a 40-bit inode number and a 23-bit count: anything
 * bigger is kept in full, exactly, and goes compact again once it fits. */
static void test_compact_limits(void **state)
{
	struct sg_itable t;
	size_t full, compact;
	const uint64_t big = SG_ISLOT_INO_MAX + 1, max = SG_ISLOT_COUNT_MAX;
	struct sg_inode *in;
	(void)state;

	assert_int_equal(sg_itable_init(&t), 0);
	/* a number past 40 bits, and the largest that fits, side by side */
	sg_inode_ref(&t, big, 1);
	sg_inode_ref(&t, SG_ISLOT_INO_MAX, 1);
	sg_inode_ref(&t, big + 7, 3);
	sg_itable_counts(&t, &full, &compact);
	assert_int_equal(full, 2);
	assert_int_equal(compact, 1);
	assert_true(sg_inode_known(&t, big));
	assert_true(sg_inode_known(&t, SG_ISLOT_INO_MAX));
	assert_false(sg_inode_known(&t, big + 1));
	/* pinned and unpinned, it stays full with its count */
	in = sg_inode_get(&t, big + 7, SG_IGET_KNOWN);
	assert_non_null(in);
	assert_int_equal(in->nlookup, 3);
	sg_inode_put(&t, in, 1, 0);
	sg_itable_counts(&t, &full, &compact);
	assert_int_equal(full, 2);
	sg_inode_forget(&t, big, 1);
	sg_inode_forget(&t, big + 7, 2);
	sg_inode_forget(&t, SG_ISLOT_INO_MAX, 1);
	sg_itable_counts(&t, &full, &compact);
	assert_int_equal(full + compact, 0);

	/* a count that outgrows the slot moves to a full inode, stale bit and all */
	sg_inode_ref(&t, 42, max - 1);
	sg_inode_mark_stale(&t, 42);
	sg_inode_ref(&t, 42, 1);
	sg_itable_counts(&t, &full, &compact);
	assert_int_equal(full, 0);
	assert_int_equal(compact, 1);
	sg_inode_ref(&t, 42, 2);
	sg_itable_counts(&t, &full, &compact);
	assert_int_equal(full, 1);
	assert_int_equal(compact, 0);
	in = sg_inode_get(&t, 42, SG_IGET_FIND);
	assert_non_null(in);
	assert_true(in->nlookup == max + 2);
	assert_int_equal(atomic_load(&in->stale), 1);
	sg_inode_put(&t, in, 0, 0);
	/* forgotten below the limit: compact again, count and flag intact */
	sg_inode_forget(&t, 42, 3);
	sg_itable_counts(&t, &full, &compact);
	assert_int_equal(full, 0);
	assert_int_equal(compact, 1);
	in = sg_inode_get(&t, 42, SG_IGET_KNOWN);
	assert_true(in->nlookup == max - 1);
	assert_int_equal(atomic_load(&in->stale), 1);
	sg_inode_put(&t, in, max - 2, 0);
	assert_true(sg_inode_known(&t, 42));
	sg_inode_forget(&t, 42, 1);
	assert_false(sg_inode_known(&t, 42));
	/* one lookup reply counting more than a slot holds */
	sg_inode_ref(&t, 43, max + 5);
	sg_itable_counts(&t, &full, &compact);
	assert_int_equal(full, 1);
	sg_inode_forget(&t, 43, max + 5);
	sg_itable_counts(&t, &full, &compact);
	assert_int_equal(full + compact, 0);
	sg_itable_fini(&t);
}

/* Many inodes, random operations, checked against a plain array. */
#define NINO 50000
static void test_model(void **state)
{
	struct sg_itable t;
	uint64_t *model = calloc(NINO + 1, sizeof(*model));
	uint64_t rnd = 0x12345678;
	size_t full, compact, live = 0;
	(void)state;

	assert_non_null(model);
	assert_int_equal(sg_itable_init(&t), 0);
	for (long step = 0; step < 400000; step++) {
		rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
		/* inode numbers spread over a range, some clustered (hash runs) */
		uint64_t ino = 1 + (rnd >> 33) % NINO;
		uint64_t n = 1 + (rnd >> 20) % 3;
		switch ((rnd >> 40) % 4) {
		case 0:
		case 1:
			live += model[ino] == 0;
			model[ino] += n;
			sg_inode_ref(&t, ino, n);
			break;
		case 2:
			if (model[ino] && model[ino] <= n)
				live--;
			model[ino] = model[ino] > n ? model[ino] - n : 0;
			sg_inode_forget(&t, ino, n);
			break;
		default: {
			/* a request pins it for a moment (promote, then demote) */
			struct sg_inode *in = sg_inode_get(&t, ino, SG_IGET_KNOWN);
			if (!model[ino]) {
				assert_null(in);
				break;
			}
			assert_non_null(in);
			assert_int_equal(in->nlookup, model[ino]);
			sg_inode_put(&t, in, 0, 0);
		}
		}
		if (step % 50000 == 0) {
			for (uint64_t i = 1; i <= NINO; i++)
				assert_int_equal(sg_inode_known(&t, i), model[i] != 0);
		}
	}
	sg_itable_counts(&t, &full, &compact);
	assert_int_equal(full, 0);
	assert_int_equal(compact, live);
	for (uint64_t i = 1; i <= NINO; i++) {
		assert_int_equal(sg_inode_known(&t, i), model[i] != 0);
		if (model[i]) {
			struct sg_inode *in = sg_inode_get(&t, i, SG_IGET_KNOWN);
			assert_int_equal(in->nlookup, model[i]);
			sg_inode_put(&t, in, model[i], 0); /* forget it all */
		}
	}
	sg_itable_counts(&t, &full, &compact);
	assert_int_equal(full + compact, 0);
	sg_itable_fini(&t);
	free(model);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lookup_only_is_compact),
	    cmocka_unit_test(test_open_and_buffer_stay_full),
	    cmocka_unit_test(test_stale_survives_both_forms),
	    cmocka_unit_test(test_compact_limits),
	    cmocka_unit_test(test_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
