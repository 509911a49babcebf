"""Dashboards beside the CSV record: W&B, TensorBoard and MLflow, each given the same things.

Each dashboard gets the whole resolved config when training (or evaluation) starts, and the run's report when the
test loop ends: the curves and the confusion matrix as images, the classification report and the layer table as
text, the report files. Both happen in the process that holds global rank 0 after any fork or spawn, where the
loggers' runs live. Lightning closes TensorBoard and MLflow runs (`finalize`) and cnnlab closes W&B's
(`wandb.finish()`), so the jobs of a sweep never merge; in a sweep, each job is a run named by its overrides inside
one group per sweep (a W&B group, a TensorBoard folder, an MLflow experiment).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from textwrap import indent
from typing import Any

import numpy as np
import pytorch_lightning as pl
from omegaconf import DictConfig, open_dict
from pytorch_lightning.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger

from cnnlab.callbacks import SUMMARY
from cnnlab.errors import ConfigError
from cnnlab.sweep import METRICS

# logger class -> (the module it needs, the pip extra of cnnlab that installs it)
NEEDS = {
    "pytorch_lightning.loggers.TensorBoardLogger": ("tensorboard", "tensorboard"),
    "pytorch_lightning.loggers.MLFlowLogger": ("mlflow", "mlflow"),
    "pytorch_lightning.loggers.WandbLogger": ("wandb", None),
}
REPORT_TEXTS = {"classification_report": "classification_report.txt", "arch_table": "arch_table.txt"}
REPORT_IMAGES = {"curves": "curves.png", "confusion_matrix": "confusion_matrix.png"}
REPORT_FILES = ("arch_table.txt", "classification_report.txt", "classification_report.json",
                "confusion_matrix.csv", SUMMARY, *REPORT_IMAGES.values())
MLFLOW_PARAM_LENGTH = 6000  # MLflow's limit for a parameter's value (Lightning cuts at 250: a layer list would not fit)


def prepare(logger_cfg: DictConfig, run_dir: Path, sweep: tuple[Path, str] | None = None) -> None:
    """Before anything is built: every logger's package is there, a sweep job's runs are grouped and named, and an
    MLflow store is ready (a local one's folder made, a remote one answering); otherwise one sentence."""
    for name, entry in logger_cfg.items():
        module, extra = NEEDS.get(entry.get("_target_"), (None, None))
        if module is None:
            continue
        try:
            importlib.import_module(module)
        except ImportError as err:
            install = f"pip install -e '.[{extra}]'" if extra else f"pip install {module}"
            raise ConfigError(f"logger={name} needs the '{module}' package, which cannot be imported ({err}); "
                              f"install it with {install}.") from None
    with open_dict(logger_cfg):
        if sweep is not None:
            _name_sweep_job(logger_cfg, *sweep)
        if "mlflow" in logger_cfg:
            if logger_cfg.mlflow.get("run_name") is None:
                logger_cfg.mlflow.run_name = run_dir.name
            _prepare_mlflow(logger_cfg.mlflow)


def _name_sweep_job(logger_cfg: DictConfig, sweep_dir: Path, job: str) -> None:
    if "wandb" in logger_cfg:
        logger_cfg.wandb.group, logger_cfg.wandb.name = sweep_dir.name, job
    if "tensorboard" in logger_cfg:  # `tensorboard --logdir <sweep>/tensorboard` lists the jobs by their overrides
        logger_cfg.tensorboard.save_dir = str(sweep_dir / "tensorboard")
        logger_cfg.tensorboard.name = job.replace(os.sep, "_")
    if "mlflow" in logger_cfg:
        logger_cfg.mlflow.experiment_name = f"{logger_cfg.mlflow.experiment_name}-{sweep_dir.name}"
        logger_cfg.mlflow.run_name = job


def local_store(uri: str) -> Path | None:
    """The folder of a local MLflow store (`sqlite:///<path>.db` or `file:<folder>`), None for a server."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).parent
    if uri.startswith("file:"):
        return Path(uri.removeprefix("file:").removeprefix("//"))
    return None


def _prepare_mlflow(entry: DictConfig) -> None:
    from mlflow.tracking import MlflowClient

    uri = entry.get("tracking_uri") or "file:./mlruns"
    folder = local_store(uri)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        if entry.get("artifact_location") is None:  # else MLflow puts them in ./mlruns of wherever the command ran
            entry.artifact_location = str(folder.resolve() / "artifacts" / entry.experiment_name)
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="10")  # once, not for minutes
    try:
        MlflowClient(uri).search_experiments(max_results=1)
    except Exception as err:  # whatever the store raises, the user needs the URI and what to do
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        reason = reason if len(reason) <= 200 else reason[:200] + "..."
        raise ConfigError(f"logger.mlflow.tracking_uri = {uri} cannot be reached ({reason}); start the MLflow "
                          "server or correct the URI (or MLFLOW_TRACKING_URI), or leave logger=mlflow out.") from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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

    def __init__(self, config: dict[str, Any], out_dir: str | Path):
        self.config, self.out_dir = config, Path(out_dir)
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

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """After RunReport (earlier in the callback list) has written the report files."""
        if not trainer.is_global_zero:
            return
        out = self.out_dir
        images = {tag: out / name for tag, name in REPORT_IMAGES.items() if (out / name).is_file()}
        texts = {tag: (out / name).read_text() for tag, name in REPORT_TEXTS.items() if (out / name).is_file()}
        files = [out / name for name in REPORT_FILES if (out / name).is_file()]
        step = trainer.global_step
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                for tag, path in images.items():
                    logger.log_image(key=tag, images=[str(path)])
                if "classification_report" in texts:
                    logger.log_text(key="classification_report", columns=["report"],
                                    data=[[texts["classification_report"]]])
                for path in files:
                    logger.experiment.save(str(path), base_path=str(out), policy="now")
            elif isinstance(logger, TensorBoardLogger):
                for tag, path in images.items():
                    logger.experiment.add_image(tag, _rgb(path), step, dataformats="HWC")
                for tag, text in texts.items():  # indented: TensorBoard renders text as Markdown
                    logger.experiment.add_text(tag, indent(text, "    "), step)
                logger.experiment.flush()
            elif isinstance(logger, MLFlowLogger):  # W&B keeps the config itself (its files/config.yaml)
                for path in [*files, out / "config.yaml"]:
                    logger.experiment.log_artifact(logger.run_id, str(path))


def _rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


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
