#!/bin/bash
# t0040-limits.sh: sizes, counts, names and the errors at the edges: a 5 MiB
# file (sha256sum, dd, in-place overwrite, truncate), fallocate (its modes
# compared with local disk), 5,000 files in one dir, names with spaces, odd
# bytes and UTF-8, 255-byte names that work and 256-byte names that get
# "File name too long", a path of nearly 4000 bytes,
# EPERM for hard links, FIFOs and device nodes, the reserved root name .sigil,
# and EFBIG past max_file_size. Everything but the refused is still there
# after a remount, and the daemon survives every refusal.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99

sg_require_tools dd sha256sum truncate fallocate mkfifo mknod python3 stat head

sg_mount a || sg_done
A_PID=$PID

# ---- a 5 MiB file
L=$SG_WORK/local
mkdir -p "$L"
head -c 5M /dev/urandom >"$L/big"
check "cp of a 5 MiB file into the mount" cp "$L/big" "$MNT/big"
check_eq "$(sha256sum <"$L/big")" "$(sha256sum <"$MNT/big")" "5 MiB file: sha256sum of the copy"
check_eq 5242880 "$(stat -c %s "$MNT/big")" "5 MiB file: stat size 5242880"
check "dd bs=64k of 5 MiB into the mount" dd if="$L/big" of="$MNT/big-dd" bs=64k status=none
check_eq "$(sha256sum <"$L/big")" "$(dd if="$MNT/big-dd" bs=4k status=none | sha256sum)" \
	"5 MiB file: read back with dd bs=4k"
check_eq "$(tail -c 12345 "$L/big" | sha256sum)" "$(tail -c 12345 "$MNT/big" | sha256sum)" \
	"5 MiB file: a read at an offset near the end"
for t in "$L/big" "$MNT/big"; do
	dd if=/dev/zero of="$t" bs=1k seek=3000 count=7 conv=notrunc status=none
	printf 'patched' | dd of="$t" bs=1 seek=17 conv=notrunc status=none
done
check_eq "$(sha256sum <"$L/big")" "$(sha256sum <"$MNT/big")" "5 MiB file: in-place overwrites with dd conv=notrunc"
truncate -s 3000001 "$L/big" "$MNT/big"
check_eq "$(sha256sum <"$L/big") 3000001" "$(sha256sum <"$MNT/big") $(stat -c %s "$MNT/big")" \
	"5 MiB file: truncate -s 3000001 (shrink)"
truncate -s 4M "$L/big" "$MNT/big"
check_eq "$(sha256sum <"$L/big")" "$(sha256sum <"$MNT/big")" "truncate -s 4M (grow): zeros after the old end"

# ---- fallocate(1) and posix_fallocate(3), against the same calls on local disk
for t in "$L" "$MNT"; do
	printf 'abcdefghij' >"$t/fa"
	fallocate -l 100000 "$t/fa"         # grow: zeros after the old end
	fallocate -p -o 2 -l 3 "$t/fa"      # punch a hole: zeros, the size stays
	fallocate -z -o 99990 -l 20 "$t/fa" # zero a range past the end: grows
	fallocate -n -o 0 -l 200000 "$t/fa" # keep size: nothing visible changes
	python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644); os.posix_fallocate(fd, 0, 5000); os.close(fd)' "$t/pf"
done
check_eq "$(cd "$L" && sha256sum fa pf && stat -c '%n %s' fa pf)" "$(cd "$MNT" && sha256sum fa pf && stat -c '%n %s' fa pf)" \
	"fallocate grow, punch hole, zero range, keep size, and posix_fallocate: as on local disk"
check_err "Operation not supported" "fallocate --collapse-range: EOPNOTSUPP" fallocate -c -o 0 -l 4096 "$MNT/fa"

# ---- 5,000 files in one directory
D=$MNT/many
mkdir "$D"
for ((i = 0; i < 5000; i++)); do
	printf 'file %d\nsecond line of %d\n' "$i" "$i" >"$D/f$i.conf"
