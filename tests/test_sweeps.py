"""Perturbation sweeps of any predict function: exact models come out exact, plain ones do not."""

import math

import pandas as pd
import pytest
import torch
from torch import nn

from equiseg.analysis.families import rotation_angles
from equiseg.analysis.judgeable import Judgeability, not_judgeable_images, verdict
from equiseg.analysis.perturbations import (
    Perturbation,
    build_perturbations,
    noise_field,
    perturb,
    restore,
)
from equiseg.analysis.predictor import ModelOutputError, make_predictor
from equiseg.analysis.replicates import replicate_stats
from equiseg.analysis.set_tables import (
    PERTURB_COLUMNS,
    PERTURB_KEYS,
    ROTATION_COLUMNS,
    ROTATION_KEYS,
    perturbation_table,
    rotation_table,
    set_statistics,
)
from equiseg.analysis.summary import equivariance_summary, summarize
from equiseg.analysis.sweep import SweepImage, run_sweep, sweep_perturbations
from equiseg.analysis.sweep_settings import SweepConfig
from equiseg.errors import EquisegError
from equiseg.geometry import footprint, pad_to_square
from equiseg.nn.models import build_model
from equiseg.report.run_results import PERTURB_OVER_SEEDS, ROTATION_OVER_SEEDS

NO_NORMALISATION = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
QUARTERS_AND_45 = build_perturbations(["rotate", "flip"], angle_step=45.0)


def plain_conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))


class Symmetrised(nn.Module):
    """Average of a net over the four rotations: exactly rot90-equivariant by construction."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        turns = [torch.rot90(self.net(torch.rot90(x, k, (2, 3))), -k, (2, 3)) for k in range(4)]
        return torch.stack(turns).mean(dim=0)


class RedIsForeground(nn.Module):
    """A pixel-wise model: logits from the red channel, so exact under every rotation by 90."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 40.0 * (x[:, :1] - 0.5)


def images(count: int = 2, size: int = 32, seed: int = 0) -> list[SweepImage]:
    generator = torch.Generator().manual_seed(seed)
    items = []
    for i in range(count):
        image = torch.rand(3, size, size, generator=generator)
        target = torch.rand(1, size, size, generator=generator) > 0.5
        items.append(SweepImage(f"img{i}", image, footprint(size, size, size), target))
    return items


def sweep(model: nn.Module, perturbations=QUARTERS_AND_45, items=None, **kwargs) -> pd.DataFrame:
    predict = make_predictor(model, *NO_NORMALISATION, **kwargs)
    return run_sweep(predict, items or images(), perturbations, batch_size=5).frame


def rows(frame: pd.DataFrame, name: str, levels) -> pd.DataFrame:
    return frame[(frame["perturbation"] == name) & frame["level"].isin(levels)]


def test_symmetrised_model_is_exact_at_quarter_turns_and_plain_net_is_not():
    exact = sweep(Symmetrised(plain_conv_net()))
    quarter = rows(exact, "rotate", [90.0, 180.0, 270.0])
    assert (quarter["iou_consistency"] == 1.0).all()
    assert (quarter["max_abs_diff"] < 1e-5).all()
    assert equivariance_summary(exact, atol=1e-4, rtol=1e-4)["exact_at_90_multiples"] is True

    plain = sweep(plain_conv_net())
    assert (rows(plain, "rotate", [90.0, 180.0, 270.0])["iou_consistency"] < 1.0).all()
    assert equivariance_summary(plain, atol=1e-4, rtol=1e-4)["exact_at_90_multiples"] is False


def test_group_unet_is_exact_at_quarter_turns_and_unet_is_not():
    small = {"filters": (4, 4, 8, 8), "norm_groups": 2}
    torch.manual_seed(0)  # default initialisation: outputs vary (random weights saturate them)
    gunet = sweep(build_model("gunet", **small))
    summary = equivariance_summary(gunet, atol=1e-4, rtol=1e-4)
    assert summary["exact_at_90_multiples"] is True
    assert summary["consistency_iou_at_90_multiples"] == 1.0
    assert summary["psnr_db_off_grid"] < 100.0  # 45 degrees cannot be exact on a pixel grid
    unet = sweep(build_model("unet", **small))
    assert equivariance_summary(unet, atol=1e-4, rtol=1e-4)["exact_at_90_multiples"] is False


