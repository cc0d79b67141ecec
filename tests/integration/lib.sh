# lib.sh: the harness every sigilfs integration test sources (after libfuse's
# test/cases/lib/common.sh): a private work dir, real daemons, polling against
# deadlines instead of sleeping, and an EXIT trap that leaves no mount, no
# daemon and no work dir behind.
#
# A test script (tests/integration/tNNNN-area-what.sh) looks like:
#
#	#!/bin/bash
#	[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
#	. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
#	sg_require_tools sha256sum
#	sg_mount a                      # sets MNT, DATA and PID
#	echo hi >"$MNT/f"
#	check_eq "hi" "$(cat "$MNT/f")" "read back what was written"
#	sg_umount a
#	sg_done                         # prints "N passed, M failed", exits 0 or 1
#
# Every check prints one line, "ok - ..." or "FAIL - ..." followed by indented
# evidence. Exit status: 0 every check passed, 1 a check failed, 77 FUSE is
# absent (no /dev/fuse or no fusermount3), 99 the harness itself broke.
#
# Environment (set by automake's AM_TESTS_ENVIRONMENT): SIGILFS (the daemon),
# SIGIL_SRCDIR, SIGIL_TESTLIB. SIGIL_TEST_TIMEOUT (seconds, default 240) is
# the watchdog's limit for one script. TMPDIR chooses where work dirs go.
# SIGIL_TEST_BIND=1 replaces each sigilfs mount by a bind mount of a local
# directory: a way to check the tests' own logic against ext4 or tmpfs.

set -u
export LC_ALL=C.UTF-8 TZ=UTC
umask 022

SG_NAME=$(basename "$0" .sh)
SG_PASS=0
SG_FAIL=0
SG_DONE=0
SG_WORK=
SG_WD_PID=
SG_MNTS=()  # every mountpoint this script mounted
SG_DATAS=() # every data dir this script used
SG_PIDS=()  # every daemon pid this script saw
declare -A SG_DATA_OF # mountpoint -> the data dir last mounted there
SG_LIMIT=${SIGIL_TEST_TIMEOUT:-240}

# ---- reporting

# ok MSG: record a passed check. Each line ends with the seconds since the
# script started, so that a failure's log shows where the time went.
ok() {
	SG_PASS=$((SG_PASS + 1))
	printf 'ok - %s [%d s]\n' "$1" "$SECONDS"
}

# fail MSG [EVIDENCE-LINE...]: record a failed check, with evidence indented below it.
fail() {
	local l
	SG_FAIL=$((SG_FAIL + 1))
	printf 'FAIL - %s [%d s]\n' "$1" "$SECONDS"
	shift
	for l in "$@"; do
		printf '%s\n' "$l" | head -n 40 | sed 's/^/    /'
	done
	return 1
}

