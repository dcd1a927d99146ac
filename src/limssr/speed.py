"""`limssr speed`: how fast limssr trains and scores, against a reference-equivalent configuration.

Both configurations run the same LIMSSR model, on the same machine, at the same shapes, each in its
own process (so peak memory is its own):

* reference: what the public code does: fp32, the full vocabulary logits computed (and discarded)
  at every forward, the whole embedding matrix trainable, LoRA dropout from `nn.Dropout`, the whole
  prompt run for every sample, features re-read from their files for every sample, and at inference
  the LoRA adapters left unmerged;
* fast: limssr's defaults: no vocabulary logits, only LoRA and the added tokens trainable, bf16
  autocast where the hardware computes bf16 (frozen weights stored in bf16), faster LoRA dropout,
  each distinct prompt run once per batch (on the CPU), features in memory, fused AdamW on a GPU;
  at inference LoRA merged into the weights and the prompt prefixes' keys/values computed once and
  reused.

A training step is forward + backward + gradient clipping + AdamW, with one modality subset per
batch as the reference trains. Times are medians over the timed steps after warm-up. The loader
benchmark compares re-reading the three pickled dict files per sample (the reference's Fis-V/RG
loader) with limssr's read-once dataset.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode
from transformers.integrations import sdpa_attention

from limssr.config import load_config
from limssr.data.dataset import AQADataset
from limssr.data.released import SPECS
from limssr.data.safe_pickle import read_feature_dict
from limssr.data.samples import Sample
from limssr.precision import autocast_for, cpu_has_bf16, resolve_precision, scoring_precision
from limssr.subsets import all_subsets
from limssr.training import adamw, apply_training_speedups, build_model

# dense bf16 peak of known accelerators, for model FLOPs utilisation (TFLOP/s)
PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}


# ----------------------------------------------------------------------------- one configuration


def _config(spec: dict):
    extra = [] if spec["kind"] == "reference" else list(spec.get("fast_set", []))
    cfg = load_config(preset=spec["preset"],
                      overrides=[f"model.backbone={spec['backbone']}", "data.path=/unused", *extra])
    dims = spec["dims"]
    model = replace(cfg.model, modalities=list(dims), dims=dict(dims))
    if spec["kind"] == "reference":
        model = replace(model, train_embeddings=True, share_prompt=False, attention="sdpa",
                        lora=replace(model.lora, fast_dropout=False))
        train = replace(cfg.train, precision="fp32", bf16_weights=False)
    else:
        train = replace(cfg.train, precision=spec["precision"])
    return replace(cfg, model=model, train=train)


def _features(spec: dict, n: int, seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{m: rng.standard_normal((spec["clips"], d), dtype=np.float32) for m, d in spec["dims"].items()}
            for _ in range(n)]


class _FileBatches:
    """The reference's data path: every sample's features re-read from one `.npy` per modality
    (FS1000 layout: the video stored (T, 15, D) and averaged over the 15 tokens on every read)."""

    def __init__(self, samples: list[dict], root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        for i, feats in enumerate(samples):
            for m, arr in feats.items():
                stored = np.repeat(arr[:, None, :], 15, axis=1) if m == "video" else arr
                np.save(root / f"{m}_{i}.npy", stored)
        self.names = list(samples[0])

    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        out = {}
        for m in self.names:
            arrs = []
            for i in indices:
                arr = np.load(self.root / f"{m}_{i}.npy", allow_pickle=False)
                arrs.append(arr.mean(axis=1) if m == "video" else arr)
            out[m] = torch.from_numpy(np.stack(arrs))
        return out


def _peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # kB on Linux


def run_one(spec: dict) -> dict:
    """Measure one configuration (called in a fresh process by `compare`)."""
    torch.manual_seed(0)
    cfg = _config(spec)
    device = torch.device(spec["device"])
    precision = resolve_precision(cfg.train.precision, cfg.method)
    model = build_model(cfg).to(device)
    reference = spec["kind"] == "reference"
    kept = []
    if reference:  # the reference computes the tied LM head over every position and throws it away
        embedding = model.backbone.get_input_embeddings()
        model.backbone.register_forward_hook(lambda mod, args, out: kept.append(out.last_hidden_state @ embedding.weight.t()))
    apply_training_speedups(model, cfg.train, precision)  # the reference's config asks for none
    bsz, steps, warm = spec["batch"], spec["steps"], spec["warmup"]
    samples = _features(spec, bsz * (steps + warm), seed=1)
    subsets = torch.tensor(all_subsets(len(spec["dims"])), dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    masks = [subsets[int(torch.randint(len(subsets), (), generator=g))].expand(bsz, -1) for _ in range(steps + warm)]
    labels = torch.rand(steps + warm, bsz, generator=g)
    time_mask = torch.ones(bsz, spec["clips"], dtype=torch.bool, device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay) if reference
           else adamw(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay))

    with tempfile.TemporaryDirectory() as tmp:
        files = _FileBatches(samples, Path(tmp)) if reference else None
        in_memory = {m: torch.from_numpy(np.stack([s[m] for s in samples])) for m in spec["dims"]}

        def batch(i: int) -> dict[str, torch.Tensor]:
            idx = list(range(i * bsz, (i + 1) * bsz))
            feats = files.batch(idx) if reference else {m: x[idx[0]:idx[-1] + 1] for m, x in in_memory.items()}
            return {m: torch.where(masks[i][:, j, None, None], x, 0.0).to(device) for j, (m, x) in enumerate(feats.items())}

        def train_step(i: int) -> None:
            feats = batch(i)
            with autocast_for(device, precision):
                out = model(feats, masks[i].to(device), time_mask)
            loss = model.loss(out, labels[i].to(device))["loss"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            kept.clear()

        model.train()
        times = []
        for i in range(steps + warm):
            _sync(device)
            t0 = time.perf_counter()
            train_step(i)
            _sync(device)
            if i >= warm:
                times.append(time.perf_counter() - t0)
        train_peak = _peak_memory_gb(device)
        train_flops = _count_flops(lambda: train_step(0))
        if spec.get("profile"):
            _profile(lambda: train_step(0), device, Path(spec["profile"]) / f"{spec['kind']}-train-profile.txt")

        score_precision = scoring_precision(cfg.train.precision, cfg.method, cfg.eval.quantize)
        if not reference:
            model.prepare_inference(score_precision, cfg.eval.quantize, cfg.eval.compile)
        model.eval()
        # scoring batches: the reference's test loader uses the training batch; limssr's eval.batch_size
        infer_bsz = bsz if reference else cfg.eval.batch_size
        infer_samples = _features(spec, infer_bsz, seed=2)
        files = _FileBatches(infer_samples, Path(tmp) / "infer") if reference else None
        stacked = {m: torch.from_numpy(np.stack([s[m] for s in infer_samples])) for m in spec["dims"]}
        infer_masks = [subsets[int(torch.randint(len(subsets), (), generator=g))].expand(infer_bsz, -1)
                       for _ in range(spec["infer_batches"] + 1)]
        infer_valid = torch.ones(infer_bsz, spec["clips"], dtype=torch.bool, device=device)
        infer_times = []

        def score(feats: dict[str, torch.Tensor], mask: torch.Tensor, valid: torch.Tensor) -> float:
            """Seconds to score one batch, from features in memory (or files) to scores on the host."""
            _sync(device)
            t0 = time.perf_counter()
            feats = {m: torch.where(mask[:, j, None, None], x, 0.0).to(device) for j, (m, x) in enumerate(feats.items())}
            with autocast_for(device, score_precision):
                model(feats, mask.to(device), valid).score.float().cpu()
            kept.clear()
            _sync(device)
            return time.perf_counter() - t0

        with torch.inference_mode():
            for i in range(spec["infer_batches"] + 1):
                t = score(files.batch(list(range(infer_bsz))) if reference else stacked, infer_masks[i], infer_valid)
                if i:
                    infer_times.append(t)
                else:
                    first_batch = t  # includes compiling, with eval.compile
            # latency: one programme at a time (batch 1), each under a random subset, after one untimed
            one_valid = infer_valid[:1]
            latency = []
            for i in range(spec.get("latency_programmes", 20) + 1):
                mask = subsets[int(torch.randint(len(subsets), (), generator=g))][None]
                k = i % infer_bsz
                feats = files.batch([k]) if reference else {m: x[k:k + 1] for m, x in stacked.items()}
                t = score(feats, mask, one_valid)
                if i:
                    latency.append(t)
            if spec.get("profile"):
                feats = stacked

                def score_batch():
                    with autocast_for(device, score_precision):
                        model(feats, infer_masks[-1].to(device), infer_valid).score.float().cpu()
                        kept.clear()

                _profile(score_batch, device, Path(spec["profile"]) / f"{spec['kind']}-inference-profile.txt",
                         what=f"scoring batches of {infer_bsz}")

    step = statistics.median(times)
    infer = statistics.median(infer_times)
    trainable = sum(p.numel() for p in params)
    return {"kind": spec["kind"], "precision": precision, "device": str(device),
            "train_step_s": step, "train_step_s_all": times, "train_samples_per_s": bsz / step,
            "peak_memory_gb": train_peak, "inference_batch": infer_bsz, "inference_batch_s": infer,
            "inference_samples_per_s": infer_bsz / infer, "inference_first_batch_s": first_batch,
            "scoring_precision": score_precision, "quantize": cfg.eval.quantize, "compile": cfg.eval.compile,
            "latency_s_all": latency, "latency_median_s": statistics.median(latency),
            "latency_p95_s": float(np.percentile(latency, 95)),
            "trainable_parameters": trainable, "train_step_tflop": train_flops / 1e12,
            "achieved_tflops": train_flops / step / 1e12}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _profile(fn, device: torch.device, path: Path, steps: int = 3, what: str = "training steps") -> None:
    """torch.profiler over `steps` calls of `fn`: operator tables by host time and by device time."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            fn()
        _sync(device)
    table = prof.key_averages()
    text = f"{steps} {what}\n\nby self host time\n{table.table(sort_by='self_cpu_time_total', row_limit=40)}"
    if device.type == "cuda":
        text += f"\n\nby self device time\n{table.table(sort_by='self_device_time_total', row_limit=40)}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _count_flops(fn) -> float:
    """FLOPs of one call of `fn`. Some torch versions' counter rejects grouped-query SDPA, so keys and
    values are repeated while counting (the same FLOPs are counted)."""
    counter = FlopCounterMode(display=False)
    grouped = sdpa_attention.use_gqa_in_sdpa
    sdpa_attention.use_gqa_in_sdpa = lambda *args, **kwargs: False
    try:
        with counter:
            fn()
    finally:
        sdpa_attention.use_gqa_in_sdpa = grouped
    return float(counter.get_total_flops())


