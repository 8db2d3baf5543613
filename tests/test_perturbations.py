"""The registry of perturbation families, and its two geometric newcomers, shift and scale.

Shifts move the picture right and down by `level` pixels (exact for whole pixels); zooms magnify
it about the centre; each is undone on the prediction and scored on the round trip's valid
region. A strided plain CNN is not shift-equivariant at odd shifts; a stride-free one is.
"""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from equiseg.analysis import families
from equiseg.analysis.families import (
    REGISTRY,
    Family,
    Plot,
    family_names,
    family_settings,
    level_settings,
)
from equiseg.analysis.perturbations import (
    Perturbation,
    build_perturbations,
    perturb,
    restore,
    valid_regions,
)
from equiseg.analysis.predictor import make_predictor
from equiseg.analysis.summary import summarize
from equiseg.analysis.sweep import run_sweep, sweep_perturbations
from equiseg.analysis.sweep_settings import SweepConfig
from equiseg.analysis.warps import shift_batch, zoom_batch
from equiseg.geometry import footprint, pad_to_square
from tests.test_sweeps import NO_NORMALISATION, RedIsForeground, images

ROOT = Path(__file__).resolve().parents[1]


def smooth_image(size: int = 32) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    return (torch.stack([torch.sin(1.3 * x + 0.7 * y), torch.cos(0.9 * x - 1.1 * y), x * y])
            * 0.4 + 0.5)


# -- shift and scale: forward, inverse, valid region ---------------------------------------------

def test_a_whole_pixel_shift_moves_content_right_and_down_exactly():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    moved = shift_batch(x, [1.0])
    assert moved[0, 0, 1:, 1:].tolist() == x[0, 0, :3, :3].tolist()
    assert float(moved[0, 0, 0].abs().sum() + moved[0, 0, :, 0].abs().sum()) == 0.0
    assert torch.equal(shift_batch(moved, [-1.0])[..., :3, :3], x[..., :3, :3])


def test_a_half_pixel_shift_resamples_bilinearly_between_whole_ones():
    x = torch.rand(1, 3, 16, 16)
    half = shift_batch(x, [0.5])
    # inside, the half shift is the mean of the four whole-pixel neighbours (0,0),(0,1),(1,0),(1,1)
    expected = (x + shift_batch(x, [1.0]) + _shift_axis(x, 1, -1) + _shift_axis(x, 1, -2)) / 4
    assert torch.allclose(half[..., 2:-2, 2:-2], expected[..., 2:-2, 2:-2], atol=1e-5)


def _shift_axis(x: torch.Tensor, d: int, dim: int) -> torch.Tensor:
    return torch.roll(x, d, dims=dim)


@pytest.mark.parametrize("name, level", [("shift", 3.0), ("shift", -2.0), ("shift", 1.5),
                                         ("scale", 1.25), ("scale", 0.8)])
def test_shift_and_zoom_round_trip_inside_the_valid_region_and_lose_the_rest(name, level):
    image, inside = smooth_image(), footprint(32, 32, 32)
    p = [Perturbation(name, level)]
    back = restore(p, perturb(p, image, inside))[0]
    valid = valid_regions(p, inside)[0]
    assert 0.4 < float(valid.float().mean()) < 1.0  # the round trip lost a border, not more
    tolerance = 1e-6 if level.is_integer() else 0.03  # whole pixels: exact; else resampled twice
    assert float(((back - image).abs() * valid).max()) < tolerance


def test_whole_shifts_lose_exactly_the_strip_that_left_the_canvas():
    valid = valid_regions([Perturbation("shift", 3.0)], footprint(32, 32, 32))[0, 0]
    assert valid.sum() == 29 * 29 and bool(valid[:29, :29].all())


