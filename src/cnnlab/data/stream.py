"""`data=stream data.root=SHARDS`: train from shards written by `prepare.py`, never holding the data set in memory.

litdata's `StreamingDataset` reads the chunks (shuffled per epoch, sharded across loader workers, ranks and nodes)
and its `StreamingDataLoader` keeps the position in the epoch, which Lightning saves in every checkpoint: a resumed
run continues mid-epoch. Images are decoded in the loader's workers; batches are augmented and normalised on the
training device by the in-memory base class, so every model option, report, predict and export work unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from cnnlab.data.base import InMemoryDataModule, Split
from cnnlab.data.shards import Decoder, read_meta
from cnnlab.errors import ConfigError, DataError

log = logging.getLogger("cnnlab")
logging.getLogger("litdata").setLevel(logging.WARNING)  # its INFO lines (cache sizes) say nothing about the run
# evaluation under DDP reads with drop_last off on purpose (every image once); litdata warns about it per loader
logging.getLogger("litdata.streaming.dataset").addFilter(lambda record: "disabled the `drop_last`" not in
                                                         record.getMessage())

FIXED_BY_PREPARE = ("protocol", "val_size", "test_size", "classes", "train_size", "train_eval_size")


class StreamDataModule(InMemoryDataModule):
    name = "stream"

    def __init__(self, root: str | None = None, workers: int = 2, class_names: list[str] | None = None,
                 image_size: list[int] | None = None, **kwargs):
        if root is None or root == "???":
            raise ConfigError("data=stream needs data.root=SHARDS: a folder written by python src/prepare.py "
                              "data=<data set> out=SHARDS.")
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
            raise ConfigError(f"data.workers = {workers!r}; expected the number of decoding processes (0: decode "
                              "in the training process).")
        self.root, self.workers = Path(root).expanduser(), workers
        self.meta = read_meta(self.root)
        self.input_shape = tuple(self.meta["input_shape"])
        self.all_class_names = tuple(self.meta["class_names"])
        self._expect(class_names, image_size)
        ignored = {k: kwargs.pop(k) for k in FIXED_BY_PREPARE if kwargs.get(k) is not None}
        if ignored:  # an experiment written for the in-memory data set may set them; the shards already decided
            log.info("data=stream: %s were fixed when the shards were written (prepare.py); ignored here",
                     ", ".join(f"{k}={v}" for k, v in ignored.items()))
        for key in ("mean", "std"):  # the training split's, computed when the shards were written
            if kwargs.get(key) is None:
                kwargs[key] = self.meta[key]
        kwargs["on_device"] = False  # streamed: the data set is, by definition, not held anywhere whole
        super().__init__(**kwargs)
        self.name = self.meta["name"]
        self._decoder = Decoder(self.input_shape, self.meta["store"] == "encoded")

    def _expect(self, class_names: list[str] | None, image_size: list[int] | None) -> None:
        """The config's own statement of the classes and image size, when it makes one, must be the shards'."""
        where = self.root / "cnnlab.json"
        if class_names is not None and list(class_names) != list(self.all_class_names):
            raise DataError(f"{where}: the shards hold classes {list(self.all_class_names)}, the config expects "
                            f"{list(class_names)} (data.class_names); write shards of those classes or fix the "
                            "config.")
        if image_size is not None:
            size = [image_size, image_size] if isinstance(image_size, int) else list(image_size)
            if size != list(self.input_shape[1:]):
                raise DataError(f"{where}: the shards hold {self.input_shape[1]}x{self.input_shape[2]} images, the "
                                f"config expects {size[0]}x{size[1]} (data.image_size); write the shards again with "
                                "data.image_size set, or fix the config.")

    def info(self) -> dict[str, Any]:
        return {**super().info(), "shards": str(self.root)}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        # sizes only: the images stay in the chunk files; `flip: alternate` needs one bit per training position
        self.splits = {name: _Count(self.meta["splits"][name]["images"]) for name in ("train", "val", "test")}
        self.train_eval = _Count(self.meta["splits"]["train_eval"]["images"])
        train_positions = self.meta["splits"]["train"]["positions"]
        self.flip_parity = torch.randint(0, 2, (train_positions,), generator=torch.Generator().manual_seed(self.seed))

    def _dataset(self, split: str, shuffle: bool):
        from litdata import StreamingDataset

        # made here, in the process that trains (after DDP has started): litdata shards by the ranks it sees then
        return StreamingDataset(str(self.root / split), shuffle=shuffle, drop_last=shuffle, seed=self.seed,
                                transform=self._decoder)

    def train_sample(self, n: int) -> torch.Tensor:
        """The first `n` training images as stored, normalised (for `init: whiten`); read from the chunks directly."""
        from litdata import StreamingDataset

        dataset = StreamingDataset(str(self.root / "train"), transform=self._decoder)
        images = torch.stack([dataset[i][0] for i in range(min(n, len(dataset)))])
        return self._normalise(images.float().div_(255))

    def _loader(self, split: str, shuffle: bool):
        from litdata import StreamingDataLoader

        size = self._train_batch_size() if shuffle else self._eval_batch_size(split)
        device = self._device()
        # its own generator: starting the workers would otherwise draw their seeds from the global RNG, so a resumed
        # run would see other dropout masks than the uninterrupted one
        return StreamingDataLoader(self._dataset(split, shuffle), batch_size=size, num_workers=self.workers,
                                   pin_memory=device.type == "cuda", generator=torch.Generator())

    def _readers(self) -> tuple[int, int]:
        """(ranks, loader workers per rank): litdata divides each split among all of them."""
        return (self.trainer.world_size if self.trainer is not None else 1), max(self.workers, 1)

    def _train_batch_size(self) -> int:
        """Training drops the last partial batch (litdata's drop_last: equal steps on every rank)."""
        world, workers = self._readers()
        images = self.meta["splits"]["train"]["images"]
        if images < self.batch_size * world * workers:
            raise DataError(f"{self.root / 'train'} has {images:,} images, fewer than one batch for each rank's "
                            f"loader workers ({self.batch_size} x {world} x {workers}); lower data.batch_size or "
                            "data.workers.")
        return self.batch_size

    def _eval_batch_size(self, split: str) -> int:
        """litdata gives each rank's loader workers whole batches and the remainder to the last: with batches of at most
        a share of the split, every rank has one (Lightning needs that) and every image is evaluated exactly once."""
        world, workers = self._readers()
        images = self.meta["splits"][split]["images"]
        if images < world * workers:
            raise DataError(f"{self.root / split} has {images} images, fewer than ranks x loader workers ({world} x "
                            f"{workers}); use fewer data.workers or ranks, or write more images into it.")
        return min(self.eval_batch_size, images // (world * workers))

    def train_dataloader(self):
        # a resumed run: Lightning gives the loader back its state from the checkpoint (the position in the epoch)
        return self._loader("train", shuffle=True)


class _Count(Split):
    """A split known by its size only (the images are in the shards)."""

    def __init__(self, n: int):
        super().__init__(torch.empty(0), torch.empty(0))
        self.n = n

    def __len__(self) -> int:
        return self.n
