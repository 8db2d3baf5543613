"""The sections of params.yaml that only the pipeline has (data, architectures, train,
evaluate), and the checks of the sections whose types the library owns (`full_augment`:
`equiseg.data.augment_settings.FullAugmentConfig`; `sweep`: `equiseg.analysis.sweep_settings`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from equiseg.analysis.sweep_settings import SweepConfig, check_levels, check_tolerance
from equiseg.config.checks import (
    check_choice,
    check_divisible_by_16,
    check_positive,
    check_seed,
    fail,
    params_keys,
)
from equiseg.data.augment_settings import BORDERS, FullAugmentConfig
from equiseg.data.synthetic import ORIENTATIONS
from equiseg.presets import GROUP_NAMES, GROUP_POOLS, PERMUTATION_GROUPS, SKELETONS

DATA_SOURCES = ("synthetic", "leeds")
DEVICES = ("auto", "cpu", "cuda", "mps")
SCHEDULES = ("constant", "onecycle")


@dataclass(frozen=True)
class SyntheticConfig:
    """The embedded butterfly-like dataset that runs offline."""

    n_images: int = 200
    image_size: int = 128
    species: int = 5
    orientation: str = "upright"
    seed: int = 0
    orientation_jitter_deg: float = 15.0  # std of the tilt of "upright" butterflies

    def validate(self, prefix: str = "data.synthetic") -> None:
        check_positive(f"{prefix}.n_images", self.n_images)
        check_divisible_by_16(f"{prefix}.image_size", self.image_size)
        check_positive(f"{prefix}.species", self.species)
        if self.species > 999:
            fail(f"{prefix}.species", f"is {self.species}", "at most 999 (ids hold 3 species digits)")
        if self.n_images > 9999 * self.species:
            fail(f"{prefix}.n_images", f"is {self.n_images}", "at most 9999 per species")
        check_choice(f"{prefix}.orientation", self.orientation, ORIENTATIONS)
        if (isinstance(self.orientation_jitter_deg, bool)
                or not isinstance(self.orientation_jitter_deg, (int, float))
                or self.orientation_jitter_deg < 0):
            fail(f"{prefix}.orientation_jitter_deg", f"is {self.orientation_jitter_deg!r}",
                  "a number of degrees >= 0")


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and the geometry every model sees."""

    source: str = "synthetic"
    urls: tuple[str, ...] = (
        "http://www.josiahwang.com/dataset/leedsbutterfly/leedsbutterfly_dataset_v1.0.zip",
        "https://zenodo.org/records/7558895/files/leedsbutterfly_dataset_v1.0.zip",
    )
    checksum: str = "md5:d395ad65a68cf6b31c7c9e1e2f735e3c"
    archive: str | None = None
    raw_dir: str = "data/raw"
    split_file: str = "data/split.csv"
    image_size: int = 64
    pad_size: int = 64
    val_fraction: float = 0.2
    split_seed: int = 0
    cache_images: bool = True
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    download_dir: str = ".cache/downloads"  # partial and verified downloads, outside DVC outputs
    download_retries: int = 3  # per URL, with exponential back-off
    download_timeout_s: float = 30.0
    max_archive_gb: float = 4.0  # refuse archives that would expand beyond this
    max_compression_ratio: float = 100.0  # refuse zip bombs

    def validate(self) -> None:
        check_choice("data.source", self.source, DATA_SOURCES)
        check_divisible_by_16("data.image_size", self.image_size)
        check_divisible_by_16("data.pad_size", self.pad_size)
        if self.pad_size < self.image_size:
            fail("data.pad_size", f"is {self.pad_size}, smaller than data.image_size={self.image_size}",
                  f"a multiple of 16 >= {self.image_size}")
        if not 0 < self.val_fraction < 1:
            fail("data.val_fraction", f"is {self.val_fraction!r}", "a number between 0 and 1")
        algo, _, digest = str(self.checksum).partition(":")
        if algo not in ("md5", "sha256") or not digest:
            fail("data.checksum", f"is {self.checksum!r}", "'md5:<hex>' or 'sha256:<hex>'")
        if self.source == "leeds" and not self.urls and not self.archive:
            fail("data.urls", "is empty and data.archive is not set",
                  "set data.archive to a local zip or folder, or give a download URL")
        if not isinstance(self.download_retries, int) or self.download_retries < 0:
            fail("data.download_retries", f"is {self.download_retries!r}", "a whole number >= 0")
        check_positive("data.download_timeout_s", self.download_timeout_s, float)
        check_positive("data.max_archive_gb", self.max_archive_gb, float)
        check_positive("data.max_compression_ratio", self.max_compression_ratio, float)
        self.synthetic.validate()


@dataclass(frozen=True)
class ArchitectureConfig:
    """A U-Net: the seed's skeleton (or the earlier four-level one) over a group (trivial: the
    plain net; p4; p4m; c8 and d8, steerable, on the seed's skeleton only). No defaults of its
    own: a model's section starts from `MODEL_PRESETS[name]`."""

    skeleton: str
    group: str
    filters: tuple[int, ...]
    norm_groups: int
    group_pool: str
    in_channels: int = 3
    out_channels: int = 1

    def validate(self, prefix: str) -> None:
        check_choice(f"{prefix}.skeleton", self.skeleton, SKELETONS)
        check_choice(f"{prefix}.group", self.group, GROUP_NAMES)
        check_choice(f"{prefix}.group_pool", self.group_pool, GROUP_POOLS)
        if self.skeleton == "four_level" and self.group not in PERMUTATION_GROUPS:
            fail(f"{prefix}.group", f"is {self.group!r} with skeleton four_level, which has no "
                  "steerable layers", ", ".join(PERMUTATION_GROUPS) + " (or skeleton seed)")
        if self.skeleton == "four_level" and len(self.filters) != 4:
            fail(f"{prefix}.filters", f"has {len(self.filters)} entries", "four, one per level")
        if self.skeleton == "seed" and not 2 <= len(self.filters) <= 6:
            fail(f"{prefix}.filters", f"has {len(self.filters)} entries",
                  "2 to 6: one level per consecutive pair")
        for i, width in enumerate(self.filters):
            check_positive(f"{prefix}.filters[{i}]", width)
            if width % self.norm_groups:
                fail(f"{prefix}.norm_groups",
                      f"is {self.norm_groups}, which does not divide filters[{i}]={width}",
                      "a divisor of every filter count")
        check_positive(f"{prefix}.in_channels", self.in_channels)
        check_positive(f"{prefix}.out_channels", self.out_channels)


