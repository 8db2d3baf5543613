"""Make any segmentation model exactly equivariant by averaging it over a group.

    symmetric(x) = 1/|G| * sum over g in G of  g^-1 . model(g . x)

Each element g (a rotation by a multiple of 90 degrees, p4m also the mirrors) acts on the input's
pixels, the model predicts, the prediction is turned back by g^-1, and the |G| turned-back
outputs are averaged. For any h in G, symmetric(h . x) = h . symmetric(x) exactly (the sum over
g runs over gh as well), up to float rounding, whatever the model is: the price is |G| forward
passes (4 for p4, 8 for p4m), done as one batch of |G| times the size when the input is square.

What is averaged is what the model returns: its raw output (logits for most models); a model
that returns probabilities has its probabilities averaged. Averaging logits is the usual test-time
augmentation of segmentation; either is exactly equivariant.

The output must be a tensor (B, K, H, W); wrap a model that returns a dict or an object first
(`equiseg.analysis.adapters.AdaptedModel`). Convention: `equiseg.nn.groups`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from equiseg.nn.groups import act_on_image, get_group

SYMMETRY_GROUPS = ("p4", "p4m")


class Symmetrized(nn.Module):
    """`model` averaged over the group `group` ('p4' or 'p4m'); see the module's docstring."""

    def __init__(self, model: nn.Module, group: str = "p4") -> None:
        super().__init__()
        if group not in SYMMETRY_GROUPS:
            raise ValueError(f"unknown group {group!r} (allowed: {', '.join(SYMMETRY_GROUPS)})")
        self.model = model
        self.group = get_group(group)

    def forward(self, x: Tensor) -> Tensor:
        elements = self.group.elements
        inverses = [elements[self.group.inverse[i]] for i in range(self.group.order)]
        if x.shape[-1] == x.shape[-2]:  # every transformed copy has the same shape: one batch
            batch = torch.cat([act_on_image(x, g) for g in elements])
            outputs = self.model(batch).chunk(self.group.order)
        else:
            outputs = [self.model(act_on_image(x, g)) for g in elements]
        undone = [act_on_image(y, g_inv) for y, g_inv in zip(outputs, inverses)]
        return torch.stack(undone).mean(dim=0)


def symmetrize(model: nn.Module, group: str = "p4") -> Symmetrized:
    """A module that is `model` averaged over `group` ('p4': the four rotations by 90 degrees;
    'p4m': those and the four mirrors): exactly equivariant, |G| times the cost."""
    return Symmetrized(model, group)
