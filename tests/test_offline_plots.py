"""`dvc plots show` draws its charts with no network once the offline template is in place."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from equiseg.report.offline_plots import TEMPLATE_NAME, ensure_offline_plots_template
from tests.report_fixtures import CHROMIUM, chromium_dom, write_fake_outputs

DVC_YAML = """\
plots:
  - validation IoU:
      x: epoch
      y:
        plots/train/unet-minimal-seed0.csv: val_iou
        plots/train/gunet-minimal-seed0.csv: val_iou
  - plots/rotation/unet-minimal.csv:
      x: angle
      y: [set_iou_gt_mean, set_iou_consistency_mean]
"""
PLOT_IDS = ("validation_IoU", "plots_rotation_unet-minimal_csv")


def _dvc(repo: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A DVC repo with two plot definitions and the offline template written once."""
    repo = tmp_path_factory.mktemp("repo")
    _dvc(repo, "init", "--no-scm", "-q")
    write_fake_outputs(repo, models=("unet", "gunet"), augments=("minimal",), images=False)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    assert ensure_offline_plots_template(repo) == repo / ".dvc" / TEMPLATE_NAME
    return repo


def test_no_dvc_folder_means_nothing_to_do(tmp_path):
    assert ensure_offline_plots_template(tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_template_inlines_vega_and_keeps_dvc_placeholders(repo):
    html = (repo / ".dvc" / TEMPLATE_NAME).read_text()
    assert "{plot_divs}" in html and "{refresh_tag}" in html
    assert "{scripts}" not in html  # DVC would insert its CDN <script src=...> tags there
    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert "window.vegaEmbed" in html and len(html) > 100_000


def test_template_is_configured_locally_and_not_rewritten(repo):
    assert "html_template = plots_offline.html" in (repo / ".dvc" / "config.local").read_text()
    path = repo / ".dvc" / TEMPLATE_NAME
    before = path.stat().st_mtime_ns
    ensure_offline_plots_template(repo)
    assert path.stat().st_mtime_ns == before


def test_a_template_the_user_configured_is_kept(tmp_path):
    _dvc(tmp_path, "init", "--no-scm", "-q")
    _dvc(tmp_path, "config", "plots.html_template", "mine.html")
    (tmp_path / ".dvc" / TEMPLATE_NAME).write_text("<html>an older template</html>")
    ensure_offline_plots_template(tmp_path)
    assert "window.vegaEmbed" in (tmp_path / ".dvc" / TEMPLATE_NAME).read_text()
    assert "mine.html" in (tmp_path / ".dvc" / "config").read_text()
    assert not (tmp_path / ".dvc" / "config.local").exists()


def _drawn_charts(dom: str) -> dict[str, bool]:
    """For each plot div, whether Vega drew its marks (an SVG or canvas of class "marks")."""
    drawn = {}
    for plot_id in PLOT_IDS:
        start = dom.index(f'<div id="{plot_id}"')
        following = dom[start + 10:]
        end = following.find('<div id="')
        body = following if end < 0 else following[:end]
        drawn[plot_id] = bool(re.search(r'<(svg|canvas)[^>]*class="marks"', body))
    return drawn


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_dvc_plots_show_draws_charts_offline(repo, tmp_path):
    out = repo / "offline_page"
    _dvc(repo, "plots", "show", "-o", str(out))
    dom = chromium_dom(out / "index.html", tmp_path / "profile", wait_ms=10_000)
    assert _drawn_charts(dom) == {plot_id: True for plot_id in PLOT_IDS}


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_dvc_default_page_stays_blank_offline(repo, tmp_path):
    """The control: without the template the same page draws nothing, so the check above bites."""
    from dvc_render.html import PAGE_HTML

    out = repo / "default_page"
    default = repo / ".dvc" / "default.html"
    default.write_text(PAGE_HTML)
    _dvc(repo, "plots", "show", "--html-template", str(default), "-o", str(out))
    dom = chromium_dom(out / "index.html", tmp_path / "profile", wait_ms=10_000)
    assert "cdn.jsdelivr.net" in dom
    assert _drawn_charts(dom) == {plot_id: False for plot_id in PLOT_IDS}


def test_the_cli_writes_the_offline_template(tmp_path, monkeypatch):
    from equiseg.cli import main

    (tmp_path / ".dvc").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["plots-template"]) == 0
    template = (tmp_path / ".dvc" / "plots_offline.html").read_text()
    assert "{plot_divs}" in template and "vegaEmbed" in template
