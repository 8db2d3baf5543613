"""Stage `evaluate`: one JSON per params model x augment, the summary table, and clear failures."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import pytest
import torch

from equiseg.config import load_params
from equiseg.nn.models import build_model, save_trained
from equiseg.train.seeding import seed_everything
from tests.tiny_project import SRC, write_pairs, write_params

ROTATIONS = ("rot0", "rot90", "rot180", "rot270")


def _main(script: str):
    spec = importlib.util.spec_from_file_location(script.removesuffix(".py") + "_stage", SRC / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def save_untrained_models(root, image_size: int = 32) -> None:
    """Randomly initialised models in place of trained ones: evaluation does not care."""
    params = load_params(root / "params.yaml")
    for model in (*params.models, "gunet_p4m"):  # gunet_p4m: a stray file params do not name
        architecture = dataclasses.asdict(params.architectures.get(model) or
                                          params.architecture("gunet"))
        architecture["group"] = {"unet": "trivial", "gunet": "p4", "gunet_p4m": "p4m"}[model]
        for augment in params.augments:
            seed_everything(len(model) + len(augment))
            save_trained(root / f"models/{model}-{augment}.pt", build_model(model, **architecture),
                         model, architecture, {"augment": augment, "image_size": image_size,
                                               "pad_size": image_size})


@pytest.fixture
def project(tmp_path, monkeypatch):
    write_pairs(tmp_path, n_train=6, n_val=6)
    write_params(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_writes_each_models_metrics_and_the_summary_table(project):
    save_untrained_models(project)
    _main("evaluate.py")([])
    names = [f"{m}-{a}" for m in ("unet", "gunet") for a in ("minimal", "full")]
    summary = json.loads((project / "metrics/summary.json").read_text())
    assert list(summary) == names  # params' models x augments, never a glob of files
    assert not (project / "metrics/evaluate/gunet_p4m-full.json").exists()
    for name in names:
        record = json.loads((project / f"metrics/evaluate/{name}.json").read_text())
        assert set(record) == {"train_loss", "train_iou", "val_loss", "val_iou",
                               "val_iou_per_image", *ROTATIONS}
        assert all(set(record[r]) == {"val_loss", "val_iou"} for r in ROTATIONS)
        assert summary[name] == {k: record[k] for k in ("train_iou", "train_loss", "val_iou",
                                                        "val_loss")}


def test_a_p4_equivariant_model_scores_the_same_at_every_quarter_turn(project):
    write_params(project, train={"bf16_cpu": True})  # training's bf16 never reaches evaluation
    save_untrained_models(project)
    _main("evaluate.py")([])
    gunet = json.loads((project / "metrics/evaluate/gunet-full.json").read_text())
    unet = json.loads((project / "metrics/evaluate/unet-full.json").read_text())
    for r in ROTATIONS:
        assert gunet[r]["val_iou"] == pytest.approx(gunet["rot0"]["val_iou"], abs=1e-6)
        assert gunet[r]["val_loss"] == pytest.approx(gunet["rot0"]["val_loss"], rel=1e-5)
    assert gunet["val_loss"] == pytest.approx(gunet["rot0"]["val_loss"], rel=1e-5)
    assert len({round(unet[r]["val_loss"], 6) for r in ROTATIONS}) > 1  # a plain U-Net is not


def test_validation_metrics_match_the_final_epoch_of_training(project):
    write_params(project, models=["unet"], augments=["full"],
                 train={"epochs": 1, "bf16_cpu": True})  # validation in fp32 in both
    _main("train.py")(["--model", "unet", "--augment", "full"])
    _main("evaluate.py")([])
    trained = json.loads((project / "metrics/train/unet-full.json").read_text())
    evaluated = json.loads((project / "metrics/summary.json").read_text())["unet-full"]
    assert evaluated["val_iou"] == pytest.approx(trained["val_iou"], abs=1e-9)
    assert evaluated["val_loss"] == pytest.approx(trained["val_loss"], rel=1e-6)


def test_a_missing_model_fails_naming_it_and_writes_nothing(project, capsys):
    save_untrained_models(project)
    (project / "models/gunet-full.pt").unlink()
    with pytest.raises(SystemExit) as stopped:
        _main("evaluate.py")([])
    assert stopped.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "models/gunet-full.pt" in line
    assert not (project / "metrics").exists()


def test_a_model_trained_at_another_image_size_is_refused(project, capsys):
    save_untrained_models(project, image_size=64)
    with pytest.raises(SystemExit):
        _main("evaluate.py")([])
    assert "data.image_size" in capsys.readouterr().err
    assert not (project / "metrics").exists()


def test_evaluation_is_deterministic(project):
    save_untrained_models(project)
    _main("evaluate.py")([])
    first = (project / "metrics/summary.json").read_text()
    torch.manual_seed(123)  # the global generator's state must not matter
    _main("evaluate.py")([])
    assert (project / "metrics/summary.json").read_text() == first
