"""`logger=`: the dashboards beside the CSV record (conf/logger/), each checked before anything is built: its package
importable, its folders writable, an MLflow store reachable; a sweep job's runs grouped and named."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnnlab.checks.fields import OptionError
from cnnlab.checks.places import writable

# logger class -> (the module it needs, the pip extra of cnnlab that installs it)
NEEDS = {
    "pytorch_lightning.loggers.CSVLogger": (None, None),
    "pytorch_lightning.loggers.TensorBoardLogger": ("tensorboard", "tensorboard"),
    "pytorch_lightning.loggers.MLFlowLogger": ("mlflow", "mlflow"),
    "pytorch_lightning.loggers.WandbLogger": ("wandb", None),
}


def read_loggers(loggers: Mapping[str, Any] | None, run_dir: Path,
                 sweep: tuple[Path, str] | None = None) -> dict[str, dict[str, Any]]:
    """The logger entries, ready to instantiate (a sweep job's grouped by sweep and named by its overrides)."""
    if loggers is not None and not isinstance(loggers, Mapping):
        raise OptionError(f"logger = {loggers!r}; expected logger=<name> (csv, tensorboard, mlflow, wandb), a list "
                          "of them, or ~logger for none.")
    entries = {name: dict(entry) for name, entry in (loggers or {}).items()}
    for name, entry in entries.items():
        target = entry.get("_target_")
        if target not in NEEDS:
            raise OptionError(f"logger.{name}._target_ = {target!r}; expected one of cnnlab's logger configs "
                              f"(conf/logger/: csv, tensorboard, mlflow, wandb).")
        module, extra = NEEDS[target]
        if module is not None:
            try:
                importlib.import_module(module)
            except ImportError as err:
                install = f"pip install -e '.[{extra}]'" if extra else f"pip install {module}"
                raise OptionError(f"logger={name} needs the '{module}' package, which cannot be imported ({err}); "
                                  f"install it with {install}.") from None
        if entry.get("save_dir"):
            writable(Path(entry["save_dir"]), f"logger.{name}.save_dir")
    if sweep is not None:
        _name_sweep_job(entries, *sweep)
    if "mlflow" in entries:
        if entries["mlflow"].get("run_name") is None:
            entries["mlflow"]["run_name"] = run_dir.name
        _prepare_mlflow(entries["mlflow"])
    return entries


def _name_sweep_job(entries: dict[str, dict[str, Any]], sweep_dir: Path, job: str) -> None:
    if "wandb" in entries:
        entries["wandb"].update(group=sweep_dir.name, name=job)
    if "tensorboard" in entries:  # `tensorboard --logdir <sweep>/tensorboard` lists the jobs by their overrides
        entries["tensorboard"].update(save_dir=str(sweep_dir / "tensorboard"), name=job.replace(os.sep, "_"))
    if "mlflow" in entries:
        entries["mlflow"].update(experiment_name=f"{entries['mlflow']['experiment_name']}-{sweep_dir.name}",
                                 run_name=job)


def local_store(uri: str) -> Path | None:
    """The folder of a local MLflow store (`sqlite:///<path>.db` or `file:<folder>`), None for a server."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).parent
    if uri.startswith("file:"):
        return Path(uri.removeprefix("file:").removeprefix("//"))
    return None


def _prepare_mlflow(entry: dict[str, Any]) -> None:
    """A local store's folder made (and its artifact folder beside it), a remote one probed once, quickly."""
    from mlflow.tracking import MlflowClient

    uri = entry.get("tracking_uri") or "file:./mlruns"
    folder = local_store(uri)
    if folder is not None:
        writable(folder, "logger.mlflow.tracking_uri")
        folder.mkdir(parents=True, exist_ok=True)
        if entry.get("artifact_location") is None:  # else MLflow puts them in ./mlruns of wherever the command ran
            entry["artifact_location"] = str(folder.resolve() / "artifacts" / entry["experiment_name"])
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="10")  # once, not for minutes
    try:
        MlflowClient(uri).search_experiments(max_results=1)
    except Exception as err:  # noqa: BLE001 - whatever the store raises, the user needs the URI and what to do
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        reason = reason if len(reason) <= 200 else reason[:200] + "..."
        raise OptionError(f"logger.mlflow.tracking_uri = {uri} cannot be reached ({reason}); start the MLflow "
                          "server or correct the URI (or MLFLOW_TRACKING_URI), or leave logger=mlflow out.") from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
