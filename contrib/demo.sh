#!/bin/sh
# demo.sh: build sigilfs if needed and mount a node in a scratch directory, to poke at.
#   contrib/demo.sh          install dependencies, build, mount, show what is there
#   contrib/demo.sh stop     unmount and remove the scratch directory
# The scratch directory is $SIGIL_DEMO_DIR (default /tmp/sigil-demo).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
demo=${SIGIL_DEMO_DIR:-/tmp/sigil-demo}
mnt=$demo/node-a
data=$demo/data-a

stop() {
	if grep -qs " $mnt fuse" /proc/mounts; then
		fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt"
	fi
	if [ -f "$data/sigilfs.pid" ]; then
		pid=$(cat "$data/sigilfs.pid")
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
	fi
	rm -rf "$demo"
	echo "demo stopped; $demo removed"
}

case "${1:-start}" in
stop) stop; exit 0 ;;
start) ;;
*) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac

"$top/contrib/install-deps.sh"
if [ ! -x "$top/sigilfs" ]; then
	echo "== building sigilfs"
	(cd "$top" && { [ -x configure ] || autoreconf -fi; } && { [ -f Makefile ] || ./configure; } &&
		make -j2 sigilfs)
fi
if grep -qs " $mnt fuse" /proc/mounts; then
	echo "a demo is already mounted at $mnt; '$0 stop' first" >&2
	exit 1
fi
mkdir -p "$mnt"
"$top/sigilfs" "$mnt" -o data="$data",node=node-a
echo "== mounted sigilfs at $mnt (data in $data, daemon pid $(cat "$data/sigilfs.pid"))"

mkdir -p "$mnt/etc/app"
printf 'listen = 0.0.0.0:8080\nworkers = 4\n' >"$mnt/etc/app/app.conf"
sed -i 's/workers = 4/workers = 8/' "$mnt/etc/app/app.conf"
ln -s app/app.conf "$mnt/etc/current"
echo "\$ ls -lR $mnt"
ls -lR "$mnt"
echo "\$ cat $mnt/etc/current"
cat "$mnt/etc/current"
cat <<MSG

Edit files under $mnt with any tool: vim, sed -i, cp, rsync, git.
Each save is one versioned change in the node's LMDB store ($data).
Unmount and stop:   $0 stop      (or: fusermount3 -u $mnt)
MSG
