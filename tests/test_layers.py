"""Every layer is equivariant to float32 precision with random weights, norm affines included."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from equiseg.nn.cyclic import SteerableGroupConv2d
from equiseg.nn.equivariance import equivariance_errors, worst_relative_error
from equiseg.nn.groups import act_on_image, get_group, get_network_group
from equiseg.nn.layers import (
    GroupConv2d,
    GroupNorm,
    GroupPool,
    ResidualBlock,
    filter_bank_index,
    group_conv,
)

TOL = 1e-5


def randomize_(module: nn.Module) -> nn.Module:
    """Random values in every parameter: equivariance at initialisation proves too little."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.5, 1.0)
    return module


def feature_action(group):
    return lambda t, i: group.act_on_features(t, i)


def image_action(group):
    return lambda t, i: act_on_image(t, group.elements[i])


SHAPES = [(12, 12), (8, 16)]  # square and non-square


@pytest.mark.parametrize("name", ["p4", "p4m"])
@pytest.mark.parametrize("size", SHAPES)
def test_lifting_conv_is_equivariant(name, size):
    g = get_group(name)
    layer = randomize_(GroupConv2d(3, 5, g, 3, lifting=True))
    x = torch.randn(2, 3, *size)
    errors = equivariance_errors(layer, x, g, output_action=feature_action(g))
    assert worst_relative_error(errors) < TOL


@pytest.mark.parametrize("name", ["p4", "p4m"])
@pytest.mark.parametrize("kernel", [1, 3, 5])
@pytest.mark.parametrize("size", SHAPES)
def test_group_conv_is_equivariant(name, kernel, size):
    g = get_group(name)
    layer = randomize_(GroupConv2d(4, 3, g, kernel))
    x = torch.randn(2, 4 * g.order, *size)
    errors = equivariance_errors(layer, x, g, output_action=feature_action(g),
                                 input_action=feature_action(g))
    assert worst_relative_error(errors) < TOL


def test_filter_bank_matches_the_definition():
    """bank[o, g, i, h](p) = W[o, i, g^-1 h](g^-1 p), built here the slow way, element by element."""
    g = get_group("p4m")
    layer = randomize_(GroupConv2d(2, 3, g, 3))
    weight = layer.weight.detach().reshape(3, 2, g.order, 3, 3)
    expected = torch.empty(3, g.order, 2, g.order, 3, 3)
    for a in range(g.order):
        for h in range(g.order):
            source = g.product[g.inverse[a]][h]
            expected[:, a, :, h] = act_on_image(weight[:, :, source], g.elements[a])
    assert torch.equal(layer.filter_bank().detach(), expected.reshape(3 * g.order, 2 * g.order, 3, 3))
    assert filter_bank_index(g, g.order, 3).shape == (g.order, g.order * 9)


def test_trivial_group_conv_is_an_ordinary_convolution():
    layer = randomize_(GroupConv2d(3, 4, get_group("trivial"), 3, lifting=True))
    x = torch.randn(1, 3, 8, 8)
    expected = F.conv2d(x, layer.weight.reshape(4, 3, 3, 3), layer.bias, padding=1)
    assert torch.allclose(layer(x), expected, atol=1e-6)


@pytest.mark.parametrize("name", ["p4", "p4m"])
def test_group_norm_with_random_affine_is_equivariant(name):
    g = get_group(name)
    norm = randomize_(GroupNorm(2, 6, g))
    x = torch.randn(2, 6 * g.order, 8, 8)
    errors = equivariance_errors(norm, x, g, output_action=feature_action(g),
                                 input_action=feature_action(g))
    assert worst_relative_error(errors) < TOL


def test_per_channel_affine_group_norm_is_not_equivariant_once_trained():
    """The pitfall the shared affine avoids: torch's GroupNorm over C*|G| channels."""
    g = get_group("p4")
    norm = randomize_(nn.GroupNorm(2, 6 * g.order))
    x = torch.randn(2, 6 * g.order, 8, 8)
    errors = equivariance_errors(norm, x, g, output_action=feature_action(g),
                                 input_action=feature_action(g))
    assert worst_relative_error(errors) > 0.01


@pytest.mark.parametrize("mode", ["mean", "max"])
def test_group_pool_turns_fibres_into_equivariant_channels(mode):
    g = get_group("p4m")
    pool = GroupPool(g, mode)
    x = torch.randn(2, 3 * g.order, 8, 8)
    errors = equivariance_errors(pool, x, g, output_action=image_action(g),
                                 input_action=feature_action(g))
    assert worst_relative_error(errors) < TOL


@pytest.mark.parametrize("lifting", [True, False])
def test_residual_block_is_equivariant(lifting):
    g = get_group("p4")
    block = randomize_(ResidualBlock(3, 4, g, norm_groups=2, lifting=lifting))
    x = torch.randn(2, 3 if lifting else 3 * g.order, 8, 8)
    errors = equivariance_errors(block, x, g, output_action=feature_action(g),
                                 input_action=image_action(g) if lifting else feature_action(g))
    assert worst_relative_error(errors) < TOL


@pytest.mark.parametrize("op", [lambda t: F.max_pool2d(t, 2),
                                lambda t: F.interpolate(t, scale_factor=2, mode="bilinear"),
                                lambda t: torch.cat([t, 2 * t], dim=1)])
def test_pooling_upsampling_and_skip_concatenation_commute_with_the_group(op):
    g = get_group("p4m")
    x = torch.randn(1, 2 * g.order, 8, 12)
    errors = equivariance_errors(op, x, g, output_action=feature_action(g),
                                 input_action=feature_action(g))
    assert worst_relative_error(errors) < TOL


def test_even_kernel_is_refused():
    with pytest.raises(ValueError, match="odd"):
        GroupConv2d(1, 1, get_group("p4"), 2)


@pytest.mark.parametrize("name, cls", [("trivial", GroupConv2d), ("p4", GroupConv2d),
                                       ("p4m", GroupConv2d), ("c8", SteerableGroupConv2d),
                                       ("d8", SteerableGroupConv2d)])
def test_group_conv_picks_the_construction_for_the_group(name, cls):
    """Pixel permutations of free filters for the p4 family, steerable filters for C8/D8."""
    g = get_network_group(name)
    lift, conv = group_conv(3, 4, g, 3, lifting=True, bias=False), group_conv(4, 5, g, 1)
    assert type(lift) is cls and type(conv) is cls
    assert lift.bias is None and conv.bias is not None and conv.kernel_size == 1
    assert conv(lift(torch.randn(1, 3, 8, 8))).shape == (1, 5 * g.order, 8, 8)
