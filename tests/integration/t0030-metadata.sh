#!/bin/bash
# t0030-metadata.sh: metadata read back with stat -c: chmod (including setuid,
# setgid, sticky), chown and chown -h, touch -d with nanoseconds, symlinks
# (ln -s, readlink, relative, absolute, dangling, long targets), user.* xattrs
# (set, get, list, binary and large values, remove) with setfattr/getfattr,
# and POSIX ACLs refused with "Operation not supported" (setfacl and
# system.posix_acl_access) while getfacl and chmod keep working; another
# user's writes clear setuid and setgid.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99

sg_require_tools stat touch chmod chown ln readlink setfattr getfattr setfacl getfacl python3 setpriv perl

sg_mount a || sg_done
A_PID=$PID
cd "$MNT" || sg_hard_error "cd $MNT"

# ---- chmod
printf 'x\n' >f
mkdir d
for m in 600 640 644 755 700 444 000 4755 2755 6750 1644; do
	chmod "$m" f
	check_eq "$(printf %o $((8#$m)))" "$(stat -c %a f)" "chmod $m f; stat -c %a"
done
for m in 755 700 1777 2775 3770; do
	chmod "$m" d
	check_eq "$m" "$(stat -c %a d)" "chmod $m d; stat -c %a"
done
chmod 644 f
chmod u+x,g+w,o-r f
check_eq "-rwxrw----" "$(stat -c %A f)" "chmod u+x,g+w,o-r (symbolic): stat -c %A"
chmod 755 d

# ---- chown
chown 1234:5678 f
check_eq "1234:5678" "$(stat -c %u:%g f)" "chown 1234:5678 f"
chown 4000000000 f
check_eq "4000000000:5678" "$(stat -c %u:%g f)" "chown to a uid above 2^31"
chown :0 f
check_eq "4000000000:0" "$(stat -c %u:%g f)" "chown :0 changes only the group"
chown 0:0 f
chown 42:43 d
check_eq "42:43" "$(stat -c %u:%g d)" "chown a directory"
chmod 4755 f
chown 7:7 f
check_eq "755 7:7" "$(stat -c '%a %u:%g' f)" "chown of a setuid file clears setuid (as on ext4)"
chown 0:0 f d

# ---- touch -d and mtimes
touch -d '2001-02-03 04:05:06.123456789' f
check_eq "2001-02-03 04:05:06.123456789 +0000" "$(stat -c %y f)" "touch -d with nanoseconds: stat -c %y"
check_eq "981173106" "$(stat -c %Y f)" "touch -d: stat -c %Y"
touch -d '1970-01-01 00:00:00' f
check_eq "0" "$(stat -c %Y f)" "touch -d at the epoch"
touch -d '2200-01-01 00:00:01' f
check_eq "7258118401" "$(stat -c %Y f)" "touch -d after 2038"
touch -m -d '2010-10-10 10:10:10' d
check_eq "2010-10-10 10:10:10.000000000 +0000" "$(stat -c %y d)" "touch -d on a directory"
before=$(date +%s)
touch f
after=$(date +%s)
m=$(stat -c %Y f)
[ "$m" -ge "$before" ] && [ "$m" -le "$after" ] && ok "touch (now) sets mtime to the current time" ||
	fail "touch (now) sets mtime to the current time" "mtime $m not in [$before, $after]"
touch -d '2001-01-01' f
printf 'more\n' >>f
m=$(stat -c %Y f)
[ "$m" -ge "$before" ] && ok "a write moves mtime to now" || fail "a write moves mtime to now" "mtime $m"
touch -d '2001-01-01' f
c0=$(stat -c %Z f)
chmod 600 f
[ "$(stat -c %Z f)" -ge "$c0" ] && [ "$(stat -c %Y f)" -eq 978307200 ] &&
	ok "chmod changes ctime, not mtime" || fail "chmod changes ctime, not mtime" "$(stat f)"
touch -r /etc/passwd f
check_eq "$(stat -c %y /etc/passwd)" "$(stat -c %y f)" "touch -r copies a reference file's mtime"

