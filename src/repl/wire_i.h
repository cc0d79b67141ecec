/* wire_i.h: private to src/repl/: the messages peers exchange and their codec.
 * Decoding validates everything before anything is used: a message from the
 * network is hostile until proven otherwise. */
#ifndef SIGIL_WIRE_I_H
#define SIGIL_WIRE_I_H

#include <stddef.h>
#include <stdint.h>

#include "lmdb/store.h"

/*
 * Encoding: little-endian integers, length-prefixed byte strings; no
 * padding, no pointers, no trailing bytes. Every message starts with
 *   magic u32 "SGL1" (0x314c4753), version u16 (2), type u16,
 *   node_id u64, incarnation u64, node_name str8, listen_url str16
 * followed by the fields of its type (see sg_msg). str8 = u8 length + bytes,
 * str16 = u16 length + bytes, blob32 = u32 length + bytes.
 * A change: path str16, type u8, mode u32, uid u32, gid u32, mtime i64,
 * ctime i64, stamp (hlc u64, origin u64, seq u64), base (hlc, origin, seq),
 * data blob32, nxattrs u16, then per xattr: name str8, value blob32.
 */

#define SG_WIRE_MAGIC 0x314c4753u
/* 2: CHANGES carries the snapshot flag, the purge horizon and the version vector;
 * 3: PUSH carries the range of the sender's log it holds whole, PULL flags */
#define SG_WIRE_VERSION 3
/* most version vector entries one CHANGES message carries */
#define SG_WIRE_VV_MAX 4096
/* the largest file content one change carries (decoders accept it whatever
 * their node's own max_file_size: a node with a smaller one passes such a
 * change over after decoding, and one with a larger one never sends more) */
#define SG_WIRE_MAX_FILE SG_DEFAULT_MAX_FILE

enum sg_msg_type {
	SG_MSG_PULL = 1,    /* requester -> responder: changes after `since`, please */
	SG_MSG_CHANGES = 2, /* responder -> requester: a page of changes */
	SG_MSG_PUSH = 3,    /* fresh changes, unasked */
	SG_MSG_ACK = 4,     /* reply to PUSH: `code` 0 or an errno */
};

/* PULL flags */
/* the requester holds every change of its own origin the responder could
 * list: a listing that is not a snapshot leaves them out */
#define SG_PULL_OWN_HELD 0x1u
/* the requester is taking a snapshot: its cursor is within one, which it
 * takes to the end even if its cursor is below the responder's purge
 * horizon (the requester starts it again if the horizon moves meanwhile) */
#define SG_PULL_IN_SNAPSHOT 0x2u
#define SG_PULL_FLAGS (SG_PULL_OWN_HELD | SG_PULL_IN_SNAPSHOT)

/** Limits a decoder enforces; a message past any of them is refused. */
typedef struct sg_wire_limits {
	size_t max_msg;     /* bytes in one message; default 80 MiB */
	uint64_t max_file;  /* bytes of one change's data; default SG_WIRE_MAX_FILE */
	size_t max_changes; /* changes in one message; default 100000 */
	size_t max_peers;   /* peer URLs in one message; default 256 */
} sg_wire_limits;