done
check_eq 5000 "$(ls "$D" | wc -l)" "5000 files: ls | wc -l"
check_eq 5000 "$(find "$D" -type f | wc -l)" "5000 files: find -type f | wc -l"
check_eq 5000 "$(ls -la "$D" | awk '$1 == "-rw-r--r--" && $3 == "root" && $4 == "root" && $5 >= 24 && $5 <= 30' | wc -l)" \
	"5000 files: ls -la shows 5000 regular files, mode 644, owner root, 24-30 bytes"
cat >"$SG_WORK/many.py" <<'PY'
import os, sys
d = sys.argv[1]
names = set(os.listdir(d))
want = {"f%d.conf" % i for i in range(5000)}
bad = sorted(names ^ want)[:5]
for i in range(5000):
    try:
        with open(os.path.join(d, "f%d.conf" % i)) as f:
            if f.read() != "file %d\nsecond line of %d\n" % (i, i):
                bad.append("content of f%d.conf" % i)
    except OSError as e:
        bad.append(str(e))
print("ok" if not bad else " ".join(bad[:5]))
PY
check_eq ok "$(python3 "$SG_WORK/many.py" "$D" 2>&1)" "5000 files: exactly the expected names, every content correct"
check_eq "second line of 4321" "$(tail -n 1 "$D/f4321.conf")" "5000 files: a lookup by name"

# ---- names: spaces, odd bytes, UTF-8
N=$MNT/names
mkdir "$N"
names=("with space" " leading" "trailing " "tab	inside" $'new\nline' "quote'\"" 'back\slash' '*?[]' "-dash"
	".hidden" "..." "ünïcødé" "日本語の設定.conf" "Ελληνικά" "עברית" "emoji 🎉🔧")
i=0
for n in "${names[@]}"; do
	printf 'name %d\n' $i >"$N/$n" || fail "create the file named $(sg_show "$n")"
	i=$((i + 1))
done
cat >"$SG_WORK/names.py" <<'PY'
import os, sys
d, names = sys.argv[1], sys.argv[2:]
got = sorted(os.listdir(d))
bad = []
if got != sorted(names):
    bad.append("listing %r != %r" % (got, sorted(names)))
for i, n in enumerate(names):
    try:
        with open(os.path.join(d, n)) as f:
            if f.read() != "name %d\n" % i:
                bad.append("content of %r" % n)
    except OSError as e:
        bad.append(repr(e))
print("ok" if not bad else "; ".join(bad))
PY
check_eq ok "$(python3 "$SG_WORK/names.py" "$N" "${names[@]}" 2>&1)" \
	"${#names[@]} odd names (spaces, tab, newline, quotes, UTF-8, emoji): listed exactly and read back"
check_eq "name 12" "$(cat "$N/日本語の設定.conf")" "cat of a UTF-8 name"
check_eq "${#names[@]}" "$(ls -A -b "$N" | wc -l)" "ls -b lists one line per odd name"
check "mv between two UTF-8 names" mv "$N/ünïcødé" "$N/ÜNÏCØDÉ"
check_eq "name 11" "$(cat "$N/ÜNÏCØDÉ")" "the renamed UTF-8 name reads back"

# ---- name length: 255 bytes work, 256 bytes do not
n255=$(printf 'n%.0s' {1..255})
n256=${n255}x
u255=$(printf '日%.0s' {1..85})  # 85 x 3 bytes
u256=${u255}x
check "create a file with a 255-byte name" sh -c "echo long >'$MNT/$n255'"
check_eq "long" "$(cat "$MNT/$n255")" "read back the 255-byte name"
check_eq "$n255" "$(ls "$MNT" | grep '^nnnn')" "ls shows the 255-byte name"
check_eq 255 "$(ls "$MNT" | grep '^nnnn' | tr -d '\n' | wc -c)" "the listed name has 255 bytes"
check "mkdir with a 255-byte name" mkdir "$MNT/d$(printf 'n%.0s' {1..254})"
check "a 255-byte UTF-8 name (85 three-byte characters)" sh -c "echo utf >'$MNT/$u255'"
check_eq "utf" "$(cat "$MNT/$u255")" "read back the 255-byte UTF-8 name"
check "ln -s with a 255-byte name" ln -s "$n255" "$MNT/l$(printf 'n%.0s' {1..254})"
check_err "File name too long" "touch of a 256-byte name: ENAMETOOLONG" touch "$MNT/$n256"
check_err "File name too long" "mkdir of a 256-byte name: ENAMETOOLONG" mkdir "$MNT/$n256"
check_err "File name too long" "a 256-byte UTF-8 name: ENAMETOOLONG" touch "$MNT/$u256"
check_err "File name too long" "mv to a 256-byte name: ENAMETOOLONG" mv "$MNT/$n255" "$MNT/$n256"
check_err "File name too long" "ln -s to a 256-byte name: ENAMETOOLONG" ln -s x "$MNT/$n256"
check_err "File name too long" "stat of a 256-byte name: ENAMETOOLONG" stat "$MNT/$n256"
check_eq "long" "$(cat "$MNT/$n255")" "the 255-byte file is intact after the refused rename"

