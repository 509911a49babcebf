"""`optim=` and `scheduler=`: `_partial_` factories (conf/optim/, conf/scheduler/) the LightningModule calls with its
parameters. Checked without making one: every argument's name against the target's signature, every value against
what the argument means (one table for all optimizers and schedules, below)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cnnlab.checks.fields import (
    Checker,
    Field,
    OptionError,
    boolean,
    check_value,
    choice,
    integer,
    non_negative,
    number,
    optional,
    positive_int,
    positive_number,
    probability,
    suggest,
)


def _betas(value: Any) -> tuple[float, float]:
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) and not
                                                                   isinstance(v, bool) and 0 <= v < 1 for v in value):
        return (float(value[0]), float(value[1]))
    raise ValueError("a pair of numbers 0 <= beta < 1, e.g. [0.9, 0.999]")


below_one = number(0, 1, high_open=True, example=0.9)
# what each argument of an optimizer or schedule means, whichever takes it (torch's, cnnlab's Muon and schedules)
ARGUMENTS: dict[str, Checker] = {
    "lr": non_negative, "momentum": below_one, "dampening": probability, "weight_decay": non_negative,
    "nesterov": boolean, "eps": positive_number, "betas": Checker(_betas, ([1, 0.9], 0.9)), "alpha": probability,
    "centered": boolean, "amsgrad": boolean, "maximize": boolean, "capturable": boolean, "differentiable": boolean,
    "foreach": optional(boolean), "fused": optional(boolean), "rho": probability, "lr_decay": non_negative,
    "initial_accumulator_value": non_negative,
    "ns_steps": positive_int, "decay": non_negative, "normalize": boolean, "clip": optional(positive_number),
    "adjust_lr": optional(choice("original", "match_rms_adamw")),
    "T_max": positive_int, "eta_min": non_negative, "step_size": positive_int, "gamma": positive_number,
    "warmup": probability, "final": non_negative, "start": non_negative, "max_lr": positive_number,
    "pct_start": number(0, 1, low_open=True, high_open=True), "last_epoch": integer(-1),
}
META = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")


@dataclass(frozen=True)
class Optimisation:
    """The optimizer and scheduler factories, as the LightningModule calls them (with its parameters)."""

    optimizer: Callable[..., Any]
    scheduler: Callable[..., Any] | None
    reg: float  # the seed's L2 penalty: the optimizer's coupled weight_decay unless the optim config sets its own


def instantiate(config: Mapping[str, Any], what: str) -> Any:
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    from cnnlab.errors import CnnlabError

    try:
        return hydra_instantiate(dict(config))
    except InstantiationException as err:
        if isinstance(err.__cause__, CnnlabError):  # the target's own check said what is wrong
            raise OptionError(str(err.__cause__)) from None
        raise OptionError(f"{what}: {err}".splitlines()[0]) from None


def check_arguments(config: Mapping[str, Any], what: str, given_by_cnnlab: tuple[str, ...]) -> Any:
    """Every key of a `_target_` config (an optimizer, a schedule, a callback) is an argument of its target, with a
    value it can mean; `given_by_cnnlab`: arguments cnnlab passes itself (params, weight_decay, total_steps,
    optimizer). Returns the target."""
    from hydra.utils import get_method

    target = config.get("_target_")
    try:
        function = get_method(target) if isinstance(target, str) else None
    except Exception:  # noqa: BLE001 - Hydra's ImportError or its own: the target cannot be found
        function = None
    if function is None:
        raise OptionError(f"{what}._target_ = {target!r} cannot be imported; conf/{what}/ lists the ones cnnlab ships.")
    parameters = inspect.signature(function).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    names = [n for n, p in parameters.items() if n not in given_by_cnnlab and p.kind is not p.VAR_KEYWORD]
    for key, value in config.items():
        if key in META:
            continue
        if key in given_by_cnnlab and key != "weight_decay":
            raise OptionError(f"{what}.{key} is given by cnnlab (the model's parameters, the run's length); remove it.")
        if key not in parameters and not takes_any:
            raise OptionError(f"{what}.{key} is not an argument of {target}; its arguments: {', '.join(names)}."
                              + suggest(key, names))
        if key == "other" and isinstance(value, Mapping):
            check_arguments(value, f"{what}.other", given_by_cnnlab)
        elif key in ARGUMENTS:
            check_value(f"{what}.", key, Field(ARGUMENTS[key]), value)
    if config.get("nesterov") and (config.get("momentum", 0) <= 0 or config.get("dampening", 0) != 0):
        raise OptionError(f"{what}.nesterov = true needs {what}.momentum > 0 and no dampening; set {what}.momentum "
                          f"(e.g. 0.9) or {what}.nesterov=false.")
    return function


def decay_kwargs(factory: Callable, reg: float) -> dict[str, float]:
    """The seed's L2 penalty as the optimizer's weight_decay, unless the optimizer config sets its own."""
    if "weight_decay" in getattr(factory, "keywords", {}):
        if reg:
            raise OptionError("both model.reg and optim.weight_decay are set; the seed's L2 penalty is model.reg, so "
                              "set model.reg=0 to use optim.weight_decay instead.")
        return {}
    return {"weight_decay": reg}


def read_optimisation(optim: Mapping[str, Any], scheduler: Mapping[str, Any] | None, reg: float) -> Optimisation:
    from cnnlab.optim import wants_matrices
    from cnnlab.schedules import is_per_step

    check_arguments(optim, "optim", ("params", "weight_decay"))
    factory = instantiate(optim, "optim")
    decay_kwargs(factory, reg)
    schedule = None
    if scheduler:
        check_arguments(scheduler, "scheduler", ("optimizer", "total_steps"))
        schedule = instantiate(scheduler, "scheduler")
        if wants_matrices(factory) and is_per_step(schedule) and "max_lr" in scheduler:
            raise OptionError("scheduler=onecycle gives every parameter one peak rate (scheduler.max_lr), which would "
                              "replace Muon's own; with optim=muon use scheduler=warmup_linear or cosine, which scale "
                              "each rate.")
    return Optimisation(factory, schedule, reg)
