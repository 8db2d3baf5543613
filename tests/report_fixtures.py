"""Small fake pipeline outputs in exactly the contract's formats, for report tests.

`write_fake_outputs` writes metrics/, plots/ for some models x augments x seeds with made-up but
plausible numbers: gunet runs are exact at 90-degree multiples, unet runs are not, and
`gunet-full` (when present) has the best validation IoU; gunet_c8 is, besides, nearly consistent
at the eighth turns (0.99 at 45 degrees, against gunet's 0.96 and unet's 0.90). Seed i of the
list shifts every IoU by SEED_SHIFTS[i] (0, +0.01, -0.01), so one seed gives the round numbers
below and three seeds give the same means with a sample sd of exactly 0.01. Returns the per-run
means it wrote.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from equiseg.analysis.replicates import replicate_stats
from equiseg.metrics import PSNR_CAP_DB

ARCHITECTURES = {
    "unet": {"group": "trivial", "filters": [8, 8, 16, 16], "norm_groups": 4},
    "gunet": {"group": "p4", "filters": [8, 8, 16, 16], "norm_groups": 4},
    "gunet_p4m": {"group": "p4m", "filters": [8, 8, 16, 16], "norm_groups": 4},
    "gunet_c8": {"group": "c8", "filters": [8, 8, 16, 16], "norm_groups": 4},
}


SEED_SHIFTS = (0.0, 0.01, -0.01, 0.02, -0.02)


def fake_params(models: tuple[str, ...], augments: tuple[str, ...], seeds=(0,), **extra) -> dict:
    return {"profile": "quick", "seeds": list(seeds), "models": list(models), "augments": list(augments),
            "architectures": ARCHITECTURES, "train": {"epochs": 3},
            "sweep": {"angle_step": 30.0}, **extra}


def write_params(root: Path, models: tuple[str, ...], augments: tuple[str, ...], seeds=(0,),
                 **extra) -> Path:
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(fake_params(models, augments, seeds, **extra)))
    return path


def _val_iou(model: str, augment: str) -> float:
    base = {"unet": 0.80, "gunet": 0.84, "gunet_p4m": 0.83, "gunet_c8": 0.82}[model]
    return round(base + (0.03 if augment == "full" else 0.0), 4)


def _rotation_curve(model: str, val_iou: float, angle_step: float) -> pd.DataFrame:
    angles = np.arange(0, 360, angle_step)
    equivariant = model.startswith("gunet")
    off_grid = np.abs(np.sin(np.radians(2 * angles)))  # 0 at multiples of 90, 1 at 45
    on_grid = (angles % 90 == 0) & (angles > 0)
    consistency = (1.0 - (0.04 if equivariant else 0.10) * off_grid
                   - (0 if equivariant else 0.07) * on_grid)
    if model == "gunet_c8":  # C8 holds the eighth turns too: 0.99 at 45 degrees, 0.96 between
        consistency = 1.0 - 0.01 * off_grid - 0.03 * np.abs(np.sin(np.radians(4 * angles)))
    iou = (val_iou - (0.03 if equivariant else 0.15) * off_grid
           - (0 if equivariant else 0.05) * on_grid)
    exact = consistency == 1.0
    return pd.DataFrame({
        "angle": angles, "iou_gt": iou + 0.01, "iou_consistency": consistency,
        "mad": 1 - consistency, "psnr_db": np.where(exact, PSNR_CAP_DB, 20 + 10 * consistency),
        "set_iou_gt_mean": iou, "set_iou_gt_std": 0.05 + 0 * iou, "set_iou_gt_min": iou - 0.2,
        "set_iou_consistency_mean": consistency, "set_iou_consistency_std": 0.02 + 0 * iou,
        "set_iou_consistency_min": consistency - 0.1, "set_mad_mean": 1 - consistency,
        "set_psnr_db_mean": np.where(exact, PSNR_CAP_DB, 20 + 10 * consistency),
        "set_psnr_db_pooled": np.where(exact, PSNR_CAP_DB, 18 + 10 * consistency),
    })


def _perturb_table(val_iou: float, model: str = "unet") -> pd.DataFrame:
    rows = [("flip_h", 1.0, val_iou - 0.01, 0.97), ("flip_v", 1.0, val_iou - 0.02, 0.95)]
    rows += [("brightness", lvl, val_iou - abs(lvl) / 4, 1 - abs(lvl) / 5)
             for lvl in (-0.2, 0, 0.2)]
    rows += [("contrast", lvl, val_iou - abs(lvl - 1) / 4, 1 - abs(lvl - 1) / 5)
             for lvl in (0.7, 1.0, 1.3)]
    rows += [("noise", lvl, val_iou - lvl, 1 - lvl) for lvl in (0.0, 0.1)]
    # shifts: the strided plain U-Net loses more at odd shifts; zooms cost both alike
    odd = 0.02 if model.startswith("gunet") else 0.06
    rows += [("shift", lvl, val_iou - odd * (lvl % 2), 1 - odd * (lvl % 2) - lvl / 100)
             for lvl in (0.0, 0.5, 1.0, 2.0, 3.0)]
    rows += [("scale", lvl, val_iou - abs(lvl - 1) / 2, 1 - abs(lvl - 1) / 3)
             for lvl in (0.8, 1.0, 1.25)]
    frame = pd.DataFrame(rows, columns=["perturbation", "level", "set_iou_gt_mean",
                                        "set_iou_consistency_mean"])
    frame.insert(3, "set_iou_gt_std", 0.04)
    frame.insert(4, "set_iou_gt_min", frame["set_iou_gt_mean"] - 0.2)
    frame["set_iou_consistency_std"] = 0.02
    frame["set_iou_consistency_min"] = frame["set_iou_consistency_mean"] - 0.1
    frame["set_mad_mean"] = 1 - frame["set_iou_consistency_mean"]
    frame["set_psnr_db_mean"] = 30.0
    frame["set_psnr_db_pooled"] = 28.0
    return frame


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def _write_images(root: Path, label: str, shade: int) -> None:
    frames = [Image.new("RGB", (32, 32), (shade, 40 * k, 90)) for k in range(3)]
    gif = root / "plots" / "rotation" / f"{label}.gif"
    gif.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    samples = root / "plots" / "samples" / f"{label}.png"
    samples.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 32), (shade, 200, 30)).save(samples)


def write_fake_outputs(root: Path, models: tuple[str, ...] = ("unet", "gunet"),
                       augments: tuple[str, ...] = ("minimal", "full"), epochs: int = 3,
                       angle_step: float = 30.0, images: bool = True, seeds=(0,)) -> dict:
    """Write every stage output the report reads; returns per run the means over seeds of the
    seed's final-epoch figures (train_*, val_*) and of the eval-mode ones (eval_train_*)."""
    means = {}
    for i, (model, augment) in enumerate((m, a) for m in models for a in augments):
        label = f"{model}-{augment}"
        evaluated, rotations, perturbs, summaries = [], [], [], []
        for seed, shift in zip(seeds, SEED_SHIFTS):
            val_iou = _val_iou(model, augment) + shift
            epoch = np.arange(1, epochs + 1)
            curve = pd.DataFrame({
                "epoch": epoch, "train_loss": 0.6 / epoch + 0.01 * i - shift,
                "train_iou": val_iou + 0.05 - 0.2 / epoch,
                "train_iou_per_image": val_iou + 0.04 - 0.2 / epoch,
                "val_loss": 0.7 / epoch + 0.02 * i - shift,
                "val_iou": val_iou - 0.2 / epoch + 0.2 / epochs,
                "val_iou_seed": val_iou - 0.2 / epoch + 0.2 / epochs + 0.01,
                "val_iou_per_image": val_iou - 0.01,
            })
            _write_csv(root / "plots" / "train" / f"{label}-seed{seed}.csv", curve)
            last = {k: float(v) for k, v in curve.iloc[-1].items() if k != "epoch"}
            _write_json(root / "metrics" / "train" / f"{label}-seed{seed}.json",
                        {**last, "seconds": 1.0})
            equivariant = model.startswith("gunet")
            turns = {f"rot{a}_val_iou": val_iou - (0 if equivariant or a == 0 else 0.05)
                     for a in (0, 90, 180, 270)}
            evaluated.append({"seed": seed,
                              "train_loss": last["train_loss"] - 0.01,
                              "train_iou": last["train_iou"] + 0.02,
                              "val_loss": last["val_loss"], "val_iou": last["val_iou"],
                              "val_iou_seed": last["val_iou_seed"],
                              "val_iou_seed_draw": last["val_iou_seed"] - 0.004,
                              "val_iou_uniform_draw": last["val_iou"] + 0.003,
                              **{k.replace("iou", "loss"): last["val_loss"] for k in turns},
                              **turns,
                              "val_iou_turn_spread": max(turns.values()) - min(turns.values())})
            rotation = _rotation_curve(model, val_iou, angle_step)
            rotations.append(rotation)
            perturbs.append(_perturb_table(val_iou, model))
            worst = rotation["set_iou_gt_mean"].idxmin()
            summaries.append({
                "seed": seed, "worst_angle": float(rotation.loc[worst, "angle"]),
                "worst_angle_iou": float(rotation.loc[worst, "set_iou_gt_mean"]),
                "iou_spread": float(np.ptp(rotation["set_iou_gt_mean"])),
                "consistency_iou_at_90_multiples": 1.0 if equivariant else 0.93 + shift,
                "consistency_iou_off_grid": (0.97 if equivariant
                                             else 0.91 + 0.01 * (augment == "full")) + shift,
                "psnr_db_off_grid": 29.5 if equivariant else 28.0,
                "psnr_db_pooled_off_grid": 27.5 if equivariant else 26.0,
                "exact_at_90_multiples": equivariant,
                "flip_h_consistency_iou": 0.97, "flip_v_consistency_iou": 0.95,
                "degenerate_images": 0})
        per_seed = pd.DataFrame(evaluated)
        _write_csv(root / "plots" / "evaluate" / f"{label}.csv", per_seed)
        _write_csv(root / "plots" / "rotation" / f"{label}.csv",
                   replicate_stats(pd.concat(rotations), by=["angle"]))
        _write_csv(root / "plots" / "perturb" / f"{label}.csv",
                   replicate_stats(pd.concat(perturbs), by=["perturbation", "level"]))
        _write_csv(root / "plots" / "equivariance" / f"{label}.csv", pd.DataFrame(summaries))
        curves = pd.concat(pd.read_csv(root / "plots" / "train" / f"{label}-seed{s}.csv")
                           .tail(1) for s in seeds)
        means[label] = {"train_iou": curves["train_iou"].mean(),
                        "train_loss": curves["train_loss"].mean(),
                        "val_iou": curves["val_iou"].mean(), "val_loss": curves["val_loss"].mean(),
                        "eval_train_iou": per_seed["train_iou"].mean(),
                        "eval_train_loss": per_seed["train_loss"].mean()}
        if images:
            _write_images(root, label, shade=40 + 50 * i)
    _write_json(root / "metrics" / "data.json",
                {"source": "synthetic", "n_pairs": 40, "n_train": 32, "n_val": 8})
    return means


CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))),
                None)


def chromium_dom(page: Path, profile_dir: Path, wait_ms: int = 0) -> str:
    """The DOM of `page` after load (and `wait_ms` of virtual time), with all network blocked."""
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile_dir}", "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9", "--dump-dom"]
    if wait_ms:
        args.append(f"--virtual-time-budget={wait_ms}")
    done = subprocess.run([*args, page.resolve().as_uri()], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
