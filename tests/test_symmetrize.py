"""`equiseg.symmetrize`: any model averaged over p4/p4m is exactly equivariant, averaged over C8
exact at the quarter turns and closer between them, and the audit shows it beside the original."""

import pytest
import torch
from torch import nn

import equiseg
import equiseg.nn
from equiseg.nn.groups import act_on_image, get_group
from tests.audit_helpers import audit_ok, disc_masks, tiny_folder, write_models


# a model file for the audit: a small plain CNN, neither rotation- nor flip-equivariant
PLAIN_MODEL_FILE = '''
import torch
from torch import nn


def plain():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1))
'''


def plain_conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1))


def largest_equivariance_error(model: nn.Module, group: str, x: torch.Tensor) -> float:
    with torch.no_grad():
        direct = model(x)
        return max(float((model(act_on_image(x, g)) - act_on_image(direct, g)).abs().max())
                   for g in get_group(group).elements)


@pytest.mark.parametrize("group", ["p4", "p4m"])
def test_symmetrized_plain_net_is_exact_and_the_plain_net_is_not(group):
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    net = plain_conv_net()
    assert largest_equivariance_error(net, group, x) > 1e-2
    assert largest_equivariance_error(equiseg.symmetrize(net, group), group, x) < 1e-5


def test_it_averages_the_undone_outputs_and_handles_non_square_inputs():
    net = plain_conv_net()
    x = torch.rand(1, 3, 8, 12)
    expected = torch.stack([torch.rot90(net(torch.rot90(x, k, (2, 3))), -k, (2, 3))
                            for k in range(4)]).mean(dim=0)
    with torch.no_grad():
        assert torch.allclose(equiseg.nn.symmetrize(net, "p4")(x), expected, atol=1e-6)
    assert equiseg.symmetrize is equiseg.nn.symmetrize
    with pytest.raises(ValueError, match="allowed: p4, p4m"):
        equiseg.symmetrize(net, "p6")


def test_audit_shows_original_and_symmetrized_side_by_side(tmp_path, capsys):
    images = tiny_folder(tmp_path, count=2)
    masks = disc_masks(tmp_path, ["img0", "img1"])
    models = write_models(tmp_path, PLAIN_MODEL_FILE)
    summary = audit_ok(capsys, tmp_path / "out", "--model", f"{models}:plain", "--images",
                       str(images), "--masks", str(masks), "--symmetrize", "p4m",
                       "--perturb", "rotate,flip")
    assert summary["perturbations"]["rotate"]["exact_at_90_multiples"] is False
    symmetrized = summary["symmetrized"]
    assert symmetrized["group"] == "p4m" and symmetrized["images_per_second"] > 0
    assert symmetrized["perturbations"]["rotate"]["exact_at_90_multiples"] is True
    assert symmetrized["perturbations"]["flip_h"]["exact"] is True
    assert symmetrized["perturbations"]["rotate"]["mean_iou_gt"] is not None
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Symmetrized model" in report and "symmetrized (p4m)" in report
    assert (tmp_path / "out" / "results_symmetrized.csv").is_file()


def test_audit_symmetrizes_over_c8_exact_at_quarter_turns_and_more_consistent_between(tmp_path,
                                                                                      capsys):
    images = tiny_folder(tmp_path, count=2)
    models = write_models(tmp_path, PLAIN_MODEL_FILE)
    summary = audit_ok(capsys, tmp_path / "out", "--model", f"{models}:plain", "--images",
                       str(images), "--symmetrize", "c8", "--perturb", "rotate,flip",
                       "--angle-step", "45")
    original, symmetrized = summary["perturbations"], summary["symmetrized"]["perturbations"]
    assert summary["symmetrized"]["group"] == "c8"
    assert original["rotate"]["exact_at_90_multiples"] is False
    assert symmetrized["rotate"]["exact_at_90_multiples"] is True
    assert symmetrized["flip_h"]["exact"] is False  # C8 holds no mirror
    for closer in ("consistency_iou_off_grid", "psnr_db_off_grid"):  # at 45, 135, ... degrees
        assert symmetrized["rotate"][closer] > original["rotate"][closer], closer


def test_c8_symmetrization_is_exact_at_quarter_turns_and_closer_at_eighth_turns():
    """Averaging over the eight turns by 45 degrees keeps the quarter turns exact (the resampled
    turns commute with rot90 on a square canvas) and brings the 45-degree error down."""
    from equiseg.geometry import rotate_batch
    from equiseg.nn.equivariance import smooth_random_field

    net = plain_conv_net()
    x = smooth_random_field(1, 3, 33, 2.0, torch.Generator().manual_seed(0))
    c8 = equiseg.symmetrize(net, "c8")
    assert largest_equivariance_error(c8, "p4", x) < 1e-5
    assert largest_equivariance_error(net, "p4", x) > 1e-2

    def error_at_45(model):
        with torch.no_grad():
            moved, expected = model(rotate_batch(x, 45.0)), rotate_batch(model(x), 45.0)
        centre = (slice(None), slice(None), slice(10, 23), slice(10, 23))  # away from the border
        return float((moved - expected)[centre].norm() / expected[centre].norm())

    assert error_at_45(c8) < 0.5 * error_at_45(equiseg.symmetrize(net, "p4"))  # 0.009 vs 0.025
    assert error_at_45(c8) < 0.1 * error_at_45(net)  # 0.24 for the plain net
    with pytest.raises(ValueError, match="square"):
        c8(torch.rand(1, 3, 16, 24))
