#!/usr/bin/env bash
# GPU check for issue 5: `limssr bench` on one H100/H200 with a Qwen3-0.6B-sized random-init backbone
# at FS1000 shapes (batch 8, T = 95), reference-equivalent and fast configurations, printing step time,
# samples/s, peak GPU memory and model FLOPs utilisation. Finishes in a few minutes.
# Usage (on the GPU machine, from the repository root): bash benchmarks/gpu.sh [OUT_DIR]
set -euo pipefail
OUT=${1:-${OUT:-bench-gpu}}
mkdir -p "$OUT"
PY=${PY:-python3}
if [ ! -x .venv/bin/limssr ]; then
  $PY -m venv .venv
  .venv/bin/pip install -q torch==2.13.0 || .venv/bin/pip install -q torch
  .venv/bin/pip install -q -e .
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
# A Qwen3-0.6B-shaped decoder (28 layers, hidden 1024, 16 heads, 8 KV heads, intermediate 3072,
# vocabulary 151,936), random weights, written as a local Hugging Face directory with a word-level
# tokenizer: the shapes and FLOPs of the paper's backbone without downloading it.
.venv/bin/python - "$OUT/qwen3-0.6b-random" <<'PY'
import sys, torch
from transformers import Qwen3Config, Qwen3ForCausalLM, PreTrainedTokenizerFast
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from limssr.sequence import prompt_text
from limssr.subsets import all_subsets
out = sys.argv[1]
cfg = Qwen3Config(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                  num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=4096,
                  tie_word_embeddings=True)
torch.manual_seed(0)
Qwen3ForCausalLM(cfg).save_pretrained(out)
tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
texts = [prompt_text(s, ["visual", "audio", "flow"]) for s in all_subsets(3)]
tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>"]))
PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<pad>").save_pretrained(out)
print("wrote", out)
PY
.venv/bin/limssr bench --backbone "$OUT/qwen3-0.6b-random" --preset fs1000-tes --device cuda \
  --steps 10 --warmup 3 --infer-batches 10 --loader-videos 0 --out "$OUT/bench-gpu.json" 2>&1 | tee "$OUT/bench-gpu.txt"
