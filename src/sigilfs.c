/* sigilfs.c: the daemon and mount program: parse, lock the data dir, open the
 * store, mount, serve, and tear down in reverse. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <fuse_opt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "fs/fs.h"
#include "lmdb/store.h"
#include "log.h"
#include "repl/repl.h"
#include "status.h"
#include "util.h"

#define DOMAIN "main"
#define DEFAULT_DATA_DIR "/var/lib/sigil"

struct opts {
	char *data;
	char *node;
	char *max_file_size;
	char *cache_timeout;
	char *listen;
	char *peers;
	char *tls_ca, *tls_cert, *tls_key;
	char *max_offset;
	char *local_only;
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

#define OPT(t, p) {t, offsetof(struct opts, p), 1}
static const struct fuse_opt spec[] = {
	OPT("data=%s", data),
	OPT("node=%s", node),
	OPT("max_file_size=%s", max_file_size),
	OPT("cache_timeout=%s", cache_timeout),
	OPT("listen=%s", listen),
	OPT("peers=%s", peers),
	OPT("tls_ca=%s", tls_ca),
	OPT("tls_cert=%s", tls_cert),
	OPT("tls_key=%s", tls_key),
	OPT("max_offset=%s", max_offset),
	OPT("local_only=%s", local_only),
	FUSE_OPT_KEY("-f", KEY_FG),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("-s", KEY_SINGLE),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END,
};

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
	printf("usage: %s [SOURCE] MOUNTPOINT [-f] [-s] [-d] [-o OPTION[,OPTION...]]\n"
	       "\n"
	       "Mount a sigilfs node: a replicated configuration filesystem kept in LMDB.\n"
	       "SOURCE is what mount(8) and fstab pass first; it is not needed by hand.\n"
	       "\n"
	       "sigilfs options:\n"
	       "  -o data=DIR            the node's data dir, all its state (default %s)\n"
	       "  -o node=NAME           the node's name; fixed when the data dir is created\n"
	       "  -o max_file_size=N     largest file, bytes, K/M/G suffixes (default 64M)\n"
	       "  -o cache_timeout=SEC   how long the kernel caches names and attributes (default 10)\n"
	       "\n"
	       "replication (needs node=):\n"
	       "  -o listen=URL          serve peers on URL: tls+tcp://HOST:PORT, or tcp:// by choice\n"
	       "  -o peers=URL;URL       peers to join through; the rest of the cluster is learned\n"
	       "  -o tls_ca=FILE         the cluster CA (PEM); peers must present a certificate from it\n"
	       "  -o tls_cert=FILE       this node's certificate (PEM)\n"
	       "  -o tls_key=FILE        its private key (PEM)\n"
	       "  -o max_offset=MS       changes stamped further ahead of this clock wait (default 500)\n"
	       "  -o local_only=PAT:PAT  names that never leave the node (default %s)\n"
	       "  -f                     stay in the foreground, log to stderr\n"
	       "  -s                     single-threaded\n"
	       "  -d, -o debug           foreground, and log every request\n"
	       "  -h, --help             this text\n"
	       "  -V, --version          the version\n"
	       "\n"
	       "FUSE options such as -o allow_other are passed to FUSE. Unmount with\n"
	       "`fusermount3 -u MOUNTPOINT` or `umount MOUNTPOINT`.\n",
	       prog, DEFAULT_DATA_DIR, SG_REPL_LOCAL_ONLY_DEFAULT);
}

/* The store tells one observer; it passes each commit to the fs and the replicator. */
struct observers {
	sg_fs *fs;
	sg_repl *repl;
};

static void on_commit(void *ctx, const sg_note *notes, size_t n)
{
	struct observers *ob = ctx;

	if (ob->fs)
		sg_fs_on_commit(ob->fs, notes, n);
	if (ob->repl)
		sg_repl_on_commit(ob->repl, notes, n);
}

