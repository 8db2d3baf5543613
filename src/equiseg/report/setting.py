"""What was run, as the report's first section says it: the data, profile, seeds, protocols,
runs and key parameters, and a warning when this is not the paper's setting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from equiseg.report.tables import PROTOCOL_NAMES


@dataclass(frozen=True)
class ReportSetting:
    """What was run: the runs the report reads (models x augments x seeds) and the settings its
    first section names. The report stage reads them from params.yaml."""

    models: tuple[str, ...]
    augments: tuple[str, ...]
    seeds: tuple[int, ...]
    profile: str
    source: str  # the data source, unless metrics/data.json names it
    image_size: int
    pad_size: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    rot90_seed: int  # the evaluate stage's single draw of turns
    angle_step: float
    max_images: int  # validation images in the sweep, 0 = all
    gif: bool  # whether the sweep draws GIFs (so a missing one is reported)
    model_groups: dict[str, str]  # each model's symmetry group (trivial, p4, c8, ...)


PROTOCOLS = {"uniform": "each image turned by k·90° with k uniform in 0..3, a quarter upright",
             "seed": "the seed's RandomRotate90(p=0.5), 62.5% of the images upright"}


def setting_markdown(setting: ReportSetting, data_info: dict[str, Any]) -> str:
    """What was run: data, profile and the key parameters, one bullet each."""
    source = data_info.get("source", setting.source)
    pairs = data_info.get("n_pairs")
    split = ""
    if "n_train" in data_info and "n_val" in data_info:
        split = f": {data_info['n_train']} train / {data_info['n_val']} validation"
    data = f"{source}" + (f", {pairs} image/mask pairs{split}" if pairs is not None else "")
    if "n_species" in data_info:
        data += f", {data_info['n_species']} species"
    images = setting.max_images or "all"
    return "\n".join([
        f"- **Data:** {data}",
        f"- **Profile:** `{setting.profile}`",
        (f"- **Seeds:** {list(setting.seeds)} (n={len(setting.seeds)}): tables give mean ± sample "
         "sd over seeds (ddof=1; no sd with one seed), curves a band of ± sd"),
        ("- **Validation protocols:** every validation image is scored at 0, 90, 180 and 270°; "
         f"*{PROTOCOL_NAMES['uniform']}* ({PROTOCOLS['uniform']}) and *{PROTOCOL_NAMES['seed']}* "
         f"({PROTOCOLS['seed']}) are expectations over the draw of turns (no draw noise); the "
         f"seed's single draw is fixed by `evaluate.rot90_seed` {setting.rot90_seed}"),
        f"- **Runs:** {', '.join(setting.models)} × {', '.join(setting.augments)} augmentation",
        (f"- **Training:** {setting.epochs} epochs, batch {setting.batch_size}, learning rate "
         f"{setting.lr:g}, weight decay {setting.weight_decay:g}, images "
         f"{setting.image_size} px padded to {setting.pad_size} px"),
        (f"- **Rotation sweep:** every {setting.angle_step:g}° over {images} validation "
         "images"),
    ])


def setting_caveat(setting: ReportSetting, data_info: dict[str, Any]) -> str | None:
    """A warning when this is not the paper's setting (Leeds data, `paper` profile), else None."""
    source = data_info.get("source", setting.source)
    caveats = []
    if source != "leeds":
        caveats.append(f"the data are `{source}`, not the Leeds Butterfly images")
    if setting.profile != "paper":
        caveats.append(f"the profile is `{setting.profile}`, not `paper`")
    if not caveats:
        return None
    return ("**Not the paper's setting:** " + "; ".join(caveats)
            + ". Compare these numbers only with runs of the same setting.")
