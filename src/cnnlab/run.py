"""What `train.py` and `eval.py` do once Hydra has composed the config: check, build, train, test, report.

Everything that can be checked without data (the layer list, the data options, the checkpoint path,
the network's shapes) is checked first, so that a mistake costs seconds, not a data load.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from cnnlab.callbacks import SUMMARY, RunReport, StopOnNonFiniteLoss
from cnnlab.cli import in_multirun
from cnnlab.dashboards import Dashboards, close, prepare, start_runs
from cnnlab.data import make_datamodule
from cnnlab.errors import ArchError, ConfigError
from cnnlab.inference import read_checkpoint, read_cnnlab_checkpoint
from cnnlab.layers import load_layers, parse_layers, resize
from cnnlab.layers.scale import has_repeat
from cnnlab.model import LayerListClassifier, decay_kwargs
from cnnlab.nodes import wait_for_master
from cnnlab.progress import LineProgress
from cnnlab.schedules import is_per_step
from cnnlab.timing import Timing, process_age

log = logging.getLogger("cnnlab")


class _DropTips(logging.Filter):
    """Lightning's advertising tips say nothing about the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def quiet_lightning() -> None:
    """Silence the warnings that do not apply to cnnlab's way of running Lightning."""
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_DropTips())
    for message in (
        r"Experiment logs directory .* exists and is not empty",  # the run dir already holds .hydra/
        r"The number of training batches .* is smaller than the logging interval",  # cnnlab logs per epoch
        r".*LeafSpec.* is deprecated",
    ):
        warnings.filterwarnings("ignore", message=message)


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


