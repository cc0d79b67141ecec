#!/bin/bash
# t0085-eio.sh: the disk under the data dir fails (an ext4 image shut down
# with the EXT4_IOC_SHUTDOWN ioctl: from then on every read and write of it
# returns EIO). The save that meets it fails with EIO. Its failed checkpoint
# lost from the store's view the changes since the last one (they are in the
# journal only): the store then refuses every change and every read with
# EIO rather than show an older tree, and says so in its status, JSON status
# and metrics; sigilctl diff names the cause. The daemon neither crashes nor
# hangs and its unmount works. Once the disk
# is back (the image mounted again), every file fsync'd before the failure
# is intact, the failed save is all there or not there at all, the store is
# consistent, and writing goes on.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
sg_require_tools python3 sha256sum mkfs.ext4 mount umount timeout

CTL=${SIGILCTL:-$(dirname "$SIGILFS")/sigilctl}
[ -x "$CTL" ] || sg_hard_error "sigilctl is not built: $CTL (set SIGILCTL)"
disk=$SG_WORK/disk mnt=$SG_WORK/node/mnt
sg_disk_make "$disk" 128M

# save PATH TEXT: write TEXT to PATH and fsync it; prints the error, if any
cat >"$SG_WORK/save.py" <<'PY'
import os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, sys.argv[2].encode())
        os.fsync(fd)
    finally:
        os.close(fd)
except OSError as e:
    print(os.strerror(e.errno))
    sys.exit(1)
PY
save() { python3 "$SG_WORK/save.py" "$@"; }

sg_mount_dirs "$mnt" "$disk/data" "node=eio" || sg_done
mkdir -p "$MNT/etc/app"
: >"$SG_WORK/saved.sums"
for i in $(seq 1 15); do
	save "$MNT/etc/app/f$i.conf" "key$i = $(head -c 300 /dev/urandom | sha256sum | cut -c1-64)
" >/dev/null || break
	(cd "$MNT" && sha256sum "etc/app/f$i.conf") >>"$SG_WORK/saved.sums"
done
check_eq 15 "$(wc -l <"$SG_WORK/saved.sums")" "15 files saved and fsync'd"
# the journal's changes are checkpointed (committed to LMDB) a second after
# the first of them, in a lull: wait that out, so the next ones start anew
sleep 1.5
# Then, in one process and well within that second: five more files saved
# and fsync'd (into the journal only) and the disk fails, with
# EXT4_IOC_SHUTDOWN (_IOR('X', 125, __u32)), flag 1: the ext4 journal is
# flushed, then every read and write of the fs gives EIO.
check "5 files saved and fsync'd, then the ext4 under the data dir shuts down" python3 -c "$SG_EXT4_SHUTDOWN"'
import hashlib
mnt, disk, sums = sys.argv[1:]
with open(sums, "a") as out:
    for i in range(16, 21):
        rel = "etc/app/f%d.conf" % i
        body = ("key%d = %s\n" % (i, os.urandom(32).hex())).encode()
        fd = os.open(os.path.join(mnt, rel), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, body)
        os.fsync(fd)
        os.close(fd)
        out.write("%s  %s\n" % (hashlib.sha256(body).hexdigest(), rel))
ext4_shutdown(disk, 1)' "$MNT" "$disk" "$SG_WORK/saved.sums" || sg_done
check_eq 20 "$(wc -l <"$SG_WORK/saved.sums")" "20 files saved and fsync'd before the disk failed"
check "the disk now fails: a write to it gives EIO" \
	sh -c "! printf x 2>/dev/null >'$disk/probe' && ! ls '$disk/probe' 2>/dev/null"

