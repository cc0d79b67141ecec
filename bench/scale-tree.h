/* scale-tree.h: the synthetic tree of the scale benchmark, shared by
 * bench/mkstore.c (fills a sigilfs store) and bench/scale-bench.c (builds the
 * same tree on a plain file system and picks files in it), so both agree on
 * every name and every byte.
 *
 * A tree of N files:
 *   big10k/fNNNNNNN.conf    10,000 files  (when N >= 100,000)
 *   big100k/fNNNNNNN.conf   100,000 files (when N >= 1,000,000)
 *   t/dDDDD/fNNNNNNN.conf   the rest, 1,000 files per directory
 * File i (0 <= i < N) has st_size bytes of text that name it, so a read can
 * check it got the right file.
 */
#ifndef SCALE_TREE_H
#define SCALE_TREE_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define ST_PER_DIR 1000u

typedef struct st_tree {
	uint64_t n;     /* files in all */
	uint64_t n10k;  /* files in big10k/ (0 or 10,000) */
	uint64_t n100k; /* files in big100k/ (0 or 100,000) */
	uint64_t nrest; /* files under t/ */
	uint64_t ndirs; /* directories under t/ */
	unsigned size;  /* bytes per file */
} st_tree;

static inline void st_tree_init(st_tree *t, uint64_t n, unsigned size)
{
	t->n = n;
	t->size = size;
	t->n10k = n >= 100000 ? 10000 : 0;
	t->n100k = n >= 1000000 ? 100000 : 0;
	t->nrest = n - t->n10k - t->n100k;
	t->ndirs = (t->nrest + ST_PER_DIR - 1) / ST_PER_DIR;
}

/* Path of file i relative to the tree's root; *dir gets the length of its
 * directory part (so path[0..dir) is the directory). */
static inline int st_path(const st_tree *t, uint64_t i, char *out, size_t len, size_t *dir)
{
	int n;

	if (i < t->n10k) {
		n = snprintf(out, len, "big10k/f%07llu.conf", (unsigned long long)i);
		*dir = 6;
	} else if (i < t->n10k + t->n100k) {
		n = snprintf(out, len, "big100k/f%07llu.conf", (unsigned long long)i);
		*dir = 7;
	} else {
		uint64_t r = i - t->n10k - t->n100k;
		n = snprintf(out, len, "t/d%05llu/f%07llu.conf",
		             (unsigned long long)(r / ST_PER_DIR), (unsigned long long)i);
		*dir = 8;
	}
	return n;
}

/* Directories, parents first: "t", then "t/dDDDDD", "big10k", "big100k". */
static inline uint64_t st_ndirs(const st_tree *t)
{
	return 1 + t->ndirs + (t->n10k ? 1 : 0) + (t->n100k ? 1 : 0);
}

static inline void st_dir(const st_tree *t, uint64_t k, char *out, size_t len)
{
	if (k == 0)
		snprintf(out, len, "t");
	else if (k <= t->ndirs)
		snprintf(out, len, "t/d%05llu", (unsigned long long)(k - 1));
	else if (k == t->ndirs + 1 && t->n10k)
		snprintf(out, len, "big10k");
	else
		snprintf(out, len, "big100k");
}

/* Content of file i: t->size bytes (no NUL) into buf. */
static inline void st_content(const st_tree *t, uint64_t i, char *buf)
{
	int n = snprintf(buf, t->size + 1, "# file %llu of the scale benchmark\nkey = %llu\n",
	                 (unsigned long long)i, (unsigned long long)(i * 2654435761u));
	if (n < 0)
		n = 0;
	for (unsigned k = (unsigned)n < t->size ? (unsigned)n : t->size; k < t->size; k++)
		buf[k] = k + 1 == t->size ? '\n' : 'a' + (char)((i + k) % 26);
}

#endif
