"""`callbacks=`: Lightning callbacks from conf/callbacks/ (checkpoints, early stopping, lookahead, EMA), checked
without making them: argument names against the callback's signature, values by the options a callback declares
(`Options`, as cnnlab's averaging callbacks do); a value Lightning refuses is one sentence when the Trainer is made,
before any data is read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cnnlab.checks.fields import OptionError, boolean, non_negative, number, positive_int
from cnnlab.checks.optim import META, check_arguments
from cnnlab.checks.options import Options, option


@dataclass(frozen=True, kw_only=True)
class AveragingOptions(Options):
    """callbacks.ema and callbacks.lookahead (cnnlab.averaging)."""

    every: int = option(positive_int, 5, "steps between updates of the average")
    decay: float = option(number(0, 1, high_open=True), 0.9, "the average's share at each update")
    power: float = option(non_negative, 0.0, "the decay grows as progress ** power (0: constant)")
    jump: bool = option(boolean, False, "the model jumps to the average at each update (lookahead)")


def read_callbacks(callbacks: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    if callbacks is not None and not isinstance(callbacks, Mapping):
        raise OptionError(f"callbacks = {callbacks!r}; expected callbacks=<name> (conf/callbacks/: default, "
                          "early_stop, lookahead, ema).")
    entries = {name: dict(entry) for name, entry in (callbacks or {}).items()}
    for name, entry in entries.items():
        if not isinstance(entry, Mapping) or "_target_" not in entry:
            raise OptionError(f"callbacks.{name} = {entry!r}; expected a callback config with a _target_ "
                              "(conf/callbacks/).")
        target = check_arguments(entry, f"callbacks.{name}", ())
        declared = getattr(target, "Options", None)
        if isinstance(declared, type) and issubclass(declared, Options):
            declared.read({k: v for k, v in entry.items() if k not in META}, f"callbacks.{name}.")
    return entries
