"""The rotation_sweep stage: contract outputs over seeds, exact group U-Net, and the same numbers as
the audit."""

import dataclasses
import json
import math
import runpy

import pandas as pd
import pytest
import torch
from PIL import Image

from equiseg.analysis.set_tables import PERTURB_COLUMNS, ROTATION_COLUMNS
from equiseg.cli import main as equiseg_main
from equiseg.config import load_params
from equiseg.nn.models import build_model, save_trained
from tests.tiny_project import SRC, write_pairs, write_params

SWEEP = {"angle_step": 45.0, "image_index": 1, "brightness": [0.0, 0.3], "contrast": [1.0, 1.5],
         "noise": [0.0, 0.2], "shift": [0.0, 1.0, 1.5], "scale": [1.0, 1.25], "samples": 2,
         "batch_size": 6}
LEVEL_FLAGS = ["--angle-step", "45", "--brightness", "0", "0.3", "--contrast", "1", "1.5",
               "--noise", "0", "0.2", "--shift", "0,1,1.5", "--scale", "1", "1.25",
               "--batch-size", "6"]
RUNS = ("unet-minimal", "gunet-minimal")


def crop_to_landscape(root, box=(0, 4, 32, 28)):
    """Make the 32x32 pairs 32 wide and 24 high, so the padding to 48 is uneven and visible."""
    for folder in ("images", "segmentations"):
        for path in (root / "data/raw" / folder).glob("*.png"):
            with Image.open(path) as image:
                cropped = image.crop(box)
            cropped.save(path)


def save_models(root, seeds=(0,)) -> None:
    params = load_params(root / "params.yaml")
    for seed in seeds:
        torch.manual_seed(seed)
        for name in params.models:
            architecture = dataclasses.asdict(params.architecture(name))
            save_trained(root / f"models/{name}-minimal-seed{seed}.pt",
                         build_model(name, **architecture), name, architecture,
                         {"augment": "minimal"})


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep_project")
    write_pairs(root, n_train=0, n_val=4)
    crop_to_landscape(root)
    write_params(root, models=["unet", "gunet"], augments=["minimal"],
                 data={"image_size": 32, "pad_size": 48}, sweep=SWEEP)
    save_models(root)
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
        # the sweep's columns (means over seeds, same names for `dvc plots`), their sd, and n
        figures = [c for c in ROTATION_COLUMNS if c != "angle"]
        assert list(rotation.columns) == ["angle", *[c for f in figures for c in (f, f + "_sd")],
                                          "n"]
        assert rotation["angle"].tolist() == [0, 45, 90, 135, 180, 225, 270, 315]
        assert (rotation["n"] == 1).all() and rotation["set_iou_gt_mean_sd"].isna().all()
        perturb = pd.read_csv(swept / f"plots/perturb/{run}.csv")
        assert list(perturb.columns[:2]) == list(PERTURB_COLUMNS[:2])
        assert all(c in perturb.columns and c + "_sd" in perturb.columns
                   for c in PERTURB_COLUMNS[2:])
        assert perturb["perturbation"].unique().tolist() == [
            "flip_h", "flip_v", "brightness", "contrast", "noise", "shift", "scale"]
        with Image.open(swept / f"plots/rotation/{run}.gif") as gif:
            assert gif.n_frames == 8
        with Image.open(swept / f"plots/samples/{run}.png") as grid:
            assert grid.width > grid.height / 2  # two rows of three panels
        seeds = pd.read_csv(swept / f"plots/equivariance/{run}.csv")
        assert seeds["seed"].tolist() == [0] and 0.0 <= seeds["worst_angle_iou"][0] <= 1.0
        summary = json.loads((swept / f"metrics/equivariance/{run}.json").read_text())
        assert summary == {"n": 1, "consistency_iou_off_grid": {
            "mean": pytest.approx(seeds["consistency_iou_off_grid"][0]), "sd": None},
            "exact_at_90_multiples": bool(seeds["exact_at_90_multiples"][0])}


