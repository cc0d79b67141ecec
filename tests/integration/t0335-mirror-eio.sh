#!/bin/bash
# t0335-mirror-eio.sh: the disk under the Git mirror fails (an ext4 image
# shut down with EXT4_IOC_SHUTDOWN; the store's data dir is elsewhere).
# Saves, deletes and reads through the mount go on as before; the mirror's
# commits fail, and the status, JSON status and metrics say for how long and
# why; sigilctl diff says the mirror cannot commit. The disk comes back at
# the same path while the daemon runs (the image mounted again): the mirror
# opens its repository afresh and commits what it missed, and HEAD's tree
# then holds exactly the files of the mount.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
. "$(dirname "$0")/mirror-lib.sh" || exit 99
sg_require_tools git python3 mkfs.ext4 mount umount timeout sort diff

CTL=${SIGILCTL:-$(dirname "$SIGILFS")/sigilctl}
[ -x "$CTL" ] || sg_hard_error "sigilctl is not built: $CTL (set SIGILCTL)"
export GIT_CONFIG_NOSYSTEM=1 HOME=$SG_WORK
T=15 # seconds the mirror may take to commit (one commit a second expected)
disk=$SG_WORK/disk
REPO=$disk/mirror.git
sg_disk_make "$disk" 128M

sg_mount a "mirror=$REPO,commit_interval=1s" || sg_done

mkdir -p "$MNT/etc"
for i in 1 2 3 4 5; do printf 'a%d\n' "$i" >"$MNT/etc/a$i.conf"; done
check "before the failure, the mirror commits the first files" sg_wait $T caught_up
head0=$(g rev-parse refs/heads/a)

sg_disk_fail "$disk" 1 "the ext4 under the mirror shuts down (EXT4_IOC_SHUTDOWN)" || sg_done

# writes do not wait for the mirror: each of these returns at once
okw=0
for i in $(seq 1 10); do
	printf 'b%d\n' "$i" >"$MNT/etc/b$i.conf" && okw=$((okw + 1))
done
rm "$MNT/etc/a1.conf" && okw=$((okw + 1))
sed -i 's/a2/a2 changed/' "$MNT/etc/a2.conf" && okw=$((okw + 1))
check_eq 12 "$okw" "10 saves, a delete and a sed -i work while the mirror's disk fails"
check_eq "b7|a2 changed" "$(cat "$MNT/etc/b7.conf")|$(cat "$MNT/etc/a2.conf")" "and read back"

if sg_wait $T failing; then
	ok "the JSON status shows the mirror failing ($(mstat commit_failures) failed batches, error: $(mstat error))"
else
	fail "the JSON status shows the mirror failing within $T s" \
		"$(timeout 10 "$CTL" -d "$DATA" status --json 2>&1 | grep -A3 '"mirror"')"
fi
check "the status says FAILING with the error" grep -q "^mirror  *FAILING for [0-9]* s, [1-9][0-9]* failed batches since start: ." \
	"$MNT/.sigil/status"
check "the metrics count the failed batches" \
	grep -qE "^sigil_mirror_commit_failures_total [1-9][0-9]*$" "$MNT/.sigil/metrics"
check "the metrics give how long it has failed" \
	grep -qE "^sigil_mirror_failing_seconds [0-9.]*[1-9][0-9.]*$" "$MNT/.sigil/metrics"
out=$(timeout 60 "$CTL" -d "$DATA" diff HEAD 2>&1)
rc=$?
case "$rc:$out" in
0:*) fail "sigilctl diff fails while the mirror cannot commit" "exit 0: $out" ;;
*"the mirror cannot commit"*) ok "sigilctl diff says the mirror cannot commit (exit $rc)" ;;
*) fail "sigilctl diff says the mirror cannot commit" "exit $rc: $out" ;;
esac
sg_daemon_alive "$PID" "the daemon runs on"

# the disk comes back at the same path: the old mount is detached (the
# mirror's open files keep it until it lets them go) and the image mounted
# again (its shut-down instance writes nothing more)
check "the failed ext4 is detached (umount -l)" umount -l "$disk" || sg_done
sg_disk_mount "$disk"
check "the mirror commits again, without a restart" sg_wait 30 caught_up
check_eq "0|" "$(mstat failing_ms)|$(mstat error)" "the JSON status shows it failing no more"
check "HEAD's tree holds exactly the mount's files" same_tree
ops=$(g log --format=%B "$head0..refs/heads/a")
for want in "deleted etc/a1.conf" "modified etc/a2.conf" "added etc/b10.conf"; do
	check "git log names \"$want\", done while the disk was gone" \
		grep -qE "^${want%% *} +${want#* }  \(a, " <<<"$ops"

done
check "git fsck finds the mirror whole" g fsck --no-dangling
sg_umount a
check "the image unmounts" umount "$disk"
sg_done
