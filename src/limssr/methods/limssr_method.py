"""LIMSSR itself in the registry (the model is `limssr.model`, readable on its own)."""

from __future__ import annotations

from limssr.methods import register


@register("limssr", "LIMSSR: an LLM (LoRA) reads a prompt, modality spans with <missing> placeholders and fusion "
                    "tokens; two mask-aware heads")
def build(cfg, backbone=None):
    from limssr.backbone import load_backbone
    from limssr.model import LIMSSR
    from limssr.sequence import prompt_text
    from limssr.subsets import all_subsets

    if backbone is None:
        names = [cfg.model.prompt_names.get(m, m) for m in cfg.model.modalities]
        texts = [prompt_text(s, names) for s in all_subsets(len(names))]
        backbone = load_backbone(cfg.model.backbone, cfg.model.lora, cfg.model.train_embeddings,
                                 prompt_texts=texts, seed=cfg.seed, trust_remote_code=cfg.model.trust_remote_code,
                                 attention=cfg.model.attention, init=cfg.model.backbone_init)
    return LIMSSR(cfg.model, backbone, cfg.model.dims, cfg.loss)
