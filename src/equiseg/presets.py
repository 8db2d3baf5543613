"""The named models' architectures: the one place each is written, and the words they use.

`build_model(name)` builds `MODEL_PRESETS[name]`; params.yaml's `architectures` section starts
from it, so a section may set only what changes. conf/config.yaml repeats the presets (so that
`-S architectures.unet.filters=...` needs no `+`); `tests/test_params.py` checks that it does,
line for line. Plain Python, no torch: a base module (nothing of the library above it), so the
parameter schema reads it without loading `equiseg.nn` before any stage runs.
"""

from __future__ import annotations

from typing import Any

MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "unet": {"skeleton": "seed", "group": "trivial", "filters": (32, 32, 64, 64),
             "norm_groups": 4, "group_pool": "mean"},
    "gunet": {"skeleton": "seed", "group": "p4", "filters": (16, 16, 32, 32),
              "norm_groups": 4, "group_pool": "mean"},
    "gunet_p4m": {"skeleton": "seed", "group": "p4m", "filters": (12, 12, 24, 24),
                  "norm_groups": 4, "group_pool": "mean"},
    "gunet_c8": {"skeleton": "seed", "group": "c8", "filters": (12, 12, 28, 28),
                 "norm_groups": 4, "group_pool": "mean"},
    "gunet_d8": {"skeleton": "seed", "group": "d8", "filters": (8, 8, 20, 20),
                 "norm_groups": 4, "group_pool": "mean"},
    "unet_4level": {"skeleton": "four_level", "group": "trivial", "filters": (32, 32, 64, 64),
                    "norm_groups": 8, "group_pool": "mean"},
    "gunet_4level": {"skeleton": "four_level", "group": "p4", "filters": (16, 16, 32, 32),
                     "norm_groups": 8, "group_pool": "mean"},
}
MODEL_NAMES = tuple(MODEL_PRESETS)
SKELETONS = ("seed", "four_level")  # the seed's U-Net, this project's earlier one
GROUP_NAMES = ("trivial", "p4", "p4m", "c8", "d8")
PERMUTATION_GROUPS = ("trivial", "p4", "p4m")  # the four-level skeleton's (no steerable layers)
GROUP_POOLS = ("mean", "max")
