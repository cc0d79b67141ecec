#!/bin/bash
# t0100-repl-basic.sh: three nodes over TLS (each lists the other two, which
# are not up yet when the first starts). What one node does reaches the other
# two: create (empty, small, 2 MiB binary, a burst of 200), edits by sed -i
# and vim -Es, nested dirs, symlinks, chmod, chown, mtimes, user.* xattrs,
# deletes of files and whole dirs, renames of files and of a dir with its
# contents. Editor temporaries (4913, x~, .x.swp, sedXXXXXX, .#x, a dir
# named x~) stay on their node. A node restarted with a one-hour kernel
# cache still sees remote changes at once (the daemon invalidates), by name
# and in listings. Every scenario ends with all three trees equal, file by
# file.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
. "$(dirname "$0")/repl-lib.sh" || exit 99

sg_require_tools python3 openssl vim sed setfattr getfattr sha256sum stat timeout

T=15 # seconds allowed for anything to reach a peer (well under 1 s expected)
rl_ports 3
rl_pki a b c
PA=${RL_PORT[0]} PB=${RL_PORT[1]} PC=${RL_PORT[2]}
rl_start a "$PA" "$(rl_url "$PB");$(rl_url "$PC")" || sg_done
rl_start b "$PB" "$(rl_url "$PA");$(rl_url "$PC")" || sg_done
rl_start c "$PC" "$(rl_url "$PA");$(rl_url "$PB")" || sg_done
A=$(sg_mnt a) B=$(sg_mnt b) C=$(sg_mnt c)
rl_converged $T a b c -- "three empty nodes start equal"

