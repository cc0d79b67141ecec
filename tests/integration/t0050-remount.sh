#!/bin/bash
# t0050-remount.sh: unmount and remount the same data dir: contents, modes
# (with setuid/setgid/sticky), owners, mtimes (ns), symlinks, xattrs, empty
# and nested dirs, odd names and the root's own mode all come back, through
# several cycles of changes, through umount(8) as well as fusermount3 -u, on
# a different mountpoint, and right after a burst of writes. A SIGTERM while
# four writers fsync in a loop stops the daemon cleanly (an fsync the store
# still held is answered before the session goes), and every write an fsync
# acknowledged is there after the remount.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99

sg_require_tools python3 setfattr getfattr sha256sum find touch

sg_mount a || sg_done
M=$MNT

# build a tree inside the mount, every kind of thing the filesystem keeps
mkdir -p "$M/etc/app/conf.d" "$M/etc/empty" "$M/var/lib/a/b/c/d/e" "$M/sp ace/ünï" "$M/tmp"
printf 'listen = 80\n' >"$M/etc/app/app.conf"
printf 'a = 1\n' >"$M/etc/app/conf.d/10-a.conf"
printf 'secret\n' >"$M/etc/app/secret"
: >"$M/etc/app/empty-file"
head -c 300000 /dev/urandom >"$M/var/lib/a/blob"
seq 1 1000 >"$M/var/lib/a/b/c/d/e/numbers"
printf 'utf\n' >"$M/sp ace/ünï/日本.conf"
chmod 600 "$M/etc/app/secret"
chmod 4755 "$M/var/lib/a/blob"
chmod 1777 "$M/tmp"
chmod 2750 "$M/var/lib/a/b"
chmod 700 "$M/etc/empty"
chown 1234:5678 "$M/etc/app/app.conf"
chown 0:42 "$M/etc/app/secret"
chown 99:99 "$M/var/lib/a/b/c"
ln -s conf.d/10-a.conf "$M/etc/app/current"
ln -s /nonexistent/target "$M/etc/dangling"
ln -s ../../etc "$M/var/lib/etc-link"
chown -h 1234:5678 "$M/etc/dangling"
setfattr -n user.role -v primary "$M/etc/app/app.conf"
setfattr -n user.bin -v 0x00010203ff "$M/var/lib/a/blob"
setfattr -n user.dir -v yes "$M/etc/app"
chmod 750 "$M"
i=0
while IFS= read -r -d '' p; do
	i=$((i + 1))
	touch -h -d "@$((1400000000 + i * 3607)).$(printf '%09d' $((i * 1234567 % 1000000000)))" "$p"
done < <(find "$M" -depth -print0)

m1=$(sg_manifest "$M")
check_eq 25 "$(wc -l <<<"$m1")" "the tree has 25 entries (15 dirs, 7 files, 3 symlinks)"
sg_umount a
sg_mount a || sg_done
check_same_text "$m1" "$(sg_manifest "$M")" "remount 1: the whole tree, with all metadata, is unchanged"
check_eq "a = 1" "$(cat "$M/etc/app/current")" "remount 1: a symlink still resolves"
check_eq "primary" "$(getfattr --absolute-names --only-values -n user.role "$M/etc/app/app.conf" 2>&1)" \
	"remount 1: getfattr reads the xattr"

# cycle 2: change things, unmount with umount(8)
printf 'listen = 8080\n' >"$M/etc/app/app.conf"
rm "$M/etc/app/conf.d/10-a.conf"
mv "$M/var/lib/a/b" "$M/var/lib/b-moved"
rmdir "$M/etc/empty"
mkdir "$M/etc/new-empty"
chmod 640 "$M/etc/app/empty-file"
chown 7:8 "$M/var/lib/a/blob"
setfattr -x user.dir "$M/etc/app"
setfattr -n user.new -v added "$M/etc/new-empty"
ln -sfn /etc/hostname "$M/etc/dangling"
touch -d '2011-11-11 11:11:11.111111111' "$M/etc/app/app.conf" "$M/etc/app" "$M/var/lib"
m2=$(sg_manifest "$M")
check_ne "$m1" "$m2" "the changes show in the manifest"
sg_umount a umount
sg_mount a || sg_done
check_same_text "$m2" "$(sg_manifest "$M")" "remount 2 (after umount(8)): the changed tree is exact"
check_not "remount 2: the removed file stays removed" test -e "$M/etc/app/conf.d/10-a.conf"
check_not "remount 2: the moved dir is not at its old name" test -e "$M/var/lib/a/b"
check_eq "1000" "$(tail -n 1 "$M/var/lib/b-moved/c/d/e/numbers")" "remount 2: the moved dir's contents"

