"""Option groups declared once: each option's name, check, default and meaning in one frozen dataclass field,
`reg: float = option(non_negative, 1e-3, "the seed's L2 penalty")`. From it come the checked, typed value
(`ModelOptions.read(values)`), the error naming key, value and what is allowed, the Hydra schema (`schema()`), the
README's row and a generated test that feeds it its checker's bad values."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from cnnlab.checks.fields import REQUIRED, Checker, Field, OptionError, read


def option(check: Checker, default: Any = REQUIRED, help: str = "") -> Any:
    """A dataclass field for an Options class: checked by `check`, `default` as a user would write it."""
    meta = {"field": Field(check, default, help)}
    if default is REQUIRED or (isinstance(default, str) and "${" in default):  # an interpolation: checked resolved
        return dataclasses.field(metadata=meta)
    normal = check(copy.deepcopy(default))
    if normal.__class__.__hash__ is None:  # a list or dict in normal form: each instance gets its own copy
        return dataclasses.field(default_factory=lambda: copy.deepcopy(normal), metadata=meta)
    return dataclasses.field(default=normal, metadata=meta)


class Options:
    """Base of a frozen group of checked options (subclasses are `@dataclass(frozen=True)`)."""

    where: ClassVar[str] = ""  # the config path of the group, for errors: 'model.', 'data.augment.', ''

    @classmethod
    def fields(cls) -> dict[str, Field]:
        return {f.name: f.metadata["field"] for f in dataclasses.fields(cls) if "field" in f.metadata}

    @classmethod
    def read(cls, values: Mapping[str, Any] | None, where: str | None = None) -> Options:
        """The group from a config node (plain mapping): unknown keys, wrong kinds and ranges are OptionErrors."""
        values = values or {}
        if isinstance(values, Options):
            return values
        if not isinstance(values, Mapping):
            raise OptionError(f"{(where if where is not None else cls.where).rstrip('.') or 'the config'} = "
                              f"{values!r}; expected a mapping of options ({', '.join(cls.fields())}).")
        instance = cls(**read(values, cls.fields(), cls.where if where is None else where))
        instance.validate()
        return instance

    def validate(self) -> None:
        """Rules between options of the group; raise OptionError."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts, numbers, strings), as a checkpoint or a config file holds it."""
        return {k: _plain(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every option's default as a user would write it (REQUIRED ones as '???', Hydra's missing value; a group
        inside the group with every one of its options, so that each can be set without a '+')."""
        return {name: "???" if f.required else f.check(copy.deepcopy(f.default)).to_dict()
                if getattr(f.check, "group", None) else copy.deepcopy(f.default) for name, f in cls.fields().items()}

    @classmethod
    def schema(cls) -> type:
        """A dataclass of the defaults with untyped fields, for Hydra's ConfigStore: every option exists in the
        composed config (so `model.reg=0` needs no '+'), and values stay as given for `read` to check."""
        made = []
        for name, default in cls.defaults().items():
            value = default
            made.append((name, Any, dataclasses.field(default_factory=lambda v=value: copy.deepcopy(v))))
        return dataclasses.make_dataclass(f"{cls.__name__}Schema", made)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def nested(options: type[Options], where: str) -> Checker:
    """A checker for a group inside a group (data.augment, model.mixup): a mapping read as `options`."""
    return Checker(lambda value: options.read(value, where), ("abc", 3), options)
