"""Progress as log lines, for runs whose output is not a terminal (nohup, SLURM, CI, `| tee`): a progress bar
there prints nothing readable until it ends. One line per epoch, and within an epoch longer than `every_s`
seconds a line at most every `every_s` seconds; through the `cnnlab` logger, so the same lines reach train.log."""

from __future__ import annotations

import logging
import time

import pytorch_lightning as pl

log = logging.getLogger("cnnlab")


def clock(seconds: float) -> str:
    """12s, 3m05s, 1h02m."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _metric(trainer: pl.Trainer, key: str) -> float | None:
    value = trainer.callback_metrics.get(key)
    return None if value is None else float(value)


def _label(trainer: pl.Trainer, epoch: int) -> str:
    total = trainer.max_epochs
    return f"epoch {epoch + 1}/{total}" if total and total > 0 else f"epoch {epoch + 1}"


class LineProgress(pl.Callback):
    """The epoch line: `epoch 3/10  train loss 1.234 acc 56.7%  val loss 1.301 acc 54.0%  1,234 img/s
    elapsed 5m02s  left ~12m10s` (img/s: training images per second of training, validation excluded). The
    time left assumes the remaining epochs take as long as the mean so far."""

    def __init__(self, every_s: float = 60.0):
        self.every_s = every_s
        self._start = self._epoch_start = self._last_line = 0.0
        self._images = 0
        self._pending: int | None = None  # the epoch whose line waits for its metrics

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()
        self._epochs_done_before = trainer.current_epoch  # a resumed run counts its own speed only

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer)
        self._epoch_start = self._last_line = time.perf_counter()
        self._images, self._train_seconds = 0, 0.0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        self._images += len(batch[1])
        now = time.perf_counter()
        self._train_seconds = now - self._epoch_start  # training only: validation comes after the last batch
        if now - self._last_line < self.every_s or not trainer.is_global_zero:
            return
        self._last_line = now
        total = trainer.num_training_batches
        done = batch_idx + 1
        spent = now - self._epoch_start
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        loss_text = f"  loss {float(loss):.4f}" if loss is not None else ""
        left = f"  epoch left ~{clock(spent / done * (total - done))}" if total and total != float("inf") else ""
        log.info(f"{_label(trainer, trainer.current_epoch)}  batch {done}/{total}{loss_text}  "
                 f"{self._images / spent:,.0f} img/s  elapsed {clock(now - self._start)}{left}")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the module logs this epoch's training metrics after the callbacks' hook: the line waits for them
        self._pending = trainer.current_epoch

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer)

    def _flush(self, trainer: pl.Trainer) -> None:
        if self._pending is None:
            return
        epoch, self._pending = self._pending, None
        if not trainer.is_global_zero:
            return
        parts = [_label(trainer, epoch)]
        for split in ("train", "val", "test_epoch"):
            loss, acc = _metric(trainer, f"{split}/loss"), _metric(trainer, f"{split}/acc")
            if loss is not None and acc is not None:
                parts.append(f"{split.removesuffix('_epoch')} loss {loss:.4f} acc {acc:.2%}")
        now = time.perf_counter()
        elapsed = now - self._start
        parts.append(f"{self._images / max(self._train_seconds, 1e-9):,.0f} img/s")
        parts.append(f"elapsed {clock(elapsed)}")
        done = epoch + 1 - self._epochs_done_before
        remaining = max(trainer.max_epochs or 0, 0) - (epoch + 1)
        if done > 0 and remaining > 0 and not trainer.should_stop:
            parts.append(f"left ~{clock(elapsed / done * remaining)}")
        log.info("  ".join(parts))
