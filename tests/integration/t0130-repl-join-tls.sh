#!/bin/bash
# t0130-repl-join-tls.sh: membership and TLS. a, b, c start as a chain (b
# knows a, c knows b) and build a tree with files, dirs, symlinks, modes,
# owners, xattrs, deletes and a renamed dir. d joins late knowing only c and
# receives the whole tree; with c down, d and a still exchange changes (d
# learned the other members). Refused: e (a certificate from another CA,
# trusting the cluster's CA), f (another CA's certificate and CA), g (no
# certificate on tls+tcp://) and h (plain tcp:// to the cluster's TLS
# ports): each fails to mount with a message naming the problem, or mounts
# but neither receives from nor delivers to the cluster; a counts the
# handshakes it refused (status, metrics), f those it failed. Bad TLS files, bad
# URLs and a port in use fail the mount with a message naming them.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${SIGIL_TESTLIB:-$(dirname "$0")/lib.sh}" || exit 99
. "$(dirname "$0")/repl-lib.sh" || exit 99

sg_require_tools python3 openssl setfattr getfattr

T=15
rl_ports 8
rl_pki a b c d
rl_cert "$RL_PKI/other" e
rl_cert "$RL_PKI/other" f
PA=${RL_PORT[0]} PB=${RL_PORT[1]} PC=${RL_PORT[2]} PD=${RL_PORT[3]}
PE=${RL_PORT[4]} PF=${RL_PORT[5]} PG=${RL_PORT[6]} PH=${RL_PORT[7]}
rl_start a "$PA" "" || sg_done
rl_start b "$PB" "$(rl_url "$PA")" || sg_done
rl_start c "$PC" "$(rl_url "$PB")" || sg_done
A=$(sg_mnt a) B=$(sg_mnt b) C=$(sg_mnt c) D=$(sg_mnt d)

# ---- a tree, with history (deletes, a rename), before d exists
mkdir -p "$A/etc/app/conf.d" "$A/var/lib/x/y"
printf 'listen = 80\n' >"$A/etc/app/app.conf"
rl_arrives $T "a's dirs reach b and c" test -d "$B/etc/app" -a -d "$C/etc/app" -a -d "$C/var/lib/x/y"
printf 'secret\n' >"$B/etc/app/secret"
chmod 600 "$B/etc/app/secret"
chown 1234:5678 "$A/etc/app/app.conf"
setfattr -n user.role -v primary "$A/etc/app/app.conf"
ln -s app.conf "$C/etc/app/current"
head -c 1048576 /dev/urandom >"$C/var/lib/x/y/blob"
for ((i = 0; i < 300; i++)); do
	printf 'n %d\n' $i >"$B/var/lib/x/n-$i"
done
rl_arrives $T "c's file reaches a through b" test -f "$A/var/lib/x/y/blob"
rl_arrives $T "a's file reaches c through b" rl_has "$C/etc/app/app.conf" "listen = 80"
# the delete below is a's: b's files must be there first
rl_arrives $T "b's files reach a" test -f "$A/var/lib/x/n-7" -a -f "$A/var/lib/x/n-299"
rm "$A/var/lib/x/n-7"
mkdir "$C/old"
printf 'moved\n' >"$C/old/f"
rl_arrives $T "old/f reaches a" rl_has "$A/old/f" moved
mv "$A/old" "$A/new"
rl_converged $T a b c -- "the chain a-b-c converges"

# ---- d joins late, knowing only c
rl_start d "$PD" "$(rl_url "$PC")" || sg_done
rl_converged 30 a b c d -- "d, joining late through c alone, receives the whole tree"
check_eq "listen = 80|primary|1234:5678|600" \
	"$(cat "$D/etc/app/current" 2>&1)|$(getfattr --absolute-names --only-values -n user.role "$D/etc/app/app.conf" 2>&1)|$(stat -c %u:%g "$D/etc/app/app.conf")|$(stat -c %a "$D/etc/app/secret")" \
	"d has the symlink, xattr, owner and mode made before it existed"
check_not "d does not have a file deleted before it existed" test -e "$D/var/lib/x/n-7"
check_not "d does not have a dir renamed away before it existed" test -e "$D/old"
printf 'from d\n' >"$D/from-d"
rl_arrives $T "a write on d reaches a" rl_has "$A/from-d" "from d"
printf 'from a\n' >"$A/from-a"
rl_arrives $T "a write on a reaches d" rl_has "$D/from-a" "from a"
rl_converged $T a b c d -- "four nodes"
sg_umount c
printf 'a, with c down\n' >"$A/c-down-a"
printf 'd, with c down\n' >"$D/c-down-d"
rl_arrives $T "with c (d's only listed peer) down, a's write reaches d" rl_has "$D/c-down-a" "a, with c down"
rl_arrives $T "with c down, d's write reaches a" rl_has "$A/c-down-d" "d, with c down"
rl_converged $T a b d -- "a, b, d without c"
rl_start c "$PC" "$(rl_url "$PB")" || sg_done
rl_converged $T a b c d -- "c comes back: four nodes"

