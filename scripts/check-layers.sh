#!/usr/bin/env bash
# Fails when a module of proxy/engine imports from a higher layer (or from a module of its
# own layer): every `crate::<module>` path outside test code must name a lower layer.
#
# Layers, lowest first (README.md "Layout"); a module may import only modules with a smaller
# number (within a layer the numbers order its modules):
#   core        0-2    addr error files < io md < component  (I/O, addresses, errors, metadata,
#                      every component trait and the type-string registry)
#   protocols   3-4    wire formats and policies the components share (tls, mux, ws, socks,
#                      relay, matcher, policy, resolver, hooks, metrics)
#   components  5-6    limiter (limiters, climiters, rlimiters; built on policy's sources),
#                      listener handler connector dialer fail_closed (one module per GOST type
#                      string) < components (the one registration list)
#   runtime     7-9    chain < store < router, service
#   assembly    10-11  build < engine
#   program     12-16  api args health fetch < supervise cli watch < app < lib < main
# A new module must be given a layer here; unknown modules fail the check.
set -euo pipefail
cd "$(dirname "$0")/.."
src=proxy/engine/src

declare -A layer=(
  [addr]=0 [error]=0 [files]=0 [io]=1 [md]=1 [component]=2
  [matcher]=3 [resolver]=3 [hooks]=3 [metrics]=3 [tls]=3 [mux]=3 [socks]=3 [relay]=3
  [policy]=4 [ws]=4
  [limiter]=5
  [listener]=5 [handler]=5 [connector]=5 [dialer]=5 [fail_closed]=5 [components]=6
  [chain]=7 [store]=8 [router]=9 [service]=9
  [build]=10 [engine]=11
  [api]=12 [args]=12 [health]=12 [fetch]=12 [supervise]=13 [cli]=13 [watch]=13 [app]=14 [lib]=15 [main]=16
)
# Items the crate root re-exports, by the module that defines them.
declare -A root=(
  [Kinds]=component [register_all]=components [register_with]=components
  [Engine]=engine [EngineOpts]=engine
)

fail=0
while IFS= read -r file; do
  rel=${file#"$src"/}
  mod=${rel%%/*}
  mod=${mod%.rs}
  [[ $rel == */tests.rs ]] && continue
  if [[ -z ${layer[$mod]+x} ]]; then
    echo "check-layers: $file: module '$mod' has no layer (add it to scripts/check-layers.sh)"
    fail=1
    continue
  fi
  # code before the first #[cfg(test)]; `crate::{a, b}` groups are split into their names
  while IFS= read -r hit; do
    lineno=${hit%%:*}
    name=${hit#*:}
    target=$name
    [[ -n ${root[$name]+x} ]] && target=${root[$name]}
    if [[ -z ${layer[$target]+x} ]]; then
      echo "check-layers: $file:$lineno: crate::$name is not a module with a layer"
      fail=1
    elif [[ $target != "$mod" ]] && (( ${layer[$target]} >= ${layer[$mod]} )); then
      echo "check-layers: $file:$lineno: $mod (layer ${layer[$mod]}) imports $target (layer ${layer[$target]})"
      fail=1
    fi
  done < <(awk '/#\[cfg\(test\)\]/ { exit }
      { line = $0; sub(/\/\/.*/, "", line)
        while (match(line, /crate::(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)/)) {
          m = substr(line, RSTART + 7, RLENGTH - 7); line = substr(line, RSTART + RLENGTH)
          gsub(/[{} ]/, "", m); n = split(m, parts, ",")
          for (i = 1; i <= n; i++) { split(parts[i], seg, ":"); if (seg[1] != "") print NR ":" seg[1] }
        } }' "$file")
done < <(find "$src" -name '*.rs' | sort)

if (( fail )); then
  echo "check-layers: imports must point to lower layers only (see the table at the top of scripts/check-layers.sh)"
  exit 1
fi
echo "check-layers: ok"
