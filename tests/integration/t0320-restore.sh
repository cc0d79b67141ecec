#!/bin/bash
# t0320-restore.sh: Git -> cluster. Three nodes (tcp://, each mirroring into
# its own DATA/mirror.git). a writes a tree (a 0700 dir, a symlink, xattrs,
# an owner, an empty dir, a script); its mirror's head is REV_OLD. b and c
# then modify, delete and add. `sigilctl diff REV_OLD` and `restore --dry-run
# REV_OLD` on a list the same A/M/D lines and change nothing; `restore
# REV_OLD` brings all three mounts back to REV_OLD's tree (content, modes,
# owners, xattrs, empty dirs), `diff` then exits 0 on every node, the restore
# is a commit of a's mirror with a Sigil-Restore trailer, and every node's
# mirror ends on REV_OLD's very tree. A second restore changes nothing; a
# prefix restore touches only its subtree; --repo restores from a repository
# built with the git CLI (a path and a file:// URL); a bad revision and a
# missing repository fail with one line. seed=REPO#REV fills a brand-new node
# and is ignored by a node that has data.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
. "$(dirname "$0")/repl-lib.sh" || exit 99

sg_require_tools git python3 sed setfattr getfattr tar timeout
CTL=${SIGILCTL:-$(dirname "$SIGILFS")/sigilctl}
[ -x "$CTL" ] || sg_hard_error "sigilctl is not built: $CTL (set SIGILCTL)"
export GIT_CONFIG_NOSYSTEM=1 HOME=$SG_WORK
git config --global user.name "t0320" && git config --global user.email "t0320@test" &&
	git config --global init.defaultBranch main || sg_hard_error "git config"

T=15
RL_SCHEME=tcp
rl_ports 3
PA=${RL_PORT[0]} PB=${RL_PORT[1]} PC=${RL_PORT[2]}
MOPT="commit_interval=200ms"
rl_start a "$PA" "$(rl_url "$PB");$(rl_url "$PC")" "$MOPT" || sg_done
rl_start b "$PB" "$(rl_url "$PA");$(rl_url "$PC")" "$MOPT" || sg_done
rl_start c "$PC" "$(rl_url "$PA");$(rl_url "$PB")" "$MOPT" || sg_done
A=$(sg_mnt a) B=$(sg_mnt b) C=$(sg_mnt c)
DA=$(sg_data a) DB=$(sg_data b) DC=$(sg_data c)
RA=$DA/mirror.git

# ctl ARGS...: run sigilctl; OUT (stdout), ERR (stderr), RC.
ctl() {
	OUT=$(timeout 60 "$CTL" "$@" 2>"$SG_WORK/ctl.err")
	RC=$?
	ERR=$(cat "$SG_WORK/ctl.err")
}
# body: OUT without the "# ..." summary, sorted; summary: the summary line.
body() { grep -v '^#' <<<"$OUT" | sed '/^$/d' | sort; }
summary() { grep '^#' <<<"$OUT"; }

json_field() { # DATA PYTHON-EXPR-ON-j
	timeout 10 "$CTL" -d "$1" status --json 2>/dev/null |
		python3 -c "import json, sys; j = json.load(sys.stdin); print($2)" 2>/dev/null
}
# caught_up NAME: node NAME's mirror holds its whole store and its branch is that head.
caught_up() {
	local d s v h
	d=$(sg_data "$1")
	read -r s v h <<<"$(json_field "$d" '"%d %d %s" % (j["store"]["version"], j["mirror"]["version"], j["mirror"]["head"] or "-")')"
	[ -n "$s" ] && [ "$s" == "$v" ] &&
		[ "$(git --git-dir="$d/mirror.git" rev-parse -q --verify "refs/heads/$1" 2>/dev/null)" == "$h" ]
}
wait_mirrors() { # MSG NODE...
	local msg=$1 n
	shift
	for n in "$@"; do
		rl_arrives $T "$msg: node $n's mirror catches up" caught_up "$n"
	done
}
store_version() { json_field "$(sg_data "$1")" 'j["store"]["version"]'; }

