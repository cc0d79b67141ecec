/* log.h: one log for the whole daemon: syslog levels, a module domain and a
 * stable message identifier per message; stderr in the foreground, syslog when daemonized. */
#ifndef SIGIL_LOG_H
#define SIGIL_LOG_H

#include <stdarg.h>

enum sg_log_level {
	SG_LOG_ERR = 3,
	SG_LOG_WARNING = 4,
	SG_LOG_NOTICE = 5,
	SG_LOG_INFO = 6,
	SG_LOG_DEBUG = 7,
};

/** Route messages to syslog (use_syslog != 0) or stderr; drop those above `level`. */
void sg_log_init(const char *ident, int use_syslog, int level);

/** Log one message: domain is the module ("store", "fs", ...), msgid a stable tag
 * ("SIGIL-STORE-GROW"). */
void sg_log(int level, const char *domain, const char *msgid, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

void sg_vlog(int level, const char *domain, const char *msgid, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

#endif
