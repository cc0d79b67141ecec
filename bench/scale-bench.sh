#!/bin/bash
# scale-bench.sh: how sigilfs's cost grows with the tree: trees of 1k, 100k and
# 1M files, filled directly through the store API (bench/mkstore.c), then
# mounted: mount time, daemon RSS, stat and open+read of random files (cold,
# warm and cached), readdir of big directories, a whole-tree walk, store size
# on disk; beside the same tree on tmpfs, measured in the same run. See
# bench/README.md.
#
#	bench/scale-bench.sh            # as root; writes bench/results/scale.md
#
# Knobs (environment): BENCH_SIZES (tree sizes, "1000 100000 1000000"),
# BENCH_M (random files stat'ed, and as many read, per phase, 2000),
# BENCH_MOUNTS (cold mounts per size, 5), BENCH_FILE_SIZE (bytes per file, 256),
# BENCH_WALK (1: walk the whole tree; 0 skips), BENCH_TMPFS (1: the tmpfs
# baseline; 0 skips), BENCH_CMP_N (files for the comparison of ways to fill a
# store, 100000; 0 skips), BENCH_CPU (the CPU everything measured is pinned
# to, 0), BENCH_STEP_LIMIT (seconds for any one step, 300), BENCH_OUT (report
# path), BENCH_OPTS (more sigilfs mount options, e.g. max_mapped=64G for
# an unbounded map; none by default), BENCH_KEEP=1 (keep the work dir), BENCH_DIR (where the work dir and
# the data dirs go, /var/tmp), SIGILFS (the daemon, ./sigilfs), SIGIL_BUILD
# (the build tree whose libsigil.a and src/ mkstore links against; this tree).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

SIZES=${BENCH_SIZES:-1000 100000 1000000}
M=${BENCH_M:-2000}
MOUNTS=${BENCH_MOUNTS:-5}
FSIZE=${BENCH_FILE_SIZE:-256}
WALK=${BENCH_WALK:-1}
DO_TMPFS=${BENCH_TMPFS:-1}
CMP_N=${BENCH_CMP_N:-100000}
CPU=${BENCH_CPU:-0}
OPTS=${BENCH_OPTS:-}
STEP_LIMIT=${BENCH_STEP_LIMIT:-300}
OUT=${BENCH_OUT:-$HERE/results/scale.md}
BASE=${BENCH_DIR:-/var/tmp}
SRC_SIGILFS=${SIGILFS:-$ROOT/sigilfs}
BUILD=${SIGIL_BUILD:-$ROOT}

WORK=
MNTS=()  # sigilfs mountpoints we mounted
DPIDS=() # sigilfs daemons we started
TMPFS_MNT=
CHILD=
T_START=$SECONDS

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	say "ERROR: $*"
	exit 1
}
# alive: the process exists and is not a zombie (a daemonized sigilfs is
# reaped by init, which may take a second or two after it exited)
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
wait_dead() { # SECONDS PID...
	local end=$((SECONDS + $1)) p left
	shift
	while :; do
		left=0
		for p in "$@"; do
			alive "$p" && left=1
		done
		[ $left -eq 0 ] && return 0
		[ $SECONDS -ge $end ] && return 1
		sleep 0.05
	done
}

