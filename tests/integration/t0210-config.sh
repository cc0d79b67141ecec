#!/bin/bash
# t0210-config.sh: the config file: a good one mounts (named as SOURCE, the
# way fstab passes it, or with -o config=), mount options win over it, and
# each kind of mistake stops the mount before it happens with one message
# naming the file and line, a non-zero exit, no mount and no daemon.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
sg_require_tools python3

conf=$SG_WORK/sigil.conf
mnt=$SG_WORK/n/mnt
mkdir -p "$mnt"
sg_track SG_MNTS "$mnt"

# refused: CONFIG-TEXT EXPECTED-MESSAGE-TAIL DESCRIPTION
refused() {
	local text=$1 want=$2 what=$3 out rc data
	data=$SG_WORK/refused-data
	printf '%s\n' "$text" >"$conf"
	out=$(timeout 30 "$SIGILFS" "$conf" "$mnt" -o "data=$data" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] && [ "$out" == "sigilfs: $conf:$want" ]; then
		ok "$what: exit $rc, '$out'"
	else
		fail "$what: refused with 'sigilfs: $conf:$want'" "exit $rc" "got: $out"
	fi
	sg_mounted "$mnt" && fail "$what: nothing is mounted" "$(sg_mount_line "$mnt")"
	[ -e "$data/sigilfs.pid" ] && fail "$what: no daemon started" "$(cat "$data/sigilfs.pid")"
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
	"a mirror path that is not a repository"

# a port in use, held by another process on 127.0.0.1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
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

sg_done
