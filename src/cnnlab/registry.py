"""Registries filled by their packages: every module of a package such as `cnnlab.layers.types` registers what it
declares when imported, so that a new layer type, data set or logger is a new module and nothing else."""

from __future__ import annotations

import functools
import importlib
import pkgutil


@functools.cache
def load(package: str) -> None:
    """Import every module of `package`, once (a class defined elsewhere may register before, or without, it)."""
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        importlib.import_module(f"{package}.{module.name}")
