"""Turn what a user passes as `--model` (and `--weights`) into a `torch.nn.Module`.

Accepted:
- `package.module:factory`: an importable callable (a function or a class) that returns a
  module, called with `--model-kwargs` (a JSON object) as keyword arguments, after seeding
  torch's random generator with `--seed` so random initialisation is the same every run;
  `factory` may be dotted (`module:Class.build`). The current folder is importable, as with
  `python -m`. Example: `monai.networks.nets:UNet` with
  `--model-kwargs '{"spatial_dims": 2, "in_channels": 3, "out_channels": 1, ...}'`.
- `path/to/file.py:factory`: the same, from a file that need not be on the import path.
- `model.pt2`: a program saved by `torch.export.save`; run as `torch.export.load(path).module()`
  (never switched with `.eval()`: it runs in the mode it was exported in).
- `model.onnx`: an ONNX model run with onnxruntime (the optional extra `equiseg[onnx]`), on the
  CPU; export it with a dynamic batch axis.
- `model.pt`: a TorchScript file (`torch.jit.save`), or a model saved by `equiseg` training
  (`equiseg.nn.models.save_trained`). A whole pickled model (`torch.save(model)`) is refused:
  unpickling runs arbitrary code, and needs the model's class anyway.
`--weights FILE` loads a state dict (plain, or under a 'state_dict' or 'model' key; a
'module.' prefix from DistributedDataParallel is dropped) into a factory's module, strictly.
Without it a factory's model keeps its initial weights, and `LoadedModel.weights_loaded` says so,
unless the factory is a `from_pretrained` (`transformers:SegformerForSemanticSegmentation.
from_pretrained` with `--model-kwargs '{"pretrained_model_name_or_path": "my_dir"}'`).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from equiseg.errors import EquisegError

PRETRAINED_FACTORY = "from_pretrained"  # a factory by this name loads its own weights


class ModelLoadError(EquisegError):
    """The model spec, its factory or its weights cannot be turned into a module."""


@dataclass
class LoadedModel:
    """The module, what kind of file or factory it came from, and whether trained weights were
    loaded (False: a factory's random initialisation)."""

    module: nn.Module
    kind: str  # 'factory', 'torch.export', 'onnx', 'torchscript', 'equiseg'
    weights_loaded: bool


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file not found; check the path before ':'")
    name = f"equiseg_user_model_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"{path}: cannot be imported as Python; pass a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent.resolve()))  # so the file can import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - a user's file can raise anything; report it
        sys.modules.pop(name, None)
        raise ModelLoadError(f"{path}: importing it failed ({_first_line(err)}); fix the file "
                             "or its imports") from None
    finally:
        sys.path.remove(str(path.parent.resolve()))
    return module


def _import_module(name: str) -> Any:
    sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except Exception as err:  # noqa: BLE001 - a user's module can raise anything
        raise ModelLoadError(f"--model {name}: module does not import ({_first_line(err)}); "
                             "check the name and that it is on PYTHONPATH") from None
    finally:
        sys.path.remove(str(Path.cwd()))


def resolve_factory(spec: str) -> Callable[[], Any]:
    """The callable named by 'module:factory' or 'path/to/file.py:factory'."""
    target, _, attribute = spec.rpartition(":")
    if not target or not attribute:
        raise ModelLoadError(f"--model {spec}: expected MODULE:FACTORY, path/to/file.py:FACTORY "
                             "or a TorchScript .pt file")
    module = _import_file(Path(target)) if target.endswith(".py") else _import_module(target)
    factory: Any = module
    for part in attribute.split("."):
        if not hasattr(factory, part):
            raise ModelLoadError(f"--model {spec}: {target} has no attribute {part!r}; "
                                 "name a function or class defined there")
        factory = getattr(factory, part)
    if not callable(factory):
        raise ModelLoadError(f"--model {spec}: {attribute} is a {type(factory).__name__}, not "
                             "callable; name a function or class that builds the model")
    return factory


