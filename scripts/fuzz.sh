#!/usr/bin/env bash
# Runs sculpt's fuzz targets (fuzz/, cargo-fuzz on the nightly toolchain) for a set time each and appends one
# line per run to fuzz/executions.tsv: date, commit, target, sanitizer, seconds, executions, new crash files.
#
#   scripts/fuzz.sh SECONDS [TARGET...]      (default: every target; JOBS=N runs N targets at once, default 1)
#
# SANITIZER=address (the default: catches memory errors in the runtime's unsafe SIMD code) or SANITIZER=none
# (about twice the executions per second for the readers written in safe Rust).
#
# On a shared machine run it under `quiet`. The working corpus grows in fuzz/corpus/TARGET (ignored by git);
# the checked-in seeds are fuzz/seeds/TARGET. A crash is saved in fuzz/artifacts/TARGET: copy it into
# fuzz/regressions/TARGET once fixed, so that `cargo test` replays it forever (tests/fuzz_replay.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(scb onnx checkpoint idx cifar recipe)
fi
jobs=${JOBS:-1}
sanitizer=${SANITIZER:-address}
case $sanitizer in
  address) target_dir=fuzz/target ;;
  none) target_dir=fuzz/target-nosan ;;
  *) echo "SANITIZER must be address or none" >&2; exit 2 ;;
esac
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +nightly fuzz build -O --codegen-units 16 -s "$sanitizer" --target-dir "$target_dir"
bin=$target_dir/x86_64-unknown-linux-gnu/release
commit=$(git rev-parse --short HEAD)
mkdir -p fuzz/logs

run_one() {
  local t=$1
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  local before
  before=$(find "fuzz/artifacts/$t" -type f | wc -l)
  "$bin/$t" "fuzz/corpus/$t" "fuzz/seeds/$t" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$t/" >"fuzz/logs/$t.$sanitizer.log" 2>&1 || true
  local execs after
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/logs/$t.$sanitizer.log" | grep -o '[0-9]*$' | tail -1)
  after=$(find "fuzz/artifacts/$t" -type f | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$commit" "$t" "$sanitizer" \
    "$seconds" "${execs:-0}" "$((after - before))" >>fuzz/executions.tsv
  echo "$t: ${execs:-0} executions in ${seconds}s, $((after - before)) new crash files"
}
export -f run_one
export seconds bin commit sanitizer
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {}'
