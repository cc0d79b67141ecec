/* fuzz_wire.c: libFuzzer target of the replication message decoder (wire_i.h): whatever it
 * accepts must re-encode to the same bytes and decode again to an equal message. */
#include "config.h"

#ifndef SIGIL_FUZZ
#error "fuzz_wire.c is built only by tests/fuzz-wire.sh (clang -fsanitize=fuzzer -DSIGIL_FUZZ)"
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repl/wire_i.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int str_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static int blob_eq(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || (a != NULL && b != NULL && memcmp(a, b, alen) == 0));
}

static int stamp_eq(const sg_stamp *a, const sg_stamp *b)
{
	return a->hlc == b->hlc && a->origin == b->origin && a->seq == b->seq;
}

static int change_eq(const sg_change *a, const sg_change *b)
{
	if (!str_eq(a->path, b->path) || a->type != b->type || a->mode != b->mode ||
	    a->uid != b->uid || a->gid != b->gid || a->mtime_ns != b->mtime_ns ||
	    a->ctime_ns != b->ctime_ns || !blob_eq(a->data, a->len, b->data, b->len) ||
	    !stamp_eq(&a->stamp, &b->stamp) || !stamp_eq(&a->base, &b->base) ||
	    a->nxattrs != b->nxattrs) {
		return 0;
	}
	for (size_t i = 0; i < a->nxattrs; i++) {
		if (!str_eq(a->xattrs[i].name, b->xattrs[i].name) ||
		    !blob_eq(a->xattrs[i].value, a->xattrs[i].len, b->xattrs[i].value,
		             b->xattrs[i].len)) {
			return 0;
		}
	}
	return 1;
}

static int msg_eq(const sg_msg *a, const sg_msg *b)
{
	if (a->type != b->type || a->node_id != b->node_id || a->incarnation != b->incarnation ||
	    !str_eq(a->node_name, b->node_name) || !str_eq(a->listen_url, b->listen_url) ||
	    a->since != b->since || a->max_bytes != b->max_bytes ||
	    a->known_incarnation != b->known_incarnation || a->next != b->next ||
	    a->more != b->more || a->nchanges != b->nchanges || a->npeers != b->npeers ||
	    a->code != b->code || a->snapshot != b->snapshot ||
	    !stamp_eq(&a->horizon, &b->horizon) || a->nvv != b->nvv) {
		return 0;
	}
	for (size_t i = 0; i < a->nvv; i++) {
		if (a->vv[i].origin != b->vv[i].origin || a->vv[i].seq != b->vv[i].seq) {
			return 0;
		}
	}
	for (size_t i = 0; i < a->nchanges; i++) {
		if (!change_eq(&a->changes[i], &b->changes[i])) {
			return 0;
		}
	}
	for (size_t i = 0; i < a->npeers; i++) {
		if (!str_eq(a->peers[i], b->peers[i])) {
			return 0;
		}
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sg_msg *m = NULL, *m2 = NULL;
	void *buf = NULL;
	size_t len = 0;

	if (sg_wire_decode(data, size, NULL, &m) != 0) {
		if (m != NULL) {
			abort(); /* a refusal must leave no message */
		}
		return 0;
	}
	/* accepted: it re-encodes (encode refuses nothing decode accepts) to the very same
	 * bytes (the encoding has a single form), which decode to an equal message */
	if (sg_wire_encode(m, &buf, &len) != 0 || len != size || memcmp(buf, data, size) != 0) {
		abort();
	}
	if (sg_wire_decode(buf, len, NULL, &m2) != 0 || !msg_eq(m, m2)) {
		abort();
	}
	for (size_t i = 0; i < m->nchanges; i++) {
		(void)sg_wire_change_size(&m->changes[i]);
	}
	sg_wire_free(m2);
	sg_wire_free(m);
	free(buf);
	return 0;
}
