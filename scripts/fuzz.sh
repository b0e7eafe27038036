#!/usr/bin/env bash
# Runs the libFuzzer targets (proxy/engine/fuzz: protocol and config parsers; operator/fuzz:
# the CRD → config render) and prints, per target: executions, executions per second, wall
# seconds, corpus size and crashes (libFuzzer's crash-/timeout-/oom- artifacts).
# Needs the nightly toolchain and cargo-fuzz; without them it says so and exits 0, since
# `cargo test` replays the committed corpora on stable anyway.
#   scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET...]
#   FUZZ_RUNS=10000000 scripts/fuzz.sh 0     every target for exactly that many executions
# FUZZ_JOBS (default: the number of cores) targets run at once, one libFuzzer process each.
# FUZZ_SANITIZER (default none; address, memory, thread as cargo fuzz takes them): the engine
# and operator forbid unsafe code, so what these targets can find is a panic, a hang or an
# unbounded allocation, which libFuzzer reports without a sanitizer at 5–8× the executions;
# `FUZZ_SANITIZER=address` adds AddressSanitizer for the dependencies' unsafe code.
# The committed corpus <crate>/fuzz/corpus/<target>/ is read, never written: new inputs land in
# ${FUZZ_CORPUS:-target/fuzz-corpus}/<target>/ (kept between runs, outside the tree), so a long
# run does not grow what `cargo test` replays. A crash input is copied into the committed
# corpus under libFuzzer's name (crash-<sha1>), so the stable replay keeps it as a regression
# input once fixed; to add coverage inputs, `cargo fuzz cmin` the two together first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
shift || true
runs=${FUZZ_RUNS:-}
jobs=${FUZZ_JOBS:-$(nproc)}
san=${FUZZ_SANITIZER:-none}
[[ -z $runs || $runs =~ ^[0-9]+$ ]] || { echo "fuzz.sh: FUZZ_RUNS=$runs: a number of executions" >&2; exit 64; }
[[ $secs =~ ^[0-9]+$ ]] || { echo "fuzz.sh: $secs: seconds per target (a number)" >&2; exit 64; }
[[ -n $runs || $secs -gt 0 ]] || { echo "fuzz.sh: 0 seconds and no FUZZ_RUNS" >&2; exit 64; }
if ! rustup run nightly rustc --version >/dev/null 2>&1 || ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: nightly or cargo-fuzz is missing; the corpus replay in cargo test still runs" >&2
  exit 0
fi
grow=${FUZZ_CORPUS:-$root/target/fuzz-corpus}
limit=()
[[ -n $runs ]] && limit+=("-runs=$runs")
[[ $secs -gt 0 ]] && limit+=("-max_total_time=$secs")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# one_target DIR TARGET: runs it, leaves its result line in $out/TARGET
one_target() {
  local dir=$1 t=$2 log="$out/$2.log" start end execs rate crashes=0 a
  cd "$root/$dir"
  mkdir -p "corpus/$t" "artifacts/$t" "$grow/$t"
  start=$(date +%s)
  # -timeout: an input that has ended must be handled well within 3 s
  cargo +nightly fuzz run -O -s "$san" "$t" "$grow/$t" "corpus/$t" -- "${limit[@]}" \
    -rss_limit_mb=512 -timeout=3 -print_final_stats=1 >"$log" 2>&1 || true
  end=$(date +%s)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  for a in "artifacts/$t"/crash-* "artifacts/$t"/timeout-* "artifacts/$t"/oom-*; do
    [[ -e $a ]] || continue
    crashes=$((crashes + 1))
    cp "$a" "corpus/$t/$(basename "$a")"
    echo "$t: $(basename "$a") (copied into $dir/corpus/$t); libFuzzer's report:" >&2
    grep -m1 -A15 -E 'panicked|ERROR: libFuzzer|==ERROR' "$log" >&2 || true
  done
  printf '%-11s %12s %9s %7s %7s %7s\n' "$t" "${execs:-?}" "${rate:-?}" "$((end - start))" \
    "$(find "corpus/$t" "$grow/$t" -type f | wc -l)" "$crashes" >"$out/$t"
}

# the queue: the targets named, in that order (put the slow ones first), or every target
queue=()
for dir in proxy/engine/fuzz operator/fuzz; do
  for f in "$root/$dir"/fuzz_targets/*.rs; do
    t=$(basename "$f" .rs)
    [[ $# -eq 0 ]] && queue+=("$dir $t")
  done
done
for t in "$@"; do
  found=
  for dir in proxy/engine/fuzz operator/fuzz; do
    [[ -e $root/$dir/fuzz_targets/$t.rs ]] && queue+=("$dir $t") && found=1
  done
  [[ -n $found ]] || { echo "fuzz.sh: no target $t in proxy/engine/fuzz or operator/fuzz" >&2; exit 64; }
done
# build every crate that has a queued target once, all its targets at once
for dir in proxy/engine/fuzz operator/fuzz; do
  if [[ " ${queue[*]} " == *" $dir "* ]]; then
    (cd "$root/$dir" && cargo +nightly fuzz build -O -s "$san" >&2)
  fi
done
printf '%-11s %12s %9s %7s %7s %7s\n' target execs execs/s secs corpus crashes
running=0
for item in "${queue[@]}"; do
  # shellcheck disable=SC2086 # "dir target"
  one_target $item &
  running=$((running + 1))
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true
status=0
for item in "${queue[@]}"; do
  t=${item#* }
  if [[ -s $out/$t ]]; then
    cat "$out/$t"
    read -r _ _ _ _ _ crashes <"$out/$t"
    [[ $crashes == 0 ]] || status=1
  else
    echo "$t: no result (see the script's errors above)" >&2
    status=1
  fi
done
exit "$status"
