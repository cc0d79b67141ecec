#!/bin/bash
# t0220-sigilctl.sh: sigilctl against a running 3-node cluster (tcp://):
# status and --json checked against independent truth (find(1) over the
# mount, the other nodes' version vectors): the node, entries, version,
# vector, the replication and transport counters, and each peer by URL,
# name and id with its state, last answer and how far behind it is (a frozen
# node's lag is exactly the versions made meanwhile and grows in seconds;
# it returns to 0 once the node has pulled them); .sigil/members, version
# and metrics (every required metric with HELP and TYPE, a sample per
# peer); peers lists the other two up, conflicts is
# empty until a save loses (then it names the file holding the losing
# content), sync makes a round happen (and says so when replication is off),
# check passes on a sound store and fails naming the problem on one damaged
# with the LMDB tools.
# A caller other than the daemon's user is refused with one line, by the
# socket's mode and, with the mode opened up, by the uid check. A frozen,
# stopped or killed daemon is reported (exit 3), a socket left by a
# killed daemon does not stop the next one, and usage errors exit 2.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
. "$(dirname "$0")/repl-lib.sh" || exit 99

sg_require_tools python3 su unshare mdb_stat
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

# json NAME: node NAME's `sigilctl status --json`, into $SG_WORK/NAME.json
json() {
	timeout 30 "$CTL" -d "$(sg_data "$1")" status --json >"$SG_WORK/$1.json" 2>&1
}
# jq_py NAME EXPR: evaluate a Python expression over node NAME's JSON (j)
jq_py() {
	python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$SG_WORK/$1.json" "$2" 2>&1
}
# vv NAME ORIGIN: the sequence node NAME's version vector holds for node ORIGIN
vv() {
	json "$1" && jq_py "$1" "next((e['seq'] for e in j['vector'] if e['node_id'] == '$(rl_node_id "$2")'), 0)"
}

# ---- status, against independent truth: the tree as the kernel lists it,
# and the other nodes' stores
printf 'x = 1\n' >"$A/app.conf"
mkdir -p "$A/etc/app"
printf 'a\n' >"$A/etc/app/one.conf"
printf 'b\n' >"$A/etc/app/two.conf"
rl_converged $T a b c -- "a's writes reach every node"
ctl -d "$DA" status
check_eq 0 "$RC" "sigilctl status exits 0 (stderr: $ERR)"
printf '%s\n' "$OUT" >"$SG_WORK/status.txt"
check_eq "a ($(rl_node_id a))" "$(sed -n 's/^node *//p' "$SG_WORK/status.txt")" "status names the node and its id"
check_eq "$(find "$A" | wc -l)" "$(sed -n 's/^store .*, \([0-9]*\) entries,.*/\1/p' "$SG_WORK/status.txt")" \
	"status counts the entries find(1) lists under the mount, root included"
# only a has written: each of its versions is one of its own changes, and b
# and c hold every one of them
va=$(sed -n 's/^store *version \([0-9]*\),.*/\1/p' "$SG_WORK/status.txt")
check_eq "$va|$va" "$(vv b a)|$(vv c a)" "a's store version ($va) is the sequence of a's changes that b and c hold"
check_eq "a:$va" "$(sed -n 's/^vector *//p' "$SG_WORK/status.txt")" "status shows a's version vector: a's own changes"
check "status shows the peers" grep -q '^peers *2 known, 2 up' "$SG_WORK/status.txt"
for n in b c; do
	check "status: a line for peer $n: URL, name, id, up, last answer, nothing behind" \
		grep -qE "^peer +tcp://127\.0\.0\.1:${RL_PORT_OF[$n]} $n \($(rl_node_id $n)\) up, last answer [0-9.]+ s ago, behind 0 changes \(0\.0 s\)\$" \
		"$SG_WORK/status.txt"
done
check "status shows the conflict count" grep -q '^conflicts *0 ' "$SG_WORK/status.txt"
check "status shows the replication counters, deferred, too large and oversized messages too" \
	grep -qE '^replication [0-9]+ applied, [0-9]+ already here, 0 stale, 0 held \(clock ahead\), 0 refused, 0 deferred, 0 too large, 0 malformed messages, 0 oversized messages; [0-9]+ pushes, [0-9]+ pulls, [0-9]+ pushes received in place of a pull$' \
	"$SG_WORK/status.txt"