# manifest NAME: rl_manifest without file mtimes (Git keeps none).
manifest() { rl_manifest "$1" | awk '{ $6 = "-"; print }'; }

# tree_check.py EXTRACTED META MOUNT: the tree of a revision (extracted) and
# its .sigil against a mount, one line per path, the mount point included:
# type, exact mode, owner, content hash or link target, user.* xattrs. Prints
# the diff, exit 1 if any.
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
    sys.stdout.writelines(l + "\n" for l in list(difflib.unified_diff(want, have, "rev+.sigil", "mount", lineterm="", n=0))[:40])
    sys.exit(1)
print(len(have), "entries")
PY
# check_rev_is_mount REPO REV NAME MSG: the mount of node NAME equals REV's tree and .sigil.
check_rev_is_mount() {
	local x=$SG_WORK/rev-$RANDOM out
	mkdir -p "$x"
	if ! out=$(git --git-dir="$1" archive --format=tar "$2" | tar -x -C "$x" 2>&1); then
		fail "$4: git archive $2 extracts" "$out"
		return 1
	fi
	[ -f "$x/.sigil" ] || : >"$x/.sigil"
	if out=$(python3 "$SG_WORK/tree_check.py" "$x" "$x/.sigil" "$(sg_mnt "$3")" 2>&1); then
		ok "$4 ($out)"
	else
		fail "$4" "$out"
	fi
	rm -rf "$x"
}

# ---- the old state, written on a
mkdir -p "$A/etc" "$A/secure" "$A/var/empty" "$A/bin" "$A/data" "$A/sub/a/b"
printf 'name = demo\nport = 80\n' >"$A/etc/app.conf"
printf '127.0.0.1 localhost\n' >"$A/etc/hosts"
printf 'secret\n' >"$A/etc/secret"
chmod 600 "$A/etc/secret"
chown 1234:5678 "$A/etc/secret"
ln -s app.conf "$A/etc/link"
setfattr -n user.color -v blue "$A/etc/app.conf"
printf 'key\n' >"$A/secure/key"
chmod 700 "$A/secure"
setfattr -n user.level -v 0x0102ff "$A/secure"
printf '#!/bin/sh\necho old\n' >"$A/bin/run.sh"
chmod 755 "$A/bin/run.sh"
printf 'kept as is\n' >"$A/data/keep"
printf 'deep\n' >"$A/sub/a/b/c"
rl_converged $T a b c -- "the old state reaches every node"
wait_mirrors "old state" a
REV_OLD=$(git --git-dir="$RA" rev-parse refs/heads/a)
OLD=$(manifest a)
check_rev_is_mount "$RA" "$REV_OLD" a "REV_OLD (a's mirror head) equals a's mount, with modes, owners, xattrs, empty dirs"
check "REV_OLD's .sigil has the 0700 dir with its xattr, the owned file and the root" python3 -c '
import sys
m = set(sys.argv[1].splitlines())
for want in ("d 0700 0 0 secure", "x user.level 0102ff secure", "f 0600 1234 5678 etc/secret",
             "d 0755 0 0 var/empty", "x user.color 626c7565 etc/app.conf", "d 0755 0 0 ."):
    assert want in m, want' "$(git --git-dir="$RA" show "$REV_OLD:.sigil")"

# ---- b and c change it
setfattr -x user.color "$B/etc/app.conf"
sed -i 's/^port = 80$/port = 9090/' "$B/etc/app.conf"
chmod 644 "$B/etc/secret"
chown 0:0 "$B/etc/secret"
rm "$B/etc/hosts"
ln -sfn hosts "$B/etc/link"
chmod 755 "$B/secure"
rm -r "$B/var/empty"
mkdir -p "$B/new/deeper"
printf 'new on b\n' >"$B/new/deeper/file"
printf 'c was here\n' >"$C/c-file"
# the mount point's own attributes (they do not replicate: a's alone)
chmod 750 "$A"
setfattr -n user.rootx -v 1 "$A"
printf '#!/bin/sh\necho new\n' >"$C/bin/run.sh"
chmod 644 "$C/bin/run.sh"
rm -r "$C/sub"
rl_converged $T a b c -- "b's and c's changes reach every node"
wait_mirrors "after the changes" a
NEW=$(manifest a)

