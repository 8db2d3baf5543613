"""The synthetic butterflies: deterministic, exact masks, symmetric, fast, in the Leeds layout."""

from __future__ import annotations

import time

import numpy as np
import pytest

from equiseg.config import ConfigError, SyntheticConfig
from equiseg.data import list_pair_ids, read_leeds_mask, read_pair
from equiseg.data.layout import mask_path
from equiseg.data.prepare import write_synthetic
from equiseg.data.synthetic import (
    Pose,
    draw_pose,
    generate_synthetic,
    render_butterfly,
    species_styles,
)


def _items(seed=0, n=6, size=64, orientation="upright"):
    return list(generate_synthetic(n, size, 3, orientation, seed))


def test_same_seed_same_images_and_masks():
    for (id_a, im_a, m_a), (id_b, im_b, m_b) in zip(_items(), _items(), strict=True):
        assert id_a == id_b
        np.testing.assert_array_equal(im_a, im_b)
        np.testing.assert_array_equal(m_a, m_b)


def test_another_seed_gives_other_images():
    assert not any(np.array_equal(a[1], b[1]) for a, b in zip(_items(0), _items(1)))


def test_an_image_does_not_depend_on_how_many_are_generated():
    few, many = _items(n=3), _items(n=9)
    for a, b in zip(few, many):
        np.testing.assert_array_equal(a[1], b[1])


def test_output_types_ids_and_foreground_share():
    items = _items(n=12)
    assert [i for i, _, _ in items[:4]] == ["0010001", "0020001", "0030001", "0010002"]
    for _, image, mask in items:
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        assert mask.shape == (64, 64) and mask.dtype == np.bool_
        assert 0.08 < mask.mean() < 0.45  # a butterfly, neither a speck nor the whole frame
        assert not mask[0].all() and not mask[:, 0].all()  # it fits inside the frame


def test_mask_is_exact_and_bilaterally_symmetric():
    """Centred on a pixel column with no tilt, the mask mirrors exactly about that column."""
    style = species_styles(3, 0)[1]
    size = 65
    pose = Pose(cx=32.0, cy=32.0, radius=24.0, rotation_deg=0.0)
    _, mask = render_butterfly(np.random.default_rng(0), style, size, pose)
    np.testing.assert_array_equal(mask, mask[:, ::-1])


def test_a_quarter_turn_of_the_pose_turns_the_mask():
    style = species_styles(3, 0)[2]
    upright = render_butterfly(np.random.default_rng(5), style, 65, Pose(32.0, 32.0, 24.0, 0.0))[1]
    turned = render_butterfly(np.random.default_rng(5), style, 65, Pose(32.0, 32.0, 24.0, 90.0))[1]
    agreement = (np.rot90(upright) == turned).mean()  # counter-clockwise, as np.rot90
    assert agreement > 0.998  # all but float ties on the boundary


def test_the_butterfly_is_painted_where_the_mask_says():
    """Inside the mask the image is the flat wing paint, outside it the grainy clutter: the
    local roughness (mean absolute difference of neighbours) separates them."""
    for _, image, mask in _items(n=6, size=128):
        grey = image.astype(float).mean(axis=2)
        rough = np.abs(np.diff(grey, axis=1))
        inner = mask[:, 1:] & mask[:, :-1]
        outer = ~mask[:, 1:] & ~mask[:, :-1]
        assert np.median(rough[outer]) > 1.5 * np.median(rough[inner])


def test_orientations_upright_with_jitter_or_uniform():
    rng = np.random.default_rng(0)
    upright = [draw_pose(rng, 128, "upright", 15.0).rotation_deg for _ in range(400)]
    uniform = [draw_pose(rng, 128, "uniform", 15.0).rotation_deg for _ in range(400)]
    assert 10 < np.std(upright) < 20 and abs(np.mean(upright)) < 3
    assert min(uniform) < 30 and max(uniform) > 330 and 80 < np.std(uniform) < 125


def test_written_in_the_leeds_layout_with_palette_masks(tmp_path):
    fractions = write_synthetic(tmp_path, n_images=10, image_size=32, species=2)
    ids = list_pair_ids(tmp_path)
    assert ids == sorted(fractions) and len(ids) == 10
    image, _ = read_pair(tmp_path / "images" / f"{ids[0]}.png", mask_path(tmp_path, ids[0]))
    expected = next(generate_synthetic(10, 32, 2, "upright", 0))
    np.testing.assert_array_equal(image, expected[1])  # PNG is lossless: the exact pixels
    np.testing.assert_array_equal(read_leeds_mask(mask_path(tmp_path, ids[0])), expected[2])


def test_generation_is_vectorised():
    start = time.perf_counter()
    items = list(generate_synthetic(50, 128, 5, "uniform", 0))
    assert len(items) == 50
    # about 0.5 s here (200 images: about 2 s); a per-pixel Python loop would take minutes
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("field, value, key", [
    ("orientation_jitter_deg", -1.0, "data.synthetic.orientation_jitter_deg"),
    ("species", 1000, "data.synthetic.species"),
    ("orientation", "sideways", "data.synthetic.orientation"),
])
def test_synthetic_params_are_validated_by_name(field, value, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        SyntheticConfig(**{field: value}).validate()
