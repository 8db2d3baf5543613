"""Has a training run stopped learning? Its gain over the last quarter of its epochs.

Convention: for a per-epoch curve of E epochs, the gain is the value after the last epoch minus
the value after epoch E - ceil(E/4) (the start of the last quarter). A run whose validation IoU
gained less than `CONVERGED_GAIN` there is called converged; one epoch tells nothing (NaN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

CONVERGED_GAIN = 0.005


def last_quarter_gain(values: Sequence[float]) -> float:
    """values[-1] - values[E - ceil(E/4) - 1] for a curve of E >= 2 epochs; NaN for fewer."""
    epochs = len(values)
    if epochs < 2:
        return math.nan
    return float(values[-1]) - float(values[epochs - math.ceil(epochs / 4) - 1])


def converged(gain: float) -> bool | None:
    """True when the gain is below `CONVERGED_GAIN`; None when it is unknown."""
    return None if math.isnan(gain) else gain < CONVERGED_GAIN