EXPECT=$(printf '%s\n' "D c-file" "D new/" "A etc/hosts" "A var/empty/" "A sub/" "A sub/a/" "A sub/a/b/" \
	"A sub/a/b/c" "M etc/app.conf (content, xattrs)" "M etc/secret (mode, owner)" "M etc/link (content)" \
	"M secure/ (mode)" "M bin/run.sh (content, mode)" "M / (mode, xattrs)" | sort)

# ---- diff and dry run: the same lines, nothing written
v0=$(store_version a)
ctl -d "$DA" diff "$REV_OLD"
check_eq 4 "$RC" "sigilctl diff REV_OLD on a exits 4: the live tree differs (stderr: $ERR)"
check_same_text "$EXPECT" "$(body)" "sigilctl diff REV_OLD lists each difference as A/M/D"
ctl -d "$DA" restore --dry-run "$REV_OLD"
check_eq 0 "$RC" "restore --dry-run REV_OLD exits 0 (stderr: $ERR)"
check_same_text "$EXPECT" "$(body)" "restore --dry-run REV_OLD lists what a restore would do"
check_eq "# would restore $REV_OLD: 6 added, 6 modified, 2 deleted, 6 unchanged" "$(summary)" \
	"restore --dry-run: the summary line counts them"
check_eq "$v0" "$(store_version a)" "the dry run wrote nothing to a's store"
check_same_text "$NEW" "$(manifest a)" "the dry run changed nothing in a's mount"
check_eq "750" "$(stat -c %a "$A")" "the dry run left a's mount point as it was"

# ---- restore
ctl -d "$DA" restore "$REV_OLD"
check_eq 0 "$RC" "sigilctl restore REV_OLD on a exits 0 (stderr: $ERR)"
check_same_text "$EXPECT" "$(body)" "restore REV_OLD prints the lines the dry run printed"
check_eq "# restored $REV_OLD: 6 added, 6 modified, 2 deleted, 6 unchanged" "$(summary)" "restore: the summary line"
rl_converged $T a b c -- "after the restore every node converges"
check_eq "755|" "$(stat -c %a "$A")|$(getfattr --absolute-names --only-values -n user.rootx "$A" 2>/dev/null)" \
	"the restore gave a's mount point its mode back and took user.rootx away"
for n in a b c; do
	check_same_text "$OLD" "$(manifest $n)" "node $n shows exactly the old state (content, modes, owners, xattrs, empty dirs)"
	check_rev_is_mount "$RA" "$REV_OLD" $n "node $n's mount equals REV_OLD's tree and .sigil"
done
ctl -d "$DA" diff "$REV_OLD"
check_eq "0|" "$RC|$(body)" "sigilctl diff REV_OLD on a: exit 0, no difference ($(summary))"
for n in b c; do
	ctl -d "$(sg_data $n)" diff --repo "$RA" "$REV_OLD"
	check_eq "0|" "$RC|$(body)" "sigilctl diff --repo A's mirror REV_OLD on $n: exit 0, no difference ($ERR)"
done

# the restore in a's log, and every mirror on REV_OLD's tree
wait_mirrors "after the restore" a b c
rc_commits=$(git --git-dir="$RA" log --format='%H %(trailers:key=Sigil-Restore,valueonly,separator=%x2C)' refs/heads/a |
	awk 'NF > 1')
check_eq 1 "$(grep -c . <<<"$rc_commits")" "exactly one commit of a's mirror has a Sigil-Restore trailer"
check "its trailer names REV_OLD" grep -qF " $REV_OLD of the mirror" <<<"$rc_commits"
rc_id=$(cut -d' ' -f1 <<<"$rc_commits")
check "the restore commit's message lists what it restored" python3 -c '
import sys
body = sys.argv[1]
for want in ("etc/hosts", "sub/a/b/c", "etc/secret", "c-file"):
    assert want in body, want' "$(git --git-dir="$RA" log -1 --format=%B "$rc_id" 2>&1)"
