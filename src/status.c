/* status.c: the text of /.sigil/status, members, metrics (Prometheus text
 * format 0.0.4) and version, generated at each open from live figures. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "util.h"

const char *const sg_status_names[] = {"status", "members", "metrics", "version", NULL};

struct counts {
	size_t peers, up;
	FILE *f;
};

static void count_peer(void *ctx, const sg_repl_peer *p)
{
	struct counts *c = ctx;

	c->peers++;
	c->up += p->up != 0;
}

static void member_line(void *ctx, const sg_repl_peer *p)
{
	struct counts *c = ctx;

	fprintf(c->f, "%-40s %016" PRIx64 "  %-4s", p->url, p->node_id, p->up ? "up" : "down");
	if (p->last_ok_ms >= 0)
		fprintf(c->f, "  last answer %" PRId64 " ms ago", p->last_ok_ms);
	else
		fprintf(c->f, "  never answered");
	if (p->failures)
		fprintf(c->f, ", %u failures in a row", p->failures);
	fprintf(c->f,
	        ", pulled to its v%" PRIu64 ", pushed up to our v%" PRIu64
	        ", it pulled from us from v%" PRIu64 "\n",
	        p->pulled, p->pushed, p->pulled_by);
}

/* ---- peers as status shows them ---- */

/* One peer: what the replicator says, and how far behind this node it is. */
struct peer_view {
	sg_repl_peer p; /* p.url points into url */
	char url[300];
	char name[65];     /* as it introduced itself; "" if not heard of */
	uint64_t behind;   /* versions of this node's log past what it is known to hold */
	int64_t behind_ms; /* how long the first of them has waited; 0 if none */
};

struct peer_list {
	struct peer_view *v;
	size_t n, cap;
};

static void peer_collect(void *ctx, const sg_repl_peer *p)
{
	struct peer_list *l = ctx;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		struct peer_view *nv = realloc(l->v, cap * sizeof(*nv));
		if (!nv)
			return; /* a status line short of a peer beats none */
		l->v = nv;
		l->cap = cap;
	}
	memset(&l->v[l->n], 0, sizeof(l->v[l->n]));
	l->v[l->n].p = *p;
	snprintf(l->v[l->n].url, sizeof(l->v[l->n].url), "%s", p->url);
	l->v[l->n].p.url = l->v[l->n].url;
	l->n++;
}

/* The clock of the one log row listed. */
static int lag_one(void *ctx, const sg_change *c)
{
	*(uint64_t *)ctx = c->stamp.hlc;
	return 0;
}

/*
 * The peers, copied out of the replicator (its lock is not held while the
 * store is read), each with how far behind this node it is: this node's
 * committed version minus the highest version of this node's log the peer
 * is known to hold (sg_repl_peer.holds: from its pulls from this node or
 * from the pushes it acknowledged, whichever is newer), and how long the
 * first change past that (in version order: the one stored here longest
 * ago) has waited, by its stamp's clock. Only that one change is read: a
 * status read costs the same however far behind a peer is (reading every
 * change past it, a down peer 40,000 changes behind cost 37 ms a read).
 * Free l->v.
 */
static void peers_get(const sg_status_src *s, struct peer_list *l)
{
	int64_t now_ms = sg_now_ns() / 1000000;
	uint64_t version;

	memset(l, 0, sizeof(*l));
	if (!s->repl)
		return;
	/* the version first: what a peer holds, read after it, is never older */
	version = sg_store_version(s->store);
	sg_repl_peers(s->repl, peer_collect, l);
	for (size_t i = 0; i < l->n; i++) {
		struct peer_view *v = &l->v[i];
		uint64_t first = 0;

		if (v->p.node_id &&
		    sg_repl_node_name(s->repl, v->p.node_id, v->name, sizeof(v->name)) < 0)
			v->name[0] = '\0';
		v->behind = version > v->p.holds ? version - v->p.holds : 0;
		if (v->behind == 0 ||
		    sg_store_changes_after(s->store, v->p.holds, 1, lag_one, &first) < 0)
			continue;
		if (first) {
			int64_t at = (int64_t)(first >> 16);
			v->behind_ms = now_ms > at ? now_ms - at : 0;
		}
	}
}

