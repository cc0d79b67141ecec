#!/bin/bash
# t0310-mirror-crash.sh: kill -9 of the daemon while its mirror commits. A
# steady writer (creates, rewrites, deletes, renames of files and dirs) runs
# against one node with commit_interval=200ms; the daemon is killed, in
# rounds 1 and 5 while a pack of the mirror is being written, in round 3
# while its branch is being moved (frozen with SIGSTOP when a pack's
# temporary file, or the branch's next value written but not yet swapped in,
# is seen, killed if it is still so), in rounds 2 and 4 at a random moment
# (sg_kill9). After each restart the mirror catches
# up and HEAD's tree equals the mount; along `git log --first-parent` every
# commit holds only changes after its parent's Sigil-Version (nothing
# committed twice), each Sigil-Versions range appears once, no commit is
# empty, and `git fsck` finds nothing wrong.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99

sg_require_tools git python3 timeout
CTL=${SIGILCTL:-$(dirname "$SIGILFS")/sigilctl}
[ -x "$CTL" ] || sg_hard_error "sigilctl is not built: $CTL (set SIGILCTL)"
export GIT_CONFIG_NOSYSTEM=1 HOME=$SG_WORK

T=15 # seconds the mirror may take to catch up after a restart (well under 1 s expected)
ROUNDS=5
OPTS="commit_interval=200ms"
sg_mount a "$OPTS" || sg_done
M=$MNT D=$DATA
REPO=$D/mirror.git
g() { git --git-dir="$REPO" "$@"; }

caught_up() { # the mirror holds every store version, and the branch is its head
	local s v h
	read -r s v h <<<"$(timeout 10 "$CTL" -d "$D" status --json 2>/dev/null | python3 -c '
import json, sys
j = json.load(sys.stdin)
print(j["store"]["version"], j["mirror"]["version"], j["mirror"]["head"] or "-")' 2>/dev/null)"
	[ -n "$s" ] && [ "$s" == "$v" ] && [ "$(g rev-parse -q --verify refs/heads/a 2>/dev/null)" == "$h" ]
}

# writer.py DIR ROUND SECONDS: a steady stream of changes under DIR until the
# mount fails (the daemon was killed: exit 0 if it ran 20 iterations) or
# SECONDS pass (exit 1). Files k-* are written once and never touched again,
# so a skipped batch would show in the tree; t-* are deleted, m-* renamed,
# dirN moved into dirN+1.
cat >"$SG_WORK/writer.py" <<'PY'
import os, sys, time
d, r, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.time() + secs
i = 0
def put(path, text, sync=False):
    with open(path, "w") as f:
        f.write(text)
        if sync:
            f.flush()
            os.fsync(f.fileno())
try:
    base = os.path.join(d, "r%d" % r)
    os.makedirs(os.path.join(base, "dir0"))
    while time.time() < end:
        put(os.path.join(base, "k-%05d" % i), ("round %d file %d\n" % (r, i)) * (1 + i % 300), i % 10 == 0)
        put(os.path.join(d, "rewritten-%d" % (i % 7)), "round %d rewrite %d\n" % (r, i))
        put(os.path.join(base, "t-%05d" % i), "round %d short-lived %d\n" % (r, i))
        if i >= 3:
            os.unlink(os.path.join(base, "t-%05d" % (i - 3)))
        if i % 11 == 10:
            put(os.path.join(base, "m-%05d" % i), "round %d to be moved %d\n" % (r, i))
            if i >= 21:
                os.rename(os.path.join(base, "m-%05d" % (i - 11)), os.path.join(base, "moved-%05d" % (i - 11)))
        if i % 37 == 36:
            n = i // 37
            os.makedirs(os.path.join(base, "dir%d" % (n + 1), "sub"))
            put(os.path.join(base, "dir%d" % (n + 1), "sub", "f"), "dir %d\n" % n)
            os.rename(os.path.join(base, "dir%d" % n), os.path.join(base, "dir%d" % (n + 1), "old"))
        i += 1
except OSError as e:
    print("stopped by %s after %d iterations" % (e.strerror, i))
    sys.exit(0 if i >= 20 else 1)
print("ran out of time after %d iterations" % i)
sys.exit(1)
PY

