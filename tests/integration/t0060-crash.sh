#!/bin/bash
# t0060-crash.sh: kill -9 the daemon in the middle of a write storm. Three
# writers (two python3 ones that create and rewrite files with os.fsync, one
# shell loop of dd conv=fsync) log each file name to local disk only after
# its fsync returned. After kill -9 and fusermount3 -uz, the same data dir
# mounts again, every file whose fsync completed has exactly its last synced
# content, the store takes new writes, and it survives a clean remount.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99

sg_require_tools python3 dd cmp timeout

sg_mount a || sg_done
mkdir -p "$MNT/py1" "$MNT/py2" "$MNT/dd"
LOGS=$SG_WORK/logs # local disk, outside the mount
mkdir -p "$LOGS" "$SG_WORK/ddsrc"
for ((i = 0; i < 10; i++)); do
	head -c $((1000 + i * 3000)) /dev/urandom >"$SG_WORK/ddsrc/$i"
done

# storm.py write DIR LOG PREFIX: create files, and now and then rewrite an
# older one with a new version; "begin NAME V" is logged before a file is
# opened and "done NAME V" only after os.fsync() returned.
# storm.py verify DIR LOG PREFIX: check every name against its log.
cat >"$SG_WORK/storm.py" <<'PY'
import hashlib, os, sys, time
mode, d, log, prefix = sys.argv[1:5]

