"""Stage `evaluate`: every trained replicate (models x augments x seeds) -> plots/evaluate/,
metrics/evaluate/.

Eval-mode figures of each model file: validation loss and IoU under `evaluate.rot90` (`uniform`:
each image turned by k*90 degrees, k uniform in 0..3; `seed`: the seed's RandomRotate90(p=0.5)),
validation loss and IoU with every image at 0, 90, 180 and 270 degrees, and training-set loss and
IoU without augmentation. `plots/evaluate/<run>.csv`: one row per seed, every figure.
`metrics/evaluate/<run>.json` (what `dvc metrics show` lists): mean, sample sd (ddof=1; null for
one seed) and n over seeds of the validation IoU and of the spread of the four quarter-turn IoUs.
"""

from __future__ import annotations

import pandas as pd

from equiseg.analysis.replicates import headline_metrics, replicate_stats
from equiseg.config import load_params, run_name, stage_parser
from equiseg.data.datasets import load_split
from equiseg.errors import EquisegError, exit_on_user_error
from equiseg.io import write_csv, write_json
from equiseg.nn.models import load_replicates
from equiseg.train.devices import select_device, use_channels_last
from equiseg.train.evaluation import evaluate_trained, evaluation_record, evaluation_sets

TURNS = [f"rot{90 * k}_val_iou" for k in range(4)]
HEADLINE = ("val_iou", "val_iou_turn_spread")


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    data, config, protocol = params.data, params.train, params.evaluate
    device = select_device(config.device)
    runs = [(model, augment) for model in params.models for augment in params.augments]
    trained = load_replicates(params.models, params.augments, params.seeds, map_location=device)
    for key, (_, meta) in trained.items():  # all checked before anything is written
        geometry = {k: meta["extra"].get(k) for k in ("image_size", "pad_size")}
        if geometry != {"image_size": data.image_size, "pad_size": data.pad_size}:
            raise EquisegError(f"models/{run_name(*key)}.pt: trained on {geometry}, but params.yaml "
                               f"has data.image_size={data.image_size}, data.pad_size="
                               f"{data.pad_size}; retrain it with `dvc repro`")
    datasets = evaluation_sets(load_split(data.split_file, "train"),
                               load_split(data.split_file, "val"), image_size=data.image_size,
                               pad_size=data.pad_size, cache=data.cache_images,
                               protocol=protocol.rot90, seed=protocol.rot90_seed)
    for model_name, augment in runs:
        rows = []
        for seed in params.seeds:
            results = evaluate_trained(trained[model_name, augment, seed][0], datasets, device,
                                       batch_size=config.batch_size,
                                       channels_last=use_channels_last(config.channels_last, device))
            rows.append({"seed": seed, "rot90": protocol.rot90,
                         **pd.json_normalize(evaluation_record(results), sep="_").iloc[0]})
        per_seed = pd.DataFrame(rows)
        per_seed["val_iou_turn_spread"] = per_seed[TURNS].max(axis=1) - per_seed[TURNS].min(axis=1)
        name = run_name(model_name, augment)
        write_csv(f"plots/evaluate/{name}.csv", per_seed)
        summary = headline_metrics(replicate_stats(per_seed, columns=HEADLINE), HEADLINE)
        write_json(f"metrics/evaluate/{name}.json", summary)
        print(f"{name} ({protocol.rot90} rot90, n={summary['n']}): val_iou "
              f"{summary['val_iou']['mean']:.4f}, quarter-turn spread "
              f"{summary['val_iou_turn_spread']['mean']:.4f}")


if __name__ == "__main__":
    main()
