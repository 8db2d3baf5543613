"""The one preprocessing: a mask drawn as an image lands on its resized mask, wherever it is used.

The test image *is* its mask (white where the mask is set, in every channel), so after any resize
the image thresholded at half grey must coincide with the resized mask. Nearest-neighbour mask
resizing fails this (it shifts masks by (s - 1) / 2s pixels against an area-averaged image).
"""

from __future__ import annotations

import io
import zipfile

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from equiseg.audit.folders import ImageFile, load_image
from equiseg.data import preprocessing, transforms
from equiseg.data.layout import read_leeds_mask
from equiseg.data.preprocessing import (
    pad_to_canvas,
    resize_image,
    resize_labels,
    resize_mask,
    resized_shape,
)
from equiseg.data.transforms import build_transform, denormalise
from equiseg.geometry import pad_to_square
from tests.data_fixtures import SHARED_LEEDS_ZIP

SIZES = [(256, 256), (250, 250), (200, 300)]  # 256 -> 64 divides, the others do not


def blob_mask(height: int, width: int, seed: int) -> np.ndarray:
    """A few smooth random blobs covering 30% of the frame."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height // 40 + 2, width // 40 + 2)).astype(np.float32)
    field = cv2.GaussianBlur(cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC),
                             (0, 0), 4)
    return field > np.quantile(field, 0.7)


def drawn(mask: np.ndarray) -> np.ndarray:
    """The mask as an RGB uint8 picture: white on black."""
    return np.repeat(mask[..., None].astype(np.uint8) * 255, 3, axis=2)


def iou(a, b) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return float((a & b).sum() / (a | b).sum())


def nearest_resize(mask: np.ndarray, size: int) -> np.ndarray:
    """The old way: nearest-neighbour masks."""
    height, width = resized_shape(*mask.shape, size)
    return cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0


@pytest.mark.parametrize("height, width", SIZES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_mask_drawn_as_an_image_lands_on_its_resized_mask(height, width, seed):
    mask = blob_mask(height, width, seed)
    image = resize_image(drawn(mask), 64)
    small = resize_mask(mask, 64)
    assert image.shape[:2] == small.shape == resized_shape(height, width, 64)
    assert max(small.shape) == 64 and small.dtype == bool
    assert iou(image[..., 0] > 127, small) >= 0.99
    assert iou(image[..., 0] > 127, nearest_resize(mask, 64)) < 0.95  # the test can fail


def test_resized_shape_keeps_the_aspect():
    assert resized_shape(200, 300, 64) == (43, 64)
    assert resized_shape(300, 200, 64) == (64, 43)
    assert resized_shape(256, 256, 64) == (64, 64)
    assert resized_shape(1, 1000, 64) == (1, 64)  # never a zero-pixel side


def test_an_image_already_at_size_is_left_alone():
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    assert resize_image(image, 64) is image
    mask = image[..., 0] > 127
    np.testing.assert_array_equal(resize_mask(mask, 64), mask)


def test_class_index_maps_resize_each_class_on_its_image():
    """K classes: each one-hot map resized as a float, the most covered class wins."""
    labels = np.zeros((250, 250), np.int64)
    labels[blob_mask(250, 250, 1)] = 1
    labels[blob_mask(250, 250, 2)] = 2
    small = resize_labels(labels, 64, classes=3)
    assert small.shape == (64, 64) and small.dtype == labels.dtype
    assert set(np.unique(small)) == {0, 1, 2}
    for k in (1, 2):
        image = resize_image(drawn(labels == k), 64)
        assert iou(image[..., 0] > 127, small == k) >= 0.98


def test_the_canvas_is_centred_as_the_sweep_centres_it():
    image = np.arange(5 * 8, dtype=np.float32).reshape(5, 8) + 1
    padded = pad_to_canvas(image, 11)
    expected = pad_to_square(torch.from_numpy(image), 11).numpy()
    np.testing.assert_array_equal(padded, expected)
    rgb = pad_to_canvas(np.ones((5, 8, 3), np.uint8), 11)
    assert rgb.shape == (11, 11, 3) and rgb.sum() == 5 * 8 * 3


def test_imagenet_statistics_live_in_one_place():
    assert transforms.IMAGENET_MEAN is preprocessing.IMAGENET_MEAN
    assert transforms.IMAGENET_STD is preprocessing.IMAGENET_STD


@pytest.mark.parametrize("height, width", SIZES)
def test_training_preprocessing_keeps_the_mask_on_its_image(height, width):
    mask = blob_mask(height, width, 3)
    transform = build_transform("minimal", image_size=64, pad_size=96)
    image_t, mask_t = transform(*transform.resize(drawn(mask), mask))
    grey = denormalise(image_t)[0]
    assert iou(grey > 0.5, mask_t[0] > 0.5) >= 0.99


def write_pair(folder, name, mask: np.ndarray):
    Image.fromarray(drawn(mask)).save(folder / f"{name}.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{name}_mask.png")
    return ImageFile(name, folder / f"{name}.png", folder / f"{name}_mask.png")


@pytest.mark.parametrize("height, width", SIZES)
def test_the_audit_loader_keeps_the_mask_on_its_image(tmp_path, height, width):
    entry = write_pair(tmp_path, "blob", blob_mask(height, width, 4))
    item = load_image(entry, classes=1, size=64, pad_size=96)
    assert item.image.shape == (3, 96, 96) and item.target.shape == (1, 96, 96)
    assert item.target.dtype == torch.bool
    assert iou(item.image[0] > 0.5, item.target[0]) >= 0.99
    # the same pixels as the training pipeline gives
    transform = build_transform("minimal", image_size=64, pad_size=96)
    mask = np.asarray(Image.open(entry.mask)) > 127
    _, mask_t = transform(*transform.resize(drawn(mask), mask))
    assert torch.equal(mask_t[0] > 0.5, item.target[0])


def test_the_audit_loader_resizes_class_maps_on_their_image(tmp_path):
    labels = np.zeros((200, 300), np.uint8)
    labels[blob_mask(200, 300, 5)] = 1
    labels[blob_mask(200, 300, 6)] = 2
    Image.fromarray((labels == 2).astype(np.uint8) * 255).convert("RGB").save(tmp_path / "a.png")
    Image.fromarray(labels).save(tmp_path / "a_mask.png")
    item = load_image(ImageFile("a", tmp_path / "a.png", tmp_path / "a_mask.png"), classes=3,
                      size=64)
    assert set(item.target.unique().tolist()) == {0, 1, 2}
    assert iou(item.image[0] > 0.5, item.target[0] == 2) >= 0.98


needs_shared = pytest.mark.skipif(not SHARED_LEEDS_ZIP.exists(),
                                  reason=f"the real Leeds archive is not at {SHARED_LEEDS_ZIP}")


@needs_shared
def test_real_leeds_masks_land_on_their_images():
    """Six real masks (one in 139) drawn as images, resized to 64 px: on top of their masks."""
    with zipfile.ZipFile(SHARED_LEEDS_ZIP) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith("_seg0.png"))[::139]
        masks = [read_leeds_mask(io.BytesIO(archive.read(n)), name=n) for n in names]
    assert len(masks) == 6
    for name, mask in zip(names, masks):
        image = resize_image(drawn(mask), 64)
        assert iou(image[..., 0] > 127, resize_mask(mask, 64)) >= 0.99, name
    old = [iou(resize_image(drawn(m), 64)[..., 0] > 127, nearest_resize(m, 64)) for m in masks]
    assert np.mean(old) < 0.96  # what nearest-neighbour masks gave
