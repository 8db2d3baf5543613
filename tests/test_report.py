"""The report: Document API, the report built from contract-format metrics, and the stage."""

from __future__ import annotations

import base64
import json
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
LABELS = [f"{m}-{a}" for m in MODELS for a in AUGMENTS]
FIGURES = ["train_loss.png", "train_iou.png", "val_loss.png", "val_iou.png", "rotation_iou.png",
           "rotation_consistency.png", "rotation_psnr.png", "photometric.png"]


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
    params = parse_params(fake_params(MODELS, AUGMENTS))
    start = time.perf_counter()
    html_path = build_run_report(params, root, root / "reports")
    seconds = time.perf_counter() - start
    reports = root / "reports"
    return {"root": root, "summary": summary, "seconds": seconds,
            "md": (reports / "report.md").read_text(), "html": html_path.read_text()}


def test_report_has_the_final_epoch_table_with_best_values_bold(built):
    md, summary = built["md"], built["summary"]
    header = "| model | augmentation | train IoU | train loss | validation IoU | validation loss |"
    assert header in md
    best_val = max(LABELS, key=lambda k: summary[k]["val_iou"])
    lowest_loss = min(LABELS, key=lambda k: summary[k]["train_loss"])
    model, augment = best_val.split("-")
    row = next(line for line in md.splitlines() if line.startswith(f"| {model} | {augment} | "))
    assert f"**{summary[best_val]['val_iou']:.3f}**" in row
    model, augment = lowest_loss.split("-")
    row = next(line for line in md.splitlines() if line.startswith(f"| {model} | {augment} | "))
    assert f"**{summary[lowest_loss]['train_loss']:.3f}**" in row


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


def test_equivariance_table_says_which_model_is_exact(built):
    section = built["md"].split("## Equivariance")[1]
    assert "**Exact at 90° multiples:** `gunet-minimal`, `gunet-full`." in section
    assert "**Not exact:** `unet-minimal`, `unet-full`." in section
    assert "| gunet | full | yes | **1.000** |" in section
    assert "| unet | minimal | no | 0.930 |" in section


def test_models_not_in_params_are_not_shown(built):
    assert "gunet_p4m" not in built["md"] and "gunet_p4m" not in built["html"]


def test_report_builds_in_seconds(built):
    assert built["seconds"] < 20


def test_findings_follow_the_numbers_not_the_expected_winner(tmp_path):
    write_fake_outputs(tmp_path, models=MODELS, augments=("full",), images=False)
    summary_path = tmp_path / "metrics" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["unet-full"]["val_iou"] = 0.95
    summary_path.write_text(json.dumps(summary))
    build_run_report(parse_params(fake_params(MODELS, ("full",))), tmp_path, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "**Most accurate:** `unet-full`, validation IoU 0.950, +0.080 over the runner-up " \
           "`gunet-full` (0.870)" in md


def test_a_run_missing_from_the_summary_is_a_user_error(tmp_path):
    write_fake_outputs(tmp_path, models=("unet",), augments=("full",), images=False)
    params = parse_params(fake_params(("unet", "gunet"), ("full",)))
    with pytest.raises(EquisegError, match="summary.json: no entry for 'gunet-full'"):
        build_run_report(params, tmp_path, tmp_path / "out")


def test_missing_optional_inputs_are_listed_not_hidden(tmp_path):
    write_fake_outputs(tmp_path, models=MODELS, augments=("full",))
    (tmp_path / "plots" / "perturb" / "unet-full.csv").unlink()
    (tmp_path / "plots" / "samples" / "gunet-full.png").unlink()
    build_run_report(parse_params(fake_params(MODELS, ("full",))), tmp_path, tmp_path / "out")
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
    (tmp_path / "metrics" / "summary.json").write_text("{not json")
    with pytest.raises(SystemExit) as exit_info:
        report_stage.main(["--params", str(params), "--root", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "summary.json: not valid JSON" in capsys.readouterr().err
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
