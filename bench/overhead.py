"""Framework overhead: the same model, data, optimizer and batches trained through cnnlab (Hydra config ->
Lightning Trainer with cnnlab's default callbacks and CSV logger) and through a plain PyTorch loop, in one
process; prints images per second of each and their ratio.

    python bench/overhead.py [--arch small seed] [--images 6000] [--epochs 3] [--batch-size 128]

Synthetic MNIST-shaped data (1 x 28 x 28, 10 classes, uint8 in memory) so that it needs no data set; the first
epoch of each path is warm-up and is not timed. Validation is off in both paths (the same work).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

from cnnlab.data.base import InMemoryDataModule, Split
from cnnlab.model import LayerListClassifier
from cnnlab.run import arch_layers, make_optimizer, make_trainer

ROOT = Path(__file__).resolve().parents[1]


class Synthetic(InMemoryDataModule):
    name, input_shape, all_class_names = "synthetic", (1, 28, 28), tuple(str(d) for d in range(10))
    images = 6000

    def read_splits(self):
        gen = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (self.images + 1000, 1, 28, 28), dtype=torch.uint8, generator=gen)
        y = torch.randint(0, 10, (self.images + 1000,), generator=gen)
        return {"train": Split(x[:self.images], y[:self.images]), "test": Split(x[self.images:], y[self.images:])}


class EpochTimer(pl.Callback):
    def __init__(self):
        self.start, self.images = None, 0

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.start is not None:
            self.images += len(batch[1])


def cnnlab_rate(arch: str, args, out: str) -> float:
    """cnnlab's path: the config's optimizer, Trainer, callbacks and CSV logger, the LightningModule."""
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", [f"arch={arch}", "trainer=cpu", f"trainer.max_epochs={args.epochs}",
                                "+trainer.limit_val_batches=0", f"paths.output_dir={out}"])
    dm = Synthetic(batch_size=args.batch_size, val_size=100)
    pl.seed_everything(0, verbose=False)
    optimizer, _ = make_optimizer(cfg.optim, None, cfg.model.reg)
    model = LayerListClassifier(arch_layers(cfg.arch), {**dm.info(), "config": {}}, optimizer=optimizer,
                                reg=cfg.model.reg)
    trainer = make_trainer(cfg)
    timer = EpochTimer()
    trainer.callbacks.append(timer)
    trainer.fit(model, datamodule=dm)
    return timer.images / (time.perf_counter() - timer.start)


def plain_rate(arch: str, args) -> float:
    dm = Synthetic(batch_size=args.batch_size, val_size=100)
    dm.setup()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", [f"arch={arch}"])
    from cnnlab.layers import build_network

    pl.seed_everything(0, verbose=False)
    net = build_network(arch_layers(cfg.arch), dm.input_shape, 10)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=cfg.model.reg)
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = dm.train_dataloader()
    start, images = None, 0
    for epoch in range(args.epochs):
        if epoch == 1:
            start = time.perf_counter()
        loader.sampler.set_epoch(epoch)
        net.train()
        for x, y in loader:
            x = (x.float().div_(255) - dm.mean) / dm.std
            loss = loss_fn(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if start is not None:
                images += len(y)
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["small", "seed"])
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.images} images/epoch, "
          f"batch {args.batch_size}, {args.epochs - 1} timed epochs")
    Synthetic.images = args.images
    for arch in args.arch:
        with tempfile.TemporaryDirectory() as out:
            ours = cnnlab_rate(arch, args, out)
        plain = plain_rate(arch, args)
        print(f"{arch:8s} cnnlab {ours:9,.0f} img/s | plain PyTorch {plain:9,.0f} img/s | ratio {ours / plain:.3f}")


if __name__ == "__main__":
    main()
