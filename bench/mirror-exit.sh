#!/bin/bash
# mirror-exit.sh: how long the daemon takes to exit after an unmount that
# leaves the Git mirror a batch of large files (not in run-all.sh).
#
# Each run mounts a fresh sigilfs (data dir on the data disk), writes
# BENCH_EXIT_FILES files of 1 MiB of random data through the mount, unmounts
# at once (fusermount3 -u) and times from the unmount until the daemon has
# exited: the mirror commits the last batch first. Baselines, in the same
# run: the same bytes copied to the data disk and synced (what the batch
# must write at least), and the exit after unmounting an idle mount.
#
#   sudo bench/mirror-exit.sh                 # SIGILFS: the build to measure
#   SIGILFS_OLD=/path/to/old/sigilfs sudo bench/mirror-exit.sh   # and another beside it
#
# Knobs: SIGILFS (default: the source tree's, as the other scripts),
# SIGILFS_OLD, BENCH_EXIT_FILES (100), BENCH_EXIT_RUNS (5), BENCH_DIR (the
# data disk's scratch dir, /var/tmp), BENCH_OUT (results/mirror-exit.md).
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

SIGILFS=${SIGILFS:-$ROOT/sigilfs}
SIGILFS_OLD=${SIGILFS_OLD:-}
FILES=${BENCH_EXIT_FILES:-100}
RUNS=${BENCH_EXIT_RUNS:-5}
OUT=${BENCH_OUT:-$HERE/results/mirror-exit.md}
[ -x "$SIGILFS" ] || {
	echo "mirror-exit: no sigilfs at $SIGILFS (cd $ROOT && make sigilfs, or set SIGILFS)" >&2
	exit 1
}
[ -z "$SIGILFS_OLD" ] || [ -x "$SIGILFS_OLD" ] || {
	echo "mirror-exit: $SIGILFS_OLD is not executable" >&2
	exit 1
}
for t in fusermount3 git python3; do
	command -v $t >/dev/null || {
		echo "mirror-exit: needs $t" >&2
		exit 1
	}
done

