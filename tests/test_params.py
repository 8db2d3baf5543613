"""params.yaml is what DVC composes from conf/ with no overrides, and every profile validates."""

import os
from pathlib import Path

import pytest
import yaml
from dvc.utils.hydra import compose_and_dump

from equiseg.config import ConfigError, load_params, params_keys, parse_params
from equiseg.errors import InvalidValue

ROOT = Path(__file__).resolve().parents[1]


def compose(tmp_path, *overrides):
    out = tmp_path / "params.yaml"
    compose_and_dump(out, os.fspath(ROOT / "conf"), None, "config", "", list(overrides))
    return yaml.safe_load(out.read_text())


def test_params_yaml_equals_the_composition_of_the_defaults(tmp_path):
    assert yaml.safe_load((ROOT / "params.yaml").read_text()) == compose(tmp_path)


def test_default_is_the_quick_synthetic_experiment_of_four_models():
    params = load_params(ROOT / "params.yaml")
    assert (params.profile, params.data.source) == ("quick", "synthetic")
    assert params.models == ("unet", "gunet") and params.augments == ("minimal", "full")


@pytest.mark.parametrize("override, expected", [
    ("model=gunet", ("gunet",)), ("model=unet", ("unet",)),
    ("model=all_groups", ("unet", "gunet", "gunet_p4m")),
    ("model=all_cyclic", ("unet", "gunet", "gunet_c8", "gunet_d8")),
])
def test_model_switch_narrows_the_matrix(tmp_path, override, expected):
    assert parse_params(compose(tmp_path, override)).models == expected


def test_every_model_has_its_own_switch(tmp_path):
    for name in load_params(ROOT / "params.yaml").architectures:
        assert parse_params(compose(tmp_path, f"model={name}")).models == (name,), name


def test_paper_profile_on_leeds_is_the_seeds_setting(tmp_path):
    params = parse_params(compose(tmp_path, "profile=paper", "data=leeds"))
    assert (params.data.image_size, params.data.pad_size) == (256, 384)
    assert (params.train.epochs, params.train.batch_size) == (150, 16)
    assert (params.train.lr, params.train.weight_decay) == (1e-3, 1e-2)
    assert params.data.source == "leeds"


@pytest.mark.parametrize("key, value, message", [
    ("data.image_size", 40, "data.image_size"),
    ("data.pad_size", 48, "data.pad_size"),
    ("train.epochs", 0, "train.epochs"),
    ("train.batch_size", -1, "train.batch_size"),
    ("data.source", "imagenet", "synthetic, leeds"),
    ("models", ["unet", "resnet"], "models\\[1\\]"),
    ("augments", ["heavy"], "minimal, full"),
    ("architectures.gunet.group", "p6", "trivial, p4, p4m, c8, d8"),
    ("architectures.gunet_4level.group", "c8", "four_level, which has no steerable layers"),
    ("train.learning_rate", 1, "not a known parameter"),
    ("train.schedule", "cosine", "constant, onecycle"),
])
def test_wrong_values_name_the_key(tmp_path, key, value, message):
    raw = compose(tmp_path)
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    with pytest.raises(ConfigError, match=message):
        parse_params(raw)


def test_a_library_refusal_reaches_the_user_under_its_params_key():
    """Library functions name their own argument; a stage names the key the value came from."""
    from equiseg.train.loop import per_process_batch_size

    with (pytest.raises(ConfigError, match=r"^params: 'train\.batch_size' is 16, which 3 proc"),
          params_keys(batch_size="train.batch_size")):
        per_process_batch_size(16, 3)
    with (pytest.raises(InvalidValue, match="^'batch_size' is 16"),  # a name it was not given
          params_keys(device="train.device")):
        per_process_batch_size(16, 3)


def test_a_library_message_names_arguments_and_a_stage_names_the_keys(tmp_path):
    """A library error names a setting by its argument in backticks; under `params_keys` the same
    error, still of its own type, names the params.yaml key instead, and only the keys it knows."""
    from equiseg.data.fetch import FetchError, fetch_archive

    missing = tmp_path / "nope.zip"
    with pytest.raises(FetchError, match=r"^`archive`: .*nope\.zip does not exist"):
        fetch_archive((), "md5:00", tmp_path, archive=missing)
    with (pytest.raises(FetchError) as caught,
          params_keys(archive="data.archive", device="train.device")):
        fetch_archive((), "md5:00", tmp_path, archive=missing)
    assert str(caught.value).startswith(f"`data.archive`: {missing} does not exist")
    with pytest.raises(FetchError, match=r"`urls` is empty and `data\.archive` is not set"), \
            params_keys(archive="data.archive"):
        fetch_archive((), "md5:00", tmp_path)


