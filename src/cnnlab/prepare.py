"""What `prepare.py` does: a data set (any data config, `data=folder` without decoding it into memory) written once
into litdata shards that `data=stream` trains from, with the same splits the in-memory path would make."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from cnnlab.data import make_datamodule
from cnnlab.data.base import Split
from cnnlab.data.folder import FolderDataModule
from cnnlab.data.image_cache import worker_count
from cnnlab.data.shards import (
    META,
    SPLITS,
    VERSION,
    Source,
    check_out,
    publish,
    resolve_store,
    stats_from_counts,
    write_split,
)
from cnnlab.errors import ConfigError

log = logging.getLogger("cnnlab")

TRAIN_EVAL_DEFAULT = 10_000  # images in the training-error split when the data config does not say


def _source(split: Split, files: list[Path] | None) -> Source:
    labels = split.y.numpy()
    if files is None:
        return Source(labels, pixels=split.x.numpy())
    return Source(labels, files=[str(files[i]) for i in split.x.tolist()])


def _check(cfg: DictConfig) -> tuple[Path, int, int, dict[str, Any]]:
    """prepare.py's own options and the data config, before anything is read: (out, workers, chunk_mb, data)."""
    if cfg.get("out") in (None, "???"):
        raise ConfigError("prepare.py needs out=FOLDER: where to write the shards (then: python src/train.py "
                          "data=stream data.root=FOLDER).")
    out = Path(str(cfg.out)).expanduser()
    check_out(out)
    chunk_mb = cfg.get("chunk_mb", 64)
    if not isinstance(chunk_mb, int) or isinstance(chunk_mb, bool) or chunk_mb < 1:
        raise ConfigError(f"chunk_mb = {chunk_mb!r}; expected a positive number of megabytes per chunk file.")
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    if data_cfg.get("family") == "stream":
        raise ConfigError("data=stream reads shards; prepare.py writes them from another data config "
                          "(data=folder data.root=PATH, data=cifar10, ...).")
    if data_cfg.get("family") == "folder":
        data_cfg["cache"] = False  # nothing is decoded into memory, so nothing is cached
    return out, worker_count(cfg.get("workers"), "workers"), chunk_mb, data_cfg


def _parts(dm) -> dict[str, Split]:
    """The splits the in-memory path would make (file indices for a folder: nothing decoded), and train_eval."""
    if isinstance(dm, FolderDataModule):
        splits = dm.file_splits()
    else:
        dm.setup()
        splits = dm.splits
    train_eval = dm.train_eval if dm.train_eval_size is not None else \
        splits["train"].sample(TRAIN_EVAL_DEFAULT, dm.seed)
    return {**splits, "train_eval": train_eval}


def prepare(cfg: DictConfig) -> Path:
    """Write the shards of `cfg.data` into `cfg.out`; returns the folder."""
    out, workers, chunk_mb, data_cfg = _check(cfg)
    dm = make_datamodule(data_cfg, cfg.paths.data_dir)
    files = dm.files if isinstance(dm, FolderDataModule) else None
    store = resolve_store(cfg.get("store", "auto"), files is not None)
    started = time.perf_counter()
    parts = _parts(dm)
    shape = tuple(dm.input_shape)
    auto_stats = files is not None and dm._auto_stats
    partial_dir = out / ".partial"  # moved into place when every split is written
    shutil.rmtree(partial_dir, ignore_errors=True)
    counts, skipped, written = None, [], {}
    try:
        for name in SPLITS:
            split = parts[name]
            order = np.random.default_rng(cfg.seed).permutation(len(split)) if name == "train" \
                else np.arange(len(split))  # shuffled once on disk, so that a chunk holds every class
            log.info("writing %s: %s images", name, f"{len(split):,}")
            written[name], bad, hist = write_split(partial_dir / name, _source(split, files), order, shape, store,
                                                   auto_stats and name == "train", workers, chunk_mb)
            skipped += [b for b in bad if b not in skipped]  # train_eval repeats training images
            counts = hist if hist is not None else counts
        if skipped and not getattr(dm, "skip_bad_images", False):
            path, reason = skipped[0].split(": ", 1)
            raise dm._bad_image_error(Path(path), reason, len(skipped))
    except BaseException:
        shutil.rmtree(partial_dir, ignore_errors=True)
        raise
    mean, std = stats_from_counts(counts) if auto_stats else (dm.mean.flatten().tolist(), dm.std.flatten().tolist())
    meta = {
        "version": VERSION, "name": dm.name, "source": data_cfg, "class_names": dm.class_names,
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
