"""Augmentation pipelines by name, the same preprocessing for every model.

Preprocessing (the seed's, generalised): resize so that the *longest* side is `image_size`
(aspect kept: a 90-degree rotation of a photograph is then still a plausible photograph, while a
plain square resize would stretch butterflies differently in each orientation), pad centred to
`pad_size` x `pad_size` with black, ImageNet-normalise, to a tensor. Masks get the same geometry
with nearest-neighbour interpolation and 0 padding.

`minimal` is preprocessing only; `full` adds ColorJitter, RandomBrightnessContrast and
SafeRotate(limit=90) before it. Augmentation runs after the (cacheable) resize: the resize is the
first preprocessing step and is idempotent, so the order matches the seed up to interpolation.

Randomness: albumentations 2.x keeps its own generator, deaf to torch/numpy seeds and copied
verbatim into every DataLoader worker. `SegmentationTransform.reseed` re-seeds it per sample;
the dataset draws that seed from torch's generator, which DataLoader seeds per worker and epoch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # else import blocks on an online check

import albumentations as A
import cv2
import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from equiseg.config import AUGMENT_NAMES, check_choice

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _augmentations(name: str) -> list[A.BasicTransform]:
    if name == "minimal":
        return []
    return [
        A.ColorJitter(),
        A.RandomBrightnessContrast(),
        # constant black border; mask border 0; nearest for the mask keeps it binary
        A.SafeRotate(limit=90, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0,
                     mask_interpolation=cv2.INTER_NEAREST),
    ]


def _resize(image_size: int) -> A.LongestMaxSize:
    return A.LongestMaxSize(max_size=image_size, interpolation=cv2.INTER_AREA,
                            mask_interpolation=cv2.INTER_NEAREST)


@dataclass
class SegmentationTransform:
    """Image (H, W, 3) uint8 RGB + mask (H, W) -> float32 tensors (3, P, P) and (1, P, P)."""

    name: str
    image_size: int
    pad_size: int
    _resize: A.Compose = field(init=False, repr=False)
    _pipeline: A.Compose = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_choice("augment", self.name, AUGMENT_NAMES)
        self._resize = A.Compose([_resize(self.image_size)])
        self._pipeline = A.Compose([
            *_augmentations(self.name),
            _resize(self.image_size),  # a no-op on images that `resize` already handled
            A.PadIfNeeded(min_height=self.pad_size, min_width=self.pad_size, position="center",
                          border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
            A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD, max_pixel_value=255.0),
        ], seed=0)

    def resize(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The deterministic first step (longest side to image_size): safe to cache."""
        out = self._resize(image=image, mask=mask.astype(np.uint8))
        return out["image"], out["mask"]

    def reseed(self, seed: int) -> None:
        """Seed the random augmentations of the next call(s)."""
        self._pipeline.set_random_seed(seed)

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[Tensor, Tensor]:
        out = self._pipeline(image=image, mask=mask.astype(np.uint8))
        image_t = torch.from_numpy(rearrange(out["image"], "h w c -> c h w").copy())
        mask_t = torch.from_numpy(out["mask"] > 0).float().unsqueeze(0)
        return image_t.float(), mask_t


def build_transform(name: str, image_size: int, pad_size: int) -> SegmentationTransform:
    """The `minimal` or `full` pipeline for images resized to `image_size`, padded to `pad_size`."""
    return SegmentationTransform(name, image_size, pad_size)


def denormalise(image: Tensor) -> Tensor:
    """Undo the ImageNet normalisation of a (..., 3, H, W) tensor, back to 0..1 RGB."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return image * std + mean
