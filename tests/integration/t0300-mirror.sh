#!/bin/bash
# t0300-mirror.sh: the Git mirror of one node, read with the git CLI only.
# Writes, an edit by vim -Es and by sed -i, chmod 600, chown to nobody, a
# user.x xattr, a symlink, an executable script, an empty directory, chmod
# 700 and a user.* xattr on the mount point itself, a delete, a file rename
# and a directory rename: once the mirror has caught
# up, `git log` names each path with its operation, the origin node and a
# time, the author is the node; `git log -p FILE`, `git blame` and
# `git diff REV1 REV2` say what happened; HEAD's tree equals the mount file
# by file (content, executable bit, symlink targets) and its .sigil file
# holds the rest (every directory, exact modes, owners, xattrs). Editor
# temporaries and the /.sigil status files never enter a commit; a quiet
# mount makes no commits; unmounting commits the last batch.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99

sg_require_tools git python3 vim sed setfattr getfattr tar diff timeout
CTL=${SIGILCTL:-$(dirname "$SIGILFS")/sigilctl}
[ -x "$CTL" ] || sg_hard_error "sigilctl is not built: $CTL (set SIGILCTL)"
export GIT_CONFIG_NOSYSTEM=1 HOME=$SG_WORK

T=15 # seconds the mirror may take to catch up (a commit every second expected)
START=$(date +%s)
# 1s, not shorter: a burst after a quiet spell gathers interval/5, and vim's
# save (rename the file to its backup, write a new one) must fall in one
# commit even when the daemon stalls (a checkpoint under a sanitizer build)
sg_mount a "commit_interval=1s" || sg_done
M=$MNT D=$DATA
REPO=$D/mirror.git
g() { git --git-dir="$REPO" "$@"; }

# mirror_state DATA: "STORE-VERSION MIRROR-VERSION MIRROR-HEAD" from status --json.
mirror_state() {
	timeout 10 "$CTL" -d "$1" status --json 2>/dev/null | python3 -c '
import json, sys
j = json.load(sys.stdin)
print(j["store"]["version"], j["mirror"]["version"], j["mirror"]["head"] or "-")'
}
# caught_up DATA REPO BRANCH: the mirror holds every store version, the
# branch is the head it reports, and that commit's Sigil-Version trailer is
# not beyond the store (trailing local-only changes make no commit).
caught_up() {
	local s v h tv
	read -r s v h <<<"$(mirror_state "$1")" || return 1
	[ -n "$s" ] && [ "$s" == "$v" ] || return 1
	[ "$(git --git-dir="$2" rev-parse -q --verify "$3" 2>/dev/null)" == "$h" ] || return 1
	tv=$(git --git-dir="$2" log -1 --format='%(trailers:key=Sigil-Version,valueonly)' "$3" 2>/dev/null)
	[ -n "$tv" ] && [ "$tv" -le "$s" ]
}
# wait_mirror MSG: one check that node a's mirror catches up within T s.
wait_mirror() {
	if sg_wait $T caught_up "$D" "$REPO" refs/heads/a; then
		ok "$1: the mirror caught up (store version $(mirror_state "$D" | cut -d' ' -f1))"
	else
		fail "$1: the mirror catches up within $T s" "status: $(mirror_state "$D")" \
			"branch: $(g log -1 --format='%H %(trailers:key=Sigil-Version,valueonly)' refs/heads/a 2>&1)"
	fi
}

# tree_check.py EXTRACTED META MOUNT: HEAD's tree (extracted) plus its .sigil
# against the mount: one line per path, the mount point itself included (type,
# exact mode, owner, content hash or link target, user.* xattrs) on each side;
# prints the diff, exit 1 if any.
cat >"$SG_WORK/tree_check.py" <<'PY'
import difflib, hashlib, os, re, stat, sys
tree, meta, mnt = sys.argv[1:4]

def unesc(s):
    return re.sub(r"\\(\\|n|x[0-9a-fA-F]{2})",
                  lambda m: {"\\": "\\", "n": "\n"}.get(m.group(1)) or chr(int(m.group(1)[1:], 16)), s)

