"""Data sets: families (what a data set is and how its files are read), sources (images in memory or streamed) and
the one LightningDataModule over them. Data configs name a family from this registry, never a `_target_`, so that
neither a config nor a checkpoint can make cnnlab import code."""

from __future__ import annotations

import importlib
from pathlib import Path

from cnnlab.checks.data import DataOptions

# family -> (module, class): imported when used, so that checking a config stays light
FAMILIES: dict[str, tuple[str, str]] = {
    "digits": ("cnnlab.data.digits", "Digits"),
    "mnist": ("cnnlab.data.mnist", "MNIST"),
    "cifar10": ("cnnlab.data.cifar", "CIFAR10"),
    "cifar100": ("cnnlab.data.cifar", "CIFAR100"),
    "fer2013": ("cnnlab.data.fer2013", "FER2013"),
    "folder": ("cnnlab.data.folder", "Folder"),
}


def make_source(options: DataOptions | dict, data_dir: str | Path):
    """Where the images come from; for a folder, its structure is scanned (nothing is decoded yet). `options`: checked
    data options, or a plain data config (checked here)."""
    if not isinstance(options, DataOptions):  # a plain data config (or a composed one): checked here
        from cnnlab.checks.data import read_data
        from cnnlab.checks.train import plain

        options = read_data(plain(options))
    if options.family == "stream":
        from cnnlab.data.stream import StreamSource

        return StreamSource(options, data_dir)
    from cnnlab.data.memory import MemorySource

    module, name = FAMILIES[options.family]
    family = getattr(importlib.import_module(module), name)(options, data_dir)
    return MemorySource(family, options)


def make_datamodule(options: DataOptions | dict, data_dir: str | Path):
    """The run's LightningDataModule; reads nothing yet but a folder's structure and a shards folder's description."""
    from cnnlab.data.module import ImageData

    source = make_source(options, data_dir)
    return ImageData(source, source.options)