/* Split "a;b;c" in place into an array of at most max URLs. */
static size_t split_peers(char *s, const char **out, size_t max)
{
	size_t n = 0;
	char *save = NULL;

	for (char *t = s ? strtok_r(s, ";", &save) : NULL; t && n < max; t = strtok_r(NULL, ";", &save))
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
		for (char *t = strtok_r(line, " ", &save); t && n < 10; t = strtok_r(NULL, " ", &save))
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
	struct observers ob = {0};
	sg_status_src status_src = {0};
	const char *peer_urls[64];
	char mnt[PATH_MAX], fsname[PATH_MAX + 32];
	const char *mountpoint, *data = NULL;
	struct stat sb;
	int lockfd = -1, notify_fd = -1, rc = 1, err;
	double timeout = 10.0;

	sg_log_init("sigilfs", 0, SG_LOG_INFO);
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
	data = o.data ? o.data : DEFAULT_DATA_DIR;
	if (o.max_file_size && (sg_parse_size(o.max_file_size, &so.max_file_size) ||
				so.max_file_size == 0)) {
		fprintf(stderr, "sigilfs: bad max_file_size '%s': a size in bytes, with K, M or G\n",
			o.max_file_size);
		goto out;
	}
	if (o.cache_timeout) {
		char *end;
		timeout = strtod(o.cache_timeout, &end);
		if (*end || timeout < 0 || timeout > 86400) {
			fprintf(stderr, "sigilfs: bad cache_timeout '%s': seconds, 0 to 86400\n",
				o.cache_timeout);
			goto out;
		}
	}
	if (o.node && (!*o.node || strlen(o.node) > 64)) {
		fprintf(stderr, "sigilfs: bad node name '%s': 1 to 64 characters\n", o.node);
		goto out;
	}
	if (o.max_offset) {
		char *end;
		unsigned long ms = strtoul(o.max_offset, &end, 10);
		if (*end || ms == 0 || ms > 3600000) {
			fprintf(stderr, "sigilfs: bad max_offset '%s': milliseconds, 1 to 3600000\n",
				o.max_offset);
			goto out;
		}
		ro.max_offset_ms = (unsigned)ms;
	}
	if ((o.listen || o.peers) && !o.node) {
		fprintf(stderr, "sigilfs: replication (listen=, peers=) needs node=NAME\n");
		goto out;
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

	/* fork first: no LMDB environment or thread may cross a fork */
	if (!o.foreground && (err = daemon_start(&notify_fd)) < 0) {
		fprintf(stderr, "sigilfs: cannot start the daemon: %s\n", strerror(-err));
		return 1;
	}
	if (data_dir_lock(data, &lockfd) < 0)
		goto out;

	so.dir = data;
	so.node_id = o.node ? sg_hash64(o.node, strlen(o.node)) : 0;
	err = sg_store_open(&st, &so);
	if (err) {
		fprintf(stderr, "sigilfs: cannot open the store in %s: %s\n", data, strerror(-err));
		goto out;
	}
	fo.data_dir = data;
	fo.entry_timeout = timeout;
	fo.attr_timeout = timeout;
	fo.debug = o.debug;
	err = sg_fs_new(&fs, st, &fo, &args);
	if (err) {
		fprintf(stderr, "sigilfs: bad FUSE options\n");
		goto out;
	}
	ob.fs = fs;
	sg_store_set_observer(st, on_commit, &ob);
	status_src.store = st;
	status_src.fs = fs;
	status_src.node = o.node;
	status_src.mountpoint = mnt;
	status_src.data_dir = data;
	status_src.started_ns = sg_now_ns();
	sg_fs_set_status(fs, sg_status_names, sg_status_write, &status_src);
	if (o.listen || o.peers) {
		ro.store = st;
		ro.node_name = o.node;
		ro.listen = o.listen;
		ro.npeers = split_peers(o.peers, peer_urls, 64);
		ro.peers = peer_urls;
		ro.tls_ca = o.tls_ca;
		ro.tls_cert = o.tls_cert;
		ro.tls_key = o.tls_key;
		ro.local_only = o.local_only;
		err = sg_repl_start(&repl, &ro);
		if (err) {
			fprintf(stderr, "sigilfs: cannot start replication: %s\n", strerror(-err));
			goto out;
		}
		ob.repl = repl;
		status_src.repl = repl;
	}
	if (sg_fs_signals(fs) < 0 || sg_fs_mount(fs, mnt) < 0) {
		fprintf(stderr, "sigilfs: cannot mount on %s\n", mnt);
		goto out;
	}
	pid_write(data);
	if (!o.foreground) {
		daemon_ready(&notify_fd, 0);
		sg_log_init("sigilfs", 1, o.debug ? SG_LOG_DEBUG : SG_LOG_INFO);
	}
	sg_log(SG_LOG_INFO, DOMAIN, "SIGIL-MAIN-MOUNTED", "mounted %s, data %s, node %016llx", mnt,
	       data, (unsigned long long)sg_store_node_id(st));
	/* for a Type=notify unit: the mount serves and the store is open */
	sd_notifyf(0, "READY=1\nSTATUS=serving %s\nMAINPID=%ld", mnt, (long)getpid());
	rc = sg_fs_run(fs, o.single) == 0 ? 0 : 1;
	sd_notify(0, "STOPPING=1");
	sg_log(SG_LOG_INFO, DOMAIN, "SIGIL-MAIN-STOP", "unmounted %s", mnt);
out:
	daemon_ready(&notify_fd, 1);
	sg_repl_stop(repl);
	if (st)
		sg_store_set_observer(st, NULL, NULL);
	sg_fs_free(fs);
	sg_store_close(st);
	if (lockfd >= 0) {
		pid_remove(data);
		close(lockfd);
	}
	fuse_opt_free_args(&args);
	free(o.data);
	free(o.node);
	free(o.max_file_size);
	free(o.cache_timeout);
	free(o.listen);
	free(o.peers);
	free(o.tls_ca);
	free(o.tls_cert);
	free(o.tls_key);
	free(o.max_offset);
	free(o.local_only);
	free(o.nonopt[0]);
	free(o.nonopt[1]);
	return rc;
}
