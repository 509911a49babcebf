"""`kind: recipe` (e.g. conf/search/fer2013_recipe.yaml): every trial is a shipped experiment (`base`) with some of
its knobs drawn, any config path (`optim.lr`, `arch.width`, `model.mixup.share`, `data.batch_size`, ...) or a whole
config group (`optim: [sgd, muon]`), each a list of choices or a range. A trial's config is composed and checked as
`python src/train.py experiment=<base> <knobs>` would be; before the first trial every knob's name and values are
checked the same way."""

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.checks.fields import Checker, OptionError, optional, text
from cnnlab.checks.options import option
from cnnlab.compose import compose
from cnnlab.search.spaces import Draw, Space, SpaceOptions, _choices_or_range, draw


def _params(value: Any) -> dict[str, Any]:
    if isinstance(value, dict) and value and all(isinstance(k, str) and k for k in value):
        return {k: _choices_or_range(v) for k, v in value.items()}
    raise ValueError("a mapping of config paths to a list of choices or a range {low, high, log}, e.g. "
                     "{optim.lr: {low: 0.01, high: 0.2, log: true}, arch.width: [0.5, 1.0]}")


@dataclass(frozen=True, kw_only=True)
class RecipeOptions(SpaceOptions):
    base: str | None = option(optional(text), help="the experiment every trial starts from (conf/experiment/<base>"
                                                   ".yaml), or null for train.py's defaults")
    params: Any = option(Checker(_params, ({}, {"optim.lr": []}, 3)),
                         help="config path (or a group: optim, arch) -> choices, or a range {low, high, log}")


def hydra_value(value: Any) -> str:
    """A value as an override's right-hand side (Hydra's grammar)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, str) and not value.replace("_", "").replace("-", "").replace(".", "").isalnum():
        return "'" + value.replace("'", "\\'") + "'"
    return str(value)


def overrides(space: RecipeOptions, values: dict[str, Any], seed: int, out: Path, data_dir: Path, epochs: int,
              steps: int = -1) -> list[str]:
    """`python src/train.py` overrides of one trial: the base experiment, the drawn knobs, the trial's budget and
    seed, and no checkpoints, loggers or test split."""
    drawn = [f"{path}={hydra_value(value)}" for path, value in values.items()]
    budget = [] if "trainer.max_epochs" in values else [f"trainer.max_epochs={epochs}", f"trainer.max_steps={steps}"]
    base = [f"experiment={space.base}"] if space.base else []
    from cnnlab.search.handover import QUIET

    return [*base, *drawn, *budget, f"seed={seed}", f"paths.output_dir={out}", f"paths.data_dir={data_dir}", *QUIET]


def trial_plan(space: RecipeOptions, values: dict[str, Any], seed: int, out: Path, data_dir: Path,
               choices: dict[str, str] | None = None, epochs: int | None = None, steps: int = -1) -> Any:
    """The trial as train.py would check it: its plan (quiet: no layer table or progress lines)."""
    from cnnlab.run.plans import check_train

    budget = epochs or space.epochs or 1  # seconds: a first plan of one epoch, then the epochs that fit
    config = compose("train", *overrides(space, values, seed, out, data_dir, budget, steps), choices=choices)
    return dataclasses.replace(check_train(config, check_place=False), quiet=True)


def ends(dimension: Any) -> list[Any]:
    """The values a dimension's check tries: every choice, or a range's two ends."""
    if isinstance(dimension, list):
        return list(dimension)
    kind = int if all(isinstance(dimension[k], int) for k in ("low", "high")) and not dimension.get("log") else float
    return [kind(dimension["low"]), kind(dimension["high"])]


class Recipe(Space):
    """Draws a trial's knobs; a choice that Optuna cannot hold (a list, null) is drawn by its override text."""

    name, Options = "recipe", RecipeOptions

    @classmethod
    def check(cls, options: RecipeOptions, base: Any) -> Any:
        """The base experiment exists and every knob's name and values pass train.py's checks (each value tried with
        the others at their first); returns the plan of a trial at the first values."""
        if base.callbacks:
            raise OptionError(f"callbacks.{next(iter(base.callbacks))}: a recipe space's trials train with their "
                              "experiment's callbacks (search.base); choose them there, or search them as a knob "
                              "(+search.params.callbacks=[default,ema]).")
        length = [p for p in options.params if p in ("trainer.max_epochs", "trainer.max_steps")]
        if length and options.fidelity == "seconds":
            raise OptionError(f"search.params.{length[0]}: with search.fidelity=seconds each trial trains as many "
                              "epochs as fit in search.seconds; a knob cannot set them too (drop it, or use "
                              "search.fidelity=epochs).")
        first = {path: ends(dimension)[0] for path, dimension in options.params.items()}
        experiment = [f"experiment={options.base}"] if options.base else []
        for key, overrides in [("search.base", experiment), *((f"search.params.{path}", [
                *experiment, f"{path}={hydra_value(first[path])}"]) for path in options.params)]:
            try:  # the names first, one at a time: the sentence names the knob
                compose("train", *overrides)
            except OptionError as err:
                raise OptionError(f"{key}{' = ' + repr(options.base) if key == 'search.base' else ''}: {err}") from None
        out, seed, data_dir, plan = base.out / "trials" / "check", base.run.seed, base.data_dir, None
        for path, dimension in options.params.items():
            for value in ends(dimension):
                try:
                    trial = trial_plan(options, {**first, path: value}, seed, out, data_dir)
                except OptionError as err:
                    raise OptionError(f"search.params.{path} = {value!r} (the other knobs at their first value): "
                                      f"{err}") from None
                plan = plan or trial
        return plan

    def draw(self, trial: Any, base: Any, seed: int, out: Path, epochs: int, steps: int = -1) -> Draw:
        values, choices = {}, {}
        for path, dimension in self.options.params.items():
            if isinstance(dimension, list):
                labels = [hydra_value(choice) for choice in dimension]
                values[path] = dimension[labels.index(trial.suggest_categorical(path, labels))]
            else:
                values[path] = draw(trial, path, dimension)
        plan = trial_plan(self.options, values, seed, out, base.data_dir, choices, epochs, steps)
        trial.set_user_attr("choices", choices)
        what = " ".join(f"{path}={hydra_value(round(v, 6) if isinstance(v, float) else v)}"
                        for path, v in values.items())
        return Draw(plan, plan.arch.specs, [s.to_dict() for s in plan.arch.specs], what)
