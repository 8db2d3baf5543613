"""The one on-disk format every stage reads, whichever source wrote it.

`<raw>/images/<id>.png` (RGB) and `<raw>/segmentations/<id>_seg0.png`: a palette PNG (mode "P")
whose *indices* carry the label. Leeds uses indices 0..3 and counts 1 and 3 as foreground; its
palette paints index 2 red, so any reader that expands the palette (OpenCV does) and calls
"non-zero" foreground gets the masks wrong. `read_leeds_mask` is the single place masks are read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from equiseg.errors import EquisegError

IMAGES_DIR = "images"
MASKS_DIR = "segmentations"
ID_PATTERN = re.compile(r"^\d{7}$")
FOREGROUND_INDICES = (1, 3)
MAX_MASK_INDEX = 3
# The dataset's own palette: 0 black, 1 white, 2 red, 3 green (the rest black).
LEEDS_PALETTE = [0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 255, 0] + [0, 0, 0] * 252


class DataError(EquisegError):
    """A data file is missing, corrupt or holds values it must not; the message names the file."""


def species_of(image_id: str) -> str:
    """Species code of an image id: its first three digits (`0010001` -> `001`)."""
    return image_id[:3]


def image_path(raw_dir: str | Path, image_id: str) -> Path:
    return Path(raw_dir) / IMAGES_DIR / f"{image_id}.png"


def mask_path(raw_dir: str | Path, image_id: str) -> Path:
    return Path(raw_dir) / MASKS_DIR / f"{image_id}_seg0.png"


def read_leeds_mask(path: str | Path | BinaryIO, name: str | None = None) -> np.ndarray:
    """Foreground of a Leeds mask as a bool (H, W) array: palette indices 1 and 3, nothing else.

    Reads the raw indices with Pillow (never the expanded colours). `name` is what error
    messages call the file (default: the path).
    """
    name = name or str(path)
    try:
        with Image.open(path) as image:
            mode = image.mode
            indices = np.array(image)
    except (OSError, SyntaxError, ValueError) as err:  # UnidentifiedImageError is an OSError
        kind = "is not an image" if isinstance(err, UnidentifiedImageError) else "cannot be decoded"
        raise DataError(f"{name}: mask {kind} ({err}); replace the file or re-run the "
                        "download stage") from None
    if mode not in ("P", "L"):
        raise DataError(f"{name}: mask has image mode {mode!r}, expected a palette PNG (mode 'P') "
                        "holding label indices 0..3")
    if indices.size and int(indices.max()) > MAX_MASK_INDEX:
        raise DataError(f"{name}: mask holds index {int(indices.max())}, "
                        f"expected only 0..{MAX_MASK_INDEX}")
    return np.isin(indices, FOREGROUND_INDICES)


def read_image(path: str | Path, name: str | None = None) -> np.ndarray:
    """An RGB uint8 (H, W, 3) image, decoded with OpenCV."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{name or path}: image cannot be read or decoded; "
                        "get an undamaged copy or re-run the download stage")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_pair(image_file: str | Path, mask_file: str | Path, image_name: str | None = None,
              mask_name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image and its bool mask, checked to have the same height and width."""
    image = read_image(image_file, image_name)
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
    mask_ids = {p.name.removesuffix("_seg0.png") for p in masks_dir.glob("*_seg0.png")}
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
