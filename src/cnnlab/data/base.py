"""The shared in-memory base: a whole data set held as uint8 tensors, fed in batches with no per-sample work.

Each family only reads its files into uint8 tensors (`read_splits`). Everything else is here: class
subsets and relabelling, the official and seed split protocols, batching, and normalisation and
augmentation per batch on the training device (`on_after_batch_transfer`), as the fastest CIFAR
trainers do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset, Sampler

from cnnlab.data.augment import augment_batch, check_augment
from cnnlab.errors import ConfigError, DataError

ON_DEVICE = ("auto", True, False)


def fits_on_device(option: bool | str, needed: int, free: int, device: str) -> bool:
    """`data.on_device`: true keeps the data set on the device or stops with both sizes; auto keeps it there when it
    takes at most half of the free memory (the rest is the network's), else in host memory."""
    if option is False:
        return False
    if option is True and needed > free:
        raise ConfigError(f"data.on_device=true: the data set needs {needed / 2**30:.2f} GiB on {device}, which has "
                          f"{free / 2**30:.2f} GiB free; set data.on_device=auto (host memory, pinned, when it does "
                          "not fit) or use fewer images (data.train_size, data.classes).")
    return option is True or needed <= free / 2


@dataclass
class Split:
    """Images (N, C, H, W) uint8 and labels (N,) int64."""

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

    @staticmethod
    def concat(splits: list[Split]) -> Split:
        return Split(torch.cat([s.x for s in splits]), torch.cat([s.y for s in splits]))


class _Indexed(Dataset):
    """A dataset that returns a whole batch for a tensor of indices: one gather, no collate. The indices ride
    along, for augmentations that follow each image across epochs (`flip: alternate`)."""

    def __init__(self, split: Split):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index):
        return self.split.x[index], self.split.y[index], index


