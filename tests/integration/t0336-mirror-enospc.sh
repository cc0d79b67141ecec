#!/bin/bash
# t0336-mirror-enospc.sh: the disk under the Git mirror fills up (a small
# tmpfs; the store's data dir is elsewhere). Saves through the mount go on;
# the mirror's commits fail and the status says so; what a failed commit
# wrote leaves the repository whole (git fsck). Once the disk grows (the
# tmpfs remounted larger), the mirror commits what it missed by itself, and
# HEAD's tree holds exactly the files of the mount.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
. "$(dirname "$0")/mirror-lib.sh" || exit 99
sg_require_tools git python3 mount umount timeout sort

CTL=${SIGILCTL:-$(dirname "$SIGILFS")/sigilctl}
[ -x "$CTL" ] || sg_hard_error "sigilctl is not built: $CTL (set SIGILCTL)"
export GIT_CONFIG_NOSYSTEM=1 HOME=$SG_WORK
# a pack write that fails can reach libgit2's leak that tests/lsan.supp
# matches only with whole stacks
export ASAN_OPTIONS="fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
T=20 # seconds the mirror may take to commit (one commit a second expected)
disk=$SG_WORK/disk
REPO=$disk/mirror.git
mkdir -p "$disk"
mount -t tmpfs -o size=2m tmpfs "$disk" || sg_hard_error "cannot mount a 2 MiB tmpfs"

sg_mount a "mirror=$REPO,commit_interval=1s" || sg_done

mkdir -p "$MNT/etc"
printf 'first\n' >"$MNT/etc/first.conf"
check "before the disk fills, the mirror commits" sg_wait $T caught_up

# 24 files of 256 KiB that do not compress (6 MiB): more than the 2 MiB disk
check "24 saves of 256 KiB through the mount work while the mirror's disk fills" python3 -c '
import os, sys
for i in range(24):
    with open(os.path.join(sys.argv[1], "etc", "big%02d" % i), "wb") as f:
        f.write(os.urandom(262144))' "$MNT" || sg_done
if sg_wait $T failing; then
	ok "the mirror's commits fail and the status says so (error: $(mstat error))"
else
	fail "the mirror's commits fail within $T s and the status says so" \
		"$(timeout 10 "$CTL" -d "$DATA" status --json 2>&1 | grep -A2 '"mirror"')" "df: $(df -k "$disk" | tail -n1)"
fi
check "the repository stays whole while full (git fsck)" g fsck --no-dangling
printf 'small\n' >"$MNT/etc/small.conf"
check_eq "small" "$(cat "$MNT/etc/small.conf")" "a small save works and reads back meanwhile"

check "the mirror's disk grows to 64 MiB (tmpfs remounted)" mount -o remount,size=64m "$disk"
check "the mirror commits what it missed by itself" sg_wait $T caught_up
check "HEAD's tree holds exactly the mount's files" same_tree
check "git fsck finds the mirror whole" g fsck --no-dangling
sg_umount a
sg_done
