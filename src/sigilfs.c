/* sigilfs.c: the daemon and mount program: parse, lock the data dir, open the
 * store, mount, serve, and tear down in reverse. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <fuse_opt.h>
#include <limits.h>
#include <malloc.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "fs/fs.h"
#include "gitsync/gitsync.h"
#include "lmdb/store.h"
#include "conf.h"
#include "log.h"
#include "repl/repl.h"
#include "status.h"
#include "util.h"

#define DOMAIN "main"
#define DEFAULT_DATA_DIR "/var/lib/sigil"

#define DEFAULT_CONFIG "/etc/sigil/sigil.conf"

/* Every config key is also a mount option of the same name (conf.h). */
struct opts {
	char *val[SG_CONFIG_NKEYS];
	char *config;
	int foreground;
	int debug;
	int single;
	int help;
	int version;
	char *nonopt[2];
	int nnonopt;
	int too_many;
};

enum { KEY_FG, KEY_DEBUG, KEY_SINGLE, KEY_HELP, KEY_VERSION };

#define OPT(i)                                                                                     \
	{                                                                                          \
		NULL, offsetof(struct opts, val) + (i) * sizeof(char *), 1                         \
	}
/* the templates are filled from conf.c's key names in main() */
static struct fuse_opt spec[SG_CONFIG_NKEYS + 16];
static char spec_templates[SG_CONFIG_NKEYS][40];

static void spec_init(void)
{
	size_t n = 0;
	const char *k;

	for (size_t i = 0; (k = sg_config_key(i)) && i < SG_CONFIG_NKEYS; i++) {
		snprintf(spec_templates[i], sizeof(spec_templates[i]), "%s=%%s", k);
		spec[n] = (struct fuse_opt)OPT(i);
		spec[n++].templ = spec_templates[i];
	}
	spec[n++] = (struct fuse_opt){"config=%s", offsetof(struct opts, config), 1};
	spec[n++] = (struct fuse_opt)FUSE_OPT_KEY("-f", KEY_FG);
	spec[n++] = (struct fuse_opt)FUSE_OPT_KEY("-d", KEY_DEBUG);
	spec[n++] = (struct fuse_opt)FUSE_OPT_KEY("debug", KEY_DEBUG);
	spec[n++] = (struct fuse_opt)FUSE_OPT_KEY("-s", KEY_SINGLE);
	spec[n++] = (struct fuse_opt)FUSE_OPT_KEY("-h", KEY_HELP);
	spec[n++] = (struct fuse_opt)FUSE_OPT_KEY("--help", KEY_HELP);
	spec[n++] = (struct fuse_opt)FUSE_OPT_KEY("-V", KEY_VERSION);
	spec[n++] = (struct fuse_opt)FUSE_OPT_KEY("--version", KEY_VERSION);
	spec[n] = (struct fuse_opt)FUSE_OPT_END;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct opts *o = data;

	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (o->nnonopt < 2)
			o->nonopt[o->nnonopt++] = strdup(arg);
		else
			o->too_many = 1;
		return 0;
	case KEY_FG:
		o->foreground = 1;
		return 0;
	case KEY_DEBUG:
		o->debug = 1;
		o->foreground = 1;
		return 1; /* FUSE logs every request too */
	case KEY_SINGLE:
		o->single = 1;
		return 0;
	case KEY_HELP:
		o->help = 1;
		return 0;
	case KEY_VERSION:
		o->version = 1;
		return 0;
	default:
		return 1;
	}
}

