#!/bin/bash
# t0220-sigilctl.sh: sigilctl against a running 3-node cluster (tcp://):
# status names the node and the store version .sigil/status shows, --json
# parses and has the peers with their states, peers lists the other two up,
# conflicts is empty until a save loses (then it names the file holding the
# losing content), sync starts a round (and says so when replication is off).
# A caller other than the daemon's user is refused with one line, by the
# socket's mode and, with the mode opened up, by the uid check. A frozen,
# stopped or killed daemon is reported (exit 3), a socket left by a
# killed daemon does not stop the next one, and usage errors exit 2.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
. "$(dirname "$0")/repl-lib.sh" || exit 99

sg_require_tools python3 su unshare
CTL=${SIGILCTL:-$(dirname "$SIGILFS")/sigilctl}
[ -x "$CTL" ] || sg_hard_error "sigilctl is not built: $CTL (set SIGILCTL)"

T=15
RL_SCHEME=tcp
rl_ports 3
PA=${RL_PORT[0]} PB=${RL_PORT[1]} PC=${RL_PORT[2]}
rl_start a "$PA" "$(rl_url "$PB");$(rl_url "$PC")" || sg_done
rl_start b "$PB" "$(rl_url "$PA");$(rl_url "$PC")" || sg_done
rl_start c "$PC" "$(rl_url "$PA");$(rl_url "$PB")" || sg_done
A=$(sg_mnt a) C=$(sg_mnt c)
DA=$(sg_data a) DC=$(sg_data c)

# ctl ARGS...: run sigilctl (as user $CTL_AS if set); sets OUT (stdout),
# ERR (stderr) and RC.
CTL_AS=
ctl() {
	if [ -n "$CTL_AS" ]; then
		OUT=$(timeout 30 su "$CTL_AS" -s /bin/sh -c "$(printf '%q ' "$CTL" "$@")" 2>"$SG_WORK/ctl.err")
	else
		OUT=$(timeout 30 "$CTL" "$@" 2>"$SG_WORK/ctl.err")
	fi
	RC=$?
	ERR=$(cat "$SG_WORK/ctl.err")
}

# check_ctl_fails RC TEXT MSG ARGS...: sigilctl exits RC with exactly one
# line on stderr that contains TEXT, and nothing on stdout.
check_ctl_fails() {
	local want=$1 text=$2 msg=$3
	shift 3
	ctl "$@"
	if [ "$RC" -eq "$want" ] && [ -z "$OUT" ] && [ "$(printf '%s\n' "$ERR" | wc -l)" -eq 1 ] &&
		[[ $ERR == *"$text"* ]]; then
		ok "$msg: exit $RC, '$ERR'"
	else
		fail "$msg" "expected: exit $want, one line on stderr with '$text', no stdout" \
			"got: exit $RC" "stderr: $ERR" "stdout: $OUT"
	fi
}

peers_up() { # DATA N: sigilctl peers shows N peers up
	[ "$("$CTL" -d "$1" peers 2>/dev/null | grep -c '  up  ')" -eq "$2" ]
}
rl_arrives $T "sigilctl peers on a shows both peers up" peers_up "$DA" 2

# ---- status: the same facts as .sigil/status
printf 'x = 1\n' >"$A/app.conf"
rl_converged $T a b c -- "a write reaches every node"
ctl -d "$DA" status
check_eq 0 "$RC" "sigilctl status exits 0 (stderr: $ERR)"
file_version=$(sed -n 's/^store *version \([0-9]*\),.*/\1/p' "$A/.sigil/status")
ctl_version=$(printf '%s\n' "$OUT" | sed -n 's/^store *version \([0-9]*\),.*/\1/p')
check_eq "$file_version" "$ctl_version" "status shows the store version of .sigil/status"
check_eq "a ($(rl_node_id a))" "$(printf '%s\n' "$OUT" | sed -n 's/^node *//p')" "status names the node and its id"
check "status shows the peers" grep -q '^peers *2 known, 2 up' <<<"$OUT"
check "status shows the conflict count" grep -q '^conflicts *0 ' <<<"$OUT"

# ---- /.sigil/metrics: Prometheus text format 0.0.4, agreeing with status
check "metrics parse as Prometheus text and agree with .sigil/status" python3 -c '
import re, sys
text = open(sys.argv[1]).read()
status = open(sys.argv[2]).read()
typed, seen = {}, {}
sample = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\"(,[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\")*\})? (-?[0-9.eE+-]+)$")
for n, line in enumerate(text.splitlines(), 1):
    if line.startswith("# HELP "):
        continue
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split(" ")
        assert kind in ("counter", "gauge"), (n, line)
        assert not (kind == "counter") or name.endswith("_total"), (n, "counter without _total", line)
        typed[name] = kind
        continue
    m = sample.match(line)
    assert m, (n, "not a sample", line)
    assert m.group(1) in typed, (n, "no TYPE before", line)
    seen[m.group(1)] = float(m.group(4))
