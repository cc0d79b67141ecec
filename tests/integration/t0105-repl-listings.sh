#!/bin/bash
# t0105-repl-listings.sh: the kernel may keep a directory's listing; what a
# peer changes must show in the next listing at once, at the root as in a
# subdirectory. b mounts with a one-hour kernel cache and lists / and /d
# (only the name d is looked up on b); then a creates and
# deletes files in both, and b's listings must follow, well before any
# cache timeout could refresh them.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
. "$(dirname "$0")/repl-lib.sh" || exit 99

T=15
RL_SCHEME=tcp
rl_ports 2
PA=${RL_PORT[0]} PB=${RL_PORT[1]}
rl_start a "$PA" "$(rl_url "$PB")" || sg_done
rl_start b "$PB" "$(rl_url "$PA")" cache_timeout=3600 || sg_done
A=$(sg_mnt a) B=$(sg_mnt b)

mkdir "$A/d"
printf 'old\n' >"$A/old"
printf 'old\n' >"$A/d/old"
names() { ls "$1" | tr '\n' ' ' | sed 's/ $//'; }
rl_arrives $T "a's files reach b's listings" eval '[ "$(names "$B") | $(names "$B/d")" == "d old | old" ]'
check_eq "d old | old" "$(names "$B") | $(names "$B/d")" "b lists them again (the kernel may answer)"

printf 'new\n' >"$A/new"
printf 'new\n' >"$A/d/new"
rm "$A/old" "$A/d/old"
rl_arrives $T "a's create and delete at the root show in b's listing of the root" \
	eval '[ "$(names "$B")" == "d new" ]'
rl_arrives $T "a's create and delete in /d show in b's listing of /d" \
	eval '[ "$(names "$B/d")" == "new" ]'
check_eq "new" "$(cat "$B/new")" "and the new file reads right on b"

sg_umount b
sg_umount a
sg_done