static void usage(const char *prog)
{
	printf(
	    "usage: %s [SOURCE] MOUNTPOINT [-f] [-s] [-d] [-o OPTION[,OPTION...]]\n"
	    "\n"
	    "Mount a sigilfs node: a replicated configuration filesystem kept in LMDB.\n"
	    "SOURCE is what mount(8) and fstab pass first. A SOURCE that names an existing\n"
	    "regular file is the config file (one with a '/' must be one); any other SOURCE\n"
	    "is only the name shown in mount listings, and %s is read if it exists.\n"
	    "Every key of the config file is also an option, and an option wins.\n"
	    "\n"
	    "sigilfs options:\n"
	    "  -o config=FILE         the config file (INI; see contrib/sigil.conf)\n"
	    "  -o data=DIR            the node's data dir, all its state (default %s)\n"
	    "  -o node=NAME           the node's name; fixed when the data dir is created\n"
	    "  -o max_file_size=N     largest file, bytes, K/M/G suffixes (default 64M)\n"
	    "  -o cache_timeout=SEC   how long the kernel caches names and attributes (default "
	    "10)\n"
	    "  -o sync_delay=D        a save is acknowledged once applied in memory and\n"
	    "                         committed to disk within D (default 5ms, at most 1s;\n"
	    "                         0: on disk before close returns). fsync always waits for\n"
	    "                         the disk; a crash within D loses unsynced saves\n"
	    "  -o max_mapped=N        the most of the store mapped into the daemon (its\n"
	    "                         RSS); past it, pages are unmapped and stay in the page\n"
	    "                         cache (default 16M)\n"
	    "  -o threads=N           FUSE worker threads, 1 to 64 (default: one per CPU,\n"
	    "                         2 to 16)\n"
	    "\n"
	    "replication (needs node=):\n"
	    "  -o listen=URL          serve peers on URL: tls+tcp://HOST:PORT, or tcp:// by "
	    "choice\n"
	    "  -o peers=URL;URL       peers to join through; the rest of the cluster is learned\n"
	    "  -o tls_ca=FILE         the cluster CA (PEM); peers must present a certificate from "
	    "it\n"
	    "  -o tls_cert=FILE       this node's certificate (PEM)\n"
	    "  -o tls_key=FILE        its private key (PEM)\n"
	    "  -o max_offset=MS       changes stamped further ahead of this clock wait (default "
	    "500)\n"
	    "  -o pull_interval=MS    anti-entropy: pull from up to three peers every MS\n"
	    "                         (default 1000); pushes not taken go again every second\n"
	    "  -o local_only=PAT:PAT  names that never leave the node (default %s)\n"
	    "  -o tombstone_grace=D   keep a delete's tombstone at least D; a peer silent for\n"
	    "                         longer no longer holds a purge back (default 7d)\n"
	    "  -o max_quarantine_bytes=N\n"
	    "                         pulled changes stamped too far ahead wait in memory for\n"
	    "                         this clock, at most N bytes, K/M/G (default 256M)\n"
	    "  -o log_level=LEVEL     err, warning, notice, info (default) or debug\n"
	    "\n"
	    "the Git mirror:\n"
	    "  -o mirror=PATH|off     the bare repository mirroring the tree (default "
	    "DATA/mirror.git)\n"
	    "  -o commit_interval=D   at most one mirror commit per D (default 1s)\n"
	    "  -o remote=URL          push the mirror's branch there after each commit\n"
	    "  -o seed=REPO[#REV]     fill an empty store from Git at mount time\n"
	    "\n"
	    "  -f                     stay in the foreground, log to stderr\n"
	    "  -s                     single-threaded: requests on the main thread alone\n"
	    "  -d, -o debug           foreground, and log every request\n"
	    "  -h, --help             this text\n"
	    "  -V, --version          the version\n"
	    "\n"
	    "FUSE options such as -o allow_other are passed to FUSE. Unmount with\n"
	    "`fusermount3 -u MOUNTPOINT` or `umount MOUNTPOINT`.\n",
	    prog, DEFAULT_CONFIG, DEFAULT_DATA_DIR, SG_REPL_LOCAL_ONLY_DEFAULT);
}

/* The store tells one commit observer; it passes each commit to the
 * replicator and the mirror. The fs hears earlier, as readers see a change. */
struct observers {
	sg_repl *repl;
	sg_mirror *mirror;
};

static void on_commit(void *ctx, const sg_note *notes, size_t n)
{
	struct observers *ob = ctx;

	if (ob->repl)
		sg_repl_on_commit(ob->repl, notes, n);
	if (ob->mirror)
		sg_mirror_on_commit(ob->mirror, notes, n);
}

/* The replicator purges no tombstone the mirror has not taken in yet. */
static uint64_t mirror_read_upto(void *ctx)
{
	sg_status_src *s = ctx;
	sg_mirror_stats ms;

	if (!s->mirror)
		return UINT64_MAX;
	sg_mirror_stats_get(s->mirror, &ms);
	return ms.version;
}

/* The mirror names a change's author after its origin node. */
static int origin_name(void *ctx, uint64_t id, char *buf, size_t len)
{
	sg_status_src *s = ctx;

	if (s->repl)
		return sg_repl_node_name(s->repl, id, buf, len);
	if (id == sg_store_node_id(s->store) && s->node) {
		snprintf(buf, len, "%s", s->node);
		return 0;
	}
	return -ENOENT;
}

/* seed=REPO[#REV]: fill an empty store from Git before the mount serves. */
static int seed(sg_store *st, const sg_config *cfg, const char *local_only)
{
	const char *seed_spec = sg_config_get(cfg, "seed");
	char repo[PATH_MAX + 256], err[PATH_MAX + 512], *hash;
	sg_git_apply_opts go = {0};
	sg_git_apply_result res;
	sg_store_stats ss;
	int rc;

	if (sg_store_stats_get(st, &ss) == 0 && (ss.entries > 1 || ss.tombstones > 0)) {
		sg_log(SG_LOG_INFO, DOMAIN, "SIGIL-MAIN-SEED-SKIPPED",
		       "seed=%s left alone: the store is not empty", seed_spec);
		return 0;
	}
	snprintf(repo, sizeof(repo), "%s", seed_spec);
	hash = strrchr(repo, '#');
	if (hash)
		*hash++ = '\0';
	go.store = st;
	go.repo = repo;
	go.rev = hash && *hash ? hash : "HEAD";
	go.local_only = local_only;
	go.mode = SG_GIT_RESTORE;
	rc = sg_git_apply(&go, &res, NULL, err, sizeof(err));
	if (rc < 0) {
		char where[PATH_MAX + 16] = "";
		sg_config_where(cfg, "seed", where, sizeof(where));
		fprintf(stderr, "sigilfs: %s: seed: %s\n", where, err);
		return rc;
	}
	sg_log(SG_LOG_NOTICE, DOMAIN, "SIGIL-MAIN-SEEDED", "seeded from %s at %s: %llu entries",
	       repo, res.commit, (unsigned long long)res.added);
	return 0;
}

