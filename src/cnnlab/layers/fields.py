"""Field checkers for layer specs: each normalises a value or raises ValueError saying what is allowed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "silu")
REQUIRED = object()


@dataclass(frozen=True)
class Field:
    """One named field of a layer type: how to check it, and its default (REQUIRED when it has none)."""

    check: Callable[[Any], Any]
    default: Any = REQUIRED
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(value: Any) -> int:
    if _is_int(value) and value > 0:
        return value
    raise ValueError("a positive integer, e.g. 64")


def pair(value: Any) -> tuple[int, int]:
    """An int n (meaning n×n) or a pair [h, w] of positive ints: the seed wrote (3,3), YAML writes [3, 3]."""
    if _is_int(value) and value > 0:
        return (value, value)
    if isinstance(value, list | tuple) and len(value) == 2 and all(_is_int(v) and v > 0 for v in value):
        return (value[0], value[1])
    raise ValueError("a positive integer or a pair of them, e.g. 3 or [3, 3]")


def percent(value: Any) -> float:
    """Dropout as the seed wrote it: a percentage, 8.3 meaning p = 0.083."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 100:
        return float(value)
    raise ValueError("a percentage 0 <= drop_out < 100 (8.3 means p = 0.083)")


def positive_number(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise ValueError("a number > 0, e.g. 0.111")


def fraction(value: Any) -> float:
    """A weight in (0, 1], such as batch norm's momentum (PyTorch's convention: the weight of the new batch)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 1:
        return float(value)
    raise ValueError("a number 0 < x <= 1, e.g. 0.1")


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("true or false")


def padding(value: Any) -> str | int:
    if value in ("same", "valid"):
        return value
    if _is_int(value) and value >= 0:
        return value
    raise ValueError("'same' (TensorFlow SAME: output = ceil(input / stride)), 'valid', or an int >= 0")


def choice(*options: Any) -> Callable[[Any], Any]:
    shown = ", ".join("null" if o is None else repr(o) for o in options)

    def check(value: Any) -> Any:
        if value == "none":
            value = None
        if value in options and not isinstance(value, bool):
            return value
        raise ValueError(f"one of {shown}")

    return check


activation = choice(*ACTIVATIONS, None)
