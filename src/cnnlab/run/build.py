"""`build(plan)`: the one way a training run is assembled from its checked plan (data module, LightningModule,
callbacks, loggers, Trainer); train.py, search trials and the benchmarks all use it. It checks nothing the plan has
checked and reads no data (a folder's structure and a shards folder's description excepted)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from cnnlab.callbacks import ReportSinks, StopOnNonFiniteLoss
from cnnlab.checks.errors import ConfigError
from cnnlab.dashboards import Dashboards
from cnnlab.data import make_datamodule
from cnnlab.interrupt import StopOnSignal, continue_command
from cnnlab.loggers import adapters_of
from cnnlab.model.module import LayerListClassifier
from cnnlab.progress import EpochsFromOne, LineProgress
from cnnlab.run import lightning
from cnnlab.run.plans import TrainPlan
from cnnlab.run.trainer import TrainerOptions
from cnnlab.targets import instantiate
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
    check_size(plan.arch.specs, datamodule.info, plan.data.batch_size)
    check_resizing(plan.arch.specs, datamodule.info, plan.data.augment.sizes)
    plan.model.check_input(datamodule.info.input_shape)
    model = LayerListClassifier(plan.arch.raw, {**datamodule.info.to_dict(), "config": plan.data_config},
                                plan.model, optimizer=optimisation.optimizer, scheduler=optimisation.scheduler)
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
    trainer = make_trainer(plan.trainer, plan.loggers, plan.callbacks, plan.out, plan.config, table, extra=extra,
                           quiet=plan.quiet, every=plan.run.checkpoint_every_n_steps)
    if plan.resume_epoch is not None:
        lightning.carry_history(trainer, plan.run.ckpt_path, plan.resume_epoch)
    lightning.continue_csv(trainer)
    return Built(model, datamodule, trainer, str(plan.run.ckpt_path) if plan.run.ckpt_path else None)


def check_size(specs, info, batch_size: int) -> None:
    """A network larger than this machine's memory is one sentence before anything is allocated (the allocator's own
    refusal comes after minutes of building, as a traceback)."""
    from cnnlab.layers.build import memory_needed
    from cnnlab.machine import memory_bytes

    params, needed = memory_needed(list(specs), info.input_shape, info.num_classes, batch_size)
    if needed > (memory := memory_bytes()):
        raise ConfigError(f"the network needs about {needed / 2**30:,.0f} GiB to train ({params:,} parameters on "
                          f"{'x'.join(map(str, info.input_shape))} inputs, batch {batch_size}); this machine has "
                          f"{memory / 2**30:,.0f} GiB: lower arch.width or the layers' num_output, or "
                          "data.batch_size.")


def check_resizing(specs, info, sizes) -> None:
    """Progressive resizing (`data.augment.sizes`) needs sides the images have, and a network whose weights fit every
    side: a global pool before the classifier, not a flatten of a map of fixed size."""
    import torch

    from cnnlab.checks.errors import ArchError
    from cnnlab.layers.build import Network

    (c, h, w), n = info.input_shape, info.num_classes
    with torch.device("meta"):  # shapes only: nothing is allocated
        full = [p.shape for p in Network(list(specs), (c, h, w), n).parameters()]
        for _, side in sizes:
            if side > min(h, w):
                raise ConfigError(f"data.augment.sizes: side {side} is larger than the {h}x{w} images; progressive "
                                  f"resizing trains at smaller sides (at most {min(h, w)}) before the images' own.")
            try:
                weights = [p.shape for p in Network(list(specs), (c, side, round(w * side / h)), n).parameters()]
            except ArchError as err:
                raise ConfigError(f"data.augment.sizes: at side {side}, {err}") from None
            if weights != full:
                raise ConfigError(f"data.augment.sizes: at side {side} the layer list needs other weights than at "
                                  f"{h}x{w} (a flatten before FC or T sees another map); end the convolutions with "
                                  "{type: GAP} to train at several sizes.")


def make_trainer(options: TrainerOptions, logger_configs: dict[str, dict], callback_configs: dict[str, dict],
                 out: Path, config: dict[str, Any], arch_table: str, extra: list[pl.Callback] = (),
                 quiet: bool = False, every: int | None = None) -> pl.Trainer:
    """Lightning's Trainer from the checked trainer options, with the config's callbacks and loggers and cnnlab's own;
    `every`: also write last.ckpt every N steps. Lightning's own refusals (of a callback's or the Trainer's arguments)
    are one sentence here, before any data is read."""
    callbacks = [*(instantiate(c, f"callbacks.{name}") for name, c in callback_configs.items()), *extra]
    adapters = adapters_of(logger_configs)
    callbacks += [StopOnNonFiniteLoss(every), ReportSinks(out, arch_table, options.shortened()),
                  Dashboards(config, adapters), Timing()]
    if options.enable_progress_bar:
        callbacks.append(EpochsFromOne())  # Lightning's bar, counting epochs from 1 as the log lines do
    elif not quiet:
        callbacks.append(LineProgress())
    if every:  # last.ckpt also every N steps, for long epochs on machines that may be taken away
        from pytorch_lightning.callbacks import ModelCheckpoint

        callbacks.append(ModelCheckpoint(dirpath=out / "checkpoints", filename="last", save_top_k=1,
                                         every_n_train_steps=every, enable_version_counter=False))
    loggers = [instantiate(entry, "logger") for entry in logger_configs.values()]
    for adapter, logger in zip(adapters, loggers):
        adapter.start(logger)
    kwargs = options.kwargs()
    kwargs["strategy"] = lightning.strategy(kwargs.get("strategy", "auto"))
    return _made(lambda: pl.Trainer(**kwargs, callbacks=callbacks, logger=loggers or False), "trainer")


def _made(make, what: str):
    """`make()`, with Lightning's refusal of an argument (a TypeError, ValueError or its MisconfigurationException)
    as one sentence naming the config group."""
    try:
        return make()
    except ConfigError:
        raise
    except Exception as err:
        if not isinstance(err, TypeError | ValueError | AssertionError | RuntimeError) and \
                type(err).__name__ != "MisconfigurationException":
            raise
        detail = str(err).splitlines()[0] if str(err) else "a value of the wrong type"
        raise ConfigError(f"{what}: {type(err).__name__}: {detail}; check the {what}.* options (conf/"
                          f"{what.split('.')[0]}/).") from None