version = int(re.search(r"store +version (\d+)", status).group(1))
assert seen["sigil_store_version"] >= version, (seen["sigil_store_version"], version)
assert seen["sigil_repl_malformed_total"] == 0 and seen["sigil_conflicts"] == 0, seen
assert seen["sigil_peer_up"] == 1, seen
assert len(seen) >= 20, len(seen)
' "$A/.sigil/metrics" "$A/.sigil/status"

# ---- status --json
ctl -d "$DA" status --json
check_eq 0 "$RC" "sigilctl status --json exits 0 (stderr: $ERR)"
printf '%s' "$OUT" >"$SG_WORK/status.json"
check "status --json: node, version, data dir and both peers up, by URL and node id" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["node"] == "a", j["node"]
assert j["node_id"] == sys.argv[2], j["node_id"]
assert j["store"]["version"] == int(sys.argv[3]), (j["store"]["version"], sys.argv[3])
assert j["data"] == sys.argv[4], j["data"]
assert j["conflicts"] == 0 and isinstance(j["replication"], dict)
peers = {p["url"]: p for p in j["peers"]}
want = {"tcp://127.0.0.1:" + sys.argv[5]: sys.argv[6], "tcp://127.0.0.1:" + sys.argv[7]: sys.argv[8]}
assert set(peers) == set(want), sorted(peers)
for u, nid in want.items():
    assert peers[u]["state"] == "up" and peers[u]["node_id"] == nid, peers[u]
' "$SG_WORK/status.json" "$(rl_node_id a)" "$(sed -n 's/^store *version \([0-9]*\),.*/\1/p' "$A/.sigil/status")" \
	"$DA" "$PB" "$(rl_node_id b)" "$PC" "$(rl_node_id c)"
ctl -d "$DA" --json status
check_eq 0 "$RC" "--json may also come before the command"

# ---- peers, conflicts, sync
ctl -d "$DA" peers
check_eq 0 "$RC" "sigilctl peers exits 0"
for n in b c; do
	check "peers lists $n ($(rl_node_id $n)) as up" \
		grep -qE "^tcp://127\.0\.0\.1:${RL_PORT_OF[$n]} +$(rl_node_id $n)  up  " <<<"$OUT"
done
ctl -d "$DA" conflicts
check_eq "0|" "$RC|$OUT" "conflicts on a fresh cluster: exit 0, nothing listed"
ctl -d "$DA" check
check_eq "0|" "$RC|$ERR" "check exits 0, nothing on stderr"
check "check says the store agrees" grep -q "^ok: [0-9]* entries" <<<"$OUT"

# check's tree digest: equal on nodes holding the same tree (local-only names
# left out), different once the tree differs
digest() { ctl -d "$(sg_data "$1")" check && sed -n 's/^tree digest \([0-9a-f]\{32\}\) over .*/\1/p' <<<"$OUT"; }
mkdir -p "$A/dg" && printf 'one\n' >"$A/dg/f" && chmod 640 "$A/dg/f" && ln -s f "$A/dg/l" &&
	setfattr -n user.k -v v "$A/dg/f"
rl_converged $T a b c -- "the digest's files everywhere"
printf 'temp\n' >"$A/dg/f~"
da=$(digest a) db=$(digest b) dc=$(digest c)
check "check prints a tree digest" test -n "$da"
check_eq "$da|$da" "$db|$dc" "the tree digest is the same on a, b and c (a's local-only dg/f~ left out)"
rm "$A/dg/f~"
chmod 600 "$A/dg/f"
d2=$(digest a)
check "a mode change alone changes the digest ($da -> $d2)" test -n "$d2" -a "$d2" != "$da"
rl_converged $T a b c -- "the chmod everywhere"
sg_wait $T test "$(digest c)" == "$d2" && ok "c's digest follows a's" || fail "c's digest follows a's" "a $d2, c $(digest c)"
rm -rf "$A/dg"
ctl -d "$DA" sync
check_eq "0|" "$RC|$ERR" "sync exits 0, nothing on stderr"

# a config file names the data dir
printf '[sigil]\nnode = a\ndata = %s\n' "$DA" >"$SG_WORK/sigil.conf"
ctl -c "$SG_WORK/sigil.conf" status
check "sigilctl -c CONFIG finds the data dir in the config" grep -q "^data *$DA\$" <<<"$OUT"

