"""The augmentation's names and settings, apart from the pipelines that apply them.

Plain Python, no torch and no albumentations: the parameter schema checks params.yaml's
`augments` and `full_augment` against them before any stage runs; `transforms` builds the
pipelines from them.
"""

from __future__ import annotations

from dataclasses import dataclass

AUGMENT_NAMES = ("minimal", "full")
BORDERS = ("reflect_101", "constant")  # SafeRotate's border: the seed's, or black (mask 0)


@dataclass(frozen=True)
class FullAugmentConfig:
    """The `full` augmentation, with the seed's albumentations 1.x defaults: ColorJitter(0.2, 0.2,
    0.2, 0.2), RandomBrightnessContrast(0.2, 0.2) and SafeRotate(90, reflect-101 border), each
    applied with probability `p`. Rotation happens on the square canvas, so x and y scale alike."""

    jitter_brightness: float = 0.2
    jitter_contrast: float = 0.2
    jitter_saturation: float = 0.2
    jitter_hue: float = 0.2
    brightness_limit: float = 0.2
    contrast_limit: float = 0.2
    rotate_limit: float = 90.0
    rotate_border: str = "reflect_101"
    p: float = 0.5


__all__ = ["AUGMENT_NAMES", "BORDERS", "FullAugmentConfig"]
