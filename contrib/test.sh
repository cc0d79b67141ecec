#!/bin/sh
# test.sh: from a fresh Debian 12 machine (as root): install dependencies, build with
# -Werror, run the whole test suite, then again under AddressSanitizer and UBSan,
# then make distcheck (the tarball builds and passes on its own).
# SIGIL_SKIP_SANITIZERS=1 or SIGIL_SKIP_DISTCHECK=1 skips a pass.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
"$top/contrib/install-deps.sh"
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi

run_suite() { # build-dir configure-args...
	dir=$1
	shift
	rm -rf "$dir"
	mkdir -p "$dir"
	(cd "$dir" && "$top/configure" --enable-werror "$@" >configure.out &&
		make -j2 >make.out 2>&1 || { cat make.out; exit 1; }
		make -j2 check || { failed_logs; exit 1; })
}

# failed_logs: in the build dir, what each failed test printed (its failed
# checks first, then its end), last in the output where CI shows it
failed_logs() {
	for t in $(find . -name '*.trs' | sort); do
		grep -q '^:test-result: \(FAIL\|ERROR\)' "$t" || continue
		f=${t%.trs}.log
		echo "=== $f: failed checks"
		grep -A 16 '^FAIL - \|^not ok\|ERROR\|Sanitizer' "$f" | head -n 80
		echo "=== $f: its last lines"
		tail -n 40 "$f"
	done
}

echo "== build and test"
run_suite "$top/_build"
if [ "${SIGIL_SKIP_SANITIZERS:-0}" != 1 ]; then
	echo "== build and test with AddressSanitizer and UndefinedBehaviorSanitizer"
	run_suite "$top/_build-san" --enable-sanitizers
fi
if [ "${SIGIL_SKIP_DISTCHECK:-0}" != 1 ]; then
	# the tarball is complete: it builds and passes the suite on its own
	echo "== make distcheck"
	(cd "$top/_build" && make -j2 distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror \
		>distcheck.out 2>&1) || { tail -n 80 "$top/_build/distcheck.out"; exit 1; }
	grep -E "^# (PASS|FAIL)|archives ready" "$top/_build/distcheck.out"
fi

# one closing line for the whole run, counted from automake's summaries
pass=0; fail=0
for log in "$top/_build/test-suite.log" "$top/_build-san/test-suite.log"; do
	[ -f "$log" ] || continue
	p=$(sed -n 's/^# PASS: *//p' "$log" | head -n 1)
	f=$(sed -n 's/^# FAIL: *//p' "$log" | head -n 1)
	e=$(sed -n 's/^# ERROR: *//p' "$log" | head -n 1)
	pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0} + ${e:-0}))
done
echo "sigilfs: $pass passed, $fail failed"