/* A node's name for status: its own name or the name a peer introduced (1),
 * else its id in hex (0). */
static int node_label(const sg_status_src *s, uint64_t id, char *buf, size_t len)
{
	if (id == sg_store_node_id(s->store) && s->node) {
		snprintf(buf, len, "%s", s->node);
		return 1;
	}
	if (s->repl && sg_repl_node_name(s->repl, id, buf, len) == 0)
		return 1;
	snprintf(buf, len, "%016" PRIx64, id);
	return 0;
}

struct vv_out {
	const sg_status_src *s;
	FILE *f;
	size_t n;
};

static int vv_text(void *ctx, const sg_vv_entry *e)
{
	struct vv_out *o = ctx;
	char name[80];

	node_label(o->s, e->origin, name, sizeof(name));
	fprintf(o->f, "%s%s:%" PRIu64, o->n++ ? " " : "", name, e->seq);
	return 0;
}

/* Prometheus groups each metric's samples under its own HELP and TYPE:
 * one pass over the peers per metric. */
static void metric_peer_up(void *ctx, const sg_repl_peer *p)
{
	struct counts *c = ctx;

	fprintf(c->f, "sigil_peer_up{peer=\"%s\"} %d\n", p->url, p->up ? 1 : 0);
}

static void metric_peer_answer(void *ctx, const sg_repl_peer *p)
{
	struct counts *c = ctx;

	if (p->last_ok_ms >= 0)
		fprintf(c->f, "sigil_peer_last_answer_seconds{peer=\"%s\"} %.3f\n", p->url,
		        p->last_ok_ms / 1000.0);
}

