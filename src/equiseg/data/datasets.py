"""Image/mask pairs of the split manifest as a torch Dataset.

Images are decoded with OpenCV, masks with `read_leeds_mask` (palette indices, never colours).
With `cache=True` every pair is decoded and resized once, up front, and kept in memory: forked
DataLoader workers share that copy, and no PNG is decoded again in later epochs.

Determinism: the augmentation seed of each item is drawn from torch's generator, so a run is
reproduced by `torch.manual_seed` (DataLoader seeds every worker from it, per epoch). With
`rot90_seed`, item `i` is turned by k*90 degrees, k drawn from (rot90_seed, i) alone: the same
validation set in every epoch and every run, whatever the workers. `rot90_protocol` says how k is
drawn: `uniform` (k uniform in 0..3, a quarter upright) or `seed` (the seed's albumentations 1.x
`RandomRotate90()` with p=0.5: no turn with probability 1/2, else k uniform in 0..3; 5/8 upright).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import Dataset

from equiseg.data.layout import read_pair
from equiseg.data.transforms import SegmentationTransform
from equiseg.errors import EquisegError, check_choice

SPLIT_COLUMNS = ("id", "species", "split", "image", "mask")
ROT90_PROTOCOLS = ("uniform", "seed")  # how a validation image's quarter turns are drawn
SPLITS = ("train", "val")


def load_split(path: str | Path, split: str) -> pd.DataFrame:
    """Rows of split.csv for `split` ('train' or 'val'); ids and species stay strings."""
    if split not in SPLITS:
        raise EquisegError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str)
    except FileNotFoundError:
        raise EquisegError(f"{path}: not found; run the split stage first "
                           "(python src/split.py)") from None
    missing = [c for c in SPLIT_COLUMNS if c not in frame.columns]
    if missing:
        raise EquisegError(f"{path}: lacks column(s) {', '.join(missing)}; re-run the split stage")
    rows = frame[frame["split"] == split].reset_index(drop=True)
    if rows.empty:
        raise EquisegError(f"{path}: has no '{split}' rows; re-run the split stage")
    return rows


def turn_probabilities(protocol: str) -> tuple[float, float, float, float]:
    """P(k quarter turns), k = 0..3, of one image under `protocol` (see the module docstring):
    what turns the four quarter-turn scores of an image into the protocol's expectation."""
    check_choice("rot90 protocol", protocol, ROT90_PROTOCOLS)
    return (0.25, 0.25, 0.25, 0.25) if protocol == "uniform" else (0.625, 0.125, 0.125, 0.125)


def rot90_turns(seed: int, index: int, protocol: str = "uniform") -> int:
    """How many quarter turns (0..3) item `index` gets under validation seed `seed` and `protocol`
    (`uniform` or `seed`, see the module docstring); a function of its arguments alone."""
    check_choice("rot90 protocol", protocol, ROT90_PROTOCOLS)
    rng = np.random.default_rng([seed, index])
    if protocol == "seed" and rng.random() >= 0.5:  # RandomRotate90(p=0.5) did not fire
        return 0
    return int(rng.integers(4))


class SegmentationDataset(Dataset):
    """(image float32 (3, P, P) normalised, mask float32 (1, P, P) in {0, 1}) per manifest row."""

    def __init__(self, rows: pd.DataFrame, transform: SegmentationTransform, cache: bool = True,
                 rot90_seed: int | None = None, fixed_rot90: int | None = None,
                 root: str | Path = ".", rot90_protocol: str = "uniform") -> None:
        if rot90_seed is not None and fixed_rot90 is not None:
            raise ValueError("give rot90_seed or fixed_rot90, not both")
        check_choice("rot90 protocol", rot90_protocol, ROT90_PROTOCOLS)
        self.images = [Path(root) / p for p in rows["image"]]
        self.masks = [Path(root) / p for p in rows["mask"]]
        self.ids = list(rows["id"]) if "id" in rows else [p.stem for p in self.images]
        self.transform = transform
        self.rot90_seed = rot90_seed
        self.rot90_protocol = rot90_protocol
        self.fixed_rot90 = fixed_rot90
        self._cache = [self._decode(i) for i in range(len(self))] if cache else None

    def __len__(self) -> int:
        return len(self.images)

    def _decode(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.transform.resize(*read_pair(self.images[index], self.masks[index]))

    def turns(self, index: int) -> int:
        """Quarter turns applied to item `index` (0 unless rot90_seed or fixed_rot90 is set)."""
        if self.fixed_rot90 is not None:
            return self.fixed_rot90 % 4
        if self.rot90_seed is not None:
            return rot90_turns(self.rot90_seed, index, self.rot90_protocol)
        return 0

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image, mask = self._cache[index] if self._cache is not None else self._decode(index)
        self.transform.reseed(int(torch.randint(0, 2**31 - 1, ())))
        image_t, mask_t = self.transform(image, mask)
        k = self.turns(index)
        if k:
            image_t, mask_t = torch.rot90(image_t, k, (1, 2)), torch.rot90(mask_t, k, (1, 2))
        return image_t.contiguous(), mask_t.contiguous()
