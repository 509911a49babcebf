"""The loaders against the real MNIST and FER2013 copies in ../shared/data (slow; skipped where absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from cnnlab.data import make_datamodule
from tests.conftest import ROOT
from tests.data_files import split_counts

SHARED = Path(os.environ.get("CNNLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))
pytestmark = pytest.mark.slow


def _counts(split) -> list[int]:
    return torch.bincount(split.y).tolist()


@pytest.mark.skipif(not (SHARED / "MNIST" / "raw").is_dir(), reason="no real MNIST copy")
def test_real_mnist_counts():
    dm = make_datamodule({"family": "mnist", "download": False, "val_size": 5000}, SHARED)
    dm.setup()
    assert len(dm.splits["train"]) + len(dm.splits["val"]) == 60_000
    assert _counts(dm.splits["test"]) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.skipif(not (SHARED / "fer2013" / "fer2013.csv.gz").is_file(), reason="no real FER2013 copy")
def test_real_fer2013_counts():
    dm = make_datamodule({"family": "fer2013"}, SHARED)
    dm.setup()
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 28_709, "val": 3_589, "test": 3_589}
    assert _counts(dm.splits["train"]) == [3995, 436, 4097, 7215, 4830, 3171, 4965]
    binary = make_datamodule({"family": "fer2013", "classes": [0, 3], "protocol": "seed"}, SHARED)
    binary.setup()
    assert len(binary.splits["test"]) == 140  # the seed README's 1% test split


CIFAR10_JPEG = SHARED / "cifar10" / "cifar-10-jpeg.tar.gz"


@pytest.fixture(scope="module")
def cifar10_both_layouts(tmp_path_factory):
    """The real CIFAR-10 JPEG copy unpacked as image folders, and written in the python layout by its own script."""
    import subprocess
    import sys
    import tarfile

    root = tmp_path_factory.mktemp("cifar10")
    with tarfile.open(CIFAR10_JPEG) as tar:
        tar.extractall(root / "jpeg", filter="data")
    subprocess.run(
        [sys.executable, str(CIFAR10_JPEG.with_name("to_python_layout.py")), str(root / "python")],
        check=True,
        capture_output=True,
    )
    return root / "jpeg", root / "python"


@pytest.mark.skipif(not CIFAR10_JPEG.is_file(), reason="no real CIFAR-10 JPEG copy")
def test_cifar10_folders_read_the_same_pixels_and_labels_as_the_python_layout(cifar10_both_layouts):
    jpeg, python = cifar10_both_layouts
    folder = make_datamodule(
        {"family": "folder", "root": str(jpeg), "val_fraction": 5000 / 60000, "cache": False}, SHARED
    )
    folder.setup()
    assert folder.class_names == list(make_datamodule({"family": "cifar10"}, python).class_names)
    assert {k: len(v) for k, v in folder.splits.items()} == {"train": 45_000, "val": 5_000, "test": 10_000}
    reference = make_datamodule({"family": "cifar10", "download": False, "val_size": 5000}, python)
    reference.setup()
    assert split_counts(folder.splits["test"]) == split_counts(reference.splits["test"])
    from cnnlab.data.splits import Split

    both = Split.concat([folder.splits["train"], folder.splits["val"]])
    assert split_counts(both) == split_counts(Split.concat([reference.splits["train"], reference.splits["val"]]))


@pytest.mark.skipif(not CIFAR10_JPEG.is_file(), reason="no real CIFAR-10 JPEG copy")
def test_cifar10_folders_train_to_the_same_accuracy(cifar10_both_layouts, train):
    """The same recipe and seed on both readings of the same images (2 epochs of best_cifar10): the validation
    splits differ (stratified fractions vs a random 5,000), so the test accuracies agree within noise."""
    jpeg, python = cifar10_both_layouts
    short = ("experiment=best_cifar10", "trainer.max_epochs=2", "data.train_eval_size=1000")
    from_folder = train(
        *short,
        "data=folder",
        f"data.root={jpeg}",
        f"data.val_fraction={5000 / 60000}",
        "data.mean=[0.4914,0.4822,0.4465]",
        "data.std=[0.2470,0.2435,0.2616]",
        timeout=3600,
    )
    from_python = train(*short, "data.download=false", data_dir=python, timeout=3600)
    assert from_folder.returncode == 0, from_folder.output[-3000:]
    assert from_python.returncode == 0, from_python.output[-3000:]
    assert abs(from_folder.results()["test/acc"] - from_python.results()["test/acc"]) < 0.015


@pytest.mark.skipif(not CIFAR10_JPEG.is_file(), reason="no real CIFAR-10 JPEG copy")
def test_cifar10_streamed_from_shards_trains_to_the_in_memory_accuracy(cifar10_both_layouts, train, tmp_path):
    """The JPEG folders written into shards and streamed (decoded in loader workers, chunks reshuffled each epoch)
    against the same folders in memory: 2 epochs of best_cifar10, test accuracy within 1.5 points."""
    jpeg, _ = cifar10_both_layouts
    split = f"data.val_fraction={5000 / 60000}"
    prepared = train(
        "data=folder", f"data.root={jpeg}", split, f"out={tmp_path / 'shards'}", script="prepare.py", timeout=600
    )
    assert prepared.returncode == 0, prepared.output[-3000:]
    short = ("experiment=best_cifar10", "trainer.max_epochs=2")
    in_memory = train(*short, "data=folder", f"data.root={jpeg}", split, timeout=3600)
    streamed = train(*short, "data=stream", f"data.root={tmp_path / 'shards'}", timeout=3600)
    assert in_memory.returncode == 0, in_memory.output[-3000:]
    assert streamed.returncode == 0, streamed.output[-3000:]
    assert abs(in_memory.results()["test/acc"] - streamed.results()["test/acc"]) < 0.015