/* ---- the control socket: what sigilctl's commands answer */

struct ctl_conflicts {
	FILE *f;
	const char *mnt;
};

/* A line of /.sigil/conflicts, and where the losing content can be read. */
static int ctl_conflict_line(void *ctx, const sg_conflict *c)
{
	struct ctl_conflicts *cc = ctx;

	fprintf(cc->f, "%llu\t%s\t%llx\t%016llx\t%llx\t%016llx\t%zu\t%s/.sigil/lost/%llu\n",
	        (unsigned long long)c->seq, c->path, (unsigned long long)c->loser.hlc,
	        (unsigned long long)c->loser.origin, (unsigned long long)c->winner.hlc,
	        (unsigned long long)c->winner.origin, c->len, cc->mnt, (unsigned long long)c->seq);
	return 0;
}

struct ctl_check {
	char first[400];
	int n;
};

/* Each problem goes to the log; the reply names the first. */
static void ctl_check_line(void *ctx, const char *problem)
{
	struct ctl_check *cc = ctx;

	sg_log(SG_LOG_ERR, DOMAIN, "SIGIL-STORE-CHECK", "%s", problem);
	if (cc->n++ == 0)
		snprintf(cc->first, sizeof(cc->first), "%s", problem);
}

/* restore|diff TAB REV [TAB PREFIX] [TAB --repo TAB REPO] [TAB --dry-run] */
static int ctl_git(sg_status_src *s, const char *req, FILE *body, char *err, size_t errlen)
{
	char *copy = strdup(req), *save = NULL, *args[3] = {NULL, NULL, NULL};
	sg_git_apply_opts go = {0};
	sg_git_apply_result res;
	int nargs = 0, diff = strncmp(req, "diff", 4) == 0, rc = -EINVAL;
	char mirror_err[128];

	if (!copy)
		return -ENOMEM;
	go.store = s->store;
	go.local_only = s->local_only;
	go.mode = diff ? SG_GIT_DIFF : SG_GIT_RESTORE;
	strtok_r(copy, "\t", &save);
	for (char *t = strtok_r(NULL, "\t", &save); t; t = strtok_r(NULL, "\t", &save)) {
		if (strcmp(t, "--dry-run") == 0 && !diff) {
			go.mode = SG_GIT_DRY_RUN;
		} else if (strcmp(t, "--repo") == 0) {
			if (!(go.repo = strtok_r(NULL, "\t", &save))) {
				snprintf(err, errlen, "--repo needs a repository");
				goto out;
			}
		} else if (nargs < 2) {
			args[nargs++] = t;
		} else {
			snprintf(err, errlen, "too many arguments at '%s'", t);
			goto out;
		}
	}
	if (!nargs) {
		snprintf(err, errlen, "which revision?");
		goto out;
	}
	go.rev = args[0];
	go.prefix = args[1];
	if (!go.repo) {
		if (!s->mirror) {
			snprintf(err, errlen, "the mirror is off: name a repository with --repo");
			rc = -ENOTSUP;
			goto out;
		}
		/* the mirror first takes in what the store holds, so HEAD is now */
		if ((rc = sg_mirror_flush(s->mirror)) < 0) {
			const char *why = "";
			sg_store_stats ss;

			if (sg_store_stats_get(s->store, &ss) == 0 && ss.refusing)
				why =
				    "the store refuses changes and reads since a checkpoint failed "
				    "(see the log; restart sigilfs, once the disk works, to replay "
				    "its journal); ";
			snprintf(mirror_err, sizeof(mirror_err), "%s", strerror(-rc));
			snprintf(err, errlen, "%sthe mirror cannot commit: %s", why, mirror_err);
			goto out;
		}
		go.repo = s->mirror_path;
	}
	char note[PATH_MAX + 200];
	snprintf(note, sizeof(note), "Sigil-Restore: %s of %s%s%s", go.rev,
	         go.repo == s->mirror_path ? "the mirror" : go.repo, go.prefix ? " at " : "",
	         go.prefix ? go.prefix : "");
	go.mirror = s->mirror; /* marks the commits of the restore's own changes */
	go.trailer = note;
	rc = sg_git_apply(&go, &res, body, err, errlen);
	if (rc == 0 && go.mode == SG_GIT_RESTORE && s->mirror)
		sg_mirror_flush(s->mirror);
	if (rc == 0)
		fprintf(body, "# %s %s: %llu added, %llu modified, %llu deleted, %llu unchanged\n",
		        go.mode == SG_GIT_RESTORE   ? "restored"
		        : go.mode == SG_GIT_DRY_RUN ? "would restore"
		                                    : "live tree against",
		        res.commit, (unsigned long long)res.added, (unsigned long long)res.modified,
		        (unsigned long long)res.deleted, (unsigned long long)res.unchanged);
out:
	free(copy);
	return rc;
}

