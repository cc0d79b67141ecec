#!/bin/bash
# t0065-powercut.sh: the power fails under the data dir in the middle of a
# write storm. The data dir (store, journal, Git mirror) is on an ext4 image;
# a writer saves new files with fsync and logs each one outside the image
# only after its fsync returned; the image is shut down with
# EXT4_IOC_SHUTDOWN and flag 2 (NOLOGFLUSH: ext4's own journal is not
# flushed), so that only what ext4 had committed to the disk survives, as
# after a power cut. Then the daemon is unmounted, the image mounted again
# and sigilfs started on it: every save whose fsync returned is there with
# its content, the store checks consistent, the mirror's repository is whole
# (git fsck), and saves work. Two rounds, the second on the recovered store.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
sg_require_tools python3 git mkfs.ext4 mount umount timeout

CTL=${SIGILCTL:-$(dirname "$SIGILFS")/sigilctl}
[ -x "$CTL" ] || sg_hard_error "sigilctl is not built: $CTL (set SIGILCTL)"
export GIT_CONFIG_NOSYSTEM=1 HOME=$SG_WORK
disk=$SG_WORK/disk mnt=$SG_WORK/node/mnt
LOGS=$SG_WORK/logs # outside the image
mkdir -p "$LOGS"
sg_disk_make "$disk" 256M

# storm.py write DIR LOG: new files, fsync'd; "done NAME" logged after the
# fsync returned. storm.py verify DIR LOG: every logged file, whole.
cat >"$SG_WORK/storm.py" <<'PY'
import hashlib, os, sys, time
mode, d, log = sys.argv[1:4]
def content(name):
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (1 + int.from_bytes(seed[:2], "big") % 300))
if mode == "write":
    lf = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.makedirs(d, exist_ok=True)
    end = time.time() + 60
    try:
        for i in range(100000):
            if time.time() > end:
                break
            name = "f%06d" % i
            fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, content(name))
            os.fsync(fd)
            os.close(fd)
            os.write(lf, ("done %s\n" % name).encode())
    except OSError:
        pass  # the disk failed
    sys.exit(0)
names = [l.split()[1] for l in open(log) if l.startswith("done ") and len(l.split()) == 2]
bad = []
for name in names:
    try:
        with open(os.path.join(d, name), "rb") as f:
            if f.read() != content(name):
                bad.append(name + ": other content")
    except OSError as e:
        bad.append("%s: %s" % (name, e))
print(len(names), len(bad), "; ".join(bad[:5]))
PY

for round in 1 2; do
	sg_mount_dirs "$mnt" "$disk/data" "node=pc,commit_interval=1s" || sg_done
	pid=$PID
	python3 "$SG_WORK/storm.py" write "$MNT/r$round" "$LOGS/r$round" &
	W=$!
	going() { [ "$(grep -c '^done' "$LOGS/r$round" 2>/dev/null)" -ge 300 ]; }
	check "round $round: the storm is under way (300 fsync'd saves)" sg_wait 30 going
	sg_disk_fail "$disk" 2 "round $round: the power fails (EXT4_IOC_SHUTDOWN, NOLOGFLUSH) during the storm"
	check "round $round: the writer stops" sg_wait 30 sg_dead "$W"
	wait "$W" 2>/dev/null
	n=$(grep -c '^done' "$LOGS/r$round")
	sg_umount "$mnt"
	check "round $round: the daemon exits after the unmount" sg_wait 30 sg_dead "$pid"
	check "round $round: the image unmounts" umount "$disk" || sg_done
	sg_disk_mount "$disk" # ext4 replays its own journal
	sg_mount_dirs "$mnt" "$disk/data" "node=pc,commit_interval=1s" || sg_done
	for r in $(seq 1 "$round"); do
		out=$(python3 "$SG_WORK/storm.py" verify "$MNT/r$r" "$LOGS/r$r")
		read -r c b _ <<<"$out"
		if [ "${b:-x}" == 0 ] && [ "${c:-0}" -ge 300 ]; then
			ok "round $round: all $c saves of round $r whose fsync returned are there, whole"
		else
			fail "round $round: every save of round $r whose fsync returned is there, whole" "checked, bad, first: $out"
		fi
	done
	out=$(timeout 60 "$CTL" -d "$disk/data" check 2>&1)
	check_eq 0 "$?" "round $round: sigilctl check finds the store consistent ($(head -n1 <<<"$out"))"
	check "round $round: a save works after the restart" sh -c "printf 'after %s\n' $round >'$MNT/after$round'"
	check "round $round: the mirror's repository is whole (git fsck)" \
		git --git-dir="$disk/data/mirror.git" fsck --no-dangling
	echo "# round $round: $n saves had returned from fsync when the power failed"
	sg_umount "$mnt"
done
check "the image unmounts" umount "$disk"
sg_done
