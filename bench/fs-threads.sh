#!/bin/bash
# fs-threads.sh: sigilfs's FUSE worker count (the `threads` option) against
# the throughput of several callers at once. For each count a fresh mount runs
# fs-bench's multi-threaded set (BENCH_THREADS callers, nothing pinned); the
# counts take turns, round after round, so that the machine's drift falls on
# all of them. bindfs over tmpfs (one thread of its own) runs in every round
# as the baseline. See bench/README.md.
#
#	bench/fs-threads.sh          # as root; writes bench/results/fs-threads.md
#
# Knobs (environment): BENCH_WORKERS (the counts, "10 4 2"), BENCH_ROUNDS (3),
# BENCH_THREADS (callers, 4), BENCH_N (samples of each cheap op per caller,
# 2000), BENCH_N_SYNC (of write+fsync and of the editor save, 300),
# BENCH_N_READDIR (8), BENCH_ENTRIES (2000), BENCH_OUT, BENCH_DIR (/var/tmp),
# SIGILFS (the daemon).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

WORKERS=${BENCH_WORKERS:-10 4 2}
ROUNDS=${BENCH_ROUNDS:-3}
THREADS=${BENCH_THREADS:-4}
N=${BENCH_N:-2000}
N_SYNC=${BENCH_N_SYNC:-300}
N_READDIR=${BENCH_N_READDIR:-8}
ENTRIES=${BENCH_ENTRIES:-2000}
OUT=${BENCH_OUT:-$HERE/results/fs-threads.md}
BASE=${BENCH_DIR:-/var/tmp}
SRC_SIGILFS=${SIGILFS:-$ROOT/sigilfs}
LIMIT=300 # seconds allowed for one fs-bench run

WORK= TMPFS_MNT= MNT= BIND= BPID=

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	say "ERROR: $*"
	exit 1
}
unmount() { # MNT: unmount a FUSE mount if it is one, lazily if it is busy
	findmnt -rn -M "$1" >/dev/null 2>&1 || return 0
	timeout 20 fusermount3 -u "$1" 2>/dev/null || timeout 20 fusermount3 -uz "$1" 2>/dev/null
}
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[ -n "$MNT" ] && unmount "$MNT"
	[ -n "$BIND" ] && unmount "$BIND"
	[ -n "$BPID" ] && kill "$BPID" 2>/dev/null
	if [ -n "$TMPFS_MNT" ] && findmnt -rn -M "$TMPFS_MNT" >/dev/null 2>&1; then
		umount "$TMPFS_MNT" 2>/dev/null || umount -l "$TMPFS_MNT"
	fi
	[ -n "$WORK" ] && [ -d "$WORK" ] && rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

for v in ROUNDS THREADS N N_SYNC N_READDIR ENTRIES; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v must be a whole number above 0, not '${!v}'"
done
for w in $WORKERS; do
	[[ $w =~ ^[1-9][0-9]*$ ]] && [ "$w" -le 64 ] || die "BENCH_WORKERS: '$w' is not a count from 1 to 64"
done
[ "$(id -u)" -eq 0 ] || die "run as root (FUSE mounts, tmpfs, apt-get)"
need=()
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v bindfs >/dev/null || need+=(bindfs)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
	say "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	timeout 300 apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
		{ timeout 300 apt-get update >/dev/null 2>&1 &&
			timeout 300 apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1; }
fi
for c in gcc bindfs python3 fusermount3; do
	command -v $c >/dev/null || die "$c is missing and apt-get could not install it"
done
[ -x "$SRC_SIGILFS" ] || die "no sigilfs at $SRC_SIGILFS (cd $ROOT && make sigilfs)"

