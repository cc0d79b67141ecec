#!/bin/bash
# t0200-boot.sh: mounting as the system does it: an fstab line through
# mount(8) and mount.fuse3 (mount -T with a test fstab, mount -a), the fstab
# form that names the config file as SOURCE, umount stopping the daemon, a
# second mount on a busy mountpoint refused, contrib/sigilfs.service as the
# build makes it from its .in (ExecStart the installed sigilfs; it verifies,
# and its command mounts what the config file says), and the
# READY/STOPPING handshake a Type=notify systemd unit relies on.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
sg_require_tools mount umount python3 mount.fuse3

# mount(8) gives mount.fuse3 the standard PATH (/usr/local/sbin first), and
# mount.fuse3 runs `sigilfs SOURCE MOUNTPOINT -o OPTIONS` through it: for the
# test, the sigilfs under test stands in /usr/local/sbin for the duration
link=/usr/local/sbin/sigilfs
if [ -e "$link" ] && [ "$(readlink -f "$link")" != "$(readlink -f "$SIGILFS")" ]; then
	fail "an installed $link would shadow the sigilfs under test; remove it to run this test"
	sg_done
fi
mkdir -p /usr/local/sbin
ln -sfn "$SIGILFS" "$link" || sg_hard_error "cannot link $link"
sg_on_teardown rm -f "$link"
mnt=$SG_WORK/boot/mnt
data=$SG_WORK/boot/data
mkdir -p "$mnt"
chmod 755 "$SG_WORK" "$SG_WORK/boot" # another user must reach the mount
sg_track SG_MNTS "$mnt"
sg_track SG_DATAS "$data"
printf '# a test fstab\nsigil-src %s fuse.sigilfs defaults,_netdev,allow_other,data=%s,node=boot 0 0\n' \
	"$mnt" "$data" >"$SG_WORK/fstab"

check "mount -T fstab MOUNTPOINT mounts through mount.fuse3" timeout 60 mount -T "$SG_WORK/fstab" "$mnt"
sg_wait 10 sg_mounted "$mnt" || fail "the fstab mount shows in mountinfo"
line=$(sg_mount_line "$mnt")
case "$line" in
*" - fuse.sigilfs sigil-src "*) ok "mountinfo: type fuse.sigilfs, source sigil-src" ;;
*) fail "mountinfo: type fuse.sigilfs, source sigil-src" "got: $line" ;;
esac
case "$line" in
*allow_other*) ok "allow_other from the fstab line is in effect" ;;
*) fail "allow_other from the fstab line is in effect" "got: $line" ;;
esac
pid=$(cat "$data/sigilfs.pid" 2>/dev/null)
[ -n "$pid" ] && sg_track SG_PIDS "$pid"
printf 'from fstab\n' >"$mnt/boot.conf"
check_eq "from fstab" "$(su nobody -s /bin/sh -c "cat '$mnt/boot.conf'" 2>&1)" "another user reads the mount (allow_other)"

# a second sigilfs on the busy mountpoint is refused, and no daemon is left
out=$(timeout 30 "$SIGILFS" "$mnt" -o "data=$SG_WORK/other/data" 2>&1)
rc=$?
[ $rc -ne 0 ] && ok "a second sigilfs on a mounted mountpoint fails (exit $rc)" ||
	fail "a second sigilfs on a mounted mountpoint fails" "exit 0: $out"
case "$out" in
*"already mounted (fuse.sigilfs sigil-src)"*) ok "it says the mountpoint is already mounted: $out" ;;
*) fail "it says the mountpoint is already mounted" "got: $out" ;;
esac
check_not "no second daemon holds the other data dir" test -s "$SG_WORK/other/data/sigilfs.pid"