check_eq "a" "$(git --git-dir="$RA" log -1 --format=%an "$rc_id" 2>&1)" "the restore commit's author is a"
old_tree=$(git --git-dir="$RA" rev-parse "$REV_OLD^{tree}")
for n in a b c; do
	check_eq "$old_tree" "$(git --git-dir="$(sg_data $n)/mirror.git" rev-parse "refs/heads/$n^{tree}" 2>&1)" \
		"node $n's mirror head has REV_OLD's very tree (.sigil included)"
done

# ---- a second restore of the same revision changes nothing
v1=$(store_version a)
n1=$(git --git-dir="$RA" rev-list --count refs/heads/a)
ctl -d "$DA" restore "$REV_OLD"
check_eq "0||# restored $REV_OLD: 0 added, 0 modified, 0 deleted, 17 unchanged" "$RC|$(body)|$(summary)" \
	"a second restore of REV_OLD: nothing added, modified or deleted"
check_eq "$v1" "$(store_version a)" "... and nothing written to the store"
sleep 0.5
check_eq "$n1" "$(git --git-dir="$RA" rev-list --count refs/heads/a)" "... and no commit in a's mirror"

# ---- a prefix restore touches only its subtree
printf 'outside\n' >"$B/data/keep"
printf 'inside\n' >"$B/etc/app.conf"
printf 'new inside\n' >"$B/etc/extra"
rm -r "$C/secure"
rl_converged $T a b c -- "changes inside and outside etc/ and secure/ reach every node"
ctl -d "$DC" restore --repo "$RA" "$REV_OLD" etc
check_eq 0 "$RC" "restore --repo A's mirror REV_OLD etc on c exits 0 (stderr: $ERR)"
check_same_text "$(printf '%s\n' "D etc/extra" "M etc/app.conf (content)")" "$(body)" "the prefix restore lists only paths under etc/"
ctl -d "$DB" restore --repo "$RA" "$REV_OLD" /secure/
check_eq "0|$(printf '%s\n' "A secure/" "A secure/key")" "$RC|$(body)" \
	"restore REV_OLD /secure/ on b brings back the deleted dir and its file"
rl_converged $T a b c -- "after the prefix restores every node converges"
check_eq "outside" "$(cat "$A/data/keep")" "data/keep, outside the prefixes, keeps b's change"
check_eq "name = demo|port = 80|700 0:0|0x0102ff" \
	"$(tr '\n' '|' <"$A/etc/app.conf")$(stat -c '%a %u:%g' "$A/secure")|$(getfattr --absolute-names -e hex -n user.level "$A/secure" 2>&1 | sed -n 's/^user\.level=//p')" \
	"etc/app.conf has its old content; secure/ its mode 0700 and xattr again"
check_not "etc/extra, not in REV_OLD, is gone" test -e "$A/etc/extra"
printf 'kept as is\n' >"$A/data/keep"
rl_converged $T a b c -- "data/keep reset by hand"
ctl -d "$DA" diff "$REV_OLD"
check_eq "0|" "$RC|$(body)" "now the whole tree equals REV_OLD again"

# ---- from another repository, built with the git CLI
W=$SG_WORK/deploy-work
git init -q "$W" && mkdir -p "$W/deploy/conf.d" && printf 'deployed = 1\n' >"$W/deploy/app.conf" &&
	printf '#!/bin/sh\necho deployed\n' >"$W/deploy/start" && chmod 755 "$W/deploy/start" &&
	printf 'x\n' >"$W/deploy/conf.d/x.conf" && ln -s app.conf "$W/deploy/current" &&
	git -C "$W" add -A && git -C "$W" commit -q -m "deploy v1" && git -C "$W" tag v1 &&
	git clone -q --bare "$W" "$SG_WORK/deploy.git" || sg_hard_error "building deploy.git with git"
ctl -d "$DA" restore --repo "$SG_WORK/deploy.git" v1 deploy
check_eq 0 "$RC" "restore --repo deploy.git v1 deploy exits 0 (stderr: $ERR)"
check_same_text "$(printf '%s\n' "A deploy/" "A deploy/app.conf" "A deploy/conf.d/" "A deploy/conf.d/x.conf" \
	"A deploy/current" "A deploy/start" | sort)" "$(body)" "it adds deploy/ and its four entries"
