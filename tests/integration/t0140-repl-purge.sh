#!/bin/bash
# t0140-repl-purge.sh: tombstone purge and snapshot catch-up, three nodes
# over TLS with tombstone_grace=20s. A node cut off purges nothing (it may be
# the one cut off). A peer that has not yet pulled a tombstone holds its
# purge back while it is within the grace (c frozen), and lets it go once it
# has it. A node cut off for longer than the grace while files are deleted
# and purged elsewhere comes back (restart), takes a snapshot, drops the
# deleted files instead of bringing them back, and what it wrote while away
# replicates. A node frozen (SIGSTOP) past a purge catches up the same way
# when thawed.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
. "$(dirname "$0")/repl-lib.sh" || exit 99

sg_require_tools python3 openssl timeout unshare ip

T=15
G=20 # tombstone_grace, seconds: the hold-back check below must fit in it, after a restart of b
# (it took 3-7 s here, once 14 s on a loaded machine: 12 s was too tight)
CTL=${SIGILCTL:-$(dirname "$SIGILFS")/sigilctl}
rl_ports 3
rl_pki a b c
RL_PORT_OF=([a]=${RL_PORT[0]} [b]=${RL_PORT[1]} [c]=${RL_PORT[2]})
peers_of() { # NAME: the URLs of the other two
	local n u=()
	for n in a b c; do
		[ "$n" == "$1" ] || u+=("$(rl_url "${RL_PORT_OF[$n]}")")
	done
	local IFS=';'
	printf '%s' "${u[*]}"
}
start() { # NAME [cut]: (re)start node NAME, cut off from the others with "cut"
	local f=rl_start
	[ "${2:-}" == cut ] && f=rl_start_cut
	$f "$1" "${RL_PORT_OF[$1]}" "$(peers_of "$1")" "tombstone_grace=${G}s"
}
for n in a b c; do
	start $n || sg_done
done
A=$(sg_mnt a) B=$(sg_mnt b) C=$(sg_mnt c)

# gc NAME: run `sigilctl gc` on node NAME; its output in GC, exit status in GC_RC
gc() {
	GC=$(timeout 30 "$CTL" -d "$(sg_data "$1")" gc 2>&1)
	GC_RC=$?
}
# gc_field NAME: the rest of the line of $GC that starts with NAME
gc_field() {
	sed -n "s/^$1 *//p" <<<"$GC"
}
# purged_all NAME: node NAME's gc leaves no tombstone and has a horizon (for sg_wait)
purged_all() {
	gc "$1"
	[ $GC_RC -eq 0 ] && [ "$(gc_field tombstones)" == "0 left" ] &&
		[[ $(gc_field horizon) == "version "[1-9]* ]]
}
# purges NAME MSG: one check that within G + T seconds node NAME purges every
# tombstone; on failure its last gc output (which peer holds the purge back)
# and every node's view of its peers are the evidence
purges() {
	if sg_wait $((G + T)) purged_all "$1"; then
		ok "$2"
	else
		fail "$2 (within $((G + T)) s)" "gc on $1: $(tr '\n' ';' <<<"$GC")" "$(rl_peers_evidence)"
	fi
}
# repl_stat NAME KEY: a counter of node NAME's status --json replication object
repl_stat() {
	timeout 30 "$CTL" -d "$(sg_data "$1")" status --json 2>/dev/null |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["replication"][sys.argv[1]])' "$2"
}

mkdir -p "$A/del/sub"
printf 'f1\n' >"$A/del/f1"
printf 'f2\n' >"$A/del/sub/f2"
printf 'gone\n' >"$A/gone"
printf 'keep\n' >"$A/keep"
printf 'old\n' >"$A/old-del"
printf 'z1\n' >"$A/z1"
rl_converged $T a b c -- "the tree is on all three"

# ---- a node cut off purges nothing; a peer within the grace without the tombstone holds it
sg_umount b
start b cut || sg_done
rm "$B/old-del"
sleep $((G + 1)) # b's tombstone is older than the grace now, and b has heard from nobody
gc b
check_eq "0|1 left" "$GC_RC|$(gc_field tombstones)" \
	"b, cut off past the grace, keeps its tombstone (gc: $(tr '\n' ';' <<<"$GC"))"
check "b's gc says why: no peer heard from within the grace" \
	grep -q '^waiting *no peer heard from within the grace' <<<"$GC"
