"""Dashboards beside the CSV record: W&B, TensorBoard and MLflow, each given the same things.

Each dashboard gets the whole resolved config when training (or evaluation) starts, and the run's report when the
test loop ends: the curves and the confusion matrix as images, the classification report and the layer table as
text, the report files. Both happen in the process that holds global rank 0 after any fork or spawn, where the
loggers' runs live. Lightning closes TensorBoard and MLflow runs (`finalize`) and cnnlab closes W&B's
(`wandb.finish()`), so the jobs of a sweep never merge; in a sweep, each job is a run named by its overrides inside
one group per sweep (a W&B group, a TensorBoard folder, an MLflow experiment).
"""

from __future__ import annotations

import io
from pathlib import Path
from textwrap import indent
from typing import Any

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger

from cnnlab.report.value import Report
from cnnlab.sweep import METRICS

MLFLOW_PARAM_LENGTH = 6000  # MLflow's limit for a parameter's value (Lightning cuts at 250: a layer list would not fit)


def start_runs(loggers: list) -> None:
    """An MLflow run is created here, in the launching process: under ddp_fork or ddp_spawn, fit and test run in
    child processes that would each start a run of their own; with the run id set, they all log into this one."""
    for logger in loggers:
        if isinstance(logger, MLFlowLogger):
            _ = logger.experiment  # creates the experiment if needed, and the run


def flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a/b": 1}`; lists (a layer list) and None become text, as dashboards take them."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out |= flat(value, f"{prefix}{key}/")
        else:
            out[f"{prefix}{key}"] = value if isinstance(value, int | float | str | bool) else str(value)
    return out


class Dashboards(pl.Callback):
    """Sends the whole config at setup and the report at test end to every dashboard logger of the trainer."""

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self._config_sent = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._config_sent or not trainer.is_global_zero:
            return
        self._config_sent = True
        params = flat(self.config)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_hyperparams(self.config)
            elif isinstance(logger, TensorBoardLogger):
                _tensorboard_hparams(logger, params)
            elif isinstance(logger, MLFlowLogger):
                from mlflow.entities import Param

                batch = [Param(k, str(v)[:MLFLOW_PARAM_LENGTH]) for k, v in params.items()]
                for start in range(0, len(batch), 100):  # MLflow takes at most 100 per call
                    logger.experiment.log_batch(logger.run_id, params=batch[start:start + 100])

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """MLflow with `log_model`: the best checkpoint too, under `checkpoints/` (Lightning's own upload follows the
        checkpoint callback that saved last, which is cnnlab's last.ckpt)."""
        if not trainer.is_global_zero or not self.config.get("logger", {}).get("mlflow", {}).get("log_model"):
            return
        best = [c.best_model_path for c in trainer.checkpoint_callbacks if c.monitor and c.best_model_path]
        for logger in trainer.loggers:
            if isinstance(logger, MLFlowLogger):
                for path in best:
                    logger.experiment.log_artifact(logger.run_id, path, "checkpoints")



def send_report(trainer: pl.Trainer, report: Report, images: dict[str, bytes], files: list[Path],
                arch_table: str) -> None:
    """The report to every dashboard logger: the figures as images, the classification report and the layer table as
    text, the report files (written by the files sink just before; with the layer table) as uploads."""
    texts = {"classification_report": report.per_class_text, "arch_table": arch_table}
    step = trainer.global_step
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            for tag, png in images.items():
                logger.log_image(key=tag, images=[_image(png)])
            logger.log_text(key="classification_report", columns=["report"], data=[[report.per_class_text]])
            for path in files:
                logger.experiment.save(str(path), base_path=str(path.parent), policy="now")
        elif isinstance(logger, TensorBoardLogger):
            for tag, png in images.items():
                logger.experiment.add_image(tag, np.asarray(_image(png).convert("RGB")), step, dataformats="HWC")
            for tag, text in texts.items():  # indented: TensorBoard renders text as Markdown
                logger.experiment.add_text(tag, indent(text, "    "), step)
            logger.experiment.flush()
        elif isinstance(logger, MLFlowLogger):
            config = files[0].parent / "config.yaml"  # W&B keeps the config itself (its files/config.yaml)
            for path in [*files, *([config] if config.is_file() else [])]:
                logger.experiment.log_artifact(logger.run_id, str(path))


def _image(png: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(png))


def _tensorboard_hparams(logger: TensorBoardLogger, params: dict[str, Any]) -> None:
    """The config in TensorBoard's HParams view, with the metrics its table shows: the view reads each metric's last
    value from the run's own scalars, so the final validation and test figures appear once they are logged."""
    from torch.utils.tensorboard.summary import hparams

    summaries = hparams(params, {metric: 0.0 for metric in METRICS})
    writer = logger.experiment._get_file_writer()  # what Lightning's own log_hyperparams writes to
    for summary in summaries:
        writer.add_summary(summary)


def close(trainer: pl.Trainer) -> None:
    """End W&B's run (Lightning finalizes TensorBoard and MLflow), so that the next job of a sweep starts its own."""
    if any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
        import wandb

        wandb.finish()
