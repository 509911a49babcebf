"""`python src/search.py`: the study's options, its space, agent and pruner (each a registry's kind), and the training
setup every trial shares, checked into a plan before the first trial."""

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.checks.fields import (
    Checker,
    OptionError,
    integer,
    optional,
    positive_int,
    positive_number,
    seed_value,
    text,
)
from cnnlab.checks.options import Options, option
from cnnlab.checks.places import writable
from cnnlab.compose import plain
from cnnlab.data.family import read_data
from cnnlab.layers.arch import Arch
from cnnlab.machine import cores
from cnnlab.model.options import ModelOptions
from cnnlab.optim import read_optimisation
from cnnlab.run.plans import Job, RunOptions, TrainPlan, adjusted_trainer
from cnnlab.run.trainer import TrainerOptions
from cnnlab.search.agents import Agent
from cnnlab.search.pruners import Pruner
from cnnlab.search.spaces import Space
from cnnlab.targets import read_callbacks

OBJECTIVES = ("val_err", "seconds", "params", "flops")


def _objectives(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple) and value and value[0] == "val_err" and \
            all(v in OBJECTIVES for v in value) and len(set(value)) == len(value):
        return tuple(value)
    raise ValueError("[val_err], or val_err first and costs after it: [val_err, seconds], [val_err, params, flops]")


def _name(value: Any) -> str:
    """A study's name is a name: it becomes a folder under outputs/search/ and the study's key in its storage."""
    import re

    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.=-]{0,99}", value):
        return value
    raise ValueError("a name of letters, digits, '_', '-', '.' and '=', up to 100 characters, not a path (no '/', "
                     "no leading '.'), e.g. study_name=fer2013_recipe")


@dataclass(frozen=True, kw_only=True)
class SearchOptions(Options):
    task_name: str = option(text, "search", "the entry point")
    seed: int = option(seed_value, 42, "the first trial's seed (trial n: seed + n)")
    study_name: str = option(Checker(_name, ("../x", "a/b", "x" * 101, ".hidden", "")),
                             "${hydra:runtime.choices.search}-${hydra:runtime.choices.agent}-"
                             "${hydra:runtime.choices.data}", "the study's name; the same name resumes it")
    n_trials: int = option(positive_int, 20, "trials of the study in total")
    storage: str | None = option(optional(text), None,
                                 "null: a journal file in the study folder; any SQLAlchemy URL for many machines")
    objectives: tuple[str, ...] = option(Checker(_objectives, (["params"], [], "val_err")), ["val_err"],
                                         "what the study minimises")
    sampler_seed: int | None = option(optional(integer(0)), None, "an int makes a one-worker search repeatable "
                                      "(a continued study draws on, never its first trials again)")
    n_workers: int = option(positive_int, 1, "trials side by side, each in a process of its own (cores divided)")
    timeout_min: float | None = option(optional(positive_number), None,
                                       "no trial starts after this many minutes of this command (running ones end)")
    heartbeat_s: float = option(positive_number, 20.0, "with a database storage: how often a worker says it lives")
    grace_s: float = option(positive_number, 120.0, "with a database storage: a trial whose worker has been silent "
                                                    "this long is failed and its parameters run again")

    def validate(self) -> None:
        if self.heartbeat_s >= self.grace_s:
            raise OptionError(f"heartbeat_s = {self.heartbeat_s:g} is not shorter than grace_s = {self.grace_s:g}: "
                              "a worker that beats that seldom would be taken for dead between two beats; make "
                              "grace_s a few heartbeats long (e.g. heartbeat_s=20 grace_s=120).")
        if self.n_workers > cores():
            raise OptionError(f"n_workers = {self.n_workers}: this machine has {cores()} cores, and each worker "
                              f"trains with at least one; use n_workers <= {cores()} (more machines: start the "
                              "same command on each, with one database storage).")
        memory = self.storage is not None and self.storage.startswith("sqlite") and \
            (self.storage.rstrip("/").endswith(":memory:") or self.storage.rstrip("/") == "sqlite:")
        if memory:
            raise OptionError(f"storage = {self.storage!r} keeps the study in this process's memory: it is lost when "
                              "the search ends and worker processes cannot share it; give a file "
                              "(storage=sqlite:////abs/path/study.db) or leave storage out for the study folder's "
                              "journal.")


@dataclass(frozen=True)
class SearchPlan:
    options: SearchOptions
    space: Options  # the space's options; its kind: Space.kinds()[space.kind]
    agent: Options
    pruner: Options
    out: Path
    base: TrainPlan  # the trial's training run, but for what the space samples
    choices: dict[str, str] = dataclasses.field(default_factory=dict)  # the config groups chosen (data=mnist, ...)
    command: str = "python src/search.py"  # as typed, for the hand-over


SECTIONS = ("search", "agent", "pruner", "data", "model", "optim", "scheduler", "trainer", "callbacks", "paths")
NO_PRUNING = {"name": "none"}  # pruner=null: no entry, no pruning


def check_search(cfg: Any) -> SearchPlan:
    config = plain(cfg)
    options = SearchOptions.read({k: v for k, v in config.items() if k not in SECTIONS}, "")
    space_kind, agent_kind = Space.chosen(config.get("search")), Agent.chosen(config.get("agent"))
    pruner_kind = Pruner.chosen(config.get("pruner") or NO_PRUNING)
    space = space_kind.Options.read(config["search"])
    agent = agent_kind.Options.read(config["agent"])
    agent_kind.check(agent, space_kind, options.n_trials)
    pruner = pruner_kind.Options.read(config.get("pruner") or NO_PRUNING)
    pruner_kind.check(pruner, space.budget, space.fidelity)
    if space.fidelity == "seconds" and options.timeout_min and space.seconds > options.timeout_min * 60:
        raise OptionError(f"search.seconds = {space.seconds:g} is longer than the study's timeout_min = "
                          f"{options.timeout_min:g} ({options.timeout_min * 60:g} s): no trial could finish; "
                          "shorten the trials or lengthen the timeout.")
    model = ModelOptions.read(config.get("model"))
    data = read_data(dict(config.get("data") or {}))
    trainer = adjusted_trainer(TrainerOptions.read({**(config.get("trainer") or {}), "enable_checkpointing": False,
                                                    "enable_progress_bar": False}), Job())
    paths = config.get("paths") or {}
    out = writable(Path(paths.get("output_dir") or "outputs/search"), "hydra.run.dir")
    optimisation = read_optimisation(config.get("optim") or {}, config.get("scheduler"), model.reg)
    run = RunOptions.read({"seed": options.seed, "test": False}, "")
    # a trial keeps no checkpoints; the hand-over writes the callbacks it trained with
    config = {**config, "callbacks": read_callbacks(config.get("callbacks"), trainer.enable_checkpointing)}
    base = TrainPlan(run=run, arch=Arch(None, ()), data=data, data_config=dict(config.get("data") or {}), model=model,
                     optimisation=optimisation, trainer=trainer, loggers={}, callbacks=config["callbacks"],
                     out=out, data_dir=Path(paths.get("data_dir") or "data"), master=None, config=config, quiet=True)
    base = space_kind.check(space, base)
    return SearchPlan(options, space, agent, pruner, out, base, *hydra_launch())


def hydra_launch() -> tuple[dict[str, str], str]:
    """The config groups the search was composed with, and the command as typed (for the hand-over)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}, "python src/search.py"
    hydra = HydraConfig.get()
    choices = {k: v for k, v in hydra.runtime.choices.items() if v is not None and not k.startswith(("hydra", "schema"))
               and "/" not in k}
    return choices, " ".join(["python src/search.py", *hydra.overrides.task])
