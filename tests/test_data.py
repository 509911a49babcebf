"""Data sets read from tiny files in their real on-disk layouts, through the same code that reads the real ones."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
import torch

from cnnlab.checks.errors import ConfigError, DataError
from cnnlab.data import make_datamodule
from cnnlab.data.augment import random_crop, random_flip
from cnnlab.data.batching import BatchIndices
from cnnlab.data.splits import Split
from tests import data_files


def module(family: str, data_dir, **options):
    cfg = {"family": family, "val_size": 4, "batch_size": 8, **options}
    if family in ("mnist", "cifar10", "cifar100"):
        cfg.setdefault("download", False)
    dm = make_datamodule(cfg, data_dir)
    dm.setup()
    return dm


def sizes(dm) -> dict[str, int]:
    return {k: len(v) for k, v in dm.splits.items()}


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_idx_files_exactly(tmp_path, gz):
    arrays = data_files.write_mnist(tmp_path, gz=gz)
    dm = module("mnist", tmp_path)
    assert sizes(dm) == {"train": 56, "val": 4, "test": 20}
    # the test split, held in a fixed shuffled order (a shortened evaluation sees every class): the same images
    labels = torch.tensor([i % 10 for i in range(20)])
    expected = data_files.split_counts(Split(torch.from_numpy(arrays["t10k"]).unsqueeze(1), labels))
    assert data_files.split_counts(dm.splits["test"]) == expected
    assert dm.splits["test"].y.tolist() != labels.tolist()  # not in the file's order
    assert dm.splits["train"].x.dtype == torch.uint8


def test_cifar10_and_100_read_pickles_with_byte_keys(tmp_path):
    data_files.write_cifar10(tmp_path)
    dm = module("cifar10", tmp_path)
    assert sizes(dm) == {"train": 56, "val": 4, "test": 20}
    assert dm.splits["test"].x.shape[1:] == (3, 32, 32) and dm.class_names[0] == "airplane"
    data_files.write_cifar100(tmp_path)
    dm = module("cifar100", tmp_path)
    assert sizes(dm)["test"] == 200 and dm.num_classes == 100 and dm.class_names[-1] == "worm"
    assert sorted(set(dm.splits["test"].y.tolist())) == list(range(100))


def test_cifar_pixels_keep_channel_planes(tmp_path):
    folder = data_files.write_cifar10(tmp_path, per_batch=2, n_test=3)
    with open(folder / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"]
    dm = module("cifar10", tmp_path, val_size=1)
    # CIFAR stores 1024 red, then 1024 green, then 1024 blue values per image, rows first
    blue = {bytes(image[2].flatten().numpy()) for image in dm.splits["test"].x}
    assert bytes(raw[1, 2048:]) in blue and len(blue) == 3


@pytest.mark.parametrize(
    "variant, expected",
    [
        ("fer2013", {"train": 28, "val": 14, "test": 14}),
        ("icml", {"train": 28, "val": 14, "test": 14}),
        ("pair", {"train": 28, "val": 14, "test": 14}),
        ("pair_unlabelled", {"train": 18, "val": 4, "test": 6}),
    ],
)
def test_fer2013_variants(tmp_path, variant, expected):
    data_files.write_fer(tmp_path, variant)
    dm = module("fer2013", tmp_path, test_size=6)
    assert sizes(dm) == expected
    assert dm.class_names == ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]


def test_fer2013_pixels_and_labels_exact(tmp_path):
    rows = data_files.fer_rows()
    data_files.write_fer(tmp_path, "fer2013", rows)
    dm = module("fer2013", tmp_path)
    private = [r for r in rows if r[2] == "PrivateTest"]
    images = torch.from_numpy(np.stack([np.array(r[1].split(), dtype=np.uint8).reshape(1, 48, 48) for r in private]))
    expected = data_files.split_counts(Split(images, torch.tensor([r[0] for r in private])))
    assert data_files.split_counts(dm.splits["test"]) == expected  # every pixel and label, in a shuffled order


def test_fer2013_binary_is_a_relabelled_class_subset(tmp_path):
    data_files.write_fer(tmp_path, "fer2013")
    dm = module("fer2013", tmp_path, classes=[0, 3])
    assert dm.class_names == ["Angry", "Happy"] and dm.num_classes == 2
    assert sizes(dm) == {"train": 8, "val": 4, "test": 4}  # labels cycle 0..6: two of each per 14 rows
    assert set(dm.splits["train"].y.tolist()) == {0, 1}


def test_seed_protocol_pools_and_takes_one_percent(tmp_path):
    data_files.write_fer(
        tmp_path, "fer2013", data_files.fer_rows({"Training": 150, "PublicTest": 30, "PrivateTest": 30})
    )
    dm = module("fer2013", tmp_path, protocol="seed", val_size=20)
    assert sizes(dm) == {"train": 187, "val": 20, "test": 3}  # ceil(1% of 210) = 3
    again = module("fer2013", tmp_path, protocol="seed", val_size=20)
    assert torch.equal(dm.splits["test"].x, again.splits["test"].x)  # random_state fixed


# --- bad data -----------------------------------------------------------------------------------------------
def test_missing_files_name_the_exact_paths(tmp_path):
    with pytest.raises(DataError) as info:
        module("mnist", tmp_path)
    assert str(tmp_path / "MNIST/raw/train-images-idx3-ubyte") in str(info.value)
    with pytest.raises(DataError) as info:
        module("cifar100", tmp_path)
    assert str(tmp_path / "cifar-100-python/train") in str(info.value)
    with pytest.raises(DataError) as info:
        module("fer2013", tmp_path)
    assert str(tmp_path / "fer2013/fer2013.csv") in str(info.value) and "Kaggle" in str(info.value)


def test_truncated_idx_file(tmp_path):
    data_files.write_mnist(tmp_path)
    path = tmp_path / "MNIST/raw/train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: truncated"):
        module("mnist", tmp_path)
    path.write_bytes(path.read_bytes()[:50])  # a cut gzip stream
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: cannot be read"):
        module("mnist", tmp_path)


def test_mnist_label_out_of_range(tmp_path):
    data_files.write_mnist(tmp_path)
    labels = np.arange(20, dtype=np.uint8) % 10
    labels[7] = 12
    (tmp_path / "MNIST/raw/t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(data_files.idx_bytes(labels)))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: item 7 has label 12, outside 0..9"):
        module("mnist", tmp_path)


def test_truncated_and_malicious_pickles(tmp_path):
    folder = data_files.write_cifar10(tmp_path)
    good = (folder / "data_batch_3").read_bytes()
    (folder / "data_batch_3").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="data_batch_3: not a readable CIFAR pickle"):
        module("cifar10", tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        module("cifar10", tmp_path)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b.pop(b"data_batch_4"), "cifar-10-batches-py/data_batch_4"),
        (
            lambda b: b[b"data_batch_2"][b"labels"].__setitem__(5, 10),
            "data_batch_2: image 5 has label 10, outside 0..9",
        ),
        (
            lambda b: b[b"test_batch"].__setitem__(b"data", b[b"test_batch"][b"data"][:, :2352]),
            "test_batch: 'data' is uint8 (20, 2352) with 20 labels; expected uint8 N x 3072",
        ),
        (
            lambda b: b[b"data_batch_1"].__setitem__(b"labels", b[b"data_batch_1"][b"labels"][:-1]),
            "data_batch_1: 'data' is uint8 (12, 3072) with 11 labels",
        ),
    ],
)
def test_bad_cifar_batches_name_the_file(tmp_path, mutate, message):
    """A missing batch, a label out of range, images of another size, or labels that do not match the images."""
    folder = data_files.write_cifar10(tmp_path)
    batches = {p.name.encode(): pickle.loads(p.read_bytes()) for p in folder.iterdir() if p.name != "batches.meta"}
    mutate(batches)
    for path in folder.iterdir():
        path.unlink()
    for name, batch in batches.items():
        with open(folder / name.decode(), "wb") as f:
            pickle.dump(batch, f, protocol=2)
    with pytest.raises(DataError) as info:
        module("cifar10", tmp_path)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda rows: rows, "columns ['emotion', 'pixel', 'Usage']"),
        (
            lambda rows: [rows[0], (rows[1][0], rows[1][1] + " 7", rows[1][2])] + rows[2:],
            "line 3 has 2305 pixel values; expected 48*48 = 2304",
        ),
        (lambda rows: rows[:4] + [(9, *rows[4][1:])] + rows[5:], "line 6 has label 9, outside 0..6"),
        (lambda rows: rows[:2] + [(1, rows[2][1], "Validation")] + rows[3:], "line 4: Usage 'Validation'"),
    ],
)
def test_bad_fer_csv_names_file_and_line(tmp_path, mutate, message):
    rows = mutate(data_files.fer_rows())
    path = data_files.write_fer(tmp_path, "fer2013", rows)
    if "pixel'" in message:
        path.write_text(path.read_text().replace("emotion,pixels,Usage", "emotion,pixel,Usage", 1))
    with pytest.raises(DataError) as info:
        module("fer2013", tmp_path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_empty_class_subset(tmp_path):
    data_files.write_fer(tmp_path, "fer2013", data_files.fer_rows({"Training": 5, "PublicTest": 5, "PrivateTest": 5}))
    with pytest.raises(DataError, match=r"no image of classes \[5, 6\] \(Surprise, Neutral\)"):
        module("fer2013", tmp_path, classes=[5, 6])


def test_bad_options_fail_before_reading(tmp_path):
    with pytest.raises(ConfigError, match="data.classes"):
        make_datamodule({"family": "fer2013", "classes": [0, 7]}, tmp_path)
    with pytest.raises(ConfigError, match="data.bach_size is not an option here.*Did you mean 'batch_size'"):
        make_datamodule({"family": "mnist", "bach_size": 3}, tmp_path)
    with pytest.raises(ConfigError, match="data.family = 'svhn'"):
        make_datamodule({"family": "svhn"}, tmp_path)


# --- feeding -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, batch, world", [(10, 3, 1), (11, 4, 2), (1000, 128, 3), (7, 7, 2)])
def test_eval_batches_cover_every_image_once_across_ranks(n, batch, world):
    seen = []
    for rank in range(world):
        sampler = BatchIndices(n, batch, shuffle=False, rank=rank, world=world)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        seen += torch.cat(batches).tolist()
    assert sorted(seen) == list(range(n))


def test_training_batches_shuffle_per_epoch_and_shard_disjointly():
    samplers = [BatchIndices(100, 10, shuffle=True, seed=1, rank=r, world=2) for r in range(2)]
    shards = [torch.cat(list(s)).tolist() for s in samplers]
    assert len(shards[0]) == len(shards[1]) == 50 and not set(shards[0]) & set(shards[1])
    first = shards[0]
    samplers[0].set_epoch(1)
    assert torch.cat(list(samplers[0])).tolist() != first
    lone = BatchIndices(17, 8, shuffle=True)  # a last batch of one image is dropped (batch norm)
    assert [len(b) for b in lone] == [8, 8] and len(lone) == 2
    short = BatchIndices(40_000, 512, shuffle=True)  # CIFAR-100's 64-image remainder: noisy BN statistics
    assert len(short) == 78 == len(list(short)) and {len(b) for b in short} == {512}
    kept = BatchIndices(45_000, 512, shuffle=True)  # CIFAR-10's 456-image remainder is kept
    assert len(kept) == 88 == len(list(kept)) and [len(b) for b in kept][-1] == 456
    assert len(BatchIndices(40_000, 512, shuffle=False)) == 79  # evaluation sees every image


def test_crop_and_flip_move_pixels_only():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5)
    assert torch.equal(random_crop(x, 0), x)
    torch.manual_seed(0)
    cropped = random_crop(x, 2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, dy : dy + 5, dx : dx + 5] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(cropped[i], w) for w in windows)
    many = torch.arange(64 * 25, dtype=torch.float32).view(64, 1, 5, 5)
    flipped = random_flip(many)
    mirrored = [torch.equal(flipped[i], many[i].flip(2)) for i in range(64)]
    assert all(m or torch.equal(flipped[i], many[i]) for i, m in enumerate(mirrored))
    assert 16 < sum(mirrored) < 48  # about half: a flip that never (or always) flips fails here
