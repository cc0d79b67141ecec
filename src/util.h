/* util.h: small helpers shared by every module: time, hashing, directories. */
#ifndef SIGIL_UTIL_H
#define SIGIL_UTIL_H

#include <stddef.h>
#include <stdint.h>

/** Wall-clock time in nanoseconds since the epoch. */
int64_t sg_now_ns(void);

/** Monotonic time in nanoseconds. */
int64_t sg_mono_ns(void);

/** FNV-1a 64-bit hash (node ids from node names); never 0. */
uint64_t sg_hash64(const void *data, size_t len);

/** mkdir -p with `mode` for the directories it creates. 0 or -errno. */
int sg_mkdir_p(const char *path, unsigned mode);

/** Parse a size with an optional K/M/G suffix (powers of 1024). 0 or -EINVAL. */
int sg_parse_size(const char *s, uint64_t *out);

/**
 * Does any component of `path` ('/'-separated) match one of the fnmatch
 * patterns in `patterns` (':'-separated)? 1 or 0. NULL or "" matches nothing.
 */
int sg_path_matches(const char *patterns, const char *path);

#endif
