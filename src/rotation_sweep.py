"""Stage `rotation_sweep`: every trained model under rotations, flips and photometric changes.

For each model in params.models x params.augments: predict on rotated (and flipped, brightened,
...) validation images, undo the rotation on the prediction, and score it against the ground truth
and against the prediction on the unrotated image. Writes plots/rotation/<run>.csv and .gif,
plots/perturb/<run>.csv, plots/samples/<run>.png and metrics/equivariance/<run>.json.
The computation is `equiseg.analysis.sweep`, the same as `equiseg audit`.
"""

from __future__ import annotations

from pathlib import Path

from equiseg.analysis.inputs import check_image_index, spread_indices, validation_images
from equiseg.analysis.sweep import (
    equivariance_summary,
    make_predictor,
    perturbation_table,
    rotation_table,
    run_sweep,
    sweep_perturbations,
)
from equiseg.config import load_params, stage_parser
from equiseg.data.datasets import load_split
from equiseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from equiseg.errors import exit_on_user_error
from equiseg.io import write_csv, write_json
from equiseg.nn.models import load_trained
from equiseg.report.overlays import write_rotation_gif, write_sample_grid
from equiseg.train.devices import select_device


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    args = parser.parse_args(argv)

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

    for model_name in params.models:
        for augment in params.augments:
            run = f"{model_name}-{augment}"
            model, _ = load_trained(Path("models") / f"{run}.pt", map_location=device)
            predict = make_predictor(model, IMAGENET_MEAN, IMAGENET_STD,
                                     channels_last=sweep.channels_last)
            result = run_sweep(predict, images, perturbations, sweep.batch_size, device,
                               keep=[item.name for item in samples])
            write_csv(f"plots/rotation/{run}.csv", rotation_table(result.frame, chosen.name))
            write_csv(f"plots/perturb/{run}.csv", perturbation_table(result.frame))
            write_json(f"metrics/equivariance/{run}.json",
                       equivariance_summary(result.frame, sweep.exact_atol))
            if sweep.gif:
                write_rotation_gif(f"plots/rotation/{run}.gif", result.kept[chosen.name])
            if sweep.samples:
                write_sample_grid(f"plots/samples/{run}.png", samples[:sweep.samples], result.kept)
            print(f"{run}: {len(images)} images x {len(perturbations)} perturbations")


if __name__ == "__main__":
    main()