# ----------------------------------------------------------------------------- the loader


def loader_benchmark(n_videos: int, samples: int = 3, seed: int = 0) -> dict:
    """Per-sample cost of re-reading the three pickled dict files (the reference's Fis-V/RG loader)
    against limssr's dataset after its one read."""
    rng = np.random.default_rng(seed)
    dims = {"video": 1024, "audio": 768, "flow": 1024}
    names = [str(i + 1) for i in range(n_videos)]
    lengths = rng.integers(124, 160, size=n_videos)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for m, d in dims.items():
            paths[m] = Path(tmp) / f"FISV_{m}.npy"
            np.save(paths[m], {n: rng.standard_normal((t, d), dtype=np.float32) for n, t in zip(names, lengths)},
                    allow_pickle=True)
        size = sum(p.stat().st_size for p in paths.values())
        per_sample = []
        for name in names[:samples]:
            t0 = time.perf_counter()
            feats = {m: read_feature_dict(p)[name] for m, p in paths.items()}  # as the reference, per sample
            per_sample.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        tables = {m: read_feature_dict(p) for m, p in paths.items()}
        first_load = time.perf_counter() - t0
    data = [Sample(n, {m: tables[m][n] for m in dims}, 1.0) for n in names]
    dataset = AQADataset(data, list(dims), dims, 45.0, clip_num=124, train=True)
    t0 = time.perf_counter()
    for i in range(len(dataset)):
        dataset[i]
    ours = (time.perf_counter() - t0) / len(dataset)
    ref = statistics.median(per_sample)
    del feats
    return {"videos": n_videos, "dict_files_mb": size / 1e6, "reference_per_sample_s": ref,
            "limssr_first_load_s": first_load, "limssr_per_sample_s": ours, "per_sample_speedup": ref / ours}