@dataclass(frozen=True)
class TrainConfig:
    """The optimiser and loop; the seed's paper settings are the `paper` profile."""

    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3  # the learning rate; with schedule onecycle, its peak
    weight_decay: float = 1e-2
    schedule: str = "constant"  # the seed's; onecycle (warm up, then anneal) learns faster
    device: str = "auto"
    workers: int = 0
    bf16: bool = True  # bf16 autocast on CUDA GPUs
    bf16_cpu: bool = False  # ... and on CPUs with native bf16; faster, but CPU-dependent numbers
    channels_last: bool = True
    deterministic: bool = True
    checkpoint_dir: str = ".cache/checkpoints"

    def validate(self) -> None:
        check_positive("train.epochs", self.epochs)
        check_positive("train.batch_size", self.batch_size)
        check_positive("train.lr", self.lr, float)
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            fail("train.weight_decay", f"is {self.weight_decay!r}", "a number >= 0")
        check_choice("train.schedule", self.schedule, SCHEDULES)
        check_choice("train.device", self.device, DEVICES)
        if not isinstance(self.workers, int) or self.workers < 0:
            fail("train.workers", f"is {self.workers!r}", "a whole number >= 0")
        for key in ("lr", "weight_decay"):  # .nan and .inf pass the sign checks above
            if not math.isfinite(getattr(self, key)):
                fail(f"train.{key}", f"is {getattr(self, key)!r}", "a finite number")
        for key in ("bf16", "bf16_cpu", "channels_last", "deterministic"):
            if not isinstance(getattr(self, key), bool):
                fail(f"train.{key}", f"is {getattr(self, key)!r}", "true or false")
        if not isinstance(self.checkpoint_dir, str) or not self.checkpoint_dir.strip():
            fail("train.checkpoint_dir", f"is {self.checkpoint_dir!r}",
                  "a folder path outside DVC's outputs, e.g. .cache/checkpoints")


@dataclass(frozen=True)
class EvaluateConfig:
    """The evaluate stage. Both validation protocols are always reported, each as its expectation
    over the draw of turns (`uniform`: k*90 degrees, k uniform in 0..3; `seed`: the seed's
    albumentations 1.x `RandomRotate90()`, p=0.5, 62.5% upright) and as one draw, in which image i
    gets the turn drawn from (`rot90_seed`, i)."""

    rot90_seed: int = 0

    def validate(self) -> None:
        check_seed("evaluate.rot90_seed", self.rot90_seed)


def validate_full_augment(full: FullAugmentConfig) -> None:
    """`full_augment`: every strength a number >= 0, `p` a probability, a known border."""
    for key in ("jitter_brightness", "jitter_contrast", "jitter_saturation", "jitter_hue",
                "brightness_limit", "contrast_limit", "rotate_limit", "p"):
        value = getattr(full, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            fail(f"full_augment.{key}", f"is {value!r}", "a number >= 0")
    if full.jitter_hue > 0.5:
        fail("full_augment.jitter_hue", f"is {full.jitter_hue}", "a number in [0, 0.5]")
    if full.p > 1:
        fail("full_augment.p", f"is {full.p}", "a probability in [0, 1]")
    if full.rotate_limit > 180:
        fail("full_augment.rotate_limit", f"is {full.rotate_limit}", "degrees in [0, 180]")
    check_choice("full_augment.rotate_border", full.rotate_border, BORDERS)


def validate_sweep(sweep: SweepConfig) -> None:
    """`sweep`: positive steps and counts, switches, and the library's own rules on the exactness
    tolerance and the level lists, named by their keys."""
    check_positive("sweep.angle_step", sweep.angle_step, float)
    if sweep.angle_step > 360:
        fail("sweep.angle_step", f"is {sweep.angle_step}", "a number in (0, 360]")
    if not isinstance(sweep.image_index, int) or sweep.image_index < 0:
        fail("sweep.image_index", f"is {sweep.image_index!r}", "a whole number >= 0")
    check_positive("sweep.batch_size", sweep.batch_size)
    if not isinstance(sweep.max_images, int) or sweep.max_images < 0:
        fail("sweep.max_images", f"is {sweep.max_images!r}", "0 (all) or a positive count")
    if not isinstance(sweep.samples, int) or sweep.samples < 0:
        fail("sweep.samples", f"is {sweep.samples!r}", "a whole number >= 0")
    with params_keys(atol="sweep.exact_atol", rtol="sweep.exact_rtol"):
        check_tolerance(sweep.exact_atol, sweep.exact_rtol)
    for f in dataclasses.fields(sweep):  # every level list (one per perturbation family)
        if f.type == "tuple[float, ...]":
            with params_keys(**{f.name: f"sweep.{f.name}"}):
                check_levels(f.name, getattr(sweep, f.name))
    for key in ("flips", "gif", "channels_last"):
        if not isinstance(getattr(sweep, key), bool):
            fail(f"sweep.{key}", f"is {getattr(sweep, key)!r}", "true or false")
