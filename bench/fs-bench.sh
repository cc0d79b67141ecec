#!/bin/bash
# fs-bench.sh: file system operations through a sigilfs mount beside tmpfs,
# the bare data disk and bindfs over tmpfs, all measured in the same run, and
# the daemon's write amplification per 1 KiB save. See bench/README.md.
#
#	bench/fs-bench.sh            # as root; writes bench/results/fs.md
#
# Knobs (environment): BENCH_N (samples of each cheap op per thread, 2000),
# BENCH_N_SYNC (samples of write+fsync and of the editor save, 300),
# BENCH_N_READDIR (readdirs of the big directory, 20), BENCH_ENTRIES (its
# entries, 10000), BENCH_THREADS (the multi-threaded run, 4; 0 skips it),
# BENCH_WA_N (lone fsync'd saves, 200), BENCH_WA_STREAM (saves in the stream,
# 2000), BENCH_ROUNDS (rounds of the single-threaded runs, 3: each round runs
# every file system in turn with a third of the samples, and a target's ratio
# is the median of the rounds' ratios), BENCH_OUT (report path), BENCH_KEEP=1
# (keep the work dir), BENCH_DIR (where the work dir goes: the "disk";
# /var/tmp), SIGILFS (the daemon).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

N=${BENCH_N:-2000}
N_SYNC=${BENCH_N_SYNC:-300}
N_READDIR=${BENCH_N_READDIR:-20}
ENTRIES=${BENCH_ENTRIES:-10000}
THREADS=${BENCH_THREADS:-4}
WA_N=${BENCH_WA_N:-200}
WA_STREAM=${BENCH_WA_STREAM:-2000}
ROUNDS=${BENCH_ROUNDS:-3}
OUT=${BENCH_OUT:-$HERE/results/fs.md}
BASE=${BENCH_DIR:-/var/tmp}
SRC_SIGILFS=${SIGILFS:-$ROOT/sigilfs}
STEP_LIMIT=${BENCH_STEP_LIMIT:-300} # seconds allowed for any one measuring step

WORK=
MNTS=()  # FUSE mountpoints we mounted
DPIDS=() # daemons we started (sigilfs, bindfs)
TMPFS_MNT=
CHILD=
T_START=$SECONDS

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	say "ERROR: $*"
	exit 1
}
alive() { kill -0 "$1" 2>/dev/null; }
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
		sleep 0.1
	done
}