def _state_dict(weights: Path, map_location: str | torch.device) -> dict[str, torch.Tensor]:
    if not weights.is_file():
        raise ModelLoadError(f"{weights}: weights file not found; check --weights")
    try:
        payload = torch.load(weights, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for foreign files
        raise ModelLoadError(f"{weights}: not a loadable state dict ({_first_line(err)}); save "
                             "it with torch.save(model.state_dict(), path)") from None
    for key in ("state_dict", "model"):
        if isinstance(payload, dict) and isinstance(payload.get(key), dict):
            payload = payload[key]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise ModelLoadError(f"{weights}: does not hold a state dict of tensors; save it with "
                             "torch.save(model.state_dict(), path)")
    return {k.removeprefix("module."): v for k, v in payload.items()}


def load_weights(model: nn.Module, weights: str | Path, map_location: str | torch.device) -> None:
    """Load a state dict strictly; a mismatch is one line naming the first offending keys."""
    weights = Path(weights)
    state = _state_dict(weights, map_location)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a tensor of another shape
        detail = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line),
                      _first_line(err))
        raise ModelLoadError(f"{weights}: weights do not fit the model ({detail[:200]}); pass the "
                             "weights saved from this architecture") from None
    problems = [f"{kind} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                for kind, keys in (("missing", result.missing_keys),
                                   ("unexpected", result.unexpected_keys)) if keys]
    if problems:
        raise ModelLoadError(f"{weights}: weights do not fit the model ({'; '.join(problems)}); "
                             "pass the weights saved from this architecture")


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
        raise ModelLoadError(f"{path}: TorchScript file cannot be loaded ({_first_line(err)}); "
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
            raise ModelLoadError(f"{path}: onnxruntime cannot load it ({_first_line(err)}); "
                                 "export it again with torch.onnx.export") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        array = x.detach().float().cpu().contiguous().numpy()
        outputs = self.session.run(None, {self.input_name: array})
        tensors = [torch.from_numpy(o).to(x.device) for o in outputs]
        return tensors[0] if len(tensors) == 1 else dict(zip(self.output_names, tensors))


def _load_exported(path: Path, map_location: str | torch.device) -> nn.Module:
    # torch logs why loading failed, traceback and all, on its own handler; catch it instead,
    # so the reason comes back in our one line
    logger = logging.getLogger("torch.export")
    records: list[logging.LogRecord] = []
    catch = logging.Handler()
    catch.emit = records.append  # type: ignore[method-assign]
    handlers, logger.handlers = logger.handlers, [catch]
    try:
        program = torch.export.load(str(path))
    except Exception as err:  # noqa: BLE001 - a foreign or corrupt archive fails in many ways
        causes = [str(r.exc_info[1]) for r in records if r.exc_info and r.exc_info[1]]
        unregistered = next((c for c in causes if "pytree is not registered" in c), None)
        if unregistered:
            raise ModelLoadError(f"{path}: its output is a type this Python cannot rebuild "
                                 f"({unregistered.strip()[:160]}); export a wrapper that returns "
                                 "a tensor (e.g. model(x).logits)") from None
        reason = causes[0].strip().splitlines()[0][:160] if causes else _first_line(err)
        raise ModelLoadError(f"{path}: not a program saved by torch.export.save ({reason}); "
                             "save it again with torch.export.save") from None
    finally:
        logger.handlers = handlers
    return program.module().to(map_location)


def _not_a_model(path: Path, err: BaseException) -> ModelLoadError:
    text = str(err)
    if "Unsupported global" in text:  # a pickle that names classes to rebuild: a whole model
        return ModelLoadError(
            f"{path}: holds a whole pickled model (torch.save(model)), which equiseg does not "
            "unpickle (it would run arbitrary code); save model.state_dict() and pass --model "
            "MODULE:FACTORY --weights FILE, or save it with torch.export.save / torch.jit.save")
    try:
        _state_dict(path, "cpu")
        return ModelLoadError(f"{path}: holds only weights (a state dict); pass --model "
                              f"MODULE:FACTORY --weights {path}")
    except ModelLoadError:
        pass
    return ModelLoadError(f"{path}: not a model file equiseg reads (a torch.export .pt2, an "
                          ".onnx, a TorchScript file or a model saved by equiseg); pass one of "
                          "those, or MODULE:FACTORY")


def _load_file(path: Path, map_location: str | torch.device) -> LoadedModel:
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


def load_model_info(spec: str, weights: str | Path | None = None,
                    map_location: str | torch.device = "cpu",
                    kwargs: Mapping[str, Any] | None = None, seed: int = 0) -> LoadedModel:
    """The module named by `spec` (see the module's docstring), on `map_location`, in eval mode
    (except exported programs), with `weights` loaded if given."""
    path = Path(spec)
    is_file = path.suffix in (".pt", ".pth", ".ts", ".pt2", ".onnx") and path.is_file()
    if ":" not in spec or is_file:
        for flag, given in (("--weights", weights is not None), ("--model-kwargs", bool(kwargs))):
            if given:
                raise ModelLoadError(f"{flag} applies to MODULE:FACTORY models; {spec} is a "
                                     "saved model that already holds its weights and settings")
        return _load_file(path, map_location)
    factory = resolve_factory(spec)
    torch.manual_seed(seed)
    try:
        model = factory(**dict(kwargs or {}))
    except Exception as err:  # noqa: BLE001 - a user's factory can raise anything
        hint = "check --model-kwargs against its signature" if kwargs else \
            "pass its arguments with --model-kwargs '{\"name\": value}'"
        raise ModelLoadError(f"--model {spec}: calling the factory failed ({_first_line(err)}); "
                             f"{hint}") from None
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"--model {spec}: the factory returned a {type(model).__name__}, "
                             "not a torch.nn.Module")
    if weights is not None:
        load_weights(model, weights, map_location)
    # `Class.from_pretrained` (Hugging Face, timm, ...) loads weights by its own convention
    pretrained = spec.rpartition(":")[2].rpartition(".")[2] == PRETRAINED_FACTORY
    return LoadedModel(model.to(map_location).eval(), "factory", weights is not None or pretrained)
