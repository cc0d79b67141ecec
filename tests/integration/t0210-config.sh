#!/bin/bash
# t0210-config.sh: the config file: a good one mounts (named as SOURCE, the
# way fstab passes it, or with -o config=), mount options win over it, and
# each kind of mistake stops the mount before it happens with one message
# naming the file and line, a non-zero exit, no mount, no daemon and no
# store (a TLS file that is not PEM, a listen address the machine lacks or a
# host that does not resolve, a mistyped FUSE option). The SOURCE rule,
# sync_delay reaching the store, the read-only /.sigil (EROFS), and
# log_level holding in syslog after the daemon detaches (a peer that is down
# logged once).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
sg_require_tools python3

conf=$SG_WORK/sigil.conf
mnt=$SG_WORK/n/mnt
mkdir -p "$mnt"
sg_track SG_MNTS "$mnt"

# no_daemon_for DATA: no sigilfs process runs with DATA as its data dir (the
# pid file proves nothing: a daemon that failed early never wrote it).
no_daemon_for() {
	local p
	for p in $(pgrep -x sigilfs) $(pgrep -x lt-sigilfs); do
		tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- "data=$1\(,\|\$\)" && return 1
	done
	return 0
}

# refused: CONFIG-TEXT EXPECTED-MESSAGE-TAIL DESCRIPTION [store]: the mount
# is refused with exactly that one line, nothing is mounted, no daemon runs,
# and (unless "store": a problem found only once the store is open) the data
# dir holds no store.
refused() {
	local text=$1 want=$2 what=$3 store=${4:-} out rc data
	data=$SG_WORK/refused-data
	rm -rf "$data"
	printf '%s\n' "$text" >"$conf"
	out=$(timeout 30 "$SIGILFS" "$conf" "$mnt" -o "data=$data" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] && [ "$out" == "sigilfs: $conf:$want" ]; then
		ok "$what: exit $rc, '$out'"
	else
		fail "$what: refused with 'sigilfs: $conf:$want'" "exit $rc" "got: $out"
	fi
	sg_mounted "$mnt" && fail "$what: nothing is mounted" "$(sg_mount_line "$mnt")"
	sg_wait 5 no_daemon_for "$data" || fail "$what: no daemon runs for $data" "$(pgrep -a sigilfs)"
	if [ -z "$store" ] && [ -e "$data/data.mdb" ]; then
		fail "$what: no store is made before the options are checked" "$(ls -l "$data")"
	fi
	return 0
}

refused $'# comment\n\nnodes = a' "3: unknown key 'nodes'" "an unknown key"
refused $'[sigil]\nnode = a\n[mirror]\n' "3: unknown section [mirror]; keys go at the top or under [sigil]" "an unknown section"
refused $'node = a\ndata = /tmp/x\nnode = b' "3: 'node' set twice (first at line 1)" "a key set twice"
refused $'[sigil]\nmax_file_size = lots' "2: max_file_size: 'lots' is not a size: bytes, with K, M or G (64M)" "a bad size"
refused $'node = a\nmax_offset = 0' "2: max_offset: '0' is not a number of milliseconds from 1 to 3600000" "a bad number"
refused $'node = a b' "1: node: 'a b' is not a node name: 1 to 64 of A-Z a-z 0-9 . _ -" "a bad node name"
refused $'node = a\nlisten = http://x' "2: listen: 'http://x' is not a URL: tls+tcp://HOST:PORT, tcp://HOST:PORT or ipc://PATH" "a bad URL"
refused $'node = a\nlisten = tls+tcp://127.0.0.1:1\ntls_ca = /nonexistent/ca.pem\ntls_cert = /etc/hostname\ntls_key = /etc/hostname' \
	"3: tls_ca: cannot read /nonexistent/ca.pem: No such file or directory" "an unreadable TLS file"
refused $'node = a\nmirror = /etc/hostname' \
	"2: mirror: cannot open or create the Git mirror /etc/hostname: not a bare Git repository, or not writable" \
	"a mirror path that is not a repository" store
