"""Configs: presets, files, overrides, and clear errors for unknown keys and wrong types."""

import pytest

from limssr.config import ConfigError, RunConfig, load_config, preset_names


def test_presets_load():
    assert {"demo", "synthetic-quick"} <= set(preset_names())
    cfg = load_config(preset="demo")
    assert cfg.model.backbone == "default" and cfg.train.missing == "strict"
    assert cfg.loss.alpha_mse == 10 and cfg.model.lora.r == 16 and cfg.model.lora.alpha == 32


def test_defaults_follow_the_reference():
    cfg = RunConfig()
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.train.batch_size, cfg.train.grad_clip) == (2e-4, 1e-4, 8, 1.0)
    assert cfg.model.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert (cfg.model.num_fusion_tokens, cfg.model.attention_heads, cfg.loss.margin) == (4, 4, 1.0)
    assert cfg.train.missing == "strict"


def test_overrides_and_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epochs: 3\nmodel:\n  lora: {r: 4}\n")
    cfg = load_config(path=f, overrides=["train.lr=1e-3", "model.lora.enabled=false", "seed=7"])
    assert cfg.train.epochs == 3 and cfg.model.lora.r == 4 and cfg.train.lr == 1e-3
    assert cfg.model.lora.enabled is False and cfg.seed == 7


@pytest.mark.parametrize("override,message", [
    ("train.lrate=1", "unknown config key 'train.lrate'"),
    ("train.epochs=many", "'train.epochs' must be an integer"),
    ("model.lora.enabled=3", "'model.lora.enabled' must be true or false"),
    ("train.missing=sometimes", "'train.missing' must be one of"),
    ("train.precision=fp8", "'train.precision' must be one of"),
    ("model.modalities=[video,vision]", "distinct letters"),
    ("data.clip_num=0", "'data.clip_num' must be at least 1"),
    ("nonsense", "key=value"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(preset="synthetic-quick", overrides=[override])


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'nope'; available presets"):
        load_config(preset="nope")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(path=tmp_path / "none.yaml")


def test_the_names_config_checks_are_the_ones_the_layers_define():
    """config lists method, protocol and layout names so that checking a config imports no model."""
    from limssr.config import CHOICES, METHODS, MISSINGNESS_PROTOCOLS
    from limssr.data.released import READERS
    from limssr.masking import build_protocol
    from limssr.methods import method_names

    assert tuple(method_names()) == METHODS
    assert set(CHOICES["data.source"]) == {"synthetic", "auto"} | set(READERS)
    import numpy as np

    for name in MISSINGNESS_PROTOCOLS:  # every listed protocol builds
        build_protocol(name, np.ones((4, 3), dtype=bool), 0, [str(i) for i in range(4)], ["video", "audio", "flow"],
                       0.3, 0.0, "va")
