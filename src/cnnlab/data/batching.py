"""The batching side every source shares: batches of uint8 images become augmented (training only) and normalised
floats on the training device, where the fastest CIFAR trainers do that work; and, for images held in memory, the
sampler that cuts batches by index and whether the whole data set lives on the GPU."""

import math

import torch
from torch.utils.data import Sampler

from cnnlab.checks.errors import ConfigError
from cnnlab.data.augment import augment_batch
from cnnlab.data.options import AugmentOptions


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


class Batching:
    """uint8 batch -> float on the 0..1 scale -> augmented when training -> normalised, on the batch's device; mean and
    std are copied to each device once (a copy per batch would be a host-to-device transfer per step)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], augment: AugmentOptions):
        self.mean, self.std = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
        self.augment = augment
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._parity: torch.Tensor | None = None

    def stats_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._on:
            self._on[device] = (self.mean.to(device), self.std.to(device))
        return self._on[device]

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.stats_on(x.device)
        return (x - mean) / std

    def __call__(self, x: torch.Tensor, index: torch.Tensor, training: bool, epoch: int,
                 parity: torch.Tensor | None, progress: float = 0.0) -> torch.Tensor:
        """`parity`: each training image's first mirror state (for `flip: alternate`), indexed by `index`;
        `progress`: the fraction of training done, for progressive resizing (`sizes`)."""
        x = x.float().div_(255)
        if training and self.augment != AugmentOptions():
            flips = None
            if self.augment.flip == "alternate":
                if self._parity is None or self._parity.device != index.device:
                    self._parity = parity.to(index.device)  # moved once, then a no-op
                flips = self._parity[index]
            x = augment_batch(x, self.augment, flips, epoch, self.stats_on(x.device)[0])
        x = self.normalise(x)
        side = self.augment.side_at(progress) if training else None
        if side is not None and side != x.shape[2]:  # as the speedrun resizes: bilinear, after augmentation
            size = (side, round(x.shape[3] * side / x.shape[2]))
            x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x


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