cleanup() {
	local rc=$? p m
	trap - EXIT INT TERM
	if [ -n "$CHILD" ] && alive "$CHILD"; then
		kill -TERM "$CHILD" 2>/dev/null
		wait_dead 10 "$CHILD" || kill -KILL "$CHILD" 2>/dev/null
	fi
	for m in "${MNTS[@]}"; do
		if findmnt -rn -M "$m" >/dev/null 2>&1; then
			timeout 20 fusermount3 -u "$m" 2>/dev/null || timeout 20 fusermount3 -uz "$m" 2>/dev/null
		fi
	done
	if [ ${#DPIDS[@]} -gt 0 ] && ! wait_dead 30 "${DPIDS[@]}"; then
		for p in "${DPIDS[@]}"; do
			alive "$p" && say "daemon $p did not exit after unmount; killing it" && kill -KILL "$p"
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

for v in N N_SYNC N_READDIR ENTRIES THREADS WA_N WA_STREAM ROUNDS STEP_LIMIT; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a whole number, not '${!v}'"
done
[ "$N" -gt 0 ] && [ "$N_SYNC" -gt 0 ] && [ "$N_READDIR" -gt 0 ] && [ "$ENTRIES" -gt 0 ] && [ "$ROUNDS" -gt 0 ] ||
	die "sample counts and rounds must be > 0"
# per round of the single-threaded runs: the samples shared out, rounded up
RN=$(((N + ROUNDS - 1) / ROUNDS)) RN_SYNC=$(((N_SYNC + ROUNDS - 1) / ROUNDS)) RN_READDIR=$(((N_READDIR + ROUNDS - 1) / ROUNDS))

# ---- prerequisites

[ "$(id -u)" -eq 0 ] || die "run as root (FUSE mounts, tmpfs, apt-get)"
[ -e /dev/fuse ] || die "no /dev/fuse"
need=()
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v python3 >/dev/null || need+=(python3)
command -v fusermount3 >/dev/null || need+=(fuse3)
command -v bindfs >/dev/null || need+=(bindfs)
command -v taskset >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
	say "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! timeout 300 apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
		timeout 300 apt-get update >/dev/null 2>&1
		timeout 300 apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1
	fi
fi
for c in gcc python3 fusermount3 bindfs taskset; do
	command -v $c >/dev/null || die "$c is missing and apt-get could not install it"
done
[ -x "$SRC_SIGILFS" ] || die "no sigilfs at $SRC_SIGILFS (cd $ROOT && make sigilfs)"

WORK=$(mktemp -d "$BASE/sigil-fsbench.XXXXXX") || die "mktemp in $BASE"
cp "$SRC_SIGILFS" "$WORK/sigilfs"
SIGILFS=$WORK/sigilfs
gcc -O2 -pthread -o "$WORK/fs-bench" "$HERE/fs-bench.c" 2>"$WORK/gcc.log" || die "gcc: $(cat "$WORK/gcc.log")"
FSB=$WORK/fs-bench
NCPU=$(nproc)
ALLCPU=0-$((NCPU - 1))

# ---- the four file systems

DISK=$WORK/disk
mkdir -p "$DISK"
TMPFS_MNT=$WORK/tmpfs
mkdir -p "$TMPFS_MNT"
mount -t tmpfs -o size=1g tmpfs "$TMPFS_MNT" || die "cannot mount tmpfs"
mkdir -p "$TMPFS_MNT/plain" "$TMPFS_MNT/bindsrc"

BIND=$WORK/bindfs
mkdir -p "$BIND"
MNTS+=("$BIND")
bindfs -f "$TMPFS_MNT/bindsrc" "$BIND" >"$WORK/bindfs.log" 2>&1 &
BPID=$!
DPIDS+=("$BPID")
for ((i = 0; i < 100; i++)); do
	findmnt -rn -M "$BIND" >/dev/null && break
	sleep 0.05
done
findmnt -rn -M "$BIND" >/dev/null || die "bindfs did not mount: $(cat "$WORK/bindfs.log")"

SIG=$WORK/sigilfs-mnt SIGDATA=$WORK/sigilfs-data
mkdir -p "$SIG" "$SIGDATA"
MNTS+=("$SIG")
# the Git mirror off: this is the store's and the file system's cost (the
# mirror batches its commits and has its own benchmark, mirror-bench.sh)
out=$(timeout 60 "$SIGILFS" "$SIG" -o "data=$SIGDATA,mirror=off" 2>&1) || die "sigilfs did not mount: $out"
for ((i = 0; i < 100; i++)); do
	[ -s "$SIGDATA/sigilfs.pid" ] && break
	sleep 0.05
done
SPID=$(cat "$SIGDATA/sigilfs.pid" 2>/dev/null)
[ -n "$SPID" ] && alive "$SPID" || die "sigilfs: no live pid in $SIGDATA/sigilfs.pid"
DPIDS+=("$SPID")
findmnt -rn -M "$SIG" >/dev/null || die "sigilfs: $SIG is not a mount"
say "work dir $WORK; tmpfs, disk, bindfs (pid $BPID), sigilfs (pid $SPID) ready"

declare -A FSDIR=([tmpfs]=$TMPFS_MNT/plain [disk]=$DISK [bindfs]=$BIND [sigilfs]=$SIG)
declare -A FSPID=([tmpfs]= [disk]= [bindfs]=$BPID [sigilfs]=$SPID)
FSLIST=(tmpfs disk bindfs sigilfs)

step() { # LABEL CMD...: run bounded, in the background (so a signal runs the trap at once)
	local label=$1
	shift
	timeout "$STEP_LIMIT" "$@" >"$WORK/step.out" 2>"$WORK/step.err" &
	CHILD=$!
	wait "$CHILD" || die "$label failed or ran past ${STEP_LIMIT} s: $(cat "$WORK/step.err")"
	CHILD=
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
OTHERS=$(pgrep -x sigilfs | grep -cvxF "$SPID")

# ---- latency: single-threaded, benchmark and daemon pinned to CPU 0; in
# ROUNDS rounds, each running every file system in turn, so that a slow spell
# of the shared machine or its virtual disk falls on all of them. Lines of
# $RES: FS ROUND OP THREADS N P50 P99 OPS/S

RES=$WORK/res.txt
: >"$RES"
for fs in "${FSLIST[@]}"; do
	p=${FSPID[$fs]}
	[ -n "$p" ] && { taskset -a -p -c 0 "$p" >/dev/null || die "taskset $fs daemon"; }
	mkdir -p "$WORK/raw/$fs"
done
for ((rnd = 1; rnd <= ROUNDS; rnd++)); do
	for fs in "${FSLIST[@]}"; do
		say "$fs: 1 thread, pinned to CPU 0, round $rnd of $ROUNDS"
		rm -rf "$WORK/raw/round" && mkdir -p "$WORK/raw/round"
		step "$fs 1 thread" env FS_BENCH_RAW="$WORK/raw/round" taskset -c 0 "$FSB" run "${FSDIR[$fs]}" 1 "$RN" \
			"$RN_SYNC" "$RN_READDIR" "$ENTRIES"
		sed "s/^/$fs $rnd /" "$WORK/step.out" >>"$RES"
		for f in "$WORK/raw/round"/*.txt; do
			cat "$f" >>"$WORK/raw/$fs/${f##*/}"
		done
	done
done
if [ "$THREADS" -gt 0 ]; then
	for fs in "${FSLIST[@]}"; do
		p=${FSPID[$fs]}
		[ -n "$p" ] && { taskset -a -p -c "$ALLCPU" "$p" >/dev/null || die "taskset $fs daemon"; }
		say "$fs: $THREADS threads, unpinned"
		step "$fs $THREADS threads" taskset -c "$ALLCPU" "$FSB" run "${FSDIR[$fs]}" "$THREADS" "$N" "$N_SYNC" \
			"$N_READDIR" "$ENTRIES"
		sed "s/^/$fs 1 /" "$WORK/step.out" >>"$RES"
	done
fi

# ---- write amplification: sigilfs daemon's write_bytes, wchar and syscw; the
# bare disk's own (the benchmark process's) for scale; device sectors written too.
# fs-bench wa prints: mode n write_bytes dev_bytes secs wchar syscw

dev=$(findmnt -n -o SOURCE -T "$WORK" | sed 's,^/dev/,,; s,\[.*,,')
DEVSTAT=-
[ -n "$dev" ] && [ -r "/sys/class/block/$dev/stat" ] && DEVSTAT=/sys/class/block/$dev/stat
WA=$WORK/wa.txt
: >"$WA"
taskset -a -p -c 0 "$SPID" >/dev/null
for m in fsync:$WA_N editor:$WA_N stream:$WA_STREAM; do
	say "write amplification: sigilfs, ${m%%:*} x ${m#*:}"
	step "wa sigilfs $m" taskset -c 0 "$FSB" wa "$SIG" "${m%%:*}" "${m#*:}" "$SPID" "$DEVSTAT"
	sed 's/^/sigilfs /' "$WORK/step.out" >>"$WA"
	say "write amplification: disk, ${m%%:*} x ${m#*:}"
	step "wa disk $m" taskset -c 0 "$FSB" wa "$DISK" "${m%%:*}" "${m#*:}" self "$DEVSTAT"
	sed 's/^/disk /' "$WORK/step.out" >>"$WA"
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report

mkdir -p "$(dirname "$OUT")"
cmd="$(cd "$ROOT" && pwd)/bench/fs-bench.sh"
for v in BENCH_N BENCH_N_SYNC BENCH_N_READDIR BENCH_ENTRIES BENCH_THREADS BENCH_WA_N BENCH_WA_STREAM BENCH_ROUNDS BENCH_DIR; do
	[ -n "${!v:-}" ] && cmd="$v=${!v} $cmd"
done
[ "$SRC_SIGILFS" != "$ROOT/sigilfs" ] && cmd="SIGILFS=$SRC_SIGILFS $cmd"
wall=$((SECONDS - T_START))
export R_RAW=$WORK/raw R_SAMPLES=${OUT%.md}-samples.dat R_RES=$RES R_WA=$WA R_OUT=$OUT R_THREADS=$THREADS R_N=$N R_NSYNC=$N_SYNC R_NRD=$N_READDIR R_ROUNDS=$ROUNDS R_RN=$RN R_RNSYNC=$RN_SYNC R_RNRD=$RN_READDIR \
	R_ENTRIES=$ENTRIES R_DEVSTAT=$DEVSTAT R_CMD=$cmd
export R_DATE="$(date -u '+%Y-%m-%d %H:%M:%S UTC')" R_NPROC=$NCPU \
	R_MODEL="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" \
	R_KERNEL="$(uname -srm)" R_MEM="$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" \
	R_LOAD_START="$LOAD_START" R_LOAD_END="$LOAD_END" R_OTHERS="$OTHERS" \
	R_REV="$(rev_of "$(dirname "$SRC_SIGILFS")")" R_SHA="$(sha256sum "$SIGILFS" | cut -d' ' -f1)" \
	R_BINDFS="$(bindfs --version 2>&1 | head -n 1)" R_GCC="$(gcc --version | head -n 1)" \
	R_DISKFS="$(df -T "$DISK" | awk 'NR == 2 { print $2 " on " $1 }')" R_WORK="$WORK" \
	R_WALL="$((wall / 60)) min $((wall % 60)) s"
python3 - <<'EOF' || die "report failed"
import os
E = os.environ
runs = {}  # (fs, op, threads) -> [(n, p50, p99, ops/s)], one per round
for line in open(E["R_RES"]):
    fs, rnd, op, th, n, p50, p99, ops = line.split()
    runs.setdefault((fs, op, int(th)), []).append((int(n), int(p50), int(p99), float(ops)))

def med(v):
    v = sorted(v)
    h = len(v) // 2
    return v[h] if len(v) % 2 else (v[h - 1] + v[h]) / 2

def raw(fs, op):
    p = os.path.join(E["R_RAW"], fs, op + ".txt")
    return sorted(int(x) for x in open(p)) if os.path.exists(p) else []

# merged over the rounds: n in all; p50 and p99 of every sample (single-threaded
# runs keep them all), else the rounds' medians; ops/s the rounds' median
res = {}
for (fs, op, th), v in runs.items():
    a = raw(fs, op) if th == 1 else []
    if a and len(a) == sum(x[0] for x in v):
        p50, p99 = a[(len(a) - 1) // 2], a[int((len(a) - 1) * 0.99)]
    else:
        p50, p99 = med([x[1] for x in v]), med([x[2] for x in v])
    res[(fs, op, th)] = (sum(x[0] for x in v), p50, p99, med([x[3] for x in v]))

def ratios(op, base, th=1):
    """sigilfs / base of ops/s, round by round (a round runs both within seconds)"""
    return [s[3] / b[3] for s, b in zip(runs[("sigilfs", op, th)], runs[(base, op, th)])]
wa = {}
for line in open(E["R_WA"]):
    fs, mode, n, wb, dwb, secs, wch, scw = line.split()
    wa[(fs, mode)] = (int(n), int(wb), int(dwb), float(secs), int(wch), int(scw))

def t(ns):
    return "%.1f µs" % (ns / 1e3) if ns < 1e6 else "%.2f ms" % (ns / 1e6)

def r(x):
    return "%.0f" % x if x >= 100 else "%.2f" % x if x < 10 else "%.1f" % x

FS = ["tmpfs", "disk", "bindfs", "sigilfs"]
OPS = [("stat", "stat (cached)"), ("open_read_close", "open+read 1 KiB+close"),
       ("reread", "pread 1 KiB of an open file"), ("create_write_close", "create+write 1 KiB+close"),
       ("write_fsync", "pwrite 1 KiB+fsync"), ("editor_save", "editor save (tmp, write, fsync, close, rename)"),
       ("unlink", "unlink"), ("mkdir", "mkdir"), ("readdir", "readdir of %s entries" % E["R_ENTRIES"])]
L = []
L.append("# sigilfs file system operations benchmark\n")
L.append("Produced by `bench/fs-bench.sh` (see `bench/README.md`). Every figure was measured in the same run on the same machine; "
         "ratios are sigilfs / baseline for rates (ops/s): above 1 sigilfs is faster.\n")

# ---- targets
def ops(fs, op, th=1):
    return res[(fs, op, th)][3]
rows = []
def target(fig, base, op, factor, basis):
    s, b = ops("sigilfs", op), ops(base, op)
    rs = ratios(op, base)
    ratio = med(rs)
    need = factor
    met = ratio >= need
    miss = "" if met else " (%.1fx short)" % (need / ratio)
    spread = " (rounds: %s)" % ", ".join(r(x) for x in rs) if len(rs) > 1 else ""
    rows.append("| %s | %s ops/s | %s ops/s (%s) | %s%s | >= %s x %s | %s%s |" % (
        fig, r(s), r(b), base, r(ratio), spread, factor, basis, "yes" if met else "**no**", miss))
target("stat, cached, 1 thread", "tmpfs", "stat", 0.5, "tmpfs")
target("open+read+close of an unchanged 1 KiB file, 1 thread", "tmpfs", "open_read_close", 0.5, "tmpfs")
target("repeated read of the same open file, 1 thread", "tmpfs", "reread", 0.5, "tmpfs")
target("create+write 1 KiB+close, 1 thread", "bindfs", "create_write_close", 2, "bindfs")
target("editor save (fsync'd), 1 thread", "bindfs", "editor_save", 2, "bindfs")
target("unlink, 1 thread", "bindfs", "unlink", 2, "bindfs")
target("editor save (fsync'd) vs the same save on the bare disk, 1 thread", "disk", "editor_save", 1, "disk")
for mode, fig, lim in [("fsync", "write amplification, lone fsync'd 1 KiB save (open, write, fsync, close)", 10),
                       ("editor", "write amplification, lone editor save (tmp, write, fsync, rename)", 10),
                       ("stream", "write amplification, stream of non-fsync'd 1 KiB saves", None)]:
    n, wb, dwb, secs, wch, scw = wa[("sigilfs", mode)]
    dn, dw, ddw, dsecs, dwch, dscw = wa[("disk", mode)]
    # each measure: (name, sigilfs x per 1 KiB, sigilfs B/save, disk x per 1 KiB); write_bytes is the issue's
    ms = [("write_bytes", wb / n / 1024, wb // n, dw / dn / 1024), ("wchar", wch / n / 1024, wch // n, dwch / dn / 1024)]
    if dwb >= 0 and ddw >= 0:
        ms.append(("device", dwb / n / 1024, dwb // n, ddw / dn / 1024))
    if lim is None:
        ok = "-"
    else:
        over = ["%s %.1fx over" % (m, x / lim) for m, x, b, dx in ms if x > lim]
        ok = "**no** (%s)" % "; ".join(over) if over else "yes"
    rows.append("| %s | %s (n=%d) | ext4, the writer's own: %s | %s | %s | %s |" % (
        fig, "; ".join("%s %sx (%s B/save%s)" % (m, r(x), "{:,}".format(b), ", whole disk" if m == "device" else "")
                       for m, x, b, dx in ms), n,
        "; ".join("%s %sx" % (m, r(dx)) for m, x, b, dx in ms),
        "; ".join("%s %s" % (m, r(x / dx) if dx else "-") for m, x, b, dx in ms),
        "<= %dx by each measure" % lim if lim else "- (pmxcfs ~41x)", ok))
L.append("## Targets\n")
L.append("| figure | sigilfs | baseline | ratio | target | met? |")
L.append("|---|---|---|---|---|---|")
L += rows
L.append("")
L.append("Rates are single-threaded, with the benchmark and the daemon (all its threads) pinned to CPU 0 with `taskset`, "
         "measured in %s rounds that each run every file system in turn; a rate is the median of the rounds' rates, a ratio the "
         "median of the rounds' ratios (each listed), so that a slow spell of the machine or its disk falls on both sides of it. "
         % E["R_ROUNDS"] +
         "Write amplification = bytes per save / 1024, by three measures: the daemon's `write_bytes` (from `/proc/PID/io`, the "
         "measure the issue names, and the one the target is judged by), the bytes it passed to write calls (`wchar`, same file) "
         "and the device's sectors written (whole disk); a write-amplification target is met only if no measure is over it. "
         "On this kernel `write_bytes` counts whole large folios and overstates the daemon's writes several times over; `wchar` "
         "and the device are the truthful figures (see Write amplification below). pmxcfs is reported at about 41x for a 1 KiB save.\n")

# ---- full latency tables
ths = sorted({k[2] for k in res})
for th in ths:
    pin = "benchmark and daemons pinned to CPU 0 (`taskset`)" if th == 1 else "%d threads, nothing pinned (all %s CPUs)" % (th, E["R_NPROC"])
    L.append("## All operations, %d thread%s: %s\n" % (th, "" if th == 1 else "s", pin))
    L.append("| operation | n | " + " | ".join("%s p50 / p99 / ops/s" % f for f in FS) + " | sigilfs/tmpfs | sigilfs/disk | sigilfs/bindfs |")
    L.append("|---|---|" + "---|" * len(FS) + "---|---|---|")
    for op, name in OPS:
        cells = []
        for f in FS:
            n, p50, p99, o = res[(f, op, th)]
            cells.append("%s / %s / %s" % (t(p50), t(p99), r(o)))
        s = ops("sigilfs", op, th)
        L.append("| %s | %d | %s | %s | %s | %s |" % (name, res[("sigilfs", op, th)][0], " | ".join(cells),
                 r(med(ratios(op, "tmpfs", th))), r(med(ratios(op, "disk", th))), r(med(ratios(op, "bindfs", th)))))
    L.append("")
L.append("Ratios in these tables are of ops/s (sigilfs / other): above 1 sigilfs is faster. Single-threaded: ops/s and ratios are "
         "the medians over the %s rounds, p50 and p99 are over every sample of all rounds.\n" % E["R_ROUNDS"])

L.append("## Write amplification\n")
L.append("| saves | file system | n | process write_bytes / save | / 1 KiB | bytes passed to write calls (wchar) / save | x per 1 KiB "
         "| write calls (syscw) / save | device bytes written / save (whole disk, noisy) | time |")
L.append("|---|---|---|---|---|---|---|---|---|---|")
for mode, name in [("fsync", "lone: open, write 1 KiB, fsync, close"), ("editor", "lone editor save: tmp, write, fsync, close, rename"),
                   ("stream", "stream: open, write 1 KiB, close, back to back, no fsync")]:
    for f in ("sigilfs", "disk"):
        n, wb, dwb, secs, wch, scw = wa[(f, mode)]
        L.append("| %s | %s | %d | %s B | %sx | %s B | %sx | %.1f | %s | %.2f s |" % (
            name, "sigilfs (daemon)" if f == "sigilfs" else "ext4 disk (the writer itself)", n, "{:,}".format(wb // n),
            r(wb / n / 1024), "{:,}".format(wch // n), r(wch / n / 1024), scw / n,
            "-" if dwb < 0 else "{:,} B (%sx)".format(dwb // n) % r(dwb / n / 1024), secs))
L.append("")
L.append("The saves rewrite 20 files that exist beforehand, in turn, with new content each time. For sigilfs the process columns are "
         "the daemon's, for the bare disk the benchmark's own (which leave out ext4's journal, so the device column, sectors written "
         "on %s over the loop plus 1.5 s by everything on the machine, is the fairer comparison for the disk). `write_bytes` is "
         "what the kernel charged the process for dirtying page cache; `wchar` the bytes it passed to write calls (any file "
         "descriptor), `syscw` the number of those calls.\n" % E["R_DEVSTAT"])
fn, fwb, fdwb, fsecs, fwch, fscw = wa[("sigilfs", "fsync")]
en, ewb, edwb, esecs, ewch, escw = wa[("sigilfs", "editor")]
dn, dwb_, ddwb, dsecs, dwch, dscw = wa[("disk", "fsync")]
over = fwch and fwb / fwch > 1.5  # write_bytes well above what was written
dev = ""
if fdwb >= 0 and over:
    dev = (" and the whole disk's sectors written (the journal and everything else on the machine included) rose by only %s B/save, "
           "%s times less than `write_bytes` (editor saves: %s B vs %s B). Every page the daemon dirtied in the window is on the "
           "disk before the window ends (journal writes are synchronous, and the checkpoint syncs), so a page-granular "
           "`write_bytes` could not exceed the device's figure: the device column is the independent check that `write_bytes` "
           "over-counts" % (
               "{:,}".format(fdwb // fn), r(fwb / fdwb) if fdwb else "-", "{:,}".format(edwb // en), "{:,}".format(ewb // en)))
elif fdwb >= 0:
    dev = (" and the whole disk's sectors written (the journal and everything else on the machine included) rose by %s B/save "
           "(editor saves: %s B)" % ("{:,}".format(fdwb // fn), "{:,}".format(edwb // en)))
folio = ("The kernel (%s) charges `write_bytes` when a clean page-cache folio first becomes dirty, "
         "by the size of the whole folio (`folio_account_dirtied()` in mm/page-writeback.c: `task_io_account_write(nr * PAGE_SIZE)`, "
         "nr = the folio's pages), and ext4 here caches a large file such as LMDB's data.mdb in large folios: one 4 KiB LMDB page "
         "written into a clean folio at a checkpoint is charged as the whole folio, while ext4 writes back only the 4 KiB blocks "
         "that are dirty (the journal's writes are direct I/O, charged exactly). " % E["R_KERNEL"])
if over:
    L.append("**Why `write_bytes` is so much larger than the other columns.** For the lone fsync'd saves the daemon passed %s B/save "
             "to write calls (`wchar`, %.1f calls/save) yet was charged %s B/save of `write_bytes`, %s times as much (editor saves: "
             "%s B passed, %s B charged)%s. %s"
             "The benchmark's own 1 KiB files sit in single-page folios, so on the bare disk `write_bytes` stays at one 4 KiB page per "
             "save (%s B; its `wchar`: %s B). So the `wchar` and device columns are the truthful ones for sigilfs: `wchar` is exactly "
             "what the daemon handed to the kernel, the device column what reached the disk; `write_bytes` is kept because the issue "
             "names it.\n" % (
                 "{:,}".format(fwch // fn), fscw / fn, "{:,}".format(fwb // fn), r(fwb / fwch) if fwch else "-",
                 "{:,}".format(ewch // en), "{:,}".format(ewb // en), dev, folio, "{:,}".format(dwb_ // dn),
                 "{:,}".format(dwch // dn)))
else:
    L.append("**`write_bytes` against the other columns.** For the lone fsync'd saves the daemon passed %s B/save to write calls "
             "(`wchar`, %.1f calls/save) and was charged %s B/save of `write_bytes`, %s times as much (editor saves: %s B passed, "
             "%s B charged)%s. %s"
             "Here that charge is small: checkpoints are few (a transaction is checkpointed in a lull after a second, or once its "
             "estimated size reaches a sixteenth of the store's map, 1 GiB at first). With a 64 MiB first map a create loop took a "
             "checkpoint every 240 files or so, and `write_bytes` of a lone fsync'd save was 12.8x where `wchar` was 5.43x "
             "(bench/results/fs.md of 7c64e39).\n" % (
                 "{:,}".format(fwch // fn), fscw / fn, "{:,}".format(fwb // fn), r(fwb / fwch) if fwch else "-",
                 "{:,}".format(ewch // en), "{:,}".format(ewb // en), dev, folio))

L.append("Notes on reading these figures (structural, not measured here):\n")
L.append("- A 1 KiB write dirties a whole 4 KiB page, so 4x is the floor of `write_bytes` per 1 KiB save on any page-cached file system "
         "(and a large folio is charged whole, above).")
L.append("- The daemon's `wchar` is not only its store's data: it includes its FUSE replies, written to /dev/fuse (a few hundred "
         "bytes per save: a reply to each request of the save, some with attributes; they never reach a disk), and LMDB's "
         "120-byte meta-page writes at checkpoints, each of which puts a whole 4 KiB block on the disk. The rest is journal "
         "blocks and LMDB's whole 4 KiB pages.")
L.append("- sigilfs is mounted with its defaults but the Git mirror off (`mirror=off`: its commits are batched and measured by "
         "`bench/mirror-bench.sh`).")
L.append("- A local change is acknowledged once it is applied to the store's open LMDB transaction. It is made durable when the "
         "burst of changes pauses for 200 us, after 5 ms at most (`sync_delay`), or at once for an fsync: the LMDB puts and "
         "deletes made since the last durable point go to the store's journal as one batch, one O_DIRECT|O_DSYNC write of whole "
         "4 KiB blocks (a 1 KiB save fits in one). The LMDB commit itself (a checkpoint: copy-on-write of every page on the "
         "root-to-leaf path of each B-tree it touches, plus a meta page, and two fdatasyncs) comes within a second and carries "
         "every change since the last one, so the saves of that second share it; the measuring window (the loop plus 1.5 s) "
         "includes it. Before the journal each fsync'd save paid such a commit alone: 10 or more pages, ~40 KB of `wchar`. The "
         "store had a %s-entry directory from the latency runs, which deepens its B-trees." % E["R_ENTRIES"])
L.append("- create, unlink and mkdir are acknowledged before they are durable, and applied to the store's open transaction on the "
         "FUSE thread itself (the store's writer thread writes journal batches without holding that transaction up), but each is "
         "still several FUSE round trips to the daemon (a create+write+close: GETATTR of the directory, LOOKUP, CREATE, WRITE, "
         "FLUSH, RELEASE; an unlink: GETATTR of the directory, UNLINK. The GETATTR comes because the kernel checks permissions "
         "(default_permissions) and a create or unlink before marked the directory's attributes stale. A "
         "write-only handle writes directly, past the page cache, which spares the GETXATTR of security.capability the "
         "kernel asks before every write through the cache), and a checkpoint (an LMDB commit, in a "
         "lull or at least every 5 s under load) holds them up while it runs: ext4 and tmpfs (and bindfs over tmpfs) only change "
         "memory until a later fsync.")
L.append("- open+read+close through any FUSE mount costs round trips to the daemon that tmpfs does not have: OPEN, and RELEASE "
         "(sent after close returns). sigilfs opens a read-only handle with FOPEN_NOFLUSH, so close sends no FLUSH; bindfs pays "
         "a FLUSH too. stat and reads of an open file are served from the kernel's caches (cache_timeout 10 s, keep_cache).")
L.append("- How far these round trips let any FUSE file system go here: `bench/fuse-floor.sh` runs the same open+read+close, "
         "create and unlink on a FUSE daemon that does no work, with sigilfs's requests and without OPEN or FLUSH "
         "([`fs-floor.md`](fs-floor.md)).")
L.append("- The virtual disk here acknowledges fsync quickly (ext4 write+fsync p50 in the table above), which makes the bare-disk "
         "editor save a hard baseline.\n")
L.append("## How it was measured\n")
L.append("- `bench/fs-bench.c` (gcc -O2) times every operation with `clock_gettime(CLOCK_MONOTONIC)`; p50 and p99 are over all samples "
         "of all threads; ops/s is the samples over the wall time between two barriers. Per thread: %s samples of stat, open+read+close, "
         "pread, create, unlink, mkdir; %s of write+fsync and of the editor save; %s readdirs of one shared %s-entry directory (created "
         "beforehand, untimed). stat, reads and the fsync'd ops get a short untimed warm-up; the files read are 1 KiB, written just before. "
         "The single-threaded runs share these out over %s rounds: %s, %s and %s per round." %
         (E["R_N"], E["R_NSYNC"], E["R_NRD"], E["R_ENTRIES"], E["R_ROUNDS"], E["R_RN"], E["R_RNSYNC"], E["R_RNRD"]))
L.append("- create: a new name each time (O_CREAT|O_EXCL), 1 KiB, close; unlink removes those files; mkdir a new name each time "
         "(removed untimed afterwards); write+fsync rewrites 1 KiB at offset 0 of a file held open; editor save writes `cfg.tmp` "
         "(O_TRUNC), fsyncs, closes and renames it over `cfg` (no directory fsync, as most editors).")
L.append("- File systems: tmpfs (mounted by the script, 1 GiB); disk: %s (`df -T`), a directory in the work dir; bindfs over "
         "another directory of the same tmpfs (%s, default options); sigilfs with its data dir on the same disk as the disk baseline "
         "(no replication configured, default options: cache_timeout 10 s)." % (E["R_DISKFS"], E["R_BINDFS"]))
L.append("- Single-threaded runs: the benchmark (`taskset -c 0`) and every thread of the daemon (`taskset -a -p -c 0 PID`, bindfs and "
         "sigilfs) on CPU 0, so the two do not wake each other across CPUs. Multi-threaded runs: nothing pinned.")
L.append("- Single-threaded: %s rounds, each running tmpfs, disk, bindfs and sigilfs one after the other (the same mounts, "
         "files and directories throughout). The 4-thread runs: one run per file system, in that order." % E["R_ROUNDS"])
L.append("- Every sample of the single-threaded runs: `%s` (one block per file system and operation, µs); plots "
         "`fs-*.png` next to this report (`bench/plot.py`)." % os.path.basename(E["R_SAMPLES"]))
L.append("")
L.append("## Machine\n")
for k, v in [("date", "R_DATE"), ("nproc", "R_NPROC"), ("model", "R_MODEL"), ("kernel", "R_KERNEL"), ("mem", "R_MEM"),
             ("load start", "R_LOAD_START"), ("load end", "R_LOAD_END"), ("disk", "R_DISKFS"), ("work dir", "R_WORK"),
             ("bindfs", "R_BINDFS"), ("compiler", "R_GCC"), ("sigilfs rev", "R_REV"), ("sigilfs sha256", "R_SHA"), ("wall", "R_WALL")]:
    L.append("- %s: %s" % (k, E[v]))
L.append("- others: %s other sigilfs daemons (not ours) were running when measuring began" % E["R_OTHERS"])
L.append("- command: `%s`" % E["R_CMD"])
open(E["R_OUT"], "w").write("\n".join(L) + "\n")

# every sample of the single-threaded runs, for the latency plots (bench/plot.py)
with open(E["R_SAMPLES"], "w") as f:
    f.write("# bench/fs-bench.sh samples, 1 thread, benchmark and daemon pinned to CPU 0: one block per series\n"
            "# (two blank lines apart), headed '# FILESYSTEM OP'; one sample a line, in microseconds, in the order taken\n\n")
    for fs in FS:
        for op, name in OPS:
            p = os.path.join(E["R_RAW"], fs, op + ".txt")
            if not os.path.exists(p):
                continue
            f.write("# %s %s\n" % (fs, op))
            for x in open(p):
                f.write("%.2f\n" % (int(x) / 1e3))
            f.write("\n\n")
EOF
say "report: $OUT"
