"""Rotations, flips, padding and valid regions: one convention, exact at 90 degrees, round trips."""

import math
import os

import numpy as np
import pytest
import torch

from equiseg.geometry import (
    flip_batch,
    footprint,
    pad_offsets,
    pad_to_square,
    rotate_batch,
    round_trip_valid,
)


def smooth_images(batch: int = 2, size: int = 32) -> torch.Tensor:
    """Low-frequency images, which bilinear interpolation reproduces almost exactly."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    channels = [torch.sin(1.3 * x + 0.7 * y), torch.cos(0.9 * x - 1.1 * y), x * y]
    image = torch.stack(channels) * 0.4 + 0.5
    return image.unsqueeze(0).repeat(batch, 1, 1, 1)


def test_positive_angles_turn_counter_clockwise_like_rot90():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert torch.equal(rotate_batch(x, 90), torch.rot90(x, 1, dims=(-2, -1)))
    # the top-right corner moves to the top-left corner under a counter-clockwise quarter turn
    assert rotate_batch(x, 90)[0, 0, 0, 0] == x[0, 0, 0, 3]


def test_multiples_of_90_degrees_are_exact_permutations():
    x = torch.rand(3, 2, 16, 16)
    for k, angle in enumerate([0, 90, 180, 270, 360, -90, 450]):
        expected = torch.rot90(x, round(angle / 90) % 4, dims=(-2, -1))
        assert torch.equal(rotate_batch(x, angle), expected), angle


def test_resampling_path_agrees_with_rot90_near_quarter_turns():
    """grid_sample and rot90 follow the same convention: a hair off 90 degrees is nearly rot90."""
    x = torch.rand(1, 3, 16, 16)
    for k in (1, 2, 3):
        near = rotate_batch(x, 90.0 * k + 1e-6)
        assert torch.allclose(near, torch.rot90(x, k, dims=(-2, -1)), atol=1e-4)


def test_a_bright_spot_on_the_right_moves_up_under_45_degrees():
    x = torch.zeros(1, 1, 33, 33)
    x[0, 0, 16, 28] = 1.0  # right of the centre
    turned = rotate_batch(x, 45)[0, 0]
    row, col = divmod(int(turned.argmax()), 33)
    assert row < 16 and col > 16  # upper right: counter-clockwise as displayed
    assert math.isclose(row, 16 - 12 / math.sqrt(2), abs_tol=1.0)


def test_each_image_gets_its_own_angle():
    x = torch.rand(4, 3, 16, 16)
    angles = [0.0, 30.0, 90.0, 200.0]
    together = rotate_batch(x, angles)
    for i, angle in enumerate(angles):
        assert torch.allclose(together[i:i + 1], rotate_batch(x[i:i + 1], angle), atol=1e-6)


@pytest.mark.parametrize("angle", [5.0, 30.0, 45.0, 137.0, 270.0])
def test_rotating_back_returns_the_original_inside_the_valid_region(angle):
    x = smooth_images()
    back = rotate_batch(rotate_batch(x, angle), -angle)
    valid = round_trip_valid(footprint(32, 32, 32), angle)
    assert valid.float().mean() > 0.55  # at least the inscribed disc
    error = (back - x).abs() * valid
    assert float(error.max()) < 0.03
    if angle % 90:
        # outside the valid region the content was lost: it came back as zeros
        assert float(((back - x).abs() * ~valid).max()) > 0.2




def test_flips_mirror_the_named_axis_and_undo_themselves():
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    assert flip_batch(x, "h")[0, 0, 0].tolist() == [2.0, 1.0, 0.0]
    assert flip_batch(x, "v")[0, 0, 0].tolist() == [3.0, 4.0, 5.0]
    assert torch.equal(flip_batch(flip_batch(x, "h"), "h"), x)
    with pytest.raises(ValueError):
        flip_batch(x, "d")


def test_pad_centres_the_image_and_footprint_marks_it():
    x = torch.rand(3, 20, 27)
    padded = pad_to_square(x, 32)
    assert padded.shape == (3, 32, 32)
    top, left = pad_offsets(20, 27, 32)
    assert (top, left) == (6, 2)
    assert torch.equal(padded[:, top:top + 20, left:left + 27], x)
    inside = footprint(20, 27, 32)
    assert int(inside.sum()) == 20 * 27
    assert bool(inside[0, top, left]) and not bool(inside[0, top - 1, left])
    with pytest.raises(ValueError):
        pad_offsets(40, 20, 32)


def test_footprint_matches_the_pipelines_centred_padding():
    """The pipeline pads with albumentations' PadIfNeeded(position='center'): same offsets."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from equiseg.data.transforms import build_transform, denormalise

    transform = build_transform("minimal", 32, 48)
    white, _ = transform(np.full((32, 21, 3), 255, np.uint8), np.zeros((32, 21)))
    pipeline = denormalise(white).amax(dim=0, keepdim=True) > 0.5
    assert torch.equal(pipeline, footprint(32, 21, 48))


def test_valid_region_is_the_footprint_at_quarter_turns_and_shrinks_off_grid():
    inside = footprint(24, 32, 32)
    valid = round_trip_valid(inside, [0.0, 90.0, 45.0])
    assert torch.equal(valid[0], inside) and torch.equal(valid[1], inside)
    assert bool((valid[2] <= inside).all())
    assert not bool(valid[2][0, 4, 0]) and bool(valid[2][0, 16, 16])


def test_rotations_need_square_images():
    with pytest.raises(ValueError, match="square"):
        rotate_batch(torch.rand(1, 3, 16, 24), 30)
