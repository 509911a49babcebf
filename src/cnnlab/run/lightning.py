"""Workarounds for Lightning behaviour, in one place, each saying what it works around: tips and warnings that do not
apply to cnnlab (`quiet_lightning`), a CSV writer made in a forked child that would delete or rewrite metrics.csv
(`continue_csv`), a resumed run's new folder that would start metrics.csv empty (`carry_history`), curves and report
that forked children would not send back (`Forked`), `ckpt_path="best"` that wants one monitored checkpoint."""

import csv
import logging
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.strategies.launchers.multiprocessing import _MultiProcessingLauncher


class _DropTips(logging.Filter):
    """Lightning's advertising tips say nothing about the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def quiet_lightning() -> None:
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_DropTips())
    for message in (
        r"Experiment logs directory .* exists and is not empty",  # the run dir already holds .hydra/
        r"The number of training batches .* is smaller than the logging interval",  # cnnlab logs per epoch
        r".*LeafSpec.* is deprecated",
        # a resumed run writes a new run folder by design (its own best and last checkpoints); the old folder's best
        # checkpoint is not this run's
        r"The dirpath has changed from .* won't be reloaded",
        # cnnlab's loaders do resume mid-epoch (the in-memory sampler skips the batches done, litdata's loader keeps
        # its position in the checkpoint): the resumed run sees exactly the uninterrupted run's batches
        r".*resuming from a checkpoint that ended before the epoch ended.*",
    ):
        warnings.filterwarnings("ignore", message=message)


def continue_csv(trainer: pl.Trainer) -> None:
    """Each CSV writer exists in this process and knows the columns its metrics.csv has, before any child is made."""
    for csv_logger in (lg for lg in trainer.loggers if isinstance(lg, CSVLogger)):
        writer, path = csv_logger.experiment, Path(csv_logger.log_dir) / "metrics.csv"
        if path.is_file():
            with open(path, newline="") as f:
                writer.metrics_keys = sorted(set(writer.metrics_keys) | set(next(csv.reader(f), [])))


def carry_history(trainer: pl.Trainer, ckpt_path: Path, epoch: int) -> None:
    """On resume, start the new run's metrics.csv with the old run's epochs up to the checkpoint's."""
    old = Path(ckpt_path).resolve().parent.parent / "metrics.csv"
    for csv_logger in (lg for lg in trainer.loggers if isinstance(lg, CSVLogger)):
        new = Path(csv_logger.log_dir) / "metrics.csv"
        if not old.is_file() or new.resolve() == old or new.exists():
            continue
        with open(old, newline="") as src:
            reader = csv.DictReader(src)
            rows = [r for r in reader if r.get("epoch") and float(r["epoch"]) <= epoch]
            fields = reader.fieldnames or []
        _ = csv_logger.experiment  # the writer is created first: it deletes a metrics.csv it finds
        with open(new, "w", newline="") as dst:
            writer = csv.DictWriter(dst, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


def best_checkpoint(trainer: pl.Trainer) -> str | None:
    """The best checkpoint by the monitored metric (the latest where nothing is monitored), if any was saved."""
    callbacks = sorted(trainer.checkpoint_callbacks, key=lambda c: c.monitor is None)
    return next((c.best_model_path for c in callbacks if c.best_model_path), None)


class _ReportCarrier(_MultiProcessingLauncher):
    def get_extra_results(self, trainer: pl.Trainer) -> dict[str, Any]:
        extra = super().get_extra_results(trainer)
        sinks = report_sinks(trainer)
        extra["cnnlab_report"] = sinks.report if sinks is not None else None
        extra["cnnlab_history"] = trainer.lightning_module.history
        return extra

    def update_main_process_results(self, trainer: pl.Trainer, extra: dict[str, Any]) -> None:
        super().update_main_process_results(trainer, extra)
        sinks = report_sinks(trainer)
        if sinks is not None and extra.get("cnnlab_report") is not None:
            sinks.report = extra["cnnlab_report"]
        trainer.lightning_module.history = extra.get("cnnlab_history", {})


class Forked(DDPStrategy):
    """ddp_fork / ddp_spawn, whose launcher also brings the report back from the test child."""

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        self._launcher = _ReportCarrier(self, start_method=self._start_method)


def strategy(name: Any) -> Any:
    """The Trainer's strategy argument: forked and spawned DDP as `Forked`, anything else as given."""
    methods = {"ddp_fork": "fork", "ddp_spawn": "spawn"}
    return Forked(start_method=methods[name]) if isinstance(name, str) and name in methods else name


def report_sinks(trainer: pl.Trainer):
    from cnnlab.callbacks import ReportSinks

    return next((c for c in trainer.callbacks if isinstance(c, ReportSinks)), None)
