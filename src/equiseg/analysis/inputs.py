"""Where the images of a sweep come from: the pipeline's validation split, or a user's folder.

Both produce `SweepImage`s in pixel units [0, 1] on a square canvas with the footprint of the
image on it, so `equiseg.analysis.sweep` treats them alike. The validation images go through the
pipeline's own preprocessing (`equiseg.data.transforms`, as in training and evaluation); a folder's
images are read by the pipeline's one reader (`equiseg.image_files`), optionally resized by its one
resize (`equiseg.data.preprocessing`: longest side, masks resized like their image) and centred by
`on_canvas` on a square canvas whose side is a multiple the model needs (the audit's in-memory
images too).

Folder masks are matched to images by stem (`<stem>.png` or Leeds-style `<stem>_seg0.png`).
A palette mask holding only indices 0..3 is read the Leeds way (1 and 3 are foreground); any other
one-class mask is foreground where its grey value is above half its range (0/1 and 0/255 masks both
work). With several classes a mask holds class indices 0..K-1.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from equiseg.analysis.sweep import SweepImage
from equiseg.data.preprocessing import resize_image, resize_labels, resized_shape
from equiseg.errors import EquisegError, InvalidValue
from equiseg.geometry import footprint, pad_to_square
from equiseg.image_files import DataError, header_size, read_labels, read_rgb

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
LEEDS_MASK_SUFFIX = "_seg0"


def spread_indices(count: int, max_images: int, must_include: int) -> list[int]:
    """`max_images` indices spread evenly over range(count) (all if 0), always with `must_include`."""
    if max_images <= 0 or max_images >= count:
        return list(range(count))
    chosen = {round(i * (count - 1) / max(max_images - 1, 1)) for i in range(max_images)}
    chosen.add(must_include)
    return sorted(chosen)


# -- the pipeline's validation images --------------------------------------------------------------

def validation_images(rows: pd.DataFrame, image_size: int, pad_size: int,
                      root: str | Path = ".") -> list[SweepImage]:
    """Validation rows of split.csv as SweepImages, preprocessed exactly as the models saw them."""
    from equiseg.data.datasets import (
        SegmentationDataset,  # imports albumentations: only when needed
    )
    from equiseg.data.transforms import build_transform, denormalise

    transform = build_transform("minimal", image_size, pad_size)
    dataset = SegmentationDataset(rows, transform, cache=False, root=root)
    items = []
    for index, name in enumerate(dataset.ids):
        image, mask = dataset[index]
        size = header_size(dataset.images[index])
        if size is None:  # OpenCV decoded it but Pillow cannot read its header
            raise DataError(f"{dataset.images[index]}: image header cannot be read; replace the "
                            "file with a PNG or JPEG copy")
        width, height = size
        inside = footprint(*resized_shape(height, width, image_size), pad_size)
        items.append(SweepImage(str(name), denormalise(image).clamp(0.0, 1.0), inside,
                                mask > 0.5))
    return items


# -- a user's folder -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageFile:
    """An image of a folder and its mask file, if any."""

    name: str
    image: Path
    mask: Path | None


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _mask_stem(path: Path) -> str:
    return path.stem.removesuffix(LEEDS_MASK_SUFFIX)


def pair_files(images: str | Path, masks: str | Path | None = None) -> list[ImageFile]:
    """Readable images of a folder (PNG/JPEG, sorted by name) with their masks matched by stem.

    Unreadable images are skipped with a warning; a mask without its image, or of another size
    than its image, is an error (as is a folder without a single readable image).
    """
    images = Path(images)
    if not images.is_dir():
        raise EquisegError(f"{images}: image folder not found; give as `images` a folder of PNG "
                           "or JPEG files")
    image_paths = _image_files(images)
    mask_paths: list[Path] = []
    if masks is not None:
        masks = Path(masks)
        if not masks.is_dir():
            raise EquisegError(f"{masks}: mask folder not found; give as `masks` a folder or leave it out")
        mask_paths = _image_files(masks)
        if masks.resolve() == images.resolve():  # one folder: x.png beside x_seg0.png
            mask_paths = [p for p in image_paths if p.stem.endswith(LEEDS_MASK_SUFFIX)]
            image_paths = [p for p in image_paths if p not in mask_paths]
    stems = {p.stem for p in image_paths}
    if len(stems) < len(image_paths):
        twins = sorted(p.name for p in image_paths
                       if sum(q.stem == p.stem for q in image_paths) > 1)
        raise EquisegError(f"{images}: images {', '.join(twins)} share a name; rename them so "
                           "every image (and its mask) has its own stem")
    mask_by_stem: dict[str, Path] = {}
    for path in mask_paths:
        stem = path.stem if path.stem in stems else _mask_stem(path)
        if stem not in stems:
            raise EquisegError(f"{path}: mask without an image named {stem}.png or .jpg in "
                               f"{images}; remove it or add its image")
        mask_by_stem[stem] = path
    entries = []
    for path in image_paths:
        size = header_size(path)
        if size is None:
            print(f"warning: {path}: not a readable image; skipped", file=sys.stderr)
            continue
        mask = mask_by_stem.get(path.stem)
        if mask is not None and header_size(mask) != size:
            found = header_size(mask)
            found_text = "unreadable" if found is None else f"{found[0]}x{found[1]}"
            raise EquisegError(f"{mask}: mask is {found_text} but its image is {size[0]}x{size[1]}; "
                               "masks must match their image's size")
        entries.append(ImageFile(path.stem, path, mask))
    if not entries:
        raise EquisegError(f"{images}: holds no readable PNG or JPEG image; give as `images` a "
                           "folder with some")
    return entries


def canvas_side(height: int, width: int, pad_size: int, multiple: int) -> int:
    """The square canvas: `pad_size` if set, else the longest side rounded up to `multiple`."""
    longest = max(height, width)
    if pad_size:
        if pad_size < longest:
            raise EquisegError(f"`pad_size` {pad_size} is smaller than a {width}x{height} image; "
                               "raise it or shrink the images (`size`)")
        return pad_size
    return math.ceil(longest / multiple) * multiple


def load_image(entry: ImageFile, classes: int, size: int = 0, pad_size: int = 0,
               multiple: int = 16) -> SweepImage | None:
    """One folder image (and mask) on its canvas; None if the image cannot be read."""
    try:
        rgb = read_rgb(entry.image)
    except DataError:
        return None
    labels = None if entry.mask is None else read_labels(entry.mask, classes)
    if labels is not None and labels.shape != rgb.shape[:2]:
        raise EquisegError(f"{entry.mask}: mask is {labels.shape[1]}x{labels.shape[0]} but its "
                           f"image is {rgb.shape[1]}x{rgb.shape[0]}; masks must match their "
                           "image's size")
    return on_canvas(entry.name, rgb, labels, classes, size, pad_size, multiple)


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


def check_image_index(image_index: int, count: int) -> None:
    """Refuse an image index past the `count` images of the validation set."""
    if image_index >= count:
        raise InvalidValue("image_index", f"is {image_index} but the validation set has "
                           f"{count} images", f"0..{count - 1}")
