"""Fill the raw-data folder from the synthetic generator or the Leeds archive, all or nothing, and
summarise what was written.

Both sources end in the same layout (see `equiseg.data.layout`), written into a temporary folder
that replaces `raw_dir` only once every pair is written and validated (`equiseg.io.atomic_dir`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from equiseg.data.archive import ArchiveLimits, ArchiveSource, ensure_dirs
from equiseg.data.fetch import fetch_archive
from equiseg.data.layout import IMAGES_DIR, MASKS_DIR, species_of, write_pair
from equiseg.data.leeds import extract_leeds, species_names
from equiseg.data.synthetic import generate_synthetic
from equiseg.io import atomic_dir


def write_synthetic(out_dir: Path, *, n_images: int, image_size: int, species: int,
                    orientation: str = "upright", seed: int = 0,
                    orientation_jitter_deg: float = 15.0) -> dict[str, float]:
    """Generate the synthetic set into `out_dir`; return each id's foreground fraction."""
    ensure_dirs(out_dir / IMAGES_DIR, out_dir / MASKS_DIR)
    fractions = {}
    pairs = generate_synthetic(n_images, image_size, species, orientation, seed,
                               orientation_jitter_deg)
    for image_id, image, mask in pairs:
        write_pair(out_dir, image_id, image, mask)
        fractions[image_id] = float(mask.mean())
    return fractions


SPECIES_KEYS = ("species_counts", "species_names")  # the per-species part of the summary


def summarise(source: str, fractions: dict[str, float], names: dict[str, str]) -> dict:
    """What the data holds: source, pair and species counts, mean foreground fraction, and per
    species (`SPECIES_KEYS`) the pair counts and names."""
    counts = Counter(species_of(i) for i in fractions)
    return {
        "source": source,
        "n_pairs": len(fractions),
        "n_species": len(counts),
        "mean_foreground_fraction": round(float(np.mean(list(fractions.values()))), 4),
        "species_counts": dict(sorted(counts.items())),
        "species_names": {code: names.get(code, code) for code in sorted(counts)},
    }


def prepare_synthetic(raw_dir: str | Path, *, n_images: int, image_size: int, species: int,
                      orientation: str = "upright", seed: int = 0,
                      orientation_jitter_deg: float = 15.0) -> dict:
    """Write the synthetic set into `raw_dir` and return the summary for metrics/data.json."""
    with atomic_dir(raw_dir) as tmp:
        fractions = write_synthetic(tmp, n_images=n_images, image_size=image_size,
                                    species=species, orientation=orientation, seed=seed,
                                    orientation_jitter_deg=orientation_jitter_deg)
    names = {f"{k + 1:03d}": f"synthetic shape family {k + 1}" for k in range(species)}
    return summarise("synthetic", fractions, names)


def prepare_leeds(raw_dir: str | Path, *, checksum: str, archive: str | Path | None = None,
                  urls: Sequence[str] = (), download_dir: str | Path = ".cache/downloads",
                  retries: int = 3, backoff_s: float = 1.0, timeout_s: float = 30.0,
                  max_archive_gb: float = 4.0, max_compression_ratio: float = 100.0) -> dict:
    """Write the Leeds pairs into `raw_dir` from `archive` (a local zip, verified against
    `checksum`, or its extracted folder) or from the first of `urls` that delivers it (cached in
    `download_dir`); return the summary for metrics/data.json."""
    path = fetch_archive(tuple(urls), checksum, download_dir, archive, retries, backoff_s,
                         timeout_s)
    limits = ArchiveLimits(max_total_bytes=int(max_archive_gb * 1e9),
                           max_ratio=max_compression_ratio)
    with ArchiveSource(path, limits) as source:  # checked whole before anything is written
        with atomic_dir(raw_dir) as tmp:
            fractions = extract_leeds(source, tmp)
        names = species_names(source)
    return summarise("leeds", fractions, names)
