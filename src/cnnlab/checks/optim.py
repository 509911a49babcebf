"""`optim=` and `scheduler=`: `_partial_` factories (conf/optim/, conf/scheduler/), made and tried once on a dummy
parameter, so that a bad value fails before any data is read rather than inside fit."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cnnlab.checks.fields import OptionError


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


def decay_kwargs(factory: Callable, reg: float) -> dict[str, float]:
    """The seed's L2 penalty as the optimizer's weight_decay, unless the optimizer config sets its own."""
    if "weight_decay" in getattr(factory, "keywords", {}):
        if reg:
            raise OptionError("both model.reg and optim.weight_decay are set; the seed's L2 penalty is model.reg, so "
                              "set model.reg=0 to use optim.weight_decay instead.")
        return {}
    return {"weight_decay": reg}


def read_optimisation(optim: Mapping[str, Any], scheduler: Mapping[str, Any] | None, reg: float) -> Optimisation:
    import torch

    from cnnlab.optim import MATRIX, wants_matrices
    from cnnlab.schedules import is_per_step

    factory = instantiate(optim, "optim")
    dummy = [{"params": [torch.zeros(2, 2, requires_grad=True)], MATRIX: True}] if wants_matrices(factory) else []
    decay = decay_kwargs(factory, reg)
    try:
        optimizer = factory(params=[*dummy, {"params": [torch.zeros(1, requires_grad=True)]}], **decay)
    except (TypeError, ValueError) as err:
        hint = " (weight_decay is model.reg)" if "weight_decay" in str(err) else ""
        raise OptionError(f"optim ({optim.get('_target_')}): {err}{hint}; check the optim.* overrides.") from None
    schedule = instantiate(scheduler, "scheduler") if scheduler else None
    if schedule is not None:
        if wants_matrices(factory) and getattr(getattr(schedule, "func", None), "__name__", "") == "one_cycle":
            raise OptionError("scheduler=onecycle gives every parameter one peak rate (scheduler.max_lr), which would "
                              "replace Muon's own; with optim=muon use scheduler=warmup_linear or cosine, which scale "
                              "each rate.")
        try:
            steps = {"total_steps": 100} if is_per_step(schedule) else {}
            trial = schedule(optimizer=optimizer, **steps)
            optimizer.step()  # no gradients: changes nothing, but lets the scheduler take one real step
            trial.step()
        except (TypeError, ValueError, ZeroDivisionError) as err:
            raise OptionError(f"scheduler ({scheduler.get('_target_')}): {err}; check the scheduler.* "
                              "overrides.") from None
    return Optimisation(factory, schedule, reg)
