#!/usr/bin/env bash
# Side-by-side benchmarks (../shared/bench.md B1-B11): every case against three variants in the
# same run, interleaved in rounds (each round runs every case through direct, gost-proxy and the
# reference gost v3.2.6 before the next round starts, so a machine that slows down between
# minutes hits them alike). The load client is kg-bench (tests/src/bin/kg-bench.rs: SOCKS5,
# HTTP CONNECT, SOCKS5 UDP, HDR histograms); all traffic stays on 127.0.0.1.
#
# Output: target/bench/compare-<time>.jsonl (one JSON object per case, variant and round, with
# the proxies' CPU use in cores) and a markdown table of ratios (ours/direct, ours/gost; median
# and min-max over rounds) on stdout and in target/bench/compare-<time>.md.
#
# gost-proxy is the shipped binary (scripts/build-static.sh, as in the images; the CI's images
# step has built it already). Any failed request, or a gost-proxy process holding more file
# descriptors after the run than before it (±2), fails the run.
#
# Usage: tests/bench/compare.sh [seconds per run, default 3] [rounds, default 3] [case filter regex]
#   KUBEGOST_GOST_BIN       the reference gost (default ../shared/tools/gost-v3.2.6/gost)
#   KUBEGOST_BENCH_SMOKE=1  the CI smoke: fewer cases, then `kg-bench check` against
#                           tests/bench/baseline.json (fails below 0.75 x a baseline ratio,
#                           exit 3 when that is the only failure)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/testenv/lib.sh # ERR trap: names the failing line
secs=${1:-3}
rounds=${2:-3}
filter=${3:-.}
gost=${KUBEGOST_GOST_BIN:-../shared/tools/gost-v3.2.6/gost}
[[ -x $gost ]] || die "the reference gost is missing at $gost (expected ../shared/tools/gost-v3.2.6/gost)"
cargo build --release --locked -q -p kg-bench
kb=target/release/kg-bench
scripts/build-static.sh target/bench/bin gost-proxy
declare -A prog=([ours]=target/bench/bin/gost-proxy [gost]=$gost)
mkdir -p target/bench
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=target/bench/compare-$stamp.jsonl
: >"$out"
tck=$(getconf CLK_TCK)

