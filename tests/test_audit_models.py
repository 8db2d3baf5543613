"""Models as users bring them: MONAI from the command line, ONNX, torch.export, outputs shaped like
SegFormer's and torchvision's, and files equiseg must refuse in one line."""

import json

import pandas as pd
import pytest
import torch
from torch import nn

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
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class SemanticOutput:  # what Hugging Face's SegFormer returns: logits at a quarter of the size
    logits: torch.Tensor


class QuarterLogits(nn.Module):
    def __init__(self, classes=2):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, classes, 1)

    def forward(self, x):
        return SemanticOutput(logits=self.conv(F.avg_pool2d(x, 4)))


class TorchvisionLike(nn.Module):  # torchvision's segmentation models return {'out': ..., 'aux': ...}
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x):
        return {"aux": x[:, :1], "out": self.conv(x)}


class DeepSupervision(nn.Module):
    def forward(self, x):
        return (x[:, :1] - 0.5, x[:, 1:2])


def plain(width=4):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(width, 1, 3, padding=1))
'''


@pytest.fixture
def setup(tmp_path):
    return tiny_folder(tmp_path, count=2, size=16), write_models(tmp_path, MODELS)


def test_monai_unet_from_the_command_line_alone(tmp_path, capsys):
    pytest.importorskip("monai", reason="monai is a test dependency (requirements.txt)")
    images = tiny_folder(tmp_path)
    kwargs = {"spatial_dims": 2, "in_channels": 3, "out_channels": 1, "channels": [4, 8],
              "strides": [2], "num_res_units": 0}
    summary = audit_ok(capsys, tmp_path / "out", "--model", "monai.networks.nets:UNet",
                       "--model-kwargs", json.dumps(kwargs), "--seed", "3", "--images",
                       str(images))
    assert summary["model_kind"] == "factory" and summary["weights_loaded"] is False
    assert summary["seed"] == 3 and summary["model_kwargs"] == kwargs
    assert summary["perturbations"]["rotate"]["exact_at_90_multiples"] is False
    report = (tmp_path / "out" / "report.md").read_text()
    assert "No weights were loaded" in report.split("## Findings")[0]


def test_onnx_export_runs_through_onnxruntime(tmp_path, capsys, setup):
    pytest.importorskip("onnxruntime", reason="onnxruntime is the optional extra equiseg[onnx]")
    images, _ = setup
    torch.manual_seed(0)
    model = nn.Conv2d(3, 1, 1).eval()  # pixel-wise: exact at 90-degree turns in any runtime
    path = tmp_path / "model.onnx"
    with pytest.warns(DeprecationWarning):  # the TorchScript exporter needs no onnxscript
        torch.onnx.export(model, (torch.rand(1, 3, 16, 16),), str(path), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    summary = audit_ok(capsys, tmp_path / "out", "--model", str(path), "--images", str(images))
    assert summary["model_kind"] == "onnx" and summary["weights_loaded"] is True
    assert summary["perturbations"]["rotate"]["exact_at_90_multiples"] is True


def test_torch_export_program_runs_without_eval(tmp_path, capsys, setup):
    images, _ = setup
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 1, 1))
    model.eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (torch.rand(2, 3, 16, 16),),
                                  dynamic_shapes=({0: batch},))
    path = tmp_path / "model.pt2"
    torch.export.save(program, str(path))
    summary = audit_ok(capsys, tmp_path / "out", "--model", str(path), "--images", str(images),
                       "--symmetrize", "p4")
    assert summary["model_kind"] == "torch.export"
    assert summary["perturbations"]["rotate"]["exact_at_90_multiples"] is False
    assert summary["symmetrized"]["perturbations"]["rotate"]["exact_at_90_multiples"] is True


def test_segformer_like_output_needs_upsample_and_says_so(tmp_path, capsys, setup):
    images, models = setup
    spec = ["--model", f"{models}:QuarterLogits", "--classes", "2", "--images", str(images)]
    code, _, err = run_cli(capsys, "audit", "--out", str(tmp_path / "no"), *FAST, *spec)
    line = one_error_line(err)
    assert code == 2 and "4x4 pixels for a 16x16 input (4x smaller); turn on `--upsample`" in line
    summary = audit_ok(capsys, tmp_path / "out", *spec, "--upsample", "--foreground-classes", "1")
    assert summary["output"]["found"] == ".logits"
    assert summary["output"]["upsampled_from"] == [4, 4]
    assert summary["output"]["foreground_classes"] == [1]
    assert "upsampled bilinearly" in (tmp_path / "out" / "report.md").read_text()


def test_dicts_and_tuples_are_read_and_output_key_chooses(tmp_path, capsys, setup):
    images, models = setup
    base = ["--images", str(images)]
    summary = audit_ok(capsys, tmp_path / "dict", "--model", f"{models}:TorchvisionLike", *base)
    assert summary["output"]["found"] == "dict['out']"
    summary = audit_ok(capsys, tmp_path / "aux", "--model", f"{models}:TorchvisionLike",
                       "--output-key", "aux", *base)
    assert summary["output"]["found"] == "dict['aux']"
    # the aux head is the red channel itself: pixel-wise, so exact
    assert summary["perturbations"]["rotate"]["exact_at_90_multiples"] is True
    summary = audit_ok(capsys, tmp_path / "tuple", "--model", f"{models}:DeepSupervision", *base)
    assert summary["output"]["found"] == "first element"
    code, _, err = run_cli(capsys, "audit", "--out", str(tmp_path / "bad"), *FAST, *base,
                           "--model", f"{models}:TorchvisionLike", "--output-key", "nope")
    assert code == 2 and "keys aux, out" in one_error_line(err)


def test_model_kwargs_reach_the_factory_and_bad_ones_are_one_line(tmp_path, capsys, setup):
    images, models = setup
    audit_ok(capsys, tmp_path / "out", "--model", f"{models}:plain", "--model-kwargs",
             '{"width": 2}', "--images", str(images))
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(results) == 2 * 4
    for kwargs, message in (('{"depth": 2}', "unexpected keyword argument 'depth'"),
                            ("[1, 2]", "is not a JSON object"), ("{oops", "is not JSON")):
        code, _, err = run_cli(capsys, "audit", "--out", str(tmp_path / "bad"), *FAST,
                               "--model", f"{models}:plain", "--model-kwargs", kwargs,
                               "--images", str(images))
        assert code == 2 and message in one_error_line(err)


@pytest.mark.parametrize("content, message", [
    ("whole", "holds a whole pickled model"),
    ("garbage", "not a model file equiseg reads"),
    ("state_dict", "holds only weights"),
])
def test_files_equiseg_cannot_read_are_one_clear_line(tmp_path, capsys, setup, content, message):
    images, _ = setup
    path = tmp_path / "model.pt"
    if content == "whole":
        torch.save(nn.Conv2d(3, 1, 1), path)
    elif content == "garbage":
        path.write_bytes(b"\x00\x01 not a model at all")
    else:
        torch.save(nn.Conv2d(3, 1, 1).state_dict(), path)
    code, _, err = run_cli(capsys, "audit", "--out", str(tmp_path / "out"), *FAST,
                           "--model", str(path), "--images", str(images))
    assert code == 2 and message in one_error_line(err)
    assert not (tmp_path / "out").exists()


def test_a_from_pretrained_factory_counts_as_loaded_weights(tmp_path):
    """`Class.from_pretrained` loads its own weights (Hugging Face's convention): no warning."""
    from equiseg.audit.models import load_model_from_spec

    (tmp_path / "pretrained.py").write_text(
        "from torch import nn\n\n"
        "class Net(nn.Conv2d):\n"
        "    @classmethod\n"
        "    def from_pretrained(cls, path):\n"
        "        return cls(3, 1, 1)\n")
    spec = f"{tmp_path / 'pretrained.py'}:Net"
    assert load_model_from_spec(f"{spec}.from_pretrained", kwargs={"path": "x"}).weights_loaded
    assert not load_model_from_spec(spec, kwargs={"in_channels": 3, "out_channels": 1,
                                             "kernel_size": 1}).weights_loaded


def test_an_import_failing_inside_the_module_names_the_real_error(tmp_path, capsys, setup,
                                                                   monkeypatch):
    images, _ = setup
    (tmp_path / "needs_nms.py").write_text(
        "raise RuntimeError('operator torchvision::nms does not exist')\n")
    (tmp_path / "needs_missing.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.chdir(tmp_path)
    nms = "RuntimeError: operator torchvision::nms does not exist in needs_nms.py:1"
    for spec, real in (("needs_nms:build", nms),
                       ("needs_missing:build", "No module named 'no_such_dependency_xyz'")):
        code, _, err = run_cli(capsys, "audit", "--out", str(tmp_path / "out"), *FAST,
                               "--model", spec, "--images", str(images))
        line = one_error_line(err)
        assert code == 2 and real in line and "PYTHONPATH" not in line, line
    code, _, err = run_cli(capsys, "audit", "--out", str(tmp_path / "out"), *FAST,
                           "--model", "no_such_module_xyz:build", "--images", str(images))
    assert "check the name and that it is on PYTHONPATH" in one_error_line(err)


EXPORTED_OUTPUTS = '''
from dataclasses import dataclass

