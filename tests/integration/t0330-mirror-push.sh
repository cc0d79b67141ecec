#!/bin/bash
# t0330-mirror-push.sh: the mirror pushes its branch to remote=URL. Two
# nodes (tcp://) push to one bare repository (file://): it ends with
# refs/heads/a and refs/heads/b, each equal to that node's mirror branch.
# A remote that does not exist yet (node c) or sits on a read-only file
# system (node d): writes to the mount go on at full speed, the mirror keeps
# committing locally, pushes fail and back off; once the remote is there
# (git init --bare; remount rw) the branch arrives within the backoff. A
# remote that accepts the connection and never answers (node h, ssh:// to a
# listener that stays silent): writes, the local mirror and the unmount must
# not wait for it.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
# whole allocation stacks, so that tests/lsan.supp can tell libgit2's own
# leaks on a failed push from any of ours
export ASAN_OPTIONS="fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
. "$(dirname "$0")/repl-lib.sh" || exit 99

sg_require_tools git python3 timeout mount umount
CTL=${SIGILCTL:-$(dirname "$SIGILFS")/sigilctl}
[ -x "$CTL" ] || sg_hard_error "sigilctl is not built: $CTL (set SIGILCTL)"
export GIT_CONFIG_NOSYSTEM=1 HOME=$SG_WORK

T=15
BACKOFF_WAIT=70 # the backoff starts at 1 s and doubles; the remote comes back after about 2 s
RL_SCHEME=tcp
rl_ports 3
PA=${RL_PORT[0]} PB=${RL_PORT[1]} PH=${RL_PORT[2]}
MOPT="commit_interval=200ms"

json_field() { # NODE PYTHON-EXPR-ON-j
	timeout 10 "$CTL" -d "$(sg_data "$1")" status --json 2>/dev/null |
		python3 -c "import json, sys; j = json.load(sys.stdin); print($2)" 2>/dev/null
}
# caught_up NODE: its mirror holds its whole store, and its branch is that head.
caught_up() {
	local s v h
	read -r s v h <<<"$(json_field "$1" '"%d %d %s" % (j["store"]["version"], j["mirror"]["version"], j["mirror"]["head"] or "-")')"
	[ -n "$s" ] && [ "$s" == "$v" ] && [ "$(branch_of "$1")" == "$h" ]
}
branch_of() { git --git-dir="$(sg_data "$1")/mirror.git" rev-parse -q --verify "refs/heads/$1" 2>/dev/null; }
# pushed NODE REMOTE-DIR: the remote's refs/heads/NODE is NODE's mirror branch.
pushed() {
	local mine
	mine=$(branch_of "$1")
	[ -n "$mine" ] && [ "$(git --git-dir="$2" rev-parse -q --verify "refs/heads/$1" 2>/dev/null)" == "$mine" ]
}
push_failures_at_least() { # NODE N
	local f
	f=$(json_field "$1" 'j["mirror"]["push_failures"]')
	[ -n "$f" ] && [ "$f" -ge "$2" ]
}

# writes.py DIR N: N files written (open, write, close), then one fsync'd;
# prints "N writes in S s, slowest M ms"; exit 1 on any error.
cat >"$SG_WORK/writes.py" <<'PY'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
t0 = time.monotonic()
worst = 0.0
for i in range(n):
    t = time.monotonic()
    with open(os.path.join(d, "f-%04d" % i), "w") as f:
        f.write("write %d\n" % i * 20)
        if i == n - 1:
            f.flush()
            os.fsync(f.fileno())
    worst = max(worst, time.monotonic() - t)
total = time.monotonic() - t0
print("%d writes in %.2f s, slowest %d ms" % (n, total, worst * 1000))
sys.exit(0 if total < 15 and worst < 1.0 else 1)
PY

# ---- two nodes, one remote
REMOTE=$SG_WORK/remote.git
git init -q --bare "$REMOTE" || sg_hard_error "git init --bare $REMOTE"
rl_start a "$PA" "$(rl_url "$PB")" "$MOPT,remote=file://$REMOTE" || sg_done
rl_start b "$PB" "$(rl_url "$PA")" "$MOPT,remote=file://$REMOTE" || sg_done
A=$(sg_mnt a) B=$(sg_mnt b)
mkdir -p "$A/etc" && printf 'from a\n' >"$A/etc/a.conf"
rl_arrives $T "etc/ reaches b" test -d "$B/etc"
printf 'from b\n' >"$B/etc/b.conf"
chmod 600 "$B/etc/b.conf"
rl_converged $T a b -- "a's and b's writes converge"
for n in a b; do
	rl_arrives $T "node $n's mirror catches up" caught_up $n
	rl_arrives $T "the remote's refs/heads/$n equals node $n's mirror branch" pushed $n "$REMOTE"
done
check_eq "refs/heads/a refs/heads/b" "$(git --git-dir="$REMOTE" for-each-ref --format='%(refname)' | sort | xargs)" \
	"the remote holds exactly one branch per node"
check_eq "$(git --git-dir="$(sg_data a)/mirror.git" rev-parse 'refs/heads/a^{tree}')" \
	"$(git --git-dir="$REMOTE" rev-parse 'refs/heads/b^{tree}' 2>&1)" "both branches in the remote hold the same tree"
