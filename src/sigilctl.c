/* sigilctl.c: the operator's tool: ask a node's running sigilfs, through its
 * control socket DATADIR/control.sock, for its status, peers and conflicts, or a sync. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "ctl/ctl.h"

#define DEFAULT_CONFIG "/etc/sigil/sigil.conf"
#define DEFAULT_DATA_DIR "/var/lib/sigil"

/* exit codes */
enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_NOT_RUNNING = 3, EXIT_DIFFERS = 4 };

/* how long a restore or diff may take before sigilctl gives up waiting */
#define LONG_REPLY_MS (30u * 60 * 1000)

#define SYNOPSIS                                                                                   \
	"sigilctl [-c CONFIG | -d DATADIR] status [--json] | peers | conflicts | sync | check | "  \
	"gc | "                                                                                    \
	"restore [--repo REPO] [--dry-run] REV [PREFIX] | diff [--repo REPO] REV [PREFIX]"

static void help(void)
{
	printf("usage: " SYNOPSIS "\n"
	       "\n"
	       "Ask the running sigilfs of this node, through its control socket\n"
	       "DATADIR/control.sock (only its own user and root may).\n"
	       "\n"
	       "  -c CONFIG      read the data dir from CONFIG's `data` (default %s)\n"
	       "  -d DATADIR     the node's data dir (default: from the config, else %s)\n"
	       "  -h, --help     this text\n"
	       "  -V, --version  sigilctl's version\n"
	       "\n"
	       "commands:\n"
	       "  status        the node, its store version, each peer with its state, conflicts\n"
	       "  status --json the same as one JSON object\n"
	       "  peers         this node and every peer: id, up or down, last answer\n"
	       "  conflicts     one line per conflict, tab-separated: number, path, losing stamp\n"
	       "                and node id, winning stamp and node id, bytes, and the file\n"
	       "                holding the losing content\n"
	       "  sync          start an anti-entropy round now: pull from every peer\n"
	       "  check         verify the store: every log row, directory row and count\n"
	       "                agrees (exit 1 naming the first problem if not); print the\n"
	       "                tree digest, equal on nodes that hold the same tree\n"
	       "  gc            purge the tombstones every peer has and the grace period\n"
	       "                has passed for, now\n"
	       "  restore REV [PREFIX]\n"
	       "                make the live tree (or the part under PREFIX) equal to the tree\n"
	       "                of Git revision REV of the node's mirror, or of --repo REPO (a\n"
	       "                path or URL): new writes for what differs, deletes for what REV\n"
	       "                lacks; they win on every node and replicate. --dry-run lists\n"
	       "                what would change (A added, M modified, D deleted) and writes\n"
	       "                nothing\n"
	       "  diff REV [PREFIX]\n"
	       "                list how the live tree differs from REV (same format); exit 4\n"
	       "                if it differs, 0 if not\n"
	       "\n"
	       "Exit status: 0 done; 1 the daemon or the system refused (one line on stderr);\n"
	       "2 usage; 3 no daemon is running for the data dir; 4 diff found differences.\n",
	       DEFAULT_CONFIG, DEFAULT_DATA_DIR);
}

static int usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "sigilctl: %s%s%s%s; usage: " SYNOPSIS "\n", what, arg ? " '" : "",
	        arg ? arg : "", arg ? "'" : "");
	return EXIT_USAGE;
}