# ports from one counter, below the ephemeral range (32768-60999 here): 9,000 idle tunnels
# use that many ephemeral ports, and a listener port among them could be taken (or
# self-connected to)
next_port=21000
S='' U='' fwd='' s5='' ht='' uf='' n='' c='' n2='' api='' a0=''
# alloc VAR...: each VAR gets the next port (no subshell, so the counter advances)
alloc() { local v; for v in "$@"; do next_port=$((next_port + 1)); printf -v "$v" '%s' "$next_port"; done; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_port() {
  for _ in $(seq 400); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.025; done
  die "port $1 not up"
}
# bg NAME CMD...: start CMD, remember its pid as PID[NAME]
declare -A PID
bg() { local n=$1; shift; "$@" >"target/bench/$n.log" 2>&1 & PID[$n]=$!; pids+=($!); }
# CPU ticks (user + system) of the given pids
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
rss() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

alloc S U
bg server "$kb" serve --tcp "127.0.0.1:$S" --udp "127.0.0.1:$U"
wait_port "$S"

declare -A P # P[case/impl] = the port the client uses; PROCS[case/impl] = pids measured
declare -A PROCS
declare -A NODE # NODE[transport/impl] = a chain node's port
for impl in ours gost; do
  b=${prog[$impl]}
  alloc fwd s5 ht uf
  bg "main-$impl" "$b" -L "tcp://127.0.0.1:$fwd/127.0.0.1:$S" -L "socks5://127.0.0.1:$s5?udp=true" \
    -L "http://127.0.0.1:$ht" -L "udp://127.0.0.1:$uf/127.0.0.1:$U?keepalive=true&ttl=5s"
  for p in "$fwd" "$s5" "$ht"; do wait_port "$p"; done
  main=${PID[main-$impl]}
  for c in tcp-forward-1 tcp-forward-8 socks5-tunnel http-connect-tunnel cps-socks5 cps-http udp-forward udp-socks5 idle-memory-per-tunnel; do
    PROCS[$c/$impl]=$main
  done
  P[tcp-forward-1/$impl]=$fwd; P[tcp-forward-8/$impl]=$fwd
  P[socks5-tunnel/$impl]=$s5; P[http-connect-tunnel/$impl]=$ht
  P[cps-socks5/$impl]=$s5; P[cps-http/$impl]=$ht
  P[udp-forward/$impl]=$uf; P[udp-socks5/$impl]=$s5; P[idle-memory-per-tunnel/$impl]=$s5
  # chains: a client process forwarding to the server through one node (or two)
  for t in relay relay+tls relay+mtls relay+ws; do
    alloc n; bg "node-$t-$impl" "$b" -L "$t://127.0.0.1:$n"; wait_port "$n"; NODE[$t/$impl]=$n
    alloc c; bg "chain-$t-$impl" "$b" -L "tcp://127.0.0.1:$c/127.0.0.1:$S" -F "$t://127.0.0.1:$n"; wait_port "$c"
    P[chain-$t/$impl]=$c; PROCS[chain-$t/$impl]="${PID[chain-$t-$impl]} ${PID[node-$t-$impl]}"
  done
  alloc n2; bg "node2-$impl" "$b" -L "relay://127.0.0.1:$n2"; wait_port "$n2"
  alloc c
  bg "chain-2hop-$impl" "$b" -L "tcp://127.0.0.1:$c/127.0.0.1:$S" -F "relay://127.0.0.1:${NODE[relay/$impl]}" -F "relay://127.0.0.1:$n2"
  wait_port "$c"
  P[chain-relay-2hop/$impl]=$c
  PROCS[chain-relay-2hop/$impl]="${PID[chain-2hop-$impl]} ${PID[node-relay-$impl]} ${PID[node2-$impl]}"
  # the Web API case: one tcp forwarder moved to a new port 100 times per round
  alloc api a0
  bg "api-$impl" "$b" -api "127.0.0.1:$api" -L "tcp://127.0.0.1:$a0/127.0.0.1:$S"
  wait_port "$api"; wait_port "$a0"
  P[api-update/$impl]=$api; PROCS[api-update/$impl]=${PID[api-$impl]}
done
# descriptors other than pipes (fd_counts, scripts/testenv/lib.sh: pooled pipes are counted apart)
fds() { local n _; read -r n _ <<<"$(fd_counts "$1")"; echo "$n"; }
declare -A FD0
for n in "${!PID[@]}"; do [[ $n == *-ours ]] && FD0[$n]=$(fds "${PID[$n]}"); done

udp_rates=1000,40000,80000,120000,160000
api_ports_ours=23000; api_ports_gost=23200
cases=(tcp-forward-1 tcp-forward-8 socks5-tunnel http-connect-tunnel chain-relay chain-relay+tls chain-relay+mtls
  chain-relay+ws chain-relay-2hop cps-socks5 cps-http udp-forward udp-socks5 idle-memory-per-tunnel idle-rss exec-to-accept api-update)
if [[ ${KUBEGOST_BENCH_SMOKE:-0} == 1 ]]; then
  # UDP is left out: its 40k-pps ramp steps flip between pass and fail from round to round
  cases=(tcp-forward-1 socks5-tunnel http-connect-tunnel chain-relay+mtls cps-socks5 cps-http)
fi

# client CASE VARIANT: the kg-bench invocation's output (one JSON object)
client() {
  local c=$1 v=$2 p=${P[$1/$2]:-}
  case $c in
    tcp-forward-1) "$kb" tcp --target "127.0.0.1:${p:-$S}" --secs "$secs" ;;
    tcp-forward-8) "$kb" tcp --target "127.0.0.1:${p:-$S}" --secs "$secs" --streams 8 ;;
    chain-*) "$kb" tcp --target "127.0.0.1:${p:-$S}" --secs "$secs" ;;
    socks5-tunnel) "$kb" tcp --target "127.0.0.1:$S" --secs "$secs" ${p:+--via socks5://127.0.0.1:$p} ;;
    http-connect-tunnel) "$kb" tcp --target "127.0.0.1:$S" --secs "$secs" ${p:+--via http://127.0.0.1:$p} ;;
    cps-socks5) "$kb" cps --target "127.0.0.1:$S" --secs "$secs" --concurrency 32 ${p:+--via socks5://127.0.0.1:$p} ;;
    cps-http) "$kb" cps --target "127.0.0.1:$S" --secs "$secs" --concurrency 32 ${p:+--via http://127.0.0.1:$p} ;;
    udp-forward) "$kb" udp --target "127.0.0.1:${p:-$U}" --secs "$secs" --pps "$udp_rates" ;;
    udp-socks5) "$kb" udp --target "127.0.0.1:$U" --secs "$secs" --pps "$udp_rates" ${p:+--via socks5://127.0.0.1:$p} ;;
    idle-memory-per-tunnel) memory_slope "$v" "$p" ;;
    idle-rss | exec-to-accept)
      # a port of its own per round, case and program (this runs in a subshell)
      local k=0
      [[ $c == exec-to-accept ]] && k=2
      [[ $v == gost ]] && k=$((k + 1))
      local sp=$((24000 + 4 * r + k))
      "$kb" startup --port "$sp" -- "${prog[$v]}" -L "http://127.0.0.1:$sp" ;;
    api-update)
      local lo; lo=$([[ $v == ours ]] && echo $api_ports_ours || echo $api_ports_gost)
      "$kb" apiupdate --api "127.0.0.1:$p" --target "127.0.0.1:$S" --service service-0 \
        --ports "$lo-$((lo + 99))" --updates 100 ;;
  esac
}