def test_no_library_message_names_a_params_key():
    """Key names are added at the edge: no string in the library (outside the config package, the
    report of a pipeline run and its docstrings) spells a params.yaml key such as `data.archive`."""
    import ast
    import dataclasses
    import re

    from equiseg.config.params import Params

    sections = {field.name for field in dataclasses.fields(Params)}
    key = re.compile(rf"\b(?:{'|'.join(sorted(sections))})\.[a-z_]+")
    found = []
    for path in sorted((ROOT / "src" / "equiseg").rglob("*.py")):
        if {"config", "cli", "report"} & set(path.relative_to(ROOT / "src" / "equiseg").parts[:-1]):
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        found += [f"{path.name}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and id(node) not in docstrings and key.search(node.value)]
    assert not found, "\n".join(found)


def test_conf_architectures_are_the_library_presets(tmp_path):
    """The presets are written once, in equiseg/presets.py; conf/config.yaml repeats them (so
    that -S reaches them) line for line, and a failure prints the lines to paste."""
    from equiseg.presets import MODEL_PRESETS

    lines = ["  " + name + ": {" + ", ".join(
        f"{key}: {list(value) if isinstance(value, tuple) else value}"
        for key, value in arch.items()) + "}" for name, arch in MODEL_PRESETS.items()]
    conf = (ROOT / "conf" / "config.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(conf) if line.startswith("architectures:")) + 1
    assert conf[start:start + len(lines)] == lines, (
        "conf/config.yaml's architectures should read:\n" + "\n".join(lines))
    composed = compose(tmp_path)["architectures"]
    assert {name: {**arch, "filters": tuple(arch["filters"])} for name, arch in composed.items()} \
        == MODEL_PRESETS


def test_an_architecture_section_may_set_only_what_changes():
    params = parse_params({"architectures": {"unet": {"filters": [8, 8, 16, 16]}, "gunet": {}}})
    assert params.architecture("unet").group == "trivial"
    assert params.architecture("unet").filters == (8, 8, 16, 16)
    with pytest.raises(ConfigError, match="architectures.resnet' is not a known model"):
        parse_params({"architectures": {"unet": {}, "gunet": {}, "resnet": {}}})


@pytest.mark.parametrize("atol, rtol, refused", [
    (0.0, 0.0, None),  # bitwise-equal outputs: the strictest check, and a legitimate one
    (1e-4, 0.5, None),
    (-1e-6, 0.0, "atol"), (float("inf"), 0.0, "atol"), (float("nan"), 0.0, "atol"),
    (0.0, 1.0, "rtol"),  # atol + 1 x max|reference| would call an output of zeros exact
    (0.0, -0.1, "rtol"), (0.0, float("nan"), "rtol"), (True, 0.0, "atol"),
])
def test_params_and_the_audit_hold_the_exactness_tolerance_to_one_rule(atol, rtol, refused):
    """`sweep_settings.check_tolerance`, named by the params key or by the audit's flag."""
    from equiseg.audit.options import AuditOptions
    from equiseg.errors import EquisegError

    sweep = {"exact_atol": atol, "exact_rtol": rtol}
    options = AuditOptions(atol=atol, rtol=rtol)
    if refused is None:
        assert parse_params({"architectures": {"unet": {}, "gunet": {}}, "sweep": sweep})
        options.validate()
        return
    allowed = "a finite number >= 0" if refused == "atol" else r"a number in \[0, 1\)"
    with pytest.raises(ConfigError, match=rf"'sweep\.exact_{refused}' .*\(allowed: {allowed}\)"):
        parse_params({"architectures": {"unet": {}, "gunet": {}}, "sweep": sweep})
    with pytest.raises(EquisegError, match=rf"^--{refused} is .*; give {allowed}$"):
        options.validate()
