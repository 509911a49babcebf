"""Shards written once by `src/prepare.py` and checked before a streamed run reads them: one litdata data set per split
(`index.json`, `chunk-*.bin`) and `cnnlab.json`, written last (classes, input shape, storage, the training split's
statistics, counts). An item is `{image: file bytes or C x H x W uint8, label, index}`, the index being its position."""

import io
import json
import logging
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.checks.errors import DataError
from cnnlab.checks.places import SHARD_SPLITS, SHARDS_META
from cnnlab.data.image_cache import decode

log = logging.getLogger("cnnlab")
logging.getLogger("litdata").setLevel(logging.WARNING)  # its INFO lines (cache sizes) say nothing about the run

META, SPLITS = SHARDS_META, SHARD_SPLITS
VERSION = 1
TASK_SIZE = 1000  # images per writer task: small enough to balance the workers, large enough to amortise a task


# --- reading (every streamed run) ---------------------------------------------------------------------------------
def read_meta(root: Path) -> dict[str, Any]:
    """The shards folder's description, after checking that every split's chunk files are there and whole: a missing,
    empty, unfinished or truncated folder is one sentence naming the file, before any training."""
    how = f"write it with: python src/prepare.py data=<data set> out={root}"
    if not root.is_dir():
        raise DataError(f"data.root={root} does not exist; a shards folder is made by prepare.py ({how}).")
    meta_file = root / META
    if not meta_file.is_file():
        what = "is empty" if not any(root.iterdir()) else f"has no {META} (not written by prepare.py, or unfinished)"
        raise DataError(f"{root} {what}; {how}.")
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{meta_file} is not valid JSON ({err}); write the shards again ({how}).") from None
    if not isinstance(meta, dict) or meta.get("version") != VERSION:
        version = meta.get("version") if isinstance(meta, dict) else None
        raise DataError(f"{meta_file} has format version {version!r}, this cnnlab reads {VERSION}; "
                        f"write the shards again ({how}).")
    _check_meta(meta, meta_file, how)
    for split in SPLITS:
        _check_split(root / split, meta["splits"][split]["images"], how)
    return meta


def _check_meta(meta: dict[str, Any], meta_file: Path, how: str) -> None:
    """Every key a run reads, of the kind it needs: a file edited or cut short is one sentence, not a KeyError."""
    def bad(key: str, what: str) -> DataError:
        return DataError(f"{meta_file}: '{key}' is {'missing' if key not in meta else repr(meta[key])}; expected "
                         f"{what}. The file was changed after prepare.py wrote it: write the shards again ({how}).")

    names, shape = meta.get("class_names"), meta.get("input_shape")
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) for n in names):
        raise bad("class_names", "a list of at least two class names")
    if not isinstance(shape, list) or len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape) \
            or shape[0] not in (1, 3):
        raise bad("input_shape", "[channels (1 or 3), height, width]")
    for key in ("mean", "std"):
        values = meta.get(key)
        if not isinstance(values, list) or len(values) != shape[0] or not all(isinstance(v, int | float)
                                                                              for v in values):
            raise bad(key, f"{shape[0]} number(s), one per channel")
    if meta.get("store") not in ("encoded", "pixels"):
        raise bad("store", "'encoded' or 'pixels'")
    if not isinstance(meta.get("name"), str):
        raise bad("name", "the data set's name")
    splits = meta.get("splits")
    if not isinstance(splits, dict) or any(not isinstance(splits.get(s), dict) or not isinstance(
            splits[s].get("images"), int) or not isinstance(splits[s].get("positions"), int) for s in SPLITS):
        raise bad("splits", f"the image counts of {', '.join(SPLITS)}")


def _check_split(folder: Path, images: int, how: str) -> None:
    index_file = folder / "index.json"
    if not index_file.is_file():
        raise DataError(f"{index_file} is missing; the shards are incomplete: write them again ({how}).")
    try:
        chunks = json.loads(index_file.read_text())["chunks"]
    except (json.JSONDecodeError, KeyError, UnicodeDecodeError) as err:
        raise DataError(f"{index_file} is not a litdata index ({type(err).__name__}); write the shards again "
                        f"({how}).") from None
    for chunk in chunks:
        path = folder / chunk["filename"]
        size = path.stat().st_size if path.is_file() else None
        if size != chunk["chunk_bytes"]:
            found = "missing" if size is None else f"{size:,} bytes"
            raise DataError(f"{path} is {found}, expected {chunk['chunk_bytes']:,} bytes (a chunk cut short or lost "
                            f"in a copy); copy it again or write the shards again ({how}).")
    stored = sum(chunk["chunk_size"] for chunk in chunks)
    if stored != images:
        raise DataError(f"{index_file} lists {stored:,} images, {folder.parent / META} says {images:,}; the shards "
                        f"were changed after they were written: write them again ({how}).")