static void status(const sg_status_src *s, FILE *f)
{
	sg_store_stats ss;
	sg_fs_stats fs;
	int64_t up = (sg_now_ns() - s->started_ns) / 1000000000;

	sg_store_stats_get(s->store, &ss);
	sg_fs_stats_get(s->fs, &fs);
	fprintf(f, "node        %s (%016" PRIx64 ")\n", s->node ? s->node : "-",
	        sg_store_node_id(s->store));
	fprintf(f, "mountpoint  %s\n", s->mountpoint);
	fprintf(f, "data        %s\n", s->data_dir);
	fprintf(f, "up          %" PRId64 " s\n", up);
	fprintf(f, "fuse        %u worker threads at most\n", fs.workers);
	fprintf(f,
	        "store       version %" PRIu64 ", %" PRIu64 " entries, %" PRIu64
	        " tombstones, %" PRIu64 " of %" PRIu64 " bytes of map used\n",
	        sg_store_version(s->store), ss.entries, ss.tombstones, ss.used_bytes, ss.map_size);
	if (ss.refusing)
		fputs("store       REFUSING CHANGES AND READS: a checkpoint failed (see the log); "
		      "its changes are in the journal only: restart sigilfs, once the disk "
		      "works, to replay it\n",
		      f);
	fprintf(f,
	        "writes      %" PRIu64 " saves, %" PRIu64 " commits for %" PRIu64
	        " changes; %" PRIu64 " acknowledged before their commit, %" PRIu64
	        " of them lost\n",
	        fs.saves, ss.commits, ss.ops, ss.deferred, ss.lost);
	fprintf(f,
	        "journal     %" PRIu64 " batches written, %" PRIu64
	        " checkpoints (LMDB commits); mapped pages dropped %" PRIu64 " times\n",
	        ss.journal_batches, ss.checkpoints, ss.map_trims);
	fprintf(f,
	        "map         faults map %s; %" PRIu64 " of %" PRIu64
	        " branch pages mapped after the open\n",
	        ss.map_single ? "one page each (fault-around off)" : "their neighbours too",
	        ss.map_warmed, ss.branch_pages);
	fprintf(f, "conflicts   %" PRIu64 " (see conflicts, lost/)\n", ss.conflicts);
	{
		struct vv_out o = {s, f, 0};

		fputs("vector      ", f);
		sg_store_vv(s->store, vv_text, &o);
		fputs(o.n ? "\n" : "(empty)\n", f);
	}
	if (s->mirror) {
		sg_mirror_stats ms;

		sg_mirror_stats_get(s->mirror, &ms);
		fprintf(f,
		        "mirror      %s %s at %s, up to version %" PRIu64 ", lag %" PRId64
		        " ms, %" PRIu64 " commits",
		        s->mirror_path, ms.branch, *ms.head ? ms.head : "(no commit yet)",
		        ms.version, ms.lag_ms, ms.commits);
		if (ms.pushes || ms.push_failures)
			fprintf(f, ", %" PRIu64 " pushes, %" PRIu64 " failed", ms.pushes,
			        ms.push_failures);
		fputc('\n', f);
		if (ms.failing_ms)
			fprintf(f,
			        "mirror      FAILING for %" PRId64 " s, %" PRIu64
			        " failed batches since start: %s\n",
			        ms.failing_ms / 1000, ms.failures, ms.error);
	} else {
		fprintf(f, "mirror      off\n");
	}
	if (s->repl) {
		sg_repl_stats rs;
		struct counts c = {0};

		struct peer_list l;

		sg_repl_stats_get(s->repl, &rs);
		sg_repl_peers(s->repl, count_peer, &c);
		fprintf(f, "peers       %zu known, %zu up\n", c.peers, c.up);
		peers_get(s, &l);
		for (size_t i = 0; i < l.n; i++) {
			const struct peer_view *v = &l.v[i];

			fprintf(f, "peer        %s %s (%016" PRIx64 ") %s", v->url,
			        *v->name ? v->name : "-", v->p.node_id, v->p.up ? "up" : "down");
			if (v->p.failures)
				fprintf(f, " (%u failures in a row)", v->p.failures);
			if (v->p.last_ok_ms >= 0)
				fprintf(f, ", last answer %.1f s ago", v->p.last_ok_ms / 1000.0);
			else
				fprintf(f, ", never answered");
			fprintf(f, ", behind %" PRIu64 " changes (%.1f s)\n", v->behind,
			        v->behind_ms / 1000.0);
		}
		free(l.v);
		fprintf(f,
		        "replication %" PRIu64 " applied, %" PRIu64 " already here, %" PRIu64
		        " stale, %" PRIu64 " held (clock ahead), %" PRIu64 " refused, %" PRIu64
		        " deferred, %" PRIu64 " too large, %" PRIu64 " malformed messages, %" PRIu64
		        " oversized messages; %" PRIu64 " pushes, %" PRIu64 " pulls, %" PRIu64
		        " pushes received in place of a pull\n",
		        rs.applied, rs.duplicates, rs.stale, rs.quarantined, rs.refused,
		        rs.deferred, rs.too_large, rs.malformed, rs.oversized, rs.pushes, rs.pulls,
		        rs.pushes_as_pulls);
		fprintf(f,
		        "transport   TLS handshakes %" PRIu64 " refused (by this node), %" PRIu64
		        " failed (peer not from the cluster CA); %" PRIu64
		        " protocol errors; %" PRIu64 " connections renewed (no answer for 5 s)\n",
		        rs.tls_refused, rs.tls_failed, rs.proto_errors, rs.renewed);
		fprintf(f,
		        "purge       %" PRIu64 " tombstones purged; snapshots: %" PRIu64
		        " served, %" PRIu64 " taken, %" PRIu64 " entries dropped by them\n",
		        rs.purged, rs.snapshots_served, rs.snapshots_received, rs.forgotten);
	} else {
		fprintf(f, "replication off (no listen= or peers=)\n");
	}
}

