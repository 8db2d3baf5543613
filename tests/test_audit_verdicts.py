"""Honest verdicts: degenerate predictions flagged, exactness on raw outputs, the identity never the
worst level, K-class models against binary masks, and the CI gate's exit codes."""

import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.audit_helpers import (
    FAST,
    audit_ok,
    disc_masks,
    one_error_line,
    run_cli,
    tiny_folder,
    write_models,
)

MODELS = '''
import math

import torch
from torch import nn

class Background(nn.Module):  # predicts nothing anywhere
    def forward(self, x):
        return torch.full_like(x[:, :1], -10.0)


class Undecided(nn.Module):  # p between 0.50 and 0.52 everywhere
    def forward(self, x):
        p = 0.5 + 0.02 * x[:, :1].clamp(0, 1)
        return torch.log(p / (1 - p))


class Saturated(nn.Module):  # logits far from 0: probabilities are 1.0 whatever the conv says
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x):
        return 60.0 + self.conv(x)


class Pixelwise(nn.Module):  # red decides: exact under every 90-degree turn and flip
    def forward(self, x):
        return 20.0 * (x[:, :1] - 0.5)


class ThreeColours(nn.Module):  # class k = colour channel k
    def forward(self, x):
        return 10.0 * x


def plain():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1))
'''
RAW = ["--normalise", "none"]


@pytest.fixture
def setup(tmp_path):
    return tiny_folder(tmp_path, count=3), write_models(tmp_path, MODELS)


def test_an_all_background_model_is_flagged_and_the_report_leads_with_it(tmp_path, capsys, setup):
    images, models = setup
    summary = audit_ok(capsys, tmp_path / "out", "--model", f"{models}:Background",
                       "--images", str(images))
    assert summary["degenerate_images"] == 3 and summary["degenerate_reasons"] == {"empty": 3}
    assert summary["mostly_degenerate"] is True
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert results["degenerate"].all() and set(results["degenerate_reason"]) == {"empty"}
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Most predictions are degenerate" in report.split("## Findings")[0]


def test_a_model_hovering_at_the_threshold_is_flagged(tmp_path, capsys, setup):
    images, models = setup
    summary = audit_ok(capsys, tmp_path / "out", "--model", f"{models}:Undecided",
                       "--images", str(images), *RAW)
    assert summary["degenerate_reasons"] == {"at threshold": 3}


def test_exactness_is_judged_on_raw_logits_not_saturated_probabilities(tmp_path, capsys, setup):
    images, models = setup
    summary = audit_ok(capsys, tmp_path / "out", "--model", f"{models}:Saturated",
                       "--images", str(images))
    rotate = summary["perturbations"]["rotate"]
    assert rotate["max_abs_diff_at_90_multiples"] == 0.0  # every probability is 1.0
    assert rotate["exact_at_90_multiples"] is False  # but the logits differ
    assert rotate["max_rel_diff_raw_at_90_multiples"] > 1e-3
    assert summary["degenerate_reasons"] == {"everywhere": 3}
    # the same model is exact with a tolerance that forgives its differences
    loose = audit_ok(capsys, tmp_path / "loose", "--model", f"{models}:Saturated",
                     "--images", str(images), "--rtol", "0.5")
    assert loose["perturbations"]["rotate"]["exact_at_90_multiples"] is True


def test_the_identity_is_never_the_worst_level(tmp_path, capsys, setup):
    images, models = setup
    summary = audit_ok(capsys, tmp_path / "out", "--model", f"{models}:Pixelwise",
                       "--images", str(images), *RAW)
    assert summary["perturbations"]["rotate"]["worst_level"] == 90.0
    assert summary["perturbations"]["rotate"]["exact_at_90_multiples"] is True


def test_a_k_class_model_against_binary_masks_with_foreground_classes(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    picture = np.zeros((16, 16, 3), np.uint8)
    picture[:, :8, 1] = 255  # left half green: class 1
    picture[:, 8:, 0] = 255  # right half red: class 0
    Image.fromarray(picture).save(images / "halves.png")
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray((picture[:, :, 1] > 0).astype(np.uint8) * 255).save(masks / "halves.png")
    models = write_models(tmp_path, MODELS)
    summary = audit_ok(capsys, tmp_path / "out", "--model", f"{models}:ThreeColours",
                       "--classes", "3", "--foreground-classes", "1,2", "--images", str(images),
                       "--masks", str(masks), *RAW)
    assert summary["perturbations"]["rotate"]["mean_iou_gt"] == pytest.approx(1.0)
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert not [c for c in results.columns if c.startswith("iou_gt_class")]
    code, _, err = run_cli(capsys, "audit", "--out", str(tmp_path / "bad"), *FAST, *RAW,
                           "--model", f"{models}:ThreeColours", "--classes", "3",
                           "--foreground-classes", "0,1,2", "--images", str(images))
    assert code == 2 and "some, not all" in one_error_line(err)


def test_the_ci_gate_exit_codes(tmp_path, capsys, setup):
    images, models = setup
    masks = disc_masks(tmp_path, ["img0", "img1", "img2"])

    def gate(model, *extra):
        return run_cli(capsys, "audit", "--out", str(tmp_path / model / str(len(extra))), *FAST,
                       *RAW, "--model", f"{models}:{model}", "--images", str(images), *extra)

    assert gate("Pixelwise", "--require-exact", "--fail-under", "consistency=0.99")[0] == 0
    code, out, err = gate("plain", "--require-exact")
    assert code == 1 and json.loads(out)["gate"] == "failed"
    assert err.strip().startswith("gate failed: not exact at 90-degree multiples")
    code, _, err = gate("plain", "--fail-under", "consistency=1.01", "--fail-under",
                        "consistency_90=0")
    assert code == 1 and err.strip().splitlines() == [err.strip()]
    assert "consistency" in err and "< 1.01" in err and "consistency_90" not in err
    assert gate("plain", "--fail-under", "iou_gt=0", "--masks", str(masks))[0] == 0
    for extra, message in ((["--fail-under", "sharpness=0.5"], "unknown figure"),
                           (["--fail-under", "iou_gt=0.5"], "needs --masks"),
                           (["--fail-under", "flip=0.5"], "needs --perturb with flip"),
                           (["--require-exact", "p4m"], "needs --perturb with flip"),
                           (["--fail-under", "consistency"], "is not NAME=VALUE")):
        code, _, err = gate("plain", *extra)
        assert code == 2 and message in one_error_line(err), extra


def test_version_comes_from_pyproject(capsys):
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"equiseg {pyproject['project']['version']}"