static int ctl_handle(void *ctx, const char *req, FILE *body, char *err, size_t errlen)
{
	sg_status_src *s = ctx;

	if (strcmp(req, "status") == 0)
		return sg_status_write(s, "status", body);
	if (strcmp(req, "status --json") == 0) {
		sg_status_write_json(s, body);
		return 0;
	}
	if (strcmp(req, "peers") == 0)
		return sg_status_write(s, "members", body);
	if (strcmp(req, "conflicts") == 0) {
		struct ctl_conflicts cc = {body, s->mountpoint};
		int rc = sg_store_conflicts(s->store, 0, 0, ctl_conflict_line, &cc);
		return rc < 0 ? rc : 0;
	}
	if (strcmp(req, "check") == 0) {
		struct ctl_check cc = {"", 0};
		uint64_t checked = 0;
		int n = sg_store_check(s->store, ctl_check_line, &cc, &checked);

		if (n < 0)
			return n;
		if (n > 0) {
			snprintf(err, errlen,
			         "the store has %d problem%s (all in the log); the first: %s", n,
			         n == 1 ? "" : "s", cc.first);
			return -EIO;
		}
		fprintf(body, "ok: %llu entries, every log row, directory row and count agrees\n",
		        (unsigned long long)checked);
		{
			char dg[33];
			uint64_t live = 0;
			int rc = sg_tree_digest(s->store, s->local_only, dg, &live);
			if (rc < 0)
				return rc;
			/* the same on every node holding the same tree: compare them */
			fprintf(body, "tree digest %s over %llu entries\n", dg,
			        (unsigned long long)live);
		}
		return 0;
	}
	if (strcmp(req, "gc") == 0) {
		sg_repl_gc_result g;
		sg_repl_stats rs;
		int rc;

		if (!s->repl) {
			snprintf(err, errlen, "replication is off (no listen= or peers=)");
			return -ENOTSUP;
		}
		rc = sg_repl_gc(s->repl, &g);
		if (rc < 0)
			return rc;
		sg_repl_stats_get(s->repl, &rs);
		fprintf(body, "purged      %llu tombstones now, %llu since start\n",
		        (unsigned long long)g.purged, (unsigned long long)rs.purged);
		fprintf(body, "tombstones  %llu left\n", (unsigned long long)g.tombstones);
		fprintf(body, "horizon     version %llu, stamp %llx from %016llx\n",
		        (unsigned long long)g.horizon.version,
		        (unsigned long long)g.horizon.stamp.hlc,
		        (unsigned long long)g.horizon.stamp.origin);
		if (g.waiting == 1)
			fprintf(body, "waiting     just started: peers have not all pulled yet\n");
		else if (g.waiting == 2)
			fprintf(body, "waiting     no peer heard from within the grace (%llu ms)\n",
			        (unsigned long long)g.grace_ms);
		else if (g.held_by_reader)
			fprintf(body, "held        at version %llu by the Git mirror\n",
			        (unsigned long long)g.upto);
		else if (g.held_by)
			fprintf(body, "held        at version %llu by node %016llx\n",
			        (unsigned long long)g.upto, (unsigned long long)g.held_by);
		else if (g.upto == 0)
			fprintf(body, "held        at version 0 by a peer not heard from yet\n");
		else
			fprintf(body, "held        by no peer (up to version %llu)\n",
			        (unsigned long long)g.upto);
		return 0;
	}
	if (strcmp(req, "sync") == 0) {
		if (!s->repl) {
			snprintf(err, errlen, "replication is off (no listen= or peers=)");
			return -ENOTSUP;
		}
		sg_repl_sync_now(s->repl);
		fprintf(body, "pulling from every peer now\n");
		return 0;
	}
	if (strncmp(req, "restore\t", 8) == 0 || strncmp(req, "diff\t", 5) == 0)
		return ctl_git(s, req, body, err, errlen);
	snprintf(err, errlen, "unknown command '%s'", req);
	return -EINVAL;
}

/* Split "a;b;c" (or commas, blanks) in place into an array of at most max URLs. */
static size_t split_peers(char *s, const char **out, size_t max)
{
	size_t n = 0;
	char *save = NULL;

	for (char *t = s ? strtok_r(s, ";, \t", &save) : NULL; t && n < max;
	     t = strtok_r(NULL, ";, \t", &save))
		if (*t)
			out[n++] = t;
	return n;
}

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void mountinfo_unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* Is `path` a mount point already? 1 with its type and source in what (if found). */
static int mounted_on(const char *path, char *what, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[8192];
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		char *fields[10], *save = NULL, *dash, tail[1300] = "";
		int n = 0;

		dash = strstr(line, " - ");
		if (dash) {
			snprintf(tail, sizeof(tail), "%s", dash + 3);
			*dash = '\0';
		}
		for (char *t = strtok_r(line, " ", &save); t && n < 10;
		     t = strtok_r(NULL, " ", &save))
			fields[n++] = t;
		if (n < 5)
			continue;
		mountinfo_unescape(fields[4]);
		if (strcmp(fields[4], path) != 0)
			continue;
		found = 1;
		if (*tail) {
			char type[256] = "", src[1024] = "";
			if (sscanf(tail, "%255s %1023s", type, src) >= 1)
				snprintf(what, len, "%s %s", type, src);
		}
	}
	fclose(f);
	return found;
}

