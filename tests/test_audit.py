"""`equiseg audit` end to end: any model, any folder, every output, and one-line errors."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from equiseg.analysis.inputs import spread_indices
from equiseg.audit.folders import pair_files
from equiseg.cli import main
from equiseg.image_files import read_labels

LEEDS_ZIP = Path(__file__).resolve().parents[2] / "shared" / "leeds" / "leedsbutterfly-256.zip"

MODELS_SOURCE = '''
import torch
from torch import nn
from equiseg.nn.models import build_model


def tiny_gunet():
    torch.manual_seed(3)  # predicts both classes on the test images (seed 0: 92-93% foreground)
    return build_model("gunet", filters=(2, 2, 4, 4), norm_groups=2)


def plain_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1))


def three_classes():
    torch.manual_seed(0)
    return nn.Conv2d(3, 3, 1)


def shrinking():
    return nn.Conv2d(3, 1, 3)


def not_a_module():
    return "a model"
'''
FAST = ["--perturb", "rotate,flip", "--angle-step", "90", "--device", "cpu"]


@pytest.fixture
def models_file(tmp_path):
    path = tmp_path / "my_models.py"
    path.write_text(MODELS_SOURCE)
    return path


def save_rgb(path: Path, height: int, width: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)


def save_labels(path: Path, labels: np.ndarray, leeds_palette: bool = False) -> None:
    image = Image.fromarray(labels.astype(np.uint8))
    if leeds_palette:
        image.putpalette([0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 255, 0] + [0] * 756)
    image.save(path)


@pytest.fixture
def folder(tmp_path):
    """Three images of mixed sizes and formats; a 0/255 mask and a Leeds-style palette mask."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    save_rgb(images / "a.png", 32, 32, 0)
    save_rgb(images / "b.png", 24, 40, 1)
    save_rgb(images / "c.jpg", 20, 20, 2)
    yy, xx = np.mgrid[:32, :32]
    save_labels(masks / "a.png", 255 * ((yy - 16) ** 2 + (xx - 14) ** 2 < 80))
    leeds = np.zeros((24, 40), np.uint8)
    leeds[5:15, 8:30] = 1
    leeds[15:20, 8:30] = 2  # index 2 is background in Leeds masks
    save_labels(masks / "b_seg0.png", leeds, leeds_palette=True)
    return images, masks


def audit(out: Path, *args: str) -> dict:
    assert main(["audit", "--out", str(out), *args]) == 0
    return json.loads((out / "summary.json").read_text())


def test_group_unet_from_a_file_factory_is_exact_and_a_plain_net_is_not(tmp_path, models_file,
                                                                         folder):
    images, masks = folder
    out = tmp_path / "gunet"
    summary = audit(out, "--model", f"{models_file}:tiny_gunet", "--images", str(images),
                    "--masks", str(masks), *FAST)
    assert summary["images"] == 3
    assert summary["perturbations"]["rotate"]["exact_at_90_multiples"] is True
    assert summary["perturbations"]["rotate"]["max_abs_diff_at_90_multiples"] < 1e-4
    assert summary["perturbations"]["flip_v"]["exact"] is False  # P4 has no mirrors
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 3 * (4 + 2)  # images x (4 angles + 2 flips)
    assert set(results["image"]) == {"a", "b", "c"}
    quarter = results[(results["perturbation"] == "rotate") & (results["level"] > 0)]
    assert (quarter["iou_consistency"] == 1.0).all()
    # masks matched by stem (b_seg0.png -> b); c has none
    with_masks = results.groupby("image")["iou_gt"].apply(lambda s: s.notna().all())
    assert with_masks.to_dict() == {"a": True, "b": True, "c": False}
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "Least consistent images" in html
    assert (out / "figures" / "rotation_consistency.png").is_file()

    plain = audit(tmp_path / "plain", "--model", f"{models_file}:plain_net", "--images",
                  str(images), *FAST)
    assert plain["perturbations"]["rotate"]["exact_at_90_multiples"] is False
    assert plain["perturbations"]["rotate"]["worst_consistency_iou"] < 1.0


