"""A search: an Optuna study whose trials sample a layer list (a template, or layer by layer) or an experiment's
knobs (a recipe), train each with the same plan-and-build path as `train.py`, and report its validation error.
Which sampler draws is the agent: `tpe` (default), `random`, `qlearning` (MetaQNN's agent, `qlearning.py`) or
`evolution` (regularized evolution, `evolution.py`); which trials stop early, the pruner (median, Hyperband, none:
the fidelity is epochs). Trials run in this process or in `n_workers` processes (`workers.py`)."""

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
from cnnlab.checks.fields import OptionError
from cnnlab.checks.search import SearchPlan
from cnnlab.checks.train import TrainPlan, check_matrices
from cnnlab.data import make_source
from cnnlab.errors import ArchError, ConfigError
from cnnlab.layers import build_network, parse_layers, resize
from cnnlab.run import build
from cnnlab.search.outputs import compact, write_outputs
from cnnlab.search.qlearning import QLearningSampler, check_schedule, schedule_warning
from cnnlab.search.recipe import RecipeSpace
from cnnlab.search.sequential import SequentialSpace
from cnnlab.search.template import TemplateSpace

log = logging.getLogger("cnnlab.search")
EXPECTED = (ArchError, NonFiniteLoss, OptionError)  # a trial that fails with a reason; the study goes on


class _Pruning(pl.Callback):
    """Keeps the best validation error of the trial; in single-objective studies reports it per epoch and stops
    the trial when Optuna's pruner says so (Optuna cannot prune multi-objective trials)."""

    def __init__(self, trial: optuna.Trial, report: bool):
        self.trial, self.report, self.pruned, self.best, self.epochs = trial, report, False, math.inf, 0
        self.said = time.monotonic()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or "val/err" not in trainer.callback_metrics:
            return
        err = float(trainer.callback_metrics["val/err"])
        self.best, self.epochs = min(self.best, err), trainer.current_epoch + 1
        if time.monotonic() - self.said >= 60:  # a long trial is never silent; short ones say nothing until told
            self.said = time.monotonic()
            log.info("trial %d: epoch %d of %d, validation error %.4f (best %.4f)", self.trial.number, self.epochs,
                     trainer.max_epochs, err, self.best)
        if self.report:
            self.trial.report(err, self.epochs)  # the step is the fidelity: epochs trained
            # a trial at its last epoch has trained its budget: complete, whatever a rung there would say
            if self.epochs < trainer.max_epochs and self.trial.should_prune():
                self.pruned, trainer.should_stop = True, True


def make_space(space, datamodule):
    """The plan's checked space options as a space to sample (a sequential one checked against the input shape)."""
    if space.kind == "sequential":
        return SequentialSpace(space, datamodule.input_shape, datamodule.num_classes)
    return RecipeSpace(space) if space.kind == "recipe" else TemplateSpace(space)


def make_sampler(agent, space, options, objectives: int):
    """The agent's sampler, and the epsilon stages of MetaQNN's (None for the others)."""
    from cnnlab.search.evolution import EvolutionSampler

    seed = options.sampler_seed
    if agent.name == "evolution":
        if objectives > 1:  # regularized evolution ranks by one value; NSGA-II is evolution for a Pareto front
            return optuna.samplers.NSGAIISampler(population_size=agent.population, seed=seed), None
        return EvolutionSampler(agent.population, agent.tournament, seed), None
    if agent.name == "qlearning":
        stages = check_schedule(agent.epsilon, options.n_trials)
        warning = schedule_warning(options.n_trials) if agent.epsilon is None else None
        if warning:
            log.warning(warning)
        return QLearningSampler(stages, seed=seed, learning_rate=agent.learning_rate, discount=agent.discount,
                                initial_q=agent.initial_q, replay=agent.replay), stages
    sampler = optuna.samplers.TPESampler if agent.name == "tpe" else optuna.samplers.RandomSampler
    return sampler(seed=seed), None


def make_pruner(pruner, epochs: int, objectives: int) -> optuna.pruners.BasePruner:
    """Optuna prunes single-objective studies only; the fidelity is epochs trained."""
    if pruner.name == "none" or objectives > 1:
        return optuna.pruners.NopPruner()
    if pruner.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=pruner.min_epochs, max_resource=epochs,
                                              reduction_factor=pruner.reduction_factor)
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=pruner.from_epoch)


