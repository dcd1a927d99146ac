#!/usr/bin/env bash
# FS1000=DIR FISV=DIR RG=DIR bash benchmarks/paper.sh [OUT]     (default OUT: paper-bench)
# SMOKE=1 bash benchmarks/paper.sh OUT                            (a dry run, ~2 min on 2 CPU cores)
#
# The runs and tables of the paper: for each published (dataset, score type) preset (fs1000-{tes,pcs,ss,
# tr,pe,co,in}, fisv-{tes,pcs}, rg-{ball,clubs,hoop,ribbon}), LIMSSR and the four baselines (ActionMAE,
# GCNet, MoMKE, MCMoE) trained under strict T-Miss (every training sample misses a modality) for 3 seeds,
# under both model-selection protocols:
#   OUT/val/<preset>     train.selection=val: best epoch on a validation split of the training set
#   OUT/paper/<preset>   train.selection=paper: best epoch on the test set, as the published code does;
#                        every table from it says "PAPER PROTOCOL (best epoch chosen on the test set)"
# then `limssr paper-tables OUT`: OUT/tables/tables.md (+ .json, and per protocol one Markdown file per
# dataset and CSV per table): per dataset, a Spearman and an MSE table per score type (rows: methods;
# columns: {v,a,f} {v,a} {v,f} {a,f} {v} {a} {f} Avg) and the Fisher-z average over score types.
#
# Needs: the released features of FS1000, Fis-V and RG, in the layouts the README's "Real data" section
# shows, under the directories FS1000, FISV and RG (only those of the datasets in PRESETS), and a GPU
# for the full run: 13 presets x 5 methods x 3 seeds x 2 protocols = 390 training runs with the
# presets' epochs and the default backbone (days on a CPU).
# Resumable: `limssr benchmark` reuses finished runs and resumes interrupted ones, so rerun the same
# command after an interruption (or with more SEEDS); it refuses a finished run whose config or data
# differ from the ones asked for. The tables are rebuilt from every finished run under OUT.
#
# Environment:
#   SEEDS=1,2,3                       seeds per (preset, method)
#   METHODS=limssr,actionmae,gcnet,momke,mcmoe
#   PRESETS="fs1000-tes ... rg-ribbon"  a subset of the 13 presets (space or comma separated)
#   PROTOCOLS=val,paper               model-selection protocols (val, paper, last)
#   EXTRA="key=value ..."             overrides for every run (e.g. "train.precision=bf16")
#   BASELINE_EXTRA="key=value ..."    overrides for the baselines only (limssr benchmark --baseline-set)
#   BACKBONE=NAME|PATH                LIMSSR's backbone (default: the presets', i.e. SmolLM2-135M-Instruct)
#   FS1000, FISV, RG                  data directories
#   JOBS=1                            benchmark commands run at once (each in its own process)
#   LIMSSR=limssr                     the limssr command (default: limssr on PATH, else this repository's .venv/bin/limssr)
#   SMOKE=1                           synthetic data in the three released layouts (limssr data synth
#                                     --small, into OUT/data/), the tiny backbone, 1 epoch, 1 seed, short
#                                     clips and small baselines, presets fs1000-tes fisv-tes fisv-pcs rg-ball;
#                                     both protocols, all five methods, every table; JOBS=2 commands at once,
#                                     one thread each (OMP_NUM_THREADS=1)
# GPU-related settings (precision, batch size, compile) are left to the presets; add them with EXTRA.
set -euo pipefail
{  # read whole before it runs: editing or pulling this file during a days-long run cannot derail it
OUT=${1:-paper-bench}
SMOKE=${SMOKE:-0}
if [ -z "${LIMSSR:-}" ]; then
  LIMSSR=$(command -v limssr || echo "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/limssr")
fi
if ! command -v "$LIMSSR" > /dev/null; then
  echo "error: no limssr command ('$LIMSSR'): run \`make install\`, put its .venv/bin on PATH or set LIMSSR" >&2
  exit 2
fi
METHODS=${METHODS:-limssr,actionmae,gcnet,momke,mcmoe}
PROTOCOLS=${PROTOCOLS:-val,paper}
EXTRA=${EXTRA:-}
BASELINE_EXTRA=${BASELINE_EXTRA:-}
ALL_PRESETS="fs1000-tes fs1000-pcs fs1000-ss fs1000-tr fs1000-pe fs1000-co fs1000-in fisv-tes fisv-pcs rg-ball rg-clubs rg-hoop rg-ribbon"
mkdir -p "$OUT/logs"

SMOKE_SET=()
if [ "$SMOKE" = 1 ]; then
  SEEDS=${SEEDS:-1}
  PRESETS=${PRESETS:-fs1000-tes fisv-tes fisv-pcs rg-ball}
  BACKBONE=${BACKBONE:-tiny}
  JOBS=${JOBS:-2}
  # two processes on a small CPU: one thread each trains the tiny models faster than two competing
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  FS1000=$OUT/data/fs1000 FISV=$OUT/data/fisv RG=$OUT/data/rg
  # the three released layouts, small (8-step clips, small dims), written once, in parallel
  pids=()
  seed=0
  for layout in fs1000 fisv rg; do
    seed=$((seed + 1))
    if [ ! -d "$OUT/data/$layout" ]; then
      $LIMSSR data synth --layout "$layout" --small --n-train 16 --n-test 8 --seed "$seed" "$OUT/data/$layout" &
      pids+=($!)
    fi
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  # a dry run, not a result: 1 epoch, the clips as long as the synthetic videos, small baselines
  SMOKE_SET=(train.epochs=1 train.warmup=0 data.clip_num=8 train.batch_size=16 eval.batch_size=64
             model.lora.r=4 baseline.hidden=32 baseline.layers=1 baseline.heads=2)
else
  SEEDS=${SEEDS:-1,2,3}
  PRESETS=${PRESETS:-$ALL_PRESETS}
  BACKBONE=${BACKBONE:-}
  JOBS=${JOBS:-1}
fi
PRESETS=${PRESETS//,/ }

data_dir() {  # the data directory of a preset's dataset
  case "$1" in
    fs1000-*) echo "${FS1000:-}" ;;
    fisv-*) echo "${FISV:-}" ;;
    rg-*) echo "${RG:-}" ;;
  esac
}
for preset in $PRESETS; do  # refuse an unknown preset or a missing directory before hours of training
  case " $ALL_PRESETS " in *" $preset "*) ;; *)
    echo "error: unknown preset '$preset'; choose from: $ALL_PRESETS" >&2; exit 2 ;; esac
  dir=$(data_dir "$preset")
  var=$(case "$preset" in fs1000-*) echo FS1000 ;; fisv-*) echo FISV ;; rg-*) echo RG ;; esac)
  if [ -z "$dir" ] || [ ! -d "$dir" ]; then
    echo "error: preset $preset needs its dataset's released features: set $var=DIR (now '${dir}')" >&2
    exit 2
  fi
