"""`python src/search.py`: the study's options, the agent, and the training setup every trial shares, checked into
a plan; the space itself is checked against the data set's input shape before the first trial."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.checks.arch import Arch
from cnnlab.checks.data import read_data
from cnnlab.checks.fields import (
    Checker,
    OptionError,
    boolean,
    integer,
    optional,
    positive_int,
    text,
)
from cnnlab.checks.model import ModelOptions
from cnnlab.checks.optim import read_optimisation
from cnnlab.checks.options import Options, option
from cnnlab.checks.places import writable
from cnnlab.checks.train import SEED, RunOptions, TrainPlan, adjusted_trainer, plain
from cnnlab.checks.trainer import TrainerOptions

OBJECTIVES = ("val_err", "params", "flops")
AGENTS = ("tpe", "random", "qlearning")


def _objectives(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple) and value and value[0] == "val_err" and len(value) <= 2 and \
            all(v in OBJECTIVES for v in value) and len(set(value)) == len(value):
        return tuple(value)
    raise ValueError("[val_err] or [val_err, params|flops]")


@dataclass(frozen=True, kw_only=True)
class SearchOptions(Options):
    task_name: str = option(text, "search", "the entry point")
    seed: int = option(SEED, 42, "the first trial's seed (trial n: seed + n)")
    study_name: str = option(text, "???", "the study's name; the same name resumes it")
    n_trials: int = option(positive_int, 20, "trials of the study in total")
    storage: str | None = option(optional(text), None, "null: SQLite in the study folder; any SQLAlchemy URL")
    objectives: tuple[str, ...] = option(Checker(_objectives, (["params"], [], "val_err")), ["val_err"],
                                         "what the study minimises")
    sampler_seed: int | None = option(optional(integer(0)), None, "an int makes a one-worker search repeatable")
    pruning: bool = option(boolean, True, "stop unpromising trials early (median pruner)")


@dataclass(frozen=True)
class SearchPlan:
    options: SearchOptions
    space: dict[str, Any]
    agent: dict[str, Any]
    out: Path
    base: TrainPlan  # the trial's training run, but for its layer list, lr, reg and batch size


def check_search(cfg: Any) -> SearchPlan:
    config = plain(cfg)
    roots = {k: v for k, v in config.items() if k not in ("search", "agent", "data", "model", "optim", "scheduler",
                                                           "trainer", "paths")}
    options = SearchOptions.read(roots, "")
    agent = dict(config.get("agent") or {"name": "tpe"})
    if agent.get("name") not in AGENTS:
        raise OptionError(f"agent = {agent.get('name')!r}; expected one of {', '.join(AGENTS)}.")
    space = config.get("search")
    if not isinstance(space, dict):
        raise OptionError(f"search = {space!r}; expected a search space (conf/search/: cnn_small, metaqnn).")
    model = ModelOptions.read(config.get("model"))
    data = read_data(dict(config.get("data") or {}))
    trainer = adjusted_trainer(TrainerOptions.read({**(config.get("trainer") or {}), "enable_checkpointing": False,
                                                    "enable_progress_bar": False}), _job())
    paths = config.get("paths") or {}
    out = writable(Path(paths.get("output_dir") or "outputs/search"), "hydra.run.dir")
    optimisation = read_optimisation(config.get("optim") or {}, config.get("scheduler"), model.reg)
    run = RunOptions.read({"seed": options.seed, "test": False}, "")
    base = TrainPlan(run=run, arch=Arch(None, ()), data=data, data_config=dict(config.get("data") or {}), model=model,
                     optimisation=optimisation, trainer=trainer, loggers={}, callbacks={}, out=out,
                     data_dir=Path(paths.get("data_dir") or "data"), master=None, config=config, quiet=True)
    return SearchPlan(options, space, agent, out, base)


def _job():
    from cnnlab.checks.train import Job

    return Job()
