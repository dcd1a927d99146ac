#!/usr/bin/env bash
# bash benchmarks/trust.sh [OUT]     (default OUT: /work/limssr-runs/intervals-bench)
#
# The measured part of docs/trust.md, on the built-in synthetic data (demo preset, strict T-Miss,
# validation-split selection, and 20% of the training split held out as a calibration split of its
# own, data.calibration_fraction=0.2: 205 training, 51 validation, 64 calibration samples):
# 1. LIMSSR, zero-fill, late fusion and GCNet, seeds 1-5: conformal coverage and width per subset;
# 2. LIMSSR without PCMI and without Path 2, seed 1, and `limssr trust` on seed 1 of each LIMSSR
#    variant and of zero-fill: score shift, imputation fidelity, confidence against error;
# 3. the tables, written into docs/trust.md.
# About 2.5 h on a 2-core CPU. Resumable: finished runs are reused (and unpacked from the archive
# benchmarks/evidence/intervals-bench first, where a previous machine left them).
# train.deterministic=false: the archived runs were made before training became deterministic by
# default; asking for the same setting keeps them reusable (a run is reused only at an equal config).
set -euo pipefail
OUT=${1:-/work/limssr-runs/intervals-bench}
BIN=${BIN:-.venv/bin}
SET=(train.selection=val data.calibration_fraction=0.2 train.deterministic=false)
"$BIN/python" benchmarks/archive_runs.py unpack benchmarks/evidence/intervals-bench "$OUT"
"$BIN/limssr" benchmark --preset demo --regimes strict --seeds 1,2,3,4,5 --out "$OUT" --methods limssr "${SET[@]}"
"$BIN/limssr" benchmark --preset demo --regimes strict --seeds 1,2,3,4,5 --out "$OUT" --methods zero-fill,late-fusion,gcnet \
  --baseline-set train.epochs=40 --baseline-set train.lr=5e-4 "${SET[@]}"
"$BIN/limssr" benchmark --preset demo --regimes strict --seeds 1 --out "$OUT" --methods limssr-no-pcmi,limssr-no-path2 \
  "${SET[@]}"
for m in limssr limssr-no-pcmi limssr-no-path2 zero-fill; do
  run="$OUT/$m/strict/seed-1"
  ls -d "$run"/trust* > /dev/null 2>&1 || "$BIN/limssr" trust "$run" > /dev/null
done
"$BIN/python" benchmarks/archive_runs.py pack "$OUT" benchmarks/evidence/intervals-bench
"$BIN/python" benchmarks/trust_tables.py "$OUT" --doc docs/trust.md --json benchmarks/evidence/trust.json \
  --preface "Measured at commit $(git rev-parse --short HEAD) with \`bash benchmarks/trust.sh\` (2-core CPU, default backbone)."
