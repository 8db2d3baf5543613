"""End to end: the users' DVC commands on a copy of the repository with the `tiny` profile.

One test walks the whole story in order (it is slow to set up, so the steps share one copy):
`dvc repro`, a no-op second `dvc repro`, `dvc exp run -S model=gunet`, `dvc metrics diff`,
`dvc plots show`, then a DVC remote round trip (push, fresh clone, pull, nothing to reproduce).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FOUR = ["unet-minimal", "unet-full", "gunet-minimal", "gunet-full"]

pytestmark = pytest.mark.slow


def run(args, cwd, timeout=600):
    env = {**os.environ, "GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@example.com",
           "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@example.com",
           "NO_ALBUMENTATIONS_UPDATE": "1", "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(args, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def copy_repository(dest: Path) -> None:
    """The committed and untracked-but-not-ignored files, as a fresh clone would have them."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        source = ROOT / name
        if source.is_file() and not name.startswith(("data/", "models/", "metrics/", "plots/",
                                                       "reports/", "dvc.lock")):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def use_tiny_profile(repo: Path) -> None:
    config = repo / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("- profile: quick", "- profile: tiny"))
    from dvc.utils.hydra import compose_and_dump
    compose_and_dump(repo / "params.yaml", os.fspath(repo / "conf"), None, "config", "", [])


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("project")
    copy_repository(repo)
    use_tiny_profile(repo)
    run(["git", "init", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny"], repo)
    return repo


def test_the_users_commands_work_end_to_end(repo, tmp_path):
    # 1. dvc repro builds every stage and output of the experiment's four models
    out = run(["dvc", "repro"], repo)
    for stage in ("download", "split", "evaluate", "rotation_sweep", "report"):
        assert f"Running stage '{stage}'" in out
    for name in FOUR:
        assert f"Running stage 'train@{name}'" in out
        assert (repo / "models" / f"{name}.pt").is_file()
        assert (repo / "plots" / "rotation" / f"{name}.csv").is_file()
        assert (repo / "metrics" / "equivariance" / f"{name}.json").is_file()
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    assert sorted(summary) == sorted(FOUR)
    assert all(0.0 <= row["val_iou"] <= 1.0 for row in summary.values())
    html = (repo / "reports" / "report.html").read_text()
    assert "gunet-full" in html and "data:image/png;base64" in html
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline"], repo)

    # 2. nothing changed: nothing runs
    assert "Data and pipelines are up to date" in run(["dvc", "repro"], repo)

    # 3. the Group U-Net branch alone, with a changed parameter
    out = run(["dvc", "exp", "run", "-S", "model=gunet", "-S", "train.epochs=1"], repo)
    assert "Running stage 'train@gunet-minimal'" in out
    assert "train@unet" not in out
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["models"] == ["gunet"] and params["train"]["epochs"] == 1
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    assert sorted(summary) == ["gunet-full", "gunet-minimal"]  # no stale unet rows
    assert not re.search(r"\bunet-", (repo / "reports" / "report.md").read_text())

    # 4. compare with the baseline, and draw the charts
    diff = run(["dvc", "metrics", "diff"], repo)
    assert "metrics/summary.json" in diff and "val_iou" in diff
    plots = run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], repo)
    index = (tmp_path / "plots" / "index.html").read_text()
    assert "index.html" in plots and "val_iou" in index and "iou_vs_angle" in index

    # 5. a DVC remote round trip: push, fresh clone, pull, nothing left to reproduce
    run(["git", "checkout", "-q", "--", "."], repo)  # back to the committed baseline
    run(["dvc", "checkout", "-q"], repo)
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "store", str(remote)], repo)
    run(["git", "commit", "-qam", "remote"], repo)
    run(["dvc", "push", "-q"], repo)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    run(["dvc", "pull", "-q"], clone)
    assert (clone / "models" / "gunet-full.pt").is_file()
    assert "Data and pipelines are up to date" in run(["dvc", "repro"], clone)