def test_identity_levels_agree_perfectly_and_score_the_cap():
    frame = sweep(plain_conv_net(), sweep_perturbations(SweepConfig(angle_step=180.0)))
    identity = frame[[Perturbation(p, lv).is_identity
                      for p, lv in zip(frame["perturbation"], frame["level"])]]
    assert set(identity["perturbation"]) == {"rotate", "brightness", "contrast", "noise",
                                             "shift", "scale"}
    assert (identity["iou_consistency"] == 1.0).all() and (identity["psnr_db"] == 100.0).all()
    assert (identity["mad"] == 0.0).all()
    changed = frame[(frame["perturbation"] == "noise") & (frame["level"] == 0.3)]
    assert (changed["mad"] > 0).all()


def test_iou_against_ground_truth_of_a_model_that_reads_the_mask():
    """Red channel = mask and a pixel-wise model: IoU 1 at quarter turns, close to 1 at 45."""
    size = 32
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    mask = (((yy - 15) ** 2 + (xx - 18) ** 2) < 64).unsqueeze(0)
    image = torch.cat([mask.float(), torch.full((2, size, size), 0.3)])
    item = SweepImage("disc", image, footprint(size, size, size), mask)
    frame = sweep(RedIsForeground(), items=[item])
    quarter = rows(frame, "rotate", [0.0, 90.0, 180.0, 270.0])
    assert (quarter["iou_gt"] == 1.0).all()
    assert (rows(frame, "flip_h", [1.0])["iou_gt"] == 1.0).all()
    assert 0.85 < float(rows(frame, "rotate", [45.0])["iou_gt"].iloc[0]) < 1.0


def test_iou_against_ground_truth_counts_only_what_stayed_on_the_canvas():
    """An image filling its canvas loses its corners when turned by 45 degrees: a model that reads
    the mask perfectly is not blamed for them (scored where the image stayed on the canvas)."""
    size = 32
    mask = torch.ones(1, size, size, dtype=torch.bool)  # foreground up to the corners
    image = torch.cat([mask.float(), torch.full((2, size, size), 0.3)])
    item = SweepImage("full", image, footprint(size, size, size), mask)
    frame = sweep(RedIsForeground(), items=[item])
    turned = float(rows(frame, "rotate", [45.0])["iou_gt"].iloc[0])
    assert turned > 0.99  # over the whole canvas the lost corners would cost about 0.17


def test_multi_class_outputs_are_scored_per_class_with_softmax():
    class ThreeClasses(nn.Module):
        def forward(self, x):
            return 10 * x  # one class per colour channel, pixel-wise: exact at quarter turns

    items = [SweepImage(s.name, s.image, s.footprint, torch.randint(0, 3, (1, 32, 32)))
             for s in images()]
    frame = sweep(ThreeClasses(), items=items, classes=3)
    for k in range(3):
        assert f"iou_consistency_class{k}" in frame and f"iou_gt_class{k}" in frame
    quarter = rows(frame, "rotate", [90.0, 180.0, 270.0])
    assert (quarter["iou_consistency"] == 1.0).all()
    per_class = frame[[f"iou_gt_class{k}" for k in range(3)]].mean(axis=1)
    assert frame["iou_gt"].to_numpy() == pytest.approx(per_class.to_numpy())


