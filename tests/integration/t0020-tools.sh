#!/bin/bash
# t0020-tools.sh: whole trees in and out with real tools: cp -a (a generated
# tree and /etc/ssl), tar x of a tarball, rsync -aX (then nothing left to do),
# mv of directories inside the mount and in from local disk, and a git
# repository (init, add, commit, gc, fsck, log, clone, push) in the mount.
# Trees are compared by manifest: names, types, modes, owners, sizes, mtimes
# (nanoseconds), symlink targets, sha256 of contents and user.* xattrs.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99

sg_require_tools cp tar rsync git python3 setfattr getfattr diff sha256sum timeout

# make_tree DIR: files, subdirs, symlinks (relative, absolute, dangling, to a
# dir), odd modes, several owners, user.* xattrs, names with spaces and UTF-8,
# an empty file and dir, a binary file; every entry a distinct mtime with ns.
make_tree() {
	local d=$1 i=0 p
	mkdir -p "$d/etc/app/conf.d" "$d/empty dir" "$d/bin" "$d/ünïcødé/日本" "$d/shared" "$d/sgid"
	printf 'listen = 80\nworkers = 4\n' >"$d/etc/app/app.conf"
	printf 'a = 1\n' >"$d/etc/app/conf.d/10-a.conf"
	printf 'b = 2\n' >"$d/etc/app/conf.d/20 b with spaces.conf"
	printf 'token = s3cr3t\n' >"$d/etc/app/secret"
	printf '#!/bin/sh\necho hi\n' >"$d/bin/tool"
	printf 'read only\n' >"$d/ünïcødé/日本/設定.conf"
	: >"$d/etc/empty"
	head -c 200000 /dev/urandom >"$d/bin/blob.bin"
	seq 1 20000 >"$d/etc/numbers.txt"
	chmod 600 "$d/etc/app/secret"
	chmod 755 "$d/bin/tool"
	chmod 444 "$d/ünïcødé/日本/設定.conf"
	chmod 4755 "$d/bin/blob.bin"
	chmod 1777 "$d/shared"
	chmod 2775 "$d/sgid"
	chmod 700 "$d/empty dir"
	chown 1234:5678 "$d/etc/app/app.conf" "$d/shared"
	chown 0:100 "$d/etc/app/secret"
	chown 65534:65534 "$d/ünïcødé"
	ln -s conf.d/10-a.conf "$d/etc/app/current.conf"
	ln -s /etc/hostname "$d/etc/absolute-link"
	ln -s does/not/exist "$d/etc/dangling"
	ln -s ../etc/app "$d/bin/app-dir"
	chown -h 1234:5678 "$d/etc/dangling"
	setfattr -n user.role -v config "$d/etc/app/app.conf"
	setfattr -n user.bin -v 0x00ff10 "$d/bin/blob.bin"
	setfattr -n user.dir -v "a dir" "$d/etc/app"
	# deepest first, so setting a file's time does not move its dir's
	while IFS= read -r -d '' p; do
		i=$((i + 1))
		touch -h -d "@$((1500000000 + i * 86411)).$(printf '%09d' $((i * 7654321 % 1000000000)))" "$p"
	done < <(find "$d" -depth -print0)
}

sg_mount a || sg_done
SRC=$SG_WORK/src
make_tree "$SRC/tree"
want=$(sg_manifest "$SRC/tree")

# ---- cp -a
check "cp -a of a generated tree into the mount" cp -a "$SRC/tree" "$MNT/cp-tree"
check_same_text "$want" "$(sg_manifest "$MNT/cp-tree")" "cp -a: the copy's manifest equals the source's"
check "diff -r finds no difference" diff -r --no-dereference "$SRC/tree" "$MNT/cp-tree"
check_eq "$(readlink "$SRC/tree/etc/app/current.conf")" "$(readlink "$MNT/cp-tree/etc/app/current.conf")" \
	"cp -a: readlink of a copied relative symlink"
