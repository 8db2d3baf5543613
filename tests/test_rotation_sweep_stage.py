"""The rotation_sweep stage: contract outputs, exact group U-Net, and the same numbers as the audit."""

import dataclasses
import json
import runpy

import pandas as pd
import pytest
import torch
from PIL import Image

from equiseg.analysis.sweep import PERTURB_COLUMNS, ROTATION_COLUMNS
from equiseg.cli import main as equiseg_main
from equiseg.config import load_params
from equiseg.nn.models import build_model, save_trained
from tests.tiny_project import SRC, write_pairs, write_params

SWEEP = {"angle_step": 45.0, "image_index": 1, "brightness": [0.0, 0.3], "contrast": [1.0, 1.5],
         "noise": [0.0, 0.2], "samples": 2, "batch_size": 6}
LEVEL_FLAGS = ["--angle-step", "45", "--brightness", "0", "0.3", "--contrast", "1", "1.5",
               "--noise", "0", "0.2", "--batch-size", "6"]
RUNS = ("unet-minimal", "gunet-minimal")


def crop_to_landscape(root, box=(0, 4, 32, 28)):
    """Make the 32x32 pairs 32 wide and 24 high, so the padding to 48 is uneven and visible."""
    for folder in ("images", "segmentations"):
        for path in (root / "data/raw" / folder).glob("*.png"):
            with Image.open(path) as image:
                cropped = image.crop(box)
            cropped.save(path)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep_project")
    write_pairs(root, n_train=0, n_val=4)
    crop_to_landscape(root)
    write_params(root, models=["unet", "gunet"], augments=["minimal"],
                 data={"image_size": 32, "pad_size": 48}, sweep=SWEEP)
    params = load_params(root / "params.yaml")
    torch.manual_seed(0)
    for name in params.models:
        architecture = dataclasses.asdict(params.architecture(name))
        save_trained(root / f"models/{name}-minimal.pt", build_model(name, **architecture), name,
                     architecture, {"augment": "minimal"})
    return root


def run_stage(root, monkeypatch, *args):
    monkeypatch.chdir(root)
    runpy.run_path(str(SRC / "rotation_sweep.py"))["main"](list(args))


@pytest.fixture(scope="module")
def swept(project):
    with pytest.MonkeyPatch.context() as monkeypatch:
        run_stage(project, monkeypatch)
    return project


def test_stage_writes_every_contract_output(swept):
    for run in RUNS:
        rotation = pd.read_csv(swept / f"plots/rotation/{run}.csv")
        assert tuple(rotation.columns) == ROTATION_COLUMNS
        assert rotation["angle"].tolist() == [0, 45, 90, 135, 180, 225, 270, 315]
        perturb = pd.read_csv(swept / f"plots/perturb/{run}.csv")
        assert tuple(perturb.columns) == PERTURB_COLUMNS
        assert perturb["perturbation"].unique().tolist() == [
            "flip_h", "flip_v", "brightness", "contrast", "noise"]
        with Image.open(swept / f"plots/rotation/{run}.gif") as gif:
            assert gif.n_frames == 8
        with Image.open(swept / f"plots/samples/{run}.png") as grid:
            assert grid.width > grid.height / 2  # two rows of three panels
        summary = json.loads((swept / f"metrics/equivariance/{run}.json").read_text())
        assert 0.0 <= summary["worst_angle_iou"] <= 1.0


def test_group_unet_comes_out_exact_at_quarter_turns_and_unet_does_not(swept):
    gunet = json.loads((swept / "metrics/equivariance/gunet-minimal.json").read_text())
    unet = json.loads((swept / "metrics/equivariance/unet-minimal.json").read_text())
    assert gunet["exact_at_90_multiples"] is True
    assert gunet["consistency_iou_at_90_multiples"] == 1.0
    assert unet["exact_at_90_multiples"] is False
    rotation = pd.read_csv(swept / "plots/rotation/gunet-minimal.csv").set_index("angle")
    assert (rotation.loc[[90, 180, 270], "set_iou_consistency_min"] == 1.0).all()


def test_stage_and_audit_command_give_the_same_numbers(swept, monkeypatch, capsys):
    monkeypatch.chdir(swept)
    equiseg_main(["audit", "--model", "models/gunet-minimal.pt", "--images", "data/raw/images",
                  "--masks", "data/raw/segmentations", "--out", "audit", "--pad-size", "48",
                  "--device", "cpu", "--channels-last", *LEVEL_FLAGS])
    stage = pd.read_csv("plots/rotation/gunet-minimal.csv")
    audit = pd.read_csv("audit/rotation.csv")
    columns = [c for c in ROTATION_COLUMNS if c.startswith("set_")]
    assert stage["angle"].tolist() == audit["angle"].tolist()
    for column in columns:  # the stage's images went through normalise/denormalise: float noise
        assert stage[column].to_numpy() == pytest.approx(
            audit[column].to_numpy(), rel=1e-6, abs=1e-6), column
    stage_perturb = pd.read_csv("plots/perturb/gunet-minimal.csv")
    audit_perturb = pd.read_csv("audit/perturb.csv")
    for column in PERTURB_COLUMNS[2:]:
        assert stage_perturb[column].to_numpy() == pytest.approx(
            audit_perturb[column].to_numpy(), rel=1e-6, abs=1e-6), column
    assert json.loads(capsys.readouterr().out)["exact_at_90_multiples"] is True


def test_an_image_index_beyond_the_set_is_a_one_line_error(project, monkeypatch, capsys, tmp_path):
    write_params(project, models=["gunet"], augments=["minimal"],
                 data={"image_size": 32, "pad_size": 48}, sweep={**SWEEP, "image_index": 9})
    try:
        with pytest.raises(SystemExit) as exit_info:
            run_stage(project, monkeypatch)
    finally:
        write_params(project, models=["unet", "gunet"], augments=["minimal"],
                     data={"image_size": 32, "pad_size": 48}, sweep=SWEEP)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "sweep.image_index" in error and "\n" not in error