def test_predictor_rejects_outputs_of_the_wrong_shape_or_range():
    with pytest.raises(ModelOutputError, match="spatial size"):
        sweep(nn.Conv2d(3, 1, 3))  # no padding: 30x30 out of 32x32
    with pytest.raises(ModelOutputError, match="set `classes` to 2"):
        sweep(nn.Conv2d(3, 2, 1))
    with pytest.raises(ModelOutputError, match="set `output` to logits"):
        sweep(nn.Conv2d(3, 1, 1), output="probs")
    with pytest.raises(EquisegError, match="logits or probs"):
        make_predictor(nn.Identity(), (0.0,), (1.0,), output="scores")


def test_tables_have_the_contract_columns_and_summaries_the_contract_keys():
    frame = sweep(plain_conv_net(), sweep_perturbations(SweepConfig(angle_step=90.0)))
    rotation = rotation_table(frame, "img1")
    assert tuple(rotation.columns) == ROTATION_COLUMNS
    assert rotation["angle"].tolist() == [0.0, 90.0, 180.0, 270.0]
    single = frame[(frame["image"] == "img1") & (frame["perturbation"] == "rotate")]
    assert rotation["iou_gt"].tolist() == single["iou_gt"].tolist()
    assert rotation["set_iou_gt_min"].tolist() == pytest.approx(
        frame[frame["perturbation"] == "rotate"].groupby("level")["iou_gt"].min().tolist())
    perturb_rows = perturbation_table(frame)
    assert tuple(perturb_rows.columns) == PERTURB_COLUMNS
    # the stage writes them over seeds; the report requires exactly what that file holds
    over_seeds = replicate_stats(pd.concat([rotation, rotation]), by=ROTATION_KEYS)
    assert tuple(over_seeds.columns) == ROTATION_OVER_SEEDS
    over_seeds = replicate_stats(pd.concat([perturb_rows, perturb_rows]), by=PERTURB_KEYS)
    assert tuple(over_seeds.columns) == PERTURB_OVER_SEEDS
    assert perturb_rows["perturbation"].unique().tolist() == [
        "flip_h", "flip_v", "brightness", "contrast", "noise", "shift", "scale"]
    assert set(equivariance_summary(frame, 1e-4, 1e-4)) == {
        "worst_angle", "worst_angle_iou", "iou_spread", "consistency_iou_at_90_multiples",
        "consistency_iou_off_grid", "psnr_db_off_grid", "exact_at_90_multiples",
        "flip_h_consistency_iou", "flip_v_consistency_iou", "psnr_db_pooled_off_grid",
        "degenerate_images", "group_turn", "exact_at_group_angles",
        "consistency_iou_at_group_angles_off_grid", "consistency_iou_off_group_angles"}


def test_audit_summary_names_the_worst_level_and_the_spread():
    frame = pd.DataFrame({
        "image": ["a", "a", "a", "b", "b", "b"],
        "perturbation": ["rotate"] * 6, "level": [0.0, 45.0, 90.0] * 2,
        "iou_gt": [float("nan")] * 6,
        "iou_consistency": [1.0, 0.6, 0.9, 1.0, 0.8, 0.9],
        "mad": [0.0, 0.2, 0.1, 0.0, 0.1, 0.1], "psnr_db": [100.0, 20.0, 30.0, 100.0, 25.0, 30.0],
        "max_abs_diff": [0.0, 0.5, 0.2, 0.0, 0.4, 0.2]})
    summary = summarize(frame, atol=1e-4, rtol=1e-4)
    rotate = summary["perturbations"]["rotate"]
    assert rotate["worst_level"] == 45.0 and rotate["worst_consistency_iou"] == pytest.approx(0.7)
    assert rotate["consistency_iou_spread"] == pytest.approx(0.2)  # 0.9 - 0.7; level 0 left out
    assert rotate["exact_at_90_multiples"] is False
    assert rotate["mean_iou_gt"] is None
    assert [e["image"] for e in summary["least_consistent_images"]] == ["a", "b"]


def test_seventy_two_angles_for_a_step_of_five_and_unknown_names_fail():
    assert len(rotation_angles(5.0)) == 72 and rotation_angles(5.0)[-1] == 355.0
    assert rotation_angles(7.0)[-1] == 357.0
    with pytest.raises(EquisegError, match="unknown perturbation 'blur'"):
        build_perturbations(["rotate", "blur"], angle_step=5.0)