import torch
import torch.utils._pytree as pytree


@dataclass
class SegmenterOutput:  # a stand-in for Hugging Face's ModelOutput, registered as transformers does
    logits: torch.Tensor


pytree.register_dataclass(SegmenterOutput, serialized_type_name=f"{__name__}.SegmenterOutput")


class Segmenter(torch.nn.Module):
    def __init__(self, as_dict=False):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.as_dict = torch.nn.Conv2d(3, 2, 1), as_dict

    def forward(self, x):
        logits = self.conv(x)
        return {"logits": logits} if self.as_dict else SegmenterOutput(logits)
'''


@pytest.mark.parametrize("as_dict", [True, False], ids=["dict", "model_output"])
def test_pt2_programs_returning_a_dict_or_a_model_output(as_dict, tmp_path, capsys, setup,
                                                         monkeypatch):
    import sys

    import torch.utils._pytree as pytree

    images, _ = setup
    name = f"exported_outputs_{as_dict}"
    (tmp_path / f"{name}.py").write_text(EXPORTED_OUTPUTS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(name)
    batch = torch.export.Dim("batch")
    program = torch.export.export(module.Segmenter(as_dict).eval(), (torch.rand(2, 3, 16, 16),),
                                  dynamic_shapes=({0: batch},))
    torch.export.save(program, str(tmp_path / "segmenter.pt2"))
    # a fresh process has never imported the output's module: forget it, as that one would
    pytree.SUPPORTED_NODES.pop(module.SegmenterOutput, None)
    pytree.SERIALIZED_TYPE_TO_PYTHON_TYPE.pop(f"{name}.SegmenterOutput", None)
    sys.modules.pop(name)
    summary = json.loads(json.dumps(audit_ok(
        capsys, tmp_path / "out", "--model", "segmenter.pt2", "--images", str(images),
        "--classes", "2")))
    assert summary["model_kind"] == "torch.export"
    assert summary["output"]["found"] == ("dict['logits']" if as_dict else ".logits")


def test_onnx_default_exporter_with_the_onnx_extra(tmp_path, capsys, setup):
    pytest.importorskip("onnxruntime", reason="onnxruntime is the optional extra equiseg[onnx]")
    pytest.importorskip("onnxscript", reason="torch.onnx.export's default exporter needs "
                        "onnxscript, in the optional extra equiseg[onnx]")
    images, _ = setup
    torch.manual_seed(0)
    path = tmp_path / "model.onnx"
    torch.onnx.export(nn.Conv2d(3, 1, 1).eval(), (torch.rand(2, 3, 16, 16),), str(path),
                      input_names=["x"], dynamic_shapes=({0: torch.export.Dim("batch")},))
    summary = audit_ok(capsys, tmp_path / "out", "--model", str(path), "--images", str(images))
    assert summary["model_kind"] == "onnx"
    assert summary["perturbations"]["rotate"]["exact_at_90_multiples"] is True


CONFIGURED = '''
import torch
from torch import nn


