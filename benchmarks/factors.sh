#!/usr/bin/env bash
# bash benchmarks/factors.sh [OUT]
#
# What LIMSSR's accuracy depends on: each factor changed alone from the `demo` recipe (default
# backbone, strict T-Miss training, K = 4 fusion tokens, 8 epochs), 3 seeds each, validation-split
# model selection, on the built-in synthetic data; then the same rows' baselines-free companion on
# the interaction benchmark (demo-interaction). One `limssr train --seeds` per row into OUT/<row>;
# rows run one at a time (two cores), most informative first; rerun to resume (finished seeds are
# reused, refused if their config differs). Each run's timing.json holds its wall and CPU seconds.
# Finished runs are packed (no weights) into $ARCHIVE (default benchmarks/evidence/factors,
# committed) after every row and unpacked from there first, so the work survives a new machine.
#
# Larger backbones need a local Hugging Face directory, written by benchmarks/fetch_backbone.py:
# GEMMA=/work/backbones/gemma-3-270m and QWEN=/work/backbones/qwen2.5-coder-0.5b (rows skipped when unset).
# train.deterministic=false: the archived runs were made before training became deterministic by
# default; asking for the same setting keeps them reusable (a run is reused only at an equal config).
set -euo pipefail
OUT=${1:-/work/limssr-runs/factors}
BIN=${BIN:-.venv/bin}
SEEDS=${SEEDS:-1,2,3}
ONLY=${ONLY:-}  # a space-separated list of row names to run (default: all)
ARCHIVE=${ARCHIVE:-benchmarks/evidence/factors}
mkdir -p "$OUT"
"$BIN/python" benchmarks/archive_runs.py unpack "$ARCHIVE" "$OUT"

row() {  # row NAME PRESET [overrides...]
  local name=$1 preset=$2
  shift 2
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
  echo "[factors] $name: $*" >&2
  "$BIN/limssr" train --preset "$preset" --seeds "$SEEDS" --out "$OUT/$name" train.selection=val train.deterministic=false "$@"
  "$BIN/python" benchmarks/archive_runs.py pack "$OUT" "$ARCHIVE"
}

# the base row is LIMSSR of the built-in benchmark, RESULTS/limssr/strict (benchmarks/results.sh;
# the same config, checked): not trained twice
row random-init demo model.backbone_init=random
row per-batch demo train.missing=per-batch
row k2 demo model.num_fusion_tokens=2
row k3 demo model.num_fusion_tokens=3
row k8 demo model.num_fusion_tokens=8
row epochs-4 demo train.epochs=4
row epochs-16 demo train.epochs=16
row no-shared-prompt demo model.share_prompt=false
row tiny demo --backbone tiny
# interaction-base is LIMSSR of the interaction benchmark (INTERACTION/limssr/strict, benchmarks/evidence.sh)
row interaction-random-init demo-interaction model.backbone_init=random
if [ -n "${GEMMA:-}" ]; then row gemma-3-270m demo --backbone "$GEMMA"; fi
if [ -n "${QWEN:-}" ]; then row qwen2.5-coder-0.5b demo --backbone "$QWEN"; fi
