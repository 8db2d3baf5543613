"""The `params` stage (src/check_params.py) and atomic outputs, without DVC: what it refuses, what it
leaves behind, and the guard against a second `dvc exp run` rewriting params.yaml mid-run.
The same behaviour under real `dvc exp run` is in tests/test_pipeline.py."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from equiseg.io import atomic_dir, write_text
from tests.tiny_project import SRC, TINY_PARAMS, run_stage, stage_env, write_params


def write_lock(root, params: dict) -> None:
    """A dvc.lock as DVC leaves it once the `params` stage has run with `params`."""
    lock = {"schema": "2.0", "stages": {"params": {"cmd": "python src/check_params.py",
                                                  "params": {"params.yaml": params}}}}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))


def test_valid_params_write_a_stamp_that_does_not_change(tmp_path):
    write_params(tmp_path)
    assert run_stage(tmp_path, "check_params.py").returncode == 0
    stamp = (tmp_path / "data/params.ok").read_bytes()
    write_params(tmp_path, train={"epochs": 5})
    assert run_stage(tmp_path, "check_params.py").returncode == 0
    assert (tmp_path / "data/params.ok").read_bytes() == stamp  # downstream stages see no change


def test_a_wrong_value_is_one_line_naming_the_key_and_writes_nothing(tmp_path):
    write_params(tmp_path, train={"epochs": -3})
    result = run_stage(tmp_path, "check_params.py")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: params: 'train.epochs' must be positive, got -3"]
    assert not (tmp_path / "data").exists()


def test_a_missing_local_archive_is_refused_before_any_stage_runs(tmp_path):
    write_params(tmp_path, data={"archive": str(tmp_path / "nonexistent.zip")})
    result = run_stage(tmp_path, "check_params.py")
    assert result.returncode == 2
    assert result.stderr.startswith("error: params: 'data.archive' is ")
    assert "does not exist" in result.stderr and len(result.stderr.splitlines()) == 1
    (tmp_path / "nonexistent.zip").write_bytes(b"")  # exists: the download stage verifies it
    assert run_stage(tmp_path, "check_params.py").returncode == 0


def test_the_guard_passes_while_params_yaml_is_what_the_params_stage_validated(tmp_path):
    write_params(tmp_path)
    assert run_stage(tmp_path, "check_params.py", "--unchanged").returncode == 0  # no dvc.lock yet
    write_lock(tmp_path, yaml.safe_load((tmp_path / "params.yaml").read_text()))
    # formatting is not content: the same values written differently still pass
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS, sort_keys=True, indent=4))
    assert run_stage(tmp_path, "check_params.py", "--unchanged").returncode == 0


def heavy_modules_loaded(root, *args: str) -> str:
    """Run check_params.py with `args` in `root`; the heavy libraries it imported, as printed."""
    probe = (f"import runpy, sys; sys.argv = ['check_params.py', *{list(args)!r}]; "
             f"runpy.run_path({str(SRC / 'check_params.py')!r}, run_name='__main__'); "
             "print(sorted(m for m in ('torch', 'albumentations') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], check=False, cwd=root,
                            capture_output=True, text=True, env=stage_env())
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_the_guard_loads_no_torch_since_it_runs_twice_around_every_stage(tmp_path):
    write_params(tmp_path)
    write_lock(tmp_path, yaml.safe_load((tmp_path / "params.yaml").read_text()))
    assert heavy_modules_loaded(tmp_path, "--unchanged") == "[]"


def test_the_full_check_loads_no_torch_since_the_schema_is_plain_python(tmp_path):
    write_params(tmp_path)
    assert heavy_modules_loaded(tmp_path) == "[]"
    assert (tmp_path / "data/params.ok").exists()  # it did validate the whole file


def test_a_number_written_as_text_is_the_same_value_to_the_guard(tmp_path):
    write_params(tmp_path, train={"lr": 0.001})
    validated = yaml.safe_load((tmp_path / "params.yaml").read_text())
    write_lock(tmp_path, validated)
    text = (tmp_path / "params.yaml").read_text().replace("lr: 0.001", "lr: 1e-3")
    assert "lr: 1e-3" in text  # PyYAML reads this as a string, DVC's YAML 1.2 as a float
    (tmp_path / "params.yaml").write_text(text)
    assert run_stage(tmp_path, "check_params.py", "--unchanged").returncode == 0


@pytest.mark.parametrize("section", [{"profile": "nan"}, {"train": {"lr": float("nan")}}],
                         ids=["the text nan", "a float NaN"])
def test_a_nan_is_the_same_value_to_the_guard_as_to_dvc(tmp_path, section):
    """`nan` is a string to DVC's YAML 1.2, `.nan` a float NaN; neither may refuse every run
    (a NaN never equals itself, and the text `nan` is no number)."""
    write_params(tmp_path, **section)
    write_lock(tmp_path, yaml.safe_load((tmp_path / "params.yaml").read_text()))
    result = run_stage(tmp_path, "check_params.py", "--unchanged")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("text", ["- a list\n", "", "just text\n"])
def test_a_params_yaml_that_is_not_a_mapping_is_one_line_naming_it(tmp_path, text):
    write_params(tmp_path)
    write_lock(tmp_path, yaml.safe_load((tmp_path / "params.yaml").read_text()))
    (tmp_path / "params.yaml").write_text(text)
    result = run_stage(tmp_path, "check_params.py", "--unchanged")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: params.yaml: holds ")
    assert "not a mapping" in result.stderr


def test_the_guard_refuses_a_params_yaml_rewritten_mid_run(tmp_path):
    write_params(tmp_path)
    write_lock(tmp_path, yaml.safe_load((tmp_path / "params.yaml").read_text()))
    write_params(tmp_path, train={"lr": 0.05})  # what a second `dvc exp run -S` does
    result = run_stage(tmp_path, "check_params.py", "--unchanged")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(
        "error: params.yaml changed after the `params` stage validated it (train; see dvc.lock)")
    assert "dvc exp run --queue" in result.stderr


def test_a_stage_recorded_after_the_rewrite_is_forgotten_so_it_reruns(tmp_path):
    """DVC reads params.yaml for a finished stage's lock entry after the stage's closing guard: a
    rewrite in between records the second run's values beside the first run's outputs. The next
    guard refuses and drops that entry; entries recorded with the validated or older values stay."""
    write_params(tmp_path, train={"lr": 0.02})
    validated = yaml.safe_load((tmp_path / "params.yaml").read_text())
    write_lock(tmp_path, validated)
    lock = yaml.safe_load((tmp_path / "dvc.lock").read_text())

    def entry(lr: float) -> dict:
        return {"cmd": "python src/train.py", "params": {"params.yaml": {
            "train": {**validated["train"], "lr": lr},
            "data.image_size": validated["data"]["image_size"]}}}

    lock["stages"].update({"train@a": entry(0.02), "train@b": entry(0.05), "train@c": entry(0.001)})
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    write_params(tmp_path, train={"lr": 0.05})  # the second `dvc exp run -S train.lr=0.05`
    result = run_stage(tmp_path, "check_params.py", "--unchanged")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "dvc.lock had recorded train@b with the new values" in result.stderr
    stages = yaml.safe_load((tmp_path / "dvc.lock").read_text())["stages"]
    assert sorted(stages) == ["params", "train@a", "train@c"]
    assert stages["train@a"] == entry(0.02)  # the rest of the lock as it was


def test_a_rewrite_between_a_stage_and_its_lock_entry_makes_it_rerun_not_restored(tmp_path):
    """The race itself, with real DVC: the rewrite is the last step of a stage's command, after its
    closing guard (the instant a second `dvc exp run` can land in), so DVC records the stage, and
    saves a run-cache record, with the new value. The next stage's guard refuses and forgets
    both, so the next run reruns the stage instead of restoring outputs made with the old value."""
    dvc = [sys.executable, "-m", "dvc"]
    guard = f"{sys.executable} {SRC / 'check_params.py'} --unchanged"
    (tmp_path / "params.yaml").write_text("x: 1\n")
    (tmp_path / "in.txt").write_text("input\n")
    (tmp_path / "rewrite.py").write_text("open('params.yaml', 'w').write('x: 2\\n')\n")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "params": {"cmd": "echo ok > ok.txt", "params": [{"params.yaml": None}],
                   "outs": [{"ok.txt": {"cache": False}}]},
        "copy": {"cmd": [guard, "cp in.txt out.txt", guard, f"{sys.executable} rewrite.py"],
                 "deps": ["in.txt", "ok.txt"], "params": ["x"], "outs": ["out.txt"]},
        "next": {"cmd": [guard, "cp out.txt next.txt"], "deps": ["out.txt"],
                 "outs": ["next.txt"]}}}))
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    raced = subprocess.run([*dvc, "repro"], cwd=tmp_path, check=False, env=stage_env(),
                           capture_output=True, text=True)
    assert raced.returncode != 0
    assert "had recorded copy with the new values" in raced.stdout + raced.stderr
    assert "copy" not in yaml.safe_load((tmp_path / "dvc.lock").read_text())["stages"]
    again = subprocess.run([*dvc, "repro"], cwd=tmp_path, check=True, env=stage_env(),
                           capture_output=True, text=True).stdout
    assert "Running stage 'copy'" in again, again  # not "skipping" nor "restored from run-cache"


def test_an_interrupted_write_leaves_hidden_litter_that_the_next_write_removes(tmp_path):
    class Killed(Exception):
        pass

    try:
        with atomic_dir(tmp_path / "reports") as tmp:
            (tmp / "report.html").write_text("half")
            raise Killed
    except Killed:
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # an exception cleans up at once
    # a killed process cannot clean up: its leftovers are named .<target>.*.tmp
    (tmp_path / ".reports.k1ll3d.tmp").mkdir()
    (tmp_path / ".report.md.k1ll3d.tmp").write_text("half")
    with atomic_dir(tmp_path / "reports") as tmp:
        (tmp / "report.html").write_text("whole")
    write_text(tmp_path / "report.md", "whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "reports"]
