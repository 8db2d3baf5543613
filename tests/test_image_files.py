"""One reader of images and masks for the pipeline and the audit (`equiseg.image_files`)."""

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from equiseg.analysis import inputs
from equiseg.audit.folders import ImageFile, load_image
from equiseg.data.datasets import load_split
from equiseg.image_files import DataError, header_size, read_labels, read_leeds_mask, read_rgb
from tests.tiny_project import write_pairs

SRC = Path(__file__).resolve().parents[1] / "src" / "equiseg"
DECODERS = re.compile(r"cv2\.imread\(|cv2\.imdecode\(|Image\.open\(")


def test_no_module_but_image_files_decodes_a_file():
    decoding = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                      if p.name != "image_files.py" and DECODERS.search(p.read_text()))
    assert not decoding, f"decode images through equiseg.image_files, not in: {decoding}"


def test_grey_alpha_and_16_bit_files_all_read_as_rgb_uint8(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    cv2.imwrite(str(tmp_path / "wide.png"), grey.astype(np.uint16) * 257)
    Image.fromarray(np.dstack([grey] * 3 + [np.full_like(grey, 7)]), "RGBA").save(tmp_path / "a.png")
    for name in ("grey.png", "wide.png", "a.png"):
        rgb = read_rgb(tmp_path / name)
        assert rgb.dtype == np.uint8 and rgb.shape == (3, 4, 3), name
        np.testing.assert_array_equal(rgb[..., 1], grey, err_msg=name)


def test_an_exif_rotated_jpeg_reads_as_stored_like_its_header_and_its_mask(tmp_path):
    """EXIF orientation 6 (turn 90 degrees to display): OpenCV would apply it, Pillow does not;
    applied, a 16 x 24 image would no longer fit its 16 x 24 mask."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (24, 16), (200, 30, 30)).save(tmp_path / "turned.jpg", exif=exif)
    assert Image.open(tmp_path / "turned.jpg").getexif()[0x0112] == 6
    assert read_rgb(tmp_path / "turned.jpg").shape[:2] == (16, 24)
    assert header_size(tmp_path / "turned.jpg") == (24, 16)


def test_a_validation_image_without_a_readable_header_is_an_error_naming_it(tmp_path, monkeypatch):
    write_pairs(tmp_path, n_train=1, n_val=1, size=16)
    rows = load_split(tmp_path / "data/split.csv", "val")
    monkeypatch.setattr(inputs, "header_size", lambda path: None)  # decodable, header unreadable
    with pytest.raises(DataError, match=rf"{rows['image'][0]}: image header cannot be read"):
        inputs.validation_images(rows, 16, 16, root=tmp_path)


def test_an_unreadable_image_is_an_error_naming_it_and_the_audit_skips_it(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png: image cannot be read"):
        read_rgb(tmp_path / "broken.png")
    assert load_image(ImageFile("broken", tmp_path / "broken.png", None), classes=1) is None


def test_the_leeds_rule_is_the_same_for_the_pipeline_and_a_users_mask(tmp_path):
    image = Image.fromarray(np.array([[0, 1, 2, 3]], dtype=np.uint8), "P")
    image.putpalette([0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 255, 0])
    image.save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_leeds_mask(tmp_path / "m.png"), [[False, True, False, True]])
    np.testing.assert_array_equal(read_labels(tmp_path / "m.png", 1), [[False, True, False, True]])