# sg_show STRING: a short, unambiguous rendering of a value for evidence lines.
sg_show() {
	local s=$1
	if [ ${#s} -gt 300 ]; then
		printf '%q... (%d chars)' "${s:0:300}" ${#s}
	else
		printf '%q' "$s"
	fi
}

# check_eq EXPECTED ACTUAL MSG
check_eq() {
	if [ "$1" == "$2" ]; then
		ok "$3"
	else
		fail "$3" "expected: $(sg_show "$1")" "got:      $(sg_show "$2")"
	fi
}

# check_ne UNEXPECTED ACTUAL MSG
check_ne() {
	if [ "$1" != "$2" ]; then
		ok "$3"
	else
		fail "$3" "expected anything but: $(sg_show "$1")"
	fi
}

# check MSG CMD...: CMD must succeed.
check() {
	local msg=$1 out rc
	shift
	out=$("$@" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		ok "$msg"
	else
		fail "$msg" "command: $*" "exit status: $rc" "output: $out"
	fi
}

# check_not MSG CMD...: CMD must fail (any message).
check_not() {
	local msg=$1 out rc
	shift
	out=$("$@" 2>&1)
	rc=$?
	if [ $rc -ne 0 ]; then
		ok "$msg"
	else
		fail "$msg" "command: $*" "expected a failure, got exit status 0" "output: $out"
	fi
}

# check_err TEXT MSG CMD...: CMD must fail and say TEXT (e.g. "File too large").
check_err() {
	local text=$1 msg=$2 out rc
	shift 2
	out=$("$@" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] && [[ $out == *"$text"* ]]; then
		ok "$msg"
	else
		fail "$msg" "command: $*" "expected: a failure saying '$text'" \
			"got: exit status $rc, output: $out"
	fi
}

# check_file_eq EXPECTED-FILE ACTUAL-FILE MSG: same bytes.
check_file_eq() {
	local out
	if out=$(cmp -- "$1" "$2" 2>&1); then
		ok "$3"
	else
		fail "$3" "cmp $1 $2: $out" \
			"sizes: $(stat -c %s -- "$1" 2>&1) vs $(stat -c %s -- "$2" 2>&1)"
	fi
}

# check_same_text EXPECTED ACTUAL MSG: two multi-line texts (manifests); shows a diff.
check_same_text() {
	if [ "$1" == "$2" ]; then
		ok "$3"
	else
		fail "$3" "diff (expected vs got):" \
			"$(diff <(printf '%s\n' "$1") <(printf '%s\n' "$2") | head -n 30)"
	fi
}

# sg_done: tear down (unmount, stop daemons), print the one summary line, exit.
sg_done() {
	sg_teardown
	sg_summary
	[ "$SG_FAIL" -eq 0 ] && exit 0
	exit 1
}

sg_summary() {
	[ "$SG_DONE" -eq 1 ] && return 0
	SG_DONE=1
	printf '%d passed, %d failed\n' "$SG_PASS" "$SG_FAIL"
}

# sg_hard_error MSG: the harness cannot go on (not a failure of sigilfs).
sg_hard_error() {
	printf 'ERROR - %s\n' "$*"
	SG_HARD=1
	exit 99
}

# ---- tools

sg_package_of() {
	case $1 in
	setfattr | getfattr) echo attr ;;
	setfacl | getfacl) echo acl ;;
	fusermount3) echo fuse3 ;;
	mdb_dump | mdb_load | mdb_stat) echo lmdb-utils ;;
	mountpoint | mount | umount | losetup | fallocate) echo util-linux ;;
	mkfs.btrfs | btrfs) echo btrfs-progs ;;
	mkfs.ext4) echo e2fsprogs ;;
	timeout | sha256sum | stat | dd | mkfifo | mknod | cp | mv | ln) echo coreutils ;;
	*) echo "$1" ;;
	esac
}

# sg_require_tools TOOL...: a missing tool is a failure (contrib/install-deps.sh
# installs them all); the script stops there.
sg_require_tools() {
	local t missing=0
	for t in "$@"; do
		if ! command -v "$t" >/dev/null 2>&1; then
			fail "tool '$t' is missing: apt-get install $(sg_package_of "$t")"
			missing=1
		fi
	done
	[ $missing -eq 0 ] || sg_done
}

# ---- a disk that fails: an ext4 image, loop-mounted in the work dir (the
# teardown unmounts it with the work dir's other mounts)

# sg_disk_make DIR SIZE: a new ext4 image of SIZE, $SG_WORK/NAME.img (NAME:
# DIR's last component), loop-mounted at DIR; the script stops if it fails.
# Call it before mounting: a Git mirror on a disk that fails can reach
# libgit2's leak in git_packbuilder_write's error path, which
# tests/lsan.supp matches only with whole stacks (fast_unwind_on_malloc=0,
# set here for the daemons started after it).
sg_disk_make() {
	local img=$SG_WORK/$(basename "$1").img
	export ASAN_OPTIONS="fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
	mkdir -p "$1"
	truncate -s "$2" "$img"
	check "mkfs.ext4 on a $2 image ($(basename "$img"))" mkfs.ext4 -q -F "$img" || sg_done
	sg_disk_mount "$1"
}

