"""Search spaces (`search=` in conf/search/, each file naming its `kind`): what a trial draws and how it becomes a
training run. One module per kind registers a `Space` subclass with its options: `template` (conv blocks and FC
layers), `sequential` (MetaQNN's layer by layer), `recipe` (a shipped experiment's knobs)."""

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cnnlab.checks.fields import (
    Checker,
    OptionError,
    choice,
    non_negative_int,
    optional,
    positive_int,
    positive_number,
)
from cnnlab.checks.options import Options, nested, option
from cnnlab.registry import Kind


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


dimension = Checker(_choices_or_range, ([], {"low": 5, "high": 3}, {"low": 0, "high": 1, "log": True}, "3"))


def draw(trial: Any, name: str, spec: Any) -> Any:
    """One value of a dimension, as an Optuna parameter named `name`."""
    if isinstance(spec, list):
        return trial.suggest_categorical(name, spec)
    if isinstance(spec["low"], int) and isinstance(spec["high"], int) and not spec.get("log"):
        return trial.suggest_int(name, spec["low"], spec["high"])
    return trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))


@dataclass(frozen=True, kw_only=True)
class ConfirmOptions(Options):
    """`search.confirm`: the best trials trained again over several seeds at the budget you will train with."""

    top: int = option(non_negative_int, 0, "how many of the best trials are confirmed (0: none)")
    seeds: int = option(positive_int, 3, "seeds per confirmed trial; the hand-over names the best mean")
    epochs: int | None = option(optional(positive_int), None, "each confirmation's epochs (null: the trials')")
    seconds: float | None = option(optional(positive_number), None,
                                   "each confirmation's training seconds (null: the trials')")


@dataclass(frozen=True, kw_only=True)
class SpaceOptions(Options):
    """What every space declares: its kind, the fidelity (what a trial's budget is counted in), the budget, and the
    confirmation of the winners."""

    where = "search."
    kind: str = option(Checker(lambda v: v, ()), help="the space's kind: template, sequential or recipe")
    fidelity: str = option(choice("epochs", "seconds"), "epochs",
                           "what a trial's budget counts: epochs, or seconds of its own training (validation apart)")
    epochs: int | None = option(optional(positive_int), None, "each trial's budget with fidelity=epochs")
    seconds: float | None = option(optional(positive_number), None,
                                   "each trial's budget of training seconds with fidelity=seconds")
    confirm: ConfirmOptions = option(nested(ConfirmOptions, "search.confirm."), {}, "the winners over seeds")

    def validate(self) -> None:
        if getattr(self, self.fidelity) is None:
            example = 4 if self.fidelity == "epochs" else 60
            raise OptionError(f"search.fidelity = {self.fidelity!r} needs search.{self.fidelity}: each trial's budget "
                              f"in {self.fidelity} (e.g. search.{self.fidelity}={example}).")
        if self.confirm.epochs and self.confirm.seconds:
            raise OptionError("search.confirm.epochs and search.confirm.seconds are both set; a confirmation trains "
                              "for one budget: keep one (or neither, for the trials' own).")

    @property
    def budget(self) -> float:
        """Each trial's budget, in the fidelity's unit."""
        return getattr(self, self.fidelity)


@dataclass(frozen=True)
class Draw:
    """One trial's sample as a training run: its plan, its layer list (checked specs and as plain data) and a line
    that says what it trains."""

    plan: Any
    specs: tuple
    layers: list[dict[str, Any]]
    what: str


class Space(Kind):
    """A kind of search space. `walks_layers`: its parameters are the states of a list built layer by layer (no
    per-parameter columns in trials.csv, no importances; what agent=qlearning needs)."""

    package, group, key = "cnnlab.search.spaces", "search", "kind"
    _kinds: ClassVar[dict[str, type]] = {}
    walks_layers: ClassVar[bool] = False

    def __init__(self, options: SpaceOptions, input_shape: tuple[int, int, int], num_classes: int):
        self.options = options
        self.input_shape, self.num_classes = tuple(input_shape), num_classes

    @classmethod
    def check(cls, options: SpaceOptions, base: Any) -> Any:
        """Before the first trial, with the search's training plan `base`: what the space needs of it; returns the
        plan a trial starts from."""
        return base

    def draw(self, trial: Any, base: Any, seed: int, out: Path, epochs: int, steps: int = -1) -> Draw:
        """The trial's run for `epochs` epochs (and at most `steps` optimizer steps, -1: no limit): the same
        parameters every time for the same trial (Optuna keeps what it suggested)."""
        raise NotImplementedError


def layer_trial(base: Any, layers: list[dict[str, Any]], hyper: dict[str, Any], epochs: int, steps: int, seed: int,
                out: Path) -> Draw:
    """A trial of a layer-list space as a training run of train.py's kind: the study's plan (data, model.*, optim,
    trainer) with the drawn layer list, learning rate, L2 penalty and batch size; no checkpoints, loggers or test
    split."""
    from cnnlab.layers import parse_layers, resize
    from cnnlab.layers.arch import Arch
    from cnnlab.layers.spec import compact

    specs = tuple(resize(parse_layers(layers)))
    factory = base.optimisation.optimizer
    optimizer = functools.partial(factory.func, *factory.args, **{**factory.keywords, "lr": hyper["lr"]})
    arch, sections = Arch(None, specs), base.config
    config = {**sections, "arch": {"name": out.name, "layers": arch.raw}, "seed": seed,
              "data": {**sections.get("data", {}), "batch_size": hyper["batch_size"]},
              "optim": {**sections.get("optim", {}), "lr": hyper["lr"]},
              "model": {**sections.get("model", {}), "reg": hyper["reg"]},
              "trainer": {**sections.get("trainer", {}), "max_epochs": epochs, "max_steps": steps}}
    plan = base.replace(
        run=dataclasses.replace(base.run, seed=seed), arch=arch,
        optimisation=dataclasses.replace(base.optimisation, optimizer=optimizer, reg=hyper["reg"]),
        model=dataclasses.replace(base.model, reg=hyper["reg"]),
        data=dataclasses.replace(base.data, batch_size=hyper["batch_size"]),
        trainer=dataclasses.replace(base.trainer, max_epochs=epochs, max_steps=steps), out=out, config=config)
    return Draw(plan, specs, layers, compact(layers))
