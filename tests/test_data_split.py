"""The train/validation split: deterministic, stratified by species, written atomically."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from equiseg.data import DataError, assign_splits, split_manifest
from equiseg.data.datasets import load_split
from equiseg.data.prepare import write_synthetic

ROOT = Path(__file__).resolve().parents[1]


def ids_per_species(counts: dict[str, int]) -> list[str]:
    return [f"{species}{k + 1:04d}" for species, n in counts.items() for k in range(n)]


def test_same_seed_same_split_and_another_seed_another():
    ids = ids_per_species({"001": 40, "002": 25, "003": 9})
    assert assign_splits(ids, 0.2, 0) == assign_splits(list(reversed(ids)), 0.2, 0)
    assert assign_splits(ids, 0.2, 0) != assign_splits(ids, 0.2, 1)


def test_every_species_gives_its_share_to_validation():
    counts = {"001": 40, "002": 25, "003": 9, "004": 2, "005": 1}
    splits = assign_splits(ids_per_species(counts), 0.2, 0)
    val = {s: sum(1 for i, v in splits.items() if i[:3] == s and v == "val") for s in counts}
    # round(n * 0.2), but at least one and never all of a species; a single image trains
    assert val == {"001": 8, "002": 5, "003": 2, "004": 1, "005": 0}


def test_a_species_split_does_not_depend_on_the_other_species():
    alone = assign_splits(ids_per_species({"002": 25}), 0.2, 3)
    together = assign_splits(ids_per_species({"001": 40, "002": 25}), 0.2, 3)
    assert all(together[i] == split for i, split in alone.items())


def test_nothing_to_validate_on_is_an_error():
    with pytest.raises(DataError, match="too few"):
        assign_splits(["0010001", "0020001"], 0.2, 0)


def test_manifest_columns_paths_and_string_ids(tmp_path):
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    write_synthetic(raw, n_images=20, image_size=32, species=2)
    manifest = split_manifest(raw, 0.2, 0)
    assert list(manifest.columns) == ["id", "species", "split", "image", "mask"]
    assert len(manifest) == 20
    assert manifest["split"].value_counts().to_dict() == {"train": 16, "val": 4}
    row = manifest.iloc[0]
    assert row["image"] == f"{raw.as_posix()}/images/{row['id']}.png"
    assert row["mask"] == f"{raw.as_posix()}/segmentations/{row['id']}_seg0.png"
    assert all(Path(p).exists() for p in np.concatenate([manifest["image"], manifest["mask"]]))


def test_split_stage_writes_the_csv_and_prints_counts(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["synthetic"].update(n_images=20, image_size=32, species=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("download", "split"):
        result = subprocess.run([sys.executable, str(ROOT / "src" / f"{stage}.py")], cwd=tmp_path,
                                capture_output=True, text=True, check=False, timeout=120)
        assert result.returncode == 0, result.stderr
    assert "total" in result.stdout and "16" in result.stdout
    train = load_split(tmp_path / "data" / "split.csv", "train")
    val = load_split(tmp_path / "data" / "split.csv", "val")
    assert len(train) == 16 and len(val) == 4 and set(train["id"]).isdisjoint(val["id"])
    assert train["id"].iloc[0].startswith("00")  # ids keep their leading zeros
    assert train["image"].iloc[0].startswith("data/raw/images/")  # relative to the project root
    assert (tmp_path / "metrics" / "data.json").exists()


def test_split_stage_names_the_params_key_when_there_is_nothing_to_validate_on(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["synthetic"].update(n_images=2, image_size=32, species=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    runs = [subprocess.run([sys.executable, str(ROOT / "src" / f"{stage}.py")], cwd=tmp_path,
                           capture_output=True, text=True, check=False, timeout=120)
            for stage in ("download", "split")]
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[1].returncode == 2
    [line] = runs[1].stderr.strip().splitlines()
    assert line.startswith("error: ") and "too few" in line and "`data.synthetic.n_images`" in line
    assert not (tmp_path / "data" / "split.csv").exists()
