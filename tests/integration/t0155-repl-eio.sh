#!/bin/bash
# t0155-repl-eio.sh: three nodes over TLS; node c's data dir is on an ext4
# image. c saves five files (fsync'd, into its journal) and at once its disk
# fails (EXT4_IOC_SHUTDOWN). c's store then refuses changes and reads; a and
# b go on and converge with each other, whatever of c's five files they got
# before. Once c's disk is back and c restarts, its journal's replay brings
# the five files back, and all three converge: c's files on a and b, what a
# wrote meanwhile on c, stores consistent.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
. "$(dirname "$0")/repl-lib.sh" || exit 99

sg_require_tools python3 openssl mkfs.ext4 mount umount timeout

T=30 # seconds for convergence (well under 5 s expected)
rl_ports 3
rl_pki a b c
PA=${RL_PORT[0]} PB=${RL_PORT[1]} PC=${RL_PORT[2]}
disk=$(sg_data c)
sg_disk_make "$disk" 128M
start_c() { rl_start c "$PC" "$(rl_url "$PA");$(rl_url "$PB")"; }
rl_start a "$PA" "$(rl_url "$PB");$(rl_url "$PC")" || sg_done
rl_start b "$PB" "$(rl_url "$PA");$(rl_url "$PC")" || sg_done
start_c || sg_done
A=$(sg_mnt a) B=$(sg_mnt b) C=$(sg_mnt c)
mkdir "$A/etc"
printf 'from a\n' >"$A/etc/a0.conf"
rl_converged $T a b c -- "three nodes start equal"
pid_c=$(rl_pid c)

# wait out c's checkpoint of what it took (a second after, in a lull), so
# that the five files below are in its journal only when the disk fails
sleep 1.5
check "c saves five files (fsync'd), then its disk fails (EXT4_IOC_SHUTDOWN)" python3 -c "$SG_EXT4_SHUTDOWN"'
mnt, disk = sys.argv[1:]
for i in range(5):
    fd = os.open(os.path.join(mnt, "etc", "c%d.conf" % i), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"from c %d\n" % i)
    os.fsync(fd)
    os.close(fd)
ext4_shutdown(disk, 1)' "$C" "$disk" || sg_done
err=$(python3 -c '
import os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"x\n")
    os.fsync(fd)
    os.close(fd)
except OSError as e:
    print(os.strerror(e.errno))' "$C/etc/after.conf")
check_eq "Input/output error" "$err" "an fsync'd save on c now fails with EIO"
refusing() { grep -q "REFUSING CHANGES AND READS" "$C/.sigil/status" 2>/dev/null; }
check "c's status says it refuses changes and reads" sg_wait 10 refusing

for i in 1 2 3; do printf 'a wrote %d while c was down\n' "$i" >"$A/etc/a$i.conf"; done
rm "$A/etc/a0.conf"
rl_converged $T a b -- "a and b go on and converge"
sg_daemon_alive "$pid_c" "c's daemon runs on"

sg_umount c
check "c's daemon exits after the unmount" sg_wait 30 sg_dead "$pid_c"
check "c's failed disk unmounts" umount "$disk" || sg_done
sg_disk_mount "$disk"
start_c || sg_done
rl_converged $T a b c -- "c restarted: all three converge"
got=$(for n in a b c; do for i in 0 1 2 3 4; do cat "$(sg_mnt $n)/etc/c$i.conf" 2>&1; done; done | sort | uniq -c | awk '{ print $1 }' | sort -u)
check_eq 3 "$got" "each of c's five files, fsync'd before its disk failed, is on all three"
check_eq "a wrote 2 while c was down" "$(cat "$C/etc/a2.conf" 2>&1)" "what a wrote meanwhile is on c"
rl_absent_for 2 "a0.conf, deleted on a meanwhile, is gone on c" "$C/etc/a0.conf"
rl_check_stores a b c
sg_umount a
sg_umount b
sg_umount c
check "c's disk unmounts" umount "$disk"
sg_done
