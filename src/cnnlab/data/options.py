"""`data.*`: the options every data set takes (conf/data/). A family adds its own beside its reader
(cnnlab/data/families/<name>.py) and a data config names it (`family: cifar10`). Checks that need the files (the
classes of a folder, the counts a split can give) happen when the data is read, still before any training.
"""

from dataclasses import dataclass
from typing import Any, ClassVar

from cnnlab.checks.fields import (
    Checker,
    OptionError,
    boolean,
    choice,
    integer,
    is_int,
    is_number,
    non_negative_int,
    optional,
    per_channel,
    positive_int,
)
from cnnlab.checks.options import Options, nested, option

MAX_IMAGE_SIDE = 4096  # pixels: a larger data.image_size is a typo (100000 would need terabytes), not a data set


def _stages(value: Any) -> tuple[tuple[float, int], ...]:
    """`data.augment.sizes`: [[share of the training steps, side in pixels], ...]."""
    if value is None or (isinstance(value, list | tuple) and not value):
        return ()
    if isinstance(value, list | tuple) and all(
            isinstance(v, list | tuple) and len(v) == 2 and is_number(v[0]) and 0 < v[0] <= 1 and is_int(v[1])
            and 0 < v[1] <= MAX_IMAGE_SIDE for v in value):
        return tuple((float(share), side) for share, side in value)
    raise ValueError("[[share, side], ...]: for each share of the training steps (0 < share <= 1, the shares adding "
                     "up to 1) the image side to train at, e.g. [[0.5, 24], [0.5, 32]]; or null for none")


@dataclass(frozen=True, kw_only=True)
class AugmentOptions(Options):
    """`data.augment`: per-batch augmentation on the training device, never at evaluation."""

    crop_padding: int = option(non_negative_int, 0, "pixels of padding for a random crop (random translations)")
    padding_mode: str = option(choice("zeros", "reflect"), "zeros", "what the crop pads with")
    flip: bool | str = option(choice(False, True, "alternate"), False, "horizontal flips: random or alternating")
    cutout: int = option(non_negative_int, 0, "side of a square set to the mean at a random place of each image")
    sizes: tuple = option(Checker(_stages, ([[0, 24], [1, 32]], [[0.5, 24.5], [0.5, 32]], "24")), None,
                          "progressive resizing: [[share, side], ...], e.g. [[0.5, 24], [0.5, 32]] trains the first "
                          "half of the steps at 24 px (validation and test always at the images' own size)")

    def validate(self) -> None:
        total = sum(share for share, _ in self.sizes)
        if self.sizes and abs(total - 1) > 1e-6:
            raise OptionError(f"data.augment.sizes = {[list(s) for s in self.sizes]}: the shares of the training steps "
                              f"add up to {total:g}; they must add up to 1 (e.g. [[0.5, 24], [0.5, 32]]).")

    def side_at(self, progress: float) -> int | None:
        """The side to train at when this fraction of the steps is done (None: the images' own)."""
        for share, side in self.sizes:
            if progress < share:
                return side
            progress -= share
        return None


def _labels(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, list | tuple) and len(value) >= 2 and all(is_int(v) and v >= 0 for v in value) and \
            len(set(value)) == len(value):
        return tuple(value)
    raise ValueError("at least two distinct labels 0..k-1 of the data set (a classifier needs two classes), e.g. "
                     "[0, 3], or null for all classes")


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


def _root(value: Any) -> str:
    if isinstance(value, str) and value:  # '???' (not given yet) is the family's own sentence, in validate()
        return value
    raise ValueError("a folder (relative to where you run the command)")


folder_path = Checker(_root, (3, ""))


@dataclass(frozen=True, kw_only=True)
class DataOptions(Options):
    """What every data set takes: batching, splits, class subsets, normalisation, augmentation."""

    where = "data."
    known_classes: ClassVar[tuple[str, ...]] = ()  # the family's class names, when known before reading (its own)
    known_channels: ClassVar[int | None] = None  # its number of channels, when known before reading

    family: str = option(Checker(lambda v: v, ()), "???", "the data set family (a registry name, never code)")
    batch_size: int = option(positive_int, 128, "training images per step, per process")
    eval_batch_size: int = option(positive_int, 1000, "images per evaluation batch")
    protocol: str = option(choice("official", "seed"), "official",
                           "official: the data set's own splits; seed: the seed README's (pooled, 1% test)")
    val_size: int = option(positive_int, 1000, "validation images held out of train (when there is no val split)")
    test_size: int = option(non_negative_int, 0, "test images held out of train (when there is no test split)")
    classes: tuple[int, ...] | None = option(Checker(_labels, ([], [1, 1], [-1], [9], "0,3")), None,
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
        if self.known_classes:
            self.check_classes(list(self.known_classes))
        if self.known_channels is not None:
            self.check_channels(self.known_channels)
        if self.std is not None and min(self.std) <= 0:
            raise OptionError(f"data.std = {list(self.std)}; every channel's standard deviation must be > 0.")

    def check_classes(self, names: list[str]) -> None:
        """`classes` against the data set's classes (before reading where the family knows them, else once read)."""
        if self.classes is not None and max(self.classes) >= len(names):
            listed = ", ".join(f"{i} {n}" for i, n in enumerate(names)) if len(names) <= 20 else ""
            raise OptionError(f"data.classes = {list(self.classes)}; expected distinct labels among "
                              f"0..{len(names) - 1} of data={self.family}" + (f" ({listed})." if listed else "."))

    def check_channels(self, channels: int) -> None:
        """`mean` and `std` give one value per channel of the images."""
        for key in ("mean", "std"):
            values = getattr(self, key)
            if values is not None and len(values) != channels:
                raise OptionError(f"data.{key} has {len(values)} values; expected one per channel ({channels}).")
