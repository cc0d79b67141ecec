#!/bin/bash
# t0001-mount-basic.sh: the daemon's command line, mounting and unmounting
# (fusermount3 -u, umount, the mount.fuse3 form), the data-dir lock, basic
# file operations, a reader seeing a write-only handle's direct writes through
# its cached pages and mapping, repeated ls/stat/cat of unchanged files, and
# threads=N (the FUSE workers: with one, concurrent fsyncs and lookups get
# through).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99

sg_require_tools timeout stat sha256sum mountpoint awk

# ---- command line
out=$("$SIGILFS" --version 2>&1)
rc=$?
[ $rc -eq 0 ] && [[ $out == sigilfs* ]] && ok "sigilfs --version: $out" ||
	fail "sigilfs --version exits 0 and names sigilfs" "exit $rc, output: $out"
out=$("$SIGILFS" --help 2>&1)
rc=$?
# every key of the config file (contrib/sigil.conf shows each one, commented
# out; test_conf holds it to the full list) is an option --help describes
keys=$(sed -n 's/^#\([a-z_]*\) = .*/\1/p' "${SIGIL_SRCDIR:-$(dirname "$0")/../..}/contrib/sigil.conf")
missing=
for k in $keys; do
	grep -qE "^  -o $k=[A-Z]" <<<"$out" || missing+=" $k"
done
if [ $rc -eq 0 ] && [ "$(wc -w <<<"$keys")" -ge 18 ] && [ -z "$missing" ]; then
	ok "sigilfs --help describes every one of the $(wc -w <<<"$keys") config keys as -o KEY=..."
else
	fail "sigilfs --help describes every config key as -o KEY=..." "exit $rc" \
		"keys in contrib/sigil.conf: $(tr '\n' ' ' <<<"$keys")" "missing:$missing"
fi
out=$("$SIGILFS" 2>&1)
check_eq "2|sigilfs: no mountpoint given|Try 'sigilfs --help'." "$?|$(tr '\n' '|' <<<"$out" | sed 's/|$//')" \
	"sigilfs with no mountpoint: exit 2, says so"
mkdir -p "$SG_WORK/nomnt"
out=$(timeout 30 "$SIGILFS" "$SG_WORK/does-not-exist" -o "data=$SG_WORK/nomnt/data" 2>&1)
check_eq "1|sigilfs: mountpoint $SG_WORK/does-not-exist: No such file or directory" "$?|$out" \
	"sigilfs on a missing mountpoint: exit 1, names it"
check "... and makes no data dir" test ! -e "$SG_WORK/nomnt/data"
touch "$SG_WORK/a-file"
out=$(timeout 30 "$SIGILFS" "$SG_WORK/a-file" -o "data=$SG_WORK/nomnt/data" 2>&1)
check_eq "1|sigilfs: mountpoint $SG_WORK/a-file is not a directory" "$?|$out" \
	"sigilfs on a file as mountpoint: exit 1, says so"
check_eq "" "$(sg_mount_line "$SG_WORK/does-not-exist")" "nothing is mounted after a failed start"
out=$(timeout 30 "$SIGILFS" "$SG_WORK/nomnt" -o "data=$SG_WORK/nomnt/data,max_file_size=lots" 2>&1)
rc=$?
[ $rc -ne 0 ] && [ -n "$out" ] && ok "a bad max_file_size is refused with a message ($out)" ||
	fail "a bad max_file_size is refused with a message" "exit $rc, output: $out"
sg_unmounted "$SG_WORK/nomnt" && ok "nothing mounted after a refused option" ||
	fail "nothing mounted after a refused option"

# ---- mount, and what the mount looks like
sg_mount a || sg_done
line=$(sg_mount_line "$MNT")
fstype=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { print $(i + 1); exit } }' <<<"$line")
check_eq "fuse.sigilfs" "$fstype" "mountinfo: type fuse.sigilfs"
[[ $line == *default_permissions* ]] && ok "mountinfo: default_permissions" ||
	fail "mountinfo: default_permissions" "line: $line"
check "mountpoint(1) sees the mount" mountpoint -q "$MNT"
check_eq "directory" "$(stat -c %F "$MNT")" "the root is a directory"
check_eq "" "$(ls -A "$MNT")" "a new node's root is empty"
check "statfs works (stat -f)" stat -f "$MNT"
check "df works" df "$MNT"
check_eq "$PID" "$(cat "$DATA/sigilfs.pid")" "DATA/sigilfs.pid holds the daemon's pid"

# ---- a second daemon on the same data dir is refused
mkdir -p "$SG_WORK/a/mnt2"
out=$(timeout 30 "$SIGILFS" "$SG_WORK/a/mnt2" -o "data=$DATA" 2>&1)
rc=$?
if [ $rc -ne 0 ] && [ -n "$out" ]; then
	ok "a second daemon on the same data dir fails with a message ($out)"
else
	fail "a second daemon on the same data dir fails with a message" "exit $rc, output: $out"
	SG_MNTS+=("$SG_WORK/a/mnt2")