check "status shows the transport counters: TLS handshakes refused and failed, protocol errors, connections renewed" \
	grep -qE '^transport +TLS handshakes 0 refused \(by this node\), 0 failed \(peer not from the cluster CA\); [0-9]+ protocol errors; [0-9]+ connections renewed \(no answer for 5 s\)$' \
	"$SG_WORK/status.txt"
check_eq "sigilfs $("$SIGILFS" --version | cut -d' ' -f2)" "$(cat "$A/.sigil/version")" \
	".sigil/version names the version sigilfs --version prints"
members=$(cat "$A/.sigil/members")
check "$(printf '.sigil/members: this node first, with its id and name')" \
	grep -qE "^this node +$(rl_node_id a)  self \(a\)\$" <<<"$(head -n 1 <<<"$members")"
for n in b c; do
	check ".sigil/members: $n by URL and id, up, answering" \
		grep -qE "^tcp://127\.0\.0\.1:${RL_PORT_OF[$n]} +$(rl_node_id $n)  up +last answer [0-9]+ ms ago" <<<"$members"
done
check_eq 3 "$(wc -l <<<"$members")" ".sigil/members: three lines"

# ---- /.sigil/metrics: Prometheus text format 0.0.4, every sample kept; the
# metrics that must be there, a sample per peer for the per-peer ones, and
# figures checked against the tree and the other nodes
json b
check "metrics parse as Prometheus text and hold the right figures" python3 -c '
import json, re, sys
text = open(sys.argv[1]).read()
entries, peers = int(sys.argv[2]), sys.argv[3].split()
b_vv_a = [e["seq"] for e in json.load(open(sys.argv[4]))["vector"] if e["node_id"] == sys.argv[5]][0]
typed, samples, helped = {}, {}, set()
sample = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\"(,[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\")*\})? (-?[0-9.eE+-]+)$")
for n, line in enumerate(text.splitlines(), 1):
    if line.startswith("# HELP "):
        name = line.split(" ")[2]
        assert name not in helped and name not in typed, (n, "HELP twice, or after TYPE", name)
        helped.add(name)
        continue
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split(" ")
        assert kind in ("counter", "gauge"), (n, line)
        assert not (kind == "counter") or name.endswith("_total"), (n, "counter without _total", line)
        assert name not in typed, (n, "TYPE twice", name)
        assert name in helped, (n, "TYPE without a HELP before it", name)
        typed[name] = kind
        continue
    m = sample.match(line)
    assert m, (n, "not a sample", line)
    assert m.group(1) in typed, (n, "no TYPE before", line)
    samples.setdefault(m.group(1), []).append((m.group(2) or "", float(m.group(4))))
required = """sigil_store_version sigil_store_entries sigil_store_tombstones sigil_store_map_bytes
 sigil_store_used_bytes sigil_store_commits_total sigil_store_journal_batches_total sigil_store_checkpoints_total sigil_store_map_trims_total sigil_store_changes_total sigil_store_deferred_total
 sigil_store_lost_total sigil_fs_saves_total sigil_fs_inodes sigil_fs_inodes_full sigil_fs_workers sigil_conflicts sigil_mirror_version sigil_repl_applied_total
 sigil_repl_duplicates_total sigil_repl_pushes_total sigil_repl_pulls_total sigil_repl_pushes_as_pulls_total sigil_repl_malformed_total sigil_repl_deferred_total
 sigil_repl_too_large_total sigil_repl_oversized_total sigil_repl_tls_refused_total sigil_repl_tls_failed_total
 sigil_repl_proto_errors_total sigil_repl_connections_renewed_total sigil_peer_up
 sigil_peer_last_answer_seconds sigil_peer_lag_changes sigil_peer_lag_seconds""".split()