check_eq "a = 1" "$(cat "$MNT/cp-tree/etc/app/current.conf")" "cp -a: reading through the copied symlink"
if [ -d /etc/ssl ]; then
	check "cp -a /etc/ssl into the mount" cp -a /etc/ssl "$MNT/ssl"
	check_same_text "$(sg_manifest /etc/ssl)" "$(sg_manifest "$MNT/ssl")" "cp -a /etc/ssl: manifests equal"
fi
check "cp -a out of the mount to local disk" cp -a "$MNT/cp-tree" "$SG_WORK/back"
check_same_text "$want" "$(sg_manifest "$SG_WORK/back")" "cp -a back out: the round trip is exact"

# ---- tar (POSIX format: nanosecond mtimes and user.* xattrs in the archive)
check "tar c of the source tree" tar --format=posix --xattrs --xattrs-include='user.*' \
	-C "$SRC/tree" -cf "$SG_WORK/tree.tar" .
mkdir "$MNT/tar-tree"
check "tar x into the mount" tar --xattrs --xattrs-include='user.*' -C "$MNT/tar-tree" -xpf "$SG_WORK/tree.tar"
check_same_text "$want" "$(sg_manifest "$MNT/tar-tree")" "tar x: the tree's manifest equals the source's"
check_eq "$(tar -tf "$SG_WORK/tree.tar" | sort)" \
	"$(tar --format=posix -C "$MNT/tar-tree" -cf - . | tar -tf - | sort)" "tar c of the extracted tree lists the same names"
check "tar x of a gzip tarball of /etc/ssl" sh -c "tar -C / -czf '$SG_WORK/ssl.tgz' etc/ssl && mkdir '$MNT/tgz' && tar -C '$MNT/tgz' -xzpf '$SG_WORK/ssl.tgz'"
check "diff -r /etc/ssl against its extracted copy" diff -r --no-dereference /etc/ssl "$MNT/tgz/etc/ssl"

# ---- rsync
check "rsync -aX into the mount" rsync -aX "$SRC/tree/" "$MNT/rs/"
check_same_text "$want" "$(sg_manifest "$MNT/rs")" "rsync -aX: manifests equal"
out=$(rsync -aX --checksum -n --itemize-changes "$SRC/tree/" "$MNT/rs/" 2>&1)
check_eq "" "$out" "rsync -aX --checksum -n --itemize-changes: nothing left to do"
# change the source: content, mode, a new file, a removed file; sync again
printf 'listen = 8080\nworkers = 8\n' >"$SRC/tree/etc/app/app.conf"
chmod 640 "$SRC/tree/etc/app/conf.d/10-a.conf"
printf 'new\n' >"$SRC/tree/etc/app/conf.d/30-new.conf"
rm "$SRC/tree/etc/numbers.txt"
touch -d '2022-02-02 02:02:02.5' "$SRC/tree/etc/app/conf.d" "$SRC/tree/etc"
check "rsync -aX --delete of a changed tree" rsync -aX --delete "$SRC/tree/" "$MNT/rs/"
check_same_text "$(sg_manifest "$SRC/tree")" "$(sg_manifest "$MNT/rs")" "rsync update: manifests equal"
out=$(rsync -aX --checksum -n --itemize-changes --delete "$SRC/tree/" "$MNT/rs/" 2>&1)
check_eq "" "$out" "rsync update: then nothing left to do"
check "rsync out of the mount to local disk" rsync -aX "$MNT/rs/" "$SG_WORK/rs-back/"
check_same_text "$(sg_manifest "$SRC/tree")" "$(sg_manifest "$SG_WORK/rs-back")" "rsync out: manifests equal"