recs, xattrs = {}, {}
for line in open(meta, encoding="utf-8"):
    line = line.rstrip("\n")
    if not line or line.startswith("#"):
        continue
    if line.startswith("x "):
        _, name, val, path = line.split(" ", 3)
        xattrs.setdefault(unesc(path), []).append("%s=%s" % (unesc(name), "" if val == "-" else val))
        continue
    t, mode, uid, gid, path = line.split(" ", 4)
    recs[unesc(path)] = (t, int(mode, 8), int(uid), int(gid))

def sha(p):
    with open(p, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()

want = []
# the root: its record in .sigil (every mirror commit has one), against the mount point
root = recs.get(".")
want.append(" ".join(["'.' d %o %d:%d" % root[1:]] + sorted(xattrs.get(".", [])))
            if root and root[0] == "d" else "'.' d NO-RECORD-IN-.sigil")
dirs = {p for p, r in recs.items() if r[0] == "d" and p != "."}
for dp, dns, fns in os.walk(tree):
    for n in dns:
        dirs.add(os.path.relpath(os.path.join(dp, n), tree))
    for n in fns:
        p = os.path.join(dp, n)
        rel = os.path.relpath(p, tree)
        if rel == ".sigil":
            continue
        st = os.lstat(p)
        r = recs.get(rel)
        if stat.S_ISLNK(st.st_mode):
            own = "%d:%d" % (r[2], r[3]) if r and r[0] == "l" else "0:0"
            want.append("%r l - %s -> %r" % (rel, own, os.readlink(p)))
            continue
        if r and r[0] == "f":
            mode, own = r[1], "%d:%d" % (r[2], r[3])
        else:
            mode, own = (0o755 if st.st_mode & 0o100 else 0o644), "0:0"
        want.append(" ".join(["%r f %o %s %s" % (rel, mode, own, sha(p))] + sorted(xattrs.get(rel, []))))
for d in dirs:
    r = recs.get(d)
    head = "%r d %o %d:%d" % ((d,) + r[1:]) if r and r[0] == "d" else "%r d NO-RECORD-IN-.sigil" % d
    want.append(" ".join([head] + sorted(xattrs.get(d, []))))

have = []
st = os.lstat(mnt)  # os.walk does not yield the top itself
have.append(" ".join(["'.' d %o %d:%d" % (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)] +
                     sorted("%s=%s" % (x, os.getxattr(mnt, x).hex()) for x in os.listxattr(mnt) if x.startswith("user."))))
for dp, dns, fns in os.walk(mnt):
    for n in dns + fns:
        p = os.path.join(dp, n)
        rel = os.path.relpath(p, mnt)
        st = os.lstat(p)
        own = "%d:%d" % (st.st_uid, st.st_gid)
        if stat.S_ISLNK(st.st_mode):
            have.append("%r l - %s -> %r" % (rel, own, os.readlink(p)))
            continue
        xs = sorted("%s=%s" % (x, os.getxattr(p, x).hex()) for x in os.listxattr(p) if x.startswith("user."))
        if stat.S_ISDIR(st.st_mode):
            have.append(" ".join(["%r d %o %s" % (rel, stat.S_IMODE(st.st_mode), own)] + xs))
        else:
            have.append(" ".join(["%r f %o %s %s" % (rel, stat.S_IMODE(st.st_mode), own, sha(p))] + xs))
want.sort()
have.sort()
if want != have:
    sys.stdout.writelines(l + "\n" for l in difflib.unified_diff(want, have, "HEAD+.sigil", "mount", lineterm="", n=0))
    sys.exit(1)
print(len(have), "entries")
PY

# check_head_is_mount MSG: extract HEAD, compare with the mount (the python
# check above, and diff -r --no-dereference once .sigil's directories exist).
check_head_is_mount() {
	local x=$SG_WORK/head-$1 out
	rm -rf "$x"
	mkdir -p "$x"
	if ! out=$(g archive --format=tar refs/heads/a | tar -x -C "$x" 2>&1); then
		fail "$1: git archive of HEAD extracts" "$out"
		return 1
	fi
	if out=$(python3 "$SG_WORK/tree_check.py" "$x" "$x/.sigil" "$M" 2>&1); then
		ok "$1: HEAD's tree and .sigil equal the mount, file by file ($out)"
	else
		fail "$1: HEAD's tree and .sigil equal the mount, file by file" "$out"
	fi
	mv "$x/.sigil" "$SG_WORK/meta-$1"
	while read -r t _ _ _ p; do
		[ "$t" == d ] && [ "$p" != . ] && mkdir -p "$x/$p"
	done < <(grep -v '^#' "$SG_WORK/meta-$1")
	check "$1: diff -r --no-dereference of the extracted HEAD and the mount finds nothing" \
		diff -r --no-dereference "$x" "$M"
}

# ---- phase 1: create
mkdir -p "$M/etc" "$M/doc" "$M/lib/sub" "$M/lib/e" "$M/bin"
printf 'name = demo\nport = 80\nlog = /var/log/demo\n' >"$M/etc/app.conf"
printf '127.0.0.1 localhost\n10.0.0.1 db\n' >"$M/etc/hosts"
printf 'root:*:19000:0:99999:7:::\n' >"$M/etc/shadow"
printf 'to be deleted\n' >"$M/etc/old"
printf 'read me\n' >"$M/doc/readme"
printf 'lib x\n' >"$M/lib/x"
printf 'lib sub y\n' >"$M/lib/sub/y"
wait_mirror "phase 1 (create)"
P1=$(g rev-parse refs/heads/a)
check_head_is_mount "phase1"
check_eq "a <a@sigil>|a <a@sigil>" "$(g log -1 --format='%an <%ae>|%cn <%ce>' refs/heads/a)" \
	"the author and the committer are the node"
check_eq "refs/heads/a" "$(g symbolic-ref HEAD 2>&1)" "the bare repository's HEAD is refs/heads/a"
check_eq "$D/mirror.git" "$(timeout 10 "$CTL" -d "$D" status --json | python3 -c \
	'import json,sys; print(json.load(sys.stdin)["mirror"]["path"])')" "the mirror's default path is DATA/mirror.git"

# ---- phase 2: edit, metadata, new kinds of entries
check "vim -Es (default settings) saves etc/app.conf" \
	timeout 30 vim -Es -u NONE -N -i NONE -c 'set backupskip=' \
	-c '%s/^port = 80$/port = 8080/' -c 'wq' "$M/etc/app.conf" </dev/null
check "sed -i saves etc/hosts" sed -i 's/^10\.0\.0\.1 db$/10.0.0.2 db/' "$M/etc/hosts"
check "chmod 600 etc/shadow" chmod 600 "$M/etc/shadow"
check "chown nobody:nogroup etc/shadow" chown 65534:65534 "$M/etc/shadow"
check "setfattr user.x on etc/app.conf" setfattr -n user.x -v 0x73696c6c7900ff "$M/etc/app.conf"
check "ln -s app.conf etc/link" ln -s app.conf "$M/etc/link"
printf '#!/bin/sh\necho run\n' >"$M/bin/run.sh"
check "chmod 755 bin/run.sh" chmod 755 "$M/bin/run.sh"
check "mkdir var/empty" mkdir -p "$M/var/empty"
check "touch emptyA (an empty file)" touch "$M/emptyA"
check "chmod 700 on the mount point" chmod 700 "$M"
check "setfattr user.rootx on the mount point" setfattr -n user.rootx -v 1 "$M"
# names that stay local (editor temporaries), made and left in place for now
printf 'swap\n' >"$M/etc/.app.conf.swp"
printf 'backup\n' >"$M/etc/hosts~"
printf 'probe\n' >"$M/etc/4913"
wait_mirror "phase 2 (edit, chmod, chown, xattr, symlink, script, empty dir)"
P2=$(g rev-parse refs/heads/a)

# ---- phase 3: delete, rename a file, rename a directory
check "rm etc/old" rm "$M/etc/old"
check "mv doc/readme doc/README" mv "$M/doc/readme" "$M/doc/README"
check "mv lib lib2 (a directory with a subdirectory and an empty one)" mv "$M/lib" "$M/lib2"
check "rm emptyA, touch unrelated (another empty file: not a rename)" \
	bash -c 'rm "$1/emptyA" && touch "$1/unrelated"' - "$M"
wait_mirror "phase 3 (delete, renames)"
P3=$(g rev-parse refs/heads/a)

# ---- the log: operations, origins, times
# body_ops REV-RANGE: the operation lines of the commit bodies in REV-RANGE,
# as "VERB PATH[ -> NEW]"; a line that names another origin or a time outside
# the test's run is reported as "BAD: line".
body_ops() {
	g log --format=%B "$1" | python3 -c '
import calendar, re, sys, time
start, now = int(sys.argv[1]) - 5, time.time() + 5
for l in sys.stdin:
    m = re.match(r"^(added|modified|deleted|renamed) +(.+?)  \((\S+), (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\)$", l.rstrip("\n"))
    if not m:
        continue
    t = calendar.timegm(time.strptime(m.group(4)[:19], "%Y-%m-%dT%H:%M:%S"))
    if m.group(3) != "a" or not start <= t <= now:
        print("BAD:", l.rstrip("\n"))
    print(m.group(1), m.group(2))' "$START" | sort
}
ops2=$(body_ops "$P1..$P2")
for want in "modified etc/app.conf" "modified etc/hosts" "modified etc/shadow" "added etc/link" \
	"added bin/run.sh" "added var/" "added var/empty/" "modified /"; do
	check "phase 2's commits say \"$want\" (origin a, a time of this run)" grep -qxF "$want" <<<"$ops2"
done
ops3=$(body_ops "$P2..$P3")
for want in "deleted etc/old" "renamed doc/readme -> doc/README" "renamed lib/x -> lib2/x" \
	"renamed lib/sub/y -> lib2/sub/y" "added lib2/" "added lib2/sub/" "added lib2/e/" \
	"deleted emptyA" "added unrelated"; do
	check "phase 3's commits say \"$want\" (origin a, a time of this run)" grep -qxF "$want" <<<"$ops3"
done
check_not "phase 3's commits do not call emptyA -> unrelated a rename (two empty files)" \
	grep -q "^renamed emptyA" <<<"$ops3"
# every directory the rename created is listed ("added lib2/"...): the ones it
# removed must be too, the empty lib/e/ included (else only .sigil's diff tells)
if grep -qxE 'deleted lib/|renamed lib/ -> lib2/' <<<"$ops3" &&
	grep -qxE 'deleted lib/e/|renamed lib/e/ -> lib2/e/' <<<"$ops3"; then
	ok "phase 3's commits name the directories the rename removed (lib/, the empty lib/e/)"
else
	fail "phase 3's commits name the directories the rename removed (lib/, the empty lib/e/)" \
		"operation lines of phase 3:" "$ops3"
fi
all_ops=$(body_ops refs/heads/a)
check_eq "" "$(grep '^BAD:' <<<"$all_ops")" \
	"every operation line of every commit names origin a and a time within this run ($(wc -l <<<"$all_ops") lines)"
check_eq "" "$(g log --format='%an|%ae|%cn' refs/heads/a | sort -u | grep -vxF 'a|a@sigil|a')" \
	"every commit's author and committer is node a"
check_eq "" "$(g log --format='%H %(trailers:key=Sigil-Store,valueonly,separator=%x2C) %(trailers:key=Sigil-Version,valueonly,separator=%x2C)' refs/heads/a |
	grep -vE '^[0-9a-f]{40} [0-9a-f]{16} [0-9]+$')" "every commit has one Sigil-Store and one Sigil-Version trailer"

