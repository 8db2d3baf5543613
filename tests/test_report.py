"""The report: Document API, the report built from contract-format metrics, and the stage."""

from __future__ import annotations

import base64
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from equiseg.config import parse_params
from equiseg.errors import EquisegError
from equiseg.report import Document
from equiseg.report.run_report import build_run_report
from equiseg.report.setting import ReportSetting
from tests.report_fixtures import (
    CHROMIUM,
    chromium_dom,
    fake_params,
    write_fake_outputs,
    write_params,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import report as report_stage

MODELS, AUGMENTS = ("unet", "gunet"), ("minimal", "full")


def setting(raw: dict) -> ReportSetting:
    """What the report stage makes of these params."""
    return report_stage.report_setting(parse_params(raw))
LABELS = [f"{m}-{a}" for m in MODELS for a in AUGMENTS]
FIGURES = ["train_loss.png", "train_iou.png", "val_loss.png", "val_iou.png", "val_iou_seed.png",
           "rotation_iou.png",
           "rotation_consistency.png", "rotation_psnr.png", "rotation_group_reach.png",
           "photometric.png", "shift.png", "scale.png"]


def _png(path: Path, color=(200, 30, 30)) -> Path:
    Image.new("RGB", (8, 6), color).save(path)
    return path


def _data_uris(html: str) -> list[str]:
    return re.findall(r'<img src="(data:image/[a-z+]+;base64,[^"]+)"', html)


# -- Document ---------------------------------------------------------------------------------

def test_table_bolds_the_max_iou_and_the_min_loss_and_every_tie():
    doc = Document("t")
    frame = pd.DataFrame({"model": ["a", "b", "c"], "iou": [0.81, 0.9001, 0.8999],
                          "loss": [0.3, 0.1, 0.2]})
    doc.table(frame, bold_best={"iou": "max", "loss": "min"})
    md = doc.to_markdown(".")
    assert "| a | 0.810 | 0.300 |" in md
    assert "| b | **0.900** | **0.100** |" in md
    assert "| c | **0.900** | 0.200 |" in md  # same value at the shown precision: also best
    html = doc.to_html()
    assert "<td class=\"num\"><strong>0.100</strong></td>" in html
    assert html.count("<strong>") == 3


def test_table_shows_infinity_missing_values_and_booleans_plainly():
    doc = Document("t")
    doc.table(pd.DataFrame({"m": ["x", "y"], "psnr": [np.inf, 30.0], "v": [np.nan, 1.0],
                            "exact": [True, False]}), bold_best={"psnr": "max"}, floatfmt=".1f")
    md = doc.to_markdown(".")
    assert "| x | **∞** | – | yes |" in md and "| y | 30.0 | 1.0 | no |" in md


def test_table_formats_floats_per_column_when_given_a_mapping():
    doc = Document("t")
    doc.table(pd.DataFrame({"angle": [45.0, 7.5], "psnr": [31.25, 28.0], "iou": [0.5, 0.25]}),
              floatfmt={"angle": "g", "psnr": ".1f"})
    md = doc.to_markdown(".")
    assert "| 45 | 31.2 | 0.500 |" in md and "| 7.5 | 28.0 | 0.250 |" in md


def test_table_rejects_an_unknown_best_column_or_rule():
    doc = Document("t")
    with pytest.raises(ValueError, match="nope"):
        doc.table(pd.DataFrame({"a": [1]}), bold_best={"nope": "max"})
    with pytest.raises(ValueError, match="max"):
        doc.table(pd.DataFrame({"a": [1]}), bold_best={"a": "largest"})


def test_markdown_links_figures_relatively_and_html_embeds_them(tmp_path):
    (tmp_path / "figs").mkdir()
    png = _png(tmp_path / "figs" / "a.png")
    doc = Document("Title <&>")
    doc.heading("Section")
    doc.paragraph("**bold** and `code <x>` and [link](https://example.org)")
    doc.figure(png, "a red square")
    out = tmp_path / "out"
    doc.write(out / "r.md", out / "r.html")
    md, html = (out / "r.md").read_text(), (out / "r.html").read_text()
    assert "![a red square](../figs/a.png)" in md
    assert "<strong>bold</strong>" in html and "<code>code &lt;x&gt;</code>" in html
    assert '<a href="https://example.org">link</a>' in html
    assert "<title>Title &lt;&amp;&gt;</title>" in html
    uris = _data_uris(html)
    assert len(uris) == 1 and base64.b64decode(uris[0].split(",")[1]) == png.read_bytes()


def test_figure_that_does_not_exist_is_a_user_error(tmp_path):
    with pytest.raises(EquisegError, match="missing.png"):
        Document("t").figure(tmp_path / "missing.png", "nothing")


# -- the pipeline's report ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Fake outputs for three models; params ask for two of them (gunet_p4m is stale)."""
    root = tmp_path_factory.mktemp("run")
    summary = write_fake_outputs(root, models=(*MODELS, "gunet_p4m"), augments=AUGMENTS)
    ran = setting(fake_params(MODELS, AUGMENTS))
    start = time.perf_counter()
    html_path = build_run_report(ran, root, root / "reports")
    seconds = time.perf_counter() - start
    reports = root / "reports"
    return {"root": root, "summary": summary, "seconds": seconds,
            "md": (reports / "report.md").read_text(), "html": html_path.read_text()}


def _section(md: str, heading: str) -> str:
    return md.split(heading)[1].split("\n#")[0]


def _row(section: str, model: str, augment: str) -> str:
    return next(line for line in section.splitlines()
                if line.startswith(f"| {model} | {augment} | "))


def test_report_has_the_seeds_final_epoch_table_with_best_values_bold(built):
    md, summary = built["md"], built["summary"]
    section = _section(md, "## Final epoch: the seed's quantities")
    header = ("| model | augmentation | n | train IoU (last epoch, augmented) | train loss (last "
              "epoch, augmented) | val IoU (uniform 90° turns) | val IoU (seed's RandomRotate90) | "
              "val loss (4 turns) |")
    assert header in section
    assert "running values over the last epoch's augmented training batches" in section
    best_val = max(LABELS, key=lambda k: summary[k]["val_iou"])
    lowest_loss = min(LABELS, key=lambda k: summary[k]["train_loss"])
    assert f"**{summary[best_val]['val_iou']:.3f}**" in _row(section, *best_val.split("-"))
    assert f"**{summary[lowest_loss]['train_loss']:.3f}**" in _row(section,
                                                                   *lowest_loss.split("-"))
    for label in LABELS:  # the seed's own quantities, one seed: no ± part
        row = _row(section, *label.split("-"))
        assert row.split(" | ")[2] == "1" and "±" not in row
        assert f"{summary[label]['train_iou']:.3f}" in row


def test_eval_mode_figures_stand_beside_the_seeds_table_named_as_such(built):
    md, summary = built["md"], built["summary"]
    section = _section(md, "### Eval-mode figures of the final models")
    assert ("| model | augmentation | n | train IoU (eval mode, unaugmented) | train loss (eval "
            "mode, unaugmented) | val IoU (uniform 90° turns) |") in section
    for label in LABELS:
        row = _row(section, *label.split("-"))
        assert f"{summary[label]['eval_train_iou']:.3f}" in row
        assert f"{summary[label]['eval_train_iou']:.3f}" != f"{summary[label]['train_iou']:.3f}"
    assert ("| val IoU (uniform 90° turns) | val IoU (seed's RandomRotate90) | 0° | 90° | 180° | "
            "270° | spread |") in section
    assert "| gunet | full | 1 | **0.870** | **0.880** | **0.870** | **0.870** | **0.870** | " \
           "**0.870** | **0.000** |" in section


def test_report_names_both_rot90_protocols_and_the_seeds_single_draw(tmp_path):
    write_fake_outputs(tmp_path, models=MODELS, augments=("full",), images=False)
    ran = setting(fake_params(MODELS, ("full",), evaluate={"rot90_seed": 4}))
    build_run_report(ran, tmp_path, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "**Validation protocols:**" in md and "62.5%" in md and "`evaluate.rot90_seed` 4" in md
    assert "| val IoU (uniform 90° turns) | val IoU (seed's RandomRotate90) |" in md
    assert "val IoU (seed's single draw)" in md
    assert "validation images under uniform 90° turns, expected over the draw" in md


def test_report_gives_a_convergence_verdict_per_run(tmp_path):
    write_fake_outputs(tmp_path, models=MODELS, augments=("full",), images=False, epochs=8)
    build_run_report(setting(fake_params(MODELS, ("full",))), tmp_path, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "gain, last quarter (uniform turns)" in md
    # the fixture's curves gain 0.2/6 - 0.2/8 = 0.0083 over epochs 6..8: still learning
    assert md.count("still learning") == len(MODELS)


def test_report_shows_every_figure_gif_and_sample_grid(built):
    md, root = built["md"], built["root"]
    for name in FIGURES:
        assert (root / "reports" / "figures" / name).stat().st_size > 5000
        assert f"(figures/{name})" in md
    for label in LABELS:
        assert f"(../plots/rotation/{label}.gif)" in md
        assert f"(../plots/samples/{label}.png)" in md
    uris = _data_uris(built["html"])
    assert len(uris) == len(FIGURES) + 2 * len(LABELS)
    assert sum(u.startswith("data:image/gif") for u in uris) == len(LABELS)


def test_report_states_the_setting_and_the_findings_with_numbers(built):
    md = built["md"]
    assert "**Data:** synthetic, 40 image/mask pairs" in md and "`quick`" in md
    assert "Not the paper's setting" in md
    findings = md.split("## Findings")[1].split("##")[0]
    assert "**Most accurate:** `gunet-full`, validation IoU 0.870, +0.030 over the runner-up " \
           "`gunet-minimal` (0.840)" in findings
    assert "`gunet-minimal` and `gunet-full` are exactly consistent" in findings
    assert "`unet-minimal` drops to 0.930" in findings
    assert "**Mirror flips**" in findings and "flip-h: `unet-minimal` 0.970" in findings
    assert ("with one seed per run (n=1) no spread can be estimated, so no difference between "
            "runs can be said to exceed it") in findings


def test_equivariance_table_says_which_model_is_exact(built):
    section = built["md"].split("## Equivariance")[1]
    assert "**Exact at 90° multiples** (every seed): `gunet-minimal`, `gunet-full`." in section
    assert "**Not exact:** `unet-minimal`, `unet-full`." in section
    assert "| gunet | full | 1 | yes | **1.000** |" in section
    assert "| unet | minimal | 1 | no | 0.930 |" in section
    assert "| pooled dB off grid |" in section and "| 26.0 | 0.670 |" in section


def test_models_not_in_params_are_not_shown(built):
    assert "gunet_p4m" not in built["md"] and "gunet_p4m" not in built["html"]


def test_report_builds_in_seconds(built):
    assert built["seconds"] < 20


def test_findings_follow_the_numbers_not_the_expected_winner(tmp_path):
    write_fake_outputs(tmp_path, models=MODELS, augments=("full",), images=False)
    evaluate_path = tmp_path / "plots" / "evaluate" / "unet-full.csv"
    evaluated = pd.read_csv(evaluate_path)
    evaluated["val_iou"] = 0.95
    evaluated.to_csv(evaluate_path, index=False)
    build_run_report(setting(fake_params(MODELS, ("full",))), tmp_path, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "**Most accurate:** `unet-full`, validation IoU 0.950, +0.080 over the runner-up " \
           "`gunet-full` (0.870)" in md


def test_a_run_the_evaluate_stage_did_not_score_is_a_user_error(tmp_path):
    write_fake_outputs(tmp_path, models=("unet",), augments=("full",), images=False)
    ran = setting(fake_params(("unet", "gunet"), ("full",)))
    with pytest.raises(EquisegError, match="plots/evaluate/gunet-full.csv: not found; run the "
                                           "train and evaluate stages for 'gunet-full'"):
        build_run_report(ran, tmp_path, tmp_path / "out")
    ran = setting(fake_params(("unet",), ("full",), seeds=(0, 1)))
    with pytest.raises(EquisegError, match=r"unet-full.csv: no row for seed\(s\) \[1\]"):
        build_run_report(ran, tmp_path, tmp_path / "out")


# -- replicates ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    summary = write_fake_outputs(root, models=MODELS, augments=AUGMENTS, images=False,
                                 seeds=(0, 1, 2))
    build_run_report(setting(fake_params(MODELS, AUGMENTS, seeds=(0, 1, 2))), root,
                     root / "out")
    return {"summary": summary, "md": (root / "out" / "report.md").read_text()}


def test_tables_show_mean_plus_minus_sample_sd_with_n_over_seeds(three_seeds):
    md, summary = three_seeds["md"], three_seeds["summary"]
    # seeds shift every IoU by 0, +0.01, -0.01: mean as for one seed, sample sd exactly 0.010
    section = _section(md, "## Final epoch: the seed's quantities")
    row = _row(section, "gunet", "full")
    assert row.split(" | ")[2] == "3"
    assert f"**{summary['gunet-full']['val_iou']:.3f} ± 0.010**" in row
    quarter = _section(md, "### Eval-mode figures of the final models")
    assert "| gunet | full | 3 | **0.870 ± 0.010** | **0.880 ± 0.010** | **0.870 ± 0.010** |" in quarter
    equivariance = _section(md, "## Equivariance")
    assert "| unet | minimal | 3 | no | 0.930 ± 0.010 |" in equivariance
    assert "sample standard deviation across seeds (ddof=1)" in equivariance
    assert "**Seeds:** [0, 1, 2] (n=3)" in md


def test_findings_say_which_differences_exceed_the_seed_to_seed_spread(three_seeds):
    findings = _section(three_seeds["md"], "## Findings")
    assert "(|mean difference| > sd_a + sd_b, sample sd over seeds)" in findings
    beyond, within = findings.split("**Beyond the seed-to-seed spread**")[1].split("**Within it:**")
    # validation IoU: gunet 0.870 vs unet 0.830 (+0.040 > 0.010 + 0.010): beyond the spread
    assert ("validation IoU `unet-full` 0.830 ± 0.010 vs `gunet-full` 0.870 ± 0.010 (-0.040)"
            in beyond)
    # off-grid consistency: gunet 0.970 ± 0.000 vs unet 0.920 ± 0.010 (0.050 > 0.010): beyond
    assert "off-grid consistency IoU `unet-full` 0.920 ± 0.010 vs `gunet-full` 0.970" in beyond
    assert "mean over n=3 seeds" in findings and "validation images under uniform 90° turns" \
        in findings
    assert within.strip().startswith("none")


def test_the_decibel_figure_is_the_pooled_eq_r_figure_capped_not_infinite(built):
    md = built["md"]
    caption = next(line for line in md.splitlines() if "(figures/rotation_psnr.png)" in line)
    assert "pooled" in caption and "EQ-R" in caption and "100 dB" in caption
    assert "infinite" not in md and "∞" not in md


def test_missing_optional_inputs_are_listed_not_hidden(tmp_path):
    write_fake_outputs(tmp_path, models=MODELS, augments=("full",))
    (tmp_path / "plots" / "perturb" / "unet-full.csv").unlink()
    (tmp_path / "plots" / "samples" / "gunet-full.png").unlink()
    build_run_report(setting(fake_params(MODELS, ("full",))), tmp_path, tmp_path / "out")
    missing = (tmp_path / "out" / "report.md").read_text().split("## Missing inputs")[1]
    assert "`plots/perturb/unet-full.csv`" in missing
    assert "`plots/samples/gunet-full.png`" in missing


def test_stage_replaces_reports_whole_and_keeps_the_old_one_on_error(tmp_path, capsys):
    write_fake_outputs(tmp_path, models=MODELS, augments=AUGMENTS, images=False)
    params = write_params(tmp_path, MODELS, AUGMENTS, sweep={"angle_step": 30.0, "gif": False})
    stale = tmp_path / "reports" / "figures" / "old.png"
    stale.parent.mkdir(parents=True)
    _png(stale)
    report_stage.main(["--params", str(params), "--root", str(tmp_path)])
    assert not stale.exists() and (tmp_path / "reports" / "report.html").is_file()
    missing = (tmp_path / "reports" / "report.md").read_text().split("## Missing inputs")[1]
    assert "samples/unet-full.png" in missing and ".gif" not in missing  # sweep.gif is off

    before = (tmp_path / "reports" / "report.md").read_text()
    (tmp_path / "plots" / "evaluate" / "unet-full.csv").write_text("{not a table")
    with pytest.raises(SystemExit) as exit_info:
        report_stage.main(["--params", str(params), "--root", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "unet-full.csv: missing column(s) seed, train_loss" in capsys.readouterr().err
    assert (tmp_path / "reports" / "report.md").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".reports")) == []


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_html_opens_in_chromium_with_every_image_loaded(built, tmp_path):
    html = built["html"]
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "external resource in report"
    probe = ("<script>window.addEventListener('load', () => { const all = [...document.images];"
             " const ok = all.filter(i => i.complete && i.naturalWidth > 0);"
             " document.body.dataset.images = ok.length + '/' + all.length; });</script>")
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", probe + "</body>"))
    dom = chromium_dom(page, tmp_path / "profile")
    expected = len(FIGURES) + 2 * len(LABELS)
    assert f'data-images="{expected}/{expected}"' in dom
    assert "<table>" in dom and "Most accurate" in dom


def test_overlay_labels_follow_the_sweeps_own_mask_decision():
    import torch

    from equiseg.analysis.frame_scores import class_masks
    from equiseg.report.overlays import labels_from_probs

    one = torch.tensor([[[0.2, 0.5], [0.51, 0.9]]])  # (1, H, W): p > 0.5 is foreground
    assert labels_from_probs(one).tolist() == [[0, 0], [1, 1]]
    assert torch.equal(labels_from_probs(one).bool(), class_masks(one[None])[0, 0])
    three = torch.softmax(torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0)), 0)
    assert torch.equal(labels_from_probs(three), three.argmax(0))
