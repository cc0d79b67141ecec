#!/bin/sh
# fuzz-wire.sh: fuzz the replication message decoder (src/repl/wire.c) with libFuzzer, bounded in
# time, from a seed corpus of valid messages. Skips (77) only where clang or libFuzzer is absent.
srcdir=${SIGIL_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=$(pwd)
passed=0
failed=0

ok() {
	echo "ok: $1"
	passed=$((passed + 1))
}
not_ok() {
	echo "FAIL: $1"
	failed=$((failed + 1))
}
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ] && exit 0
	exit 1
}

if ! command -v clang >/dev/null 2>&1; then
	echo "SKIP: clang not found"
	exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sigil-fuzz-wire.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT

# config.h: the build dir's (make check runs us there), else the source dir's (in-tree build),
# else a minimal one: wire.c needs nothing from it but the feature macros.
if [ -f "$builddir/config.h" ]; then
	confdir=$builddir
elif [ -f "$srcdir/config.h" ]; then
	confdir=$srcdir
else
	confdir=$tmp/inc
	mkdir -p "$confdir"
	printf '/* minimal config.h for fuzz-wire.sh */\n#define _GNU_SOURCE 1\n' >"$confdir/config.h"
fi

SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
CFLAGS="-std=c11 -g -O1 -Wall -Wextra -I$confdir -I$srcdir/src -DSIGIL_FUZZ"

# Is libFuzzer's runtime there at all? Probe with an empty target, none of our code.
cat >"$tmp/probe.c" <<'EOF'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	(void)data;
	(void)size;
	return 0;
}
EOF
# shellcheck disable=SC2086
if ! clang -fsanitize=fuzzer $SAN -o "$tmp/probe" "$tmp/probe.c" >"$tmp/probe.log" 2>&1; then
	cat "$tmp/probe.log"
	echo "SKIP: clang cannot link a libFuzzer target (no libFuzzer runtime)"
	exit 77
fi

# The seed generator: a few valid messages of every type, each checked to decode.
cat >"$tmp/seedgen.c" <<'EOF'
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "repl/wire_i.h"

static int nseeds;

static int seed(const char *dir, const sg_msg *m)
{
	char path[4096];
	void *buf = NULL;
	size_t len = 0;
	sg_msg *d = NULL;
	FILE *f;
	int rc = sg_wire_encode(m, &buf, &len);

	if (rc) {
		fprintf(stderr, "seed %d: encode: %d\n", nseeds, rc);
		return 1;
	}
	rc = sg_wire_decode(buf, len, NULL, &d);
	sg_wire_free(d);
	if (rc) {
		fprintf(stderr, "seed %d: decode: %d\n", nseeds, rc);
		free(buf);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/seed-%02d", dir, nseeds++);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		free(buf);
		return 1;
	}
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const peers[] = {"tcp://10.0.0.2:7420", "tls+tcp://b:7420",
					    "ipc:///run/sigil.sock", "inproc://d"};
	static const sg_xattr xs[] = {{"user.a", "1", 1}, {"user.empty", "", 0}};
	static const sg_change cs[] = {
		{.path = "etc", .type = SG_TYPE_DIR, .mode = 0755, .stamp = {10, 1, 1},
		 .xattrs = xs, .nxattrs = 2},
		{.path = "etc/app.conf", .type = SG_TYPE_FILE, .mode = 0644, .uid = 1000,
		 .gid = 1000, .mtime_ns = 1700000000000000000LL, .ctime_ns = -1, .data = "k=v\n",
		 .len = 4, .stamp = {11, 2, 5}, .base = {10, 1, 1}, .xattrs = xs, .nxattrs = 1},
		{.path = "etc/link", .type = SG_TYPE_SYMLINK, .mode = 0777, .data = "app.conf",
		 .len = 8, .stamp = {12, 2, 6}},
		{.path = "etc/old", .type = SG_TYPE_TOMBSTONE, .stamp = {13, 1, 2}},
		{.path = "a/b", .type = SG_TYPE_DIR, .mode = 0755}, /* placeholder */
		{.path = "etc/empty", .type = SG_TYPE_FILE, .mode = 0600, .stamp = {14, 3, 1}},
	};
	static const sg_vv_entry vv[] = {{1, 2}, {2, 6}};
	sg_msg m = {.node_id = 7, .incarnation = 9, .node_name = "node-a",
		    .listen_url = "tcp://0.0.0.0:7420"};
	int bad = 0;

	if (argc != 2) {
		return 2;
	}
	m.type = SG_MSG_PULL;
	m.since = 100;
	m.max_bytes = 1 << 20;
	m.known_incarnation = 3;
	m.peers = peers;
	m.npeers = 4;
	bad |= seed(argv[1], &m);
	m.npeers = 0;
	m.listen_url = "";
	bad |= seed(argv[1], &m);
	m.type = SG_MSG_CHANGES;
	m.listen_url = "inproc://x";
	m.next = 200;
	m.more = 1;
	m.snapshot = 1;
	m.horizon = (sg_stamp){12, 2, 6};
	m.vv = vv;
	m.nvv = 2;
	m.changes = cs;
	m.nchanges = sizeof(cs) / sizeof(cs[0]);
	m.npeers = 2;
	bad |= seed(argv[1], &m);
	m.nchanges = 0;
	m.more = 0;
	bad |= seed(argv[1], &m);
	m.type = SG_MSG_PUSH;
	m.nchanges = sizeof(cs) / sizeof(cs[0]);
	bad |= seed(argv[1], &m);
	m.changes = &cs[1];
	m.nchanges = 1;
	bad |= seed(argv[1], &m);
	m.type = SG_MSG_ACK;
	m.code = 116;
	bad |= seed(argv[1], &m);
	printf("%d seeds\n", nseeds);
	return bad;
}
EOF

