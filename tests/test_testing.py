"""equiseg.testing: the assertions a user puts in their own tests, and its docstring examples."""

import doctest
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import equiseg.testing
from equiseg.nn.equivariance import equivariance_errors
from equiseg.nn.models import build_model
from equiseg.testing import assert_equivariant, assert_invariant

ROTATIONS = ["rot90", "rot180", "rot270"]
MIRRORS = ["flip_h", "transpose", "flip_v", "anti_transpose"]


@pytest.fixture
def x():
    torch.manual_seed(0)
    return torch.randn(2, 3, 32, 32)


def first_line(failure: pytest.ExceptionInfo) -> str:
    return str(failure.value).splitlines()[0]


def constant(value: float = -0.0572):
    """A model that predicts the same logit everywhere (torchvision's random DeepLabV3 does)."""
    return lambda t: torch.full((t.shape[0], 1, *t.shape[-2:]), value)


class Probe(nn.Module):
    """Exactly equivariant (a per-pixel mean over channels) in eval mode, random in train mode;
    records the mode and whether gradients were on at each call."""

    def __init__(self) -> None:
        super().__init__()
        self.dropout = nn.Dropout(0.5)
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, t):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.dropout(t.mean(dim=1, keepdim=True))


def test_group_unet_passes_p4(x):
    errors = assert_equivariant(build_model("gunet"), x, group="p4")
    assert list(errors) == ROTATIONS
    assert max(e["relative"] for e in errors.values()) < 1e-5


def test_plain_unet_fails_naming_the_worst_rotation_and_its_error(x):
    model = build_model("unet")
    measured = equivariance_errors(model.eval(), x, "p4")
    worst = max(measured, key=lambda name: measured[name]["max_abs"])
    with pytest.raises(AssertionError) as failure:
        assert_equivariant(model, x, group="p4")
    assert first_line(failure).startswith(
        f"model is not p4-equivariant: worst element {worst}, "
        f"max abs error {measured[worst]['max_abs']:.3g} > tolerance ")
    listed = [line.split()[0] for line in str(failure.value).splitlines()[1:-1]]
    assert listed[0] == worst and sorted(listed) == sorted(ROTATIONS)


def test_rotation_only_unet_fails_p4m_naming_a_mirror(x):
    with pytest.raises(AssertionError) as failure:
        assert_equivariant(build_model("gunet"), x, group="p4m")
    assert first_line(failure).split("worst element ")[1].split(",")[0] in MIRRORS
    assert "4 of 7 elements fail" in first_line(failure)


def test_p4m_unet_passes_p4m(x):
    errors = assert_equivariant(build_model("gunet_p4m"), x, group="p4m")
    assert list(errors) == ROTATIONS + MIRRORS


def test_constant_output_fails_unless_allowed(x):
    with pytest.raises(AssertionError, match="cannot judge p4-equivariance: .* unchanged by every"):
        assert_equivariant(constant(), x)
    errors = assert_equivariant(constant(), x, allow_constant=True)
    assert all(e["max_abs"] == 0 for e in errors.values())


def test_output_varying_less_than_the_tolerance_counts_as_constant(x):
    nearly = lambda t: constant(1.0)(t) + 1e-7 * t[:, :1]
    with pytest.raises(AssertionError, match="cannot judge"):
        assert_equivariant(nearly, x)


def test_tolerance_is_atol_plus_rtol_times_the_largest_output(x):
    bias = torch.randn(1, 1, 32, 32)
    model = lambda t: t[:, :1] + 1e-3 * bias  # off by 1e-3 * |bias - g bias|
    worst = max(e["max_abs"] for e in equivariance_errors(model, x, "p4").values())
    scale = float(model(x).abs().max())
    assert_equivariant(model, x, rtol=0, atol=1.01 * worst)
    assert_equivariant(model, x, rtol=1.01 * worst / scale, atol=0)
    for rtol, atol in [(0, 0.99 * worst), (0.99 * worst / scale, 0)]:
        with pytest.raises(AssertionError, match="not p4-equivariant"):
            assert_equivariant(model, x, rtol=rtol, atol=atol)


