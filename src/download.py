"""DVC stage `download`: fill data/raw from data.source; write metrics/data.json (the headline:
source, pairs, species, foreground) and data/species.json (per-species counts and names, kept out of
the metrics so `dvc exp show` stays narrow).

synthetic (default): generate the butterfly set in-process, offline.
leeds: use data.archive (a local zip, checksum-verified, or an extracted folder) or download the
official archive from data.urls into .cache/downloads/ (resumable, verified), then extract it
safely into the flat layout. Nothing is written unless every pair decodes and matches.
"""

from __future__ import annotations

import dataclasses
import time

from equiseg.config import load_params, params_keys, stage_parser
from equiseg.data import SPECIES_KEYS, prepare_leeds, prepare_synthetic
from equiseg.errors import exit_on_user_error
from equiseg.io import write_json

# The params.yaml key behind each argument of prepare_leeds / prepare_synthetic, for its errors.
PARAMS_KEYS = {
    **{name: f"data.{name}" for name in ("checksum", "archive", "urls", "raw_dir", "download_dir",
                                         "max_archive_gb", "max_compression_ratio")},
    "retries": "data.download_retries", "timeout_s": "data.download_timeout_s",
    **{name: f"data.synthetic.{name}" for name in ("n_images", "image_size", "species",
                                                   "orientation", "seed", "orientation_jitter_deg")},
}


@exit_on_user_error
@params_keys(**PARAMS_KEYS)
def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--metrics", default="metrics/data.json")
    parser.add_argument("--species", default="data/species.json")
    args = parser.parse_args()

    data = load_params(args.params).data
    start = time.perf_counter()
    if data.source == "synthetic":
        summary = prepare_synthetic(data.raw_dir, **dataclasses.asdict(data.synthetic))
    else:
        summary = prepare_leeds(data.raw_dir, checksum=data.checksum, archive=data.archive,
                                urls=data.urls, download_dir=data.download_dir,
                                retries=data.download_retries, timeout_s=data.download_timeout_s,
                                max_archive_gb=data.max_archive_gb,
                                max_compression_ratio=data.max_compression_ratio)
    write_json(args.species, {key: summary.pop(key) for key in SPECIES_KEYS})
    write_json(args.metrics, summary)
    print(f"{data.raw_dir}: {summary['n_pairs']} pairs from {summary['source']}, "
          f"{summary['n_species']} species, mean foreground "
          f"{summary['mean_foreground_fraction']:.3f} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
