"""A search: an Optuna study whose trials sample a layer list from a space (a template, or layer by layer), train
it with the same LightningModule and data module as `train.py`, and report its validation error. Which sampler
draws the lists is the agent: `tpe` (default), `random`, or `qlearning` (MetaQNN's agent, `qlearning.py`)."""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import random
import time
from typing import Any

import optuna
import pytorch_lightning as pl
from sqlalchemy.exc import SQLAlchemyError

from cnnlab.callbacks import NonFiniteLoss
from cnnlab.checks.arch import Arch
from cnnlab.checks.search import SearchPlan
from cnnlab.checks.train import TrainPlan
from cnnlab.data import make_datamodule
from cnnlab.errors import ArchError, ConfigError
from cnnlab.layers import build_network, parse_layers, resize
from cnnlab.run import build
from cnnlab.search.outputs import compact, write_outputs
from cnnlab.search.qlearning import QLearningSampler, check_schedule, schedule_warning
from cnnlab.search.sequential import SequentialSpace
from cnnlab.search.template import TemplateSpace

log = logging.getLogger("cnnlab.search")



class _Pruning(pl.Callback):
    """Keeps the best validation error of the trial; in single-objective studies reports it per epoch and stops
    the trial when Optuna's pruner says so (Optuna cannot prune multi-objective trials)."""

    def __init__(self, trial: optuna.Trial, report: bool):
        self.trial, self.report, self.pruned, self.best = trial, report, False, math.inf

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or "val/err" not in trainer.callback_metrics:
            return
        err = float(trainer.callback_metrics["val/err"])
        self.best = min(self.best, err)
        if self.report:
            self.trial.report(err, trainer.current_epoch)
            if self.trial.should_prune():
                self.pruned, trainer.should_stop = True, True


def make_space(space, datamodule) -> TemplateSpace | SequentialSpace:
    """The plan's checked space options as a space to sample (a sequential one checked against the input shape)."""
    if space.kind == "sequential":
        return SequentialSpace(space, datamodule.input_shape, datamodule.num_classes)
    return TemplateSpace(space)