missing = [r for r in required if r not in samples]
assert not missing, ("missing metrics", missing)
one = lambda name: (lambda v: v[0][1])(samples[name]) if len(samples[name]) == 1 else sys.exit("%s: %d samples" % (name, len(samples[name])))
assert one("sigil_store_entries") == entries, (one("sigil_store_entries"), entries)
assert one("sigil_store_version") >= b_vv_a, (one("sigil_store_version"), b_vv_a)
assert one("sigil_repl_malformed_total") == 0 and one("sigil_conflicts") == 0
assert one("sigil_store_lost_total") == 0
for name in ("sigil_repl_deferred_total", "sigil_repl_too_large_total", "sigil_repl_oversized_total",
             "sigil_repl_tls_refused_total", "sigil_repl_tls_failed_total"):
    assert one(name) == 0, (name, one(name))
assert one("sigil_repl_proto_errors_total") >= 0
assert one("sigil_fs_saves_total") >= 3, one("sigil_fs_saves_total")
# find looked up every entry: the kernel holds them all, and with no file
# open they are held compactly (no full inode each)
assert one("sigil_fs_inodes") >= entries - 1, (one("sigil_fs_inodes"), entries)
assert one("sigil_fs_inodes_full") == 0, (one("sigil_fs_inodes_full"), one("sigil_fs_inodes"))
for name in ("sigil_peer_up", "sigil_peer_last_answer_seconds", "sigil_peer_lag_changes", "sigil_peer_lag_seconds"):
    got = sorted(l for l, v in samples[name])
    want = sorted("{peer=\"%s\"}" % p for p in peers)
    assert got == want, (name, got, want)
for l, v in samples["sigil_peer_up"]:
    assert v == 1, ("sigil_peer_up", l, v)
for l, v in samples["sigil_peer_lag_changes"] + samples["sigil_peer_lag_seconds"]:
    assert v == 0, ("lag", l, v)
for l, v in samples["sigil_peer_last_answer_seconds"]:
    assert 0 <= v < 10, ("last answer", l, v)
' "$A/.sigil/metrics" "$(find "$A" | wc -l)" "$(rl_url "$PB") $(rl_url "$PC")" "$SG_WORK/b.json" "$(rl_node_id a)"

# ---- status --json
ctl -d "$DA" status --json
check_eq 0 "$RC" "sigilctl status --json exits 0 (stderr: $ERR)"
printf '%s' "$OUT" >"$SG_WORK/status.json"
check "status --json: node, version, data dir, vector, and both peers up, by URL, node id and name, not behind" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["node"] == "a", j["node"]
assert j["node_id"] == sys.argv[2], j["node_id"]
assert j["store"]["version"] == int(sys.argv[3]), (j["store"]["version"], sys.argv[3])
assert j["store"]["lost"] == 0 and j["store"]["deferred"] >= 3, j["store"]
assert j["fuse_workers"] >= 2, j["fuse_workers"]
st = j["store"]
assert isinstance(st["map_single_page_faults"], bool), st
assert 0 <= st["branch_pages_mapped_at_open"] <= st["branch_pages"], st
assert j["vector"] == [{"node_id": sys.argv[2], "name": "a", "seq": int(sys.argv[3])}], j["vector"]
assert j["data"] == sys.argv[4], j["data"]
assert j["conflicts"] == 0 and isinstance(j["replication"], dict)
rep = j["replication"]
for k in ("applied", "duplicates", "stale", "held", "refused", "deferred", "too_large", "malformed", "oversized",
          "tls_refused", "tls_failed", "proto_errors", "connections_renewed", "pushes", "pulls", "pushes_as_pulls", "tombstones_purged",
          "snapshots_served", "snapshots_received", "snapshot_dropped"):
    assert isinstance(rep.get(k), int), (k, rep)
for k in ("deferred", "too_large", "malformed", "oversized", "tls_refused", "tls_failed"):
    assert rep[k] == 0, (k, rep)
peers = {p["url"]: p for p in j["peers"]}
want = {"tcp://127.0.0.1:" + sys.argv[5]: (sys.argv[6], "b"), "tcp://127.0.0.1:" + sys.argv[7]: (sys.argv[8], "c")}
assert set(peers) == set(want), sorted(peers)
for u, (nid, name) in want.items():
    p = peers[u]
    assert p["state"] == "up" and p["node_id"] == nid and p["name"] == name, p
    assert p["behind_changes"] == 0 and p["behind_ms"] == 0 and p["failures"] == 0, p
    assert p["holds"] == int(sys.argv[3]) and p["holds"] == max(p["acked"], p["pulled_by"]), p
    assert 0 <= p["last_answer_ms"] < 10000, p
