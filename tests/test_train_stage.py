"""Stage `train` end to end on a tiny project: outputs, determinism, kill-and-resume, torchrun, errors."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from equiseg.data.datasets import SegmentationDataset, load_split
from equiseg.data.transforms import build_transform
from equiseg.nn.models import load_trained
from equiseg.train.evaluation import evaluate, quarter_turn_figures
from equiseg.train.loaders import evaluation_loader
from equiseg.train.loop import HISTORY_COLUMNS
from tests.tiny_project import SRC, run_stage, stage_command, stage_env, write_pairs, write_params

RUN = ("--model", "unet", "--augment", "full")
EPOCHS = 3
OUTPUTS = ("models/unet-full-seed0.pt", "plots/train/unet-full-seed0.csv",
           "metrics/train/unet-full-seed0.json")
TIMING = ".cache/timings/train/unet-full-seed0.json"  # wall-clock time differs between runs


def new_project(root: Path, **sections) -> Path:
    write_pairs(root, n_train=24, n_val=8)
    write_params(root, train={"epochs": EPOCHS, **sections.pop("train", {})}, **sections)
    return root


def snapshot(root: Path) -> dict:
    """What a run produced, in a form that compares bit for bit (all but the timing)."""
    metrics = json.loads((root / OUTPUTS[2]).read_text())
    model, meta = load_trained(root / OUTPUTS[0])
    seconds = json.loads((root / TIMING).read_text())["seconds"]  # kept out of the outputs
    return {"csv": (root / OUTPUTS[1]).read_text(), "seconds": seconds,
            "metrics": metrics, "weights": model.state_dict(), "meta": meta}


def assert_same_run(a: dict, b: dict) -> None:
    assert a["csv"] == b["csv"]
    assert a["metrics"] == b["metrics"]  # floats compared exactly
    assert a["weights"].keys() == b["weights"].keys()
    assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> dict:
    root = new_project(tmp_path_factory.mktemp("baseline"))
    done = run_stage(root, "train.py", *RUN)
    assert done.returncode == 0, done.stderr
    return {"root": root, **snapshot(root)}


def test_writes_model_per_epoch_csv_and_final_metrics(baseline):
    history = pd.read_csv(baseline["root"] / OUTPUTS[1])
    assert tuple(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))
    assert baseline["metrics"] == history.iloc[-1].to_dict() | {"epoch": EPOCHS}
    assert baseline["seconds"] > 0 and "seconds" not in baseline["metrics"]
    assert baseline["meta"]["name"] == "unet"
    assert baseline["meta"]["extra"]["augment"] == "full"
    assert baseline["meta"]["extra"]["epochs"] == EPOCHS
    assert {"mean", "std"} <= set(baseline["meta"]["extra"]["normalisation"])
    # the checkpoint is deleted once the outputs hold everything
    assert not list((baseline["root"] / ".cache/checkpoints").glob("*.ckpt"))


def test_two_runs_with_the_same_seed_are_identical(baseline, tmp_path):
    root = new_project(tmp_path)
    done = run_stage(root, "train.py", *RUN)
    assert done.returncode == 0, done.stderr
    assert_same_run(snapshot(root), baseline)


def test_run_killed_mid_epoch_resumes_to_the_same_final_metrics(baseline, tmp_path):
    root = new_project(tmp_path)
    with open(tmp_path / "killed.log", "w") as log:
        killed = subprocess.Popen(stage_command("train.py", *RUN), cwd=root, env=stage_env(),
                                  stdout=log, stderr=log)
        checkpoints, deadline = root / ".cache/checkpoints", time.monotonic() + 120
        while not list(checkpoints.glob("unet-full-*.ckpt")):  # epoch 1 is done
            assert killed.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        os.kill(killed.pid, signal.SIGKILL)  # somewhere in epoch 2
        killed.wait()
    [checkpoint] = checkpoints.glob("unet-full-*.ckpt")
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 1, "killed too late"
    assert not any((root / out).exists() for out in OUTPUTS)

    resumed = run_stage(root, "train.py", *RUN)
    assert resumed.returncode == 0, resumed.stderr
    assert "after epoch 1 of 3" in resumed.stderr
    assert_same_run(snapshot(root), baseline)


def test_runs_under_torchrun_with_two_processes_and_exact_all_reduced_metrics(baseline, tmp_path):
    root = new_project(tmp_path)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(SRC / "train.py"), *RUN]
    done = subprocess.run(command, check=False, cwd=root, env=stage_env(), capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    run = snapshot(root)
    assert pd.read_csv(root / OUTPUTS[1])["epoch"].tolist() == list(range(1, EPOCHS + 1))
    assert not list(root.glob("**/*.tmp"))  # only rank 0 wrote, and completely
    # all-reduced validation metrics = the saved model evaluated on the whole set by one process
    model, _ = load_trained(root / OUTPUTS[0])
    rows = load_split(root / "data/split.csv", "val")
    turned = [SegmentationDataset(rows, build_transform("minimal", 32, 32), fixed_rot90=k, root=root)
              for k in range(4)]
    alone = quarter_turn_figures([evaluate(model, evaluation_loader(v, batch_size=4),
                                           torch.device("cpu")) for v in turned])
    assert run["metrics"]["val_iou"] == pytest.approx(alone["iou"], abs=1e-4)
    assert run["metrics"]["val_loss"] == pytest.approx(alone["loss"], rel=1e-5)
    # the same global batches and augmentations as one process: the same training, up to the
    # order of floating-point sums (seen: losses agree to ~1e-7, IoUs exactly)
    for key, value in baseline["metrics"].items():
        tolerance = {"rel": 1e-4} if key.endswith("loss") else {"abs": 1e-3}
        assert run["metrics"][key] == pytest.approx(value, **tolerance), key


# --- errors: one line naming the key, exit 2, nothing written ----------------------------------

def _train_main():
    spec = importlib.util.spec_from_file_location("train_stage", SRC / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize(("args", "params", "named"), [
    (("--model", "resnet", "--augment", "full"), {}, "'model'"),
    (("--model", "unet", "--augment", "heavy"), {}, "'augment'"),
    (("--model", "gunet_p4m", "--augment", "full"), {}, "'architectures.gunet_p4m'"),
    (RUN, {"train": {"lr": -1}}, "'train.lr'"),
    (RUN, {"train": {"epochs": 0}}, "'train.epochs'"),
    (RUN, {"train": {"optimizer": "sgd"}}, "'train.optimizer'"),
    (RUN, {"train": {"bf16": "yes"}}, "'train.bf16'"),
    (RUN, {"train": {"lr": float("nan")}}, "'train.lr'"),
    (RUN, {"data": {"split_file": "data/missing.csv"}}, "data/missing.csv"),
])
def test_bad_arguments_or_params_fail_before_any_work(tmp_path, monkeypatch, capsys, args, params,
                                                      named):
    write_pairs(tmp_path, n_train=2, n_val=1)
    write_params(tmp_path, **params)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        _train_main()(list(args))
    assert stopped.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and named in line
    assert not any((tmp_path / d).exists() for d in ("models", "metrics", "plots", ".cache"))


def test_a_diverging_run_stops_naming_epoch_and_step_and_writes_no_outputs(
        tmp_path, monkeypatch, capsys):
    write_pairs(tmp_path, n_train=8, n_val=2)
    write_params(tmp_path, train={"lr": 1e30})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        _train_main()(list(RUN))
    assert stopped.value.code == 2
    [line] = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error: ")]
    assert "non-finite" in line and "epoch 1, step" in line and "train.lr" in line
    assert not any((tmp_path / out).exists() for out in OUTPUTS)


def test_a_checkpoint_of_other_settings_is_left_alone_and_training_starts_afresh(
        tmp_path, monkeypatch, capsys):
    write_pairs(tmp_path, n_train=4, n_val=2)
    write_params(tmp_path, train={"epochs": 1})
    stale = tmp_path / ".cache/checkpoints/unet-full-seed0-0123456789abcdef.ckpt"
    stale.parent.mkdir(parents=True)
    torch.save({"fingerprint": "0123456789abcdef", "epoch": 1}, stale)
    monkeypatch.chdir(tmp_path)
    _train_main()(list(RUN))
    assert "resuming" not in capsys.readouterr().err
    assert stale.exists() and (tmp_path / OUTPUTS[2]).exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_gpu_on_a_cpu_machine_names_train_device(tmp_path, monkeypatch, capsys):
    write_pairs(tmp_path, n_train=2, n_val=1)
    write_params(tmp_path, train={"device": "cuda"})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        _train_main()(list(RUN))
    assert "'train.device'" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()
