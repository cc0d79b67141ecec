/* ctl.c: the daemon's control socket, a Unix stream socket (mode 0600, the
 * caller's uid checked with SO_PEERCRED), and the client call sigilctl makes.
 *
 * Not NNG, on purpose: NNG 1.5.2 (Debian 12) stops accepting on an ipc://
 * listener for good once one client disconnects during the SP handshake
 * (nng issue #1518, fixed after 1.5.2), so one sigilctl giving up on a
 * stalled daemon would lock every later one out. A local one-request,
 * one-reply socket needs nothing NNG adds. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "log.h"
#include "util.h"

#define DOMAIN "ctl"
#define IO_TIMEOUT_MS 5000
#define MAX_REPLY (64u << 20)

struct sg_ctl {
	int fd;      /* the listening socket */
	int wake[2]; /* a pipe: writing to it ends the control thread */
	char *path;
	sg_ctl_handler fn;
	void *ctx;
	pthread_t thread;
	int started;
};

static int addr_of(const char *path, struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(a->sun_path))
		return -ENAMETOOLONG;
	strcpy(a->sun_path, path);
	return 0;
}

static void set_timeouts(int fd)
{
	struct timeval tv = {.tv_sec = IO_TIMEOUT_MS / 1000, .tv_usec = 0};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		/* no SIGPIPE: the other side may have answered and closed already */
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read one request line (up to '\n' or EOF). */
static int read_request(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	for (;;) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		len += (size_t)n;
		if (memchr(buf, '\n', len) || len == cap - 1)
			break;
	}
	if (len == cap - 1 && !memchr(buf, '\n', len))
		return -E2BIG;
	buf[len] = '\0';
	if (strlen(buf) != len)
		return -EINVAL; /* a NUL inside */
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' ' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	return 0;
}

/* Serve one connection: check who asks, read, answer "ok\n" + body or "error: ...". */
static void serve(sg_ctl *c, int fd)
{
	char request[SG_CTL_MAX_REQUEST + 2], err[512] = "";
	char *body = NULL;
	size_t blen = 0;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	FILE *f;
	int rc;

	set_timeouts(fd);
	/* read first, even from a caller to be refused: closing on unread data
	 * would reset the connection before the caller reads why */
	rc = read_request(fd, request, sizeof(request));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
		snprintf(err, sizeof(err), "permission denied: cannot tell who is asking");
		rc = -EACCES;
		goto out;
	}
	if (cred.uid != geteuid() && cred.uid != 0) {
		sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-CTL-REFUSED",
		       "control request from uid %u refused", (unsigned)cred.uid);
		snprintf(err, sizeof(err), "permission denied: uid %u", (unsigned)cred.uid);
		rc = -EACCES;
		goto out;
	}
	if (rc) {
		snprintf(err, sizeof(err), "malformed request");
		goto out;
	}
	f = open_memstream(&body, &blen);
	if (!f) {
		rc = -ENOMEM;
		goto out;
	}
	rc = c->fn(c->ctx, request, f, err, sizeof(err));
	if (fclose(f) != 0 && rc == 0)
		rc = -ENOMEM;
out:
	if (rc == 0) {
		if (write_all(fd, "ok\n", 3) == 0 && blen)
			write_all(fd, body, blen);
	} else {
		const char *why = *err ? err : strerror(-rc);
		if (write_all(fd, "error: ", 7) == 0 && write_all(fd, why, strlen(why)) == 0)
			write_all(fd, "\n", 1);
	}
	free(body);
}

/* The control thread: one connection at a time, until woken through the pipe. */
static void *ctl_main(void *arg)
{
	sg_ctl *c = arg;

	sg_thread_name("sigil-ctl");
	for (;;) {
		struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
		                      {.fd = c->wake[0], .events = POLLIN}};
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve(c, fd);
		close(fd);
	}
	return NULL;
}

/* Remove a socket file nobody listens on (a daemon that died); keep a live one. */
static int remove_stale(const char *path, const struct sockaddr_un *a)
{
	int fd, rc = 0;

	if (access(path, F_OK) != 0)
		return 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)a, sizeof(*a)) == 0)
		rc = -EADDRINUSE;
	else if (errno == ECONNREFUSED || errno == ENOENT)
		rc = unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
	else
		rc = -errno;
	close(fd);
	return rc;
}

