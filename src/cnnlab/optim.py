"""`optim=muon`: torch's Muon for the weights of C and FC layers, a second optimizer (`other`) for the rest, seen by
Lightning as one optimizer; and the optimisation plan every run takes (`read_optimisation`).

torch's Muon takes 2-D weights: a conv kernel (out, in, kh, kw) is handed to it as a 2-D view of the same storage,
so Muon's in-place update is the kernel's. Biases, batch norm, the T classifier and frozen or whitened layers follow
`other`, which takes the seed's L2 penalty (`model.reg`) as its weight decay."""

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import Optimizer

from cnnlab.checks.fields import OptionError
from cnnlab.targets import check_arguments, instantiate

MATRIX = "matrix"  # the param-group key that marks C and FC weights for Muon


def splits_matrices(fn: Callable) -> Callable:
    """Marks an optimizer factory that wants the C and FC weights in groups of their own (`matrix: True`)."""
    fn.splits_matrices = True
    return fn


def wants_matrices(factory) -> bool:
    return getattr(getattr(factory, "func", factory), "splits_matrices", False)


def optimizer_name(factory) -> str:
    """What a checkpoint records of the optimizer that wrote its state: its function, and `other`'s for optim=muon."""
    function = getattr(factory, "func", factory)
    name = f"{function.__module__}.{function.__qualname__}"
    other = getattr(factory, "keywords", {}).get("other")
    return f"{name}({optimizer_name(other)})" if other is not None else name


def as_matrix(t: torch.Tensor) -> torch.Tensor:
    """A 2-D view (rows: output channels) of a weight or its gradient, for either memory layout of a conv kernel.
    The order of the flattened columns does not matter to Muon: orthogonalisation commutes with permuting them."""
    if t.ndim == 2:
        return t
    if t.is_contiguous():
        return t.view(t.shape[0], -1)
    return t.permute(0, *range(2, t.ndim), 1).view(t.shape[0], -1)  # channels_last: (out, kh, kw, in) is dense


class KernelMuon(torch.optim.Muon):
    """torch.optim.Muon on weights of any rank >= 2, through 2-D views; `normalize` keeps every weight at a fixed
    Frobenius norm (sqrt of its rows, i.e. unit mean filter norm), as airbench's Muon does instead of weight decay
    (after batch norm a weight's scale is irrelevant, its growth only slows the effective rate). `warmup`: (the
    momentum to start from, steps) of a linear momentum warm-up; its count is kept in the group, so checkpoints
    hold it."""

    def __init__(self, params: Iterable[torch.Tensor], normalize: bool = False,
                 warmup: tuple[float, float] | None = None, **kwargs):
        self.sources = list(params)
        self.normalize, self.warmup = normalize, warmup
        super().__init__([as_matrix(p.detach()) for p in self.sources], **kwargs)
        for group in self.param_groups if warmup else ():
            group.update(warm_step=0, final_momentum=group["momentum"])

    def _views(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch.no_grad()
    def step(self, closure=None):
        if self.warmup is not None:
            start, steps = self.warmup
            for group in self.param_groups:
                done = min(1.0, group["warm_step"] / max(steps, 1))
                group["momentum"] = start + (group["final_momentum"] - start) * done
                group["warm_step"] += 1
        for view, source in zip(self._views(), self.sources):
            view.grad = None if source.grad is None else as_matrix(source.grad)
        if self.normalize:
            for view, source in zip(self._views(), self.sources):
                if source.grad is not None:
                    view.mul_(view.shape[0] ** 0.5 / view.norm().clamp_min(1e-12))
        loss = super().step(closure)
        for view in self._views():
            view.grad = None  # the sources' gradients are Lightning's to zero
        return loss


class _States(MutableMapping):
    """The inner optimizers' states as one mapping, each key read and written in the state of the optimizer that owns
    the parameter. (A ChainMap would write into the first optimizer's, and reading a missing key through it would
    create an entry there, torch's states being defaultdicts: after a resume Lightning's moves to the device left
    the other optimizer's states in Muon's, whose state_dict then failed.)"""

    def __init__(self, optimizers: list[Optimizer]):
        self.optimizers = optimizers

    def _state_of(self, key) -> dict:
        for optimizer in self.optimizers:
            if key in optimizer.state:
                return optimizer.state
        for optimizer in self.optimizers:
            if any(p is key for group in optimizer.param_groups for p in group["params"]):
                return optimizer.state
        raise KeyError(key)

    def __getitem__(self, key):
        return self._state_of(key)[key]

    def __setitem__(self, key, value) -> None:
        self._state_of(key)[key] = value

    def __delitem__(self, key) -> None:
        del self._state_of(key)[key]

    def __iter__(self):
        return (key for optimizer in self.optimizers for key in optimizer.state)

    def __len__(self) -> int:
        return sum(len(optimizer.state) for optimizer in self.optimizers)


class Combined(Optimizer):
    """Several optimizers over disjoint parameters, seen as one: their param groups in order, their states merged;
    `step` and `zero_grad` go to each, `state_dict` holds each one's."""

    def __init__(self, optimizers: list[Optimizer]):
        # no Optimizer.__init__: the groups and the state are the inner optimizers' own
        self.optimizers = optimizers
        self.defaults = {}
        for hooks in ("_optimizer_step_pre_hooks", "_optimizer_step_post_hooks", "_optimizer_state_dict_pre_hooks",
                      "_optimizer_state_dict_post_hooks", "_optimizer_load_state_dict_pre_hooks",
                      "_optimizer_load_state_dict_post_hooks"):
            setattr(self, hooks, OrderedDict())

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [group for o in self.optimizers for group in o.param_groups]

    @property
    def state(self) -> _States:
        return _States(self.optimizers)

    def __getstate__(self) -> dict[str, Any]:
        return {"optimizers": self.optimizers}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["optimizers"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(type(o).__name__ for o in self.optimizers)})"

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for optimizer in self.optimizers:
            optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)
        for optimizer in self.optimizers:
            for source in getattr(optimizer, "sources", ()):
                if set_to_none:
                    source.grad = None
                elif source.grad is not None:
                    source.grad.zero_()

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for optimizer, state in zip(self.optimizers, state_dict["optimizers"], strict=True):
            optimizer.load_state_dict(state)