rl_converged $T a b c -- "the deployed tree reaches every node"
check_eq "deployed = 1|755|app.conf|x|644" \
	"$(cat "$C/deploy/app.conf")|$(stat -c %a "$C/deploy/start")|$(readlink "$C/deploy/current")|$(cat "$C/deploy/conf.d/x.conf")|$(stat -c %a "$C/deploy/app.conf")" \
	"on c: the content, the executable bit and the symlink from deploy.git"
check_eq "$OLD" "$(manifest a | grep -v "^'deploy")" "nothing outside deploy/ changed"
# a second commit, fetched through a file:// URL
printf 'deployed = 2\n' >"$W/deploy/app.conf" && git -C "$W" rm -q deploy/conf.d/x.conf &&
	git -C "$W" commit -q -am "deploy v2" && git -C "$W" push -q "$SG_WORK/deploy.git" main ||
	sg_hard_error "pushing v2 to deploy.git"
ctl -d "$DB" restore --repo "file://$SG_WORK/deploy.git" main deploy
check_eq "0|$(printf '%s\n' "D deploy/conf.d/" "M deploy/app.conf (content)")" "$RC|$(body)" \
	"restore --repo file://.../deploy.git main deploy on b: v2's change and delete ($ERR)"
rl_converged $T a b c -- "v2 reaches every node"
check_eq "deployed = 2" "$(cat "$A/deploy/app.conf")" "a has v2's app.conf"
ctl -d "$DC" diff --repo "file://$SG_WORK/deploy.git" main deploy
check_eq "0|" "$RC|$(body)" "diff --repo file://... main deploy on c: exit 0"
# a relative --repo is the caller's, not the daemon's working directory's
pushd "$SG_WORK" >/dev/null || sg_hard_error "cd $SG_WORK"
ctl -d "$DC" diff --repo deploy.git main deploy
popd >/dev/null || sg_hard_error "cd back"
check_eq "0|" "$RC|$(body)" "diff --repo deploy.git (relative, run in its directory) main deploy on c: exit 0 ($ERR)"

# ---- errors: one line, exit 1, nothing written
v2=$(store_version a)
ctl -d "$DA" restore no-such-rev
check_eq "1||1" "$RC|$OUT|$(grep -c . <<<"$ERR")" "restore of a bad revision: exit 1, one line ($ERR)"
check "... the line names the revision" grep -q "no-such-rev" <<<"$ERR"
ctl -d "$DA" restore --repo "$SG_WORK/no-such.git" HEAD
check_eq "1||1" "$RC|$OUT|$(grep -c . <<<"$ERR")" "restore from a missing repository: exit 1, one line ($ERR)"
check "... the line names the repository" grep -q "no-such.git" <<<"$ERR"
ctl -d "$DA" diff --repo "file://$SG_WORK/no-such.git" HEAD
check_eq "1||1" "$RC|$OUT|$(grep -c . <<<"$ERR")" "diff against a missing file:// repository: exit 1, one line ($ERR)"
ctl -d "$DA" restore --repo "$SG_WORK/deploy.git" "deadbeef$(printf '%032d' 0)"
check_eq "1||1" "$RC|$OUT|$(grep -c . <<<"$ERR")" "restore of an unknown commit id: exit 1, one line ($ERR)"
check_eq "$v2" "$(store_version a)" "the failed restores wrote nothing"
# ... and left no mark: the commit of the next write has no Sigil-Restore trailer
printf 'after the failed restores\n' >"$A/after-failed"
wait_mirrors "after the failed restores" a
check_eq "added after-failed|" \
	"$(git --git-dir="$RA" log -1 --format='%s|%(trailers:key=Sigil-Restore,valueonly)' refs/heads/a -- after-failed | sed 's/ (on a)//')" \
	"the commit of a write after the failed restores has no Sigil-Restore trailer"
rm "$A/after-failed"

