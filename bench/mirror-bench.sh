#!/bin/bash
# mirror-bench.sh: the Git mirror's cost against the git CLI, in one run.
#
#   sudo bench/mirror-bench.sh            # 1k, 10k and 100k files; about 2 minutes
#   BENCH_SIZES="1000 10000" BENCH_K=50 bench/mirror-bench.sh
#   BENCH_K_GIT=100 bench/mirror-bench.sh  # as many git CLI samples at 100k too
#   SIGIL_BUILD=/path/to/build bench/mirror-bench.sh   # libsigil.a of an out-of-tree build
#
# 1. Commit time for one changed file, in trees of 1k, 10k and 100k files of
#    1 KiB (1000 per directory): sigilfs's mirror (a store write, then the
#    mirror's commit of it: tree update, pack, fsync'd branch move), against
#    the git CLI doing the same in a work tree of the same files
#    (`git commit -q -a` after changing one file), K samples each (100: fewer
#    would make the p99 the largest sample). The git CLI takes about 0.6 s a
#    commit at 100k files, so there it gets BENCH_K_GIT samples (20 unless
#    set; set, it holds for every size): its p99 is then its largest sample.
# 2. Mirror lag under a steady 1,000 writes/s for 10 s into a 10k-file tree,
#    sampled every 20 ms (how long the oldest change not yet in the mirror
#    has waited).
# Writes bench/results/mirror.md and bench/results/mirror-*.dat. Cleans up
# its work dir on exit, whatever happens.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
SIZES=${BENCH_SIZES:-"1000 10000 100000"}
K=${BENCH_K:-100}
K_GIT=${BENCH_K_GIT:-}
LAG_N=${BENCH_LAG_N:-10000}
LAG_RATE=${BENCH_LAG_RATE:-1000}
LAG_SECS=${BENCH_LAG_SECS:-10}
CPU=${BENCH_CPU:-0}
OUT=$HERE/results
WORK=$(mktemp -d /tmp/sigil-mirror-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

die() { echo "mirror-bench: $*" >&2; exit 1; }

need=()
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v git >/dev/null || need+=(git)
command -v python3 >/dev/null || need+=(python3)
command -v taskset >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || die "missing ${need[*]}: run as root to install them"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed"
fi
BUILD=${SIGIL_BUILD:-$TOP}
[ -f "$BUILD/libsigil.a" ] || die "build first: make (libsigil.a is missing in $BUILD; SIGIL_BUILD names another build dir)"
cp "$BUILD/libsigil.a" "$WORK/"
gcc -O2 -std=gnu11 -pthread -I "$TOP/src" -o "$WORK/mirror-bench" "$HERE/mirror-bench.c" \
	"$WORK/libsigil.a" $(pkg-config --libs libgit2 fuse3 lmdb inih) -lnng 2>"$WORK/gcc.log" ||
	die "gcc mirror-bench.c: $(cat "$WORK/gcc.log")"
mkdir -p "$OUT"

# the git CLI baseline: a work tree of N files, K commits of one changed file
git_baseline() { # N K -> sample_ms lines
	python3 - "$1" "$2" "$WORK/git-$1" <<'PY'
import os, random, subprocess, sys, time
n, k, d = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
os.makedirs(d)
env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b",
           GIT_COMMITTER_EMAIL="b@b")
def content(i, gen):
    head = ("# file %d, generation %d\n" % (i, gen)).encode()
    return head + b"x" * (1023 - len(head)) + b"\n"
for i in range(n):
    p = os.path.join(d, "d%04d" % (i // 1000))
    if i % 1000 == 0:
        os.makedirs(p, exist_ok=True)
    with open(os.path.join(p, "f%07d.conf" % i), "wb") as f:
        f.write(content(i, 0))
run = lambda *a: subprocess.run(["git", "-C", d] + list(a), check=True, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
run("init", "-q")
run("config", "core.fsync", "all")  # the mirror fsyncs what it writes: so does the baseline
# objects staged with writeout-only flushes and made durable by one fsync at
# the end: git's fastest durable way to write many (the import's 100k)
run("config", "core.fsyncMethod", "batch")
# no `git gc --auto` after a commit: it would pack the import's loose objects in
# the background, on the same CPU, while the next commits are timed
run("config", "gc.auto", "0")
t = time.monotonic(); run("add", "-A"); run("commit", "-q", "-m", "import")
print("import_ms %.3f" % ((time.monotonic() - t) * 1000))
rnd = random.Random(42)
for g in range(1, k + 1):
    i = rnd.randrange(n)
    with open(os.path.join(d, "d%04d" % (i // 1000), "f%07d.conf" % i), "wb") as f:
        f.write(content(i, g))
    t = time.monotonic(); run("commit", "-q", "-a", "-m", "one"); 
    print("sample_ms %.3f" % ((time.monotonic() - t) * 1000))
PY
}

pct() { # file p -> value
	sort -n "$1" | awk -v p="$2" '{a[NR]=$1} END { i = int(NR * p / 100 + 0.5); if (i < 1) i = 1; if (i > NR) i = NR; print a[i] }'
}

{
	echo "# Git mirror: sigilfs against the git CLI"
	echo
	echo "Run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'),"
	echo "$(uname -sr), libgit2 $(pkg-config --modversion libgit2), $(git --version)."
	echo "Both sides pinned to CPU $CPU with taskset; both fsync what they write (the"
	echo "mirror its packs, their directory and the branch, git through core.fsync=all"
	echo "with core.fsyncMethod=batch: git's fastest durable way to write many objects)."
	echo
	echo "## One changed file, one commit ($K samples per size; git CLI: n in the table)"
	echo
	echo "sigilfs: a store write of one 1 KiB file, then the mirror commits it"
	echo "(sg_mirror_flush: tree update at the changed path, one pack, fsync, branch"
	echo "move; the folding of packs runs meanwhile in its own thread, as in the daemon)."
	echo "git CLI: \`git commit -q -a\` after changing one file in a work tree."
	echo "p50 and p99 are the samples at rank round(n x 0.5) and round(n x 0.99) of the"
	echo "sorted n: with 100 or more samples p99 is not simply the largest. The git CLI"
	echo "takes over half a second a commit at 100k files, so there it gets fewer samples"
	echo "(BENCH_K_GIT) and its p99 is its largest."
	echo
	echo "| files | import sigilfs | import git | commit p50 sigilfs | p50 git | ratio | commit p99 sigilfs | p99 git | ratio | n git | target | met? |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
} >"$WORK/report.md"

for n in $SIZES; do
	echo "== $n files" >&2
	mkdir "$WORK/s-$n"
	taskset -c "$CPU" "$WORK/mirror-bench" commit "$WORK/s-$n" "$n" "$K" >"$WORK/sig-$n.txt" ||
		die "mirror-bench commit $n failed"
	rm -rf "$WORK/s-$n"
	kg=${K_GIT:-$K}
	[ -z "$K_GIT" ] && [ "$n" -ge 100000 ] && [ "$K" -gt 20 ] && kg=20
	taskset -c "$CPU" bash -c "$(declare -f git_baseline); WORK=$WORK; git_baseline $n $kg" >"$WORK/git-$n.txt" ||
		die "git baseline $n failed"
	rm -rf "$WORK/git-$n"
	grep sample_ms "$WORK/sig-$n.txt" | awk '{print $2}' >"$OUT/mirror-commit-sigilfs-$n.dat"
	grep sample_ms "$WORK/git-$n.txt" | awk '{print $2}' >"$OUT/mirror-commit-git-$n.dat"
	si=$(awk '/import_ms/ {print $2}' "$WORK/sig-$n.txt")
	gi=$(awk '/import_ms/ {print $2}' "$WORK/git-$n.txt")
	s50=$(pct "$OUT/mirror-commit-sigilfs-$n.dat" 50) g50=$(pct "$OUT/mirror-commit-git-$n.dat" 50)
	s99=$(pct "$OUT/mirror-commit-sigilfs-$n.dat" 99) g99=$(pct "$OUT/mirror-commit-git-$n.dat" 99)
	target="-" met="-"
	if [ "$n" -ge 100000 ]; then
		target="< 10 ms"
		met=$(awk -v a="$s99" 'BEGIN { print (a < 10) ? "yes (p99)" : "no (p99)" }')
		[ "$met" = "no (p99)" ] && met=$(awk -v a="$s50" 'BEGIN { print (a < 10) ? "p50 yes, p99 no" : "no" }')
	fi
	awk -v n="$n" -v si="$si" -v gi="$gi" -v s50="$s50" -v g50="$g50" -v s99="$s99" -v g99="$g99" -v kg="$kg" -v t="$target" -v m="$met" \
		'BEGIN { printf "| %d | %.0f ms | %.0f ms | %.2f ms | %.2f ms | %.2fx | %.2f ms | %.2f ms | %.2fx | %d | %s | %s |\n", n, si, gi, s50, g50, s50 / g50, s99, g99, s99 / g99, kg, t, m }' \
		>>"$WORK/report.md"
done

echo "== lag: $LAG_RATE writes/s for $LAG_SECS s into $LAG_N files" >&2
mkdir "$WORK/lag"
"$WORK/mirror-bench" lag "$WORK/lag" "$LAG_N" "$LAG_RATE" "$LAG_SECS" >"$WORK/lag.txt" || die "mirror-bench lag failed"
awk '/^lag_ms/ {print $2}' "$WORK/lag.txt" >"$OUT/mirror-lag.dat"
rate=$(awk '/^rate/ {print $2}' "$WORK/lag.txt")
commits=$(awk '/^commits/ {print $2}' "$WORK/lag.txt")
l50=$(pct "$OUT/mirror-lag.dat" 50) l99=$(pct "$OUT/mirror-lag.dat" 99) lmax=$(pct "$OUT/mirror-lag.dat" 100)
{
	echo
	echo "## Lag under a steady write load"
	echo
	echo "4 writer threads change random files of a $LAG_N-file tree through the store at"
	echo "$LAG_RATE writes/s in all for $LAG_SECS s (achieved: $rate writes/s); the mirror runs"
	echo "at its default commit interval of 1 s and made $commits commits. Lag sampled every 20 ms."
	echo
	echo "| figure | p50 | p99 | max | target | met? |"
	echo "|---|---|---|---|---|---|"
	awk -v a="$l50" -v b="$l99" -v c="$lmax" 'BEGIN { printf "| mirror lag | %d ms | %d ms | %d ms | < 2 s | %s |\n", a, b, c, (c < 2000) ? "yes" : "no" }'
	echo
	echo "A change waits at most about one commit interval (1 s) by design: a batch"
	echo "starts one interval after the previous one started. Raw samples:"
	echo "\`mirror-commit-*.dat\`, \`mirror-lag.dat\`; plotted (commit-time CDFs and the lag over"
	echo "time) in \`mirror.png\` by \`bench/plot.py\` (the \`plots\` part of \`run-all.sh\`)."
} >>"$WORK/report.md"
cp "$WORK/report.md" "$OUT/mirror.md"
cat "$OUT/mirror.md"
