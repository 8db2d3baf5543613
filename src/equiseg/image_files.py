"""Images and masks from disk: the one reader for the pipeline and the audit alike.

Images are decoded with OpenCV into RGB uint8 (H, W, 3) (grey, alpha and 16-bit files become
8-bit RGB), as stored: a JPEG's EXIF orientation is ignored, as Pillow (header sizes, masks)
ignores it, so an image and its mask keep one size. Masks are read with Pillow, the only reader
that gives a palette PNG's *indices* rather than its colours. The Leeds rule lives here alone:
palette indices 0..3, of which 1 and 3 are foreground; its palette paints index 2 red, so a
reader that expands the palette (OpenCV does) and calls "non-zero" foreground gets the masks
wrong. A Leeds archive's masks may be palette or grey (`read_leeds_mask`), but a user's mask is
read the Leeds way only when it is a palette PNG (`is_leeds_mask`): a grey 0/1 or 0/255 mask
keeps every non-zero label as foreground.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from equiseg.errors import EquisegError

LEEDS_FOREGROUND = (1, 3)
LEEDS_MASK_SUFFIX = "_seg0"  # <id>.png's mask is <id>_seg0.png
LEEDS_MAX_INDEX = 3
_PILLOW_ERRORS = (OSError, SyntaxError, ValueError)  # UnidentifiedImageError is an OSError


class DataError(EquisegError):
    """A data file is missing, corrupt or holds values it must not; the message names the file."""


def read_rgb(path: str | Path, name: str | None = None) -> np.ndarray:
    """An RGB uint8 (H, W, 3) image; `name` is what the error calls the file (default: path)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise DataError(f"{name or path}: image cannot be read or decoded; replace the file "
                        "with an undamaged copy")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def header_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the file's header, or None if it is not an image file."""
    try:
        with Image.open(path) as image:
            return image.size
    except _PILLOW_ERRORS:
        return None


def read_mask_values(path: str | Path | BinaryIO, name: str | None = None) -> tuple[str, np.ndarray]:
    """(Pillow mode, values (H, W)) of a mask: a palette PNG's indices, never its colours; any
    mode but palette, grey, binary and 16/32-bit integer is read as grey."""
    try:
        with Image.open(path) as image:
            mode = image.mode
            values = np.asarray(image if mode in ("P", "L", "1", "I", "I;16")
                                else image.convert("L"))
    except _PILLOW_ERRORS as err:
        kind = "is not an image" if isinstance(err, UnidentifiedImageError) else "cannot be decoded"
        raise DataError(f"{name or path}: mask {kind} ({err}); replace the file") from None
    return mode, values


def is_leeds_mask(mode: str, values: np.ndarray) -> bool:
    """A palette mask holding only the Leeds indices 0..3."""
    return mode == "P" and (not values.size or int(values.max()) <= LEEDS_MAX_INDEX)


def leeds_foreground(indices: np.ndarray) -> np.ndarray:
    """The foreground of Leeds palette indices: 1 and 3, nothing else (bool, same shape)."""
    return np.isin(indices, LEEDS_FOREGROUND)


def read_leeds_mask(path: str | Path | BinaryIO, name: str | None = None) -> np.ndarray:
    """Foreground (bool (H, W)) of a Leeds mask, strictly: a palette (or grey) PNG of indices
    0..3, anything else an error naming the file."""
    name = name or str(path)
    mode, indices = read_mask_values(path, name)
    if mode not in ("P", "L"):
        raise DataError(f"{name}: mask has image mode {mode!r}, expected a palette PNG (mode 'P') "
                        "holding label indices 0..3")
    if indices.size and int(indices.max()) > LEEDS_MAX_INDEX:
        raise DataError(f"{name}: mask holds index {int(indices.max())}, "
                        f"expected only 0..{LEEDS_MAX_INDEX}")
    return leeds_foreground(indices)


def read_labels(path: str | Path, classes: int) -> np.ndarray:
    """A user's mask as labels (H, W): bool foreground for one class, int64 class indices for
    several. One class: a Leeds mask the Leeds way, any other foreground where its value is above
    half its range (0/1 and 0/255 masks both work)."""
    mode, values = read_mask_values(path)
    values = values.astype(np.int64)
    top = int(values.max()) if values.size else 0
    if classes > 1:
        if top >= classes:
            raise DataError(f"{path}: mask holds label {top} but `classes` is {classes}; "
                            "masks must hold class indices 0..K-1")
        return values
    if is_leeds_mask(mode, values):
        return leeds_foreground(values)
    return values > (top // 2 if top > 1 else 0)
