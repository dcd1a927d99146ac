#!/usr/bin/env bash
# bash benchmarks/fisv-vst.sh GDLT_GIT_DIR [OUT]
#
# Real data, video only: the Fis-V Video Swin features of all 500 programmes that GDLT published
# (public repository xuangch/CVPR22_GDLT, re-committed at WHR666777/CVPR22_GDLT@0f06f2b,
# fis-v/swintx_avg_fps25_clip32), with the Fis-V labels of MS-LSTM (LABELS, default ../shared/data/fis-v
# beside the project). GDLT_GIT_DIR is a local clone or mirror of that repository.
#
# 1. exports the features into the generic layout under $DATA (default /work/limssr-data/fisv-vst:
#    never inside the project, never packaged);
# 2. the ridge probe on time-averaged features (validation-selected penalty), TES and PCS;
# 3. `limssr benchmark` of LIMSSR and every baseline on TES and PCS, complete training data (one
#    modality: nothing to hide), validation-split model selection, seeds $SEEDS (default 1,2,3).
#    The test split is scored once per run, at the end; nothing is chosen on it.
#
# 4. LIMSSR's factors on TES: the same architecture randomly initialised, and larger backbones.
#
# CPU budget (2 cores): LIMSSR $LIMSSR_EPOCHS epochs (default 8, warm-up 1; ~17 min a run), the baselines
# $BASELINE_EPOCHS (default 40) epochs; MCMoE keeps its own optimiser, lr, batch and loss weights
# (the preset's method_defaults) with that epoch count. With a GPU, raise both toward the presets'.
# Resumable: rerun the same command; finished runs are reused (refused if their config differs).
# Across machines: finished runs are packed, without weights and with the labels removed, into
# $ARCHIVE (default benchmarks/evidence/fisv-vst, committed) and unpacked from there first.
# train.deterministic=false: the archived runs were made before training became deterministic by
# default; asking for the same setting keeps them reusable (a run is reused only at an equal config).
set -euo pipefail
GIT_DIR=${1:?usage: bash benchmarks/fisv-vst.sh GDLT_GIT_DIR [OUT]}
OUT=${2:-/work/limssr-runs/fisv-vst}
DATA=${DATA:-/work/limssr-data/fisv-vst}
LABELS=${LABELS:-../shared/data/fis-v}
SEEDS=${SEEDS:-1,2,3}
LIMSSR_EPOCHS=${LIMSSR_EPOCHS:-8}
BASELINE_EPOCHS=${BASELINE_EPOCHS:-40}
BIN=${BIN:-.venv/bin}
ARCHIVE=${ARCHIVE:-benchmarks/evidence/fisv-vst}
TYPES=${TYPES:-TES PCS}

"$BIN/python" benchmarks/export_fisv_vst.py "$GIT_DIR" "$LABELS" "$DATA"
mkdir -p "$OUT"
"$BIN/python" benchmarks/archive_runs.py unpack "$ARCHIVE" "$OUT" --labels "$DATA"

bench() {  # bench TYPE METHODS [overrides...]: one `limssr benchmark` call on score type TYPE
  local t=$1 methods=$2 lower
  lower=$(echo "$t" | tr 'A-Z' 'a-z')
  shift 2
  "$BIN/limssr" benchmark --preset "fisv-$lower" --data "$DATA" --regimes complete --seeds "$SEEDS" \
    --out "${DEST:-$OUT/$lower}" --methods "$methods" data.source=generic "data.score_type=$t" \
    train.selection=val train.precision=auto train.deterministic=false "$@"
  "$BIN/python" benchmarks/archive_runs.py pack "$OUT" "$ARCHIVE"
}
factor() {  # factor ROW [overrides...]: LIMSSR on TES with one change, into $OUT/factors-tes/ROW
  local row=$1
  shift
  DEST="$OUT/factors-tes/$row" bench TES limssr "train.epochs=$LIMSSR_EPOCHS" train.warmup=1 "$@"
}
baselines=(--baseline-set "train.epochs=$BASELINE_EPOCHS" --baseline-set train.lr=5e-4 --baseline-set train.warmup=1)

# most informative first: the plain encoder and LIMSSR, then MCMoE, then the other baselines
for t in $TYPES; do
  "$BIN/python" benchmarks/ridge_probe.py "$DATA" --score-type "$t" \
    --out "$OUT/ridge-$(echo "$t" | tr 'A-Z' 'a-z').json" > /dev/null
done
for t in $TYPES; do
  bench "$t" zero-fill "${baselines[@]}"
  bench "$t" limssr "train.epochs=$LIMSSR_EPOCHS" train.warmup=1
done
[ -z "${STAGE1_ONLY:-}" ] || exit 0  # STAGE1_ONLY=1: the plain encoder and LIMSSR only
# what LIMSSR needs, on TES (the base row is $OUT/tes/limssr): a random backbone, larger backbones
# (GEMMA / QWEN: directories written by benchmarks/fetch_backbone.py; rows skipped when unset)
factor random-init model.backbone_init=random
if [ -n "${GEMMA:-}" ]; then factor gemma-3-270m "model.backbone=$GEMMA"; fi
if [ -n "${QWEN:-}" ]; then factor qwen2.5-coder-0.5b "model.backbone=$QWEN"; fi
for t in $TYPES; do bench "$t" mcmoe --baseline-set "train.epochs=$BASELINE_EPOCHS"; done
for t in $TYPES; do bench "$t" late-fusion,gcnet,actionmae,momke "${baselines[@]}"; done
