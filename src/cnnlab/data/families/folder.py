"""Your own images: `data=folder data.root=PATH`, one sub-folder per class, as torchvision's ImageFolder reads them.

Layouts: `PATH/<class>/*` (divided into train/val/test by seeded, stratified fractions), or
`PATH/train/<class>/*` with optional `PATH/val/<class>/*` and `PATH/test/<class>/*` (a missing one is carved
from train). Class names are the folder names, sorted. Images (PNG, JPEG, BMP, WebP, GIF's first frame, any
mode) are decoded once with Pillow, in parallel, into the in-memory uint8 path every data set uses, and cached.
The folder structure is checked when the module is made, before anything is decoded.
"""

import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.checks.errors import ConfigError, DataError
from cnnlab.checks.fields import OptionError, boolean, choice, number, optional, positive_int, positive_number
from cnnlab.checks.options import option
from cnnlab.data import image_cache
from cnnlab.data.family import Family
from cnnlab.data.options import DataOptions, folder_path, image_size
from cnnlab.machine import memory_bytes

log = logging.getLogger("cnnlab")

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
SPLITS = ("train", "val", "test")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and not p.name.startswith(".")
                  and p.is_file())


def _class_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


@dataclass(frozen=True, kw_only=True)
class FolderOptions(DataOptions):
    """`data=folder`: your own images, one folder per class (or train/, val/, test/ folders)."""

    root: str = option(folder_path, "???", "the folder of class folders")
    image_size: tuple[int, int] | None = option(image_size, None, "resize every image to this size")
    channels: int | None = option(choice(None, 1, 3), None, "1 (grey) or 3 (RGB); null: the images' own")
    val_fraction: float = option(number(0, 1, high_open=True), 0.1, "of all images, for validation (no val/)")
    test_fraction: float = option(number(0, 1, high_open=True), 0.1, "of all images, for testing (no test/)")
    skip_bad_images: bool = option(boolean, False, "skip and count unreadable files instead of stopping")
    cache: bool = option(boolean, True, "keep the decoded pixels for the next run")
    cache_dir: str | None = option(optional(folder_path), None, "where the cache goes (null: ROOT/.cnnlab_cache)")
    workers: int | None = option(optional(positive_int), None, "decoding processes (null: all cores)")
    max_memory_gb: float | None = option(optional(positive_number), None,
                                         "refuse a folder whose decoded images exceed this (null: a quarter of RAM)")

    def validate(self) -> None:
        super().validate()
        if self.root == "???":
            raise OptionError("data=folder needs data.root=PATH: a folder with one sub-folder of images per class "
                              "(or train/, val/, test/ folders that each hold the class folders).")
        if not Path(self.root).expanduser().is_dir():
            raise OptionError(f"data.root={self.root} does not exist or is not a folder; give a folder with one "
                              "sub-folder of images per class.")
        if self.val_fraction + self.test_fraction >= 1:
            raise OptionError(f"data.val_fraction + data.test_fraction = {self.val_fraction + self.test_fraction:g}; "
                              "they must leave images for training (sum < 1).")
        if self.channels is not None:
            self.check_channels(self.channels)


