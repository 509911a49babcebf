"""logger=mlflow: a local SQLite store under outputs/mlflow/ by default, or any tracking server; the config as
parameters, the report files (and with `log_model` the best checkpoint) as artifacts; one experiment per sweep."""

import os
from pathlib import Path
from typing import Any

from cnnlab.checks.fields import OptionError
from cnnlab.checks.places import writable
from cnnlab.loggers import Adapter

PARAM_LENGTH = 6000  # MLflow's limit for a parameter's value (Lightning cuts at 250: a layer list would not fit)


def local_store(uri: str) -> Path | None:
    """The folder of a local MLflow store (`sqlite:///<path>.db` or `file:<folder>`), None for a server."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).parent
    if uri.startswith("file:"):
        return Path(uri.removeprefix("file:").removeprefix("//"))
    return None


class MLflow(Adapter):
    target = "pytorch_lightning.loggers.MLFlowLogger"
    package = extra = "mlflow"

    def check(self, name: str, entry: dict[str, Any], run_dir: Path, sweep: tuple[Path, str] | None) -> None:
        super().check(name, entry, run_dir, sweep)
        if sweep is not None:
            entry.update(experiment_name=f"{entry['experiment_name']}-{sweep[0].name}", run_name=sweep[1])
        if entry.get("run_name") is None:
            entry["run_name"] = run_dir.name
        uri = entry.get("tracking_uri") or "file:./mlruns"
        folder = local_store(uri)
        if folder is not None:
            writable(folder, "logger.mlflow.tracking_uri")
            if entry.get("artifact_location") is None:  # else MLflow puts them in ./mlruns of wherever the command ran
                entry["artifact_location"] = str(folder.resolve() / "artifacts" / entry["experiment_name"])
        else:
            _reachable(uri)

    def start(self, logger) -> None:
        """The run is made here, in the launching process: under ddp_fork or ddp_spawn, fit and test run in child
        processes that would each start a run of their own; with its id set, they all log into this one."""
        folder = local_store(logger._tracking_uri or "")
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        _ = logger.experiment

    def send_config(self, logger, config: dict[str, Any]) -> None:
        from mlflow.entities import Param

        from cnnlab.loggers.flat import flat

        batch = [Param(k, str(v)[:PARAM_LENGTH]) for k, v in flat(config).items()]
        for start in range(0, len(batch), 100):  # MLflow takes at most 100 per call
            logger.experiment.log_batch(logger.run_id, params=batch[start:start + 100])

    def send_report(self, logger, report, images, texts, files, step) -> None:
        config = files[0].parent / "config.yaml"  # W&B keeps the config itself (its files/config.yaml)
        for path in [*files, *([config] if config.is_file() else [])]:
            logger.experiment.log_artifact(logger.run_id, str(path))

    def fit_end(self, logger, best: list[str], config: dict[str, Any]) -> None:
        """With `log_model`, the best checkpoint too, under `checkpoints/` (Lightning's own upload follows the
        checkpoint callback that saved last, which is cnnlab's last.ckpt)."""
        if config.get("logger", {}).get("mlflow", {}).get("log_model"):
            for path in best:
                logger.experiment.log_artifact(logger.run_id, path, "checkpoints")


def _reachable(uri: str) -> None:
    """A tracking server is asked once, quickly: trying is the only honest check that it answers."""
    from mlflow.tracking import MlflowClient

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
