# repl-lib.sh: helpers for the replication tests (t01NN-repl-*.sh), sourced
# after lib.sh and sourcing nothing itself: free loopback ports, a test PKI
# (the cluster's CA and node certificates, and an unrelated second CA), nodes
# started with listen/peers/TLS options, and convergence of all nodes' trees.
#
#	. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
#	. "$(dirname "$0")/repl-lib.sh" || exit 99
#	rl_ports 3                      # RL_PORT[0..2]
#	rl_pki a b c                    # $RL_PKI/ca.crt, $RL_PKI/a.crt, a.key...
#	rl_start a "${RL_PORT[0]}" ""  || sg_done
#	rl_start b "${RL_PORT[1]}" "$(rl_url "${RL_PORT[0]}")" || sg_done
#	echo x >"$(sg_mnt a)/f"
#	rl_converged 15 a b            # one check: every tree equal within 15 s
#
# Variables a test may set before rl_start: RL_SCHEME (tls+tcp, the default,
# or tcp), RL_CA/RL_CERT/RL_KEY (override the TLS files for one start; empty
# strings leave the option out). It replaces lib.sh's EXIT trap with one that
# first SIGCONTs any daemon rl_sigstop left frozen, then runs lib.sh's.

RL_SCHEME=${RL_SCHEME:-tls+tcp}
RL_PKI=
RL_PORT=()
RL_STOPPED=() # pids this script SIGSTOPped and has not SIGCONTed yet
declare -A RL_PORT_OF # node name -> its listen port