# git log --name-status over phase 3: the delete and the renames, as git sees them
ns3=$(g log -M --format= --name-status "$P2..$P3" | sort)
for want in $'D\tetc/old' $'R100\tdoc/readme\tdoc/README' $'R100\tlib/x\tlib2/x' $'R100\tlib/sub/y\tlib2/sub/y'; do
	check "git log --name-status (phase 3) shows $(printf '%s' "$want" | tr '\t' ' ')" grep -qxF "$want" <<<"$ns3"
done

# git diff REV1 REV2: exactly what changed between phase 1 and now
check_same_text "$(printf '%s\n' $'M\t.sigil' $'A\tbin/run.sh' $'M\tetc/app.conf' $'M\tetc/hosts' \
	$'A\tetc/link' $'D\tetc/old' $'R100\tdoc/readme\tdoc/README' $'R100\tlib/sub/y\tlib2/sub/y' \
	$'R100\tlib/x\tlib2/x' $'A\tunrelated' | sort)" "$(g diff -M --name-status "$P1" "$P3" | sort)" \
	"git diff --name-status PHASE1 HEAD lists exactly the changed paths"
check_eq "$(printf -- '-port = 80\n+port = 8080')" "$(g diff "$P1" "$P3" -- etc/app.conf | grep '^[-+][^-+]')" \
	"git diff PHASE1 HEAD -- etc/app.conf shows vim's edit"
