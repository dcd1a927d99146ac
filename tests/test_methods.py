"""Every method and LIMSSR ablation trains and evaluates through `limssr benchmark`; the registry;
method-specific behaviour (LIMSSR ablations' structure; MCMoE's is in test_mcmoe.py)."""

import json

import pytest
import torch
from conftest import random_inputs, tiny_run_config

from limssr.benchmark import ABLATIONS, method_overrides, run_benchmark
from limssr.config import ConfigError
from limssr.methods import build_method, method_names
from limssr.training import build_model

BASELINES = ["mcmoe", "momke", "gcnet", "actionmae", "zero-fill", "late-fusion"]


def test_registry_names():
    assert method_names() == ["limssr"] + BASELINES
    with pytest.raises(ConfigError, match="config key 'method' must be one of"):
        tiny_run_config(["method=transformer"])
    with pytest.raises(ValueError, match="unknown benchmark method 'limssr-no-foo'"):
        method_overrides("limssr-no-foo")


def test_every_method_and_ablation_trains_and_evaluates_through_benchmark(tmp_path):
    """A few steps each (2 epochs x 4 batches), both regimes for one baseline and LIMSSR."""
    base = tiny_run_config(["data.synthetic.n_train=32", "data.synthetic.n_test=8", "train.epochs=2",
                            "train.selection=last"])
    methods = ["limssr", *ABLATIONS, "limssr-k2", *BASELINES]
    table = run_benchmark(base, methods, ["strict"], [1], tmp_path / "b", progress=False)
    run_benchmark(base, ["limssr", "zero-fill"], ["complete"], [1], tmp_path / "b", progress=False)
    rows = json.loads((tmp_path / "b" / "comparison.json").read_text())["rows"]
    assert {(r["method"], r["regime"]) for r in rows} == (
        {(m, "strict") for m in methods} | {("limssr", "complete"), ("zero-fill", "complete")})
    assert rows[0]["method"] == "limssr" and rows[0]["regime"] == "strict"
    # per-sample predictions name what each method has: LIMSSR its two paths, a baseline its score only
    header = {m: (tmp_path / "b" / m / "strict" / "seed-1" / "eval" / "predictions.csv").read_text().splitlines()[0]
              for m in ("limssr", "zero-fill")}
    assert header == {"limssr": "subset,name,shown,label,score,main,aux", "zero-fill": "subset,name,shown,label,score"}
    results = json.loads((tmp_path / "b" / "zero-fill" / "strict" / "seed-1" / "eval" / "results.json").read_text())
    assert results["method"] == "zero-fill"
    for r in rows:
        for subset in ("vaf", "va", "vf", "af", "v", "a", "f", "average"):
            assert -1.0 <= r[subset]["spearman"] <= 1.0 and r[subset]["mse"] >= 0
    for name in ("comparison.md", "comparison.csv", "comparison.png"):
        assert (tmp_path / "b" / name).stat().st_size > 0
    assert len(table["rows"]) == len(methods)
    # the complete regime trains LIMSSR the reference way (one subset per batch), baselines on complete data
    import yaml

    limssr_cfg = yaml.safe_load((tmp_path / "b" / "limssr" / "complete" / "seed-1" / "config.yaml").read_text())
    zero_cfg = yaml.safe_load((tmp_path / "b" / "zero-fill" / "complete" / "seed-1" / "config.yaml").read_text())
    assert limssr_cfg["train"]["missing"] == "per-batch" and zero_cfg["train"]["missing"] == "complete"
    # resuming does nothing more: every run is reused
    mtime = (tmp_path / "b" / "mcmoe" / "strict" / "seed-1" / "model.safetensors").stat().st_mtime
    run_benchmark(base, ["mcmoe"], ["strict"], [1], tmp_path / "b", progress=False)
    assert (tmp_path / "b" / "mcmoe" / "strict" / "seed-1" / "model.safetensors").stat().st_mtime == mtime


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_ignore_hidden_modalities(name):
    torch.manual_seed(0)
    model = build_method(_resolved(name)).eval()
    feats = random_inputs(batch=3, steps=6)
    mask = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 1]], dtype=torch.bool)
    valid = torch.ones(3, 6, dtype=torch.bool)
    with torch.no_grad():
        ref = model(feats, mask, valid).score
        poisoned = {m: x.clone() for m, x in feats.items()}
        for j, m in enumerate(model.modalities):
            poisoned[m][~mask[:, j]] = 1e3
        out = model(poisoned, mask, valid).score
    assert ref.shape == (3,) and ((ref >= 0) & (ref <= 1)).all()
    torch.testing.assert_close(out, ref)