def test_runs_in_eval_mode_without_gradients_and_restores_the_mode(x):
    probe = Probe().train()
    assert_equivariant(probe, x)  # in train mode, dropout would fail it
    assert probe.calls and all(call == (False, False) for call in probe.calls)
    assert probe.training and probe.dropout.training


def test_each_submodule_gets_its_own_mode_back_after_a_failure(x):
    model = nn.Sequential(build_model("unet", filters=(4, 4, 8, 8)), nn.Dropout(0.5)).train()
    model[0].eval()  # e.g. a frozen backbone
    with pytest.raises(AssertionError):
        assert_equivariant(model, x)
    assert model.training and not model[0].training and model[1].training


def test_non_square_input_works_when_the_output_turns_with_it():
    x = torch.randn(1, 3, 32, 48)
    assert_equivariant(build_model("gunet"), x)
    with pytest.raises(AssertionError, match="not p4-equivariant"):
        assert_equivariant(build_model("unet"), x)


@pytest.mark.parametrize("size", [(32, 32), (32, 48)])
def test_output_that_does_not_turn_with_the_input_is_refused(size):
    fixed = lambda t: F.interpolate(t, size=(16, 24))
    with pytest.raises(ValueError, match="must turn with the input"):
        assert_equivariant(fixed, torch.randn(1, 3, *size))


def test_input_that_is_not_a_batch_of_images_is_refused():
    with pytest.raises(ValueError, match=r"shape \(3, 32, 32\); pass a batch of images"):
        assert_equivariant(build_model("gunet"), torch.randn(3, 32, 32))


def test_output_that_is_not_an_image_tensor_is_refused(x):
    with pytest.raises(TypeError, match="returned a dict, not a tensor"):
        assert_equivariant(lambda t: {"out": t}, x)
    with pytest.raises(ValueError, match="for a classifier, use assert_invariant"):
        assert_equivariant(lambda t: t.mean(dim=(-2, -1)), x)


def test_non_finite_output_fails(x):
    with pytest.raises(AssertionError, match="NaN or infinite"):
        assert_equivariant(lambda t: t / 0 * 0, x)


def test_group_without_elements_to_test_is_refused(x):
    with pytest.raises(ValueError, match="'trivial' has no element"):
        assert_equivariant(build_model("gunet"), x, group="trivial")


def test_invariant_passes_for_global_pooling_and_fails_for_a_corner(x):
    errors = assert_invariant(lambda t: t.mean(dim=(-2, -1)), x, group="p4m")
    assert list(errors) == ROTATIONS + MIRRORS
    with pytest.raises(AssertionError, match="not p4-invariant: worst element"):
        assert_invariant(lambda t: t[..., 0, 0], x)


def test_invariant_refuses_a_model_that_ignores_its_input(x):
    ignores = lambda t: torch.zeros(t.shape[0], 10)
    with pytest.raises(AssertionError, match="same output for all 2 images"):
        assert_invariant(ignores, x)
    with pytest.raises(ValueError, match="at least two"):
        assert_invariant(ignores, x[:1])
    assert_invariant(ignores, x[:1], allow_constant=True)


def docstring_examples() -> list[doctest.DocTest]:
    return [test for test in doctest.DocTestFinder().find(equiseg.testing) if test.examples]


def test_every_public_function_has_examples():
    documented = {test.name.rsplit(".", 1)[-1] for test in docstring_examples()}
    assert set(equiseg.testing.__all__) <= documented


@pytest.mark.parametrize("example", docstring_examples(), ids=lambda test: test.name)
def test_docstring_examples_run(example):
    runner = doctest.DocTestRunner()  # flags sit in the examples, so any runner runs them
    report = io.StringIO()
    runner.run(example, out=report.write)
    assert runner.failures == 0, report.getvalue()
