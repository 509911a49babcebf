"""Images held in memory as uint8 tensors: a family's files read once (the four seed data sets, a decoded image
folder), split by the run's protocol, and fed in batches cut by index, with no per-image work."""

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from cnnlab.data.batching import BatchIndices, fits_on_device
from cnnlab.data.info import DataInfo
from cnnlab.data.options import DataOptions
from cnnlab.data.splits import Split, Splits, make_splits


class _Indexed(Dataset):
    """A dataset that returns a whole batch for a tensor of indices: one gather, no collate. The indices ride
    along, for augmentations that follow each image across epochs (`flip: alternate`)."""

    def __init__(self, split: Split):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index):
        return self.split.x[index], self.split.y[index], index


class MemorySource:
    """Where images come from when they fit in memory."""

    streamed = False

    def __init__(self, family: Any, options: DataOptions):  # a cnnlab.data.family.Family
        self.family, self.options = family, options
        self.splits: Splits | None = None
        self._on_device: dict[torch.device, bool] = {}  # whether the splits live on that device
        self._placed: dict[int, Split] = {}  # splits copied to the training device, by id of the host split

    def prepare(self) -> None:
        """Rank 0 only, before the others read: a download where the family has one."""
        self.family.prepare()

    def open(self) -> Splits:
        if self.splits is None:
            self.splits = make_splits(self.family.read(), self.options, self.family.all_class_names,
                                      self.family.name)
        return self.splits

    @property
    def info(self) -> DataInfo:
        if self.family.needs_statistics:  # from the training images (a folder without data.mean/std)
            self.open()
        mean, std = self.family.statistics()
        return DataInfo(self.family.name, tuple(self.family.input_shape), tuple(self.class_names), mean, std)

    @property
    def name(self) -> str:
        return self.family.name

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.family.input_shape)

    @property
    def class_names(self) -> list[str]:
        names = list(self.family.all_class_names)
        return [names[c] for c in self.options.classes] if self.options.classes is not None else names

    @property
    def flip_parity(self) -> torch.Tensor:
        return self.open().flip_parity

    def count(self, split: str) -> int:
        return len(self.open()[split])

    def sample(self, n: int) -> torch.Tensor:
        """The first `n` training images (uint8), for initialisations fitted to data (`init: whiten`)."""
        return self.open().train.x[:n]

    def _keep_on_device(self, device: torch.device) -> bool:
        """`data.on_device`: decided once, for all splits together, at the first loader (asked again, the free memory
        would already count the splits placed since)."""
        if device.type != "cuda":
            return False
        if device not in self._on_device:
            splits = self.open()
            held = {id(s): s for s in (splits.train, splits.val, splits.test, splits.train_eval)}.values()
            needed = sum(s.x.nbytes + s.y.nbytes for s in held)
            free, _ = torch.cuda.mem_get_info(device)
            self._on_device[device] = fits_on_device(self.options.on_device, needed, free, str(device))
        return self._on_device[device]

    def loader(self, split: str, batch_size: int, shuffle: bool, rank: int, world: int,
               device: torch.device) -> DataLoader:
        data = self.open()[split]
        on_device = self._keep_on_device(device)
        if on_device:  # copied once; then every batch is a gather on the device, with no host copy per step
            data = self._placed.setdefault(id(data), Split(data.x.to(device), data.y.to(device)))
        sampler = BatchIndices(len(data), batch_size, shuffle, self.options.seed, rank, world,
                               device if on_device else None)
        # its own generator: creating an iterator would otherwise draw from the global RNG, so a resumed run
        # (which iterates the loaders in another order) would see other dropout masks and crops. In host memory
        # on a GPU run, batches are pinned so that Lightning's copies to the device are asynchronous.
        return DataLoader(_Indexed(data), sampler=sampler, batch_size=None, generator=torch.Generator(),
                          pin_memory=device.type == "cuda" and not on_device)