def test_a_zoom_in_loses_the_border_and_a_zoom_out_keeps_nearly_everything():
    inside = footprint(32, 32, 32)
    zoom_in, zoom_out = valid_regions([Perturbation("scale", 1.25), Perturbation("scale", 0.8)],
                                      inside)
    assert 0.55 < float(zoom_in.float().mean()) < 0.7  # about (1 / 1.25)^2 = 0.64
    assert float(zoom_out.float().mean()) > 0.75  # a 2-pixel border: resampled twice
    assert torch.equal(zoom_batch(torch.ones(1, 1, 8, 8), [1.0]), torch.ones(1, 1, 8, 8))


def test_the_valid_region_stays_inside_an_uneven_footprint():
    inside = footprint(20, 32, 32)
    image = pad_to_square(torch.rand(3, 20, 32), 32)
    p = [Perturbation("shift", 2.0), Perturbation("scale", 0.9), Perturbation("brightness", 0.2)]
    valid = valid_regions(p, inside)
    assert not bool((valid & ~inside).any())
    assert torch.equal(valid[2], inside)  # photometric: the whole footprint
    batch = perturb(p, image, inside)
    assert float(batch[2][:, ~inside[0]].abs().max()) == 0.0


# -- a strided CNN is not shift-equivariant at odd shifts; a stride-free one is ------------------

def _conv_net(stride: int) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3, stride=stride, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1)]
    if stride > 1:
        layers.append(nn.Upsample(scale_factor=stride, mode="nearest"))
    return nn.Sequential(*layers)


def _shift_error(model: nn.Module, level: float, margin: int = 6) -> float:
    """Largest |raw output difference| between the shifted prediction, shifted back, and the
    direct one, on the valid region eroded by `margin` pixels (away from every border)."""
    image, inside = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1)), \
        footprint(32, 32, 32)
    p = [Perturbation("shift", level)]
    with torch.no_grad():
        direct = model(image.unsqueeze(0))
        back = restore(p, model(perturb(p, image, inside)))
    valid = valid_regions(p, inside).float()
    # erode: a pixel is kept when every pixel within `margin` is valid (off the canvas is not)
    padded = F.pad(valid, (margin,) * 4, value=0.0)
    away = -F.max_pool2d(-padded, 2 * margin + 1, stride=1) > 0.5
    assert away.sum() > 100
    return float(((back - direct).abs() * away).max())


@pytest.mark.parametrize("level", [1.0, 2.0, 3.0])
def test_a_stride_free_cnn_is_shift_equivariant_at_whole_shifts_away_from_borders(level):
    assert _shift_error(_conv_net(stride=1), level) < 1e-5


def test_a_strided_cnn_is_not_shift_equivariant_at_odd_shifts_but_is_at_even_ones():
    strided = _conv_net(stride=2)
    assert _shift_error(strided, 1.0) > 1e-2 and _shift_error(strided, 3.0) > 1e-2
    assert _shift_error(strided, 2.0) < 1e-5 and _shift_error(strided, 4.0) < 1e-5


# -- the sweep and the summary -------------------------------------------------------------------

def test_a_pixelwise_model_is_consistent_under_whole_shifts_and_the_summary_has_them():
    perturbations = build_perturbations(["shift", "scale"], **family_settings(SweepConfig()))
    assert [p.level for p in perturbations if p.name == "shift"] == list(SweepConfig.shift)
    frame = run_sweep(make_predictor(RedIsForeground(), *NO_NORMALISATION), images(),
                      perturbations, batch_size=4).frame
    whole = frame[(frame["perturbation"] == "shift") & (frame["level"] % 1 == 0)]
    assert (whole["iou_consistency"] == 1.0).all()
    summary = summarize(frame, 1e-4, 1e-4)
    for name in ("shift", "scale"):
        entry = summary["perturbations"][name]
        assert entry["worst_level"] not in (None, REGISTRY[name].identity)
        assert entry["worst_consistency_iou"] < 1.0


# -- every place reads the registry --------------------------------------------------------------

def test_the_command_line_offers_the_registrys_families_and_a_flag_per_level_list():
    from equiseg.cli.commands import build_parser

    parser = build_parser()
    audit = parser._subparsers._group_actions[0].choices["audit"]
    flags = {a.dest: a for a in audit._actions}
    assert flags["perturb"].default == family_names()
    assert ",".join(family_names()) in flags["perturb"].help
    assert set(level_settings()) <= set(flags)
    assert {"shift", "scale"} <= set(family_names())


