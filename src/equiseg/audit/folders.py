"""A user's folder of images (and masks), paired by stem and read by the pipeline's one reader
(`equiseg.image_files`), each put on its canvas (`equiseg.audit.canvas`).

Folder masks are matched to images by stem (`<stem>.png` or Leeds-style `<stem>_seg0.png`).
A palette mask holding only indices 0..3 is read the Leeds way (1 and 3 are foreground); any other
one-class mask is foreground where its grey value is above half its range (0/1 and 0/255 masks both
work). With several classes a mask holds class indices 0..K-1.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from equiseg.analysis.sweep import SweepImage
from equiseg.audit.canvas import on_canvas
from equiseg.errors import EquisegError
from equiseg.image_files import LEEDS_MASK_SUFFIX, DataError, header_size, read_labels, read_rgb

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


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