int sg_ctl_start(sg_ctl **out, const char *sock_path, sg_ctl_handler fn, void *ctx)
{
	struct sockaddr_un a;
	sg_ctl *c;
	mode_t old;
	int rc;

	rc = addr_of(sock_path, &a);
	rc = rc ? rc : remove_stale(sock_path, &a);
	if (rc)
		return rc;
	c = calloc(1, sizeof(*c));
	if (!c || !(c->path = strdup(sock_path))) {
		free(c);
		return -ENOMEM;
	}
	c->fd = -1;
	c->wake[0] = c->wake[1] = -1;
	c->fn = fn;
	c->ctx = ctx;
	if (pipe2(c->wake, O_CLOEXEC) != 0) {
		rc = -errno;
		goto fail;
	}
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		rc = -errno;
		goto fail;
	}
	old = umask(0177); /* the socket file is born 0600 */
	rc = bind(c->fd, (struct sockaddr *)&a, sizeof(a)) == 0 ? 0 : -errno;
	umask(old);
	if (rc == 0 && chmod(sock_path, 0600) != 0)
		rc = -errno;
	if (rc == 0 && listen(c->fd, 8) != 0)
		rc = -errno;
	if (rc)
		goto fail;
	if (pthread_create(&c->thread, NULL, ctl_main, c) != 0) {
		rc = -EAGAIN;
		unlink(sock_path);
		goto fail;
	}
	c->started = 1;
	*out = c;
	return 0;
fail:
	if (c->fd >= 0)
		close(c->fd);
	if (c->wake[0] >= 0) {
		close(c->wake[0]);
		close(c->wake[1]);
	}
	free(c->path);
	free(c);
	return rc;
}

void sg_ctl_stop(sg_ctl *c)
{
	if (!c)
		return;
	if (c->started) {
		if (write(c->wake[1], "x", 1) != 1)
			sg_log(SG_LOG_WARNING, DOMAIN, "SIGIL-CTL-STOP",
			       "cannot wake the control thread");
		pthread_join(c->thread, NULL);
	}
	close(c->fd);
	close(c->wake[0]);
	close(c->wake[1]);
	unlink(c->path);
	free(c->path);
	free(c);
}

int sg_ctl_call_wait(const char *sock_path, const char *request, unsigned reply_ms, char **reply)
{
	struct sockaddr_un a;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, rc;

	*reply = NULL;
	rc = addr_of(sock_path, &a);
	if (rc)
		return rc;
	if (strlen(request) > SG_CTL_MAX_REQUEST || strchr(request, '\n'))
		return -EINVAL;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	set_timeouts(fd);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		rc = errno == ENOENT || errno == ECONNREFUSED || errno == EACCES ? -errno : -EIO;
		goto out;
	}
	rc = write_all(fd, request, strlen(request));
	rc = rc ? rc : write_all(fd, "\n", 1);
	/* a daemon that refuses the caller answers before reading: read that answer */
	if (rc && rc != -EPIPE && rc != -ECONNRESET)
		goto out;
	rc = 0;
	shutdown(fd, SHUT_WR);
	if (reply_ms) {
		struct timeval tv = {.tv_sec = reply_ms / 1000,
		                     .tv_usec = (reply_ms % 1000) * 1000};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	for (;;) {
		ssize_t n;

		if (len + 4096 + 1 > cap) {
			char *nb;
			cap = cap ? cap * 2 : 8192;
			if (cap > MAX_REPLY || !(nb = realloc(buf, cap))) {
				rc = -ENOMEM;
				goto out;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -EIO;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len == 0) {
		rc = -ETIMEDOUT; /* closed without an answer */
		goto out;
	}
	buf[len] = '\0';
	*reply = buf;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rc;
}

int sg_ctl_call(const char *sock_path, const char *request, char **reply)
{
	return sg_ctl_call_wait(sock_path, request, 0, reply);
}
