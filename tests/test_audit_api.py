"""`equiseg.audit(model, images)`: the Python API the command line is a shell over."""

import doctest
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import equiseg
import equiseg.audit.api
import equiseg.audit.run
from equiseg.audit import AuditResult, audit
from equiseg.errors import EquisegError
from tests.audit_helpers import FAST, run_cli, snapshot, tiny_folder

RUN = {"perturb": "rotate,flip", "angle_step": 90, "worst": 1}


def pixelwise() -> nn.Module:
    torch.manual_seed(0)
    return nn.Conv2d(3, 1, kernel_size=1)


def test_the_package_is_callable_and_its_modules_still_import():
    # `import equiseg.audit.run` binds the package; the call and the submodules both work
    assert equiseg.audit.run.run_audit is not None and callable(equiseg.audit)
    assert "audit" in equiseg.__all__ and equiseg.audit.audit is audit
    result = equiseg.audit(pixelwise(), torch.rand(1, 3, 16, 16), **RUN)
    assert isinstance(result, AuditResult) and result.summary["images"] == 1


def docstring_examples() -> list[doctest.DocTest]:
    return [test for test in doctest.DocTestFinder().find(equiseg.audit.api) if test.examples]


def test_every_public_function_has_examples():
    documented = {test.name.rsplit(".", 1)[-1] for test in docstring_examples()}
    assert set(equiseg.audit.api.__all__) <= documented


@pytest.mark.parametrize("example", docstring_examples(), ids=lambda test: test.name)
def test_docstring_examples_run(example):
    runner = doctest.DocTestRunner()
    report = io.StringIO()
    runner.run(example, out=report.write)
    assert runner.failures == 0, report.getvalue()


def test_a_folder_its_files_and_its_pixels_give_the_same_numbers(tmp_path):
    folder = tiny_folder(tmp_path, count=2, size=16)
    files = sorted(folder.iterdir())
    arrays = [np.array(Image.open(path)) for path in files]
    tensor = torch.stack([torch.from_numpy(a).permute(2, 0, 1) / 255.0 for a in arrays])
    frames = [audit(pixelwise(), given, **RUN).frame for given in
              (folder, files, arrays, tensor)]
    for frame in frames[1:]:
        assert np.allclose(frame["iou_consistency"], frames[0]["iou_consistency"])
        assert np.allclose(frame["mad"], frames[0]["mad"], atol=1e-6)


def test_masks_in_memory_are_scored_like_mask_files(tmp_path):
    images = torch.rand(2, 3, 16, 16)
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[:, 4:12, 4:12] = True
    result = audit(pixelwise(), images, masks, **RUN)
    assert result.frame["iou_gt"].notna().all()
    assert result.summary["settings"]["masks"] == "in-memory masks"


def test_write_gives_the_command_lines_files_and_never_deletes_others(tmp_path, capsys):
    folder = tiny_folder(tmp_path, count=2, size=16)
    models = tmp_path / "pointwise.py"
    models.write_text("import torch\nfrom torch import nn\n\ndef build():\n"
                      "    torch.manual_seed(0)\n    return nn.Conv2d(3, 1, 1)\n")
    code, _, err = run_cli(capsys, "audit", "--out", str(tmp_path / "cli"), *FAST,
                           "--model", f"{models}:build", "--images", str(folder))
    assert code == 0, err
    result = audit(f"{models}:build", folder, perturb="rotate", angle_step=90, worst=1,
                   device="cpu")
    written = result.write(tmp_path / "api")
    assert set(snapshot(written)) == set(snapshot(tmp_path / "cli"))
    cli_summary = json.loads((tmp_path / "cli" / "summary.json").read_text())
    drop = ("seconds", "images_per_second")
    assert {k: v for k, v in result.summary.items() if k not in drop} == \
        {k: v for k, v in cli_summary.items() if k not in drop}
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("mine")
    with pytest.raises(EquisegError, match="did not write"):
        result.write(tmp_path / "theirs")
    assert snapshot(tmp_path / "theirs") == {"notes.txt": b"mine"}


def test_passed_uses_the_gate_and_never_passes_a_constant():
    images = torch.rand(2, 3, 16, 16)
    good = audit(pixelwise(), images, **RUN)
    assert good.passed(require_exact="p4m") and good.gate_failures(require_exact="p4m") == []
    constant = audit(lambda x: torch.full((x.shape[0], 1, *x.shape[-2:]), -0.0572), images,
                     **RUN)
    assert constant.summary["model_kind"] == "callable"
    assert not constant.passed(require_exact="p4")
    assert constant.gate_failures(fail_under={"consistency": 0.5})[0].startswith("cannot judge")
    with pytest.raises(ValueError, match="nothing to pass"):
        good.passed()
    with pytest.raises(EquisegError, match="--fail-under iou_gt: needs --masks"):
        good.passed(fail_under={"iou_gt": 0.5})


@pytest.mark.parametrize("given, options, message", [
    (torch.rand(1, 3, 8, 8) * 255, {}, r"images\[0\]: pixel values run from"),
    (torch.rand(1, 4, 8, 8), {}, r"images\[0\]: a tensor of shape \(4, 8, 8\)"),
    (np.zeros((8, 8, 3), dtype=np.int32), {}, "pixels of type int32"),
    (torch.rand(1, 3, 8, 8), {"angle_step": 0}, "--angle-step is 0"),
    (torch.rand(1, 3, 8, 8), {"perturb": "rotate,blur"}, "unknown perturbation 'blur'"),
    (torch.rand(1, 3, 8, 8), {"std": (0.0, 1.0, 1.0)}, "--std has a value <= 0"),
])
def test_bad_input_is_one_line_naming_the_argument(given, options, message):
    with pytest.raises(EquisegError, match=message):
        audit(pixelwise(), given, **options)


def test_a_misspelt_option_lists_the_real_ones():
    with pytest.raises(TypeError, match="angle_stepp.*options are .*perturb, angle_step"):
        audit(pixelwise(), torch.rand(1, 3, 8, 8), angle_stepp=90)


def test_summary_records_every_setting_that_shapes_the_numbers():
    result = audit(pixelwise(), [np.zeros((20, 12, 3), np.uint8) + 100], size=16, multiple=8,
                   mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), atol=1e-3, rtol=1e-2,
                   **RUN)
    settings = result.summary["settings"]
    assert settings["size"] == 16 and settings["pad_size"] == 0 and settings["multiple"] == 8
    assert settings["canvas_sides"] == [16]
    assert settings["mean"] == [0.5] * 3 and settings["std"] == [0.25] * 3
    assert settings["threshold"] == 0.5 and settings["classes"] == 1
    assert settings["foreground_classes"] is None and settings["output"] == "logits"
    assert (settings["atol"], settings["rtol"]) == (1e-3, 1e-2)
    assert settings["angle_step"] == 90 and settings["perturb"] == ["rotate", "flip"]
    for name in ("brightness", "contrast", "noise", "judgeable_min_share", "images", "masks"):
        assert name in settings
    assert result.summary["model"] == "torch.nn.modules.conv.Conv2d"
    assert result.summary["weights_loaded"] is None  # a module passed in: unknown