' "$SG_WORK/status.json" "$(rl_node_id a)" "$va" "$DA" "$PB" "$(rl_node_id b)" "$PC" "$(rl_node_id c)"
ctl -d "$DA" --json status
check_eq 0 "$RC" "--json may also come before the command"

# ---- peers, conflicts, sync
ctl -d "$DA" peers
check_eq 0 "$RC" "sigilctl peers exits 0"
for n in b c; do
	check "peers lists $n ($(rl_node_id $n)) as up" \
		grep -qE "^tcp://127\.0\.0\.1:${RL_PORT_OF[$n]} +$(rl_node_id $n)  up  " <<<"$OUT"
done
check "peers gives each peer's cursors: pulled, pushed, and where its pull from a started" \
	test "$(grep -cE ", pulled to its v[0-9]+, pushed up to our v[0-9]+, it pulled from us from v[0-9]+\$" <<<"$OUT")" -eq 2
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
# sync makes a round happen: both peers pulled within 400 ms, six times in a
# row (the regular round, once a second, would do that by chance 0.4^6 of the time)
pulls() { json a && jq_py a 'j["replication"]["pulls"]'; }
pulled_since() { [ "$(pulls)" -ge $(($1 + 2)) ]; }
n_ok=0
for i in 1 2 3 4 5 6; do
	p0=$(pulls)
	"$CTL" -d "$DA" sync >/dev/null 2>&1
	t0=$(date +%s%N)
	while ! pulled_since "$p0" && [ $(($(date +%s%N) - t0)) -lt 400000000 ]; do sleep 0.02; done
	pulled_since "$p0" && n_ok=$((n_ok + 1))
	sleep 0.$((RANDOM % 9 + 1))
done
check_eq 6 "$n_ok" "sync: every time, both peers were pulled from within 400 ms (pull counter +2)"

# ---- how far a peer is behind: this node's committed version minus the
# newest version of its log the peer is known to hold (by its pulls from
# this node, or this node's pushes it acknowledged). Freeze c, write on a:
# a's status shows c behind by exactly the versions a made meanwhile, its
# lag growing in seconds, while b, which took the pushes, is at 0; thawed,
# c catches up by its own pulls, and a sees it by them.
behind() { # NODE PEER FIELD: NODE's --json figure FIELD for peer PEER
	json "$1" && jq_py "$1" "[p['$3'] for p in j['peers'] if p['name'] == '$2'][0]"
}
behind_is() { [ "$(behind "$1" "$2" "$3")" == "$4" ]; } # NODE PEER FIELD VALUE
same_vv() { # NODE1 NODE2 ORIGIN: both hold the same sequence of ORIGIN's changes
	local x y
	x=$(vv "$1" "$3")
	y=$(vv "$2" "$3")
	[ -n "$x" ] && [ "$x" == "$y" ]
}
version_of() { json "$1" && jq_py "$1" 'j["store"]["version"]'; } # NODE: its store version
v0=$(version_of a)
rl_arrives $T "before the freeze, a knows c holds all of a's log (v$v0)" behind_is a c holds "$v0"
rl_sigstop c
t_write=$(date +%s%N)
for i in 1 2 3; do printf '%s\n' "$i" >"$A/lag-$i"; done
rl_arrives $T "b, not frozen, holds every change of a (b's vector = a's)" same_vv a b a
rl_arrives $T "b acknowledged a's pushes (a knows b holds all of a's log)" behind_is a b behind_changes 0
v1=$(version_of a)
check "a's three writes made versions ($v0 -> $v1)" test "$v1" -ge $((v0 + 3))
check_eq "$((v1 - v0))|$v0|0" "$(behind a c behind_changes)|$(behind a c holds)|$(behind a b behind_changes)" \
	"a's status: c (frozen) is behind by a's versions since the freeze (v$v1 - v$v0), b none"