refused $'node = a\nsync_delay = 5' \
	"2: sync_delay: '5' is not a delay: 0 (off), or a number and ms or s, at most 1s" "a sync_delay without a unit"
refused $'node = a\nsync_delay = 2s' \
	"2: sync_delay: '2s' is not a delay: 0 (off), or a number and ms or s, at most 1s" "a sync_delay over 1s"
refused $'node = a\nmax_quarantine_bytes = 256MB' \
	"2: max_quarantine_bytes: '256MB' is not a size: bytes, with K, M or G (64M)" "a bad max_quarantine_bytes"

# a TLS file that is there but is not PEM: named with key, file and line
# (mbed TLS would only say "Cryptographic error")
printf '0\202\001\012 DER or anything else\n' >"$SG_WORK/ca.der"
printf -- '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n' >"$SG_WORK/x.pem"
refused "$(printf 'node = a\nlisten = tls+tcp://127.0.0.1:1\ntls_ca = %s\ntls_cert = %s\ntls_key = %s' \
	"$SG_WORK/ca.der" "$SG_WORK/x.pem" "$SG_WORK/x.pem")" \
	"3: tls_ca: $SG_WORK/ca.der is not a PEM file (no '-----BEGIN' line)" "a TLS file that is not PEM"

# an address this machine does not have: the key, where it was set, the address
# (binding sends nothing anywhere)
refused $'node = a\nlisten = tcp://10.99.99.99:17470' \
	"2: listen: cannot listen on tcp://10.99.99.99:17470: Cannot assign requested address" \
	"a listen address this machine does not have"
out=$(timeout 30 "$SIGILFS" "$mnt" -o "data=$SG_WORK/lo-data,node=a,listen=tcp://10.99.99.99:17470" 2>&1)
rc=$?
check_eq "1|sigilfs: -o: listen: cannot listen on tcp://10.99.99.99:17470: Cannot assign requested address" \
	"$rc|$out" "the same as a mount option: exit 1, named as -o"
# a host that does not resolve; in a network namespace of its own the lookup
# fails on the spot, and no query leaves the machine
printf 'node = a\nlisten = tcp://no-such-host.invalid:17470\n' >"$conf"
out=$(timeout 30 unshare -n "$SIGILFS" "$conf" "$mnt" -o "data=$SG_WORK/lo-data" 2>&1)
rc=$?
if [ $rc -eq 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] &&
	[[ $out == "sigilfs: $conf:2: listen: cannot listen on tcp://no-such-host.invalid:17470: host 'no-such-host.invalid': "?* ]]; then
	ok "a listen host that does not resolve: one line, exit 1 ($out)"
else
	fail "a listen host that does not resolve: one line naming file, line, key and host" "exit $rc" "got: $out"
fi
check "... and no store was made" test ! -e "$SG_WORK/lo-data/data.mdb"

# a mistyped FUSE option (nodes= for node=) is refused before a store is made:
# otherwise the store gets a node id of its own, and the corrected mount fails
# for ever (SIGIL-STORE-NODE)
tdata=$SG_WORK/typo-data
out=$(timeout 30 "$SIGILFS" "$mnt" -o "data=$tdata,nodes=x" 2>&1)
rc=$?
if [ $rc -ne 0 ] && [[ $out == *"unknown option"*"nodes=x"* ]]; then
	ok "-o nodes=x is refused, naming the option: exit $rc"
else
	fail "-o nodes=x is refused, naming the option" "exit $rc" "got: $out"
fi
sg_unmounted "$mnt" && ok "... nothing is mounted" || fail "... nothing is mounted" "$(sg_mount_line "$mnt")"
check "... and no data dir or store was made" test ! -e "$tdata/data.mdb" -a ! -e "$tdata/lock"
sg_mount_dirs "$mnt" "$tdata" "node=x" || sg_done
check_eq "x ($(python3 -c '
import sys
h = 0xcbf29ce484222325
for b in b"x":
    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
print("%016x" % h)'))" "$(sed -n 's/^node *//p' "$MNT/.sigil/status")" \
	"the corrected -o node=x mounts, with the id of node x"