def test_build_perturbations_takes_each_familys_setting_by_name_and_misses_none():
    with pytest.raises(TypeError):  # levels by position would fill settings by registry order
        build_perturbations(["rotate"], 5.0)
    with pytest.raises(TypeError, match="needs brightness= for the 'brightness' family"):
        build_perturbations(["rotate", "brightness"], angle_step=90.0)
    with pytest.raises(TypeError, match="'brightnes', no family's setting"):
        build_perturbations(["brightness"], brightness=[0.1], brightnes=[0.2])
    assert build_perturbations(["flip", "noise"], noise=[0.1]) == [
        Perturbation("flip_h", 1.0), Perturbation("flip_v", 1.0), Perturbation("noise", 0.1)]


def test_perturb_then_restore_brings_geometry_back_and_keeps_padding_black():
    image = pad_to_square(torch.rand(3, 24, 32), 32)
    inside = footprint(24, 32, 32)
    perturbations = [Perturbation("flip_h", 1.0), Perturbation("flip_v", 1.0),
                     Perturbation("rotate", 90.0), Perturbation("brightness", 0.4),
                     Perturbation("noise", 0.2)]
    batch = perturb(perturbations, image, inside, noise_field("x", image.shape))
    assert torch.equal(restore(perturbations[:3], batch[:3]), image.expand(3, -1, -1, -1))
    assert float(batch[3:][:, :, ~inside[0]].abs().max()) == 0.0  # padding untouched
    assert float((batch[3] - image).abs()[:, inside[0]].max()) > 0.3


def test_noise_is_the_same_for_the_same_image_name():
    assert torch.equal(noise_field("0010001", (3, 8, 8)), noise_field("0010001", (3, 8, 8)))
    assert not torch.equal(noise_field("0010001", (3, 8, 8)), noise_field("0010002", (3, 8, 8)))


def test_batch_size_does_not_change_the_numbers():
    model = Symmetrised(plain_conv_net())
    predict = make_predictor(model, *NO_NORMALISATION)
    one = run_sweep(predict, images(), QUARTERS_AND_45, batch_size=1).frame
    many = run_sweep(predict, images(), QUARTERS_AND_45, batch_size=16).frame
    for column in ("iou_consistency", "iou_gt", "mad"):
        assert one[column].to_numpy() == pytest.approx(many[column].to_numpy(), abs=1e-5)
    assert not math.isnan(float(one["psnr_db"].mean()))


@pytest.mark.parametrize("key, value", [("gif", "yes"), ("exact_atol", -1e-6), ("samples", -1),
                                        ("noise", ["a"]), ("channels_last", 1)])
def test_sweep_parameters_are_validated_by_name(key, value):
    from equiseg.config import ConfigError, parse_params

    with pytest.raises(ConfigError, match=f"sweep.{key}"):
        parse_params({"architectures": {"unet": {}, "gunet": {}}, "sweep": {key: value}})


def test_set_statistics_pool_db_beside_the_mean_and_rotation_table_serves_figures():
    frame = pd.DataFrame({
        "image": ["a", "b", "a", "b"], "perturbation": ["rotate"] * 4,
        "level": [0.0, 0.0, 45.0, 45.0], "iou_gt": [float("nan")] * 4,
        "iou_consistency": [1.0, 1.0, 0.8, 0.9], "mad": [0.0, 0.0, 0.1, 0.01],
        "psnr_db": [100.0, 100.0, 20.0, 40.0], "max_abs_diff": [0.0, 0.0, 0.3, 0.1],
        "mse": [0.0, 0.0, 1e-2, 1e-4], "valid_pixels": [16.0] * 4})
    stats = set_statistics(frame)
    moved = stats[stats["level"] == 45.0].iloc[0]
    assert moved["set_psnr_db_mean"] == pytest.approx(30.0)
    assert moved["set_psnr_db_pooled"] == pytest.approx(22.97, abs=0.01)
    assert stats.loc[stats["level"] == 0.0, "set_psnr_db_pooled"].tolist() == [100.0]
    curves = rotation_table(frame)
    assert curves["angle"].tolist() == [0.0, 45.0] and "set_psnr_db_pooled" in curves
    assert summarize(frame, atol=1e-4, rtol=1e-4)["perturbations"]["rotate"]["pooled_psnr_db"] == \
        pytest.approx(22.97, abs=0.01)


