"""Data path benchmark (no model): images per second of one training epoch, cnnlab's in-memory loader against
torchvision's per-sample path (dataset -> PIL -> ToTensor -> Normalize -> DataLoader collate), in one process.

    python bench/data_path.py [--data-dir ../shared/data] [--batch-size 128]

MNIST uses torchvision's own MNIST dataset (on a gunzipped copy in a temporary folder, as torchvision needs).
For FER2013, torchvision's FER2013 class refuses any copy whose md5 differs from Kaggle's (the shared copy
does), so the baseline is a dataset with exactly its `__getitem__`: a stored uint8 tensor -> PIL -> transform.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets, transforms

from cnnlab.data import make_datamodule

ROOT = Path(__file__).resolve().parents[1]


class PerSample(Dataset):
    """torchvision FER2013's __getitem__, over tensors already parsed (parsing is not part of an epoch)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        self.samples, self.transform = list(zip(x[:, 0], y.tolist())), transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        image, target = self.samples[i]
        return self.transform(Image.fromarray(image.numpy())), target


def epoch_rate(loader, after=None) -> float:
    start, n = time.perf_counter(), 0
    for batch in loader:
        x, y = after(batch) if after else batch
        n += len(y)
    return n / (time.perf_counter() - start)


def bench(family: str, data_dir: Path, batch_size: int, baseline_dataset) -> None:
    dm = make_datamodule({"family": family, "batch_size": batch_size, "download": False} if family == "mnist"
                         else {"family": family, "batch_size": batch_size}, data_dir)
    dm.setup()
    ours = max(epoch_rate(dm.train_dataloader(), lambda b: dm.on_after_batch_transfer(b, 0)) for _ in range(2))
    mean, std = dm.batching.mean.flatten().tolist(), dm.batching.std.flatten().tolist()
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    dataset = baseline_dataset(dm, transform)
    rates = {}
    for workers in (0, 2):
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                            persistent_workers=False)
        rates[workers] = epoch_rate(loader)
    best = max(rates.values())
    print(f"{family:8s} in-memory {ours:12,.0f} img/s | torchvision per-sample: workers=0 {rates[0]:9,.0f}, "
          f"workers=2 {rates[2]:9,.0f} img/s | ratio vs best baseline {ours / best:6.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for gz in (args.data_dir / "MNIST" / "raw").glob("*.gz"):
            with gzip.open(gz) as src, open(raw / gz.stem, "wb") as dst:
                shutil.copyfileobj(src, dst)
        bench("mnist", args.data_dir, args.batch_size,
              lambda dm, t: datasets.MNIST(tmp, train=True, transform=t))
    bench("fer2013", args.data_dir, args.batch_size,
          lambda dm, t: PerSample(dm.splits["train"].x, dm.splits["train"].y, t))


if __name__ == "__main__":
    main()