/* Take the data dir: create it, lock it against a second daemon, record our pid. */
static int data_dir_lock(const char *dir, int *lockfd)
{
	char path[PATH_MAX];
	int fd, rc;

	rc = sg_mkdir_p(dir, 0700);
	if (rc) {
		fprintf(stderr, "sigilfs: cannot create data dir %s: %s\n", dir, strerror(-rc));
		return rc;
	}
	snprintf(path, sizeof(path), "%s/lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		fprintf(stderr, "sigilfs: cannot open %s: %s\n", path, strerror(errno));
		return rc;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		char pid[32] = "";
		FILE *f;

		rc = -errno;
		snprintf(path, sizeof(path), "%s/sigilfs.pid", dir);
		f = fopen(path, "r");
		if (f) {
			if (!fgets(pid, sizeof(pid), f))
				pid[0] = '\0';
			fclose(f);
			pid[strcspn(pid, "\n")] = '\0';
		}
		fprintf(stderr, "sigilfs: data dir %s is in use by another sigilfs%s%s%s\n", dir,
		        *pid ? " (pid " : "", pid, *pid ? ")" : "");
		close(fd);
		return rc == -EWOULDBLOCK ? -EBUSY : rc;
	}
	*lockfd = fd;
	return 0;
}

static void pid_write(const char *dir)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/sigilfs.pid", dir);
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "%ld\n", (long)getpid());
		fclose(f);
	}
}

static void pid_remove(const char *dir)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/sigilfs.pid", dir);
	unlink(path);
}

/* Fork; the parent waits until the child reports the mount ready (0) or failed. */
static int daemon_start(int *notify_fd)
{
	int fds[2];
	pid_t pid;

	if (pipe(fds) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		unsigned char status = 1;

		close(fds[1]);
		if (read(fds[0], &status, 1) != 1)
			status = 1;
		_exit(status);
	}
	close(fds[0]);
	setsid();
	*notify_fd = fds[1];
	return 0;
}

static void daemon_ready(int *notify_fd, int status)
{
	unsigned char s = (unsigned char)status;
	int null;

	if (*notify_fd < 0)
		return;
	if (status == 0) {
		null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			if (null > 2)
				close(null);
		}
	}
	if (write(*notify_fd, &s, 1) != 1)
		s = 1;
	close(*notify_fd);
	*notify_fd = -1;
}

/*
 * SOURCE, the first of two arguments (what mount(8) passes from fstab): 1 if
 * it names an existing regular file, the config file; 0 if it is only a
 * name for mount listings; -1 (after a message) if it has a '/' but names
 * no regular file, a path mistyped rather than a name.
 */
static int source_is_config(const char *src)
{
	struct stat sb;

	if (stat(src, &sb) == 0 && S_ISREG(sb.st_mode))
		return 1;
	if (!strchr(src, '/'))
		return 0;
	if (stat(src, &sb) < 0)
		fprintf(stderr, "sigilfs: SOURCE %s, the config file: %s\n", src, strerror(errno));
	else
		fprintf(stderr, "sigilfs: SOURCE %s, the config file: not a regular file\n", src);
	return -1;
}

/* Would FUSE take these options? A session parses them and mounts nothing;
 * libfuse names an unknown option on stderr. 0 or -EINVAL. */
static int fuse_args_check(const struct fuse_args *args)
{
	static const struct fuse_lowlevel_ops none;
	struct fuse_args copy = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;

	/* fuse_session_new() takes the options it knows out of its argument */
	for (int i = 0; i < args->argc; i++)
		if (fuse_opt_add_arg(&copy, args->argv[i]) < 0)
			goto out;
	se = fuse_session_new(&copy, &none, sizeof(none), NULL);
out:
	fuse_opt_free_args(&copy);
	if (!se)
		return -EINVAL;
	fuse_session_destroy(se);
	return 0;
}

/*
 * Can this node listen on listen=URL? Resolve the host and bind a socket to
 * it the way the replicator's listener will, so that a host that does not
 * resolve, an address this machine does not have or a port in use stops
 * the mount with one line naming where the key was set and the address.
 * 0, or -1 after that line.
 */
