"""Stage `train`: one model, one augmentation, one seed -> models/, plots/train/, metrics/train/.

Resumes from its end-of-epoch checkpoint when rerun with the same settings (the checkpoint is
deleted once the outputs are written). Runs alone or as `torchrun --nproc_per_node=N src/train.py`.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from equiseg.config import check_choice, load_params, params_keys, stage_parser
from equiseg.data.augment_settings import AUGMENT_NAMES
from equiseg.data.datasets import SegmentationDataset, load_split
from equiseg.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from equiseg.data.transforms import build_transform
from equiseg.errors import exit_on_user_error
from equiseg.io import write_csv, write_json
from equiseg.nn.models import build_model, save_trained
from equiseg.runs import run_name
from equiseg.runtime import keep_freed_memory
from equiseg.train.checkpoints import checkpoint_path, run_fingerprint
from equiseg.train.distributed import distributed_session
from equiseg.train.evaluation import quarter_turn_sets
from equiseg.train.loop import (
    FIT_OPTIONS,
    HISTORY_COLUMNS,
    fit,
    per_process_batch_size,
    run_settings,
)
from equiseg.train.seeding import seed_everything


@exit_on_user_error
@params_keys(device="train.device", batch_size="train.batch_size", lr="train.lr")
def main(argv: list[str] | None = None) -> None:
    keep_freed_memory()
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="a model named in params.yaml")
    parser.add_argument("--augment", required=True, help=" or ".join(AUGMENT_NAMES))
    parser.add_argument("--seed", type=int, default=0, help="the training seed (one of `seeds`)")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    architecture = dataclasses.asdict(params.architecture(args.model))
    check_choice("augment", args.augment, AUGMENT_NAMES)
    data, config, full = params.data, params.train, dataclasses.asdict(params.full_augment)
    train_rows, val_rows = load_split(data.split_file, "train"), load_split(data.split_file, "val")

    with distributed_session(config.device) as (context, device):
        per_process_batch_size(config.batch_size, context.world_size)  # fail before any work
        train_set = SegmentationDataset(
            train_rows, build_transform(args.augment, data.image_size, data.pad_size, **full),
            cache=data.cache_images)
        val_sets = quarter_turn_sets(val_rows, image_size=data.image_size,
                                     pad_size=data.pad_size, cache=data.cache_images)
        seed_everything(args.seed)
        model = build_model(args.model, **architecture)
        fingerprint = run_fingerprint(run_settings(
            args.model, args.augment, args.seed, context.world_size, device,
            architecture=architecture, data=dataclasses.asdict(data),
            train=dataclasses.asdict(config), full_augment=full))
        name = run_name(args.model, args.augment, args.seed)
        checkpoint = checkpoint_path(config.checkpoint_dir, name, fingerprint)
        options = {key: getattr(config, key) for key in FIT_OPTIONS}
        result = fit(model, train_set, val_sets, device=device, seed=args.seed, **options,
                     checkpoint=checkpoint, fingerprint=fingerprint, context=context,
                     description=name)
        if context.is_main:
            save_trained(f"models/{name}.pt", result.model, args.model, architecture,
                         extra={"augment": args.augment, "image_size": data.image_size,
                                "pad_size": data.pad_size, "epochs": config.epochs,
                                "seed": args.seed,
                                "normalisation": {"mean": list(IMAGENET_MEAN),
                                                  "std": list(IMAGENET_STD)}})
            write_csv(f"plots/train/{name}.csv", pd.DataFrame(result.history, columns=HISTORY_COLUMNS))
            final = result.final_metrics()  # its wall-clock time differs between identical runs:
            write_json(f".cache/timings/train/{name}.json", {"seconds": final.pop("seconds")})
            write_json(f"metrics/train/{name}.json", final)  # ... so it is kept out of outputs
            checkpoint.unlink(missing_ok=True)  # the outputs now hold everything it did


if __name__ == "__main__":
    main()