check_eq "100755 bin/run.sh|120000 etc/link" \
	"$(g ls-tree -r "$P3" | awk '$4 == "bin/run.sh" || $4 == "etc/link" { printf "%s%s %s", s, $1, $4; s = "|" }')" \
	"HEAD: bin/run.sh is executable (100755), etc/link a symlink (120000)"

# git log -p FILE and git blame FILE
lp=$(g log -p --format='commit %H' "$P1..refs/heads/a" -- etc/app.conf)
check_eq 1 "$(grep -c '^commit ' <<<"$lp")" \
	"git log -p PHASE1..HEAD -- etc/app.conf: one commit (vim's edit; the xattr lives in .sigil)"
check_eq "$(printf -- '-port = 80\n+port = 8080')" "$(grep '^[-+][^-+]' <<<"$lp")" \
	"git log -p -- etc/app.conf shows vim's edit and nothing else"
edit=$(g log -1 --format=%H refs/heads/a -- etc/app.conf)
bl=$(g blame --root -l -s refs/heads/a -- etc/app.conf 2>&1)
read -r c1 c2 c3 <<<"$(awk '{ printf "%s ", $1 }' <<<"$bl")"
check_eq "$edit" "$c2" "git blame etc/app.conf: line 2 (port) comes from vim's edit"
if [ -n "$c1" ] && [ "$c1" == "$c3" ] && [ "$c1" != "$edit" ] && g merge-base --is-ancestor "$c1" "$P1"; then
	ok "git blame etc/app.conf: lines 1 and 3 come from one commit of phase 1"
