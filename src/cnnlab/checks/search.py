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
    number,
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
    space: Options  # TemplateSpaceOptions or SequentialSpaceOptions
    agent: Options  # AgentOptions or one of its kinds
    out: Path
    base: TrainPlan  # the trial's training run, but for its layer list, lr, reg and batch size


def check_search(cfg: Any) -> SearchPlan:
    config = plain(cfg)
    roots = {k: v for k, v in config.items() if k not in ("search", "agent", "data", "model", "optim", "scheduler",
                                                           "trainer", "paths")}
    options = SearchOptions.read(roots, "")
    space = read_space(config.get("search"))
    agent = read_agent(config.get("agent"), space, options.n_trials)
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


# --- the spaces -----------------------------------------------------------------------------------------------
def _choices_or_range(value: Any) -> Any:
    """A search dimension: a non-empty list of choices, or a range {low, high, log} with low <= high (> 0 if log)."""
    if isinstance(value, list | tuple) and value:
        return list(value)
    if isinstance(value, dict) and {"low", "high"} <= set(value) <= {"low", "high", "log"}:
        low, high = value["low"], value["high"]
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
        if numbers and low <= high and (not value.get("log") or low > 0):
            return dict(value)
    raise ValueError("a non-empty list of choices, or a range {low: .., high: .., log: false} with low <= high "
                     "(and low > 0 for a log range)")


def _template(value: Any) -> str:
    if value == "template":
        return value
    raise ValueError("template (a sequential space is read by SequentialSpaceOptions)")


dimension = Checker(_choices_or_range, ([], {"low": 5, "high": 3}, {"low": 0, "high": 1, "log": True}, "3"))


@dataclass(frozen=True, kw_only=True)
class TemplateSpaceOptions(Options):
    """A template space (conf/search/cnn_small.yaml): conv blocks, then FC layers, and the optimiser's settings."""

    where = "search."
    kind: str = option(Checker(_template, ("sequential",)), "template", "template (this) or sequential")
    blocks: Any = option(dimension, help="conv blocks")
    width: Any = option(dimension, help="output channels of each block")
    kernel: Any = option(dimension, help="kernel sizes")
    stride: Any = option(dimension, help="strides")
    pool: Any = option(dimension, help="pooling after each block: max, avg, none")
    batch_norm: Any = option(dimension, help="batch norm or not")
    activation: Any = option(dimension, help="activations")
    drop_out: Any = option(dimension, help="dropout per block, in percent")
    fc_layers: Any = option(dimension, help="FC layers")
    fc_width: Any = option(dimension, help="FC widths")
    lr: Any = option(dimension, help="learning rates")
    reg: Any = option(dimension, help="L2 penalties (model.reg)")
    batch_size: Any = option(dimension, help="batch sizes")
    width_multiplier: Any = option(dimension, [1.0], "x every sampled width, as arch.width does")
    epochs: int = option(positive_int, help="each trial's budget")


@dataclass(frozen=True, kw_only=True)
class SequentialSpaceOptions(Options):
    """A layer-by-layer space (conf/search/metaqnn.yaml): the actions, MetaQNN's limits, fixed training settings."""

    where = "search."
    kind: str = option(Checker(lambda v: v, ()), "sequential", "sequential")
    max_depth: int = option(integer(2), help="layers before T (a list needs at least one layer and T)")
    max_fc: int = option(integer(0), help="FC layers at most")
    fc_max_size: int = option(positive_int, help="FC layers only on maps of at most this many pixels a side")
    conv: Any = option(Checker(lambda v: dict(v or {}), ()), {}, "every combination of these C options is an action")
    pool: Any = option(Checker(lambda v: dict(v or {}), ()), {}, "every combination: a max-pooling action")
    fc: Any = option(Checker(lambda v: dict(v or {}), ()), {}, "every combination: an FC action")
    drop_out: Any = option(Checker(lambda v: list(v or []), ()), [], "dropout actions, in percent")
    activation: str = option(text, "relu", "the activation of C and FC actions")
    lr: float = option(number(0, low_open=True), help="the learning rate of every trial")
    reg: float = option(number(0), help="the L2 penalty of every trial")
    batch_size: int = option(positive_int, help="the batch size of every trial")
    epochs: int = option(positive_int, help="each trial's budget")


def _schedule(value: Any) -> tuple[tuple[float, int], ...] | None:
    if value is None:
        return None
    try:
        stages = tuple((float(eps), int(n)) for eps, n in value)
    except (TypeError, ValueError):
        stages = ()
    if stages and all(0 <= eps <= 1 and n >= 1 for eps, n in stages):
        return stages
    raise ValueError("[[epsilon, trials], ...] with 0 <= epsilon <= 1 and a positive number of trials per stage, e.g. "
                     "[[1.0, 10], [0.5, 5], [0.1, 5]]")


@dataclass(frozen=True, kw_only=True)
class QLearningOptions(Options):
    """agent=qlearning: MetaQNN's agent (conf/agent/qlearning.yaml)."""

    where = "agent."
    name: str = option(text, "qlearning", "the agent")
    epsilon: Any = option(Checker(_schedule, ([[1.5, 10]], "often")), None,
                          "[[epsilon, trials], ...] summing to n_trials; null: MetaQNN's shape scaled to n_trials")
    learning_rate: float = option(number(0, 1, low_open=True), 0.01, "MetaQNN's alpha")
    discount: float = option(number(0, 1), 1.0, "MetaQNN's gamma")
    initial_q: float = option(number(), 0.5, "the Q-value of an action never tried")
    replay: int = option(positive_int, 100, "paths replayed from memory after each trial")


@dataclass(frozen=True, kw_only=True)
class AgentOptions(Options):
    """agent=tpe, agent=random: Optuna's samplers, with no options of their own."""

    where = "agent."
    name: str = option(text, "tpe", "the agent")


AGENTS: dict[str, type[Options]] = {"tpe": AgentOptions, "random": AgentOptions, "qlearning": QLearningOptions}


def read_space(values: Any) -> Options:
    """The search space, every key checked: a layer-by-layer space (`kind: sequential`) or a template."""
    if not isinstance(values, dict):
        raise OptionError(f"search = {values!r}; expected a search space (conf/search/: cnn_small, metaqnn).")
    kind = values.get("kind", "template")
    if kind not in ("template", "sequential"):
        raise OptionError(f"search.kind = {kind!r}; expected template or sequential.")
    return (SequentialSpaceOptions if kind == "sequential" else TemplateSpaceOptions).read(values)


def read_agent(values: Any, space: Options, n_trials: int) -> Options:
    """The agent's options; an agent that builds lists layer by layer needs such a space."""
    values = dict(values or {"name": "tpe"})
    if values.get("name") not in AGENTS:
        raise OptionError(f"agent = {values.get('name')!r}; expected one of {', '.join(AGENTS)}.")
    agent = AGENTS[values["name"]].read(values)
    if agent.name == "qlearning":
        if space.kind != "sequential":
            raise OptionError("agent=qlearning builds layer lists one layer at a time: it needs a sequential space, "
                              "e.g. search=metaqnn (conf/search/metaqnn.yaml), not a template space.")
        if agent.epsilon is not None and sum(n for _, n in agent.epsilon) != n_trials:
            raise OptionError(f"agent.epsilon covers {sum(n for _, n in agent.epsilon)} trials but n_trials = "
                              f"{n_trials}; the stages must sum to the trial budget (or set agent.epsilon=null for "
                              f"MetaQNN's schedule scaled to {n_trials}).")
    return agent
