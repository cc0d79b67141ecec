#!/bin/bash
# t0110-repl-conflict.sh: the same file saved concurrently on a and c (three
# nodes over TLS). Racing saves, 8 rounds (alternately an editor-style
# rename over the file and a write in place): each round ends with one
# winner's content on all three nodes; the winner's node records no conflict;
# the loser's node records the loss (path, both nodes, stamps in order, the
# losing length) in every round where the saves were concurrent (see the
# loop for the one case without a record); at least one round records one.
# Then c is cut off
# (its own network namespace): both sides keep taking writes with no quorum,
# in a known order, and after c rejoins the later save wins everywhere and
# exactly the loser's node records it (saves by printf >, i.e. truncate and
# write, and by sed -i, i.e. a rename over the file); a delete that came
# later beats an edit, an edit that came later beats a delete. No record
# ever pits a node's change against its own earlier one.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
. "$(dirname "$0")/repl-lib.sh" || exit 99

sg_require_tools python3 openssl unshare

T=15
rl_ports 3
rl_pki a b c
PA=${RL_PORT[0]} PB=${RL_PORT[1]} PC=${RL_PORT[2]}
rl_start a "$PA" "$(rl_url "$PB");$(rl_url "$PC")" || sg_done
rl_start b "$PB" "$(rl_url "$PA");$(rl_url "$PC")" || sg_done
rl_start c "$PC" "$(rl_url "$PA");$(rl_url "$PB")" || sg_done
A=$(sg_mnt a) B=$(sg_mnt b) C=$(sg_mnt c)
mkdir "$B/race"
rl_arrives $T "race/ reaches a and c" test -d "$A/race" -a -d "$C/race"

# race.py rename|inplace PATH-ON-A CONTENT-A PATH-ON-C CONTENT-C: save both as
# close together as one process can. rename: write a temporary beside each
# (a real name of its own per node, so it replicates as editors' temporaries
# with other names do), then rename both over their files. inplace: open both, then pwrite
# both (the contents are as long as the file's, so there is no truncation),
# then close both (the close commits). Prints how many microseconds passed
# from the return of a's save (its rename or close) to the return of c's:
# the most time a's save had to reach c before c's was made.
cat >"$SG_WORK/race.py" <<'PY'
import os, sys, time
mode, pa, ca, pc, cc = sys.argv[1:6]
saves = [(pa, ca.encode()), (pc, cc.encode())]
if mode == "rename":
    tmps = []
    for p, c, who in zip(*zip(*saves), "ac"):
        t = os.path.join(os.path.dirname(p), ".%s.save-%s" % (os.path.basename(p), who))
        with open(t, "wb") as f:
            f.write(c)
        tmps.append(t)
    os.rename(tmps[0], pa)
    t0 = time.monotonic_ns()
    os.rename(tmps[1], pc)
else:
    fds = [os.open(p, os.O_WRONLY) for p, c in saves]
    for fd, (p, c) in zip(fds, saves):
        os.pwrite(fd, c, 0)
    os.close(fds[0])
    t0 = time.monotonic_ns()
    os.close(fds[1])
