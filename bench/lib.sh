# lib.sh: helpers shared by the benchmark scripts (sourced, not run, after
# HERE=the bench dir). Sourcing it also sets what every script runs with:
# set -u, the C locale, UTC, umask 022, and ROOT (the source tree).

set -u
export LC_ALL=C.UTF-8 TZ=UTC
umask 022
ROOT=$(dirname "$HERE")

# rev_of DIR: the commit the build tree DIR is at, and whether it is clean,
# for the report: the binary measured is a copy of DIR/sigilfs. The reports
# in bench/results do not count: run-all.sh's earlier parts write them.
rev_of() {
	local r
	r=$(git -C "$1" rev-parse HEAD 2>/dev/null) || {
		echo "unknown (not a git tree: $1)"
		return
	}
	if [ -z "$(git -C "$1" status --porcelain --untracked-files=no -- . ':!bench/results' 2>/dev/null)" ]; then
		echo "$r (clean tree, bench/results aside: $1)"
	else
		echo "$r (with uncommitted changes: $1)"
	fi
}
