"""Make any segmentation model exactly equivariant by averaging it over a group.

    symmetric(x) = 1/|G| * sum over g in G of  g^-1 . model(g . x)

Each element g (a rotation by a multiple of 90 degrees, p4m also the mirrors) acts on the input's
pixels, the model predicts, the prediction is turned back by g^-1, and the |G| turned-back
outputs are averaged. For any h in G, symmetric(h . x) = h . symmetric(x) exactly (the sum over
g runs over gh as well), up to float rounding, whatever the model is: the price is |G| forward
passes (4 for p4, 8 for p4m), done as one batch of |G| times the size when the input is square.

`c8` averages over the eight turns by 45 degrees (the interpolated input rotations the C8 issue
compares a trained C8 net with): the odd turns resample bilinearly (`equiseg.geometry`), and a
turned-back output counts only where its round trip kept the canvas's content, so corners are
averaged over fewer turns. The quarter turns stay exact; the eighth turns are as close as the
resampling allows. Square inputs only.

What is averaged is what the model returns: its raw output (logits for most models); a model
that returns probabilities has its probabilities averaged. Averaging logits is the usual test-time
augmentation of segmentation; either is exactly equivariant.

The output must be a tensor (B, K, H, W); wrap a model that returns a dict or an object first
(`equiseg.audit.adapters.AdaptedModel`). Convention: `equiseg.nn.groups`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from equiseg.geometry import rotate_batch, round_trip_valid
from equiseg.nn.groups import act_on_image, get_group

SYMMETRY_GROUPS = ("p4", "p4m", "c8")
C8_ANGLES = tuple(45.0 * k for k in range(8))


class Symmetrized(nn.Module):
    """`model` averaged over the group `group` ('p4', 'p4m' or 'c8'); see the module's docstring."""

    def __init__(self, model: nn.Module, group: str = "p4") -> None:
        super().__init__()
        if group not in SYMMETRY_GROUPS:
            raise ValueError(f"unknown group {group!r} (allowed: {', '.join(SYMMETRY_GROUPS)})")
        self.model = model
        self.group_name = group
        self.group = None if group == "c8" else get_group(group)

    def forward(self, x: Tensor) -> Tensor:
        if self.group is None:
            return self._average_over_eighth_turns(x)
        elements = self.group.elements
        inverses = [elements[self.group.inverse[i]] for i in range(self.group.order)]
        if x.shape[-1] == x.shape[-2]:  # every transformed copy has the same shape: one batch
            batch = torch.cat([act_on_image(x, g) for g in elements])
            outputs = self.model(batch).chunk(self.group.order)
        else:
            outputs = [self.model(act_on_image(x, g)) for g in elements]
        undone = [act_on_image(y, g_inv) for y, g_inv in zip(outputs, inverses)]
        return torch.stack(undone).mean(dim=0)

    def _average_over_eighth_turns(self, x: Tensor) -> Tensor:
        """C8: the turns by odd multiples of 45 degrees resample (bilinear), and each turned-back
        output counts only where its round trip kept the canvas's own content."""
        if x.shape[-1] != x.shape[-2]:
            raise ValueError(f"c8 symmetrization needs square inputs, got {tuple(x.shape[-2:])}; "
                             "pad them to a square canvas first")
        size, count = x.shape[-1], len(C8_ANGLES)
        batch = torch.cat([rotate_batch(x, angle) for angle in C8_ANGLES])
        outputs = self.model(batch).chunk(count)
        canvas = torch.ones(1, size, size, dtype=torch.bool, device=x.device)
        valid = round_trip_valid(canvas, list(C8_ANGLES)).to(outputs[0].dtype)  # (8, 1, S, S)
        total = sum(rotate_batch(y, -angle) * valid[i] for i, (y, angle)
                    in enumerate(zip(outputs, C8_ANGLES)))
        return total / valid.sum(dim=0)  # the unturned copy is valid everywhere: never 0


def symmetrize(model: nn.Module, group: str = "p4") -> Symmetrized:
    """A module that is `model` averaged over `group` ('p4': the four rotations by 90 degrees;
    'p4m': those and the four mirrors; 'c8': the eight turns by 45 degrees, the odd ones
    resampled): exactly equivariant to the quarter turns (p4m also the mirrors), and for c8
    approximately to the eighth turns, |G| times the cost."""
    return Symmetrized(model, group)
