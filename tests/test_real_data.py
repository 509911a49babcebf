"""The loaders against the real MNIST and FER2013 copies in ../shared/data (slow; skipped where absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from cnnlab.data import make_datamodule
from tests.conftest import ROOT

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
