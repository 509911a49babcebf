"""A recipe space (`kind: recipe`, e.g. `conf/search/fer2013_recipe.yaml`): every trial is a shipped experiment
(`base`) with some of its knobs drawn, any config path (`optim.lr`, `arch.width`, `model.mixup.share`,
`data.batch_size`, ...) or a whole config group (`optim: [sgd, muon]`), each a list of choices or a range. A trial's
config is composed and checked as `python src/train.py experiment=<base> <knobs>` would be; before the first trial
every knob's name and values are checked the same way."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from cnnlab.checks.fields import OptionError
from cnnlab.checks.train import TrainPlan


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


def overrides(space, values: dict[str, Any], seed: int, out: Path, data_dir: Path) -> list[str]:
    """`python src/train.py` overrides of one trial: the base experiment, the drawn knobs, the trial's budget and
    seed, and no checkpoints, loggers or test split."""
    drawn = [f"{path}={hydra_value(value)}" for path, value in values.items()]
    budget = [] if "trainer.max_epochs" in values else [f"trainer.max_epochs={space.epochs}"]
    base = [f"experiment={space.base}"] if space.base else []
    return [*base, *drawn, *budget, f"seed={seed}", "test=false", f"paths.output_dir={out}",
            f"paths.data_dir={data_dir}", "~logger", "~callbacks.model_checkpoint", "~callbacks.last_checkpoint",
            "trainer.enable_checkpointing=false", "trainer.enable_progress_bar=false"]


def compose_isolated(overrides_: list[str], choices: dict[str, str] | None = None, raw: bool = False) -> dict[str, Any]:
    """`train`'s config for these overrides, resolved (`raw`: its interpolations as written), composed inside a
    running Hydra app (a search) and leaving its state as it was: Hydra allows one global instance, and the compose
    API would replace the app's. `choices`, when given, receives the config groups chosen."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.initialize import get_gh_backup, restore_gh_from_backup
    from omegaconf import OmegaConf

    from cnnlab.checks import compose
    from cnnlab.checks.train import plain

    backup, hydra_config = get_gh_backup(), HydraConfig.instance().cfg
    GlobalHydra.instance().clear()
    try:
        composed = compose("train", *overrides_)
        config = OmegaConf.to_container(composed, resolve=False) if raw else plain(composed)
        if choices is not None:
            chosen = HydraConfig.get().runtime.choices
            choices.update({k: v for k, v in chosen.items() if v is not None and "/" not in k
                            and not k.startswith("hydra")})
        return config
    finally:
        restore_gh_from_backup(backup)
        HydraConfig.instance().cfg = hydra_config


def trial_plan(space, values: dict[str, Any], seed: int, out: Path, data_dir: Path,
               choices: dict[str, str] | None = None) -> TrainPlan:
    """The trial as train.py would check it: its plan (quiet: no layer table or progress lines)."""
    from cnnlab.checks.train import check_train

    config = compose_isolated(overrides(space, values, seed, out, data_dir), choices)
    return dataclasses.replace(check_train(config, check_place=False), quiet=True)


class RecipeSpace:
    """Draws a trial's knobs; a choice that Optuna cannot hold (a list, null) is drawn by its override text."""

    kind = "recipe"

    def __init__(self, space):
        self.options, self.epochs = space, space.epochs

    def sample(self, trial) -> dict[str, Any]:
        from cnnlab.search.template import draw

        values = {}
        for path, dimension in self.options.params.items():
            if isinstance(dimension, list):
                labels = [hydra_value(choice) for choice in dimension]
                values[path] = dimension[labels.index(trial.suggest_categorical(path, labels))]
            else:
                values[path] = draw(trial, path, dimension)
        return values

    def plan(self, values: dict[str, Any], seed: int, out: Path, data_dir: Path,
             choices: dict[str, str] | None = None) -> TrainPlan:
        return trial_plan(self.options, values, seed, out, data_dir, choices)

    @staticmethod
    def describe(values: dict[str, Any]) -> str:
        return " ".join(f"{path}={hydra_value(round(v, 6) if isinstance(v, float) else v)}"
                        for path, v in values.items())


def ends(dimension: Any) -> list[Any]:
    """The values a dimension's check tries: every choice, or a range's two ends."""
    if isinstance(dimension, list):
        return list(dimension)
    kind = int if all(isinstance(dimension[k], int) for k in ("low", "high")) and not dimension.get("log") else float
    return [kind(dimension["low"]), kind(dimension["high"])]


def check_recipe(space, base: TrainPlan) -> TrainPlan:
    """Before the first trial: the base experiment exists and every knob's name and values pass train.py's checks
    (each value tried with the others at their first); returns the plan of a trial at the first values."""
    from cnnlab.overrides import check_overrides

    first = {path: ends(dimension)[0] for path, dimension in space.params.items()}
    experiment = [f"experiment={space.base}"] if space.base else []
    problem = check_overrides("train", experiment)
    if problem is not None:
        raise OptionError(f"search.base = {space.base!r}: {problem}")
    for path in space.params:
        problem = check_overrides("train", [*experiment, f"{path}={hydra_value(first[path])}"])
        if problem is not None:
            raise OptionError(f"search.params.{path}: {problem}")
    plan = None
    for path, dimension in space.params.items():
        for value in ends(dimension):
            try:
                trial = trial_plan(space, {**first, path: value}, base.run.seed, base.out / "trials" / "check",
                                   base.data_dir)
            except OptionError as err:
                raise OptionError(f"search.params.{path} = {value!r} (with the other knobs at their first value): "
                                  f"{err}") from None
            plan = plan or trial
    return plan
