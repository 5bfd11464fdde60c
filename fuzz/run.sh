#!/usr/bin/env bash
# Runs one fuzz target for SECONDS of wall time, niced, growing fuzz/work/<target> from the
# committed seeds in fuzz/corpus/<target>, and prints CPU time, executions and coverage.
#   cargo +nightly fuzz build             (once: builds every target with the sanitizer)
#   fuzz/run.sh <target> [seconds]        (from the repository root)
# The binary is run directly, so edits elsewhere in the tree do not trigger a rebuild mid-run;
# it is what `cargo +nightly fuzz run <target> <dirs> -- <flags>` runs after building.
set -euo pipefail
target=$1
seconds=${2:-600}
cd "$(dirname "$0")/.."
mkdir -p "fuzz/work/$target" fuzz/work/logs "fuzz/corpus/$target" "fuzz/artifacts/$target"
log="fuzz/work/logs/$target.log"
/usr/bin/time -f "cpu_seconds=%U+%S wall_seconds=%e max_rss_kb=%M" -o "fuzz/work/logs/$target.time" \
  nice -n "${FUZZ_NICE:-19}" "fuzz/target/x86_64-unknown-linux-gnu/release/$target" \
  -artifact_prefix="fuzz/artifacts/$target/" -max_total_time="$seconds" -rss_limit_mb=2048 \
  -timeout=10 -print_final_stats=1 "fuzz/work/$target" "fuzz/corpus/$target" >"$log" 2>&1 || true
grep -E "^(stat::|Done|==[0-9]+==|SUMMARY|thread '|#[0-9]+ +DONE)" "$log" | tail -n 12
cat "fuzz/work/logs/$target.time"
