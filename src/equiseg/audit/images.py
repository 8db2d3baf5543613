"""The audit's images, from wherever a user has them: a folder, a list of files, or pixels in memory.

Every form becomes the same `SweepImage`s (pixels in [0, 1] on a square canvas, with the image's
footprint there and its labels, if any) that `equiseg.analysis.sweep` measures. Files go through
`equiseg.audit.folders` (and so the pipeline's one reader, `equiseg.image_files`); pixels in memory go through the same resize
and canvas (`on_canvas`), and a uint8 array gives the numbers its PNG file would.

Convention: a tensor is (B, C, H, W) or (C, H, W), channels first as torch has them; a NumPy array
is (H, W, C) or (B, H, W, C), channels last as Pillow and OpenCV have them. Floats lie in [0, 1];
uint8 is divided by 255. One-class masks: nonzero (bool, integers) or > 0.5 (floats) is foreground;
with `classes` K > 1 a mask holds class indices 0..K-1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from equiseg.analysis.inputs import spread_indices
from equiseg.analysis.sweep import SweepImage
from equiseg.audit.canvas import on_canvas
from equiseg.audit.folders import ImageFile, load_image, pair_files
from equiseg.audit.options import AuditOptions
from equiseg.errors import EquisegError


@dataclass
class AuditImages:
    """Named images loaded one at a time (a folder may not fit in memory), and where from."""

    names: list[str]
    source: str  # what the report and summary.json say the images were: a folder, files, arrays
    masks: str | None
    load: Callable[[str], SweepImage | None]

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[SweepImage]:
        for name in self.names:
            item = self.load(name)
            if item is None:
                print(f"warning: image {name}: not a readable image; skipped", file=sys.stderr)
                continue
            yield item


def audit_images(images: Any, masks: Any, options: AuditOptions) -> AuditImages:
    """The images (and masks) of an audit, as given (see the module's docstring), at most
    `options.max_images` of them spread over the set."""
    if isinstance(images, (str, Path)):
        entries = pair_files(images, masks)
        source, masks_source = str(images), None if masks is None else str(masks)
    elif _is_file_list(images):
        entries = _file_entries(images, masks)
        source, masks_source = f"{len(entries)} files", None if masks is None else "files"
    else:
        return _array_images(images, masks, options)
    entries = [entries[i] for i in spread_indices(len(entries), options.max_images, 0)]
    by_name = {entry.name: entry for entry in entries}
    return AuditImages(list(by_name), source, masks_source, lambda name: load_image(
        by_name[name], options.mask_classes, options.size, options.pad_size, options.multiple))


def _is_file_list(images: Any) -> bool:
    return isinstance(images, (list, tuple)) and bool(images) and \
        all(isinstance(i, (str, Path)) for i in images)


def _file_entries(images: Sequence[str | Path], masks: Any) -> list[ImageFile]:
    if masks is not None and (not _is_file_list(masks) or len(masks) != len(images)):
        raise EquisegError(f"masks: give one mask file per image ({len(images)} paths) or None")
    entries = []
    for i, path in enumerate(map(Path, images)):
        mask = None if masks is None else Path(masks[i])
        for what, file in (("images", path), ("masks", mask)):
            if file is not None and not file.is_file():
                raise EquisegError(f"{what}[{i}]: {file} not found; pass paths of PNG or JPEG "
                                   "files")
        entries.append(ImageFile(path.stem, path, mask))
    if len({entry.name for entry in entries}) < len(entries):
        raise EquisegError("images: two files share a name (stem); rename them")
    return entries


def _as_list(value: Any, what: str, channels_axis: int | None) -> list[Any]:
    """A batch split into single images: (B, ...) tensors and arrays, or a list as it is."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, (torch.Tensor, np.ndarray)):
        single = value.ndim == 3 if channels_axis is not None else value.ndim == 2 or (
            value.ndim == 3 and isinstance(value, torch.Tensor) and value.shape[0] == 1)
        return [value] if single else list(value)
    raise EquisegError(f"{what}: got a {type(value).__name__}; pass a folder, a list of paths, "
                       "a tensor (B, C, H, W) or NumPy arrays (H, W, C)")


def _pixels(image: Any, index: int, channels: int) -> np.ndarray:
    """(H, W, C) uint8 or float32 pixels of one in-memory image, checked."""
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != channels:
            raise EquisegError(f"images[{index}]: a tensor of shape {tuple(image.shape)}; give "
                               f"(B, {channels}, H, W) or ({channels}, H, W)")
        image = image.detach().cpu().permute(1, 2, 0).numpy()
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != channels:
        raise EquisegError(f"images[{index}]: an array of shape {array.shape}; give (H, W, "
                           f"{channels}) arrays (channels last) or a (B, {channels}, H, W) tensor")
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind != "f":
        raise EquisegError(f"images[{index}]: pixels of type {array.dtype}; give uint8 or floats "
                           "in [0, 1]")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
        raise EquisegError(f"images[{index}]: pixel values run from {low:g} to {high:g}; give "
                           "floats in [0, 1] (divide 0-255 pixels by 255) or uint8")
    return array.astype(np.float32)


def _labels(mask: Any, index: int, shape: tuple[int, ...], classes: int) -> np.ndarray:
    """(H, W) labels of one in-memory mask: bool foreground, or int64 class indices for K > 1."""
    values = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    values = values.reshape(values.shape[-2:]) if values.ndim == 3 and values.shape[0] == 1 \
        else values
    if values.shape != shape:
        raise EquisegError(f"masks[{index}]: shape {values.shape} but its image is {shape}; "
                           "masks are (H, W) at their image's size")
    if classes == 1:
        return values > 0.5 if values.dtype.kind == "f" else values != 0
    if values.dtype.kind not in "iub" or values.min() < 0 or values.max() >= classes:
        raise EquisegError(f"masks[{index}]: give class indices 0..{classes - 1} for classes="
                           f"{classes}")
    return values.astype(np.int64)


def _array_images(images: Any, masks: Any, options: AuditOptions) -> AuditImages:
    channels = len(options.mean)
    pixels = [_pixels(image, i, channels) for i, image in
              enumerate(_as_list(images, "images", channels_axis=0))]
    labels: list[np.ndarray | None] = [None] * len(pixels)
    if masks is not None:
        given = _as_list(masks, "masks", channels_axis=None)
        if len(given) != len(pixels):
            raise EquisegError(f"masks: {len(given)} mask(s) for {len(pixels)} image(s); give "
                               "one per image or None")
        labels = [_labels(m, i, p.shape[:2], options.mask_classes)
                  for i, (m, p) in enumerate(zip(given, pixels))]
    if not pixels:
        raise EquisegError("images: none given; pass at least one image")
    chosen = spread_indices(len(pixels), options.max_images, 0)
    items = {f"image{i}": on_canvas(f"image{i}", pixels[i], labels[i], options.mask_classes,
                                     options.size, options.pad_size, options.multiple)
             for i in chosen}
    return AuditImages(list(items), f"{len(pixels)} in-memory image(s)",
                       None if masks is None else "in-memory masks", items.get)
