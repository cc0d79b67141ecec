#!/bin/bash
# repl-bench.sh: replication benchmark: propagation latency A -> C on a 3-node
# loopback sigilfs cluster and convergence after a partition, each beside a
# 3-member etcd baseline measured in the same run. See bench/README.md.
#
#	bench/repl-bench.sh            # as root; writes bench/results/repl.md
#
# Knobs (environment): BENCH_N (samples of updates and of creates, 300),
# BENCH_N_DELETE (samples of deletes, 100: each waits out the 150 ms fold
# window, so 300 would take most of a minute; at most BENCH_N), BENCH_N_FROZEN
# (samples A -> B while C is frozen, 40; 0 skips), BENCH_FILES
# (files written on A during the partition, 10000), BENCH_MODIFY and
# BENCH_DELETE (files B then changes, 1000 each), BENCH_PART_WRITERS (writers
# at once for those writes, on both systems, 4), BENCH_ROUNDS (partition
# rounds, 1), BENCH_TLS=1 (tls+tcp:// for sigilfs, TLS for etcd too),
# BENCH_BASELINE (etcd, or tmpfs to force the fallback), BENCH_TIMEOUT (bound
# on any one convergence, 120 s), BENCH_POLL_MS (re-read interval on C, 1),
# BENCH_GAP_MS (pause between samples, 20), BENCH_TPUT_SECONDS (seconds
# each throughput run writes, 5; 0 skips), BENCH_TPUT_WRITERS (writer counts,
# "1 8"), BENCH_TPUT_ROUNDS (rounds of the throughput runs, sigilfs and etcd
# alternating, 3: the report shows the median round), BENCH_TPUT_SIZE (bytes
# per write, 1024), BENCH_PHASES (which phases:
# "latency frozen throughput partition"), BENCH_OUT (report path),
# BENCH_OPTS (more sigilfs mount options for every node, e.g.
# pull_interval=60000; none by default), BENCH_KEEP=1 (keep the work dir),
# TMPDIR (where the work dir goes),
# SIGILFS (the daemon, default ./sigilfs of this tree).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
PY=$HERE/repl-bench.py

N=${BENCH_N:-300}
N_DELETE=${BENCH_N_DELETE:-100}
FILES=${BENCH_FILES:-10000}
MODIFY=${BENCH_MODIFY:-1000}
DELETE=${BENCH_DELETE:-1000}
PART_WRITERS=${BENCH_PART_WRITERS:-4}
ROUNDS=${BENCH_ROUNDS:-1}
N_FROZEN=${BENCH_N_FROZEN:-40}
TLS=${BENCH_TLS:-0}
BASELINE=${BENCH_BASELINE:-etcd}
TIMEOUT=${BENCH_TIMEOUT:-120}
POLL_MS=${BENCH_POLL_MS:-1}
GAP_MS=${BENCH_GAP_MS:-20}
TPUT_SECONDS=${BENCH_TPUT_SECONDS:-5}
TPUT_WRITERS=${BENCH_TPUT_WRITERS:-1 8}
TPUT_SIZE=${BENCH_TPUT_SIZE:-1024}
TPUT_ROUNDS=${BENCH_TPUT_ROUNDS:-3}
PHASES=${BENCH_PHASES:-latency frozen throughput partition}
OPTS=${BENCH_OPTS:-}
OUT=${BENCH_OUT:-$HERE/results/repl.md}
SRC_SIGILFS=${SIGILFS:-$ROOT/sigilfs}

WORK=
MNTS=()  # every mountpoint this script mounted
DPIDS=() # every sigilfs daemon pid
EPIDS=() # every etcd pid
TMPFS_MNT=
CHILD= # the measuring process, while it runs
T_START=$SECONDS

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	say "ERROR: $*"
	exit 1
}

# ---- teardown: runs on every exit, thaws, unmounts and stops what we started

alive() { kill -0 "$1" 2>/dev/null; }

wait_dead() { # SECONDS PID...: 0 once all are gone
	local end=$((SECONDS + $1)) p left
	shift
	while :; do
		left=0
		for p in "$@"; do
			alive "$p" && left=1
		done
		[ $left -eq 0 ] && return 0
		[ $SECONDS -ge $end ] && return 1
		sleep 0.1
	done
}

