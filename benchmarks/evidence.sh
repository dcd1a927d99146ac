#!/usr/bin/env bash
# bash benchmarks/evidence.sh GDLT_GIT_DIR [ROOT]
#
# Every run behind docs/results.md, one after another (two cores: one heavy job at a time), most
# informative first; each stage is resumable, so rerun the same command after an interruption
# (finished runs are reused, interrupted ones resumed). ROOT defaults to /work/limssr-runs.
# Finished runs are packed without their weights into benchmarks/evidence/ (commit it) and unpacked
# from there first, so a new machine continues where the last one stopped.
#   1. Fis-V Video Swin features: the plain encoder and LIMSSR (TES, PCS)   benchmarks/fisv-vst.sh
#   2. the built-in data: LIMSSR (the factors' base row) and the six baselines, both regimes
#   3. the built-in data: LIMSSR's factors (backbone init, masks, K, budget)  benchmarks/factors.sh
#   4. the interaction benchmark: LIMSSR and the baselines                  (below)
#   5. Fis-V: MCMoE, the other baselines, larger backbones                 benchmarks/fisv-vst.sh
#   6. the remaining factors (larger backbones, interaction rows)           benchmarks/factors.sh
#   7. the built-in data: LIMSSR's six ablations                            benchmarks/results.sh
# train.deterministic=false: the archived runs were made before training became deterministic by
# default; asking for the same setting keeps them reusable (a run is reused only at an equal config).
set -euo pipefail
GIT_DIR=${1:?usage: bash benchmarks/evidence.sh GDLT_GIT_DIR [ROOT]}
ROOT=${2:-/work/limssr-runs}
BIN=${BIN:-.venv/bin}
ARCHIVE=${ARCHIVE:-benchmarks/evidence}
for part in results interaction; do
  mkdir -p "$ROOT/$part"
  "$BIN/python" benchmarks/archive_runs.py unpack "$ARCHIVE/$part" "$ROOT/$part"
done
pack() { "$BIN/python" benchmarks/archive_runs.py pack "$ROOT/$1" "$ARCHIVE/$1"; }
export BIN
STAGE1_ONLY=1 ARCHIVE="$ARCHIVE/fisv-vst" bash benchmarks/fisv-vst.sh "$GIT_DIR" "$ROOT/fisv-vst"
common=(--preset demo --seeds 1,2,3 --out "$ROOT/results" train.selection=val train.deterministic=false)
"$BIN/limssr" benchmark "${common[@]}" --regimes strict --methods limssr
"$BIN/limssr" benchmark "${common[@]}" --regimes strict,complete --methods mcmoe,momke,gcnet,actionmae,zero-fill,late-fusion \
  --baseline-set train.epochs=40 --baseline-set train.lr=5e-4
pack results
ONLY="random-init per-batch k3 k8 k2 epochs-4 epochs-16 tiny" ARCHIVE="$ARCHIVE/factors" \
  bash benchmarks/factors.sh "$ROOT/factors"
"$BIN/limssr" benchmark --preset demo-interaction --regimes strict --seeds 1,2,3 --out "$ROOT/interaction" \
  --methods limssr,mcmoe,momke,gcnet,actionmae,zero-fill,late-fusion \
  --baseline-set train.epochs=40 --baseline-set train.lr=5e-4 train.selection=val train.deterministic=false
pack interaction
ARCHIVE="$ARCHIVE/fisv-vst" bash benchmarks/fisv-vst.sh "$GIT_DIR" "$ROOT/fisv-vst"
ARCHIVE="$ARCHIVE/factors" bash benchmarks/factors.sh "$ROOT/factors"
bash benchmarks/results.sh "$ROOT/results"
pack results