cleanup() {
	local rc=$? p m
	trap - EXIT INT TERM
	if [ -n "$CHILD" ] && alive "$CHILD"; then
		kill -TERM "$CHILD" 2>/dev/null
		wait_dead 10 "$CHILD" || kill -KILL "$CHILD" 2>/dev/null
	fi
	# a daemon whose mount never answered is not in DPIDS yet: its pid file is
	if [ -n "$WORK" ]; then
		for f in "$WORK"/data-*/sigilfs.pid; do
			[ -s "$f" ] || continue
			p=$(cat "$f")
			# only if it is still our daemon (its command line names our work dir)
			tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "$WORK/" && DPIDS+=("$p")
		done
	fi
	for m in "${MNTS[@]}"; do
		if findmnt -rn -M "$m" >/dev/null 2>&1; then
			timeout 60 fusermount3 -u "$m" 2>/dev/null || timeout 20 fusermount3 -uz "$m" 2>/dev/null
		fi
	done
	if [ ${#DPIDS[@]} -gt 0 ] && ! wait_dead 30 "${DPIDS[@]}"; then
		for p in "${DPIDS[@]}"; do
			alive "$p" && say "sigilfs $p did not exit after unmount; killing it" && kill -KILL "$p"
		done
	fi
	if [ -n "$TMPFS_MNT" ] && findmnt -rn -M "$TMPFS_MNT" >/dev/null 2>&1; then
		umount "$TMPFS_MNT" 2>/dev/null || umount -l "$TMPFS_MNT"
	fi
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		if [ "${BENCH_KEEP:-0}" == 1 ]; then
			say "work dir kept: $WORK"
		else
			rm -rf "$WORK"
		fi
	fi
	exit $rc
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

for v in M MOUNTS FSIZE WALK DO_TMPFS CMP_N CPU STEP_LIMIT; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
for s in $SIZES; do
	[[ $s =~ ^[0-9]+$ ]] && [ "$s" -ge 2 ] || die "BENCH_SIZES: '$s' is not a tree size (>= 2)"
done
[ "$M" -gt 0 ] && [ "$MOUNTS" -gt 0 ] && [ "$FSIZE" -gt 0 ] || die "BENCH_M, BENCH_MOUNTS, BENCH_FILE_SIZE must be > 0"

# ---- prerequisites

[ "$(id -u)" -eq 0 ] || die "run as root (FUSE mounts, tmpfs, apt-get)"
[ -e /dev/fuse ] || die "no /dev/fuse"
need=()
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v python3 >/dev/null || need+=(python3)
command -v fusermount3 >/dev/null || need+=(fuse3)
command -v taskset >/dev/null || need+=(util-linux)
[ -e /usr/include/lmdb.h ] || need+=(liblmdb-dev)
if [ ${#need[@]} -gt 0 ]; then
	say "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! timeout 300 apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
		timeout 300 apt-get update >/dev/null 2>&1
		timeout 300 apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1
	fi
fi
for c in gcc python3 fusermount3 taskset; do
	command -v $c >/dev/null || die "$c is missing and apt-get could not install it"
done
[ -x "$SRC_SIGILFS" ] || die "no sigilfs at $SRC_SIGILFS (cd $ROOT && make)"
[ -f "$BUILD/libsigil.a" ] || die "no libsigil.a in $BUILD (cd $BUILD && make), or set SIGIL_BUILD"
[ "$CPU" -lt "$(nproc)" ] || die "BENCH_CPU=$CPU: this machine has $(nproc) CPUs"

WORK=$(mktemp -d "$BASE/sigil-scale.XXXXXX") || die "mktemp in $BASE"
# private copies: a rebuild of the tree during the run changes nothing here
cp "$SRC_SIGILFS" "$WORK/sigilfs"
cp "$BUILD/libsigil.a" "$WORK/libsigil.a"
SIGILFS=$WORK/sigilfs
gcc -O2 -std=gnu11 -pthread -I "$HERE" -o "$WORK/scale-bench" "$HERE/scale-bench.c" 2>"$WORK/gcc.log" ||
	die "gcc scale-bench.c: $(cat "$WORK/gcc.log")"
# mkstore needs only the store (src/lmdb) and what it calls (log, util) from libsigil.a
# the headers are in the source tree, which is not the build's in a VPATH build
BSRC=$(sed -n 's/^abs_top_srcdir = //p' "$BUILD/Makefile" 2>/dev/null)
gcc -O2 -std=gnu11 -pthread -I "${BSRC:-$BUILD}/src" -I "$HERE" -o "$WORK/mkstore" "$HERE/mkstore.c" \
	"$WORK/libsigil.a" -llmdb 2>"$WORK/gcc.log" || die "gcc mkstore.c: $(cat "$WORK/gcc.log")"
SB=$WORK/scale-bench
MK=$WORK/mkstore

RES=$WORK/res.txt # "key value" lines for the report
: >"$RES"
put() { printf '%s %s\n' "$1" "$2" >>"$RES"; }

step() { # LABEL CMD...: run bounded, in the background (so a signal runs the trap at once)
	local label=$1
	shift
	timeout "$STEP_LIMIT" "$@" >"$WORK/step.out" 2>"$WORK/step.err" &
	CHILD=$!
	wait "$CHILD" || die "$label failed or ran past ${STEP_LIMIT} s: $(tail -n 5 "$WORK/step.err")"
	CHILD=
}
field() { # NAME: the word after NAME in step.out
	awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) { print $(i + 1); exit } }' "$WORK/step.out"
}

faults() { # PID: "minor major" page faults of the process so far
	awk '{ print $10, $12 }' "/proc/$1/stat"
}
ops_step() { # PHASE SEED ROOT [stat|read]: stat m random files and read m others (or one
	# of the two); the daemon's page faults per operation too
	local f0 f1 which=${4:-both}
	[ -n "$SPID" ] && [ "$1" != tmpfs ] && f0=$(faults "$SPID")
	step "ops $1" taskset -c "$CPU" "$SB" ops "$3" "$N" "$FSIZE" "$m" "$2" "$RAW/$1" "$which"
	if [ -n "$SPID" ] && [ "$1" != tmpfs ]; then
		f1=$(faults "$SPID")
		local nops=$m
		[ "$which" == both ] && nops=$((2 * m))
		put "$N.faults.$1${4:+-$4}" "$((${f1% *} - ${f0% *})) $((${f1#* } - ${f0#* })) $nops"
	fi
}

rss() { # PID KEY-PREFIX: VmRSS, VmHWM, RssAnon, RssFile of the daemon, in KiB
	local k
	for k in VmRSS VmHWM RssAnon RssFile; do
		put "$2.$k" "$(awk -v k="$k:" '$1 == k { print $2 }' "/proc/$1/status")"
	done
}

MNT=$WORK/mnt
mkdir -p "$MNT"
MNTS+=("$MNT")
SPID=

sig_mount() { # DATA KEY: mount DATA on $MNT pinned to $CPU; record the mount time under KEY
	local data=$1 key=$2 probe=$3
	step "mount $data" taskset -c "$CPU" "$SB" mount "$MNT/$probe" 60 \
		taskset -c "$CPU" "$SIGILFS" "$MNT" -o "data=$data,mirror=off${OPTS:+,$OPTS}" # the mirror's own cost: mirror-bench.sh
	put "$key" "$(field mount_ns)"
	put "$key.exit" "$(field exit_ns)"
	SPID=$(cat "$data/sigilfs.pid" 2>/dev/null)
	[ -n "$SPID" ] && alive "$SPID" || die "sigilfs: no live pid in $data/sigilfs.pid"
	DPIDS+=("$SPID")
	findmnt -rn -M "$MNT" >/dev/null || die "sigilfs: $MNT is not a mount"
}

sig_umount() { # KEY: unmount, wait for the daemon to exit; record how long under KEY
	local t0
	t0=$(date +%s%N)
	timeout 120 fusermount3 -u "$MNT" || die "fusermount3 -u $MNT failed"
	wait_dead 60 "$SPID" || die "sigilfs $SPID did not exit within 60 s of the unmount"
	put "$1" $(($(date +%s%N) - t0))
	SPID=
}

if [ "$DO_TMPFS" == 1 ]; then
	TMPFS_MNT=$WORK/tmpfs
	mkdir -p "$TMPFS_MNT"
fi

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
OTHERS=$(pgrep -x sigilfs | wc -l)
say "work dir $WORK; tree sizes: $SIZES"

# ---- ways to fill a store (what mkstore does, and what it could do)

if [ "$CMP_N" -gt 0 ]; then
	for how in "apply 1 0" "apply 2 0" "apply 2 10000" "create 64 0"; do
		read -r m t b <<<"$how"
		rm -rf "$WORK/cmp"
		say "filling a store of $CMP_N files: $m, $t threads, batch ${b/#0/default}"
		bopt=()
		[ "$b" != 0 ] && bopt=(-b "$b")
		step "mkstore $how" "$MK" -m "$m" -t "$t" "${bopt[@]}" -s "$FSIZE" "$WORK/cmp" "$CMP_N"
		put "cmp.$m.$t.$b.seconds" "$(field seconds)"
		put "cmp.$m.$t.$b.commits" "$(field commits)"
	done
	rm -rf "$WORK/cmp"
fi

# ---- each tree size

# The tree sizes are measured interleaved, round by round (every size in turn
# in each round), so that the noise of the shared machine falls on all of
# them alike: the targets compare the biggest tree with the smallest.
declare -A MOF PROBEOF
RMAX=1
BIGN=$(printf '%s\n' $SIZES | sort -n | tail -n 1)
for N in $SIZES; do
	DATA=$WORK/data-$N
	say "$N files: filling the store (mkstore, apply)"
	step "mkstore $N" "$MK" -s "$FSIZE" "$DATA" "$N"
	put "$N.fill_seconds" "$(field seconds)"
	put "$N.used_bytes" "$(field used_bytes)"
	put "$N.dirs" "$(field dirs)"
	put "$N.store_apparent" "$(stat -c %s "$DATA/data.mdb")"
	put "$N.store_du" "$(du -sB1 "$DATA" | cut -f1)"
	# a file every tree has, at the deepest level: the mount answers once it resolves
	PROBEOF[$N]=$(printf 't/d00000/f%07d.conf' $((N >= 100000 ? (N >= 1000000 ? 110000 : 10000) : 0)))
	# files per phase and mount: M, or half the tree; warm rounds (one mount
	# each) until every size has M samples
	MOF[$N]=$((M * 2 > N ? N / 2 : M))
	r=$(((M + MOF[$N] - 1) / MOF[$N]))
	[ $r -gt $RMAX ] && RMAX=$r
	mkdir -p "$WORK/raw/$N"
	put "$N.m" "${MOF[$N]}"
done
for N in $SIZES; do
	put "$N.rounds" "$RMAX"
done

use() { # N: the per-size variables of tree N
	N=$1
	DATA=$WORK/data-$N
	PROBE=${PROBEOF[$N]}
	m=${MOF[$N]}
	RAW=$WORK/raw/$N
}

rdrep() { case $1 in big100k) echo 5 ;; big10k) echo 11 ;; *) echo 21 ;; esac; }
rdirs() { # N: the big directories of tree N
	echo "t/d00000"
	[ "$1" -ge 100000 ] && echo big10k
	[ "$1" -ge 1000000 ] && echo big100k
}

