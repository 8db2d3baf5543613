"""Honest verdicts: degenerate predictions flagged, no verdict without judgeable predictions,
exactness on raw outputs, the identity never the worst level, K-class models against binary
masks, and the CI gate's exit codes."""

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


class Tilted(nn.Module):  # red decides, nudged by a left-to-right ramp: not equivariant
    def forward(self, x):
        ramp = torch.linspace(-0.3, 0.3, x.shape[-1], device=x.device)
        return 20.0 * (x[:, :1] - 0.5 + ramp)


class ThreeColours(nn.Module):  # class k = colour channel k
    def forward(self, x):
        return 10.0 * x


class Constant(nn.Module):  # torchvision's random DeepLabV3 of issue 16: -0.0572 everywhere
    def forward(self, x):
        return torch.full_like(x[:, :1], -0.0572)


class Shy(nn.Module):  # all background, though its logits vary
    def forward(self, x):
        return x[:, :1] - 10.0


def _above_quantile(x, q):  # red above its q-quantile: p4m-exact, a fixed foreground share
    red = x[:, :1]
    cut = torch.quantile(red.flatten(1), q, dim=1).reshape(-1, 1, 1, 1)
    return 50.0 * (red - cut) + 0.1


class Sparse(nn.Module):  # 1.5% foreground, like the smp FPN of issue 16 (0.2-1.9%)
    def forward(self, x):
        return _above_quantile(x, 0.985)


class Dense(nn.Module):  # 93% foreground, like the torchvision FCN of issue 16
    def forward(self, x):
        return _above_quantile(x, 0.07)
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
    # all foreground: not judgeable, so its figures need --allow-degenerate to cover it
    summary = audit_ok(capsys, tmp_path / "out", "--model", f"{models}:Saturated",
                       "--images", str(images), "--allow-degenerate")
    rotate = summary["perturbations"]["rotate"]
    assert rotate["max_abs_diff_at_90_multiples"] == 0.0  # every probability is 1.0
    assert rotate["exact_at_90_multiples"] is False  # but the logits differ
    assert rotate["max_rel_diff_raw_at_90_multiples"] > 1e-3
    assert summary["outputs_identical_under_group"] == {"p4": False}
    assert summary["degenerate_reasons"] == {"everywhere": 3}
    assert summary["not_judgeable_reasons"] == {"too much foreground": 3}
    # the same model is exact with a tolerance that forgives its differences
    loose = audit_ok(capsys, tmp_path / "loose", "--model", f"{models}:Saturated",
                     "--images", str(images), "--rtol", "0.5", "--allow-degenerate")
    assert loose["perturbations"]["rotate"]["exact_at_90_multiples"] is True
    # ... and within that tolerance its output no longer varies over the image: constant
    assert loose["not_judgeable_reasons"] == {"constant": 3}


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
    code, out, err = gate("Tilted", "--require-exact")
    assert code == 1 and json.loads(out)["gate"] == "failed"
    assert err.strip().startswith("gate failed: not exact at 90-degree multiples")
    code, _, err = gate("Tilted", "--fail-under", "consistency=1.01", "--fail-under",
                        "consistency_90=0")
    assert code == 1 and err.strip().splitlines() == [err.strip()]
    assert "consistency" in err and "< 1.01" in err and "consistency_90" not in err
    assert gate("Tilted", "--fail-under", "iou_gt=0", "--masks", str(masks))[0] == 0
    for extra, message in ((["--fail-under", "sharpness=0.5"], "unknown figure"),
                           (["--fail-under", "iou_gt=0.5"], "needs --masks"),
                           (["--fail-under", "flip=0.5"], "needs --perturb with flip"),
                           (["--require-exact", "p4m"], "needs --perturb with flip"),
                           (["--fail-under", "consistency"], "is not NAME=VALUE")):
        code, _, err = gate("Tilted", *extra)
        assert code == 2 and message in one_error_line(err), extra


UNJUDGEABLE = {"Constant": "constant", "Shy": "too little foreground",
               "Sparse": "too little foreground", "Dense": "too much foreground"}
GATE = ["--perturb", "rotate,flip", "--require-exact", "p4m", "--fail-under", "consistency=0.99"]


def findings_bullets(report: str) -> list[str]:
    findings = report.split("## Findings")[1].split("\n## ")[0]
    return [line for line in findings.splitlines() if line.startswith("- ")]


