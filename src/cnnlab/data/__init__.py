"""Data set families, by the name a data config gives in `family` (a registry, so configs import no code)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from cnnlab.data.base import InMemoryDataModule
from cnnlab.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from cnnlab.data.digits import DigitsDataModule
from cnnlab.data.fer2013 import FER2013DataModule
from cnnlab.data.folder import FolderDataModule
from cnnlab.data.mnist import MNISTDataModule
from cnnlab.data.stream import StreamDataModule
from cnnlab.errors import ConfigError

FAMILIES: dict[str, type[InMemoryDataModule]] = {
    "digits": DigitsDataModule,
    "mnist": MNISTDataModule,
    "cifar10": CIFAR10DataModule,
    "cifar100": CIFAR100DataModule,
    "fer2013": FER2013DataModule,
    "folder": FolderDataModule,
    "stream": StreamDataModule,
}


def make_datamodule(cfg: dict[str, Any], data_dir: str | Path) -> InMemoryDataModule:
    """The data module a data config describes; reads nothing yet (that is `setup`'s job)."""
    cfg = dict(cfg)
    family = cfg.pop("family", None)
    if family not in FAMILIES:
        raise ConfigError(f"data.family = {family!r}; expected one of {', '.join(FAMILIES)}.")
    cls = FAMILIES[family]
    allowed = set(inspect.signature(InMemoryDataModule.__init__).parameters) - {"self", "data_dir"}
    allowed |= set(inspect.signature(cls.__init__).parameters) - {"self", "data_dir", "kwargs"}
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise ConfigError(f"data config has unknown keys {unknown} for family {family!r}; "
                          f"allowed: {', '.join(sorted(allowed))}.")
    return cls(data_dir=data_dir, **cfg)