W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/sigil-bench-exit.XXXXXX") || exit 1
PID=
cleanup() {
	if mountpoint -q "$W/m" 2>/dev/null; then
		fusermount3 -u "$W/m" 2>/dev/null || umount -l "$W/m" 2>/dev/null
	fi
	[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
head -c $((FILES << 20)) /dev/urandom >"$W/rnd"

# alive PID: a running process; a zombie is not (nothing may reap a
# daemonized sigilfs soon, and kill -0 succeeds on zombies)
alive() {
	local s
	s=$(sed -n 's/^[0-9]* (.*) \([A-Z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null)
	[ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]
}

# one_exit BIN NFILES: RES = milliseconds from the unmount to the daemon's
# exit (not in a subshell: the trap must know the daemon)
one_exit() {
	local bin=$1 n=$2 t0 t1 i
	rm -rf "$W/m" "$W/d"
	mkdir -p "$W/m" "$W/d"
	"$bin" "$W/m" -o "data=$W/d,node=bench" >/dev/null 2>&1 || {
		echo "mirror-exit: mount failed" >&2
		return 1
	}
	PID=$(cat "$W/d/sigilfs.pid")
	for ((i = 0; i < n; i++)); do
		dd if="$W/rnd" of="$W/m/f$i" bs=1M skip=$i count=1 status=none || return 1
	done
	t0=$(date +%s%N)
	fusermount3 -u "$W/m" || return 1
	for ((i = 0; i < 12000; i++)); do # at most 10 minutes
		alive "$PID" || break
		sleep 0.01
	done
	t1=$(date +%s%N)
	alive "$PID" && {
		echo "mirror-exit: the daemon did not exit within 10 minutes" >&2
		return 1
	}
	PID=
	# the mirror holds every file: the exit did not skip the batch
	[ "$(git --git-dir="$W/d/mirror.git" ls-tree refs/heads/bench 2>/dev/null | wc -l)" -ge "$n" ] || {
		echo "mirror-exit: the mirror lacks files after the exit" >&2
		return 1
	}
	RES=$(((t1 - t0) / 1000000))
}

# one_copy: RES = milliseconds to copy the random data to the disk and sync it
one_copy() {
	local t0 t1
	rm -f "$W/copy"
	sync
	t0=$(date +%s%N)
	cp "$W/rnd" "$W/copy" && sync -f "$W/copy"
	t1=$(date +%s%N)
	RES=$(((t1 - t0) / 1000000))
}

declare -A S
bins=(new)
[ -n "$SIGILFS_OLD" ] && bins+=(old)
for ((r = 0; r < RUNS; r++)); do # interleaved, so that the machine's mood hits all alike
	for b in "${bins[@]}"; do
		bin=$SIGILFS
		[ "$b" == old ] && bin=$SIGILFS_OLD
		one_exit "$bin" "$FILES" || exit 1
		S[$b]+=" $RES"
		one_exit "$bin" 0 || exit 1
		S[$b-idle]+=" $RES"
	done
	one_copy || exit 1
	S[copy]+=" $RES"
	echo "mirror-exit: run $((r + 1)) of $RUNS: ${S[new]##* } ms${SIGILFS_OLD:+ (old ${S[old]##* } ms)}" >&2
done

# stats "v1 v2 ...": "p50 max" (rank ceil(n x 0.5), and the largest)
stats() {
	python3 -c '
import math, sys
v = sorted(int(x) for x in sys.argv[1].split())
print(v[max(0, math.ceil(len(v) * 0.5) - 1)], v[-1])' "$1"
}
read -r cp50 cmax <<<"$(stats "${S[copy]}")"
{
	echo "# Daemon exit after an unmount with a large mirror batch"
	echo
	echo "Produced by \`bench/mirror-exit.sh\` (not in \`run-all.sh\`). Each run mounts a"
	echo "fresh sigilfs with its data dir on the data disk, writes $FILES files of 1 MiB"
	echo "of random data through the mount, unmounts at once and times the daemon's"
	echo "exit: the mirror commits the last batch first (over 8 MiB, it goes through"
	echo "libgit2's packbuilder). $RUNS runs, interleaved; with so few, p99 is the"
	echo "largest. Baseline: the same $FILES MiB copied to the data disk and synced"
	echo "(cp, sync -f), in the same runs."
	echo
	echo "- machine: $(nproc) CPUs, $(uname -r), data disk $(df -h --output=source "$W" | tail -1)"
	echo "- measured: $(rev_of "$(dirname "$SIGILFS")")"
	[ -n "$SIGILFS_OLD" ] && echo "- old: $(rev_of "$(dirname "$SIGILFS_OLD")")"
	echo "- runs: ${S[new]} ms (measured)${SIGILFS_OLD:+; ${S[old]} ms (old)}; copies: ${S[copy]} ms"
	echo
	echo "| figure | p50 | p99 (max) | baseline p50 (copy) | ratio p50 | ratio p99 |"
	echo "|---|---|---|---|---|---|"
	for b in "${bins[@]}"; do
		read -r p50 mx <<<"$(stats "${S[$b]}")"
		read -r i50 imx <<<"$(stats "${S[$b-idle]}")"
		name="measured build"
		[ "$b" == old ] && name="old build"
		python3 -c '
import sys
n, p50, mx, c50, cmx = sys.argv[1], *map(int, sys.argv[2:6])
print(f"| {n}: exit after unmounting with {sys.argv[6]} MiB to commit | {p50} ms | {mx} ms | {c50} ms | {p50 / c50:.1f}x | {mx / cmx:.1f}x |")' \
			"$name" "$p50" "$mx" "$cp50" "$cmax" "$FILES"
		echo "| $name: exit after unmounting an idle mount | $i50 ms | $imx ms | - | - | - |"
	done
} >"$OUT"
cat "$OUT"
