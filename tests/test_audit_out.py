"""`equiseg audit --out`: it never deletes a file it did not write, and every refusal is one line."""

import json

from tests.audit_helpers import (
    FAST,
    audit_ok,
    one_error_line,
    run_cli,
    snapshot,
    tiny_folder,
    write_models,
)

MODELS = '''
import torch
from torch import nn


def pixelwise():
    torch.manual_seed(0)
    return nn.Conv2d(3, 1, 1)
'''


def _audit(capsys, out, models, images, *extra):
    return run_cli(capsys, "audit", "--out", str(out), "--model", f"{models}:pixelwise",
                   "--images", str(images), *FAST, *extra)


def test_refusals_leave_everything_byte_identical(tmp_path, capsys):
    images = tiny_folder(tmp_path)
    models = write_models(tmp_path, MODELS)
    # the project's own metrics folder: files the audit never wrote
    project = tmp_path / "project" / "metrics"
    (project / "equivariance").mkdir(parents=True)
    (project / "equivariance" / "unet-minimal.json").write_text('{"worst_angle": 45.0}')
    (project / "evaluate.json").write_text("{}")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    # an earlier audit, then a file of the user's put inside it
    earlier = tmp_path / "earlier"
    assert _audit(capsys, earlier, models, images)[0] == 0
    (earlier / "figures" / "my_edit.png").write_bytes(b"mine")
    before = {folder: snapshot(folder) for folder in (tmp_path / "project", earlier)}

    for out, expected in ((project, "did not write (e.g. equivariance/unet-minimal.json)"),
                          (a_file, "is not a folder"),
                          (earlier, "holds figures/my_edit.png")):
        code, _, err = _audit(capsys, out, models, images)
        assert code == 2
        assert expected in one_error_line(err)
    assert a_file.read_text() == "keep me"
    assert {folder: snapshot(folder) for folder in before} == before
    assert not [p for p in tmp_path.rglob(".*.tmp")]
    (earlier / "figures" / "my_edit.png").unlink()
    (earlier / "my_empty_folder").mkdir()  # even an empty folder of the user's is kept
    code, _, err = _audit(capsys, earlier, models, images)
    assert code == 2 and "holds my_empty_folder" in one_error_line(err)
    assert (earlier / "my_empty_folder").is_dir()


def test_an_earlier_audit_or_an_empty_folder_is_replaced_and_listed(tmp_path, capsys):
    images = tiny_folder(tmp_path)
    models = write_models(tmp_path, MODELS)
    out = tmp_path / "out"
    out.mkdir()  # empty: fine
    audit_ok(capsys, out, "--model", f"{models}:pixelwise", "--images", str(images))
    listed = json.loads((out / ".equiseg-audit.json").read_text())["files"]
    assert set(listed) == set(snapshot(out)) - {".equiseg-audit.json"}
    assert {"results.csv", "summary.json", "report.html", "report.md"} <= set(listed)
    (out / "report.md").write_text("stale")  # a file the audit wrote may be replaced
    audit_ok(capsys, out, "--model", f"{models}:pixelwise", "--images", str(images))
    assert (out / "report.md").read_text() != "stale"


def test_a_folder_without_a_readable_image_is_one_error_line(tmp_path, capsys):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "broken.png").write_text("not a png")
    models = write_models(tmp_path, MODELS)
    code, _, err = _audit(capsys, tmp_path / "out", models, junk)
    assert code == 2 and "no readable PNG or JPEG" in one_error_line(err.split("\n", 1)[-1])
    assert not (tmp_path / "out").exists()