# ---- nodes the cluster must refuse
# metric NODE NAME: the value of an unlabelled sample in NODE's .sigil/metrics
metric() {
	sed -n "s/^$2 \([0-9][0-9]*\)\$/\1/p" "$(sg_mnt "$1")/.sigil/metrics"
}
refused0=$(metric a sigil_repl_tls_refused_total)
check "a's sigil_repl_tls_refused_total before the intruders is a number ($refused0)" test -n "$refused0"
# try_intruder NAME OPTS WHY WHAT: start it. It may mount (then it must stay
# cut off), or be refused at mount with a message matching the ERE WHY,
# which names the problem itself (the option or file at fault and what is
# wrong with it), not just any error text; WHY "" means that a refusal at
# mount has no ground (the node's own options are consistent: only the
# cluster can tell it is not a member) and fails the check.
isolated=()
try_intruder() {
	local n=$1 opts=$2 why=$3
	rl_try_mount "$n" "$opts"
	if [ "$RL_RC" -ne 0 ]; then
		if [ -n "$why" ] && grep -qE "$why" <<<"$RL_OUT"; then
			ok "$n ($4) is refused at mount, naming the problem: $(head -n 1 <<<"$RL_OUT")"
		else
			fail "$n ($4) is refused at mount only with a message naming the problem (/${why:-no refusal expected}/)" \
				"exit status: $RL_RC" "output: $RL_OUT"
		fi
		check "$n: nothing is left mounted" sg_unmounted "$(sg_mnt "$n")"
	elif sg_mounted "$(sg_mnt "$n")"; then
		ok "$n ($4) mounts; it must stay cut off"
		isolated+=("$n")
		printf 'from %s\n' "$n" >"$(sg_mnt "$n")/intruder-$n"
	else
		fail "$n ($4): sigilfs exited 0 but nothing is mounted" "output: $RL_OUT"
	fi
}
# e's certificate is not signed by the CA it names: a refusal must name
# that certificate file and say it does not verify against tls_ca
try_intruder e "$(RL_CERT=$RL_PKI/other/e.crt RL_KEY=$RL_PKI/other/e.key rl_opts e "$PE" "$(rl_url "$PA");$(rl_url "$PB")")" \
	"other/e\.crt.*(not (signed|issued) by|does not verify|verif(y|ication) failed)" "a certificate from another CA"
# f is consistent in itself (another CA and its certificate): only the
# cluster can refuse it
try_intruder f "$(RL_CA=$RL_PKI/other/ca.crt RL_CERT=$RL_PKI/other/f.crt RL_KEY=$RL_PKI/other/f.key rl_opts f "$PF" "$(rl_url "$PA")")" \
	"" "another CA's certificate and CA"
try_intruder g "$(RL_CERT='' RL_KEY='' rl_opts g "$PG" "$(rl_url "$PA");$(rl_url "$PD")")" \
	'tls_cert is not set|needs tls_ca, tls_cert and tls_key' "no certificate on tls+tcp://"
# h asks for plain tcp:// everywhere, consistently: only the cluster's TLS
# listeners can refuse it
try_intruder h "$(RL_SCHEME=tcp rl_opts h "$PH" "$(rl_url "$PA" tcp);$(rl_url "$PB" tcp)")" \
	"" "plain tcp:// to the cluster's TLS ports"
printf 'written after the intruders came\n' >"$B/after-intruders"
rl_converged $T a b c d -- "the cluster still converges with intruders knocking"
# every intruder dials a: a's listener counts the handshakes it refused, in
# its metrics and in status (text and --json); f, which mounted with another
# CA, counts the handshakes its dialer failed on a's certificate
tls_refused_moved() { [ "$(metric a sigil_repl_tls_refused_total)" -gt "${refused0:-0}" ]; }
rl_arrives $T "a counts the intruders' refused TLS handshakes (sigil_repl_tls_refused_total > $refused0)" tls_refused_moved
check "a's status shows the refused handshakes" \
	grep -qE "^transport +TLS handshakes [1-9][0-9]* refused \(by this node\)" "$A/.sigil/status"