def multiplier(value: Any, key: str) -> float:
    """`arch.width` / `arch.depth`: a number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{key} = {value!r}; expected a number > 0 (1: the list as written, 1.5: half as much "
                          "again).")
    return float(value)


def arch_layers(arch: DictConfig) -> list[dict[str, Any]]:
    """The arch config's layer list (inline `layers`, or a file at `path`), checked, at `arch.width` and `arch.depth`
    (REPEAT blocks unrolled), as plain data with every field filled in: what is built and what checkpoints hold."""
    arch = _plain(arch)
    if arch.get("path") and arch.get("layers"):
        raise ArchError("the arch config sets both 'layers' and 'path'; keep one.")
    raw = load_layers(arch["path"]) if arch.get("path") else arch.get("layers")
    specs = parse_layers(raw)  # raises ArchError naming the layer and field, as the user wrote them
    width, depth = multiplier(arch.get("width", 1), "arch.width"), multiplier(arch.get("depth", 1), "arch.depth")
    if depth != 1 and not has_repeat(specs):
        raise ConfigError(f"arch.depth = {depth:g}, but the layer list has no REPEAT block whose 'times' it could "
                          "multiply; wrap the layers to repeat in {type: REPEAT, times: N, layers: [...]} or leave "
                          "arch.depth at 1.")
    return [s.to_dict() for s in resize(specs, width, depth)]


def same_layers(a: list, b: list) -> bool:
    """Whether two stored layer lists build the same network (a checkpoint of an older cnnlab holds the list as
    written, a newer one every field filled in)."""
    try:
        return [s.to_dict() for s in resize(parse_layers(a))] == [s.to_dict() for s in resize(parse_layers(b))]
    except ArchError:
        return False


def _instantiate(cfg: Any, what: str) -> Any:
    try:
        return instantiate(cfg)
    except InstantiationException as err:
        raise ConfigError(f"{what}: {err}".splitlines()[0]) from None


_INT_TRAINER_KEYS = ("max_epochs", "min_epochs", "max_steps", "log_every_n_steps", "check_val_every_n_epoch",
                     "accumulate_grad_batches", "num_nodes")


def make_trainer(cfg: DictConfig, callbacks: list[pl.Callback] = (), quiet: bool = False) -> pl.Trainer:
    """Lightning's Trainer from `cfg.trainer`, with the config's callbacks and loggers, cnnlab's own callbacks and
    the given ones; `quiet`: no progress lines (a search trial)."""
    for key in _INT_TRAINER_KEYS:  # Lightning only asserts these, deep inside fit
        value = cfg.trainer.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ConfigError(f"trainer.{key} = {value!r}; expected an integer.")
    trainer_cfg, logger_cfg = scale_out(cfg)
    callbacks = [*(_instantiate(c, "callbacks") for c in (cfg.get("callbacks") or {}).values()), *callbacks]
    out_dir = cfg.paths.output_dir
    callbacks += [StopOnNonFiniteLoss(cfg.get("checkpoint_every_n_steps")), RunReport(out_dir),
                  Dashboards(_plain(cfg), out_dir), Timing()]
    with open_dict(trainer_cfg):  # a progress bar in a terminal; elsewhere (nohup, SLURM, CI, a pipe) log lines
        if trainer_cfg.get("enable_progress_bar") is None:
            trainer_cfg.enable_progress_bar = sys.stdout.isatty()
    if not trainer_cfg.enable_progress_bar and not quiet:
        callbacks.append(LineProgress())
    every = cfg.get("checkpoint_every_n_steps")
    if every:  # last.ckpt also every N steps, for long epochs on machines that may be taken away
        callbacks.append(ModelCheckpoint(dirpath=Path(out_dir) / "checkpoints", filename="last",
                                         save_top_k=1, every_n_train_steps=every, enable_version_counter=False))
    loggers = [_instantiate(c, "logger") for c in logger_cfg.values()]
    start_runs(loggers)
    return _instantiate_trainer(trainer_cfg, callbacks, loggers)


def scale_out(cfg: DictConfig) -> tuple[DictConfig, DictConfig]:
    """Trainer and logger configs, checked and adjusted for a sweep job: DDP that re-launches sys.argv would re-run
    the whole sweep in every process, so it becomes ddp_fork (CPU) or ddp_spawn (GPU); dashboard runs are grouped by
    sweep and named by their overrides."""
    trainer_cfg = cfg.trainer.copy()
    logger_cfg = (cfg.get("logger") or OmegaConf.create({})).copy()
    hydra_cfg = HydraConfig.get() if in_multirun() else None
    sweep = (Path(hydra_cfg.sweep.dir), hydra_cfg.job.override_dirname or f"job{hydra_cfg.job.num}") if hydra_cfg \
        else None
    prepare(logger_cfg, Path(cfg.paths.output_dir), sweep)
    if hydra_cfg is None:
        if (trainer_cfg.get("num_nodes") or 1) > 1 and trainer_cfg.get("strategy") in ("ddp_fork", "ddp_spawn"):
            # a forked run tests in another child process than it trained in; on nodes other than the master that
            # child would not know the best checkpoint and the ranks would disagree: one process per device instead
            log.info("trainer.num_nodes=%s: trainer.strategy=%s becomes ddp (one process per device, started by "
                     "Lightning, torchrun or SLURM)", trainer_cfg.num_nodes, trainer_cfg.strategy)
            trainer_cfg.strategy = "ddp"
        return trainer_cfg, logger_cfg
    if trainer_cfg.get("strategy") == "ddp":
        # fork on the CPU (spawn would share the model's CPU tensors between ranks); spawn on GPUs (CUDA cannot fork)
        replacement = "ddp_fork" if trainer_cfg.get("accelerator") == "cpu" else "ddp_spawn"
        log.warning("multirun: trainer.strategy=ddp re-launches the command line, which would re-run the sweep "
                    "in every process; this job uses %s instead (or launch one job per run with SLURM).", replacement)
        trainer_cfg.strategy = replacement
    return trainer_cfg, logger_cfg


def already_done(cfg: DictConfig, out_dir: Path) -> dict[str, float] | None:
    """In a sweep re-run into the same folder, a job whose config is unchanged and finished is not run again."""
    results, config = out_dir / "results.json", out_dir / "config.yaml"
    if in_multirun() and results.is_file() and config.is_file() and \
            config.read_text() == OmegaConf.to_yaml(cfg, resolve=True):
        log.info("%s: finished before with the same config; not run again.", out_dir)
        return json.loads(results.read_text())
    return None


def _instantiate_trainer(trainer_cfg, callbacks, loggers) -> pl.Trainer:
    try:
        return instantiate(trainer_cfg, callbacks=callbacks, logger=loggers or False)
    except (InstantiationException, TypeError, ValueError, AssertionError, MisconfigurationException) as err:
        cause = err.__cause__ or err
        detail = str(cause).splitlines()[0] if str(cause) else "a value of the wrong type"
        raise ConfigError(f"trainer: {type(cause).__name__}: {detail}; check the trainer.* options against "
                          "Lightning's Trainer arguments (conf/trainer/).") from None


def make_optimizer(cfg: DictConfig, scheduler_cfg: DictConfig | None, reg: float):
    """The optimizer and scheduler factories, tried once on a dummy parameter so that a bad value fails before
    any data is read rather than inside fit."""
    factory = _instantiate(cfg, "optim")
    try:
        optimizer = factory(params=[torch.zeros(1, requires_grad=True)], **decay_kwargs(factory, reg))
    except (TypeError, ValueError) as err:
        hint = " (weight_decay is model.reg)" if "weight_decay" in str(err) else ""
        raise ConfigError(f"optim ({cfg.get('_target_')}): {err}{hint}; check the optim.* overrides.") from None
    scheduler = _instantiate(scheduler_cfg, "scheduler") if scheduler_cfg else None
    if scheduler is not None:
        try:
            steps = {"total_steps": 100} if is_per_step(scheduler) else {}
            trial = scheduler(optimizer=optimizer, **steps)
            optimizer.step()  # no gradients: changes nothing, but lets the scheduler take one real step
            trial.step()
        except (TypeError, ValueError, ZeroDivisionError) as err:
            raise ConfigError(f"scheduler ({scheduler_cfg.get('_target_')}): {err}; check the scheduler.* "
                              "overrides.") from None
    return factory, scheduler


def check_root(cfg: DictConfig) -> None:
    """Root options that nothing downstream checks before it is too late."""
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise ConfigError(f"seed = {cfg.seed!r}; expected an integer.")
    smoothing = cfg.model.get("label_smoothing", 0.0)
    if not isinstance(smoothing, int | float) or not 0 <= smoothing < 1:
        raise ConfigError(f"model.label_smoothing = {smoothing!r}; expected a number 0 <= x < 1.")
    every = cfg.get("checkpoint_every_n_steps")
    if every is not None and (not isinstance(every, int) or isinstance(every, bool) or every < 1):
        raise ConfigError(f"checkpoint_every_n_steps = {every!r}; expected a positive integer or null.")


def _carry_history(trainer: pl.Trainer, ckpt_path: str, epoch: int) -> None:
    """On resume, start the new run's metrics.csv with the old run's epochs up to the checkpoint's."""
    old = Path(ckpt_path).resolve().parent.parent / "metrics.csv"
    for csv_logger in (lg for lg in trainer.loggers if isinstance(lg, CSVLogger)):
        new = Path(csv_logger.log_dir) / "metrics.csv"
        if not old.is_file() or new.exists():
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


