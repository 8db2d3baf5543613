"""A library error names a setting by its own argument; the caller renames it to what its user
typed (a params.yaml key, a command-line flag), in the same one-line message."""

import pytest
import torch
from torch import nn

from equiseg.errors import EquisegError, InvalidValue, check_choice, settings_named


def test_backticked_arguments_and_invalid_values_take_the_callers_names():
    with pytest.raises(EquisegError) as caught, settings_named(pad_size="--pad-size"):
        raise EquisegError("`pad_size` 16 is smaller than a 20x20 image; shrink it (`size`)")
    assert str(caught.value) == "`--pad-size` 16 is smaller than a 20x20 image; shrink it (`size`)"
    with pytest.raises(InvalidValue) as caught, settings_named(output="--output"):
        check_choice("output", "scores", ("logits", "probs"))
    assert caught.value.name == "--output"
    assert str(caught.value) == "'--output' is 'scores' (allowed: logits, probs)"


def test_other_exceptions_pass_unchanged():
    with pytest.raises(ValueError, match="^`pad_size`$"), settings_named(pad_size="--pad-size"):
        raise ValueError("`pad_size`")


def test_the_audit_names_its_flags_where_the_analysis_names_its_arguments():
    from equiseg.audit import audit

    images = torch.rand(1, 3, 24, 24)
    with pytest.raises(EquisegError, match=r"^`--pad-size` 16 is smaller than a 24x24 image; "
                                           r"raise it or shrink the images \(`--size`\)"):
        audit(nn.Conv2d(3, 1, 1), images, pad_size=16, perturb="rotate", angle_step=90)
