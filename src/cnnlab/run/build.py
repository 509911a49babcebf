"""`build(plan)`: the one way a training run is assembled from its checked plan (data module, LightningModule,
callbacks, loggers, Trainer); train.py, search trials and the benchmarks all use it. It checks nothing the plan has
checked and reads no data (a folder's structure and a shards folder's description excepted)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from cnnlab.callbacks import ReportSinks, StopOnNonFiniteLoss
from cnnlab.checks.optim import instantiate
from cnnlab.checks.train import TrainPlan
from cnnlab.checks.trainer import TrainerOptions
from cnnlab.dashboards import Dashboards
from cnnlab.data import make_datamodule
from cnnlab.errors import ConfigError
from cnnlab.interrupt import StopOnSignal, continue_command
from cnnlab.model import LayerListClassifier
from cnnlab.progress import EpochsFromOne, LineProgress
from cnnlab.run import lightning
from cnnlab.timing import Timing


@dataclass
class Built:
    """A training run, built from its plan and ready to fit."""

    model: LayerListClassifier
    datamodule: pl.LightningDataModule
    trainer: pl.Trainer
    ckpt_path: str | None


def config_text(config: dict[str, Any]) -> str:
    """config.yaml: the resolved config as Hydra would print it."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(config))


def build(plan: TrainPlan, datamodule: pl.LightningDataModule | None = None,
          callbacks: list[pl.Callback] = ()) -> Built:
    """`datamodule`: one made before (a search study loads its data once for all trials); `callbacks`: added to the
    config's (a trial's pruning)."""
    pl.seed_everything(plan.run.seed, workers=True, verbose=False)
    datamodule = datamodule or make_datamodule(plan.data, plan.data_dir)
    optimisation = plan.optimisation
    model = LayerListClassifier(plan.arch.raw, {**datamodule.info.to_dict(), "config": plan.data_config},
                                optimizer=optimisation.optimizer, scheduler=optimisation.scheduler,
                                specs=plan.arch.specs, **plan.model.to_dict())
    table = model.net.table()
    if not plan.quiet:
        print(table)
    plan.out.mkdir(parents=True, exist_ok=True)
    (plan.out / "arch_table.txt").write_text(table + "\n")
    (plan.out / "config.yaml").write_text(config_text(plan.config))
    extra = list(callbacks)
    if not plan.quiet:  # Ctrl-C and SIGTERM: a checkpoint where training stopped, and the command that continues
        extra.append(StopOnSignal(plan.out / "checkpoints" / "last.ckpt", continue_command("train.py",
                                                                                          plan.job.overrides)))
    trainer = make_trainer(plan.trainer, plan.loggers, plan.callbacks, plan.out, plan.config, table,
                           history=plan.out / "metrics.csv", extra=extra, quiet=plan.quiet,
                           every=plan.run.checkpoint_every_n_steps)
    if plan.resume_epoch is not None:
        lightning.carry_history(trainer, plan.run.ckpt_path, plan.resume_epoch)
    lightning.continue_csv(trainer)
    return Built(model, datamodule, trainer, str(plan.run.ckpt_path) if plan.run.ckpt_path else None)


def make_trainer(options: TrainerOptions, logger_configs: dict[str, dict], callback_configs: dict[str, dict],
                 out: Path, config: dict[str, Any], arch_table: str, history: Path | None,
                 extra: list[pl.Callback] = (), quiet: bool = False, every: int | None = None) -> pl.Trainer:
    """Lightning's Trainer from the checked trainer options, with the config's callbacks and loggers and cnnlab's own;
    `history`: the metrics.csv the report's curves come from; `every`: also write last.ckpt every N steps."""
    callbacks = [*(instantiate(c, "callbacks") for c in callback_configs.values()), *extra]
    callbacks += [StopOnNonFiniteLoss(every), ReportSinks(out, arch_table, history), Dashboards(config), Timing()]
    if options.enable_progress_bar:
        callbacks.append(EpochsFromOne())  # Lightning's bar, counting epochs from 1 as the log lines do
    elif not quiet:
        callbacks.append(LineProgress())
    if every:  # last.ckpt also every N steps, for long epochs on machines that may be taken away
        from pytorch_lightning.callbacks import ModelCheckpoint

        callbacks.append(ModelCheckpoint(dirpath=out / "checkpoints", filename="last", save_top_k=1,
                                         every_n_train_steps=every, enable_version_counter=False))
    loggers = [instantiate(entry, "logger") for entry in logger_configs.values()]
    lightning.start_runs(loggers)
    kwargs = options.kwargs()
    kwargs["strategy"] = lightning.strategy(kwargs.get("strategy", "auto"))
    try:
        return pl.Trainer(**kwargs, callbacks=callbacks, logger=loggers or False)
    except (TypeError, ValueError, AssertionError, RuntimeError) as err:
        raise _trainer_error(err) from None
    except Exception as err:  # Lightning's MisconfigurationException (no GPU for accelerator=gpu, ...)
        if type(err).__name__ != "MisconfigurationException":
            raise
        raise _trainer_error(err) from None


def _trainer_error(err: Exception) -> ConfigError:
    detail = str(err).splitlines()[0] if str(err) else "a value of the wrong type"
    return ConfigError(f"trainer: {type(err).__name__}: {detail}; check the trainer.* options against Lightning's "
                       "Trainer arguments (conf/trainer/).")