sg_umount "$mnt"

# a port in use, held by another process on 127.0.0.1
port=$(sg_ports 1) || sg_hard_error "no free port"
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $port)); s.listen(1); time.sleep(30)" &
holder=$!
sg_wait 5 python3 -c "import socket; socket.create_connection(('127.0.0.1', $port)).close()" ||
	fail "the port holder listens on $port"
refused "$(printf 'node = a\nlisten = tcp://127.0.0.1:%s' "$port")" "2: listen: tcp://127.0.0.1:$port is in use" "a port in use"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null

# a missing config file named explicitly is an error; the default may be absent
out=$(timeout 30 "$SIGILFS" "$mnt" -o "data=$SG_WORK/d0,config=$SG_WORK/none.conf" 2>&1)
rc=$?
[ $rc -ne 0 ] && [ "$out" == "sigilfs: $SG_WORK/none.conf: cannot read: No such file or directory" ] &&
	ok "a missing config named by config= is an error: '$out'" ||
	fail "a missing config named by config= is an error" "exit $rc: $out"

# a good file: named as SOURCE, as fstab does; a mount option wins over it
printf '# a good one\n[sigil]\nnode = "from-file"\ndata = %s\ncache_timeout = 2.5\n' "$SG_WORK/good-data" >"$conf"
sg_mount_dirs "$mnt" "$SG_WORK/good-data" "" "$conf" || sg_done
check "the status file shows the node named in the file" grep -q "from-file" "$MNT/.sigil/status"
check_eq "$SG_WORK/good-data" "$(awk '$1 == "data" { print $2 }' "$MNT/.sigil/status")" "the data dir from the file"
sg_umount "$mnt"
sg_mount_dirs "$mnt" "$SG_WORK/other-data" "node=from-option" "$conf" || sg_done
check "a mount option wins over the file (node)" grep -q "from-option" "$MNT/.sigil/status"
check_eq "$SG_WORK/other-data" "$(awk '$1 == "data" { print $2 }' "$MNT/.sigil/status")" "a mount option wins over the file (data)"
sg_umount "$mnt"

# ---- SOURCE: a SOURCE naming an existing regular file is the config file,
# with or without a '/'; one with a '/' that names no file is an error; any
# other SOURCE is only the name in mount listings
printf '[sigil]\nnode = rel-src\ndata = %s\n' "$SG_WORK/rel-data" >"$SG_WORK/rel.conf"
cd "$SG_WORK" || sg_hard_error "cd $SG_WORK"
sg_mount_dirs "$mnt" "$SG_WORK/rel-data" "" rel.conf
cd / || sg_hard_error "cd /"
check "SOURCE rel.conf (no '/', run where it is): the file is read (node)" \
	grep -q "^node *rel-src " "$mnt/.sigil/status"
check_eq "$SG_WORK/rel-data" "$(awk '$1 == "data" { print $2 }' "$mnt/.sigil/status")" \
	"... and its data dir is used"
sg_umount "$mnt"
sg_mount_dirs "$mnt" "$SG_WORK/name-data" "node=by-name" "rel.conf" || sg_done
check "SOURCE rel.conf run elsewhere, no such file: only a name, the node mounts" \
	grep -q "^node *by-name " "$MNT/.sigil/status"
check "... shown as the source in mountinfo" grep -q " - fuse.sigilfs rel.conf " <<<"$(sg_mount_line "$mnt")"
sg_umount "$mnt"
out=$(timeout 30 "$SIGILFS" "$SG_WORK/none.conf" "$mnt" -o "data=$SG_WORK/d0" 2>&1)
rc=$?
check_eq "2|sigilfs: SOURCE $SG_WORK/none.conf, the config file: No such file or directory" "$rc|$out" \
	"a SOURCE with a '/' that names no file is refused"

