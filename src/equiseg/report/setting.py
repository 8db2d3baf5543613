"""What a pipeline report was run on: data, profile, seeds, protocols, runs, training and sweep
settings, one bullet each, and a warning when it is not the paper's setting."""

from __future__ import annotations

from typing import Any

from equiseg.config import Params
from equiseg.report.tables import PROTOCOL_NAMES

PROTOCOLS = {"uniform": "each image turned by k·90° with k uniform in 0..3, a quarter upright",
             "seed": "the seed's RandomRotate90(p=0.5), 62.5% of the images upright"}


def setting_markdown(params: Params, data_info: dict[str, Any]) -> str:
    """What was run: data, profile and the key parameters, one bullet each."""
    source = data_info.get("source", params.data.source)
    pairs = data_info.get("n_pairs")
    split = ""
    if "n_train" in data_info and "n_val" in data_info:
        split = f": {data_info['n_train']} train / {data_info['n_val']} validation"
    data = f"{source}" + (f", {pairs} image/mask pairs{split}" if pairs is not None else "")
    if "n_species" in data_info:
        data += f", {data_info['n_species']} species"
    train = params.train
    images = params.sweep.max_images or "all"
    return "\n".join([
        f"- **Data:** {data}",
        f"- **Profile:** `{params.profile}`",
        (f"- **Seeds:** {list(params.seeds)} (n={len(params.seeds)}): tables give mean ± sample "
         "sd over seeds (ddof=1; no sd with one seed), curves a band of ± sd"),
        ("- **Validation protocols:** every validation image is scored at 0, 90, 180 and 270°; "
         f"*{PROTOCOL_NAMES['uniform']}* ({PROTOCOLS['uniform']}) and *{PROTOCOL_NAMES['seed']}* "
         f"({PROTOCOLS['seed']}) are expectations over the draw of turns (no draw noise); the "
         f"seed's single draw is fixed by `evaluate.rot90_seed` {params.evaluate.rot90_seed}"),
        f"- **Runs:** {', '.join(params.models)} × {', '.join(params.augments)} augmentation",
        (f"- **Training:** {train.epochs} epochs, batch {train.batch_size}, learning rate "
         f"{train.lr:g}, weight decay {train.weight_decay:g}, images "
         f"{params.data.image_size} px padded to {params.data.pad_size} px"),
        (f"- **Rotation sweep:** every {params.sweep.angle_step:g}° over {images} validation "
         "images"),
    ])


def setting_caveat(params: Params, data_info: dict[str, Any]) -> str | None:
    """A warning when this is not the paper's setting (Leeds data, `paper` profile), else None."""
    source = data_info.get("source", params.data.source)
    caveats = []
    if source != "leeds":
        caveats.append(f"the data are `{source}`, not the Leeds Butterfly images")
    if params.profile != "paper":
        caveats.append(f"the profile is `{params.profile}`, not `paper`")
    if not caveats:
        return None
    return ("**Not the paper's setting:** " + "; ".join(caveats)
            + ". Compare these numbers only with runs of the same setting.")
