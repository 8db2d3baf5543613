"""End to end: the users' DVC commands on a copy of the repository with the `tiny` profile.

One test walks the whole story in order (it is slow to set up, so the steps share one copy):
`dvc repro`, a no-op second `dvc repro`, refused `dvc exp run -S <bad value>` that change nothing,
two `dvc exp run` at once (refused, not mixed), `dvc exp run -S model=gunet` showing only what it
trained, `dvc metrics diff`, `dvc plots show`, `dvc repro -f` giving the same hashes, then a DVC
remote round trip (push, fresh clone, pull, nothing to reproduce).
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FOUR = ["unet-minimal", "unet-full", "gunet-minimal", "gunet-full"]  # model-augment, over seeds
OUTPUTS = ("metrics", "plots", "models", "reports")

pytestmark = pytest.mark.slow


def dvc_env() -> dict[str, str]:
    return {**os.environ, "GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@example.com",
            "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@example.com",
            "NO_ALBUMENTATIONS_UPDATE": "1", "DVC_NO_ANALYTICS": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def run(args, cwd, timeout=600, stdout_only=False):
    result = subprocess.run(args, check=False, cwd=cwd, env=dvc_env(), capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout if stdout_only else result.stdout + result.stderr


def run_refused(args, cwd, timeout=600) -> list[str]:
    """Run a command that must fail; its `error:` lines (ours, not DVC's `ERROR:`)."""
    result = subprocess.run(args, check=False, cwd=cwd, env=dvc_env(), capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode != 0, f"{' '.join(args)} was not refused:\n{result.stdout}"
    return [line for line in (result.stdout + result.stderr).splitlines()
            if line.startswith("error:")]


def copy_repository(dest: Path) -> None:
    """The committed and untracked-but-not-ignored files, as a fresh clone would have them."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        source = ROOT / name
        if source.is_file() and not name.startswith(("data/", *(f"{o}/" for o in OUTPUTS),
                                                       "dvc.lock")):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def use_tiny_profile(repo: Path) -> None:
    config = repo / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("- profile: quick", "- profile: tiny"))
    from dvc.utils.hydra import compose_and_dump
    compose_and_dump(repo / "params.yaml", os.fspath(repo / "conf"), None, "config", "", [])


def digests(repo: Path) -> dict[str, str]:
    """md5 of every file under the output folders."""
    return {path.relative_to(repo).as_posix(): hashlib.md5(path.read_bytes()).hexdigest()
            for folder in OUTPUTS for path in sorted((repo / folder).rglob("*")) if path.is_file()}


def validated_lr(repo: Path) -> float | None:
    """train.lr as the `params` stage last validated it (dvc.lock), None before it has run."""
    try:
        lock = yaml.safe_load((repo / "dvc.lock").read_text())
        return lock["stages"]["params"]["params"]["params.yaml"]["train"]["lr"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def metric_columns(repo: Path) -> list[str]:
    """The metric columns `dvc exp show` would have: one per file and (flattened) key."""
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo, stdout_only=True))
    columns = []

    def flatten(prefix, value):
        if isinstance(value, dict):
            for key, inner in value.items():
                flatten(f"{prefix}.{key}", inner)
        else:
            columns.append(prefix)

    for revision in shown.values():
        for path, content in revision.get("data", {}).items():
            flatten(path, content.get("data", {}))
    return columns


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
    # 1. dvc repro validates the params, then builds every stage and output of the four models
    out = run(["dvc", "repro"], repo)
    assert out.index("Running stage 'params'") < out.index("Running stage 'download'")
    for stage in ("split", "evaluate", "rotation_sweep", "report"):
        assert f"Running stage '{stage}'" in out
    for name in FOUR:
        assert f"Running stage 'train@{name}-0'" in out  # DVC names matrix items by value
        assert (repo / "models" / f"{name}-seed0.pt").is_file()
        assert (repo / "plots" / "train" / f"{name}-seed0.csv").is_file()
        assert (repo / "plots" / "rotation" / f"{name}.csv").is_file()
        assert (repo / "metrics" / "equivariance" / f"{name}.json").is_file()
        evaluated = json.loads((repo / "metrics" / "evaluate" / f"{name}.json").read_text())
        assert 0.0 <= evaluated["val_iou"]["mean"] <= 1.0
    html = (repo / "reports" / "report.html").read_text()
    assert "gunet-full" in html and "data:image/png;base64" in html
    # a lean history: what git commits of an experiment is small text; images, GIFs, the
    # self-contained report and models live in DVC's cache
    run(["git", "add", "-A"], repo)
    tracked = run(["git", "ls-files"], repo).split()
    assert not [name for name in tracked if name.endswith((".gif", ".png", ".html", ".pt"))]
    assert sum((repo / name).stat().st_size for name in tracked
               if name.startswith(OUTPUTS)) < 1_000_000
    # no litter: no temporary file of any stage is left for git to see
    assert not [line for line in run(["git", "status", "--porcelain", "--ignored"], repo).splitlines()
                if line.rstrip("/").endswith((".tmp", ".old"))]
    run(["git", "commit", "-qm", "baseline"], repo)

    # 2. nothing changed: nothing runs
    assert "Data and pipelines are up to date" in run(["dvc", "repro"], repo)

    # 3. a refused run changes nothing: one `error:` line naming the key, every output as it was
    # (DVC leaves the refused value in params.yaml: `git checkout params.yaml` restores it; the
    # next `dvc exp run` recomposes it from conf/ anyway)
    before = digests(repo)
    for override, key in [("train.epochs=-3", "train.epochs"),
                          ("sweep.angle_step=0", "sweep.angle_step"),
                          ("data.archive=/nonexistent.zip", "data.archive")]:
        errors = run_refused(["dvc", "exp", "run", "-S", override], repo)
        assert len(errors) == 1 and errors[0].startswith(f"error: params: '{key}'"), errors
        assert digests(repo) == before, f"-S {override} changed outputs"
        assert yaml.safe_load((repo / "params.yaml").read_text()) != yaml.safe_load(
            run(["git", "show", "HEAD:params.yaml"], repo))
        run(["git", "checkout", "-q", "params.yaml"], repo)
        assert "Data and pipelines are up to date" in run(["dvc", "status"], repo)

    # 4. two experiments started at once in one workspace: the second rewrites params.yaml before
    # DVC's lock refuses it; the first then stops instead of mixing both settings
    first = subprocess.Popen(["dvc", "exp", "run", "-S", "train.lr=0.02"], cwd=repo, env=dvc_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while first.poll() is None and validated_lr(repo) != 0.02:  # its `params` stage has run
        time.sleep(0.2)
    errors = run_refused(["dvc", "exp", "run", "-S", "train.lr=0.05"], repo)
    first_out = first.communicate(timeout=600)[0]
    assert first.returncode != 0, first_out
    stopped = [line for line in first_out.splitlines() if line.startswith("error:")]
    assert len(stopped) == 1, first_out
    assert stopped[0].startswith("error: params.yaml changed after the `params` stage validated")
    assert "dvc exp run --queue" in stopped[0]
    assert not errors  # the second is refused by DVC itself ("... is busy")
    # no stage is recorded with the second run's setting: the one it stopped in is not recorded
    # (DVC reruns it next time), one it finished is recorded as it ran, and one recorded after the
    # rewrite is forgotten (tests/test_pipeline_guards.py), whenever the rewrite lands
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    baseline = yaml.safe_load(run(["git", "show", "HEAD:params.yaml"], repo))["train"]["lr"]
    recorded = {name: entry["params"]["params.yaml"]["train"]["lr"]
                for name, entry in lock.items() if name.startswith("train@")}
    assert set(recorded.values()) <= {baseline, 0.02}, recorded
    run(["git", "checkout", "-q", "--", "."], repo)
    run(["dvc", "checkout", "-q", "--force"], repo)
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo)

    # 5. the Group U-Net branch alone, with a changed parameter: only its runs are shown
    out = run(["dvc", "exp", "run", "-S", "model=gunet", "-S", "train.epochs=1"], repo)
    assert "Running stage 'train@gunet-minimal-0'" in out
    assert "train@unet" not in out
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["models"] == ["gunet"] and params["train"]["epochs"] == 1
    assert sorted(p.stem for p in (repo / "metrics" / "evaluate").iterdir()) == [
        "gunet-full", "gunet-minimal"]  # no stale unet files
    assert not re.search(r"\bunet-", (repo / "reports" / "report.md").read_text())
    assert not [c for c in metric_columns(repo) if re.search(r"\bunet-", c)]
    shown = json.loads(run(["dvc", "plots", "show", "--json"], repo, stdout_only=True))["data"]
    assert "plots/train/gunet-full-seed0.csv" in shown
    assert not [name for name in shown if re.search(r"\bunet-", name)]

    # 6. compare with the baseline, and draw the charts
    diff = run(["dvc", "metrics", "diff", "--all"], repo)
    assert "metrics/evaluate/gunet-full.json" in diff and "val_iou" in diff
    plots = run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], repo)
    index = (tmp_path / "plots" / "index.html").read_text()
    assert "index.html" in plots and "val_iou" in index and "set_iou_consistency_mean" in index

    # 7. identical runs give identical files: `dvc repro -f` reruns every stage, same hashes
    lock = (repo / "dvc.lock").read_text()
    assert "Running stage 'train@gunet-full-0'" in run(["dvc", "repro", "-f"], repo)
    assert (repo / "dvc.lock").read_text() == lock

    # 8. a DVC remote round trip: push, fresh clone, pull, nothing left to reproduce
    run(["git", "checkout", "-q", "--", "."], repo)  # back to the committed baseline
    run(["dvc", "checkout", "-q"], repo)
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "store", str(remote)], repo)
    run(["git", "commit", "-qam", "remote"], repo)
    run(["dvc", "push", "-q"], repo)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    run(["dvc", "pull", "-q"], clone)
    assert (clone / "models" / "gunet-full-seed0.pt").is_file()
    assert (clone / "reports" / "report.html").is_file()
    assert "Data and pipelines are up to date" in run(["dvc", "repro"], clone)


def test_a_default_experiment_has_few_metric_columns(repo):
    """`dvc exp show` stays readable: per-run details are plots or plain outputs, not metrics."""
    run(["dvc", "repro"], repo)  # nothing to do after the story; builds it if run alone
    columns = metric_columns(repo)
    # 32 for the default four runs: both protocols and the seed's draw are headline figures
    assert len(columns) <= 32, f"{len(columns)} metric columns: {columns}"


def test_editing_the_audit_or_the_report_retrains_nothing(repo):
    """A train stage depends on what training imports and nothing else: an edit under the audit
    package, the analysis or the report, or to the sweep's settings (where a new perturbation
    family's level list goes), leaves every train stage up to date."""
    run(["dvc", "repro"], repo)  # up to date after the story; builds it if run alone
    edited = ["src/equiseg/audit/run.py", "src/equiseg/report/document.py",
              "src/equiseg/analysis/summary.py", "src/equiseg/analysis/sweep_settings.py"]
    originals = {name: (repo / name).read_text() for name in edited}
    try:
        for name in edited:
            (repo / name).write_text(originals[name] + "\n# an edit\n")
        status = run(["dvc", "status"], repo, stdout_only=True)
        assert "rotation_sweep" in status and "report" in status  # the edits were seen
        assert "train@" not in status, status
    finally:
        for name, text in originals.items():
            (repo / name).write_text(text)