# every daemon thread of its own is named for its role (top -H, ps -L, perf)
names=$(cat /proc/"$(rl_pid a)"/task/*/comm 2>&1 | sort -u)
missing=
for role in writer inval peer server sync mirror folder ctl; do
	grep -qx "sigil-$role" <<<"$names" || missing+=" sigil-$role"
done
if [ -z "$missing" ]; then
	ok "node a's threads are named sigil-writer, -inval, -peer, -server, -sync, -mirror, -folder, -ctl"
else
	fail "node a's threads are named for their roles: missing$missing" "$names"
fi

# ---- create
printf 'hello = 1\n' >"$A/hello.conf"
for n in b c; do
	rl_arrives $T "create on a: hello.conf reaches $n" rl_has "$(sg_mnt $n)/hello.conf" "hello = 1"
done
: >"$B/empty"
head -c 2097152 /dev/urandom >"$SG_WORK/big"
cp "$SG_WORK/big" "$C/big.bin"
for ((i = 0; i < 200; i++)); do
	printf 'burst %d\n' $i >"$A/burst-$i"
done
rl_arrives $T "a 2 MiB file written on c reaches a" cmp -s "$SG_WORK/big" "$A/big.bin"
rl_arrives $T "the last of a burst of 200 files written on a reaches c" rl_has "$C/burst-199" "burst 199"
rl_converged $T a b c -- "create: empty, small, 2 MiB and 200 burst files converge"

# ---- edit: sed -i on b, vim -Es on c (both save through a temporary name)
printf 'port = 80\nname = x\n' >"$A/app.conf"
rl_arrives $T "app.conf reaches b" rl_has "$B/app.conf" $'port = 80\nname = x'
check "sed -i on b saves" sed -i 's/^port = 80$/port = 8080/' "$B/app.conf"
for n in a c; do
	rl_arrives $T "sed -i on b: the edit reaches $n" rl_has "$(sg_mnt $n)/app.conf" $'port = 8080\nname = x'
done
rl_converged $T a b c -- "after sed -i"
check "vim -Es on c (backupcopy=no: renames to app.conf~, writes anew) saves" \
	timeout 30 vim -Es -u NONE -N -i NONE -c 'set backupskip=' -c 'set backupcopy=no' \
	-c '%s/^name = x$/name = vim/' -c 'wq' "$C/app.conf" </dev/null
for n in a b; do
	rl_arrives $T "vim on c: the edit reaches $n" rl_has "$(sg_mnt $n)/app.conf" $'port = 8080\nname = vim'
done
check "vim -Es on a (default settings) saves" \
	timeout 30 vim -Es -u NONE -N -i NONE -c 'set backupskip=' \
	-c '%s/^port = 8080$/port = 9090/' -c 'wq' "$A/app.conf" </dev/null
for n in b c; do
	rl_arrives $T "vim on a: the edit reaches $n" rl_has "$(sg_mnt $n)/app.conf" $'port = 9090\nname = vim'
done
rl_converged $T a b c -- "after vim saves on c and a"

# ---- nested dirs, symlinks, chmod, chown, mtime, xattrs
mkdir -p "$A/etc/app/conf.d/deep/er" "$A/etc/empty"
printf 'a = 1\n' >"$A/etc/app/conf.d/10-a.conf"
printf 'deep\n' >"$A/etc/app/conf.d/deep/er/most.conf"
rl_arrives $T "a nested file made on a reaches c" rl_has "$C/etc/app/conf.d/deep/er/most.conf" deep
ln -s conf.d/10-a.conf "$B/etc/app/current"
ln -s /nonexistent/target "$B/etc/dangling"
ln -s ../../hello.conf "$B/etc/app/up"
rl_arrives $T "a symlink made on b reaches a" test -L "$A/etc/app/current"
check_eq "conf.d/10-a.conf" "$(readlink "$A/etc/app/current")" "symlink target on a"
check_eq "a = 1" "$(cat "$C/etc/app/current" 2>&1)" "the symlink resolves on c"
rl_converged $T a b c -- "nested dirs and symlinks"

chmod 600 "$C/etc/app/conf.d/10-a.conf"
chmod 2750 "$C/etc/app/conf.d/deep"
chmod 4755 "$C/burst-0"
rl_arrives $T "chmod 600 on c reaches a" rl_stat_is %a "$A/etc/app/conf.d/10-a.conf" 600
rl_arrives $T "chmod 4755 on c reaches b" rl_stat_is %a "$B/burst-0" 4755
chown 1234:5678 "$A/hello.conf"
chown -h 77:88 "$A/etc/dangling"
chown 99:0 "$A/etc/app"
rl_arrives $T "chown 1234:5678 on a reaches b" rl_stat_is %u:%g "$B/hello.conf" 1234:5678
rl_arrives $T "chown -h on a symlink on a reaches c" rl_stat_is %u:%g "$C/etc/dangling" 77:88
touch -d @1500000000.123456789 "$B/burst-1"
rl_arrives $T "touch -d (mtime with ns) on b reaches c" \
	rl_stat_is %.9Y "$C/burst-1" 1500000000.123456789
setfattr -n user.role -v primary "$B/hello.conf"
setfattr -n user.bin -v 0x00010203ff "$B/etc/app"
setfattr -n user.gone -v soon "$B/empty"
rl_arrives $T "setfattr user.role on b reaches c" \
	rl_xattr_is "$C/hello.conf" user.role primary
rl_arrives $T "setfattr user.gone on b reaches a" \
	rl_xattr_is "$A/empty" user.gone soon
setfattr -x user.gone "$A/empty"
rl_arrives $T "setfattr -x on a reaches b" \
	rl_no_xattr "$B/empty" user.gone
rl_converged $T a b c -- "chmod, chown, mtime and xattrs"
check_eq "600 2750 4755" "$(stat -c %a "$B/etc/app/conf.d/10-a.conf" "$B/etc/app/conf.d/deep" "$B/burst-0" | tr '\n' ' ' | sed 's/ $//')" \
	"the modes on b after convergence"

# ---- delete
rm "$C/hello.conf"
rm -r "$A/etc/app/conf.d/deep"
rmdir "$B/etc/empty"
for ((i = 100; i < 200; i++)); do
	rm "$B/burst-$i"
done
for n in a b; do
	rl_arrives $T "rm on c: hello.conf disappears on $n" rl_gone "$(sg_mnt $n)/hello.conf"
done
for n in b c; do
	rl_arrives $T "rm -r of a dir on a: it disappears on $n" rl_gone "$(sg_mnt $n)/etc/app/conf.d/deep"
done
rl_arrives $T "rmdir on b: the empty dir disappears on c" rl_gone "$C/etc/empty"
rl_arrives $T "100 files removed on b disappear on a" rl_gone "$A"/burst-1{0..9}{0..9}
check_eq "a = 1" "$(cat "$C/etc/app/current" 2>&1)" "what was not deleted is still there"
rl_converged $T a b c -- "deletes"

# ---- renames: a file, a file over another, a dir with its contents
mv "$B/burst-2" "$B/etc/burst-2-moved"
printf 'new\n' >"$B/app.conf.new"
rl_arrives $T "app.conf.new reaches c" rl_has "$C/app.conf.new" new
mv "$C/app.conf.new" "$C/app.conf"
mv "$A/etc/app" "$A/etc/app2"
for n in a c; do
	rl_arrives $T "mv of a file on b reaches $n" rl_has "$(sg_mnt $n)/etc/burst-2-moved" "burst 2"
done
for n in b c; do
	rl_arrives $T "mv of a dir on a: the old name disappears on $n" rl_gone "$(sg_mnt $n)/etc/app"
	rl_arrives $T "mv of a dir on a: its contents are under the new name on $n" \
		rl_has "$(sg_mnt $n)/etc/app2/conf.d/10-a.conf" "a = 1"
done
for n in a b; do
	rl_arrives $T "mv over an existing file on c reaches $n" rl_has "$(sg_mnt $n)/app.conf" new
done
rl_converged $T a b c -- "renames"
check_eq "conf.d/10-a.conf|a = 1|600" \
	"$(readlink "$B/etc/app2/current")|$(cat "$B/etc/app2/current" 2>&1)|$(stat -c %a "$B/etc/app2/conf.d/10-a.conf")" \
	"the renamed dir keeps its symlink and modes on b"
check_eq "0x00010203ff" "$(getfattr --absolute-names -e hex -n user.bin "$C/etc/app2" 2>/dev/null | sed -n 's/^user.bin=//p')" \
	"the renamed dir keeps its xattr on c"

# ---- editor temporaries stay local
mkdir -p "$A/tmpd"
rl_arrives $T "tmpd reaches b and c" test -d "$B/tmpd" -a -d "$C/tmpd"
TEMPS=(4913 x~ .x.swp sed123456 .#x tmpd/4913 tmpd/app.conf~ tmpd/.app.conf.swp tmpd/.app.conf.swx
	tmpd/sedAbC9_z tmpd/.#app.conf cache~ cache~/inside.conf)
printf 'probe' >"$A/4913"
printf 'backup\n' >"$A/x~"
head -c 4096 /dev/urandom >"$A/.x.swp"
printf 'half-written\n' >"$A/sed123456"
ln -s 'root@host.4242:1700000000' "$A/.#x"
printf 'probe' >"$A/tmpd/4913"
printf 'backup\n' >"$A/tmpd/app.conf~"
printf 'swap' >"$A/tmpd/.app.conf.swp"
printf 'swap' >"$A/tmpd/.app.conf.swx"
printf 'sed' >"$A/tmpd/sedAbC9_z"
ln -s 'root@host.4242:1700000000' "$A/tmpd/.#app.conf"
mkdir "$A/cache~"
printf 'in a local-only dir\n' >"$A/cache~/inside.conf"
printf 'edited again\n' >>"$A/x~"
printf 'after the temporaries\n' >"$A/tmpd/real.conf"
for n in b c; do
	rl_arrives $T "a real change made after the temporaries reaches $n" \
		rl_has "$(sg_mnt $n)/tmpd/real.conf" "after the temporaries"
done
paths=()
for p in "${TEMPS[@]}"; do
	paths+=("$B/$p" "$C/$p")
done
rl_absent_for 3 "no editor temporary (4913, x~, .x.swp, sed??????, .#x, a dir x~) reaches b or c" "${paths[@]}"
missing=
for p in "${TEMPS[@]}"; do
	[ -e "$A/$p" ] || [ -L "$A/$p" ] || missing+=" $p"
done
check_eq "" "$missing" "the temporaries are still there on a"
# a temporary renamed to a real name is a real file from then on
mv "$A/sed123456" "$A/tmpd/from-sed.conf"
rl_arrives $T "a temporary renamed to a real name on a reaches c" rl_has "$C/tmpd/from-sed.conf" "half-written"
for p in "${TEMPS[@]}"; do
	[ "$p" == sed123456 ] && continue
	rm -rf "${A:?}/$p"
done
rl_converged $T a b c -- "editor temporaries: once a drops its own, the trees are equal"

# ---- a node with a one-hour kernel cache sees remote changes at once: only
# the daemon's invalidation of the kernel's names and attributes can do that
sg_umount b
printf 'while b was down\n' >"$A/while-b-down"
rl_start b "$PB" "$(rl_url "$PA")" cache_timeout=3600 || sg_done
rl_arrives $T "b, restarted, catches up with a change made while it was down" \
	rl_has "$B/while-b-down" "while b was down"
# fill b's kernel caches: a name that does not exist, attributes, contents
stat "$B/app.conf" "$B/etc/app2/conf.d/10-a.conf" "$B/burst-3" >/dev/null
cat "$B/app.conf" "$B/burst-3" >/dev/null
test -e "$B/not-yet"
# and listings, which the kernel may keep, with the entries' attributes
ls -lnR "$B/etc" "$B" >/dev/null
printf 'changed on a\n' >"$A/app.conf"
chmod 640 "$A/etc/app2/conf.d/10-a.conf"
rm "$A/burst-3"
printf 'now\n' >"$C/not-yet"
printf 'never looked up on b\n' >"$C/fresh-root"
printf 'never looked up on b\n' >"$C/etc/fresh-name"
listed() { # DIR NAME FORMAT WANT: find -printf FORMAT of DIR/NAME, as listed, is WANT
	[ "$(find "$1" -mindepth 1 -maxdepth 1 -name "$2" -printf "$3")" == "$4" ]
}
# first the listings of names b never looked up: nothing but the
# daemon's invalidation can make the kernel list them again
rl_arrives $T "cached b: a listing of the root shows a file c created there" listed "$B" fresh-root %f fresh-root
rl_arrives $T "cached b: a listing of a directory shows a file c created there" listed "$B/etc" fresh-name %f fresh-name
rl_arrives $T "cached b: new content from a" rl_has "$B/app.conf" "changed on a"
rl_arrives $T "cached b: new mode from a" rl_stat_is %a "$B/etc/app2/conf.d/10-a.conf" 640
rl_arrives $T "cached b: a file deleted on a is gone" rl_gone "$B/burst-3"
rl_arrives $T "cached b: a name looked up before c created it" rl_has "$B/not-yet" now
rl_arrives $T "cached b: a listing shows a's new size" listed "$B" app.conf %s 13
rl_arrives $T "cached b: a listing shows a's new mode" listed "$B/etc/app2/conf.d" 10-a.conf %m 640
rl_arrives $T "cached b: a listing no longer shows the file deleted on a" listed "$B" burst-3 %f ""
rl_arrives $T "cached b: a listing shows the name looked up before c created it" listed "$B" not-yet %f not-yet
rl_converged $T a b c -- "after b's restart with a long cache"

# every change above was made after the one before it on that path had
# arrived: nothing was concurrent, so there is no conflict to record
rl_check_no_conflicts "no node recorded a conflict (no change here was concurrent)" a b c

for n in a b c; do
	sg_daemon_alive "$(rl_pid $n)" "node $n's daemon still running"
done
rl_check_stores a b c
sg_umount a
sg_umount b
sg_umount c
sg_done
