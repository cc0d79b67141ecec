/* inode.c: the table of inodes the kernel holds, keyed by inode number (the
 * store's entry id), with lookup counts and each open file's shared buffer. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "fs/fs_i.h"

static size_t slot_of(const struct sg_itable *t, uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ULL) >> 17) & (t->nslots - 1);
}

int sg_itable_init(struct sg_itable *t)
{
	t->nslots = 1024;
	t->count = 0;
	t->slots = calloc(t->nslots, sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
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

struct sg_inode *sg_inode_get(struct sg_itable *t, uint64_t ino, int create)
{
	struct sg_inode *in;

	pthread_mutex_lock(&t->lock);
	in = find(t, ino);
	if (!in && create) {
		in = calloc(1, sizeof(*in));
		if (in) {
			size_t k;
			if (t->count >= t->nslots * 2)
				grow(t);
			k = slot_of(t, ino);
			in->ino = ino;
			pthread_mutex_init(&in->lock, NULL);
			in->next = t->slots[k];
			t->slots[k] = in;
			t->count++;
		}
	}
	if (in)
		in->refs++;
	pthread_mutex_unlock(&t->lock);
	return in;
}

static void drop_if_unused(struct sg_itable *t, struct sg_inode *in)
{
	struct sg_inode **pp;

	if (in->refs || in->nlookup || in->nopen || in->dirty)
		return;
	for (pp = &t->slots[slot_of(t, in->ino)]; *pp; pp = &(*pp)->next) {
		if (*pp == in) {
			*pp = in->next;
			t->count--;
			inode_free(in);
			return;
		}
	}
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
	struct sg_inode *in = sg_inode_get(t, ino, 1);

	if (!in)
		return;
	pthread_mutex_lock(&t->lock);
	in->nlookup += n;
	in->refs--;
	pthread_mutex_unlock(&t->lock);
}

int sg_inode_known(struct sg_itable *t, uint64_t ino)
{
	struct sg_inode *in;
	int known;

	pthread_mutex_lock(&t->lock);
	in = find(t, ino);
	known = in && in->nlookup > 0;
	pthread_mutex_unlock(&t->lock);
	return known;
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
