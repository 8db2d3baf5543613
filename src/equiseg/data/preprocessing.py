"""The one preprocessing of images and masks: longest side to `size`, centred on a square canvas.

Training, validation, the rotation_sweep stage and the audit's folder loader all call these
functions, so a model is measured on images prepared exactly as it was trained on.

Resizing keeps the aspect (a 90-degree turn of a photograph is still a plausible photograph; a
square resize would stretch it differently in each orientation). Images use OpenCV's INTER_AREA.
Masks are resized as float images with the *same* interpolation and thresholded at 0.5 (a pixel at
least half covered is foreground, as a uint8
image rounds 127.5 up to 128), so a mask stays on its image. Nearest-neighbour resampling by a
factor s would pick one source pixel per output pixel, shifted by (s - 1) / 2s output pixels
(0.375 px at 256 -> 64) from the centre of the area the image averages. Label maps of several
classes are resized one class at a time (each one-hot channel as a float) and the most covered
class wins.

Convention: the canvas offsets are `equiseg.geometry.pad_offsets` (top = (S - H) // 2,
left = (S - W) // 2), the same as the sweep's `pad_to_square`.
"""

from __future__ import annotations

import cv2
import numpy as np

from equiseg.geometry import pad_offsets

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

INTERPOLATION = cv2.INTER_AREA  # images, and masks as float images before the 0.5 threshold


def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) with the longest side `size`, aspect kept (each side at least 1 pixel)."""
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """An (H, W) or (H, W, C) image with its longest side resized to `size` (INTER_AREA).

    Returned unchanged (the same array) when its longest side already is `size`.
    """
    height, width = image.shape[:2]
    shape = resized_shape(height, width, size)
    if shape == (height, width):
        return image
    return cv2.resize(image, (shape[1], shape[0]), interpolation=INTERPOLATION)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """A bool (H, W) mask resized like its image: as a 0/1 float image, then >= 0.5."""
    mask = np.asarray(mask)
    if mask.dtype != bool and mask.size and mask.max() > 1:
        raise ValueError(f"a mask holds 0/1 (or bool), not values up to {mask.max()}; "
                         "use resize_labels for class indices")
    return resize_image(mask.astype(np.float32), size) >= 0.5


def resize_labels(labels: np.ndarray, size: int, classes: int) -> np.ndarray:
    """Class indices (H, W) in 0..classes-1 resized like their image: each class's one-hot map as a
    float image, then the class with the largest share of each output pixel (ties: lowest index)."""
    labels = np.asarray(labels)
    if classes < 2:
        return resize_mask(labels.astype(bool), size).astype(labels.dtype)
    shares = np.stack([resize_image((labels == k).astype(np.float32), size)
                       for k in range(classes)])
    return shares.argmax(axis=0).astype(labels.dtype)


def pad_to_canvas(array: np.ndarray, side: int, value: float = 0) -> np.ndarray:
    """An (H, W) or (H, W, C) array centred on a `side` x `side` canvas filled with `value`."""
    height, width = array.shape[:2]
    top, left = pad_offsets(height, width, side)
    widths = [(top, side - height - top), (left, side - width - left)]
    widths += [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, constant_values=value)


def normalise(image: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float32 ImageNet-normalised (H, W, 3)."""
    mean = np.asarray(IMAGENET_MEAN, np.float32)
    std = np.asarray(IMAGENET_STD, np.float32)
    return (image.astype(np.float32) / 255.0 - mean) / std
