"""Replicates over seeds: mean, sample sd and n against hand-computed values, and the spread rule."""

import math

import pandas as pd
import pytest

from equiseg.analysis.replicates import differs_beyond_spread, replicate_stats


def test_mean_sample_sd_and_n_per_group_match_hand_computation():
    per_seed = pd.DataFrame({"seed": [0, 1, 2, 0, 1, 2], "angle": [0, 0, 0, 5, 5, 5],
                             "iou": [0.5, 0.6, 0.9, 0.7, 0.7, 0.7]})
    stats = replicate_stats(per_seed, by=["angle"])
    assert list(stats.columns) == ["angle", "iou", "iou_sd", "n"]  # seed is not a figure
    assert stats["angle"].tolist() == [0, 5]
    # angle 0: mean (0.5 + 0.6 + 0.9) / 3 = 2/3; deviations -1/6, -1/15, 7/30;
    # sum of squares (25 + 4 + 49) / 900 = 78/900; / (n - 1) = 0.04333..; sd = 0.20817
    assert stats.loc[0, "iou"] == pytest.approx(2 / 3)
    assert stats.loc[0, "iou_sd"] == pytest.approx(math.sqrt(78 / 900 / 2))
    assert stats.loc[0, "iou_sd"] == pytest.approx(0.208167, abs=1e-6)
    assert stats.loc[1, "iou"] == pytest.approx(0.7) and stats.loc[1, "iou_sd"] == 0.0
    assert stats["n"].tolist() == [3, 3]


def test_one_row_without_groups_and_sd_is_unknown_for_one_seed():
    two = replicate_stats(pd.DataFrame({"seed": [3, 7], "loss": [0.2, 0.4]}))
    assert len(two) == 1 and two.loc[0, "loss"] == pytest.approx(0.3)
    assert two.loc[0, "loss_sd"] == pytest.approx(math.sqrt(0.02))  # (0.1² + 0.1²) / 1
    assert two.loc[0, "n"] == 2
    one = replicate_stats(pd.DataFrame({"seed": [0], "loss": [0.2]}), columns=["loss"])
    assert one.loc[0, "loss"] == 0.2 and math.isnan(one.loc[0, "loss_sd"]) and one.loc[0, "n"] == 1


def test_spread_rule_is_means_further_apart_than_the_summed_sds():
    assert differs_beyond_spread(0.80, 0.01, 0.85, 0.02) is True  # 0.05 > 0.03
    assert differs_beyond_spread(0.80, 0.03, 0.85, 0.03) is False  # 0.05 <= 0.06
    assert differs_beyond_spread(0.80, float("nan"), 0.95, 0.01) is None  # one seed: unknown
