"""Stage `evaluate`: every trained model (params' models x augments) -> metrics/evaluate/, summary.

Validation loss and IoU under the seed's protocol (each image turned by a seeded multiple of 90
degrees) and at each fixed 0/90/180/270 degrees, plus training-set loss and IoU without
augmentation. metrics/summary.json is the seed's final table (`dvc metrics show`).
"""

from __future__ import annotations

from equiseg.config import load_params, stage_parser
from equiseg.data.datasets import load_split
from equiseg.errors import EquisegError, exit_on_user_error
from equiseg.io import write_json
from equiseg.nn.models import load_trained
from equiseg.train.devices import select_device, use_channels_last
from equiseg.train.evaluation import evaluate_trained, evaluation_record, evaluation_sets

SUMMARY_KEYS = ("train_iou", "train_loss", "val_iou", "val_loss")


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    args = parser.parse_args(argv)

    params = load_params(args.params)
    data, config = params.data, params.train
    device = select_device(config.device)
    names = [f"{model}-{augment}" for model in params.models for augment in params.augments]
    trained = {name: load_trained(f"models/{name}.pt", map_location=device) for name in names}
    for name, (_, meta) in trained.items():  # all checked before anything is written
        geometry = {key: meta["extra"].get(key) for key in ("image_size", "pad_size")}
        if geometry != {"image_size": data.image_size, "pad_size": data.pad_size}:
            raise EquisegError(f"models/{name}.pt: trained on {geometry}, but params.yaml has "
                               f"data.image_size={data.image_size}, data.pad_size={data.pad_size}; "
                               "retrain it with `dvc repro`")
    datasets = evaluation_sets(load_split(data.split_file, "train"),
                               load_split(data.split_file, "val"), image_size=data.image_size,
                               pad_size=data.pad_size, cache=data.cache_images, seed=params.seed)
    summary = {}
    for name, (model, _) in trained.items():
        results = evaluate_trained(model, datasets, device, batch_size=config.batch_size,
                                   channels_last=use_channels_last(config.channels_last, device))
        record = evaluation_record(results)
        write_json(f"metrics/evaluate/{name}.json", record)
        summary[name] = {key: record[key] for key in SUMMARY_KEYS}
        print(f"{name}: " + ", ".join(f"{k} {v:.4f}" for k, v in summary[name].items()))
    write_json("metrics/summary.json", summary)


if __name__ == "__main__":
    main()
