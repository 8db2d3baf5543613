"""How far any model is from equivariance (or invariance) under each element of a group.

Works on any callable mapping (B, C, H, W) to a tensor: our U-Nets, a user's model, or a single
layer (pass `output_action` to say how the group acts on its output, e.g. `Group.act_on_features`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from equiseg.nn.groups import Group, act_on_image, get_group

Action = Callable[[Tensor, int], Tensor]


def _errors(reference: Tensor, candidate: Tensor) -> dict[str, float]:
    diff = (candidate - reference).double()
    scale = reference.double().norm().clamp(min=1e-12)
    return {"max_abs": float(diff.abs().max()), "relative": float(diff.norm() / scale)}


def equivariance_errors(model: Callable[[Tensor], Tensor], x: Tensor, group: str | Group = "p4",
                        output_action: Action | None = None,
                        input_action: Action | None = None) -> dict[str, dict[str, float]]:
    """For each non-identity element g: compare model(g x) with g model(x).

    Returns {element name: {"max_abs": ..., "relative": ||diff|| / ||g model(x)||}}.
    By default g acts on input and output images by rot90/flip of the last two axes.
    """
    group = get_group(group) if isinstance(group, str) else group
    act_in = input_action or (lambda t, i: act_on_image(t, group.elements[i]))
    act_out = output_action or (lambda t, i: act_on_image(t, group.elements[i]))
    with torch.no_grad():
        direct = model(x)
        return {
            group.element_name(i): _errors(act_out(direct, i), model(act_in(x, i)))
            for i in range(1, group.order)
        }


def invariance_errors(model: Callable[[Tensor], Tensor], x: Tensor,
                      group: str | Group = "p4") -> dict[str, dict[str, float]]:
    """For each non-identity element g: compare model(g x) with model(x) (e.g. a classifier)."""
    return equivariance_errors(model, x, group, output_action=lambda t, i: t)


def worst_relative_error(errors: dict[str, dict[str, float]]) -> float:
    return max(e["relative"] for e in errors.values())
