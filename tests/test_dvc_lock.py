"""The committed dvc.lock describes this dvc.yaml: no entry of a stage that no longer exists."""

import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_dvc_lock_names_only_stages_of_dvc_yaml():
    listed = subprocess.run(["dvc", "stage", "list", "--name-only"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split()
    locked = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    assert set(locked) <= set(listed), f"stale entries: {sorted(set(locked) - set(listed))}"
    assert "train@unet-minimal-0" in listed  # the matrix is expanded, so the check can fail