def _csv_continues(trainer: pl.Trainer) -> None:
    """Each CSV writer exists in this process and knows the columns its metrics.csv has. Under ddp_fork or ddp_spawn,
    fit and test run in child processes that get copies of this process's writer: one created in a child would
    delete the metrics.csv that fit wrote, one that does not know its columns would rewrite it without them."""
    for csv_logger in (lg for lg in trainer.loggers if isinstance(lg, CSVLogger)):
        writer, path = csv_logger.experiment, Path(csv_logger.log_dir) / "metrics.csv"
        if path.is_file():
            with open(path, newline="") as f:
                writer.metrics_keys = sorted(set(writer.metrics_keys) | set(next(csv.reader(f), [])))


def _check_resume(checkpoint: dict[str, Any], layers: list, data_cfg: dict, ckpt_path: str) -> None:
    saved = checkpoint.get("hyper_parameters", {})
    saved_data = saved.get("data_info", {}).get("config")
    if not same_layers(saved.get("layers") or [], layers) or (saved_data is not None and saved_data != data_cfg):
        overrides = Path(ckpt_path).resolve().parent.parent / ".hydra" / "overrides.yaml"
        hint = f" (that run's overrides: {overrides.read_text().strip()})" if overrides.is_file() else ""
        raise ConfigError(f"{ckpt_path} was trained with a different arch or data config than this command's; "
                          f"resume with the same arch=... and data=... options as the original run{hint}.")


def best_checkpoint(trainer: pl.Trainer) -> str | None:
    """The best checkpoint by the monitored metric (the latest where nothing is monitored), if any was saved."""
    callbacks = sorted(trainer.checkpoint_callbacks, key=lambda c: c.monitor is None)
    return next((c.best_model_path for c in callbacks if c.best_model_path), None)


def evaluate(trainer: pl.Trainer, model: LayerListClassifier, datamodule,
             ckpt_path: str | None = None) -> dict[str, float]:
    """Test split and (unaugmented) training set; the RunReport callback writes the report files."""
    _csv_continues(trainer)
    trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    return _scalars(trainer)


def _scalars(trainer: pl.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}


