"""The images of the rotation_sweep stage: the pipeline's validation split, preprocessed exactly
as the models saw it (`equiseg.data.transforms`, as in training and evaluation), as `SweepImage`s
in pixel units [0, 1] on the square canvas with the image's footprint. (A user's images for the
audit come through `equiseg.audit.folders` and `equiseg.audit.canvas`.)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from equiseg.analysis.sweep import SweepImage
from equiseg.data.preprocessing import resized_shape
from equiseg.errors import InvalidValue
from equiseg.geometry import footprint
from equiseg.image_files import DataError, header_size


def spread_indices(count: int, max_images: int, must_include: int) -> list[int]:
    """`max_images` indices spread evenly over range(count) (all if 0), always with `must_include`."""
    if max_images <= 0 or max_images >= count:
        return list(range(count))
    chosen = {round(i * (count - 1) / max(max_images - 1, 1)) for i in range(max_images)}
    chosen.add(must_include)
    return sorted(chosen)


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


def check_image_index(image_index: int, count: int) -> None:
    """Refuse an image index past the `count` images of the validation set."""
    if image_index >= count:
        raise InvalidValue("image_index", f"is {image_index} but the validation set has "
                           f"{count} images", f"0..{count - 1}")
