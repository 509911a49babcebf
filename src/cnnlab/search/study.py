"""A search: an Optuna study whose trials sample a layer list (a template, or layer by layer) or an experiment's
knobs (a recipe), train each with the same plan-and-build path as `train.py`, and report its validation error.
The space, the agent (which sampler draws) and the pruner (which trials stop early) are kinds of their registries
(`spaces/`, `agents/`, `pruners/`). Trials run in this process or in `n_workers` processes (`workers.py`)."""

import dataclasses
import logging
import math
import random
import time
from typing import Any

import optuna
import pytorch_lightning as pl
from sqlalchemy.exc import SQLAlchemyError

from cnnlab.callbacks import NonFiniteLoss
from cnnlab.checks.errors import ArchError, ConfigError
from cnnlab.checks.fields import OptionError
from cnnlab.data import make_source
from cnnlab.layers import build_network
from cnnlab.run.build import build
from cnnlab.run.plans import TrainPlan, check_matrices
from cnnlab.search.agents import Agent
from cnnlab.search.outputs import write_outputs
from cnnlab.search.plan import SearchPlan
from cnnlab.search.pruners import Pruner
from cnnlab.search.spaces import Space

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


class Search:
    def __init__(self, plan: SearchPlan):
        self.plan, self.options, self.out_dir = plan, plan.options, plan.out
        self.objectives = list(plan.options.objectives)
        self.sources: dict[Any, Any] = {}  # data read once for all trials (per split-deciding data options)
        self.datamodule = self.datamodule_for(plan.base)
        self.space = Space.kinds()[plan.space.kind](plan.space, self.datamodule.input_shape,
                                                    self.datamodule.num_classes)
        self.agent = plan.agent
        n, seed = len(self.objectives), self.options.sampler_seed
        self.sampler = Agent.kinds()[plan.agent.name].sampler(plan.agent, seed, self.options.n_trials, n)
        # Optuna prunes single-objective studies only
        self.pruner = Pruner.kinds()[plan.pruner.name if n == 1 else "none"].make(plan.pruner, self.space.epochs)

    def datamodule_for(self, plan: TrainPlan):
        """The trial's data module over images read once: trials differ in batch size and augmentation, not in
        the splits."""
        from cnnlab.data.module import ImageData
        from cnnlab.data.options import AugmentOptions

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

        signature = {"agent": self.agent.name, "space": self.plan.space.kind, "pruner": self.plan.pruner.name,
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
        drawn = self.space.draw(trial, self.plan.base, seed, out)
        trial.set_user_attr("layers", drawn.layers)
        check_matrices(drawn.plan.optimisation.optimizer, drawn.specs)
        datamodule = self.datamodule_for(drawn.plan)
        net = build_network(list(drawn.specs), datamodule.input_shape, datamodule.num_classes)  # refused: failed
        trial.set_user_attr("params", net.num_params)
        trial.set_user_attr("flops", net.flops)
        pruning = _Pruning(trial, report=len(self.objectives) == 1)
        log.info("trial %d: training %s, %s parameters, for %d epochs", number, drawn.what, f"{net.num_params:,}",
                 drawn.plan.trainer.max_epochs)
        run = build(drawn.plan, datamodule, [pruning])
        run.trainer.fit(run.model, datamodule=run.datamodule)
        trial.set_user_attr("epochs", pruning.epochs)
        if pruning.pruned:
            raise optuna.TrialPruned()
        extra = {"params": net.num_params, "flops": net.flops}
        values = (pruning.best, *(float(extra[o]) for o in self.objectives[1:]))
        return values if len(values) > 1 else values[0]

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
            workers.spawn(worker_main, self.plan, self.options.n_workers, deadline)
            if workers.fail_stale(study):  # the last worker standing died: nobody left to take its trial
                log.warning("run the same command again to finish the study's %d trials", self.options.n_trials)
        write_outputs(study, self.out_dir, self.objectives, self.datamodule, self.space,
                      getattr(self.sampler, "stages", None), self.plan)
        return study


def quiet() -> None:
    """A search's console says what each trial trains and scores, not Lightning's per-trial banners and tips (in
    every worker process too: a spawned one starts with Python's logging defaults)."""
    from cnnlab.run.lightning import quiet_lightning

    quiet_lightning()
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)


def run_search(plan: SearchPlan) -> optuna.Study:
    return Search(plan).run()


def worker_main(plan: SearchPlan, index: int, n_workers: int, deadline: float | None = None) -> None:
    """One worker process of `n_workers`: its own sampler seed (the same seed would repeat a neighbour's draws), its
    share of the cores, and trials until the study has its n_trials."""
    import torch

    from cnnlab.search import workers

    if plan.options.sampler_seed is not None:
        plan = dataclasses.replace(plan, options=dataclasses.replace(
            plan.options, sampler_seed=plan.options.sampler_seed + index))
    torch.set_num_threads(workers.cores(n_workers))
    logging.basicConfig(level=logging.INFO, format=f"[%(asctime)s][%(name)s][%(levelname)s] - worker {index}: "
                                                   "%(message)s")
    quiet()
    search = Search(plan)
    workers.work(search, search.study(), deadline)


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
