"""The template space (`conf/search/cnn_small.yaml`): blocks of [C (+BN) -> activation -> pool -> dropout], then
FC layers, every choice a named Optuna parameter, plus the optimiser's lr, reg and batch size."""

from __future__ import annotations

from typing import Any

import optuna

from cnnlab.checks.search import TemplateSpaceOptions
from cnnlab.layers import parse_layers, resize


def draw(trial: optuna.Trial, name: str, spec: Any) -> Any:
    if isinstance(spec, list):
        return trial.suggest_categorical(name, spec)
    if isinstance(spec["low"], int) and isinstance(spec["high"], int) and not spec.get("log"):
        return trial.suggest_int(name, spec["low"], spec["high"])
    return trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))


def sample_layers(trial: optuna.Trial, space: dict[str, Any]) -> list[dict[str, Any]]:
    """One layer list from the space (parameter names are per block, so that trials share them)."""
    layers: list[dict[str, Any]] = []
    activation = draw(trial, "activation", space["activation"])
    for b in range(draw(trial, "blocks", space["blocks"])):
        layers.append({"type": "C", "num_output": draw(trial, f"width_{b}", space["width"]),
                       "kernel_size": draw(trial, f"kernel_{b}", space["kernel"]),
                       "stride": draw(trial, f"stride_{b}", space["stride"]), "activation": activation,
                       "batch_norm": draw(trial, f"batch_norm_{b}", space["batch_norm"])})
        pool = draw(trial, f"pool_{b}", space["pool"])
        if pool != "none":
            layers.append({"type": "P", "pool": pool, "kernel_size": 2, "stride": 2})
        drop = round(draw(trial, f"drop_out_{b}", space["drop_out"]), 1)
        if drop > 0:
            layers.append({"type": "DO", "drop_out": drop})
    for f in range(draw(trial, "fc_layers", space["fc_layers"])):
        layers.append({"type": "FC", "num_output": draw(trial, f"fc_width_{f}", space["fc_width"]),
                       "activation": activation})
    layers.append({"type": "T"})
    multiplier = draw(trial, "width_multiplier", space["width_multiplier"]) if space.get("width_multiplier") \
        not in (None, [1.0], [1]) else 1.0
    if multiplier != 1:  # as arch.width scales a list: C and FC widths to multiples of 8
        layers = [s.to_dict() for s in resize(parse_layers(layers), width=multiplier)]
    return layers


class TemplateSpace:
    """Samples a layer list and its training hyper-parameters from a template space."""

    kind = "template"

    def __init__(self, space: TemplateSpaceOptions | dict):
        """`space`: the plan's checked options (a plain mapping is checked by the same declaration)."""
        self.space = (space if isinstance(space, TemplateSpaceOptions) else TemplateSpaceOptions.read(space)).to_dict()
        self.epochs = self.space["epochs"]

    def sample(self, trial: optuna.Trial) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        layers = sample_layers(trial, self.space)
        hyper = {key: draw(trial, key, self.space[key]) for key in ("lr", "reg", "batch_size")}
        return layers, hyper
