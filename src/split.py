"""DVC stage `split`: a deterministic, species-stratified train/validation split of data/raw."""

from __future__ import annotations

from equiseg.config import load_params, params_keys, stage_parser
from equiseg.data import split_counts, split_manifest
from equiseg.errors import exit_on_user_error
from equiseg.io import write_csv


@exit_on_user_error
@params_keys(n_images="data.synthetic.n_images", raw_dir="data.raw_dir",
             val_fraction="data.val_fraction", seed="data.split_seed")
def main() -> None:
    parser = stage_parser(__doc__)
    args = parser.parse_args()

    data = load_params(args.params).data
    manifest = split_manifest(data.raw_dir, data.val_fraction, data.split_seed)
    write_csv(data.split_file, manifest)
    print(f"{data.split_file}: {len(manifest)} images, split seed {data.split_seed}")
    print(split_counts(manifest).to_string())


if __name__ == "__main__":
    main()