fi
sg_unmounted "$SG_WORK/a/mnt2" && ok "the second daemon mounted nothing" ||
	fail "the second daemon mounted nothing" "$(sg_mount_line "$SG_WORK/a/mnt2")"
sg_daemon_alive "$PID" "the first daemon still serves after the refused second one"

# ---- basic operations
printf 'hello\n' >"$MNT/hello.txt"
check_eq "hello" "$(cat "$MNT/hello.txt")" "write a file, read it back"
check_eq "6 regular file 644 0:0" "$(stat -c '%s %F %a %u:%g' "$MNT/hello.txt")" \
	"a new file: size 6, regular, mode 644 (umask 022), owner root"
check "mkdir" mkdir "$MNT/etc"
check "mkdir -p of nested dirs" mkdir -p "$MNT/etc/app/conf.d"
check_eq "directory 755" "$(stat -c '%F %a' "$MNT/etc/app/conf.d")" "a new dir: directory, mode 755"
printf 'listen 80\n' >"$MNT/etc/app/app.conf"
printf 'a=1\n' >"$MNT/etc/app/conf.d/10-a.conf"
printf 'b=2\n' >"$MNT/etc/app/conf.d/20-b.conf"
check_eq "10-a.conf 20-b.conf" "$(cd "$MNT/etc/app/conf.d" && echo *)" "readdir lists the files, sorted by the shell"
check_eq "$(printf '%s\n' . .. 10-a.conf 20-b.conf)" "$(ls -a "$MNT/etc/app/conf.d")" "ls -a shows . and .."
check_eq "a=1
b=2" "$(cat "$MNT"/etc/app/conf.d/*.conf)" "cat of a glob"
check "rm a file" rm "$MNT/etc/app/conf.d/20-b.conf"
check_not "the removed file is gone" test -e "$MNT/etc/app/conf.d/20-b.conf"
check_err "Directory not empty" "rmdir of a non-empty dir: ENOTEMPTY" rmdir "$MNT/etc/app/conf.d"
check "rm -r a tree" rm -r "$MNT/etc/app/conf.d"
check_not "the removed tree is gone" test -e "$MNT/etc/app/conf.d"
check_err "No such file or directory" "cat of a missing file: ENOENT" cat "$MNT/nope"
check "rename a file" mv "$MNT/hello.txt" "$MNT/etc/hello.txt"
check_eq "hello" "$(cat "$MNT/etc/hello.txt")" "the renamed file keeps its content"
check_err "Is a directory" "writing to a dir: EISDIR" sh -c "echo x >'$MNT/etc'"
check_err "Not a directory" "a file used as a dir: ENOTDIR" mkdir "$MNT/etc/hello.txt/x"
check_err "File exists" "mkdir over an existing dir: EEXIST" mkdir "$MNT/etc"

# ---- a write-only handle writes past the page cache (direct I/O): a reader
# holding the file open, with its pages cached and mapped, sees every write
out=$(python3 - "$MNT/etc/log" <<'PY' 2>&1
import mmap, os, sys
p = sys.argv[1]
w = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(w, b"a" * 5000)
r = os.open(p, os.O_RDONLY)
got = [os.pread(r, 8192, 0) == b"a" * 5000]
m = mmap.mmap(r, 5000, prot=mmap.PROT_READ)
got.append(m[4999:5000] == b"a")
os.write(w, b"b" * 100)  # appended: the cached page holding the old end
got.append(os.pread(r, 8192, 4990) == b"a" * 10 + b"b" * 100)
os.pwrite(w, b"c" * 3, 100)  # overwritten in place, under the mapping
got.append(m[99:104] == b"accca" and os.pread(r, 5, 99) == b"accca")
os.close(w)
got.append(os.fstat(r).st_size == 5100)
print(" ".join("ok" if g else "stale" for g in got))
PY
)
check_eq "ok ok ok ok ok" "$out" "a reader's cached pages and mapping see a write-only handle's writes"

# ---- ls, stat and cat of unchanged files, many times (no timing)
for i in $(seq 1 20); do
	printf 'file %d\nline two\n' "$i" >"$MNT/etc/f$i"
done
want_ls=$(ls -la --time-style=+%s "$MNT/etc")
want_stat=$(stat -c '%n %s %a %u %g %Y %F' "$MNT"/etc/*)
want_cat=$(cat "$MNT"/etc/f*)
bad=0
for ((i = 0; i < 100; i++)); do
	[ "$(ls -la --time-style=+%s "$MNT/etc")" == "$want_ls" ] || { bad=$((bad + 1)); what="ls"; }
	[ "$(stat -c '%n %s %a %u %g %Y %F' "$MNT"/etc/*)" == "$want_stat" ] || { bad=$((bad + 1)); what=stat; }
	[ "$(cat "$MNT"/etc/f*)" == "$want_cat" ] || { bad=$((bad + 1)); what="cat"; }
done
check_eq 0 "$bad" "100 rounds of ls -la, stat and cat of 21 unchanged files give the same answers${what:+ (last mismatch: $what)}"

# ---- unmount with fusermount3 -u; the daemon exits; remount sees the files
sum=$(cd "$MNT" && find . -type f -exec sha256sum {} + | sort)
sg_umount a
check_not "DATA/sigilfs.pid no longer names a live daemon" sg_alive "$(cat "$DATA/sigilfs.pid" 2>/dev/null)"
sg_mount a || sg_done
check_eq "$sum" "$(cd "$MNT" && find . -type f -exec sha256sum {} + | sort)" "files survive unmount and remount"

# ---- umount(8) stops the daemon cleanly too
sg_umount a umount

# ---- the mount.fuse3 form: sigilfs SOURCE MOUNTPOINT -o opts
sg_mount_dirs "$SG_WORK/a/mnt" "$SG_WORK/a/data" "node=a" "sigil-src" || sg_done
line=$(sg_mount_line "$MNT")
src=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { print $(i + 2); exit } }' <<<"$line")
check_eq "sigil-src" "$src" "mount.fuse3 form: the source shows in mountinfo"
check_eq "hello" "$(cat "$MNT/etc/hello.txt")" "mount.fuse3 form: serves the same data dir"
sg_umount a

# ---- mount(8), through mount.fuse3: mount -t fuse 'PROGRAM#SOURCE' (an
# absolute program path; fstab's "fuse.sigilfs" type needs sigilfs installed in PATH)
if command -v mount.fuse3 >/dev/null 2>&1 || [ -x /sbin/mount.fuse3 ]; then
	SG_MNTS+=("$SG_WORK/a/mnt")
	out=$(timeout 60 mount -t fuse "$SIGILFS#sigil-fstab" "$SG_WORK/a/mnt" \
		-o "data=$SG_WORK/a/data" 2>&1)
	rc=$?
	if [ $rc -eq 0 ] && sg_wait 10 sg_mounted "$SG_WORK/a/mnt"; then
		ok "mount -t fuse 'sigilfs#SOURCE' MNT -o data=... (via mount.fuse3) mounts"
		check_eq "hello" "$(cat "$SG_WORK/a/mnt/etc/hello.txt")" "mount(8): serves the data dir"
		sg_umount a
	else
		fail "mount -t fuse 'sigilfs#SOURCE' MNT -o data=... (via mount.fuse3) mounts" "exit $rc, output: $out"
	fi
else
	fail "mount.fuse3 is missing: apt-get install fuse3"
fi


# ---- threads=N: at most N FUSE workers (the threads that keep the program's
# name, beside the main one). With one worker, 4 writers fsyncing at once and
# a reader all get through: the fsyncs do not hold the worker (the store's
# writer thread answers them once the journal write is done). Without
# threads=, one worker per online CPU, at least 2 and at most 16.
fuse_workers() { grep -cx sigilfs /proc/"$1"/task/*/comm | awk -F: '{ n += $NF } END { print n - 1 }'; }
cpus=$(getconf _NPROCESSORS_ONLN)
default_threads=$((cpus < 2 ? 2 : cpus > 16 ? 16 : cpus))
for arg in threads=1 threads=3 ""; do
	n=${arg#threads=}
	[ -z "$arg" ] && n=$default_threads
	sg_mount a "$arg" || sg_done
	grep -qx "fuse        $n worker threads at most" "$MNT/.sigil/status" &&
		grep -qx "sigil_fs_workers $n" "$MNT/.sigil/metrics" &&
		ok "${arg:-default}: the status and the metrics say $n worker threads at most" ||
		fail "${arg:-default}: the status and the metrics say $n worker threads at most" \
			"$(grep -E '^fuse |^sigil_fs_workers' "$MNT/.sigil/status" "$MNT/.sigil/metrics")"
	mkdir -p "$MNT/thr"
	jobs_pids=()
	for i in 1 2 3 4; do
		timeout 60 bash -c 'for j in $(seq 1 25); do
			head -c 1024 /dev/urandom | dd of="$1/thr/f$2" bs=1024 conv=fsync status=none || exit 1
		done' _ "$MNT" "$i" &
		jobs_pids+=($!)
	done
	timeout 60 bash -c 'for j in $(seq 1 200); do ls "$1/thr" >/dev/null && cat "$1/etc/hello.txt" >/dev/null || exit 1; done' _ "$MNT" &
	jobs_pids+=($!)
	bad=0
	for p in "${jobs_pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
	check_eq 0 "$bad" "${arg:-default}: 4 writers (25 fsync'd writes each) and a reader, at once, all finish within 60 s"
	sizes=$(stat -c %s "$MNT"/thr/f* | sort -u | tr '\n' ' ')
	check_eq "1024 " "$sizes" "${arg:-default}: each writer's file holds its last 1 KiB"
	w=$(fuse_workers "$PID")
	[ "$w" -ge 1 ] && [ "$w" -le "$n" ] && ok "${arg:-default}: $w FUSE worker(s) served it (at most $n)" ||
		fail "${arg:-default}: between 1 and $n FUSE workers" "$(cat /proc/"$PID"/task/*/comm | sort | uniq -c)"
	sg_umount a
done

sg_done
