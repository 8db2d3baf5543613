"""The groups' tables must be those of C4 and D4, and their actions must compose like the group."""

import pytest
import torch

from equiseg.nn.cyclic import RotationGroup
from equiseg.nn.groups import Group, act_on_image, get_group, get_network_group, group_turn


@pytest.mark.parametrize("name, order", [("trivial", 1), ("p4", 4), ("p4m", 8)])
def test_group_axioms(name, order):
    g = get_group(name)
    assert g.order == order
    for a in range(order):
        assert g.product[0][a] == a and g.product[a][0] == a  # identity
        assert g.product[a][g.inverse[a]] == 0  # inverse
        for b in range(order):
            for c in range(order):  # associativity
                assert g.product[g.product[a][b]][c] == g.product[a][g.product[b][c]]


def test_p4_is_cyclic_and_p4m_is_not_abelian():
    p4, p4m = get_group("p4"), get_group("p4m")
    assert [p4.product[1][k] for k in range(4)] == [1, 2, 3, 0]
    commutes = all(p4m.product[a][b] == p4m.product[b][a] for a in range(8) for b in range(8))
    assert not commutes


@pytest.mark.parametrize("name", ["p4", "p4m"])
def test_actions_compose_like_the_group(name):
    g = get_group(name)
    x = torch.randn(2, 3, 6, 6)
    for a in range(g.order):
        for b in range(g.order):
            twice = act_on_image(act_on_image(x, g.elements[b]), g.elements[a])
            assert torch.equal(twice, act_on_image(x, g.elements[g.product[a][b]]))
    f = torch.randn(2, 3 * g.order, 6, 6)
    for a in range(g.order):
        for b in range(g.order):
            twice = g.act_on_features(g.act_on_features(f, b), a)
            assert torch.equal(twice, g.act_on_features(f, g.product[a][b]))


def test_rot90_is_counter_clockwise():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert act_on_image(x, (1, 0)).tolist() == [[2.0, 4.0], [1.0, 3.0]]
    assert act_on_image(x, (0, 1)).tolist() == [[2.0, 1.0], [4.0, 3.0]]


def test_unknown_group_is_named():
    with pytest.raises(ValueError, match="p8"):
        get_group("p8")


@pytest.mark.parametrize("name, kind", [("trivial", Group), ("p4", Group), ("p4m", Group),
                                        ("c8", RotationGroup), ("d8", RotationGroup)])
def test_a_network_group_is_the_p4_family_or_a_rotation_group(name, kind):
    g = get_network_group(name)
    assert type(g) is kind and g.name == name
    assert get_network_group("p4") is get_group("p4")


def test_get_group_stays_the_p4_family():
    """Its elements count quarter turns (act_on_image reads (1, 0) as 90 degrees; in C8 it is 45),
    so a C8 group must not pass for one of them."""
    with pytest.raises(ValueError, match="'c8'"):
        get_group("c8")


def test_unknown_network_group_names_every_kind():
    with pytest.raises(ValueError, match="'p6' .*trivial, p4, p4m, c8, d8"):
        get_network_group("p6")


@pytest.mark.parametrize("name, turn", [("trivial", 360.0), ("p4", 90.0), ("p4m", 90.0),
                                        ("c8", 45.0), ("d8", 45.0), ("c16", 22.5)])
def test_a_group_covers_the_multiples_of_its_smallest_turn(name, turn):
    assert group_turn(name) == turn
    group = get_network_group(name)
    rotations = {group.angle(i) for i in range(group.order)} if isinstance(group, RotationGroup) \
        else {90.0 * k for k, _ in group.elements}
    assert rotations == {k * turn for k in range(round(360 / turn))}

