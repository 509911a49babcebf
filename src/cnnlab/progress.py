"""Progress: Lightning's bar in a terminal; elsewhere (nohup, SLURM, CI, a pipe) log lines, one per epoch and at most
one a minute within long phases, through the `cnnlab` logger (so also in train.log). Epochs count from 1 in both."""

import logging
import math
import time

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar

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


def epoch_label(trainer: pl.Trainer, epoch: int) -> str:
    total = trainer.max_epochs
    return f"epoch {epoch + 1}/{total}" if total and total > 0 else f"epoch {epoch + 1}"


class EpochsFromOne(RichProgressBar):
    """Lightning's rich bar, with the epoch counted as the log lines count it: `Epoch 3/16`, not `Epoch 2/15`."""

    def _get_train_description(self, current_epoch: int) -> str:
        description = epoch_label(self.trainer, current_epoch).capitalize()
        # as Lightning pads it: the same width as the validation bar's, so that the bars do not flicker
        return f"{description:{len(self.validation_description)}}"


def _images(batches: int | float, loader) -> int:
    """Images in the first `batches` batches of a loader (all of them when `batches` is its length)."""
    try:
        total = len(loader.dataset) if hasattr(loader, "dataset") else 0
        size = len(loader)
    except TypeError:
        return 0
    if not size or batches == float("inf") or batches >= size:
        return total
    per_batch = getattr(loader.sampler, "batch_size", None) or loader.batch_size or math.ceil(total / size)
    return min(total, int(batches) * per_batch)


class LineProgress(pl.Callback):
    """The epoch line: `epoch 3/10  train loss 1.234 acc 56.7%  val loss 1.301 acc 54.0%  1,234 img/s
    elapsed 5m02s  left ~12m10s` (img/s: training images per second of training, validation excluded). Speed and
    time left count only the steps this process ran: a resumed run's first line is not diluted by the resume."""

    def __init__(self, every_s: float = 60.0):
        self.every_s = every_s
        self._start = self._epoch_start = self._last_line = 0.0
        self._images, self._train_seconds = 0, 0.0
        self._first_batch: int | None = None  # the first batch of the epoch that this process ran
        self._epochs_done_before = 0
        self._pending: int | None = None  # the epoch whose line waits for its metrics
        self._eval_start, self._last_eval_s = 0.0, 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()
        self._epochs_done_before = trainer.current_epoch  # a resumed run counts its own speed only
        self._begin_epoch(trainer)

    def _begin_epoch(self, trainer: pl.Trainer) -> None:
        self._epoch_start = self._last_line = time.perf_counter()
        self._images, self._train_seconds = 0, 0.0
        self._first_batch = None  # set by the epoch's first batch (after a resume: not 0)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer)
        self._begin_epoch(trainer)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        self._images += len(batch[1])
        first_step = self._first_batch is None and trainer.current_epoch == self._epochs_done_before
        if self._first_batch is None:
            self._first_batch = batch_idx
        now = time.perf_counter()
        self._train_seconds = now - self._epoch_start  # training only: validation comes after the last batch
        # the first step's line says at once that training runs, how fast and for how long; then one a minute
        if (now - self._last_line < self.every_s and not first_step) or not trainer.is_global_zero:
            return
        self._last_line = now
        total = trainer.num_training_batches
        done, ran = batch_idx + 1, max(1, batch_idx + 1 - self._first_batch)
        spent = now - self._epoch_start
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        loss_text = f"  loss {float(loss):.4f}" if loss is not None else ""
        left = f"  epoch left ~{clock(spent / ran * (total - done))}" if total and total != float("inf") else ""
        log.info(f"{epoch_label(trainer, trainer.current_epoch)}  batch {done}/{total}{loss_text}  "
                 f"{self._images / spent:,.0f} img/s  elapsed {clock(now - self._start)}{left}")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the module logs this epoch's training metrics after the callbacks' hook: the line waits for them
        self._pending = trainer.current_epoch

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer)

    # --- evaluation ----------------------------------------------------------------------------------------
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._eval_start = self._last_line = time.perf_counter()
        if not trainer.sanity_checking and self._last_eval_s >= self.every_s and trainer.is_global_zero:
            images = sum(_images(b, dl) for b, dl in zip(trainer.num_val_batches, _loaders(trainer.val_dataloaders)))
            log.info(f"{epoch_label(trainer, trainer.current_epoch)}  validating {images:,} images (the last "
                     f"validation took {clock(self._last_eval_s)})")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._last_eval_s = time.perf_counter() - self._eval_start

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._eval_start = self._last_line = time.perf_counter()
        if not trainer.is_global_zero:
            return
        counts = [_images(b, dl) for b, dl in zip(trainer.num_test_batches, _loaders(trainer.test_dataloaders))]
        named = [f"{n:,} {what}" for n, what in zip(counts, ("test images", "training images (unaugmented, for the "
                                                             "training error)"))]
        log.info(f"testing: {', then '.join(named)}")

    def _evaluation_line(self, trainer: pl.Trainer, what: str, done: int, total) -> None:
        now = time.perf_counter()
        if now - self._last_line < self.every_s or not trainer.is_global_zero:
            return
        self._last_line = now
        spent = now - self._eval_start
        log.info(f"{what}  batch {done}/{total}  elapsed {clock(spent)}")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self._evaluation_line(trainer, f"{epoch_label(trainer, trainer.current_epoch)}  validating", batch_idx + 1,
                                  trainer.num_val_batches[dataloader_idx])

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        what = "testing" if dataloader_idx == 0 else "the training-set report"
        self._evaluation_line(trainer, what, batch_idx + 1, trainer.num_test_batches[dataloader_idx])

    def _flush(self, trainer: pl.Trainer) -> None:
        if self._pending is None:
            return
        epoch, self._pending = self._pending, None
        if not trainer.is_global_zero:
            return
        parts = [epoch_label(trainer, epoch)]
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


def _loaders(loaders) -> list:
    if loaders is None:
        return []
    return list(loaders) if isinstance(loaders, list | tuple) else [loaders]