new="fresh = $(head -c 300 /dev/urandom | sha256sum | cut -c1-64)
"
err=$(save "$MNT/etc/app/new.conf" "$new")
check_eq "Input/output error" "$err" "a save on the failed disk fails with EIO"
err=$(save "$MNT/etc/app/f1.conf" "changed = 1
")
check_eq "Input/output error" "$err" "the next save fails with EIO too: the store refuses changes"
err=$(mkdir "$MNT/etc/newdir" 2>&1)
case $err in
*"Input/output error"*) ok "mkdir fails with EIO as well" ;;
*) fail "mkdir fails with EIO as well" "got: '$err'" ;;
esac
sg_daemon_alive "$PID" "the daemon survives the failed disk"
# the failed checkpoint lost from the store's view what the journal holds
# (the last files saved): it reads nothing rather than an older tree
for f in f20 f1; do
	err=$(cat "$MNT/etc/app/$f.conf" 2>&1 >/dev/null)
	case $err in
	*"Input/output error"*) ok "a read of $f.conf, saved before, fails with EIO" ;;
	*) fail "a read of $f.conf, saved before, fails with EIO" "got: '$err'" ;;
	esac
done
err=$(ls "$MNT/etc/app" 2>&1 >/dev/null)
case $err in
*"Input/output error"*) ok "ls of the directory fails with EIO" ;;
*) fail "ls of the directory fails with EIO" "got: '$err'" ;;
esac

status=$(timeout 20 cat "$MNT/.sigil/status" 2>&1)
case $status in
*"REFUSING CHANGES AND READS"*) ok "the status says the store refuses changes and reads" ;;
*) fail "the status says the store refuses changes and reads" "$status" ;;
esac
check "sigilctl status --json: store.refusing_changes is true" python3 -c '
import json, subprocess, sys
out = subprocess.run([sys.argv[1], "-d", sys.argv[2], "status", "--json"], capture_output=True,
                     text=True, timeout=20)
assert out.returncode == 0, out.stderr
assert json.loads(out.stdout)["store"]["refusing_changes"] is True, out.stdout' "$CTL" "$disk/data"
check "the metrics give sigil_store_refusing_changes 1" \
	grep -qx "sigil_store_refusing_changes 1" "$MNT/.sigil/metrics"
out=$(timeout 60 "$CTL" -d "$disk/data" diff HEAD 2>&1)
rc=$?
case "$rc:$out" in
0:*) fail "sigilctl diff on the refusing store fails" "exit 0: $out" ;;
*"the store refuses changes and reads since a checkpoint failed"*) ok "sigilctl diff says why it cannot run (exit $rc)" ;;
*) fail "sigilctl diff says the store refuses changes and reads" "exit $rc: $out" ;;
esac

pid0=$PID
sg_umount "$mnt"
# (sg_umount cannot read the pid file off the failed disk: wait here)
check "the daemon exits after the unmount" sg_wait 30 sg_dead "$pid0"
check "the failed ext4 unmounts" umount "$disk" || sg_done
sg_disk_mount "$disk"
sg_mount_dirs "$mnt" "$disk/data" "node=eio" || sg_done
check "after the restart: every file fsync'd before the failure is intact" \
	sh -c "cd '$MNT' && sha256sum --quiet -c '$SG_WORK/saved.sums'"
if [ -e "$MNT/etc/app/new.conf" ]; then
	check_eq "$new" "$(cat "$MNT/etc/app/new.conf")" "the failed save is all there"
else
	ok "the failed save is not there at all"
fi
status=$(timeout 20 cat "$MNT/.sigil/status" 2>&1)
case $status in
*"REFUSING CHANGES"*) fail "after the restart, the store takes changes" "$status" ;;
*) ok "after the restart, the status does not say the store refuses changes" ;;
esac
check "after the restart, a save works" save "$MNT/etc/app/again.conf" "again = 1
"
check_eq "again = 1" "$(cat "$MNT/etc/app/again.conf" 2>&1)" "and reads back"
out=$(timeout 60 "$CTL" -d "$disk/data" check 2>&1)
check_eq 0 "$?" "sigilctl check finds the store consistent ($out)"
sg_umount "$mnt"
check "the image unmounts" umount "$disk"
sg_done
