"""Turn what a user passes as `--model` (and `--weights`) into a `torch.nn.Module`.

Accepted:
- `package.module:factory`: an importable callable (a function or a class) that returns a
  module when called without arguments; `factory` may be dotted (`module:Class.build`).
  The current folder is importable, as with `python -m`.
- `path/to/file.py:factory`: the same, from a file that need not be on the import path.
- `model.pt`: a TorchScript file (`torch.jit.save`), or a model saved by `equiseg` training
  (`equiseg.nn.models.save_trained`).
`--weights FILE` loads a state dict (plain, or under a 'state_dict' or 'model' key; a
'module.' prefix from DistributedDataParallel is dropped) into a factory's module, strictly.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from equiseg.errors import EquisegError


class ModelLoadError(EquisegError):
    """The model spec, its factory or its weights cannot be turned into a module."""


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


def _load_file(path: Path, map_location: str | torch.device) -> nn.Module:
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file not found; pass MODULE:FACTORY, "
                             "path/to/file.py:FACTORY or a TorchScript file")
    scripted = _load_torchscript(path, map_location)
    if scripted is not None:
        return scripted
    from equiseg.nn.models import load_trained

    try:
        model, _ = load_trained(path, map_location=map_location)
    except EquisegError:
        raise ModelLoadError(f"{path}: neither a TorchScript file nor a model saved by equiseg; "
                             "save it with torch.jit.save or pass MODULE:FACTORY") from None
    return model


def load_model(spec: str, weights: str | Path | None = None,
               map_location: str | torch.device = "cpu") -> nn.Module:
    """The module named by `spec`, with `weights` loaded if given, in eval mode on `map_location`."""
    path = Path(spec)
    if ":" not in spec or (path.suffix in (".pt", ".pth", ".ts") and path.is_file()):
        if weights is not None:
            raise ModelLoadError(f"--weights applies to MODULE:FACTORY models; {spec} already "
                                 "holds its weights")
        return _load_file(path, map_location).eval()
    factory = resolve_factory(spec)
    try:
        model = factory()
    except Exception as err:  # noqa: BLE001 - a user's factory can raise anything
        raise ModelLoadError(f"--model {spec}: calling the factory failed ({_first_line(err)}); "
                             "it must build the model without arguments") from None
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"--model {spec}: the factory returned a {type(model).__name__}, "
                             "not a torch.nn.Module")
    if weights is not None:
        load_weights(model, weights, map_location)
    return model.to(map_location).eval()