class Search:
    def __init__(self, plan: SearchPlan):
        self.plan, self.options, self.out_dir = plan, plan.options, plan.out
        self.objectives = list(plan.options.objectives)
        self.sources: dict[Any, Any] = {}  # data read once for all trials (per split-deciding data options)
        self.datamodule = self.datamodule_for(plan.base)
        self.space = make_space(plan.space, self.datamodule)
        self.agent = plan.agent
        self.sampler, self.stages = make_sampler(plan.agent, self.space, self.options, len(self.objectives))
        self.pruner = make_pruner(plan.pruner, self.space.epochs, len(self.objectives))

    def datamodule_for(self, plan: TrainPlan):
        """The trial's data module over images read once: trials differ in batch size and augmentation, not in
        the splits."""
        from cnnlab.checks.data import AugmentOptions
        from cnnlab.data.module import ImageData

        key = (dataclasses.replace(plan.data, batch_size=1, eval_batch_size=1, augment=AugmentOptions()),
               str(plan.data_dir))
        if key not in self.sources:
            self.sources[key] = make_source(plan.data, plan.data_dir)
        return ImageData(self.sources[key], plan.data)

    @property
    def url(self) -> str | None:
        """The study's database URL: the one given, an SQLite `study.db` a study of an earlier cnnlab left in the
        study folder, or None for Optuna's journal file there (safe for workers, also over NFS)."""
        if self.options.storage is None and not (self.out_dir / "study.db").is_file():
            return None
        return self.options.storage or f"sqlite:///{self.out_dir / 'study.db'}"

    def storage(self):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        if self.url is None:
            return JournalStorage(JournalFileBackend(str(self.out_dir / "study.journal")))
        kwargs = {"connect_args": {"timeout": 60}} if self.url.startswith("sqlite") else {}
        return optuna.storages.RDBStorage(self.url, engine_kwargs=kwargs)

    def study(self) -> optuna.Study:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        directions = ["minimize"] * len(self.objectives)
        for attempt in range(5):
            try:
                study = optuna.create_study(study_name=self.options.study_name, storage=self.storage(),
                                            directions=directions, sampler=self.sampler, pruner=self.pruner,
                                            load_if_exists=True)
                break
            except SQLAlchemyError as err:  # workers starting together race to create the tables and the study
                if attempt == 4 or not _race(err):
                    raise _storage_error(self.url, err) from None
                time.sleep(0.5 + random.random())
            except ImportError as err:  # the URL's database driver is not installed
                raise _storage_error(self.url, err) from None
        self._same_study(study)
        return study

    def _same_study(self, study: optuna.Study) -> None:
        """One study, one agent, pruner and space: continuing it with another would mix incomparable trials."""
        import json

        signature = {"agent": self.agent.name, "space": self.space.kind, "pruner": self.plan.pruner.name,
                     "space_options": json.dumps(self.plan.space.to_dict(), sort_keys=True)}
        before = {k: study.user_attrs.get(k) for k in signature}
        if before["agent"] is None:
            for key, value in signature.items():
                study.set_user_attr(key, value)
            return
        changed = [k for k in signature if before[k] is not None and before[k] != signature[k]]
        if changed:
            what = {"agent": f"agent={before['agent']}", "space": f"a {before['space']} space",
                    "pruner": f"pruner={before['pruner']}", "space_options": "another search space (search.*)"}
            raise ConfigError(f"study {self.options.study_name} was searched with "
                              f"{' and '.join(what[k] for k in changed)}; resume it with the same agent, pruner and "
                              "space, or start another study with study_name=<new name>. Nothing of it was changed.")

    def tell(self, study: optuna.Study, trial: optuna.Trial) -> None:
        """Train one trial and tell the study how it went: its values, pruned, or failed with the reason."""
        from optuna.trial import TrialState

        from cnnlab.search import workers

        try:
            values = self._trial(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d: pruned after %d epochs", trial.number, trial.user_attrs.get("epochs", 0))
        except EXPECTED as err:
            trial.set_user_attr("fail_reason", f"{type(err).__name__}: {err}")
            study.tell(trial, state=TrialState.FAIL)
            log.info("trial %d: failed: %s", trial.number, trial.user_attrs["fail_reason"])
        except BaseException as err:  # Ctrl-C, or a bug: never left running; its parameters go again
            trial.set_user_attr("fail_reason", f"{type(err).__name__}: {str(err)[:200]}; its parameters were "
                                               "queued again")
            trial.set_user_attr(workers.REQUEUED, True)
            study.tell(trial, state=TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
            raise
        else:
            study.tell(trial, values)
            first = values[0] if isinstance(values, tuple) else values
            log.info("trial %d: finished, best validation error %.4f in %d epochs", trial.number, first,
                     trial.user_attrs.get("epochs", 0))

    def _trial(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        number = trial.number
        seed, out = self.plan.base.run.seed + number, self.out_dir / "trials" / str(number)
        if self.space.kind == "recipe":
            values, choices = self.space.sample(trial), {}
            plan = self.space.plan(values, seed, out, self.plan.base.data_dir, choices)
            trial.set_user_attr("choices", choices)
            specs = plan.arch.specs
        else:
            layers, hyper = self.space.sample(trial)
            trial.set_user_attr("layers", layers)
            trial.set_user_attr("hyper", hyper)
            specs = resize(parse_layers(layers))
            plan = self.trial_plan(number, specs, hyper)
        check_matrices(plan.optimisation.optimizer, specs)
        datamodule = self.datamodule_for(plan)
        net = build_network(list(specs), datamodule.input_shape, datamodule.num_classes)  # refused: failed
        trial.set_user_attr("layers", [s.to_dict() for s in specs] if self.space.kind == "recipe" else layers)
        trial.set_user_attr("params", net.num_params)
        trial.set_user_attr("flops", net.flops)
        pruning = _Pruning(trial, report=len(self.objectives) == 1)
        what = self.space.describe(values) if self.space.kind == "recipe" else compact(layers)
        log.info("trial %d: training %s, %s parameters, for %d epochs", number, what, f"{net.num_params:,}",
                 plan.trainer.max_epochs)
        run = build(plan, datamodule, [pruning])
        run.trainer.fit(run.model, datamodule=run.datamodule)
        trial.set_user_attr("epochs", pruning.epochs)
        if pruning.pruned:
            raise optuna.TrialPruned()
        extra = {"params": net.num_params, "flops": net.flops}
        values = (pruning.best, *(float(extra[o]) for o in self.objectives[1:]))
        return values if len(values) > 1 else values[0]

    def trial_plan(self, number: int, specs, hyper: dict[str, Any]) -> TrainPlan:
        """A trial of a layer-list space as a training run of `train.py`'s kind: the study's plan (data, model.*,
        optim, trainer) with the sampled layer list, learning rate, L2 penalty and batch size; no checkpoints,
        loggers or test split. Its config and layer table are kept in `trials/<number>/`."""
        base = self.plan.base
        factory = base.optimisation.optimizer
        optimizer = functools.partial(factory.func, *factory.args, **{**factory.keywords, "lr": hyper["lr"]})
        arch = Arch(None, tuple(specs))
        sections = base.config
        config = {**sections, "arch": {"name": f"trial_{number}", "layers": arch.raw}, "seed": base.run.seed + number,
                  "data": {**sections.get("data", {}), "batch_size": hyper["batch_size"]},
                  "optim": {**sections.get("optim", {}), "lr": hyper["lr"]},
                  "model": {**sections.get("model", {}), "reg": hyper["reg"]},
                  "trainer": {**sections.get("trainer", {}), "max_epochs": self.space.epochs}}
        return base.replace(
            run=dataclasses.replace(base.run, seed=base.run.seed + number), arch=arch,
            optimisation=dataclasses.replace(base.optimisation, optimizer=optimizer, reg=hyper["reg"]),
            model=dataclasses.replace(base.model, reg=hyper["reg"]),
            data=dataclasses.replace(base.data, batch_size=hyper["batch_size"]),
            trainer=dataclasses.replace(base.trainer, max_epochs=self.space.epochs),
            out=self.out_dir / "trials" / str(number), config=config)

    def run(self) -> optuna.Study:
        from cnnlab.search import workers
        from cnnlab.timing import process_age

        quiet()

        timeout = self.options.timeout_min
        deadline = time.time() - process_age() + 60 * timeout if timeout else None  # from the command's start
        study = self.study()
        workers.fail_stale(study)
        counted = len(workers.counted(study))
        if counted >= self.options.n_trials:
            log.info("study %s already has %d trials finished or running (n_trials=%d).", self.options.study_name,
                     counted, self.options.n_trials)
        elif self.options.n_workers == 1:
            workers.work(self, study, deadline)
        else:
            workers.spawn(self.plan, self.options.n_workers, deadline)
            if workers.fail_stale(study):  # the last worker standing died: nobody left to take its trial
                log.warning("run the same command again to finish the study's %d trials", self.options.n_trials)
        write_outputs(study, self.out_dir, self.objectives, self.datamodule, self.space, self.stages, self.plan)
        return study


def quiet() -> None:
    """A search's console says what each trial trains and scores, not Lightning's per-trial banners and tips (in
    every worker process too: a spawned one starts with Python's logging defaults)."""
    from cnnlab.run.lightning import quiet_lightning

    quiet_lightning()
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)


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