static void metrics(const sg_status_src *s, FILE *f)
{
	sg_store_stats ss;
	sg_fs_stats fs;

	sg_store_stats_get(s->store, &ss);
	sg_fs_stats_get(s->fs, &fs);
#define M(name, type, help, fmt, v)                                                                \
	fprintf(f, "# HELP " name " " help "\n# TYPE " name " " type "\n" name " %" fmt "\n", v)
	M("sigil_store_version", "gauge", "Newest store-wide version.", PRIu64,
	  sg_store_version(s->store));
	M("sigil_store_entries", "gauge", "Live entries in the store.", PRIu64, ss.entries);
	M("sigil_store_tombstones", "gauge", "Tombstones in the store.", PRIu64, ss.tombstones);
	M("sigil_store_map_bytes", "gauge", "Size of the LMDB map.", PRIu64, ss.map_size);
	M("sigil_store_used_bytes", "gauge", "Bytes of the LMDB map in use.", PRIu64,
	  ss.used_bytes);
	M("sigil_store_commits_total", "counter",
	  "Durable points: changes made durable (journal batches and checkpoints).", PRIu64,
	  ss.commits);
	M("sigil_store_journal_batches_total", "counter", "Batches written to the commit journal.",
	  PRIu64, ss.journal_batches);
	M("sigil_store_checkpoints_total", "counter",
	  "Checkpoints: LMDB commits of what the journal holds.", PRIu64, ss.checkpoints);
	M("sigil_store_map_trims_total", "counter",
	  "Times the store's mapped pages were dropped from the daemon (max_mapped).", PRIu64,
	  ss.map_trims);
	M("sigil_store_changes_total", "counter", "Changes committed to the store.", PRIu64,
	  ss.ops);
	M("sigil_store_deferred_total", "counter",
	  "Local changes acknowledged before their commit (sync_delay).", PRIu64, ss.deferred);
	M("sigil_store_lost_total", "counter",
	  "Acknowledged local changes lost to a failed commit.", PRIu64, ss.lost);
	M("sigil_store_refusing_changes", "gauge",
	  "1 while the store refuses every change and read after a failed checkpoint (until a "
	  "restart).",
	  "d", ss.refusing);
	M("sigil_fs_saves_total", "counter", "File contents saved (one per save).", PRIu64,
	  fs.saves);
	M("sigil_fs_read_requests_total", "counter", "Read requests that reached sigilfs.", PRIu64,
	  fs.reads);
	M("sigil_fs_write_requests_total", "counter", "Write requests.", PRIu64, fs.writes);
	M("sigil_fs_read_bytes_total", "counter", "Bytes read through sigilfs.", PRIu64,
	  fs.bytes_read);
	M("sigil_fs_written_bytes_total", "counter", "Bytes written.", PRIu64, fs.bytes_written);
	M("sigil_fs_invalidations_total", "counter", "Kernel cache invalidations sent.", PRIu64,
	  fs.invalidations);
	M("sigil_fs_inodes", "gauge", "Inodes the kernel holds or has open.", PRIu64, fs.inodes);
	M("sigil_fs_workers", "gauge", "FUSE worker threads at most (1 with -s).", "u", fs.workers);
	M("sigil_fs_inodes_full", "gauge",
	  "Of those, inodes with open handles or a buffer (the others take 16-32 bytes).", PRIu64,
	  fs.inodes_full);
	M("sigil_conflicts", "gauge", "Conflicts recorded.", PRIu64, ss.conflicts);
	if (s->mirror) {
		sg_mirror_stats ms;

		sg_mirror_stats_get(s->mirror, &ms);
		M("sigil_mirror_version", "gauge", "Store version the Git mirror holds.", PRIu64,
		  ms.version);
		M("sigil_mirror_lag_seconds", "gauge",
		  "How long the oldest change not yet in the mirror has waited.", ".3f",
		  (double)ms.lag_ms / 1000.0);
		M("sigil_mirror_commits_total", "counter", "Mirror commits made.", PRIu64,
		  ms.commits);
		M("sigil_mirror_pushes_total", "counter", "Mirror pushes done.", PRIu64, ms.pushes);
		M("sigil_mirror_push_failures_total", "counter", "Mirror pushes failed.", PRIu64,
		  ms.push_failures);
		M("sigil_mirror_commit_failures_total", "counter",
		  "Mirror batches that failed to commit (each is redone).", PRIu64, ms.failures);
		M("sigil_mirror_failing_seconds", "gauge",
		  "How long the mirror's commits have failed in a row, 0 when the last worked.",
		  ".3f", (double)ms.failing_ms / 1000.0);
	}
	if (s->repl) {
		sg_repl_stats rs;
		struct counts c = {.f = f};

		sg_repl_stats_get(s->repl, &rs);
		M("sigil_repl_applied_total", "counter", "Remote changes applied.", PRIu64,
		  rs.applied);
		M("sigil_repl_duplicates_total", "counter",
		  "Remote changes received that were here already (the same stamp).", PRIu64,
		  rs.duplicates);
		M("sigil_repl_stale_total", "counter", "Remote changes older than held, refused.",
		  PRIu64, rs.stale);
		M("sigil_repl_held_total", "counter", "Remote changes held: stamped too far ahead.",
		  PRIu64, rs.quarantined);
		M("sigil_repl_refused_total", "counter", "Remote changes refused by the store.",
		  PRIu64, rs.refused);
		M("sigil_repl_deferred_total", "counter",
		  "Remote changes not taken for now, fetched or sent again (per attempt).", PRIu64,
		  rs.deferred);
		M("sigil_repl_too_large_total", "counter",
		  "Changes passed over for their size: over max_file_size here, or too large to "
		  "send.",
		  PRIu64, rs.too_large);
		M("sigil_repl_malformed_total", "counter", "Malformed peer messages dropped.",
		  PRIu64, rs.malformed);
		M("sigil_repl_oversized_total", "counter",
		  "Peer messages dropped as larger than this node accepts.", PRIu64, rs.oversized);
		M("sigil_repl_tls_refused_total", "counter",
		  "TLS handshakes refused by this node's listener (no certificate, or not from the "
		  "cluster CA).",
		  PRIu64, rs.tls_refused);
		M("sigil_repl_tls_failed_total", "counter",
		  "TLS handshakes this node's dialers failed: a peer's certificate not from the "
		  "cluster CA.",
		  PRIu64, rs.tls_failed);
		M("sigil_repl_proto_errors_total", "counter",
		  "Connections dropped for not speaking the replication protocol.", PRIu64,
		  rs.proto_errors);
		M("sigil_repl_connections_renewed_total", "counter",
		  "Connections to a peer closed for a new one after 5 s without an answer.", PRIu64,
		  rs.renewed);
		M("sigil_repl_pushes_total", "counter", "Pushes answered by a peer.", PRIu64,
		  rs.pushes);
		M("sigil_repl_pulls_total", "counter", "Pulls answered by a peer.", PRIu64,
		  rs.pulls);
		M("sigil_repl_pushes_as_pulls_total", "counter",
		  "Pushes received that moved the pull cursor into their sender's log.", PRIu64,
		  rs.pushes_as_pulls);
		M("sigil_repl_tombstones_purged_total", "counter", "Tombstones purged.", PRIu64,
		  rs.purged);
		M("sigil_repl_snapshots_served_total", "counter",
		  "Snapshots listed for peers behind the purge horizon.", PRIu64,
		  rs.snapshots_served);
		M("sigil_repl_snapshots_received_total", "counter",
		  "Snapshots taken from peers that had purged.", PRIu64, rs.snapshots_received);
		M("sigil_repl_snapshot_dropped_total", "counter",
		  "Entries dropped because a snapshot said they were deleted.", PRIu64,
		  rs.forgotten);
		fprintf(f, "# HELP sigil_peer_up Whether the peer's last exchange succeeded.\n"
		           "# TYPE sigil_peer_up gauge\n");
		sg_repl_peers(s->repl, metric_peer_up, &c);
		fprintf(f,
		        "# HELP sigil_peer_last_answer_seconds Time since the peer last answered.\n"
		        "# TYPE sigil_peer_last_answer_seconds gauge\n");
		sg_repl_peers(s->repl, metric_peer_answer, &c);
		{
			struct peer_list l;

			peers_get(s, &l);
			fprintf(
			    f, "# HELP sigil_peer_lag_changes Versions of this node's log past "
			       "the newest the peer is known to hold (by its pulls or acknowledged "
			       "pushes).\n"
			       "# TYPE sigil_peer_lag_changes gauge\n");
			for (size_t i = 0; i < l.n; i++)
				fprintf(f, "sigil_peer_lag_changes{peer=\"%s\"} %" PRIu64 "\n",
				        l.v[i].url, l.v[i].behind);
			fprintf(f, "# HELP sigil_peer_lag_seconds How long the first of those "
			           "changes has waited.\n"
			           "# TYPE sigil_peer_lag_seconds gauge\n");
			for (size_t i = 0; i < l.n; i++)
				fprintf(f, "sigil_peer_lag_seconds{peer=\"%s\"} %.3f\n", l.v[i].url,
				        l.v[i].behind_ms / 1000.0);
			free(l.v);
		}
	}
#undef M
}