for what in stat read; do
	say "cold mounts (store evicted before each), each followed by m random ${what}s: $MOUNTS round(s)"
	for ((k = 1; k <= MOUNTS; k++)); do
		for n in $SIZES; do
			use "$n"
			step "evict" "$SB" evict "$DATA/data.mdb"
			put "$N.evict_resident_after" "$(field resident_after)"
			sig_mount "$DATA" "$N.mount_cold" "$PROBE"
			[ $k -eq 1 ] && [ $what == stat ] && sleep 0.2 && rss "$SPID" "$N.rss_mount"
			ops_step cold $((42 + k)) "$MNT" $what
			[ $k -eq "$MOUNTS" ] && rss "$SPID" "$N.rss_cold_$what"
			sig_umount "$N.umount"
		done
	done
done

say "warm mounts (store read into the page cache first), each: m stats and m reads warm, then the same cached: $RMAX round(s)"
for ((k = 1; k <= RMAX; k++)); do
	for n in $SIZES; do
		use "$n"
		step "warm" "$SB" warm "$DATA/data.mdb"
		if [ $k -eq 1 ] && [ "$N" == "$BIGN" ] && [ "$(stat -c %s "$DATA/data.mdb")" -ge $((32 << 20)) ]; then
			# what a minor fault on the store's pages costs on this machine
			step "fault cost" taskset -c "$CPU" "$SB" faultcost "$DATA/data.mdb" 2000
			put "faultcost" "$(field fault_ns) $(field refault_ns) $(field mapped_ns) $(field pages_per_fault) $(field dontneed_ns)"
		fi
		sig_mount "$DATA" "$N.mount_warm" "$PROBE"
		[ $k -eq 1 ] && sleep 0.2 && rss "$SPID" "$N.rss_mount_warm"
		ops_step warm $((42 + k)) "$MNT"
		ops_step cached $((42 + k)) "$MNT"
		if [ $k -lt "$RMAX" ]; then
			sig_umount "$N.umount"
			continue
		fi
		# the last round: what RSS the lookups left, then readdir and the walk
		rss "$SPID" "$N.rss_ops"
		put "$N.map_status" "$(sed -n 's/^map  *//p' "$MNT/.sigil/status")"
		for d in $(rdirs "$N"); do
			say "$N files: readdir of $d x $(rdrep "$d")"
			step "readdir $d" taskset -c "$CPU" "$SB" readdir "$MNT/$d" "$(rdrep "$d")" "$RAW/readdir-${d//\//_}.txt"
			put "$N.sigilfs.readdir.$d" "$(cut -d' ' -f2- "$WORK/step.out")"
		done
		rss "$SPID" "$N.rss_readdir"
		if [ "$WALK" == 1 ]; then
			say "$N files: walk the whole tree (list every directory, lstat every entry)"
			step "walk" taskset -c "$CPU" "$SB" walk "$MNT"
			put "$N.sigilfs.walk" "$(field entries) $(field seconds)"
			sleep 0.2
			rss "$SPID" "$N.rss_walk"
		fi
		sig_umount "$N.umount_last"
		rm -rf "$DATA"
	done
