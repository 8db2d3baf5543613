"""DVC stage `download`: fill data/raw from data.source and write metrics/data.json.

synthetic (default): generate the butterfly set in-process, offline.
leeds: use data.archive (a local zip, checksum-verified, or an extracted folder) or download the
official archive from data.urls into .cache/downloads/ (resumable, verified), then extract it
safely into the flat layout. Nothing is written unless every pair decodes and matches.
"""

from __future__ import annotations

import time

from equiseg.config import load_params, stage_parser
from equiseg.data import prepare_raw_data
from equiseg.errors import exit_on_user_error
from equiseg.io import write_json


@exit_on_user_error
def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--metrics", default="metrics/data.json")
    args = parser.parse_args()

    data = load_params(args.params).data
    start = time.perf_counter()
    summary = prepare_raw_data(data)
    write_json(args.metrics, summary)
    print(f"{data.raw_dir}: {summary['n_pairs']} pairs from {summary['source']}, "
          f"{summary['n_species']} species, mean foreground "
          f"{summary['mean_foreground_fraction']:.3f} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
