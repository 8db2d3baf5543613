"""IoU, consistency and decibels against hand-computed cases, empty masks and valid regions."""

import math

import pytest
import torch

from equiseg.metrics import (
    PSNR_CAP_DB,
    iou_counts,
    max_abs_difference,
    mean_abs_difference,
    mean_squared_difference,
    per_class_iou,
    per_image_iou,
    pooled_iou,
    pooled_psnr_db,
    psnr_from_mse,
)


def masks(*rows: str) -> torch.Tensor:
    """A (1, H, W) boolean mask drawn with '#' for True."""
    return torch.tensor([[c == "#" for c in row] for row in rows]).unsqueeze(0)


def test_iou_of_hand_drawn_masks():
    a = masks("##..", "##..")
    b = masks(".##.", ".##.")
    inter, union = iou_counts(a, b)
    assert inter.tolist() == [2.0] and union.tolist() == [6.0]
    assert per_image_iou(a, b).tolist() == pytest.approx([1 / 3])


def test_two_empty_masks_agree_perfectly_and_one_empty_mask_not_at_all():
    empty, full = masks("...", "..."), masks("###", "###")
    assert per_image_iou(empty, empty).tolist() == [1.0]
    assert per_image_iou(empty, full).tolist() == [0.0]


def test_pooled_and_per_image_iou_differ_as_defined():
    pred = torch.stack([masks("##", "##"), masks("#.", "..")])
    target = torch.stack([masks("##", "##"), masks(".#", "..")])
    inter, union = iou_counts(pred, target)
    assert pooled_iou(inter, union) == pytest.approx(4 / 6)
    assert per_image_iou(pred, target).tolist() == pytest.approx([1.0, 0.0])


def test_the_valid_region_restricts_every_figure():
    a, b = masks("##", ".."), masks("#.", "..")
    valid = masks("#.", "#.")
    assert per_image_iou(a, b, valid).tolist() == [1.0]  # the disagreeing pixel is left out
    p, q = torch.tensor([[[[0.0, 1.0], [0.5, 0.5]]]]), torch.tensor([[[[0.2, 0.0], [0.5, 0.1]]]])
    valid4 = valid.unsqueeze(0)
    assert mean_abs_difference(p, q, valid4).tolist() == pytest.approx([0.1])
    assert max_abs_difference(p, q, valid4).tolist() == pytest.approx([0.2])
    assert max_abs_difference(p, q).tolist() == pytest.approx([1.0])


def test_mean_abs_difference_averages_pixels_and_channels():
    p = torch.zeros(1, 2, 2, 2)
    q = torch.zeros(1, 2, 2, 2)
    q[0, 1, 0, 0] = 0.8
    assert mean_abs_difference(p, q).tolist() == pytest.approx([0.1])


def psnr_db(p, q, valid=None):
    """Per-image PSNR as the sweep computes it: from each image's mean squared difference."""
    return psnr_from_mse(mean_squared_difference(p, q, valid))


def test_psnr_in_decibels_of_hand_computed_cases():
    p = torch.zeros(1, 1, 2, 2)
    q = torch.full((1, 1, 2, 2), 0.1)  # MSE 0.01 -> 20 dB
    assert psnr_db(p, q).tolist() == pytest.approx([20.0])
    q[0, 0, 0, 0] = 0.0  # MSE 0.0075 -> 21.249 dB
    assert psnr_db(p, q).tolist() == pytest.approx([10 * math.log10(1 / 0.0075)])


def test_identical_maps_get_the_documented_cap_not_infinity():
    p = torch.rand(3, 1, 4, 4)
    assert psnr_db(p, p).tolist() == [PSNR_CAP_DB] * 3
    assert psnr_db(p, p + 1e-7).tolist() == [PSNR_CAP_DB] * 3  # float noise counts as identical
    assert PSNR_CAP_DB == 100.0


def test_nothing_valid_gives_nan_not_a_number_that_looks_real():
    p, q = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    none = torch.zeros(1, 1, 2, 2, dtype=torch.bool)
    assert math.isnan(float(mean_abs_difference(p, q, none)))
    assert math.isnan(float(psnr_db(p, q, none)))


def test_per_class_iou_of_one_hot_masks():
    a = torch.stack([masks("##", ".."), masks("..", "##")], dim=1)  # (1, 2, 2, 2)
    b = torch.stack([masks("#.", "#."), masks(".#", ".#")], dim=1)
    assert per_class_iou(a, b).tolist() == [pytest.approx([1 / 3, 1 / 3])]


def test_set_level_db_pools_squared_errors_as_eq_r_and_differs_from_the_mean_of_psnrs():
    """Two images at MSE 1e-2 and 1e-4: PSNRs 20 and 40 dB, mean 30.0 dB; pooled 23.0 dB."""
    p = torch.zeros(2, 1, 2, 2)
    q = torch.stack([torch.full((1, 2, 2), 0.1), torch.full((1, 2, 2), 0.01)])
    per_image = psnr_db(p, q)
    assert per_image.tolist() == pytest.approx([20.0, 40.0])
    assert float(per_image.mean()) == pytest.approx(30.0)
    pooled = pooled_psnr_db([1e-2, 1e-4], [4, 4])
    assert pooled == pytest.approx(10 * math.log10(1 / 0.00505)) and round(pooled, 1) == 23.0
    # pixels, not images, are pooled: a 3x larger image weighs 3x more
    assert pooled_psnr_db([1e-2, 1e-4], [1, 3]) == pytest.approx(10 * math.log10(1 / 0.002575))
    assert pooled_psnr_db([0.0, 0.0], [4, 4]) == PSNR_CAP_DB  # identical maps: the cap
    assert pooled_psnr_db([float("nan"), 1e-2], [4, 4]) == pytest.approx(20.0)
    assert math.isnan(pooled_psnr_db([float("nan")], [0]))