static int listen_check(const sg_config *cfg)
{
	const char *url = sg_config_get(cfg, "listen"), *rest, *colon;
	char where[PATH_MAX + 16] = "", host[300];
	struct addrinfo hints = {0}, *ai = NULL;
	int fd, rv, one = 1;
	size_t hl;

	sg_config_where(cfg, "listen", where, sizeof(where));
	if (strncmp(url, "tcp://", 6) == 0)
		rest = url + 6;
	else if (strncmp(url, "tls+tcp://", 10) == 0)
		rest = url + 10;
	else
		return 0; /* ipc://: the replicator's own message names the path */
	colon = strrchr(rest, ':');
	hl = colon ? (size_t)(colon - rest) : 0;
	if (!colon || hl >= sizeof(host))
		return 0; /* conf has checked the shape */
	memcpy(host, rest, hl);
	host[hl] = '\0';
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rv = getaddrinfo(*host && strcmp(host, "*") != 0 ? host : NULL, colon + 1, &hints, &ai);
	if (rv) {
		fprintf(stderr, "sigilfs: %s: listen: cannot listen on %s: host '%s': %s\n", where,
		        url, host, rv == EAI_SYSTEM ? strerror(errno) : gai_strerror(rv));
		return -1;
	}
	/* the first address, as NNG takes it */
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	rv = fd < 0 ? errno : 0;
	if (!rv)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* as NNG does */
	if (!rv && bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
		rv = errno;
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	if (rv == EADDRINUSE)
		fprintf(stderr, "sigilfs: %s: listen: %s is in use\n", where, url);
	else if (rv)
		fprintf(stderr, "sigilfs: %s: listen: cannot listen on %s: %s\n", where, url,
		        strerror(rv));
	return rv ? -1 : 0;
}

/*
 * Two malloc arenas, not glibc's default of 8 per CPU. The daemon's threads
 * (FUSE workers, the store's writer, NNG's, the mirror's) allocate in one
 * and free in another all the time, and LMDB alone takes 3 MiB for every
 * nested transaction (the store runs each operation in one). With an arena
 * each, their heaps grow and shrink apart, and new allocations land on
 * pages the kernel must fault in again. Measured on a 3-node loopback
 * cluster (the commit that brought this says how): 0.6 to 1.5 minor faults
 * fewer per change on the receiving nodes, 9 to 25% less CPU per change
 * there, and no more heap. MALLOC_ARENA_MAX or a GLIBC_TUNABLES arena_max
 * in the environment still decides.
 */
static void malloc_tune(void)
{
	const char *t = getenv("GLIBC_TUNABLES");

	if (!getenv("MALLOC_ARENA_MAX") && !(t && strstr(t, "arena_max")))
		mallopt(M_ARENA_MAX, 2);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct opts o = {0};
	sg_store_opts so = {0};
	sg_fs_opts fo = {0};
	sg_store *st = NULL;
	sg_fs *fs = NULL;
	sg_repl *repl = NULL;
	sg_repl_opts ro = {0};
	sg_ctl *ctl = NULL;
	sg_mirror *mirror = NULL;
	char mirror_path[PATH_MAX], branch_node[80];
	const char *local_only;
	struct observers ob = {0};
	sg_status_src status_src = {0};
	const char *peer_urls[64];
	char *peers_copy = NULL;
	char mnt[PATH_MAX], fsname[PATH_MAX + 32];
	const char *mountpoint, *data = NULL, *node = NULL;
	sg_config cfg = {0};
	char cerr[PATH_MAX + 512];
	struct stat sb;
	int lockfd = -1, notify_fd = -1, rc = 1, err, log_level = SG_LOG_INFO;
	double timeout = 10.0;
	unsigned threads = 0; /* sg_fs_run(): one per CPU */

	malloc_tune();
	sg_log_init("sigilfs", 0, SG_LOG_INFO);
	spec_init();
	if (fuse_opt_parse(&args, &o, spec, opt_proc) < 0) {
		rc = 2;
		goto out;
	}
	if (o.help) {
		usage(argv[0]);
		rc = 0;
		goto out;
	}
	if (o.version) {
		printf("sigilfs %s (libfuse %s)\n", PACKAGE_VERSION, fuse_pkgversion());
		rc = 0;
		goto out;
	}
	rc = 2;
	if (o.too_many || o.nnonopt == 0) {
		fprintf(stderr, "sigilfs: %s\nTry 'sigilfs --help'.\n",
		        o.too_many ? "too many arguments" : "no mountpoint given");
		goto out;
	}
	mountpoint = o.nonopt[o.nnonopt - 1];

	/* settings: mount options first (they win), then the config file, then one check */
	for (size_t i = 0; i < SG_CONFIG_NKEYS; i++)
		if (o.val[i] && sg_config_set(&cfg, sg_config_key(i), o.val[i], "-o", 0, cerr,
		                              sizeof(cerr)) < 0) {
			fprintf(stderr, "sigilfs: %s\n", cerr);
			goto out;
		}
	{
		const char *path = o.config;
		int explicit = 1, src = o.nnonopt == 2 ? source_is_config(o.nonopt[0]) : 0;

		if (src < 0)
			goto out;
		if (!path && src == 1)
			path = o.nonopt[0]; /* fstab: /etc/sigil/sigil.conf /sigil fuse.sigilfs */
		if (!path) {
			path = DEFAULT_CONFIG;
			explicit = 0;
		}
		err = sg_config_load(&cfg, path, cerr, sizeof(cerr));
		if (err && (explicit || err != -ENOENT)) {
			fprintf(stderr, "sigilfs: %s\n", cerr);
			goto out;
		}
	}
	if (sg_config_check(&cfg, cerr, sizeof(cerr)) < 0) {
		fprintf(stderr, "sigilfs: %s\n", cerr);
		goto out;
	}
	data = sg_config_get(&cfg, "data") ? sg_config_get(&cfg, "data") : DEFAULT_DATA_DIR;
	node = sg_config_get(&cfg, "node");
	{
		uint64_t v;
		if (sg_config_get_u64(&v, &cfg, "max_file_size") == 0)
			so.max_file_size = v;
		if (sg_config_get_u64(&v, &cfg, "cache_timeout") == 0)
			timeout = (double)v / 1000.0;
		if (sg_config_get_u64(&v, &cfg, "max_offset") == 0)
			ro.max_offset_ms = (unsigned)v;
		if (sg_config_get_u64(&v, &cfg, "pull_interval") == 0)
			ro.pull_interval_ms = (unsigned)v;
		if (sg_config_get_u64(&v, &cfg, "tombstone_grace") == 0)
			ro.tombstone_grace_ms = v;
		if (sg_config_get_u64(&v, &cfg, "max_quarantine_bytes") == 0)
			ro.max_quarantine_bytes = v > SIZE_MAX ? SIZE_MAX : (size_t)v;
		ro.log_reader = mirror_read_upto;
		ro.log_reader_ctx = &status_src;
		if (sg_config_get_u64(&v, &cfg, "sync_delay") == 0)
			so.sync_delay_ns = v ? (int64_t)v * 1000000 : -1; /* 0: off */
		if (sg_config_get_u64(&v, &cfg, "max_mapped") == 0)
			so.max_mapped = v;
		if (sg_config_get_u64(&v, &cfg, "threads") == 0)
			threads = (unsigned)v;
		if (sg_config_get_u64(&v, &cfg, "log_level") == 0)
			log_level = (int)v;
		if (o.debug)
			log_level = SG_LOG_DEBUG;
		sg_log_init("sigilfs", 0, log_level);
	}
	if (data[0] != '/') {
		fprintf(stderr, "sigilfs: data dir %s must be an absolute path\n", data);
		goto out;
	}
	rc = 1;
	if (!realpath(mountpoint, mnt)) {
		fprintf(stderr, "sigilfs: mountpoint %s: %s\n", mountpoint, strerror(errno));
		goto out;
	}
	if (stat(mnt, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "sigilfs: mountpoint %s is not a directory\n", mnt);
		goto out;
	}
	{
		char what[1300] = "";
		if (mounted_on(mnt, what, sizeof(what))) {
			fprintf(stderr, "sigilfs: %s is already mounted (%s); unmount it first\n",
			        mnt, *what ? what : "unknown");
			goto out;
		}
	}

	snprintf(fsname, sizeof(fsname), "-osubtype=sigilfs,fsname=%s,default_permissions",
	         o.nnonopt == 2 ? o.nonopt[0] : "sigilfs");
	if (fuse_opt_add_arg(&args, fsname) < 0)
		goto out;
	/* everything is checked before the data dir or the store is made: a
	 * mistyped option must not leave a store with a node id of its own */
	if (fuse_args_check(&args) < 0) {
		fprintf(stderr, "sigilfs: bad FUSE options (see above); nothing was mounted\n");
		rc = 2;
		goto out;
	}
	if (sg_config_get(&cfg, "listen") && listen_check(&cfg) < 0)
		goto out;

	/* fork first: no LMDB environment or thread may cross a fork */
	if (!o.foreground && (err = daemon_start(&notify_fd)) < 0) {
		fprintf(stderr, "sigilfs: cannot start the daemon: %s\n", strerror(-err));
		return 1;
	}
	if (data_dir_lock(data, &lockfd) < 0)
		goto out;

	so.dir = data;
	so.node_id = node ? sg_hash64(node, strlen(node)) : 0;
	err = sg_store_open(&st, &so);
	if (err) {
		fprintf(stderr, "sigilfs: cannot open the store in %s: %s\n", data, strerror(-err));
		goto out;
	}
	local_only = sg_config_get(&cfg, "local_only") ? sg_config_get(&cfg, "local_only")
	                                               : SG_REPL_LOCAL_ONLY_DEFAULT;
	if (sg_config_get(&cfg, "seed") && seed(st, &cfg, local_only) < 0)
		goto out;
	fo.data_dir = data;
	fo.entry_timeout = timeout;
	fo.attr_timeout = timeout;
	fo.debug = o.debug;
	err = sg_fs_new(&fs, st, &fo, &args);
	if (err) {
		fprintf(stderr, "sigilfs: bad FUSE options\n");
		goto out;
	}
	sg_store_set_visible_observer(st, sg_fs_on_visible, fs);
	sg_store_set_observer(st, on_commit, &ob);
	status_src.store = st;
	status_src.fs = fs;
	status_src.node = node;
	status_src.mountpoint = mnt;
	status_src.data_dir = data;
	status_src.started_ns = sg_now_ns();
	sg_fs_set_status(fs, sg_status_names, sg_status_write, &status_src);
	if (sg_config_get(&cfg, "listen") || sg_config_get(&cfg, "peers")) {
		ro.store = st;
		ro.node_name = node;
		ro.listen = sg_config_get(&cfg, "listen");
		if (sg_config_get(&cfg, "peers") &&
		    !(peers_copy = strdup(sg_config_get(&cfg, "peers"))))
			goto out;
		ro.npeers = split_peers(peers_copy, peer_urls, 64);
		ro.peers = peer_urls;
		ro.tls_ca = sg_config_get(&cfg, "tls_ca");
		ro.tls_cert = sg_config_get(&cfg, "tls_cert");
		ro.tls_key = sg_config_get(&cfg, "tls_key");
		ro.local_only = sg_config_get(&cfg, "local_only");
		err = sg_repl_start(&repl, &ro);
		if (err) {
			char where[PATH_MAX + 16] = "";
			if (err == -EADDRINUSE)
				sg_config_where(&cfg, "listen", where, sizeof(where));
			if (err == -EADDRINUSE) /* taken since listen_check() */
				fprintf(stderr, "sigilfs: %s: listen: %s is in use\n", where,
				        ro.listen);
			else if (err == -EINVAL || err == -ENOENT)
				; /* the replicator has said which option and why */
			else
				fprintf(stderr, "sigilfs: cannot start replication: %s\n",
				        strerror(-err));
			goto out;
		}
		ob.repl = repl;
		status_src.repl = repl;
	}
	status_src.local_only = local_only;
	if (!sg_config_get(&cfg, "mirror") || strcmp(sg_config_get(&cfg, "mirror"), "off") != 0) {
		sg_mirror_opts mo = {0};
		uint64_t v;

		if (sg_config_get(&cfg, "mirror"))
			snprintf(mirror_path, sizeof(mirror_path), "%s",
			         sg_config_get(&cfg, "mirror"));
		else
			snprintf(mirror_path, sizeof(mirror_path), "%s/mirror.git", data);
		if (node)
			snprintf(branch_node, sizeof(branch_node), "%s", node);
		else
			snprintf(branch_node, sizeof(branch_node), "node-%016llx",
			         (unsigned long long)sg_store_node_id(st));
		mo.store = st;
		mo.path = mirror_path;
		mo.node_name = branch_node;
		if (sg_config_get_u64(&v, &cfg, "commit_interval") == 0)
			mo.interval_ms = v ? (unsigned)v : 1;
		mo.remote = sg_config_get(&cfg, "remote");
		mo.local_only = local_only;
		mo.origin_name = origin_name;
		mo.origin_ctx = &status_src;
		err = sg_mirror_start(&mirror, &mo);
		if (err) {
			char where[PATH_MAX + 16] = "";
			if (sg_config_get(&cfg, "mirror"))
				sg_config_where(&cfg, "mirror", where, sizeof(where));
			fprintf(stderr,
			        "sigilfs: %s%scannot open or create the Git mirror %s: %s\n", where,
			        *where ? ": mirror: " : "", mirror_path,
			        err == -EIO ? "not a bare Git repository, or not writable"
			                    : strerror(-err));
			goto out;
		}
		ob.mirror = mirror;
		status_src.mirror = mirror;
		status_src.mirror_path = mirror_path;
	}
	{
		char sock[PATH_MAX];

		snprintf(sock, sizeof(sock), "%s/control.sock", data);
		err = sg_ctl_start(&ctl, sock, ctl_handle, &status_src);
		if (err) {
			fprintf(stderr, "sigilfs: cannot open the control socket %s: %s\n", sock,
			        strerror(-err));
			goto out;
		}
	}
	if (sg_fs_signals(fs) < 0 || sg_fs_mount(fs, mnt) < 0) {
		fprintf(stderr, "sigilfs: cannot mount on %s\n", mnt);
		goto out;
	}
	pid_write(data);
	if (!o.foreground) {
		daemon_ready(&notify_fd, 0);
		sg_log_init("sigilfs", 1, log_level); /* log_level= and -d hold in syslog too */
	}
	sg_log(SG_LOG_INFO, DOMAIN, "SIGIL-MAIN-MOUNTED", "mounted %s, data %s, node %016llx", mnt,
	       data, (unsigned long long)sg_store_node_id(st));
	/* for a Type=notify unit: the mount serves and the store is open */
	sd_notifyf(0, "READY=1\nSTATUS=serving %s\nMAINPID=%ld", mnt, (long)getpid());
	rc = sg_fs_run(fs, o.single, threads) == 0 ? 0 : 1;
	sd_notify(0, "STOPPING=1");
	sg_log(SG_LOG_INFO, DOMAIN, "SIGIL-MAIN-STOP", "unmounted %s", mnt);
out:
	daemon_ready(&notify_fd, 1);
	sg_ctl_stop(ctl);
	if (st) {
		sg_store_set_observer(st, NULL, NULL);
		sg_store_set_visible_observer(st, NULL, NULL);
	}
	/* the mirror's last batch names authors through the replicator, and the
	 * replicator asks the mirror how far it has read: untie them, then stop
	 * the mirror first */
	if (repl)
		sg_repl_set_log_reader(repl, NULL, NULL);
	sg_mirror_stop(mirror); /* commits the last batch */
	sg_repl_stop(repl);
	sg_fs_free(fs);
	sg_store_close(st);
	if (lockfd >= 0) {
		pid_remove(data);
		close(lockfd);
	}
	fuse_opt_free_args(&args);
	for (size_t i = 0; i < SG_CONFIG_NKEYS; i++)
		free(o.val[i]);
	free(o.config);
	free(o.nonopt[0]);
	free(o.nonopt[1]);
	free(peers_copy);
	sg_config_free(&cfg); /* last: the replicator's options borrowed its strings */
	return rc;
}
