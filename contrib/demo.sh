#!/bin/sh
# demo.sh: build sigilfs and sigilctl if needed and start a three-node cluster on 127.0.0.1,
# each node mounted in a scratch directory, replicating over mutual TLS.
#   contrib/demo.sh          install dependencies, build, start, show replication
#   contrib/demo.sh stop     unmount every node and remove the scratch directory
# The scratch directory is $SIGIL_DEMO_DIR (default /tmp/sigil-demo).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
demo=${SIGIL_DEMO_DIR:-/tmp/sigil-demo}
nodes="a b c"

stop() {
	for n in $nodes; do
		mnt=$demo/node-$n
		pid=$(cat "$demo/data-$n/sigilfs.pid" 2>/dev/null || true)
		if grep -qs " $mnt fuse" /proc/mounts; then
			fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" || true
		fi
		# the daemon exits once it has saved what is pending
		i=0
		while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
	done
	rm -rf "$demo"
	echo "demo stopped; $demo removed"
}

case "${1:-start}" in
stop) stop; exit 0 ;;
start) ;;
*) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac

"$top/contrib/install-deps.sh"
if [ ! -x "$top/sigilfs" ] || [ ! -x "$top/sigilctl" ]; then
	echo "== building sigilfs and sigilctl"
	(cd "$top" && { [ -x configure ] || autoreconf -fi; } && { [ -f Makefile ] || ./configure; } &&
		make -j2 sigilfs sigilctl)
fi
for n in $nodes; do
	if grep -qs " $demo/node-$n fuse" /proc/mounts; then
		echo "a demo is already running in $demo; '$0 stop' first" >&2
		exit 1
	fi
done
mkdir -p "$demo/pki"

# a cluster CA and a certificate per node (EC P-256, valid for a day)
echo "== making a cluster CA and node certificates in $demo/pki"
(
	cd "$demo/pki"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
		-keyout ca.key -out ca.pem -subj /CN=sigil-demo-ca 2>/dev/null
	printf 'subjectAltName=DNS:localhost,DNS:127.0.0.1,IP:127.0.0.1\n' >ext
	for n in $nodes; do
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$n.key" \
			-out "$n.csr" -subj "/CN=localhost" 2>/dev/null
		openssl x509 -req -in "$n.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
			-extfile ext -out "$n.pem" 2>/dev/null
	done
)

# three free ports on 127.0.0.1, below the kernel's ephemeral range (32768
# and up by default) so that no outgoing connection takes one first
ports=$(python3 -c '
import random, socket
got = []
for _ in range(5000):
    if len(got) == 3:
        break
    p = random.randint(10000, 31999)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        if p not in got:
            got.append(p)
    except OSError:
        pass
    s.close()
print(" ".join(map(str, got)))')
set -- $ports
[ $# -eq 3 ] || { echo "demo: found no 3 free ports on 127.0.0.1" >&2; exit 1; }
pa=$1 pb=$2 pc=$3
url() { echo "tls+tcp://127.0.0.1:$1"; }

start() { # name port peers
	mkdir -p "$demo/node-$1"
	"$top/sigilfs" "$demo/node-$1" -o "data=$demo/data-$1,node=$1,listen=$(url "$2"),peers=$3,tls_ca=$demo/pki/ca.pem,tls_cert=$demo/pki/$1.pem,tls_key=$demo/pki/$1.key" 2>"$demo/start-$1.log" || { cat "$demo/start-$1.log" >&2; exit 1; }
	echo "   node $1: $demo/node-$1  (listens on $(url "$2"), pid $(cat "$demo/data-$1/sigilfs.pid"))"
}
echo "== starting three nodes (each knows one peer and learns the rest)"
start a "$pa" "$(url "$pb")"
start b "$pb" "$(url "$pc")"
start c "$pc" "$(url "$pa")"

A=$demo/node-a B=$demo/node-b C=$demo/node-c
wait_for() { # file content: poll up to 5 s
	i=0
	while [ "$(cat "$1" 2>/dev/null)" != "$2" ] && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}

echo
echo "\$ mkdir -p $A/etc/app && printf 'listen = 0.0.0.0:8080\\nworkers = 4\\n' > $A/etc/app/app.conf"
mkdir -p "$A/etc/app"
printf 'listen = 0.0.0.0:8080\nworkers = 4\n' >"$A/etc/app/app.conf"
wait_for "$B/etc/app/app.conf" "$(cat "$A/etc/app/app.conf")"
wait_for "$C/etc/app/app.conf" "$(cat "$A/etc/app/app.conf")"
echo "\$ cat $C/etc/app/app.conf        # on node c"
cat "$C/etc/app/app.conf"
echo
echo "\$ sed -i 's/workers = 4/workers = 8/' $B/etc/app/app.conf   # edited on node b"
sed -i 's/workers = 4/workers = 8/' "$B/etc/app/app.conf"
wait_for "$A/etc/app/app.conf" "$(cat "$B/etc/app/app.conf")"
wait_for "$C/etc/app/app.conf" "$(cat "$B/etc/app/app.conf")"
echo "\$ cat $A/etc/app/app.conf        # on node a"
cat "$A/etc/app/app.conf"
echo
# the mirror commits at most once a second: wait (up to 5 s) for the edit to land
i=0
while ! git --git-dir="$demo/data-c/mirror.git" log -1 --format=%b 2>/dev/null |
	grep -q 'modified *etc/app/app.conf' && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
echo "\$ git --git-dir=$demo/data-c/mirror.git log -2 --stat   # node c's Git mirror"
git --git-dir="$demo/data-c/mirror.git" log -2 --stat --format='commit %h  author %an, committed by %cn, %ad%n%n%w(0,4,4)%B' | cat
cat <<MSG

Three nodes replicate over mutual TLS on 127.0.0.1. Edit under any of
  $A  $B  $C
with any tool (vim, sed -i, cp, rsync, git) and look on the others. Each save is
one versioned change in the node's LMDB store ($demo/data-*); concurrent saves
resolve last-writer-wins, and a lost save is listed in .sigil/conflicts.
Stop a node (kill -STOP its pid), write elsewhere, resume it (kill -CONT): it
catches up.
Each node mirrors its tree into Git ($demo/data-*/mirror.git):
  git --git-dir=$demo/data-a/mirror.git log -p
  $top/sigilctl -d $demo/data-a status
  $top/sigilctl -d $demo/data-a diff HEAD~1          # how the tree drifted since
  $top/sigilctl -d $demo/data-a restore HEAD~1       # ...and back, on every node
Unmount everything and stop:   $0 stop
MSG