/** A decoded or to-be-encoded message. Decoded: one allocation, free with sg_wire_free(). */
typedef struct sg_msg {
	uint32_t type;          /* enum sg_msg_type */
	uint64_t node_id;       /* the sender's node id, never 0 */
	uint64_t incarnation;   /* the sender's store id, never 0: new when its data dir is new */
	const char *node_name;  /* the sender's name: 1..64 printable ASCII bytes, no spaces */
	const char *listen_url; /* the sender's own URL, "" if it does not listen */

	/* PULL: responder version already consumed by the requester. PUSH: with
	 * `next`, the range (since, next] of the sender's log this push holds
	 * whole, as a CHANGES page listing it would (both 0: not whole; a
	 * receiver that holds the sender's log up to `since` and takes every
	 * change may move its pull cursor to `next`) */
	uint64_t since;
	uint32_t max_bytes;         /* largest CHANGES page the requester accepts */
	uint64_t known_incarnation; /* responder incarnation the cursor belongs to (0: none) */
	uint32_t flags;             /* PULL: SG_PULL_* */

	/* CHANGES (a reply to PULL) and PUSH */
	uint64_t next; /* CHANGES: pass as `since` next time; PUSH: see since */
	uint32_t more; /* CHANGES: 1 if more changes are waiting */
	/* CHANGES: 1 when this page lists the responder's log from its start (the
	 * requester's cursor was 0, for another incarnation, or below the
	 * responder's purge horizon): its pages up to the one with more == 0 are
	 * a snapshot */
	uint32_t snapshot;
	sg_stamp horizon; /* CHANGES: the responder's purge horizon stamp ({0}: none) */
	/* CHANGES: the responder's version vector, origins increasing, read
	 * before the page was listed */
	const sg_vv_entry *vv;
	size_t nvv;
	const sg_change *changes;
	size_t nchanges;

	/* PULL and CHANGES: peer URLs the sender knows (membership gossip) */
	const char *const *peers;
	size_t npeers;

	/* ACK */
	uint32_t code;
} sg_msg;

/*
 * Field presence per type, in this order after the header:
 *   PULL:    since u64, max_bytes u32, known_incarnation u64, flags u8, npeers u16,
 *            peers str16...
 *   CHANGES: next u64, more u8, snapshot u8, horizon (hlc u64, origin u64, seq u64),
 *            nvv u16, vv (origin u64, seq u64)..., nchanges u32, changes...,
 *            npeers u16, peers str16...
 *   PUSH:    since u64, next u64 (both 0, or since < next), nchanges u32, changes...
 *   ACK:     code u32
 */

/**
 * Encode `m`. @param[out] out malloc'd bytes, owned by the caller.
 * @return 0, -EINVAL (a field out of range: the same rules decode enforces), -ENOMEM.
 */
int sg_wire_encode(const sg_msg *m, void **out, size_t *len);

/**
 * Decode and validate. Every rule below is checked; any failure is -EBADMSG
 * (-EMSGSIZE when `len` > lim->max_msg). lim NULL: defaults.
 * Rules: magic, version, known type; lengths inside the buffer and no bytes
 * left over; node_id, incarnation non-zero; node_name 1..64 bytes of [A-Za-z0-9._-];
 * URLs at most 256 bytes, printable, scheme tcp://, tls+tcp://, ipc:// or
 * inproc://, or empty for listen_url; each change: path normalized (no
 * leading or trailing '/', no empty, "." or ".." component, each component
 * 1..255 bytes, no NUL, at most SG_PATH_MAX bytes), type 1..4, mode <= 07777,
 * stamp.hlc and stamp.origin non-zero (except a directory placeholder:
 * all-zero stamp), data only for files (<= max_file) and symlinks
 * (1..SG_PATH_MAX bytes), none for directories and tombstones; xattrs only on
 * live entries, at most 256, names "user." + 1..250 bytes, values <= 65536.
 * PULL: no flags but SG_PULL_FLAGS. PUSH: since and next both 0, or since < next.
 * CHANGES: more and snapshot 0 or 1; horizon all zero, or hlc and origin
 * non-zero; at most SG_WIRE_VV_MAX vv entries, origins non-zero and strictly
 * increasing, seqs non-zero.
 * @param[out] out the message, one allocation; pointers point into it.
 */
int sg_wire_decode(const void *buf, size_t len, const sg_wire_limits *lim, sg_msg **out);

/** Free a decoded message. NULL accepted. */
void sg_wire_free(sg_msg *m);

/** Bytes a change takes on the wire (to cut pages to a size). */
size_t sg_wire_change_size(const sg_change *c);

/**
 * Can `c` be sent: valid as sg_wire_encode() checks a change, and small
 * enough that a CHANGES or PUSH message holding it alone, with the largest
 * header, version vector and peer list, stays within the default message
 * limit (80 MiB)? A sender passes over a change that cannot, rather than
 * fail the whole page at every try.
 * @return 0; -EFBIG: file data over SG_WIRE_MAX_FILE, or the change with its
 *         xattrs too large for a message; -EINVAL: a field decode refuses.
 */
int sg_wire_change_check(const sg_change *c);

#endif