/* A JSON string: quoted, with ", \ and control characters escaped. Bytes that
 * are not valid UTF-8 (a path may hold any) become \u00XX, as if Latin-1. */
static void json_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (!s) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	while (*p) {
		size_t n = 0;
		unsigned c = *p;

		if (c == '"' || c == '\\') {
			fprintf(f, "\\%c", (char)c);
			p++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\u%04x", c);
			p++;
			continue;
		}
		if (c < 0x80) {
			fputc((char)c, f);
			p++;
			continue;
		}
		/* a whole, shortest-form, non-surrogate UTF-8 sequence is copied */
		if (c >= 0xc2 && c <= 0xdf)
			n = 2;
		else if (c >= 0xe0 && c <= 0xef)
			n = 3;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 4;
		for (size_t i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				n = 0;
		if ((n == 3 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0))) ||
		    (n == 4 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90))))
			n = 0;
		if (n) {
			fwrite(p, 1, n, f);
			p += n;
		} else {
			fprintf(f, "\\u%04x", c);
			p++;
		}
	}
	fputc('"', f);
}

static void json_peer(FILE *f, const struct peer_view *v, int first)
{
	const sg_repl_peer *p = &v->p;

	fputs(first ? "\n    {\"url\": " : ",\n    {\"url\": ", f);
	json_str(f, p->url);
	if (p->node_id)
		fprintf(f, ", \"node_id\": \"%016" PRIx64 "\"", p->node_id);
	else
		fputs(", \"node_id\": null", f);
	fputs(", \"name\": ", f);
	json_str(f, *v->name ? v->name : NULL);
	fprintf(f, ", \"state\": \"%s\", \"failures\": %u", p->up ? "up" : "down", p->failures);
	if (p->last_ok_ms >= 0)
		fprintf(f, ", \"last_answer_ms\": %" PRId64, p->last_ok_ms);
	else
		fputs(", \"last_answer_ms\": null", f);
	fprintf(f,
	        ", \"pulled\": %" PRIu64 ", \"pushed\": %" PRIu64 ", \"acked\": %" PRIu64
	        ", \"pulled_by\": %" PRIu64 ", \"holds\": %" PRIu64 ", \"behind_changes\": %" PRIu64
	        ", \"behind_ms\": %" PRId64 "}",
	        p->pulled, p->pushed, p->acked, p->pulled_by, p->holds, v->behind, v->behind_ms);
}

