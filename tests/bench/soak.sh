#!/usr/bin/env bash
# Soak (../shared/bench.md §8.3 row 18): mixed load for a while through one gost-proxy
# (SOCKS5 with auth, HTTP forward and CONNECT, a TCP port forward, all to a loopback origin),
# sampling the proxy's RSS, descriptors and threads every 10 s. Prints the samples, then the
# figures: requests, errors, RSS drift from the first sample after warm-up to the last, and
# the descriptor range. Exits 1 when any request failed, RSS drifted over 10 % or descriptors
# did not come back to their count before the load (±2).
# Usage: tests/bench/soak.sh [seconds, default 1800] [parallel clients, default 8]
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/testenv/lib.sh # ERR trap: names the failing line
secs=${1:-1800}
clients=${2:-8}
cargo build --release --bin gost-proxy -q
bin=target/release/gost-proxy
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
pick() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; die "port $1 not up"; }
head -c 65536 /dev/urandom >"$work/blob"
o=$(pick); (cd "$work" && exec python3 -m http.server --bind 127.0.0.1 "$o" >/dev/null 2>&1) & pids+=($!); wait_port "$o"
s5=$(pick) h=$(pick) f=$(pick)
"$bin" -L "socks5://u:p@127.0.0.1:$s5" -L "http://127.0.0.1:$h" -L "tcp://127.0.0.1:$f/127.0.0.1:$o" >"$work/proxy.log" 2>&1 &
proxy=$!; pids+=("$proxy")
wait_port "$s5"; wait_port "$h"; wait_port "$f"
want=$(sha256sum <"$work/blob" | cut -d' ' -f1)
# one client: requests in turn through each path until the deadline; counts in $work/c<i>
client() {
  local i=$1 n=0 bad=0 end=$((SECONDS + secs)) got
  while ((SECONDS < end)); do
    for args in "--socks5 u:p@127.0.0.1:$s5 http://127.0.0.1:$o/blob" \
      "-x http://127.0.0.1:$h http://127.0.0.1:$o/blob" \
      "-p -x http://127.0.0.1:$h http://127.0.0.1:$o/blob" \
      "http://127.0.0.1:$f/blob"; do
      # shellcheck disable=SC2086 # the arguments are split on purpose
      got=$(curl -s -m 10 $args | sha256sum | cut -d' ' -f1) || true
      n=$((n + 1)); [[ $got == "$want" ]] || bad=$((bad + 1))
    done
  done
  echo "$n $bad" >"$work/c$i"
}
# RSS, threads, then descriptors other than pipes and pooled pipes (fd_counts, lib.sh)
sample() {
  awk '/^VmRSS/{r=$2} /^Threads/{t=$2} END{printf "%s %s", r, t}' "/proc/$proxy/status"
  printf ' %s\n' "$(fd_counts "$proxy")"
}
read -r _ _ fds_base _ <<<"$(sample)"
for i in $(seq "$clients"); do client "$i" & pids+=($!); done
printf '%6s %10s %8s %5s %5s\n' t rss_kib threads fds pipes
samples=()
start=$SECONDS
while ((SECONDS - start < secs)); do
  sleep 10
  read -r rss thr fds pipes <<<"$(sample)"
  printf '%6s %10s %8s %5s %5s\n' "$((SECONDS - start))" "$rss" "$thr" "$fds" "$pipes"
  samples+=("$rss $fds")
done
wait "${pids[@]:2}" 2>/dev/null || true
sleep 2
read -r rss_end _ fds_end pipes_end <<<"$(sample)"
total=0 bad=0
for i in $(seq "$clients"); do read -r n b <"$work/c$i"; total=$((total + n)); bad=$((bad + b)); done
read -r rss_first _ <<<"${samples[1]:-${samples[0]}}" # the first sample after warm-up
drift=$(python3 -c "print(f'{($rss_end - $rss_first) * 100 / $rss_first:+.1f}')")
echo "soak ${secs}s, $clients clients: $total requests, $bad failed; RSS $rss_first -> $rss_end KiB ($drift %); fds $fds_base before the load, $fds_end after it (and $pipes_end pooled pipe descriptors)"
status=0
[[ $bad -eq 0 ]] || { echo "failed requests: $bad" >&2; status=1; }
python3 -c "import sys; sys.exit(0 if abs($rss_end - $rss_first) * 10 <= $rss_first else 1)" || { echo "RSS drift over 10 %" >&2; status=1; }
((fds_end <= fds_base + 2)) || { echo "descriptors grew: $fds_base -> $fds_end" >&2; status=1; }
((pipes_end <= SPLICE_POOL_FDS)) || { echo "pipe descriptors: $pipes_end, over the pool's $SPLICE_POOL_FDS" >&2; status=1; }
exit "$status"
