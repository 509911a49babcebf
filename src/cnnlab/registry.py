"""Registries filled by their packages: every module of a package such as `cnnlab.layers.types` registers what it
declares when imported, so that a new layer type, data set, logger, search space, agent or pruner is a new module
(and its YAML) and nothing else."""

import functools
import importlib
import pkgutil
from typing import Any, ClassVar

from cnnlab.checks.fields import OptionError


@functools.cache
def load(package: str) -> None:
    """Import every module of `package`, once (a class defined elsewhere may register before, or without, it)."""
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        importlib.import_module(f"{package}.{module.name}")


class Kind:
    """One kind of a concept (a data family, a search space, an agent, a pruner). The concept's base class sets
    `package` (the modules that hold its kinds), `group` (its config group, conf/<group>/), `key` (the config field
    that names a kind) and its own `_kinds` table; a subclass with a `name` registers itself there, with its `Options`
    (the options it declares, checked before anything is built)."""

    name: ClassVar[str] = ""
    package: ClassVar[str] = ""
    group: ClassVar[str] = ""
    key: ClassVar[str] = "name"
    Options: ClassVar[type]
    _kinds: ClassVar[dict[str, type]]

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if cls.name:
            cls._kinds[cls.name] = cls

    @classmethod
    def kinds(cls) -> dict[str, type[Any]]:
        """Every kind of the concept, by name, in the order their modules registered."""
        load(cls.package)
        return dict(cls._kinds)

    @classmethod
    def chosen(cls, values: Any) -> type[Any]:
        """The kind a config entry names (its `key`); an entry that names none, or an unknown one, is one sentence."""
        kinds = cls.kinds()
        name = values.get(cls.key) if isinstance(values, dict) else None
        if name not in kinds:
            given = f"{cls.group}.{cls.key} = {name!r}" if isinstance(values, dict) else f"{cls.group} = {values!r}"
            raise OptionError(f"{given}; expected one of {', '.join(kinds)} ({cls.group}=<name>, conf/{cls.group}/).")
        return kinds[name]

    @classmethod
    def checked(cls, values: Any) -> Any:
        """The entry's options, checked by the kind it names."""
        return cls.chosen(values).Options.read(values)