check "umount MOUNTPOINT" timeout 30 umount "$mnt"
sg_wait 20 sg_dead "$pid" && ok "umount stops the daemon" || fail "umount stops the daemon" "pid $pid alive"
check "mount -a -T fstab mounts every line" timeout 60 mount -a -T "$SG_WORK/fstab"
sg_wait 10 sg_mounted "$mnt" || fail "mount -a mounted $mnt"
check_eq "from fstab" "$(cat "$mnt/boot.conf" 2>&1)" "what was written is there after umount and mount -a"
pid=$(cat "$data/sigilfs.pid" 2>/dev/null)
[ -n "$pid" ] && sg_track SG_PIDS "$pid"
check "umount again" timeout 30 umount "$mnt"
sg_wait 20 sg_dead "$pid" && ok "the daemon exits again" || fail "the daemon exits again" "pid $pid alive"

# the fstab line of the README and contrib/fstab.example: the config file as
# SOURCE, no sigilfs option; the node, data dir and all come from the file
cmnt=$SG_WORK/cfg/mnt
cdata=$SG_WORK/cfg/data
cconf=$SG_WORK/etc/sigil.conf
mkdir -p "$cmnt" "$SG_WORK/etc"
chmod 755 "$SG_WORK/cfg"
sg_track SG_MNTS "$cmnt"
sg_track SG_DATAS "$cdata"
printf '[sigil]\nnode = from-conf\ndata = %s\nmirror = off\n' "$cdata" >"$cconf"
printf '%s %s fuse.sigilfs defaults,allow_other,_netdev 0 0\n' "$cconf" "$cmnt" >"$SG_WORK/fstab-conf"
check "mount -T fstab: '$cconf $cmnt fuse.sigilfs defaults,allow_other,_netdev 0 0'" \
	timeout 60 mount -T "$SG_WORK/fstab-conf" "$cmnt"
sg_wait 10 sg_mounted "$cmnt" || fail "the config-as-SOURCE mount shows in mountinfo"
pid=$(cat "$cdata/sigilfs.pid" 2>/dev/null)
[ -n "$pid" ] && sg_track SG_PIDS "$pid"
case "$(sg_mount_line "$cmnt")" in
*" - fuse.sigilfs $cconf "*) ok "mountinfo: source is the config file" ;;
*) fail "mountinfo: source is the config file" "got: $(sg_mount_line "$cmnt")" ;;
esac
check "the node is the one the config file names" grep -q "^node *from-conf " "$cmnt/.sigil/status"
check_eq "$cdata" "$(awk '$1 == "data" { print $2 }' "$cmnt/.sigil/status")" "... and so is the data dir"
check "... and the mirror is off, as the file says" grep -q "^mirror *off" "$cmnt/.sigil/status"
printf 'conf\n' >"$cmnt/c"
check_eq "conf" "$(su nobody -s /bin/sh -c "cat '$cmnt/c'" 2>&1)" "another user reads it (allow_other)"
check "umount" timeout 30 umount "$cmnt"
sg_wait 20 sg_dead "$pid" && ok "the daemon exits" || fail "the daemon exits" "pid $pid alive"

