"""`python src/search.py`: the study's options, the agent, and the training setup every trial shares, checked into
a plan; the space itself is checked against the data set's input shape before the first trial."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.checks.arch import Arch
from cnnlab.checks.data import read_data
from cnnlab.checks.fields import (
    Checker,
    OptionError,
    choice,
    integer,
    number,
    optional,
    positive_int,
    positive_number,
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
    storage: str | None = option(optional(text), None,
                                 "null: a journal file in the study folder; any SQLAlchemy URL for many machines")
    objectives: tuple[str, ...] = option(Checker(_objectives, (["params"], [], "val_err")), ["val_err"],
                                         "what the study minimises")
    sampler_seed: int | None = option(optional(integer(0)), None, "an int makes a one-worker search repeatable")
    n_workers: int = option(positive_int, 1, "trials side by side, each in a process of its own (cores divided)")
    timeout_min: float | None = option(optional(positive_number), None,
                                       "no trial starts after this many minutes of this command (running ones end)")


@dataclass(frozen=True, kw_only=True)
class PrunerOptions(Options):
    """`pruner=`: which trials stop early (conf/pruner/); the fidelity is epochs."""

    where = "pruner."
    name: str = option(choice("median", "hyperband", "none"), "none",
                       "median, hyperband or none (no entry, pruner=null: none)")
    from_epoch: int = option(positive_int, 1, "median: the first epoch after which a trial may be stopped")
    min_epochs: int = option(positive_int, 1, "hyperband: the first rung, in epochs")
    reduction_factor: int = option(integer(2, example=3), 3, "hyperband: 1 in this many trials goes on at a rung")

    def check_rungs(self, epochs: int) -> None:
        """Hyperband, asked for, must have a rung before the trials' last epoch (the median pruner, the default, simply
        has nothing to stop in trials of one epoch)."""
        if self.name == "hyperband" and self.min_epochs * self.reduction_factor > epochs:
            raise OptionError(f"pruner=hyperband stops trials at rungs of {self.min_epochs}, "
                              f"{self.min_epochs * self.reduction_factor}, ... epochs, and the trials train "
                              f"{epochs}: no rung comes before their end; give them at least "
                              f"{self.min_epochs * self.reduction_factor} epochs (search.epochs), or a smaller "
                              "pruner.min_epochs or pruner.reduction_factor.")



@dataclass(frozen=True)
class SearchPlan:
    options: SearchOptions
    space: Options  # TemplateSpaceOptions, SequentialSpaceOptions or RecipeSpaceOptions
    agent: Options  # AgentOptions or one of its kinds
    pruner: PrunerOptions
    out: Path
    base: TrainPlan  # the trial's training run, but for what the space samples
    choices: dict[str, str] = dataclasses.field(default_factory=dict)  # the config groups chosen (data=mnist, ...)
    command: str = "python src/search.py"  # as typed, for the hand-over


def check_search(cfg: Any) -> SearchPlan:
    config = plain(cfg)
    roots = {k: v for k, v in config.items() if k not in ("search", "agent", "pruner", "data", "model", "optim",
                                                           "scheduler", "trainer", "paths")}
    options = SearchOptions.read(roots, "")
    space = read_space(config.get("search"))
    agent = read_agent(config.get("agent"), space, options.n_trials)
    pruner = PrunerOptions.read(config.get("pruner") or {})
    pruner.check_rungs(space.epochs)
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
    if space.kind == "recipe":
        from cnnlab.search.recipe import check_recipe

        base = check_recipe(space, base)
    return SearchPlan(options, space, agent, pruner, out, base, chosen_groups(), command())


def command() -> str:
    from hydra.core.hydra_config import HydraConfig

    typed = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    return " ".join(["python src/search.py", *typed])


def chosen_groups() -> dict[str, str]:
    """The config groups the search was composed with (for the hand-over experiment file)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {k: v for k, v in choices.items() if v is not None and not k.startswith(("hydra", "schema"))
            and "/" not in k}


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


def _params(value: Any) -> dict[str, Any]:
    if isinstance(value, dict) and value and all(isinstance(k, str) and k for k in value):
        return {k: _choices_or_range(v) for k, v in value.items()}
    raise ValueError("a mapping of config paths to a list of choices or a range {low, high, log}, e.g. "
                     "{optim.lr: {low: 0.01, high: 0.2, log: true}, arch.width: [0.5, 1.0]}")


@dataclass(frozen=True, kw_only=True)
class RecipeSpaceOptions(Options):
    """A recipe space (conf/search/fer2013_recipe.yaml): an experiment's knobs, any config path a choice or a range."""

    where = "search."
    kind: str = option(choice("recipe"), "recipe", "recipe")
    base: str | None = option(optional(text), help="the experiment every trial starts from (conf/experiment/<base>"
                                                   ".yaml), or null for train.py's defaults")
    params: Any = option(Checker(_params, ({}, {"optim.lr": []}, 3)),
                         help="config path (or a group: optim, arch) -> choices, or a range {low, high, log}")
    epochs: int = option(positive_int, help="each trial's budget (its trainer.max_epochs, unless a param)")


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


@dataclass(frozen=True, kw_only=True)
class EvolutionOptions(Options):
    """agent=evolution: regularized evolution (Real et al., AAAI 2019), conf/agent/evolution.yaml."""

    where = "agent."
    name: str = option(text, "evolution", "the agent")
    population: int = option(integer(2, example=10), 10, "the most recent finished trials that may be parents")
    tournament: int = option(positive_int, 3, "members drawn from the population; the best one is the parent")

    def validate(self) -> None:
        if self.tournament > self.population:
            raise OptionError(f"agent.tournament = {self.tournament} is more than agent.population = "
                              f"{self.population}; a tournament draws from the population.")


AGENTS: dict[str, type[Options]] = {"tpe": AgentOptions, "random": AgentOptions, "qlearning": QLearningOptions,
                                    "evolution": EvolutionOptions}


def read_space(values: Any) -> Options:
    """The search space, every key checked: a layer-by-layer space (`kind: sequential`) or a template."""
    if not isinstance(values, dict):
        raise OptionError(f"search = {values!r}; expected a search space (conf/search/: cnn_small, metaqnn).")
    kinds = {"template": TemplateSpaceOptions, "sequential": SequentialSpaceOptions, "recipe": RecipeSpaceOptions}
    kind = values.get("kind", "template")
    if kind not in kinds:
        raise OptionError(f"search.kind = {kind!r}; expected one of {', '.join(kinds)}.")
    return kinds[kind].read(values)


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