# A dictionary of the format's tokens helps the fuzzer past the validators.
cat >"$tmp/wire.dict" <<'EOF'
"SGL1"
"\x03\x00"
"tcp://"
"tls+tcp://"
"ipc://"
"inproc://"
"user."
"/"
".."
"."
EOF

mkdir -p "$tmp/corpus"
# shellcheck disable=SC2086
if clang $CFLAGS $SAN -o "$tmp/seedgen" "$tmp/seedgen.c" "$srcdir/src/repl/wire.c" \
	>"$tmp/seedgen.log" 2>&1 && "$tmp/seedgen" "$tmp/corpus" >>"$tmp/seedgen.log" 2>&1; then
	ok "seed corpus of valid messages ($(tail -n 1 "$tmp/seedgen.log"))"
else
	cat "$tmp/seedgen.log"
	not_ok "seed corpus"
	finish
fi

# shellcheck disable=SC2086
if ! clang $CFLAGS -fsanitize=fuzzer $SAN -o "$tmp/fuzz_wire" "$srcdir/src/repl/fuzz_wire.c" \
	"$srcdir/src/repl/wire.c" >"$tmp/build.log" 2>&1; then
	cat "$tmp/build.log"
	not_ok "build the fuzz target"
	finish
fi

mkdir -p "$tmp/artifacts"
(cd "$tmp" && ./fuzz_wire -max_total_time=20 -rss_limit_mb=1024 -max_len=65536 -timeout=10 \
	-dict="$tmp/wire.dict" -artifact_prefix="$tmp/artifacts/" -print_final_stats=1 \
	corpus >"$tmp/fuzz.log" 2>&1)
rc=$?
crashes=$(find "$tmp/artifacts" -type f | head -n 5) # crash-, leak-, timeout-, oom-
if [ $rc -eq 0 ] && [ -z "$crashes" ]; then
	ok "fuzzed 20 s, no crash ($(grep -E '^stat::number_of_executed_units' "$tmp/fuzz.log" |
		sed 's/.*: *//') runs, $(find "$tmp/corpus" -type f | wc -l | tr -d ' ') in corpus)"
else
	tail -n 60 "$tmp/fuzz.log"
	for f in $crashes; do
		echo "--- $f:"
		od -A d -t x1 "$f" | head -n 20
	done
	not_ok "fuzzer found a crash (exit $rc)"
fi
finish