class Folder(Family):
    name = "folder"
    Options = FolderOptions

    def __init__(self, options: FolderOptions, data_dir: str | Path):
        super().__init__(options, data_dir)
        self.root = Path(options.root).expanduser()
        self.image_size, self.channels = options.image_size, options.channels
        self.cache_dir = Path(options.cache_dir).expanduser() if options.cache_dir else self.root / ".cnnlab_cache"
        self.workers = image_cache.worker_count(options.workers, "data.workers")
        # loading holds the images twice for a moment (decoded, then gathered into the splits): a quarter of the
        # memory leaves the other half for that, the network and the rest of the process
        self.max_memory_gb = options.max_memory_gb or memory_bytes() / 2**30 / 4
        self.needs_statistics = options.mean is None or options.std is None
        self.mean = self.std = None  # computed from the training split when read, if the config gives none
        self.files, self.labels, self.split_of, self.all_class_names = self._scan()
        options.check_classes(list(self.all_class_names))
        self.input_shape = self._shape()
        options.check_channels(self.input_shape[0])

    @property
    def skip_bad_images(self) -> bool:
        return self.options.skip_bad_images

    def statistics(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if self.needs_statistics and self.mean is not None:
            return self.mean, self.std
        return super().statistics()

    # --- the folder's structure (no decoding) ---------------------------------------------------------------
    def _scan(self) -> tuple[list[Path], np.ndarray, list[str | None], tuple[str, ...]]:
        """Every image file, its class index and, in the split layout, its split; structure errors first."""
        root = self.root
        if not root.is_dir():
            raise DataError(f"data.root={root} does not exist or is not a folder; give a folder with one "
                            "sub-folder of images per class.")
        split_layout = (root / "train").is_dir() and bool(_class_folders(root / "train"))
        parts = [s for s in SPLITS if (root / s).is_dir()] if split_layout else [None]
        classes = _class_folders(root / "train") if split_layout else _class_folders(root)
        if not classes:
            raise DataError(f"{root} holds no class folders; expected {root}/<class>/<images> (one folder per "
                            f"class, named after it) or {root}/train/<class>/<images>.")
        if len(classes) < 2:
            raise DataError(f"{root / 'train' if split_layout else root} has one class folder ({classes[0]}); a "
                            "classifier needs at least two: add a folder per class.")
        for part in parts[1:]:
            other = _class_folders(root / part)
            if other != classes:
                only_train, only_other = sorted(set(classes) - set(other)), sorted(set(other) - set(classes))
                raise DataError(f"{root / 'train'} and {root / part} have different class folders (only in train: "
                                f"{only_train or 'none'}; only in {part}: {only_other or 'none'}); every split "
                                "needs the same classes.")
        files, labels, split_of = [], [], []
        for part in parts:
            base = root / part if part else root
            for index, name in enumerate(classes):
                found = _images_in(base / name)
                if not found:
                    raise DataError(f"{base / name} holds no images ({', '.join(SUFFIXES)}); add some or remove "
                                    "the folder.")
                files += found
                labels += [index] * len(found)
                split_of += [part] * len(found)
        return files, np.asarray(labels, dtype=np.int64), split_of, tuple(classes)

    def _options(self) -> dict[str, Any]:
        """What changes the decoded pixels: part of the cache's name and key."""
        return {"image_size": self.image_size, "channels": self.channels}

    def _shape(self) -> tuple[int, int, int]:
        """The input shape: from data.image_size and data.channels, else from the images (they must agree)."""
        if self.image_size is not None and self.channels is not None:
            return (self.channels, *self.image_size)
        cached = self._cached()
        if cached is not None:
            return tuple(cached[1]["shape"])
        probed = image_cache.probe_all(self.files, self.workers)
        good = [(f, p) for f, p in zip(self.files, probed) if not isinstance(p, str)]
        bad = [(f, p) for f, p in zip(self.files, probed) if isinstance(p, str)]
        if bad and not self.skip_bad_images:
            raise self._bad_image_error(bad[0][0], bad[0][1], len(bad))
        if not good:
            raise DataError(f"{self.root}: none of its {len(self.files)} image files can be read.")
        sizes = Counter(p[0] for _, p in good)
        if self.image_size is None and len(sizes) > 1:
            example = {size: next(f for f, p in good if p[0] == size) for size in sizes}
            listed = "; ".join(f"{h}x{w}: {n:,} images, e.g. {example[(h, w)]}"
                               for (h, w), n in sizes.most_common(4))
            more = f" (and {len(sizes) - 4} more sizes)" if len(sizes) > 4 else ""
            (h, w), _ = sizes.most_common(1)[0]
            raise DataError(f"{self.root}: images of different sizes ({listed}{more}); set data.image_size "
                            f"(e.g. data.image_size={h} or [{h},{w}]) to resize them all to one size.")
        modes = Counter(p[1] for _, p in good)
        if self.channels is None and len(modes) > 1:
            raise DataError(f"{self.root}: {modes[1]:,} grey and {modes[3]:,} colour images; set data.channels=3 "
                            "(grey images become RGB) or data.channels=1 (colour images become grey).")
        h, w = self.image_size or next(iter(sizes))
        return (self.channels or next(iter(modes)), h, w)

    def _bad_image_error(self, path: Path, reason: str, count: int) -> DataError:
        more = f" ({count - 1} more such files)" if count > 1 else ""
        return DataError(f"{path}: not a readable image ({reason}){more}; fix or remove it, or set "
                         "data.skip_bad_images=true to skip and count such files.")

    # --- decoding, with the cache ------------------------------------------------------------------------------
    def _cache_file(self) -> Path:
        return image_cache.cache_path(self.cache_dir, self._options())

    def _key(self) -> str:
        if "_key_value" not in self.__dict__:
            self._key_value = image_cache.content_key(self.root, self.files, self._options())
        return self._key_value

    def _cached(self) -> tuple[image_cache.Decoded, dict] | None:
        if not self.options.cache:
            return None
        if "_cache_hit" not in self.__dict__:
            self._cache_hit = image_cache.load_cache(self._cache_file(), self._key())
        return self._cache_hit

    def _decode(self) -> image_cache.Decoded:
        cached = self._cached()
        if cached is not None and tuple(cached[1]["shape"]) == tuple(self.input_shape):
            log.info("images from the cache %s", self._cache_file())
            return cached[0]
        decoded = image_cache.decode_all(self.files, tuple(self.input_shape), self.workers)
        if self.options.cache:
            image_cache.save_cache(self._cache_file(), self._key(), decoded, {"shape": list(self.input_shape)})
        return decoded

    def file_splits(self) -> dict:
        """The folder's splits with each image's index in `self.files` in place of its pixels: nothing is decoded
        (for `prepare.py`, which streams the files into shards)."""
        import torch

        return self._parts(torch.arange(len(self.files)), np.arange(len(self.files)))

    def _parts(self, x, keep: np.ndarray) -> dict:
        """The kept images by split folder, then the missing splits carved from train."""
        import torch

        from cnnlab.data.splits import Split

        y = torch.from_numpy(self.labels)
        splits = {}
        for part in {self.split_of[i] for i in keep}:
            index = torch.from_numpy(np.asarray([i for i in keep if self.split_of[i] == part]))
            splits[part or "train"] = Split(x[index], y[index])
        return self._carve_fractions(splits)

    def _check_memory(self) -> None:
        """A folder too large to hold decoded is refused before anything is decoded: it would swap or be killed."""
        needed = len(self.files) * math.prod(self.input_shape)
        if needed > self.max_memory_gb * 2**30:
            raise DataError(f"{self.root}: {len(self.files):,} images of {'x'.join(map(str, self.input_shape))} take "
                            f"{needed / 2**30:.1f} GiB decoded, over data.max_memory_gb={self.max_memory_gb:g} GiB; "
                            f"write them into shards once (python src/prepare.py data=folder data.root={self.root} "
                            "out=SHARDS) and train with data=stream data.root=SHARDS, or raise data.max_memory_gb.")

    def read(self) -> dict:
        import torch

        from cnnlab.data.splits import Split
        from cnnlab.data.statistics import channel_stats

        self._check_memory()
        decoded = self._decode()
        bad = int((~decoded.ok).sum())
        if bad and not self.skip_bad_images:
            path, reason = decoded.first_error.split(": ", 1)
            raise self._bad_image_error(Path(path), reason, bad)
        if bad:
            log.warning("skipped %d unreadable image(s) (data.skip_bad_images=true); the first: %s", bad,
                        decoded.first_error)
        # the splits are cut as indices first, then each is gathered once from the decoded array, which is let go
        # (with the cache's copy) before the statistics: the peak is the data set twice, not three times
        x, ok, self._cache_hit = torch.from_numpy(decoded.x), decoded.ok, None
        del decoded
        splits = {k: Split(x[v.x], v.y) for k, v in
                  self._parts(torch.arange(len(self.files)), np.flatnonzero(ok)).items()}
        del x  # before the statistics, which copy one channel of the training images at a time
        if self.needs_statistics:  # from the training split, stored in checkpoints with the rest of the info
            mean, std = channel_stats(splits["train"].x)
            self.mean, self.std = tuple(mean.tolist()), tuple(std.clamp_min(1e-3).tolist())
        log.info("folder %s: %s images (%s classes)", self.root,
                 " / ".join(f"{k} {len(v):,}" for k, v in splits.items()), len(self.all_class_names))
        return splits

    def _carve_fractions(self, splits: dict) -> dict:
        """A test and a validation split taken from train where the folder has none (stratified, seeded)."""
        import torch
        from sklearn.model_selection import train_test_split

        for part, fraction in (("test", self.options.test_fraction), ("val", self.options.val_fraction)):
            if part in splits:
                continue
            train = splits["train"]
            # fractions of the images before any carving, so that val_fraction means the same in both layouts
            total = sum(len(s) for s in splits.values())
            n = round(fraction * total)
            if n < 1 or n >= len(train):
                raise ConfigError(f"data.{part}_fraction = {fraction:g} of {total:,} images leaves the {part} split "
                                  f"{'empty' if n < 1 else 'with all the training images'}; choose a fraction "
                                  f"that gives 1 to {len(train) - 1} images, or add a {self.root / part} folder.")
            counts = torch.bincount(train.y)
            stratify = train.y.numpy() if n >= len(counts) and counts[counts > 0].min() >= 2 else None
            keep, held = train_test_split(np.arange(len(train)), test_size=n, random_state=self.options.seed,
                                          stratify=stratify)
            splits["train"], splits[part] = train.take(np.sort(keep)), train.take(np.sort(held))
        return splits
