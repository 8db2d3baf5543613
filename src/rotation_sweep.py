"""Stage `rotation_sweep`: every trained replicate under rotations, flips and photometric changes.

For each model in params.models x params.augments and each seed: predict on rotated (and flipped,
brightened, ...) validation images, undo the rotation on the prediction, and score it against the
ground truth and against the prediction on the unrotated image (`equiseg.analysis.sweep`, the
same code as `equiseg audit`). Per run, over seeds (mean in the sweep's own column names, `_sd`
the sample sd across seeds, `n` the seeds): plots/rotation/<run>.csv, plots/perturb/<run>.csv;
plots/equivariance/<run>.csv: each seed's summary, with the reach of the model's group (the
angles it covers); metrics/equivariance/<run>.json: the headline over seeds. The GIF and the
sample grid (plots/rotation/<run>.gif, plots/samples/<run>.png) show the first seed.
"""

from __future__ import annotations

import pandas as pd

from equiseg.analysis.inputs import check_image_index, spread_indices, validation_images
from equiseg.analysis.predictor import make_predictor
from equiseg.analysis.replicates import headline_metrics, replicate_stats
from equiseg.analysis.set_tables import (
    PERTURB_KEYS,
    ROTATION_KEYS,
    perturbation_table,
    rotation_table,
)
from equiseg.analysis.summary import equivariance_summary
from equiseg.analysis.sweep import run_sweep, sweep_perturbations
from equiseg.config import load_params, params_keys, stage_parser
from equiseg.data.datasets import load_split
from equiseg.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from equiseg.devices import select_device
from equiseg.errors import exit_on_user_error
from equiseg.io import write_csv, write_json
from equiseg.nn.groups import group_turn
from equiseg.nn.models import load_replicates
from equiseg.report.overlays import write_rotation_gif, write_sample_grid
from equiseg.runs import run_name
from equiseg.runtime import keep_freed_memory

HEADLINE = ("consistency_iou_off_grid",)


@exit_on_user_error
@params_keys(device="train.device", image_index="sweep.image_index", size="data.image_size",
             pad_size="data.pad_size")
def main(argv: list[str] | None = None) -> None:
    keep_freed_memory()
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    sweep, data = params.sweep, params.data
    rows = load_split(data.split_file, "val")
    check_image_index(sweep.image_index, len(rows))
    indices = spread_indices(len(rows), sweep.max_images, sweep.image_index)
    images = validation_images(rows.iloc[indices], data.image_size, data.pad_size)
    chosen = images[indices.index(sweep.image_index)]
    samples = [chosen] + [item for item in images if item is not chosen][:max(sweep.samples - 1, 0)]
    perturbations = sweep_perturbations(sweep)
    device = select_device(params.train.device)
    runs = [(model, augment) for model in params.models for augment in params.augments]
    trained = load_replicates(params.models, params.augments, params.seeds, map_location=device)

    for model_name, augment in runs:
        run, rotation, perturb, summaries = run_name(model_name, augment), [], [], []
        turn = group_turn(params.architecture(model_name).group)  # the angles its group covers
        for seed in params.seeds:
            predict = make_predictor(trained[model_name, augment, seed][0], IMAGENET_MEAN,
                                     IMAGENET_STD, channels_last=sweep.channels_last)
            first = seed == params.seeds[0]
            result = run_sweep(predict, images, perturbations, sweep.batch_size, device,
                               keep=[item.name for item in samples] if first else [])
            rotation.append(rotation_table(result.frame, chosen.name))
            perturb.append(perturbation_table(result.frame))
            summaries.append({"seed": seed, **equivariance_summary(
                result.frame, sweep.exact_atol, sweep.exact_rtol, turn)})
            if first and sweep.gif:
                write_rotation_gif(f"plots/rotation/{run}.gif", result.kept[chosen.name])
            if first and sweep.samples:
                write_sample_grid(f"plots/samples/{run}.png", samples[:sweep.samples], result.kept)
        write_csv(f"plots/rotation/{run}.csv",
                  replicate_stats(pd.concat(rotation), by=list(ROTATION_KEYS)))
        write_csv(f"plots/perturb/{run}.csv",
                  replicate_stats(pd.concat(perturb), by=list(PERTURB_KEYS)))
        per_seed = pd.DataFrame(summaries)
        write_csv(f"plots/equivariance/{run}.csv", per_seed)
        write_json(f"metrics/equivariance/{run}.json", {
            **headline_metrics(replicate_stats(per_seed, columns=HEADLINE), HEADLINE),
            "exact_at_90_multiples": bool(per_seed["exact_at_90_multiples"].all())})
        print(f"{run}: {len(images)} images x {len(perturbations)} perturbations "
              f"x {len(params.seeds)} seed(s)")


if __name__ == "__main__":
    main()
