"""How a trained run is named in files: models/, metrics/ and plots/ all key a run by this name."""

from __future__ import annotations


def run_name(model: str, augment: str, seed: int | None = None) -> str:
    """`unet-minimal` for a run over all its seeds, `unet-minimal-seed0` for one replicate."""
    return f"{model}-{augment}" if seed is None else f"{model}-{augment}-seed{seed}"
