"""The split protocol every in-memory data set shares: class subsets and relabelling, the official and the seed
README's splits, a fixed training subset, the training-error sample. It works on `Split`s of anything indexed by
image (pixels, or file indices for prepare.py, which never decodes a folder into memory)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cnnlab.checks.data import DataOptions
from cnnlab.errors import ConfigError, DataError


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
    """The images of `options.classes`, relabelled 0..k-1 in the order given."""
    if options.classes is None:
        return split
    classes = list(options.classes)
    if max(classes) >= len(all_names):
        raise ConfigError(f"data.classes = {classes}; expected distinct labels among 0..{len(all_names) - 1} "
                          f"({', '.join(f'{i} {n}' for i, n in enumerate(all_names))}).")
    keep = torch.isin(split.y, torch.tensor(classes))
    if not keep.any():
        raise DataError(f"{name} {where} split has no image of classes {classes} "
                        f"({', '.join(all_names[c] for c in classes)}); check data.classes.")
    relabel = torch.full((len(all_names),), -1, dtype=torch.long)
    relabel[torch.tensor(classes)] = torch.arange(len(classes))
    return Split(split.x[keep], relabel[split.y[keep]])


def carve(split: Split, size: int, what: str, seed: int) -> tuple[Split, Split]:
    """`size` images held out at random (seeded), the rest kept: scikit-learn's `train_test_split(..., test_size=size,
    random_state=seed)` exactly (one NumPy permutation), without importing scikit-learn at start-up."""
    import numpy as np

    if not 0 < size < len(split):
        raise ConfigError(f"data.{what} = {size}: must be between 1 and {len(split) - 1} for the "
                          f"{len(split)} images it is taken from.")
    order = np.random.RandomState(seed).permutation(len(split))
    return split.take(order[size:]), split.take(order[:size])


def make_splits(raw: dict[str, Split], options: DataOptions, all_names: tuple[str, ...], name: str) -> Splits:
    """A family's own splits (`train`, and `val`/`test` where it has them) under the run's protocol."""
    raw = {k: subset(v, options, all_names, name, k) for k, v in raw.items()}
    seed = options.seed
    if options.protocol == "seed":
        # the seed README: pool everything, 1% test split (random_state 42), then the validation images
        pooled = Split.concat([raw[k] for k in ("train", "val", "test") if k in raw])
        rest, test = carve(pooled, math.ceil(0.01 * len(pooled)), "test_size", seed)
        train, val = carve(rest, options.val_size, "val_size", seed)
    else:
        train, test, val = raw["train"], raw.get("test"), raw.get("val")
        if test is None:
            train, test = carve(train, options.test_size, "test_size", seed)
        if val is None:
            train, val = carve(train, options.val_size, "val_size", seed)
    if options.train_size is not None:  # a fixed subset: fast trials
        train = train.sample(options.train_size, seed + 1)
    # training error on a fixed sample when the whole training set would cost too much to evaluate
    train_eval = train if options.train_eval_size is None else train.sample(options.train_eval_size, seed)
    parity = torch.randint(0, 2, (len(train),), generator=torch.Generator().manual_seed(seed))
    # evaluation in a fixed shuffled order (a folder's splits come in class order): a shortened evaluation
    # (trainer.limit_val_batches, limit_test_batches) sees every class; the figures of a whole one are the same
    val, test, train_eval = (s.shuffled(seed + k) for k, s in enumerate((val, test, train_eval), start=11))
    return Splits(train, val, test, train_eval, parity)