def test_a_random_group_unet_predicting_both_classes_keeps_its_verdict(tmp_path, capsys):
    """The seed's Group U-Net, random weights (seed 0): on white images with a black disc it
    predicts 21-33% foreground (judgeable); on noise ~4% (not), which leaves the verdict alone."""
    images = tmp_path / "images"
    images.mkdir()
    yy, xx = np.mgrid[:32, :32]
    for radius in (4, 6, 8):
        picture = np.full((32, 32, 3), 255, np.uint8)
        picture[(yy - 16) ** 2 + (xx - 16) ** 2 < radius ** 2] = 0
        Image.fromarray(picture).save(images / f"disc{radius}.png")
    save_rgb(images / "noise.png", 32, 32, 0)
    out = tmp_path / "out"
    code = main(["audit", "--out", str(out), "--model", "equiseg.nn.models:build_model",
                 "--model-kwargs", '{"name": "gunet"}', "--images", str(images), *FAST,
                 "--require-exact", "p4", "--fail-under", "consistency=0.99"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "judged"
    assert summary["judgeable_images"] == summary["scored_images"] == 3
    assert summary["not_judgeable_reasons"] == {"too little foreground": 1}
    assert summary["perturbations"]["rotate"]["exact_at_90_multiples"] is True
    assert summary["outputs_identical_under_group"] == {"p4": True, "p4m": False}
    results = pd.read_csv(out / "results.csv")
    shares = results.drop_duplicates("image").set_index("image")["reference_foreground_share"]
    assert shares.drop("noise").between(0.05, 0.9).all() and shares["noise"] < 0.05
    assert "exactly consistent" in (out / "report.md").read_text()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script/save in 2.13
def test_a_torchscript_file_runs_end_to_end_also_as_python_dash_m(tmp_path, folder):
    images, _ = folder
    torch.manual_seed(0)
    scripted = torch.jit.script(nn.Sequential(nn.Conv2d(3, 1, 3, padding=1)))
    model_path = tmp_path / "scripted.pt"
    torch.jit.save(scripted, str(model_path))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "equiseg", "audit", "--model", str(model_path), "--images",
         str(images), "--out", str(out), "--perturb", "rotate,brightness", "--angle-step", "120",
         "--brightness", "-0.2", "0.2"],
        check=False, capture_output=True, text=True, timeout=120, env={"OMP_NUM_THREADS": "1",
                                                          "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["perturbations"]) == {"rotate", "brightness"}
    assert summary["perturbations"]["rotate"]["levels"] == [0.0, 120.0, 240.0]
    assert summary["images_per_second"] > 0


def test_importable_factory_with_a_weights_file(tmp_path, models_file, folder, monkeypatch):
    images, _ = folder
    monkeypatch.syspath_prepend(str(models_file.parent))
    import my_models

    model = my_models.plain_net()
    with torch.no_grad():
        model[2].bias.fill_(3.0)  # sure foreground: the weights must really be loaded
    weights = tmp_path / "weights.pth"
    torch.save({"state_dict": model.state_dict()}, weights)
    audit(tmp_path / "out", "--model", "my_models:plain_net", "--weights", str(weights),
          "--images", str(images), *FAST)
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(results) == 18


def test_multi_class_output_is_scored_per_class(tmp_path, models_file, folder):
    images, _ = folder
    masks = tmp_path / "class_masks"
    masks.mkdir()
    save_labels(masks / "a.png", np.random.default_rng(0).integers(0, 3, (32, 32)))
    summary = audit(tmp_path / "out", "--model", f"{models_file}:three_classes", "--classes", "3",
                    "--images", str(images), "--masks", str(masks), *FAST)
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert {f"iou_consistency_class{k}" for k in range(3)} <= set(results.columns)
    assert results.loc[results["image"] == "a", "iou_gt_class2"].notna().all()
    # a 1x1 convolution is pixel-wise: exact under every rotation by 90 degrees and every flip
    assert summary["perturbations"]["rotate"]["exact_at_90_multiples"] is True
    assert summary["perturbations"]["flip_h"]["exact"] is True


@pytest.mark.skipif(not LEEDS_ZIP.is_file(), reason="../shared/leeds/leedsbutterfly-256.zip "
                    "(the real Leeds data) is not beside this checkout")
def test_real_leeds_pairs_of_mixed_sizes(tmp_path, models_file):
    images, masks = tmp_path / "images", tmp_path / "segmentations"
    with zipfile.ZipFile(LEEDS_ZIP) as archive:
        for image_id in ("0010001", "0010002", "0020003"):
            for folder, name in ((images, f"images/{image_id}.png"),
                                 (masks, f"segmentations/{image_id}_seg0.png")):
                folder.mkdir(exist_ok=True)
                (folder / Path(name).name).write_bytes(archive.read(f"leedsbutterfly/{name}"))
    summary = audit(tmp_path / "out", "--model", f"{models_file}:tiny_gunet", "--images",
                    str(images), "--masks", str(masks), "--size", "64", *FAST)
    assert summary["images"] == 3
    assert summary["perturbations"]["rotate"]["exact_at_90_multiples"] is True
    assert summary["perturbations"]["rotate"]["mean_iou_gt"] is not None


def write_bad_weights(tmp_path: Path) -> Path:
    path = tmp_path / "bad.pth"
    torch.save(nn.Conv2d(3, 1, 1).state_dict(), path)
    return path


ERRORS = {
    "module that does not import": (["--model", "no_such_module_xyz:build"], "does not import"),
    "missing factory": (["--model", "{models}:nothing_here"], "has no attribute 'nothing_here'"),
    "factory returning no module": (["--model", "{models}:not_a_module"], "not a torch.nn.Module"),
    "weights that do not fit": (["--model", "{models}:plain_net", "--weights", "{bad_weights}"],
                                "weights do not fit"),
    "output of another size": (["--model", "{models}:shrinking"], "must keep the spatial size"),
    "unknown perturbation": (["--model", "{models}:plain_net", "--perturb", "rotate,blur"],
                             "unknown perturbation 'blur'"),
    "folder without a readable image": (["--model", "{models}:plain_net", "--images", "{junk}"],
                                        "no readable PNG or JPEG"),
    "mask without its image": (["--model", "{models}:plain_net", "--masks", "{orphans}"],
                               "mask without an image"),
    "mask of another size": (["--model", "{models}:plain_net", "--masks", "{wrong_size}"],
                             "masks must match their image's size"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_user_errors_are_one_line_with_exit_code_2_and_nothing_in_out(case, tmp_path, models_file,
                                                                      folder, capsys):
    images, _ = folder
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "not_really.png").write_text("hello")
    orphans = tmp_path / "orphans"
    orphans.mkdir()
    save_labels(orphans / "zebra.png", np.zeros((32, 32)))
    wrong_size = tmp_path / "wrong_size"
    wrong_size.mkdir()
    save_labels(wrong_size / "a.png", np.zeros((16, 16)))
    places = {"models": models_file, "bad_weights": write_bad_weights(tmp_path), "junk": junk,
              "orphans": orphans, "wrong_size": wrong_size}
    extra, message = ERRORS[case]
    extra = [arg.format(**places) for arg in extra]
    if "--images" not in extra:
        extra += ["--images", str(images)]
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "--out", str(out), *FAST[2:], *extra])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("error: ") and message in error[-1]
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_mask_conventions(tmp_path):
    leeds = np.array([[0, 1, 2, 3]], np.uint8)
    save_labels(tmp_path / "leeds.png", leeds, leeds_palette=True)
    assert read_labels(tmp_path / "leeds.png", 1).tolist() == [[False, True, False, True]]
    save_labels(tmp_path / "grey.png", np.array([[0, 255, 100, 200]]))
    assert read_labels(tmp_path / "grey.png", 1).tolist() == [[False, True, False, True]]
    save_labels(tmp_path / "ones.png", np.array([[0, 1, 1, 0]]))
    assert read_labels(tmp_path / "ones.png", 1).tolist() == [[False, True, True, False]]
    assert read_labels(tmp_path / "leeds.png", 4).tolist() == [[0, 1, 2, 3]]


def test_masks_can_share_the_image_folder_leeds_style(tmp_path):
    save_rgb(tmp_path / "0010001.png", 8, 8, 0)
    save_labels(tmp_path / "0010001_seg0.png", np.ones((8, 8)))
    entries = pair_files(tmp_path, tmp_path)
    assert [(e.name, e.mask.name) for e in entries] == [("0010001", "0010001_seg0.png")]


def test_spread_indices_cover_the_set_and_keep_the_chosen_image():
    assert spread_indices(40, 0, 3) == list(range(40))
    chosen = spread_indices(40, 5, 3)
    assert chosen[0] == 0 and chosen[-1] == 39 and 3 in chosen and len(chosen) == 6
