#!/usr/bin/env bash
# B1-style TCP bulk throughput on loopback, side by side: iperf3 direct (the ceiling), and each
# path through gost-proxy and through the reference gost v3.2.6 (../shared/tools/gost-v3.2.6/gost):
#   forward            one process: -L tcp://…/iperf3
#   chain-relay-tcp    client forward -> relay node (two processes)
#   chain-relay-mtls   client forward -> relay+mtls node (TLS + smux)
# Rounds are interleaved (every variant once per round, then the next round), so a machine
# that slows down between minutes hits every variant alike (see shared/bench.md). Reports the
# median Gbit/s over rounds with min/max, the ratio to direct and ours/gost.
# Usage: tests/bench/throughput.sh [seconds per run, default 3] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/testenv/lib.sh # ERR trap: names the failing line
secs=${1:-3}
rounds=${2:-3}
command -v iperf3 >/dev/null || apt-get install -y -qq iperf3 </dev/null >/dev/null
gost=${KUBEGOST_GOST_BIN:-../shared/tools/gost-v3.2.6/gost}
[[ -x $gost ]] || die "the reference gost is missing at $gost (expected ../shared/tools/gost-v3.2.6/gost)"
cargo build --release --bin gost-proxy -q
declare -A prog=([ours]=target/release/gost-proxy [gost]=$gost)
pick() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 not up" >&2; return 1; }
srv=$(pick); iperf3 -s -B 127.0.0.1 -p "$srv" >/dev/null 2>&1 & pids+=($!); sleep 1  # no probe: iperf3 counts a bare connect as a failed test
declare -A port
port[direct]=$srv
for impl in ours gost; do
  b=${prog[$impl]}
  p=$(pick); "$b" -L "tcp://127.0.0.1:$p/127.0.0.1:$srv" >/dev/null 2>&1 & pids+=($!); wait_port "$p"; port[forward/$impl]=$p
  r=$(pick); "$b" -L "relay://127.0.0.1:$r" >/dev/null 2>&1 & pids+=($!); wait_port "$r"
  p=$(pick); "$b" -L "tcp://127.0.0.1:$p/127.0.0.1:$srv" -F "relay://127.0.0.1:$r" >/dev/null 2>&1 & pids+=($!); wait_port "$p"; port[chain-relay-tcp/$impl]=$p
  r=$(pick); "$b" -L "relay+mtls://127.0.0.1:$r" >/dev/null 2>&1 & pids+=($!); wait_port "$r"
  p=$(pick); "$b" -L "tcp://127.0.0.1:$p/127.0.0.1:$srv" -F "relay+mtls://127.0.0.1:$r" >/dev/null 2>&1 & pids+=($!); wait_port "$p"; port[chain-relay-mtls/$impl]=$p
done
# One iperf3 run; retried (bounded) when the server is still finishing the previous test.
run() {
  local out
  for _ in 1 2 3 4 5; do
    sleep 1
    out=$(iperf3 -c 127.0.0.1 -p "$1" -t "$secs" -J 2>&1 || true)
    if python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("%.2f" % (d["end"]["sum_received"]["bits_per_second"]/1e9))' "$out" 2>/dev/null; then
      return 0
    fi
  done
  echo "iperf3 failed: $out" >&2
  return 1
}
variants=(direct forward/ours forward/gost chain-relay-tcp/ours chain-relay-tcp/gost chain-relay-mtls/ours chain-relay-mtls/gost)
declare -A vals
for r in $(seq "$rounds"); do
  for v in "${variants[@]}"; do vals[$v]+="$(run "${port[$v]}") "; done
  echo "round $r/$rounds done" >&2
done
python3 - "$secs" "$rounds" "${variants[@]}" <<EOF
import statistics, sys
secs, rounds, names = sys.argv[1], sys.argv[2], sys.argv[3:]
vals = {$(for v in "${variants[@]}"; do printf '"%s": [%s], ' "$v" "$(tr ' ' ',' <<<"${vals[$v]}")"; done)}
med = {k: statistics.median(v) for k, v in vals.items()}
print(f"iperf3 {secs} s x {rounds} interleaved rounds, Gbit/s median (min-max)\n")
print("| path | gost-proxy | gost | direct | ours/direct | gost/direct | ours/gost |")
print("|---|---|---|---|---|---|---|")
d = med["direct"]
for path in ["forward", "chain-relay-tcp", "chain-relay-mtls"]:
    o, g = vals[path + "/ours"], vals[path + "/gost"]
    fmt = lambda v: f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})"
    print(f"| {path} | {fmt(o)} | {fmt(g)} | {d:.2f} | {med[path+'/ours']/d:.2f} | {med[path+'/gost']/d:.2f} | {med[path+'/ours']/med[path+'/gost']:.2f} |")
EOF