# ---- symlinks
ln -s f rel
ln -s /etc/hostname abs
ln -s no/such/target dangling
ln -s d dirlink
long=$(printf 'x/%.0s' $(seq 1 1000))target
ln -s "$long" longlink
check_eq "f" "$(readlink rel)" "readlink of a relative symlink"
check_eq "/etc/hostname" "$(readlink abs)" "readlink of an absolute symlink"
check_eq "no/such/target" "$(readlink dangling)" "readlink of a dangling symlink"
check_eq "$long" "$(readlink longlink)" "readlink of a 2006-byte target"
check_eq "symbolic link 777 1" "$(stat -c '%F %a %s' rel)" "stat of a symlink: type, mode 777, size = target length"
check_eq "$(cat f)" "$(cat rel)" "reading through a symlink"
check_eq "$(cat /etc/hostname)" "$(cat abs)" "reading through an absolute symlink out of the mount"
check_err "No such file or directory" "reading through a dangling symlink: ENOENT" cat dangling
printf 'in d\n' >dirlink/through
check_eq "in d" "$(cat d/through)" "writing through a symlink to a dir"
chown -h 99:98 rel
check_eq "99:98 0:0" "$(stat -c %u:%g rel) $(stat -c %u:%g f)" "chown -h changes the link, not the target"
touch -h -d '2003-03-03 03:03:03.5' rel
check_eq "2003-03-03 03:03:03.500000000 +0000" "$(stat -c %y rel)" "touch -h sets the symlink's own mtime"
check_err "File exists" "ln -s over an existing name: EEXIST" ln -s f rel
check "ln -sf replaces a symlink" ln -sfn abs rel
check_eq "abs" "$(readlink rel)" "ln -sfn: the new target"
check_eq "$(cat /etc/hostname)" "$(cat rel)" "a symlink to a symlink resolves"
ln -s loop2 loop1
ln -s loop1 loop2
check_err "Too many levels of symbolic links" "a symlink loop: ELOOP" cat loop1

# ---- user.* xattrs
setfattr -n user.color -v blue f
check_eq "blue" "$(getfattr --absolute-names --only-values -n user.color f 2>&1)" "setfattr/getfattr user.color"
setfattr -n user.color -v green f
check_eq "green" "$(getfattr --absolute-names --only-values -n user.color f 2>&1)" "setfattr replaces a value"
setfattr -n user.bin -v 0x00ff00fe0a f
check_eq "0x00ff00fe0a" "$(getfattr --absolute-names -e hex -n user.bin f 2>&1 | sed -n 's/^user.bin=//p')" \
	"a binary value with NUL bytes round-trips"
setfattr -n user.empty f
check_eq 'user.empty=""' "$(getfattr --absolute-names -n user.empty f 2>&1 | sed -n '/^user.empty/p')" "an empty value"
big=$(head -c 3000 /dev/urandom | sha256sum | cut -c1-64)
big=$(printf "$big%.0s" $(seq 1 60)) # 3840 bytes
setfattr -n user.big -v "$big" f
check_eq "$big" "$(getfattr --absolute-names --only-values -n user.big f 2>&1)" "a 3840-byte value"
check_eq "user.big user.bin user.color user.empty" \
	"$(getfattr --absolute-names -d -m - f 2>&1 | sed -n 's/=.*//p' | grep '^user\.' | sort | tr '\n' ' ' | sed 's/ $//')" \
	"getfattr -d -m - lists the four user.* names"
