"""Lightning callbacks of cnnlab's own: the NaN stop, and the report made where the test loop ran.

The report is made at the end of the test loop, on global rank 0, inside whatever process ran it: with `ddp_spawn`
that is a worker, which holds the synced confusion matrix while the launching process does not.
"""

import math
from pathlib import Path

import pytorch_lightning as pl

from cnnlab.checks.errors import CnnlabError


class NonFiniteLoss(CnnlabError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(pl.Callback):
    """Stops when the training loss has become NaN or infinite, before a checkpoint can store the broken weights
    (Lightning runs checkpoint callbacks after this one).

    It reads the epoch's summed training loss (the model's `stats["train_"].loss_sum`, which one non-finite loss
    makes non-finite) at the logging interval (`trainer.log_every_n_steps`), before every step checkpoint
    (`checkpoint_every_n_steps`) and at the epoch's end: not every step, since on a GPU each read is a sync that
    idles the device. The error names the steps since the previous read."""

    def __init__(self, checkpoint_every_n_steps: int | None = None):
        self.checkpoint_every = checkpoint_every_n_steps
        self._checked = 0  # the global step of the previous read

    def on_train_start(self, trainer: pl.Trainer, pl_module) -> None:
        self._checked = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step, every = trainer.global_step, max(1, trainer.log_every_n_steps)
        if step % every == 0 or (self.checkpoint_every and step % self.checkpoint_every == 0):
            self._check(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        self._check(trainer, pl_module)  # before the module resets its statistics for the next epoch

    def _check(self, trainer: pl.Trainer, pl_module) -> None:
        stats = getattr(pl_module, "stats", {})
        if "train_" not in stats:
            return
        total = float(stats["train_"].loss_sum)  # the one read of the device
        since, self._checked = self._checked, trainer.global_step
        if math.isfinite(total):
            return
        last = Path(trainer.checkpoint_callback.dirpath) / "last.ckpt" if trainer.checkpoint_callback else None
        kept = f" The last good checkpoint is {last}." if last and last.is_file() else ""
        raise NonFiniteLoss(
            f"the training loss became {total} at epoch {trainer.current_epoch}, in steps {since + 1} to "
            f"{trainer.global_step}.{kept} Likely causes: a learning rate too high for this optimizer (try optim.lr "
            "10x lower), inputs not normalised (check data.mean and data.std), or no batch norm in a deep network "
            "(batch_norm: true on C layers).")


class ReportSinks(pl.Callback):
    """Where the test loop ends, on global rank 0: the report made once (`report.value`) and handed to each sink in
    this order: the files, then the dashboards (which upload those files). The task prints it last on the console;
    under a forked or spawned strategy the value comes back to the launching process with the metrics."""

    def __init__(self, out_dir: str | Path, arch_table: str, sample: str | None = None):
        self.out_dir, self.arch_table, self.sample = Path(out_dir), arch_table, sample  # sample: the run's limits
        self.report = None

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        from cnnlab.dashboards import dashboards
        from cnnlab.report.files import draw, write_files
        from cnnlab.report.value import make_report

        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        report = make_report(metrics, pl_module.test_confusion, trainer.datamodule.class_names, pl_module.history,
                             self.out_dir, self.sample)
        images = draw(report)
        files = write_files(report, self.out_dir, images)
        sink = dashboards(trainer)
        if sink is not None:
            sink.send_report(trainer, report, images, [*files, self.out_dir / "arch_table.txt"], self.arch_table)
        self.report = report