WORK=$(mktemp -d "$BASE/sigil-fsthreads.XXXXXX") || die "mktemp in $BASE"
cp "$SRC_SIGILFS" "$WORK/sigilfs"
gcc -O2 -pthread -o "$WORK/fs-bench" "$HERE/fs-bench.c" 2>"$WORK/gcc.log" || die "gcc: $(cat "$WORK/gcc.log")"
TMPFS_MNT=$WORK/tmpfs
mkdir -p "$TMPFS_MNT"
mount -t tmpfs -o size=1g tmpfs "$TMPFS_MNT" || die "cannot mount tmpfs"
mkdir -p "$TMPFS_MNT/bindsrc" "$WORK/bindfs"
BIND=$WORK/bindfs
bindfs -f "$TMPFS_MNT/bindsrc" "$BIND" >"$WORK/bindfs.log" 2>&1 &
BPID=$!
for ((i = 0; i < 100; i++)); do
	findmnt -rn -M "$BIND" >/dev/null && break
	sleep 0.05
done
findmnt -rn -M "$BIND" >/dev/null || die "bindfs did not mount: $(cat "$WORK/bindfs.log")"

# usage PID: the process's CPU ticks (user + system) and context switches, all threads
usage() {
	local t ticks=0 cs=0 a b
	for t in /proc/"$1"/task/*; do
		read -r a b < <(awk '{ print $14, $15 }' "$t/stat" 2>/dev/null) && ticks=$((ticks + a + b))
		cs=$((cs + $(awk '/ctxt_switches/ { s += $2 } END { print s + 0 }' "$t/status" 2>/dev/null)))
	done
	echo "$ticks $cs"
}

# run LABEL DIR PID: one fs-bench run; its lines, prefixed with LABEL, plus
# a "usage" line: the daemon's CPU seconds and context switches over the run
RES=$WORK/res.txt
: >"$RES"
run() {
	local label=$1 dir=$2 pid=$3 u0 u1
	u0=$(usage "$pid")
	timeout "$LIMIT" "$WORK/fs-bench" run "$dir" "$THREADS" "$N" "$N_SYNC" "$N_READDIR" "$ENTRIES" \
		>"$WORK/out" 2>"$WORK/err" || die "fs-bench on $label failed: $(cat "$WORK/err")"
	u1=$(usage "$pid")
	sed "s/^/$label /" "$WORK/out" >>"$RES"
	echo "$label usage $u0 $u1 $(getconf CLK_TCK)" >>"$RES"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= ROUNDS; r++)); do
	for w in $WORKERS; do
		MNT=$WORK/mnt DATA=$WORK/data-$r-$w
		mkdir -p "$MNT" "$DATA"
		out=$(timeout 60 "$WORK/sigilfs" "$MNT" -o "data=$DATA,mirror=off,threads=$w" 2>&1) ||
			die "sigilfs threads=$w did not mount: $out"
		for ((i = 0; i < 100; i++)); do
			[ -s "$DATA/sigilfs.pid" ] && break
			sleep 0.05
		done
		pid=$(cat "$DATA/sigilfs.pid")
		say "round $r: sigilfs threads=$w (pid $pid), $THREADS callers"
		run "sigilfs-$w" "$MNT" "$pid"
		unmount "$MNT"
		for ((i = 0; i < 300; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		rm -rf "$DATA"
	done
	say "round $r: bindfs, $THREADS callers"
	run bindfs "$BIND" "$BPID"
	rm -rf "${BIND:?}"/*
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$RES" "$OUT" "$WORKERS" "$ROUNDS" "$THREADS" "$(rev_of "$ROOT")" "$(uname -srm)" \
	"$(nproc)" "$LOAD_START" "$LOAD_END" "$N" "$N_SYNC" "$N_READDIR" "$ENTRIES" <<'PY'
import statistics, sys
res, out, workers, rounds, threads, rev, kern, ncpu, l0, l1, n, nsync, nrd, ents = sys.argv[1:]
workers = workers.split()
runs = {}  # label -> op -> list of (p50, p99, ops/s)
use = {}   # label -> list of (cpu s, cs, ops)
ops_of = {}
for line in open(res):
    f = line.split()
    if f[1] == "usage":
        t0, c0, t1, c1, hz = map(int, f[2:7])
        use.setdefault(f[0], []).append([(t1 - t0) / hz, c1 - c0])
        continue
    label, op, _, count, p50, p99, rate = f[0], f[1], f[2], int(f[3]), float(f[4]), float(f[5]), float(f[6])
    runs.setdefault(label, {}).setdefault(op, []).append((p50, p99, rate))
    ops_of.setdefault(label, []).append(count)
# ops per run: all samples of one fs-bench run
per_run = {}
for label, counts in ops_of.items():
    k = len(use[label])
    per_run[label] = sum(counts) / k
med = statistics.median
def fmt_t(us):
    return "%.1f µs" % us if us < 1000 else "%.2f ms" % (us / 1000)
labels = ["sigilfs-%s" % w for w in workers]
base = "sigilfs-10" if "sigilfs-10" in runs else labels[0]
ops = [o for o in ["stat", "open_read_close", "reread", "create_write_close", "unlink", "mkdir",
                   "write_fsync", "editor_save", "readdir"] if o in runs[labels[0]]]
L = []
L.append("# sigilfs: FUSE worker threads against several callers at once")
L.append("")
L.append("Produced by `bench/fs-threads.sh` (see `bench/README.md`). sigilfs %s; %s, %s CPUs; load average %s at the start, %s at the end." % (rev, kern, ncpu, l0, l1))
L.append("")
L.append("Each round mounts sigilfs afresh (`mirror=off`) once per worker count (`-o threads=N`: libfuse's multi-threaded loop with at most N workers, all kept) and runs fs-bench's set with %s callers, nothing pinned, on each; then bindfs over tmpfs (its own loop: one thread) as the baseline. %s rounds, the counts in turn within each; figures are the median of the rounds. Per caller: %s samples of each cheap op, %s of write+fsync and of the editor save, %s readdirs of a %s-entry directory. Rates: ops/s over the wall time of the op's phase, all callers together." % (threads, rounds, n, nsync, nrd, ents))
L.append("")
L.append("## Rates (ops/s, median of %s rounds)" % rounds)
L.append("")
hdr = "| operation | " + " | ".join("threads=%s" % w for w in workers) + " | bindfs | " + " | ".join("threads=%s / threads=%s" % (w, base.split('-')[1]) for w in workers if "sigilfs-" + w != base) + " | " + " | ".join("threads=%s / bindfs" % w for w in workers) + " |"
L.append(hdr)
L.append("|" + "---|" * (hdr.count("|") - 1))
for op in ops:
    r = {lab: med([x[2] for x in runs[lab][op]]) for lab in labels + ["bindfs"]}
    row = [op] + ["%.0f" % r[lab] for lab in labels] + ["%.0f" % r["bindfs"]]
    row += ["%.2f" % (r[lab] / r[base]) for lab in labels if lab != base]
    row += ["%.2f" % (r[lab] / r["bindfs"]) for lab in labels]
    L.append("| " + " | ".join(row) + " |")
L.append("")
L.append("## Latency (p50 / p99, median of %s rounds)" % rounds)
L.append("")
hdr = "| operation | " + " | ".join("threads=%s" % w for w in workers) + " | bindfs |"
L.append(hdr)
L.append("|" + "---|" * (hdr.count("|") - 1))
for op in ops:
    row = [op]
    for lab in labels + ["bindfs"]:
        row.append("%s / %s" % (fmt_t(med([x[0] for x in runs[lab][op]]) / 1000), fmt_t(med([x[1] for x in runs[lab][op]]) / 1000)))
    L.append("| " + " | ".join(row) + " |")
L.append("")
L.append("## The daemon's cost")
L.append("")
L.append("| daemon | CPU per op | context switches per op | runs |")
L.append("|---|---|---|---|")
for lab in labels + ["bindfs"]:
    u = use[lab]
    L.append("| %s | %s | %.2f | %d |" % (lab, fmt_t(med([c for c, s in u]) / per_run[lab] * 1e6), med([s for c, s in u]) / per_run[lab], len(u)))
L.append("")
L.append("stat and reread are answered from the kernel's caches (no request reaches a daemon): their rows show the machine's noise, not the worker count.")
L.append("")
L.append("CPU (user + system, all the daemon's threads, from /proc/PID/task/*/stat) and context switches (voluntary and involuntary, /proc/PID/task/*/status) over a whole fs-bench run, divided by all the ops of the run (every op and caller; a create is several FUSE requests, a reread none).")
open(out, "w").write("\n".join(L) + "\n")
PY
say "wrote $OUT"