def test_every_level_list_is_a_sweep_parameter_and_an_audit_option():
    from dataclasses import fields

    from equiseg.audit.options import AuditOptions

    sweep_lists = {f.name for f in fields(SweepConfig) if f.type == "tuple[float, ...]"}
    assert sweep_lists == set(level_settings())
    assert set(level_settings()) <= {f.name for f in fields(AuditOptions)}
    for key in level_settings():
        assert getattr(AuditOptions, key) == getattr(SweepConfig, key)


def test_a_familys_level_list_is_its_registry_entry_alone():
    """The level lists the stage and the audit take are built from the registry: each family
    with a `setting` (not angle_step) gives one field, with its default levels."""
    from dataclasses import fields

    from equiseg.analysis.sweep_settings import POSITIVE_LEVELS, LevelLists

    expected = {f.setting: f.default_levels for f in families.REGISTRY.values()
                if f.setting is not None and f.levels_from is None}
    assert {f.name: f.default for f in fields(LevelLists)} == expected
    assert POSITIVE_LEVELS == {"scale"}  # zoom factors, as the registry says


def test_conf_holds_the_level_lists_defaults():
    """The default levels are written in LevelLists; conf/config.yaml repeats them so that `-S`
    reaches them, and must not drift."""
    import yaml

    from equiseg.analysis.sweep_settings import LevelLists

    conf = yaml.safe_load((ROOT / "conf" / "config.yaml").read_text())["sweep"]
    assert {key: tuple(conf[key]) for key in level_settings()} == \
        {key: getattr(LevelLists, key) for key in level_settings()}


@pytest.mark.parametrize("setting, levels, allowed", [
    ("scale", [0.0, 1.2], "a list of numbers > 0"),
    ("scale", [-1.0], "a list of numbers > 0"),
    ("shift", ["one"], "a list of finite numbers"),
    ("brightness", [float("nan")], "a list of finite numbers"),
    ("noise", [float("inf")], "a list of finite numbers"),
    ("contrast", [True], "a list of finite numbers"),
])
def test_params_and_the_audit_refuse_the_same_levels_for_the_same_reason(setting, levels,
                                                                          allowed):
    """One rule (`sweep_settings.check_levels`), named by the params key or by the flag."""
    from equiseg.audit.options import AuditOptions
    from equiseg.config import ConfigError, parse_params
    from equiseg.errors import EquisegError

    with pytest.raises(ConfigError, match=rf"'sweep\.{setting}' .*\(allowed: {allowed}\)"):
        parse_params({"architectures": {"unet": {}, "gunet": {}}, "sweep": {setting: levels}})
    with pytest.raises(EquisegError, match=rf"^--{setting} .*; give {allowed}$"):
        AuditOptions(**{setting: tuple(levels)}).validate()


def test_levels_either_face_accepts_pass_both():
    from equiseg.audit.options import AuditOptions
    from equiseg.config import parse_params

    levels = {"scale": (0.5, 2.0), "shift": (-3.0, 0.0), "brightness": (-1.0,), "noise": ()}
    params = parse_params({"architectures": {"unet": {}, "gunet": {}}, "sweep": levels})
    assert params.sweep.scale == (0.5, 2.0)
    AuditOptions(**levels).validate()


@pytest.mark.parametrize("sweep, message", [
    ({"blur": [1.0]}, r"sweep\.blur.*shift, scale"),
    ({"scale": [0.0, 1.2]}, r"sweep\.scale.*> 0"),
    ({"shift": ["one"]}, r"sweep\.shift.*list of finite numbers"),
])
def test_params_refuse_unknown_families_and_bad_levels_by_name(sweep, message):
    from equiseg.config import ConfigError, parse_params

    with pytest.raises(ConfigError, match=message):
        parse_params({"architectures": {"unet": {}, "gunet": {}}, "sweep": sweep})