check "a's metrics: the TLS and protocol counters, each with HELP and TYPE" python3 -c '
import sys
text = open(sys.argv[1]).read()
for name in ("sigil_repl_tls_refused_total", "sigil_repl_tls_failed_total", "sigil_repl_proto_errors_total",
             "sigil_repl_oversized_total", "sigil_repl_deferred_total", "sigil_repl_too_large_total"):
    assert "# HELP %s " % name in text and "# TYPE %s counter\n" % name in text, name
    assert any(l.startswith(name + " ") for l in text.splitlines()), name
' "$A/.sigil/metrics"
if [[ " ${isolated[*]} " == *" f "* ]]; then
	f_failed() { [ "$(metric f sigil_repl_tls_failed_total)" -gt 0 ]; }
	rl_arrives $T "f (another CA) counts its failed handshakes with a (sigil_repl_tls_failed_total > 0)" f_failed
fi
neg=()
for n in "${isolated[@]}"; do
	for m in a b c d; do
		neg+=("$(sg_mnt $m)/intruder-$n")
	done
	neg+=("$(sg_mnt "$n")/after-intruders" "$(sg_mnt "$n")/etc" "$(sg_mnt "$n")/from-a")
done
if [ ${#isolated[@]} -gt 0 ]; then
	rl_absent_for 5 "no data crosses between the cluster and ${isolated[*]}, either way" "${neg[@]}"
	for n in "${isolated[@]}"; do
		check_eq "'intruder-$n'" "$(rl_manifest "$n" | cut -d' ' -f1 | tr '\n' ' ' | sed 's/ $//')" \
			"$n's tree holds only its own file"
		sg_umount "$n"
	done
fi
for n in a b c d; do
	sg_daemon_alive "$(rl_pid $n)" "node $n's daemon survives the intruders"
done

# ---- bad options fail the mount with a message naming the problem
refused() { # NAME OPTS ERE MSG
	rl_try_mount "$1" "$2"
	if [ "$RL_RC" -ne 0 ] && grep -qiE "$3" <<<"$RL_OUT" && sg_unmounted "$(sg_mnt "$1")"; then
		ok "$4: the mount fails, naming it: $(head -n 1 <<<"$RL_OUT")"
	else
		fail "$4: the mount fails with a message matching /$3/" \
			"exit status: $RL_RC" "output: $RL_OUT" \
			"mounted: $(sg_mounted "$(sg_mnt "$1")" && echo yes || echo no)"
		sg_mounted "$(sg_mnt "$1")" && sg_umount "$1"
	fi
}
rl_ports 1
PX=${RL_PORT[0]}
printf 'not a certificate\n' >"$SG_WORK/garbage.pem"
refused x1 "$(RL_CERT=$SG_WORK/nonexistent.crt rl_opts x1 "$PX" "$(rl_url "$PA")")" \
	'nonexistent\.crt|tls_cert' "tls_cert names a missing file"
refused x2 "$(RL_KEY=$SG_WORK/garbage.pem RL_CERT=$RL_PKI/a.crt rl_opts x2 "$PX" "$(rl_url "$PA")")" \
	'garbage\.pem|tls_key|key' "tls_key is not a key"
refused x3 "$(RL_CA=$SG_WORK/garbage.pem RL_CERT=$RL_PKI/a.crt RL_KEY=$RL_PKI/a.key rl_opts x3 "$PX" "$(rl_url "$PA")")" \
	'garbage\.pem|tls_ca' "tls_ca is not a certificate"
refused x4 "$(RL_CA='' RL_CERT=$RL_PKI/a.crt RL_KEY=$RL_PKI/a.key rl_opts x4 "$PX" "$(rl_url "$PA")")" \
	'tls_ca|ca' "tls+tcp:// without tls_ca"
refused x5 "listen=bogus://127.0.0.1:$PX" 'bogus' "listen= has an unknown scheme"
refused x6 "listen=tcp://127.0.0.1:notaport" 'notaport|listen' "listen= has no valid port"
refused x7 "listen=tcp://127.0.0.1:$PX,peers=tcp://127.0.0.1:$PA;wat://x" 'wat://|peers' "peers= holds an unparsable URL"
refused x8 "$(RL_CERT=$RL_PKI/a.crt RL_KEY=$RL_PKI/a.key rl_opts x8 "$PA" "")" \
	"$PA|in use" "listen= names a port already in use (a's)"

rl_converged $T a b c d -- "the cluster is unchanged at the end"
for n in a b c d; do
	sg_umount $n
done
sg_done