else
	fail "git blame etc/app.conf: lines 1 and 3 come from one commit of phase 1" "$bl"
fi
check_eq "a" "$(g blame --porcelain refs/heads/a -- etc/app.conf | sed -n 's/^author //p' | sort -u)" \
	"git blame names node a as the author"

# ---- .sigil: what Git cannot hold; then HEAD against the mount
meta=$(g show refs/heads/a:.sigil 2>&1)
for want in "d 0755 0 0 var/empty" "f 0600 65534 65534 etc/shadow" "x user.x 73696c6c7900ff etc/app.conf" \
	"d 0755 0 0 lib2/sub" "d 0755 0 0 etc" "d 0700 0 0 ." "x user.rootx 31 ."; do
	check ".sigil has \"$want\"" grep -qxF "$want" <<<"$meta"
done
check_not ".sigil no longer lists the renamed-away lib" grep -qE ' lib(/|$)' <<<"$meta"
check_not ".sigil has no record for bin/run.sh (0755, root: Git's executable bit says it)" \
	grep -qE ' bin/run\.sh$' <<<"$meta"
check_eq "blob" "$(g cat-file -t refs/heads/a:.sigil 2>&1)" ".sigil at the root of HEAD is a file"
rm -f "$M/etc/.app.conf.swp" "$M/etc/hosts~" "$M/etc/4913"
wait_mirror "after removing the temporaries"
check_head_is_mount "p3"

