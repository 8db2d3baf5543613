"""The square canvas of the audit's images, from a folder or from memory alike: resized by the
pipeline's one resize if asked (`equiseg.data.preprocessing`: longest side, masks resized like
their image) and centred on a canvas whose side is a multiple the model needs."""

from __future__ import annotations

import math

import numpy as np
import torch

from equiseg.analysis.sweep import SweepImage
from equiseg.data.preprocessing import resize_image, resize_labels
from equiseg.errors import EquisegError
from equiseg.geometry import footprint, pad_to_square


def canvas_side(height: int, width: int, pad_size: int, multiple: int) -> int:
    """The square canvas: `pad_size` if set, else the longest side rounded up to `multiple`."""
    longest = max(height, width)
    if pad_size:
        if pad_size < longest:
            raise EquisegError(f"`pad_size` {pad_size} is smaller than a {width}x{height} image; "
                               "raise it or shrink the images (`size`)")
        return pad_size
    return math.ceil(longest / multiple) * multiple


def on_canvas(name: str, pixels: np.ndarray, labels: np.ndarray | None, classes: int,
              size: int = 0, pad_size: int = 0, multiple: int = 16) -> SweepImage:
    """Pixels (H, W, C: uint8, or floats in [0, 1]) and labels (H, W), resized by the pipeline's
    one resize if `size` (masks stay on their images) and centred on their square canvas."""
    if size:
        pixels = resize_image(pixels, size)
        if labels is not None:
            labels = resize_labels(labels, size, classes)
    height, width = pixels.shape[:2]
    side = canvas_side(height, width, pad_size, multiple)
    image = torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float()  # a copy: writable
    image = image / 255.0 if pixels.dtype == np.uint8 else image
    target = None
    if labels is not None:
        target = pad_to_square(torch.from_numpy(np.ascontiguousarray(labels)).unsqueeze(0), side)
    return SweepImage(name, pad_to_square(image, side), footprint(height, width, side), target)
