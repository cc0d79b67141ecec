#!/bin/bash
# fuse-floor.sh: the round trips' floor under fs.md's open+read+close, create,
# unlink and editor save figures: the same loops on tmpfs, the disk (a
# directory of the work dir, on BENCH_DIR's disk), bindfs over tmpfs, sigilfs and
# a FUSE daemon that does no work (bench/fuse-floor.c) in its three open
# modes, in turn within each round, every daemon and the probe pinned to
# CPU 0. Prints a Markdown table (p50, p99 in us and the rate, medians over
# the rounds) to stdout; see bench/results/fs-floor.md.
#
#	bench/fuse-floor.sh           # as root; about a minute
#
# Knobs: BENCH_N (samples of each op per round, 2000), BENCH_ROUNDS (3),
# BENCH_DIR (where the work dir goes: /var/tmp), SIGILFS (the daemon).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

N=${BENCH_N:-2000}
ROUNDS=${BENCH_ROUNDS:-3}
BASE=${BENCH_DIR:-/var/tmp}
SRC_SIGILFS=${SIGILFS:-$ROOT/sigilfs}
WORK=
MNTS=()
DPIDS=()

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	say "ERROR: $*"
	exit 1
}
cleanup() {
	local rc=$? m p end
	trap - EXIT INT TERM
	for m in "${MNTS[@]}"; do
		if findmnt -rn -M "$m" >/dev/null 2>&1; then
			timeout 20 fusermount3 -u "$m" 2>/dev/null || timeout 20 umount -l "$m" 2>/dev/null
		fi
	done
	end=$((SECONDS + 20))
	for p in "${DPIDS[@]}"; do
		while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
		kill -0 "$p" 2>/dev/null && kill -KILL "$p"
	done
	[ -n "$WORK" ] && [ -d "$WORK" ] && rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[[ $N =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_N and BENCH_ROUNDS must be whole numbers > 0"
[ "$(id -u)" -eq 0 ] || die "run as root (FUSE mounts, tmpfs)"
for c in gcc bindfs fusermount3 taskset pkg-config; do
	command -v $c >/dev/null || die "$c is missing (fs-bench.sh installs what this needs)"
done
[ -x "$SRC_SIGILFS" ] || die "no sigilfs at $SRC_SIGILFS (build it first)"

WORK=$(mktemp -d "$BASE/sigil-floor.XXXXXX")
read -ra FUSE_FLAGS <<<"$(pkg-config --cflags --libs fuse3)"
gcc -O2 -Wall -Wextra -o "$WORK/fuse-floor" "$HERE/fuse-floor.c" "${FUSE_FLAGS[@]}" ||
	die "cannot build fuse-floor.c"
cp "$SRC_SIGILFS" "$WORK/sigilfs"
mkdir -p "$WORK/tmpfs" "$WORK/bindfs" "$WORK/sigilfs.mnt" "$WORK/data" "$WORK/disk"
mount -t tmpfs -o size=256m tmpfs "$WORK/tmpfs" || die "cannot mount tmpfs"
MNTS+=("$WORK/tmpfs")
mkdir "$WORK/tmpfs/plain" "$WORK/tmpfs/under"
bindfs "$WORK/tmpfs/under" "$WORK/bindfs" || die "cannot mount bindfs"
MNTS+=("$WORK/bindfs")
DPIDS+=("$(pgrep -n -x bindfs)")
"$WORK/sigilfs" "$WORK/sigilfs.mnt" -o data="$WORK/data",mirror=off || die "cannot mount sigilfs"
MNTS+=("$WORK/sigilfs.mnt")
DPIDS+=("$(cat "$WORK/data/sigilfs.pid")")
for m in open noopen noflush; do
	mkdir "$WORK/floor-$m"
	taskset -c 0 "$WORK/fuse-floor" serve "$WORK/floor-$m" $m &
	DPIDS+=($!)
	MNTS+=("$WORK/floor-$m")
done
for _ in $(seq 50); do
	n=0
	for m in open noopen noflush; do
		findmnt -rn -M "$WORK/floor-$m" >/dev/null && n=$((n + 1))
	done
	[ "$n" -eq 3 ] && break
	sleep 0.1
done
[ "$n" -eq 3 ] || die "the fuse-floor daemons did not mount"
for p in "${DPIDS[@]}"; do taskset -a -p -c 0 "$p" >/dev/null; done
head -c 1024 /dev/urandom >"$WORK/tmpfs/plain/f"
cp "$WORK/tmpfs/plain/f" "$WORK/disk/f"
cp "$WORK/tmpfs/plain/f" "$WORK/bindfs/f"
cp "$WORK/tmpfs/plain/f" "$WORK/sigilfs.mnt/f"

FS=(tmpfs disk bindfs sigilfs floor-open floor-noopen floor-noflush)
dir_of() {
	case $1 in
	tmpfs) echo "$WORK/tmpfs/plain" ;;
	disk) echo "$WORK/disk" ;;
	bindfs) echo "$WORK/bindfs" ;;
	sigilfs) echo "$WORK/sigilfs.mnt" ;;
	*) echo "$WORK/$1" ;;
	esac
}
for r in $(seq "$ROUNDS"); do
	for f in "${FS[@]}"; do
		say "round $r: $f"
		taskset -c 0 "$WORK/fuse-floor" probe "$(dir_of "$f")" "$N" >"$WORK/out.$f.$r" ||
			die "probe failed on $f"
	done
done

# the median over the rounds of a field: FS OP FIELD (p50, p99, rate)
med() {
	local f=$1 op=$2 field=$3 r
	for r in $(seq "$ROUNDS"); do
		awk -v op="$op" -v field="$field" '$1 == op { for (i = 2; i < NF; i++) if ($i == field) print $(i + 1) }' "$WORK/out.$f.$r"
	done | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
echo "| operation | file system | p50 (us) | p99 (us) | ops/s | / tmpfs | / bindfs |"
echo "|---|---|---|---|---|---|---|"
for op in open+read+close create+write+close unlink editor-save; do
	t=$(med tmpfs $op rate) b=$(med bindfs $op rate)
	for f in "${FS[@]}"; do
		rate=$(med "$f" $op rate)
		printf '| %s | %s | %s | %s | %s | %.2f | %.2f |\n' "$op" "$f" "$(med "$f" $op p50)" \
			"$(med "$f" $op p99)" "$rate" "$(echo "$rate / $t" | bc -l)" "$(echo "$rate / $b" | bc -l)"
	done
done
echo
echo "Rounds: $ROUNDS of $N samples of each op; every figure is the median over the rounds."
echo "sigilfs: $(rev_of "$(dirname "$SRC_SIGILFS")"); kernel $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg)"