cleanup() {
	local rc=$? p m
	trap - EXIT INT TERM
	if [ -n "$CHILD" ] && alive "$CHILD"; then
		kill -TERM "$CHILD" 2>/dev/null
		wait_dead 10 "$CHILD" || kill -KILL "$CHILD" 2>/dev/null
	fi
	for p in "${DPIDS[@]}" "${EPIDS[@]}"; do
		kill -CONT "$p" 2>/dev/null # a frozen daemon cannot unmount or exit
	done
	for m in "${MNTS[@]}"; do
		if findmnt -rn -M "$m" >/dev/null 2>&1; then
			timeout 20 fusermount3 -u "$m" 2>/dev/null || timeout 20 fusermount3 -uz "$m" 2>/dev/null
		fi
	done
	if [ ${#DPIDS[@]} -gt 0 ] && ! wait_dead 30 "${DPIDS[@]}"; then
		for p in "${DPIDS[@]}"; do
			alive "$p" && say "sigilfs $p did not exit after unmount; killing it" && kill -KILL "$p"
		done
	fi
	for p in "${EPIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	if [ ${#EPIDS[@]} -gt 0 ] && ! wait_dead 10 "${EPIDS[@]}"; then
		for p in "${EPIDS[@]}"; do
			alive "$p" && kill -KILL "$p"
		done
		wait_dead 5 "${EPIDS[@]}"
	fi
	[ -n "$TMPFS_MNT" ] && umount "$TMPFS_MNT" 2>/dev/null
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		if [ "${BENCH_KEEP:-0}" == 1 ]; then
			say "work dir kept: $WORK"
		else
			rm -rf "$WORK"
		fi
	fi
	exit $rc
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

for v in N N_DELETE FILES MODIFY DELETE PART_WRITERS ROUNDS N_FROZEN TIMEOUT POLL_MS GAP_MS TPUT_SECONDS TPUT_SIZE TPUT_ROUNDS; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a whole number, not '${!v}'"
done
[ "$N_DELETE" -le "$N" ] || N_DELETE=$N # the deletes remove the files the creates made
[ "$PART_WRITERS" -ge 1 ] && [ "$PART_WRITERS" -le 64 ] || die "BENCH_PART_WRITERS: '$PART_WRITERS' is not 1..64"
for w in $TPUT_WRITERS; do
	[[ $w =~ ^[0-9]+$ ]] && [ "$w" -ge 1 ] && [ "$w" -le 64 ] || die "BENCH_TPUT_WRITERS: '$w' is not 1..64"
done
for p in $PHASES; do
	[[ $p =~ ^(latency|frozen|throughput|partition)$ ]] || die "BENCH_PHASES: unknown phase '$p'"
done
[ $((MODIFY + DELETE)) -le "$FILES" ] || die "BENCH_MODIFY + BENCH_DELETE must not exceed BENCH_FILES"

# ---- prerequisites

[ "$(id -u)" -eq 0 ] || die "run as root (FUSE mounts, apt-get)"
[ -e /dev/fuse ] || die "no /dev/fuse"

need=()
command -v python3 >/dev/null || need+=(python3)
command -v fusermount3 >/dev/null || need+=(fuse3)
[ "$TLS" == 1 ] && ! command -v openssl >/dev/null && need+=(openssl)
if [ "$BASELINE" == etcd ]; then
	command -v etcd >/dev/null || need+=(etcd-server)
	command -v etcdctl >/dev/null || need+=(etcd-client)
fi
if [ ${#need[@]} -gt 0 ]; then
	say "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! timeout 300 apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
		timeout 300 apt-get update >/dev/null 2>&1
		timeout 300 apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1
	fi
fi
command -v python3 >/dev/null || die "python3 is missing and apt-get could not install it"
command -v fusermount3 >/dev/null || die "fusermount3 is missing and apt-get could not install it"
if [ "$BASELINE" == etcd ] && ! { command -v etcd && command -v etcdctl; } >/dev/null; then
	say "etcd could not be installed: the baseline falls back to a local write + read on tmpfs"
	BASELINE=tmpfs
fi
[ -x "$SRC_SIGILFS" ] || die "no sigilfs at $SRC_SIGILFS (cd $ROOT && make sigilfs)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sigil-bench.XXXXXX") || die "mktemp"
# a private copy: a rebuild of the tree during the run changes nothing here
cp "$SRC_SIGILFS" "$WORK/sigilfs"
SIGILFS=$WORK/sigilfs

# ---- ports and PKI

read -r -a PORT <<<"$(python3 "$PY" ports 9)" || die "no free ports"
[ ${#PORT[@]} -eq 9 ] || die "wanted 9 free ports, got '${PORT[*]}'"

SCHEME=tcp
if [ "$TLS" == 1 ]; then
	SCHEME=tls+tcp
	PKI=$WORK/pki
	mkdir -p "$PKI"
	cat >"$PKI/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = sigilfs bench CA
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[node]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyAgreement, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, DNS:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
	openssl req -x509 -config "$PKI/ca.cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-sha256 -days 30 -keyout "$PKI/ca.key" -out "$PKI/ca.crt" >/dev/null 2>&1 || die "openssl CA"
	for n in a b c m1 m2 m3 client; do
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$n" \
			-keyout "$PKI/$n.key" -out "$PKI/$n.csr" >/dev/null 2>&1 &&
			openssl x509 -req -in "$PKI/$n.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
				-set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" -sha256 -days 30 \
				-extfile "$PKI/ca.cnf" -extensions node -out "$PKI/$n.crt" >/dev/null 2>&1 ||
			die "openssl certificate for $n"
		chmod 600 "$PKI/$n.key"
	done
fi

# ---- sigilfs nodes

url() { printf '%s://127.0.0.1:%s' "$SCHEME" "$1"; }

declare -A SPORT=([a]=${PORT[0]} [b]=${PORT[1]} [c]=${PORT[2]})
declare -A SPID

start_node() { # NAME PEER-NAME PEER-NAME
	local n=$1 mnt=$WORK/$1/mnt data=$WORK/$1/data o out
	mkdir -p "$mnt" "$data"
	o="data=$data,node=$n,listen=$(url "${SPORT[$n]}"),peers=$(url "${SPORT[$2]}");$(url "${SPORT[$3]}")"
	[ "$TLS" == 1 ] && o+=",tls_ca=$PKI/ca.crt,tls_cert=$PKI/$n.crt,tls_key=$PKI/$n.key"
	[ -n "$OPTS" ] && o+=",$OPTS"
	MNTS+=("$mnt")
	out=$(timeout 60 "$SIGILFS" "$mnt" -o "$o" 2>&1) || die "sigilfs $n did not mount: $out"
	local i
	for ((i = 0; i < 100; i++)); do
		[ -s "$data/sigilfs.pid" ] && break
		sleep 0.05
	done
	SPID[$n]=$(cat "$data/sigilfs.pid" 2>/dev/null)
	[ -n "${SPID[$n]}" ] && alive "${SPID[$n]}" || die "sigilfs $n: no live pid in $data/sigilfs.pid"
	DPIDS+=("${SPID[$n]}")
	findmnt -rn -M "$mnt" >/dev/null || die "sigilfs $n: $mnt is not a mount"
}

say "work dir $WORK; starting sigilfs a, b, c ($SCHEME)"
start_node a b c
start_node b a c
start_node c a b
A=$WORK/a/mnt B=$WORK/b/mnt C=$WORK/c/mnt

# every node reaches every other before anything is measured
probe_ok() { # FILE CONTENT
	[ "$(cat "$1" 2>/dev/null)" == "$2" ]
}
wait_for() { # SECONDS CMD...
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -ge $end ] && return 1
		sleep 0.05
	done
}
for n in a b c; do
	echo "probe from $n" >"$WORK/$n/mnt/probe-$n"
done
for n in a b c; do
	for m in a b c; do
		wait_for 30 probe_ok "$WORK/$m/mnt/probe-$n" "probe from $n" ||
			die "the cluster does not replicate: probe-$n never reached $m"
	done
done
say "sigilfs cluster replicates (pids a=${SPID[a]} b=${SPID[b]} c=${SPID[c]})"

# ---- the baseline

ETCD_CLIENTS=()
ETCD_LEADER=
ETCD_TLS_JSON=
if [ "$BASELINE" == etcd ]; then
	ES=http
	[ "$TLS" == 1 ] && ES=https
	cluster=
	for i in 1 2 3; do
		cluster+="${cluster:+,}m$i=$ES://127.0.0.1:${PORT[$((5 + i))]}"
	done
	etls=()
	for i in 1 2 3; do
		cp=${PORT[$((2 + i))]} pp=${PORT[$((5 + i))]}
		if [ "$TLS" == 1 ]; then
			etls=(--cert-file "$PKI/m$i.crt" --key-file "$PKI/m$i.key" --client-cert-auth
				--trusted-ca-file "$PKI/ca.crt" --peer-cert-file "$PKI/m$i.crt"
				--peer-key-file "$PKI/m$i.key" --peer-client-cert-auth
				--peer-trusted-ca-file "$PKI/ca.crt")
		fi
		mkdir -p "$WORK/etcd"
		etcd --name "m$i" --data-dir "$WORK/etcd/m$i" \
			--listen-client-urls "$ES://127.0.0.1:$cp" --advertise-client-urls "$ES://127.0.0.1:$cp" \
			--listen-peer-urls "$ES://127.0.0.1:$pp" --initial-advertise-peer-urls "$ES://127.0.0.1:$pp" \
			--initial-cluster "$cluster" --initial-cluster-state new \
			--initial-cluster-token "sigil-bench-$$" --logger zap --log-level warn \
			"${etls[@]}" >"$WORK/etcd/m$i.log" 2>&1 &
		EPIDS+=($!)
		ETCD_CLIENTS+=("$ES://127.0.0.1:$cp")
	done
	ectl=(etcdctl)
	if [ "$TLS" == 1 ]; then
		ectl+=(--cacert "$PKI/ca.crt" --cert "$PKI/client.crt" --key "$PKI/client.key")
		ETCD_TLS_JSON="{\"ca\": \"$PKI/ca.crt\", \"cert\": \"$PKI/client.crt\", \"key\": \"$PKI/client.key\"}"
	fi
	export ETCDCTL_API=3
	eps=$(IFS=,; echo "${ETCD_CLIENTS[*]}")
	wait_for 60 "${ectl[@]}" --endpoints="$eps" endpoint health >/dev/null 2>&1 ||
		die "etcd cluster not healthy within 60 s: $(tail -n 5 "$WORK"/etcd/m*.log)"
	# member 1 leads: a put on member 1 is then a put on the leader, and the
	# member frozen for the partition (3) is a follower
	st=$(python3 "$PY" etcd-status "${ETCD_CLIENTS[0]}" "$ETCD_TLS_JSON") || die "etcd status"
	m1id=$(python3 -c 'import json,sys; print("%x" % int(json.loads(sys.argv[1])["header"]["member_id"]))' "$st")
	for ((k = 0; k < 3; k++)); do
		st=$(python3 "$PY" etcd-status "${ETCD_CLIENTS[0]}" "$ETCD_TLS_JSON")
		lid=$(python3 -c 'import json,sys; print("%x" % int(json.loads(sys.argv[1])["leader"]))' "$st")
		[ "$lid" == "$m1id" ] && break
		"${ectl[@]}" --endpoints="$eps" move-leader "$m1id" >/dev/null 2>&1
		sleep 1
	done
	st=$(python3 "$PY" etcd-status "${ETCD_CLIENTS[0]}" "$ETCD_TLS_JSON")
	lid=$(python3 -c 'import json,sys; print("%x" % int(json.loads(sys.argv[1])["leader"]))' "$st")
	if [ "$lid" == "$m1id" ]; then
		ETCD_LEADER="m1 ($m1id)"
	else
		ETCD_LEADER="not m1: leader $lid (move-leader failed)"
	fi
	say "etcd cluster up (pids ${EPIDS[*]}), leader: $ETCD_LEADER"
else
	TMPFS_MNT=$WORK/tmpfs
	mkdir -p "$TMPFS_MNT"
	mount -t tmpfs -o size=256m tmpfs "$TMPFS_MNT" || die "cannot mount tmpfs"
fi

# ---- measure

jq_list() { # ITEM...: a JSON list of strings
	local s= x
	for x in "$@"; do
		s+="${s:+, }\"$x\""
	done
	printf '[%s]' "$s"
}

cat >"$WORK/config.json" <<EOF
{
  "n": $N, "n_delete": $N_DELETE, "warmup": 5, "gap_ms": $GAP_MS, "poll_ms": $POLL_MS,
  "sample_timeout": 10, "max_timeouts": 5, "n_frozen": $N_FROZEN, "gap_frozen_ms": 100,
  "files": $FILES, "modify": $MODIFY, "delete": $DELETE, "file_size": 1024, "dirs": 100,
  "part_writers": $PART_WRITERS,
  "rounds": $ROUNDS, "converge_timeout": $TIMEOUT, "converge_poll": 0.02,
  "tput_seconds": $TPUT_SECONDS, "tput_writers": [$(echo $TPUT_WRITERS | tr ' ' ',')], "tput_size": $TPUT_SIZE, "tput_rounds": $TPUT_ROUNDS,
  "phases": $(jq_list $PHASES), "work": "$WORK",
  "scheme": "$SCHEME",
  "opts": "$OPTS",
  "tls": ${ETCD_TLS_JSON:-null},
  "baseline": "$BASELINE",
  "tmpfs": "$TMPFS_MNT",
  "mnt": {"a": "$A", "b": "$B", "c": "$C"},
  "pid": {"a": ${SPID[a]}, "b": ${SPID[b]}, "c": ${SPID[c]}},
  "etcd": {"clients": $(jq_list "${ETCD_CLIENTS[@]}"), "pids": [$(IFS=,; echo "${EPIDS[*]}")]}
}
EOF

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
OTHERS=$(pgrep -x sigilfs | grep -cvxF -f <(printf '%s\n' "${DPIDS[@]}"))
# bound: the phases are bounded inside; this is the backstop
nw=$(echo $TPUT_WRITERS | wc -w)
RUN_LIMIT=$((600 + N * 3 + N_FROZEN * 11 + (FILES / 10 + 4 * TIMEOUT) * ROUNDS + nw * 2 * (TPUT_ROUNDS > 0 ? TPUT_ROUNDS : 1) * (TPUT_SECONDS + TIMEOUT + 10)))
say "measuring (backstop ${RUN_LIMIT} s)"
# in the background and waited for, so that a signal to this script runs the
# trap at once (bash defers traps while a foreground child runs)
timeout "$RUN_LIMIT" python3 "$PY" run "$WORK/config.json" "$WORK/out.json" &
CHILD=$!
wait "$CHILD" || die "the measurement failed or ran past ${RUN_LIMIT} s"
CHILD=

# ---- report

mkdir -p "$(dirname "$OUT")"
SAMPLES=${OUT%.md}-samples.json
cp "$WORK/out.json" "$SAMPLES"
cmd="$(cd "$ROOT" && pwd)/bench/repl-bench.sh"
for v in BENCH_N BENCH_N_DELETE BENCH_N_FROZEN BENCH_FILES BENCH_MODIFY BENCH_DELETE BENCH_PART_WRITERS BENCH_ROUNDS BENCH_TLS BENCH_BASELINE \
	BENCH_TIMEOUT BENCH_POLL_MS BENCH_GAP_MS BENCH_TPUT_SECONDS BENCH_TPUT_WRITERS BENCH_TPUT_ROUNDS BENCH_TPUT_SIZE BENCH_PHASES \
	BENCH_OPTS; do
	[ -n "${!v:-}" ] && cmd="$v=\"${!v}\" $cmd"
done
[ "$SRC_SIGILFS" != "$ROOT/sigilfs" ] && cmd="SIGILFS=$SRC_SIGILFS $cmd"
wall=$((SECONDS - T_START))
work_fs=$(findmnt -n -o FSTYPE,SOURCE -T "$WORK" | tr -s ' ')
python3 - "$WORK/meta.json" <<EOF
import json, sys
meta = {
    "date": """$(date -u '+%Y-%m-%d %H:%M:%S UTC')""",
    "nproc": """$(nproc)""",
    "model": """$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)""",
    "kernel": """$(uname -srm)""",
    "mem": """$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)""",
    "load_start": """$LOAD_START""",
    "load_end": """$(cut -d' ' -f1-3 /proc/loadavg)""",
    "others": """$OTHERS other sigilfs daemons (not ours) were running when measuring began""",
    "sigilfs_rev": """$(rev_of "$(dirname "$SRC_SIGILFS")")""",
    "sigilfs_sha256": """$(sha256sum "$SIGILFS" | cut -d' ' -f1)""",
    "etcd_version": """$([ "$BASELINE" == etcd ] && etcd --version | head -n 1 | sed 's/^etcd Version: //')""",
    "etcd_leader": """$ETCD_LEADER""",
    "python": """$(python3 -V 2>&1)""",
    "work_dir": """$WORK""",
    "work_fs": """$work_fs""",
    "command": """$cmd""",
    "wall": """$((wall / 60)) min $((wall % 60)) s""",
    "samples_rel": """$(realpath --relative-to="$ROOT" "$SAMPLES" 2>/dev/null || echo "$SAMPLES")""",
}
json.dump(meta, open(sys.argv[1], "w"))
EOF
# the meta goes into the samples too: `repl-bench.py report SAMPLES - OUT` remakes the report
python3 -c 'import json, sys; o = json.load(open(sys.argv[1])); o["meta"] = json.load(open(sys.argv[2])); json.dump(o, open(sys.argv[1], "w"))' \
	"$SAMPLES" "$WORK/meta.json" || die "cannot add the meta to $SAMPLES"
python3 "$PY" report "$WORK/out.json" "$WORK/meta.json" "$OUT" || die "report failed"
say "report: $OUT"
python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["errors"]; [print("PROBLEM:", x) for x in e]; sys.exit(1 if e else 0)' "$WORK/out.json"
