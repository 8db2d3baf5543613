"""The one on-disk format every stage reads, whichever source wrote it.

`<raw>/images/<id>.png` (RGB) and `<raw>/segmentations/<id>_seg0.png`: a palette PNG (mode "P")
whose *indices* carry the label. Leeds uses indices 0..3 and counts 1 and 3 as foreground; its
palette paints index 2 red, so any reader that expands the palette (OpenCV does) and calls
"non-zero" foreground gets the masks wrong. Files are read by `equiseg.image_files`, the one reader
of images and masks (the audit's too), which holds that rule.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from equiseg.image_files import LEEDS_MASK_SUFFIX, DataError, read_leeds_mask, read_rgb

IMAGES_DIR = "images"
MASKS_DIR = "segmentations"
ID_PATTERN = re.compile(r"^\d{7}$")
# The dataset's own palette: 0 black, 1 white, 2 red, 3 green (the rest black).
LEEDS_PALETTE = [0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 255, 0] + [0, 0, 0] * 252


def species_of(image_id: str) -> str:
    """Species code of an image id: its first three digits (`0010001` -> `001`)."""
    return image_id[:3]


def image_path(raw_dir: str | Path, image_id: str) -> Path:
    return Path(raw_dir) / IMAGES_DIR / f"{image_id}.png"


def mask_path(raw_dir: str | Path, image_id: str) -> Path:
    return Path(raw_dir) / MASKS_DIR / f"{image_id}{LEEDS_MASK_SUFFIX}.png"


def read_pair(image_file: str | Path, mask_file: str | Path, image_name: str | None = None,
              mask_name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image and its bool mask, checked to have the same height and width."""
    image = read_rgb(image_file, image_name)
    mask = read_leeds_mask(mask_file, mask_name)
    if image.shape[:2] != mask.shape:
        raise DataError(f"{mask_name or mask_file}: mask is {mask.shape[1]}x{mask.shape[0]} but "
                        f"its image is {image.shape[1]}x{image.shape[0]}; "
                        "they must be the same size")
    return image, mask


def write_palette_mask(path: str | Path, foreground: np.ndarray) -> None:
    """Write a bool mask as a Leeds-style palette PNG (index 1 = foreground, 0 = background)."""
    image = Image.fromarray(foreground.astype(np.uint8))  # mode "L" ...
    image.putpalette(LEEDS_PALETTE)  # ... becomes mode "P", indices unchanged
    image.save(path, format="PNG")


def list_pair_ids(raw_dir: str | Path) -> list[str]:
    """Sorted ids of `raw_dir`, checking that every image has its mask and every mask its image."""
    raw_dir = Path(raw_dir)
    images_dir, masks_dir = raw_dir / IMAGES_DIR, raw_dir / MASKS_DIR
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise DataError(f"{raw_dir}: expected folders '{IMAGES_DIR}/' and '{MASKS_DIR}/'; "
                        "run the download stage first (python src/download.py)")
    image_ids = {p.stem for p in images_dir.glob("*.png") if ID_PATTERN.match(p.stem)}
    mask_ids = {p.name.removesuffix(f"{LEEDS_MASK_SUFFIX}.png")
                for p in masks_dir.glob(f"*{LEEDS_MASK_SUFFIX}.png")}
    for image_id in sorted(image_ids - mask_ids):
        raise DataError(f"{image_path(raw_dir, image_id)}: has no mask "
                        f"{mask_path(raw_dir, image_id).name}; re-run the download stage")
    for image_id in sorted(mask_ids - image_ids):
        raise DataError(f"{mask_path(raw_dir, image_id)}: has no image {image_id}.png; "
                        "re-run the download stage")
    if not image_ids:
        raise DataError(f"{images_dir}: holds no <7-digit id>.png images; "
                        "run the download stage first")
    return sorted(image_ids)


def write_pair(raw_dir: str | Path, image_id: str, image_rgb: np.ndarray,
               foreground: np.ndarray) -> None:
    """Write one RGB uint8 image and its bool mask in the shared layout (folders must exist)."""
    path = image_path(raw_dir, image_id)
    if not cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)):
        raise DataError(f"{path}: could not be written; check free disk space and permissions")
    write_palette_mask(mask_path(raw_dir, image_id), foreground)
