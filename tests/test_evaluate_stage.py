"""Stage `evaluate`: per-seed figures and mean/sd/n over seeds per params model x augment, lean
DVC metrics, and clear failures."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math

import pandas as pd
import pytest
import torch

from equiseg.config import load_params
from equiseg.nn.models import build_model, save_trained
from equiseg.train.seeding import seed_everything
from tests.tiny_project import SRC, write_pairs, write_params

ROTATIONS = ("rot0", "rot90", "rot180", "rot270")
RUNS = [f"{m}-{a}" for m in ("unet", "gunet") for a in ("minimal", "full")]
PER_SEED = ["seed", "train_loss", "train_iou", "val_loss", "val_iou", "val_iou_uniform_draw",
            "val_iou_seed", "val_iou_seed_draw",
            *[f"{r}_val_{k}" for r in ROTATIONS for k in ("iou", "loss")], "val_iou_turn_spread"]
HEADLINE = ("val_iou", "val_iou_seed", "val_iou_seed_draw")


def _main(script: str):
    spec = importlib.util.spec_from_file_location(script.removesuffix(".py") + "_stage", SRC / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def save_untrained_models(root, image_size: int = 32) -> None:
    """Randomly initialised models in place of trained ones, one per seed: evaluation does not
    care."""
    params = load_params(root / "params.yaml")
    for model in (*params.models, "gunet_p4m"):  # gunet_p4m: a stray file params do not name
        architecture = dataclasses.asdict(params.architectures.get(model) or
                                          params.architecture("gunet"))
        architecture["group"] = {"unet": "trivial", "gunet": "p4", "gunet_p4m": "p4m"}[model]
        for augment in params.augments:
            for seed in params.seeds:
                seed_everything(len(model) + len(augment) + 100 * seed)
                save_trained(root / f"models/{model}-{augment}-seed{seed}.pt",
                             build_model(model, **architecture), model, architecture,
                             {"augment": augment, "image_size": image_size,
                              "pad_size": image_size, "seed": seed})


def per_seed(root, run: str) -> pd.DataFrame:
    return pd.read_csv(root / f"plots/evaluate/{run}.csv")


def metrics(root, run: str) -> dict:
    return json.loads((root / f"metrics/evaluate/{run}.json").read_text())


@pytest.fixture
def project(tmp_path, monkeypatch):
    write_pairs(tmp_path, n_train=6, n_val=6)
    write_params(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_writes_each_runs_figures_per_seed_and_lean_metrics(project):
    save_untrained_models(project)
    _main("evaluate.py")([])
    # params' models x augments, never a glob of files
    assert sorted(p.stem for p in (project / "metrics/evaluate").iterdir()) == sorted(RUNS)
    assert sorted(p.stem for p in (project / "plots/evaluate").iterdir()) == sorted(RUNS)
    assert not (project / "metrics/summary.json").exists()  # evaluate/ is the one place
    for run in RUNS:
        rows = per_seed(project, run)
        assert list(rows.columns) == PER_SEED
        assert rows["seed"].tolist() == [0]
        turns = rows[[f"{r}_val_iou" for r in ROTATIONS]].iloc[0]
        assert rows["val_iou_turn_spread"][0] == pytest.approx(turns.max() - turns.min())
        # what `dvc metrics show` lists: both protocols' expectations and the seed's single draw
        assert metrics(project, run) == {
            "n": 1, **{key: {"mean": rows[key][0], "sd": None} for key in HEADLINE}}


def test_two_seeds_give_their_mean_sample_sd_and_n(project):
    write_params(project, models=["unet"], augments=["full"], seeds=[0, 3])
    save_untrained_models(project)
    _main("evaluate.py")([])
    rows = per_seed(project, "unet-full")
    assert rows["seed"].tolist() == [0, 3]
    a, b = rows["val_iou"]
    assert a != b  # two different models
    summary = metrics(project, "unet-full")
    assert summary["n"] == 2
    assert summary["val_iou"]["mean"] == pytest.approx((a + b) / 2)
    # sample sd of two values: sqrt(((a - m)^2 + (b - m)^2) / (2 - 1)) = |a - b| / sqrt(2)
    assert summary["val_iou"]["sd"] == pytest.approx(abs(a - b) / math.sqrt(2))
    drawn = rows["val_iou_seed_draw"]
    assert summary["val_iou_seed_draw"]["sd"] == pytest.approx(
        abs(drawn[0] - drawn[1]) / math.sqrt(2))


def test_a_p4_equivariant_model_scores_the_same_at_every_quarter_turn(project):
    write_params(project, train={"bf16_cpu": True})  # training's bf16 never reaches evaluation
    save_untrained_models(project)
    _main("evaluate.py")([])
    gunet = per_seed(project, "gunet-full").iloc[0]
    unet = per_seed(project, "unet-full").iloc[0]
    for r in ROTATIONS:
        assert gunet[f"{r}_val_iou"] == pytest.approx(gunet["rot0_val_iou"], abs=1e-6)
        assert gunet[f"{r}_val_loss"] == pytest.approx(gunet["rot0_val_loss"], rel=1e-5)
    assert gunet["val_loss"] == pytest.approx(gunet["rot0_val_loss"], rel=1e-5)
    assert gunet["val_iou_turn_spread"] == pytest.approx(0.0, abs=1e-6)
    for key in ("val_iou_seed", "val_iou_seed_draw", "val_iou_uniform_draw"):
        assert gunet[key] == pytest.approx(gunet["val_iou"], abs=1e-6)  # no protocol matters
    assert len({round(unet[f"{r}_val_loss"], 6) for r in ROTATIONS}) > 1  # a plain U-Net is not


def test_validation_metrics_match_the_final_epoch_of_training(project):
    write_params(project, models=["unet"], augments=["full"],
                 train={"epochs": 1, "bf16_cpu": True})  # validation in fp32 in both
    _main("train.py")(["--model", "unet", "--augment", "full", "--seed", "0"])
    _main("evaluate.py")([])
    trained = json.loads((project / "metrics/train/unet-full-seed0.json").read_text())
    evaluated = per_seed(project, "unet-full").iloc[0]
    for key in ("val_iou", "val_iou_seed"):
        assert evaluated[key] == pytest.approx(trained[key], abs=1e-9)
    assert evaluated["val_loss"] == pytest.approx(trained["val_loss"], rel=1e-6)


def test_both_protocols_are_expectations_of_the_four_quarter_turn_scores(project):
    """Expected intersections over expected unions: uniform weighs the turns 1/4 each, the
    seed's RandomRotate90(p=0.5) 5/8 upright and 1/8 for each other turn."""
    save_untrained_models(project)
    _main("evaluate.py")([])
    from equiseg.train.evaluation import protocol_iou
    row = per_seed(project, "unet-minimal").iloc[0]
    ious = [row[f"{r}_val_iou"] for r in ROTATIONS]
    assert max(ious) - min(ious) > 1e-3  # an untrained plain net: the turns differ
    # every validation mask has the same foreground, so the unions hardly differ between turns:
    # the expectations lie between the turns' IoUs, the seed's nearer the upright one
    assert min(ious) <= row["val_iou"] <= max(ious)
    assert abs(row["val_iou_seed"] - ious[0]) < abs(row["val_iou"] - ious[0]) + 1e-12
    counts = [{"intersection": i, "union": 1.0} for i in (0.5, 0.1, 0.1, 0.1)]
    assert protocol_iou(counts, "uniform") == pytest.approx(0.2)
    assert protocol_iou(counts, "seed") == pytest.approx(0.625 * 0.5 + 0.375 * 0.1)


