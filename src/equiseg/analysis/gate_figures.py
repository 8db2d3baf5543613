"""The named figures a CI gate can test (`equiseg audit --fail-under NAME=VALUE`), each read off
a summary of `equiseg.analysis.summary.summarize`, and the `--perturb` families each one needs.
"""

from __future__ import annotations

from collections.abc import Callable

from equiseg.analysis.exactness import FLIPS
from equiseg.analysis.families import REGISTRY, member_names


def _worst_of(summary: dict, names: tuple[str, ...]) -> float | None:
    values = [summary["perturbations"][n]["worst_consistency_iou"] for n in names
              if n in summary["perturbations"]]
    values = [v for v in values if v is not None]
    return min(values) if values else None


# geometric families drawn as curves against their level (shift, scale): a gate each, by name
_CURVED = tuple(f.name for f in REGISTRY.values() if f.geometric and f.plot.kind == "curve")
GATE_METRICS: dict[str, tuple[str, Callable[[dict], float | None]]] = {
    "consistency": ("worst-rotation mean consistency IoU",
                    lambda s: s["perturbations"].get("rotate", {}).get("worst_consistency_iou")),
    "consistency_90": ("mean consistency IoU at 90, 180 and 270 degrees",
                       lambda s: s["perturbations"].get("rotate", {}).get(
                           "consistency_iou_at_90_multiples")),
    "iou_gt": ("worst-rotation mean IoU against the masks (needs --masks)",
               lambda s: s["perturbations"].get("rotate", {}).get("worst_mean_iou_gt")),
    "psnr_db": ("pooled dB (EQ-R) of the rotations off the 90-degree grid",
                lambda s: s["perturbations"].get("rotate", {}).get("psnr_db_pooled_off_grid")),
    "flip": ("worst flip's mean consistency IoU", lambda s: _worst_of(s, FLIPS)),
    "photometric": ("worst photometric level's mean consistency IoU",
                    lambda s: _worst_of(s, member_names(geometric=False))),
    **{name: (f"worst {name} level's mean consistency IoU",
              lambda s, members=REGISTRY[name].member_names: _worst_of(s, members))
       for name in _CURVED},
}
# the --perturb families a gate's figure needs (any one of them)
GATE_NEEDS: dict[str, tuple[str, ...]] = {
    "consistency": ("rotate",), "consistency_90": ("rotate",), "iou_gt": ("rotate",),
    "psnr_db": ("rotate",), "flip": ("flip",),
    "photometric": tuple(f.name for f in REGISTRY.values() if not f.geometric),
    **{name: (name,) for name in _CURVED}}


def gate_value(summary: dict, name: str) -> float | None:
    """The figure a gate named `name` tests (see GATE_METRICS); None if the sweep lacks it."""
    return GATE_METRICS[name][1](summary)