# killer.py PID REPO WHAT SECONDS: SIGKILL PID while the mirror is in the
# middle of a batch: WHAT=pack while one of its packs is being written (a new
# temporary: tmp_sigil_pack_*, tmp_sigil_idx_* or libgit2's pack_git2_*),
# WHAT=ref while its branch is being moved (the next value is written into
# refs/heads/.a.next.lock, which is then swapped with refs/heads/a: in flight
# while the spare is newer than the ref). The daemon is frozen (SIGSTOP) when
# that is seen; if it still holds it is killed, else thawed and watched again.
# After SECONDS without a hit it is killed anyway. Prints what it hit.
cat >"$SG_WORK/killer.py" <<'PY'
import os, signal, sys, time
pid, repo, what, secs = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
packs = os.path.join(repo, "objects", "pack")
ref, spare = os.path.join(repo, "refs", "heads", "a"), os.path.join(repo, "refs", "heads", ".a.next.lock")
def state():
    with open("/proc/%d/status" % pid) as f:
        return [l.split()[1] for l in f if l.startswith("State:")][0]
def in_flight():
    if what == "ref":
        try:
            return spare if os.stat(spare).st_mtime_ns > os.stat(ref).st_mtime_ns else None
        except OSError:
            return None
    try:
        names = os.listdir(packs)
    except OSError:
        return None
    hit = [n for n in names if n.startswith(("pack_git2_", "tmp_sigil_")) and n not in stale]
    return os.path.join(packs, hit[0]) if hit else None
try:
    stale = set(os.listdir(packs))  # temporaries an earlier kill left behind
except OSError:
    stale = set()
end = time.time() + secs
time.sleep(0.3)  # let the writer get going
why = "after %.0f s: no %s write caught in flight" % (secs, what)
while time.time() < end:
    f = in_flight()
    if not f:
        continue
    os.kill(pid, signal.SIGSTOP)
    while state() != "T":
        pass
    if in_flight() == f:
        why = "while %s was being %s" % (os.path.relpath(f, repo), "swapped in" if what == "ref" else "written")
        break
    os.kill(pid, signal.SIGCONT)
os.kill(pid, signal.SIGKILL)
print(why)
PY

