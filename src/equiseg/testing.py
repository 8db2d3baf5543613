"""Assertions for a test suite: is a model equivariant (or invariant) under p4 or p4m?

    from equiseg.testing import assert_equivariant

    def test_my_model_turns_its_prediction_with_the_image():
        assert_equivariant(my_model, torch.randn(2, 3, 64, 64), group="p4")

A check passes when, for every non-identity element g of the group,

    max |model(g x) - g model(x)|  <=  atol + rtol * max |g model(x)|

(the maxima over every entry of the batch). It runs in eval mode without gradients, and fails
with an `AssertionError` that names the worst element, its errors and the tolerance. A model whose
output is unchanged by every element (a constant, say) would pass whatever it does, so it fails
unless `allow_constant=True`: the check never passes what it cannot judge.

Convention: g acts on images as `equiseg.nn.groups.act_on_image` does (mirror left-right, then
rotate counter-clockwise by k * 90 degrees; the last two axes); elements are named as in the
audit's reports: rot90, rot180, rot270 and, in p4m, flip_h, transpose, flip_v, anti_transpose.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from equiseg.nn.equivariance import Action, equivariance_errors, invariance_errors
from equiseg.nn.groups import Group, act_on_image, get_group

__all__ = ["assert_equivariant", "assert_invariant"]

Model = Callable[[Tensor], Tensor]
Errors = dict[str, dict[str, float]]
# float32 rounding through a deep network is ~1e-6 of the output's size (the group U-Nets
# measure 1-3e-6), so 1e-4 leaves room for larger models; a model that ignores the rotation is
# off by a large fraction of its output (the plain U-Net: 100%).
RTOL = 1e-4
ATOL = 1e-6
TOLERANCE = "max |model(g x) - g model(x)| <= atol + rtol * max |g model(x)|"


def _refuse_unchanged_output(direct: Tensor, group: Group, act_out: Action, rtol: float,
                             atol: float) -> None:
    """Fail closed on an output that every element leaves unchanged (a constant): it would pass
    whatever the model does."""
    __tracebackhide__ = True
    if any(_exceeds(act_out(direct, i), direct, rtol, atol) for i in range(1, group.order)):
        return
    raise AssertionError(
        f"cannot judge {group.name}-equivariance: the model's output is unchanged by every "
        f"element of {group.name} (within atol={atol:g}, rtol={rtol:g}), e.g. a constant "
        f"(here min {float(direct.min()):.4g}, max {float(direct.max()):.4g}); such an "
        "output passes an equivariance check whatever the model does. Check the model's "
        "weights and the input (use random images), or pass allow_constant=True if the "
        "output is meant to be symmetric")


def assert_equivariant(model: Model, x: Tensor, group: str | Group = "p4", *,
                       rtol: float = RTOL, atol: float = ATOL, allow_constant: bool = False,
                       output_action: Action | None = None,
                       input_action: Action | None = None) -> Errors:
    """Assert that model(g x) == g model(x) for every element g of `group` ('p4' or 'p4m').

    `model` maps a batch `x` (B, C, H, W) to a tensor (B, K, H', W'), e.g. per-pixel logits; an
    `nn.Module` is run in eval mode and its modes restored after. Passes when
    max |model(g x) - g model(x)| <= atol + rtol * max |g model(x)| for every g; fails with an
    `AssertionError` naming the worst element first. An output unchanged by every g (a constant)
    fails unless `allow_constant=True`, since it would pass whatever the model does.
    Non-square inputs work when the output turns with the input (its rot90 has the shape of the
    output for the rotated input). `output_action` / `input_action` (t, element index) -> t replace
    the image action, e.g. `Group.act_on_features` to test a layer with group feature maps.

    Returns {element name: {"max_abs": ..., "relative": ||diff|| / ||g model(x)||}}.

    On CUDA, PyTorch runs float32 convolutions in TF32 by default (10-bit mantissa, so errors of
    order 1e-3 of the output): turn it off for the check (`torch.backends.cudnn.allow_tf32 = False`;
    `torch.backends.cudnn.conv.fp32_precision = "ieee"` from torch 2.9) or loosen `rtol`.

    Examples:
        >>> import torch
        >>> from equiseg.nn.models import build_model
        >>> from equiseg.testing import assert_equivariant
        >>> _ = torch.manual_seed(0)
        >>> x = torch.randn(1, 3, 32, 32)
        >>> errors = assert_equivariant(build_model("gunet", filters=(4, 4, 8, 8)), x, group="p4")
        >>> list(errors)
        ['rot90', 'rot180', 'rot270']
        >>> errors["rot90"]["relative"] < 1e-5
        True

        A plain U-Net does not turn its prediction with the image:

        >>> assert_equivariant(build_model("unet", filters=(4, 4, 8, 8)), x)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        AssertionError: model is not p4-equivariant: worst element rot..., max abs error ...
    """
    __tracebackhide__ = True  # pytest shows the user's test line, not this function's insides
    group = _group(group)
    _check_input(x, "assert_equivariant")
    act_out = output_action or (lambda t, i: act_on_image(t, group.elements[i]))
    with _eval_mode(model), torch.no_grad():
        direct = _call(model, x)
        _check_finite(direct)
        if output_action is None:
            _check_image_output(direct, x, group)
        if not allow_constant:
            _refuse_unchanged_output(direct, group, act_out, rtol, atol)
        checked = _reuse_direct(model, x, direct, check_shapes=output_action is None)
        errors = equivariance_errors(checked, x, group, output_action, input_action)
        tolerances = {group.element_name(i): atol + rtol * float(act_out(direct, i).abs().max())
                      for i in range(1, group.order)}
    _fail_if_exceeded(errors, tolerances, f"{group.name}-equivariant", TOLERANCE, rtol, atol)
    return errors


def assert_invariant(model: Model, x: Tensor, group: str | Group = "p4", *,
                     rtol: float = RTOL, atol: float = ATOL,
                     allow_constant: bool = False) -> Errors:
    """Assert that model(g x) == model(x) for every element g of `group` (e.g. a classifier).

    Passes when max |model(g x) - model(x)| <= atol + rtol * max |model(x)| for every g. A model
    that gives the same output for every image of the batch fails unless `allow_constant=True`,
    so `x` needs at least two images. Returns the errors as `assert_equivariant` does.

    Examples:
        >>> import torch
        >>> from equiseg.testing import assert_invariant
        >>> x = torch.randn(2, 3, 16, 16)
        >>> average_colour = lambda images: images.mean(dim=(-2, -1))
        >>> _ = assert_invariant(average_colour, x, group="p4m")
        >>> top_left_colour = lambda images: images[..., 0, 0]
        >>> assert_invariant(top_left_colour, x, group="p4")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        AssertionError: model is not p4-invariant: worst element ..., max abs error ...
    """
    __tracebackhide__ = True
    group = _group(group)
    _check_input(x, "assert_invariant")
    if not allow_constant and x.shape[0] < 2:
        raise ValueError(f"assert_invariant: x holds {x.shape[0]} image; pass at least two "
                         "(random) images so that a model that ignores its input can be told "
                         "apart, or pass allow_constant=True")
    with _eval_mode(model), torch.no_grad():
        direct = _call(model, x)
        _check_finite(direct)
        if not allow_constant and not _exceeds(direct, direct[:1].expand_as(direct), rtol, atol):
            raise AssertionError(
                f"cannot judge {group.name}-invariance: the model gives the same output for all "
                f"{x.shape[0]} images (within atol={atol:g}, rtol={rtol:g}); such a model passes "
                "an invariance check whatever it does. Check the model's weights and the input "
                "(use random images), or pass allow_constant=True if this is intended")
        errors = invariance_errors(_reuse_direct(model, x, direct, check_shapes=False), x, group)
        tolerance = atol + rtol * float(direct.abs().max())
    tolerances = dict.fromkeys(errors, tolerance)
    formula = "max |model(g x) - model(x)| <= atol + rtol * max |model(x)|"
    _fail_if_exceeded(errors, tolerances, f"{group.name}-invariant", formula, rtol, atol)
    return errors


def _group(group: str | Group) -> Group:
    group = get_group(group) if isinstance(group, str) else group
    if group.order < 2:
        raise ValueError(f"group {group.name!r} has no element besides the identity to test; "
                         "use 'p4' (rotations by 90 degrees) or 'p4m' (rotations and mirrors)")
    return group


def _check_input(x: object, caller: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{caller}: x is a {type(x).__name__}; pass a tensor (B, C, H, W), "
                        "e.g. torch.randn(2, 3, 64, 64)")
    if x.ndim != 4:
        raise ValueError(f"{caller}: x has shape {tuple(x.shape)}; pass a batch of images "
                         "(B, C, H, W), e.g. x[None] for a single image (C, H, W)")


@contextlib.contextmanager
def _eval_mode(model: Model) -> Iterator[None]:
    """Eval mode during the check (dropout off, batch-norm statistics fixed); afterwards every
    submodule gets back its own mode (a model may hold frozen parts in eval mode on purpose)."""
    if not isinstance(model, nn.Module):
        yield
        return
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _call(model: Model, t: Tensor) -> Tensor:
    out = model(t)
    if not isinstance(out, Tensor):
        raise TypeError(f"the model returned a {type(out).__name__}, not a tensor; pass a "
                        "function that returns the scores, e.g. lambda x: model(x)['out']")
    return out


def _check_finite(direct: Tensor) -> None:
    bad = int((~torch.isfinite(direct)).sum())
    if bad:
        raise AssertionError(f"the model's output for x holds {bad} NaN or infinite values; "
                             "nothing can be compared")


def _check_image_output(direct: Tensor, x: Tensor, group: Group) -> None:
    """g acts on the output's last two axes as on images: it must be (B, K, H', W')."""
    if direct.ndim != 4 or direct.shape[0] != x.shape[0]:
        raise ValueError(
            f"the model returned shape {tuple(direct.shape)} for an input {tuple(x.shape)}; "
            "assert_equivariant turns images (B, K, H, W) (for a classifier, use "
            "assert_invariant; for group feature maps, pass output_action)")
    quarter_turns = any(k % 2 for k, _ in group.elements)
    x_square, out_square = x.shape[-2] == x.shape[-1], direct.shape[-2] == direct.shape[-1]
    if quarter_turns and x_square and not out_square:
        raise ValueError(
            f"the model returned {_size(direct)} pixels for a square {_size(x)} input: turned by "
            "90 degrees it cannot match the output for the turned (still square) input; the "
            "output must turn with the input (a segmentation model keeps the input's size)")