@pytest.mark.parametrize("model", list(UNJUDGEABLE))
def test_a_model_that_predicts_one_class_cannot_pass_the_gate(model, tmp_path, capsys, setup):
    images, models = setup
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "audit", "--out", str(out), *FAST, *RAW, *GATE,
                                "--model", f"{models}:{model}", "--images", str(images))
    assert code == 1 and json.loads(stdout)["gate"] == "failed"
    assert err.strip().startswith("gate failed: cannot judge: 3 of 3 images")
    assert "--allow-degenerate" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "cannot judge" and summary["judgeable_images"] == 0
    assert summary["not_judgeable_reasons"] == {UNJUDGEABLE[model]: 3}
    assert summary["judgeable_min_share"] == 0.05 and summary["judgeable_max_share"] == 0.9
    # the raw outputs are identical under p4m: a separate fact, never a pass
    assert summary["outputs_identical_under_group"] == {"p4": True, "p4m": True}
    assert summary["perturbations"]["rotate"]["exact_at_90_multiples"] is None
    results = pd.read_csv(out / "results.csv")
    assert not results["judgeable"].any()
    assert set(results["not_judgeable_reason"]) == {UNJUDGEABLE[model]}
    for name in ("report.md", "report.html"):
        report = (out / name).read_text()
        assert "Cannot judge" in report.split("Findings")[0]
        for text in ("exactly consistent", "Exact at 90", "is exact", "| yes"):
            assert text not in report, (name, text)
    bullets = findings_bullets((out / "report.md").read_text())
    assert bullets and bullets[0].startswith("- **Cannot judge**")
    for bullet in bullets:
        assert "exact" not in bullet.lower() and "consistent" not in bullet.lower(), bullet
    # --allow-degenerate lets the gate run, on figures over every image
    allowed = tmp_path / "allowed"
    code, stdout, err = run_cli(capsys, "audit", "--out", str(allowed), *FAST, *RAW, *GATE,
                                "--model", f"{models}:{model}", "--images", str(images),
                                "--allow-degenerate")
    assert code == 0, err
    assert json.loads(stdout)["verdict"] == "cannot judge"
    summary = json.loads((allowed / "summary.json").read_text())
    assert summary["scored_images"] == 3 and summary["allow_degenerate"] is True
    bullets = findings_bullets((allowed / "report.md").read_text())
    assert not [b for b in bullets if "exact" in b.lower() or "consistent" in b.lower()]


def test_judgeable_shares_are_options_and_a_constant_is_never_judgeable(tmp_path, capsys,
                                                                        setup):
    images, models = setup
    wide = ["--judgeable-min-share", "0", "--judgeable-max-share", "1", *RAW]
    dense = audit_ok(capsys, tmp_path / "dense", "--model", f"{models}:Dense", "--images",
                     str(images), *wide)
    assert dense["verdict"] == "judged" and dense["judgeable_images"] == 3
    assert dense["judgeable_min_share"] == 0.0 and dense["judgeable_max_share"] == 1.0
    constant = audit_ok(capsys, tmp_path / "constant", "--model", f"{models}:Constant",
                        "--images", str(images), *wide)
    assert constant["verdict"] == "cannot judge"
    assert constant["not_judgeable_reasons"] == {"constant": 3}
    for low, high in (("0.5", "0.5"), ("-0.1", "0.9"), ("0.1", "1.5")):
        code, _, err = run_cli(capsys, "audit", "--out", str(tmp_path / "bad"), *FAST,
                               "--model", f"{models}:Dense", "--images", str(images),
                               "--judgeable-min-share", low, "--judgeable-max-share", high)
        assert code == 2 and "0 <= min < max <= 1" in one_error_line(err)
        assert not (tmp_path / "bad").exists()


def test_half_the_images_judgeable_is_judged_on_those_alone(tmp_path, capsys):
    """Two images predicted half foreground, two all background: judged, over two images."""
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        picture = np.zeros((16, 16, 3), np.uint8)
        picture[:, :, 0] = 6 * np.arange(16)  # dim red ramp: background, but not constant
        if i < 2:
            picture[:, : 8 + 2 * i, 0] = 255  # bright red left part: foreground
        Image.fromarray(picture).save(images / f"img{i}.png")
    models = write_models(tmp_path, MODELS)
    code, stdout, err = run_cli(capsys, "audit", "--out", str(tmp_path / "out"), *FAST, *RAW,
                                *GATE, "--model", f"{models}:Pixelwise", "--images", str(images))
    assert code == 0, err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["verdict"] == "judged" and summary["judgeable_images"] == 2
    assert summary["scored_images"] == 2
    assert summary["not_judgeable_reasons"] == {"too little foreground": 2}
    assert {e["image"] for e in summary["least_consistent_images"]} <= {"img0", "img1"}
    report = (tmp_path / "out" / "report.md").read_text()
    assert "exactly consistent" in report and "2 of 4 images get no judgeable" in report


def test_version_comes_from_pyproject(capsys):
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"equiseg {pyproject['project']['version']}"