print((time.monotonic_ns() - t0) // 1000)
PY

conflicts=0
for ((i = 1; i <= 8; i++)); do
	mode=rename
	((i % 2 == 0)) && mode=inplace
	f=race/f-$i
	base="base of round $i, written on b"
	if [ $mode == rename ]; then
		ca="round $i from a"
		cc="round $i from c, longer"
	else
		ca="round $i from a" cc="round $i from c"
		ca+=$(printf '%*s' $((${#base} - ${#ca})) '' | tr ' ' a)
		cc+=$(printf '%*s' $((${#base} - ${#cc})) '' | tr ' ' c)
	fi
	printf '%s' "$base" >"$B/$f"
	if ! sg_wait $T eval 'rl_has "$A/$f" "$base" && rl_has "$C/$f" "$base"'; then
		fail "round $i: $f from b reaches a and c" "a: $(cat "$A/$f" 2>&1)" "c: $(cat "$C/$f" 2>&1)"
		continue
	fi
	if gap=$(python3 "$SG_WORK/race.py" $mode "$A/$f" "$ca" "$C/$f" "$cc" 2>&1); then
		ok "round $i ($mode): saves on a and c at once (c's $gap us after a's)"
	else
		fail "round $i ($mode): saves on a and c at once" "$gap"
		continue
	fi
	rl_converged $T a b c -- "round $i ($mode): all three nodes converge" || continue
	got=$(cat "$B/$f")
	if [ "$got" == "$ca" ]; then
		win=a lose=c lc=${#cc}
	elif [ "$got" == "$cc" ]; then
		win=c lose=a lc=${#ca}
	else
		fail "round $i: $f holds a's or c's save" "got: $(sg_show "$got")"
		continue
	fi
	ok "round $i ($mode): one winner everywhere: $win's save"
	if [ $mode == inplace ] && [ $win == c ] && [ "$gap" -ge 250 ] &&
		[ -n "$(rl_conflicts c "$f")" ]; then
		# a's save may have reached c while c's file was open (at least
		# 250 us, see below): c's save, based on what c opened, then
		# replaced a's unseen, and c records that, as a does
		rl_check_conflict c "$f" a c "${#ca}" \
			"round $i: the winner's node (c) records a's save, which reached it while c's file was open (c's save came $gap us later), as lost to c's"
	else
		check_eq "" "$(rl_conflicts "$win" "$f")" "round $i: the winner's node ($win) records no conflict for $f"
	fi
	# A save that never saw the other (a concurrent one) and lost must be
	# recorded where it was held. The one way a round may have no record:
	# c's save (the second) saw a's, so it replaced a's knowingly and won as
	# the later change. That needs a's save applied on c before c's is made:
	# a's commit (a lone change waits the writer's linger, 200 us by default,
	# for company), its sync, a push (a rename's even waits 150 ms) or a
	# pull, and the apply on c: 250 us at the very least. So a round without
	# a record passes only if c won and its save returned at least 250 us
	# after a's; a's winning means c's save never saw it (else it would be
	# the later one): a concurrent loss, which must be recorded on c.
	if [ -n "$(rl_conflicts "$lose" "$f")" ]; then
		conflicts=$((conflicts + 1))
		rl_check_conflict "$lose" "$f" "$lose" "$win" "$lc" \
			"round $i: $lose's record: $f, its $lc-byte save lost to $win's, stamps in order"
	elif [ $win == c ] && [ "$gap" -ge 250 ]; then
		ok "round $i: no record on a, allowed: c's save came $gap us after a's, late enough that it may have seen a's"
	else
		fail "round $i: $lose records that its concurrent save of $f lost to $win's" \
			"no record on $lose; c's save came $gap us after a's (a concurrent loss unless c won, at least 250 us later)" \
			"a's records: $(rl_conflicts a | tail -n 5)" "c's records: $(rl_conflicts c | tail -n 5)"
	fi
done
if [ $conflicts -gt 0 ]; then
	ok "racing saves recorded a conflict on the loser's node in $conflicts of 8 rounds"
else
	fail "racing saves recorded a conflict on the loser's node in at least 1 of 8 rounds" \
		"a: $(rl_conflicts a)" "c: $(rl_conflicts c)" "b: $(rl_conflicts b)"
fi
rl_check_no_self_conflicts "racing saves: no record pits a node's change against its own earlier one (e.g. on the temporaries .f-N.save-a/-c, which only one node wrote)" race/ a b c
check "a has a .sigil/conflicts file" test -f "$A/.sigil/conflicts"
check_not "the conflict record is read-only" sh -c "echo x >>'$A/.sigil/conflicts'"

# ---- c cut off: no quorum needed on either side; the later save wins
mkdir "$A/p"
for x in one two three four five; do
	printf 'before the cut: %s\n' $x >"$A/p/$x"
done
rl_converged $T a b c -- "before the cut"
sg_umount c
rl_start_cut c "$PC" "$(rl_url "$PA");$(rl_url "$PB")" || sg_done
check "cut-off c takes a write" sh -c "printf 'c alone\n' >'$C/p/c-only'"
check "a takes a write while c is cut off" sh -c "printf 'a without c\n' >'$A/p/a-only'"
rl_absent_for 2 "while cut off, c receives nothing and sends nothing" "$C/p/a-only" "$A/p/c-only" "$B/p/c-only"
# a strict order in time: each save 0.1 s after the one before
one_c="one: saved on c first"
two_a="two: saved on a first, longer than c's"
three_c="three: edited on c, then deleted on a"
printf '%s' "$one_c" >"$C/p/one"
sleep 0.1
printf '%s' "$two_a" >"$A/p/two"
rm "$A/p/four"
five_a="five: saved on a, then edited by sed -i on c"
printf '%s' "$five_a" >"$A/p/five"
sleep 0.1
printf '%s' "$three_c" >"$C/p/three"
sleep 0.1
rm "$A/p/three"
printf 'one: saved on a later' >"$A/p/one"
sleep 0.1
printf 'two: saved on c later' >"$C/p/two"
printf 'four: edited on c after a deleted it' >"$C/p/four"
sed -i 's/^before the cut: five$/five: sed -i on c, later/' "$C/p/five"
printf 'b without c\n' >"$B/p/b-only"
check_eq "" "$(rl_conflicts a p/one)$(rl_conflicts c p/one)" "no conflict is recorded while the nodes cannot see each other"
sg_umount c
rl_start c "$PC" "$(rl_url "$PA");$(rl_url "$PB")" || sg_done
rl_converged $T a b c -- "c rejoins: all three converge"
check_eq "one: saved on a later|two: saved on c later|four: edited on c after a deleted it|five: sed -i on c, later" \
	"$(cat "$B/p/one")|$(cat "$B/p/two")|$(cat "$B/p/four")|$(cat "$B/p/five")" "the later save wins on every file"
check_not "a delete later than an edit wins" test -e "$B/p/three"
check_eq "c alone|a without c|b without c" "$(cat "$A/p/c-only")|$(cat "$C/p/a-only")|$(cat "$C/p/b-only")" \
	"writes made on both sides of the cut are everywhere"
rl_check_conflict c p/one c a ${#one_c} "c records that its save of p/one lost to a's"
rl_check_conflict a p/two a c ${#two_a} "a records that its save of p/two lost to c's"
# the losing content itself is kept, at .sigil/lost/SEQ
seq=$(rl_conflicts c p/one | cut -f1)
check_eq "$one_c" "$(cat "$C/.sigil/lost/$seq" 2>&1)" "c's lost save of p/one is in .sigil/lost/$seq"
seq=$(rl_conflicts a p/two | cut -f1)
check_eq "$two_a" "$(cat "$A/.sigil/lost/$seq" 2>&1)" "a's lost save of p/two is in .sigil/lost/$seq"
check "ls .sigil/lost lists a's lost versions" sh -c "ls '$A/.sigil/lost' | grep -qx '$seq'"
check_err "Read-only file system" "a lost version cannot be written" sh -c "echo x >'$A/.sigil/lost/$seq'"
check_err "No such file or directory" "a conflict that does not exist has no lost file" cat "$A/.sigil/lost/999999"
rl_check_conflict c p/three c a ${#three_c} "c records that its edit of p/three lost to a's delete"
rl_check_conflict a p/five a c ${#five_a} "a records that its save of p/five lost to c's later sed -i (a rename over it)"
check_eq "" "$(rl_conflicts a p/one)" "a, the winner of p/one, records nothing for it"
check_eq "" "$(rl_conflicts c p/two)" "c, the winner of p/two, records nothing for it"
rl_check_no_self_conflicts "after the cut: no record pits a node's change against its own earlier one" p/ a b c
rl_absent_for 3 "p/three stays deleted" "$A/p/three" "$B/p/three" "$C/p/three"

for n in a b c; do
	sg_daemon_alive "$(rl_pid $n)" "node $n's daemon still running"
done
rl_check_stores a b c
sg_umount a
sg_umount b
sg_umount c
sg_done
