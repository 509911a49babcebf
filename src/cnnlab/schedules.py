"""Learning-rate schedules stepped every batch. A factory that takes `total_steps` gets Lightning's estimate of the
run's steps at fit time (`takes_total_steps`; Muon's momentum warm-up too) and, a schedule, is stepped every batch."""

import inspect

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from cnnlab.checks.fields import OptionError


def takes_total_steps(factory) -> bool:
    """Whether a factory (Hydra's `_partial_`, a functools.partial) has a `total_steps` argument."""
    function = getattr(factory, "func", factory)
    return callable(function) and "total_steps" in inspect.signature(function).parameters


def warmup_linear(optimizer: Optimizer, total_steps: int, warmup: float, final: float, start: float) -> LRScheduler:
    """Linear warm-up from `start` x lr over the first `warmup` fraction of the steps, then linear decay to
    `final` x lr (airbench: start 0.2, warm-up 0.23, final 0.07)."""
    warm = max(1, int(warmup * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return start + (1 - start) * (step + 1) / warm
        return final + (1 - final) * max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return LambdaLR(optimizer, factor)


def wsd(optimizer: Optimizer, total_steps: int, warmup: float, cooldown: float, final: float) -> LRScheduler:
    """Warm-up, stable, decay: linear warm-up from 0 over the first `warmup` fraction of the steps, the full rate,
    then linear decay to `final` x lr over the last `cooldown` fraction (the CIFAR-100 speedrun: 0.05 and 0.4)."""
    warm, cool = warmup * total_steps, cooldown * total_steps

    def factor(step: int) -> float:
        if step < warm:
            return step / warm
        if step >= total_steps - cool:
            return final + (1 - final) * max(0.0, (total_steps - step) / cool)
        return 1.0

    return LambdaLR(optimizer, factor)


def _phases(arguments: dict, what: str) -> None:
    warmup, cooldown = arguments.get("warmup"), arguments.get("cooldown")
    if isinstance(warmup, float | int) and isinstance(cooldown, float | int) and warmup + cooldown > 1:
        raise OptionError(f"{what}.warmup + {what}.cooldown = {warmup + cooldown:g}: the warm-up and the cool-down "
                          "are fractions of one run and cannot overlap (a sum <= 1).")


wsd.check = _phases  # arguments that only make sense together, checked with the config (targets.check_arguments)


def one_cycle(optimizer: Optimizer, total_steps: int, max_lr: float, pct_start: float) -> LRScheduler:
    """Leslie Smith's one-cycle policy (torch's OneCycleLR) over the whole run; a parameter group with an
    `lr_scale` (batch-norm shifts under `model.bn_bias_lr_scale`) peaks that much higher."""
    peaks = [max_lr * group.get("lr_scale", 1.0) for group in optimizer.param_groups]
    return OneCycleLR(optimizer, max_lr=peaks, total_steps=total_steps, pct_start=pct_start)
