#!/bin/bash
# t0150-repl-enospc.sh: three nodes over TLS; node c's data dir is on a
# small tmpfs. a writes more than c's disk holds: a and b converge, c takes
# what fits, defers the rest (counted, never passed over) and goes on
# serving. Once c's disk grows (the tmpfs remounted larger), c catches up by
# itself: all three converge, stores consistent.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
. "$(dirname "$0")/repl-lib.sh" || exit 99

sg_require_tools python3 openssl sha256sum mount umount timeout

T=30 # seconds for convergence (well under 5 s expected)
CTL=${SIGILCTL:-$(dirname "$SIGILFS")/sigilctl}
rl_ports 3
rl_pki a b c
PA=${RL_PORT[0]} PB=${RL_PORT[1]} PC=${RL_PORT[2]}
small=$(sg_data c)
mkdir -p "$small"
mount -t tmpfs -o size=8m tmpfs "$small" || sg_hard_error "cannot mount an 8 MiB tmpfs"
rl_start a "$PA" "$(rl_url "$PB");$(rl_url "$PC")" || sg_done
rl_start b "$PB" "$(rl_url "$PA");$(rl_url "$PC")" || sg_done
rl_start c "$PC" "$(rl_url "$PA");$(rl_url "$PB")" mirror=off || sg_done
A=$(sg_mnt a) B=$(sg_mnt b) C=$(sg_mnt c)
printf 'small\n' >"$A/small.conf"
rl_converged $T a b c -- "three nodes start equal"

# rstat NODE KEY: node NODE's replication counter KEY
rstat() {
	timeout 20 "$CTL" -d "$(sg_data "$1")" status --json 2>/dev/null |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["replication"][sys.argv[1]])' "$2"
}
deferred0=$(rstat c deferred)

# 48 files of 256 KiB (12 MiB): more than c's 8 MiB
check "a writes 48 files of 256 KiB" python3 -c '
import hashlib, os, sys
d = os.path.join(sys.argv[1], "big")
os.mkdir(d)
for i in range(48):
    with open(os.path.join(d, "f%02d" % i), "wb") as f:
        f.write(hashlib.sha256(b"%d" % i).digest() * 8192)' "$A" || sg_done
rl_converged $T a b -- "a and b converge"
full() { [ "$(rstat c deferred)" -gt "$deferred0" ] 2>/dev/null; }
if sg_wait $T full; then
	ok "c defers what does not fit, to fetch it again (deferred: $deferred0 -> $(rstat c deferred))"
else
	fail "c defers what does not fit within $T s" "deferred: $deferred0 -> $(rstat c deferred)" \
		"df: $(df -k "$small" | tail -n1)"
fi
check_eq 0 "$(rstat c refused)" "c refuses (passes over) none of them"
n=$(find "$C/big" -type f 2>/dev/null | wc -l)
[ "$n" -lt 48 ] && ok "c holds $n of the 48 files" || fail "c holds fewer than 48 files" "it holds $n"
# (a file's create replicates as a change of its own, empty: c may hold that
# and not yet its content)
check "each of them c holds reads whole, or empty (its create, not yet its content)" python3 -c '
import os, sys
c, a = sys.argv[1:]
for f in os.listdir(c):
    got = open(os.path.join(c, f), "rb").read()
    assert got == b"" or got == open(os.path.join(a, f), "rb").read(), (f, len(got))' "$C/big" "$A/big"
check_eq "small" "$(cat "$C/small.conf")" "c still serves what it had"
sg_daemon_alive "$(rl_pid c)" "c's daemon runs on"

check "c's disk grows to 64 MiB (tmpfs remounted)" mount -o remount,size=64m "$small"
rl_converged $T a b c -- "c catches up by itself: all three converge"
rl_check_stores a b c
sg_umount a
sg_umount b
sg_umount c
sg_done