# sg_disk_mount DIR: mount DIR's image at DIR again (the disk is back).
sg_disk_mount() {
	check "mount -o loop $(basename "$1").img at $1" \
		mount -o loop "$SG_WORK/$(basename "$1").img" "$1" || sg_done
}

# SG_EXT4_SHUTDOWN: python3 code that defines ext4_shutdown(PATH, FLAG): the
# ext4 holding PATH fails at once (EXT4_IOC_SHUTDOWN, _IOR('X', 125, __u32)):
# every read and write of it gives EIO from then on. FLAG 1 flushes ext4's own
# journal first (a disk that fails); 2 does not, so what ext4 had not
# committed is lost when it is mounted again (a power cut).
SG_EXT4_SHUTDOWN='
import fcntl, os, struct, sys
def ext4_shutdown(path, flag):
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, 0x8004587D, struct.pack("I", flag))
    finally:
        os.close(fd)
'

# sg_disk_fail DIR FLAG MSG: one check MSG that the ext4 at DIR shuts down
# (SG_EXT4_SHUTDOWN's FLAG).
sg_disk_fail() {
	check "$3" python3 -c "$SG_EXT4_SHUTDOWN
ext4_shutdown(sys.argv[1], int(sys.argv[2]))" "$1" "$2"
}

# ---- processes and mounts