# ---- never in any commit: editor temporaries, the /.sigil status files
all=$(g log --all --format= --name-only | sort -u)
check_eq "" "$(grep -E '(^|/)(4913|[^/]*~|\.[^/]*\.sw.|sed[A-Za-z0-9]{6})$' <<<"$all")" \
	"no editor temporary (4913, *~, .*.swp, sedXXXXXX) in any commit"
check_eq "" "$(grep -E '^\.sigil/' <<<"$all")" "no /.sigil status file in any commit"
check_eq "" "$(g log --all --format=%B | grep -E '(^|/)(4913|[^/ ]*~|\.[^/ ]*\.sw.|\.sigil/[a-z])( |$)')" \
	"no commit message names a temporary or a status file"

# ---- a quiet mount makes no commits
n1=$(g rev-list --count refs/heads/a)
ls -lR "$M" >/dev/null
cat "$M"/etc/app.conf "$M/.sigil/status" >/dev/null
getfattr -d "$M/etc/app.conf" >/dev/null 2>&1
sleep 1
n2=$(g rev-list --count refs/heads/a)
check_eq "$n1" "$n2" "a quiet second (with reads) makes no commit ($n1 commits)"

# ---- sigilctl diff against HEAD: nothing differs; a change is reported (exit 4)
out=$(timeout 30 "$CTL" -d "$D" diff HEAD 2>&1)
rc=$?
check_eq 0 "$rc" "sigilctl diff HEAD exits 0 when the live tree equals the mirror ($out)"
printf 'drift\n' >"$M/etc/drift"
out=$(timeout 30 "$CTL" -d "$D" diff "$P3" 2>&1)
rc=$?
# the lines say what a restore of the revision would do: delete the new file
check_eq "4|D etc/drift" "$rc|$(grep -v '^#' <<<"$out")" "sigilctl diff PHASE3 after a new file: exit 4, 'D etc/drift'"

# ---- a delete that ends a burst waits for what follows it: at
# commit_interval=200ms a burst gathers only 40 ms, and without the hold the
# delete would be committed alone, the new file in the next commit
sg_umount a || sg_done
sg_mount a "commit_interval=200ms" || sg_done
D=$DATA M=$MNT
printf 'old\n' >"$M/etc/swap-old"
wait_mirror "before a delete and a write 60 ms apart"
n1=$(g rev-list --count refs/heads/a)
python3 - "$M" <<'PY'
import os, sys, time
m = sys.argv[1]
t0 = time.monotonic()
os.unlink(m + "/etc/swap-old")
time.sleep(max(0.0, t0 + 0.06 - time.monotonic()))
with open(m + "/etc/swap-new", "w") as f:
    f.write("new\n")
PY
wait_mirror "after a delete and a write 60 ms apart"
n2=$(g rev-list --count refs/heads/a)
check_eq "$((n1 + 1))|D	etc/swap-old A	etc/swap-new" \
	"$n2|$(g show --format= --name-status --no-renames refs/heads/a | sort -r | tr '\n' ' ' | sed 's/ $//')" \
	"a delete and a write 60 ms after it make one commit (the delete waits up to 150 ms)"

# ---- unmount commits the last batch
sg_umount a || sg_done
sg_mount a "commit_interval=1h" || sg_done
D=$DATA M=$MNT
printf 'one\n' >"$M/first"
out=$(timeout 30 "$CTL" -d "$D" diff HEAD 2>&1)
check_eq "0" "$?" "sigilctl diff HEAD (it has the mirror take in what the store holds first) exits 0 ($out)"
check_eq "one" "$(g show refs/heads/a:first 2>&1)" "... and HEAD now holds 'first'"
read -r s0 _ <<<"$(mirror_state "$D")"
printf 'the last write\n' >"$M/last"
# the store acknowledges a write before its commit (up to a few ms): the
# version counts it once committed
store_has_it() { read -r s v _ <<<"$(mirror_state "$D")" && [ -n "$s" ] && [ "$s" -gt "$s0" ]; }
sg_wait 5 store_has_it
[ -n "$s" ] && [ "$v" -lt "$s" ] && ok "with commit_interval=1h the write waits (store $s, mirror $v)" ||
	fail "with commit_interval=1h the write waits" "store $s, mirror $v"