# ---- a deep path: nested dirs, over 511 bytes and close to 4000
seg=$(printf 's%.0s' {1..99})
deep=$MNT
mid=""
for ((i = 0; i < 60; i++)); do # levels of 100-101 bytes while the leaf stays under 4000
	[ $((${#deep} + 1 + ${#i} + ${#seg} + 11)) -lt 4000 ] || break
	deep=$deep/$i$seg
	[ $i -eq 5 ] && mid=$deep
done
rel=${deep#"$MNT"/}
check "mkdir -p of a path of ${#rel} bytes (absolute ${#deep}) in $i levels" mkdir -p "$deep"
check "write a file at ${#mid} bytes (> 511)" sh -c "echo mid >'$mid/file.conf'"
check_eq "mid" "$(cat "$mid/file.conf")" "read back at ${#mid} bytes"
printf 'deep content\n' >"$deep/leaf.conf"
check_eq "deep content" "$(cat "$deep/leaf.conf")" "write and read back a file at $((${#deep} + 10)) bytes"
check_eq "leaf.conf" "$(ls "$deep")" "ls at the deepest level"
check_eq "$rel/leaf.conf" "$(cd "$MNT" && find "${rel%%/*}" -name leaf.conf)" "find reaches the deep file"
check "rename at the deepest level" mv "$deep/leaf.conf" "$deep/leaf2.conf"
check_eq "deep content" "$(cat "$deep/leaf2.conf")" "read back the renamed deep file"
check_eq "13 644" "$(stat -c '%s %a' "$deep/leaf2.conf")" "stat of the deep file"

# ---- refused: hard links, FIFOs, device nodes
printf 'target\n' >"$MNT/hl-src"
check_err "Operation not permitted" "ln (hard link): EPERM" ln "$MNT/hl-src" "$MNT/hl-dst"
check_not "no hard link left behind" test -e "$MNT/hl-dst"
check_eq "1 target" "$(stat -c %h "$MNT/hl-src") $(cat "$MNT/hl-src")" "the link source is untouched (nlink 1)"
check_err "Operation not permitted" "mkfifo: EPERM" mkfifo "$MNT/fifo"
check_err "Operation not permitted" "mknod c 1 3: EPERM" mknod "$MNT/null" c 1 3
check_err "Operation not permitted" "mknod b 7 0: EPERM" mknod "$MNT/loop" b 7 0
check_err "Operation not permitted" "mknod p: EPERM" mknod "$MNT/pipe" p
check_eq "" "$(cd "$MNT" && ls -d fifo null loop pipe 2>/dev/null)" "nothing left by the refused mknods"
sg_daemon_alive "$A_PID" "the daemon is alive after the refusals"
check_eq "target" "$(cat "$MNT/hl-src")" "the mount still serves after the refusals"

# ---- the reserved root name .sigil
# /.sigil is the read-only status directory (hidden from listings, like ZFS's
# .zfs): nothing can be made there or in its place
check_err "Operation not permitted" "touch .sigil at the root: EPERM" touch "$MNT/.sigil"
check_err "File exists" "mkdir .sigil at the root: EEXIST (the status dir)" mkdir "$MNT/.sigil"
check_err "Read-only file system" "ln -s into .sigil: EROFS" ln -s x "$MNT/.sigil"
touch "$MNT/to-rename"
check_err "Read-only file system" "mv a file into .sigil: EROFS" mv "$MNT/to-rename" "$MNT/.sigil"
check_eq "to-rename" "$(ls "$MNT" | grep to-rename)" "the refused move left the file in place"
check_err "Read-only file system" "writing .sigil/conflicts: EROFS" sh -c "echo x >'$MNT/.sigil/conflicts'"
check_eq "conflicts lost members metrics status version" "$(ls "$MNT/.sigil" | tr "\n" " " | sed "s/ $//")" "ls .sigil lists the status files"
check_eq "" "$(cat "$MNT/.sigil/conflicts")" "a lone node has no conflicts"
check_eq "" "$(ls -A "$MNT" | grep -Fx '.sigil')" ".sigil does not appear at the root"
mkdir -p "$MNT/sub"
check "touch sub/.sigil (a normal name below the root)" sh -c "echo below >'$MNT/sub/.sigil'"
check_eq "below" "$(cat "$MNT/sub/.sigil")" "sub/.sigil reads back"
check "mkdir -p sub2/.sigil/x" mkdir -p "$MNT/sub2/.sigil/x"
check "mv sub/.sigil to sub2/.sigil/x/.sigil" mv "$MNT/sub/.sigil" "$MNT/sub2/.sigil/x/.sigil"
check_eq "below" "$(cat "$MNT/sub2/.sigil/x/.sigil")" "a file named .sigil in a dir named .sigil"

# ---- persistence of all of the above
want=$(sg_manifest "$MNT")
sg_umount a
sg_mount a || sg_done
A_PID=$PID
check_same_text "$want" "$(sg_manifest "$MNT")" "after a remount: big file, 5000 files, odd names, deep path unchanged"
check_eq ok "$(python3 "$SG_WORK/many.py" "$D" 2>&1)" "after a remount: all 5000 files correct"
check "rm -rf of the 5000 files" rm -rf "$D"
check_not "the dir is gone" test -e "$D"
check "rm -rf of the deep tree" rm -rf "$MNT/0$seg"

# ---- max_file_size: EFBIG past it (a second node, max_file_size=1048576)
sg_mount b max_file_size=1048576 || sg_done
check_err "File too large" "dd of 2 MiB over a 1 MiB limit: File too large" \
	dd if=/dev/zero of="$MNT/big" bs=1M count=2 status=none
s=$(stat -c %s "$MNT/big" 2>/dev/null || echo missing)
[ "$s" != missing ] && [ "$s" -le 1048576 ] && ok "the refused file is at most 1 MiB ($s bytes)" ||
	fail "the refused file is at most 1 MiB" "size: $s"
check_err "File too large" "dd bs=64k of 2 MiB: File too large" \
	dd if=/dev/zero of="$MNT/big64" bs=64k count=32 status=none
head -c 2M /dev/urandom >"$L/2m"
check_err "File too large" "cp of a 2 MiB file: File too large" cp "$L/2m" "$MNT/2m"
check "dd of exactly 1 MiB works" dd if=/dev/zero of="$MNT/exact" bs=1M count=1 status=none
check_eq 1048576 "$(stat -c %s "$MNT/exact")" "the 1 MiB file has 1048576 bytes"
check_err "File too large" "appending 1 byte to the 1 MiB file: File too large" bash -c "printf x >>'$MNT/exact'"
check_err "File too large" "truncate -s 2M: File too large" truncate -s 2M "$MNT/exact"
check_err "File too large" "fallocate -l 2M: File too large" fallocate -l 2M "$MNT/exact"
check_eq 1048576 "$(stat -c %s "$MNT/exact")" "the 1 MiB file is still 1 MiB"
sg_daemon_alive "$PID" "the daemon is alive after EFBIG"
check "a small write still works" sh -c "echo small >'$MNT/small'"
check_eq small "$(cat "$MNT/small")" "read back after EFBIG"
sg_umount b

sg_done
