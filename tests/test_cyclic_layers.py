"""C8/D8 layers: the steerable basis turns exactly, quarter turns and mirrors stay exact, and at
45 degrees the steerable filters are far closer to equivariant than interpolated ones."""

import math

import pytest
import torch

from equiseg.nn.cyclic import (
    InterpolatedGroupConv2d,
    RotationGroup,
    SteerableGroupConv2d,
    bilinear_turn,
    get_rotation_group,
    orbit,
)
from equiseg.nn.equivariance import layer_equivariance_error, smooth_random_field
from equiseg.nn.groups import get_group
from equiseg.nn.harmonics import (
    coefficient_rotation,
    default_harmonics,
    grid_coordinates,
    harmonic_norms,
    harmonic_values,
    sample_harmonics,
)
from equiseg.nn.layers import GroupNorm, GroupPool
from tests.test_layers import randomize_

TOL = 1e-5
CONSTRUCTIONS = [SteerableGroupConv2d, InterpolatedGroupConv2d]




def exact_elements(group: RotationGroup) -> list[int]:
    """The non-identity quarter turns and their mirrors: the p4 (p4m) sub-group."""
    quarter = group.rotations // 4
    return [i for i, (k, _) in enumerate(group.elements) if i and k % quarter == 0]


def relative_error(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    return float((candidate - reference).norm() / reference.norm())


# ------------------------------------------------------------------------------------ groups

@pytest.mark.parametrize("name", ["c8", "d8", "c16", "d16"])
def test_group_axioms(name):
    g = get_rotation_group(name)
    n = g.order
    assert g.order == g.rotations * (2 if g.mirrors else 1) and g.name == name
    for a in range(n):
        assert g.product[0][a] == a == g.product[a][0]
        assert g.product[a][g.inverse[a]] == 0
        for b in range(n):
            for c in range(n):
                assert g.product[g.product[a][b]][c] == g.product[a][g.product[b][c]]


@pytest.mark.parametrize("name, reference", [("c4", "p4"), ("d4", "p4m")])
def test_c4_and_d4_are_p4_and_p4m_element_by_element(name, reference):
    g, p = get_rotation_group(name), get_group(reference)
    assert g.elements == p.elements and g.product == p.product and g.inverse == p.inverse


def test_product_composes_the_actions_on_images():
    """act(act(x, b), a) == act(x, a*b), checked on a square image at 90-degree multiples of d8."""
    g = get_rotation_group("d8")
    x = torch.arange(25.0).reshape(1, 1, 5, 5)
    for a in exact_elements(g):
        for b in exact_elements(g):
            assert torch.equal(g.act_on_image(g.act_on_image(x, b), a),
                               g.act_on_image(x, g.product[a][b]))


@pytest.mark.parametrize("name", ["c6", "x8", "d"])
def test_unknown_or_unsupported_groups_are_refused(name):
    with pytest.raises(ValueError, match="multiple of 4" if name == "c6" else "expected 'c8'"):
        get_rotation_group(name)


# --------------------------------------------------------------------------- steerable basis

@pytest.mark.parametrize("kernel_size", [3, 5, 7])
def test_sampled_basis_turned_by_90_degrees_is_rot90(kernel_size):
    h = default_harmonics(kernel_size)
    basis = sample_harmonics(h, kernel_size)
    for q in range(1, 4):
        turned = sample_harmonics(h, kernel_size, 90.0 * q)
        assert torch.allclose(turned, torch.rot90(basis, q, dims=(-2, -1)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_sampled_basis_mirrored_is_flip(kernel_size):
    """psi(m p) sampled on the grid equals the left-right flip of the sampled psi."""
    h = default_harmonics(kernel_size)
    x, y = grid_coordinates(kernel_size)
    mirrored = harmonic_values(h, -x, y) / harmonic_norms(h, kernel_size)[:, None, None]
    assert torch.allclose(mirrored, torch.flip(sample_harmonics(h, kernel_size), dims=(-1,)),
                          rtol=0, atol=1e-12)


@pytest.mark.parametrize("kernel_size", [3, 5])
@pytest.mark.parametrize("angle", [45.0, 30.0, 90.0, -45.0])
def test_turning_is_a_rotation_of_the_coefficients(kernel_size, angle):
    h = default_harmonics(kernel_size)
    m = coefficient_rotation(h, angle)
    expected = torch.einsum("ij,ixy->jxy", m, sample_harmonics(h, kernel_size))
    assert torch.allclose(sample_harmonics(h, kernel_size, angle), expected, rtol=0, atol=1e-12)
    assert torch.allclose(m.T @ m, torch.eye(len(h), dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("kernel_size, count", [(1, 1), (3, 6), (5, 11)])
def test_default_basis_size_and_unit_norm(kernel_size, count):
    h = default_harmonics(kernel_size)
    assert len(h) == count
    assert max(x.frequency for x in h if x.radius == 0) == 0  # only m = 0 at the centre
    norms = sample_harmonics(h, kernel_size).pow(2).sum((-2, -1))
    pairs = {}
    for x, n in zip(h, norms):
        pairs.setdefault((x.radius, x.frequency), []).append(float(n))
    assert all(math.isclose(sum(v) / len(v), 1.0) for v in pairs.values())


@pytest.mark.parametrize("name", ["c8", "d8"])
def test_layer_basis_is_every_element_applied_to_the_analytic_functions(name):
    """basis[:, g](p) = psi(g^-1 p), evaluated analytically at g^-1 p for every g (the slow way)."""
    g = get_rotation_group(name)
    layer = SteerableGroupConv2d(1, 1, g, 5)
    h, x, y = layer.harmonics, *grid_coordinates(5)
    for index, (k, f) in enumerate(g.elements):
        t = math.radians(360.0 * k / g.rotations)
        # g^-1 = m^f r^-k: turn back by the angle, then mirror
        u, v = x * math.cos(t) + y * math.sin(t), -x * math.sin(t) + y * math.cos(t)
        expected = harmonic_values(h, -u if f else u, v) / harmonic_norms(h, 5)[:, None, None]
        assert torch.allclose(layer.basis[:, index].double(), expected, atol=1e-6), index


def test_bilinear_turn_by_a_quarter_is_rot90():
    """The interpolation turns counter-clockwise, as rot90 and the steerable basis do."""
    w = torch.randn(4, 3, 3)
    assert torch.allclose(bilinear_turn(w, 90.0), torch.rot90(w, 1, dims=(-2, -1)), atol=1e-6)


def test_orbit_refuses_the_wrong_number_of_turned_filters():
    with pytest.raises(ValueError, match="expected 2 turned filters"):
        orbit(torch.zeros(1, 3, 3, 3), get_rotation_group("c8"))


# ------------------------------------------------------------------------------------ layers

@pytest.mark.parametrize("cls", CONSTRUCTIONS)
@pytest.mark.parametrize("name", ["c8", "d8"])
@pytest.mark.parametrize("kernel_size", [3, 5])
@pytest.mark.parametrize("size", [(12, 12), (8, 16)])
def test_lifting_conv_is_exactly_equivariant_to_quarter_turns_and_mirrors(cls, name, kernel_size,
                                                                          size):
    g = get_rotation_group(name)
    layer = randomize_(cls(3, 2, g, kernel_size, lifting=True))
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        y = layer(x)
        for i in exact_elements(g):
            assert relative_error(g.act_on_features(y, i), layer(g.act_on_image(x, i))) < TOL


@pytest.mark.parametrize("cls", CONSTRUCTIONS)
@pytest.mark.parametrize("name", ["c8", "d8"])
@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("size", [(12, 12), (8, 16)])
def test_group_conv_is_exactly_equivariant_to_quarter_turns_and_mirrors(cls, name, kernel_size,
                                                                        size):
    g = get_rotation_group(name)
    layer = randomize_(cls(2, 3, g, kernel_size))
    x = torch.randn(2, 2 * g.order, *size)
    with torch.no_grad():
        y = layer(x)
        for i in exact_elements(g):
            assert relative_error(g.act_on_features(y, i), layer(g.act_on_features(x, i))) < TOL


@pytest.mark.parametrize("cls", CONSTRUCTIONS)
def test_d8_mirror_is_exact(cls):
    g = get_rotation_group("d8")
    flip = g.index(0, 1)
    lift, conv = randomize_(cls(3, 2, g, 3, lifting=True)), randomize_(cls(2, 2, g, 3))
    x = torch.randn(1, 3, 9, 11)
    with torch.no_grad():
        features = lift(x)
        assert relative_error(g.act_on_features(features, flip),
                              lift(torch.flip(x, dims=(-1,)))) < TOL
        assert relative_error(g.act_on_features(conv(features), flip),
                              conv(g.act_on_features(features, flip))) < TOL


@pytest.mark.parametrize("cls", CONSTRUCTIONS)
def test_one_turn_by_45_degrees_of_c8_is_its_first_orientation_channel(cls):
    """bank for r^1 is the identity's filters turned by 45 degrees (not the same, not rot90)."""
    g = get_rotation_group("c8")
    layer = cls(1, 1, g, 3, lifting=True)
    bank = layer.filter_bank().detach()  # (8, 1, 3, 3)
    for k in range(8):
        q, b = divmod(k, 2)
        assert torch.equal(bank[k], torch.rot90(bank[b], q, dims=(-2, -1)))
    assert not torch.allclose(bank[1], bank[0]) and not torch.allclose(bank[1], bank[2])


SIZE, BLUR = 65, 2.0


@pytest.mark.parametrize("lifting", [True, False])
@pytest.mark.parametrize("name", ["c8", "d8"])
def test_steerable_is_far_closer_to_equivariant_at_45_degrees_than_interpolation(lifting, name):
    """Measured (benchmarks/layer_equivariance.py, 129 px, 3 seeds): about 0.016 against 0.4."""
    g = get_rotation_group(name)
    channels = 3 if lifting else 2 * g.order
    x = smooth_random_field(1, channels, SIZE, BLUR, torch.Generator().manual_seed(0))
    errors = {}
    for cls in CONSTRUCTIONS:
        torch.manual_seed(0)
        layer = cls(3 if lifting else 2, 2, g, 3, lifting=lifting)
        errors[cls] = layer_equivariance_error(layer, x, g.index(1), (SIZE - 1) / 2 - 8)
    assert errors[SteerableGroupConv2d] < 0.03
    assert errors[InterpolatedGroupConv2d] > 0.2
    assert errors[SteerableGroupConv2d] < errors[InterpolatedGroupConv2d] / 8


@pytest.mark.parametrize("cls", CONSTRUCTIONS)
def test_the_measurement_is_exact_at_90_degrees(cls):
    g = get_rotation_group("c8")
    layer = cls(2, 2, g, 3)
    x = smooth_random_field(1, 2 * g.order, 33, BLUR, torch.Generator().manual_seed(0))
    assert layer_equivariance_error(layer, x, g.index(2), 12.0) < 1e-6


@pytest.mark.parametrize("name, order", [("c8", 8), ("d8", 16)])
@pytest.mark.parametrize("kernel_size, taps", [(3, 6), (5, 11)])
def test_shapes_and_parameter_counts(name, order, kernel_size, taps):
    g = get_rotation_group(name)
    for cls, per_filter in [(SteerableGroupConv2d, taps),
                            (InterpolatedGroupConv2d, kernel_size * kernel_size)]:
        lift = cls(3, 4, g, kernel_size, lifting=True)
        conv = cls(4, 5, g, kernel_size, bias=False)
        assert sum(p.numel() for p in lift.parameters()) == 4 * 3 * per_filter + 4
        assert sum(p.numel() for p in conv.parameters()) == 5 * 4 * order * per_filter
        y = lift(torch.randn(2, 3, 10, 12))
        assert y.shape == (2, 4 * order, 10, 12)
        assert conv(y).shape == (2, 5 * order, 10, 12)
        assert conv.filter_bank().shape == (5 * order, 4 * order, kernel_size, kernel_size)


def test_even_kernels_are_refused():
    with pytest.raises(ValueError, match="kernel_size=4: must be odd"):
        SteerableGroupConv2d(1, 1, get_rotation_group("c8"), 4)


@pytest.mark.parametrize("name", ["c8", "d8"])
def test_group_norm_and_pool_work_on_c8_d8_feature_maps(name):
    """layers.GroupNorm and layers.GroupPool read only `group.order`: exact at quarter turns."""
    g = get_rotation_group(name)
    x = torch.randn(2, 4 * g.order, 8, 8)
    norm = randomize_(GroupNorm(2, 4, g))
    pool = GroupPool(g, "max")
    with torch.no_grad():
        for i in exact_elements(g):
            moved = g.act_on_features(x, i)
            assert relative_error(g.act_on_features(norm(x), i), norm(moved)) < TOL
            assert torch.equal(pool(g.act_on_features(x, i)), g.act_on_image(pool(x), i))
