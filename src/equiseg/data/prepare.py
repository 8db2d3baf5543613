"""Fill `data.raw_dir` from the configured source, all or nothing, and summarise what was written.

Both sources end in the same layout (see `equiseg.data.layout`), written into a temporary folder
that replaces `raw_dir` only once every pair is written and validated (`equiseg.io.atomic_dir`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from equiseg.config import DataConfig, SyntheticConfig
from equiseg.data.archive import ArchiveLimits, ArchiveSource, ensure_dirs
from equiseg.data.fetch import fetch_archive
from equiseg.data.layout import IMAGES_DIR, MASKS_DIR, species_of, write_pair
from equiseg.data.leeds import extract_leeds, species_names
from equiseg.data.synthetic import generate_synthetic
from equiseg.io import atomic_dir


def write_synthetic(out_dir: Path, config: SyntheticConfig) -> dict[str, float]:
    """Generate the synthetic set into `out_dir`; return each id's foreground fraction."""
    ensure_dirs(out_dir / IMAGES_DIR, out_dir / MASKS_DIR)
    fractions = {}
    pairs = generate_synthetic(config.n_images, config.image_size, config.species,
                               config.orientation, config.seed, config.orientation_jitter_deg)
    for image_id, image, mask in pairs:
        write_pair(out_dir, image_id, image, mask)
        fractions[image_id] = float(mask.mean())
    return fractions


def summarise(source: str, fractions: dict[str, float], names: dict[str, str]) -> dict:
    """The content of metrics/data.json."""
    counts = Counter(species_of(i) for i in fractions)
    return {
        "source": source,
        "n_pairs": len(fractions),
        "n_species": len(counts),
        "mean_foreground_fraction": round(float(np.mean(list(fractions.values()))), 4),
        "species_counts": dict(sorted(counts.items())),
        "species_names": {code: names.get(code, code) for code in sorted(counts)},
    }


def prepare_raw_data(data: DataConfig, backoff_s: float = 1.0) -> dict:
    """Write `data.raw_dir` from `data.source` and return the summary for metrics/data.json."""
    if data.source == "synthetic":
        with atomic_dir(data.raw_dir) as tmp:
            fractions = write_synthetic(tmp, data.synthetic)
        names = {f"{k + 1:03d}": f"synthetic shape family {k + 1}"
                 for k in range(data.synthetic.species)}
        return summarise("synthetic", fractions, names)
    archive = fetch_archive(data.urls, data.checksum, data.download_dir, data.archive,
                            data.download_retries, backoff_s, data.download_timeout_s)
    limits = ArchiveLimits(max_total_bytes=int(data.max_archive_gb * 1e9),
                           max_ratio=data.max_compression_ratio)
    with ArchiveSource(archive, limits) as source:  # checked whole before anything is written
        with atomic_dir(data.raw_dir) as tmp:
            fractions = extract_leeds(source, tmp)
        names = species_names(source)
    return summarise("leeds", fractions, names)
