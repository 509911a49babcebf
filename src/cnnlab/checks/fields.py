"""The checker vocabulary: every value a user can set is checked by one of these, before anything is built or read.

A checker normalises a value or raises `ValueError` whose text says what is allowed ("a positive integer, e.g.
64"); the caller puts it into one sentence with the key and the value given. Each checker also carries a few values
it must refuse (`bad`), so that every option declared with it is tested for its error without a test of its own.
Pure Python on purpose: layer lists and options are checked before torch builds anything.
"""

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.checks.errors import ConfigError

REQUIRED = object()


@dataclass(frozen=True)
class Checker:
    """A named check: `fn(value)` -> the value in normal form, or ValueError('what is allowed')."""

    fn: Callable[[Any], Any]
    bad: tuple = ()  # values it refuses: the generated tests give each option one of them
    group: type | None = None  # the Options class of a group inside a group (`nested`)

    def __call__(self, value: Any) -> Any:
        return self.fn(value)


@dataclass(frozen=True)
class Field:
    """One named option or layer field: how to check it, its default (REQUIRED when it has none), what it means."""

    check: Callable[[Any], Any]
    default: Any = REQUIRED
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# --- numbers ------------------------------------------------------------------------------------------------------
def integer(low: int | None = None, high: int | None = None, example: int | None = None) -> Checker:
    """An int in [low, high] (either end open when None); booleans are not integers here."""
    if low is not None and high is not None:
        what = f"an integer {low} <= x <= {high}"
    elif low is not None:
        what = {0: "an integer >= 0", 1: "a positive integer"}.get(low, f"an integer >= {low}")
    else:
        what = "an integer"
    shown = f"{what}, e.g. {example}" if example is not None else what

    def check(value: Any) -> int:
        if is_int(value) and (low is None or value >= low) and (high is None or value <= high):
            return value
        raise ValueError(shown)

    bad = [True, "abc", 1.5] + ([low - 1] if low is not None else []) + ([high + 1] if high is not None else [])
    return Checker(check, tuple(bad))


def number(low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False,
           example: float | None = None) -> Checker:
    """A finite int or float between `low` and `high` (open ends with `low_open`/`high_open`)."""
    below, above = ("<" if low_open else "<="), ("<" if high_open else "<=")
    if low is not None and high is not None:
        what = f"a number {low:g} {below} x {above} {high:g}"
    elif low is not None:
        what = f"a number {'>' if low_open else '>='} {low:g}"
    elif high is not None:
        what = f"a number {above} {high:g}"
    else:
        what = "a number"
    shown = f"{what}, e.g. {example:g}" if example is not None else what

    def check(value: Any) -> float:
        inside = is_number(value) and (low is None or value > low or (value == low and not low_open)) and \
            (high is None or value < high or (value == high and not high_open))
        if not inside:
            raise ValueError(shown)
        return float(value)

    bad = [True, "abc", float("nan")]
    if low is not None:
        bad.append(low if low_open else low - 1)
    if high is not None:
        bad.append(high if high_open else high + 1)
    return Checker(check, tuple(bad))


positive_int = integer(1, example=64)
non_negative_int = integer(0)
positive_number = number(0, low_open=True, example=0.111)
non_negative = number(0)
fraction = number(0, 1, low_open=True, example=0.1)  # a weight in (0, 1], such as batch norm's momentum
probability = number(0, 1)
seed_value = integer(0, 2**32 - 1, example=42)  # what NumPy's and torch's generators take


def _percent(value: Any) -> float:
    """Dropout as the seed wrote it: a percentage, 8.3 meaning p = 0.083."""
    if is_number(value) and 0 <= value < 100:
        return float(value)
    raise ValueError("a percentage 0 <= drop_out < 100 (8.3 means p = 0.083)")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("true or false")


def _pair(value: Any) -> tuple[int, int]:
    """An int n (meaning n x n) or a pair [h, w] of positive ints: the seed wrote (3,3), YAML writes [3, 3]."""
    if is_int(value) and value > 0:
        return (value, value)
    if isinstance(value, list | tuple) and len(value) == 2 and all(is_int(v) and v > 0 for v in value):
        return (value[0], value[1])
    raise ValueError("a positive integer or a pair of them, e.g. 3 or [3, 3]")


