"""A deterministic train/validation split, stratified by species.

Within each species the ids are sorted, then shuffled by a generator seeded with
(split_seed, species): a species' split does not depend on which other species are present.
Each species with two or more images gives round(n * val_fraction) of them, at least one and at
most n - 1, to validation.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from equiseg.data.layout import image_path, list_pair_ids, mask_path, species_of
from equiseg.image_files import DataError


def assign_splits(ids: list[str], val_fraction: float, seed: int) -> dict[str, str]:
    """id -> 'train' or 'val', stratified by species."""
    by_species: dict[str, list[str]] = defaultdict(list)
    for image_id in sorted(ids):
        by_species[species_of(image_id)].append(image_id)
    splits = {}
    for species, members in sorted(by_species.items()):
        n = len(members)
        n_val = min(max(int(np.floor(n * val_fraction + 0.5)), 1), n - 1) if n > 1 else 0
        order = np.random.default_rng([seed, int(species)]).permutation(n)
        for rank, index in enumerate(order):
            splits[members[index]] = "val" if rank < n_val else "train"
    if "val" not in splits.values():
        raise DataError(f"{len(ids)} images are too few to split: every species has one image; "
                        "add images, or generate more synthetic ones (`n_images`)")
    return splits


def split_manifest(raw_dir: str | Path, val_fraction: float, seed: int) -> pd.DataFrame:
    """The rows of split.csv: id, species, split, image, mask (paths as `raw_dir` is given)."""
    ids = list_pair_ids(raw_dir)
    splits = assign_splits(ids, val_fraction, seed)
    return pd.DataFrame({
        "id": ids,
        "species": [species_of(i) for i in ids],
        "split": [splits[i] for i in ids],
        "image": [image_path(raw_dir, i).as_posix() for i in ids],
        "mask": [mask_path(raw_dir, i).as_posix() for i in ids],
    })


def split_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Images per species and split, with totals: the summary the split stage prints."""
    return pd.crosstab(manifest["species"], manifest["split"], margins=True, margins_name="total")