# ---- seed: a brand-new node gets REV_OLD's tree; a node with data ignores it
sg_mount d "seed=$RA#$REV_OLD,$MOPT" || sg_done
check_same_text "$OLD" "$(manifest d)" "a new node d with seed=A's mirror#REV_OLD holds REV_OLD's tree"
check_rev_is_mount "$RA" "$REV_OLD" d "d's mount equals REV_OLD's tree and .sigil"
rl_arrives $T "d's own mirror commits the seeded tree" caught_up d
check_eq "$old_tree" "$(git --git-dir="$(sg_data d)/mirror.git" rev-parse "refs/heads/d^{tree}" 2>&1)" \
	"d's mirror head has REV_OLD's tree"
printf 'd only\n' >"$(sg_mnt d)/d-only"
sg_umount d
sg_mount d "seed=$SG_WORK/deploy.git#v1,$MOPT" || sg_done
check_eq "$(printf '%s\n' "$OLD" "'d-only' f 644 0:0 7 - $(printf 'd only\n' | sha256sum | cut -d' ' -f1)" | sort)" \
	"$(manifest d | sort)" "remounted with another seed, d (not empty) keeps its tree"
sg_umount d
rl_try_mount e "seed=$SG_WORK/deploy.git#no-such-rev"
check_eq "1|1" "$RL_RC|$(grep -c . <<<"$RL_OUT")" "a seed with a bad revision stops the mount with one line ($RL_OUT)"
check "... naming the revision" grep -q "no-such-rev" <<<"$RL_OUT"
check_eq "" "$(sg_mount_line "$(sg_mnt e)")" "... and nothing is mounted"

# ---- every commit of every mirror has one origin: its author, the node that
# made each change it lists; the committer is the mirroring node
check_origins() { # NODE
	local out
	if out=$(git --git-dir="$(sg_data "$1")/mirror.git" log --format='%x00%an|%cn|%(trailers:key=Sigil-Origin,valueonly,separator=%x2C)%n%B' "refs/heads/$1" |
		python3 -c '
import re, sys
node, errs, n, origins = sys.argv[1], [], 0, set()
for c in sys.stdin.read().split("\0")[1:]:
    n += 1
    head, body = c.split("\n", 1)
    an, cn, so = head.split("|")
    origins.add(an)
    if cn != node or so != an:
        errs.append("author %s, committer %s, Sigil-Origin %s" % (an, cn, so))
    for l in body.splitlines():
        m = re.match(r"^(?:added|modified|deleted|renamed) +.+  \((\S+), [0-9T:.Z-]+\)$", l)
        if m and m.group(1) != an:
            errs.append("%s: a change of %s in a commit authored by %s" % (l, m.group(1), an))
if errs:
    print("\n".join(errs[:20]))
    sys.exit(1)
print("%d commits, authors %s" % (n, " ".join(sorted(origins))))' "$1" 2>&1); then
		ok "node $1's mirror: each commit holds the changes of its author only, committed by $1 ($out)"
	else
		fail "node $1's mirror: each commit holds the changes of its author only, committed by $1" "$out"
	fi
}
wait_mirrors "at the end" a b c
for n in a b c; do
	check_origins $n
done
check_eq "a b c" "$(git --git-dir="$DA/mirror.git" log --format=%an refs/heads/a | sort -u | xargs)" \
	"a's mirror names a, b and c as authors"
rc_a=$(git --git-dir="$DA/mirror.git" log --format='%an %(trailers:key=Sigil-Restore,valueonly,separator=%x2C)' refs/heads/a |
	awk 'NF > 1')
check_eq "$(printf '%s\n' "a v1 of $SG_WORK/deploy.git at deploy" "a $REV_OLD of the mirror")" "$rc_a" \
	"a's mirror marks a's two restores that changed something, and nothing else"
rc_b=$(git --git-dir="$DB/mirror.git" log --format='%an %(trailers:key=Sigil-Restore,valueonly,separator=%x2C)' refs/heads/b |
	awk 'NF > 1')
check_eq "$(printf '%s\n' "b main of file://$SG_WORK/deploy.git at deploy" "b $REV_OLD of $RA at /secure/")" "$rc_b" \
	"b's mirror marks b's two restores with Sigil-Restore trailers (author b)"

rl_check_stores a b c
sg_umount a
sg_umount b
sg_umount c
sg_done
