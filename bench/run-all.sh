#!/bin/bash
# run-all.sh: run the benchmark suite, or some parts of it, then draw the plots.
# See bench/README.md.
#
#	bench/run-all.sh               # every part: fs repl scale [mirror] plots
#	bench/run-all.sh scale         # one part (then nothing else)
#	bench/run-all.sh fs scale plots
#
# Parts: fs (fs-bench.sh), repl (repl-bench.sh: propagation, throughput,
# partition), scale (scale-bench.sh), mirror (mirror-bench.sh, when it is
# there), plots (plot.py over bench/results; installs gnuplot-nox if missing).
# Every part runs even if an earlier one failed; each writes its own report in
# bench/results/ and cleans up after itself. The knobs of each script
# (BENCH_*, SIGILFS, ...) pass through the environment. Exit 0 when every part
# succeeded, 1 otherwise (the failed parts are listed).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
PART_LIMIT=${BENCH_PART_LIMIT:-3600} # seconds allowed for any one part

say() { printf '[%s] run-all: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

ALL=(fs repl scale)
[ -x "$HERE/mirror-bench.sh" ] && ALL+=(mirror)
ALL+=(plots)
PARTS=("$@")
[ ${#PARTS[@]} -eq 0 ] && PARTS=("${ALL[@]}")
for p in "${PARTS[@]}"; do
	case $p in
	fs | repl | scale | plots) ;;
	mirror) [ -x "$HERE/mirror-bench.sh" ] || {
		say "no bench/mirror-bench.sh here"
		exit 2
	} ;;
	*)
		say "unknown part '$p' (parts: ${ALL[*]})"
		exit 2
		;;
	esac
done

CHILD=
stop() {
	say "$1: stopping ${CHILD:+the running part (pid $CHILD)}"
	# the part's own trap unmounts and stops what it started
	[ -n "$CHILD" ] && kill -TERM "$CHILD" 2>/dev/null && wait "$CHILD"
	exit "$2"
}
trap 'stop interrupted 130' INT
trap 'stop terminated 143' TERM

run_part() { # NAME CMD...: bounded, in the background so a signal reaches us at once
	local name=$1 rc
	shift
	say "$name: $*"
	timeout -s TERM -k 60 "$PART_LIMIT" "$@" &
	CHILD=$!
	wait "$CHILD"
	rc=$?
	CHILD=
	return $rc
}

need_gnuplot() {
	if ! command -v gnuplot >/dev/null; then
		say "installing gnuplot-nox"
		export DEBIAN_FRONTEND=noninteractive
		if ! timeout 300 apt-get install -y --no-install-recommends gnuplot-nox >/dev/null 2>&1; then
			timeout 300 apt-get update >/dev/null 2>&1
			timeout 300 apt-get install -y --no-install-recommends gnuplot-nox >/dev/null 2>&1
		fi
	fi
}

T0=$SECONDS
failed=()
for p in "${PARTS[@]}"; do
	t=$SECONDS
	case $p in
	fs) run_part fs "$HERE/fs-bench.sh" ;;
	repl) run_part repl "$HERE/repl-bench.sh" ;;
	scale) run_part scale "$HERE/scale-bench.sh" ;;
	mirror) run_part mirror "$HERE/mirror-bench.sh" ;;
	plots) need_gnuplot && run_part plots python3 "$HERE/plot.py" "$HERE/results" ;;
	esac
	rc=$?
	if [ $rc -ne 0 ]; then
		failed+=("$p (exit $rc)")
		say "$p FAILED (exit $rc) after $((SECONDS - t)) s"
	else
		say "$p done in $((SECONDS - t)) s"
	fi
done
say "all done in $(((SECONDS - T0) / 60)) min $(((SECONDS - T0) % 60)) s; reports in $HERE/results/"
if [ ${#failed[@]} -gt 0 ]; then
	say "failed: ${failed[*]}"
	exit 1
fi
exit 0
