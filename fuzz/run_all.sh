#!/usr/bin/env bash
# Runs every fuzz target for RUNS executions (default 1,000,000) on its corpus, with a 2 GB
# RSS limit and a 10 s per-input timeout; new interesting inputs are added to the corpus.
# Prints one line per target (executions, crashes). Needs `cargo install cargo-fuzz`;
# RUSTC_BOOTSTRAP=1 lets the stable toolchain build the instrumented targets.
# Usage: fuzz/run_all.sh [RUNS]
set -uo pipefail
cd "$(dirname "$0")"
runs=${1:-1000000}
export RUSTC_BOOTSTRAP=1
for t in $(ls fuzz_targets | sed 's/\.rs$//'); do
  mkdir -p corpus/$t artifacts/$t
  cargo fuzz run -s none -O "$t" corpus/$t -- -runs="$runs" -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix=artifacts/$t/ > "artifacts/$t.log" 2>&1
  status=$?
  done_line=$(grep -E "^Done [0-9]+ runs" "artifacts/$t.log" | tail -1)
  crashes=$(ls artifacts/$t | grep -cE '^(crash|oom|timeout|leak)-' || true)
  echo "$t: exit $status; ${done_line:-no completion line}; $crashes crash/oom/timeout inputs"
done
