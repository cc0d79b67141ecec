#!/bin/bash
# t0080-enospc.sh: a full disk under the data dir gives the writer ENOSPC and
# corrupts nothing: what was saved stays, the store reopens cleanly, and once
# space is freed writing goes on.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
sg_require_tools sha256sum head mount umount

small=$SG_WORK/small
mkdir -p "$small"
mount -t tmpfs -o size=4m tmpfs "$small" || sg_hard_error "cannot mount a 4 MiB tmpfs"
mnt=$SG_WORK/node/mnt

sg_mount_dirs "$mnt" "$small/data" "node=full" || sg_done
printf 'keep = me\n' >"$MNT/keep.conf"
check_eq "keep = me" "$(cat "$MNT/keep.conf")" "a small file is saved before the disk fills"

# fill with 200 KiB files until a save fails; record only the ones that succeeded
: >"$SG_WORK/saved.sums"
err=
for i in $(seq 1 60); do
	if ! head -c 204800 /dev/urandom >"$MNT/f$i" 2>"$SG_WORK/err"; then
		err=$(cat "$SG_WORK/err")
		break
	fi
	(cd "$MNT" && sha256sum "f$i") >>"$SG_WORK/saved.sums"
done
saved=$(wc -l <"$SG_WORK/saved.sums")
case "$err" in
*"No space left on device"*) ok "the save that did not fit failed with ENOSPC after $saved files" ;;
"") fail "a save failed within 60 files of 200 KiB on a 4 MiB disk" ;;
*) fail "the save that did not fit failed with ENOSPC" "got: $err" ;;
esac
[ "$saved" -ge 5 ] && ok "$saved files were saved before the disk filled" ||
	fail "at least 5 files were saved before the disk filled" "saved: $saved"
sg_daemon_alive "$PID" "the daemon survives a full disk"
check_eq "keep = me" "$(cat "$MNT/keep.conf")" "earlier files read back while the disk is full"
check "saved files read back while the disk is full" \
	sh -c "cd '$MNT' && sha256sum --quiet -c '$SG_WORK/saved.sums'"

sg_umount "$mnt"
sg_mount_dirs "$mnt" "$small/data" "node=full" || sg_done
check_eq "keep = me" "$(cat "$MNT/keep.conf")" "after remount: the first file is intact"
check "after remount: every saved file is intact" \
	sh -c "cd '$MNT' && sha256sum --quiet -c '$SG_WORK/saved.sums'"

# free space inside the store, then write again
check "deleting four files works on the full disk" \
	sh -c "cd '$MNT' && rm f1 f2 f3 f4"
check "after deleting files, a new save succeeds" sh -c "printf 'again\n' >'$MNT/again.conf'"
check_eq "again" "$(cat "$MNT/again.conf" 2>/dev/null)" "the new file reads back"

sg_umount "$mnt"
umount "$small" || fail "unmount the tmpfs"
sg_done