class Search:
    def __init__(self, plan: SearchPlan):
        self.plan, self.options, self.out_dir = plan, plan.options, plan.out
        self.objectives = list(plan.options.objectives)
        self.datamodule = make_datamodule(plan.base.data, plan.base.data_dir)
        self.space = make_space(plan.space, self.datamodule)
        self.agent = plan.agent
        self.stages = None
        self.sampler = self._sampler()

    def _sampler(self) -> optuna.samplers.BaseSampler:
        """The agent that draws the layer lists, checked before any trial."""
        options, seed = self.agent, self.options.sampler_seed
        if options.name == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        if options.name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        self.stages = check_schedule(options.epsilon, self.options.n_trials)
        warning = schedule_warning(self.options.n_trials) if options.epsilon is None else None
        if warning:
            log.warning(warning)
        return QLearningSampler(self.stages, seed=seed, learning_rate=options.learning_rate,
                                discount=options.discount, initial_q=options.initial_q, replay=options.replay)

    def study(self) -> optuna.Study:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        url = self.options.storage or f"sqlite:///{self.out_dir / 'study.db'}"
        # SQLite shared by several workers: wait for the lock instead of failing at once
        kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
        directions = ["minimize"] * len(self.objectives)
        pruner = optuna.pruners.MedianPruner(n_warmup_steps=1) if self.options.pruning and len(directions) == 1 \
            else optuna.pruners.NopPruner()  # Optuna prunes single-objective studies only
        for attempt in range(5):
            try:
                storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
                study = optuna.create_study(study_name=self.options.study_name, storage=storage,
                                            directions=directions, sampler=self.sampler, pruner=pruner,
                                            load_if_exists=True)
                break
            except SQLAlchemyError as err:  # workers starting together race to create the tables and the study
                if attempt == 4 or not _race(err):
                    raise _storage_error(url, err) from None
                time.sleep(0.5 + random.random())
            except ImportError as err:  # the URL's database driver is not installed
                raise _storage_error(url, err) from None
        # one study, one agent and one space: a resumed study must not be continued by another agent
        signature = {"agent": self.agent.name, "space": self.space.kind}
        before = {k: study.user_attrs.get(k) for k in signature}
        if before["agent"] is None:
            for key, value in signature.items():
                study.set_user_attr(key, value)
        elif before != signature:
            raise ConfigError(f"study {self.options.study_name} was searched with agent={before['agent']} on a "
                              f"{before['space']} space; resume it with the same agent and space, or start another "
                              "study with study_name=<new name>.")
        return study

    def objective(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        try:
            return self._trial(trial)
        except (ArchError, NonFiniteLoss) as err:  # a failed trial, with its reason in trials.csv; the study goes on
            trial.set_user_attr("fail_reason", f"{type(err).__name__}: {err}")
            raise

    def _trial(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        layers, hyper = self.space.sample(trial)
        shape, classes = self.datamodule.input_shape, self.datamodule.num_classes
        trial.set_user_attr("layers", layers)
        trial.set_user_attr("hyper", hyper)
        specs = resize(parse_layers(layers))
        net = build_network(specs, shape, classes)  # ArchError: refused, recorded as a failed trial
        trial.set_user_attr("params", net.num_params)
        trial.set_user_attr("flops", net.flops)
        self.datamodule.options = dataclasses.replace(self.datamodule.options, batch_size=hyper["batch_size"])
        pruning = _Pruning(trial, report=len(self.objectives) == 1)
        log.info("trial %d: training %s, %s parameters, for %d epochs", trial.number, compact(layers),
                 f"{net.num_params:,}", self.space.epochs)
        run = build(self.trial_plan(trial.number, specs, hyper), self.datamodule, [pruning])
        run.trainer.fit(run.model, datamodule=run.datamodule)
        if pruning.pruned:
            raise optuna.TrialPruned()
        val_err = pruning.best
        extra = {"params": net.num_params, "flops": net.flops}
        values = (val_err, *(float(extra[o]) for o in self.objectives[1:]))
        return values if len(values) > 1 else values[0]

    def trial_plan(self, number: int, specs, hyper: dict[str, Any]) -> TrainPlan:
        """A trial as a training run of `train.py`'s kind: the study's plan (data, model.*, optim, trainer) with the
        sampled layer list, learning rate, L2 penalty and batch size; no checkpoints, loggers or test split. Its
        config and layer table are kept in `trials/<number>/`."""
        base = self.plan.base
        factory = base.optimisation.optimizer
        optimizer = functools.partial(factory.func, *factory.args, **{**factory.keywords, "lr": hyper["lr"]})
        arch = Arch(None, tuple(specs))
        config = {**base.config, "arch": {"layers": arch.raw}, "seed": base.run.seed + number,
                  "trial": {"number": number, **hyper}}
        return base.replace(
            run=dataclasses.replace(base.run, seed=base.run.seed + number), arch=arch,
            optimisation=dataclasses.replace(base.optimisation, optimizer=optimizer, reg=hyper["reg"]),
            model=dataclasses.replace(base.model, reg=hyper["reg"]),
            data=dataclasses.replace(base.data, batch_size=hyper["batch_size"]),
            trainer=dataclasses.replace(base.trainer, max_epochs=self.space.epochs),
            out=self.out_dir / "trials" / str(number), config=config)

    def run(self) -> optuna.Study:
        from cnnlab.run.lightning import quiet_lightning

        quiet_lightning()
        study = self.study()
        done = len(study.trials)
        if done >= self.options.n_trials:
            log.info("study %s already has %d trials (n_trials=%d).", self.options.study_name, done,
                     self.options.n_trials)
        else:
            logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
            study.optimize(self.objective, catch=(ArchError, NonFiniteLoss), callbacks=[optuna.study.MaxTrialsCallback(
                self.options.n_trials, states=None)])
        write_outputs(study, self.out_dir, self.objectives, self.datamodule, self.space, self.stages)
        return study


def run_search(plan: SearchPlan) -> optuna.Study:
    return Search(plan).run()


def _race(err: Exception) -> bool:
    """Whether a storage error is two workers creating the same tables or study at once (worth a retry), rather
    than a storage that cannot be opened."""
    from sqlalchemy.exc import IntegrityError

    text = str(err).lower()
    return isinstance(err, IntegrityError) or "already exists" in text or "locked" in text


def _storage_error(url: str, err: Exception) -> ConfigError:
    from sqlalchemy.engine import make_url

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not even a URL: show it as given
        shown = url
    detail = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
    hint = "install its driver (e.g. pip install psycopg2-binary for postgresql://)" if isinstance(err, ImportError) \
        else "check that the folder exists and is writable (sqlite:////absolute/path.db has four slashes)" \
        if url.startswith("sqlite") else "check the host, port, user, password and that the database exists"
    return ConfigError(f"storage={shown} cannot be opened ({detail}); {hint}.")
