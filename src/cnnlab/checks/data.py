"""`data.*`: the options every data set takes (conf/data/), and each family's own.

A data config names its family (`family: cifar10`); the family's options class says which keys it takes. Checks
that need the files (class subsets of a folder, the counts a split can give) happen when the data is read, still
before any training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cnnlab.checks.fields import (
    Checker,
    OptionError,
    boolean,
    choice,
    integer,
    is_int,
    non_negative_int,
    number,
    optional,
    per_channel,
    positive_int,
    positive_number,
    sequence,
)
from cnnlab.checks.options import Options, nested, option

MAX_IMAGE_SIDE = 4096  # pixels: a larger data.image_size is a typo (100000 would need terabytes), not a data set


@dataclass(frozen=True, kw_only=True)
class AugmentOptions(Options):
    """`data.augment`: per-batch augmentation on the training device, never at evaluation."""

    crop_padding: int = option(non_negative_int, 0, "pixels of padding for a random crop (random translations)")
    padding_mode: str = option(choice("zeros", "reflect"), "zeros", "what the crop pads with")
    flip: bool | str = option(choice(False, True, "alternate"), False, "horizontal flips: random or alternating")
    cutout: int = option(non_negative_int, 0, "side of a square set to the mean at a random place of each image")


def _labels(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, list | tuple) and value and all(is_int(v) and v >= 0 for v in value) and \
            len(set(value)) == len(value):
        return tuple(value)
    raise ValueError("distinct labels 0..k-1 of the data set, e.g. [0, 3], or null for all classes")


def _size(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if is_int(value) and 0 < value <= MAX_IMAGE_SIDE:
        return (value, value)
    if isinstance(value, list | tuple) and len(value) == 2 and all(is_int(v) and 0 < v <= MAX_IMAGE_SIDE
                                                                   for v in value):
        return (value[0], value[1])
    raise ValueError(f"a side in pixels (a positive int up to {MAX_IMAGE_SIDE}, square) or [height, width], or null to "
                     "keep the images' own size")


image_size = Checker(_size, (0, 100000, [32], "32", True))


@dataclass(frozen=True, kw_only=True)
class DataOptions(Options):
    """What every data set takes: batching, splits, class subsets, normalisation, augmentation."""

    where = "data."
    classes_of: ClassVar[int | None] = None  # the family's number of classes, when known before reading
    channels_of: ClassVar[int | None] = None  # its number of channels, when known before reading

    family: str = option(Checker(lambda v: v, ()), "digits", "the data set family (a registry name, never code)")
    batch_size: int = option(positive_int, 128, "training images per step, per process")
    eval_batch_size: int = option(positive_int, 1000, "images per evaluation batch")
    protocol: str = option(choice("official", "seed"), "official",
                           "official: the data set's own splits; seed: the seed README's (pooled, 1% test)")
    val_size: int = option(positive_int, 1000, "validation images held out of train (when there is no val split)")
    test_size: int = option(non_negative_int, 0, "test images held out of train (when there is no test split)")
    classes: tuple[int, ...] | None = option(Checker(_labels, ([], [1, 1], [-1], "0,3")), None,
                                             "a subset of labels, relabelled 0..k-1 in the order given")
    mean: tuple[float, ...] | None = option(per_channel, None, "per-channel mean on the 0..1 scale")
    std: tuple[float, ...] | None = option(per_channel, None, "per-channel standard deviation on the 0..1 scale")
    augment: AugmentOptions = option(nested(AugmentOptions, "data.augment."), {}, "training augmentation")
    train_eval_size: int | None = option(optional(positive_int), None,
                                         "the training-error report on a fixed sample of this many images")
    train_size: int | None = option(optional(positive_int), None, "train on a fixed sample of this many images")
    monitor_test: bool = option(boolean, False, "also evaluate the test split after every epoch (test_epoch/...)")
    on_device: bool | str = option(choice("auto", True, False), "auto",
                                   "on a GPU, keep the data set in GPU memory (auto: when it fits in half the free)")
    seed: int = option(integer(0, 2**32 - 1), 42, "seeds the splits, samples and flip parities")

    def validate(self) -> None:
        if self.classes is not None and self.classes_of is not None and max(self.classes) >= self.classes_of:
            raise OptionError(f"data.classes = {list(self.classes)}; expected distinct labels among "
                              f"0..{self.classes_of - 1} of data={self.family}.")
        for key in ("mean", "std"):
            values = getattr(self, key)
            if values is not None and self.channels_of is not None and len(values) != self.channels_of:
                raise OptionError(f"data.{key} has {len(values)} values; expected one per channel "
                                  f"({self.channels_of}).")
        if self.std is not None and min(self.std) <= 0:
            raise OptionError(f"data.std = {list(self.std)}; every channel's standard deviation must be > 0.")


@dataclass(frozen=True, kw_only=True)
class DigitsOptions(DataOptions):
    classes_of, channels_of = 10, 1


@dataclass(frozen=True, kw_only=True)
class DownloadOptions(DataOptions):
    download: bool = option(boolean, True, "download through torchvision (rank 0) when files are missing")


@dataclass(frozen=True, kw_only=True)
class MNISTOptions(DownloadOptions):
    classes_of, channels_of = 10, 1


@dataclass(frozen=True, kw_only=True)
class CIFAR10Options(DownloadOptions):
    classes_of, channels_of = 10, 3


@dataclass(frozen=True, kw_only=True)
class CIFAR100Options(DownloadOptions):
    classes_of, channels_of = 100, 3


@dataclass(frozen=True, kw_only=True)
class FER2013Options(DataOptions):
    classes_of, channels_of = 7, 1


def _root(value: Any) -> str:
    if isinstance(value, str) and value:  # '???' (not given yet) is the family's own sentence, in validate()
        return value
    raise ValueError("a folder (relative to where you run the command)")


folder_path = Checker(_root, (3, ""))


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
            for key in ("mean", "std"):
                values = getattr(self, key)
                if values is not None and len(values) != self.channels:
                    raise OptionError(f"data.{key} has {len(values)} values; expected one per channel "
                                      f"({self.channels}).")


def _text(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    raise ValueError("a name")


@dataclass(frozen=True, kw_only=True)
class StreamOptions(DataOptions):
    """`data=stream`: shards written by prepare.py; they fix the splits, classes and statistics."""

    root: str = option(folder_path, "???", "the shards folder written by prepare.py")
    workers: int = option(non_negative_int, 2, "decoding processes per rank (0: in the training process)")
    class_names: tuple[str, ...] | None = option(optional(sequence(Checker(_text, ()), "class names")), None,
                                                 "the classes this config expects, checked against the shards'")
    image_size: tuple[int, int] | None = option(image_size, None, "the image size this config expects, checked")

    def validate(self) -> None:
        super().validate()
        if self.root == "???":
            raise OptionError("data=stream needs data.root=SHARDS: a folder written by python src/prepare.py "
                              "data=<data set> out=SHARDS.")
        if not Path(self.root).expanduser().is_dir():
            raise OptionError(f"data.root={self.root} does not exist; a shards folder is made by prepare.py (write it "
                              f"with: python src/prepare.py data=<data set> out={self.root}).")


FAMILY_OPTIONS: dict[str, type[DataOptions]] = {
    "digits": DigitsOptions,
    "mnist": MNISTOptions,
    "cifar10": CIFAR10Options,
    "cifar100": CIFAR100Options,
    "fer2013": FER2013Options,
    "folder": FolderOptions,
    "stream": StreamOptions,
}
# what data=stream ignores because the shards fixed it, when an experiment written for the in-memory data set sets it
FIXED_BY_PREPARE = ("protocol", "val_size", "test_size", "classes", "train_size", "train_eval_size")


def read_data(values: dict[str, Any]) -> DataOptions:
    """A data config as its family's options."""
    family = values.get("family")
    if family not in FAMILY_OPTIONS:
        raise OptionError(f"data.family = {family!r}; expected one of {', '.join(FAMILY_OPTIONS)}.")
    return FAMILY_OPTIONS[family].read(values)