# ---- sync_delay reaches the store: saves acknowledged before their commit
# are counted (sigil_store_deferred_total) by default and never with 0
metric() { # NAME: its value in the mount's metrics
	awk -v n="$1" '$1 == n { print $2 }' "$MNT/.sigil/metrics"
}
sg_mount_dirs "$mnt" "$SG_WORK/sd-data" "node=sd,sync_delay=0" || sg_done
for i in 1 2 3 4 5; do printf '%s\n' "$i" >"$MNT/f$i"; done
check_eq "5" "$(cat "$MNT"/f* | wc -l)" "sync_delay=0: five saves"
check_eq "0" "$(metric sigil_store_deferred_total)" "sync_delay=0: no save acknowledged before its commit"
sg_umount "$mnt"
sg_mount_dirs "$mnt" "$SG_WORK/sd-data" "node=sd" || sg_done
for i in 1 2 3 4 5; do printf 'again %s\n' "$i" >"$MNT/f$i"; done
d=$(metric sigil_store_deferred_total)
[ "${d:-0}" -ge 5 ] && ok "default sync_delay: the saves were acknowledged before their commit ($d)" ||
	fail "default sync_delay: the saves were acknowledged before their commit" "deferred: '$d'"
check_eq "0" "$(metric sigil_store_lost_total)" "... and none was lost"
check "... and each is on disk after fsync" python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"synced\n"); os.fsync(fd); os.close(fd)' "$MNT/f1"
sg_umount "$mnt"

# ---- the read-only /.sigil: every change to it or in it is refused with EROFS
# (chmod, chown and times with EPERM, as t0040 checks for touch)
sg_mount_dirs "$mnt" "$SG_WORK/ro-data" "node=ro" || sg_done
printf 'x\n' >"$MNT/plain"
mkdir "$MNT/dir"
ro() { # MSG CMD...: CMD fails saying "Read-only file system"
	check_err "Read-only file system" "/.sigil: $1" "${@:2}"
}
ro "rm .sigil/version" rm -f "$MNT/.sigil/version"
ro "rmdir .sigil" rmdir "$MNT/.sigil"
ro "rmdir .sigil/lost" rmdir "$MNT/.sigil/lost"
ro "rm -r .sigil" rm -rf "$MNT/.sigil"
ro "mv .sigil/status out of it" mv "$MNT/.sigil/status" "$MNT/status-copy"
ro "mv .sigil away" mv -T "$MNT/.sigil" "$MNT/sigil-moved"
ro "mv a directory over .sigil" mv -T "$MNT/dir" "$MNT/.sigil"
ro "mv a file into .sigil" mv "$MNT/plain" "$MNT/.sigil/"
ro "mv over .sigil/metrics" mv -T "$MNT/plain" "$MNT/.sigil/metrics"
ro "ln .sigil/status elsewhere" ln "$MNT/.sigil/status" "$MNT/hard"
ro "ln a file into .sigil" ln "$MNT/plain" "$MNT/.sigil/hard"
ro "touch .sigil/new" touch "$MNT/.sigil/new"
ro "mkdir .sigil/new" mkdir "$MNT/.sigil/new"
ro "mkfifo .sigil/fifo" mkfifo "$MNT/.sigil/fifo"
ro "ln -s into .sigil" ln -s x "$MNT/.sigil/link"
ro "setfattr on .sigil/status" setfattr -n user.k -v v "$MNT/.sigil/status"
ro "setfattr on .sigil" setfattr -n user.k -v v "$MNT/.sigil"
ro "setfattr -x on .sigil/status" setfattr -x user.k "$MNT/.sigil/status"
ro "truncate(2) of .sigil/status" python3 -c 'import os, sys; os.truncate(sys.argv[1], 0)' "$MNT/.sigil/status"
ro "open .sigil/version for writing" sh -c "printf x >>'$MNT/.sigil/version'"
check_err "Operation not permitted" "/.sigil: chmod .sigil/status: EPERM" chmod 600 "$MNT/.sigil/status"
check_eq "sigilfs" "$(cut -d' ' -f1 "$MNT/.sigil/version")" "/.sigil/version still reads"
check_eq "x" "$(cat "$MNT/plain")" "the file that was to move is still in place"
check_eq "dir plain" "$(ls "$MNT" | tr '\n' ' ' | sed 's/ $//')" "nothing was made at the root"
sg_umount "$mnt"

