"""A search: an Optuna study whose trials are drawn from a space (layer lists or an experiment's knobs), trained at the
study's fidelity (`trial.py`) through the same plan-and-build path as `train.py`, and told their validation error and
costs. The space, the agent (the sampler) and the pruner are kinds of their registries (`spaces/`, `agents/`,
`pruners/`); trials run in this process or in worker processes (`workers.py`); the best are confirmed over seeds
(`confirm.py`) before the hand-over (`outputs.py`)."""

import dataclasses
import json
import logging
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy.exc import SQLAlchemyError

from cnnlab.callbacks import NonFiniteLoss
from cnnlab.checks.errors import ArchError, ConfigError
from cnnlab.checks.fields import OptionError
from cnnlab.data import make_source
from cnnlab.layers import build_network
from cnnlab.machine import cores
from cnnlab.run.plans import TrainPlan, check_matrices
from cnnlab.search import workers
from cnnlab.search.agents import Agent
from cnnlab.search.outputs import write_outputs
from cnnlab.search.plan import SearchPlan
from cnnlab.search.pruners import Pruner
from cnnlab.search.spaces import Space
from cnnlab.search.trial import run_at

log = logging.getLogger("cnnlab.search")
EXPECTED = (ArchError, NonFiniteLoss, OptionError)  # a trial that fails with a reason; the study goes on


