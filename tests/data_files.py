"""Tiny data sets written in the exact on-disk layouts the real ones use (IDX, CIFAR pickles, Kaggle CSVs)."""

from __future__ import annotations

import csv
import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

RNG = np.random.default_rng(0)


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(root: Path, n_train: int = 60, n_test: int = 20, gz: bool = True) -> dict[str, np.ndarray]:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            data = idx_bytes(array)
            name = f"{prefix}-{kind}-ubyte"
            (raw / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data) if gz else data)
        arrays[prefix] = images
    return arrays


def _cifar_batch(n: int, num_classes: int, label_key: bytes) -> dict[bytes, object]:
    return {
        b"batch_label": b"training batch",
        label_key: [int(i % num_classes) for i in range(n)],
        b"data": RNG.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def _dump(path: Path, obj: object) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root: Path, per_batch: int = 12, n_test: int = 20) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        _dump(folder / f"data_batch_{i}", _cifar_batch(per_batch, 10, b"labels"))
    _dump(folder / "test_batch", _cifar_batch(n_test, 10, b"labels"))
    _dump(folder / "batches.meta", {b"label_names": [b"airplane"], b"num_cases_per_batch": per_batch})
    return folder


def write_cifar100(root: Path, n_train: int = 300, n_test: int = 200) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        batch = _cifar_batch(n, 100, b"fine_labels")
        batch[b"coarse_labels"] = [i % 20 for i in range(n)]
        _dump(folder / name, batch)
    _dump(folder / "meta", {b"fine_label_names": [b"apple"], b"coarse_label_names": [b"aquatic_mammals"]})
    return folder


USAGES = {"Training": 28, "PublicTest": 14, "PrivateTest": 14}


def fer_rows(usages: dict[str, int] = USAGES) -> list[tuple[int, str, str]]:
    rows = []
    for usage, n in usages.items():
        for i in range(n):
            pixels = " ".join(map(str, RNG.integers(0, 256, 48 * 48)))
            rows.append((i % 7, pixels, usage))
    return rows


def write_fer(root: Path, variant: str = "fer2013", rows: list | None = None) -> Path:
    """variant: fer2013 (emotion,pixels,Usage), icml (emotion, Usage, pixels), pair (train.csv + labelled test.csv),
    pair_unlabelled (train.csv + Kaggle's unlabelled test.csv)."""
    rows = rows if rows is not None else fer_rows()
    folder = root / "fer2013"
    folder.mkdir(parents=True, exist_ok=True)

    def write(name, header, body):
        with open(folder / name, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(body)
        return folder / name

    if variant == "fer2013":
        return write("fer2013.csv", ["emotion", "pixels", "Usage"], rows)
    if variant == "icml":
        return write("icml_face_data.csv", ["emotion", " Usage", " pixels"], [(e, u, p) for e, p, u in rows])
    train = [(e, p) for e, p, u in rows if u == "Training"]
    test = [(e, p) for e, p, u in rows if u != "Training"]  # PublicTest rows first, then PrivateTest
    write("train.csv", ["emotion", "pixels"], train)
    if variant == "pair":
        return write("test.csv", ["emotion", "pixels"], test)
    return write("test.csv", ["pixels"], [(p,) for _, p in test])


def image_label_counts(images_and_labels) -> dict[tuple[bytes, int], int]:
    """(pixels, label) -> how many times, over (uint8 tensor, label) pairs: an order-free fingerprint of a split."""
    counts: dict[tuple[bytes, int], int] = {}
    for x, y in images_and_labels:
        key = (x.numpy().tobytes(), int(y))
        counts[key] = counts.get(key, 0) + 1
    return counts


def split_counts(split) -> dict[tuple[bytes, int], int]:
    """`image_label_counts` of an in-memory split."""
    return image_label_counts(zip(split.x, split.y.tolist()))
