"""The Leeds Butterfly Dataset: find its pairs in an archive, validate them, write the flat layout.

The official archive nests everything under `leedsbutterfly/` (`images/<id>.png`,
`segmentations/<id>_seg0.png`, `descriptions/<species>.txt`); members are matched by their last
two path parts, so an extracted copy or a re-zipped one with another top folder works too.
Every image must have exactly one mask of the same size, every file must decode, and masks may
hold only indices 0..3; the first violation stops with a message naming the member.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from equiseg.data.archive import ArchiveSource, check_free_space, ensure_dirs
from equiseg.data.layout import IMAGES_DIR, MASKS_DIR, image_path, mask_path, read_pair
from equiseg.image_files import DataError

IMAGE_MEMBER = re.compile(r"(?:^|/)images/(\d{7})\.png$", re.IGNORECASE)
MASK_MEMBER = re.compile(r"(?:^|/)segmentations/(\d{7})_seg\d+\.png$", re.IGNORECASE)
DESCRIPTION_MEMBER = re.compile(r"(?:^|/)descriptions/(\d{3})\.txt$", re.IGNORECASE)


@dataclass(frozen=True)
class LeedsPair:
    image_id: str
    image_member: str
    mask_member: str


def find_leeds_pairs(source: ArchiveSource) -> list[LeedsPair]:
    """Pair every image of the archive with its one mask, or stop naming the first that has not."""
    images: dict[str, str] = {}
    masks: dict[str, list[str]] = defaultdict(list)
    for name in source.names():
        if "__MACOSX/" in name:  # resource forks that macOS zips carry along
            continue
        if match := IMAGE_MEMBER.search(name):
            if match[1] in images:
                raise DataError(f"{source.label(name)}: image id {match[1]} appears twice "
                                f"(also {images[match[1]]}); use an unmodified archive")
            images[match[1]] = name
        elif match := MASK_MEMBER.search(name):
            masks[match[1]].append(name)
    if not images:
        raise DataError(f"{source.path}: holds no images/<7-digit id>.png; is this the Leeds "
                        "Butterfly archive (leedsbutterfly_dataset_v1.0.zip)?")
    for image_id, members in sorted(masks.items()):
        if image_id not in images:
            raise DataError(f"{source.label(members[0])}: mask without an image "
                            f"(no images/{image_id}.png); use an unmodified archive")
        if len(members) > 1:
            raise DataError(f"{source.label(images[image_id])}: has {len(members)} masks "
                            f"({', '.join(members)}), expected exactly one")
    pairs = []
    for image_id, member in sorted(images.items()):
        if image_id not in masks:
            raise DataError(f"{source.label(member)}: has no mask "
                            f"(segmentations/{image_id}_seg0.png is missing); "
                            "use an unmodified archive")
        pairs.append(LeedsPair(image_id, member, masks[image_id][0]))
    return pairs


def species_names(source: ArchiveSource) -> dict[str, str]:
    """Species code -> 'Latin name (common name)' from the archive's descriptions, if present."""
    names = {}
    for name in source.names():
        if match := DESCRIPTION_MEMBER.search(name):
            with source.open(name) as stream:
                lines = [ln.strip() for ln in stream.read().decode("utf-8", "replace").splitlines()]
            lines = [ln for ln in lines if ln]
            if lines:
                names[match[1]] = f"{lines[0]} ({lines[1]})" if len(lines) > 1 else lines[0]
    return dict(sorted(names.items()))


def extract_leeds(source: ArchiveSource, out_dir: Path) -> dict[str, float]:
    """Write every validated pair of `source` into `out_dir` in the flat layout.

    Returns the foreground fraction of each image id. `out_dir` should be a temporary folder
    (`equiseg.io.atomic_dir`): on any error it is left half-written.
    """
    pairs = find_leeds_pairs(source)
    ensure_dirs(out_dir / IMAGES_DIR, out_dir / MASKS_DIR)
    check_free_space(out_dir, sum(source.size(p.image_member) + source.size(p.mask_member)
                                  for p in pairs))
    fractions = {}
    for pair in tqdm(pairs, desc="extract", unit="pair", mininterval=1.0):
        image_file = image_path(out_dir, pair.image_id)
        mask_file = mask_path(out_dir, pair.image_id)
        source.copy(pair.image_member, image_file)
        source.copy(pair.mask_member, mask_file)
        _, mask = read_pair(image_file, mask_file, source.label(pair.image_member),
                            source.label(pair.mask_member))  # the readers training uses
        fractions[pair.image_id] = float(mask.mean())
    return fractions
