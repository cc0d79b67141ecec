/* util.h: small helpers shared by every module: time, hashing, directories. */
#ifndef SIGIL_UTIL_H
#define SIGIL_UTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/** Wall-clock time in nanoseconds since the epoch. */
int64_t sg_now_ns(void);

/** Monotonic time in nanoseconds. */
int64_t sg_mono_ns(void);

/** Initialise a condition variable whose timed waits count in sg_mono_ns() time. */
void sg_cond_init_mono(pthread_cond_t *cond);

/** sg_mono_ns() time `ns` as the deadline of a timed wait on such a condition. */
struct timespec sg_mono_deadline(int64_t ns);

/**
 * Name the calling thread (at most 15 characters), as `top -H`, `ps -L`,
 * perf and gdb show it: every sigilfs thread is "sigil-<role>"; the FUSE
 * workers, which libfuse starts, keep the program's name.
 */
void sg_thread_name(const char *name);

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
