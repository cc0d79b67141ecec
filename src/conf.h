/* conf.h: the daemon's settings, read from /etc/sigil/sigil.conf (INI) and overridden
 * by mount options, each remembered with the file and line that set it. */
#ifndef SIGIL_CONF_H
#define SIGIL_CONF_H

#include <stddef.h>
#include <stdint.h>

/*
 * Model
 * -----
 * A setting is a key and a string value. The keys are exactly the mount
 * option names (sg_config_key() lists them):
 *
 *   data node listen peers tls_ca tls_cert tls_key max_offset local_only
 *   max_file_size cache_timeout mirror commit_interval remote tombstone_grace
 *   log_level seed sync_delay max_quarantine_bytes max_mapped threads
 *
 * Each value remembers where it was set: a file and a line, or an origin
 * such as "-o" with line 0, so that a problem found late (a port in use)
 * can still name the line to fix.
 *
 * The file is INI, read with libinih: `key = value` lines, either at the top
 * or under one `[sigil]` section; any other section is an error. Lines
 * starting with '#' or ';' are comments, and so is " ;" and what follows it
 * on a line. A value may be put in double quotes, which are stripped. A key
 * given twice in one file is an error. Lines are at most 198 characters.
 *
 * Precedence: a value set with sg_config_set() and line 0 (a mount option)
 * wins over the file whatever the order of the calls: sg_config_load() does
 * not replace it.
 *
 * sg_config_load() and sg_config_set() check only the shape of the file and
 * the names of the keys; sg_config_check() checks the values. Errors come
 * back as one line of text, without a trailing newline, in err, led by where
 * the value was set: "PATH:LINE: problem" for a file, "-o: problem" for a
 * mount option (sg_config_where() writes that lead).
 *
 * No global state: a program may hold several sg_config at once. One
 * sg_config is not safe to change from two threads at once.
 */

/** How many keys there are. */
#define SG_CONFIG_NKEYS 22

/** The most FUSE worker threads `threads` may ask for. */
#define SG_MAX_THREADS 64

/** One setting. value == NULL: not set. */
typedef struct sg_config_value {
	char *value;   /**< owned by the sg_config; quotes stripped */
	char *origin;  /**< the file's path, or what sg_config_set() was given ("-o") */
	unsigned line; /**< line in origin, from 1; 0 for a mount option */
} sg_config_value;

/**
 * Every setting, indexed as sg_config_key() lists the keys. Treat the
 * members as private: read through the functions below.
 * `sg_config cfg = {0};` is an empty config; release it with sg_config_free().
 */
typedef struct sg_config {
	sg_config_value v[SG_CONFIG_NKEYS];
} sg_config;

/**
 * The i-th key name, for i from 0 to SG_CONFIG_NKEYS - 1; NULL past the end.
 * The string is static.
 */
const char *sg_config_key(size_t i);

/**
 * Read a config file into cfg, on top of what cfg holds.
 * @param cfg     in/out: receives the file's values (except keys set with line 0).
 * @param path    the file; kept (copied) as the origin of its values.
 * @param err     out: on failure one line, "PATH:LINE: problem" or
 *                "PATH: cannot read: REASON"; untouched on success.
 * @return 0;
 *         -ENOENT, -EACCES, -EISDIR, ... (the errno) if the file cannot be read;
 *         -EINVAL for a syntax error, a section other than [sigil], an unknown
 *         key, a key set twice, an unterminated quote or a line too long;
 *         -ENOMEM.
 * On failure cfg may hold some of the file's values: free it, do not use it.
 */
int sg_config_load(sg_config *cfg, const char *path, char *err, size_t errlen);

/**
 * Set one key, replacing any value it had (mount options override the file).
 * @param origin  where the value comes from, copied: "-o" for mount options.
 * @param line    the line in origin, or 0 (a mount option; sg_config_load()
 *                then leaves the key alone).
 * @return 0; -EINVAL for an unknown key or a NULL value (err says which);
 *         -ENOMEM.
 */
int sg_config_set(sg_config *cfg, const char *key, const char *value, const char *origin,
                  unsigned line, char *err, size_t errlen);

/**
 * A key's value, or NULL if it is not set or not a key.
 * Borrowed: valid until the key is set again or cfg is freed.
 * peers are returned as written: URLs separated by ';' or ','.
 */
const char *sg_config_get(const sg_config *cfg, const char *key);

/**
 * A numeric key's value, after sg_config_check() accepted it:
 * max_file_size, max_quarantine_bytes and max_mapped in bytes; cache_timeout, max_offset,
 * commit_interval, tombstone_grace and sync_delay in milliseconds (sync_delay may be 0: off);
 * log_level as its syslog number (err 3 to debug 7); threads as a count.
 * @param out  out: the value; untouched on failure.
 * @return 0; -ENOENT if the key is not set; -EINVAL if the key is not
 *         numeric or its value does not parse.
 */
int sg_config_get_u64(uint64_t *out, const sg_config *cfg, const char *key);

/**
 * Where a key was set, for messages: "PATH:LINE", or the origin alone
 * ("-o") when the line is 0.
 * @return 0; -ENOENT if the key is not set; -EINVAL if it is not a key;
 *         -ENAMETOOLONG if buf is too small (buf then holds what fits).
 */
int sg_config_where(const sg_config *cfg, const char *key, char *buf, size_t len);

/**
 * Check every value that is set, in key order, and the keys that go
 * together: listen and peers need node; a tls+tcp:// URL needs tls_ca,
 * tls_cert and tls_key; remote needs mirror. TLS files must be readable
 * regular files holding a PEM block (a "-----BEGIN" line). Stops at the first problem:
 * "PATH:LINE: KEY: problem" (or "-o: KEY: problem").
 * @return 0; -EINVAL for a bad value (a TLS file that is not PEM too); the
 *         errno of a TLS file that cannot be read.
 */
int sg_config_check(const sg_config *cfg, char *err, size_t errlen);

/** Release every value; cfg is empty afterwards (reusable). NULL accepted. */
void sg_config_free(sg_config *cfg);

#endif
