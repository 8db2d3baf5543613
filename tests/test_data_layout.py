"""The shared on-disk format: Leeds palette masks are read by index, never by colour."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from equiseg.data import DataError, list_pair_ids, read_leeds_mask, read_pair, write_palette_mask
from equiseg.data.layout import image_path, mask_path, species_of
from tests.data_fixtures import palette_mask_png


def write_mask(path, indices: np.ndarray) -> None:
    path.write_bytes(palette_mask_png(indices))


def test_foreground_is_indices_1_and_3_and_index_2_is_background(tmp_path):
    indices = np.array([[0, 1, 2, 3],
                        [2, 2, 1, 0],
                        [3, 0, 2, 1]], np.uint8)
    write_mask(tmp_path / "m.png", indices)
    mask = read_leeds_mask(tmp_path / "m.png")
    assert mask.dtype == np.bool_ and mask.shape == (3, 4)
    np.testing.assert_array_equal(mask, np.isin(indices, (1, 3)))
    assert not mask[indices == 2].any()


def test_opencv_would_get_the_palette_masks_wrong(tmp_path):
    """Why the single reader exists: OpenCV expands the palette, so index 2 (red) looks non-zero."""
    indices = np.array([[0, 2], [1, 3]], np.uint8)
    write_mask(tmp_path / "m.png", indices)
    expanded = cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_GRAYSCALE)
    assert expanded[0, 1] != 0  # a naive "non-zero is foreground" reader calls index 2 foreground
    assert not read_leeds_mask(tmp_path / "m.png")[0, 1]


def test_mask_with_an_unexpected_index_is_refused(tmp_path):
    write_mask(tmp_path / "m.png", np.array([[0, 4]], np.uint8))
    with pytest.raises(DataError, match=r"m\.png.*index 4"):
        read_leeds_mask(tmp_path / "m.png")


def test_rgb_mask_is_refused_naming_the_file(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match=r"rgb\.png.*mode 'RGB'"):
        read_leeds_mask(tmp_path / "rgb.png")


def test_corrupt_mask_is_refused_naming_the_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"bad\.png"):
        read_leeds_mask(tmp_path / "bad.png")


def test_written_masks_are_palette_pngs_that_read_back_exactly(tmp_path):
    foreground = np.random.default_rng(0).random((9, 7)) > 0.5
    write_palette_mask(tmp_path / "m.png", foreground)
    with Image.open(tmp_path / "m.png") as image:
        assert image.mode == "P"
        assert set(np.unique(np.array(image))) <= {0, 1}
    np.testing.assert_array_equal(read_leeds_mask(tmp_path / "m.png"), foreground)


def test_read_pair_refuses_a_mask_of_another_size(tmp_path):
    cv2.imwrite(str(tmp_path / "i.png"), np.zeros((5, 6, 3), np.uint8))
    write_mask(tmp_path / "m.png", np.zeros((5, 5), np.uint8))
    with pytest.raises(DataError, match=r"m\.png: mask is 5x5 but its image is 6x5"):
        read_pair(tmp_path / "i.png", tmp_path / "m.png")


def _raw_dir(tmp_path, ids, masks=None):
    (tmp_path / "images").mkdir()
    (tmp_path / "segmentations").mkdir()
    for image_id in ids:
        cv2.imwrite(str(image_path(tmp_path, image_id)), np.zeros((4, 4, 3), np.uint8))
    for image_id in ids if masks is None else masks:
        write_palette_mask(mask_path(tmp_path, image_id), np.zeros((4, 4), bool))
    return tmp_path


def test_pairs_are_listed_sorted_and_species_is_the_first_three_digits(tmp_path):
    raw = _raw_dir(tmp_path, ["0020001", "0010002", "0010001"])
    assert list_pair_ids(raw) == ["0010001", "0010002", "0020001"]
    assert species_of("0020001") == "002"


def test_an_image_without_its_mask_is_named(tmp_path):
    raw = _raw_dir(tmp_path, ["0010001", "0010002"], masks=["0010001"])
    with pytest.raises(DataError, match=r"0010002\.png: has no mask"):
        list_pair_ids(raw)


def test_a_missing_raw_folder_says_to_run_the_download_stage(tmp_path):
    with pytest.raises(DataError, match="download"):
        list_pair_ids(tmp_path / "nowhere")
