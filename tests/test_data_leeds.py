"""Reading the Leeds archive: pairs found in the official layout, validated, written flat."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from equiseg.data import (
    ArchiveSource,
    DataError,
    extract_leeds,
    find_leeds_pairs,
    prepare_leeds,
    read_leeds_mask,
    verify_checksum,
)
from equiseg.data.layout import list_pair_ids, mask_path
from equiseg.data.leeds import species_names
from tests.data_fixtures import (
    SHARED_LEEDS_SHA256,
    SHARED_LEEDS_ZIP,
    LeedsArchiveSpec,
    leeds_indices,
    leeds_members,
    make_leeds_zip,
    sha256_of,
)


def leeds_config(tmp_path, archive) -> dict:
    """prepare_leeds's arguments for a local archive."""
    return {"raw_dir": tmp_path / "data" / "raw", "archive": archive,
            "checksum": f"sha256:{sha256_of(archive)}", "urls": (),
            "download_dir": tmp_path / "cache"}


def test_official_layout_is_written_flat_with_masks_unchanged(tmp_path):
    archive = make_leeds_zip(tmp_path / "leeds.zip")
    config = leeds_config(tmp_path, archive)
    summary = prepare_leeds(**config)
    raw = tmp_path / "data" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == ["images", "segmentations"]
    ids = list_pair_ids(raw)
    assert ids == list(LeedsArchiveSpec().ids)
    # the palette indices survive extraction: index 2 stays background
    indices = leeds_indices(24, 32, 0)
    np.testing.assert_array_equal(read_leeds_mask(mask_path(raw, ids[0])), np.isin(indices, (1, 3)))
    assert summary["source"] == "leeds" and summary["n_pairs"] == 6
    assert summary["species_counts"] == {"001": 3, "002": 2, "003": 1}
    assert summary["species_names"]["001"] == "Danaus plexippus (Monarch)"
    fractions = [np.isin(leeds_indices(24, 32, n), (1, 3)).mean() for n in range(6)]
    assert summary["mean_foreground_fraction"] == pytest.approx(np.mean(fractions), abs=1e-4)
    json.dumps(summary)  # metrics/data.json material


def test_an_extracted_folder_works_without_a_checksum(tmp_path):
    folder = tmp_path / "extracted"
    for name, data in leeds_members(LeedsArchiveSpec()).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    assert prepare_leeds(tmp_path / "raw", archive=folder, checksum="")["n_pairs"] == 6


@pytest.mark.parametrize("spec, message", [
    (LeedsArchiveSpec(corrupt_image="0010002"),
     r"leedsbutterfly/images/0010002\.png: image cannot be"),
    (LeedsArchiveSpec(missing_mask="0020001"), r"leedsbutterfly/images/0020001\.png: has no mask"),
    (LeedsArchiveSpec(mask_size_off="0010003"),
     r"0010003_seg0\.png: mask is 32x23 but its image is 32x24"),
    (LeedsArchiveSpec(extra_members={"leedsbutterfly/segmentations/0090001_seg0.png": b""}),
     r"0090001_seg0\.png: mask without an image"),
], ids=["corrupt-image", "missing-mask", "size-mismatch", "orphan-mask"])
def test_a_bad_pair_stops_everything_naming_the_file(tmp_path, spec, message):
    archive = make_leeds_zip(tmp_path / "leeds.zip", spec)
    raw = tmp_path / "data" / "raw"
    with pytest.raises(DataError, match=message):
        prepare_leeds(**leeds_config(tmp_path, archive))
    assert not raw.exists()
    assert list((tmp_path / "data").iterdir()) == []  # not even the temporary folder


def test_a_failed_run_leaves_the_previous_data_untouched(tmp_path):
    good = make_leeds_zip(tmp_path / "good.zip")
    prepare_leeds(**leeds_config(tmp_path, good))
    bad = make_leeds_zip(tmp_path / "bad.zip", LeedsArchiveSpec(corrupt_image="0030001"))
    with pytest.raises(DataError):
        prepare_leeds(**leeds_config(tmp_path, bad))
    assert len(list_pair_ids(tmp_path / "data" / "raw")) == 6


def test_an_archive_without_images_is_not_taken_for_leeds(tmp_path):
    archive = make_leeds_zip(tmp_path / "other.zip", LeedsArchiveSpec(ids=()))
    with pytest.raises(DataError, match="Leeds Butterfly archive"):
        prepare_leeds(**leeds_config(tmp_path, archive))


def test_two_masks_for_one_image_are_refused(tmp_path):
    extra = {"leedsbutterfly/segmentations/0010001_seg1.png": b""}
    archive = make_leeds_zip(tmp_path / "leeds.zip", LeedsArchiveSpec(extra_members=extra))
    with pytest.raises(DataError, match="0010001.png: has 2 masks"):
        prepare_leeds(**leeds_config(tmp_path, archive))


needs_shared = pytest.mark.skipif(not SHARED_LEEDS_ZIP.exists(),
                                  reason=f"the real Leeds archive is not at {SHARED_LEEDS_ZIP}")


@needs_shared
def test_real_leeds_archive_pairs_and_a_handful_of_masks():
    verify_checksum(SHARED_LEEDS_ZIP, f"sha256:{SHARED_LEEDS_SHA256}")
    with ArchiveSource(SHARED_LEEDS_ZIP) as source:
        pairs = find_leeds_pairs(source)
        assert len(pairs) == 832
        assert len({p.image_id[:3] for p in pairs}) == 10
        assert species_names(source)["001"].startswith("Danaus plexippus")
        seen_index_2 = False
        for pair in pairs[::139]:  # six pairs across the species
            with source.open(pair.mask_member) as stream:
                mask = read_leeds_mask(stream, name=pair.mask_member)
            with source.open(pair.mask_member) as stream, Image.open(stream) as image:
                assert image.mode == "P"
                indices = np.array(image)
            seen_index_2 |= bool((indices == 2).any())
            assert 0.02 < mask.mean() < 0.8
            np.testing.assert_array_equal(mask, np.isin(indices, (1, 3)))
            assert not mask[indices == 2].any()
        assert seen_index_2  # 0020115 and 0090103 hold index 2 (red in the palette): background


@needs_shared
def test_real_leeds_subset_extracts(tmp_path):
    """A handful of real pairs, re-zipped in the official layout, go through extraction."""
    few_zip = tmp_path / "few.zip"
    with zipfile.ZipFile(SHARED_LEEDS_ZIP) as real, zipfile.ZipFile(few_zip, "w") as few:
        for image_id in ("0010001", "0050010", "0100003"):
            for name in (f"leedsbutterfly/images/{image_id}.png",
                         f"leedsbutterfly/segmentations/{image_id}_seg0.png"):
                few.writestr(name, real.read(name))
    with ArchiveSource(few_zip) as source:
        fractions = extract_leeds(source, tmp_path / "raw")
    assert sorted(fractions) == ["0010001", "0050010", "0100003"]
    assert all(0.02 < f < 0.8 for f in fractions.values())