int main(int argc, char *argv[])
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, 'j'},    {"repo", required_argument, NULL, 'r'},
	    {"dry-run", no_argument, NULL, 'n'}, {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *data = NULL, *cmd, *repo = NULL;
	char sock[PATH_MAX], request[SG_CTL_MAX_REQUEST + 1], cerr[PATH_MAX + 512], *reply = NULL;
	char repo_abs[2 * PATH_MAX];
	sg_config cfg = {0};
	int json = 0, dry = 0, git = 0, c, rc, ret = EXIT_FAILED;

	/* GNU getopt permutes: options may follow the command (`status --json`) */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "c:d:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'd':
			data = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'r':
			repo = optarg;
			break;
		case 'n':
			dry = 1;
			break;
		case 'h':
			help();
			return EXIT_OK;
		case 'V':
			printf("sigilctl %s\n", PACKAGE_VERSION);
			return EXIT_OK;
		default:
			return usage_error(optopt == 'c' || optopt == 'd' || optopt == 'r'
			                       ? "option needs an argument"
			                       : "unknown option",
			                   argv[optind - 1]);
		}
	}
	if (config && data)
		return usage_error("give -c or -d, not both", NULL);
	if (optind >= argc)
		return usage_error("no command given", NULL);
	cmd = argv[optind++];
	git = strcmp(cmd, "restore") == 0 || strcmp(cmd, "diff") == 0;
	if (strcmp(cmd, "status") != 0 && strcmp(cmd, "peers") != 0 &&
	    strcmp(cmd, "conflicts") != 0 && strcmp(cmd, "sync") != 0 &&
	    strcmp(cmd, "check") != 0 && strcmp(cmd, "gc") != 0 && !git)
		return usage_error("unknown command", cmd);
	if (json && strcmp(cmd, "status") != 0)
		return usage_error("--json goes with status only, not", cmd);
	if (repo && !git)
		return usage_error("--repo goes with restore and diff only, not", cmd);
	if (dry && strcmp(cmd, "restore") != 0)
		return usage_error("--dry-run goes with restore only, not", cmd);
	if (git) {
		/* restore|diff TAB REV [TAB PREFIX] [TAB --repo TAB REPO] [TAB --dry-run] */
		size_t n;
		if (optind >= argc)
			return usage_error("which revision? missing REV after", cmd);
		if (argc - optind > 2)
			return usage_error("too many arguments at", argv[optind + 2]);
		for (int i = optind; i < argc; i++)
			if (strpbrk(argv[i], "\t\n"))
				return usage_error("a tab or newline in", argv[i]);
		if (repo && strpbrk(repo, "\t\n"))
			return usage_error("a tab or newline in", repo);
		/* the daemon has its own working directory: a local path goes absolute
		 * (a URL, scheme:// or scp-like host:path as git reads it, as written) */
		if (repo && repo[0] != '/' && !strstr(repo, "://") &&
		    !(strchr(repo, ':') &&
		      (!strchr(repo, '/') || strchr(repo, ':') < strchr(repo, '/')))) {
			char cwd[PATH_MAX];
			if (!getcwd(cwd, sizeof(cwd)) ||
			    (size_t)snprintf(repo_abs, sizeof(repo_abs), "%s/%s", cwd, repo) >=
			        sizeof(repo_abs))
				return usage_error("cannot make the repository's path absolute:",
				                   repo);
			repo = repo_abs;
		}
		n = (size_t)snprintf(
		    request, sizeof(request), "%s\t%s%s%s%s%s%s", cmd, argv[optind],
		    optind + 1 < argc ? "\t" : "", optind + 1 < argc ? argv[optind + 1] : "",
		    repo ? "\t--repo\t" : "", repo ? repo : "", dry ? "\t--dry-run" : "");
		if (n >= sizeof(request))
			return usage_error("arguments too long", NULL);
	} else {
		if (optind < argc)
			return usage_error("too many arguments at", argv[optind]);
		snprintf(request, sizeof(request), "%s%s", cmd, json ? " --json" : "");
	}

	if (!data) {
		rc = sg_config_load(&cfg, config ? config : DEFAULT_CONFIG, cerr, sizeof(cerr));
		if (rc && (config || rc != -ENOENT)) {
			fprintf(stderr, "sigilctl: %s\n", cerr);
			goto out;
		}
		data = sg_config_get(&cfg, "data") ? sg_config_get(&cfg, "data") : DEFAULT_DATA_DIR;
	}
	if ((size_t)snprintf(sock, sizeof(sock), "%s/control.sock", data) >= sizeof(sock)) {
		fprintf(stderr, "sigilctl: data dir %s: %s\n", data, strerror(ENAMETOOLONG));
		goto out;
	}

	rc = sg_ctl_call_wait(sock, request, git ? LONG_REPLY_MS : 0, &reply);
	switch (rc) {
	case 0:
		break;
	case -ENOENT:
	case -ECONNREFUSED:
		fprintf(stderr, "sigilctl: no sigilfs daemon is running for %s\n", data);
		ret = EXIT_NOT_RUNNING;
		goto out;
	case -ETIMEDOUT:
		fprintf(stderr, "sigilctl: the sigilfs daemon for %s does not answer\n", data);
		ret = EXIT_NOT_RUNNING;
		goto out;
	case -EACCES:
		fprintf(stderr,
		        "sigilctl: permission denied: cannot reach %s (run as the daemon's user or "
		        "root)\n",
		        sock);
		goto out;
	default:
		fprintf(stderr, "sigilctl: %s: %s\n", sock, strerror(-rc));
		goto out;
	}
	if (strncmp(reply, "ok\n", 3) == 0) {
		fputs(reply + 3, stdout);
		if (fflush(stdout) != 0 || ferror(stdout)) {
			fprintf(stderr, "sigilctl: cannot write the answer: %s\n", strerror(errno));
			goto out;
		}
		ret = EXIT_OK;
		/* diff: every line but the closing "# ..." summary is a difference */
		if (strcmp(cmd, "diff") == 0)
			for (const char *l = reply + 3; *l;
			     l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "")
				if (*l != '#' && *l != '\n') {
					ret = EXIT_DIFFERS;
					break;
				}
	} else if (strncmp(reply, "error: ", 7) == 0) {
		fprintf(stderr, "sigilctl: %.*s\n", (int)strcspn(reply + 7, "\n"), reply + 7);
	} else {
		fprintf(stderr, "sigilctl: the daemon's answer is malformed\n");
	}
out:
	free(reply);
	sg_config_free(&cfg);
	return ret;
}