def test_degenerate_predictions_are_flagged_per_row_with_a_reason():
    class Constant(nn.Module):
        def __init__(self, logit):
            super().__init__()
            self.logit = logit

        def forward(self, x):
            return torch.full_like(x[:, :1], self.logit)

    for logit, reason in ((-8.0, "empty"), (8.0, "everywhere"), (0.04, "at threshold")):
        frame = sweep(Constant(logit))
        assert frame["degenerate"].all() and set(frame["degenerate_reason"]) == {reason}
        summary = summarize(frame, atol=1e-4, rtol=1e-4)
        assert summary["degenerate_images"] == 2 and summary["mostly_degenerate"] is True
    fine = sweep(RedIsForeground())
    assert not fine["degenerate"].any() and summarize(fine, 1e-4, 1e-4)["degenerate_images"] == 0


def test_judgeable_images_are_read_off_the_unperturbed_prediction():
    """Shares and constancy of the reference prediction decide; figures cover judgeable images."""
    class Shifted(nn.Module):  # red decides, foreground where red > cut
        def __init__(self, cut):
            super().__init__()
            self.cut = cut

        def forward(self, x):
            return 40.0 * (x[:, :1] - self.cut)

    class Flat(nn.Module):
        def forward(self, x):
            return torch.full_like(x[:, :1], 0.3)

    judge = Judgeability(min_share=0.05, max_share=0.90)
    for model, reason in ((Flat(), "constant"), (Shifted(0.98), "too little foreground"),
                          (Shifted(0.07), "too much foreground")):
        frame = sweep(model)
        assert not_judgeable_images(frame, judge, 1e-4, 1e-4) == {"img0": reason, "img1": reason}
        summary = summarize(frame, 1e-4, 1e-4, judge=judge)
        assert summary["verdict"] == "cannot judge" and summary["scored_images"] == 0
        assert summary["perturbations"]["rotate"]["exact_at_90_multiples"] is None
        assert summary["outputs_identical_under_group"] == {"p4": True, "p4m": True}
        allowed = summarize(frame, 1e-4, 1e-4, judge=Judgeability(allow_degenerate=True))
        assert allowed["scored_images"] == 2
        assert allowed["perturbations"]["rotate"]["exact_at_90_multiples"] is True
    frame = sweep(RedIsForeground())
    assert frame["reference_foreground_share"].between(0.4, 0.6).all()
    assert (frame["reference_raw_range"] > 30).all()
    summary = summarize(frame, 1e-4, 1e-4, judge=judge)
    assert summary["verdict"] == "judged" and summary["judgeable_images"] == 2
    assert summary["perturbations"]["rotate"]["exact_at_90_multiples"] is True
    # one of two images not judgeable is not "most": judged, on the other image alone
    half = pd.concat([frame[frame["image"] == "img0"],
                      sweep(Flat()).query("image == 'img1'")], ignore_index=True)
    summary = summarize(half, 1e-4, 1e-4, judge=judge)
    assert (summary["verdict"], summary["scored_images"]) == ("judged", 1)
    assert [e["image"] for e in summary["least_consistent_images"]] == ["img0"]
    assert verdict(3, 2) == "cannot judge" and verdict(4, 2) == "judged"
    with pytest.raises(EquisegError, match="0 <= min < max <= 1"):
        Judgeability(min_share=0.5, max_share=0.5).validate()
