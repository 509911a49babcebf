"""Framework overhead: the same model, data, optimizer and batches trained through cnnlab (Hydra config ->
Lightning Trainer with cnnlab's default callbacks and CSV logger) and through a plain PyTorch loop, in one
process; prints images per second of each and their ratio, and the achieved training FLOP/s (3x the arch
table's forward FLOPs per image) as a fraction of this machine's 3x3 convolution speed, measured first.

    python bench/overhead.py [--arch small seed] [--images 6000] [--epochs 3] [--batch-size 128] [--repeats 3]
                             [--device cuda] [--override trainer.enable_progress_bar=false]

Synthetic MNIST-shaped data (1 x 28 x 28, 10 classes, uint8 in memory) so that it needs no data set; the first
epoch of each path is warm-up and is not timed. Validation is off in both paths (the same work).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from cnnlab.cli import train_plan
from cnnlab.compose import compose
from cnnlab.data.family import Family, read_data
from cnnlab.data.memory import MemorySource
from cnnlab.data.module import ImageData
from cnnlab.data.splits import Split
from cnnlab.run.build import build

ROOT = Path(__file__).resolve().parents[1]


class Synthetic(Family):
    """Random uint8 images, MNIST-shaped: a data set every machine has."""

    name, input_shape, all_class_names = "synthetic", (1, 28, 28), tuple(str(d) for d in range(10))

    def __init__(self, options, images: int):
        super().__init__(options, ".")
        self.images = images

    def read(self):
        gen = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (self.images + 1000, 1, 28, 28), dtype=torch.uint8, generator=gen)
        y = torch.randint(0, 10, (self.images + 1000,), generator=gen)
        return {"train": Split(x[:self.images], y[:self.images]), "test": Split(x[self.images:], y[self.images:])}


def synthetic(images: int, batch_size: int, val_size: int = 100) -> ImageData:
    options = read_data({"family": "digits", "batch_size": batch_size, "val_size": val_size})
    return ImageData(MemorySource(Synthetic(options, images), options), options)


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a clock reading means work done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class EpochTimer(pl.Callback):
    def __init__(self):
        self.start, self.images = None, 0

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            _sync(pl_module.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.start is not None:
            self.images += len(batch[1])


def train_config(*overrides: str):
    """The composed `train` config, as `src/train.py` would see it with these overrides."""
    from cnnlab.schemas import register

    register("train")  # the schemas the config files name, as the command line registers them
    return compose("train", *overrides)


def cnnlab_rate(arch: str, args, out: str) -> float:
    """cnnlab's path: `build(plan)` as train.py makes it: the config's optimizer, Trainer, callbacks and CSV logger,
    the LightningModule."""
    plan = train_plan(f"arch={arch}", "trainer=" + ("gpu" if args.device == "cuda" else "cpu"),
                      f"trainer.max_epochs={args.epochs}", "trainer.limit_val_batches=0", "seed=0", "test=false",
                      *args.override, out=out)
    timer = EpochTimer()
    run = build(plan, synthetic(args.images, args.batch_size), [timer])
    run.trainer.fit(run.model, datamodule=run.datamodule)
    _sync(run.model.device)
    return timer.images / (time.perf_counter() - timer.start)


def conv_peak(device: torch.device, seconds: float = 2.0) -> float:
    """This machine's convolution speed in FLOP/s: forward + backward (input and weight gradients, 3x the
    forward FLOPs) of 3x3 convolutions of the sizes these networks use, the best of a few shapes."""
    best = 0.0
    for channels, size in ((32, 28), (64, 28), (128, 14)):
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device)
        x = torch.randn(128, channels, size, size, device=device, requires_grad=True)
        flops = 3 * 2 * 128 * channels * channels * 9 * size * size
        conv(x).sum().backward()  # warm-up: kernel choice, allocations
        _sync(device)
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < seconds / 3:
            conv(x).sum().backward()
            n += 1
            _sync(device)
        best = max(best, n * flops / (time.perf_counter() - start))
    return best


def plain_rate(arch: str, args) -> tuple[float, int]:
    """The plain loop's images per second, and the forward FLOPs per image of the network it trained (from
    cnnlab's arch table)."""
    dm = synthetic(args.images, args.batch_size)
    dm.setup()
    with tempfile.TemporaryDirectory() as out:
        plan = train_plan(f"arch={arch}", out=out)
    from cnnlab.layers import build_network

    pl.seed_everything(0, verbose=False)
    device = torch.device(args.device)
    net = build_network(list(plan.arch.specs), dm.input_shape, 10).to(device)
    mean, std = dm.batching.stats_on(device)
    cfg = plan
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=cfg.model.reg)
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = dm.train_dataloader()
    start, images = None, 0
    for epoch in range(args.epochs):
        if epoch == 1:
            _sync(device)
            start = time.perf_counter()
        loader.sampler.set_epoch(epoch)
        net.train()
        for x, y, _ in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            x = (x.float().div_(255) - mean) / std
            loss = loss_fn(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if start is not None:
                images += len(y)
    _sync(device)
    return images / (time.perf_counter() - start), net.flops


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["small", "seed"])
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=1, help="alternate the two paths this many times; "
                        "report the median of each")
    parser.add_argument("--override", nargs="*", default=[], help="train.py overrides for cnnlab's path, e.g. "
                        "trainer.enable_progress_bar=false (what does the progress bar cost?)")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.images} images/epoch, "
          f"batch {args.batch_size}, {args.epochs - 1} timed epochs")
    peak = conv_peak(torch.device(args.device))
    print(f"measured 3x3 convolution peak (forward + backward): {peak / 1e9:,.1f} GFLOP/s")
    rows = []
    for arch in args.arch:
        ours_runs, plain_runs = [], []
        for _ in range(args.repeats):  # alternated, so that a slow spell of a shared machine hits both paths
            with tempfile.TemporaryDirectory() as out:
                ours_runs.append(cnnlab_rate(arch, args, out))
            rate, flops = plain_rate(arch, args)
            plain_runs.append(rate)
        ours, plain = statistics.median(ours_runs), statistics.median(plain_runs)
        achieved = 3 * flops * ours  # training = forward + two backward passes
        print(f"{arch:8s} cnnlab {ours:9,.0f} img/s | plain PyTorch {plain:9,.0f} img/s | ratio {ours / plain:.3f} "
              f"| {achieved / 1e9:,.1f} GFLOP/s = {achieved / peak:.0%} of the conv peak")
        rows.append({"arch": arch, "device": args.device, "cnnlab_img_s": ours, "plain_img_s": plain,
                     "ratio": ours / plain, "gflop_s": achieved / 1e9, "peak_fraction": achieved / peak})
    return rows


if __name__ == "__main__":
    main()