# sg_alive PID: PID is a running process (a zombie is not: nothing may reap a
# daemonized sigilfs, and kill -0 succeeds on zombies).
sg_alive() {
	local s
	[ -n "$1" ] || return 1
	s=$(sed -n 's/^State:[[:space:]]*\([A-Za-z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
	[ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]
}

sg_dead() { ! sg_alive "$1"; }

# sg_is_sigilfs PID: PID runs the daemon (guards against a reused pid).
sg_is_sigilfs() {
	local argv0
	argv0=$(tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | head -n 1)
	[[ $(basename -- "${argv0:-x}") == *sigilfs* ]]
}

# sg_mountinfo_path PATH: PATH escaped the way /proc/self/mountinfo writes it.
sg_mountinfo_path() {
	local p=$1
	p=${p//\\/\\134}
	p=${p// /\\040}
	p=${p//$'\t'/\\011}
	p=${p//$'\n'/\\012}
	printf '%s' "$p"
}

# sg_mounted MNT: something is mounted on MNT (reads mountinfo; never touches
# the mount itself, so a hung daemon cannot hang the check).
sg_mounted() {
	SG_M="$(sg_mountinfo_path "$1")" awk '$5 == ENVIRON["SG_M"] { f = 1 } END { exit !f }' /proc/self/mountinfo
}

sg_unmounted() { ! sg_mounted "$1"; }

# sg_mount_line MNT: the mountinfo line of MNT (the topmost one).
sg_mount_line() {
	SG_M="$(sg_mountinfo_path "$1")" awk '$5 == ENVIRON["SG_M"] { l = $0 } END { print l }' /proc/self/mountinfo
}

# sg_wait SECONDS CMD...: poll CMD until it succeeds; 1 if the deadline passed.
sg_wait() {
	local end=$((SECONDS + $1))
	shift
	while :; do
		"$@" && return 0
		[ $SECONDS -ge "$end" ] && return 1
		sleep 0.1
	done
}

# sg_abort_conn MNT: abort MNT's FUSE connection (every pending and future
# request fails with ENOTCONN); the way out of a hung daemon.
sg_abort_conn() {
	local dev
	dev=$(SG_M="$(sg_mountinfo_path "$1")" awk '$5 == ENVIRON["SG_M"] { d = $3 } END { print d }' /proc/self/mountinfo)
	[ -n "$dev" ] || return 0
	[ -w "/sys/fs/fuse/connections/${dev#*:}/abort" ] &&
		echo 1 >"/sys/fs/fuse/connections/${dev#*:}/abort" 2>/dev/null
	return 0
}

sg_track() { # LIST-NAME VALUE: remember VALUE once
	local -n list=$1
	local v
	for v in "${list[@]}"; do
		[ "$v" == "$2" ] && return 0
	done
	list+=("$2")
}

# sg_mount_dirs MNT DATA [OPTS] [SOURCE]: start a daemon serving DATA on MNT
# and wait until the mount serves. Sets MNT, DATA and PID. 0 or 1 (a failed check).
sg_mount_dirs() {
	local mnt=$1 data=$2 opts=${3:-} src=${4:-} out rc pid args
	mkdir -p "$mnt" || sg_hard_error "cannot create $mnt"
	sg_track SG_MNTS "$mnt"
	sg_track SG_DATAS "$data"
	SG_DATA_OF[$mnt]=$data
	if [ -n "${SIGIL_TEST_BIND:-}" ]; then
		# validating the tests themselves: a bind mount of a local dir stands
		# in for sigilfs (sigilfs-specific limits then fail, as they should)
		mkdir -p "$data/tree" && mount --bind "$data/tree" "$mnt" ||
			sg_hard_error "mount --bind $data/tree $mnt"
		MNT=$mnt DATA=$data PID=$$
		ok "bind-mount $mnt (SIGIL_TEST_BIND: no sigilfs)"
		return 0
	fi
	args=("$mnt" -o "data=$data${opts:+,$opts}")
	[ -n "$src" ] && args=("$src" "${args[@]}")
	out=$(timeout 60 "$SIGILFS" "${args[@]}" 2>&1)
	rc=$?
	# remember the daemon even if something below fails, so the trap stops it
	pid=$(cat "$data/sigilfs.pid" 2>/dev/null)
	[ -n "$pid" ] && sg_alive "$pid" && sg_track SG_PIDS "$pid"
	if [ $rc -ne 0 ]; then
		fail "mount $mnt: sigilfs exits 0" "command: $SIGILFS ${args[*]}" \
			"exit status: $rc" "output: $out"
		return 1
	fi
	if ! sg_wait 10 sg_mounted "$mnt"; then
		fail "mount $mnt: mounted within 10 s of sigilfs returning" \
			"/proc/self/mountinfo has no entry for $mnt"
		return 1
	fi
	if ! sg_wait 5 test -s "$data/sigilfs.pid"; then
		fail "mount $mnt: $data/sigilfs.pid written"
		return 1
	fi
	pid=$(cat "$data/sigilfs.pid")
	if ! sg_alive "$pid" || ! sg_is_sigilfs "$pid"; then
		fail "mount $mnt: the pid in $data/sigilfs.pid ($pid) is a live sigilfs"
		return 1
	fi
	sg_track SG_PIDS "$pid"
	MNT=$mnt DATA=$data PID=$pid
	ok "mount $(basename "$(dirname "$mnt")")/$(basename "$mnt") (pid $pid${opts:+, -o $opts})"
}

# sg_mount NAME [OPTS]: mount node NAME: mountpoint $SG_WORK/NAME/mnt, data
# dir $SG_WORK/NAME/data (kept across unmounts, so mounting NAME again is a remount).
sg_mount() {
	sg_mount_dirs "$SG_WORK/$1/mnt" "$SG_WORK/$1/data" "node=$1${2:+,$2}"
}

# sg_mnt NAME: the mountpoint of node NAME; sg_data NAME: its data dir.
sg_mnt() { printf '%s' "$SG_WORK/$1/mnt"; }
sg_data() { printf '%s' "$SG_WORK/$1/data"; }

sg_path_of() { # NAME-or-MNT
	case $1 in
	/*) printf '%s' "$1" ;;
	*) sg_mnt "$1" ;;
	esac
}

# sg_umount NAME-or-MNT [umount]: unmount (fusermount3 -u, or umount(8) if
# asked) and check that the daemon exits. 0 or 1 (a failed check).
sg_umount() {
	local mnt how=${2:-fusermount3} pid i out rc=1
	mnt=$(sg_path_of "$1")
	pid=$(cat "$(sg_data_of_mnt "$mnt")/sigilfs.pid" 2>/dev/null)
	for ((i = 0; i < 40; i++)); do # EBUSY while a straggler closes a file
		if [ "$how" == umount ] || [ -n "${SIGIL_TEST_BIND:-}" ]; then
			out=$(timeout 20 umount "$mnt" 2>&1) && rc=0
		else
			out=$(timeout 20 fusermount3 -u "$mnt" 2>&1) && rc=0
		fi
		[ $rc -eq 0 ] && break
		sg_mounted "$mnt" || break
		sleep 0.25
	done
	if ! sg_wait 10 sg_unmounted "$mnt"; then
		fail "unmount $mnt with $how" "output: $out"
		return 1
	fi
	if [ -n "$pid" ] && ! sg_wait 30 sg_dead "$pid"; then
		fail "unmount $mnt: daemon $pid exits within 30 s"
		return 1
	fi
	ok "unmount $(basename "$(dirname "$mnt")")/$(basename "$mnt") with $how; daemon ${pid:-?} exited"
}

# sg_data_of_mnt MNT: the data dir this script mounted on MNT most recently.
sg_data_of_mnt() {
	printf '%s' "${SG_DATA_OF[$1]:-/nonexistent}"
}

# sg_kill9 NAME-or-MNT: kill -9 the daemon (pid from DATA/sigilfs.pid), then
# fusermount3 -uz its dead mount.
sg_kill9() {
	local mnt data pid out
	mnt=$(sg_path_of "$1")
	data=$(sg_data_of_mnt "$mnt")
	if [ -n "${SIGIL_TEST_BIND:-}" ]; then
		umount -l "$mnt"
		ok "(SIGIL_TEST_BIND) umount -l $mnt instead of kill -9"
		return 0
	fi
	pid=$(cat "$data/sigilfs.pid" 2>/dev/null)
	if [ -z "$pid" ] || ! sg_alive "$pid"; then
		fail "kill -9: $data/sigilfs.pid names a live daemon" "pid: '${pid}'"
		return 1
	fi
	kill -9 "$pid"
	if ! sg_wait 10 sg_dead "$pid"; then
		fail "kill -9 $pid: the daemon dies"
		return 1
	fi
	out=$(timeout 20 fusermount3 -uz "$mnt" 2>&1)
	if ! sg_wait 10 sg_unmounted "$mnt"; then
		fail "kill -9 $pid, then fusermount3 -uz $mnt: unmounted" "output: $out"
		return 1
	fi
	ok "kill -9 daemon $pid and fusermount3 -uz its mount"
}

# sg_daemon_alive [PID] [MSG]: check that a daemon is still running.
sg_daemon_alive() {
	local pid=${1:-$PID}
	if sg_alive "$pid"; then
		ok "${2:-daemon $pid still running}"
	else
		fail "${2:-daemon $pid still running}" "process $pid is gone"
	fi
}

# ---- manifests

# sg_manifest DIR [--seconds] [--no-root] [--no-dir-mtime]: one sorted line per
# entry under DIR: path, type, mode, owner, size (not for dirs), mtime in
# nanoseconds (--seconds: whole seconds), symlink target, sha256 of files and
# user.* xattrs. Two trees with the same manifest have the same content and
# metadata. (Python: one process, exact names, no per-file forks.)
sg_manifest() {
	[ -f "$SG_WORK/manifest.py" ] || cat >"$SG_WORK/manifest.py" <<'PY'
import hashlib, os, stat, sys
root = sys.argv[1]
opts = set(sys.argv[2:])
out = []
def entry(path, rel):
    st = os.lstat(path)
    m = st.st_mode
    kind = "d" if stat.S_ISDIR(m) else "f" if stat.S_ISREG(m) else "l" if stat.S_ISLNK(m) else "?"
    if "--seconds" in opts:
        t = str(st.st_mtime_ns // 1000000000)
    else:
        t = str(st.st_mtime_ns)
    if kind == "d" and "--no-dir-mtime" in opts:
        t = "-"
    f = [repr(rel), kind, "%o" % stat.S_IMODE(m) if kind != "l" else "-",
         "%d:%d" % (st.st_uid, st.st_gid), str(st.st_size) if kind != "d" else "-", t]
    if kind == "l":
        f.append("-> " + repr(os.readlink(path)))
    if kind == "f":
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for b in iter(lambda: fh.read(1 << 20), b""):
                h.update(b)
        f.append(h.hexdigest())
    if kind in "fd":
        xs = sorted(x for x in os.listxattr(path, follow_symlinks=False) if x.startswith("user."))
        for x in xs:
            f.append("%s=%s" % (x, os.getxattr(path, x, follow_symlinks=False).hex()))
    out.append(" ".join(f))
if "--no-root" not in opts:
    entry(root, ".")
for dp, dns, fns in os.walk(root):
    for n in dns + fns:
        p = os.path.join(dp, n)
        entry(p, os.path.relpath(p, root))
out.sort()
print("\n".join(out))
PY
	python3 "$SG_WORK/manifest.py" "$@"
}

# ---- ports

# sg_ports N: print N distinct free TCP ports on 127.0.0.1, reserved for this
# script until it exits. They come from outside the kernel's ephemeral range
# (ip_local_port_range), so no connection's local port takes one before the
# daemon meant for it listens there, however late; and a file per port in
# $SG_PORT_DIR holding this script's pid keeps concurrent tests off it.
SG_PORT_DIR=${SIGIL_PORT_DIR:-/tmp/sigil-ports}
sg_ports() {
	python3 - "$1" "$$" "$SG_PORT_DIR" <<'PY'
import os, random, socket, sys
n, owner, d = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
    lo, hi = map(int, f.read().split())
spans = [(a, b) for a, b in ((1024, lo - 1), (hi + 1, 65535)) if b - a >= 999]
if not spans:
    sys.exit("sg_ports: no 1000 ports outside ip_local_port_range %d-%d" % (lo, hi))
weights = [b - a + 1 for a, b in spans]
got = []
for _ in range(5000):
    if len(got) == n:
        break
    a, b = random.choices(spans, weights)[0]
    p = random.randint(a, b)
    if p in got:
        continue
    path = os.path.join(d, str(p))
    try:
        os.makedirs(d, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except (FileExistsError, FileNotFoundError):
        continue  # reserved by another test (or the dir was just removed)
    os.write(fd, (owner + "\n").encode())
    os.close(fd)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        os.unlink(path)
        continue
    finally:
        s.close()
    got.append(p)
if len(got) != n:
    sys.exit("sg_ports: found %d of %d free ports" % (len(got), n))
print(" ".join(map(str, got)))
PY
}

# sg_release_ports: drop the reservations sg_ports made for this script.
sg_release_ports() {
	local f
	[ -d "$SG_PORT_DIR" ] || return 0
	for f in "$SG_PORT_DIR"/*; do
		[ -f "$f" ] && [ "$(cat "$f" 2>/dev/null)" = "$$" ] && rm -f -- "$f"
	done
	rmdir -- "$SG_PORT_DIR" 2>/dev/null
	return 0
}

# ---- teardown

# sg_teardown: unmount what this script mounted, stop what it started; a
# daemon that had to be killed or a mount that would not go is a failure.
# sg_on_teardown CMD...: run CMD at teardown, after mounts and daemons are
# gone (last registered, first run).
SG_CLEANUP=()
sg_on_teardown() {
	SG_CLEANUP=("$(printf '%q ' "$@")" "${SG_CLEANUP[@]}")
}

sg_teardown() {
	local m p d left=0 jp c
	[ -n "$SG_WORK" ] || return 0
	if [ -n "$SG_WD_PID" ]; then
		kill -TERM "$SG_WD_PID" 2>/dev/null
		wait "$SG_WD_PID" 2>/dev/null
		SG_WD_PID=
	fi
	# the test's own background jobs (bounded loops, but stop them now)
	for jp in $(jobs -p); do
		sg_kill_tree KILL "$jp"
		kill -KILL "$jp" 2>/dev/null
	done
	wait 2>/dev/null
	for m in "${SG_MNTS[@]}"; do
		sg_mounted "$m" || continue
		if ! timeout 20 fusermount3 -u "$m" >/dev/null 2>&1; then
			sg_abort_conn "$m"
			timeout 10 fusermount3 -uz "$m" >/dev/null 2>&1 || umount -l "$m" 2>/dev/null
		fi
	done
	for d in "${SG_DATAS[@]}"; do
		p=$(cat "$d/sigilfs.pid" 2>/dev/null)
		[ -n "$p" ] && sg_alive "$p" && sg_track SG_PIDS "$p"
	done
	for p in "${SG_PIDS[@]}"; do
		sg_alive "$p" && sg_is_sigilfs "$p" || continue
		sg_wait 20 sg_dead "$p" && continue
		fail "teardown: daemon $p did not exit after unmount; killing it"
		kill -TERM "$p" 2>/dev/null
		sg_wait 5 sg_dead "$p" || kill -KILL "$p" 2>/dev/null
	done
	for m in "${SG_MNTS[@]}"; do
		if sg_mounted "$m"; then
			fail "teardown: $m still mounted"
			left=1
		fi
	done
	for c in "${SG_CLEANUP[@]}"; do
		eval "$c" || fail "teardown: $c"
	done
	SG_CLEANUP=()
	sg_release_ports
	for d in "$SG_WORK"/sanitizer/*; do
		[ -s "$d" ] || continue
		fail "sanitizer report from sigilfs: $(basename "$d")" "$(head -n 40 "$d")"
	done
	# anything else a test mounted in its work dir (a small tmpfs, say), deepest first
	while read -r m; do
		[ -n "$m" ] || continue
		sg_abort_conn "$m"
		timeout 10 umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done < <(sg_work_mounts | sort -r)
	if [ $left -eq 0 ] && [ -z "$(sg_work_mounts)" ]; then
		rm -rf -- "$SG_WORK"
	else
		printf 'WARNING - mounts remain; leaving %s\n' "$SG_WORK"
	fi
	SG_WORK=
}

sg_on_exit() {
	local rc=$?
	trap - EXIT
	sg_teardown
	if [ "$SG_DONE" -eq 0 ]; then
		[ "${SG_HARD:-0}" -eq 1 ] || [ "${SG_SIGNALLED:-0}" -eq 1 ] || [ $rc -eq 0 ] ||
			fail "the script stopped early (exit status $rc)"
		sg_summary
	fi
	[ "${SG_HARD:-0}" -eq 1 ] && exit 99
	[ "$SG_FAIL" -gt 0 ] && exit 1
	exit "$rc"
}

sg_on_signal() {
	trap - INT TERM HUP
	SG_SIGNALLED=1
	fail "interrupted by signal $1"
	exit 1
}

# sg_kill_tree SIG PID...: send SIG to the descendants of each PID (deepest
# first), except the watchdog, and not to PID itself.
sg_kill_tree() {
	local sig=$1 p c
	shift
	for p in "$@"; do
		for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do
			[ "$c" == "${SG_WD_SELF:-}" ] && continue
			sg_kill_tree "$sig" "$c"
			kill "-$sig" "$c" 2>/dev/null
		done
	done
	return 0
}

# sg_work_mounts: mountpoints under this script's work dir, from mountinfo.
sg_work_mounts() {
	SG_M="$(sg_mountinfo_path "$SG_WORK")/" awk 'index($5, ENVIRON["SG_M"]) == 1 { print $5 }' /proc/self/mountinfo |
		sed 's/\\040/ /g; s/\\011/\t/g; s/\\012/\n/g; s/\\134/\\/g'
}

# The watchdog: if the script outlives SG_LIMIT, abort its FUSE connections
# (whatever blocks in the mount returns ENOTCONN), stop the script's children
# and TERM the script so its EXIT trap cleans up; if that does not happen,
# KILL it and clean up here.
sg_watchdog() {
	local main=$1 sp m
	SG_WD_SELF=$BASHPID
	trap - EXIT INT HUP
	trap 'kill "$sp" 2>/dev/null; exit 0' TERM
	sleep "$SG_LIMIT" &
	sp=$!
	wait "$sp"
	printf 'FAIL - watchdog: %s still running after %s s; aborting its FUSE connections\n' \
		"$SG_NAME" "$SG_LIMIT"
	while read -r m; do
		sg_abort_conn "$m"
	done < <(sg_work_mounts)
	sg_kill_tree TERM "$main"
	kill -TERM "$main" 2>/dev/null
	sleep 20 &
	sp=$!
	wait "$sp"
	[ -d "/proc/$main" ] || exit 0
	sg_kill_tree KILL "$main"
	kill -KILL "$main" 2>/dev/null
	while read -r m; do
		umount -l "$m" 2>/dev/null
	done < <(sg_work_mounts)
	for m in "$SG_WORK"/*/data/sigilfs.pid; do
		sp=$(cat "$m" 2>/dev/null)
		sg_alive "$sp" && sg_is_sigilfs "$sp" && kill -KILL "$sp"
	done
	[ -z "$(sg_work_mounts)" ] && rm -rf -- "$SG_WORK"
	sg_release_ports
	exit 0
}

# ---- start

if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null 2>&1; then
	echo "SKIP: FUSE is absent (/dev/fuse or fusermount3 missing)"
	exit 77
fi
if [ -z "${SIGILFS:-}" ]; then
	SIGILFS=$(cd "$(dirname "$0")/../.." && pwd)/sigilfs
fi
if [ ! -x "$SIGILFS" ]; then
	echo "ERROR - the daemon $SIGILFS is not built (set SIGILFS)"
	exit 99
fi
SG_WORK=$(mktemp -d "${TMPDIR:-/tmp}/sigil-$SG_NAME.XXXXXX") || {
	echo "ERROR - mktemp -d failed"
	exit 99
}
# A daemonized sigilfs has no stderr: under --enable-sanitizers its reports
# (leaks at exit included) go to files here, and the teardown fails on any.
mkdir -p "$SG_WORK/sanitizer"
export ASAN_OPTIONS="log_path=$SG_WORK/sanitizer/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="log_path=$SG_WORK/sanitizer/ubsan:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# leaks inside Debian's libraries that sigilfs cannot avoid (see the file)
SG_LSAN_SUPP=${SIGIL_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/../.." && pwd)}/tests/lsan.supp
[ -f "$SG_LSAN_SUPP" ] && export LSAN_OPTIONS="suppressions=$SG_LSAN_SUPP:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
trap sg_on_exit EXIT
trap 'sg_on_signal INT' INT
trap 'sg_on_signal TERM' TERM
trap 'sg_on_signal HUP' HUP
sg_watchdog $$ &
SG_WD_PID=$!
printf '# %s: sigilfs %s, work dir %s\n' "$SG_NAME" "$SIGILFS" "$SG_WORK"
