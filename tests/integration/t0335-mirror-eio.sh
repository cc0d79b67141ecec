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
sg_require_tools git python3 mkfs.ext4 mount umount timeout sort diff

CTL=${SIGILCTL:-$(dirname "$SIGILFS")/sigilctl}
[ -x "$CTL" ] || sg_hard_error "sigilctl is not built: $CTL (set SIGILCTL)"
export GIT_CONFIG_NOSYSTEM=1 HOME=$SG_WORK
T=15 # seconds the mirror may take to commit (one commit a second expected)
img=$SG_WORK/ext4.img disk=$SG_WORK/disk
REPO=$disk/mirror.git
mkdir -p "$disk"
truncate -s 128M "$img"
check "mkfs.ext4 on a 128 MiB image" mkfs.ext4 -q -F "$img" || sg_done
check "mount -o loop the ext4 image" mount -o loop "$img" "$disk" || sg_done

sg_mount a "mirror=$REPO,commit_interval=1s" || sg_done
g() { git --git-dir="$REPO" "$@"; }
# mstat KEY: the mirror's KEY from status --json
mstat() {
	timeout 10 "$CTL" -d "$DATA" status --json 2>/dev/null |
		python3 -c '
import json, sys
j = json.load(sys.stdin)
v = j["store"]["version"] if sys.argv[1] == "store" else j["mirror"][sys.argv[1]]
print("" if v is None else v)' "$1"
}
caught_up() { # the mirror holds every store version, and the branch is its head
	local s v h
	s=$(mstat store) v=$(mstat version) h=$(mstat head)
	[ -n "$s" ] && [ "$s" == "$v" ] && [ "$(g rev-parse -q --verify refs/heads/a 2>/dev/null)" == "$h" ]
}
# same_tree: HEAD's files (their paths and contents) are the mount's
same_tree() {
	local want got
	want=$(cd "$MNT" && find . -path ./.sigil -prune -o -type f -print | sed 's|^\./||' | sort |
		while read -r f; do printf '%s %s\n' "$f" "$(git hash-object "$f")"; done)
	got=$(g ls-tree -r refs/heads/a | awk '$4 != ".sigil" { print $4, $3 }' | sort)
	[ "$want" == "$got" ]
}

mkdir -p "$MNT/etc"
for i in 1 2 3 4 5; do printf 'a%d\n' "$i" >"$MNT/etc/a$i.conf"; done
check "before the failure, the mirror commits the first files" sg_wait $T caught_up
head0=$(g rev-parse refs/heads/a)

check "the ext4 under the mirror shuts down (EXT4_IOC_SHUTDOWN)" python3 -c '
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.ioctl(fd, 0x8004587D, struct.pack("I", 1))' "$disk" || sg_done

# writes do not wait for the mirror: each of these returns at once
okw=0
for i in $(seq 1 10); do
	printf 'b%d\n' "$i" >"$MNT/etc/b$i.conf" && okw=$((okw + 1))
done
rm "$MNT/etc/a1.conf" && okw=$((okw + 1))
sed -i 's/a2/a2 changed/' "$MNT/etc/a2.conf" && okw=$((okw + 1))
check_eq 12 "$okw" "10 saves, a delete and a sed -i work while the mirror's disk fails"
check_eq "b7|a2 changed" "$(cat "$MNT/etc/b7.conf")|$(cat "$MNT/etc/a2.conf")" "and read back"

failing() { [ "$(mstat failing_ms)" -gt 0 ] 2>/dev/null; }
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
check "the image mounts again at the same path" mount -o loop "$img" "$disk" || sg_done
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
