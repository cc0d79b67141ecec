#!/bin/bash
# t0045-max-mapped.sh: max_mapped, the bound on the store pages mapped into
# the daemon, reaches the store from -o. 24 MiB of files read through a
# mount bounded at 4M leave the daemon's mapped file pages (RssFile) within
# the bound plus the checks' stride, and the status counts the drops; with
# 64G (unbounded) the same reads leave them mapped. Either way every file
# reads right. Then the 4M round again with the data dir on a btrfs
# subvolume (a loop-mounted image in the work dir): there the device of the
# store's mapping in /proc/self/maps is not the one stat gives, and the
# store finds its map by the file's name instead. Bounded, the status shows
# every branch page mapped after the open, and (Linux 6.7 on) faults that
# map one page each. (The store logic itself: test_map_trim and
# test_map_warm in test_store.)
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99

sg_require_tools python3 sha256sum awk sed sort uname mkfs.btrfs btrfs losetup mount umount stat

rss_file() { awk '$1 == "RssFile:" { print $2 * 1024 }' "/proc/$1/status"; }
# kernel_ge X.Y: the running kernel is at least X.Y
kernel_ge() { [ "$(printf '%s\n%s\n' "$1" "$(uname -r)" | sort -V | head -n1)" = "$1" ]; }
sg_mount c mirror=off || sg_done
cat >"$SG_WORK/mm.py" <<'PY'
import hashlib, os, sys
d, mode = sys.argv[1], sys.argv[2]
h = hashlib.sha256()
for i in range(1500):
    body = hashlib.sha256(b"%d" % i).digest() * 512  # 16 KiB, a different one each
    h.update(body)
    if mode == "write":
        with open(os.path.join(d, "f%04d" % i), "wb") as f:
            f.write(body)
print(h.hexdigest())
PY
mkdir "$MNT/mm"
want=$(python3 "$SG_WORK/mm.py" "$MNT/mm" write)
sg_umount c
# read_round BOUND: mount with max_mapped=BOUND, read the files back, check
# RssFile and the status's drops against the bound; unmount.
read_round() {
	local bound=$1 where=$2 base got after drops grown
	sg_mount c "mirror=off,max_mapped=$bound" || sg_done
	base=$(rss_file "$PID")
	got=$(cd "$MNT/mm" && cat f* | sha256sum | cut -d' ' -f1)
	after=$(rss_file "$PID")
	drops=$(sed -n 's/.*mapped pages dropped \([0-9]*\) times.*/\1/p' "$MNT/.sigil/status")
	check_eq "$want" "$got" "max_mapped=$bound$where: 1500 files of 16 KiB (24 MiB) read back right"
	grown=$(((after - base) / 1048576))
	if [ "$bound" = 4M ]; then
		[ "$grown" -le 8 ] && ok "max_mapped=4M$where: RssFile grew by $grown MiB over the reads (<= 4 MiB + the stride)" ||
			fail "max_mapped=4M$where: RssFile grew by at most 8 MiB" "before $base, after $after bytes"
		[ "${drops:-0}" -gt 0 ] && ok "max_mapped=4M$where: the status counts $drops drops" ||
			fail "max_mapped=4M$where: the status counts drops" "$(grep -i mapped "$MNT/.sigil/status")"
		# the branch pages mapped after the open (all of them), and the
		# faults that map one page each where the kernel can (6.7)
		map=$(sed -n 's/^map  *//p' "$MNT/.sigil/status")
		echo "$map" | grep -qE ' ([1-9][0-9]*) of \1 branch pages mapped after the open' &&
			ok "max_mapped=4M$where: every branch page mapped after the open ($map)" ||
			fail "max_mapped=4M$where: every branch page mapped after the open" "$map"
		if kernel_ge 6.7; then
			want_map="one page each (fault-around off)"
		else
			want_map="their neighbours too"
		fi
		case $map in
		*"faults map $want_map"*) ok "max_mapped=4M$where: on Linux $(uname -r) faults map $want_map" ;;
		*) fail "max_mapped=4M$where: on Linux $(uname -r) faults map $want_map" "$map" ;;
		esac
	else
		[ "$grown" -ge 16 ] && ok "max_mapped=64G$where: RssFile grew by $grown MiB (the reads stay mapped)" ||
			fail "max_mapped=64G$where: RssFile grew by at least 16 MiB" "before $base, after $after bytes"
		check_eq 0 "${drops:-none}" "max_mapped=64G$where: no drops"
	fi
	sg_umount c
}
read_round 4M ""
read_round 64G ""

# ---- the same store on a btrfs subvolume
img=$SG_WORK/btrfs.img bt=$SG_WORK/btrfs
mkdir -p "$bt"
truncate -s 512M "$img"
check "mkfs.btrfs on a 512 MiB image" mkfs.btrfs -q -f "$img" || sg_done
check "mount -o loop the btrfs image" mount -o loop "$img" "$bt" || sg_done
sg_on_teardown umount -l "$bt"
check "btrfs subvolume create" btrfs subvolume create "$bt/sub" || sg_done
check "the store moves onto the subvolume" cp -a "$(sg_data c)" "$bt/sub/data" || sg_done
rm -rf "$(sg_data c)"
ln -s "$bt/sub/data" "$(sg_data c)"
sg_mount c mirror=off || sg_done
mapdev=$(awk '$6 ~ /\/data\.mdb$/ { print $4; exit }' "/proc/$PID/maps")
statdev=$(stat -L -c '%Hd:%Ld' "$bt/sub/data/data.mdb")
mapdec=$(printf '%d:%d' "0x${mapdev%%:*}" "0x${mapdev##*:}" 2>/dev/null)
[ -n "$mapdev" ] && [ "$mapdec" != "$statdev" ] &&
	ok "on the subvolume the map's device ($mapdev = $mapdec) is not stat's ($statdev)" ||
	fail "on the subvolume the map's device differs from stat's" "maps: '$mapdev' ($mapdec), stat: '$statdev'"
sg_umount c
read_round 4M " on btrfs"

sg_done