check "setfattr -x removes one" setfattr -x user.color f
check_err "No such attribute" "getfattr of a removed name: ENODATA" getfattr -n user.color f
check_err "No such attribute" "setfattr -x of a missing name: ENODATA" setfattr -x user.nope f
setfattr -n user.where -v dir d
check_eq "dir" "$(getfattr --absolute-names --only-values -n user.where d 2>&1)" "a user.* xattr on a directory"
out=$(python3 -c '
import os, sys
os.setxattr("f", "user.create", b"1", os.XATTR_CREATE)
try:
    os.setxattr("f", "user.create", b"2", os.XATTR_CREATE)
    print("XATTR_CREATE over an existing name succeeded")
except FileExistsError:
    pass
try:
    os.setxattr("f", "user.nothere", b"2", os.XATTR_REPLACE)
    print("XATTR_REPLACE of a missing name succeeded")
except OSError as e:
    if e.errno != 61: print("XATTR_REPLACE:", e)
print(os.getxattr("f", "user.create").decode())
' 2>&1)
check_eq "1" "$out" "XATTR_CREATE fails with EEXIST on an existing name, XATTR_REPLACE with ENODATA on a missing one"
printf 'rewritten\n' >f
check_eq "dir 0x00ff00fe0a" "$(getfattr --absolute-names --only-values -n user.where d) $(getfattr --absolute-names -e hex -n user.bin f 2>&1 | sed -n 's/^user.bin=//p')" \
	"xattrs survive rewriting the file's content"
mv f f2
check_eq "0x00ff00fe0a" "$(getfattr --absolute-names -e hex -n user.bin f2 2>&1 | sed -n 's/^user.bin=//p')" "xattrs follow a rename"
mv f2 f

# ---- POSIX ACLs are refused; tools fall back to the mode
check_err "Operation not supported" "setfacl -m u:1234:r: Operation not supported" setfacl -m u:1234:r f
check_err "Operation not supported" "setfattr -n system.posix_acl_access: Operation not supported" \
	setfattr -n system.posix_acl_access -v 0x0200000001000600ffffffff04000400ffffffff10000400ffffffff20000400ffffffff f
check_err "Operation not supported" "setfacl -d (default ACL on a dir): Operation not supported" setfacl -d -m u:1234:r d
chmod 640 f
out=$(getfacl -p f 2>&1)
[[ $out == *"user::rw-"* && $out == *"group::r--"* && $out == *"other::---"* && $out != *"user:1234"* ]] &&
	ok "getfacl shows the mode as a minimal ACL" || fail "getfacl shows the mode as a minimal ACL" "output: $out"
out=$(getfattr -n system.posix_acl_access f 2>&1)
[[ $out == *"No such attribute"* || $out == *"Operation not supported"* ]] &&
	ok "getfattr system.posix_acl_access: no ACL (ENODATA or EOPNOTSUPP)" ||
	fail "getfattr system.posix_acl_access: no ACL (ENODATA or EOPNOTSUPP)" "output: $out"
check_eq "640" "$(stat -c %a f)" "the mode is untouched by the refused ACL calls"

# ---- listings carry the attributes (READDIRPLUS, for the chunks the kernel
# asks it for): what find and ls show with cold caches is what was set, and
# the kernel gives back every reference its listings took
inodes() { sed -n 's/^sigil_fs_inodes \([0-9][0-9]*\)$/\1/p' "$MNT/.sigil/metrics"; }
mkdir lst
python3 - "$SG_WORK/lst.expected" <<'PY' || fail "make lst"
import os, sys
want = []
for i in range(400):
    p = "lst/f%03d" % i
    with open(p, "wb") as f:
        f.write(b"y" * i)
    mode = 0o600 | ((i % 8) << 3) | (i % 5)
    os.chmod(p, mode)
    os.chown(p, 1000 + i, 2000 + i)
    os.utime(p, ns=(0, (1600000000 + i) * 10**9 + i))
    want.append("f%03d f %d %o %d %d %d.%09d0" % (i, i, mode, 1000 + i, 2000 + i, 1600000000 + i, i))
os.mkdir("lst/sub", 0o750)
os.chown("lst/sub", 7, 8)
os.utime("lst/sub", ns=(0, 1500000000 * 10**9 + 5))
want.append("sub d 0 750 7 8 1500000000.0000000050")
os.symlink("f001", "lst/ln")
os.utime("lst/ln", ns=(0, 1400000000 * 10**9 + 7), follow_symlinks=False)
want.append("ln l 4 777 0 0 1400000000.0000000070")
open(sys.argv[1], "w").write("\n".join(sorted(want)) + "\n")
PY
sync
echo 3 >/proc/sys/vm/drop_caches
before=$(inodes)
find lst -mindepth 1 -printf '%P %y %s %m %U %G %T@\n' | sort >"$SG_WORK/lst.got"
check_same_text "$(cat "$SG_WORK/lst.expected")" "$(cat "$SG_WORK/lst.got")" "find -printf of 402 entries with cold caches: names, types, sizes, modes, owners, mtimes as set"
check_eq "400 402" "$(ls -ln lst | grep -c '^-') $(ls -A lst | wc -l)" "ls -ln lists the 400 files, ls -A the 402 entries"
after_list=$(inodes)
check "the listing left the kernel holding the 402 entries ($before, then $after_list)" test "$after_list" -ge $((before + 402))
echo 3 >/proc/sys/vm/drop_caches
for _ in $(seq 50); do
	[ "$(inodes)" -le "$before" ] && break
	sleep 0.1
done
check_eq "$before" "$(inodes)" "after the caches are dropped, the kernel holds as many inodes as before the listing"
printf 'longer now\n' >lst/f005
chmod 604 lst/f006
check_eq "11 604" "$(find lst -name f005 -printf '%s') $(find lst -name f006 -printf '%m')" "a listing right after a change shows the new size and mode"

# ---- the kernel may keep a directory's listing: what changes in the
# directory shows in the next listing
mkdir cl cl2
touch cl/a cl/b cl/m
check_eq "a b m" "$(ls cl | tr '\n' ' ' | sed 's/ $//')" "ls of a new directory"
check_eq "a b m" "$(ls cl | tr '\n' ' ' | sed 's/ $//')" "ls again (the kernel may answer it)"
touch cl/c
rm cl/a
mv cl/b cl/d
mkdir cl/e
mv cl/m cl2/m
check_eq "c d e" "$(ls cl | tr '\n' ' ' | sed 's/ $//')" "after create, unlink, rename, mkdir and a move out, ls shows them"
check_eq "m" "$(ls cl2)" "and the directory moved into lists it"
check_eq "c d e" "$(find cl -mindepth 1 -printf '%f ' | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/^ //;s/ $//')" "find lists the same"

# ---- default_permissions: the kernel checks modes for other users (a
# second node mounted with allow_other so that other users may enter at all)
cd / || true
chmod 711 "$SG_WORK" "$SG_WORK/a"
mkdir -p "$SG_WORK/b"
chmod 711 "$SG_WORK/b"
sg_mount b allow_other || sg_done
chmod 755 "$MNT"
printf 'secret\n' >"$MNT/private"
chmod 600 "$MNT/private"
printf 'public\n' >"$MNT/public"
chmod 644 "$MNT/public"
as_user() { setpriv --reuid=1234 --regid=1234 --clear-groups "$@"; }
check_err "Permission denied" "mode 600 root file: uid 1234 gets EACCES" as_user cat "$MNT/private"
check_eq "public" "$(as_user cat "$MNT/public" 2>&1)" "mode 644 root file: uid 1234 can read"
check_err "Permission denied" "mode 644 root file: uid 1234 cannot write" as_user sh -c "echo x >>'$MNT/public'"
check_err "Permission denied" "root-owned 755 dir: uid 1234 cannot create" as_user touch "$MNT/new"
mkdir "$MNT/home"
chown 1234:1234 "$MNT/home"
check "uid 1234 creates a file in its own dir" as_user sh -c "echo mine >'$MNT/home/mine'"
check_eq "1234:1234 644" "$(stat -c '%u:%g %a' "$MNT/home/mine")" "the new file belongs to uid 1234"
check_err "Operation not permitted" "uid 1234 cannot chown its file to root" as_user chown 0 "$MNT/home/mine"
check_eq "public" "$(cat "$MNT/public")" "the refused write changed nothing"

# a write strips setuid and setgid as on ext4: the daemon does it for
# write-only handles (direct I/O: the kernel's own stripping is skipped),
# the kernel for read-write ones
for f in su sg sgnx keep rw; do printf 'x\n' >"$MNT/$f"; done
chmod 4777 "$MNT/su"
chmod 2777 "$MNT/sg"
chmod 2767 "$MNT/sgnx"
chmod 6777 "$MNT/keep"
chmod 6777 "$MNT/rw"
as_user sh -c "printf y >>'$MNT/su'; printf y >>'$MNT/sg'; printf y >>'$MNT/sgnx'"
as_user perl -e 'open(my $f, "+<", $ARGV[0]) or die "$ARGV[0]: $!"; print $f "z"; close($f) or die' "$MNT/rw"
printf y >>"$MNT/keep"
check_eq "su 777 3 sg 777 3 sgnx 767 3 keep 6777 3 rw 777 2" \
	"$(cd "$MNT" && stat -c '%n %a %s' su sg sgnx keep rw | tr '\n' ' ' | sed 's/ $//')" \
	"uid 1234's writes clear setuid, setgid (g+x, or not its group); root's keep them"
check_eq "x
y z" "$(cat "$MNT/su") $(head -c 1 "$MNT/rw")" "the writes themselves went through"
sg_umount b

sg_daemon_alive "$A_PID"
sg_done
