#!/bin/bash
# t0045-max-mapped.sh: max_mapped, the bound on the store pages mapped into
# the daemon, reaches the store from -o. 24 MiB of files read through a
# mount bounded at 4M leave the daemon's mapped file pages (RssFile) within
# the bound plus the checks' stride, and the status counts the drops; with
# 64G (unbounded) the same reads leave them mapped. Either way every file
# reads right. (The store logic itself: test_map_trim in test_store.)
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99

sg_require_tools python3 sha256sum awk sed

rss_file() { awk '$1 == "RssFile:" { print $2 * 1024 }' "/proc/$1/status"; }
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
for bound in 4M 64G; do
	sg_mount c "mirror=off,max_mapped=$bound" || sg_done
	base=$(rss_file "$PID")
	got=$(cd "$MNT/mm" && cat f* | sha256sum | cut -d' ' -f1)
	after=$(rss_file "$PID")
	drops=$(sed -n 's/.*mapped pages dropped \([0-9]*\) times.*/\1/p' "$MNT/.sigil/status")
	check_eq "$want" "$got" "max_mapped=$bound: 1500 files of 16 KiB (24 MiB) read back right"
	grown=$(((after - base) / 1048576))
	if [ $bound = 4M ]; then
		[ "$grown" -le 8 ] && ok "max_mapped=4M: RssFile grew by $grown MiB over the reads (<= 4 MiB + the stride)" ||
			fail "max_mapped=4M: RssFile grew by at most 8 MiB" "before $base, after $after bytes"
		[ "${drops:-0}" -gt 0 ] && ok "max_mapped=4M: the status counts $drops drops" ||
			fail "max_mapped=4M: the status counts drops" "$(grep -i mapped "$MNT/.sigil/status")"
	else
		[ "$grown" -ge 16 ] && ok "max_mapped=64G: RssFile grew by $grown MiB (the reads stay mapped)" ||
			fail "max_mapped=64G: RssFile grew by at least 16 MiB" "before $base, after $after bytes"
		check_eq 0 "${drops:-none}" "max_mapped=64G: no drops"
	fi
	sg_umount c
done

sg_done
