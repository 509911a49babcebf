"""Host work per training step: a plain PyTorch loop, a bare LightningModule and cnnlab, on the same network, data,
optimizer and batches. Prints µs per step, aten ops per step and host reads per step (`_local_scalar_dense`: what
`.item()`, `float(t)`, `bool(t)` and `if t.any()` dispatch). On a GPU each host read is a sync that drains the
device's queue: with none per step, the host's time hides behind the device's.

    python bench/step_overhead.py [--device cpu|cuda] [--steps 200] [--repeats 3] [--override arch=small ...]

Default network: the micro one of issue 20, average pooling + T on 1x28x28 (almost no compute, so what is left is
overhead), batch 32, Adam, one thread. Every figure is the cost of one more step: two runs of `--steps` and
2 x `--steps` steps, differenced, so that set-up, epoch ends and warm-up cancel; logging intervals are longer than
both runs (cnnlab reads values at its logging intervals and epoch ends only, by design).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from overhead import synthetic  # noqa: E402

from cnnlab.cli import train_plan  # noqa: E402
from cnnlab.layers import build_network  # noqa: E402
from cnnlab.optim import decay_kwargs  # noqa: E402
from cnnlab.run.build import build  # noqa: E402
from cnnlab.run.lightning import quiet_lightning  # noqa: E402

MICRO = ("arch.layers=[{type:GAP},{type:T}]", "data.batch_size=32")
HOST_READ = "aten._local_scalar_dense.default"
QUIET = ("trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "test=false",
         "trainer.log_every_n_steps=1000000", "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0")


class OpCounter(TorchDispatchMode):
    """Counts every aten op dispatched while active (backward included)."""

    def __init__(self):
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))


class Paths:
    """The three ways to train `steps` steps of one config's network on one data module."""

    def __init__(self, overrides: list[str], device: str, data: pl.LightningDataModule | None = None):
        self.overrides, self.device, self.data = list(overrides), torch.device(device), data

    def config(self, steps: int, out: str):
        """The plan, as train.py would check it."""
        accelerator = "gpu" if self.device.type == "cuda" else "cpu"
        return train_plan(*self.overrides, *QUIET, f"trainer.accelerator={accelerator}", "trainer.devices=1",
                          "trainer.max_epochs=1", f"trainer.limit_train_batches={steps}", out=out)

    def _data(self, plan) -> pl.LightningDataModule:
        if self.data is not None:
            return self.data
        # enough images for every step
        return synthetic(plan.data.batch_size * plan.trainer.limit_train_batches + 100, plan.data.batch_size)

    def _loader_and_net(self, plan):
        data = self._data(plan)
        data.prepare_data()
        data.setup("fit")
        pl.seed_everything(plan.run.seed, verbose=False)
        net = build_network(list(plan.arch.specs), data.input_shape, data.num_classes).to(self.device)
        factory = plan.optimisation.optimizer
        optimizer = factory(params=net.parameters(), **decay_kwargs(factory, plan.model.reg))
        return data, net, optimizer

    def plain(self, steps: int, out: str) -> None:
        """A hand-written loop: index a batch, normalise, forward, cross-entropy, backward, step."""
        data, net, optimizer = self._loader_and_net(self.config(steps, out))
        mean, std = data.batching.stats_on(self.device)
        loss_fn = torch.nn.CrossEntropyLoss()
        net.train()
        for step, (x, y, _) in enumerate(data.train_dataloader()):
            if step == steps:
                break
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            loss = loss_fn(net((x.float().div_(255) - mean) / std), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def bare(self, steps: int, out: str) -> None:
        """The same loop as a LightningModule whose training_step returns the loss; no logger, callbacks or bar."""
        cfg = self.config(steps, out)
        data, net, optimizer = self._loader_and_net(cfg)
        mean, std = data.batching.stats_on(self.device)

        class Bare(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.net, self.loss_fn = net, torch.nn.CrossEntropyLoss()

            def training_step(self, batch, batch_idx):
                x, y, _ = batch
                return self.loss_fn(self.net((x.float().div_(255) - mean) / std), y)

            def configure_optimizers(self):
                return optimizer

        trainer = pl.Trainer(accelerator=cfg.trainer.accelerator, devices=1, max_epochs=1, limit_train_batches=steps,
                             logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, limit_val_batches=0, default_root_dir=out)
        trainer.fit(Bare(), train_dataloaders=data.train_dataloader())

    def cnnlab(self, steps: int, out: str) -> None:
        """`src/train.py`'s own path: the config's Trainer, callbacks, CSV logger and LightningModule."""
        plan = self.config(steps, out)
        run = build(plan, self._data(plan))
        run.trainer.fit(run.model, datamodule=run.datamodule)


def per_step(path: Callable[[int, str], None], steps: int, count: bool) -> dict[str, float]:
    """The cost of one more step: `path` run for `steps` and for 2 x `steps` steps, differenced."""
    results = []
    for n in (steps, 2 * steps):
        with tempfile.TemporaryDirectory() as out:
            counter = OpCounter()
            start = time.perf_counter()
            if count:
                with counter:
                    path(n, out)
            else:
                path(n, out)
            results.append((time.perf_counter() - start, counter.ops))
    (t1, ops1), (t2, ops2) = results
    if not count:
        return {"us_per_step": (t2 - t1) / steps * 1e6}
    return {"ops_per_step": (sum(ops2.values()) - sum(ops1.values())) / steps,
            "host_reads_per_step": (ops2[HOST_READ] - ops1[HOST_READ]) / steps}


def measure(paths: Paths, steps: int, repeats: int = 1, names=("plain", "bare", "cnnlab")) -> dict[str, dict]:
    """Counts once per path (they are deterministic) and the median time of `repeats` alternated runs."""
    quiet_lightning()
    rows = {name: per_step(getattr(paths, name), steps, count=True) for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):  # alternated, so that a slow spell of a shared machine hits every path
        for name in names:
            times[name].append(per_step(getattr(paths, name), steps, count=False)["us_per_step"])
    for name in names:
        rows[name]["us_per_step"] = statistics.median(times[name]) if repeats else float("nan")
    return rows


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--override", nargs="*", default=list(MICRO), help="train.py overrides (default: the micro "
                        "network at batch 32)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = measure(Paths(args.override, args.device), args.steps, args.repeats)
    print(f"torch {torch.__version__}, pytorch-lightning {pl.__version__}, {args.device}, {args.threads} thread(s), "
          f"overrides: {' '.join(args.override)}")
    print(f"{'path':8s} {'us/step':>9s} {'aten ops/step':>14s} {'host reads/step':>16s}")
    for name, row in rows.items():
        print(f"{name:8s} {row['us_per_step']:9.0f} {row['ops_per_step']:14.1f} {row['host_reads_per_step']:16.2f}")
    print(f"cnnlab / bare LightningModule time: {rows['cnnlab']['us_per_step'] / rows['bare']['us_per_step']:.2f}x")
    return rows


if __name__ == "__main__":
    main()