def _resolved(name, extra=()):
    cfg = tiny_run_config([f"method={name}", *extra])
    from limssr import runs
    from limssr.data import load_data

    return runs.resolve(cfg, load_data(cfg))


def test_limssr_ablations_change_the_structure():
    from limssr.methods.limssr import LIMSSR

    full = build_model(_resolved("limssr"))
    no_pcmi = build_model(_resolved("limssr", ["model.pcmi=false"]))
    no_lmrf = build_model(_resolved("limssr", ["model.lmrf=false"]))
    no_p1 = build_model(_resolved("limssr", ["model.path1=false"]))
    assert isinstance(full, LIMSSR) and int(no_pcmi.prompt_len.max()) == 0 and int(full.prompt_len.min()) > 0
    feats, valid = random_inputs(batch=2, steps=5), torch.ones(2, 3, 5, dtype=torch.bool)
    mask = torch.tensor([[1, 0, 1], [0, 1, 1]], dtype=torch.bool)
    _, _, _, lay = full.assemble(feats, mask, valid)
    _, _, _, lay0 = no_lmrf.assemble(feats, mask, valid)
    assert lay.num_fusion == 4 and lay0.num_fusion == 0
    # without PCMI a missing span is zeros, not the placeholder
    emb, _, _, l1 = no_pcmi.assemble(feats, mask, valid)
    s = int(l1.span_start[0, 1])
    assert torch.count_nonzero(emb[0, s:s + 5]) == 0
    assert no_p1.path1 is None and not hasattr(no_p1, "mix")
    out = no_p1.eval()(feats, mask, valid)
    torch.testing.assert_close(out.score, out.aux)


def test_versus_limssr_lists_where_it_wins_and_loses():
    from limssr.benchmark import comparison_markdown, versus_limssr

    def row(method, regime, sp, mse, std=0.01):
        cells = {c: {"spearman": sp[c], "spearman_std": std, "mse": mse[c], "mse_std": 1.0}
                 for c in ("vaf", "v", "average")}
        return {"method": method, "regime": regime, "seeds": [1, 2, 3], **cells}

    table = {"rows": [row("limssr", "strict", {"vaf": 0.80, "v": 0.60, "average": 0.60}, {"vaf": 100, "v": 200, "average": 200}),
                      row("zero-fill", "complete", {"vaf": 0.70, "v": 0.605, "average": 0.61}, {"vaf": 120, "v": 150, "average": 150})]}
    (v,) = versus_limssr(table, ["vaf", "v"])
    assert v["method"] == "zero-fill" and v["regime"] == "complete"
    assert v["spearman"]["limssr_better"] == ["vaf"] and v["spearman"]["limssr_worse"] == ["v"]
    assert v["spearman"]["beyond_seed_std_better"] == ["vaf"] and v["spearman"]["beyond_seed_std_worse"] == []
    assert v["mse"]["limssr_better"] == ["vaf"] and v["mse"]["beyond_seed_std_worse"] == ["v"]
    assert abs(v["spearman"]["average_gap"] + 0.01) < 1e-9 and v["mse"]["average_gap"] == -50
    table["versus_limssr"] = [v]
    assert "| zero-fill | no | vaf | v | vaf | v | -0.010 | +50.0 |" in comparison_markdown(table, ["vaf", "v"])
