#!/bin/bash
# t0070-rename-atomic.sh: a rename over a file is atomic for readers. One
# process cats a config file in a bounded loop (2000 reads or 20 s) while
# another saves it 300 times by write-temp + mv (then again with python's
# os.replace): no read may miss the file or see a partial or mixed version,
# and versions never go backwards. Also: a reader holding the old file open
# keeps reading the old content, mv -n (RENAME_NOREPLACE) and RENAME_EXCHANGE.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99

sg_require_tools cat mv python3 timeout

sg_mount a || sg_done
C=$MNT/etc/app.conf
mkdir -p "$MNT/etc"

# version N of the config: a header, 100 lines naming N, a footer (2.6 KB)
gen() {
	local j
	printf '# version %d\n' "$1"
	for ((j = 0; j < 100; j++)); do
		printf 'key_%d = value_%d_%d\n' $j "$1" $j
	done
	printf '# end %d' "$1"
}
V=()
for ((n = 0; n <= 300; n++)); do
	V[n]=$(gen $n)
done
printf '%s\n' "${V[0]}" >"$C"

# reader WRITER-PID TAG: cat $C until the writer ends, 2000 reads or 20 s;
# prints a report line; every read must be one whole known version
reader() {
	local w=$1 tag=$2 i c rc n last=-1 miss=0 partial=0 back=0 seen=0 end=$((SECONDS + 20)) first=""
	declare -A versions
	for ((i = 0; i < 2000 && SECONDS < end; i++)); do
		c=$(cat "$C" 2>&1)
		rc=$?
		if [ $rc -ne 0 ]; then
			miss=$((miss + 1))
			[ -n "$first" ] || first="read $i: cat exit $rc: $c"
		elif [[ $c =~ ^#\ version\ ([0-9]+)$'\n' ]] && n=${BASH_REMATCH[1]} && [ "$n" -le 300 ] &&
			[ "$c" == "${V[n]}" ]; then
			versions[$n]=1
			if [ "$n" -lt "$last" ]; then
				back=$((back + 1))
				[ -n "$first" ] || first="read $i: version $n after version $last"
			fi
			last=$n
		else
			partial=$((partial + 1))
			[ -n "$first" ] || first="read $i: not a whole version: $(sg_show "$c")"
		fi
		sg_alive "$w" || {
			i=$((i + 1))
			break
		}
	done
	seen=${#versions[@]}
	echo "$i $miss $partial $back $seen $first"
}

run_phase() { # TAG: run the writer given as the remaining words, with a reader
	local tag=$1 w report reads miss partial back seen first
	shift
	"$@" &
	w=$!
	report=$(reader "$w" "$tag")
	sg_wait 60 sg_dead "$w" || fail "$tag: the writer finishes within 60 s"
	wait "$w"
	read -r reads miss partial back seen first <<<"$report"
	echo "# $tag: $reads reads, $seen distinct versions seen"
	check_eq "0 0 0" "$miss $partial $back" "$tag: no read missed the file, saw a partial version or went back ($reads reads)${first:+; first: $first}"
	[ "$seen" -ge 2 ] && ok "$tag: the reader saw the file change ($seen versions)" ||
		fail "$tag: the reader saw the file change" "distinct versions seen: $seen"
	check_eq "0" "$(cat "$SG_WORK/$tag.errors" 2>/dev/null || echo missing)" "$tag: all 300 saves succeeded"
	check_eq "${V[300]}" "$(cat "$C")" "$tag: the last save is the content"
	check_eq "app.conf" "$(ls -A "$MNT/etc")" "$tag: no temp file left"
}

mv_writer() { # 300 saves: write app.conf.tmp, mv it over app.conf
	local i err=0
	for ((i = 1; i <= 300; i++)); do
		printf '%s\n' "${V[i]}" >"$C.tmp" && mv -f "$C.tmp" "$C" || err=$((err + 1))
	done
	echo $err >"$SG_WORK/mv.errors"
}

cat >"$SG_WORK/replace.py" <<'PY'
# 300 saves: a fresh temp file each time, os.replace() over the target
import os, sys, tempfile
path, out, versions = sys.argv[1], sys.argv[2], sys.argv[3]
texts = open(versions).read().split("\0")
err = 0
for n in range(1, 301):
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".app.conf.")
        with os.fdopen(fd, "w") as f:
            f.write(texts[n] + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError:
        err += 1
open(out, "w").write("%d\n" % err)
PY
for ((n = 0; n <= 300; n++)); do
	printf '%s\0' "${V[n]}"
done >"$SG_WORK/versions"

run_phase mv mv_writer
printf '%s\n' "${V[0]}" >"$C"
run_phase replace python3 "$SG_WORK/replace.py" "$C" "$SG_WORK/replace.errors" "$SG_WORK/versions"

# a reader that opened the old file keeps reading all of it after a replace
printf '%s\n' "${V[1]}" >"$C"
exec 3<"$C"
IFS= read -r first <&3
printf '%s\n' "${V[2]}" >"$C.tmp"
mv -f "$C.tmp" "$C"
rest=$(cat <&3)
exec 3<&-
check_eq "${V[1]}" "$first"$'\n'"$rest" "an fd opened before the rename still reads the whole old version"
check_eq "${V[2]}" "$(cat "$C")" "a new open reads the new version"

# mv -n (RENAME_NOREPLACE) does not replace
printf 'other\n' >"$MNT/etc/other"
mv -n "$MNT/etc/other" "$C" 2>/dev/null
check_eq "${V[2]}|other" "$(cat "$C")|$(cat "$MNT/etc/other" 2>&1)" "mv -n leaves both files as they were"

# RENAME_EXCHANGE swaps two names atomically
out=$(python3 - "$C" "$MNT/etc/other" <<'PY' 2>&1
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE, RENAME_NOREPLACE = -100, 2, 1
a, b = (p.encode() for p in sys.argv[1:3])
if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
    print("RENAME_EXCHANGE:", os.strerror(ctypes.get_errno()))
elif libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_NOREPLACE) == 0:
    print("RENAME_NOREPLACE replaced an existing file")
elif ctypes.get_errno() != 17:
    print("RENAME_NOREPLACE:", os.strerror(ctypes.get_errno()))
else:
    print("ok")
PY
)
check_eq "ok" "$out" "renameat2: RENAME_EXCHANGE works, RENAME_NOREPLACE fails with EEXIST"
check_eq "other|${V[2]}" "$(cat "$C")|$(cat "$MNT/etc/other")" "RENAME_EXCHANGE swapped the contents"

sg_daemon_alive
sg_done
