"""`_target_` configs (an optimizer, a schedule, a callback), checked without making them: every argument's name
against the target's signature, every value against what the argument means (one table for every optimizer and
schedule, below; a target of cnnlab's may declare its own `Options`, as the averaging callbacks do)."""

import inspect
from collections.abc import Mapping
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
from cnnlab.checks.options import Options


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
    "ns_steps": positive_int, "decay": non_negative, "normalize": boolean,
    "adjust_lr": optional(choice("original", "match_rms_adamw")),
    "T_max": positive_int, "eta_min": non_negative, "step_size": positive_int, "gamma": positive_number,
    "warmup": probability, "cooldown": probability, "final": non_negative, "start": non_negative,
    "max_lr": positive_number, "pct_start": number(0, 1, low_open=True, high_open=True), "last_epoch": integer(-1),
    "momentum_warmup": probability, "momentum_start": below_one,
}
META = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")


def instantiate(config: Mapping[str, Any], what: str) -> Any:
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    from cnnlab.checks.errors import CnnlabError

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
        if key == "other":  # Muon's second optimizer, for what Muon does not take
            if not isinstance(value, Mapping) or "_target_" not in value:
                raise OptionError(f"{what}.other = {value!r}; expected the optimizer for biases, batch norm and the "
                                  "classifier, e.g. {_target_: torch.optim.SGD, _partial_: true, lr: 0.05}.")
            check_arguments(value, f"{what}.other", given_by_cnnlab)
        elif key in ARGUMENTS:
            check_value(f"{what}.", key, Field(ARGUMENTS[key]), value)
    if callable(getattr(function, "check", None)):  # a rule between its arguments, written beside the function
        function.check(config, what)
    if config.get("nesterov") and (config.get("momentum", 0) <= 0 or config.get("dampening", 0) != 0):
        raise OptionError(f"{what}.nesterov = true needs {what}.momentum > 0 and no dampening; set {what}.momentum "
                          f"(e.g. 0.9) or {what}.nesterov=false.")
    return function


def read_callbacks(callbacks: Mapping[str, Any] | None, checkpointing: bool | None = None) -> dict[str, dict[str, Any]]:
    """The checked callback configs; with `checkpointing` false (trainer.enable_checkpointing, a search's trials)
    those that write checkpoints are left out (Lightning refuses them beside that flag)."""
    if callbacks is not None and not isinstance(callbacks, Mapping):
        from cnnlab.compose import entries

        raise OptionError(f"callbacks = {callbacks!r}; expected callbacks=<name> (conf/callbacks/: "
                          f"{', '.join(entries('callbacks'))}).")
    configs, kept = {name: dict(entry) for name, entry in (callbacks or {}).items()}, {}
    for name, entry in configs.items():
        if not isinstance(entry, Mapping) or "_target_" not in entry:
            raise OptionError(f"callbacks.{name} = {entry!r}; expected a callback config with a _target_ "
                              "(conf/callbacks/).")
        target = check_arguments(entry, f"callbacks.{name}", ())
        if checkpointing is False and isinstance(target, type):
            from pytorch_lightning.callbacks import ModelCheckpoint

            if issubclass(target, ModelCheckpoint):
                continue
        kept[name] = entry
        declared = getattr(target, "Options", None)
        if isinstance(declared, type) and issubclass(declared, Options):
            declared.read({k: v for k, v in entry.items() if k not in META}, f"callbacks.{name}.")
    return kept
