#!/usr/bin/env bash
# The whole suite N times in a row (default 5), then once more with the second core busy
# (a bounded busy loop, or stress-ng when installed), printing each run's time and result.
# Usage: scripts/suite_runs.sh [N]   (from the repository root; logs in .suite-runs/)
# Exit status: non-zero if any run failed. Run it on a quiet machine: it is the flake check
# of issue 17, not a CI step.
set -uo pipefail
cd "$(dirname "$0")/.."
n=${1:-5}
logs=.suite-runs
mkdir -p "$logs"
failed=0

one_run() {  # label -> prints "label: passed|FAILED (exit) in Ns; summary"
  local label=$1 log="$logs/$1.log" t0 rc
  t0=$(date +%s)
  make test >"$log" 2>&1
  rc=$?
  local summary
  summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed)' "$log" | tail -1)
  if [ "$rc" -eq 0 ]; then
    echo "$label: passed in $(( $(date +%s) - t0 ))s; $summary"
  else
    echo "$label: FAILED (exit $rc) in $(( $(date +%s) - t0 ))s; $summary; see $log"
    grep -E '^(FAILED|ERROR) ' "$log" | sed 's/^/    /'
    failed=1
  fi
}

for i in $(seq 1 "$n"); do one_run "run-$i"; done

# the loaded run: one core kept busy for at most 60 minutes, stopped when the run ends
if command -v stress-ng >/dev/null; then
  stress-ng --cpu 1 --timeout 3600s --quiet &
else
  timeout 3600 bash -c 'while :; do :; done' &
fi
busy=$!
one_run "loaded"
kill "$busy" 2>/dev/null
wait "$busy" 2>/dev/null
exit "$failed"