def test_audit_options_refuse_unknown_families_and_bad_levels_in_the_registrys_terms():
    from equiseg.audit.options import AuditOptions
    from equiseg.errors import EquisegError

    with pytest.raises(EquisegError, match="unknown perturbation 'blur'; choose from "
                                           + ",".join(family_names())):
        AuditOptions(perturb=("rotate", "blur")).validate()
    with pytest.raises(EquisegError, match="--scale .*> 0"):
        AuditOptions(scale=(1.0, -1.0)).validate()
    assert [p.name for p in AuditOptions(perturb=("shift",)).perturbations()] == ["shift"] * 7


def test_a_family_whose_setting_a_config_lacks_is_an_error_not_a_family_without_levels(
        monkeypatch):
    from equiseg.audit.options import AuditOptions

    def blur(x, members, levels, inside, noise):
        return x

    toy = Family("blur", False, blur, Plot("curve", "blur", "blur sigma", "blur"), setting="blur")
    monkeypatch.setitem(families.REGISTRY, "blur", toy)
    with pytest.raises(AttributeError, match="SweepConfig has no 'blur'.*'blur' perturbation"):
        sweep_perturbations(SweepConfig())
    with pytest.raises(AttributeError, match="AuditOptions has no 'blur'"):
        AuditOptions(perturb=("blur",)).perturbations()
    with pytest.raises(AttributeError, match="AuditOptions has no 'blur'"):
        AuditOptions().validate()


def test_no_library_module_but_the_registry_lists_family_or_member_names():
    """Family and member names are spelled in `families.py`; elsewhere the library reads them from
    the registry (a single family named for what only it has, such as `rotate`'s angles, is
    fine). `nn/` is left out: the D4 group names its own elements flip_h and flip_v."""
    import ast
    from pathlib import Path

    src = Path(families.__file__).parents[1]
    names = set(family_names()) | {m for f in REGISTRY.values() for m in f.member_names}
    multi = {m for f in REGISTRY.values() if len(f.member_names) > 1 for m in f.member_names}
    found = []
    for path in sorted(src.rglob("*.py")):
        if path.name == "families.py" or path.parent.name == "nn":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                listed = {e.value for e in node.elts if isinstance(e, ast.Constant)} & names
                if len(listed) > 1:
                    found.append(f"{path.name}:{node.lineno}: {sorted(listed)}")
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and id(node) not in docstrings
                  and any(node.value == m or node.value.startswith(m + "_") for m in multi)):
                found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert not found, "\n".join(found)


def test_gates_exist_for_shift_and_scale():
    from equiseg.analysis.gate_figures import GATE_METRICS, GATE_NEEDS

    assert GATE_NEEDS["shift"] == ("shift",) and "scale" in GATE_METRICS
    assert GATE_NEEDS["photometric"] == ("brightness", "contrast", "noise")


def test_a_family_registered_in_one_place_flows_to_the_sweeps_output(monkeypatch, tmp_path):
    def invert(x, members, levels, inside, noise):
        return torch.where(inside, 1.0 - x, x)

    toy = Family("invert", False, invert, Plot("curve", "invert", "inverted (1 = yes)", "invert"),
                 fixed_levels=(("invert", 1.0),))
    monkeypatch.setitem(families.REGISTRY, "invert", toy)
    perturbations = sweep_perturbations(SweepConfig(angle_step=180.0))
    assert perturbations[-1] == Perturbation("invert", 1.0)
    frame = run_sweep(make_predictor(RedIsForeground(), *NO_NORMALISATION), images(),
                      perturbations, batch_size=8).frame
    inverted = frame[frame["perturbation"] == "invert"]
    assert len(inverted) == 2 and (inverted["iou_consistency"] < 0.5).all()
    assert "invert" in summarize(frame, 1e-4, 1e-4)["perturbations"]

    from equiseg.analysis.set_tables import perturbation_table
    from equiseg.report.figures import level_figure

    table = perturbation_table(frame)
    path = level_figure({"red": table}, ["invert"], tmp_path / "invert.png")
    assert path is not None and path.stat().st_size > 1000
