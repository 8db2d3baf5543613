"""The dataset over the split manifest: outputs, cache, seeded rotations and their protocols,
workers, determinism."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from equiseg.data import split_manifest
from equiseg.data.datasets import SegmentationDataset, load_split, rot90_turns, turn_probabilities
from equiseg.data.prepare import write_synthetic
from equiseg.data.transforms import build_transform
from equiseg.errors import EquisegError, InvalidValue
from equiseg.io import write_csv
from tests.data_fixtures import palette_mask_png


@pytest.fixture(scope="module")
def split_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    raw = root / "raw"
    raw.mkdir()
    write_synthetic(raw, n_images=16, image_size=48, species=2)
    path = root / "split.csv"
    write_csv(path, split_manifest(raw, 0.25, 0))
    return path


def dataset(split_file, name="minimal", split="train", **kwargs):
    transform = build_transform(name, 32, 32)
    return SegmentationDataset(load_split(split_file, split), transform, **kwargs)


def test_items_are_normalised_images_and_binary_masks(split_file):
    data = dataset(split_file)
    assert len(data) == 12
    image, mask = data[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert mask.shape == (1, 32, 32) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert image.min() < -1 and image.max() > 1  # normalised, not 0..1


def test_the_cache_changes_nothing_but_speed(split_file):
    cached, uncached = dataset(split_file, cache=True), dataset(split_file, cache=False)
    for i in range(len(cached)):
        for a, b in zip(cached[i], uncached[i]):
            assert torch.equal(a, b)


def test_index_2_in_a_mask_is_background(tmp_path, split_file):
    rows = load_split(split_file, "val").iloc[:1].copy()
    indices = np.full((48, 48), 2, np.uint8)
    indices[10:20, 10:20] = 3
    mask_file = tmp_path / "m.png"
    mask_file.write_bytes(palette_mask_png(indices))
    rows["mask"] = str(mask_file)
    data = SegmentationDataset(rows, build_transform("minimal", 48, 48))
    _, mask = data[0]
    assert mask.sum() == 100  # the index-3 square only


def test_seeded_validation_rotations_are_reproducible(split_file):
    plain = dataset(split_file, split="val")
    turned = dataset(split_file, split="val", rot90_seed=0)
    again = dataset(split_file, split="val", rot90_seed=0)
    turns = [turned.turns(i) for i in range(len(turned))]
    assert turns == [rot90_turns(0, i) for i in range(len(turned))]
    for i in range(len(turned)):
        expected = torch.rot90(plain[i][1], turns[i], (1, 2))
        assert torch.equal(turned[i][1], expected) and torch.equal(again[i][0], turned[i][0])
    assert len({rot90_turns(0, i) for i in range(64)}) == 4  # all four multiples occur


def test_fixed_rotation_turns_every_item(split_file):
    plain = dataset(split_file, split="val")
    turned = dataset(split_file, split="val", fixed_rot90=1)
    for i in range(len(plain)):
        assert torch.equal(turned[i][0], torch.rot90(plain[i][0], 1, (1, 2)))


def test_same_torch_seed_same_batches(split_file):
    data = dataset(split_file, "full")

    def batches(seed):
        torch.manual_seed(seed)
        loader = DataLoader(data, batch_size=4, shuffle=True)
        return [b for b in loader]

    first, second, other = batches(0), batches(0), batches(1)
    for (xa, ya), (xb, yb) in zip(first, second):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other))


def test_picklable_and_deterministic_with_worker_processes(split_file):
    rows = load_split(split_file, "train").iloc[[0] * 6].reset_index(drop=True)  # 1 image 6 times
    data = SegmentationDataset(rows, build_transform("full", 32, 32))
    clone = pickle.loads(pickle.dumps(data))
    torch.manual_seed(3)
    from_clone = clone[0][0]
    torch.manual_seed(3)
    assert torch.equal(from_clone, data[0][0])

    def epoch(seed):
        loader = DataLoader(data, batch_size=1, num_workers=2,
                            generator=torch.Generator().manual_seed(seed))
        return [x for x, _ in loader]

    first = epoch(5)
    assert all(torch.equal(a, b) for a, b in zip(first, epoch(5)))
    # workers 0 and 1 take items 0, 2, 4 and 1, 3, 5: had they copied one augmentation stream
    # (albumentations' own generator, forked as is), each pair would be identical
    assert not all(torch.equal(first[k], first[k + 1]) for k in (0, 2, 4))


def test_load_split_errors_name_the_file(tmp_path, split_file):
    with pytest.raises(EquisegError, match="split stage"):
        load_split(tmp_path / "missing.csv", "train")
    with pytest.raises(EquisegError, match="'test'"):
        load_split(split_file, "test")
    pd.DataFrame({"id": ["0010001"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(EquisegError, match="lacks column"):
        load_split(tmp_path / "bad.csv", "train")


def test_the_seed_protocol_leaves_five_eighths_upright():
    """albumentations 1.x RandomRotate90() (p=0.5): no turn half the time, else k uniform in 0..3,
    so 1/2 + 1/2 * 1/4 = 62.5% upright; `uniform` leaves 25% upright."""
    seed = [rot90_turns(0, i, "seed") for i in range(1000)]
    assert seed.count(0) == 616  # fixed by (rot90_seed, index): the same in every run
    assert seed == [rot90_turns(0, i, "seed") for i in range(1000)]
    for rot90_seed in range(5):
        seed = [rot90_turns(rot90_seed, i, "seed") for i in range(1000)]
        uniform = [rot90_turns(rot90_seed, i, "uniform") for i in range(1000)]
        assert abs(seed.count(0) / 1000 - 0.625) < 0.04
        assert all(abs(seed.count(k) / 1000 - 0.125) < 0.03 for k in (1, 2, 3))
        assert all(abs(uniform.count(k) / 1000 - 0.25) < 0.04 for k in range(4))
    assert [rot90_turns(0, i) for i in range(64)] == [rot90_turns(0, i, "uniform")
                                                       for i in range(64)]  # the default


def test_a_drawn_set_follows_its_protocol(split_file):
    rows = load_split(split_file, "val")
    for protocol in ("uniform", "seed"):
        data = SegmentationDataset(rows, build_transform("minimal", 32, 32), cache=False,
                                   rot90_seed=3, rot90_protocol=protocol)
        assert [data.turns(i) for i in range(len(data))] == [rot90_turns(3, i, protocol)
                                                              for i in range(len(data))]
    with pytest.raises(InvalidValue, match="rot90 protocol"):
        rot90_turns(0, 0, "half")


def test_turn_probabilities_are_the_protocols_own():
    assert turn_probabilities("uniform") == (0.25,) * 4
    assert turn_probabilities("seed") == (0.625, 0.125, 0.125, 0.125)  # 1/2 + 1/2 * 1/4 upright
    draws = [rot90_turns(1, i, "seed") for i in range(4000)]
    assert all(abs(draws.count(k) / 4000 - p) < 0.025
               for k, p in enumerate(turn_probabilities("seed")))
