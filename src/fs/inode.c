/* inode.c: the table of inodes the kernel holds, keyed by inode number (the
 * store's entry id), with lookup counts and each open file's shared buffer.
 *
 * Most inodes the kernel holds have no state beyond their lookup count (a
 * `find` over a million files looks up a million of them): those live in a
 * compact open-addressing map of 8 bytes a slot (a million of them fill 16
 * MiB at a load of at most 3/4, 24 MiB while the map doubles). An inode gets a full
 * struct sg_inode while something uses it (an open handle, a buffer, a
 * request pinning it) and goes back to the compact map when that ends. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "fs/fs_i.h"

/* a compact slot's fields (struct sg_islot) */
#define STALE_BIT (1ULL << SG_ISLOT_COUNT_BITS) /* see sg_inode.stale */
#define COUNT_MASK SG_ISLOT_COUNT_MAX

static uint64_t c_ino(struct sg_islot s)
{
	return s.v >> (SG_ISLOT_COUNT_BITS + 1);
}

static uint64_t c_count(struct sg_islot s)
{
	return s.v & COUNT_MASK;
}

static int c_stale(struct sg_islot s)
{
	return (s.v & STALE_BIT) != 0;
}

/* Can (ino, n) live in a compact slot? */
static int c_fits(uint64_t ino, uint64_t n)
{
	return ino && ino <= SG_ISLOT_INO_MAX && n <= SG_ISLOT_COUNT_MAX;
}

static struct sg_islot c_make(uint64_t ino, uint64_t n, int stale)
{
	return (struct sg_islot){(ino << (SG_ISLOT_COUNT_BITS + 1)) | (stale ? STALE_BIT : 0) | n};
}

static size_t hash_of(uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ULL) >> 17);
}

static size_t slot_of(const struct sg_itable *t, uint64_t ino)
{
	return hash_of(ino) & (t->nslots - 1);
}

/* ---- the compact map: ino -> lookup count (and the stale bit) ---- */

static struct sg_islot *cfind(const struct sg_itable *t, uint64_t ino)
{
	size_t mask = t->ncslots - 1;

	if (!c_fits(ino, 0))
		return NULL;
	for (size_t i = hash_of(ino) & mask;; i = (i + 1) & mask) {
		if (t->cslots[i].v == 0)
			return NULL;
		if (c_ino(t->cslots[i]) == ino)
			return &t->cslots[i];
	}
}

/* Place a slot known to be absent; the map has room. */
static void cplace(struct sg_islot *slots, size_t nslots, struct sg_islot sl)
{
	size_t mask = nslots - 1, i = hash_of(c_ino(sl)) & mask;

	while (slots[i].v)
		i = (i + 1) & mask;
	slots[i] = sl;
}

/* Room for one more at a load of at most 3/4. 0 or -ENOMEM (when the map is
 * at 15/16: it still works, more slowly, below that). */
static int croom(struct sg_itable *t)
{
	size_t n = t->ncslots * 2;
	struct sg_islot *s;

	if ((t->ccount + 1) * 4 <= t->ncslots * 3)
		return 0;
	s = calloc(n, sizeof(*s));
	if (!s)
		return (t->ccount + 1) * 16 <= t->ncslots * 15 ? 0 : -ENOMEM;
	for (size_t i = 0; i < t->ncslots; i++)
		if (t->cslots[i].v)
			cplace(s, n, t->cslots[i]);
	free(t->cslots);
	t->cslots = s;
	t->ncslots = n;
	return 0;
}

/* Remove a slot, shifting back the run after it (no tombstones). */
static void cremove(struct sg_itable *t, struct sg_islot *sl)
{
	size_t mask = t->ncslots - 1, hole = (size_t)(sl - t->cslots);

	for (size_t i = (hole + 1) & mask; t->cslots[i].v; i = (i + 1) & mask) {
		size_t home = hash_of(c_ino(t->cslots[i])) & mask;
		/* may slot i move back to the hole? only if its home is not in (hole, i] */
		if (((i - home) & mask) >= ((i - hole) & mask)) {
			t->cslots[hole] = t->cslots[i];
			hole = i;
		}
	}
	t->cslots[hole].v = 0;
	t->ccount--;
}