# rl_ports N: N distinct free TCP ports on 127.0.0.1 in RL_PORT[0..N-1],
# reserved for this script (sg_ports).
rl_ports() {
	local out
	out=$(sg_ports "$1") || sg_hard_error "sg_ports could not find $1 free ports"
	read -r -a RL_PORT <<<"$out"
	[ ${#RL_PORT[@]} -eq "$1" ] || sg_hard_error "rl_ports: wanted $1 ports, got '$out'"
}

# rl_url PORT [SCHEME]: the URL of a node listening on PORT.
rl_url() {
	printf '%s://127.0.0.1:%s' "${2:-$RL_SCHEME}" "$1"
}

# ---- PKI

rl_openssl() { # run openssl quietly; on failure the harness is broken
	local out
	out=$(openssl "$@" 2>&1) || sg_hard_error "openssl $*: $out"
}

# rl_ca DIR: a self-signed EC P-256 CA in DIR/ca.crt, DIR/ca.key.
rl_ca() {
	local d=$1
	mkdir -p "$d"
	cat >"$d/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = sigilfs test CA
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[node]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyAgreement
extendedKeyUsage = serverAuth, clientAuth
# 127.0.0.1 as a DNS name too: for a verifier that compares the server name
# with dNSName entries only
subjectAltName = IP:127.0.0.1, DNS:localhost, DNS:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
	sed -i "s/^CN = .*/CN = sigilfs test CA $(basename "$d") $$/" "$d/ca.cnf"
	rl_openssl req -x509 -config "$d/ca.cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-nodes -sha256 -days 3650 -keyout "$d/ca.key" -out "$d/ca.crt"
}

# rl_cert DIR NAME: a node certificate DIR/NAME.crt (key DIR/NAME.key), CN=NAME,
# signed by the CA in DIR, for both server and client authentication.
rl_cert() {
	local d=$1 n=$2
	rl_openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj "/CN=$n" -keyout "$d/$n.key" -out "$d/$n.csr"
	rl_openssl x509 -req -in "$d/$n.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
		-set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" -sha256 -days 3650 \
		-extfile "$d/ca.cnf" -extensions node -out "$d/$n.crt"
	chmod 600 "$d/$n.key"
}

# rl_pki NAME...: the cluster's CA in $RL_PKI with a certificate per NAME, and
# an unrelated CA in $RL_PKI/other (rl_cert "$RL_PKI/other" NAME for a node
# that holds a well-formed certificate the cluster must refuse).
rl_pki() {
	local n
	RL_PKI=$SG_WORK/pki
	rl_ca "$RL_PKI"
	rl_ca "$RL_PKI/other"
	for n in "$@"; do
		rl_cert "$RL_PKI" "$n"
	done
}

# ---- nodes

# rl_opts NAME PORT PEERS: the replication mount options of node NAME
# (PEERS: ';'-separated URLs, or empty).
rl_opts() {
	local n=$1 port=$2 peers=$3 o ca cert key
	o="listen=$(rl_url "$port")"
	[ -n "$peers" ] && o+=",peers=$peers"
	if [[ $RL_SCHEME == tls* ]] || [[ $peers == tls* ]]; then
		ca=${RL_CA-$RL_PKI/ca.crt}
		cert=${RL_CERT-$RL_PKI/$n.crt}
		key=${RL_KEY-$RL_PKI/$n.key}
		[ -n "$ca" ] && o+=",tls_ca=$ca"
		[ -n "$cert" ] && o+=",tls_cert=$cert"
		[ -n "$key" ] && o+=",tls_key=$key"
	fi
	printf '%s' "$o"
}

# rl_start NAME PORT PEERS [EXTRA-OPTS]: mount node NAME (sg_mount: data dir
# kept, so starting NAME again is a restart) listening on PORT and starting
# from PEERS. Sets MNT, DATA, PID like sg_mount; 0 or 1 (a failed check).
rl_start() {
	local n=$1 port=$2 peers=$3 extra=${4:-}
	RL_PORT_OF[$n]=$port
	sg_mount "$n" "$(rl_opts "$n" "$port" "$peers")${extra:+,$extra}"
}

# rl_try_mount NAME OPTS: run the daemon for node NAME the way sg_mount does,
# but expecting that it may refuse: sets RL_RC (its exit status) and RL_OUT
# (what it printed). Anything it did mount is tracked, so the teardown
# removes it; the caller decides what the outcome means.
rl_try_mount() {
	local n=$1 mnt data pid
	mnt=$(sg_mnt "$n")
	data=$(sg_data "$n")
	mkdir -p "$mnt"
	sg_track SG_MNTS "$mnt"
	sg_track SG_DATAS "$data"
	SG_DATA_OF[$mnt]=$data
	RL_OUT=$(timeout 60 "$SIGILFS" "$mnt" -o "data=$data,node=$n${2:+,$2}" 2>&1)
	RL_RC=$?
	pid=$(cat "$data/sigilfs.pid" 2>/dev/null)
	[ -n "$pid" ] && sg_alive "$pid" && sg_track SG_PIDS "$pid"
	if [ $RL_RC -eq 0 ]; then
		sg_wait 10 sg_mounted "$mnt"
		sg_wait 5 test -s "$data/sigilfs.pid"
		pid=$(cat "$data/sigilfs.pid" 2>/dev/null)
		[ -n "$pid" ] && sg_track SG_PIDS "$pid"
		MNT=$mnt DATA=$data PID=$pid
	fi
	return 0
}

# rl_pid NAME: the daemon pid of node NAME.
rl_pid() {
	cat "$(sg_data "$1")/sigilfs.pid" 2>/dev/null
}

# rl_sigstop NAME / rl_sigcont NAME: freeze and thaw node NAME's daemon. While
# it is stopped nothing may touch its mount; the EXIT trap thaws whatever is
# still stopped, so the teardown can unmount it.
rl_sigstop() {
	local p
	p=$(rl_pid "$1")
	if [ -z "$p" ] || ! sg_alive "$p"; then
		fail "SIGSTOP $1: a live daemon" "pid: '$p'"
		return 1
	fi
	sg_track RL_STOPPED "$p"
	kill -STOP "$p"
	if sg_wait 5 rl_state_is "$p" T; then
		ok "SIGSTOP node $1 (pid $p)"
	else
		fail "SIGSTOP node $1 (pid $p): the process shows state T" \
			"$(grep State "/proc/$p/status" 2>&1)"
	fi
}

rl_sigcont() {
	local p q keep=()
	p=$(rl_pid "$1")
	kill -CONT "$p" 2>/dev/null
	for q in "${RL_STOPPED[@]}"; do
		[ "$q" == "$p" ] || keep+=("$q")
	done
	RL_STOPPED=("${keep[@]}")
	if sg_alive "$p" && ! rl_state_is "$p" T; then
		ok "SIGCONT node $1 (pid $p)"
	else
		fail "SIGCONT node $1 (pid $p): the daemon runs again" \
			"$(grep State "/proc/$p/status" 2>&1)"
	fi
}

rl_state_is() { # PID STATE-LETTER
	[ "$(sed -n 's/^State:[[:space:]]*\([A-Za-z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)" == "$2" ]
}

rl_on_exit() {
	local rc=$? p
	for p in "${RL_STOPPED[@]}"; do
		kill -CONT "$p" 2>/dev/null
	done
	RL_STOPPED=()
	(exit $rc)
	sg_on_exit
}
trap rl_on_exit EXIT

# ---- trees

# rl_manifest NAME: node NAME's tree as sg_manifest prints it, without the
# root, directory mtimes and the node's own .sigil/ (per node by design).
# Fails (non-zero) if the walk failed, e.g. on an entry that went away.
rl_manifest() {
	local out
	out=$(sg_manifest "$(sg_mnt "$1")" --no-root --no-dir-mtime 2>&1) || {
		printf '%s\n' "$out"
		return 1
	}
	printf '%s\n' "$out" | grep -v -e "^'\.sigil'" -e "^'\.sigil/"
	return 0
}

# rl_same NODE...: every node's manifest equals the first one's (no check).
rl_same() {
	local first n m
	first=$(rl_manifest "$1") || return 1
	shift
	for n in "$@"; do
		m=$(rl_manifest "$n") || return 1
		[ "$m" == "$first" ] || return 1
	done
	return 0
}

# rl_converged TIMEOUT NODE... [-- MSG]: one check that within TIMEOUT seconds
# the trees of all NODEs are equal, file by file: type, content, mode, owner,
# size, file and symlink mtimes, symlink targets, user.* xattrs (not directory
# mtimes, not ctimes). Equal twice in a row counts, so that a tree caught
# between two changes does not. On failure the evidence is the diff of each
# differing node against the first. 0 or 1.
rl_converged() {
	local t=$1 msg n first m d ev=()
	shift
	local nodes=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		nodes+=("$1")
		shift
	done
	[ "${1:-}" == -- ] && shift
	msg=${1:-"nodes ${nodes[*]} converge to the same tree"}
	if sg_wait "$t" rl_same2 "${nodes[@]}"; then
		ok "$msg ($(rl_manifest "${nodes[0]}" | wc -l) entries)"
		return 0
	fi
	first=$(rl_manifest "${nodes[0]}")
	for n in "${nodes[@]:1}"; do
		m=$(rl_manifest "$n")
		[ "$m" == "$first" ] && continue
		d=$(diff <(printf '%s\n' "$first") <(printf '%s\n' "$m") | head -n 30)
		ev+=("diff ${nodes[0]} (<) vs $n (>):" "$d")
	done
	fail "$msg (within $t s)" "${ev[@]}" "$(rl_peers_evidence)"
}

# rl_peers_evidence: for a failure's evidence, each running node's view of its
# peers (`sigilctl peers`: up or down, failures in a row, last answer, cursors)
# and its replication and transport counters (malformed messages, refused
# handshakes), to tell a peer that is not asked from one that does not answer.
# Nodes frozen by rl_sigstop are named, not asked.
rl_peers_evidence() {
	local n p q out ctl=${SIGILCTL:-$(dirname "$SIGILFS")/sigilctl}
	for n in $(printf '%s\n' "${!RL_PORT_OF[@]}" | sort); do
		p=$(rl_pid "$n")
		[ -n "$p" ] && sg_alive "$p" || continue
		for q in "${RL_STOPPED[@]}"; do
			[ "$q" == "$p" ] && continue 2
		done
		out=$(timeout 10 "$ctl" -d "$(sg_data "$n")" peers 2>&1 | grep -v '^this node')
		printf 'peers of %s: %s\n' "$n" "$(sed 's/  */ /g' <<<"$out" | tr '\n' ';')"
		out=$(timeout 10 "$ctl" -d "$(sg_data "$n")" status 2>&1 | grep -E '^(replication|transport) ')
		printf '  %s\n' "$(sed 's/  */ /g' <<<"$out" | tr '\n' ';')"
	done
	[ ${#RL_STOPPED[@]} -eq 0 ] || printf 'frozen (SIGSTOP): %s\n' "${RL_STOPPED[*]}"
}

rl_same2() { # equal in two successive looks
	rl_same "$@" || return 1
	sleep 0.2
	rl_same "$@"
}

# rl_absent_for SECONDS MSG PATH...: one check that none of PATHs exists at
# any look during SECONDS (for what must never arrive or never come back:
# a bounded wait for something that should not happen).
rl_absent_for() {
	local t=$1 msg=$2 p end=$((SECONDS + $1))
	shift 2
	while :; do
		for p in "$@"; do
			if [ -e "$p" ] || [ -L "$p" ]; then
				fail "$msg" "$p exists (checked for $t s)"
				return 1
			fi
		done
		[ $SECONDS -ge "$end" ] && break
		sleep 0.2
	done
	ok "$msg"
}

# rl_wait_file SECONDS FILE CONTENT: FILE exists with exactly CONTENT (no check).
rl_wait_file() {
	sg_wait "$1" rl_has "$2" "$3"
}
rl_has() {
	[ -f "$1" ] && [ "$(cat "$1" 2>/dev/null)" == "$2" ]
}

# ---- conflicts

# rl_node_id NAME: the node id of NAME, FNV-1a 64 of the name, as %016x.
rl_node_id() {
	python3 -c '
import sys
h = 0xcbf29ce484222325
for b in sys.argv[1].encode():
    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
print("%016x" % h)' "$1"
}

# rl_conflicts NAME [PATH]: node NAME's conflict records (its .sigil/conflicts),
# only those for PATH if given (with or without a leading /).
rl_conflicts() {
	local f
	f=$(sg_mnt "$1")/.sigil/conflicts
	if [ $# -lt 2 ]; then
		cat "$f" 2>/dev/null
		return 0
	fi
	awk -F '\t' -v p="${2#/}" '{ q = $2; sub(/^\//, "", q) } q == p' "$f" 2>/dev/null
}

# rl_arrives SECONDS MSG CMD...: one check that CMD succeeds within SECONDS
# (polling); the evidence names the command.
rl_arrives() {
	local t=$1 msg=$2
	shift 2
	if sg_wait "$t" "$@"; then
		ok "$msg"
	else
		fail "$msg (within $t s)" "still failing: $*" "$(rl_peers_evidence)"
	fi
}

rl_gone() { # PATH...: none exists (for sg_wait)
	local p
	for p in "$@"; do
		[ -e "$p" ] || [ -L "$p" ] && return 1
	done
	return 0
}

# rl_start_cut NAME PORT PEERS [EXTRA-OPTS]: rl_start, but the daemon runs in
# a network namespace of its own (unshare -n, loopback up): it serves its
# mount and takes writes, yet reaches no peer and no peer reaches it, whatever
# members it remembers. Unmount it and rl_start it again to heal the cut.
rl_start_cut() {
	local real=$SIGILFS rc
	{
		printf '#!/bin/sh\n'
		printf 'exec unshare -n sh -c '\''ip link set lo up 2>/dev/null; exec "$0" "$@"'\'' %q "$@"\n' "$real"
	} >"$SG_WORK/sigilfs-cut"
	chmod +x "$SG_WORK/sigilfs-cut"
	SIGILFS=$SG_WORK/sigilfs-cut
	rl_start "$@"
	rc=$?
	SIGILFS=$real
	return $rc
}

# rl_check_conflict NODE PATH LOSER WINNER LEN MSG: one check that NODE's
# .sigil/conflicts has exactly one record for PATH, and that it says the
# version made on node LOSER (LEN bytes) lost to the one made on WINNER, with
# a loser stamp below the winner's (hlc, then origin).
rl_check_conflict() {
	local node=$1 path=$2 loser=$3 winner=$4 len=$5 msg=$6 lines out
	lines=$(rl_conflicts "$node" "$path")
	if out=$(printf '%s\n' "$lines" | python3 -c '
import sys
path, lo, wo, n = sys.argv[1:5]
lines = [l.rstrip("\n") for l in sys.stdin if l.strip()]
if len(lines) != 1:
    sys.exit("expected 1 record for %s, found %d" % (path, len(lines)))
f = lines[0].split("\t")
if len(f) != 7:
    sys.exit("expected 7 tab-separated fields, found %d" % len(f))
seq, p, ls, lorig, ws, worig, ln = f
errs = []
if not seq.isdigit() or int(seq) < 1:
    errs.append("seq %r is not a positive number" % seq)
if lorig.lower() != lo:
    errs.append("loser origin %s, expected %s" % (lorig, lo))
if worig.lower() != wo:
    errs.append("winner origin %s, expected %s" % (worig, wo))
try:
    if (int(ls, 16), int(lorig, 16)) >= (int(ws, 16), int(worig, 16)):
        errs.append("loser stamp %s/%s is not below winner stamp %s/%s" % (ls, lorig, ws, worig))
except ValueError:
    errs.append("stamps or origins are not hex")
if ln != n:
    errs.append("losing length %s, expected %s" % (ln, n))
if errs:
    sys.exit("; ".join(errs))
' "$path" "$(rl_node_id "$loser")" "$(rl_node_id "$winner")" "$len" 2>&1); then
		ok "$msg"
	else
		fail "$msg" "$out" "records for $path on $node:" "${lines:-(none)}" \
			"all of $node's records:" "$(rl_conflicts "$node" | tail -n 10)"
	fi
}

# rl_check_no_conflicts MSG NODE...: one check that no NODE recorded a conflict.
rl_check_no_conflicts() {
	local msg=$1 n ev=()
	shift
	for n in "$@"; do
		[ -z "$(rl_conflicts "$n")" ] || ev+=("$n's records:" "$(rl_conflicts "$n" | head -n 10)")
	done
	if [ ${#ev[@]} -eq 0 ]; then
		ok "$msg"
	else
		fail "$msg" "${ev[@]}"
	fi
}

# rl_check_no_self_conflicts MSG PREFIX NODE...: one check that no NODE holds
# a record for a path starting with PREFIX ("": any) whose loser and winner
# came from the same node (a node's later change always saw its own earlier
# one, so it never conflicts with it).
rl_check_no_self_conflicts() {
	local msg=$1 pre=${2#/} n bad ev=()
	shift 2
	for n in "$@"; do
		bad=$(rl_conflicts "$n" | awk -F '\t' -v pre="$pre" \
			'{ q = $2; sub(/^\//, "", q) } index(q, pre) == 1 && tolower($4) == tolower($6)')
		[ -z "$bad" ] || ev+=("$n's records with loser origin = winner origin:" "$(head -n 10 <<<"$bad")")
	done
	if [ ${#ev[@]} -eq 0 ]; then
		ok "$msg"
	else
		fail "$msg" "${ev[@]}"
	fi
}

# For rl_arrives/sg_wait (evaluated at each poll, not once):
# rl_stat_is FMT PATH EXPECTED: stat -c FMT PATH (not following a symlink) prints EXPECTED.
rl_stat_is() {
	[ "$(stat -c "$1" -- "$2" 2>/dev/null)" == "$3" ]
}
# rl_xattr_is PATH NAME VALUE: PATH has xattr NAME with VALUE.
rl_xattr_is() {
	[ "$(getfattr --absolute-names --only-values -n "$2" -- "$1" 2>/dev/null)" == "$3" ]
}
# rl_no_xattr PATH NAME: PATH exists and has no xattr NAME.
rl_no_xattr() {
	[ -e "$1" ] && ! getfattr --absolute-names -n "$2" -- "$1" >/dev/null 2>&1
}

# rl_check_stores NODE...: one check per node that `sigilctl check` finds its
# store consistent (every log row, directory row and count agrees).
rl_check_stores() {
	local n out rc ctl=${SIGILCTL:-$(dirname "$SIGILFS")/sigilctl}
	for n in "$@"; do
		out=$(timeout 60 "$ctl" -d "$(sg_data "$n")" check 2>&1)
		rc=$?
		if [ $rc -eq 0 ]; then
			ok "node $n's store is consistent ($out)"
		else
			fail "node $n's store is consistent" "sigilctl check: exit $rc" "$out"
		fi
	done
}