def _write_results(out_dir: Path, metrics: dict[str, float], trainer: pl.Trainer) -> None:
    """results.json: the final metrics of every split and where the wall time went, for sweeps and scripts."""
    timing = next((c for c in trainer.callbacks if isinstance(c, Timing)), None)
    if timing is not None:
        metrics |= timing.times | {"time/total_s": round(process_age(), 3)}
    if trainer.is_global_zero:
        (out_dir / "results.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def _finish(trainer: pl.Trainer, out_dir: Path) -> None:
    """Close the dashboards' runs (so that the jobs of a sweep never merge into one), then print the run's summary:
    the last thing on the console, after every progress bar and logger message."""
    close(trainer)
    summary = out_dir / SUMMARY
    if trainer.is_global_zero and summary.is_file():
        print("\n" + summary.read_text(), end="", flush=True)


@dataclass
class Built:
    """A training run, built from its config and ready to fit."""

    model: LayerListClassifier
    datamodule: pl.LightningDataModule
    trainer: pl.Trainer
    ckpt_path: str | None


def build(cfg: DictConfig, datamodule: pl.LightningDataModule | None = None, callbacks: list[pl.Callback] = (),
          quiet: bool = False) -> Built:
    """Everything a training run needs, from its config, checked before any data is read: what `train.py` fits, what
    a search trial fits (with its data module, loaded once for the study, and its pruning callback) and what the
    benchmarks time. `quiet`: no layer table or progress lines on the console (the table is still saved)."""
    check_root(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    layers = arch_layers(cfg.arch)
    data_cfg = _plain(cfg.data)
    datamodule = datamodule or make_datamodule(data_cfg, cfg.paths.data_dir)
    ckpt_path = cfg.ckpt_path
    checkpoint = read_checkpoint(ckpt_path) if ckpt_path else None
    if checkpoint is not None:
        _check_resume(checkpoint, layers, data_cfg, ckpt_path)
    optimizer, scheduler = make_optimizer(cfg.optim, cfg.get("scheduler"), cfg.model.reg)
    model = LayerListClassifier(layers, {**datamodule.info(), "config": data_cfg}, optimizer=optimizer,
                                scheduler=scheduler, **_plain(cfg.model))
    table = model.net.table()
    if not quiet:
        print(table)
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "arch_table.txt").write_text(table + "\n")
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    trainer = make_trainer(cfg, callbacks, quiet)
    if checkpoint is not None:
        _carry_history(trainer, ckpt_path, checkpoint.get("epoch", -1))
    _csv_continues(trainer)
    return Built(model, datamodule, trainer, ckpt_path)


def train(cfg: DictConfig) -> dict[str, float]:
    out_dir = Path(cfg.paths.output_dir)
    quiet_lightning()
    done = already_done(cfg, out_dir)
    if done is not None:
        return done
    for stale in ("error.txt", SUMMARY):  # from an earlier attempt of this sweep job
        (out_dir / stale).unlink(missing_ok=True)
    wait_for_master(cfg.trainer.get("num_nodes") or 1, cfg.get("master_timeout_s", 300))
    run = build(cfg)
    trainer = run.trainer
    trainer.fit(run.model, datamodule=run.datamodule, ckpt_path=run.ckpt_path)
    metrics = _scalars(trainer)
    if cfg.get("test", True):
        metrics |= evaluate(trainer, run.model, run.datamodule, ckpt_path=best_checkpoint(trainer))
    _write_results(out_dir, metrics, trainer)
    _finish(trainer, out_dir)
    return metrics


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, float]:
    """`eval.py`: the checkpoint on its data set's test split (or `data=...`), with the same report files."""
    out_dir = Path(cfg.paths.output_dir)
    quiet_lightning()
    ckpt_path = cfg.ckpt_path
    _, saved = read_cnnlab_checkpoint(ckpt_path)
    data_cfg = _plain(cfg.data) if cfg.get("data") else saved["data_info"]["config"]
    datamodule = make_datamodule(data_cfg, cfg.paths.data_dir)
    if datamodule.info()["input_shape"] != saved["data_info"]["input_shape"] or \
            datamodule.num_classes != len(saved["data_info"]["class_names"]):
        raise ConfigError(f"data={data_cfg.get('family')} has input {datamodule.input_shape} and "
                          f"{datamodule.num_classes} classes, but the checkpoint was trained on "
                          f"{saved['data_info']['input_shape']} with {len(saved['data_info']['class_names'])}.")
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model = LayerListClassifier.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True)
    trainer = make_trainer(cfg)
    metrics = evaluate(trainer, model, datamodule)
    _write_results(out_dir, metrics, trainer)
    _finish(trainer, out_dir)
    return metrics