/* ---- full inodes ---- */

int sg_itable_init(struct sg_itable *t)
{
	t->nslots = 1024;
	t->count = 0;
	t->slots = calloc(t->nslots, sizeof(*t->slots));
	t->ncslots = 1024;
	t->ccount = 0;
	t->cslots = calloc(t->ncslots, sizeof(*t->cslots));
	if (!t->slots || !t->cslots) {
		free(t->slots);
		free(t->cslots);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	return 0;
}

static void inode_free(struct sg_inode *in)
{
	pthread_mutex_destroy(&in->lock);
	free(in->buf);
	free(in);
}

void sg_itable_fini(struct sg_itable *t)
{
	for (size_t i = 0; i < t->nslots; i++) {
		struct sg_inode *in = t->slots[i], *next;
		for (; in; in = next) {
			next = in->next;
			inode_free(in);
		}
	}
	free(t->slots);
	t->slots = NULL;
	free(t->cslots);
	t->cslots = NULL;
	pthread_mutex_destroy(&t->lock);
}

static void grow(struct sg_itable *t)
{
	size_t n = t->nslots * 2;
	struct sg_inode **s = calloc(n, sizeof(*s));
	struct sg_itable nt = {.nslots = n};

	if (!s)
		return; /* keep the longer chains */
	for (size_t i = 0; i < t->nslots; i++) {
		struct sg_inode *in = t->slots[i], *next;
		for (; in; in = next) {
			size_t k;
			next = in->next;
			k = slot_of(&nt, in->ino);
			in->next = s[k];
			s[k] = in;
		}
	}
	free(t->slots);
	t->slots = s;
	t->nslots = n;
}

static struct sg_inode *find(struct sg_itable *t, uint64_t ino)
{
	struct sg_inode *in = t->slots[slot_of(t, ino)];

	while (in && in->ino != ino)
		in = in->next;
	return in;
}

/* A full inode for ino, taking over its compact slot if it has one. */
static struct sg_inode *add_full(struct sg_itable *t, uint64_t ino, struct sg_islot *sl)
{
	struct sg_inode *in = calloc(1, sizeof(*in));
	size_t k;

	if (!in)
		return NULL;
	if (t->count >= t->nslots * 2)
		grow(t);
	k = slot_of(t, ino);
	in->ino = ino;
	pthread_mutex_init(&in->lock, NULL);
	if (sl) {
		in->nlookup = c_count(*sl);
		atomic_store(&in->stale, c_stale(*sl));
		cremove(t, sl);
	}
	in->next = t->slots[k];
	t->slots[k] = in;
	t->count++;
	return in;
}

struct sg_inode *sg_inode_get(struct sg_itable *t, uint64_t ino, int create)
{
	struct sg_inode *in;

	pthread_mutex_lock(&t->lock);
	in = find(t, ino);
	if (!in && create) {
		struct sg_islot *sl = cfind(t, ino);
		if (sl || create == SG_IGET_CREATE)
			in = add_full(t, ino, sl);
	}
	if (in)
		in->refs++;
	pthread_mutex_unlock(&t->lock);
	return in;
}

static void unlink_full(struct sg_itable *t, struct sg_inode *in)
{
	struct sg_inode **pp;

	for (pp = &t->slots[slot_of(t, in->ino)]; *pp; pp = &(*pp)->next) {
		if (*pp == in) {
			*pp = in->next;
			t->count--;
			return;
		}
	}
}

/* Free a full inode nothing uses, or move it to the compact map when the
 * kernel still holds it and it has nothing else worth keeping. */
static void drop_if_unused(struct sg_itable *t, struct sg_inode *in)
{
	if (in->refs || in->nopen || in->dirty)
		return;
	if (in->nlookup) {
		/* an unlinked file's content is served until the kernel forgets it */
		if (in->loaded || in->buf || in->held || in->gone)
			return;
		if (!c_fits(in->ino, in->nlookup))
			return; /* too big a number or count for a compact slot */
		if (croom(t) != 0)
			return; /* no memory for the compact slot: stay full */
		cplace(t->cslots, t->ncslots,
		       c_make(in->ino, in->nlookup, atomic_load(&in->stale)));
		t->ccount++;
	}
	unlink_full(t, in);
	inode_free(in);
}

void sg_inode_put(struct sg_itable *t, struct sg_inode *in, uint64_t forget, unsigned closed)
{
	pthread_mutex_lock(&t->lock);
	in->refs--;
	in->nlookup = forget > in->nlookup ? 0 : in->nlookup - forget;
	in->nopen = closed > in->nopen ? 0 : in->nopen - closed;
	drop_if_unused(t, in);
	pthread_mutex_unlock(&t->lock);
}

void sg_inode_ref(struct sg_itable *t, uint64_t ino, uint64_t n)
{
	struct sg_inode *in;
	struct sg_islot *sl;

	pthread_mutex_lock(&t->lock);
	if ((in = find(t, ino)) != NULL) {
		in->nlookup += n;
	} else if ((sl = cfind(t, ino)) != NULL) {
		uint64_t c = c_count(*sl);
		if (n <= COUNT_MASK - c) {
			sl->v += n;
		} else if ((in = add_full(t, ino, sl)) != NULL) {
			in->nlookup += n; /* past the compact count: full till forgotten */
		} else {
			sl->v |= COUNT_MASK; /* no memory: saturate, the inode stays known */
		}
	} else if (c_fits(ino, n) && croom(t) == 0) {
		cplace(t->cslots, t->ncslots, c_make(ino, n, 0));
		t->ccount++;
	} else if ((in = add_full(t, ino, NULL)) != NULL) {
		in->nlookup = n;
	}
	pthread_mutex_unlock(&t->lock);
}

void sg_inode_forget(struct sg_itable *t, uint64_t ino, uint64_t n)
{
	struct sg_inode *in;
	struct sg_islot *sl;

	pthread_mutex_lock(&t->lock);
	if ((in = find(t, ino)) != NULL) {
		in->nlookup = n > in->nlookup ? 0 : in->nlookup - n;
		drop_if_unused(t, in);
	} else if ((sl = cfind(t, ino)) != NULL) {
		if (n >= c_count(*sl))
			cremove(t, sl);
		else
			sl->v -= n;
	}
	pthread_mutex_unlock(&t->lock);
}

void sg_inode_mark_stale(struct sg_itable *t, uint64_t ino)
{
	struct sg_inode *in;
	struct sg_islot *sl;

	pthread_mutex_lock(&t->lock);
	if ((in = find(t, ino)) != NULL)
		atomic_store(&in->stale, 1);
	else if ((sl = cfind(t, ino)) != NULL)
		sl->v |= STALE_BIT;
	pthread_mutex_unlock(&t->lock);
}

int sg_inode_known(struct sg_itable *t, uint64_t ino)
{
	struct sg_inode *in;
	int known;

	pthread_mutex_lock(&t->lock);
	in = find(t, ino);
	known = in ? in->nlookup > 0 : cfind(t, ino) != NULL;
	pthread_mutex_unlock(&t->lock);
	return known;
}

void sg_itable_counts(struct sg_itable *t, size_t *full, size_t *compact)
{
	pthread_mutex_lock(&t->lock);
	*full = t->count;
	*compact = t->ccount;
	pthread_mutex_unlock(&t->lock);
}

void sg_itable_each(struct sg_itable *t, void (*fn)(struct sg_inode *, void *), void *ctx)
{
	struct sg_inode **all;
	size_t n = 0;

	pthread_mutex_lock(&t->lock);
	all = malloc((t->count ? t->count : 1) * sizeof(*all));
	if (!all) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	for (size_t i = 0; i < t->nslots; i++)
		for (struct sg_inode *in = t->slots[i]; in; in = in->next) {
			in->refs++;
			all[n++] = in;
		}
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < n; i++) {
		fn(all[i], ctx);
		sg_inode_put(t, all[i], 0, 0);
	}
	free(all);
}
