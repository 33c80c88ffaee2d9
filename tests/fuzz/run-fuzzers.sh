#!/bin/bash
# Runs every fuzz target (or those named) for SECONDS each, two at a time,
# at the lowest priority, and prints one line per target with libFuzzer's
# figures: executions, coverage (cov: edges), corpus size, crashes.
#   tests/fuzz/run-fuzzers.sh BUILD_DIR OUT_DIR SECONDS [TARGET...]
# BUILD_DIR is configured with -Dfuzzing=enabled (see meson.build here).
# New inputs go to OUT_DIR/<target>/corpus (the seeds stay as they are),
# crashes to OUT_DIR/<target>/crash-*, the log to OUT_DIR/<target>.log.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$1" out="$2" seconds="$3"
shift 3
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors safetensors-index config tokenizer image element)

run_one () {
  local t="$1" extra=()
  mkdir -p "$out/$t/corpus"
  case "$t" in
    safetensors*|config) extra=(-dict="$here/json.dict") ;;
    # long sequences of steps from the start, not after hours
    element) extra=(-max_len=512 -len_control=0) ;;
  esac
  # libFuzzer stops at the first crash (saved as crash-*): fix, run again.
  nice -n 19 "$build/tests/fuzz/fuzz-$t" -max_total_time="$seconds" \
    -timeout=30 -print_final_stats=1 "${extra[@]}" \
    -artifact_prefix="$out/$t/" "$out/$t/corpus" "$here/corpus/$t" \
    > "$out/$t.log" 2>&1 || true
}

summary () {
  local t="$1" log="$out/$1.log" last
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  printf '%-18s execs %s, %s, %s, crashes %s\n' "$t" \
    "$(grep -oP 'stat::number_of_executed_units: *\K[0-9]+' "$log" || echo "${last%% *}")" \
    "$(grep -oP 'cov: [0-9]+' <<< "$last" || echo 'cov: ?')" \
    "$(grep -oP 'corp: [0-9]+/[0-9]+[a-zA-Z]+' <<< "$last" || echo 'corp: ?')" \
    "$(ls "$out/$t" | grep -c -E '^(crash|leak|timeout|oom)-' || true)"
}

for ((i = 0; i < ${#targets[@]}; i += 2)); do
  run_one "${targets[i]}" &
  [ -z "${targets[i + 1]:-}" ] || run_one "${targets[i + 1]}" &
  wait
done
for t in "${targets[@]}"; do summary "$t"; done
