#!/usr/bin/env bash
# The regression gate: evaluate a checkpoint with a gate config, write its report, compare it with a
# committed baseline report. Exit status is compare's: 0 pass, 1 regression, 2 not comparable.
#
#   examples/ci/gate.sh [CHECKPOINT]        (default: reports/baselines/tiny/tiny-gate, the tiny gate model)
#
# Environment: GATE_CONFIG (default reports/baselines/tiny/gate.toml), GATE_BASELINE (reports/baselines/tiny/baseline),
# GATE_OUT (where the run, report and compare.json go; default a temporary directory),
# M1BENCH (the m1bench executable; default .venv/bin/m1bench). On GitHub Actions the comparison is
# also appended to the job summary ($GITHUB_STEP_SUMMARY).
set -euo pipefail
cd "$(dirname "$0")/../.."
M1BENCH=${M1BENCH:-.venv/bin/m1bench}
CHECKPOINT=${1:-reports/baselines/tiny/tiny-gate}
CONFIG=${GATE_CONFIG:-reports/baselines/tiny/gate.toml}
BASELINE=${GATE_BASELINE:-reports/baselines/tiny/baseline}
OUT=${GATE_OUT:-$(mktemp -d)}
export M1BENCH_REPORTS_DIR="$OUT/reports"  # the run's own report tree stays out of the repository

"$M1BENCH" run "$CONFIG" --model "$CHECKPOINT" -o "$OUT/run"
"$M1BENCH" report "$OUT/run" -o "$OUT/report"
"$M1BENCH" compare "$BASELINE" "$OUT/report" --json "$OUT/compare.json" ${GITHUB_STEP_SUMMARY:+--md "$GITHUB_STEP_SUMMARY"}
