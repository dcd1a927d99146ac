"""The fast path: cheaper dropout with the same distribution, merged-LoRA inference with the same scores,
bf16 frozen weights, `limssr speed`, and data-parallel training matching one process."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import DIMS, random_inputs

from limssr.kernels import FastDropout, use_fast_dropout


def test_fast_dropout_distribution_and_memory():
    torch.manual_seed(0)
    drop = FastDropout(0.1).train()
    x = torch.ones(1000, 1000, requires_grad=True)
    y = drop(x)
    zeros = (y == 0).float().mean().item()
    assert abs(zeros - 0.1) < 0.002 and abs(y.mean().item() - 1.0) < 0.005
    assert torch.allclose(y[y != 0], torch.tensor(1 / (1 - 3277 / 32768)))
    y.sum().backward()
    assert torch.equal(x.grad == 0, y == 0)
    assert torch.equal(drop.eval()(x), x)
    # nothing is kept for backward (the mask is drawn again from its seed), and the gradient
    # there drops exactly the elements the forward pass dropped, as a held mask would
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = drop.train()(x)
    assert not saved
    x.grad = None
    torch.manual_seed(1)  # the global generator moving on between the passes changes nothing
    (y * torch.arange(1e6).view(1000, 1000)).sum().backward()
    torch.testing.assert_close(x.grad, torch.where(y == 0, 0.0, torch.arange(1e6).view(1000, 1000) * y))
    torch.manual_seed(0)
    a = FastDropout(0.1).train()(x)
    torch.manual_seed(0)
    assert torch.equal(FastDropout(0.1).train()(x), a)  # seeded runs repeat


def test_fast_dropout_is_plain_dropout_off_the_cpu(monkeypatch):
    """Off the CPU dropout is one fused kernel and a step is bound by kernel launches: F.dropout."""
    import torch.nn.functional as F

    calls = []
    monkeypatch.setattr(F, "dropout", lambda x, p, training: calls.append((p, training)) or x)
    x = torch.empty(4, 4, device="meta")
    assert FastDropout(0.1).train()(x) is x and calls == [(0.1, True)]
    FastDropout(0.1).train()(torch.ones(4, 4))
    assert len(calls) == 1  # the CPU keeps its own masks


def test_lora_layers_get_the_fast_dropout(tiny_backbone_factory):
    backbone, cfg = tiny_backbone_factory()
    drops = [m for n, m in backbone.decoder.named_modules() if isinstance(m, FastDropout)]
    assert len(drops) == 16 and all(abs(d.p - 0.1) < 1e-9 for d in drops)  # q, k, v, o x 4 layers
    assert use_fast_dropout(backbone.decoder) == 0  # nothing left to replace


def test_merged_inference_scores_as_the_trained_model(tiny_model):
    feats = random_inputs(batch=4, steps=6)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 1, 1], [0, 0, 1]], dtype=torch.bool)
    valid = torch.ones(4, 6, dtype=torch.bool)
    with torch.no_grad():
        for p in tiny_model.backbone.parameters():  # LoRA B starts at zero: make the adapters matter
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
        before = tiny_model(feats, mask, valid).score
        tiny_model.prepare_inference("32-true")
        after = tiny_model(feats, mask, valid).score
    assert not any("lora_" in n for n, _ in tiny_model.named_parameters())
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    with pytest.raises(RuntimeError, match="merged"):
        tiny_model.trainable_state_dict()


def test_frozen_weights_in_bf16_trainable_in_fp32(tiny_model):
    signature = tiny_model.backbone_signature()
    tiny_model.store_frozen_weights(torch.bfloat16)
    assert tiny_model.backbone_signature() == signature  # a bf16-trained run still loads onto fp32 weights
    for name, p in tiny_model.named_parameters():
        assert p.dtype == (torch.float32 if p.requires_grad else torch.bfloat16), name
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny_model.train()(random_inputs(batch=2, steps=4), torch.ones(2, 3, dtype=torch.bool),
                                 torch.ones(2, 4, dtype=torch.bool))
    out.score.float().sum().backward()
    assert all(p.grad is not None for n, p in tiny_model.named_parameters() if "lora_B" in n)


def test_bench_report(tmp_path):
    from limssr.speed import compare

    report = compare(backbone="tiny", preset="synthetic-quick", batch=4, clips=6, steps=1, warmup=0,
                     infer_batches=1, loader_videos=12, rounds=1, profile=str(tmp_path / "prof"), latency_programmes=3)
    ref, fast = report["configs"]["reference"], report["configs"]["fast"]
    for kind in ("reference", "fast"):  # operator tables of a few profiled steps
        assert "aten::" in (tmp_path / "prof" / f"{kind}-train-profile.txt").read_text()
    assert ref["precision"] == "32-true"
    assert ref["trainable_parameters"] > fast["trainable_parameters"]  # the whole embedding trains
    for r in (ref, fast):
        assert r["train_step_s"] > 0 and r["peak_memory_gb"] > 0 and r["inference_samples_per_s"] > 0
        # latency: each of the 3 programmes scored alone, at batch 1
        assert len(r["latency_s_all"]) == 3 and 0 < r["latency_median_s"] <= r["latency_p95_s"]
    assert set(report["ratios"]) == {"train_step_speedup", "peak_memory_ratio", "inference_speedup", "latency_speedup"}
    assert report["loader"]["per_sample_speedup"] > 1


def test_bench_fast_overrides_reach_only_the_fast_configuration():
    from limssr.speed import compare

    with pytest.raises(RuntimeError, match="no_such_key"):
        compare(backbone="tiny", preset="synthetic-quick", batch=2, clips=4, steps=1, warmup=0, infer_batches=1,
                loader_videos=0, rounds=1, kinds=("fast",), fast_set=("model.no_such_key=1",))


def _train(tmp_path, name, extra):
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(
        "seed: 3\n"
        "data: {clip_num: 6, synthetic: {n_train: 64, n_test: 48, clips: 8, dims: {video: 32, audio: 16, flow: 24}}}\n"
        "model: {backbone: tiny, dropout: 0.0, lora: {dropout: 0.0}}\n"
        "loss: {alpha: 0.0}\n"
        "train: {epochs: 2, warmup: 1, selection: last, shuffle: false, accelerator: cpu}\n")
    out = tmp_path / name
    proc = subprocess.run([sys.executable, "-m", "limssr.cli", "train", "--config", str(cfg), "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "eval" / "results.json").read_text())


def test_ddp_on_two_cpu_processes_matches_one_process(tmp_path):
    """Two gloo processes with half the batch each against one process with the whole batch (same
    seed and data order, no dropout, no triplet term, gradients averaged by DDP). What remains is
    BatchNorm: each process normalises its own half (SyncBatchNorm is GPU-only, and a process may see
    no step of a modality). Stated tolerance: |delta Spearman| <= 0.05 on the average over incomplete
    subsets and <= 0.12 per subset; |delta MSE| <= 5 % on the average and <= 20 % per subset."""
    one = _train(tmp_path, "one", [])
    two = _train(tmp_path, "two", ["train.strategy=ddp", "train.devices=2"])
    assert abs(one["average"]["spearman"] - two["average"]["spearman"]) <= 0.05
    assert abs(one["average"]["mse"] - two["average"]["mse"]) <= 0.05 * one["average"]["mse"]
    for subset, a in one["subsets"].items():
        b = two["subsets"][subset]
        assert abs(a["spearman"] - b["spearman"]) <= 0.12, subset
        assert abs(a["mse"] - b["mse"]) <= 0.20 * a["mse"], subset


def test_lean_mlp_gives_the_same_outputs_and_gradients():
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaMLP

    from limssr.kernels import use_lean_mlp

    torch.manual_seed(0)
    mlp = LlamaMLP(LlamaConfig(hidden_size=32, intermediate_size=64, hidden_act="silu"))
    x = torch.randn(3, 5, 32, requires_grad=True)
    ref = mlp(x)
    ref.square().sum().backward()
    ref_grads = [x.grad.clone()] + [p.grad.clone() for p in mlp.parameters()]
    x.grad = None
    mlp.zero_grad()
    assert use_lean_mlp(mlp) == 1
    out = mlp(x)
    out.square().sum().backward()
    torch.testing.assert_close(out, ref)
    for a, b in zip([x.grad] + [p.grad for p in mlp.parameters()], ref_grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lean_rms_norm_gives_the_same_outputs_and_gradients(dtype):
    from transformers.models.gemma.modeling_gemma import GemmaRMSNorm
    from transformers.models.qwen3.modeling_qwen3 import Qwen3RMSNorm

    from limssr.kernels import use_lean_rms_norm

    torch.manual_seed(0)
    norm = Qwen3RMSNorm(32, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(32))
    norm.to(dtype)
    x = (torch.randn(3, 5, 32) * 3).to(dtype).requires_grad_()
    up = torch.randn(3, 5, 32).to(dtype)
    results = []
    for lean in (False, True):
        if lean:
            assert use_lean_rms_norm(norm) == 1
        x.grad, norm.weight.grad = None, None
        out = norm(x)
        (out * up).sum().backward()
        results.append((out, x.grad, norm.weight.grad))
    (ref, ref_gx, ref_gw), (out, gx, gw) = results
    assert out.dtype == ref.dtype == dtype
    torch.testing.assert_close(out, ref, atol=0, rtol=0)  # the same operations forward
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(gx, ref_gx, **tol)
    torch.testing.assert_close(gw, ref_gw, **tol)
    assert use_lean_rms_norm(GemmaRMSNorm(32)) == 0  # another formula: left as it is


def test_compiled_decoder_layers_give_the_same_scores_gradients_and_weight_names(tiny_backbone_factory):
    from limssr.config import LoraSettings
    from limssr.kernels import compile_decoder_layers
    from limssr.methods.limssr import LIMSSR

    def make():  # no dropout: compiled code draws its random numbers differently
        torch.manual_seed(0)
        backbone, cfg = tiny_backbone_factory(dropout=0.0, lora=LoraSettings(dropout=0.0))
        return LIMSSR(cfg, backbone, DIMS).train()

    eager, compiled = make(), make()
    compiled.load_state_dict(eager.state_dict())
    assert compile_decoder_layers(compiled.backbone) > 0
    assert list(compiled.state_dict()) == list(eager.state_dict())  # checkpoints unchanged
    feats, valid = random_inputs(batch=4, steps=6), torch.ones(4, 6, dtype=torch.bool)
    mask = torch.tensor([[1, 0, 1], [1, 1, 1], [0, 1, 0], [1, 1, 0]], dtype=torch.bool)
    outs = []
    for model in (eager, compiled):
        out = model(feats, mask, valid)
        out.score.sum().backward()
        outs.append(out.score.detach())
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_cuda_graphed_layers_train_at_one_length_and_score_eagerly(tiny_backbone_factory):
    """Layers compiled with reduce-overhead train on batches padded to one length (one CUDA graph),
    with the same scores; they score eagerly, merged or not, since graph replays overwrite earlier
    outputs, which the cached prompt keys/values are."""
    from limssr.config import LoraSettings
    from limssr.kernels import compile_decoder_layers, has_cuda_graphed_layers
    from limssr.methods.limssr import LIMSSR

    def make():  # the whole sequence per sample, as GPU training runs it; no dropout
        torch.manual_seed(0)
        backbone, cfg = tiny_backbone_factory(dropout=0.0, share_prompt=False, lora=LoraSettings(dropout=0.0))
        return LIMSSR(cfg, backbone, DIMS).eval()

    eager, graphed = make(), make()
    graphed.load_state_dict(eager.state_dict())
    compile_decoder_layers(graphed.backbone, "reduce-overhead")
    assert has_cuda_graphed_layers(graphed.backbone) and not has_cuda_graphed_layers(eager.backbone)
    feats, valid = random_inputs(batch=4, steps=6), torch.ones(4, 6, dtype=torch.bool)
    mask = torch.tensor([[1, 0, 1], [1, 1, 1], [0, 1, 0], [1, 1, 0]], dtype=torch.bool)
    eager.train(), graphed.train()
    torch.testing.assert_close(graphed(feats, mask, valid).score, eager(feats, mask, valid).score,
                               atol=1e-5, rtol=1e-5)
    eager.eval(), graphed.eval()
    with torch.inference_mode():
        torch.testing.assert_close(graphed(feats, mask, valid).score, eager(feats, mask, valid).score)
        graphed.prepare_inference("32-true")
        eager.prepare_inference("32-true")
        assert has_cuda_graphed_layers(graphed.backbone)  # merging LoRA keeps the layers
        torch.testing.assert_close(graphed(feats, mask, valid).score, eager(feats, mask, valid).score)


@pytest.mark.parametrize("selected", [[[1, 1, 0, 1], [0, 1, 1, 0]], [[0, 0, 1, 0], [0, 0, 0, 0]],
                                      [[0, 0, 0, 0], [0, 0, 0, 0]]], ids=["many", "one", "none"])
def test_masked_time_projection_matches_the_gathered_one(selected):
    """The GPU form of a modality projection (every step computed, BatchNorm statistics over the
    selected steps) gives the gathered form's outputs, gradients and running statistics, including
    with one selected step (running statistics used) and none."""
    from limssr.layers import TimeProjection

    torch.manual_seed(0)
    gathered = TimeProjection(6, 8, dropout=0.0)
    masked = TimeProjection(6, 8, dropout=0.0)
    masked.load_state_dict(gathered.state_dict())
    for bn in (gathered.bn1, gathered.bn2, masked.bn1, masked.bn2):  # running statistics away from 0/1
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
    masked.load_state_dict(gathered.state_dict())
    rows = torch.tensor(selected, dtype=torch.bool)
    x = torch.randn(2, 4, 6)
    xs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
    outs = [gathered.train().sequence(xs[0], rows), masked.train().masked_sequence(xs[1], rows)]
    torch.testing.assert_close(outs[1], outs[0])
    weights = torch.randn_like(outs[0])
    if not rows.any():  # nothing selected: the gathered form has no graph, the masked one no gradient
        (outs[1] * weights).sum().backward()
        assert not outs[0].requires_grad and all(not p.grad.any() for p in [xs[1], *masked.parameters()])
    else:
        for out in outs:
            (out * weights).sum().backward()
        torch.testing.assert_close(xs[1].grad, xs[0].grad)
        for (name, p), q in zip(gathered.named_parameters(), masked.parameters()):
            torch.testing.assert_close(q.grad, p.grad, msg=name)
    for (name, b), c in zip(gathered.named_buffers(), masked.buffers()):
        torch.testing.assert_close(c, b, msg=name)
    with torch.no_grad():  # scoring: running statistics, every step on its own
        torch.testing.assert_close(masked.eval().masked_sequence(x, rows), gathered.eval().sequence(x, rows))


def test_cuda_graphed_training_step_reads_nothing_back_from_the_device(tiny_backbone_factory):
    """A training step of CUDA-graphed layers runs on the meta device, where reading any value
    (`.item()`, `bool(tensor)`, a data-dependent shape) fails: so on a GPU the host never waits for
    the device and can run ahead of it, which a step bound by kernel launches needs. And on the
    CPU, with padded time steps, it scores as the eager model."""
    from limssr.config import LoraSettings
    from limssr.methods.limssr import LIMSSR
    from limssr.subsets import all_subsets

    def make():
        torch.manual_seed(0)
        backbone, cfg = tiny_backbone_factory(dropout=0.0, lora=LoraSettings(dropout=0.0))
        return LIMSSR(cfg, backbone, DIMS).train()

    eager, graphed = make(), make()
    graphed.load_state_dict(eager.state_dict())
    for layer in graphed.backbone.modules():  # the flag compile_decoder_layers(..., "reduce-overhead") sets
        if type(layer).__name__.endswith("DecoderLayer"):
            layer.cuda_graphed = True
    subsets = torch.tensor(all_subsets(3), dtype=torch.bool)
    mask = subsets[torch.arange(8) % 7]
    feats, valid = random_inputs(batch=8, steps=6), torch.ones(8, 6, dtype=torch.bool)
    valid[1, 4:] = valid[5, 3:] = False
    torch.testing.assert_close(graphed(feats, mask, valid).score, eager(feats, mask, valid).score,
                               atol=1e-5, rtol=1e-5)

    meta = graphed.to("meta")
    out = meta({m: x.to("meta") for m, x in feats.items()}, mask.to("meta"), valid.to("meta"))
    meta.loss(out, torch.rand(8, device="meta"))["loss"].backward()
    assert out.score.shape == (8,) and meta.added_tokens.grad is not None


def test_compiled_layers_train_every_subset_without_recompiling(tiny_backbone_factory):
    """CUDA-graphed layers (compiled here on the CPU, where no graph is captured) compile once, with
    no graph break, and run every modality subset and a mixed batch with that one compilation: on a
    GPU, the CUDA graphs are recorded once and replayed from then on. LoRA dropout stays on."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    from limssr.kernels import compile_decoder_layers
    from limssr.methods.limssr import LIMSSR
    from limssr.subsets import all_subsets

    torch.manual_seed(0)
    backbone, cfg = tiny_backbone_factory(share_prompt=False)
    model = LIMSSR(cfg, backbone, DIMS).train()
    torch._dynamo.reset()
    counters.clear()
    compile_decoder_layers(model.backbone, "reduce-overhead")
    subsets = torch.tensor(all_subsets(3), dtype=torch.bool)
    feats, valid = random_inputs(batch=4, steps=6), torch.ones(4, 6, dtype=torch.bool)
    masks = [s.expand(4, -1) for s in subsets] + [subsets[[0, 3, 5, 6]]]
    graphs = []
    for mask in masks:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(feats, mask, valid)
        model.loss(out, torch.rand(4))["loss"].backward()
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[0] >= 1 and graphs == graphs[:1] * len(masks)
    assert not counters["graph_break"] and not counters["recompiles"]
    torch._dynamo.reset()