def _text(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    raise ValueError("a non-empty word")


percent = Checker(_percent, (100, -1, "8", True))
text = Checker(_text, (3, "", None))
boolean = Checker(_boolean, ("yes", 1, None))
pair = Checker(_pair, (0, -1, [3], [2, 0], "3", True))


# --- words and shapes ----------------------------------------------------------------------------------------------
def choice(*options: Any) -> Checker:
    """One of `options`, of the same type (true is not 1); 'none' is read as null (the seed wrote 'none')."""
    shown = ", ".join("null" if o is None else repr(o).lower() if isinstance(o, bool) else repr(o) for o in options)

    def check(value: Any) -> Any:
        if value == "none" and None in options:
            return None
        for option in options:
            if option is value or (type(option) is type(value) and option == value):
                return option
        raise ValueError(f"one of {shown}")

    bad = tuple(b for b in ("no-such-option", 7) if b not in options)
    return Checker(check, bad)


def optional(inner: Checker) -> Checker:
    """null, or what `inner` accepts."""

    def check(value: Any) -> Any:
        if value is None:
            return None
        try:
            return inner(value)
        except ValueError as err:
            raise ValueError(f"null or {err}") from None

    return Checker(check, tuple(b for b in inner.bad if b is not None))


def sequence(inner: Checker, what: str, nonempty: bool = True, distinct: bool = False) -> Checker:
    """A list (a tuple in normal form) of values `inner` accepts."""
    shown = f"a {'non-empty ' if nonempty else ''}list of {what}{' (no repeats)' if distinct else ''}"

    def check(value: Any) -> tuple:
        if not isinstance(value, list | tuple) or (nonempty and not value):
            raise ValueError(shown)
        try:
            items = tuple(inner(v) for v in value)
        except ValueError:
            raise ValueError(shown) from None
        if distinct and len(set(items)) != len(items):
            raise ValueError(shown)
        return items

    return Checker(check, ("abc", [], 3) if nonempty else ("abc", 3))


per_channel = optional(sequence(number(), "numbers, one per channel"))  # mean, std: counted against the channels


# --- places on disk -----------------------------------------------------------------------------------------------
def existing_file(what: str) -> Checker:
    def check(value: Any) -> Path:
        if not isinstance(value, str | Path) or not str(value):
            raise ValueError(f"the path of {what}")
        path = Path(value).expanduser()
        if path.is_dir():
            raise ValueError(f"the path of {what}; {path} is a folder")
        if not path.is_file():
            raise ValueError(f"the path of {what}; {path} does not exist")
        return path

    return Checker(check, (3, "/no/such/file.ckpt"))


def existing_path(what: str) -> Checker:
    def check(value: Any) -> Path:
        if not isinstance(value, str | Path) or not str(value):
            raise ValueError(f"the path of {what}")
        path = Path(value).expanduser()
        if not path.exists():
            raise ValueError(f"the path of {what}; {path} does not exist")
        return path

    return Checker(check, (3, "/no/such/place"))


checkpoint = existing_file("a checkpoint written by train.py, e.g. outputs/train/<run>/checkpoints/last.ckpt")


# --- sections -----------------------------------------------------------------------------------------------------
# other names people type for an option: a typo of the left is taken for the right, where the right exists
ALIASES = {"learning_rate": "lr", "weight_decay": "reg", "epochs": "max_epochs", "batchsize": "batch_size",
           "num_epochs": "max_epochs", "dropout": "drop_out", "filters": "num_output", "kernel": "kernel_size"}


def suggest(word: str, options: Sequence[str]) -> str:
    import difflib

    options = list(options)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    alias = difflib.get_close_matches(word.lower(), list(ALIASES), n=1, cutoff=0.8)
    if alias and ALIASES[alias[0]] in options and (not close or word.lower() != close[0]):
        close = [ALIASES[alias[0]]]
    if not close and word.upper() in options:
        close = [word.upper()]
    return f" Did you mean '{close[0]}'?" if close else ""


class OptionError(ConfigError, ValueError):
    """A value refused by its checker: `where.name = value; expected ...`, printed as one `error:` line."""


def check_value(where: str, name: str, field: Field, value: Any) -> Any:
    try:
        return field.check(value)
    except OptionError:  # a group inside the group: its sentence is already whole
        raise
    except ValueError as err:
        raise OptionError(f"{where}{name} = {value!r}; expected {err}.") from None


def read(values: Mapping[str, Any], fields: Mapping[str, Field], where: str) -> dict[str, Any]:
    """Every key of `values` checked by its field (an unknown key named with the closest known one), the missing
    ones filled with their defaults; `where` prefixes the keys in errors ('data.', 'model.', or '')."""
    for name in values:
        if name not in fields:
            raise OptionError(f"{where}{name} is not an option here; options: {', '.join(fields)}."
                              + suggest(str(name), list(fields)))
    out = {}
    for name, field in fields.items():
        if name in values:
            out[name] = check_value(where, name, field, values[name])
        elif field.required:
            raise OptionError(f"{where}{name} is required ({field.help}).")
        else:
            out[name] = field.check(copy.deepcopy(field.default))  # defaults in the same normal form as values
    return out