# ---- a caller other than the daemon's user
CTL_AS=nobody
check_ctl_fails 1 "permission denied" "as nobody: refused by the socket's mode, one line" -d "$DA" status
# open the mode up: the daemon's uid check still refuses
chmod 711 "$SG_WORK" "$SG_WORK/a" "$DA"
chmod 666 "$DA/control.sock"
check_ctl_fails 1 "sigilctl: permission denied: uid $(id -u nobody)" \
	"as nobody with the socket opened up: refused by the daemon's uid check" -d "$DA" status
chmod 600 "$DA/control.sock"
chmod 700 "$SG_WORK" "$SG_WORK/a" "$DA"
CTL_AS=
ctl -d "$DA" status
check_eq 0 "$RC" "root is still served afterwards"

# ---- a conflict: c cut off saves p/one, a saves it later; c's save loses
mkdir "$A/p"
printf 'before\n' >"$A/p/one"
rl_converged $T a b c -- "p/one everywhere before the cut"
sg_umount c
rl_start_cut c "$PC" "$(rl_url "$PA");$(rl_url "$PB")" || sg_done
lost="saved on c, cut off"
printf '%s' "$lost" >"$C/p/one"
sleep 0.1
printf 'saved on a later\n' >"$A/p/one"
sg_umount c
rl_start c "$PC" "$(rl_url "$PA");$(rl_url "$PB")" || sg_done
rl_converged $T a b c -- "c rejoins; every node converges"
ctl -d "$DC" conflicts
line=$(grep -P '^\d+\tp/one\t' <<<"$OUT" || grep -P '^\d+\t/p/one\t' <<<"$OUT")
check_eq "$(rl_conflicts c p/one)" "$(cut -f1-7 <<<"$line")" \
	"sigilctl conflicts on c: the record of .sigil/conflicts for p/one"
seq=$(cut -f1 <<<"$line")
check_eq "$C/.sigil/lost/$seq" "$(cut -f8 <<<"$line")" "... and the file holding the losing content"
check_eq "$lost" "$(cat "$(cut -f8 <<<"$line")" 2>&1)" "that file holds c's losing save"
ctl -d "$DC" status --json
check_eq 1 "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["conflicts"])' "$OUT" 2>&1)" \
	"status --json on c counts the conflict"

# ---- a node without replication: sync is refused
sg_mount d || sg_done
check_ctl_fails 1 "sigilctl: replication is off" "sync on a node without replication" -d "$(sg_data d)" sync
ctl -d "$(sg_data d)" status --json
check "status --json without replication: replication null, no peers" python3 -c '
import json, sys
j = json.loads(sys.argv[1])
assert j["replication"] is None and j["peers"] == [] and j["node"] == "d", j
' "$OUT"
sg_umount d

# ---- a frozen daemon, a stopped one, a killed one, usage
rl_sigstop c
check_ctl_fails 3 "sigilctl: the sigilfs daemon for $DC does not answer" "a frozen daemon: no answer, exit 3" \
	-d "$DC" status
rl_sigcont c
# a caller that gave up, one that connected and left, one that sent half a
# line: the control socket still serves the next (with NNG 1.5.2's ipc://
# the first of them locked every later caller out, nng #1518)
python3 -c "
import socket, sys
for data in (b'', b'sta'):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
    if data: s.send(data)
    s.close()" "$DC/control.sock"
ctl -d "$DC" status
check_eq 0 "$RC" "after abandoned connections, c still answers (stderr: $ERR)"
sg_umount c
check_ctl_fails 3 "sigilctl: no sigilfs daemon is running for $DC" "after unmounting c: not running" -d "$DC" status
check_ctl_fails 3 "sigilctl: no sigilfs daemon is running for $SG_WORK/none" "a data dir never used: not running" \
	-d "$SG_WORK/none" peers
sg_kill9 b
check "kill -9 leaves b's socket file behind" test -S "$(sg_data b)/control.sock"
check_ctl_fails 3 "sigilctl: no sigilfs daemon is running for $(sg_data b)" "after kill -9 of b: not running" \
	-d "$(sg_data b)" status
rl_start b "$PB" "$(rl_url "$PA");$(rl_url "$PC")" || sg_done
ctl -d "$(sg_data b)" status
check_eq 0 "$RC" "b restarted over the stale socket file answers (stderr: $ERR)"
check_ctl_fails 2 "unknown command 'frob'; usage: sigilctl" "a bad command: exit 2 with the usage" -d "$DA" frob
check_ctl_fails 2 "no command given; usage: sigilctl" "no command: exit 2" -d "$DA"
check_ctl_fails 2 "usage: sigilctl" "-c and -d together: exit 2" -c /dev/null -d "$DA" status
check_ctl_fails 2 "usage: sigilctl" "--json with peers: exit 2" -d "$DA" peers --json
check_ctl_fails 1 "sigilctl: $SG_WORK/missing.conf: cannot read" "a missing config file: one line, exit 1" \
	-c "$SG_WORK/missing.conf" status
sg_done
