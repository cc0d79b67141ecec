# mirror-lib.sh: helpers for the tests of one node's Git mirror, after
# sg_mount (they use $DATA, $MNT, and $REPO, the mirror's repository, on
# branch refs/heads/a). Sourced after lib.sh; needs $CTL (sigilctl).

g() { git --git-dir="$REPO" "$@"; }

# mstat KEY: the mirror's KEY from `sigilctl status --json` ("" for null),
# or the store's version for KEY "store"
mstat() {
	timeout 10 "$CTL" -d "$DATA" status --json 2>/dev/null | python3 -c '
import json, sys
j = json.load(sys.stdin)
v = j["store"]["version"] if sys.argv[1] == "store" else j["mirror"][sys.argv[1]]
print("" if v is None else v)' "$1"
}

# caught_up: the mirror holds every store version, and the branch is its head
caught_up() {
	local s v h
	s=$(mstat store) v=$(mstat version) h=$(mstat head)
	[ -n "$s" ] && [ "$s" == "$v" ] && [ "$(g rev-parse -q --verify refs/heads/a 2>/dev/null)" == "$h" ]
}

# failing: the status says the mirror's commits fail
failing() { [ "$(mstat failing_ms)" -gt 0 ] 2>/dev/null; }

# same_tree: HEAD's files (their paths and contents) are the mount's
same_tree() {
	local want got
	want=$(cd "$MNT" && find . -path ./.sigil -prune -o -type f -print | sed 's|^\./||' | sort |
		while read -r f; do printf '%s %s\n' "$f" "$(git hash-object "$f")"; done)
	got=$(g ls-tree -r refs/heads/a | awk '$4 != ".sigil" { print $4, $3 }' | sort)
	[ "$want" == "$got" ]
}
