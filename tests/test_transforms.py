"""Preprocessing and augmentation: shapes, dtypes, normalisation, padding, mask alignment, and a
`full` rotation that scales x and y alike."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from equiseg.data.augment_settings import FullAugmentConfig
from equiseg.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_transform,
    denormalise,
)
from equiseg.errors import InvalidValue


def shape_pair(height=48, width=64, seed=0):
    """A white ellipse on black and its mask: the image is drawn from the mask."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), np.uint8)
    centre = (int(rng.integers(20, width - 20)), int(rng.integers(16, height - 16)))
    cv2.ellipse(mask, centre, (14, 7), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    image = np.repeat(mask[..., None] * 255, 3, axis=2).astype(np.uint8)
    return image, mask.astype(bool)


@pytest.mark.parametrize("name", ["minimal", "full"])
def test_output_shapes_and_dtypes(name):
    transform = build_transform(name, image_size=32, pad_size=48)
    image, mask = transform(*transform.resize(*shape_pair()))
    assert image.shape == (3, 48, 48) and image.dtype == torch.float32
    assert mask.shape == (1, 48, 48) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_imagenet_normalisation():
    transform = build_transform("minimal", image_size=16, pad_size=16)
    mean_colour = (np.array(IMAGENET_MEAN) * 255).round().astype(np.uint8)
    image, _ = transform(np.tile(mean_colour, (16, 16, 1)), np.zeros((16, 16), bool))
    assert image.abs().max() < 0.02  # the ImageNet mean maps to 0
    white, _ = transform(np.full((16, 16, 3), 255, np.uint8), np.zeros((16, 16), bool))
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(white[:, 0, 0], expected.float(), atol=1e-4, rtol=0)


def test_longest_side_resized_keeping_aspect_then_padded_black_and_centred():
    transform = build_transform("minimal", image_size=32, pad_size=48)
    image = np.full((48, 64, 3), 200, np.uint8)  # 4:3 -> 24 x 32 -> centred in 48 x 48
    small, small_mask = transform.resize(image, np.ones((48, 64), bool))
    assert small.shape == (24, 32, 3) and small_mask.shape == (24, 32)
    out, mask = transform(small, small_mask)
    rgb = denormalise(out)
    content = (slice(12, 36), slice(8, 40))
    assert torch.allclose(rgb[:, content[0], content[1]], torch.tensor(200 / 255), atol=1e-3)
    padding = torch.ones(48, 48, dtype=torch.bool)
    padding[content] = False
    assert rgb[:, padding].abs().max() < 1e-3  # black constant padding
    assert mask[0, content[0], content[1]].all() and not mask[0, padding].any()


def test_minimal_is_deterministic_and_full_varies_with_its_seed():
    image, mask = shape_pair()
    minimal = build_transform("minimal", 32, 32)
    first, second = minimal(image, mask), (minimal.reseed(7), minimal(image, mask))[1]
    assert torch.equal(first[0], second[0])
    full = build_transform("full", 32, 32)
    outputs = []
    for seed in (1, 1, 2):
        full.reseed(seed)
        outputs.append(full(image, mask))
    assert torch.equal(outputs[0][0], outputs[1][0])  # same seed, same augmentation
    assert not torch.equal(outputs[0][0], outputs[2][0])


def test_mask_stays_aligned_with_the_image_under_full_augmentation():
    transform = build_transform("full", image_size=64, pad_size=64)
    plain = build_transform("minimal", image_size=64, pad_size=64)
    moved = 0
    for seed in range(12):
        image, mask = shape_pair(seed=seed)
        transform.reseed(seed)
        out, out_mask = transform(image, mask)
        grey = denormalise(out).mean(dim=0)
        inside, outside = grey[out_mask[0] > 0], grey[out_mask[0] == 0]
        assert inside.numel() > 100  # SafeRotate keeps the whole shape in view
        threshold = (inside.median() + outside.median()) / 2
        drawn = grey > threshold
        iou = (drawn & (out_mask[0] > 0)).sum() / (drawn | (out_mask[0] > 0)).sum()
        assert iou > 0.9, f"seed {seed}: image and mask disagree (IoU {iou:.2f})"
        moved += not torch.equal(out_mask, plain(image, mask)[1])
    assert moved >= 3  # the geometry really changed (SafeRotate fires half the time)


def test_unknown_augmentation_is_refused():
    with pytest.raises(InvalidValue, match="'augment' is 'heavy'"):
        build_transform("heavy", 32, 32)


def disc_pair(height=60, width=90, radius=18):
    """A white disc on a black non-square picture, and its mask."""
    mask = np.zeros((height, width), np.uint8)
    cv2.circle(mask, (width // 2, height // 2), radius, 1, -1)
    return np.repeat(mask[..., None] * 255, 3, axis=2), mask.astype(bool)


def aspect(mask: np.ndarray) -> float:
    """Longest over shortest axis of a mask's second moments (1 for a disc)."""
    ys, xs = np.nonzero(mask)
    low, high = np.linalg.eigvalsh(np.cov(np.stack([ys, xs]).astype(float)))
    return float(np.sqrt(high / low))


@pytest.mark.parametrize("border", ["reflect_101", "constant"])
def test_full_rotation_scales_x_and_y_alike_so_a_disc_stays_a_disc(border):
    """SafeRotate shrinks a rotated frame to fit; on a non-square frame albumentations 2.x shrinks x
    and y differently. Rotating on the square canvas keeps the disc round (the old pipeline: aspect
    up to 2.2 on this image)."""
    image, mask = disc_pair()
    transform = build_transform("full", image_size=64, pad_size=96, p=1.0, rotate_border=border)
    plain = build_transform("minimal", image_size=64, pad_size=96)
    upright = plain(image, mask)[1][0].numpy() > 0.5
    for seed in range(50):
        transform.reseed(seed)
        _, out = transform(image, mask)
        out = out[0].numpy() > 0.5
        count, labels = cv2.connectedComponents(out.astype(np.uint8))
        disc = labels == labels[48, 48]  # reflect_101 may mirror copies into the corners
        if border == "constant":
            assert count == 2  # background and the disc, nothing else
        assert aspect(disc) <= 1.1, f"seed {seed}: the disc became an ellipse"
        ys, xs = np.nonzero(disc)
        box = np.ptp(ys) + 1, np.ptp(xs) + 1
        assert max(box) / min(box) <= 1.1
        assert 0.45 * upright.sum() <= disc.sum() <= 1.05 * upright.sum()  # SafeRotate shrinks
    assert aspect(upright) <= 1.05


@pytest.mark.parametrize("border, corner", [("reflect_101", 1.0), ("constant", 0.0)])
def test_the_rotation_border_fills_image_and_mask_alike(border, corner):
    """A white picture filling its canvas, turned 45 degrees: the corners come from the border."""
    transform = build_transform("full", image_size=32, pad_size=32, p=1.0, rotate_limit=(45, 45),
                                rotate_border=border)
    transform.reseed(0)
    image, mask = transform(np.full((32, 32, 3), 255, np.uint8), np.ones((32, 32), bool))
    grey = denormalise(image).mean(dim=0)
    assert grey[0, 0] == pytest.approx(corner, abs=0.3) and mask[0, 0, 0] == corner
    assert grey[16, 16] > 0.5 and mask[0, 16, 16] == 1


def test_colour_jitter_leaves_the_black_padding_black():
    """Photometric augmentation runs before padding: the canvas around the image stays black."""
    transform = build_transform("full", image_size=32, pad_size=48, p=1.0, rotate_limit=0,
                                rotate_border="constant")
    image = np.full((24, 32, 3), 120, np.uint8)  # 24 x 32 -> rows 12..35 of 48
    changed = 0
    for seed in range(8):
        transform.reseed(seed)
        rgb = denormalise(transform(image, np.ones((24, 32), bool))[0])
        assert rgb[:, :10].abs().max() < 1e-3 and rgb[:, 38:].abs().max() < 1e-3
        changed += not torch.allclose(rgb[:, 24, 24], torch.tensor(120 / 255), atol=2e-3)
    assert changed >= 6  # the jitter did act on the image itself


def test_full_augment_defaults_are_the_params_defaults():
    """build_transform's defaults and `params.full_augment`'s are one set of numbers."""
    assert build_transform("full", 32, 32).full == dataclasses.asdict(FullAugmentConfig())
    assert build_transform("full", 32, 32, p=1.0).full["p"] == 1.0


def test_a_wrong_border_is_refused_by_name():
    with pytest.raises(InvalidValue, match="'rotate_border' is 'wrap'"):
        build_transform("full", 32, 32, rotate_border="wrap")