def test_group_unet_comes_out_exact_at_quarter_turns_and_unet_does_not(swept):
    gunet = json.loads((swept / "metrics/equivariance/gunet-minimal.json").read_text())
    unet = json.loads((swept / "metrics/equivariance/unet-minimal.json").read_text())
    assert gunet["exact_at_90_multiples"] is True
    gunet_seeds = pd.read_csv(swept / "plots/equivariance/gunet-minimal.csv")
    assert gunet_seeds["consistency_iou_at_90_multiples"].tolist() == [1.0]
    assert unet["exact_at_90_multiples"] is False
    # each run's row knows its group's angles: p4 every 90 degrees, the plain net none but 0
    assert gunet_seeds["group_turn"].tolist() == [90.0]
    assert gunet_seeds["exact_at_group_angles"].tolist() == [True]
    unet_seeds = pd.read_csv(swept / "plots/equivariance/unet-minimal.csv")
    assert unet_seeds["group_turn"].tolist() == [360.0]
    assert unet_seeds["exact_at_group_angles"].isna().all()  # nothing to judge
    rotation = pd.read_csv(swept / "plots/rotation/gunet-minimal.csv").set_index("angle")
    assert (rotation.loc[[90, 180, 270], "set_iou_consistency_min"] == 1.0).all()


def test_stage_and_audit_command_give_the_same_numbers(swept, monkeypatch, capsys):
    monkeypatch.chdir(swept)
    equiseg_main(["audit", "--model", "models/gunet-minimal-seed0.pt", "--images", "data/raw/images",
                  "--masks", "data/raw/segmentations", "--out", "audit", "--pad-size", "48",
                  "--device", "cpu", "--channels-last", "--allow-degenerate", *LEVEL_FLAGS])
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


def test_seeds_are_swept_each_and_summarised_by_mean_sample_sd_and_n(tmp_path, monkeypatch):
    write_pairs(tmp_path, n_train=0, n_val=3)
    write_params(tmp_path, models=["unet"], augments=["minimal"], seeds=[0, 5],
                 sweep={**SWEEP, "image_index": 0, "gif": False, "samples": 0, "flips": False})
    save_models(tmp_path, seeds=(0, 5))
    run_stage(tmp_path, monkeypatch)
    seeds = pd.read_csv(tmp_path / "plots/equivariance/unet-minimal.csv")
    assert seeds["seed"].tolist() == [0, 5]
    a, b = seeds["consistency_iou_off_grid"]
    assert a != b
    summary = json.loads((tmp_path / "metrics/equivariance/unet-minimal.json").read_text())
    assert summary["n"] == 2
    assert summary["consistency_iou_off_grid"]["mean"] == pytest.approx((a + b) / 2)
    assert summary["consistency_iou_off_grid"]["sd"] == pytest.approx(abs(a - b) / math.sqrt(2))
    rotation = pd.read_csv(tmp_path / "plots/rotation/unet-minimal.csv").set_index("angle")
    assert (rotation["n"] == 2).all() and rotation["set_iou_gt_mean_sd"].notna().all()
    assert (rotation.loc[0, "set_iou_consistency_mean_sd"] == 0.0)  # upright agrees with itself


def test_a_model_missing_for_a_seed_stops_before_any_output(tmp_path, monkeypatch, capsys):
    write_pairs(tmp_path, n_train=0, n_val=2)
    write_params(tmp_path, models=["unet"], augments=["minimal"], seeds=[0, 1],
                 sweep={**SWEEP, "image_index": 0})
    save_models(tmp_path, seeds=(0,))
    with pytest.raises(SystemExit) as stopped:
        run_stage(tmp_path, monkeypatch)
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "models/unet-minimal-seed1.pt" in error and "dvc repro" in error and "\n" not in error
    assert not (tmp_path / "plots").exists() and not (tmp_path / "metrics").exists()
