#!/bin/bash
# t0120-repl-crash.sh: three nodes over TLS. b is killed with SIGKILL while a
# and c create, rewrite and delete files (and right after b saved a file of
# its own with fsync); a and c go on, b restarts on the same data dir and
# catches up, and its own save reaches the others. c is frozen (SIGSTOP)
# while a and b write, delete files and a whole dir and rename a dir; a and
# b still replicate between themselves; after SIGCONT c converges and what
# was deleted stays deleted. b and c frozen together: a alone still takes
# every write at once (no quorum), and all converge after SIGCONT.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
. "$(dirname "$0")/repl-lib.sh" || exit 99

sg_require_tools python3 openssl timeout

T=15
rl_ports 3
rl_pki a b c
PA=${RL_PORT[0]} PB=${RL_PORT[1]} PC=${RL_PORT[2]}
peers_of() { # NAME: the URLs of the other two
	local n u=()
	for n in a b c; do
		[ "$n" == "$1" ] || u+=("$(rl_url "${RL_PORT_OF[$n]}")")
	done
	local IFS=';'
	printf '%s' "${u[*]}"
}
RL_PORT_OF=([a]=$PA [b]=$PB [c]=$PC)
for n in a b c; do
	rl_start $n "${RL_PORT_OF[$n]}" "$(peers_of $n)" || sg_done
done
A=$(sg_mnt a) B=$(sg_mnt b) C=$(sg_mnt c)

# writer.py DIR PREFIX N: create N files (2 ms apart), rewrite every 5th
# file's predecessor, delete every 7th file's predecessor; bounded by N and
# by 40 s. Exits 0 if every operation succeeded.
cat >"$SG_WORK/writer.py" <<'PY'
import os, sys, time
d, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
end = time.time() + 40
for i in range(n):
    if time.time() > end:
        sys.exit("out of time at %d" % i)
    with open(os.path.join(d, "%s-%04d" % (prefix, i)), "w") as f:
        f.write("%s %d v1\n" % (prefix, i) * (1 + i % 50))
        f.flush()
        os.fsync(f.fileno())
    if i % 5 == 4:
        with open(os.path.join(d, "%s-%04d" % (prefix, i - 1)), "a") as f:
            f.write("rewritten\n")
    if i % 7 == 6:
        os.unlink(os.path.join(d, "%s-%04d" % (prefix, i - 2)))
    time.sleep(0.002)
PY

# ---- SIGKILL of b in the middle of the stream
mkdir "$A/w"
rl_arrives $T "w/ reaches b and c" test -d "$B/w" -a -d "$C/w"
python3 "$SG_WORK/writer.py" "$A/w" a 400 >"$SG_WORK/wa.out" 2>&1 &
WA=$!
python3 "$SG_WORK/writer.py" "$C/w" c 400 >"$SG_WORK/wc.out" 2>&1 &
WC=$!
count_b() { [ "$(ls "$B/w" 2>/dev/null | wc -l)" -ge "$1" ]; }
rl_arrives $T "b receives the writers' first 40 files" count_b 40
check "b saves a file of its own with fsync" python3 -c '
import os, sys
with open(sys.argv[1], "w") as f:
    f.write("saved on b just before its SIGKILL\n"); f.flush(); os.fsync(f.fileno())' "$B/b-before-kill"
sg_kill9 b
wait $WA
rc=$?
check_eq "0:" "$rc:$(cat "$SG_WORK/wa.out")" "the writer on a runs to its end while b is dead"
wait $WC
rc=$?
check_eq "0:" "$rc:$(cat "$SG_WORK/wc.out")" "the writer on c runs to its end while b is dead"
printf 'written while b was dead\n' >"$A/while-dead"
rm "$A/w/a-0001" "$C/w/c-0003"
rl_converged $T a c -- "a and c converge while b is dead"
rl_start b "$PB" "$(peers_of b)" || sg_done
rl_converged 30 a b c -- "b, restarted on its data dir, catches up: all three converge"
check_eq "saved on b just before its SIGKILL" "$(cat "$C/b-before-kill" 2>&1)" \
	"b's own last save before the SIGKILL reached c"
check_eq "rewritten" "$(tail -n 1 "$B/w/c-0398" 2>&1)" "b holds c's rewrite of c-0398"
check_not "b holds a's delete of a-0001 (made while b was dead)" test -e "$B/w/a-0001"
check_not "b holds c's delete of c-0004 (made by the writer)" test -e "$B/w/c-0004"

# ---- SIGSTOP of c while a and b write and delete
mkdir -p "$A/s/deldir/sub" "$A/s/mvdir"
for ((i = 0; i < 40; i++)); do
	printf 'keep %d\n' $i >"$A/s/keep-$i"
	printf 'del %d\n' $i >"$A/s/del-$i"
done
printf 'x\n' >"$A/s/deldir/sub/f"
printf 'y\n' >"$A/s/mvdir/f"
rl_converged $T a b c -- "before c is frozen"
rl_sigstop c
deleted=()
for ((i = 0; i < 40; i++)); do
	if ((i % 2)); then
		rm "$A/s/del-$i"
	else
		rm "$B/s/del-$i"
	fi
	deleted+=("s/del-$i")
	printf 'keep %d, edited while c was frozen\n' $i >"$B/s/keep-$i"
	printf 'new %d\n' $i >"$A/s/new-$i"
done
rm -r "$B/s/deldir"
deleted+=(s/deldir)
mv "$A/s/mvdir" "$A/s/mvdir2"
deleted+=(s/mvdir)
rl_converged $T a b -- "a and b replicate between themselves while c is frozen"
rl_sigcont c
rl_converged 30 a b c -- "c, thawed, converges"
paths=()
for p in "${deleted[@]}"; do
	paths+=("$A/$p" "$B/$p" "$C/$p")
done
rl_absent_for 3 "the 40 files, the dir and the renamed dir deleted while c was frozen stay deleted on all three" "${paths[@]}"
check_eq "keep 7, edited while c was frozen|new 7|y" \
	"$(cat "$C/s/keep-7" 2>&1)|$(cat "$C/s/new-7" 2>&1)|$(cat "$C/s/mvdir2/f" 2>&1)" \
	"c holds the edits, creates and the rename made while it was frozen"
rl_converged $T a b c -- "still converged after that"

# ---- b and c frozen: a alone takes writes at once
rl_sigstop b
rl_sigstop c
check "a alone (b and c frozen) creates, edits, deletes and renames without waiting for them" \
	timeout 10 sh -c "mkdir '$A/alone' && printf 'alone\n' >'$A/alone/f' && printf 'edit\n' >>'$A/s/keep-0' &&
		rm '$A/s/keep-1' && mv '$A/s/keep-2' '$A/alone/keep-2' &&
		python3 -c 'import os, sys; os.fsync(os.open(sys.argv[1], os.O_RDWR))' '$A/alone/f'"
rl_sigcont b
rl_sigcont c
rl_converged 30 a b c -- "b and c, thawed, converge with what a wrote alone"
check_eq "alone" "$(cat "$B/alone/f" 2>&1)" "a's lone write is on b"
rl_absent_for 2 "a's lone delete holds on all three" "$A/s/keep-1" "$B/s/keep-1" "$C/s/keep-1"

for n in a b c; do
	sg_daemon_alive "$(rl_pid $n)" "node $n's daemon still running"
done
rl_check_stores a b c
sg_umount a
sg_umount b
sg_umount c
sg_done