static int vv_json(void *ctx, const sg_vv_entry *e)
{
	struct vv_out *o = ctx;
	char name[80];

	int named = node_label(o->s, e->origin, name, sizeof(name));

	fprintf(o->f, "%s{\"node_id\": \"%016" PRIx64 "\", \"name\": ", o->n++ ? ", " : "",
	        e->origin);
	json_str(o->f, named ? name : NULL);
	fprintf(o->f, ", \"seq\": %" PRIu64 "}", e->seq);
	return 0;
}

void sg_status_write_json(const sg_status_src *s, FILE *f)
{
	sg_store_stats ss;
	sg_fs_stats fs;
	struct vv_out vo = {s, f, 0};

	sg_store_stats_get(s->store, &ss);
	sg_fs_stats_get(s->fs, &fs);
	fputs("{\n  \"node\": ", f);
	json_str(f, s->node);
	fprintf(f, ",\n  \"node_id\": \"%016" PRIx64 "\",\n  \"mountpoint\": ",
	        sg_store_node_id(s->store));
	json_str(f, s->mountpoint);
	fputs(",\n  \"data\": ", f);
	json_str(f, s->data_dir);
	fprintf(f, ",\n  \"up_seconds\": %" PRId64 ",\n",
	        (sg_now_ns() - s->started_ns) / 1000000000);
	fprintf(f,
	        "  \"store\": {\"version\": %" PRIu64 ", \"entries\": %" PRIu64
	        ", \"tombstones\": %" PRIu64 ", \"map_bytes\": %" PRIu64
	        ", \"used_bytes\": %" PRIu64 ", \"commits\": %" PRIu64
	        ", \"journal_batches\": %" PRIu64 ", \"checkpoints\": %" PRIu64
	        ", \"changes\": %" PRIu64 ", \"deferred\": %" PRIu64 ", \"lost\": %" PRIu64
	        ", \"map_trims\": %" PRIu64 ", \"map_single_page_faults\": %s"
	        ", \"branch_pages\": %" PRIu64 ", \"branch_pages_mapped_at_open\": %" PRIu64
	        ", \"refusing_changes\": %s},\n",
	        sg_store_version(s->store), ss.entries, ss.tombstones, ss.map_size, ss.used_bytes,
	        ss.commits, ss.journal_batches, ss.checkpoints, ss.ops, ss.deferred, ss.lost,
	        ss.map_trims, ss.map_single ? "true" : "false", ss.branch_pages, ss.map_warmed,
	        ss.refusing ? "true" : "false");
	fputs("  \"vector\": [", f);
	sg_store_vv(s->store, vv_json, &vo);
	fputs("],\n", f);
	fprintf(f, "  \"fuse_workers\": %u,\n", fs.workers);
	fprintf(f, "  \"saves\": %" PRIu64 ",\n  \"conflicts\": %" PRIu64 ",\n", fs.saves,
	        ss.conflicts);
	if (s->mirror) {
		sg_mirror_stats ms;

		sg_mirror_stats_get(s->mirror, &ms);
		fputs("  \"mirror\": {\"path\": ", f);
		json_str(f, s->mirror_path);
		fprintf(f,
		        ", \"branch\": \"%s\", \"head\": %s%s%s, \"version\": %" PRIu64
		        ", \"lag_ms\": %" PRId64 ", \"commits\": %" PRIu64 ", \"pushes\": %" PRIu64
		        ", \"push_failures\": %" PRIu64 ", \"commit_failures\": %" PRIu64
		        ", \"failing_ms\": %" PRId64 ", \"error\": ",
		        ms.branch, *ms.head ? "\"" : "", *ms.head ? ms.head : "null",
		        *ms.head ? "\"" : "", ms.version, ms.lag_ms, ms.commits, ms.pushes,
		        ms.push_failures, ms.failures, ms.failing_ms);
		json_str(f, ms.failing_ms ? ms.error : NULL);
		fputs("},\n", f);
	} else {
		fputs("  \"mirror\": null,\n", f);
	}
	if (s->repl) {
		sg_repl_stats rs;

		sg_repl_stats_get(s->repl, &rs);
		fprintf(f,
		        "  \"replication\": {\"applied\": %" PRIu64 ", \"duplicates\": %" PRIu64
		        ", \"stale\": %" PRIu64 ", \"held\": %" PRIu64 ", \"refused\": %" PRIu64
		        ", \"deferred\": %" PRIu64 ", \"too_large\": %" PRIu64
		        ", \"malformed\": %" PRIu64 ", \"oversized\": %" PRIu64
		        ", \"tls_refused\": %" PRIu64 ", \"tls_failed\": %" PRIu64
		        ", \"proto_errors\": %" PRIu64 ", \"connections_renewed\": %" PRIu64
		        ", \"pushes\": %" PRIu64 ", \"pulls\": %" PRIu64
		        ", \"pushes_as_pulls\": %" PRIu64 ", \"tombstones_purged\": %" PRIu64
		        ", \"snapshots_served\": %" PRIu64 ", \"snapshots_received\": %" PRIu64
		        ", \"snapshot_dropped\": %" PRIu64 "},\n",
		        rs.applied, rs.duplicates, rs.stale, rs.quarantined, rs.refused,
		        rs.deferred, rs.too_large, rs.malformed, rs.oversized, rs.tls_refused,
		        rs.tls_failed, rs.proto_errors, rs.renewed, rs.pushes, rs.pulls,
		        rs.pushes_as_pulls, rs.purged, rs.snapshots_served, rs.snapshots_received,
		        rs.forgotten);
		struct peer_list l;

		peers_get(s, &l);
		fputs("  \"peers\": [", f);
		for (size_t i = 0; i < l.n; i++)
			json_peer(f, &l.v[i], i == 0);
		fputs(l.n ? "\n  ]\n}\n" : "]\n}\n", f);
		free(l.v);
	} else {
		fputs("  \"replication\": null,\n  \"peers\": []\n}\n", f);
	}
}