class BatchIndices(Sampler):
    """Index batches for one rank: shuffled per epoch from `seed` (Lightning calls `set_epoch`), or in order.

    Shards by rank itself so that every evaluation image is seen exactly once across ranks. A final training
    batch of less than half a batch is dropped (the images are reshuffled next epoch): batch norm cannot train
    on one image, and a small batch's statistics are noisy enough to upset fast-moving running statistics
    (airbench's momentum 0.4 on CIFAR-100's 64-image last batch spiked validation error every fifth epoch).
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int = 0, rank: int = 0, world: int = 1,
                 device: torch.device | None = None):
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world, self.epoch, self.skip = rank, world, 0, 0
        self.device = device  # where the images are: the indices go there once per epoch, not once per batch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_after(self, batches: int) -> None:
        """The next pass starts after this many batches: a run resumed mid-epoch sees the rest of the same epoch."""
        self.skip = batches

    def _indices(self) -> torch.Tensor:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=gen)
            # equal shards for training, so that every rank runs the same number of steps
            per_rank = self.n // self.world
            return order[self.rank * per_rank:(self.rank + 1) * per_rank]
        return torch.arange(self.rank, self.n, self.world)

    def _short(self, last: int) -> bool:
        """Whether a final training batch of `last` images is dropped."""
        return self.shuffle and 0 < last < max(2, self.batch_size / 2)

    def __iter__(self):
        indices = self._indices()
        batches = list(torch.split(indices.to(self.device) if self.device else indices, self.batch_size))
        if len(batches) > 1 and self._short(len(batches[-1])):
            batches.pop()
        skip, self.skip = self.skip, 0
        return iter(batches[skip:])

    def __len__(self) -> int:
        n = self.n // self.world if self.shuffle else len(range(self.rank, self.n, self.world))
        batches = math.ceil(n / self.batch_size)
        return batches - 1 if batches > 1 and self._short(n % self.batch_size) else batches


class InMemoryDataModule(pl.LightningDataModule):
    """Base for every data set family; subclasses set the class facts and implement `read_splits`."""

    name: str = ""
    input_shape: tuple[int, int, int] = (1, 1, 1)
    all_class_names: tuple[str, ...] = ()

    def __init__(
        self,
        data_dir: str | Path = "data",
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        protocol: str = "official",
        val_size: int = 1000,
        test_size: int = 0,
        classes: list[int] | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        augment: dict[str, Any] | None = None,
        train_eval_size: int | None = None,
        train_size: int | None = None,
        monitor_test: bool = False,
        on_device: bool | str = "auto",
        seed: int = 42,
    ):
        super().__init__()
        self.data_dir = Path(data_dir)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.protocol, self.val_size, self.test_size, self.seed = protocol, val_size, test_size, seed
        self.classes = list(classes) if classes is not None else None
        self.augment = dict(augment or {})
        self.train_eval_size, self.train_size, self.monitor_test = train_eval_size, train_size, monitor_test
        self.on_device = on_device
        self._device_choice: dict[torch.device, bool] = {}  # whether the splits live on that device
        self._placed: dict[int, Split] = {}  # splits copied to the training device, by id of the host split
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}  # mean and std on each device
        c = self.input_shape[0]
        self.mean = torch.tensor(mean if mean is not None else [0.5] * c).view(1, -1, 1, 1)
        self.std = torch.tensor(std if std is not None else [0.25] * c).view(1, -1, 1, 1)
        self.splits: dict[str, Split] = {}
        self._check()

    def _check(self) -> None:
        """Checks that need no data, so that a wrong option fails before anything is read."""
        n = len(self.all_class_names)
        if self.protocol not in ("official", "seed"):
            raise ConfigError(f"data.protocol = {self.protocol!r}; expected 'official' (the data set's own splits) "
                              "or 'seed' (the seed README's: pooled data, 1% test split, 1000 validation images).")
        for key in ("batch_size", "eval_batch_size"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ConfigError(f"data.{key} = {getattr(self, key)!r}; expected a positive integer.")
        if self.classes is not None:
            bad = [c for c in self.classes if not isinstance(c, int) or not 0 <= c < n]
            if bad or not self.classes or len(set(self.classes)) != len(self.classes):
                raise ConfigError(f"data.classes = {self.classes}; expected distinct labels among 0..{n - 1} "
                                  f"({', '.join(f'{i} {name}' for i, name in enumerate(self.all_class_names))}).")
        for key in ("mean", "std"):
            if getattr(self, key).numel() != self.input_shape[0]:
                raise ConfigError(f"data.{key} has {getattr(self, key).numel()} values; "
                                  f"expected one per channel ({self.input_shape[0]}).")
        check_augment(self.augment)
        for key, what in (("train_eval_size", "for the training-error report"), ("train_size", "to train on")):
            size = getattr(self, key)
            if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
                raise ConfigError(f"data.{key} = {size!r}; expected a positive number of training images {what}, "
                                  "or null for all of them.")
        if not isinstance(self.monitor_test, bool):
            raise ConfigError(f"data.monitor_test = {self.monitor_test!r}; expected true or false.")
        if self.on_device not in ON_DEVICE:
            raise ConfigError(f"data.on_device = {self.on_device!r}; expected auto (on a GPU when the data set takes "
                              "at most half of its free memory), true or false.")

    @property
    def class_names(self) -> list[str]:
        names = list(self.all_class_names)
        return [names[c] for c in self.classes] if self.classes is not None else names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def info(self) -> dict[str, Any]:
        """What a checkpoint needs to use the model without this data set: shapes, classes, normalisation."""
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "class_names": self.class_names,
            "mean": self.mean.flatten().tolist(),
            "std": self.std.flatten().tolist(),
        }

    # --- reading -----------------------------------------------------------------------------------
    def read_splits(self) -> dict[str, Split]:
        """The family's own splits: `train` and `test` always, `val` where the data set defines one."""
        raise NotImplementedError

    def _subset(self, split: Split, where: str) -> Split:
        if self.classes is None:
            return split
        keep = torch.isin(split.y, torch.tensor(self.classes))
        relabel = torch.full((len(self.all_class_names),), -1, dtype=torch.long)
        relabel[torch.tensor(self.classes)] = torch.arange(len(self.classes))
        if not keep.any():
            raise DataError(f"{self.name} {where} split has no image of classes {self.classes} "
                            f"({', '.join(self.class_names)}); check data.classes.")
        return Split(split.x[keep], relabel[split.y[keep]])

    def _carve(self, split: Split, size: int, what: str) -> tuple[Split, Split]:
        if not 0 < size < len(split):
            raise ConfigError(f"data.{what} = {size}: must be between 1 and {len(split) - 1} for the "
                              f"{len(split)} images it is taken from.")
        keep, held = train_test_split(torch.arange(len(split)).numpy(), test_size=size, random_state=self.seed)
        return split.take(keep), split.take(held)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        raw = {k: self._subset(v, k) for k, v in self.read_splits().items()}
        if self.protocol == "seed":
            # the seed README: pool everything, 1% test split (random_state 42), then the validation images
            pooled = Split.concat([raw[k] for k in ("train", "val", "test") if k in raw])
            n_test = math.ceil(0.01 * len(pooled))
            rest, test = self._carve(pooled, n_test, "test_size")
            train, val = self._carve(rest, self.val_size, "val_size")
        else:
            train = raw["train"]
            test = raw.get("test")
            if test is None:
                train, test = self._carve(train, self.test_size, "test_size")
            val = raw.get("val")
            if val is None:
                train, val = self._carve(train, self.val_size, "val_size")
        if self.train_size is not None:  # a fixed subset: fast trials
            train = train.sample(self.train_size, self.seed + 1)
        self.splits = {"train": train, "val": val, "test": test}
        # training error on a fixed sample when the whole training set would cost too much to evaluate
        self.train_eval = train if self.train_eval_size is None else train.sample(self.train_eval_size, self.seed)
        # the starting mirror state of every training image, for `flip: alternate`
        self.flip_parity = torch.randint(0, 2, (len(train),), generator=torch.Generator().manual_seed(self.seed))

    def train_sample(self, n: int) -> torch.Tensor:
        """The first `n` training images as the network sees them in training, but not augmented: for
        initialisations fitted to data (`init: whiten`)."""
        self.setup("fit")
        return self._normalise(self.splits["train"].x[:n].float().div_(255))

    # --- feeding -----------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def _keep_on_device(self, device: torch.device) -> bool:
        """Whether the splits live on the training device (`data.on_device`): decided once, for all splits together,
        at the first loader (asked again, the free memory would already count the splits placed since)."""
        if device.type != "cuda":
            return False
        if device not in self._device_choice:
            held = {id(s): s for s in (*self.splits.values(), self.train_eval)}.values()
            needed = sum(s.x.nbytes + s.y.nbytes for s in held)
            free, _ = torch.cuda.mem_get_info(device)
            self._device_choice[device] = fits_on_device(self.on_device, needed, free, str(device))
        return self._device_choice[device]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        data = self.train_eval if split == "train_eval" else self.splits[split]
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        size = self.batch_size if shuffle else self.eval_batch_size
        device = self._device()
        on_device = self._keep_on_device(device)
        if on_device:  # copied once; then every batch is a gather on the device, with no host copy per step
            data = self._placed.setdefault(id(data), Split(data.x.to(device), data.y.to(device)))
        sampler = BatchIndices(len(data), size, shuffle, self.seed, rank, world, device if on_device else None)
        # its own generator: creating an iterator would otherwise draw from the global RNG, so a resumed run
        # (which iterates the loaders in another order) would see other dropout masks and crops. In host memory
        # on a GPU run, batches are pinned so that Lightning's copies to the device are asynchronous.
        return DataLoader(_Indexed(data), sampler=sampler, batch_size=None, generator=torch.Generator(),
                          pin_memory=device.type == "cuda" and not on_device)

    def train_dataloader(self) -> DataLoader:
        loader = self._loader("train", shuffle=True)
        if self.trainer is not None and self.trainer.fit_loop.restarting:
            # Lightning restores the count of batches done in the interrupted epoch but replays a plain
            # loader from its start (and sets the epoch only after the first pass begins); skipping them
            # in that epoch's order makes a resumed run see exactly the uninterrupted run's data
            loader.sampler.set_epoch(self.trainer.current_epoch)
            loader.sampler.resume_after(self.trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        return loader

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """The validation split; with `monitor_test`, the test split too (logged as `test_epoch/…` after every
        epoch, for time-to-accuracy curves; the best checkpoint is still chosen by validation)."""
        val = self._loader("val", shuffle=False)
        return [val, self._loader("test", shuffle=False)] if self.monitor_test else val

    def test_dataloader(self) -> list[DataLoader]:
        """The test split, then the training set unaugmented (or `train_eval_size` of it): the seed reported
        both errors."""
        return [self._loader("test", shuffle=False), self._loader("train_eval", shuffle=False)]

    def _on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std on `device`, copied once (a copy per batch would be a host-to-device transfer per step)."""
        if device not in self._stats:
            self._stats[device] = (self.mean.to(device), self.std.to(device))
        return self._stats[device]

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._on(x.device)
        return (x - mean) / std

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """uint8 batch -> augmented (training only) and normalised floats; the image indices are dropped here."""
        x, y, index = batch
        x = x.float().div_(255)
        training = self.trainer is not None and self.trainer.training
        if training and self.augment:
            parity = None
            if self.augment.get("flip") == "alternate":
                self.flip_parity = self.flip_parity.to(index.device)  # moved once, then a no-op
                parity = self.flip_parity[index]
            x = augment_batch(x, self.augment, parity, self.trainer.current_epoch, self._on(x.device)[0])
        return self._normalise(x), y