# ---- a page of the log stops once it has copied 64 MiB of content (the
# mirror copies what it reads, leaves the store's transaction, then makes the
# blobs). Three files of 24 MiB and a small one after them wait for the
# mirror; sigilctl diff has it take in everything first: two pages.
for i in 1 2 3; do
	head -c $((24 << 20)) /dev/urandom >"$SG_WORK/huge$i"
	cp "$SG_WORK/huge$i" "$M/huge$i" || fail "write huge$i (24 MiB)"
done
printf 'after the huge files\n' >"$M/after-huge"
out=$(timeout 300 "$CTL" -d "$D" diff HEAD 2>&1)
check_eq 0 "$?" "sigilctl diff HEAD with 72 MiB waiting: the mirror took it all in, nothing differs ($out)"
for i in 1 2 3; do
	check "HEAD holds huge$i (24 MiB) as written" \
		sh -c "git --git-dir='$REPO' cat-file blob refs/heads/a:huge$i | cmp -s - '$SG_WORK/huge$i'"
done
check_eq "after the huge files" "$(g show refs/heads/a:after-huge 2>&1)" \
	"HEAD holds the file written after them"
# one origin, no restore: one page makes one commit
c3=$(g log -1 --format=%H refs/heads/a -- huge3 2>&1) ca=$(g log -1 --format=%H refs/heads/a -- after-huge 2>&1)
check_ne "$c3" "$ca" "huge3 and the file after it came in two commits: two pages"
check_eq "$c3" "$(g rev-parse refs/heads/a~1 2>&1)" "... one right after the other"
read -r s v _ <<<"$(mirror_state "$D")"
check_eq "$s" "$v" "the mirror's version is the store's after the flush"
rm -f "$M"/huge[123] "$SG_WORK"/huge[123]
# ---- large files go into the pack whole: nine 1 MiB files, each the first
# with one byte changed, in one batch of over 8 MiB (libgit2's packbuilder).
# Its delta search would store eight of them as deltas; over the mirror's
# big-file threshold (512 KiB) it leaves them out, as it leaves out every
# large file: for unrelated content the search costs about 200 ms per MiB,
# and the daemon's exit waits for it.
head -c 1048576 /dev/urandom >"$SG_WORK/big"
for i in 1 2 3 4 5 6 7 8 9; do
	python3 - "$SG_WORK/big" "$M/big$i" "$i" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[4096 * int(sys.argv[3])] ^= 0xff
open(sys.argv[2], "wb").write(b)
PY
done
cp "$M/big5" "$SG_WORK/big5"
sg_umount a umount || sg_done
check_eq "the last write" "$(g show refs/heads/a:last 2>&1)" \
	"after umount and the daemon's exit, HEAD holds the file written just before"
g show refs/heads/a:big5 >"$SG_WORK/big5.git" 2>&1
check "HEAD holds big5 as written" cmp -s "$SG_WORK/big5.git" "$SG_WORK/big5"
bigs=$(g ls-tree refs/heads/a | awk '$4 ~ /^big[1-9]$/ {print $3}' | sort)
packed=$(for idx in "$REPO"/objects/pack/*.idx; do g verify-pack -v "$idx"; done 2>/dev/null |
	awk 'NF >= 5 && $2 == "blob" {print $1, (NF >= 7 ? "delta" : "whole")}' | sort)
check_eq "9 9 0" "$(wc -l <<<"$bigs" | tr -d ' ') $(join <(echo "$bigs") <(echo "$packed") | grep -c ' whole$') $(join <(echo "$bigs") <(echo "$packed") | grep -c ' delta$')" \
	"the nine 1 MiB files are packed whole, none as a delta (count, whole, deltas)"
check "git fsck on the mirror is clean" g fsck --strict --no-dangling
sg_done