# cycle 3: a burst of writes, then unmount at once
for ((i = 0; i < 300; i++)); do
	printf 'burst %d\n' "$i" >"$M/tmp/burst-$i"
done
printf 'last\n' >>"$M/etc/app/app.conf"
m3=$(sg_manifest "$M")
sg_umount a
# cycle 4: the same data dir on another mountpoint
sg_mount_dirs "$SG_WORK/other/mnt" "$(sg_data a)" "node=a" || sg_done
check_same_text "$m3" "$(sg_manifest "$MNT")" "remount 3 (on another mountpoint, right after a burst of 300 writes): exact"
bad=0
for ((i = 0; i < 300; i++)); do
	[ "$(cat "$MNT/tmp/burst-$i" 2>&1)" == "burst $i" ] || bad=$((bad + 1))
done
check_eq 0 "$bad" "remount 3: all 300 burst files have their content"
check_eq "750" "$(stat -c %a "$MNT")" "remount 3: the root keeps its mode 750"
sg_umount "$MNT"

# cycle 5: several quick cycles in a row
for ((c = 0; c < 5; c++)); do
	sg_mount a || break
	printf 'cycle %d\n' "$c" >"$M/cycle-$c"
	sg_umount a || break
done
sg_mount a || sg_done
check_eq "cycle 0 cycle 1 cycle 2 cycle 3 cycle 4" "$(cat "$M"/cycle-* | tr '\n' ' ' | sed 's/ $//')" \
	"5 quick mount/write/unmount cycles keep every write"
check_same_text "$(grep -v "^'\.' " <<<"$m3")" "$(sg_manifest "$M" | grep -v "^'cycle-\|^'\.' ")" \
	"after 5 more cycles the rest of the tree is unchanged"
sg_daemon_alive
sg_umount a


# ---- SIGTERM while writers fsync
sg_mount a || sg_done
mkdir -p "$M/term"
cat >"$SG_WORK/fsyncer.py" <<'PY'
import os, sys
d, i, log = sys.argv[1], sys.argv[2], sys.argv[3]
with open(log, "w") as lg:
    for j in range(1, 100000):
        try:  # no O_TRUNC: the file always holds a whole number, j or j-1
            fd = os.open("%s/f%s" % (d, i), os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, b"%010d\n" % j)
            os.fsync(fd)
            os.close(fd)
        except OSError:
            break
        lg.write("%d\n" % j)  # fsync acknowledged j
        lg.flush()
PY
wpids=()
for i in 1 2 3 4; do
	timeout 60 python3 "$SG_WORK/fsyncer.py" "$M/term" "$i" "$SG_WORK/term-$i.log" &
	wpids+=($!)
done
# fsyncs in flight on every writer: each has had 20 acknowledged
enough() { local i; for i in 1 2 3 4; do [ "$(wc -l <"$SG_WORK/term-$i.log" 2>/dev/null)" -ge 20 ] || return 1; done; }
sg_wait 20 enough || fail "4 writers each get 20 fsyncs through" "$(wc -l "$SG_WORK"/term-*.log)"
dpid=$PID
kill -TERM "$dpid"
if sg_wait 30 sg_dead "$dpid"; then
	ok "SIGTERM while 4 writers fsync: the daemon exits"
else
	fail "SIGTERM while 4 writers fsync: the daemon exits within 30 s"
fi
for p in "${wpids[@]}"; do wait "$p"; done
sg_wait 10 sg_unmounted "$M" || fail "after SIGTERM the mount is gone" "$(sg_mount_line "$M")"
sg_mount a || sg_done
lost=
for i in 1 2 3 4; do
	acked=$(tail -n 1 "$SG_WORK/term-$i.log")
	got=$(cat "$M/term/f$i" 2>/dev/null)
	[ -n "$acked" ] && [[ $got =~ ^[0-9]{10}$ ]] && [ $((10#$got)) -ge "$acked" ] ||
		lost+=" f$i: acked ${acked:-none}, holds ${got:-nothing};"
done
if [ -z "$lost" ]; then
	ok "after the SIGTERM and a remount, each file holds at least the last write its fsync acknowledged ($(for i in 1 2 3 4; do tail -n 1 "$SG_WORK/term-$i.log"; done | tr '\n' ' '))"
else
	fail "after the SIGTERM and a remount, every fsync-acknowledged write is there" "$lost"
fi
sg_umount a

sg_done
