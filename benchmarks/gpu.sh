#!/usr/bin/env bash
# GPU check for issue 5: `limssr speed` on one H100/H200 with a Qwen3-0.6B-sized random-init backbone
# at FS1000 shapes (batch 8, T = 95), reference-equivalent and fast configurations, printing step time,
# samples/s, peak GPU memory and model FLOPs utilisation. Finishes in a few minutes.
# Usage (on the GPU machine, from the repository root): bash benchmarks/gpu.sh [OUT_DIR]
# (BENCH_ARGS adds options to `limssr speed`, e.g. "--profile DIR --rounds 1"; FAST_VARIANTS, a
# ";"-separated list of fast-path overrides such as "train.compile=reduce-overhead;model.share_prompt=true",
# then measures the fast path once more with each, on the same warm machine and model; by default
# "train.compile=reduce-overhead")
set -euo pipefail
OUT=${1:-${OUT:-bench-gpu}}
mkdir -p "$OUT"
MODEL=${MODEL:-/tmp/limssr-qwen3-0.6b-random}   # ~2.4 GB of random weights: kept out of OUT
# SMOKE=1: a 2-layer model of the same vocabulary on whatever device is there (a dry run of this script)
SMOKE=${SMOKE:-0}
# Python: the project's .venv if built; else a python3 that already holds torch with CUDA and the
# libraries (GPU images usually do; PYTHONPATH may add carried wheels), running from src/; else a new venv.
if [ -x .venv/bin/limssr ]; then
  PY=.venv/bin/python
elif python3 -c "import torch, transformers, peft, lightning, safetensors, rich, scipy, yaml" 2>/dev/null; then
  PY=python3
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
else
  python3 -m venv .venv
  .venv/bin/pip install -q torch==2.13.0 || .venv/bin/pip install -q torch
  .venv/bin/pip install -q -e .
  PY=.venv/bin/python
fi
$PY -c "import torch, transformers, peft; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'peft', peft.__version__)" | tee "$OUT/versions.txt"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi"; } | tee "$OUT/gpu.txt"
# A Qwen3-0.6B-shaped decoder (28 layers, hidden 1024, 16 heads, 8 KV heads, intermediate 3072,
# vocabulary 151,936), random weights, written as a local Hugging Face directory with a word-level
# tokenizer: the shapes and FLOPs of the paper's backbone without downloading it.
$PY - "$MODEL" "$SMOKE" <<'PY'
import sys, torch
from transformers import Qwen3Config, Qwen3ForCausalLM, PreTrainedTokenizerFast
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from limssr.sequence import prompt_text
from limssr.subsets import all_subsets
out = sys.argv[1]
smoke = sys.argv[2] == "1"
cfg = Qwen3Config(vocab_size=151936, hidden_size=128 if smoke else 1024, intermediate_size=256 if smoke else 3072,
                  num_hidden_layers=2 if smoke else 28, num_attention_heads=4 if smoke else 16,
                  num_key_value_heads=2 if smoke else 8, head_dim=32 if smoke else 128,
                  max_position_embeddings=4096, tie_word_embeddings=True)
torch.manual_seed(0)
Qwen3ForCausalLM(cfg).save_pretrained(out)
tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
texts = [prompt_text(s, ["visual", "audio", "flow"]) for s in all_subsets(3)]
tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>"]))
PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<pad>").save_pretrained(out)
print("wrote", out)
PY
if [ "$SMOKE" = 1 ]; then STEPS="--steps 2 --warmup 1 --infer-batches 2 --rounds 1"; DEV=""; else
  STEPS="--steps 10 --warmup 3 --infer-batches 10"; DEV="--device cuda"; fi
$PY -m limssr.cli speed --backbone "$MODEL" --preset fs1000-tes $DEV $STEPS --loader-videos 0 \
  --out "$OUT/bench-gpu.json" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench-gpu.txt"
# by default, the fast path once more with its decoder layers CUDA-graphed (FAST_VARIANTS="" skips it)
IFS=';' read -ra VARIANTS <<< "${FAST_VARIANTS-train.compile=reduce-overhead}"
i=0
for v in "${VARIANTS[@]}"; do
  [ -n "$v" ] || continue
  i=$((i + 1))
  echo "== fast path with $v"
  $PY -m limssr.cli speed --backbone "$MODEL" --preset fs1000-tes $DEV $STEPS --loader-videos 0 --only fast \
    --fast-set "$v" --out "$OUT/bench-gpu-variant-$i.json" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench-gpu-variant-$i.txt"
done
