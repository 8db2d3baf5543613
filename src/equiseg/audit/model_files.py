"""Saved model files the audit reads: torch.export `.pt2`, ONNX, TorchScript, equiseg's own `.pt`.

Each holds its weights and settings already, so `--weights` and `--model-kwargs` do not apply
(see `equiseg.audit.models`, which dispatches here).

A `.pt2` program whose output is a dict runs as it is; one whose output is a registered pytree
type (a Hugging Face `ModelOutput` such as SegFormer's) needs that type registered again in the
reading process: the module named in the program's output spec is imported (which registers it,
as importing `transformers` does) before loading once more.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from equiseg.audit.loaded import LoadedModel, ModelLoadError, first_line, read_state_dict


def _load_torchscript(path: Path, map_location: str | torch.device) -> nn.Module | None:
    """The TorchScript module in `path`, or None if it is not a TorchScript file."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:  # torch.jit.save archives hold constants.pkl
        if not any(name.endswith("/constants.pkl") for name in archive.namelist()):
            return None
    try:
        with warnings.catch_warnings():  # torch 2.13 deprecates jit.load; users still have .pt files
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location=map_location)
    except RuntimeError as err:
        raise ModelLoadError(f"{path}: TorchScript file cannot be loaded ({first_line(err)}); "
                             "save it again with torch.jit.save") from None


class OnnxModel(nn.Module):
    """An ONNX model run by onnxruntime on the CPU, as a module: tensor in, tensor(s) out.

    One output comes back as a tensor, several as a dict by output name (choose one with
    `--output-key`); results go back to the input's device.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        try:
            import onnxruntime
        except ImportError:
            raise ModelLoadError(f"{path}: running ONNX models needs onnxruntime; install it with "
                                 "`pip install 'equiseg[onnx]'` (or `pip install onnxruntime`)"
                                 ) from None
        try:
            self.session = onnxruntime.InferenceSession(str(path),
                                                        providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ModelLoadError(f"{path}: onnxruntime cannot load it ({first_line(err)}); "
                                 "export it again with torch.onnx.export") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        array = x.detach().float().cpu().contiguous().numpy()
        outputs = self.session.run(None, {self.input_name: array})
        tensors = [torch.from_numpy(o).to(x.device) for o in outputs]
        return tensors[0] if len(tensors) == 1 else dict(zip(self.output_names, tensors))


UNREGISTERED = re.compile(r"Deserializing (\S+) in pytree is not registered")


def _export_load(path: Path) -> tuple[object | None, list[str], BaseException | None]:
    """(program or None, the causes torch logged, the error): torch logs why loading failed,
    traceback and all, on its own handler; catch it instead, so the reason fits our one line."""
    logger = logging.getLogger("torch.export")
    records: list[logging.LogRecord] = []
    catch = logging.Handler()
    catch.emit = records.append  # type: ignore[method-assign]
    handlers, logger.handlers = logger.handlers, [catch]
    try:
        return torch.export.load(str(path)), [], None
    except Exception as err:  # noqa: BLE001 - a foreign or corrupt archive fails in many ways
        causes = [str(r.exc_info[1]) for r in records if r.exc_info and r.exc_info[1]]
        return None, causes, err
    finally:
        logger.handlers = handlers


def _register_output_type(type_name: str, path: Path) -> None:
    """Import the module defining a program's output type, which registers it with pytree (as
    `transformers` registers every `ModelOutput`); the current folder is importable."""
    module = type_name.rpartition(".")[0]
    sys.path.insert(0, str(Path.cwd()))
    try:
        importlib.import_module(module)
    except Exception as err:  # noqa: BLE001 - a user's module can raise anything
        raise ModelLoadError(f"{path}: its output is a {type_name}, and importing {module} to "
                             f"rebuild it failed ({first_line(err)}); install the package that "
                             "defines it, or export a wrapper returning model(x).logits") from None
    finally:
        sys.path.remove(str(Path.cwd()))


def _load_exported(path: Path, map_location: str | torch.device) -> nn.Module:
    program, causes, err = _export_load(path)
    found = next((m for c in causes if (m := UNREGISTERED.search(c))), None)
    if program is None and found:
        _register_output_type(found.group(1), path)
        program, causes, err = _export_load(path)
        if program is None and any(UNREGISTERED.search(c) for c in causes):
            raise ModelLoadError(f"{path}: its output is a {found.group(1)}, which importing "
                                 f"{found.group(1).rpartition('.')[0]} did not register with "
                                 "pytree; export a wrapper that returns model(x).logits")
    if program is None:
        reason = causes[0].strip().splitlines()[0][:160] if causes else first_line(err)
        raise ModelLoadError(f"{path}: not a program saved by torch.export.save ({reason}); "
                             "save it again with torch.export.save") from None
    return program.module().to(map_location)  # type: ignore[attr-defined]


def _not_a_model(path: Path, err: BaseException) -> ModelLoadError:
    text = str(err)
    if "Unsupported global" in text:  # a pickle that names classes to rebuild: a whole model
        return ModelLoadError(
            f"{path}: holds a whole pickled model (torch.save(model)), which equiseg does not "
            "unpickle (it would run arbitrary code); save model.state_dict() and pass --model "
            "MODULE:FACTORY --weights FILE, or save it with torch.export.save / torch.jit.save")
    try:
        read_state_dict(path, "cpu")
        return ModelLoadError(f"{path}: holds only weights (a state dict); pass --model "
                              f"MODULE:FACTORY --weights {path}")
    except ModelLoadError:
        pass
    return ModelLoadError(f"{path}: not a model file equiseg reads (a torch.export .pt2, an "
                          ".onnx, a TorchScript file or a model saved by equiseg); pass one of "
                          "those, or MODULE:FACTORY")


def load_file(path: Path, map_location: str | torch.device) -> LoadedModel:
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file not found; pass MODULE:FACTORY, "
                             "path/to/file.py:FACTORY, or a .pt2, .onnx or TorchScript file")
    if path.suffix == ".pt2":
        return LoadedModel(_load_exported(path, map_location), "torch.export", True)
    if path.suffix == ".onnx":
        return LoadedModel(OnnxModel(path), "onnx", True)
    scripted = _load_torchscript(path, map_location)
    if scripted is not None:
        return LoadedModel(scripted.eval(), "torchscript", True)
    from equiseg.nn.models import load_trained

    try:
        model, _ = load_trained(path, map_location=map_location)
    except Exception as err:  # noqa: BLE001 - unpickling a foreign file raises many kinds
        raise _not_a_model(path, err) from None
    return LoadedModel(model, "equiseg", True)