check_eq "from b" "$(git --git-dir="$REMOTE" show refs/heads/a:etc/b.conf 2>&1)" "a's branch in the remote has b's file"
check_eq "a b" "$(git --git-dir="$REMOTE" log -1 --format='%an %cn' refs/heads/b -- etc/a.conf 2>&1)" \
	"in the remote's b branch, a's file: author a (its origin), committer b (the mirroring node)"
check_eq "b a" "$(git --git-dir="$REMOTE" log -1 --format='%an %cn' refs/heads/a -- etc/b.conf 2>&1)" \
	"in the remote's a branch, b's file: author b, committer a"
check "git fsck on the remote is clean" git --git-dir="$REMOTE" fsck --no-dangling
check_eq "0" "$(json_field a 'j["mirror"]["push_failures"]')" "node a: no failed push"
pushes=$(json_field a 'j["mirror"]["pushes"]')
[ "${pushes:-0}" -ge 1 ] && ok "node a's status counts $pushes pushes" || fail "node a's status counts pushes" "pushes: '$pushes'"
printf 'later\n' >"$A/etc/later.conf"
rl_converged $T a b -- "a later write converges"
for n in a b; do
	rl_arrives $T "after the later write, node $n's mirror catches up" caught_up $n
	rl_arrives $T "... and the remote's refs/heads/$n follows" pushed $n "$REMOTE"
done
check_eq "later" "$(git --git-dir="$REMOTE" show refs/heads/b:etc/later.conf 2>&1)" "the remote's b branch has the later file"

# ---- a remote that is not there yet (c), one on a read-only file system (d)
LATER=$SG_WORK/later/remote.git
RO=$SG_WORK/rofs
mkdir -p "$RO" && mount -t tmpfs -o size=16m tmpfs "$RO" || sg_hard_error "mount a tmpfs on $RO"
git init -q --bare "$RO/remote.git" && mount -o remount,ro "$RO" || sg_hard_error "a read-only bare repository"
sg_mount c "$MOPT,remote=file://$LATER" || sg_done
sg_mount d "$MOPT,remote=file://$RO/remote.git" || sg_done
for n in c d; do
	out=$(timeout 60 python3 "$SG_WORK/writes.py" "$(sg_mnt $n)/w" 200 2>&1)
	check_eq 0 $? "node $n (remote $( [ $n == c ] && echo missing || echo read-only)): writes at full speed ($out)"
	rl_arrives $T "node $n: the mirror commits locally all the same" caught_up $n
	rl_arrives $T "node $n: its pushes fail and are retried (2 failures counted)" push_failures_at_least $n 2
done
check_eq "0|0" "$(json_field c 'j["mirror"]["pushes"]')|$(json_field d 'j["mirror"]["pushes"]')" "no push succeeded yet"
check_eq "" "$(git --git-dir="$RO/remote.git" for-each-ref)" "the read-only remote has no branch"
# the remotes come back
mkdir -p "$SG_WORK/later" && git init -q --bare "$LATER" || sg_hard_error "git init --bare $LATER"
mount -o remount,rw "$RO" || sg_hard_error "remount $RO rw"
t0=$SECONDS
rl_arrives $BACKOFF_WAIT "node c's branch arrives once the remote exists" pushed c "$LATER"
rl_arrives $BACKOFF_WAIT "node d's branch arrives once the remote is writable" pushed d "$RO/remote.git"
printf '# both branches arrived %d s after the remotes came back\n' $((SECONDS - t0))
printf 'after\n' >"$(sg_mnt c)/after"
rl_arrives $T "node c: a new commit is pushed promptly (the backoff was reset)" \
	sh -c "git --git-dir='$LATER' show refs/heads/c:after >/dev/null 2>&1"
check "git fsck on c's remote is clean" git --git-dir="$LATER" fsck --no-dangling
sg_umount c
sg_umount d

# ---- a remote that hangs: ssh:// to a listener that never says a word
python3 - "$PH" >"$SG_WORK/silent.out" 2>&1 <<'PY' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
held = []
while True:
    c, _ = s.accept()
    held.append(c)  # accept, never answer
PY
SILENT=$!
listening() { python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$PH" 2>/dev/null; }
sg_wait 10 listening || sg_hard_error "the silent listener on port $PH"
sg_mount h "$MOPT,remote=ssh://git@127.0.0.1:$PH/x.git" || sg_done
H=$(sg_mnt h)
HPID=$PID
out=$(timeout 60 python3 "$SG_WORK/writes.py" "$H/w" 200 2>&1)
check_eq 0 $? "node h (remote hangs): writes at full speed ($out)"
if sg_wait 10 caught_up h; then
	ok "node h: the mirror keeps committing locally while the remote hangs"
else
	fail "node h: the mirror keeps committing locally while the remote hangs (within 10 s)" \
		"status: $(timeout 10 "$CTL" -d "$(sg_data h)" status 2>&1 | grep -E '^(store|mirror) ')"
fi
timeout 20 fusermount3 -u "$H"
if sg_wait 10 sg_dead "$HPID"; then
	ok "node h: unmounted, the daemon exits within 10 s though the remote hangs"
else
	fail "node h: unmounted, the daemon exits within 10 s though the remote hangs" \
		"daemon $HPID still running $(ps -o etime= -p "$HPID") after the unmount"
fi
kill "$SILENT" 2>/dev/null
wait "$SILENT" 2>/dev/null
sg_wait 20 sg_dead "$HPID" || fail "node h's daemon exits once the silent remote closes"

rl_check_stores a b
sg_umount a
sg_umount b
sg_done
