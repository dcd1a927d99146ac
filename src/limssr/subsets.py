"""Modality subsets: enumeration in the paper's order and naming by modality initials."""

from __future__ import annotations

from itertools import combinations

Mask = tuple[bool, ...]


def all_subsets(num_modalities: int) -> list[Mask]:
    """Every non-empty subset, largest first, then in the order of the modalities.

    For (video, audio, flow) this gives vaf, va, vf, af, v, a, f: the columns of the paper's tables.
    """
    out: list[Mask] = []
    for size in range(num_modalities, 0, -1):
        for chosen in combinations(range(num_modalities), size):
            out.append(tuple(i in chosen for i in range(num_modalities)))
    return out


def incomplete_subsets(num_modalities: int) -> list[Mask]:
    """Every non-empty subset except the complete one (the 6 of the 'Average' for three modalities)."""
    return [m for m in all_subsets(num_modalities) if not all(m)]


def subset_name(mask: Mask | list[bool], modalities: list[str]) -> str:
    """Name a subset by the initials of its modalities, in order: (1, 0, 1) -> 'vf'."""
    return "".join(name[0] for name, present in zip(modalities, mask) if present)


def parse_subset(name: str, modalities: list[str]) -> Mask:
    """Inverse of `subset_name`; raises ValueError naming the unknown letter."""
    initials = [m[0] for m in modalities]
    for ch in name:
        if ch not in initials:
            raise ValueError(f"subset '{name}': '{ch}' is not the initial of any modality {modalities}")
    if not name:
        raise ValueError("an empty subset names no modality")
    return tuple(i in name for i in initials)