def _reuse_direct(model: Model, x: Tensor, direct: Tensor, check_shapes: bool) -> Model:
    """`model`, except that model(x) is the output already computed (equivariance_errors asks
    for it first), and each other output is checked to be a tensor whose shape turns with the
    input: an output for a transposed-size input must have the transposed size."""

    def call(t: Tensor) -> Tensor:
        if t is x:
            return direct
        out = _call(model, t)
        if check_shapes:
            turned = t.shape[-2:] != x.shape[-2:]
            expected = (*direct.shape[:-2], *direct.shape[-2:][::-1]) if turned else direct.shape
            if out.shape != expected:
                raise ValueError(
                    f"the model returned shape {tuple(out.shape)} for a {_size(t)} input, but "
                    f"its output for the {_size(x)} input, turned, has shape {tuple(expected)}: "
                    "the output must turn with the input; use a square input, or a model that "
                    "keeps the input's size")
        return out

    return call


def _exceeds(candidate: Tensor, reference: Tensor, rtol: float, atol: float) -> bool:
    """Whether candidate differs from reference by more than the tolerance (or in shape)."""
    if candidate.shape != reference.shape:
        return True
    return float((candidate - reference).abs().max()) > atol + rtol * float(reference.abs().max())


def _fail_if_exceeded(errors: Errors, tolerances: dict[str, float], what: str, formula: str,
                      rtol: float, atol: float) -> None:
    __tracebackhide__ = True
    # `not <=` so that a NaN error fails
    failed = [name for name in errors if not errors[name]["max_abs"] <= tolerances[name]]
    if not failed:
        return
    ranked = sorted(errors, key=lambda name: (math.isnan(errors[name]["max_abs"]),
                                              errors[name]["max_abs"]), reverse=True)
    worst = ranked[0]
    headline = (f"model is not {what}: worst element {worst}, max abs error "
                f"{errors[worst]['max_abs']:.3g} > tolerance {tolerances[worst]:.3g} "
                f"(relative error {errors[worst]['relative']:.3g}); "
                f"{len(failed)} of {len(errors)} elements fail")
    lines = [headline]
    lines += [f"  {name:<15} max abs {errors[name]['max_abs']:.3g}  relative "
              f"{errors[name]['relative']:.3g}  tolerance {tolerances[name]:.3g}  "
              f"{'FAIL' if name in failed else 'ok'}" for name in ranked]
    lines.append(f"passes when {formula}, with rtol={rtol:g}, atol={atol:g}")
    raise AssertionError("\n".join(lines))


def _size(t: Tensor) -> str:
    return f"{t.shape[-2]}x{t.shape[-1]}"