class TinyConfig:  # what a Hugging Face config class is: keyword arguments kept as attributes
    def __init__(self, num_labels=1, hidden=4):
        self.num_labels, self.hidden = num_labels, hidden


class TinySegmenter(nn.Module):  # a PreTrainedModel takes a config object, not a dict
    config_class = TinyConfig

    def __init__(self, config):
        super().__init__()
        assert isinstance(config, TinyConfig), f"got a {type(config).__name__}"
        self.conv = nn.Conv2d(3, config.num_labels, 1)

    def forward(self, x):
        return self.conv(x)

    @classmethod
    def from_config(cls, config):
        return cls(config)
'''


@pytest.mark.parametrize("factory", ["TinySegmenter", "TinySegmenter.from_config"])
def test_a_hugging_face_style_class_is_built_from_a_config_dict(factory, tmp_path, capsys,
                                                                setup):
    images, _ = setup
    models = write_models(tmp_path, CONFIGURED, name="configured")
    summary = audit_ok(capsys, tmp_path / "out", "--model", f"{models}:{factory}",
                       "--model-kwargs", '{"config": {"num_labels": 2}}', "--classes", "2",
                       "--images", str(images))
    assert summary["output"]["classes"] == 2
    assert summary["model_kwargs"] == {"config": {"num_labels": 2}}
    code, _, err = run_cli(capsys, "audit", "--out", str(tmp_path / "bad"), *FAST,
                           "--model", f"{models}:{factory}", "--images", str(images),
                           "--model-kwargs", '{"config": {"no_such_key": 2}}')
    assert code == 2 and "TinyConfig(**config) failed" in one_error_line(err)


def test_sample_images_make_the_readme_example_run(tmp_path, capsys):
    code, _, err = run_cli(capsys, "sample-images", str(tmp_path / "samples"), "--count", "2",
                             "--size", "48")
    assert code == 0, err
    images, masks = tmp_path / "samples" / "images", tmp_path / "samples" / "masks"
    assert len(list(images.glob("*.png"))) == len(list(masks.glob("*.png"))) == 2
    summary = audit_ok(capsys, tmp_path / "audit", "--model", "equiseg.nn.models:build_model",
                       "--model-kwargs", '{"name": "gunet", "filters": [4, 4, 8, 8]}',
                       "--images", str(images), "--masks", str(masks))
    assert summary["images"] == 2 and summary["perturbations"]["rotate"]["mean_iou_gt"] is not None
    before = snapshot(tmp_path / "samples")
    code, _, err = run_cli(capsys, "sample-images", str(tmp_path / "samples"))
    assert code == 2 and "not an empty folder" in one_error_line(err)
    assert snapshot(tmp_path / "samples") == before