# check_tree MSG: HEAD's tree (and .sigil's directories) equal the mount.
check_tree() {
	local out
	if out=$(g ls-tree -r --full-tree refs/heads/a | python3 -c '
import hashlib, os, stat, sys
mnt, meta = sys.argv[1], sys.argv[2]
want = sorted(l.rstrip("\n").replace(" blob ", " ", 1) for l in sys.stdin if not l.endswith("\t.sigil\n"))
want += sorted("040000 dir\t" + l.split(" ", 4)[4].rstrip("\n") for l in meta.splitlines(True) if l.startswith("d ") and l.split(" ", 4)[4].strip() != ".")
have, dirs = [], []
for dp, dns, fns in os.walk(mnt):
    for n in dns:
        dirs.append("040000 dir\t" + os.path.relpath(os.path.join(dp, n), mnt))
    for n in fns:
        p = os.path.join(dp, n)
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            mode, data = "120000", os.readlink(p).encode()
        else:
            mode = "100755" if st.st_mode & 0o100 else "100644"
            data = open(p, "rb").read()
        oid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        have.append("%s %s\t%s" % (mode, oid, os.path.relpath(p, mnt)))
have = sorted(have) + sorted(dirs)
if want != have:
    import difflib
    print("\n".join(list(difflib.unified_diff(want, have, "HEAD", "mount", lineterm="", n=0))[:40]))
    sys.exit(1)
print(len(have), "entries")' "$M" "$(g show refs/heads/a:.sigil 2>/dev/null)" 2>&1); then
		ok "$1: HEAD's tree equals the mount ($out)"
	else
		fail "$1: HEAD's tree equals the mount" "$out"
	fi
}

# check_chain MSG: along --first-parent, oldest first: each commit has one
# Sigil-Versions F..L and one Sigil-Version U with F <= L <= U; U never goes
# down; a commit of a later batch holds only changes above its parent's U
# (nothing committed twice); each F..L appears once; no commit is empty.
check_chain() {
	local out
	if out=$(g log --first-parent --reverse \
		--format='%H %T|%(trailers:key=Sigil-Versions,valueonly,separator=%x2C)|%(trailers:key=Sigil-Version,valueonly,separator=%x2C)' \
		refs/heads/a | python3 -c '
import re, sys
errs, seen = [], {}
prev_u, prev_tree, n = None, None, 0
for line in sys.stdin:
    n += 1
    head, rng, u = line.rstrip("\n").split("|")
    h, tree = head.split()
    m = re.fullmatch(r"(\d+)\.\.(\d+)", rng)
    if not m or not re.fullmatch(r"\d+", u):
        errs.append("%s: trailers Sigil-Versions %r, Sigil-Version %r" % (h[:12], rng, u))
        continue
    f, l, u = int(m.group(1)), int(m.group(2)), int(u)
    if not f <= l <= u:
        errs.append("%s: range %d..%d, version %d" % (h[:12], f, l, u))
    if (f, l) in seen:
        errs.append("%s: range %d..%d again (first in %s)" % (h[:12], f, l, seen[(f, l)]))
    seen[(f, l)] = h[:12]
    if prev_u is not None and u < prev_u:
        errs.append("%s: Sigil-Version %d after %d" % (h[:12], u, prev_u))
    if prev_u is not None and u != prev_u and f <= prev_u:
        errs.append("%s: holds version %d, already in its parent (up to %d)" % (h[:12], f, prev_u))
    if tree == prev_tree:
        errs.append("%s: an empty commit (same tree as its parent)" % h[:12])
    prev_u, prev_tree = u, tree
if errs:
    print("\n".join(errs[:30]))
    sys.exit(1)
print("%d commits, up to version %d" % (n, prev_u or 0))' 2>&1); then
		ok "$1: no commit duplicated or empty, versions in order ($out)"
	else
		fail "$1: no commit duplicated or empty, versions in order" "$out"
	fi
}

check_fsck() {
	local out rc
	out=$(g fsck --full --no-dangling 2>&1)
	rc=$?
	if [ $rc -eq 0 ] && ! grep -qiE 'error|missing|broken|corrupt|bad' <<<"$out"; then
		ok "$1: git fsck --full on the mirror is clean"
	else
		fail "$1: git fsck --full on the mirror is clean" "exit $rc" "$out"
	fi
}

printf 'before any crash\n' >"$M/base"
sg_wait $T caught_up && ok "the first commits are made" || fail "the first commits are made"

mkdir "$M/w"
for ((r = 1; r <= ROUNDS; r++)); do
	python3 "$SG_WORK/writer.py" "$M/w" $r 8 >"$SG_WORK/writer-$r.out" 2>&1 &
	wpid=$!
	# the stream is under way (python can be slow to start on a busy machine)
	sg_wait 10 test -e "$M/w/r$r/k-00020" || fail "round $r: the writer makes progress within 10 s"
	if ((r % 2)); then
		# precise: while a pack (rounds 1, 5) or the branch (round 3) is being written
		why=$(timeout 20 python3 "$SG_WORK/killer.py" "$PID" "$REPO" "$( ((r % 4 == 3)) && echo ref || echo pack)" 6 2>&1)
		if sg_wait 10 sg_dead "$PID"; then
			ok "round $r: kill -9 daemon $PID $why"
		else
			fail "round $r: kill -9 daemon $PID: it dies"
		fi
		timeout 15 tail --pid=$wpid -f /dev/null
		timeout 20 fusermount3 -uz "$M" >/dev/null 2>&1
		sg_wait 10 sg_unmounted "$M" && ok "round $r: its dead mount is gone (fusermount3 -uz)" ||
			fail "round $r: fusermount3 -uz of the dead mount"
	else
		# at a random moment of the stream (0.5 to 2 s in)
		sleep "$(python3 -c 'import random; print(round(random.uniform(0.5, 2), 2))')"
		sg_kill9 a
	fi
	timeout 15 tail --pid=$wpid -f /dev/null
	wait $wpid
	check_eq 0 $? "round $r: the writer ran until the kill ($(cat "$SG_WORK/writer-$r.out"))"
	sg_mount a "$OPTS" || sg_done
	M=$MNT
	if sg_wait $T caught_up; then
		ok "round $r: after the restart the mirror catches up"
	else
		fail "round $r: after the restart the mirror catches up within $T s" \
			"$(timeout 10 "$CTL" -d "$D" status 2>&1 | grep -E '^(store|mirror) ')" \
			"left in the mirror: $(cd "$REPO" && find . -name '*.lock' -o -name 'pack_git2_*' -o -name 'tmp_sigil_*' | tr '\n' ' ')"
		check_tree "round $r"
		break # the later rounds cannot tell more
	fi
	check_tree "round $r"
	check_chain "round $r"
done

check_fsck "after the kills"
check_eq "before any crash" "$(g show refs/heads/a:base 2>&1)" "the file written before the first kill is in HEAD"
out=$(timeout 60 "$CTL" -d "$D" check 2>&1)
check_eq 0 $? "sigilctl check: the store is consistent ($out)"
sg_umount a
check_chain "after the last unmount"
check_fsck "after the last unmount"
sg_done
