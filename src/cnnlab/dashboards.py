"""Dashboards beside the CSV record (W&B, TensorBoard, MLflow, through their adapters in `cnnlab.loggers`), each given
the same things: the whole resolved config when training (or evaluation) starts, and the run's report when the test
loop ends. Both happen in the process that holds global rank 0 after any fork or spawn, where the loggers' runs live.
"""

from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from cnnlab.loggers import Adapter
from cnnlab.report.value import Report


class Dashboards(pl.Callback):
    """Sends the whole config at setup, the best checkpoints at fit end and the report at test end."""

    def __init__(self, config: dict[str, Any], adapters: list[Adapter]):
        self.config, self.adapters = config, adapters  # in the order of the trainer's loggers
        self._config_sent = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._config_sent or not trainer.is_global_zero:
            return
        self._config_sent = True
        for adapter, logger in self._here(trainer):
            adapter.send_config(logger, self.config)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            best = [c.best_model_path for c in trainer.checkpoint_callbacks if c.monitor and c.best_model_path]
            for adapter, logger in self._here(trainer):
                adapter.fit_end(logger, best, self.config)

    def send_report(self, trainer: pl.Trainer, report: Report, images: dict[str, bytes], files: list[Path],
                    arch_table: str) -> None:
        texts = {"classification_report": report.per_class_text, "arch_table": arch_table}
        for adapter, logger in self._here(trainer):
            adapter.send_report(logger, report, images, texts, files, trainer.global_step)

    def finish(self, trainer: pl.Trainer) -> None:
        """End the runs Lightning does not (W&B's), so that the next job of a sweep starts its own."""
        for adapter, logger in self._here(trainer):
            adapter.finish(logger)

    def _here(self, trainer: pl.Trainer) -> list[tuple[Adapter, Any]]:
        """Each adapter with this process's logger object (a forked or spawned child has copies of them)."""
        return list(zip(self.adapters, trainer.loggers))


def dashboards(trainer: pl.Trainer) -> Dashboards | None:
    return next((c for c in trainer.callbacks if isinstance(c, Dashboards)), None)
