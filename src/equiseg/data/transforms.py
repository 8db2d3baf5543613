"""Augmentation pipelines by name, on top of the one preprocessing (`equiseg.data.preprocessing`).

Preprocessing: the longest side resized to `image_size` (masks resized as float images with the
image's interpolation, then >= 0.5, so they stay on their image), centred on a `pad_size` square
canvas with black (mask 0), ImageNet-normalised, to tensors.

`minimal` is preprocessing only. `full` adds, with the seed's albumentations 1.x settings as plain
arguments: ColorJitter and RandomBrightnessContrast on the resized image *before* padding (so the
black padding is not jittered), then SafeRotate on the square canvas. SafeRotate shrinks the frame
so the rotated corners stay in view, and on a non-square frame albumentations 2.x shrinks x and y
by different factors; on the square canvas they are equal, so a disc stays a disc. Its border is
`reflect_101` (the seed's) or `constant` (black, mask 0), for image and mask alike; the mask is
rotated as a float image (bilinear) and thresholded at 0.5 (>= 0.5 is foreground).

The resize is deterministic and done by `resize` (cacheable: the dataset decodes and resizes once);
`__call__` augments per epoch and repeats the resize only on images not yet resized.

Randomness: albumentations 2.x keeps its own generator, deaf to torch/numpy seeds and copied
verbatim into every DataLoader worker. `SegmentationTransform.reseed` re-seeds it per sample;
the dataset draws that seed from torch's generator, which DataLoader seeds per worker and epoch.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # else import blocks on an online check

import albumentations as A
import cv2
import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from equiseg.data.augment_settings import AUGMENT_NAMES, BORDERS, FullAugmentConfig
from equiseg.data.preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    normalise,
    pad_to_canvas,
    resize_image,
    resize_mask,
)
from equiseg.errors import check_choice

# by the names of `BORDERS`, which the schema checks without loading OpenCV's constants
_BORDER_MODES = {"reflect_101": cv2.BORDER_REFLECT_101, "constant": cv2.BORDER_CONSTANT}


def _photometric(name: str, full: dict) -> list[A.BasicTransform]:
    if name == "minimal":
        return []
    return [
        A.ColorJitter(brightness=full["jitter_brightness"], contrast=full["jitter_contrast"],
                      saturation=full["jitter_saturation"], hue=full["jitter_hue"], p=full["p"]),
        A.RandomBrightnessContrast(brightness_limit=full["brightness_limit"],
                                   contrast_limit=full["contrast_limit"], p=full["p"]),
    ]


def _geometric(name: str, full: dict) -> list[A.BasicTransform]:
    if name == "minimal":
        return []
    check_choice("rotate_border", full["rotate_border"], BORDERS)
    border = _BORDER_MODES[full["rotate_border"]]
    return [A.SafeRotate(limit=full["rotate_limit"], border_mode=border, fill=0, fill_mask=0,
                         interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_LINEAR,
                         p=full["p"])]


@dataclass
class SegmentationTransform:
    """Image (H, W, 3) uint8 RGB + mask (H, W) -> float32 tensors (3, P, P) and (1, P, P).

    `full` holds the `full` pipeline's settings (the keyword arguments of `build_transform`)."""

    name: str
    image_size: int
    pad_size: int
    full: dict = field(default_factory=dict)
    _photometric: A.Compose = field(init=False, repr=False)
    _geometric: A.Compose = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_choice("augment", self.name, AUGMENT_NAMES)
        self._photometric = A.Compose(_photometric(self.name, self.full), seed=0)
        self._geometric = A.Compose(_geometric(self.name, self.full), seed=0)

    def resize(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The deterministic first step (longest side to image_size): safe to cache."""
        return resize_image(image, self.image_size), resize_mask(mask, self.image_size)

    def reseed(self, seed: int) -> None:
        """Seed the random augmentations of the next call(s)."""
        photometric, geometric = np.random.SeedSequence(seed).generate_state(2)
        self._photometric.set_random_seed(int(photometric))
        self._geometric.set_random_seed(int(geometric))

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[Tensor, Tensor]:
        image, mask = self.resize(image, mask)  # a no-op on images `resize` already handled
        if self._photometric.transforms:
            image = self._photometric(image=image)["image"]
        image = pad_to_canvas(image, self.pad_size)
        mask = pad_to_canvas(mask.astype(np.float32), self.pad_size)
        if self._geometric.transforms:
            out = self._geometric(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        image_t = torch.from_numpy(rearrange(normalise(image), "h w c -> c h w").copy())
        mask_t = torch.from_numpy(np.ascontiguousarray(mask >= 0.5)).float().unsqueeze(0)
        return image_t, mask_t


def build_transform(name: str, image_size: int, pad_size: int,
                    **full: Any) -> SegmentationTransform:
    """The `minimal` or `full` pipeline for images resized to `image_size`, padded to `pad_size`.

    The keywords set `full` (ignored by `minimal`), by the names of `FullAugmentConfig`, whose
    defaults (the seed's albumentations 1.x ones) fill in the rest: ColorJitter(jitter_*),
    RandomBrightnessContrast(brightness_limit, contrast_limit) and SafeRotate(rotate_limit:
    +-degrees or a (low, high) range; rotate_border: 'reflect_101' or 'constant'), each with
    probability `p`.
    """
    defaults = dataclasses.asdict(FullAugmentConfig())
    unknown = sorted(set(full) - set(defaults))
    if unknown:
        raise TypeError(f"build_transform: unknown setting(s) {', '.join(unknown)}")
    return SegmentationTransform(name, image_size, pad_size, {**defaults, **full})


def denormalise(image: Tensor) -> Tensor:
    """Undo the ImageNet normalisation of a (..., 3, H, W) tensor, back to 0..1 RGB."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return image * std + mean


__all__ = ["SegmentationTransform", "build_transform", "denormalise"]