def content(name, v):
    seed = hashlib.sha256(("%s/%d" % (name, v)).encode()).digest()
    n = 1 + int.from_bytes(seed[:3], "big") % 40000
    return (seed * (n // 32 + 1))[:n]

if mode == "write":
    lf = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    version = {}
    def save(name):
        v = version.get(name, 0) + 1
        os.write(lf, ("begin %s %d\n" % (name, v)).encode())
        fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        data = content(name, v)
        off = 0
        while off < len(data):
            off += os.write(fd, data[off:])
        os.fsync(fd)
        os.write(lf, ("done %s %d\n" % (name, v)).encode())
        os.close(fd)
        version[name] = v
    end = time.time() + 60
    try:
        for i in range(20000):
            if time.time() > end:
                break
            save("%s-%05d" % (prefix, i))
            if i % 5 == 4:
                save("%s-%05d" % (prefix, i - 3))
    except OSError:
        pass  # the daemon was killed
    sys.exit(0)

# verify: the last "done" version of each name must be its content, unless a
# later "begin" (an unfinished save) makes it uncertain
last_done, in_flight = {}, set()
for line in open(log):
    parts = line.split()
    if len(parts) != 3:
        continue  # a torn last line
    what, name, v = parts[0], parts[1], int(parts[2])
    if what == "begin":
        in_flight.add(name)
    elif what == "done":
        last_done[name] = v
        in_flight.discard(name)
checked, bad = 0, []
for name, v in sorted(last_done.items()):
    if name in in_flight:
        continue
    checked += 1
    try:
        with open(os.path.join(d, name), "rb") as f:
            got = f.read()
        if got != content(name, v):
            older = [w for w in range(1, v) if got == content(name, w)]
            bad.append("%s: want version %d (%d bytes), got %s" % (name, v, len(content(name, v)),
                       "version %d" % older[0] if older else "%d other bytes" % len(got)))
    except OSError as e:
        bad.append("%s: %s" % (name, e))
print("%d %d %s" % (checked, len(bad), "; ".join(bad[:5])))
PY

python3 "$SG_WORK/storm.py" write "$MNT/py1" "$LOGS/py1" p1 &
W1=$!
python3 "$SG_WORK/storm.py" write "$MNT/py2" "$LOGS/py2" p2 &
W2=$!
(
	for ((i = 0; i < 5000 && SECONDS < 120; i++)); do
		echo "begin dd-$i $((i % 10))" >>"$LOGS/dd"
		dd if="$SG_WORK/ddsrc/$((i % 10))" of="$MNT/dd/dd-$i" bs=4k conv=fsync status=none 2>/dev/null || break
		echo "done dd-$i $((i % 10))" >>"$LOGS/dd"
	done
) &
W3=$!

# let the storm run until enough saves are durable (bounded), then kill -9
storm_going() {
	[ "$(cat "$LOGS/py1" "$LOGS/py2" 2>/dev/null | grep -c '^done')" -ge 400 ] &&
		[ "$(grep -c '^done' "$LOGS/dd" 2>/dev/null)" -ge 30 ]
}
sg_wait 30 storm_going && ok "the storm is under way: $(cat "$LOGS"/* | grep -c '^done') fsynced saves" ||
	fail "the storm reaches 400 python and 30 dd fsynced saves within 30 s" \
		"done lines: $(cat "$LOGS"/* 2>/dev/null | grep -c '^done')"
sg_alive "$W1" && sg_alive "$W2" && ok "the writers are still writing when the daemon is killed" ||
	fail "the writers are still writing when the daemon is killed (make the storm longer)"
KILLED=$PID
sg_kill9 a
writers_done() { sg_dead "$W1" && sg_dead "$W2" && sg_dead "$W3"; }
sg_wait 30 writers_done && ok "all writers stop after the kill (ENOTCONN)" ||
	fail "all writers stop within 30 s of the kill"
wait "$W1" "$W2" "$W3" 2>/dev/null
n=$(cat "$LOGS"/* | grep -c '^done')
echo "# $n saves had completed their fsync when the daemon died"

check_eq "" "$(sg_mount_line "$(sg_mnt a)")" "the dead mount is gone after fusermount3 -uz"
sg_mount a || sg_done
check_ne "$KILLED" "$PID" "a new daemon serves the data dir"

verify() { # DIR LOG MSG
	local out c b
	out=$(python3 "$SG_WORK/storm.py" verify "$1" "$2" x 2>&1)
	read -r c b _ <<<"$out"
	if [ "${b:-x}" == 0 ] && [ "${c:-0}" -gt 0 ]; then
		ok "$3: all $c fsynced files have their last synced content"
	else
		fail "$3: every fsynced file has its last synced content" "checked, bad, first errors: $out"
	fi
}
verify_dd() { # MSG
	local name v c=0 bad=0 first="" line
	declare -A last inflight
	while read -r what name v; do
		[ -n "$v" ] || continue
		if [ "$what" == begin ]; then
			inflight[$name]=1
		else
			last[$name]=$v
			unset "inflight[$name]"
		fi
	done <"$LOGS/dd"
	for name in "${!last[@]}"; do
		[ -n "${inflight[$name]:-}" ] && continue
		c=$((c + 1))
		if ! cmp -s "$SG_WORK/ddsrc/${last[$name]}" "$MNT/dd/$name"; then
			bad=$((bad + 1))
			[ -n "$first" ] || first="$name: $(cmp "$SG_WORK/ddsrc/${last[$name]}" "$MNT/dd/$name" 2>&1)"
		fi
	done
	[ $bad -eq 0 ] && [ $c -gt 0 ] && ok "$1: all $c dd conv=fsync files are exact" ||
		fail "$1: every dd conv=fsync file is exact" "checked $c, bad $bad, first: $first"
}
verify "$MNT/py1" "$LOGS/py1" "after kill -9 (writer 1)"
verify "$MNT/py2" "$LOGS/py2" "after kill -9 (writer 2)"
verify_dd "after kill -9"
check "ls -lR of the whole mount works" ls -lR "$MNT"

# the store takes new writes and survives a clean remount
check "a new write after the crash" sh -c "echo after >'$MNT/after'"
check "overwrite a file written before the crash" cp "$SG_WORK/ddsrc/0" "$MNT/dd/dd-1"
before=$(sg_manifest "$MNT")
sg_umount a
sg_mount a || sg_done
check_same_text "$before" "$(sg_manifest "$MNT")" "a clean remount after the crash keeps everything"
check_eq "after" "$(cat "$MNT/after")" "the post-crash write is there"
verify "$MNT/py1" "$LOGS/py1" "after the clean remount (writer 1)"
out=$(timeout 60 "${SIGILCTL:-$(dirname "$SIGILFS")/sigilctl}" -d "$DATA" check 2>&1)
check_eq "0" "$?" "sigilctl check: the store is consistent after kill -9 and remount ($out)"

sg_done
