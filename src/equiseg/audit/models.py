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
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from equiseg.audit.loaded import LoadedModel, ModelLoadError, first_line, read_state_dict
from equiseg.audit.model_files import load_file

PRETRAINED_FACTORY = "from_pretrained"  # a factory by this name loads its own weights


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
        raise ModelLoadError(f"{path}: importing it failed ({first_line(err)}); fix the file "
                             "or its imports") from None
    finally:
        sys.path.remove(str(path.parent.resolve()))
    return module


def _import_module(name: str) -> Any:
    sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name is not None and (name == err.name or name.startswith(f"{err.name}.")):
            raise ModelLoadError(f"--model {name}: module does not import (no module named "
                                 f"{err.name!r}); check the name and that it is on PYTHONPATH"
                                 ) from None
        raise _failed_inside(name, err) from None
    except Exception as err:  # noqa: BLE001 - a user's module can raise anything
        raise _failed_inside(name, err) from None
    finally:
        sys.path.remove(str(Path.cwd()))


def _failed_inside(name: str, err: BaseException) -> ModelLoadError:
    """The module was found, but an import inside it failed: say what failed, and where, as the
    last line of its traceback would (e.g. torchvision built for another torch)."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" in {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return ModelLoadError(f"--model {name}: module does not import: {first_line(err)}{where}; "
                          "fix that import (e.g. versions of packages built for another torch) "
                          "or install what it needs")


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


def load_weights(model: nn.Module, weights: str | Path, map_location: str | torch.device) -> None:
    """Load a state dict strictly; a mismatch is one line naming the first offending keys."""
    weights = Path(weights)
    state = read_state_dict(weights, map_location)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a tensor of another shape
        detail = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line),
                      first_line(err))
        raise ModelLoadError(f"{weights}: weights do not fit the model ({detail[:200]}); pass the "
                             "weights saved from this architecture") from None
    problems = [f"{kind} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                for kind, keys in (("missing", result.missing_keys),
                                   ("unexpected", result.unexpected_keys)) if keys]
    if problems:
        raise ModelLoadError(f"{weights}: weights do not fit the model ({'; '.join(problems)}); "
                             "pass the weights saved from this architecture")


def load_model_from_spec(spec: str, weights: str | Path | None = None,
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

        return load_file(path, map_location)
    factory = resolve_factory(spec)
    kwargs = _build_config(factory, dict(kwargs or {}))
    torch.manual_seed(seed)
    try:
        model = factory(**kwargs)
    except Exception as err:  # noqa: BLE001 - a user's factory can raise anything
        hint = "check --model-kwargs against its signature" if kwargs else \
            "pass its arguments with --model-kwargs '{\"name\": value}'"
        raise ModelLoadError(f"--model {spec}: calling the factory failed ({first_line(err)}); "
                             f"{hint}") from None
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"--model {spec}: the factory returned a {type(model).__name__}, "
                             "not a torch.nn.Module")
    if weights is not None:
        load_weights(model, weights, map_location)
    # `Class.from_pretrained` (Hugging Face, timm, ...) loads weights by its own convention
    pretrained = spec.rpartition(":")[2].rpartition(".")[2] == PRETRAINED_FACTORY
    return LoadedModel(model.to(map_location).eval(), "factory", weights is not None or pretrained)


def _build_config(factory: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """`{"config": {...}}` as the config object a Hugging Face-style class takes: its
    `config_class` built from the dict (`SegformerForSemanticSegmentation(config)`, and its
    `from_pretrained` / `from_config`), so a random-init model needs no Python of the user's."""
    config = kwargs.get("config")
    owner = factory if isinstance(factory, type) else getattr(factory, "__self__", None)
    config_class = getattr(owner, "config_class", None)
    if not isinstance(config, Mapping) or not callable(config_class):
        return kwargs
    try:
        return {**kwargs, "config": config_class(**config)}
    except Exception as err:  # noqa: BLE001 - a user's config class can raise anything
        raise ModelLoadError(f"--model-kwargs config: {config_class.__name__}(**config) failed "
                             f"({first_line(err)}); check the config's keys") from None


class CallableModel(nn.Module):
    """A plain function (batch -> output) as a module, so the sweep can treat it like one."""

    def __init__(self, function: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> Any:
        return self.function(x)


def model_name(model: Any) -> str:
    """What reports call a model: its spec as given, or the full dotted name of its class."""
    if isinstance(model, (str, Path)):
        return str(model)
    named = model if not isinstance(model, nn.Module) else type(model)
    name = getattr(named, "__qualname__", type(model).__qualname__)
    return f"{getattr(named, '__module__', None) or 'model'}.{name}"


def load_model(model: Any, weights: str | Path | None = None,
               map_location: str | torch.device | None = None,
               kwargs: Mapping[str, Any] | None = None, seed: int = 0) -> LoadedModel:
    """A module, any callable, or a spec (`load_model_from_spec`) as a `LoadedModel`. A module stays
    where it is unless `map_location` is given; whether its weights are trained is unknown
    (`weights_loaded` None) unless `weights` are loaded here."""
    if isinstance(model, (str, Path)):
        return load_model_from_spec(str(model), weights, map_location or "cpu", kwargs, seed)
    if kwargs:
        raise ModelLoadError("model_kwargs applies to a model spec 'MODULE:FACTORY'; this model "
                             "is built already")
    if not callable(model):
        raise ModelLoadError(f"model: got a {type(model).__name__}; pass a torch.nn.Module, a "
                             "function of a batch, or a spec like 'my_project.models:build'")
    module = model if isinstance(model, nn.Module) else CallableModel(model)
    if weights is not None:
        load_weights(module, weights, map_location or "cpu")
    if map_location is not None:
        module = module.to(map_location)
    kind = "module" if isinstance(model, nn.Module) else "callable"
    return LoadedModel(module, kind, True if weights is not None else None)
