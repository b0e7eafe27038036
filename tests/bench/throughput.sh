#!/usr/bin/env bash
# B1-style TCP bulk throughput on loopback: iperf3 direct, through one gost-proxy TCP port
# forward, and through a two-process chain (client forward -> relay server over tcp / mtls).
# Reports Gbit/s and the ratio to direct measured in the same batch (batches minutes apart
# differ by up to 1.8x on the 2-core build machine, see shared/bench.md).
# The reference `gost` is not part of this batch: the Go module proxy refuses github.com/go-gost/*.
# Usage: tests/bench/throughput.sh [seconds per run, default 5] [repeats, default 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/testenv/lib.sh # ERR trap: names the failing line
secs=${1:-5}
reps=${2:-3}
command -v iperf3 >/dev/null || apt-get install -y -qq iperf3 </dev/null >/dev/null
cargo build --release --bin gost-proxy -q
bin=target/release/gost-proxy
pick() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 not up" >&2; return 1; }
srv=$(pick); iperf3 -s -B 127.0.0.1 -p "$srv" >/dev/null 2>&1 & pids+=($!); sleep 1  # no probe: iperf3 counts a bare connect as a failed test
fwd=$(pick); "$bin" -L "tcp://127.0.0.1:$fwd/127.0.0.1:$srv" 2>/dev/null & pids+=($!); wait_port "$fwd"
relay=$(pick); "$bin" -L "relay://127.0.0.1:$relay" 2>/dev/null & pids+=($!); wait_port "$relay"
chain=$(pick); "$bin" -L "tcp://127.0.0.1:$chain/127.0.0.1:$srv" -F "relay://127.0.0.1:$relay" 2>/dev/null & pids+=($!); wait_port "$chain"
mrelay=$(pick); "$bin" -L "relay+mtls://127.0.0.1:$mrelay" 2>/dev/null & pids+=($!); wait_port "$mrelay"
mchain=$(pick); "$bin" -L "tcp://127.0.0.1:$mchain/127.0.0.1:$srv" -F "relay+mtls://127.0.0.1:$mrelay" 2>/dev/null & pids+=($!); wait_port "$mchain"
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
printf '%-34s %s\n' "path" "Gbit/s per run (ratio of median to direct)"
declare -A med
for name in direct forward chain-relay-tcp chain-relay-mtls; do
  case $name in direct) p=$srv ;; forward) p=$fwd ;; chain-relay-tcp) p=$chain ;; chain-relay-mtls) p=$mchain ;; esac
  vals=(); for _ in $(seq "$reps"); do vals+=("$(run "$p")"); done
  m=$(printf '%s\n' "${vals[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  med[$name]=$m
  printf '%-34s %s  (median %s, %.2fx)\n' "$name" "${vals[*]}" "$m" "$(python3 -c "print($m/${med[direct]})")"
done
