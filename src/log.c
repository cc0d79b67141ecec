/* log.c: the daemon's log, to stderr or syslog.
 * Messages look like "store: SIGIL-STORE-GROW: map grown to 128 MiB". */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <syslog.h>

#include "log.h"

static int log_syslog;
static int log_level = SG_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void sg_log_init(const char *ident, int use_syslog, int level)
{
	log_syslog = use_syslog;
	log_level = level;
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void sg_vlog(int level, const char *domain, const char *msgid, const char *fmt, va_list ap)
{
	char msg[1024];

	if (level > log_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_syslog) {
		syslog(level, "%s: %s: %s", domain, msgid, msg);
		return;
	}
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "sigilfs: %s: %s: %s\n", domain, msgid, msg);
	pthread_mutex_unlock(&log_lock);
}

void sg_log(int level, const char *domain, const char *msgid, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sg_vlog(level, domain, msgid, fmt, ap);
	va_end(ap);
}