@splits_matrices
def muon(params: list[dict[str, Any]], other: Callable[..., Optimizer], lr: float = 0.02, momentum: float = 0.95,
         nesterov: bool = True, ns_steps: int = 5, decay: float = 0.0, normalize: bool = False,
         adjust_lr: str | None = None, weight_decay: float = 0.0, momentum_warmup: float = 0.0,
         momentum_start: float = 0.85, total_steps: int = 0) -> Optimizer:
    """Muon (`lr`, `momentum`, `nesterov`, `ns_steps`; its own decoupled weight `decay`, or `normalize`) for the param
    groups marked `matrix`, `other` (a partial optimizer, with `weight_decay`: the seed's L2 penalty) for the rest.
    `momentum_warmup`: the fraction of the run's `total_steps` over which Muon's momentum rises linearly from
    `momentum_start` (the CIFAR-100 speedrun: 0.15 from 0.85)."""
    groups = [g if isinstance(g, dict) else {"params": [g]} for g in params]
    matrices, rest = [g for g in groups if g.get(MATRIX)], [g for g in groups if not g.get(MATRIX)]
    parts: list[Optimizer] = []
    if matrices:
        weights = [p for g in matrices for p in g["params"]]
        warmup = (momentum_start, momentum_warmup * total_steps) if momentum_warmup else None
        parts.append(KernelMuon(weights, normalize=normalize, warmup=warmup, lr=lr, momentum=momentum,
                                nesterov=nesterov, ns_steps=ns_steps, weight_decay=decay, adjust_lr_fn=adjust_lr))
    if rest:
        parts.append(other(params=rest, weight_decay=weight_decay))
    if not parts:
        raise ValueError("optimizer got an empty parameter list")
    return Combined(parts)


@dataclass(frozen=True)
class Optimisation:
    """The optimizer and scheduler factories, as the LightningModule calls them (with its parameters)."""

    optimizer: Callable[..., Any]
    scheduler: Callable[..., Any] | None
    reg: float  # the seed's L2 penalty: the optimizer's coupled weight_decay unless the optim config sets its own


def decay_kwargs(factory: Callable, reg: float) -> dict[str, float]:
    """The seed's L2 penalty as the optimizer's weight_decay, unless the optimizer config sets its own."""
    if "weight_decay" in getattr(factory, "keywords", {}):
        if reg:
            raise OptionError("both model.reg and optim.weight_decay are set; the seed's L2 penalty is model.reg, so "
                              "set model.reg=0 to use optim.weight_decay instead.")
        return {}
    return {"weight_decay": reg}


def read_optimisation(optim: Mapping[str, Any], scheduler: Mapping[str, Any] | None, reg: float) -> Optimisation:
    from cnnlab.schedules import takes_total_steps

    check_arguments(optim, "optim", ("params", "weight_decay", "total_steps"))
    factory = instantiate(optim, "optim")
    decay_kwargs(factory, reg)
    schedule = None
    if scheduler:
        check_arguments(scheduler, "scheduler", ("optimizer", "total_steps"))
        schedule = instantiate(scheduler, "scheduler")
        if wants_matrices(factory) and takes_total_steps(schedule) and "max_lr" in scheduler:
            raise OptionError("scheduler=onecycle gives every parameter one peak rate (scheduler.max_lr), which would "
                              "replace Muon's own; with optim=muon use scheduler=warmup_linear or cosine, which scale "
                              "each rate.")
    return Optimisation(factory, schedule, reg)