# ----------------------------------------------------------------------------- the comparison


def compare(backbone: str = "default", preset: str = "fs1000-tes", batch: int | None = None, clips: int | None = None,
            steps: int = 3, warmup: int = 1, infer_batches: int = 3, precision: str = "auto",
            device: str | None = None, kinds: tuple[str, ...] = ("reference", "fast"), loader_videos: int = 500,
            peak_tflops: float | None = None, rounds: int = 2, fast_set: tuple[str, ...] = (),
            profile: str | None = None, latency_programmes: int = 20) -> dict:
    """Run each configuration in its own process (`rounds` times, alternating) and the loader
    benchmark; returns the report."""
    cfg = load_config(preset=preset, overrides=["data.path=/unused"])
    source = cfg.data.source
    dims = ({"video": 768, "audio": 768, "flow": 1024} if source in ("fs1000", "synthetic")
            else {"video": 1024, "audio": 768, "flow": 1024})
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    spec = {"backbone": backbone, "preset": preset, "batch": batch or cfg.train.batch_size,
            "clips": clips or cfg.data.clip_num, "steps": steps, "warmup": warmup, "infer_batches": infer_batches,
            "precision": precision, "device": device, "dims": dims, "fast_set": list(fast_set),
            "profile": str(Path(profile).resolve()) if profile else None, "latency_programmes": latency_programmes}
    rounds_out: dict[str, list[dict]] = {k: [] for k in kinds}
    for _ in range(rounds):  # alternate the configurations, so a drifting machine speed biases neither
        for kind in kinds:
            proc = subprocess.run([sys.executable, "-m", "limssr.speed", json.dumps({**spec, "kind": kind})],
                                  capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            if proc.returncode != 0:
                raise RuntimeError(f"bench of the {kind} configuration failed:\n{proc.stderr[-3000:]}")
            rounds_out[kind].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    results = {kind: _combine(runs) for kind, runs in rounds_out.items()}
    report = {"machine": _machine(device), "spec": spec, "configs": results}
    if "reference" in results and "fast" in results:
        ref, fast = results["reference"], results["fast"]
        report["ratios"] = {
            "train_step_speedup": ref["train_step_s"] / fast["train_step_s"],
            "peak_memory_ratio": fast["peak_memory_gb"] / ref["peak_memory_gb"],
            "inference_speedup": fast["inference_samples_per_s"] / ref["inference_samples_per_s"],
            "latency_speedup": ref["latency_median_s"] / fast["latency_median_s"],
        }
    peak = peak_tflops or _peak_tflops(device)
    if peak:
        for r in results.values():
            r["mfu"] = r["achieved_tflops"] / peak
        report["peak_tflops"] = peak
    if loader_videos:
        report["loader"] = loader_benchmark(loader_videos)
    _ = SPECS  # dims above follow the released datasets (FS1000: TimeSformer 768; Fis-V/RG: VST 1024)
    return report


def _combine(rounds: list[dict]) -> dict:
    """Medians over every timed step and batch of every round; the largest peak memory."""
    out = dict(rounds[0])
    steps = [t for r in rounds for t in r["train_step_s_all"]]
    infer = [r["inference_batch_s"] for r in rounds]
    out.update(train_step_s_all=steps, train_step_s=statistics.median(steps),
               peak_memory_gb=max(r["peak_memory_gb"] for r in rounds), inference_batch_s=statistics.median(infer),
               rounds=len(rounds))
    out["train_samples_per_s"] = rounds[0]["train_samples_per_s"] * rounds[0]["train_step_s"] / out["train_step_s"]
    out["inference_samples_per_s"] = out["inference_batch"] / out["inference_batch_s"]
    out["achieved_tflops"] = out["train_step_tflop"] / out["train_step_s"]
    latency = [t for r in rounds for t in r["latency_s_all"]]
    out.update(latency_s_all=latency, latency_median_s=statistics.median(latency),
               latency_p95_s=float(np.percentile(latency, 95)),
               inference_first_batch_s=statistics.median(r["inference_first_batch_s"] for r in rounds))
    return out


def _peak_tflops(device: str) -> float | None:
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def _machine(device: str) -> dict:
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    else:

        info["cpu_bf16"] = cpu_has_bf16()
        info["cpus"] = os.cpu_count()
    return info


def print_report(report: dict) -> None:
    spec, cfgs = report["spec"], report["configs"]
    table = Table(title=f"limssr speed: backbone {spec['backbone']}, batch {spec['batch']}, T={spec['clips']}, "
                        f"{report['machine']['device']}")
    table.add_column("")
    for kind in cfgs:
        table.add_column(f"{kind} ({cfgs[kind]['precision']})", justify="right")
    if "ratios" in report:
        table.add_column("fast / reference", justify="right")
    rows = [("train step (s, median)", "train_step_s", "{:.3f}", "train_step_speedup", "{:.2f}x faster"),
            ("train samples/s", "train_samples_per_s", "{:.2f}", None, None),
            ("peak memory (GB)", "peak_memory_gb", "{:.2f}", "peak_memory_ratio", "{:.2f}x"),
            ("inference samples/s", "inference_samples_per_s", "{:.2f}", "inference_speedup", "{:.2f}x"),
            ("inference batch", "inference_batch", "{}", None, None),
            ("first scoring batch (s; compiling, if any)", "inference_first_batch_s", "{:.2f}", None, None),
            ("latency per programme, batch 1 (s, median)", "latency_median_s", "{:.3f}", "latency_speedup", "{:.2f}x"),
            ("latency per programme, batch 1 (s, p95)", "latency_p95_s", "{:.3f}", None, None),
            ("train TFLOP per step", "train_step_tflop", "{:.3f}", None, None),
            ("achieved TFLOP/s", "achieved_tflops", "{:.3f}", None, None),
            ("trainable parameters", "trainable_parameters", "{:,}", None, None)]
    if any("mfu" in c for c in cfgs.values()):
        rows.append(("model FLOPs utilisation", "mfu", "{:.1%}", None, None))
    for label, key, fmt, ratio, rfmt in rows:
        cells = [fmt.format(cfgs[k][key]) if key in cfgs[k] else "-" for k in cfgs]
        if "ratios" in report:
            cells.append(rfmt.format(report["ratios"][ratio]) if ratio else "")
        table.add_row(label, *cells)
    console = Console()
    console.print(table)
    if "loader" in report:
        ld = report["loader"]
        console.print(f"loader ({ld['videos']} videos, {ld['dict_files_mb']:.0f} MB of pickled dicts): re-reading per "
                      f"sample {ld['reference_per_sample_s'] * 1e3:.1f} ms; limssr after one read "
                      f"({ld['limssr_first_load_s']:.2f} s) {ld['limssr_per_sample_s'] * 1e6:.1f} us per sample: "
                      f"{ld['per_sample_speedup']:.0f}x lower")


if __name__ == "__main__":
    print(json.dumps(run_one(json.loads(sys.argv[1]))))
