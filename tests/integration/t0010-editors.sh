#!/bin/bash
# t0010-editors.sh: save a config file the ways people and tools do: vim in ex
# mode (default settings, backupcopy=yes, backupcopy=no), sed -i, perl -pi, a
# Python atomic write (temp file, fsync, os.replace), shell >> append, : >
# truncate and > overwrite. Each save must leave exactly the new content, the
# file's mode and owner, a fresh mtime and no stray temporaries; everything
# survives a remount.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99

sg_require_tools vim sed perl python3 timeout stat cmp setfattr getfattr sha256sum

sg_mount a || sg_done
E=$SG_WORK/expected
mkdir -p "$E"

original() {
	printf '%s\n' '# app.conf: managed by hand' 'listen = 0.0.0.0' 'port = 80' \
		'name = "sigil test"' 'path = /var/lib/app' '# end'
}
original >"$E/original"
sed 's/^port = 80$/port = 8080/' "$E/original" >"$E/port8080"
OLD=978307200 # 2001-01-01 00:00:00 UTC

# prepare CASE: a fresh dir $MNT/CASE holding app.conf (original content,
# mode 640, owner 1234:5678, mtime 2001-01-01, a user.* xattr); sets F.
prepare() {
	mkdir "$MNT/$1" || fail "mkdir $MNT/$1"
	F=$MNT/$1/app.conf
	original >"$F"
	chown 1234:5678 "$F"
	chmod 640 "$F"
	setfattr -n user.origin -v "case-$1" "$F"
	touch -d @$OLD "$F"
}

# verify CASE EXPECTED-FILE [xattr]: content, mode, owner, mtime moved on,
# no other entries in the dir; with "xattr", the xattr is still there.
verify() {
	local c=$1 want=$2
	check_file_eq "$want" "$F" "$c: content is exactly the new version"
	check_eq "640 1234:5678" "$(stat -c '%a %u:%g' "$F")" "$c: mode 640 and owner 1234:5678 kept"
	local m
	m=$(stat -c %Y "$F")
	[ "${m:-0}" -gt $OLD ] && ok "$c: mtime moved on from 2001 ($(date -d @"$m" +%FT%T))" ||
		fail "$c: mtime moved on from 2001" "mtime: $m"
	check_eq "app.conf" "$(ls -A "$MNT/$c")" "$c: no backup, swap or temp file left"
	if [ "${3:-}" == xattr ]; then
		check_eq "case-$c" "$(getfattr --absolute-names --only-values -n user.origin "$F" 2>&1)" \
			"$c: the user.origin xattr survives (the file was rewritten in place)"
	fi
}

# vim in ex mode; stdin from /dev/null and a timeout so it can never hang.
# 'backupskip' is emptied because its default skips backups under /tmp, where
# the work dir is: vim then saves as it would in /etc or /sigil.
vim_save() { # FILE [ex commands before the substitution...]
	local f=$1 c args=(-c 'set backupskip=')
	shift
	for c in "$@"; do
		args+=(-c "$c")
	done
	timeout 30 vim -Es -u NONE -N -i NONE "${args[@]}" \
		-c '%s/^port = 80$/port = 8080/' -c 'wq' "$f" </dev/null
}

prepare vim-default
check "vim -Es (default settings: backupcopy=auto, writebackup, swap file) saves" vim_save "$F"
verify vim-default "$E/port8080"

prepare vim-backupcopy-yes
check "vim -Es, set backupcopy=yes (copy, then overwrite in place) saves" \
	vim_save "$F" 'set backupcopy=yes'
verify vim-backupcopy-yes "$E/port8080" xattr

prepare vim-backupcopy-no
check "vim -Es, set backupcopy=no (rename to name~, write a new file) saves" \
	vim_save "$F" 'set backupcopy=no'
verify vim-backupcopy-no "$E/port8080"

prepare vim-backup-kept
check "vim -Es, set backup backupcopy=no (keeps app.conf~) saves" \
	vim_save "$F" 'set backup' 'set backupcopy=no'
check_file_eq "$E/original" "$MNT/vim-backup-kept/app.conf~" "vim-backup-kept: app.conf~ holds the old version"
check_file_eq "$E/port8080" "$F" "vim-backup-kept: app.conf holds the new version"
rm -f "$MNT/vim-backup-kept/app.conf~"

mkdir "$MNT/vim-new"
check "vim -Es creates a new file" timeout 30 vim -Es -u NONE -N -i NONE \
	-c 'call setline(1, ["new = 1", "made = by vim"])' -c 'wq' "$MNT/vim-new/new.conf" </dev/null
printf 'new = 1\nmade = by vim\n' >"$E/vim-new"
check_file_eq "$E/vim-new" "$MNT/vim-new/new.conf" "vim-new: content"
check_eq "644 0:0 new.conf" "$(stat -c '%a %u:%g' "$MNT/vim-new/new.conf") $(ls -A "$MNT/vim-new")" \
	"vim-new: mode 644, owner root, nothing else in the dir"

prepare sed-i
check "sed -i saves" sed -i 's/^port = 80$/port = 8080/' "$F"
verify sed-i "$E/port8080"

prepare perl-pi
check "perl -pi -e saves" perl -pi -e 's/^port = 80$/port = 8080/' "$F"
verify perl-pi "$E/port8080"

prepare python-atomic
cat >"$SG_WORK/atomic.py" <<'PY'
# write a temp file beside the target, fsync it, give it the target's mode
# and owner, os.replace() it over the target, fsync the directory
import os, sys, tempfile
path = sys.argv[1]
st = os.stat(path)
with open(path) as f:
    data = f.read().replace("port = 80\n", "port = 8080\n")
d = os.path.dirname(path)
fd, tmp = tempfile.mkstemp(dir=d, prefix=".app.conf.")
with os.fdopen(fd, "w") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
os.chmod(tmp, st.st_mode & 0o7777)
os.chown(tmp, st.st_uid, st.st_gid)
os.replace(tmp, path)
dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
os.fsync(dfd)
os.close(dfd)
PY
check "python3 atomic write (mkstemp, fsync, os.replace, fsync dir) saves" \
	python3 "$SG_WORK/atomic.py" "$F"
verify python-atomic "$E/port8080"

prepare append
printf 'extra = yes\n' >>"$F"
{ original; printf 'extra = yes\n'; } >"$E/append"
verify append "$E/append" xattr
printf 'more = 2\n' >>"$F"
printf 'more = 2\n' >>"$E/append"
check_file_eq "$E/append" "$F" "append: a second >> appends again"

prepare truncate
: >"$F"
: >"$E/empty"
verify truncate "$E/empty" xattr
check_eq 0 "$(stat -c %s "$F")" "truncate: size 0"

prepare overwrite
printf 'replaced = 1\n' >"$F"
printf 'replaced = 1\n' >"$E/overwrite"
verify overwrite "$E/overwrite" xattr

prepare shrink
printf 'short\n' >"$F"
printf 'short\n' >"$E/shrink"
verify shrink "$E/shrink" xattr

# after unmount and remount, every save is there as it was left
manifest() {
	(cd "$MNT" && find . -printf '%p %y %m %U:%G %s %T@\n' | sort &&
		find . -type f -exec sha256sum {} + | sort)
}
before=$(manifest)
sg_umount a
sg_mount a || sg_done
check_same_text "$before" "$(manifest)" "all saves survive unmount and remount (content, mode, owner, size, mtime)"
sg_daemon_alive

sg_done
