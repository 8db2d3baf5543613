"""`equiseg sample-images DIR`: a few synthetic butterflies and their masks, so an audit can run
on a fresh clone (no download, no data/raw/).

The images come from the pipeline's own generator (`equiseg.data.synthetic`), seeded, so every
run writes the same files: `DIR/images/<id>.png` (RGB) and `DIR/masks/<id>.png` (0/255).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from equiseg.data.synthetic import generate_synthetic
from equiseg.errors import EquisegError
from equiseg.io import atomic_dir

SAMPLE_SPECIES = 3


def write_samples(folder: str | Path, count: int = 6, size: int = 128, seed: int = 0) -> Path:
    """Write `count` synthetic images of `size` pixels and their masks into `folder`, which must
    be absent or empty (nothing is overwritten); returns `folder`."""
    folder = Path(folder)
    if count < 1 or size < 32:
        raise EquisegError(f"sample-images: --count {count} --size {size}; give a count of at "
                           "least 1 and a size of at least 32")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise EquisegError(f"{folder}: exists and is not an empty folder; pass a new one")
    with atomic_dir(folder) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        for name, image, mask in generate_synthetic(count, size, SAMPLE_SPECIES, "uniform", seed):
            Image.fromarray(image).save(tmp / "images" / f"{name}.png")
            Image.fromarray(mask.astype("uint8") * 255).save(tmp / "masks" / f"{name}.png")
    return folder
