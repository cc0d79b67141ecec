/* ctl.h: the daemon's local control socket (a Unix stream socket, mode 0600,
 * callers' uid checked) and the client call sigilctl makes on it. */
#ifndef SIGIL_CTL_H
#define SIGIL_CTL_H

#include <stddef.h>
#include <stdio.h>

/*
 * Protocol
 * --------
 * One request, one reply, both text. The request is one command line
 * ("status", "peers", "restore\tREV\tPREFIX"...; arguments are
 * separated by tabs), at most
 * SG_CTL_MAX_REQUEST bytes. The reply's first line is "ok" or
 * "error: MESSAGE"; after "ok\n" comes the body, as the handler wrote it.
 *
 * Who may ask: the socket file is made with mode 0600, and every request's
 * sender is checked by its peer credentials: the daemon's effective uid and
 * root are served, anyone else gets "error: permission denied: uid N".
 *
 * This module knows nothing of the store or the replicator: the daemon
 * passes a handler that writes each command's body.
 */

typedef struct sg_ctl sg_ctl;

/** Longest request accepted, bytes. */
#define SG_CTL_MAX_REQUEST 8192

/**
 * Answer one command. Runs on the control thread, one request at a time.
 * @param ctx      what sg_ctl_start() was given
 * @param request  the command line, NUL-terminated, no trailing newline
 * @param body     out: the reply's body on success (a memstream)
 * @param err      out: on failure, one line without a newline (the reply
 *                 becomes "error: ERR"); left empty, strerror(-rc) is used
 * @return 0, or a negative errno.
 */
typedef int (*sg_ctl_handler)(void *ctx, const char *request, FILE *body, char *err, size_t errlen);

/**
 * Listen on sock_path (a Unix socket, mode 0600) and start the control
 * thread. A socket file left there by a daemon that died is removed first;
 * one that still answers is not (-EADDRINUSE).
 * @param[out] out  the control socket, to be stopped with sg_ctl_stop()
 * @param fn, ctx   the handler and its context, borrowed until sg_ctl_stop()
 * @return 0; -ENAMETOOLONG for a path that does not fit a socket address;
 *         -EADDRINUSE; -ENOMEM; another negative errno.
 */
int sg_ctl_start(sg_ctl **out, const char *sock_path, sg_ctl_handler fn, void *ctx);

/** Stop the thread, close the socket and remove its file. NULL accepted. */
void sg_ctl_stop(sg_ctl *c);

/**
 * Send one request to the daemon listening on sock_path and wait for its
 * reply (5 s for the connection, the send and the reply each).
 * @param[out] reply  the whole reply, NUL-terminated, malloc'd, owned by the
 *                    caller ("ok\n..." or "error: ...")
 * @return 0 once a reply came (whatever it says); -ENOENT no socket file;
 *         -ECONNREFUSED nobody listens on it; -ETIMEDOUT no answer;
 *         -EACCES the socket's mode refuses this user; -ENAMETOOLONG;
 *         -ENOMEM; -EIO for anything else.
 */
int sg_ctl_call(const char *sock_path, const char *request, char **reply);

/** sg_ctl_call(), waiting up to reply_ms for the reply (0: the 5 s default):
 *  for commands that take long, such as a restore. */
int sg_ctl_call_wait(const char *sock_path, const char *request, unsigned reply_ms, char **reply);


#endif