lag1=$(behind a c behind_ms)
sleep 2
lag2=$(behind a c behind_ms)
elapsed=$((($(date +%s%N) - t_write) / 1000000))
if [ "$lag2" -ge $((lag1 + 1500)) ] && [ "$lag2" -le $((elapsed + 500)) ]; then
	ok "c's lag grows with time: ${lag1} ms, 2 s later ${lag2} ms (written ${elapsed} ms ago)"
else
	fail "c's lag grows with time, no more than since the first write" \
		"first ${lag1} ms, 2 s later ${lag2} ms, first write ${elapsed} ms ago"
fi
check "status text: c $((v1 - v0)) changes behind" \
	grep -qE "^peer +tcp://127\.0\.0\.1:$PC c \($(rl_node_id c)\) (up|down).*, behind $((v1 - v0)) changes \([0-9.]+ s\)\$" \
	<<<"$("$CTL" -d "$DA" status)"
check "metrics: sigil_peer_lag_changes for c is $((v1 - v0)), for b 0" \
	grep -qx "sigil_peer_lag_changes{peer=\"$(rl_url "$PC")\"} $((v1 - v0))" "$A/.sigil/metrics"
check "metrics: sigil_peer_lag_changes for b is 0" \
	grep -qx "sigil_peer_lag_changes{peer=\"$(rl_url "$PB")\"} 0" "$A/.sigil/metrics"
rl_sigcont c
# c catches up by its own pulls, with no further write on a; its next pull
# from a tells a how far it has a's log
rl_arrives $T "c, thawed, pulls every change of a (c's vector = a's)" same_vv a c a
rl_arrives $T "a sees c's pulls: c pulled a's log up to a's version (v$v1)" behind_is a c pulled_by "$v1"
check_eq "0|0|$v1" "$(behind a c behind_changes)|$(behind a c behind_ms)|$(behind a c holds)" \
	"a's status shows c 0 changes behind, waiting 0 ms, holding a's log up to v$v1"
check "metrics: sigil_peer_lag_changes for c is 0 again" \
	grep -qx "sigil_peer_lag_changes{peer=\"$(rl_url "$PC")\"} 0" "$A/.sigil/metrics"
rm -f "$A"/lag-*
rl_converged $T a b c -- "the lag files gone everywhere"

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

# ---- check on a store damaged on purpose: the change log's row of one file
# deleted with the LMDB tools while the node is down; check then fails (exit
# 1) naming that file's entry
mkdir -p "$MNT/dir" && printf 'one\n' >"$MNT/dir/f" && printf 'two\n' >"$MNT/g"
gid=$(stat -c %i "$MNT/g") # the inode number is the entry's id
ctl -d "$(sg_data d)" check
check_eq "0|" "$RC|$ERR" "check on d before the damage: exit 0"
sg_umount d
DD=$(sg_data d)
rows_before=$(mdb_stat -s log "$DD" | sed -n 's/^ *Entries: //p')
# src/lmdb/test_damage deletes the log row in place (a dump, an edit and a
# reload through mdb_dump/mdb_load went wrong once in a few runs)
out=$("${SIGIL_DAMAGE:-$(dirname "$SIGILFS")/src/lmdb/test_damage}" "$DD" "$gid" 2>&1)
check_eq "0|" "$?|$out" "delete the log row of g (entry $gid) from d's store"
check_eq "$((rows_before - 1))" "$(mdb_stat -s log "$DD" | sed -n 's/^ *Entries: //p')" \
	"d's store now holds one log row fewer ($rows_before before)"
sg_mount d || sg_done
check_ctl_fails 1 "(all in the log); the first: entry $gid (g): log row " \
	"check on the damaged store: exit 1, naming g's entry and its log row" -d "$DD" check
check "... with the count of problems" \
	grep -qE "^sigilctl: the store has [0-9]+ problems? \(all in the log\); the first: entry $gid \(g\): log row [0-9]+ does not point at it\$" <<<"$ERR"
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
want="sigilctl $("$SIGILFS" --version | cut -d' ' -f2)"
for opt in -V --version; do
	out=$("$CTL" "$opt" 2>&1)
	rc=$?
	check_eq "0|$want" "$rc|$out" "sigilctl $opt prints the version sigilfs --version names, exit 0"
done
sg_done