done

echo "$(date -u +%FT%TZ) SMOKE=$SMOKE SEEDS=$SEEDS METHODS=$METHODS PROTOCOLS=$PROTOCOLS PRESETS='$PRESETS'" \
  "BACKBONE='$BACKBONE' EXTRA='$EXTRA' BASELINE_EXTRA='$BASELINE_EXTRA' FS1000='${FS1000:-}' FISV='${FISV:-}'" \
  "RG='${RG:-}'" >> "$OUT/logs/invocations.txt"

BASELINE_ARGS=()
for kv in $BASELINE_EXTRA; do BASELINE_ARGS+=(--baseline-set "$kv"); done
BACKBONE_ARGS=()
[ -z "$BACKBONE" ] || BACKBONE_ARGS=(--backbone "$BACKBONE")

bench() {  # one preset under one protocol: limssr benchmark, its output in OUT/logs/ (and shown if JOBS=1)
  local protocol=$1 preset=$2 log="$OUT/logs/$1-$2.log"
  # shellcheck disable=SC2086  # EXTRA is a list of key=value words
  $LIMSSR benchmark --preset "$preset" --data "$(data_dir "$preset")" --methods "$METHODS" --regimes strict \
    --seeds "$SEEDS" --out "$OUT/$protocol/$preset" "${BACKBONE_ARGS[@]}" "${BASELINE_ARGS[@]}" \
    "${SMOKE_SET[@]}" $EXTRA "train.selection=$protocol" 2>&1 | if [ "$JOBS" = 1 ]; then tee "$log"; else cat > "$log"; fi
}

running=() names=() failed=0
finish_oldest() {
  if wait "${running[0]}"; then echo "  done   ${names[0]}"
  else
    echo "  FAILED ${names[0]} (see $OUT/logs/${names[0]}.log)" >&2
    [ "$JOBS" = 1 ] || tail -n 20 "$OUT/logs/${names[0]}.log" >&2  # JOBS=1 showed it already
    failed=1
  fi
  running=("${running[@]:1}") names=("${names[@]:1}")
}
for protocol in ${PROTOCOLS//,/ }; do
  label=$([ "$protocol" = paper ] && echo " (PAPER PROTOCOL: best epoch chosen on the test set)" || true)
  for preset in $PRESETS; do
    echo "[paper] $protocol$label / $preset -> $OUT/$protocol/$preset"
    bench "$protocol" "$preset" &
    running+=($!) names+=("$protocol-$preset")
    if [ "${#running[@]}" -ge "$JOBS" ]; then finish_oldest; fi
  done
done
while [ "${#running[@]}" -gt 0 ]; do finish_oldest; done
if [ "$failed" != 0 ]; then
  echo "error: some benchmark commands failed (logs above); rerun this command to resume them" >&2
  exit 1
fi

$LIMSSR paper-tables "$OUT" > "$OUT/logs/paper-tables.log"
echo "tables written to $OUT/tables/ (tables.md, tables.json; per protocol <dataset>.md and CSV files)"
exit
}
