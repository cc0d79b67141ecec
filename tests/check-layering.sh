#!/bin/sh
# check-layering.sh: each library's header is included only inside its own module.
# lmdb.h in src/lmdb, nng in src/repl, git2.h in src/gitsync,
# fuse only in src/fs and the daemon's main.
top=${SIGIL_SRCDIR:-$(dirname "$0")/..}
cd "$top" || exit 99
fail=0
check() { # pattern allowed-regex
	bad=$(grep -rlE "#[[:space:]]*include[[:space:]]*<$1" src tests 2>/dev/null | grep -vE "$2")
	if [ -n "$bad" ]; then
		echo "FAIL: <$1> included outside its module: $bad"
		fail=1
	else
		echo "ok: <$1> stays in its module"
	fi
}
check 'lmdb\.h' '^src/lmdb/'
check 'nng/' '^src/repl/'
check 'git2' '^src/gitsync/'
check 'fuse' '^src/fs/|^src/sigilfs\.c$|^tests/unit/test_fs'
# private headers (*_i.h) are included only from their own directory
for f in $(find src tests -name '*.[ch]'); do
	for h in $(sed -n 's/^#[[:space:]]*include[[:space:]]*"\([^"]*_i\.h\)".*/\1/p' "$f"); do
		hp=$(find src -name "$(basename "$h")" | head -n 1)
		if [ -z "$hp" ] || [ "$(dirname "$hp")" != "$(dirname "$f")" ]; then
			echo "FAIL: $f includes private header $h"
			fail=1
		fi
	done
done
if [ $fail -eq 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi
exit $fail