done

if [ "$DO_TMPFS" == 1 ]; then
	for n in $SIZES; do
		use "$n"
		say "$N files: the same tree on tmpfs"
		# a page per file, and room for the inodes
		mb=$((N * (FSIZE / 4096 + 1) * 4 / 1024 + 256))
		mount -t tmpfs -o "size=$((mb * 2))m,nr_inodes=0" tmpfs "$TMPFS_MNT" || die "cannot mount tmpfs"
		step "populate tmpfs" "$SB" populate "$TMPFS_MNT" "$N" "$FSIZE" 2
		put "$N.tmpfs.fill_seconds" "$(field seconds)"
		put "$N.tmpfs.used" "$(df -B1 --output=used "$TMPFS_MNT" | tail -n 1 | tr -d ' ')"
		for ((k = 1; k <= RMAX; k++)); do
			ops_step tmpfs $((42 + k)) "$TMPFS_MNT"
		done
		for d in $(rdirs "$N"); do
			step "tmpfs readdir $d" taskset -c "$CPU" "$SB" readdir "$TMPFS_MNT/$d" "$(rdrep "$d")" \
				"$RAW/tmpfs-readdir-${d//\//_}.txt"
			put "$N.tmpfs.readdir.$d" "$(cut -d' ' -f2- "$WORK/step.out")"
		done
		if [ "$WALK" == 1 ]; then
			step "tmpfs walk" taskset -c "$CPU" "$SB" walk "$TMPFS_MNT"
			put "$N.tmpfs.walk" "$(field entries) $(field seconds)"
		fi
		umount "$TMPFS_MNT" || die "cannot unmount $TMPFS_MNT"
	done
