"""`python src/prepare.py data=... out=SHARDS`: a data set (any data config, `data=folder` without decoding it into
memory) checked into a plan, then written once into litdata shards that `data=stream` trains from, with the same
splits the in-memory path would make."""

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.checks.fields import OptionError, choice, optional, positive_int, seed_value, text
from cnnlab.checks.options import Options, option
from cnnlab.checks.places import shards_folder
from cnnlab.compose import plain
from cnnlab.data import make_source
from cnnlab.data.families.folder import Folder
from cnnlab.data.family import read_data
from cnnlab.data.image_cache import worker_count
from cnnlab.data.options import DataOptions
from cnnlab.data.shards import META, SPLITS, VERSION, Source, publish, stats_from_counts, write_split
from cnnlab.data.splits import Split, make_splits


@dataclass(frozen=True, kw_only=True)
class PrepareOptions(Options):
    task_name: str = option(text, "prepare", "the entry point")
    seed: int = option(seed_value, 42, "shuffles the training images on disk (the splits use data.seed)")
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


log = logging.getLogger("cnnlab")

TRAIN_EVAL_DEFAULT = 10_000  # images in the training-error split when the data config does not say


def _source(split: Split, files: list[Path] | None) -> Source:
    labels = split.y.numpy()
    if files is None:
        return Source(labels, pixels=split.x.numpy())
    return Source(labels, files=[str(files[i]) for i in split.x.tolist()])


def _parts(source) -> dict[str, Split]:
    """The splits the in-memory path would make (file indices for a folder: nothing decoded), and train_eval."""
    family, options = source.family, source.options
    if isinstance(family, Folder):
        splits = make_splits(family.file_splits(), options, family.all_class_names, family.name)
    else:
        splits = source.open()
    train_eval = splits.train_eval if options.train_eval_size is not None else \
        splits.train.sample(TRAIN_EVAL_DEFAULT, options.seed)
    return {"train": splits.train, "val": splits.val, "test": splits.test, "train_eval": train_eval}


def prepare(plan: PreparePlan) -> Path:
    """Write the shards of the plan's data set into its folder; returns the folder."""
    options, out = plan.options, plan.out
    workers, chunk_mb = worker_count(options.workers, "workers"), options.chunk_mb
    source = make_source(plan.data, plan.data_dir)
    family = source.family
    files = family.files if isinstance(family, Folder) else None
    store = plan.store
    started = time.perf_counter()
    parts = _parts(source)
    shape = tuple(family.input_shape)
    auto_stats = files is not None and family.needs_statistics
    partial_dir = out / ".partial"  # moved into place when every split is written
    shutil.rmtree(partial_dir, ignore_errors=True)
    counts, skipped, written = None, [], {}
    try:
        for name in SPLITS:
            split = parts[name]
            order = np.random.default_rng(options.seed).permutation(len(split)) if name == "train" \
                else np.arange(len(split))  # shuffled once on disk, so that a chunk holds every class
            log.info("writing %s: %s images", name, f"{len(split):,}")
            written[name], bad, hist = write_split(partial_dir / name, _source(split, files), order, shape, store,
                                                   auto_stats and name == "train", workers, chunk_mb)
            skipped += [b for b in bad if b not in skipped]  # train_eval repeats training images
            counts = hist if hist is not None else counts
        if skipped and not getattr(family, "skip_bad_images", False):
            path, reason = skipped[0].split(": ", 1)
            raise family._bad_image_error(Path(path), reason, len(skipped))
    except BaseException:
        shutil.rmtree(partial_dir, ignore_errors=True)
        raise
    info = source.info if not auto_stats else None
    mean, std = stats_from_counts(counts) if auto_stats else (list(info.mean), list(info.std))
    meta = {
        "version": VERSION, "name": family.name, "source": plan.data_config, "class_names": source.class_names,
        "input_shape": list(shape), "store": store, "mean": mean, "std": std,
        "splits": {name: {"images": written[name], "positions": len(parts[name])} for name in SPLITS},
        "skipped": skipped, "seconds": round(time.perf_counter() - started, 2),
    }
    publish(out, partial_dir, meta)
    if skipped:
        log.warning("skipped %d unreadable image(s) (data.skip_bad_images=true); the first: %s", len(skipped),
                    skipped[0])
    log.info("%s: %s in %.1f s (%s); train with: python src/train.py data=stream data.root=%s", out / META,
             ", ".join(f"{k} {v:,}" for k, v in written.items()), meta["seconds"], store, out)
    return out