# ---- log_level holds after the daemon detaches, and a peer that is down is
# logged once, not at every retry. The daemon logs to syslog once detached:
# it runs in a mount namespace of its own whose /dev is a small tmpfs with a
# /dev/log socket that this test reads (the mount is inside it too).
sg_require_tools unshare mknod pgrep
# syslog_run LEVEL: mount node sl-LEVEL (log_level=LEVEL, its one peer a port
# nobody listens on) in its namespace, wait 8 s, unmount; the messages it
# sent to syslog are in $SG_WORK/syslog-LEVEL.txt
syslog_run() {
	local level=$1 data=$SG_WORK/sl-$1/data smnt=$SG_WORK/sl-$1/mnt ports
	mkdir -p "$smnt"
	sg_track SG_DATAS "$data"
	ports=$(sg_ports 2) || sg_hard_error "no free ports"
	set -- $ports
	SL_OPTS="data=$data,node=sl,mirror=off,log_level=$level,listen=tcp://127.0.0.1:$1,peers=tcp://127.0.0.1:$2" \
		SL_MNT=$smnt SL_OUT=$SG_WORK/syslog-$level.txt SL_DATA=$data \
		timeout 60 unshare -m --propagation private bash -c '
set -u
mount -t tmpfs -o mode=755,size=1m sigil-test-dev /dev || exit 90
mknod -m 666 /dev/null c 1 3 && mknod -m 666 /dev/zero c 1 5 &&
	mknod -m 666 /dev/fuse c 10 229 && mknod -m 444 /dev/urandom c 1 9 &&
	mknod -m 444 /dev/random c 1 8 || exit 91
python3 -c "
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(\"/dev/log\")
out = open(sys.argv[1], \"w\")
s.settimeout(30)
try:
    while True:
        out.write(s.recv(8192).decode(errors=\"replace\").rstrip(\"\\n\") + \"\\n\")
        out.flush()
except socket.timeout:
    pass" "$SL_OUT" &
for i in $(seq 50); do [ -S /dev/log ] && break; sleep 0.1; done
"$SIGILFS" "$SL_MNT" -o "$SL_OPTS" 2>"$SL_OUT.stderr" || exit 92
printf "x\\n" >"$SL_MNT/f" || exit 93
sleep 8
fusermount3 -u "$SL_MNT" || exit 94
pid=$(cat "$SL_DATA/sigilfs.pid" 2>/dev/null)
for i in $(seq 100); do [ -n "$pid" ] && [ -d /proc/$pid ] || break; sleep 0.1; done
sleep 0.3
kill %1
'
}
syslog_run info
rc=$?
check_eq 0 "$rc" "log_level=info: the daemon mounted, served and unmounted in its namespace"
check "log_level=info: SIGIL-MAIN-MOUNTED (info) reached syslog after detaching" \
	grep -q "sigilfs\[[0-9]*\]: main: SIGIL-MAIN-MOUNTED: mounted $SG_WORK/sl-info/mnt" "$SG_WORK/syslog-info.txt"
check_eq 1 "$(grep -c 'SIGIL-REPL-PEER-DOWN' "$SG_WORK/syslog-info.txt")" \
	"the peer nobody listens on is logged down once in 8 s of retries"
syslog_run warning
rc=$?
check_eq 0 "$rc" "log_level=warning: the daemon mounted, served and unmounted in its namespace"
check_eq 1 "$(grep -c 'SIGIL-REPL-PEER-DOWN' "$SG_WORK/syslog-warning.txt")" \
	"log_level=warning: the peer down (a warning) is logged, once"
check_eq "" "$(grep -E '<(30|31)>' "$SG_WORK/syslog-warning.txt")" \
	"log_level=warning: nothing at info or debug reached syslog after detaching"
check_eq "" "$(grep -E 'SIGIL-MAIN-(MOUNTED|STOP)' "$SG_WORK/syslog-warning.txt")" \
	"log_level=warning: no SIGIL-MAIN-MOUNTED or -STOP line (both info)"
sg_done
