"""Stage `evaluate`: every trained replicate (models x augments x seeds) -> plots/evaluate/,
metrics/evaluate/.

Every validation image is scored once at each quarter turn (0, 90, 180, 270 degrees) and both
validation protocols are derived from those scores, no retraining needed: `val_iou` expected under
uniform turns (k uniform in 0..3), `val_iou_seed` expected under the seed's RandomRotate90(p=0.5),
and beside them the single draw the seed's code makes (`val_iou_seed_draw`, `val_iou_uniform_draw`,
image i turned by a draw from (`evaluate.rot90_seed`, i)). Also each quarter turn's loss and IoU,
their spread, and training-set loss and IoU without augmentation. `plots/evaluate/<run>.csv`: one
row per seed, every figure. `metrics/evaluate/<run>.json` (what `dvc metrics show` lists): mean,
sample sd (ddof=1; null for one seed) and n over seeds of the headline figures.
"""

from __future__ import annotations

import pandas as pd

from equiseg.analysis.replicates import headline_metrics, replicate_stats
from equiseg.config import load_params, params_keys, stage_parser
from equiseg.data.datasets import load_split
from equiseg.devices import select_device, use_channels_last
from equiseg.errors import EquisegError, exit_on_user_error
from equiseg.io import write_csv, write_json
from equiseg.nn.models import load_replicates
from equiseg.runs import run_name
from equiseg.runtime import keep_freed_memory
from equiseg.train.evaluation import (
    evaluation_record,
    image_scores,
    quarter_turn_sets,
    unaugmented_set,
)

HEADLINE = ("val_iou", "val_iou_seed", "val_iou_seed_draw")  # the rest: plots/evaluate


@exit_on_user_error
@params_keys(device="train.device")
def main(argv: list[str] | None = None) -> None:
    keep_freed_memory()
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    data, config = params.data, params.train
    device = select_device(config.device)
    trained = load_replicates(params.models, params.augments, params.seeds, map_location=device)
    for key, (_, meta) in trained.items():  # all checked before anything is written
        geometry = {k: meta["extra"].get(k) for k in ("image_size", "pad_size")}
        if geometry != {"image_size": data.image_size, "pad_size": data.pad_size}:
            raise EquisegError(f"models/{run_name(*key)}.pt: trained on {geometry}, but params.yaml "
                               f"has data.image_size={data.image_size}, data.pad_size="
                               f"{data.pad_size}; retrain it with `dvc repro`")
    geometry = {"image_size": data.image_size, "pad_size": data.pad_size, "cache": data.cache_images}
    turned = quarter_turn_sets(load_split(data.split_file, "val"), **geometry)
    train_set = unaugmented_set(load_split(data.split_file, "train"), **geometry)
    options = {"batch_size": config.batch_size,
               "channels_last": use_channels_last(config.channels_last, device)}
    for model_name in params.models:
        for augment in params.augments:
            rows = []
            for seed in params.seeds:
                model = trained[model_name, augment, seed][0]
                record = evaluation_record(
                    image_scores(model, train_set, device, **options),
                    [image_scores(model, s, device, **options) for s in turned],
                    draw_seed=params.evaluate.rot90_seed)
                rows.append({"seed": seed, **record})
            per_seed = pd.DataFrame(rows)
            name = run_name(model_name, augment)
            write_csv(f"plots/evaluate/{name}.csv", per_seed)
            summary = headline_metrics(replicate_stats(per_seed, columns=HEADLINE), HEADLINE)
            write_json(f"metrics/evaluate/{name}.json", summary)
            print(f"{name} (n={summary['n']}): val_iou uniform {summary['val_iou']['mean']:.4f}, "
                  f"seed's protocol {summary['val_iou_seed']['mean']:.4f} (expected; its single "
                  f"draw {summary['val_iou_seed_draw']['mean']:.4f})")


if __name__ == "__main__":
    main()