@dataclass(frozen=True)
class Decoder:
    """A stored item -> (C x H x W uint8 tensor, label, index), in the loader's workers; an item that disagrees with
    cnnlab.json (a label beyond its classes, pixels of another shape) stops the run naming the shards."""

    shape: tuple[int, int, int]
    encoded: bool
    classes: int = 0
    root: str = ""

    def __call__(self, item: dict[str, Any]):
        import torch

        image, label = item["image"], item["label"]
        pixels = decode(io.BytesIO(image), self.shape).transpose(2, 0, 1) if self.encoded else image
        where = f"{Path(self.root) / META}"
        if self.classes and not 0 <= int(label) < self.classes:
            raise DataError(f"{where} names {self.classes} classes, but the shards hold an image of label {label}; "
                            "the shards and their description disagree: write the shards again.")
        if tuple(pixels.shape) != tuple(self.shape):
            raise DataError(f"{where} says {'x'.join(map(str, self.shape))} images, but the shards hold "
                            f"{'x'.join(map(str, pixels.shape))} ones; write the shards again.")
        return torch.from_numpy(np.ascontiguousarray(pixels)), label, item["index"]


# --- writing (prepare.py) -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """Where a split's images come from: rows of a uint8 array (a built-in data set) or image files (a folder)."""

    labels: np.ndarray
    pixels: np.ndarray | None = None  # N x C x H x W
    files: list[str] | None = None


def _items(task: tuple[int, np.ndarray], source: Source, shape: tuple[int, int, int], store: str, stats: bool,
           report_dir: Path) -> Iterator[dict[str, Any]]:
    """One writer task: the items of some images of a split; unreadable files and, for the training split, each
    channel's histogram of the stored pixels go to a report file (litdata's workers return nothing else)."""
    number, positions = task
    counts = np.zeros((shape[0], 256), dtype=np.int64)
    bad = []
    for position in positions.tolist():
        label = int(source.labels[position])
        if source.files is None:
            pixels = source.pixels[position]
            image = pixels
        else:
            path = source.files[position]
            try:
                raw = Path(path).read_bytes()
                pixels = decode(io.BytesIO(raw), shape).transpose(2, 0, 1)  # every file is decoded once: checked
            except Exception as err:  # noqa: BLE001 - truncated, not an image: reported by the caller
                reason = str(err).split(" <_io.BytesIO")[0]  # Pillow names the in-memory copy, not the file
                bad.append(f"{path}: {type(err).__name__}: {reason}")
                continue
            image = raw if store == "encoded" else np.ascontiguousarray(pixels)
        if stats:
            counts += np.stack([np.bincount(channel.ravel(), minlength=256) for channel in pixels])
        yield {"image": image, "label": label, "index": position}
    (report_dir / f"{number}.json").write_text(json.dumps({"bad": bad, "counts": counts.tolist() if stats else None}))


def write_split(out: Path, source: Source, positions: np.ndarray, shape: tuple[int, int, int], store: str,
                stats: bool, workers: int, chunk_mb: int) -> tuple[int, list[str], np.ndarray | None]:
    """One split into `out` with litdata's `optimize`, in `workers` processes. Returns the images written, the
    unreadable files and (with `stats`) each channel's histogram."""
    from litdata import optimize

    report_dir = out.with_name(out.name + ".reports")
    report_dir.mkdir(parents=True)
    tasks = [(k, positions[i:i + TASK_SIZE]) for k, i in enumerate(range(0, len(positions), TASK_SIZE))]
    start = "fork" if sys.platform == "linux" else "spawn"
    optimize(partial(_items, source=source, shape=shape, store=store, stats=stats, report_dir=report_dir),
             tasks, output_dir=str(out), chunk_bytes=f"{chunk_mb}MB", num_workers=min(workers, len(tasks)),
             start_method=start, reorder_files=False, keep_data_ordered=True, verbose=sys.stderr.isatty(),
             mode="overwrite")  # ordered: the same input gives the same chunks, so a rewrite trains the same
    reports = [json.loads(p.read_text()) for p in sorted(report_dir.glob("*.json"))]
    shutil.rmtree(report_dir)
    if len(reports) != len(tasks):
        raise DataError(f"writing {out}: {len(tasks) - len(reports)} of {len(tasks)} writer tasks did not finish "
                        "(see the messages above).")
    bad = [b for r in reports for b in r["bad"]]
    counts = np.sum([r["counts"] for r in reports], axis=0) if stats else None
    return len(positions) - len(bad), bad, counts


def stats_from_counts(counts: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and sample standard deviation on the 0..1 scale from the writers' 256-bin histograms (exact),
    the standard deviation at least 1e-3 as data=folder's."""
    import torch

    from cnnlab.data.statistics import histogram_stats

    mean, std = histogram_stats(torch.from_numpy(counts))
    return mean.tolist(), std.clamp_min(1e-3).tolist()


def publish(out: Path, partial_dir: Path, meta: dict[str, Any]) -> None:
    """Move the written splits into place and write cnnlab.json last: a folder without it is unfinished."""
    (out / META).unlink(missing_ok=True)
    for split in SPLITS:
        target = out / split
        if target.exists():
            shutil.rmtree(target)
        (partial_dir / split).rename(target)
    shutil.rmtree(partial_dir)
    (out / META).write_text(json.dumps(meta, indent=2) + "\n")