fi
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report

mkdir -p "$(dirname "$OUT")"
OUTBASE=${OUT%.md}
cmd="$(cd "$ROOT" && pwd)/bench/scale-bench.sh"
for v in BENCH_SIZES BENCH_M BENCH_MOUNTS BENCH_FILE_SIZE BENCH_WALK BENCH_TMPFS BENCH_CMP_N BENCH_CPU BENCH_DIR BENCH_OPTS; do
	[ -n "${!v:-}" ] && cmd="$v=\"${!v}\" $cmd"
done
[ -n "${SIGIL_BUILD:-}" ] && cmd="SIGIL_BUILD=$SIGIL_BUILD $cmd"
[ "$SRC_SIGILFS" != "$ROOT/sigilfs" ] && cmd="SIGILFS=$SRC_SIGILFS $cmd"
wall=$((SECONDS - T_START))
export R_RES=$RES R_RAW=$WORK/raw R_OUT=$OUT R_COST=$OUTBASE-cost.dat R_SAMPLES=$OUTBASE-samples.dat \
	R_SAMPLES_REL="$(realpath --relative-to="$ROOT" "$OUTBASE-samples.dat" 2>/dev/null || echo "$OUTBASE-samples.dat")" \
	R_COST_REL="$(realpath --relative-to="$ROOT" "$OUTBASE-cost.dat" 2>/dev/null || echo "$OUTBASE-cost.dat")" \
	R_SIZES="$SIZES" R_M=$M R_MOUNTS=$MOUNTS R_FSIZE=$FSIZE R_WALK=$WALK R_TMPFS=$DO_TMPFS R_CMP_N=$CMP_N R_CPU=$CPU R_OPTS="$OPTS" R_CMD=$cmd
export R_DATE="$(date -u '+%Y-%m-%d %H:%M:%S UTC')" R_NPROC=$(nproc) \
	R_MODEL="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" \
	R_KERNEL="$(uname -srm)" R_MEM="$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" \
	R_LOAD_START="$LOAD_START" R_LOAD_END="$LOAD_END" R_OTHERS="$OTHERS" \
	R_REV="$(rev_of "$(dirname "$SRC_SIGILFS")")" R_SHA="$(sha256sum "$SIGILFS" | cut -d' ' -f1)" \
	R_LIBSHA="$(sha256sum "$WORK/libsigil.a" | cut -d' ' -f1)" R_GCC="$(gcc --version | head -n 1)" \
	R_DISKFS="$(df -T "$WORK" | awk 'NR == 2 { print $2 " on " $1 }')" R_WORK="$WORK" \
	R_READAHEAD="$(d=$(findmnt -n -o SOURCE -T "$WORK" | sed 's,^/dev/,,; s,\[.*,,'); cat "/sys/class/block/$d/queue/read_ahead_kb" 2>/dev/null ||
		cat "/sys/class/block/$d/../queue/read_ahead_kb" 2>/dev/null || echo '?') KiB" \
	R_WALL="$((wall / 60)) min $((wall % 60)) s"
python3 "$HERE/scale-report.py" || die "report failed"
say "report: $OUT"
