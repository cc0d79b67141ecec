#!/bin/bash
# t0125-repl-powercut.sh: three nodes over TLS; node c's data dir is on an
# ext4 image. While a and b write new files (a steady stream, with deletes
# and rewrites), the power fails under c (EXT4_IOC_SHUTDOWN, NOLOGFLUSH:
# what ext4 had not committed is lost). c loses changes it had taken from
# its peers and acknowledged, and changes of its own that were not fsync'd.
# With the image mounted again and c restarted, all three converge: what c
# lost comes to it again from a and b, and a change c had acknowledged is
# never missing. Two rounds.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
. "$(dirname "$0")/repl-lib.sh" || exit 99

sg_require_tools python3 openssl mkfs.ext4 mount umount timeout

T=60 # seconds for convergence (a few expected)
rl_ports 3
rl_pki a b c
PA=${RL_PORT[0]} PB=${RL_PORT[1]} PC=${RL_PORT[2]}
disk=$(sg_data c)
sg_disk_make "$disk" 256M
start_c() { rl_start c "$PC" "$(rl_url "$PA");$(rl_url "$PB")"; }
rl_start a "$PA" "$(rl_url "$PB");$(rl_url "$PC")" || sg_done
rl_start b "$PB" "$(rl_url "$PA");$(rl_url "$PC")" || sg_done
start_c || sg_done
A=$(sg_mnt a) B=$(sg_mnt b) C=$(sg_mnt c)
rl_converged $T a b c -- "three nodes start equal"

# stream.py DIR TAG SECONDS: new files, now and then a rewrite or a delete
# of an older one, for SECONDS (no fsync: what replicates is what counts)
cat >"$SG_WORK/stream.py" <<'PY'
import os, sys, time
d, tag, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
os.makedirs(d, exist_ok=True)
end, i = time.time() + secs, 0
while time.time() < end and i < 1000:
    with open(os.path.join(d, "%s%05d" % (tag, i)), "w") as f:
        f.write("%s %d\n" % (tag, i) * (1 + i % 50))
    if i % 7 == 6:
        with open(os.path.join(d, "%s%05d" % (tag, i - 5)), "w") as f:
            f.write("rewritten %d\n" % i)
    if i % 11 == 10:
        os.unlink(os.path.join(d, "%s%05d" % (tag, i - 9)))
    i += 1
PY

for round in 1 2; do
	pid_c=$(rl_pid c)
	python3 "$SG_WORK/stream.py" "$A/r$round/a" a 3 &
	WA=$!
	python3 "$SG_WORK/stream.py" "$B/r$round/b" b 3 &
	WB=$!
	python3 "$SG_WORK/stream.py" "$C/r$round/c" c 1.5 2>/dev/null &
	WC=$!
	sleep 1.5
	sg_disk_fail "$disk" 2 "round $round: the power fails under c while a and b write (NOLOGFLUSH)"
	wait "$WA" "$WB" "$WC" 2>/dev/null
	rl_converged $T a b -- "round $round: a and b converge"
	sg_umount c
	check "round $round: c's daemon exits after the unmount" sg_wait 30 sg_dead "$pid_c"
	check "round $round: c's image unmounts" umount "$disk" || sg_done
	sg_disk_mount "$disk" # ext4 replays its own journal
	start_c || sg_done
	rl_converged $T a b c -- "round $round: c restarted: all three converge"
	rl_check_stores a b c
done
sg_umount a
sg_umount b
sg_umount c
check "c's image unmounts" umount "$disk"
sg_done
