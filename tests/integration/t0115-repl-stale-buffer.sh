#!/bin/bash
# t0115-repl-stale-buffer.sh: a save whose content was made before a peer's
# version arrived must not pass for one that saw it. c opens f and writes
# into it (its buffer holds b's version with c's bytes); a saves f; a's
# version reaches c's store; only then c closes (the commit). c's save wins
# (it is stamped later), but it never saw a's: a must record that its save
# lost to a concurrent one.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
. "$(dirname "$0")/repl-lib.sh" || exit 99

sg_require_tools python3
CTL=${SIGILCTL:-$(dirname "$SIGILFS")/sigilctl}
T=15
RL_SCHEME=tcp
rl_ports 2
PA=${RL_PORT[0]} PC=${RL_PORT[1]}
rl_start a "$PA" "$(rl_url "$PC")" || sg_done
rl_start c "$PC" "$(rl_url "$PA")" || sg_done
A=$(sg_mnt a) C=$(sg_mnt c)
vv() { # NODE ORIGIN: the sequence NODE's vector holds for ORIGIN
	"$CTL" -d "$(sg_data "$1")" status --json | python3 -c '
import json, sys
print(next((e["seq"] for e in json.load(sys.stdin)["vector"] if e["node_id"] == sys.argv[1]), 0))' "$(rl_node_id "$2")"
}
base="base version, saved on a first"
printf '%s' "$base" >"$A/f"
rl_arrives $T "f reaches c" rl_has "$C/f" "$base"
ca="from c: written before a's save"
ca+=$(printf '%*s' $((${#base} - ${#ca})) '' | tr ' ' c)
aa="from a, a concurrent save"
aa+=$(printf '%*s' $((${#base} - ${#aa})) '' | tr ' ' a)
python3 - "$C/f" "$ca" "$SG_WORK/ready" "$SG_WORK/go" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, sys.argv[2].encode(), 0)
open(sys.argv[3], "w").close()
while not os.path.exists(sys.argv[4]):
    time.sleep(0.01)
os.close(fd)
PY
writer=$!
sg_wait $T test -e "$SG_WORK/ready" || fail "c's writer is ready"
printf '%s' "$aa" >"$A/f"
va=$(vv a a)
rl_arrives $T "a's save is in c's store (c's vector holds a's seq $va) before c's closes" \
	eval '[ "$(vv c a)" -ge "$va" ]'
touch "$SG_WORK/go"
wait "$writer"
rl_converged $T a c -- "a and c converge"
check_eq "$ca" "$(cat "$A/f")" "c's save (stamped later) wins on a"
check "a records that its save lost to c's, which never saw it" test -n "$(rl_conflicts a f)"
printf '%s\n' "a's records: $(rl_conflicts a)" "c's records: $(rl_conflicts c)"
sg_umount a
sg_umount c
sg_done