# ---- mv of directories with contents
m_before=$(sg_manifest "$MNT/cp-tree" --no-root)
check "mv a directory with contents (same parent)" mv "$MNT/cp-tree" "$MNT/moved"
check_same_text "$m_before" "$(sg_manifest "$MNT/moved" --no-root)" "mv: the moved tree is unchanged"
check_not "mv: the old name is gone" test -e "$MNT/cp-tree"
mkdir -p "$MNT/x/y"
check "mv a directory into another directory" mv "$MNT/moved" "$MNT/x/y/deeper"
check_same_text "$m_before" "$(sg_manifest "$MNT/x/y/deeper" --no-root)" "mv to a new parent: tree unchanged"
check_eq "a = 1" "$(cat "$MNT/x/y/deeper/etc/app/current.conf")" "mv: symlinks inside still resolve"
check "mv a directory back up two levels, renaming it" mv "$MNT/x/y/deeper/etc" "$MNT/etc-moved"
check_eq "listen = 80" "$(head -n 1 "$MNT/etc-moved/app/app.conf")" "mv: file reachable by its new path"
mkdir "$MNT/target-empty"
check "mv a dir over an empty dir (rename replaces it)" mv -T "$MNT/x/y/deeper/bin" "$MNT/target-empty"
check_eq "$(printf '#!/bin/sh\necho hi')" "$(cat "$MNT/target-empty/tool" 2>&1)" "mv -T: content reachable"
check_eq "hi" "$("$MNT/target-empty/tool" 2>&1)" "mv -T: the moved script runs from the mount"
mkdir -p "$MNT/nonempty/keep"
check_err "Directory not empty" "mv a dir over a non-empty dir fails: ENOTEMPTY" mv -T "$MNT/etc-moved" "$MNT/nonempty"
check_not "mv a dir into its own subdirectory fails" mv "$MNT/x" "$MNT/x/y/z"
cp -a "$SRC/tree" "$SG_WORK/local-copy"
l_want=$(sg_manifest "$SG_WORK/local-copy")
check "mv a directory from local disk into the mount" mv "$SG_WORK/local-copy" "$MNT/from-local"
check_same_text "$l_want" "$(sg_manifest "$MNT/from-local")" "mv from local disk: manifests equal"

# ---- git in the mount
export HOME=$SG_WORK/home GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=Tester GIT_AUTHOR_EMAIL=t@example.org \
	GIT_COMMITTER_NAME=Tester GIT_COMMITTER_EMAIL=t@example.org
mkdir -p "$HOME"
R=$MNT/repo
check "git init" git init -q -b main "$R"
cp -a "$SRC/tree/etc" "$R/etc"
printf 'hello\n' >"$R/README"
check "git add" git -C "$R" add -A
check "git commit (1)" git -C "$R" commit -q -m "first"
printf 'changed\n' >>"$R/README"
git -C "$R" rm -q "$R/etc/empty"
check "git commit (2)" git -C "$R" commit -q -a -m "second"
check "git fsck --full --strict" git -C "$R" fsck --full --strict --no-progress
check_eq "second
first" "$(git -C "$R" log --format=%s 2>&1)" "git log lists both commits"
check_eq "" "$(git -C "$R" status --porcelain 2>&1)" "git status: clean"
check_eq "$(printf 'hello\nchanged')" "$(git -C "$R" show HEAD:README 2>&1)" "git show HEAD:README"
check "git gc (packs, prunes loose objects)" git -C "$R" gc -q --prune=now
check "git fsck after gc" git -C "$R" fsck --full --strict --no-progress
check "git clone from the mount to local disk" git clone -q "$R" "$SG_WORK/clone"
check_eq "$(git -C "$R" rev-parse HEAD)" "$(git -C "$SG_WORK/clone" rev-parse HEAD 2>&1)" "the clone has the same HEAD"
check "git init --bare in the mount" git init -q --bare "$MNT/bare.git"
printf 'from clone\n' >"$SG_WORK/clone/new"
git -C "$SG_WORK/clone" add new && git -C "$SG_WORK/clone" commit -q -m third
check "git push from local disk into the bare repo in the mount" git -C "$SG_WORK/clone" push -q "$MNT/bare.git" main
check "git fsck of the pushed bare repo" git -C "$MNT/bare.git" fsck --full --strict --no-progress
check_eq "third second first" "$(git -C "$MNT/bare.git" log --format=%s main 2>&1 | tr '\n' ' ' | sed 's/ $//')" \
	"git log of the pushed repo"

r_before=$(sg_manifest "$MNT")
sg_umount a
sg_mount a || sg_done
check_same_text "$r_before" "$(sg_manifest "$MNT")" "everything survives a remount"
check "git fsck after the remount" git -C "$R" fsck --full --strict --no-progress
sg_daemon_alive

sg_done