# contrib/sigilfs.service, as the build made it from its .in (in the build
# dir, next to sigilfs): ExecStart names sigilfs where `make install` puts
# it; systemd accepts the unit (its ExecStart there: an installed sigilfs,
# or for the test the one under test linked in its place; Documentation=
# the man pages the project installs), and its command line, pointed at
# this test's config and mountpoint, mounts the node the config file describes
unit=${SIGIL_UNIT:-$(dirname "$SIGILFS")/contrib/sigilfs.service}
check "the build made contrib/sigilfs.service from its .in ($unit)" test -f "$unit"
check "... with nothing left to substitute" test -z "$(grep -o '@[A-Za-z_]*@' "$unit")"
execstart=$(sed -n 's/^ExecStart=//p' "$unit")
exe=${execstart%% *}
case $exe in
/*/bin/sigilfs) ok "ExecStart names the installed sigilfs by its absolute path ($exe)" ;;
*) fail "ExecStart names the installed sigilfs by its absolute path" "ExecStart=$execstart" ;;
esac
mkdir -p "$SG_WORK/man/man5" "$SG_WORK/man/man8"
cp "${SIGIL_SRCDIR:-$(dirname "$0")/../..}"/man/*.8 "$SG_WORK/man/man8/"
cp "${SIGIL_SRCDIR:-$(dirname "$0")/../..}"/man/*.5 "$SG_WORK/man/man5/"
if command -v systemd-analyze >/dev/null 2>&1; then
	if [ ! -e "$exe" ] && [ ! -L "$exe" ] && mkdir -p "$(dirname "$exe")" && ln -s "$SIGILFS" "$exe"; then
		sg_on_teardown rm -f "$exe"
	fi
	check "systemd-analyze verify contrib/sigilfs.service" env MANPATH="$SG_WORK/man" systemd-analyze verify "$unit"
fi
case "$execstart" in
*node=* | *data=*) fail "the unit passes no node= or data= (the config file decides)" "ExecStart=$execstart" ;;
*) ok "the unit passes no node= or data= (the config file decides): ExecStart=$execstart" ;;
esac
read -r -a words <<<"$execstart"
argv=("$SIGILFS")
for w in "${words[@]:1}"; do
	case $w in
	/etc/sigil/sigil.conf) argv+=("$cconf") ;;
	/sigil) argv+=("$cmnt") ;;
	*) argv+=("$w") ;;
	esac
done
"${argv[@]}" >"$SG_WORK/unit.log" 2>&1 &
upid=$!
sg_track SG_PIDS "$upid"
sg_wait 15 sg_mounted "$cmnt" && ok "the unit's command mounts (${argv[*]})" ||
	fail "the unit's command mounts" "${argv[*]}" "$(cat "$SG_WORK/unit.log")"
check "... the node the config file names, with its data dir" \
	grep -q "^data *$cdata\$" "$cmnt/.sigil/status"
check_eq "conf" "$(cat "$cmnt/c" 2>&1)" "... holding what the fstab mount wrote"
check "fusermount3 -u" fusermount3 -u "$cmnt"
sg_wait 15 sg_dead "$upid" && ok "the unit's daemon exits" || fail "the unit's daemon exits"
wait "$upid" 2>/dev/null

# the sd_notify handshake: READY=1 once the mount serves, STOPPING=1 on the way out
nmnt=$SG_WORK/notify/mnt
ndata=$SG_WORK/notify/data
mkdir -p "$nmnt"
sg_track SG_MNTS "$nmnt"
sg_track SG_DATAS "$ndata"
sock=$SG_WORK/notify.sock
python3 - "$sock" >"$SG_WORK/notify.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(1.0)
end = time.time() + 60
while time.time() < end:
    try:
        msg = s.recv(4096).decode()
    except socket.timeout:
        continue
    print(msg.replace("\n", " | "), flush=True)
    if "STOPPING=1" in msg:
        break
PY
listener=$!
sg_wait 5 test -S "$sock" || fail "the notify socket is there"
NOTIFY_SOCKET=$sock "$SIGILFS" "$nmnt" -f -o "data=$ndata" >"$SG_WORK/notify.log" 2>&1 &
fg_pid=$!
sg_track SG_PIDS "$fg_pid"
if sg_wait 15 grep -q "READY=1" "$SG_WORK/notify.out"; then
	ok "the daemon reports READY=1 ($(head -n 1 "$SG_WORK/notify.out"))"
else
	fail "the daemon reports READY=1" "$(cat "$SG_WORK/notify.out")" "$(cat "$SG_WORK/notify.log")"
fi
check "when READY=1 arrives, the mount serves" sh -c "printf 'ready\n' >'$nmnt/r' && test \"\$(cat '$nmnt/r')\" = ready"
check "fusermount3 -u" fusermount3 -u "$nmnt"
sg_wait 15 grep -q "STOPPING=1" "$SG_WORK/notify.out" && ok "the daemon reports STOPPING=1" ||
	fail "the daemon reports STOPPING=1" "$(cat "$SG_WORK/notify.out")"
sg_wait 15 sg_dead "$fg_pid" && ok "the foreground daemon exits" || fail "the foreground daemon exits"
wait "$fg_pid" 2>/dev/null
check_eq 0 "$?" "it exits with status 0"
kill "$listener" 2>/dev/null
wait "$listener" 2>/dev/null
sg_done
