#!/usr/bin/env bash
# Runs the libFuzzer targets (proxy/engine/fuzz: protocol and config parsers; operator/fuzz:
# the CRD → config render) for a given time each and prints, per target: executions,
# executions per second, corpus size and crashes (libFuzzer's crash-/timeout-/oom- artifacts).
# Needs the nightly toolchain and cargo-fuzz; without them it says so and exits 0, since
# `cargo test` replays the committed corpora on stable anyway.
#   scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET...]
# New inputs land in <crate>/fuzz/corpus/<target>/; `cargo fuzz cmin` keeps that small before
# a commit. A crash input is copied into the corpus under libFuzzer's name (crash-<sha1>), so
# the stable replay keeps it as a regression input once fixed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
shift || true
if ! rustup run nightly rustc --version >/dev/null 2>&1 || ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: nightly or cargo-fuzz is missing; the corpus replay in cargo test still runs" >&2
  exit 0
fi
printf '%-11s %12s %9s %7s %7s\n' target execs execs/s corpus crashes
status=0
for dir in proxy/engine/fuzz operator/fuzz; do
  cd "$root/$dir"
  mapfile -t all < <(find fuzz_targets -name '*.rs' -printf '%f\n' | sed 's/\.rs$//' | sort)
  targets=()
  for t in "${all[@]}"; do
    if [[ $# -eq 0 ]] || [[ " $* " == *" $t "* ]]; then targets+=("$t"); fi
  done
  [[ ${#targets[@]} -gt 0 ]] || continue
  cargo +nightly fuzz build -O >&2 # every target of the crate at once
  for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log=$(mktemp)
    # -timeout: an input that has ended must be handled well within 3 s
    cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" \
      -rss_limit_mb=512 -timeout=3 -print_final_stats=1 >"$log" 2>&1 || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    crashes=0
    for a in "artifacts/$t"/crash-* "artifacts/$t"/timeout-* "artifacts/$t"/oom-*; do
      [[ -e $a ]] || continue
      crashes=$((crashes + 1))
      cp "$a" "corpus/$t/$(basename "$a")"
      echo "$t: $(basename "$a") (copied into $dir/corpus/$t); libFuzzer's report:" >&2
      grep -m1 -A15 -E 'panicked|ERROR: libFuzzer|==ERROR' "$log" >&2 || true
    done
    printf '%-11s %12s %9s %7s %7s\n' "$t" "${execs:-?}" "${rate:-?}" "$(find "corpus/$t" -type f | wc -l)" "$crashes"
    [[ $crashes -eq 0 ]] || status=1
    rm -f "$log"
  done
done
exit "$status"
