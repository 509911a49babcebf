"""The split protocol every in-memory data set shares: class subsets and relabelling, the official and the seed
README's splits, a fixed training subset, the training-error sample. It works on `Split`s of anything indexed by
image (pixels, or file indices for prepare.py, which never decodes a folder into memory)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from cnnlab.checks.errors import ConfigError, DataError
from cnnlab.data.options import DataOptions

log = logging.getLogger("cnnlab")


@dataclass
class Split:
    """Images (N, C, H, W) uint8, or any tensor with one row per image, and labels (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index) -> Split:
        index = torch.as_tensor(index, dtype=torch.long)
        return Split(self.x[index], self.y[index])

    def sample(self, n: int, seed: int) -> Split:
        """A fixed random subset of n images (seeded), in the split's own order; the whole split if n >= its size."""
        if n >= len(self):
            return self
        pick = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self.take(pick[:n].sort().values)

    def shuffled(self, seed: int) -> Split:
        """The split in a fixed random order (seeded): a shortened evaluation still sees every class."""
        return self.take(torch.randperm(len(self), generator=torch.Generator().manual_seed(seed)))

    @staticmethod
    def concat(splits: list[Split]) -> Split:
        return Split(torch.cat([s.x for s in splits]), torch.cat([s.y for s in splits]))


@dataclass
class Splits:
    """What a run reads: train, val, test, the training-error sample, and each training image's first mirror state."""

    train: Split
    val: Split
    test: Split
    train_eval: Split
    flip_parity: torch.Tensor

    def __getitem__(self, name: str) -> Split:
        return getattr(self, name)

    def items(self):
        return {"train": self.train, "val": self.val, "test": self.test}.items()


def subset(split: Split, options: DataOptions, all_names: tuple[str, ...], name: str, where: str) -> Split:
    """The images of `options.classes` (checked against the data set's classes by DataOptions), relabelled 0..k-1 in
    the order given."""
    if options.classes is None:
        return split
    classes = list(options.classes)
    keep = torch.isin(split.y, torch.tensor(classes))
    if not keep.any():
        raise DataError(f"{name} {where} split has no image of classes {classes} "
                        f"({', '.join(all_names[c] for c in classes)}); check data.classes.")
    relabel = torch.full((len(all_names),), -1, dtype=torch.long)
    relabel[torch.tensor(classes)] = torch.arange(len(classes))
    return Split(split.x[keep], relabel[split.y[keep]])


def carve(split: Split, size: int, what: str, seed: int, given: int | None = None) -> tuple[Split, Split]:
    """`size` images held out at random (seeded), the rest kept: scikit-learn's `train_test_split(..., test_size=size,
    random_state=seed)` exactly (one NumPy permutation), without importing scikit-learn at start-up. `given`: the
    option's value when `size` is its share for a class subset."""
    import numpy as np

    if not 0 < size < len(split):
        scaled = f" (data.{what} = {given} scaled to the class subset)" if given not in (None, size) else ""
        raise ConfigError(f"data.{what} = {given if given is not None else size}: {size}{scaled} must be between 1 "
                          f"and {len(split) - 1} for the {len(split)} images it is taken from; set data.{what} to "
                          "fewer images.")
    order = np.random.RandomState(seed).permutation(len(split))
    return split.take(order[size:]), split.take(order[:size])


def make_splits(raw: dict[str, Split], options: DataOptions, all_names: tuple[str, ...], name: str) -> Splits:
    """A family's own splits (`train`, and `val`/`test` where it has them) under the run's protocol."""
    whole = len(raw["train"])
    raw = {k: subset(v, options, all_names, name, k) for k, v in raw.items()}
    seed = options.seed
    if options.protocol == "seed":
        # the seed README: pool everything, 1% test split (random_state 42), then the validation images
        pooled = Split.concat([raw[k] for k in ("train", "val", "test") if k in raw])
        rest, test = carve(pooled, math.ceil(0.01 * len(pooled)), "test_size", seed)
        train, val = carve(rest, options.val_size, "val_size", seed)
    else:
        train, test, val = raw["train"], raw.get("test"), raw.get("val")
        share = len(train) / whole  # a class subset holds out its share of test_size and val_size
        for what, given in (("test_size", test), ("val_size", val)):
            if given is None:
                asked = getattr(options, what)
                size = max(1, round(asked * share)) if asked else 0
                if share < 1:
                    log.info("data.classes: %d of the subset's images held out for data.%s = %d", size, what, asked)
                train, held = carve(train, size, what, seed, asked)
                test, val = (held, val) if what == "test_size" else (test, held)
    if options.train_size is not None:  # a fixed subset: fast trials
        train = train.sample(options.train_size, seed + 1)
    # training error on a fixed sample when the whole training set would cost too much to evaluate
    train_eval = train if options.train_eval_size is None else train.sample(options.train_eval_size, seed)
    parity = torch.randint(0, 2, (len(train),), generator=torch.Generator().manual_seed(seed))
    # evaluation in a fixed shuffled order (a folder's splits come in class order): a shortened evaluation
    # (trainer.limit_val_batches, limit_test_batches) sees every class; the figures of a whole one are the same
    val, test, train_eval = (s.shuffled(seed + k) for k, s in enumerate((val, test, train_eval), start=11))
    return Splits(train, val, test, train_eval, parity)