class Search:
    def __init__(self, plan: SearchPlan):
        self.plan, self.options, self.out_dir = plan, plan.options, plan.out
        self.objectives = list(plan.options.objectives)
        self.unit, self.budget = plan.space.fidelity, plan.space.budget
        self.sources: dict[Any, Any] = {}  # data read once for all trials (per split-deciding data options)
        self.datamodule = self.datamodule_for(plan.base)
        self.space = Space.kinds()[plan.space.kind](plan.space, self.datamodule.input_shape,
                                                    self.datamodule.num_classes)
        self.sampler = self.make_sampler(self.options.sampler_seed)
        # Optuna prunes single-objective studies only
        single = len(self.objectives) == 1
        self.pruner = Pruner.kinds()[plan.pruner.name if single else "none"].make(plan.pruner, self.budget, self.unit)

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

    # --- the study and its storage ---------------------------------------------------------------------------------
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
            journal = self.out_dir / "study.journal"
            repair_journal(journal)
            return JournalStorage(JournalFileBackend(str(journal)))
        kwargs = {"connect_args": {"timeout": 60}} if self.url.startswith("sqlite") else \
            {"connect_args": {"connect_timeout": 10}} if self.url.startswith("postgresql") else {}
        beat = {} if self.url.startswith("sqlite") else {  # machines that share a server beat a heartbeat
            "heartbeat_interval": max(1, round(self.options.heartbeat_s)), "grace_period": round(self.options.grace_s)}
        import warnings

        with warnings.catch_warnings():  # Optuna calls its heartbeat experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(self.url, engine_kwargs=kwargs, **beat)

    def study(self) -> optuna.Study:
        """The study, loaded when it exists (nothing written before its agent, pruner and space are compared) and
        created otherwise; workers starting together race to create the tables and the study: retried."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        directions = ["minimize"] * len(self.objectives)
        name = self.options.study_name
        for attempt in range(5):
            try:
                storage = self.storage()
                if name in optuna.get_all_study_names(storage):
                    study = optuna.load_study(study_name=name, storage=storage, sampler=self.sampler,
                                              pruner=self.pruner)
                else:
                    study = optuna.create_study(study_name=name, storage=storage, directions=directions,
                                                sampler=self.sampler, pruner=self.pruner, load_if_exists=True)
                break
            except SQLAlchemyError as err:
                if attempt == 4 or not _race(err):
                    raise _storage_error(self.url, err) from None
                time.sleep(0.5 + random.random())
            except ImportError as err:  # the URL's database driver is not installed
                raise _storage_error(self.url, err) from None
        self._same_study(study)
        done, seed = len(study.get_trials(deepcopy=False)), self.options.sampler_seed
        if done and seed is not None:  # a seed alone would draw the study's first trials again
            import numpy as np

            derived = int(np.random.SeedSequence([seed, done]).generate_state(1)[0])
            self.sampler = study.sampler = self.make_sampler(derived)
        return study

    def make_sampler(self, seed: int | None) -> Any:
        return Agent.kinds()[self.plan.agent.name].sampler(self.plan.agent, seed, self.options.n_trials,
                                                           len(self.objectives))

    def _same_study(self, study: optuna.Study) -> None:
        """One study, one agent, pruner, space and objectives: continuing it with others would mix incomparable
        trials."""
        signature = {"agent": self.plan.agent.name, "space": self.plan.space.kind, "pruner": self.plan.pruner.name,
                     "space_options": json.dumps({k: v for k, v in self.plan.space.to_dict().items() if k != "confirm"},
                                                 sort_keys=True), "objectives": ",".join(self.objectives)}
        before = {k: study.user_attrs.get(k) for k in signature}
        if before["agent"] is None:
            for key, value in signature.items():
                study.set_user_attr(key, value)
            return
        changed = [k for k in signature if before[k] is not None and before[k] != signature[k]]
        if changed:
            what = {"agent": f"agent={before['agent']}", "space": f"a {before['space']} space",
                    "pruner": f"pruner={before['pruner']}", "space_options": "another search space (search.*)",
                    "objectives": f"objectives=[{before['objectives']}]"}
            raise ConfigError(f"study {self.options.study_name} was searched with "
                              f"{' and '.join(what[k] for k in changed)}; resume it with the same agent, pruner, "
                              "space and objectives, or start another study with study_name=<new name>. Nothing of "
                              "it was changed.")

    # --- a trial ---------------------------------------------------------------------------------------------------
    def tell(self, study: optuna.Study, trial: optuna.Trial) -> None:
        """Train one trial and tell the study how it went: its values, pruned, or failed with the reason; stopped
        (Ctrl-C, a bug), it is failed and its parameters queued again."""
        from optuna.trial import TrialState

        try:
            with workers.heartbeat(study, trial):
                values = self._trial(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d: pruned after %s %s", trial.number, trial.user_attrs.get(self.unit, 0), self.unit)
        except EXPECTED as err:
            trial.set_user_attr("fail_reason", f"{type(err).__name__}: {err}")
            study.tell(trial, state=TrialState.FAIL)
            log.info("trial %d: failed: %s", trial.number, trial.user_attrs["fail_reason"])
        except BaseException as err:
            ctrl_c = workers.by_ctrl_c(err)
            why = "stopped by Ctrl-C" if ctrl_c else f"{type(err).__name__}: {err}"[:200]
            workers.requeue(study, study.get_trials(deepcopy=False)[trial.number], why)
            if ctrl_c:
                raise KeyboardInterrupt from None
            raise
        else:
            study.tell(trial, values)
            first = values[0] if isinstance(values, tuple) else values
            log.info("trial %d: finished, best validation error %.4f after %s %s", trial.number, first,
                     trial.user_attrs.get(self.unit), self.unit)

    def _trial(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        number = trial.number
        seed, out = self.plan.base.run.seed + number, self.out_dir / "trials" / str(number)
        drawn = self.space.draw(trial, self.plan.base, seed, out, int(self.budget) if self.unit == "epochs" else 1)
        trial.set_user_attr("layers", drawn.layers)
        check_matrices(drawn.plan.optimisation.optimizer, drawn.specs)
        net = build_network(list(drawn.specs), self.datamodule.input_shape, self.datamodule.num_classes)  # refused
        trial.set_user_attr("params", net.num_params)
        trial.set_user_attr("flops", net.flops)
        log.info("trial %d: training %s, %s parameters, for %g %s", number, drawn.what, f"{net.num_params:,}",
                 self.budget, self.unit)
        outcome = run_at(lambda epochs, steps: self.space.draw(trial, self.plan.base, seed, out, epochs, steps).plan,
                         self.datamodule_for, self.unit, self.budget, trial if len(self.objectives) == 1 else None,
                         plan=drawn.plan)  # drawn at the first length already: not drawn (composed) again
        for key in ("epochs", "steps", "seconds", "images_per_s"):
            trial.set_user_attr(key, getattr(outcome, key))
        if outcome.pruned:
            raise optuna.TrialPruned()
        costs = {"seconds": outcome.seconds, "params": net.num_params, "flops": net.flops}
        values = (outcome.best, *(float(costs[o]) for o in self.objectives[1:]))
        return values if len(values) > 1 else values[0]

    # --- the command -----------------------------------------------------------------------------------------------
    def run(self) -> optuna.Study:
        from cnnlab.search.confirm import confirm
        from cnnlab.timing import process_age

        quiet()
        timeout = self.options.timeout_min
        deadline = time.time() - process_age() + 60 * timeout if timeout else None  # from the command's start
        study = self.study()
        workers.fail_stale(study)
        counted = len(workers.counted(study))
        try:
            if counted >= self.options.n_trials:
                log.info("study %s already has %d trials finished or running (n_trials=%d).",
                         self.options.study_name, counted, self.options.n_trials)
            elif self.options.n_workers == 1:
                workers.work(self, study, deadline)
            else:
                workers.spawn(worker_main, self.plan, self.options.n_workers, deadline)
                if workers.fail_stale(study):  # the last worker standing died: nobody left to take its trial
                    log.warning("run the same command again to finish the study's %d trials", self.options.n_trials)
        except KeyboardInterrupt:
            workers.fail_stale(study)
            done = sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
            print(f"\nerror: stopped by Ctrl-C; study {self.options.study_name} keeps its {done} finished trials "
                  "(a trial that was training runs again). Continue it with the same command.", file=sys.stderr)
            raise SystemExit(130) from None
        confirmed = confirm(self, study) if self.plan.space.confirm.top else None
        write_outputs(study, self, confirmed)
        return study


def repair_journal(path: Path) -> None:
    """A journal whose last record was cut short (a process killed while writing) keeps its whole records; the file
    as it was is kept beside it. A journal damaged anywhere else, or not text, is refused as it is."""
    if not path.is_file():
        return
    data = path.read_bytes()
    try:
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not an Optuna journal (not UTF-8 text); cnnlab changes nothing of it: restore "
                          "it from a copy, or start another study with study_name=<new name>.") from None
    for number, line in enumerate(lines[:-1], 1):
        try:
            json.loads(line)
        except ValueError:
            raise ConfigError(f"{path}: record {number} of {len(lines) - 1} is not JSON, so the journal is damaged "
                              "inside; cnnlab changes nothing of it: restore it from a copy, or start another study "
                              "with study_name=<new name>.") from None
    if lines[-1].strip():
        kept = path.with_name(f"{path.name}.cut-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.copy2(path, kept)
        path.write_bytes(data[:len(data) - len(lines[-1].encode())])
        log.warning("%s: its last record was cut short (%d bytes; a worker killed while writing?): the %d whole "
                    "records are kept, and the file as it was is %s", path, len(lines[-1].encode()), len(lines) - 1,
                    kept)


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
    share of the cores, its lines in the console and in search.log, and trials until the study has its n_trials."""
    import torch

    if plan.options.sampler_seed is not None:
        plan = dataclasses.replace(plan, options=dataclasses.replace(
            plan.options, sampler_seed=plan.options.sampler_seed + index))
    torch.set_num_threads(cores(n_workers))
    form = f"[%(asctime)s][%(name)s][%(levelname)s] - worker {index}: %(message)s"
    logging.basicConfig(level=logging.INFO, format=form)
    log_file = logging.FileHandler(plan.out / "search.log")
    log_file.setFormatter(logging.Formatter(form))
    logging.getLogger().addHandler(log_file)
    quiet()
    try:
        search = Search(plan)
        log.info("ready")
        workers.work(search, search.study(), deadline)
    except BaseException as err:  # Ctrl-C: its trial is queued again (Search.tell); the command says what happened
        if workers.by_ctrl_c(err):
            sys.exit(130)
        raise


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
    hint = "install its driver (for postgresql://: pip install -e '.[postgres]', psycopg 3)" \
        if isinstance(err, ImportError) else "check that the folder exists and is writable (sqlite:////absolute/" \
        "path.db has four slashes)" if url.startswith("sqlite") else \
        "check that the server runs and answers there, and the user, password and database"
    return ConfigError(f"storage={shown} cannot be opened ({detail}); {hint}.")