int sg_status_write(void *arg, const char *name, FILE *f)
{
	const sg_status_src *s = arg;

	if (strcmp(name, "status") == 0) {
		status(s, f);
	} else if (strcmp(name, "members") == 0) {
		struct counts c = {.f = f};
		fprintf(f, "%-40s %016" PRIx64 "  self (%s)\n", "this node",
		        sg_store_node_id(s->store), s->node ? s->node : "-");
		if (s->repl)
			sg_repl_peers(s->repl, member_line, &c);
	} else if (strcmp(name, "metrics") == 0) {
		metrics(s, f);
	} else if (strcmp(name, "version") == 0) {
		fprintf(f, "sigilfs %s\n", PACKAGE_VERSION);
	} else {
		return -ENOENT;
	}
	return 0;
}

/* ---- the tree digest ---- */

struct digest {
	const char *local_only;
	uint64_t a, b, n;
};

/* FNV-1a, continued from h */
static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* a finalizer, so that sums of related hashes do not cancel (splitmix64) */
static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static int digest_one(void *ctx, const sg_change *c)
{
	struct digest *d = ctx;
	uint64_t h1 = 0xcbf29ce484222325ULL, h2 = 0x84222325cbf29ce4ULL;
	uint32_t f[4] = {c->type, c->type == SG_TYPE_SYMLINK ? 0 : c->mode & 07777, c->uid, c->gid};
	uint64_t len = c->len;

	if (c->type == SG_TYPE_TOMBSTONE || !*c->path || sg_path_matches(d->local_only, c->path))
		return 0;
	for (int k = 0; k < 2; k++) {
		uint64_t *h = k ? &h2 : &h1;
		*h = fnv(*h, c->path, strlen(c->path) + 1);
		*h = fnv(*h, f, sizeof(f));
		*h = fnv(*h, &len, sizeof(len));
		if (c->len)
			*h = fnv(*h, c->data, c->len);
		for (size_t i = 0; i < c->nxattrs; i++) {
			uint64_t xl = c->xattrs[i].len;
			*h = fnv(*h, c->xattrs[i].name, strlen(c->xattrs[i].name) + 1);
			*h = fnv(*h, &xl, sizeof(xl));
			if (xl)
				*h = fnv(*h, c->xattrs[i].value, c->xattrs[i].len);
		}
	}
	d->a += mix(h1);
	d->b += mix(h2 ^ 0x5851f42d4c957f2dULL);
	d->n++;
	return 0;
}

int sg_tree_digest(sg_store *st, const char *local_only, char out[33], uint64_t *entries)
{
	struct digest d = {local_only, 0, 0, 0};
	int rc = sg_store_changes_after_atomic(st, 0, 0, digest_one, &d); /* each entry once */

	if (rc < 0)
		return rc;
	snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, d.a, d.b);
	if (entries)
		*entries = d.n;
	return 0;
}