rl_sigstop c
STOPPED=$SECONDS
sg_umount b
start b || sg_done
rl_arrives $T "a takes b's delete, made while b was cut off" rl_gone "$A/old-del"
held_by_c() { # a's gc keeps the one tombstone and names c as what holds it
	gc a
	[ $GC_RC -eq 0 ] && [ "$(gc_field tombstones)" == "1 left" ] &&
		grep -q "^held *at version [0-9]* by node $(rl_node_id c)\$" <<<"$GC"
}
# (b, just back, holds it too until it has pulled from a twice: a puller's
# cursor is where its pull started, and pulls come every second, later on a
# busy machine; all within c's grace, as checked below)
if sg_wait 10 held_by_c; then
	ok "a keeps the tombstone c lacks, though older than the grace; its gc names c ($((SECONDS - STOPPED))s after c froze)"
else
	fail "a keeps the tombstone c lacks, though older than the grace; its gc names c" \
		"gc on a, $((SECONDS - STOPPED))s after c froze:" "$GC"
fi
[ $((SECONDS - STOPPED)) -lt $G ] || fail "the hold-back check above ran within the grace after c froze" \
	"it ran $((SECONDS - STOPPED))s after, the grace is ${G}s: too slow a machine for this check"
rl_sigcont c
rl_arrives $T "c takes the delete once thawed" rl_gone "$C/old-del"
purges a "once every peer has it, a purges the tombstone"
check_eq "0" "$(repl_stat c snapshots_received)" "c needed no snapshot for that"

# ---- c cut off past the grace while a deletes; c writes meanwhile
sg_umount c
start c cut || sg_done
rm -r "$A/del"
rm "$A/gone"
printf 'written on c while away\n' >"$C/while-away"
mkdir "$C/away-dir"
printf 'in a dir made on c while away\n' >"$C/away-dir/f"
rl_converged $T a b -- "a and b converge without c"
purges a "a purges the deletes' tombstones (c, silent past the grace, holds nothing back)"
gc a
check "a's gc counts them purged: 5 (4 for del/, 1 for gone), and old-del's before" python3 -c '
import re, sys
m = re.search(r"^purged +\d+ tombstones now, (\d+) since start$", sys.argv[1], re.M)
assert m and int(m.group(1)) >= 6, sys.argv[1]' "$GC"
purges b "b purges them too"
sg_umount c
start c || sg_done
rl_converged 30 a b c -- "c, back, converges with a and b"
paths=()
for n in a b c; do
	paths+=("$(sg_mnt $n)/del" "$(sg_mnt $n)/gone")
done
rl_absent_for 3 "what a deleted while c was away stays deleted on all three" "${paths[@]}"
check_eq "written on c while away|in a dir made on c while away" \
	"$(cat "$A/while-away" 2>&1)|$(cat "$B/away-dir/f" 2>&1)" \
	"what c wrote while away reached a and b"
check "c took a snapshot and dropped the deleted entries there" python3 -c '
import sys
got, dropped = int(sys.argv[1]), int(sys.argv[2])
assert got >= 1 and dropped >= 5, (got, dropped)' \
	"$(repl_stat c snapshots_received)" "$(repl_stat c snapshot_dropped)"
check "a served a snapshot" test "$(repl_stat a snapshots_served)" -ge 1

# ---- c frozen past a purge, then thawed (no restart): its cursor is behind the horizon
# (c pulls from a and from b, with a cursor into each one's log, and each
# purged: the first pull from either gets a snapshot. Which one is a race,
# and a's push of the delete, sent to c's socket before it froze and read
# when it thaws, can move c's cursor into a's log past a's horizon first:
# then only b serves one)
RECV_BEFORE=$(repl_stat c snapshots_received)
rl_sigstop c
rm "$A/z1"
purges a "a purges z1's tombstone while c is frozen"
purges b "b purges it too"
SERVED_BEFORE=$(($(repl_stat a snapshots_served) + $(repl_stat b snapshots_served)))
rl_sigcont c
rl_converged 30 a b c -- "c, thawed, converges"
rl_absent_for 3 "z1 stays deleted on all three" "$A/z1" "$B/z1" "$C/z1"
check "c took a snapshot from a or b (its cursors were behind their purge horizons)" python3 -c '
import sys
recv, recv0, served, served0 = map(int, sys.argv[1:])
assert recv > recv0 and served > served0, (recv, recv0, served, served0)' \
	"$(repl_stat c snapshots_received)" "$RECV_BEFORE" \
	"$(($(repl_stat a snapshots_served) + $(repl_stat b snapshots_served)))" "$SERVED_BEFORE"
check_eq "keep" "$(cat "$C/keep" 2>&1)" "c still holds what was not deleted"

for n in a b c; do
	sg_daemon_alive "$(rl_pid $n)" "node $n's daemon still running"
done
rl_check_stores a b c
sg_umount a
sg_umount b
sg_umount c
sg_done
