"""Learning-rate schedules stepped every batch, for which the total number of steps is known only at fit time:
the module passes `total_steps` (Lightning's estimate for the whole run) to any factory marked `per_step`."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR


def per_step(fn):
    fn.per_step = True
    return fn


def is_per_step(factory) -> bool:
    """Whether a scheduler factory (Hydra's `_partial_`, a functools.partial) is marked `per_step`."""
    return getattr(getattr(factory, "func", None), "per_step", False)


@per_step
def warmup_linear(optimizer: Optimizer, total_steps: int, warmup: float = 0.1, final: float = 0.0,
                  start: float = 0.0) -> LRScheduler:
    """Linear warm-up from `start` x lr over the first `warmup` fraction of the steps, then linear decay to
    `final` x lr (airbench: start 0.2, warm-up 0.23, final 0.07)."""
    warm = max(1, int(warmup * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return start + (1 - start) * (step + 1) / warm
        return final + (1 - final) * max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return LambdaLR(optimizer, factor)


@per_step
def one_cycle(optimizer: Optimizer, total_steps: int, max_lr: float, pct_start: float = 0.25) -> LRScheduler:
    """Leslie Smith's one-cycle policy (torch's OneCycleLR) over the whole run; a parameter group with an
    `lr_scale` (batch-norm shifts under `model.bn_bias_lr_scale`) peaks that much higher."""
    peaks = [max_lr * group.get("lr_scale", 1.0) for group in optimizer.param_groups]
    return OneCycleLR(optimizer, max_lr=peaks, total_steps=total_steps, pct_start=pct_start)