# memory_slope IMPL PORT: RSS of the SOCKS5 proxy with 1k, 5k and 9k idle tunnels open; the
# least-squares slope in KiB per tunnel
memory_slope() {
  local pid=${PROCS[idle-memory-per-tunnel/$1]} holders=() pts=() open=0 more got fifo
  for more in 1000 4000 4000; do
    fifo=$(mktemp -u); mkfifo "$fifo"
    "$kb" hold --target "127.0.0.1:$S" --via "socks5://127.0.0.1:$2" --count "$more" --secs 120 >"$fifo" &
    holders+=($!)
    read -r got <"$fifo"; rm -f "$fifo"
    [[ $got == *'"open"'* ]] || die "hold: $got"
    open=$((open + more))
    sleep 0.5
    pts+=("$open $(rss "$pid")")
  done
  kill "${holders[@]}" 2>/dev/null || true
  wait "${holders[@]}" 2>/dev/null || true
  sleep 1
  printf '%s\n' "${pts[@]}" | awk '{x+=$1; y+=$2; xx+=$1*$1; xy+=$1*$2; n++; pts=pts sprintf("%s%d:%d", n>1?" ":"", $1, $2)}
    END {s=(n*xy-x*y)/(n*xx-x*x); printf "{\"kib_per_tunnel\": %.3f, \"rss_at\": \"%s\"}\n", s, pts}'
}

for r in $(seq "$rounds"); do
  for c in "${cases[@]}"; do
    [[ $c =~ $filter ]] || continue
    for v in direct ours gost; do
      case $c:$v in
        chain-*:direct) v_target=direct ;;
        idle-*:direct | exec-to-accept:direct | api-update:direct) continue ;;
        *) v_target=$v ;;
      esac
      procs=${PROCS[$c/$v]:-}
      # shellcheck disable=SC2086
      t0=$(ticks $procs); w0=$(date +%s.%N)
      # a run that fails is tried again once, and counted: the reference gost's mtls client
      # reuses an smux session its node has already closed after 15 s idle (reset, once)
      attempts=1
      if ! res=$(client "$c" "$v_target"); then
        attempts=2
        res=$(client "$c" "$v_target") || die "$c/$v failed twice"
      fi
      # shellcheck disable=SC2086
      t1=$(ticks $procs); w1=$(date +%s.%N)
      cores=$(awk -v a="$t0" -v b="$t1" -v x="$w0" -v y="$w1" -v k="$tck" 'BEGIN{printf "%.3f", (b-a)/k/(y-x)}')
      [[ -z $procs ]] && cores=null
      case $c in
        idle-rss) res=$(sed 's/"ms":[^,}]*,\{0,1\}//' <<<"$res") ;;
        exec-to-accept) res=$(sed 's/,\{0,1\}"rss_kib":[^,}]*//; s/,\{0,1\}"anon_kib":[^,}]*//' <<<"$res") ;;
      esac
      printf '{"case":"%s","variant":"%s","round":%d,"attempts":%d,"cores":%s,"result":%s}\n' "$c" "$v" "$r" "$attempts" "$cores" "$res" >>"$out"
    done
  done
  echo "round $r/$rounds done" >&2
done
# gost-proxy needing a second attempt anywhere fails the run (gost's are reported)
if grep -q '"variant":"ours","round":[0-9]*,"attempts":2' "$out"; then
  grep '"variant":"ours","round":[0-9]*,"attempts":2' "$out" >&2
  die "gost-proxy failed a run (above)"
fi
# a failed request anywhere fails the run
if grep -q '"failed":[1-9]' "$out"; then
  grep '"failed":[1-9]' "$out" >&2
  die "failed requests (above)"
fi
# every gost-proxy process is back to the descriptors it had before the cases (±2)
sleep 2
for n in "${!FD0[@]}"; do
  read -r now p <<<"$(fd_counts "${PID[$n]}")"
  ((now <= FD0[$n] + 2)) || die "gost-proxy $n holds $now file descriptors after the run, $((FD0[$n])) before"
  ((p <= SPLICE_POOL_FDS)) || die "gost-proxy $n holds $p pipe descriptors after the run (the pool keeps at most $SPLICE_POOL_FDS)"
done
md=${out%.jsonl}.md
{
  echo "Run $stamp: $(nproc) cores, $secs s per run, $rounds rounds; gost = $("$gost" -V 2>&1 | head -n 1)"
  echo
  "$kb" report "$out"
} | tee "$md"
echo "results: $out, $md" >&2
if [[ ${KUBEGOST_BENCH_SMOKE:-0} == 1 ]]; then
  # exit 3: only a ratio fell below its floor (a failed request or a leak exits 1 above)
  "$kb" check "$out" tests/bench/baseline.json || exit 3
fi
