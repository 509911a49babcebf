"""`python src/prepare.py data=... out=SHARDS`: which data set to write into shards, where, and how."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.checks.data import DataOptions, read_data
from cnnlab.checks.fields import OptionError, choice, optional, positive_int, text
from cnnlab.checks.options import Options, option
from cnnlab.checks.places import shards_folder
from cnnlab.checks.train import SEED, plain


@dataclass(frozen=True, kw_only=True)
class PrepareOptions(Options):
    task_name: str = option(text, "prepare", "the entry point")
    seed: int = option(SEED, 42, "shuffles the training images on disk (the splits use data.seed)")
    out: str = option(text, "???", "the shards folder")
    store: str = option(choice("auto", "encoded", "pixels"), "auto",
                        "auto: files as found for data=folder, uint8 pixels otherwise")
    workers: int | None = option(optional(positive_int), None, "writing processes (null: all cores)")
    chunk_mb: int = option(positive_int, 64, "size of each chunk file")


@dataclass(frozen=True)
class PreparePlan:
    options: PrepareOptions
    out: Path
    data: DataOptions
    data_config: dict[str, Any]
    data_dir: Path
    store: str  # encoded or pixels


def check_prepare(cfg: Any) -> PreparePlan:
    config = plain(cfg)
    if config.get("out") in (None, "???"):
        raise OptionError("prepare.py needs out=FOLDER: where to write the shards (then: python src/train.py "
                          "data=stream data.root=FOLDER).")
    options = PrepareOptions.read({k: v for k, v in config.items() if k not in ("data", "paths")}, "")
    data_config = dict(config.get("data") or {})
    if data_config.get("family") == "stream":
        raise OptionError("data=stream reads shards; prepare.py writes them from another data config "
                          "(data=folder data.root=PATH, data=cifar10, ...).")
    if data_config.get("family") == "folder":
        data_config["cache"] = False  # nothing is decoded into memory, so nothing is cached
    out = shards_folder(Path(options.out))
    return PreparePlan(options, out, read_data(data_config), data_config, Path(config["paths"]["data_dir"]),
                       stored(options.store, data_config.get("family") == "folder"))


def stored(store: str, from_files: bool) -> str:
    """How images go into the shards: `auto` is the files' own bytes for a folder, uint8 pixels otherwise."""
    if store == "auto":
        return "encoded" if from_files else "pixels"
    if store == "encoded" and not from_files:
        raise OptionError("store=encoded keeps image files as found; this data set is not read from image files, "
                          "so its shards hold pixels (store=pixels or auto).")
    return store