def test_the_single_draw_is_fixed_by_rot90_seed_and_matches_a_drawn_set(project):
    from equiseg.data.datasets import SegmentationDataset, load_split
    from equiseg.data.transforms import build_transform
    from equiseg.train.evaluation import evaluate
    from equiseg.train.loaders import evaluation_loader
    write_params(project, models=["unet"], augments=["full"], evaluate={"rot90_seed": 5})
    save_untrained_models(project)
    _main("evaluate.py")([])
    row = per_seed(project, "unet-full").iloc[0]
    model = torch.load(project / "models/unet-full-seed0.pt", weights_only=True)
    from equiseg.nn.models import load_trained
    model, _ = load_trained(project / "models/unet-full-seed0.pt")
    for protocol in ("uniform", "seed"):
        drawn = SegmentationDataset(load_split("data/split.csv", "val"),
                                    build_transform("minimal", 32, 32), rot90_seed=5,
                                    rot90_protocol=protocol)
        alone = evaluate(model, evaluation_loader(drawn, batch_size=4), torch.device("cpu"))
        assert row[f"val_iou_{protocol}_draw"] == pytest.approx(alone["iou"], abs=1e-9)


def test_a_model_missing_for_a_seed_fails_naming_it_and_writes_nothing(project, capsys):
    write_params(project, seeds=[0, 1])
    save_untrained_models(project)
    (project / "models/gunet-full-seed1.pt").unlink()
    with pytest.raises(SystemExit) as stopped:
        _main("evaluate.py")([])
    assert stopped.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "models/gunet-full-seed1.pt" in line and "dvc repro" in line
    assert not (project / "metrics").exists() and not (project / "plots").exists()


def test_a_model_trained_at_another_image_size_is_refused(project, capsys):
    save_untrained_models(project, image_size=64)
    with pytest.raises(SystemExit):
        _main("evaluate.py")([])
    assert "data.image_size" in capsys.readouterr().err
    assert not (project / "metrics").exists()


def test_evaluation_is_deterministic(project):
    save_untrained_models(project)
    _main("evaluate.py")([])
    first = [(project / f"{folder}/unet-full.{ext}").read_text()
             for folder, ext in (("plots/evaluate", "csv"), ("metrics/evaluate", "json"))]
    torch.manual_seed(123)  # the global generator's state must not matter
    _main("evaluate.py")([])
    assert [(project / f"{folder}/unet-full.{ext}").read_text()
            for folder, ext in (("plots/evaluate", "csv"), ("metrics/evaluate", "json"))] == first
