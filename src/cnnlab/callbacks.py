"""Lightning callbacks of cnnlab's own: the run's report files, written where the test loop ran.

The report is written at the end of the test loop, on global rank 0, inside whatever process ran it: with
`ddp_spawn` that is a worker, which holds the synced confusion matrix while the launching process does not.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch

from cnnlab import reports
from cnnlab.errors import CnnlabError


class NonFiniteLoss(CnnlabError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(pl.Callback):
    """Stops at the first NaN or infinite training loss, naming epoch and step, before a checkpoint can store
    the broken weights (Lightning runs checkpoint callbacks after this one)."""

    def __init__(self, every_n_steps: int = 1):
        self.every_n_steps = every_n_steps

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None or trainer.global_step % self.every_n_steps:
            return
        if not torch.isfinite(loss).item():
            last = Path(trainer.checkpoint_callback.dirpath) / "last.ckpt" if trainer.checkpoint_callback else None
            kept = f" The last good checkpoint is {last}." if last and last.is_file() else ""
            raise NonFiniteLoss(
                f"the training loss became {loss.item()} at epoch {trainer.current_epoch}, step {trainer.global_step} "
                f"(batch {batch_idx} of the epoch).{kept} Likely causes: a learning rate too high for this "
                "optimizer (try optim.lr 10x lower), inputs not normalised (check data.mean and data.std), "
                "or no batch norm in a deep network (batch_norm: true on C layers).")

SUMMARY = "summary.txt"


class RunReport(pl.Callback):
    """At test end: confusion matrix, classification report and curves as files, the console summary as
    `summary.txt` (printed by the runner once everything else has printed); `Dashboards` sends them on."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        out, names, cm = self.out_dir, trainer.datamodule.class_names, pl_module.test_confusion
        reports.write_confusion_matrix(cm, names, out)
        text = reports.write_classification_report(cm, names, out)
        if (out / "metrics.csv").is_file():
            reports.plot_curves(out / "metrics.csv", out / "curves.png")
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        (out / SUMMARY).write_text(reports.summary(metrics, cm, names, text) + f"\nrun directory: {out}\n")
